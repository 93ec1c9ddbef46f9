-- Who holds the pipeline's run lock (a PostgreSQL advisory lock, released
-- by the server when the holder's session ends, however it ends): for the
-- message the next apply gives.
CREATE TABLE IF NOT EXISTS run_lock (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    pid TEXT NOT NULL,
    host TEXT NOT NULL,
    since_ms BIGINT NOT NULL
);
