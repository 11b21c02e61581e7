-- Fair verdicts (#11): what the judges saw, how the verdict was reached, and how healthy the judging was.

-- A draft whose text addressed the reviewers (flags say what was found and neutralised) never wins the canon.
ALTER TABLE drafts ADD COLUMN flags TEXT[] NOT NULL DEFAULT '{}';
-- The mean within-ballot normalised score on the 1-10 scale, and its 95 % interval (bootstrap by ballot).
ALTER TABLE drafts ADD COLUMN normalised_insight DOUBLE PRECISION;
ALTER TABLE drafts ADD COLUMN ci_low DOUBLE PRECISION;
ALTER TABLE drafts ADD COLUMN ci_high DOUBLE PRECISION;

-- Where the target draft was shown in the voter's prompt (1 = first): the position-bias audit reads it.
ALTER TABLE peer_votes ADD COLUMN display_position SMALLINT;

-- The rating that decides elimination keeps its column (agents.rating); its uncertainty and the spec's Elo,
-- computed from the same within-ballot pairwise matrix, sit beside it.
ALTER TABLE agents ADD COLUMN sigma DOUBLE PRECISION;
ALTER TABLE agents ADD COLUMN elo DOUBLE PRECISION;
ALTER TABLE ratings ADD COLUMN sigma_before DOUBLE PRECISION;
ALTER TABLE ratings ADD COLUMN sigma_after DOUBLE PRECISION;
ALTER TABLE ratings ADD COLUMN elo_before DOUBLE PRECISION;
ALTER TABLE ratings ADD COLUMN elo_after DOUBLE PRECISION;

-- The share of ballot bootstraps in which the chosen winner stays the winner, and the epoch's judging audit.
ALTER TABLE simulation_epochs ADD COLUMN verdict_confidence DOUBLE PRECISION;
ALTER TABLE simulation_epochs ADD COLUMN audit JSONB;
