"""Secrets never reach an error line or a log line: the CLI's error edge and its log formatter mask them."""

from __future__ import annotations

import logging

from spacetime.cli.app import OneLineFormatter
from tests.cli.conftest import Invoke, one_error_line

SECRET = "ZqSECRETxPW"
OTHER = "ZqSSLxSECRET"


def test_an_unreachable_database_is_named_without_its_passwords(invoke: Invoke) -> None:
    url = f"postgresql://alice:{SECRET}@127.0.0.1:1/x?sslpassword={OTHER}&connect_timeout=2"
    result = invoke("status", env={"SPACETIME_DATABASE_URL": url})
    line = one_error_line(result, 2, "cannot connect", "127.0.0.1")
    assert SECRET not in result.output + result.stderr and OTHER not in result.output + result.stderr, line


def test_a_malformed_database_url_is_named_without_its_passwords(invoke: Invoke) -> None:
    url = f"mysql://alice:{SECRET}@db/x?password={OTHER}"
    result = invoke("status", env={"SPACETIME_DATABASE_URL": url})
    one_error_line(result, 2, "postgresql://")
    assert SECRET not in result.stderr and OTHER not in result.stderr


def test_a_log_line_keeps_no_secret() -> None:
    record = logging.LogRecord("spacetime.x", logging.WARNING, __file__, 1, "lost %s: %s", (
        f"host=db password={SECRET} dbname=x", f"https://api.example/v1?api_key={OTHER}"), None)  # fmt: skip
    line = OneLineFormatter().format(record)
    assert SECRET not in line and OTHER not in line and line.startswith("spacetime: warning: lost host=db password=")
