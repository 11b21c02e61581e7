-- G-Eval scores (#11): the probability-weighted mean of the score tokens the judge weighed, beside the spec's
-- integer insight_score; NULL when the backend gave no log-probabilities. The verdict ranks it when present.
ALTER TABLE peer_votes ADD COLUMN expected_score DOUBLE PRECISION;
