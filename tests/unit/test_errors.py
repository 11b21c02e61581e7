"""The exception hierarchy is grouped by cause, and the cause decides the exit code."""

from __future__ import annotations

import inspect

import pytest

from spacetime import errors
from spacetime.errors import (
    BookBusy,
    CapacityError,
    ConfigError,
    EpochShort,
    EpochUnjudged,
    ModelError,
    ModelHostCrashed,
    PersonaTaken,
    RunError,
    SpacetimeError,
    StoreConfigError,
    StoreError,
    UsageError,
)

CLASSES = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, SpacetimeError)]


def test_every_error_is_a_usage_error_or_a_run_error() -> None:
    assert len(CLASSES) == 13
    for cls in CLASSES:
        if cls not in (SpacetimeError, UsageError, RunError):
            assert issubclass(cls, UsageError) != issubclass(cls, RunError), cls


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_error_says_when_it_is_raised(cls: type[SpacetimeError]) -> None:
    assert cls.__doc__ and len(cls.__doc__) > 40


@pytest.mark.parametrize(
    ("cls", "code"),
    [(ConfigError, 2), (StoreConfigError, 2), (CapacityError, 2), (BookBusy, 2), (ModelError, 1),
     (ModelHostCrashed, 1), (StoreError, 1), (EpochShort, 1), (EpochUnjudged, 1),
     (PersonaTaken, 1)],
)  # fmt: skip
def test_exit_codes_follow_the_cause(cls: type[SpacetimeError], code: int) -> None:
    assert cls.exit_code == code


def test_control_flow_errors_carry_their_value_not_a_message_to_parse() -> None:
    assert EpochShort(2).drafts == 2 and str(EpochShort(2)) == "2 drafts"
    assert EpochUnjudged(4).drafts == 4 and str(EpochUnjudged(4)) == "no counted vote on 4 drafts"
    assert PersonaTaken("Astrobiologist").name == "Astrobiologist"
    assert issubclass(StoreConfigError, ConfigError) and issubclass(BookBusy, StoreError)


def test_a_lost_database_is_one_store_error_line_never_a_driver_traceback() -> None:
    import asyncio

    import psycopg

    from spacetime.adapters.pg.repository import store_errors

    @store_errors
    class Flaky:
        async def read(self) -> int:
            raise psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly\n\tmore")

        async def _private(self) -> int:
            raise psycopg.OperationalError("x")

    with pytest.raises(StoreError) as caught:
        asyncio.run(Flaky().read())
    assert "\n" not in str(caught.value) and "server closed the connection unexpectedly" in str(caught.value)
    assert "run the same command again" in str(caught.value) and caught.value.__cause__ is None
    with pytest.raises(psycopg.OperationalError):  # private helpers are left to their public caller
        asyncio.run(Flaky()._private())
