"""Does the embedded model's vote say anything? Draft echo before/after the prompt change, and what its ballots tell.

    .venv/bin/python -m bench.embedded_judging                       # both parts, ~10 min on 2 cores
    .venv/bin/python -m bench.embedded_judging --part drafts --seeds 4
    .venv/bin/python -m bench.embedded_judging --part ballots --epochs 3 --json

**Drafts** (in process, SmolLM2-135M through the model host): the five founding personas of the default book draft
the opening chapter ``--seeds`` times each, once with the draft prompt before #11 (``BEFORE_DRAFT``, the template at
``7a93d4d``) and once with today's (``prompts/draft.j2``), same system message, seeds, cap and temperature. Per
draft:

* *echo*: the draft repeats a prompt label (``The book's topic``, ``Your voice``, ``Write chapter`` …) or any run of
  ``ECHO_WORDS`` consecutive words of the prompt's instruction and persona lines (the topic and outline, which a
  chapter may rightly quote, are left out);
* *names itself*: the draft names its persona (``Physicist``, ``physicists``; any case) — what blind review must
  not show, and what masking then has to catch;
* *names its field*: the draft names its discipline (often fair in a chapter; masked for the judges anyway);
* *cut*: the draft hit the token cap.

**Ballots** (the real tournament): ``spacetime run --epochs E --max-tokens M --seed S`` on the embedded defaults in
a throwaway data directory, then from the database: the share of ballots whose integer scores are all equal, the
share still tied after the G-Eval reading (what the verdict ranks), Krippendorff's alpha on the integers and on the
readings (with the audit's bootstrap interval), and the book-level warnings ``spacetime status --json`` gives.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import re
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import psycopg

from bench.verdicts import cli_env, spacetime
from spacetime.adapters.llm.autogen import DRAFT_TEMPERATURE
from spacetime.adapters.llm.embedded import EmbeddedModel, unload_all
from spacetime.book import load_book
from spacetime.domain import Book, Persona
from spacetime.engine.epoch import draft_prompt
from spacetime.ports import Message
from spacetime.prompts import render
from spacetime.rules.audit import AuditVote, agreement, ties, used_score
from spacetime.rules.canon import DraftContext

BEFORE_DRAFT = """The book's topic: {{ topic }}
{% if outline %}The book's outline:
{{ outline }}
{% endif %}No chapter has been written yet: you are drafting the opening.
{{ persona_prompt }}
Write chapter {{ chapter_no }}: a short title on the first line, then the chapter, continuing the book from your \
discipline. Stay well under {{ max_words }} words; drafts cut off by the length limit lose 5 points."""
"""The opening-chapter draft prompt before #11 (``git show 7a93d4d:src/spacetime/prompts/draft.j2``, no canon and
no notes: the branches an opening chapter takes)."""

LABELS = ("the book's topic", "the book's outline", "your voice", "write chapter", "you are the", "no chapter has",
          "your notes", "the previous chapter", "stay well under", "never name yourself")  # fmt: skip
ECHO_WORDS = 6
_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def echoes(draft: str, prompt: str, *, topic: str, outline: str | None) -> bool:
    """The draft repeats a label of the prompt or ``ECHO_WORDS`` consecutive words of its non-topic lines."""
    low = draft.lower()
    if any(label in low for label in LABELS):
        return True
    skip = {topic.strip(), *(outline or "").splitlines()}
    source = [w for line in prompt.splitlines() if line.strip() and line.strip() not in skip
              for w in ([*words(line), "\n"])]  # fmt: skip
    shingles = {tuple(source[i : i + ECHO_WORDS]) for i in range(len(source) - ECHO_WORDS + 1)}
    shingles = {s for s in shingles if "\n" not in s}
    drafted = words(draft)
    return any(tuple(drafted[i : i + ECHO_WORDS]) in shingles for i in range(len(drafted) - ECHO_WORDS + 1))


def names_itself(draft: str, persona: Persona) -> bool:
    """The draft names its persona ("As the Physicist", "Physicists say"), any case."""
    return re.search(rf"\b{re.escape(persona.name)}s?\b", draft, re.IGNORECASE) is not None


def names_field(draft: str, persona: Persona) -> bool:
    """The draft names its discipline (often fair: a physicist's chapter may say "physics"; masked for judges)."""
    return re.search(rf"\b{re.escape(persona.discipline)}\b", draft, re.IGNORECASE) is not None


@dataclass
class DraftTally:
    drafts: int = 0
    echo: int = 0
    self_naming: int = 0
    field_naming: int = 0
    cut: int = 0
    words: list[int] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        n = self.drafts or 1
        return {"drafts": self.drafts, "echo": self.echo / n, "self_naming": self.self_naming / n,
                "field_naming": self.field_naming / n, "cut": self.cut / n,
                "median_words": statistics.median(self.words) if self.words else 0}  # fmt: skip


async def drafts_part(seeds: int, max_tokens: int) -> dict[str, dict[str, Any]]:
    config = dataclasses.replace(load_book(None), max_tokens=max_tokens)
    book = Book(uuid.uuid4(), "bench", config.topic, config.outline, {})
    opening = DraftContext(previous=None, passages=(), retrieved=False)
    system = render("system.j2").strip()
    before = jinja2.Template(BEFORE_DRAFT)
    model = EmbeddedModel()
    tallies = {"before": DraftTally(), "after": DraftTally()}
    max_words = max(20, int(max_tokens * 0.6))
    try:
        for seed in range(1, seeds + 1):
            for persona in config.roster:
                args = {"topic": config.topic, "outline": config.outline, "chapter_no": 1,
                        "persona_prompt": persona.system_prompt, "max_words": max_words}  # fmt: skip
                prompts = {
                    "before": before.render(**args),
                    "after": draft_prompt(persona, book=book, config=config, context=opening, epoch_no=1, memory=()),
                }
                for variant, prompt in prompts.items():
                    messages = [Message("system", system), Message("user", prompt)]
                    done = await model.complete(messages, max_tokens=max_tokens, temperature=DRAFT_TEMPERATURE,
                                                seed=seed)  # fmt: skip
                    tally = tallies[variant]
                    tally.drafts += 1
                    tally.echo += echoes(done.text, prompt, topic=config.topic, outline=config.outline)
                    tally.self_naming += names_itself(done.text, persona)
                    tally.field_naming += names_field(done.text, persona)
                    tally.cut += done.finish_reason.value == "length"
                    tally.words.append(len(done.text.split()))
                print(f"  drafts: seed {seed}, {persona.name} done", file=sys.stderr)
    finally:
        await model.aclose()
        unload_all()
    return {k: t.row() for k, t in tallies.items()}


def ballots_part(epochs: int, max_tokens: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="spacetime-embedded-judging-") as tmp:
        env = cli_env(Path(tmp) / "data", None, None)
        played = spacetime("run", "--epochs", str(epochs), "--max-tokens", str(max_tokens), "--seed", str(seed),
                           env=env)  # fmt: skip
        if played.returncode != 0:
            raise SystemExit(f"spacetime run failed ({played.returncode}): {played.stderr.strip()[-500:]}")
        status = json.loads(spacetime("status", "--json", env=env).stdout)
        url = spacetime("db", "url", env=env).stdout.strip()
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT e.epoch_no, v.voter_agent_id, v.target_agent_id, v.insight_score, v.expected_score "
                "FROM peer_votes v JOIN simulation_epochs e USING (epoch_id) ORDER BY e.epoch_no"
            ).fetchall()
            statuses = conn.execute("SELECT status, count(*) FROM ballots GROUP BY status").fetchall()
        spacetime("db", "stop", env=env)
    written = [AuditVote(v, t, float(s), epoch=e) for e, v, t, s, _ in rows]
    ranked = [AuditVote(v, t, used_score(s, x), epoch=e, given=None if x is None else s) for e, v, t, s, x in rows]
    scores = [s for _, _, _, s, _ in rows]
    tied = ties(ranked)

    def alpha(votes: list[AuditVote]) -> dict[str, Any]:
        a = agreement(votes, rng=random.Random(seed))
        return {"alpha": a.alpha, "ci": [a.ci_low, a.ci_high], "chance_level": a.chance_level, "reason": a.reason}

    book = status["books"][0] if "books" in status else status
    judging = book.get("judging") or {}
    return {
        "epochs": epochs, "votes": len(rows), "ballots": tied.ballots,
        "ballot_statuses": {s: n for s, n in statuses},
        "with_g_eval": sum(1 for r in rows if r[4] is not None),
        "tied_written": tied.written_share, "tied_ranked": tied.ranked_share,
        "integer_scores": {str(k): scores.count(k) for k in sorted(set(scores))},
        "alpha_written": alpha(written), "alpha_ranked": alpha(ranked),
        "warnings": judging.get("warnings", []),
    }  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    out = []
    if "drafts" in result:
        out += ["| draft prompt | drafts | echo | names itself | names its field | cut by the cap | median words |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for variant, r in result["drafts"].items():
            out.append(f"| {variant} | {r['drafts']} | {r['echo']:.0%} | {r['self_naming']:.0%} | "
                       f"{r['field_naming']:.0%} | {r['cut']:.0%} | {r['median_words']} |")  # fmt: skip
    if "ballots" in result:
        b = result["ballots"]

        def a(x: dict[str, Any]) -> str:
            if x["alpha"] is None:
                return f"undefined ({x['reason']})"
            low, high = x["ci"]
            ci = "" if low is None else f" [{low:.2f}, {high:.2f}]"
            return f"{x['alpha']:.2f}{ci}" + (" — chance level" if x["chance_level"] else "")

        out += ["", f"Ballots: {b['ballots']} over {b['epochs']} epochs, {b['votes']} votes "
                    f"({b['with_g_eval']} with a G-Eval reading); statuses {b['ballot_statuses']}; "
                    f"integer scores written {b['integer_scores']}.", "",
                "| figure | integers as written | as the verdict ranks them (G-Eval) |", "| --- | ---: | ---: |",
                f"| ballots scoring every draft alike | {b['tied_written']:.0%} | {b['tied_ranked']:.0%} |",
                f"| Krippendorff's alpha [95 % CI] | {a(b['alpha_written'])} | {a(b['alpha_ranked'])} |",
                "", "Book-level warnings: " + ("; ".join(b["warnings"]) or "none")]  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.embedded_judging", description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("drafts", "ballots", "both"), default="both")
    parser.add_argument("--seeds", type=int, default=4, help="drafts per persona and prompt (default 4)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the real tournament (default 3)")
    parser.add_argument("--max-tokens", type=int, default=200, help="draft cap (default 200)")
    parser.add_argument("--seed", type=int, default=9, help="the tournament's seed (default 9)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown tables")
    opts = parser.parse_args(argv)
    result: dict[str, Any] = {}
    if opts.part in ("drafts", "both"):
        result["drafts"] = asyncio.run(drafts_part(opts.seeds, opts.max_tokens))
    if opts.part in ("ballots", "both"):
        result["ballots"] = ballots_part(opts.epochs, opts.max_tokens, opts.seed)
    print(json.dumps(result, indent=2, default=str) if opts.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
