-- Tokens and cost (#13): what a book's model calls used, per epoch, by kind of call and endpoint (one row each).
-- Written in the epoch's own transaction by Store.write_epoch (a replayed epoch is refused whole, and a row written
-- twice is kept once); a book's totals are a SUM over its rows. Cost is not stored: it is the tokens at the book's
-- current prices ([endpoints.NAME.price]).
CREATE TABLE epoch_usage (
    book_id           UUID NOT NULL,
    epoch_no          INT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('draft', 'ballot', 'reask', 'breeding', 'embedding')),
    endpoint          TEXT NOT NULL,
    calls             INT NOT NULL CHECK (calls >= 0),
    prompt_tokens     BIGINT NOT NULL CHECK (prompt_tokens >= 0),
    cached_tokens     BIGINT NOT NULL CHECK (cached_tokens >= 0 AND cached_tokens <= prompt_tokens),
    completion_tokens BIGINT NOT NULL CHECK (completion_tokens >= 0),
    PRIMARY KEY (book_id, epoch_no, kind, endpoint),
    FOREIGN KEY (book_id, epoch_no) REFERENCES simulation_epochs (book_id, epoch_no) ON DELETE CASCADE
);
