"""A fleet book's state, as `spacetime status` shows it, from its job row and its epoch workflows."""

from __future__ import annotations

from spacetime.adapters.pg.jobs import JobState
from spacetime.engine.durable import EpochRun, epoch_workflow_id
from spacetime.engine.fleet import FleetState, fleet_state


def run(n: int, status: str) -> EpochRun:
    return EpochRun(epoch_workflow_id("b", n), n, status, "w1")


def test_a_book_never_submitted_has_no_fleet_state() -> None:
    assert fleet_state(None, [run(1, "SUCCESS")]) is None


def test_a_running_epoch_means_playing_whatever_the_job_says() -> None:
    for job in JobState:
        assert fleet_state(job, [run(1, "SUCCESS"), run(2, "PENDING")]) is FleetState.PLAYING


def test_queued_books_wait_and_a_failed_last_epoch_is_failed() -> None:
    assert fleet_state(JobState.QUEUED, []) is FleetState.WAITING
    assert fleet_state(JobState.QUEUED, [run(1, "SUCCESS"), run(2, "ENQUEUED")]) is FleetState.WAITING
    assert fleet_state(JobState.QUEUED, [run(1, "SUCCESS"), run(2, "ERROR")]) is FleetState.FAILED
    assert fleet_state(JobState.QUEUED, [run(1, "ERROR"), run(2, "SUCCESS")]) is FleetState.WAITING


def test_paused_cancelled_and_done_books_say_so() -> None:
    done = [run(1, "SUCCESS")]
    assert fleet_state(JobState.PAUSED, done) is FleetState.PAUSED
    assert fleet_state(JobState.CANCELLED, done) is FleetState.CANCELLED
    assert fleet_state(JobState.DONE, done) is FleetState.DONE


def test_workflow_ids_are_the_idempotency_keys() -> None:
    assert epoch_workflow_id("b", 3) == "epoch:b:3"
    assert epoch_workflow_id("b", 3, 2) == "epoch:b:3:2"
