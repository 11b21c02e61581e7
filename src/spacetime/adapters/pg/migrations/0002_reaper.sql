-- Space Time schema, version 2: the Reaper.
-- Operator swaps (a queue the running book polls / LISTENs to), the archive of dead agents (never deleted),
-- and the Reaper's log of every replacement with how long it held up the epoch loop.

CREATE TABLE swap_requests (
    swap_id        UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    book_id        UUID NOT NULL REFERENCES books(book_id),
    out_agent_id   UUID NOT NULL REFERENCES agents(agent_id),
    in_persona_id  UUID NOT NULL REFERENCES personas(persona_id),
    status         TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'rejected')),
    reason         TEXT,            -- why a swap was rejected when the book reached it
    requested_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_at     TIMESTAMPTZ,
    applied_epoch  INT,             -- epochs committed when it was applied: it takes effect from epoch + 1
    in_agent_id    UUID REFERENCES agents(agent_id),
    CHECK ((status = 'applied') = (in_agent_id IS NOT NULL))
);
-- At most one pending swap per outgoing agent and per incoming persona in a book.
CREATE UNIQUE INDEX swap_requests_pending_out ON swap_requests (out_agent_id) WHERE status = 'pending';
CREATE UNIQUE INDEX swap_requests_pending_in ON swap_requests (book_id, in_persona_id) WHERE status = 'pending';
CREATE INDEX swap_requests_book_status ON swap_requests (book_id, status);

CREATE TABLE agent_archive (
    agent_id        UUID PRIMARY KEY REFERENCES agents(agent_id),
    book_id         UUID NOT NULL REFERENCES books(book_id),
    name            VARCHAR(50) NOT NULL,
    final_rating    DOUBLE PRECISION NOT NULL,
    born_epoch      INT NOT NULL,
    died_epoch      INT NOT NULL,
    cause_of_death  TEXT NOT NULL,
    memory          JSONB NOT NULL DEFAULT '[]'::jsonb,   -- the agent's notes as they were when it died
    conversation    JSONB NOT NULL DEFAULT '{}'::jsonb,   -- its AutoGen agent state (save_state()) at death
    archived_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX agent_archive_book ON agent_archive (book_id);

-- The archive is append-only: rows are never changed or deleted.
CREATE FUNCTION spacetime_archive_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'agent_archive is append-only: archived agents are never changed or deleted';
END;
$$;
CREATE TRIGGER agent_archive_append_only BEFORE UPDATE OR DELETE ON agent_archive
    FOR EACH ROW EXECUTE FUNCTION spacetime_archive_is_append_only();

CREATE TABLE reaper_events (
    event_id      UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    book_id       UUID NOT NULL REFERENCES books(book_id),
    epoch_no      INT NOT NULL,     -- epochs committed at the boundary (the newcomer first plays epoch_no + 1)
    kind          TEXT NOT NULL CHECK (kind IN ('elimination', 'swap', 'top-up')),
    out_agent_id  UUID REFERENCES agents(agent_id),
    in_agent_id   UUID NOT NULL REFERENCES agents(agent_id),
    source        TEXT NOT NULL,    -- where the newcomer came from: reserve, bred, bred-fallback, operator
    prepared_s    DOUBLE PRECISION, -- time spent preparing the newcomer, off the loop
    stall_ms      DOUBLE PRECISION, -- time the epoch loop waited on the Reaper at this boundary
    note          TEXT,             -- e.g. how a bred persona was made and which model answers were rejected
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX reaper_events_book ON reaper_events (book_id, epoch_no);
CREATE INDEX agents_replaced ON agents (replaced_agent_id);
