"""Who gets eliminated when nobody is better than anyone? ``python -m bench.newcomers --epochs 20000 --n 5 --seed 1``

Plays the pure rules (``spacetime.rules``) with ``n`` agents of equal skill: every voter scores every other draft
with a uniform random integer 1–10, no draft is late or truncated. After each epoch the loser leaves and a newcomer
takes its seat. Counts, from epoch 2 on, the share of eliminations that hit an agent playing its first epoch.

With no skill differences a fair rule eliminates any non-winner alike: the newcomer wins 1/n of the epochs and is
one of the n − 1 candidates otherwise, so the fair share is (1 − 1/n) / (n − 1) = 1/n (20 % for n = 5). The
``uniform`` line plays exactly that to check the figure.

Rules compared:

* ``old``: the rules before issue #11 — mean raw score, Elo on totals (K = 32), newcomers at 1500;
* ``new@1500``: the new verdict (within-ballot ranks, Plackett–Luce), newcomers at μ = 1500, σ = σ₀;
* ``new@mean``: the new verdict, newcomers at the living mean μ with σ = σ₀ / 2 (``entry_rating``, the rule in use);
* ``new@mean,sigma0``: the same with σ = σ₀ (too volatile a first epoch);
* ``new@mean,mean-sigma``: the same with the living agents' mean σ (too sheltered a first epoch).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

from spacetime.domain import INITIAL_RATING, INITIAL_SIGMA, Agent, Draft, FinishReason, Persona, Vote
from spacetime.rules.rating import elo_update, entry_rating
from spacetime.rules.selection import collapse, judge

Entry = Callable[[Sequence[Agent]], tuple[float, float, float]]


def _agent(rating: float, sigma: float, elo: float, born: int) -> Agent:
    persona = Persona(name=f"p{born}", discipline="d", voice="v", system_prompt="s")
    return Agent(uuid.uuid4(), persona, rating, born_epoch=born, sigma=sigma, elo=elo)


def _epoch(agents: Sequence[Agent], rng: random.Random) -> tuple[list[Draft], list[Vote]]:
    drafts = [Draft(a.agent_id, "text", FinishReason.STOP, 1, 1, 1.0) for a in agents]
    votes = [Vote(v.agent_id, t.agent_id, rng.randint(1, 10), "") for v in agents for t in agents if v is not t]
    return drafts, votes


def _old_rules(agents: list[Agent], rng: random.Random) -> tuple[uuid.UUID, uuid.UUID, dict[uuid.UUID, float]]:
    """The verdict before issue #11: mean raw score, Elo on totals, winner spared."""
    from spacetime.rules.scoring import score_drafts

    drafts, votes = _epoch(agents, rng)
    received: dict[uuid.UUID, list[int]] = {}
    for v in votes:
        received.setdefault(v.target_id, []).append(v.insight_score)
    means = {a: statistics.fmean(s) for a, s in received.items()}
    scores = {a: replace(s, total=means[a], votes=1) for a, s in score_drafts(drafts, votes, {}).items()}
    after = elo_update({a.agent_id: a.rating for a in agents}, means)
    decision = collapse(scores, after, [a.agent_id for a in agents], rng)
    return decision.winner_id, decision.loser_id, after


def play(epochs: int, n: int, seed: int, rule: str) -> float:
    """Share of eliminations (epoch 2 on) that hit a first-epoch agent under ``rule``."""
    rng = random.Random(seed)
    agents = [_agent(INITIAL_RATING, INITIAL_SIGMA, INITIAL_RATING, 0) for _ in range(n)]
    hits = counted = 0
    for epoch in range(1, epochs + 1):
        if rule == "uniform":
            winner = rng.choice(agents).agent_id
            loser = rng.choice([a for a in agents if a.agent_id != winner]).agent_id
            agents_after = agents
        elif rule == "old":
            _, loser, after = _old_rules(agents, rng)
            agents_after = [replace(a, rating=after[a.agent_id]) for a in agents]
        else:
            drafts, votes = _epoch(agents, rng)
            verdict = judge(drafts, votes, agents, rng, replicates=0)
            loser = verdict.decision.loser_id
            change = {r.agent_id: r for r in verdict.ratings}
            agents_after = [
                replace(
                    a,
                    rating=change[a.agent_id].after,
                    sigma=change[a.agent_id].sigma_after,
                    elo=change[a.agent_id].elo_after,
                )  # fmt: skip
                for a in agents
            ]
        gone = next(a for a in agents if a.agent_id == loser)
        if epoch > 1:
            counted += 1
            hits += gone.born_epoch == epoch - 1  # entered before this epoch: its first
        living = [a for a in agents_after if a.agent_id != loser]
        if rule in ("old", "new@1500"):
            rating, sigma, elo = INITIAL_RATING, INITIAL_SIGMA, INITIAL_RATING
        elif rule == "new@mean,sigma0":
            rating, _, elo = entry_rating(living)
            sigma = INITIAL_SIGMA
        elif rule == "new@mean,mean-sigma":
            rating, _, elo = entry_rating(living)
            sigma = math.fsum(a.sigma for a in living) / len(living)
        else:
            rating, sigma, elo = entry_rating(living)
        agents = [*living, _agent(rating, sigma, elo, epoch)]
    return hits / counted if counted else 0.0


RULES = ("uniform", "old", "new@1500", "new@mean", "new@mean,sigma0", "new@mean,mean-sigma")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.newcomers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20000)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rules", nargs="*", default=list(RULES), choices=RULES)
    args = parser.parse_args(argv)
    print(f"{args.n} agents, {args.epochs} epochs, seed {args.seed}; no skill differences, random votes 1-10")
    print(f"fair share (uniform among non-winners): 1/n = {1 / args.n:.1%}")
    for rule in args.rules:
        share = play(args.epochs, args.n, args.seed, rule)
        print(f"{rule:<22} eliminations that hit a first-epoch agent: {share:6.1%}")


if __name__ == "__main__":
    main()
