-- The service's own records, beside apalis's queue (schema apalis) and the
-- pipelines' states (schema roster_<pipeline>).

-- One row per run a node carried out (or is carrying out).
CREATE TABLE runs (
    id BIGSERIAL PRIMARY KEY,
    pipeline TEXT NOT NULL,
    -- schedule | manual | approval
    trigger TEXT NOT NULL,
    -- The schedule tick (Unix seconds) a scheduled run is for.
    tick BIGINT,
    job_id TEXT,
    node TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    -- running | applied | partial | failed | no-changes | awaiting-approval
    -- | refused | stale | interrupted
    status TEXT NOT NULL,
    plan_id TEXT,
    changes INTEGER,
    applied INTEGER,
    failed INTEGER,
    message TEXT,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ended_at TIMESTAMPTZ
);
CREATE INDEX runs_by_pipeline ON runs (pipeline, id DESC);

-- Plans that wait for someone to approve them.
CREATE TABLE approvals (
    run_id BIGINT PRIMARY KEY REFERENCES runs (id),
    pipeline TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    plan TEXT NOT NULL,
    -- pending | approved | rejected | applied | stale | superseded
    status TEXT NOT NULL DEFAULT 'pending',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    decided_by TEXT,
    decided_at TIMESTAMPTZ,
    comment TEXT
);
-- At most one plan of a pipeline waits at a time.
CREATE UNIQUE INDEX one_pending_approval ON approvals (pipeline) WHERE status = 'pending';

-- API tokens: only a SHA-256 of each is kept (they are 256 random bits).
CREATE TABLE tokens (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ
);

-- Every write through the API or the CLI: who, what, when.
CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
);

CREATE TABLE paused (
    pipeline TEXT PRIMARY KEY,
    paused_by TEXT NOT NULL,
    paused_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
