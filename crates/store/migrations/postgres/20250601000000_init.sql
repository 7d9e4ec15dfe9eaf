-- The log: opaque entry bytes at contiguous indexes, and the signed checkpoints covering them.
CREATE TABLE log_entries (
    idx   BIGINT PRIMARY KEY CHECK (idx >= 0),
    entry BYTEA  NOT NULL
);

CREATE TABLE checkpoints (
    size BIGINT PRIMARY KEY CHECK (size > 0),
    note TEXT   NOT NULL
);

-- Append-only by construction: a bug or a stray statement cannot rewrite history. This is a guard
-- rail, not a security boundary (a superuser can drop it); verification is.
CREATE FUNCTION breakglass_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'breakglass: % is append-only', TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER log_entries_append_only BEFORE UPDATE OR DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION breakglass_append_only();
CREATE TRIGGER log_entries_no_truncate BEFORE TRUNCATE ON log_entries
    FOR EACH STATEMENT EXECUTE FUNCTION breakglass_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION breakglass_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION breakglass_append_only();
