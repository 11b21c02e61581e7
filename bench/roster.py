"""Books for benchmarks: a BookConfig of N agents (the built-in personas, then generated ones) on one endpoint."""

from __future__ import annotations

import dataclasses

from spacetime.book import BookConfig, EndpointSpec, load_book
from spacetime.domain import Persona, PersonaOrigin
from spacetime.personas import builtin_personas, make_persona

_FIELDS = (
    "Geology", "Linguistics", "Botany", "Acoustics", "Optics", "Topology", "Ecology", "Genetics", "Logic",
    "Rhetoric", "Economics", "Demography", "Oceanography", "Metallurgy", "Seismology", "Cryptography",
    "Thermodynamics", "Cosmology", "Statistics", "Anthropology", "Sociology", "Neurology", "Virology",
    "Meteorology", "Glaciology", "Paleontology", "Mycology", "Entomology", "Ornithology", "Zoology",
)  # fmt: skip


def personas(n: int) -> tuple[Persona, ...]:
    """``n`` distinct personas: the built-ins first, then generated ``Fellow NN`` personas."""
    out = list(builtin_personas())[:n]
    i = 0
    while len(out) < n:
        field = _FIELDS[i % len(_FIELDS)]
        out.append(make_persona(
            name=f"Fellow {i + 1:03d}", discipline=f"{field} {i // len(_FIELDS) + 1}",
            voice=f"Writes from {field.lower()}: concrete, brief, one surprising fact.", origin=PersonaOrigin.CUSTOM,
        ))  # fmt: skip
        i += 1
    return tuple(out)


def bench_book(
    n: int,
    *,
    base_url: str | None,
    concurrency: int = 64,
    context_window: int = 32768,
    max_tokens: int = 256,
    reserve: int = 12,
    seed: int | None = 1,
    embedder: bool = True,
) -> BookConfig:
    """A book of ``n`` agents (and ``reserve`` more waiting) on the OpenAI-compatible endpoint ``bench`` at
    ``base_url`` (``None``: the embedded model). Embeddings come from the same endpoint."""
    everyone = personas(n + reserve)
    config = load_book(None)
    endpoints = dict(config.endpoints)
    model = "embedded"
    if base_url is not None:
        endpoints["bench"] = EndpointSpec(
            name="bench", kind="openai", base_url=base_url, model="bench-model", concurrency=concurrency,
            context_window=context_window, structured_output="json_schema", max_retries=3,
        )  # fmt: skip
        model = "bench"
    return dataclasses.replace(
        config, roster=everyone[:n], reserve=everyone[n:], max_tokens=max_tokens, seed=seed, model=model,
        embedder=model if embedder else None, endpoints=endpoints,
    )  # fmt: skip
