"""Terminal progress: what a user reads while an epoch plays (non-TTY: one line per event)."""

from __future__ import annotations

import io
import uuid

from rich.console import Console

from spacetime.adapters.pg.reports import BookStatus, RosterEntry
from spacetime.cli.progress import BooksProgress, EpochProgress
from spacetime.cli.render import print_status
from spacetime.domain import Agent, AgentStatus, Book, Persona, Usage
from spacetime.engine import events as ev


def _progress() -> tuple[EpochProgress, io.StringIO]:
    buf = io.StringIO()
    return EpochProgress(Console(file=buf, force_terminal=False, width=120)), buf


def test_progress_lines_tell_the_story_of_an_epoch() -> None:
    progress, buf = _progress()
    for event in (
        ev.EpochStarted("demo", 3, ("Physicist", "Financier", "Politician")),
        ev.DraftStarted("Physicist"),
        ev.DraftDone("Physicist", 2048, True, 31.5),
        ev.DraftDone("Financier", 300, False, 4.0),
        ev.DraftForfeited("Politician", "model endpoint 'vllm': HTTP 503"),
        ev.JudgmentStarted(("Physicist", "Financier", "Politician")),
        ev.BallotDone("Physicist", "ok", 1),
        ev.BallotDone("Financier", "abstained", 0),
        ev.EpochCommitted(3, uuid.uuid4(), "Financier", "Physicist", "Money as time", 40.2, 2348),
        ev.AgentEntered("Cyberneticist", "Physicist", "builtin", 3),
    ):
        progress(event)
    progress.close()
    out = buf.getvalue()
    assert "demo · epoch 3" in out
    assert "Physicist: truncated −5 2048 tokens in 31.5s" in out
    assert "Financier: done 300 tokens in 4.0s" in out
    assert "Politician forfeits: model endpoint 'vllm': HTTP 503" in out
    assert "Financier: abstained (0 votes)" in out
    assert "judging" not in out and "drafting" not in out  # transient states are not printed off a TTY
    assert "chapter “Money as time” by the Financier; Physicist eliminated" in out
    assert "Cyberneticist (builtin) enters replacing Physicist" in out


def test_status_table_and_empty_state() -> None:
    buf = io.StringIO()
    import spacetime.cli.render as ui

    def agent(name: str, discipline: str, status: AgentStatus, rating: float, died: int | None) -> RosterEntry:
        persona = Persona(name, discipline, "", "")
        return RosterEntry(Agent(uuid.uuid4(), persona, rating, status, 0, died), None, None)

    old = ui.console
    ui.console = Console(file=buf, force_terminal=False, width=140)
    try:
        print_status([])
        print_status([BookStatus(Book(uuid.uuid4(), "b", "Time", None, {}), epochs=2, chapters=2, roster=(
            agent("Physicist", "Physics", AgentStatus.ALIVE, 1512.3, None),
            agent("Financier", "Finance", AgentStatus.ELIMINATED, 1480.0, 2)), lineage=())])
    finally:
        ui.console = old
    out = buf.getvalue()
    assert "No books yet" in out
    assert "b — 2 epoch(s), 2 chapter(s)" in out and "1512.3" in out and "eliminated" in out


def test_an_epoch_whose_judges_say_nothing_says_so_in_the_progress_lines() -> None:
    warning = "judges agree no better than chance (Krippendorff's alpha = 0.02)"
    committed = ev.EpochCommitted(2, uuid.uuid4(), "Financier", "Physicist", "T", 1.0, 10, (warning,))
    progress, buf = _progress()
    progress(committed)
    progress.close()
    assert f"judging: {warning}" in buf.getvalue()
    many = io.StringIO()
    BooksProgress(Console(file=many, force_terminal=False, width=160)).listener("demo")(committed)
    assert f"demo · judging: {warning}" in many.getvalue()
    quiet = io.StringIO()
    BooksProgress(Console(file=quiet, force_terminal=False, width=160)).listener("demo")(
        ev.EpochCommitted(2, uuid.uuid4(), "Financier", "Physicist", "T", 1.0, 10))
    assert "judging" not in quiet.getvalue()


def test_skipped_embeddings_are_said_once() -> None:
    progress, buf = _progress()
    progress(ev.EmbeddingsSkipped("embedder 'e': HTTP 503"))
    progress.close()
    assert "embeddings skipped: embedder 'e': HTTP 503 (drafts stored without vectors)" in buf.getvalue()


def test_a_seat_left_empty_is_said_and_the_book_goes_on() -> None:
    progress, buf = _progress()
    progress(ev.SuccessionFailed("the Reaper could not seat a newcomer after 5 tries", 4))
    progress.close()
    assert ("no successor seated: the Reaper could not seat a newcomer after 5 tries; 4 agents play on"
            in " ".join(buf.getvalue().split()))  # fmt: skip


def test_an_epochs_tokens_and_a_budget_stop_are_one_line_each() -> None:
    committed = ev.EpochCommitted(2, uuid.uuid4(), "Financier", "Physicist", "T", 1.0, 300, (),
                                  Usage(16, 12_000, 3_000, 345), 0.0123)  # fmt: skip
    stop = ev.BudgetReached("demo", 'book "demo": token budget reached (24,690 of 20,000 tokens) after epoch 2')
    progress, buf = _progress()
    progress(committed)
    progress(stop)
    progress.close()
    out = buf.getvalue()
    assert "(1.0s, 300 tokens drafted; 12,345 tokens (3,000 cached) in 16 call(s), $0.01)" in " ".join(out.split())
    assert stop.line + "\n" in out  # one line of its own, never wrapped
    many = io.StringIO()
    listener = BooksProgress(Console(file=many, force_terminal=False, width=60)).listener("demo")
    listener(stop)
    listener(ev.EpochCommitted(2, uuid.uuid4(), "Financier", "Physicist", "T", 1.0, 10))
    lines = many.getvalue().splitlines()
    assert lines[0] == stop.line
    assert "(1.0s, 10 tokens drafted)" in many.getvalue()  # nothing metered: no usage account



def test_a_title_with_markup_and_escape_sequences_is_printed_as_text() -> None:
    """A chapter title is model-written: ``[/]`` once ended a run with rich's MarkupError after its epoch committed,
    and an OSC 8 sequence could have put a hidden link in the operator's terminal."""
    title = "Time [/] and [link=http://evil.example]more[/link] \x1b]8;;http://evil.example\x07x\x1b]8;;\x07"
    committed = ev.EpochCommitted(1, uuid.uuid4(), "Physicist", "Financier[/]", title, 1.0, 10)
    ui, buf = _progress()
    ui(committed)
    many = io.StringIO()
    BooksProgress(Console(file=many, force_terminal=False, width=400)).listener("demo[/]")(committed)
    for out in (buf.getvalue(), many.getvalue()):
        assert "Time [/] and [link=http://evil.example]more[/link]" in out and "Financier[/]" in out
        assert "\x1b" not in out and "\x07" not in out
    assert "demo[/] · epoch 1" in many.getvalue()
