"""What DBOS reads back from the database is rebuilt by a restricted unpickler: our records round-trip, a planted
pickle that names a function, an unimported module or a class with effects is refused before anything runs."""

from __future__ import annotations

import base64
import pickle
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spacetime.book import EndpointSpec
from spacetime.domain import Completion, EpochOutcome, FinishReason, TokenChoice
from spacetime.engine import unpickle
from spacetime.engine.durable import CallOptions, Failed
from spacetime.errors import ModelError
from spacetime.ports import Message

PLANTED: list[str] = []


def _plant(note: str) -> None:
    PLANTED.append(note)


class _Calls:
    """A pickle whose loading calls ``fn(*args)``: what an attacker writes into a ``dbos`` row."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.fn, self.args


def _records() -> list[object]:
    spec = EndpointSpec(name="vllm", kind="openai", base_url="http://127.0.0.1:8000/v1", model="m",
                        base_urls=(), api_key_env="KEY")  # fmt: skip
    completion = Completion("text", FinishReason.STOP, 10, 5, 0.25, (TokenChoice("7", (("7", -0.1),)),), 3, "vllm")
    outcome = EpochOutcome(3, uuid4(), "Physicist", "Financier", 1.5, 5, 20, 900, 0)
    return [
        {"args": (spec, [Message("user", "hi")], CallOptions(64, {"type": "object"}, 0.2, 7)), "kwargs": {}},
        completion, outcome, Failed("the server said no"), ModelError("timed out"),
        {"when": datetime.now(UTC), "span": timedelta(seconds=3), "ids": {uuid4()}, "b": b"\x00", "f": frozenset()},
    ]


@pytest.mark.parametrize("record", _records(), ids=lambda r: type(r).__name__)
def test_what_space_time_records_round_trips(record: object) -> None:
    back = unpickle.loads(pickle.dumps(record))
    assert type(back) is type(record)
    if isinstance(record, BaseException):
        assert str(back) == str(record)
    else:
        assert back == record


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.uuids(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner) | st.tuples(inner, inner),
                    max_leaves=20))  # fmt: skip
def test_plain_values_round_trip(value: object) -> None:
    assert unpickle.loads(pickle.dumps(value)) == value


@pytest.mark.parametrize(
    "planted",
    [
        _Calls(_plant, "a test function ran"),  # a function of a loaded module
        _Calls(exec, "import sys; sys._spacetime_pwned = 1"),
        _Calls(eval, "1 + 1"),
        _Calls(getattr, Message("user", "x"), "__class__"),
        _Calls(__import__, "antigravity"),
        _Calls(unpickle.allowed, "os", "system"),  # one of our functions
    ],
    ids=["test-function", "exec", "eval", "getattr", "import", "our-function"],
)
def test_a_planted_pickle_that_calls_something_is_refused(planted: _Calls) -> None:
    data = pickle.dumps(planted)
    with pytest.raises(unpickle.UnsafePickle):
        unpickle.loads(data)
    assert PLANTED == [] and not hasattr(sys, "_spacetime_pwned")
    assert "antigravity" not in sys.modules


def test_a_module_a_row_names_is_never_imported() -> None:
    assert "this" not in sys.modules
    # protocol 0 by hand: GLOBAL 'this Nothing' then STOP; loading it would import ``this`` (which prints)
    with pytest.raises(unpickle.UnsafePickle):
        unpickle.loads(b"cthis\nNothing\n.")
    assert "this" not in sys.modules


def test_our_classes_with_effects_are_refused() -> None:
    from spacetime.engine.durable import Durable  # a class whose construction would start DBOS

    with pytest.raises(unpickle.UnsafePickle, match="spacetime.engine.durable.Durable"):
        unpickle.allowed("spacetime.engine.durable", "Durable")
    assert Durable is not None
    with pytest.raises(unpickle.UnsafePickle):
        unpickle.allowed("subprocess", "Popen")


def test_dbos_reads_every_pickle_through_the_restricted_reader() -> None:
    """DBOS picks its plain pickle reader for any row marked ``py_pickle``: after ``spacetime.engine.durable`` is
    imported, that reader refuses a planted pickle and still reads our records."""
    from dbos._serialization import DBOSDefaultSerializer, DefaultSerializer, deserialize_value

    import spacetime.engine.durable  # noqa: F401 - installs the reader

    planted = base64.b64encode(pickle.dumps(_Calls(exec, "import sys; sys._spacetime_pwned = 1"))).decode()
    with pytest.raises(unpickle.UnsafePickle):
        deserialize_value(planted, "py_pickle", DefaultSerializer())
    with pytest.raises(unpickle.UnsafePickle):
        DBOSDefaultSerializer.deserialize(planted)
    assert not hasattr(sys, "_spacetime_pwned")
    ok = DBOSDefaultSerializer.serialize(Failed("no"))
    assert deserialize_value(ok, "py_pickle", DefaultSerializer()) == Failed("no")
