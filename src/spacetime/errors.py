"""The one exception hierarchy of Space Time, grouped by cause.

::

    SpacetimeError
    ├── UsageError              exit 2: what the user asked for or configured must change
    │   ├── ConfigError         a setting, book file, persona, endpoint or command-line value is wrong
    │   │   └── StoreConfigError    the database is unusable as configured (bad URL, no pgvector, unwritable dir)
    │   └── CapacityError       the book's models / roster / caps cannot hold an epoch (found when drafts exist)
    └── RunError                exit 1: something failed while running; running again may succeed
        ├── ModelError          a model call failed after its retries
        ├── ModelHostCrashed    the embedded model's host process died
        ├── EpochShort          too few drafts for an epoch (internal: the Director retries, then a ModelError)
        ├── EpochUnjudged       no ballot of an epoch yielded a counted vote (internal: retried like EpochShort)
        └── StoreError          the database could not be reached, migrated or written
            ├── BookBusy        another process plays the book (exit 2: the user picks another book or waits)
            └── PersonaTaken    a persona name is already used (internal: the Reaper picks or breeds another)

Exceptions here do no I/O and log nothing; the CLI (and only the CLI) turns them into one clean line and
``exit_code``.
"""

from __future__ import annotations


class SpacetimeError(Exception):
    """Base of every error Space Time raises on purpose. ``str(err)`` is the one line shown to a user."""

    exit_code: int = 1


class UsageError(SpacetimeError):
    """Base of the errors the user fixes by changing a command, a file or a setting (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """Raised when settings, a book file, a persona, an endpoint or a command-line value is wrong; the message says
    how to fix it."""


class StoreConfigError(ConfigError):
    """Raised when the database is unusable because of how it is configured (bad URL, no pgvector, unwritable dir)."""


class CapacityError(UsageError):
    """Raised by the rules when the book's configuration cannot hold an epoch: the judge's context window cannot
    fit the ballot prompt, the roster outgrows the aliases, or persona names collide with every alias mask."""


class RunError(SpacetimeError):
    """Base of the failures met while running (exit 1); the book stays intact and running again resumes."""

    exit_code = 1


class ModelError(RunError):
    """Raised when a model backend fails after its retries (timeout, 5xx, refused connection) or is misconfigured."""


class ModelHostCrashed(RunError):
    """Raised when the embedded model's host process died (SIGSEGV in llama.cpp, SIGILL, SIGKILL from the OOM
    killer …) and may not be restarted again. Not a ``ModelError``: a dead host is not one failed call that the
    tournament can forfeit or abstain, so it ends the run (nothing unfinished is saved; running again resumes)."""


class EpochShort(RunError):
    """Raised by an epoch that gathered fewer than the minimum drafts (``drafts`` of them); the Director waits and
    plays the epoch again, and raises a ``ModelError`` when its retries are spent. Never reaches the CLI."""

    def __init__(self, drafts: int) -> None:
        super().__init__(f"{drafts} drafts")
        self.drafts = drafts


class EpochUnjudged(RunError):
    """Raised by an epoch whose ballots yielded no counted vote (every judge abstained or scored fewer than two
    drafts): nothing can be decided, so the Director waits and plays the epoch again, as for ``EpochShort``, and
    raises a ``ModelError`` when its retries are spent. Never reaches the CLI."""

    def __init__(self, drafts: int) -> None:
        super().__init__(f"no counted vote on {drafts} drafts")
        self.drafts = drafts


class StoreError(RunError):
    """Raised when the database cannot be reached, migrated or written."""


class BookBusy(StoreError):
    """Raised when another process holds the book's lock (``spacetime run`` of a book being played). Exit 2, as
    before the errors were grouped by cause: the user waits, stops the other run, or picks another book."""

    exit_code = 2


class PersonaTaken(StoreError):
    """Raised when a new persona's ``name`` is already used by another persona (a bred name raced by another book
    or a swap); the Reaper picks or breeds another and it never reaches the CLI."""

    def __init__(self, name: str) -> None:
        super().__init__(f"persona name {name!r} is taken")
        self.name = name
