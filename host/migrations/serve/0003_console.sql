-- People who sign in to the web console with a name and a password (the
-- password only as argon2id, a PHC string with its salt and parameters).
CREATE TABLE console_users (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at TIMESTAMPTZ
);

-- The web console's sessions: a browser signed in with an API token or as a
-- user. Only a SHA-256 of the session id (the cookie) is kept; a session
-- ends with its token or user (deleted) or after its lifetime. `drafts`
-- holds the link changes staged in the console and not saved yet (JSON, per
-- pipeline).
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    token_id BIGINT REFERENCES tokens (id) ON DELETE CASCADE,
    user_id BIGINT REFERENCES console_users (id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    drafts TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    CHECK ((token_id IS NULL) <> (user_id IS NULL))
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
