"""What the deck trusts (docs/deck.md): the database never chooses an endpoint, a key or a file for the deck to call;
model-written and stored text is shown as text (no image, link or HTML renders); off loopback the page needs its
access token."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

import spacetime.deck as deck
from spacetime.adapters.llm.fake import HashEmbedder
from spacetime.book import EndpointSpec
from spacetime.deck import ENV_EMBEDDERS, ENV_TOKEN, book_embedders, data
from spacetime.deck.figures import md
from spacetime.domain import EpochRecord
from spacetime.errors import ConfigError
from tests.deck.conftest import SEMANTIC_DIM, DeckDB, MakeApp
from tests.deck.fill import play_more

SECRET_ENV = "DECK_TEST_EMBEDDER_KEY"
SECRET = "s3cret-never-to-leave-this-machine"
PIXEL = "http://127.0.0.1:9/pixel.png"
LONG_WORD = "x" * 5000
NASTY = (f"Before the image ![x]({PIXEL}) and a script <script>window.__pwned=1</script> and a "
         f"[link](http://evil.example) and <img src=\"{PIXEL}\"> raw HTML.\n\n{LONG_WORD}\n\nThe end.")
NASTY_TITLE = f"![t]({PIXEL}) <b>bold</b> [here](http://evil.example)"
NASTY_NAME = "[evil](http://evil.example)<b>x</b>"
HTML_NAME = '<a href="http://evil.example">y</a>'
"""Plotly draws its labels from a subset of HTML that includes links."""


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_section(at: AppTest, label: str) -> AppTest:
    at.session_state["section"] = label
    return run(at)


# ---------------------------------------------------------------------------------------------- a loopback endpoint
class Recorder(ThreadingHTTPServer):
    """An OpenAI-compatible ``/v1/embeddings`` on 127.0.0.1 that records every request (path and headers) and
    answers with ``HashEmbedder`` vectors (the vector space the test books were embedded in)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, dict[str, str]]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        texts = json.loads(body or b"{}").get("input") or []
        vectors = asyncio.run(HashEmbedder(dim=SEMANTIC_DIM).embed(texts))
        reply = json.dumps({"object": "list", "model": "hash-bow-16",
                            "data": [{"object": "embedding", "index": k, "embedding": v}
                                     for k, v in enumerate(vectors)],
                            "usage": {"prompt_tokens": 1, "total_tokens": 1}}).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass


@contextmanager
def recording() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Recorder]:
    with recording() as server:
        yield server


def remote_config(base_url: str) -> dict[str, Any]:
    return {"embedder": "remote", "endpoints": {"remote": {"kind": "openai", "base_url": base_url,
                                                           "model": "hash-bow-16", "api_key_env": SECRET_ENV}}}


@pytest.fixture
def remote_book(migrated_url: str, endpoint: Recorder, monkeypatch: pytest.MonkeyPatch) -> str:
    """A book embedded in ``hash-bow-16`` whose STORED config names the recording endpoint and a set key variable."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    asyncio.run(play_more(migrated_url, "remote-book", 3, config=remote_config(endpoint.base_url),
                          semantic=HashEmbedder(dim=SEMANTIC_DIM)))  # fmt: skip
    return migrated_url


def search(at: AppTest, query: str) -> str:
    at = open_section(run(at), "The book")
    at.text_input(key="search").input(query)
    run(at)
    return "\n".join(str(c.value) for c in at.caption) + "\n".join(str(m.value) for m in at.markdown)


# ---------------------------------------------------------------------------------------------- A. endpoints
def test_search_never_calls_an_endpoint_named_by_the_database(
    deck_app: MakeApp, remote_book: str, endpoint: Recorder
) -> None:
    shown = search(deck_app(remote_book), "entropy and the arrow of time")
    assert endpoint.requests == []  # not one request: the key never left
    note = "the book's embedder 'remote' is an endpoint of kind 'openai' stored in the database"
    assert "Plain text search — " + md(note) in shown
    assert "book\\-file" in shown  # says how to use it
    assert "On entropy and the arrow of time" in shown  # and the text search found it


def test_a_stored_model_path_is_not_loaded_but_the_packaged_model_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_EMBEDDERS, raising=False)
    path = data.embedder_choice("b", {"embedder": "mine", "endpoints": {"mine": {"kind": "embedded",
                                                                                 "model": "/etc/passwd"}}})
    assert path.spec is None and path.note is not None and "model file path" in path.note
    hostile = {"embedder": "embedded", "endpoints": {"embedded": {"kind": "openai", "base_url": "http://evil.example",
                                                                  "model": "m", "api_key_env": "HOME"}}}
    assert data.embedder_choice("b", hostile).spec is None  # the default's name does not make it trusted
    packaged = data.embedder_choice("b", {"embedder": "embedded"}).spec
    assert packaged is not None
    fields = dict(packaged[1])
    assert fields["kind"] == "embedded" and fields["model"] is None and fields["api_key_env"] is None
    assert fields["base_url"] is None and fields["base_urls"] == ()


def test_search_uses_the_embedder_of_a_local_book_file(
    deck_app: MakeApp, remote_book: str, endpoint: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with recording() as local:  # the file names another server than the stored config: the file wins
        book = tmp_path / "anything.toml"
        book.write_text(f'name = "remote-book"\nembedder = "remote"\n\n[endpoints.remote]\nkind = "openai"\n'
                        f'base_url = "{local.base_url}"\nmodel = "hash-bow-16"\napi_key_env = "{SECRET_ENV}"\n')
        given = json.dumps(book_embedders([book]))
        assert SECRET not in given and SECRET_ENV in given  # the variable's name travels, never its value
        monkeypatch.setenv(ENV_EMBEDDERS, given)
        shown = search(deck_app(remote_book), "entropy and the arrow of time")
    assert "Semantic search (pgvector cosine, embedder `hash-bow-16`)" in shown
    assert local.requests and all(h.get("authorization") == f"Bearer {SECRET}" for _, h in local.requests)
    assert endpoint.requests == []  # the stored one: never


def test_book_files_name_their_books_by_name_else_stem(tmp_path: Path) -> None:
    named, plain = tmp_path / "x.toml", tmp_path / "my-book.toml"
    named.write_text('name = "named"\nembedder = "none"\n')
    plain.write_text("")
    assert book_embedders([named, plain]) == {
        "named": {"embedder": None, "spec": None},
        "my-book": {"embedder": "embedded", "spec": dict(data.spec_key(EndpointSpec(name="embedded"))[1])},
    }
    with pytest.raises(ConfigError, match="two --book-file files name the book 'named'"):
        book_embedders([named, named])


# ---------------------------------------------------------------------------------------------- B. text as text
def nasty_epoch(record: EpochRecord) -> EpochRecord:
    drafts = tuple(dataclasses.replace(d, text=NASTY) for d in record.drafts)
    return dataclasses.replace(record, drafts=drafts, chapter_text=NASTY, chapter_title=NASTY_TITLE)


def fill_nasty_book(url: str) -> None:
    """A book ``nasty-book`` whose drafts, chapter, title, topic and two leading agents' names carry images, links,
    HTML and a 5,000-character word."""
    asyncio.run(play_more(url, "nasty-book", 2, edit=nasty_epoch, topic=NASTY_TITLE))
    with psycopg.connect(url) as conn:
        for rank, name in enumerate((NASTY_NAME, HTML_NAME)):
            conn.execute("UPDATE agents SET name = %s WHERE agent_id = (SELECT agent_id FROM agents "
                         "WHERE status = 'alive' ORDER BY rating DESC OFFSET %s LIMIT 1)", (name, rank))


@pytest.fixture
def nasty_book(migrated_url: str) -> str:
    fill_nasty_book(migrated_url)
    return migrated_url


RENDERED_AS_MARKDOWN = ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success")


def markdown_bodies(at: AppTest) -> list[str]:
    bodies = [str(e.value) for kind in RENDERED_AS_MARKDOWN for e in getattr(at, kind)]
    bodies += [str(part) for m in at.metric for part in (m.label, m.value, m.proto.delta)]
    return bodies


def assert_nothing_renders(at: AppTest) -> None:
    """No element that Streamlit renders as Markdown turns stored text into an image, a link or HTML (read with a
    CommonMark renderer that passes raw HTML through, stricter than Streamlit's)."""
    renderer = MarkdownIt("commonmark", {"html": True})
    for body in markdown_bodies(at):
        html = renderer.render(body)
        assert "<img" not in html and "<a " not in html and "<script" not in html and "<b>" not in html, body
        text = re.sub(r"\\(.)", r"\1", body)  # as the text nodes read, where GFM looks for literal autolinks
        assert not re.search(r"(?i)https?://|www\.|[\w.+-]@[\w-]+\.\w", text), body
    for chart in at.get("plotly_chart"):  # names in charts: no link
        spec = json.dumps(json.loads(chart.proto.spec), ensure_ascii=False)  # "<" as itself
        assert "<a " not in spec, spec[max(0, spec.find("<a ") - 200) : spec.find("<a ") + 100]


def test_model_text_is_shown_as_text(deck_app: MakeApp, nasty_book: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_model(spec: object) -> object:
        raise ConfigError("no model in this test")

    monkeypatch.setattr("spacetime.deck.data.build_embedder", no_model)
    at = run(deck_app(nasty_book))
    assert_nothing_renders(at)
    for section in ("Epoch", "The book", "Chopping block", "Ratings", "Lineage", "Judging health"):
        at = open_section(at, section)
        assert_nothing_renders(at)
        if section in ("Epoch", "The book"):
            assert NASTY in [t.value for t in at.text]  # the literal text, whole, shown as text
    shown = "\n".join(markdown_bodies(at))
    assert md(NASTY_TITLE) in shown and md(NASTY_NAME) in shown  # titles and names: escaped, still there
    at = open_section(at, "The book")
    at.text_input(key="search").input("script")
    run(at)
    assert any("Plain text search" in c.value for c in at.caption)
    assert any(c.value.startswith("Before the image") for c in at.caption)  # the hits' excerpts, escaped
    assert_nothing_renders(at)


# ---------------------------------------------------------------------------------------------- C. access token
TOKEN = "a-token-long-enough-for-the-deck"


def test_without_its_token_the_deck_shows_no_data_and_queries_nothing(
    deck_app: MakeApp, deck_db: DeckDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_TOKEN, TOKEN)
    called: list[str] = []

    def database_url() -> str:
        called.append("database_url")
        return deck_db.url

    monkeypatch.setattr(data, "database_url", database_url)
    for given in (None, "wrong-token-of-the-same-size-xx"):
        at = deck_app(deck_db.url)
        if given is not None:
            at.query_params["token"] = given
        run(at)
        assert called == []  # no connection, no query
        assert not at.tabs and not at.metric and not at.title and not at.markdown and not at.caption
        assert [e.value for e in at.error] == [
            "This deck needs its access token: open the address `spacetime deck` printed (…/?token=…)."]


def test_with_its_token_the_deck_shows_the_book_and_remembers_the_session(
    deck_app: MakeApp, deck_db: DeckDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_TOKEN, TOKEN)
    at = deck_app(deck_db.url)
    at.query_params["token"] = TOKEN
    run(at)
    assert at.title[0].value == md(deck_db.big) and at.tabs
    at.query_params.clear()  # navigating inside the app: the session already gave it
    open_section(at, "The book")
    assert any("The book" in s.value for s in at.subheader)


def test_on_loopback_without_a_token_the_deck_opens(deck_app: MakeApp, deck_db: DeckDB,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_TOKEN, raising=False)
    assert run(deck_app(deck_db.url)).title[0].value == md(deck_db.big)


class FakeChild:
    def __init__(self, cmd: list[str], *, env: dict[str, str], stdin: int) -> None:
        self.cmd, self.env = cmd, env

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def poll(self) -> int:
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[FakeChild]:
    """``serve`` with the Streamlit child replaced by a recorder of its command and environment."""
    started: list[FakeChild] = []

    def popen(cmd: list[str], **kwargs: Any) -> FakeChild:
        started.append(FakeChild(cmd, **kwargs))
        return started[-1]

    monkeypatch.setattr("spacetime.deck.subprocess.Popen", popen)
    monkeypatch.delenv(ENV_TOKEN, raising=False)
    return started


def test_off_loopback_a_token_is_generated_printed_once_and_required(
    children: list[FakeChild], capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    assert deck.serve("postgresql://x/y", host="0.0.0.0", port=port) == 0  # noqa: S104 - the point of the test
    err = capsys.readouterr().err
    token = children[0].env[ENV_TOKEN]
    assert len(token) >= deck.TOKEN_MIN_CHARS
    assert err.count(f"http://0.0.0.0:{port}/?token={token}") == 1 and "no login" not in err


def test_off_loopback_the_token_from_the_environment_is_used_and_not_printed(
    children: list[FakeChild], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_TOKEN, TOKEN)
    deck.serve("postgresql://x/y", host="0.0.0.0", port=free_port())  # noqa: S104
    assert children[0].env[ENV_TOKEN] == TOKEN and TOKEN not in capsys.readouterr().err
    monkeypatch.setenv(ENV_TOKEN, "short")
    with pytest.raises(ConfigError, match=f"{ENV_TOKEN} is shorter than 16 characters"):
        deck.serve("postgresql://x/y", host="0.0.0.0", port=free_port())  # noqa: S104


def test_no_auth_keeps_the_old_warning_and_sends_no_token(
    children: list[FakeChild], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_TOKEN, TOKEN)
    deck.serve("postgresql://x/y", host="0.0.0.0", port=free_port(), auth=False)  # noqa: S104
    assert ENV_TOKEN not in children[0].env
    err = capsys.readouterr().err
    assert "spacetime: warning: the deck on 0.0.0.0 is reachable from other machines, with no login" in err
    assert "?token=" not in err


def test_loopback_needs_no_token(children: list[FakeChild], capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    deck.serve("postgresql://x/y", host="127.0.0.1", port=port)
    assert ENV_TOKEN not in children[0].env
    err = capsys.readouterr().err
    assert f"http://127.0.0.1:{port}  (Ctrl-C stops it)" in err and "warning" not in err
