-- Team mode: apps append entries that the broker then verifies and covers with its checkpoint.
-- An entry that fails verification (a row written into the database directly) is removed by the
-- broker, with what was appended on top of it, before any checkpoint covers them. Entries a
-- checkpoint covers stay append-only; updates stay refused.
DROP TRIGGER log_entries_no_delete;
CREATE TRIGGER log_entries_only_uncovered_removed BEFORE DELETE ON log_entries
WHEN OLD.idx < (SELECT COALESCE(MAX(size), 0) FROM checkpoints)
BEGIN SELECT RAISE(ABORT, 'breakglass: log entries a checkpoint covers cannot be removed'); END;
