-- Team mode: each member's newest cosignature (C2SP tlog-cosignature v1) of a checkpoint it
-- verified, one row per witness. An embedded log has no members; the table stays empty there.
CREATE TABLE cosignatures (
    witness    TEXT    PRIMARY KEY,
    size       INTEGER NOT NULL CHECK (size > 0),
    checkpoint TEXT    NOT NULL,
    signature  TEXT    NOT NULL
);
