"""The one exception hierarchy of Space Time.

Exceptions here do no I/O and log nothing; the CLI turns them into one clean line
and an exit code (``exit_code``: 2 for bad usage or configuration, 1 for a runtime failure).
"""

from __future__ import annotations


class SpacetimeError(Exception):
    """Base of every error Space Time raises on purpose. ``str(err)`` is the one line shown to a user."""

    exit_code: int = 1


class ConfigError(SpacetimeError):
    """Raised when settings, a book file or a command-line value is wrong; the message says how to fix it."""

    exit_code = 2


class StoreError(SpacetimeError):
    """Raised when the database cannot be reached, migrated or written."""

    exit_code = 1


class StoreConfigError(StoreError):
    """Raised when the database is unusable because of how it is configured (bad URL, no pgvector, unwritable dir)."""

    exit_code = 2


class ModelError(SpacetimeError):
    """Raised when a model backend fails after its retries (timeout, 5xx, refused connection) or is misconfigured."""

    exit_code = 1


class ModelHostCrashed(SpacetimeError):
    """Raised when the embedded model's host process died (SIGSEGV in llama.cpp, SIGILL, SIGKILL from the OOM
    killer …) and may not be restarted again. Not a ``ModelError``: a dead host is not one failed call that the
    tournament can forfeit or abstain, so it ends the run (nothing unfinished is saved; running again resumes)."""

    exit_code = 1
