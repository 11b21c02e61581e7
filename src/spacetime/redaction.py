"""Secrets out of every line we print or log: passwords and keys in URLs, libpq keyword strings and free text.

A database can be given as a URL (``postgresql://user:pw@host/db?sslpassword=…``) or as a libpq keyword string
(``host=h password='p w' dbname=d``); a model server's URL may carry a key in its query (``?api_key=…``) or its
user part. :func:`redact_url` hides each such value behind ``***`` and keeps the rest as it was, so the line still
says where; :func:`redact` does the same for every URL and ``password=…`` it finds in a longer text (an error line
from a driver). Pure string work: the drivers' own parsers (``psycopg.conninfo``) are the tests' reference.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlsplit

MASK = "***"

SECRET_PARAMS = frozenset({
    "password", "sslpassword", "passwd", "pass", "pwd", "secret", "client_secret", "token", "access_token",
    "auth_token", "refresh_token", "id_token", "api_key", "apikey", "api-key", "key", "sig", "signature",
    "x-api-key", "code",
})  # fmt: skip
"""Query or keyword parameters whose value is a secret (compared lower-case)."""

DATABASE_SCHEMES = ("postgresql", "postgres")

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_KEYWORD = re.compile(r"\b(?P<key>[A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?P<value>'(?:[^'\\]|\\.)*'?|(?:[^\s'\\]|\\.)*)")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")


def _is_secret(name: str) -> bool:
    return name.lower() in SECRET_PARAMS


def _keyword_form(text: str) -> str:
    """``key=value`` pairs (libpq's keyword form) with every secret value masked; other text kept as it is."""

    def mask(found: re.Match[str]) -> str:
        if not _is_secret(found["key"]):
            return found[0]
        return found[0][: found.start("value") - found.start()] + MASK

    return _KEYWORD.sub(mask, text)


def _query(query: str) -> str:
    if not query:
        return query
    kept = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        decoded = parse_qsl(part, keep_blank_values=True)
        key = decoded[0][0] if decoded else name
        kept.append(f"{name}={MASK}" if eq and _is_secret(key) else part)
    return "&".join(kept)


def redact_url(url: str) -> str:
    """``url`` (a URL or a libpq keyword string) with every password, key or token in it replaced by ``***``."""
    if "://" not in url:
        return _keyword_form(url)
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[": mask by shape what may be a password or a query
        return _unparsed(url)
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        if colon:
            userinfo = f"{user}:{MASK}"
        elif parts.scheme.lower() not in DATABASE_SCHEMES:
            userinfo = MASK  # https://TOKEN@host: a user part alone is a token on the web
        netloc = f"{userinfo}@{hostport}"
    return parts._replace(netloc=netloc, query=_query(parts.query), fragment=_query(parts.fragment)).geturl()


_USERINFO = re.compile(r"(?<=://)[^/?#\s]*@")


def _unparsed(url: str) -> str:
    head, question, query = _USERINFO.sub(f"{MASK}@", url).partition("?")
    return head + question + _query(query)


def redact(text: str) -> str:
    """``text`` with every URL's secrets, every secret ``key=value`` and every bearer token masked."""
    text = _URL.sub(lambda found: redact_url(found[0]), text)
    text = _keyword_form(text)
    return _BEARER.sub(lambda found: f"{found[1]} {MASK}", text)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` from a model or the database made safe for a terminal: control characters (escape sequences that
    could retitle, hyperlink or clear the operator's terminal) become ``\ufffd``; newlines and tabs stay."""
    return _CONTROL.sub("\ufffd", text)


def secret_in_url(url: str) -> str | None:
    """What in ``url`` is a secret (``"a password"``, ``"the query parameter api_key"``), or ``None``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.password:
        return "a password"
    if parts.username and parts.scheme.lower() not in DATABASE_SCHEMES:
        return "a user part"
    for name, _value in parse_qsl(parts.query, keep_blank_values=True):
        if _is_secret(name):
            return f"the query parameter {quote(name)}"
    return None
