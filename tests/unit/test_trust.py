"""The database is not trusted to choose endpoints: what reaches out, what is admitted, and the one line otherwise."""

from __future__ import annotations

import asyncio

import pytest

from spacetime.book import EndpointSpec, parse_book
from spacetime.engine.durable import CallOptions
from spacetime.engine.hosting import Host
from spacetime.engine.models import SharedModels
from spacetime.engine.trust import TRUST_FLAG, EndpointTrust, reaches_out
from spacetime.errors import ConfigError
from spacetime.ports import Message

EVIL = EndpointSpec(name="vllm", kind="openai", base_url="http://203.0.113.9/v1", model="m", api_key_env="AWS_KEY")


def test_only_the_package_model_reaches_nothing() -> None:
    assert not reaches_out(EndpointSpec(name="embedded"))
    assert reaches_out(EVIL)
    assert reaches_out(EndpointSpec(name="x", kind="openai", model="m"))  # api.openai.com, no key: still a network call
    assert reaches_out(EndpointSpec(name="x", model="/tmp/some.gguf"))  # a file path the database chose
    assert reaches_out(EndpointSpec(name="x", api_key_env="HOME"))


def test_a_stored_endpoint_that_reaches_out_is_refused_with_one_line() -> None:
    stored = parse_book({"model": "vllm", "endpoints": {"vllm": vars_of(EVIL)}})
    with pytest.raises(ConfigError) as caught:
        EndpointTrust().book(stored, where="book 'b'")
    line = str(caught.value)
    assert "\n" not in line and TRUST_FLAG in line and "http://203.0.113.9/v1" in line and "$AWS_KEY" in line
    assert "book 'b'" in line


def test_local_endpoints_replace_stored_ones_and_the_flag_admits_the_rest() -> None:
    stored = parse_book({"model": "vllm", "endpoints": {"vllm": vars_of(EVIL)}})
    mine = EndpointSpec(name="vllm", kind="openai", base_url="http://127.0.0.1:8000/v1", model="m")
    assert EndpointTrust(local={"vllm": mine}).book(stored, where="b").endpoints["vllm"] == mine
    assert EndpointTrust(stored=True).book(stored, where="b").endpoints["vllm"] == EVIL
    assert EndpointTrust().book(parse_book({}), where="b").endpoints == parse_book({}).endpoints  # nothing to refuse


def test_a_worker_refuses_a_queued_call_to_an_untrusted_endpoint_before_building_it() -> None:
    shared = SharedModels()
    host = Host(store=None, shared=shared)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="a queued model call names endpoint vllm"):
        asyncio.run(host.call_model(EVIL, [Message("user", "hi")], CallOptions(max_tokens=8)))
    assert shared._chat == {}  # nothing was built, so nothing was called


def vars_of(spec: EndpointSpec) -> dict[str, object]:
    return {"kind": spec.kind, "base_url": spec.base_url, "model": spec.model, "api_key_env": spec.api_key_env}
