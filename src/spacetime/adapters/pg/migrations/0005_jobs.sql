-- Fleet books (#12): a book submitted with `spacetime submit` is played by `spacetime worker`s, one epoch workflow
-- at a time (DBOS keeps those in the `dbos` schema). This row is what the operator asked for: how many epochs the
-- book should have in all, and whether it may go on. "playing" is not stored: DBOS knows which epoch is running.
CREATE TABLE book_jobs (
    book_id      UUID PRIMARY KEY REFERENCES books(book_id),
    target_epoch INT NOT NULL CHECK (target_epoch >= 1),
    state        TEXT NOT NULL CHECK (state IN ('queued', 'paused', 'cancelled', 'done')),
    submitted_at TIMESTAMP NOT NULL DEFAULT NOW(),
    updated_at   TIMESTAMP NOT NULL DEFAULT NOW()
);
