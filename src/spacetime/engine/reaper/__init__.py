"""The Reaper: a long-lived asyncio daemon beside the Tournament Director that keeps the roster full.

It is fed by events — an elimination decided by the collapse (``epoch_committed``), an operator swap requested from
another terminal (``spacetime swap``: a row in ``swap_requests`` and a NOTIFY on ``spacetime_swap``, also polled) —
and keeps the roster full without holding up the epoch loop:

* **ahead of time** (while the current epoch drafts and judges) it prepares the next newcomer: picks it from the
  reserve pool (queue, random, or the most different from the living roster by pgvector distance between persona
  descriptions) or, when the pool is dry, breeds one with the LLM from the best-rated personas (structured output,
  validated, a deterministic fallback after a few rejected answers); it embeds it and builds its ``PersonaAgent``;
* **at the boundary** (epoch committed → next burst) the loop only waits for one INSERT per newcomer and one
  statement per operator swap: ``ready(roster)`` returns the next roster; the time the loop waited is measured
  (``stats.stalls_ms``, ``reaper_events.stall_ms``);
* **after the boundary**, off the loop, it saves every agent's memory notes, archives the dead agent (memory, AutoGen
  state, final rating, cause of death: ``agent_archive``, append-only), releases its AutoGen agent and logs the
  replacement.

The Director owns the roster: the Reaper is handed it and hands back a new mapping (``epoch_committed``: without
the loser; ``ready``: with the newcomers and the swaps), never changing the one it was given.

If the successor being prepared is not ready at the boundary (a slow model still breeding), the Reaper does not
wait: it takes the next reserve persona or a deterministic bred child, and keeps the slow one for the next death.

The roster size stays ``len(config.roster)``: a death is replaced one for one, a swap one for one, and a book that
was stopped between a death and its replacement is topped up when it resumes. An agent dies once: dead agents are
never seated again (``agents`` has one row per persona and book).

Modules: ``daemon`` (the Reaper: lifecycle, the Director's hooks, the work queue), ``succession`` (who enters
next: the reserve pick, preparation ahead, seating), ``breeder`` (breeding with the model), ``swaps`` (operator
swaps), ``notes`` (the living agents' memory), ``values``, ``jobs`` and ``tasks`` (what they share). Its SQL is in
``spacetime.adapters.pg`` (``store.roster``, ``store.notes``, ``store.personas``, ``store.swaps``,
``store.reaper_log``).
"""

from spacetime.domain import NewcomerSource, ReaperEvent, ReplacementKind
from spacetime.engine.reaper.daemon import Reaper, ReaperState
from spacetime.engine.reaper.values import Newcomer, ReaperStats

__all__ = ["Newcomer", "NewcomerSource", "Reaper", "ReaperEvent", "ReaperState", "ReaperStats", "ReplacementKind"]
