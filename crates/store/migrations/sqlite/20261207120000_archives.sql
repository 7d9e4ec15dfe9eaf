-- Embedded logs: a prefix of the log moved out of the database into a bundle file beside it
-- (`breakglass log archive`). Each row names the file, relative to the database's directory,
-- that holds entries [0, size), and its SHA-256; the row with the largest size is in force.
-- The archived rows are deleted in the same transaction that records the file.
CREATE TABLE archives (
    size   INTEGER PRIMARY KEY CHECK (size > 0),
    file   TEXT    NOT NULL CHECK (length(file) > 0),
    sha256 TEXT    NOT NULL CHECK (length(sha256) = 64)
) STRICT;
CREATE TRIGGER archives_no_update BEFORE UPDATE ON archives
BEGIN SELECT RAISE(ABORT, 'breakglass: archive records are append-only'); END;
CREATE TRIGGER archives_no_delete BEFORE DELETE ON archives
BEGIN SELECT RAISE(ABORT, 'breakglass: archive records are append-only'); END;
-- Covered entries stay append-only, except those an archive record already holds.
DROP TRIGGER log_entries_only_uncovered_removed;
CREATE TRIGGER log_entries_only_uncovered_or_archived_removed BEFORE DELETE ON log_entries
WHEN OLD.idx < (SELECT COALESCE(MAX(size), 0) FROM checkpoints)
 AND OLD.idx >= (SELECT COALESCE(MAX(size), 0) FROM archives)
BEGIN SELECT RAISE(ABORT, 'breakglass: log entries a checkpoint covers cannot be removed unless archived'); END;
