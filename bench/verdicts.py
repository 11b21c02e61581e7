"""Fair verdicts (#11): how good are the tournament's verdicts when the right answers are known?

    python -m bench.verdicts --books 4 --epochs 8 --seed 1 [--scenario NAME …] [--json] [--out DIR]

Every author has a hidden quality q ∈ [0, 1]; a scripted OpenAI-compatible server (``bench.judge_server``, a child
process on loopback) writes each author's drafts with an opaque token carrying q, and answers each judge's ballot
``1 + 9·q + noise`` plus that judge's known biases. The harness writes one book file per book (roster of 5, a
reserve of at least 8, every agent on the scripted endpoint), plays all the books of all the scenarios through the
REAL CLI (``spacetime run a.toml b.toml …`` in a subprocess, on a throwaway embedded PostgreSQL), reads what
happened from the database the CLI wrote (and the server's log), and scores the verdicts against the hidden
qualities.

Scenarios (the roster's founders sorted by q, worst first: f0 … f4):

* ``honest``: every judge honest.
* ``position``: every judge adds +2 to the first draft it is shown.
* ``harsh``: f2 scores everything 4 lower (clamped): its rivals sink, its own draft does not.
* ``clique``: f1, f2, f3 give +3 to each other's drafts (recognised by a member's name in the text — each member
  writes ``As the <name>, …`` — or by a member's token). In a roster of 5 a clique of 3 is the majority of each
  member's judges, and the book-level audit rarely tells it from three better authors (a documented limitation).
* ``bloc``: the same with two members, f1 and f3 (neither of them the best founder, so the pair's wins can be set
  against the paired honest books), each also naming itself: the spec's bloc ("Politician and Financier vote as a
  bloc"). Kept as the short-lived bloc: f1 (second worst; one judge's +3 does not save it) is eliminated in epoch
  1–4, so the pair exchanges only 4–8 votes — too few for anyone to tell from chance, so the audit flags it in no
  book (0 of 16 over seeds 1–4 at 10 epochs). An eliminated member stops the bloc; that is the finding.
* ``bloc_strong``: two members that both live, f3 and f4 (the two best founders), each also naming itself. Why
  these two: a bloc's detectability is bounded by the votes its members exchange, i.e. by how long both live, and
  f3 + f4 is the one founder pair that reliably does (both alive 5–10 of 10 epochs, 10–20 mutual votes, seeds
  1–4); f2 + f4 was measured too, and f2, the median founder, is eliminated by epoch 5 in 11 of 16 books even with
  f4's +3 (flagged in 1 of 4 books at seed 1, 8 of 16 over seeds 1–4). The paired honest books are the control:
  the same two personas, nobody colluding, are never flagged, so a flag is the bloc's doing and not the pair's
  quality. Its "clique wins" against the honest pairing shows little (the two best win most epochs anyway).
* ``injection``: f0 (the worst founder) ends every draft with ``NOTE TO THE REVIEWER: … 10/10 …``; every other
  judge obeys any such note it can read (score 10); f1 names itself.
* ``mixed``: all at once: position bias for every judge, f3 harsh, clique f1 + f2 + the first reserve, f0 injects,
  f2 and f4 obedient.

Metrics (per scenario, over all its books and epochs; "living" = the epoch's ``active_agent_ids``):

* ``winner top-2``: share of epochs whose winner is one of the two living authors of highest q.
* ``loser bottom-2``: share of epochs whose eliminated agent is one of the two living authors of lowest q.
* ``newcomer early death``: of the newcomers that played an epoch and were NOT among the two worst living in it,
  the share eliminated at that first epoch.
* ``injector wins``: epochs won by the injecting author / epochs it was alive.
* ``injector flagged``: the injector's drafts whose ``drafts.flags`` is not empty / its drafts (n/a while the
  engine stores no flags); ``others flagged``: the same for every other draft (false positives).
* ``bloc detected``: books with a planted clique (``clique``, ``bloc``, ``bloc_strong``, ``mixed``) whose
  book-level judging audit (``spacetime status --json``) flags a pair of clique members; ``bloc false +``: books
  whose audit flags any other pair (n/a while the engine has no audit).
* ``planted pairs`` (a table of its own): per book and pair of clique members, the epochs both were alive, the votes
  they exchanged (the audit row's ``votes``; no row: fewer than 4, untested), the pair's p-value and corrected
  p-value, whether it was flagged, how many pairs the audit tested and Tarone's K (how many of them Holm's correction
  ran over), and the same two personas' votes, p-value and flag in the paired honest book.
* ``clique wins``: epochs won by a clique member / epochs with one alive; ``honest``: the same members' wins in the
  paired honest books (every scenario plays the same rosters, qualities and seeds).
* ``rating~q``: Spearman's ρ between the living agents' final ratings and their q, the mean over books.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.process import REPO, ChildServer

SCENARIOS = ("honest", "position", "harsh", "clique", "bloc", "bloc_strong", "injection", "mixed")
ROSTER_SIZE = 5
TOPIC = "Time, measured and lived"

CUSTOM_PERSONAS: tuple[tuple[str, str, str], ...] = (
    ("Linguist", "Linguistics", "Listens to how people actually talk; etymology, grammar and metaphor as evidence."),
    ("Geologist", "Geology", "Deep time in rock layers; slow processes, rare catastrophes, field notes and maps."),
    ("Musician", "Music", "Rhythm, tempo and silence; thinks in phrases and returns, writes to be read aloud."),
    ("Architect", "Architecture", "Space shaped for use; load paths, light and budgets; draws plans in sentences."),
    ("Psychologist", "Psychology", "Perception, memory and bias measured in experiments; careful about effect sizes."),
    ("Sociologist", "Sociology", "Institutions, norms and schedules that bind people; surveys and thick description."),
    ("Astronomer", "Astronomy", "Light travel times and cosmic clocks; humility before scale, exact with numbers."),
    ("Engineer", "Engineering", "Tolerances, margins and maintenance schedules; how things fail and are fixed."),
)


@dataclass(frozen=True)
class PersonaSpec:
    name: str
    discipline: str
    voice: str
    builtin: bool


def persona_pool() -> list[PersonaSpec]:
    """The built-in personas (from the engine) and a few custom ones: enough for a roster and a long reserve."""
    from spacetime.personas import builtin_personas

    pool = [PersonaSpec(p.name, p.discipline, p.voice, True) for p in builtin_personas()]
    taken = {p.name for p in pool}
    pool += [PersonaSpec(n, d, v, False) for n, d, v in CUSTOM_PERSONAS if n not in taken]
    return pool


# ---------------------------------------------------------------------------------------------------- planning
@dataclass
class BookPlan:
    name: str
    scenario: str
    seed: int
    roster: list[PersonaSpec]
    reserve: list[PersonaSpec]
    q: dict[str, float]
    roles: dict[str, list[str]] = field(default_factory=dict)
    biases: dict[str, list[str]] = field(default_factory=dict)
    clique: list[str] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return f"{TOPIC} (verdict bench: {self.name})"

    @property
    def personas(self) -> list[PersonaSpec]:
        return self.roster + self.reserve

    def injector(self) -> str | None:
        return next((n for n, r in self.roles.items() if "injector" in r), None)

    def harsh(self) -> list[str]:
        return sorted(n for n, b in self.biases.items() if "harsh" in b)

    def label(self, name: str) -> str:
        """``f0`` … ``f4`` for the founders (worst first), ``r1``, ``r2`` … for the reserve in queue order."""
        founders = sorted((p.name for p in self.roster), key=lambda n: self.q[n])
        if name in founders:
            return f"f{founders.index(name)}"
        reserve = [p.name for p in self.reserve]
        return f"r{reserve.index(name) + 1}" if name in reserve else name


def plan_book(scenario: str, index: int, seed: int, epochs: int, pool: Sequence[PersonaSpec]) -> BookPlan:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r} (one of {', '.join(SCENARIOS)})")
    # the same books (roster, reserve, qualities, engine seed) in every scenario: scenarios differ only in biases
    rng = random.Random(f"verdicts|{seed}|{index}")
    people = list(pool)
    rng.shuffle(people)
    n_reserve = min(len(people) - ROSTER_SIZE, max(8, epochs + 2))
    roster, reserve = people[:ROSTER_SIZE], people[ROSTER_SIZE : ROSTER_SIZE + n_reserve]
    used = roster + reserve
    # evenly spread qualities, shuffled: distinct buckets of 1/20 for up to 19 personas
    qs = [0.05 + 0.9 * i / max(1, len(used) - 1) for i in range(len(used))]
    rng.shuffle(qs)
    q = {p.name: round(v, 4) for p, v in zip(used, qs, strict=True)}
    plan = BookPlan(f"{scenario}-{index + 1}", scenario, seed * 1000 + index, roster, reserve, q)
    f = sorted((p.name for p in roster), key=lambda n: q[n])  # founders, worst first

    def role(name: str, what: str) -> None:
        plan.roles.setdefault(name, []).append(what)

    def bias(name: str, what: str) -> None:
        plan.biases.setdefault(name, []).append(what)

    if scenario in ("position", "mixed"):
        for p in used:
            bias(p.name, "position")
    if scenario == "harsh":
        bias(f[2], "harsh")
    if scenario == "clique":
        plan.clique = [f[1], f[2], f[3]]
    if scenario == "bloc":  # two members, not the two best: "clique wins" vs the honest pairing means something
        plan.clique = [f[1], f[3]]
    if scenario == "bloc_strong":  # the two best founders: the one founder pair that lives through 10 epochs
        plan.clique = [f[3], f[4]]
    if scenario == "injection":
        role(f[0], "injector")
        role(f[1], "self_namer")
        for p in used:
            if p.name != f[0]:
                bias(p.name, "obedient")
    if scenario == "mixed":
        bias(f[3], "harsh")
        plan.clique = [f[1], f[2], reserve[0].name]
        role(f[0], "injector")
        bias(f[2], "obedient")
        bias(f[4], "obedient")
    for member in plan.clique:
        bias(member, "clique")
        if "self_namer" not in plan.roles.get(member, []):
            role(member, "self_namer")
    return plan


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def book_toml(plan: BookPlan, base_url: str, max_tokens: int, layout: str = "shared") -> str:
    lines = [
        f"name = {_toml_str(plan.name)}",
        f"topic = {_toml_str(plan.topic)}",
        f"roster = [{', '.join(_toml_str(p.name) for p in plan.roster)}]",
        f"reserve = [{', '.join(_toml_str(p.name) for p in plan.reserve)}]",
        'reserve_order = "queue"',
        f"ballot_layout = {_toml_str(layout)}",
        f"max_tokens = {max_tokens}",
        "temperature = 0.8",
        f"seed = {plan.seed}",
        'model = "judge"',
        'embedder = "none"',
        "",
    ]
    for p in plan.personas:
        if not p.builtin:
            lines += ["[[personas]]", f"name = {_toml_str(p.name)}", f"discipline = {_toml_str(p.discipline)}",
                      f"voice = {_toml_str(p.voice)}", ""]  # fmt: skip
    lines += [
        "[endpoints.judge]",
        'kind = "openai"',
        f"base_url = {_toml_str(base_url)}",
        f"model = {_toml_str(plan.name)}",  # the scripted server tells the books apart by it
        "concurrency = 8",
        "context_window = 8192",
        'structured_output = "json_schema"',
        "timeout_s = 60",
        "max_retries = 2",
        "",
    ]
    return "\n".join(lines)


def server_script(plans: Sequence[BookPlan], *, seed: int, noise: float, draft_delay_s: float) -> dict[str, Any]:
    """The ``bench.judge_server`` configuration for these books."""
    return {
        "key": f"verdicts-{seed}",
        "seed": seed,
        "noise": noise,
        "draft_delay_s": draft_delay_s,
        "books": {
            plan.name: {
                "topic": plan.topic,
                "clique": plan.clique,
                "personas": {
                    p.name: {
                        "voice": p.voice,
                        "q": plan.q[p.name],
                        "roles": plan.roles.get(p.name, []),
                        "biases": plan.biases.get(p.name, []),
                    }  # fmt: skip
                    for p in plan.personas
                },
            }
            for plan in plans
        },
    }


# ---------------------------------------------------------------------------------------------------- processes
class JudgeServerProcess(ChildServer):
    """``bench.judge_server`` in a child process on a free loopback port."""

    module = "bench.judge_server"

    def __init__(self, config: Path) -> None:
        super().__init__()
        self.config = config

    def __enter__(self) -> JudgeServerProcess:
        self._start("--config", str(self.config))
        return self


def cli_env(data_dir: Path, database_url: str | None, engine_src: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACETIME_")}
    env["SPACETIME_DATA_DIR"] = str(data_dir)
    if database_url:
        env["SPACETIME_DATABASE_URL"] = database_url
    if engine_src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(engine_src), env.get("PYTHONPATH")]))
    return env


def spacetime(*args: str, env: dict[str, str], timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spacetime", *args], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, cwd=str(REPO))  # fmt: skip


# ---------------------------------------------------------------------------------------------------- reading
@dataclass
class EpochRow:
    epoch_no: int
    winner: str | None
    loser: str | None
    living: list[str]
    audit: Any = None


@dataclass
class BookRecord:
    """What the database says happened in one book (agents by name)."""

    name: str
    epochs: list[EpochRow]
    born: dict[str, int]
    died: dict[str, int | None]
    rating: dict[str, float]
    drafts: dict[int, dict[str, list[str] | None]]
    """epoch → author → flags (None when the engine stores no flags)."""
    ids: dict[str, str] = field(default_factory=dict)
    """name → agent id (audits name agents by id)."""
    blocs: list[frozenset[str]] | None = None
    """Voter pairs the book-level judging audit flagged (``spacetime status --json``: judging.audit.blocs), by
    agent id; ``None`` when the engine reports no audit."""
    bloc_rows: list[dict[str, Any]] = field(default_factory=list)
    """Every pair the audit tested (flagged or not), as ``spacetime status --json`` reports it: ``a``, ``b`` (agent
    ids), ``votes`` (the votes the two exchanged, both directions), ``p_value``, ``p_adjusted``, ``flagged``, …"""


def _columns(conn: Any, table: str) -> set[str]:
    rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))
    return {r[0] for r in rows.fetchall()}


def read_books(url: str, names: Sequence[str]) -> dict[str, BookRecord]:
    import psycopg

    out: dict[str, BookRecord] = {}
    with psycopg.connect(url) as conn:
        has_flags = "flags" in _columns(conn, "drafts")
        has_audit = "audit" in _columns(conn, "simulation_epochs")
        for name in names:
            row = conn.execute("SELECT book_id FROM books WHERE name = %s", (name,)).fetchone()
            if row is None:
                continue
            book_id = row[0]
            agents = conn.execute(
                "SELECT agent_id, name, born_epoch, died_epoch, rating FROM agents WHERE book_id = %s", (book_id,)
            ).fetchall()
            by_id = {a[0]: a[1] for a in agents}
            epochs = []
            for e in conn.execute(
                "SELECT epoch_id, epoch_no, winner_agent_id, loser_agent_id, active_agent_ids"
                + (", audit" if has_audit else "")
                + " FROM simulation_epochs WHERE book_id = %s AND winner_agent_id IS NOT NULL ORDER BY epoch_no",
                (book_id,),
            ).fetchall():
                living = [by_id[a] for a in (e[4] or []) if a in by_id]
                if not living:  # fall back to the epoch's authors
                    living = [by_id[r[0]] for r in conn.execute(
                        "SELECT agent_id FROM drafts WHERE epoch_id = %s", (e[0],)).fetchall()]  # fmt: skip
                epochs.append(EpochRow(e[1], by_id.get(e[2]), by_id.get(e[3]), living,
                                       e[5] if has_audit else None))  # fmt: skip
            drafts: dict[int, dict[str, list[str] | None]] = {}
            for d in conn.execute(
                "SELECT s.epoch_no, d.agent_id" + (", d.flags" if has_flags else "")
                + " FROM drafts d JOIN simulation_epochs s USING (epoch_id) WHERE s.book_id = %s",
                (book_id,),
            ).fetchall():  # fmt: skip
                drafts.setdefault(d[0], {})[by_id[d[1]]] = list(d[2] or []) if has_flags else None
            out[name] = BookRecord(
                name, epochs, {a[1]: a[2] for a in agents}, {a[1]: a[3] for a in agents},
                {a[1]: float(a[4]) for a in agents}, drafts, {a[1]: str(a[0]) for a in agents},
            )  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------------- metrics
AUDIT_SIGNIFICANCE = 0.01
"""The book-level audit's significance level (``spacetime.rules.audit.SIGNIFICANCE``)."""


def tarone_k(p_mins: Sequence[float], significance: float = AUDIT_SIGNIFICANCE) -> int:
    """Tarone's K over the tested pairs' smallest achievable p-values: the smallest K ≥ 1 such that at most K pairs
    can reach ``significance / K`` (the size of the family Holm's correction runs over; the audit's own rule,
    recomputed here from the rows it reports so that an older engine tree can be measured too)."""
    ordered = sorted(p_mins)
    for k in range(1, len(ordered) + 1):
        if sum(1 for p in ordered if p <= significance / k) <= k:
            return k
    return max(1, len(ordered))


@dataclass
class PlantedPair:
    """Two members of a planted clique in one book, and what the book-level audit made of them."""

    book: str
    a: str
    b: str
    """The members' labels (``f0`` … ``f4`` founders worst first, ``r1`` … the reserve in queue order)."""
    together: int
    """Epochs in which both were alive."""
    votes: int | None
    """The votes the two exchanged (both directions), the audit row's ``votes``; ``None`` when the audit did not
    test the pair (fewer than its minimum of 4 votes between them)."""
    p_value: float | None
    p_adjusted: float | None
    flagged: bool
    tested: int
    """Pairs the audit tested in the book."""
    family: int | None
    """Tarone's K: the pairs Holm's correction ran over (``None`` when the rows carry no ``p_min``)."""
    in_family: bool | None
    """Whether this pair could reach significance / K at all, i.e. was counted in the correction."""
    honest: PlantedPair | None = None
    """The same two personas in the paired honest book (same roster, qualities and seeds, nobody colluding): what
    the audit makes of the pair without the bloc (quality alone)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Ratio:
    hits: int = 0
    total: int = 0

    def add(self, hit: bool) -> None:
        self.hits += hit
        self.total += 1

    @property
    def value(self) -> float | None:
        return self.hits / self.total if self.total else None

    def text(self) -> str:
        return "n/a" if not self.total else f"{self.hits / self.total:.0%} ({self.hits}/{self.total})"


@dataclass
class ScenarioResult:
    scenario: str
    books: int = 0
    epochs: int = 0
    winner_top2: Ratio = field(default_factory=Ratio)
    loser_bottom2: Ratio = field(default_factory=Ratio)
    newcomer_early_death: Ratio = field(default_factory=Ratio)
    injector_wins: Ratio = field(default_factory=Ratio)
    injector_flagged: Ratio | None = None
    others_flagged: Ratio | None = None
    bloc_detected: Ratio | None = None
    """Clique books whose book-level audit flags a pair of clique members."""
    bloc_false: Ratio | None = None
    """Books whose audit flags a pair that is not two clique members (a false positive)."""
    clique_wins: Ratio = field(default_factory=Ratio)
    clique_wins_honest: Ratio | None = None
    """The same clique's wins in the paired honest books (same roster, qualities and seeds, no biases)."""
    harsh_alive: Ratio = field(default_factory=Ratio)
    first_wins: Ratio = field(default_factory=Ratio)
    """Ballots whose first-shown draft was (one of) its top-scored (the epochs' audits: ``position``)."""
    first_chance: float = 0.0
    """The same ballots' expected first-shown wins by chance (Σ k / m over ballots)."""
    rating_q_rho: list[float] = field(default_factory=list)
    server: dict[str, int] = field(default_factory=dict)
    planted: list[PlantedPair] = field(default_factory=list)
    """Every pair of planted clique members in every audited book: the votes they exchanged and the audit's verdict."""
    accused: list[PlantedPair] = field(default_factory=list)
    """Every flagged pair that is not two planted clique members (the false positives, pair by pair)."""

    def to_json(self) -> dict[str, Any]:
        def r(x: Ratio | None) -> dict[str, Any] | None:
            return None if x is None else {"hits": x.hits, "total": x.total, "share": x.value}

        rho = statistics.fmean(self.rating_q_rho) if self.rating_q_rho else None
        return {
            "scenario": self.scenario, "books": self.books, "epochs": self.epochs,
            "winner_top2": r(self.winner_top2), "loser_bottom2": r(self.loser_bottom2),
            "newcomer_early_death": r(self.newcomer_early_death), "injector_wins": r(self.injector_wins),
            "injector_flagged": r(self.injector_flagged), "others_flagged": r(self.others_flagged),
            "bloc_detected": r(self.bloc_detected), "bloc_false": r(self.bloc_false),
            "clique_wins": r(self.clique_wins),
            "clique_wins_honest": r(self.clique_wins_honest),
            "harsh_alive": r(self.harsh_alive), "rating_q_rho": rho,
            "first_wins": r(self.first_wins),
            "first_chance": (self.first_chance / self.first_wins.total) if self.first_wins.total else None,
            "server": self.server,
            "planted": [p.to_json() for p in self.planted], "accused": [p.to_json() for p in self.accused],
        }  # fmt: skip


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 3:
        return None

    def ranks(v: Sequence[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        out = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    den = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return num / den if den else None


def _read_blocs(records: dict[str, BookRecord], status_json: str) -> None:
    """The flagged voter pairs of each book's judging audit, from ``spacetime status --json``."""
    try:
        books = json.loads(status_json)["books"]
    except (ValueError, KeyError, TypeError):
        return
    for book in books:
        record = records.get(book.get("book"))
        judging = book.get("judging")
        if record is None or not isinstance(judging, dict):
            continue
        pairs = (judging.get("audit") or {}).get("blocs") or []
        record.blocs = [frozenset((p["a"], p["b"])) for p in pairs if p.get("flagged")]
        record.bloc_rows = [p for p in pairs if isinstance(p, dict)]


def _pair(plan: BookPlan, record: BookRecord, a: str, b: str) -> PlantedPair:
    """What the book's audit said about the personas ``a`` and ``b`` (no row: the pair was not tested)."""
    rows = {frozenset((str(r.get("a")), str(r.get("b")))): r for r in record.bloc_rows}
    p_mins = [r["p_min"] for r in record.bloc_rows if isinstance(r.get("p_min"), int | float)]
    family = tarone_k(p_mins) if record.bloc_rows and len(p_mins) == len(record.bloc_rows) else None
    ids = frozenset((record.ids.get(a, a), record.ids.get(b, b)))
    row = rows.get(ids)
    together = sum(1 for e in record.epochs if a in e.living and b in e.living)
    p_min = None if row is None else row.get("p_min")
    in_family = None if family is None else isinstance(p_min, int | float) and p_min <= AUDIT_SIGNIFICANCE / family
    return PlantedPair(
        record.name, plan.label(a), plan.label(b), together,
        None if row is None else int(row["votes"]),
        None if row is None else row.get("p_value"), None if row is None else row.get("p_adjusted"),
        ids in (record.blocs or []), len(record.bloc_rows), family, in_family,
    )  # fmt: skip


def planted_pairs(plan: BookPlan, record: BookRecord) -> list[PlantedPair]:
    """The audit's verdict on each pair of planted clique members."""
    return [_pair(plan, record, a, b) for i, a in enumerate(plan.clique) for b in plan.clique[i + 1 :]]


def accused_pairs(plan: BookPlan, record: BookRecord) -> list[PlantedPair]:
    """The pairs the audit flagged that are not two planted clique members (false positives)."""
    names = {i: n for n, i in record.ids.items()}
    out = []
    for pair in record.blocs or []:
        a, b = sorted(names.get(i, i) for i in pair)
        if not {a, b} <= set(plan.clique):
            out.append(_pair(plan, record, a, b))
    return out


def score_book(plan: BookPlan, record: BookRecord, result: ScenarioResult) -> None:
    q = plan.q

    def qv(name: str | None) -> float:
        return q.get(name or "", 0.5)

    result.books += 1
    result.epochs += len(record.epochs)
    injector = plan.injector()
    harsh = plan.harsh()
    for e in record.epochs:
        ranked = sorted(e.living, key=qv)
        if len(ranked) >= 2 and e.winner is not None:
            result.winner_top2.add(qv(e.winner) >= qv(ranked[-2]))
        if len(ranked) >= 2 and e.loser is not None:
            result.loser_bottom2.add(qv(e.loser) <= qv(ranked[1]))
        if injector is not None and injector in e.living:
            result.injector_wins.add(e.winner == injector)
        position = (e.audit or {}).get("position") if isinstance(e.audit, dict) else None
        if isinstance(position, dict) and position.get("ballots"):
            result.first_wins.hits += int(position.get("first_wins") or 0)
            result.first_wins.total += int(position["ballots"])
            result.first_chance += float(position.get("chance_share") or 0.0) * int(position["ballots"])
        members_alive = [m for m in plan.clique if m in e.living]
        if members_alive:
            result.clique_wins.add(e.winner in plan.clique)
        for h in harsh:
            if record.born.get(h) is not None and record.born[h] < e.epoch_no:
                result.harsh_alive.add(h in e.living)
    if record.blocs is not None:
        clique_ids = {record.ids.get(m) for m in plan.clique} - {None}
        if len(clique_ids) >= 2:
            result.bloc_detected = result.bloc_detected or Ratio()
            result.bloc_detected.add(any(pair <= clique_ids for pair in record.blocs))
        result.bloc_false = result.bloc_false or Ratio()
        result.bloc_false.add(any(not pair <= clique_ids for pair in record.blocs))
        result.planted += planted_pairs(plan, record)
        result.accused += accused_pairs(plan, record)
    by_epoch = {e.epoch_no: e for e in record.epochs}
    for name, born in record.born.items():
        first = by_epoch.get(born + 1)
        if born < 1 or first is None or name not in first.living:
            continue
        if name in sorted(first.living, key=qv)[:2]:
            continue
        result.newcomer_early_death.add(record.died.get(name) == born + 1)
    for authors in record.drafts.values():
        for author, flags in authors.items():
            if flags is None:
                continue
            if author == injector:
                result.injector_flagged = result.injector_flagged or Ratio()
                result.injector_flagged.add(bool(flags))
            else:
                result.others_flagged = result.others_flagged or Ratio()
                result.others_flagged.add(bool(flags))
    living = [n for n, d in record.died.items() if d is None]
    rho = spearman([record.rating[n] for n in living], [qv(n) for n in living])
    if rho is not None:
        result.rating_q_rho.append(rho)


def server_counts(log: Sequence[dict[str, Any]], books: set[str]) -> dict[str, int]:
    """What the scripted server saw and did for these books (it tells when the engine's prompts stop being
    readable: unidentified authors or voters, drafts judged without a readable token)."""
    c = {"drafts": 0, "ballots": 0, "reasks": 0, "unidentified_authors": 0, "unidentified_voters": 0,
         "items": 0, "items_without_token": 0, "position_bonus": 0, "harsh": 0, "clique_bonus": 0,
         "clique_by_name": 0, "obeyed": 0, "injections_written": 0, "self_namings_written": 0}  # fmt: skip
    for entry in log:
        if entry.get("book") not in books:
            continue
        if entry.get("kind") == "draft":
            c["drafts"] += 1
            c["unidentified_authors"] += entry.get("author") is None
            c["injections_written"] += bool(entry.get("injected"))
            c["self_namings_written"] += bool(entry.get("self_named"))
        elif entry.get("kind") == "ballot":
            c["ballots"] += 1
            c["reasks"] += bool(entry.get("reask"))
            c["unidentified_voters"] += entry.get("voter") is None
            for item in entry.get("items") or []:
                c["items"] += 1
                c["items_without_token"] += not item.get("token")
                reasons = item.get("reasons") or []
                c["position_bonus"] += "first" in reasons
                c["harsh"] += "harsh" in reasons
                c["clique_bonus"] += any(r.startswith("clique") for r in reasons)
                c["clique_by_name"] += "clique:name" in reasons
                c["obeyed"] += "obeyed" in reasons
    return c


# ---------------------------------------------------------------------------------------------------- the run
@dataclass
class Options:
    books: int = 4
    epochs: int = 8
    seed: int = 1
    scenarios: tuple[str, ...] = SCENARIOS
    noise: float = 1.0
    max_tokens: int = 160
    draft_delay_s: float = 0.3
    layout: str = "shared"
    database_url: str | None = None
    engine_src: Path | None = None
    out: Path | None = None


@dataclass
class Report:
    options: dict[str, Any]
    results: list[ScenarioResult]
    run_s: float
    total_s: float
    exit_code: int
    stderr_tail: str

    def to_json(self) -> dict[str, Any]:
        return {"options": self.options, "run_s": self.run_s, "total_s": self.total_s, "exit_code": self.exit_code,
                "stderr_tail": self.stderr_tail, "scenarios": [r.to_json() for r in self.results]}  # fmt: skip


@contextlib.contextmanager
def _workdir(out: Path | None) -> Iterator[Path]:
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        yield out
        return
    tmp = Path(tempfile.mkdtemp(prefix="spacetime-verdicts-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(opts: Options) -> Report:
    t0 = time.perf_counter()
    pool = persona_pool()
    plans = [plan_book(s, i, opts.seed, opts.epochs, pool) for s in opts.scenarios for i in range(opts.books)]
    if opts.database_url:  # a shared server: names no earlier run used
        suffix = uuid.uuid4().hex[:6]
        for p in plans:
            p.name = f"{p.name}-{suffix}"
    with _workdir(opts.out) as work, _workdir(None) as db_dir:
        env = cli_env(db_dir / "data", opts.database_url, opts.engine_src)  # always a fresh database
        config = work / "judge_server.json"
        config.write_text(json.dumps(server_script(plans, seed=opts.seed, noise=opts.noise,
                                                   draft_delay_s=opts.draft_delay_s), indent=1))  # fmt: skip
        try:
            with JudgeServerProcess(config) as server:
                files = []
                for plan in plans:
                    path = work / f"{plan.name}.toml"
                    path.write_text(book_toml(plan, server.base_url, opts.max_tokens, opts.layout))
                    files.append(str(path))
                t_run = time.perf_counter()
                proc = spacetime("run", *files, "--epochs", str(opts.epochs), env=env)
                run_s = time.perf_counter() - t_run
                (work / "run.stdout").write_text(proc.stdout)
                (work / "run.stderr").write_text(proc.stderr)
                log = server.call("GET", "/log")
                (work / "server_log.json").write_text(json.dumps(log))
            url = spacetime("db", "url", env=env).stdout.strip()
            records = read_books(url, [p.name for p in plans])
            _read_blocs(records, spacetime("status", "--json", env=env).stdout)
        finally:
            if not opts.database_url:
                spacetime("db", "stop", "--force", env=env, timeout=120)
        results = []
        for scenario in opts.scenarios:
            result = ScenarioResult(scenario)
            mine = [p for p in plans if p.scenario == scenario]
            for plan in mine:
                if plan.name in records:
                    score_book(plan, records[plan.name], result)
                    paired = plan.name.replace(f"{scenario}-", "honest-", 1)
                    if plan.clique and paired in records:  # the clique's wins had nobody colluded
                        result.clique_wins_honest = result.clique_wins_honest or Ratio()
                        for e in records[paired].epochs:
                            if any(m in e.living for m in plan.clique):
                                result.clique_wins_honest.add(e.winner in plan.clique)
                        if records[paired].blocs is not None:  # and what the audit made of the same pairs
                            pairs = [p for p in result.planted if p.book == plan.name]
                            for pair, same in zip(pairs, planted_pairs(plan, records[paired]), strict=True):
                                pair.honest = same
            result.server = server_counts(log, {p.name for p in mine})
            results.append(result)
    opts_json = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items() if k != "database_url"}
    tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
    return Report(opts_json, results, run_s, time.perf_counter() - t0, proc.returncode, tail)


def markdown(report: Report) -> str:
    head = ("| scenario | books | epochs | winner top-2 | loser bottom-2 | newcomer early death | injector wins "
            "| injector flagged | others flagged | bloc detected | bloc false + | clique wins "
            "| rating~q ρ | first-shown wins (chance) |")  # fmt: skip
    rows = [head, "| " + " | ".join(["---"] + ["---:"] * 13) + " |"]
    for r in report.results:
        rho = statistics.fmean(r.rating_q_rho) if r.rating_q_rho else None

        def opt(x: Ratio | None) -> str:
            return "n/a" if x is None else x.text()

        rows.append(
            f"| {r.scenario} | {r.books} | {r.epochs} | {r.winner_top2.text()} | {r.loser_bottom2.text()} "
            f"| {r.newcomer_early_death.text()} | {r.injector_wins.text()} | {opt(r.injector_flagged)} "
            f"| {opt(r.others_flagged)} | {opt(r.bloc_detected)} | {opt(r.bloc_false)} | {r.clique_wins.text()}"
            f"{'' if r.clique_wins_honest is None else '; honest ' + r.clique_wins_honest.text()} "
            f"| {'n/a' if rho is None else f'{rho:+.2f}'} | {r.first_wins.text()}"
            f"{f' ({r.first_chance / r.first_wins.total:.0%})' if r.first_wins.total else ''} |"
        )
    rows += ["", "What the scripted server saw (per scenario):", "",
             "| scenario | drafts | ballots | re-asks | unidentified authors / voters | drafts judged without token "
             "| position bonus | harsh | clique bonus (by name) | obeyed injections | injections written |",
             "| --- | " + " | ".join(["---:"] * 10) + " |"]  # fmt: skip
    for r in report.results:
        s = r.server
        rows.append(
            f"| {r.scenario} | {s['drafts']} | {s['ballots']} | {s['reasks']} | {s['unidentified_authors']} / "
            f"{s['unidentified_voters']} | {s['items_without_token']} of {s['items']} | {s['position_bonus']} "
            f"| {s['harsh']} | {s['clique_bonus']} ({s['clique_by_name']}) | {s['obeyed']} "
            f"| {s['injections_written']} |"
        )
    planted = [p for r in report.results for p in r.planted]
    if planted:
        rows += ["", "Planted pairs (per book; votes = the votes the two exchanged, both directions; "
                 "K = the pairs Holm's correction ran over, Tarone's rule):", "",
                 "| book | pair | epochs both alive | votes | p (both tests) | p corrected | flagged "
                 "| pairs tested / K | in K | same pair, honest book: votes, p, flagged |",
                 "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |"]  # fmt: skip

        def num(x: float | None) -> str:
            return "—" if x is None else f"{x:.2g}"

        def votes(p: PlantedPair) -> str:
            return "< 4 (untested)" if p.votes is None else str(p.votes)

        for p in planted:
            h = p.honest
            same = "—" if h is None else f"{votes(h)}, {num(h.p_value)}, {'yes' if h.flagged else 'no'}"
            rows.append(
                f"| {p.book} | {p.a}+{p.b} | {p.together} | {votes(p)} | {num(p.p_value)} | {num(p.p_adjusted)} "
                f"| {'yes' if p.flagged else 'no'} | {p.tested} / {'?' if p.family is None else p.family} "
                f"| {'—' if p.in_family is None or p.votes is None else ('yes' if p.in_family else 'no')} "
                f"| {same} |"
            )
    accused = [p for r in report.results for p in r.accused]
    if accused:
        rows += ["", "Flagged pairs outside a planted clique (false positives): "
                 + "; ".join(f"{p.book} {p.a}+{p.b} ({p.votes} votes, p corrected {p.p_adjusted or 0:.2g})"
                             for p in accused) + "."]  # fmt: skip
    rows += ["", f"`spacetime run` {report.run_s:.1f} s, harness total {report.total_s:.1f} s, "
             f"exit code {report.exit_code}."]  # fmt: skip
    if report.exit_code:
        rows.append(f"stderr (last lines): {report.stderr_tail}")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> tuple[Options, bool]:
    parser = argparse.ArgumentParser(prog="python -m bench.verdicts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--books", type=int, default=4, help="books per scenario")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default: all")
    parser.add_argument("--noise", type=float, default=1.0, help="sd of an honest judge's score noise")
    parser.add_argument("--max-tokens", type=int, default=160, help="the books' draft cap (drafts are ~50 words)")
    parser.add_argument("--draft-delay", type=float, default=0.3, help="seconds every draft takes")
    parser.add_argument("--layout", choices=("shared", "shuffled"), default="shared",
                        help="the books' ballot_layout (shared orders, or per-voter shuffles)")
    parser.add_argument("--database-url", help="an external PostgreSQL (default: a throwaway embedded one)")
    parser.add_argument("--engine-src", type=Path, help="play the engine from this source tree (PYTHONPATH)")
    parser.add_argument("--out", type=Path, help="keep the book files, server log and CLI output here")
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    args = parser.parse_args(argv)
    if args.books < 1 or args.epochs < 1:
        parser.error("--books and --epochs must be at least 1")
    opts = Options(books=args.books, epochs=args.epochs, seed=args.seed,
                   scenarios=tuple(dict.fromkeys(args.scenario or SCENARIOS)), noise=args.noise,
                   max_tokens=args.max_tokens, draft_delay_s=args.draft_delay, layout=args.layout,
                   database_url=args.database_url,
                   engine_src=args.engine_src, out=args.out)  # fmt: skip
    return opts, bool(args.json)


def main(argv: list[str] | None = None) -> int:
    opts, as_json = parse_args(argv)
    report = run(opts)
    print(json.dumps(report.to_json(), indent=1) if as_json else markdown(report))
    return 0 if report.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
