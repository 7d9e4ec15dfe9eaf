-- Team mode: each member's newest cosignature (C2SP tlog-cosignature v1) of a checkpoint it
-- verified, one row per witness, so every member sees what the others verified and a log that
-- showed members different histories is caught. The database is not trusted with them: each
-- row is verified against the witness's enrolled key by whoever reads it.
CREATE TABLE cosignatures (
    witness    TEXT   PRIMARY KEY,
    size       BIGINT NOT NULL CHECK (size > 0),
    checkpoint TEXT   NOT NULL,
    signature  TEXT   NOT NULL
);
