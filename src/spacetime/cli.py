"""The ``spacetime`` command line (Typer: type-hinted commands on top of click, help on every command).

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration. Every error a user can cause is one line on
stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from spacetime import __version__
from spacetime.config import Settings, load_settings, redact_url
from spacetime.errors import ConfigError, SpacetimeError

T = TypeVar("T")

app = typer.Typer(
    name="spacetime",
    help="LLM agents co-write a book as a parallel evolutionary tournament: burst, blind judgment, collapse, reaper.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Manage the database (embedded PostgreSQL + pgvector by default).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"spacetime {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="SPACETIME_DATABASE_URL",
            help="External PostgreSQL (>= 15, with pgvector). Default: the embedded server under --data-dir.",
            show_envvar=True,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar="SPACETIME_DATA_DIR",
            help="Where the embedded PostgreSQL keeps its data. Default: the platform's user data dir.",
            show_envvar=True,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = {"database_url": database_url, "data_dir": data_dir}


def settings_of(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj or {}
    return load_settings(database_url=obj.get("database_url"), data_dir=obj.get("data_dir"))


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# --------------------------------------------------------------------------- db
@db_app.command("migrate")
def db_migrate(ctx: typer.Context) -> None:
    """Create or upgrade the schema (idempotent; safe to run from two processes at once)."""
    from spacetime.adapters.pg.connect import connect_sync, database_url
    from spacetime.adapters.pg.migrations import migrate

    settings = settings_of(ctx)
    url = database_url(settings)
    with connect_sync(url) as conn:
        applied = migrate(conn)
    where = "embedded PostgreSQL" if settings.embedded else redact_url(url)
    if applied:
        typer.echo(f"applied migration(s) {', '.join(map(str, applied))} to {where}")
    else:
        typer.echo(f"schema is up to date on {where}")


@db_app.command("url")
def db_url(ctx: typer.Context) -> None:
    """Print a URL any PostgreSQL client (psql, DBeaver) can use; starts the embedded server if needed."""
    from spacetime.adapters.pg.connect import database_url

    typer.echo(database_url(settings_of(ctx)))


@db_app.command("stop")
def db_stop(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Stop even while other spacetime processes use it.")] = False,
) -> None:
    """Stop the embedded PostgreSQL server cleanly (it keeps running between commands otherwise)."""
    from spacetime.adapters.pg import embedded
    from spacetime.adapters.pg.connect import other_spacetime_connections

    settings = settings_of(ctx)
    if not settings.embedded:
        raise ConfigError("db stop only stops the embedded server; SPACETIME_DATABASE_URL points at an external one")
    url = embedded.running_uri(settings.data_dir)
    if url is None:
        typer.echo(f"the embedded PostgreSQL in {settings.pgdata} is not running")
        return
    if not force:
        in_use = other_spacetime_connections(url)
        if in_use:
            raise ConfigError(
                f"the embedded PostgreSQL is in use by {in_use} spacetime connection(s): "
                "stop `spacetime run`/`spacetime deck` first, or pass --force"
            )
    embedded.stop(settings.data_dir)
    typer.echo(f"stopped the embedded PostgreSQL in {settings.pgdata}")


# --------------------------------------------------------------------------- status
@app.command()
def status(
    ctx: typer.Context,
    book: Annotated[str | None, typer.Option("--book", "-b", help="Only this book.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Books, epochs, chapters and the roster with ratings."""
    from spacetime.adapters.pg.connect import prepare
    from spacetime.adapters.pg.store import open_store

    settings = settings_of(ctx)
    url = prepare(settings)

    async def collect() -> list[dict[str, Any]]:
        async with open_store(url, max_size=2) as store:
            if book is not None:
                found = await store.get_book(book)
                if found is None:
                    names = ", ".join(b.name for b in await store.list_books()) or "none yet"
                    raise ConfigError(f"no book named {book!r} (books: {names})")
                books = [found]
            else:
                books = await store.list_books()
            return [await _status_of(store, b) for b in books]

    reports = run_async(collect())
    if as_json:
        typer.echo(json.dumps({"books": reports} if book is None else reports[0], indent=2, default=str))
        return
    from spacetime.ui import print_status

    print_status(reports)


async def _status_of(store: Any, book: Any) -> dict[str, Any]:
    report: dict[str, Any] = await store.book_status(book)
    return report


# --------------------------------------------------------------------------- run / export
DEFAULT_BOOK = "spacetime"  # the same default as spacetime.engine.play.DEFAULT_BOOK


@app.command()
def run(
    ctx: typer.Context,
    book_files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[BOOK.toml]...",
            help="Book file(s) (topic, roster, models). Optional. Several files: several books at once.",
        ),
    ] = None,
    book: Annotated[
        str | None, typer.Option("--book", "-b", help="Book name (default: the file's name, else 'spacetime').")
    ] = None,
    books: Annotated[
        int | None,
        typer.Option("--books", min=1, max=1000,
                     help="Play N copies of the book at once, named <book>-1 … <book>-N (sharing the endpoints)."),
    ] = None,  # fmt: skip
    epochs: Annotated[int, typer.Option("--epochs", "-n", min=1, help="Epochs to play now.")] = 3,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=16, max=32768, help="Hard cap per draft (default 2048).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for aliases, orders, tie-breaks and sampling.")
    ] = None,
) -> None:
    """Play epochs of a book on real models; resumes a book that already has epochs.

    Several book files, or --books N, play several books at once in this process: every endpoint keeps ONE
    concurrency bound shared by all books, and a failing book does not stop the others (the exit code is non-zero
    when any book failed).
    """
    from spacetime.engine.play import play_book
    from spacetime.ui import EpochProgress

    settings = settings_of(ctx)
    files = list(book_files or [])
    if len(files) <= 1 and books is None:
        progress = EpochProgress()
        try:
            name, outcomes = run_async(
                play_book(settings, files[0] if files else None, book_name=book, epochs=epochs,
                          max_tokens=max_tokens, seed=seed, emit=progress)  # fmt: skip
            )
        finally:
            progress.close()
        typer.echo(f"played {len(outcomes)} epoch(s) of {name!r}: `spacetime export --book {name}` prints the book")
        return
    _run_many(settings, files, book=book, books=books, epochs=epochs, max_tokens=max_tokens, seed=seed)


def _run_many(
    settings: Settings, files: list[Path], *, book: str | None, books: int | None, epochs: int,
    max_tokens: int | None, seed: int | None,
) -> None:  # fmt: skip
    from spacetime.engine.play import plan_books, play_books
    from spacetime.ui import BooksProgress

    plans = plan_books(files, book_name=book, copies=books)
    progress = BooksProgress()
    runs = run_async(
        play_books(settings, plans, epochs=epochs, max_tokens=max_tokens, seed=seed, emit_for=progress.listener,
                   on_done=progress.done)  # fmt: skip
    )
    failed = [r for r in runs if r.error is not None]
    played = sum(len(r.outcomes) for r in runs)
    typer.echo(f"played {played} epoch(s) of {len(runs)} book(s), {len(failed)} failed: "
               "`spacetime status` lists them")  # fmt: skip
    for r in failed:
        typer.echo(f"spacetime: error: book {r.name!r}: {r.error}", err=True)
    if failed:
        codes = {r.error.exit_code if isinstance(r.error, SpacetimeError) else 1 for r in failed}
        raise typer.Exit(2 if codes == {2} else 1)  # 2 only when every failure was usage or configuration


@app.command()
def export(
    ctx: typer.Context,
    book: Annotated[str, typer.Option("--book", "-b", help="Book name.")] = DEFAULT_BOOK,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Write the canon (the committed chapters, in order) as Markdown."""
    from spacetime.adapters.pg.connect import prepare
    from spacetime.adapters.pg.store import open_store
    from spacetime.rules.canon import render_markdown

    url = prepare(settings_of(ctx))

    async def collect() -> str:
        async with open_store(url, max_size=2) as store:
            found = await store.get_book(book)
            if found is None:
                names = ", ".join(b.name for b in await store.list_books()) or "none yet"
                raise ConfigError(f"no book named {book!r} (books: {names})")
            chapters = await store.chapters(found.book_id)
            return render_markdown(found.name, found.topic,
                                   [(c.position, c.title, c.text, c.agent_name, c.epoch_no) for c in chapters])

    text = run_async(collect())
    if output is None:
        typer.echo(text, nl=False)
        return
    tmp = output.with_name(output.name + ".part")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {output}: {exc.strerror}") from None
    typer.echo(f"wrote {output}", err=True)


# --------------------------------------------------------------------------- deck
@app.command()
def deck(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on (0.0.0.0: every one; no login!).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8501,
) -> None:
    """Open the Epistemic Deck: a live, read-only dashboard of every book (Streamlit), until Ctrl-C."""
    from spacetime.adapters.pg.connect import prepare
    from spacetime.deck import serve

    url = prepare(settings_of(ctx))
    typer.echo(f"The Epistemic Deck (read-only): http://{host}:{port}  (Ctrl-C stops it)", err=True)
    raise typer.Exit(serve(url, host=host, port=port))


# --------------------------------------------------------------------------- reaper: swap / personas / lineage
async def _find_book(store: Any, name: str) -> Any:
    found = await store.get_book(name)
    if found is None:
        names = ", ".join(b.name for b in await store.list_books()) or "none yet"
        raise ConfigError(f"no book named {name!r} (books: {names})")
    return found


@app.command()
def swap(
    ctx: typer.Context,
    book: Annotated[str, typer.Option("--book", "-b", help="Book name.")],
    out: Annotated[str, typer.Option("--out", help="The living agent to take out.")],
    in_persona: Annotated[str, typer.Option("--in", help="The persona to bring in (see `spacetime personas`).")],
) -> None:
    """Swap a living agent for a persona at the book's next epoch boundary (a running book applies it live)."""
    from spacetime.adapters.pg import reaper_store
    from spacetime.adapters.pg.connect import prepare
    from spacetime.adapters.pg.store import open_store
    from spacetime.personas import builtin_personas

    url = prepare(settings_of(ctx))

    async def go() -> Any:
        async with open_store(url, max_size=2) as store:
            found = await _find_book(store, book)
            await store.upsert_personas(builtin_personas())
            return await reaper_store.enqueue_swap(store, found, out, in_persona)

    request = run_async(go())
    typer.echo(f"queued: {request.out_name} → {request.persona.name} in {book!r}, applied at the next epoch boundary")


@app.command()
def personas(
    ctx: typer.Context,
    book: Annotated[
        str | None, typer.Option("--book", "-b", help="Also show each persona's state in this book.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Built-in, custom and bred personas (with their parents); with --book, who is alive, dead or in reserve."""
    from spacetime.adapters.pg import reaper_store
    from spacetime.adapters.pg.connect import prepare
    from spacetime.adapters.pg.store import open_store
    from spacetime.book import parse_book
    from spacetime.personas import builtin_personas

    url = prepare(settings_of(ctx))

    async def collect() -> list[dict[str, Any]]:
        async with open_store(url, max_size=2) as store:
            found = await _find_book(store, book) if book is not None else None
            rows = await reaper_store.persona_catalog(store, found.book_id if found else None)
            reserve = set()
            if found is not None:
                reserve = {p.name for p in parse_book(found.config, where=f"book {book!r}").reserve}
        known = {r["name"] for r in rows}
        rows += [{"name": p.name, "discipline": p.discipline, "voice": p.voice, "origin": p.origin.value,
                  "parents": [], "bred_in": None, "state": None, "died_epoch": None}
                 for p in builtin_personas() if p.name not in known]  # fmt: skip
        for row in rows:
            if row["state"] is None and row["name"] in reserve:
                row["state"] = "reserve"
        return rows

    rows = run_async(collect())
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="personas" + (f" — book {book!r}" if book else ""))
    for column in ("name", "discipline", "origin", "parents", *(("in book",) if book else ())):
        table.add_column(column)
    for r in rows:
        state = r["state"] or ""
        if state == "dead" and r["died_epoch"] is not None:
            state = f"dead (epoch {r['died_epoch']})"
        parents = " × ".join(r["parents"]) + (f" (in {r['bred_in']})" if r["bred_in"] else "")
        table.add_row(r["name"], r["discipline"], r["origin"], parents, *((state,) if book else ()))
    Console().print(table)


@app.command()
def lineage(
    ctx: typer.Context,
    book: Annotated[str, typer.Option("--book", "-b", help="Book name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Who replaced whom at which epoch, and which personas bred personas descend from, as a tree."""
    from spacetime.adapters.pg import reaper_store
    from spacetime.adapters.pg.connect import prepare
    from spacetime.adapters.pg.store import open_store

    url = prepare(settings_of(ctx))

    async def collect() -> list[dict[str, Any]]:
        async with open_store(url, max_size=2) as store:
            return await reaper_store.lineage(store, (await _find_book(store, book)).book_id)

    rows = run_async(collect())
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    def label(r: dict[str, Any]) -> str:
        head = f"[bold]{escape(r['name'])}[/] ({escape(r['discipline'])})"
        if r["origin"] == "bred":
            head += f" · bred from {escape(' × '.join(r['parents']))}"
            head += " (fallback)" if r["source"] == "bred-fallback" else ""
        elif r["via"] == "swap":
            head += " · swapped in by the operator"
        elif r["via"] != "founder":
            head += f" · from the {r['source'] if r['source'] != 'builtin' else 'reserve'}"
        life = f"enters after epoch {r['born_epoch']}" if r["born_epoch"] else "founder"
        if r["status"] == "alive":
            life += f" · [green]alive[/] · {r['rating']:.1f}"
        else:
            cause = escape(r["cause_of_death"] or "eliminated")
            life += f" · [red]dies at epoch {r['died_epoch']}[/] ({cause}) · {r['rating']:.1f}"
        return f"{head} — {life}"

    tree = Tree(f"[bold]{escape(book)}[/] — lineage")
    nodes: dict[str | None, Any] = {}
    for r in rows:  # in order of entry: a replaced agent is always listed before its replacement
        parent = nodes.get(r["replaced_agent_id"], tree)
        nodes[r["agent_id"]] = parent.add(label(r))
    Console().print(tree)


# --------------------------------------------------------------------------- bench
BENCH_SECTIONS = ("speedup", "scaling", "layers", "books", "commit", "embedded")


def _bench_suite() -> Any:
    """The repository's ``bench`` package (benchmarks are not part of the installed product: the wheel has no
    ``bench/``). Looked for next to the installed ``spacetime`` sources (an editable install of a checkout), then in
    the current directory and its parents."""
    import importlib

    import spacetime

    here = Path(spacetime.__file__).resolve()
    roots = [here.parents[2], Path.cwd(), *Path.cwd().parents]
    for root in roots:
        init = root / "bench" / "__init__.py"
        try:
            found = init.is_file() and "SPACETIME_BENCH" in init.read_text(encoding="utf-8")
        except OSError:
            found = False
        if not found:
            continue
        loaded = sys.modules.get("bench")
        if loaded is not None and not getattr(loaded, "SPACETIME_BENCH", False):
            raise ConfigError("another module named 'bench' is already imported; run `python -m bench` instead")
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        return importlib.import_module("bench.suite")
    raise ConfigError(
        "spacetime bench needs a checkout of the Space Time repository (its bench/ package is not installed with "
        "spacetime): run it from the checkout, or `python -m bench` there"
    )


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="CI smoke: small N, 2 repeats, no embedded model (~30 s).")
    ] = False,
    repeats: Annotated[int | None, typer.Option("--repeats", min=1, help="Repeats per figure (default 5).")] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help=f"Only these sections: {', '.join(BENCH_SECTIONS)}.")
    ] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="Skip these sections.")] = None,
    max_books: Annotated[int, typer.Option("--max-books", min=1, help="Most books played at once.")] = 100,
    slots: Annotated[int, typer.Option("--slots", min=1, help="Server slots in the many-books scenario.")] = 32,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write every figure to this JSON file.")] = None,
) -> None:
    """Benchmarks (medians over repeats) against a latency-modelled OpenAI-compatible server and a throwaway
    embedded PostgreSQL; prints Markdown tables. Same as `python -m bench`; see docs/benchmarks.md."""
    for section in [*(only or []), *(skip or [])]:
        if section not in BENCH_SECTIONS:
            raise ConfigError(f"unknown bench section {section!r} (sections: {', '.join(BENCH_SECTIONS)})")
    suite = _bench_suite()
    argv = ["--max-books", str(max_books), "--slots", str(slots)]
    argv += ["--quick"] if quick else []
    argv += ["--repeats", str(repeats)] if repeats else []
    argv += [arg for section in only or [] for arg in ("--only", section)]
    argv += [arg for section in skip or [] for arg in ("--skip", section)]
    argv += ["--json", str(json_path)] if json_path else []
    raise typer.Exit(suite.main(argv))


GLOBAL_OPTIONS = ("--database-url", "--data-dir")


def hoist_global_options(argv: list[str]) -> list[str]:
    """Let the global options stand anywhere (``spacetime status --database-url URL``) by moving them first."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg in GLOBAL_OPTIONS and i + 1 < len(argv):
            front += argv[i : i + 2]
            i += 2
            continue
        if arg.split("=", 1)[0] in GLOBAL_OPTIONS and "=" in arg:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


class OneLineFormatter(logging.Formatter):
    """Warnings as ``spacetime: warning: …`` on one line; an attached exception adds its message, never a
    traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"spacetime: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            line += f": {record.exc_info[1]}"
        return " ".join(line.split("\n"))


def configure_logging() -> None:
    """Warnings and errors of every ``spacetime`` logger go to stderr, one line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter())
    root = logging.getLogger("spacetime")
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    root.propagate = False


def main() -> None:
    """Console-script entry point: one line and an exit code for every expected failure."""
    configure_logging()
    try:
        app(args=hoist_global_options(sys.argv[1:]), prog_name="spacetime")
    except SpacetimeError as exc:
        typer.echo(f"spacetime: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("spacetime: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
