"""The ``spacetime`` command line (Typer: type-hinted commands on top of click, help on every command).

One module per noun: ``db`` (migrate, url, stop), ``books`` (status, export), ``run``, ``deck``, ``reaper``
(swap, personas, lineage), ``bench``; ``render`` draws the reports (rich tables and trees, ``--json``),
``progress`` the live view of a run; ``app`` is the root command, its global options and the error edge.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration. Every error a user can cause is one line on
stderr, never a traceback.
"""

from __future__ import annotations

from spacetime.cli.app import app, main

__all__ = ["app", "main"]
