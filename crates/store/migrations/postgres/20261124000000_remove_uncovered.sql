-- Team mode: apps append entries that the broker then verifies and covers with its checkpoint.
-- An entry that fails verification (a row written into the database directly) is removed by the
-- broker, with what was appended on top of it, before any checkpoint covers them. Entries a
-- checkpoint covers stay append-only; updates stay refused.
CREATE FUNCTION breakglass_only_uncovered() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.idx < (SELECT COALESCE(MAX(size), 0) FROM checkpoints) THEN
        RAISE EXCEPTION 'breakglass: log entry % is covered by a checkpoint and cannot be removed', OLD.idx;
    END IF;
    RETURN OLD;
END;
$$;

DROP TRIGGER log_entries_append_only ON log_entries;
CREATE TRIGGER log_entries_no_update BEFORE UPDATE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION breakglass_append_only();
CREATE TRIGGER log_entries_only_uncovered_removed BEFORE DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION breakglass_only_uncovered();
