-- Leadership (sla_monitor.leadership): the session advisory lock that makes one replica the
-- leader, held on a connection of its own, and the other replicas' sessions.
-- $1, $2: the lock key's two halves (pg_locks shows a bigint key as classid, objid).

-- name: try_lock
SELECT pg_try_advisory_lock((($1::bigint) << 32) | $2::bigint)

-- name: holds_lock
-- Proof that this session still holds the lock (a dropped or terminated session has none).
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
      AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1
)

-- name: held_by
-- The fence of a claim: the lock is held, now, by the leader's lock session ($3, its pid).
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND pid = $3 AND granted
      AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1
)

-- name: backend_pid
SELECT pg_backend_pid()

-- name: peers
-- The other replicas' lock sessions on this database: application_name carries their hash.
SELECT application_name FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND application_name LIKE $1 || '%'

-- name: keepalives
-- The server notices a lock session whose client vanished (a cut network) within ~10 s, and
-- releases the lock: else a standby could wait for the kernel's keepalive (hours).
SELECT set_config('tcp_keepalives_idle', '5', false),
       set_config('tcp_keepalives_interval', '2', false),
       set_config('tcp_keepalives_count', '3', false)
