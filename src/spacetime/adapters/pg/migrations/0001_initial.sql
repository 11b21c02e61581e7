-- Space Time schema, version 1.
-- simulation_epochs and peer_votes keep the specification's columns, names, types and constraints verbatim;
-- columns added to them come after the spec's own.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE books (
    book_id     UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name        TEXT NOT NULL UNIQUE,
    topic       TEXT NOT NULL,
    outline     TEXT,
    config      JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE personas (
    persona_id     UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name           VARCHAR(50) NOT NULL UNIQUE,
    discipline     TEXT NOT NULL,
    voice          TEXT NOT NULL,
    system_prompt  TEXT NOT NULL,
    origin         TEXT NOT NULL CHECK (origin IN ('builtin', 'custom', 'bred')),
    parents        TEXT[] NOT NULL DEFAULT '{}',
    book_id        UUID REFERENCES books(book_id),  -- the book a bred persona was bred in
    embedding      vector,
    embedding_model TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    agent_id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    book_id           UUID NOT NULL REFERENCES books(book_id),
    persona_id        UUID NOT NULL REFERENCES personas(persona_id),
    name              VARCHAR(50) NOT NULL,
    status            TEXT NOT NULL DEFAULT 'alive' CHECK (status IN ('alive', 'eliminated')),
    rating            DOUBLE PRECISION NOT NULL,
    born_epoch        INT NOT NULL DEFAULT 0,
    died_epoch        INT,
    cause_of_death    TEXT,
    replaced_agent_id UUID REFERENCES agents(agent_id),
    model             TEXT,
    memory            JSONB NOT NULL DEFAULT '[]'::jsonb,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (book_id, name),
    CHECK ((status = 'alive') = (died_epoch IS NULL))
);
CREATE INDEX agents_book_status ON agents (book_id, status);

CREATE TABLE simulation_epochs (
    epoch_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    start_time TIMESTAMP DEFAULT NOW(),
    active_agent_ids UUID[], -- The 5-7 agents currently alive
    winner_agent_id UUID,     -- Determining the "Canon" reality
    loser_agent_id UUID,      -- Determining the "Eviction"
    -- added by Space Time:
    book_id   UUID NOT NULL REFERENCES books(book_id),
    epoch_no  INT NOT NULL CHECK (epoch_no >= 1),
    end_time  TIMESTAMP,
    UNIQUE (book_id, epoch_no)
);

CREATE TABLE peer_votes (
    vote_id UUID PRIMARY KEY,
    epoch_id UUID REFERENCES simulation_epochs(epoch_id),
    voter_agent VARCHAR(50),
    target_agent VARCHAR(50),

    -- Making the vote rigorous
    insight_score INT, -- 1-10
    latency_penalty FLOAT, -- Lower is better
    rationale TEXT, -- "I voted for Mathematician because..."

    UNIQUE(epoch_id, voter_agent, target_agent),
    -- added by Space Time:
    voter_agent_id  UUID REFERENCES agents(agent_id),
    target_agent_id UUID REFERENCES agents(agent_id),
    target_alias    VARCHAR(50),
    excerpted       BOOLEAN NOT NULL DEFAULT false,
    CONSTRAINT peer_votes_insight_score_range CHECK (insight_score BETWEEN 1 AND 10),
    CONSTRAINT peer_votes_no_self_vote CHECK (voter_agent <> target_agent)
);

CREATE TABLE drafts (
    draft_id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    epoch_id          UUID NOT NULL REFERENCES simulation_epochs(epoch_id),
    agent_id          UUID NOT NULL REFERENCES agents(agent_id),
    alias             VARCHAR(50) NOT NULL,
    text              TEXT NOT NULL,
    prompt_tokens     INT NOT NULL,
    completion_tokens INT NOT NULL,
    finish_reason     TEXT NOT NULL,
    truncated         BOOLEAN NOT NULL,
    latency_s         DOUBLE PRECISION NOT NULL,
    mean_insight      DOUBLE PRECISION,
    truncation_penalty DOUBLE PRECISION NOT NULL DEFAULT 0,
    lateness_penalty  DOUBLE PRECISION NOT NULL DEFAULT 0,
    score             DOUBLE PRECISION,
    votes_received    INT NOT NULL DEFAULT 0,
    embedding         vector,
    embedding_model   TEXT,
    UNIQUE (epoch_id, agent_id),
    UNIQUE (epoch_id, alias)
);

CREATE TABLE ballots (
    epoch_id        UUID NOT NULL REFERENCES simulation_epochs(epoch_id),
    voter_agent_id  UUID NOT NULL REFERENCES agents(agent_id),
    status          TEXT NOT NULL CHECK (status IN ('ok', 'repaired', 'reasked', 'abstained')),
    raw             TEXT NOT NULL,
    problems        TEXT[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (epoch_id, voter_agent_id)
);

CREATE TABLE forfeits (
    epoch_id  UUID NOT NULL REFERENCES simulation_epochs(epoch_id),
    agent_id  UUID NOT NULL REFERENCES agents(agent_id),
    reason    TEXT NOT NULL,
    PRIMARY KEY (epoch_id, agent_id)
);

CREATE TABLE chapters (
    chapter_id      UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    book_id         UUID NOT NULL REFERENCES books(book_id),
    position        INT NOT NULL CHECK (position >= 1),
    epoch_id        UUID NOT NULL UNIQUE REFERENCES simulation_epochs(epoch_id),
    agent_id        UUID NOT NULL REFERENCES agents(agent_id),
    title           TEXT NOT NULL,
    text            TEXT NOT NULL,
    embedding       vector,
    embedding_model TEXT,
    UNIQUE (book_id, position)
);

CREATE TABLE ratings (
    epoch_id       UUID NOT NULL REFERENCES simulation_epochs(epoch_id),
    agent_id       UUID NOT NULL REFERENCES agents(agent_id),
    rating_before  DOUBLE PRECISION NOT NULL,
    rating_after   DOUBLE PRECISION NOT NULL,
    score          DOUBLE PRECISION,
    PRIMARY KEY (epoch_id, agent_id)
);
CREATE INDEX ratings_agent ON ratings (agent_id);
CREATE INDEX peer_votes_epoch ON peer_votes (epoch_id);
CREATE INDEX drafts_agent ON drafts (agent_id);
