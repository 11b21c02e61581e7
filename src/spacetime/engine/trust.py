"""Which model endpoints a process may call: the database is not trusted to choose them.

A book's settings are stored with it (``books.config``), endpoints included, and a model call a fleet worker takes
from the queue carries its endpoint too (the ``dbos`` schema). Anyone who can write one of those rows could point
an endpoint at any URL with ``api_key_env`` naming any environment variable, and have the process that builds the
model send that variable as a bearer token. So an endpoint that *reaches out* — an ``openai`` endpoint (a network
call, maybe a key), or an ``embedded`` one with a model file path — is built only when it comes from a file or flag
given on this machine (a book file, ``spacetime worker --endpoints FILE``), or when the user says the database is
trusted (``--trust-stored-endpoints``). The package-shipped embedded model reaches nothing and is always allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from spacetime.book import BookConfig, EndpointSpec
from spacetime.errors import ConfigError

TRUST_FLAG = "--trust-stored-endpoints"


def reaches_out(spec: EndpointSpec) -> bool:
    """Whether building ``spec`` makes network calls, reads an environment variable or opens a file path."""
    return spec.kind != "embedded" or spec.model is not None or bool(spec.api_key_env)


def describe(spec: EndpointSpec) -> str:
    """``vllm (http://…/v1, key from $VLLM_API_KEY)``: what a stored endpoint would reach."""
    where = spec.base_url or ", ".join(spec.base_urls) or ("api.openai.com" if spec.kind == "openai" else "")
    parts = [where] if where else []
    if spec.kind == "embedded" and spec.model is not None:
        parts.append(f"model file {spec.model}")
    if spec.api_key_env:
        parts.append(f"key from ${spec.api_key_env}")
    return f"{spec.name} ({', '.join(parts)})"


@dataclass(frozen=True, slots=True)
class EndpointTrust:
    """What this process may build: endpoints given locally, and stored ones only when ``stored`` is set."""

    stored: bool = False
    """``--trust-stored-endpoints``: build whatever the database says (a database only trusted users write)."""
    local: Mapping[str, EndpointSpec] = field(default_factory=dict)
    """Endpoints defined on this machine (a book file, ``--endpoints FILE``): they replace stored ones by name."""

    def admit(self, spec: EndpointSpec, *, where: str) -> EndpointSpec:
        """The endpoint to build for ``spec`` read from the database: the local one of that name, ``spec`` itself
        when it reaches nothing or stored endpoints are trusted. Raises ``ConfigError`` otherwise."""
        local = self.local.get(spec.name)
        if local is not None:
            return local
        if self.stored or not reaches_out(spec):
            return spec
        raise ConfigError(
            f"{where} names endpoint {describe(spec)}, read from the database, which is not trusted to choose "
            f"endpoints or keys: give the book file again, or pass {TRUST_FLAG} if only trusted users can write "
            "to this database"
        )

    def book(self, config: BookConfig, *, where: str) -> BookConfig:
        """``config`` (read from the database) with every endpoint admitted; ``ConfigError`` names the first one
        that is not, so nothing is built and nothing is called."""
        endpoints = {name: self.admit(spec, where=where) for name, spec in config.endpoints.items()}
        return dataclasses.replace(config, endpoints=endpoints)
