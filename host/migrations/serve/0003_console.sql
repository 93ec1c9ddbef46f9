-- The web console's sessions: a browser signed in with an API token. Only a
-- SHA-256 of the session id (the cookie) is kept; a session ends with its
-- token (deleted) or after its lifetime. `drafts` holds the link changes the
-- admin staged in the console and has not saved yet (JSON, per pipeline).
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    token_id BIGINT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    drafts TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- A plan kept for approval, row by row (a change, a link, an unlink, an
-- account skipped), so that the console pages and searches it with one query
-- on any node, however large the plan. `head` is the plan without its rows;
-- it is set once every row is in, so a plan is read from here only whole.
ALTER TABLE approvals ADD COLUMN head TEXT;
CREATE TABLE approval_rows (
    run_id BIGINT NOT NULL REFERENCES approvals (run_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    -- create | update | disable | delete | merge-guest | link | unlink | skipped
    kind TEXT NOT NULL,
    -- What the console's search looks in, lower case: address, key, target id.
    search TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX approval_rows_by_kind ON approval_rows (run_id, kind, seq);
