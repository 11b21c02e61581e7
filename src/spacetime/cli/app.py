"""The root command: global options, the commands of every noun, and the one error edge.

Every ``SpacetimeError`` that escapes a command ends in :meth:`SpacetimeGroup.main`: one line on stderr
(``spacetime: error: …``) and the error's ``exit_code``. The console script (``main``), ``python -m spacetime``
and Typer's ``CliRunner`` all go through it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from spacetime import __version__
from spacetime.cli.bench import bench
from spacetime.cli.books import export, status
from spacetime.cli.common import GlobalOptions
from spacetime.cli.db import app as db_app
from spacetime.cli.deck import deck
from spacetime.cli.fleet import cancel, pause, resume, submit, worker
from spacetime.cli.reaper import lineage, personas, swap
from spacetime.cli.run import run
from spacetime.errors import SpacetimeError
from spacetime.redaction import redact

GLOBAL_OPTIONS = ("--database-url", "--data-dir")


def hoist_global_options(argv: Sequence[str]) -> list[str]:
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


class SpacetimeGroup(TyperGroup):
    """The root command. Its ``main`` is the CLI's one error edge: a ``SpacetimeError`` becomes one line and its
    exit code, Ctrl-C outside a command ``spacetime: interrupted`` and 130; global options may stand anywhere."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = hoist_global_options(sys.argv[1:] if args is None else args)
        try:
            return super().main(argv, prog_name, complete_var, standalone_mode, windows_expand_args, **extra)
        except SpacetimeError as exc:
            if not standalone_mode:
                raise
            typer.echo(redact(f"spacetime: error: {exc}"), err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            typer.echo("spacetime: interrupted", err=True)
            sys.exit(130)


app = typer.Typer(
    cls=SpacetimeGroup,
    name="spacetime",
    help="LLM agents co-write a book as a parallel evolutionary tournament: burst, blind judgment, collapse, reaper.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
    ctx.obj = GlobalOptions(database_url, data_dir)


# The order of `spacetime --help`.
for command in (status, run, submit, worker, pause, resume, cancel, export, deck, swap, personas, lineage, bench):
    app.command()(command)
app.add_typer(db_app, name="db")


class OneLineFormatter(logging.Formatter):
    """Warnings as ``spacetime: warning: …`` on one line; an attached exception adds its message, never a
    traceback; secrets in it masked (``spacetime.redaction``)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"spacetime: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            line += f": {record.exc_info[1]}"
        return redact(" ".join(line.split("\n")))


def configure_logging() -> None:
    """Warnings and errors of every ``spacetime`` logger go to stderr, one line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter())
    root = logging.getLogger("spacetime")
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    root.propagate = False


def main() -> None:
    """Console-script entry point (``spacetime``, ``python -m spacetime``)."""
    configure_logging()
    app(args=sys.argv[1:], prog_name="spacetime")
