"""Live progress of ``spacetime run`` in the terminal: one epoch as a live table (one line per event off a TTY),
or several books at once as one line per event."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from spacetime.engine import events as ev
from spacetime.redaction import printable, redact
from spacetime.rules.cost import Spend, usage_text

if TYPE_CHECKING:
    from spacetime.engine.play import BookRun

console = Console()


def committed_text(event: ev.EpochCommitted) -> str:
    """The line of a committed epoch: its chapter, who left, how long, what its calls used (and cost). Plain text:
    escape it before printing with markup."""
    used = ""
    if event.usage.calls:
        used = "; " + usage_text(Spend(event.usage, event.cost))
    title, winner, loser = (printable(t) for t in (event.chapter_title, event.winner, event.loser))
    return (f"epoch {event.epoch_no}: chapter “{title}” by the {winner}; {loser} eliminated "
            f"({event.wall_s:.1f}s, {event.completion_tokens} tokens drafted{used})")  # fmt: skip


def shown(text: str) -> str:
    """Model-written or stored text in a rich line: markup escaped (a title with ``[/]`` must not end the run),
    control characters out."""
    return escape(printable(text))


class EpochProgress:
    """Live view of one epoch for the terminal (a table on a TTY, one line per event otherwise)."""

    def __init__(self, out: Console | None = None) -> None:
        self.console = out or console
        self.live: Live | None = None
        self.rows: dict[str, dict[str, str]] = {}
        self.title = ""

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.EpochStarted):
            retry = f" (try {event.attempt})" if event.attempt > 1 else ""
            self.title = f"{event.book} · epoch {event.epoch_no}{retry}"
            self.rows = {name: {"draft": "waiting", "tokens": "", "latency": "", "ballot": ""} for name in event.agents}
            self._start()
        elif isinstance(event, ev.DraftStarted):
            self._set(event.agent, draft="drafting…")
        elif isinstance(event, ev.DraftDone):
            self._set(event.agent, draft="[yellow]truncated −5[/]" if event.truncated else "[green]done[/]",
                      tokens=str(event.tokens), latency=f"{event.latency_s:.1f}s")
        elif isinstance(event, ev.DraftForfeited):
            self._set(event.agent, draft="[red]forfeit[/]")
            self._line(f"  {event.agent} forfeits: {escape(event.reason)}")
        elif isinstance(event, ev.EmbeddingsSkipped):
            self._line(f"  [yellow]embeddings skipped:[/] {escape(event.reason)} (drafts stored without vectors)")
        elif isinstance(event, ev.JudgmentStarted):
            for voter in event.voters:
                self._set(voter, ballot="judging…")
        elif isinstance(event, ev.BallotDone):
            self._set(event.voter, ballot=f"{event.status} ({event.votes} votes)")
        elif isinstance(event, ev.EpochRetry):
            self._stop()
            self._line(f"epoch {event.epoch_no}: only {event.drafts} drafts; retrying in {event.wait_s:.0f}s")
        elif isinstance(event, ev.EpochCommitted):
            self._stop()
            self._line(escape(committed_text(event)))
            for warning in event.warnings:
                self._line(f"  [yellow]judging:[/] {escape(warning)}")
        elif isinstance(event, ev.BudgetReached):
            self._stop()
            self.console.print(escape(event.line), highlight=False, soft_wrap=True)  # one line, never wrapped
        elif isinstance(event, ev.AgentEntered):
            came = f" replacing {event.replaced}" if event.replaced else ""
            self._line(f"  {shown(event.name)} ({event.origin}) enters{shown(came)}")
        elif isinstance(event, ev.SuccessionFailed):
            self._line(f"  [yellow]no successor seated:[/] {escape(event.reason)}; {event.living} agents play on, "
                       "the Reaper tries again at the next boundary")  # fmt: skip

    # -- rendering
    def _table(self) -> Table:
        table = Table(title=self.title)
        for column in ("agent", "draft", "tokens", "latency", "ballot"):
            table.add_column(column)
        for name, row in self.rows.items():
            table.add_row(name, row["draft"], row["tokens"], row["latency"], row["ballot"])
        return table

    def _set(self, agent: str, **values: str) -> None:
        self.rows.setdefault(agent, {"draft": "", "tokens": "", "latency": "", "ballot": ""}).update(values)
        if self.live is not None:
            self.live.update(self._table())
        elif ("draft" in values and values["draft"] != "drafting…") or values.get("ballot", "judging…") != "judging…":
            what = values.get("ballot") or values.get("draft", "")
            extra = f" {values['tokens']} tokens in {values['latency']}" if "tokens" in values else ""
            self.console.print(f"  {agent}: {what}{extra}", highlight=False)

    def _start(self) -> None:
        if self.console.is_terminal:
            self.live = Live(self._table(), console=self.console, refresh_per_second=8, transient=False)
            self.live.start()
        else:
            self.console.print(self.title, highlight=False)

    def _stop(self) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.stop()
            self.live = None

    def _line(self, text: str) -> None:
        self.console.print(redact(text), highlight=False)

    def close(self) -> None:
        self._stop()


class BooksProgress:
    """Progress of several books played at once: one line per committed epoch, forfeit, retry, entry and failure,
    each prefixed with its book (a live table per book would not fit a terminal)."""

    def __init__(self, out: Console | None = None) -> None:
        self.console = out or console

    def listener(self, book: str) -> Callable[[ev.Event], None]:
        """The event listener of one book."""
        return lambda event: self._event(book, event)

    def _event(self, book: str, event: ev.Event) -> None:
        if isinstance(event, ev.EpochCommitted):
            self._line(book, committed_text(event))
            for warning in event.warnings:
                self._line(book, f"judging: {warning}", "yellow")
        elif isinstance(event, ev.BudgetReached):
            self.console.print(escape(event.line), highlight=False, soft_wrap=True)
        elif isinstance(event, ev.DraftForfeited):
            self._line(book, f"{event.agent} forfeits: {event.reason}")
        elif isinstance(event, ev.EmbeddingsSkipped):
            self._line(book, f"embeddings skipped: {event.reason} (drafts stored without vectors)", "yellow")
        elif isinstance(event, ev.EpochRetry):
            self._line(book, f"epoch {event.epoch_no}: only {event.drafts} drafts; retrying in {event.wait_s:.0f}s")
        elif isinstance(event, ev.AgentEntered):
            came = f" replacing {event.replaced}" if event.replaced else ""
            self._line(book, f"{event.name} ({event.origin}) enters{came}")
        elif isinstance(event, ev.SuccessionFailed):
            self._line(book, f"no successor seated: {event.reason}; {event.living} agents play on, the Reaper tries "
                             "again at the next boundary", "yellow")  # fmt: skip

    def done(self, run: BookRun) -> None:
        """Called when a book ends."""
        if run.error is not None:
            self._line(run.name, f"failed after {len(run.outcomes)} epoch(s): {run.error}", style="red")
        else:
            self._line(run.name, f"done: {len(run.outcomes)} epoch(s)")

    def _line(self, book: str, text: str, style: str = "") -> None:
        text = escape(printable(redact(text)))
        body = f"[{style}]{text}[/]" if style else text
        self.console.print(f"[bold]{escape(printable(book))}[/] · {body}", highlight=False)
