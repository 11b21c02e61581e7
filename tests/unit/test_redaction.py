"""Every secret form is masked, and nothing else changes: libpq's own parser (``psycopg.conninfo``) is the reference.
"""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import example, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from spacetime.redaction import MASK, redact, redact_url, secret_in_url

SECRET = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=24)
PLAIN = st.text("abcdefghijklmnopqrstuvwxyz0123456789_.", min_size=1, max_size=12)
MARKED = st.text("ABCDEFGHJKLMNPQRSTUVWXYZ", min_size=10, max_size=20).map(lambda s: f"Zq{s}")
"""A secret no other part of a generated string can contain (other parts are lower-case)."""


@given(host=PLAIN, port=st.integers(1, 65535), dbname=PLAIN, user=PLAIN, password=SECRET,
       sslpassword=st.none() | SECRET, options=st.none() | st.just("-c statement_timeout=5000"))  # fmt: skip
@settings(max_examples=300)
@example(host="h", port=5432, dbname="d", user="u", password="it's a \\ secret = yes", sslpassword=None, options=None)
def test_a_keyword_string_keeps_everything_but_its_passwords(
    host: str, port: int, dbname: str, user: str, password: str, sslpassword: str | None, options: str | None
) -> None:
    params = {"host": host, "port": str(port), "dbname": dbname, "user": user, "password": password}
    if sslpassword is not None:
        params["sslpassword"] = sslpassword
    if options is not None:
        params["options"] = options
    shown = conninfo_to_dict(redact_url(make_conninfo(**params)))
    expected = {**params, "password": MASK, **({"sslpassword": MASK} if sslpassword is not None else {})}
    assert shown == expected


@given(user=PLAIN, password=MARKED, host=PLAIN, port=st.integers(1, 65535), dbname=PLAIN, query_secret=MARKED,
       name=st.sampled_from(["password", "sslpassword"]))  # fmt: skip
@settings(max_examples=300)
def test_a_url_keeps_everything_but_its_passwords(
    user: str, password: str, host: str, port: int, dbname: str, query_secret: str, name: str
) -> None:
    url = (f"postgresql://{quote(user)}:{quote(password, safe='')}@{host}:{port}/{dbname}"
           f"?{name}={quote(query_secret)}&sslmode=prefer&application_name=x")  # fmt: skip
    redacted = redact_url(url)
    assert password not in redacted and query_secret not in redacted
    shown = conninfo_to_dict(redacted)
    original = conninfo_to_dict(url)
    for key, value in original.items():
        assert shown[key] == (MASK if key in ("password", "sslpassword") else value), key


@given(key=MARKED, name=st.sampled_from(["api_key", "key", "token", "access_token", "sig", "apikey", "Api-Key"]))
@settings(max_examples=200)
def test_a_model_server_url_keeps_no_key(key: str, name: str) -> None:
    url = f"https://models.example/v1?api-version=2024-06-01&{name}={key}"
    assert key not in redact_url(url) and "api-version=2024-06-01" in redact_url(url)
    assert secret_in_url(url) == f"the query parameter {name}"
    assert key not in redact_url(f"https://{key}@models.example/v1")  # a token as the user part
    assert key not in redact_url(f"https://user:{key}@models.example/v1")


@given(secret=MARKED, prefix=st.text(max_size=30), suffix=st.text(max_size=30))
@settings(max_examples=300)
def test_free_text_keeps_no_secret(secret: str, prefix: str, suffix: str) -> None:
    """What a driver or a server puts in an error line: URLs, keyword strings, bearer tokens."""
    for line in (
        f"connection to postgresql://alice:{secret}@db:5432/x failed",
        f"could not connect: host=db password={secret} dbname=x",
        f"could not connect: host=db password = '{secret} x' dbname=x",
        f"401 from https://api.example/v1?key={secret}: Authorization: Bearer {secret}",
    ):
        assert secret not in redact(prefix + " " + line + " " + suffix)


def test_what_is_not_secret_is_left_alone() -> None:
    for text in ("postgresql://alice@db:5432/x?sslmode=require", "host=db port=5432 dbname=x user=alice",
                 "http://127.0.0.1:8000/v1", "epoch 3: chapter 'keys=values' by the Physicist"):  # fmt: skip
        assert redact_url(text) == text and redact(text) == text
    assert secret_in_url("http://127.0.0.1:8000/v1?api-version=1") is None
    assert secret_in_url("postgresql://alice@db/x") is None
    assert secret_in_url("postgresql://alice:pw@db/x") == "a password"


@given(key=MARKED, name=st.sampled_from(["api_key", "key", "token", "access_token", "sig", "password"]),
       form=st.sampled_from(["query", "password", "user"]))  # fmt: skip
@settings(max_examples=100)
def test_a_book_refuses_a_key_inside_base_url_and_never_repeats_it(key: str, name: str, form: str) -> None:
    import pytest

    from spacetime.book import parse_book
    from spacetime.errors import ConfigError

    url = {"query": f"http://127.0.0.1:8000/v1?{name}={key}", "password": f"http://me:{key}@127.0.0.1:8000/v1",
           "user": f"http://{key}@127.0.0.1:8000/v1"}[form]  # fmt: skip
    for where in ({"base_url": url}, {"base_urls": ["http://127.0.0.1:8001/v1", url]}):
        with pytest.raises(ConfigError) as caught:
            parse_book({"model": "x", "endpoints": {"x": {"kind": "openai", "model": "m", **where}}})
        assert "api_key_env" in str(caught.value) and key not in str(caught.value)
