-- The log: opaque entry bytes at contiguous indexes, and the signed checkpoints covering them.
-- `INTEGER PRIMARY KEY` makes idx the rowid (SQLite's BIGINT), so lookups by index need no extra index.
-- STRICT keeps SQLite from silently storing a value of another type.
CREATE TABLE log_entries (
    idx   INTEGER PRIMARY KEY CHECK (idx >= 0),
    entry BLOB    NOT NULL
) STRICT;

CREATE TABLE checkpoints (
    size INTEGER PRIMARY KEY CHECK (size > 0),
    note TEXT    NOT NULL
) STRICT;

-- Append-only by construction: a bug or a stray statement cannot rewrite history. This is a guard
-- rail, not a security boundary (whoever can write the file can drop it); verification is.
CREATE TRIGGER log_entries_no_update BEFORE UPDATE ON log_entries
BEGIN SELECT RAISE(ABORT, 'breakglass: log entries are append-only'); END;
CREATE TRIGGER log_entries_no_delete BEFORE DELETE ON log_entries
BEGIN SELECT RAISE(ABORT, 'breakglass: log entries are append-only'); END;
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'breakglass: checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'breakglass: checkpoints are append-only'); END;
