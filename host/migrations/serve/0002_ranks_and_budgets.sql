-- Ranks: a run of a ranked pipeline is one rank's.
ALTER TABLE runs ADD COLUMN rank INTEGER;

-- Request budgets shared by every node (a connector's rate_limit), kept
-- as GCRA: the theoretical arrival time of the next request.
CREATE TABLE rate_budgets (
    key TEXT PRIMARY KEY,
    tat TIMESTAMPTZ NOT NULL
);

-- Takes one request from budget `k` (one per `interval_s`, bursts of
-- `tolerance_s / interval_s + 1`): 0 when it may go now, else the seconds
-- to wait before asking again.
CREATE FUNCTION take_rate(k TEXT, interval_s DOUBLE PRECISION, tolerance_s DOUBLE PRECISION)
RETURNS DOUBLE PRECISION AS $$
DECLARE
    now_ts TIMESTAMPTZ := clock_timestamp();
    t TIMESTAMPTZ;
    ahead DOUBLE PRECISION;
BEGIN
    INSERT INTO rate_budgets (key, tat) VALUES (k, now_ts) ON CONFLICT (key) DO NOTHING;
    SELECT tat INTO t FROM rate_budgets WHERE key = k FOR UPDATE;
    IF t < now_ts THEN
        t := now_ts;
    END IF;
    ahead := extract(epoch FROM (t - now_ts)) - tolerance_s;
    IF ahead > 0 THEN
        RETURN ahead;
    END IF;
    UPDATE rate_budgets SET tat = t + make_interval(secs => interval_s) WHERE key = k;
    RETURN 0;
END
$$ LANGUAGE plpgsql;
