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
