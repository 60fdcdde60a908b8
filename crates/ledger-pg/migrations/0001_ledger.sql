-- kakehashi-ledger-pg schema version 1: one node's ledger and records, in the node's own
-- PostgreSQL schema (the connection's search_path names it).
--
-- Encodings: ids (u128) are 16-byte big-endian bytea and timestamps (u64 nanoseconds) 8-byte
-- big-endian bytea, so that bytea's byte order is the numbers' order and every value is exact;
-- accounts, transfers and balances are stored as the ledger's own fixed encodings (the bytes
-- the sled ledger stores), so both engines hold identical values.

-- The one row that serializes writers: every group commit locks it first (SELECT ... FOR UPDATE).
CREATE TABLE ledger_meta (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- The ledger's storage format (the ledger crate's journal encoding).
    format_version integer NOT NULL,
    -- The node's Ed25519 verifying key: reopening with another key is refused.
    verifying_key bytea NOT NULL CHECK (octet_length(verifying_key) = 32),
    -- The journal's head: the last record's sequence number and hash.
    head_seq bigint NOT NULL CHECK (head_seq >= 0),
    head_hash bytea NOT NULL CHECK (octet_length(head_hash) = 32),
    -- The ledger's clock: last event, last account and last transfer timestamps.
    clock_last bytea NOT NULL CHECK (octet_length(clock_last) = 8),
    clock_account bytea NOT NULL CHECK (octet_length(clock_account) = 8),
    clock_transfer bytea NOT NULL CHECK (octet_length(clock_transfer) = 8),
    -- The last record a signed head or checkpoint covers.
    signed_seq bigint NOT NULL CHECK (signed_seq >= 0)
);

CREATE TABLE accounts (
    id bytea PRIMARY KEY CHECK (octet_length(id) = 16),
    account bytea NOT NULL
);

CREATE TABLE transfers (
    id bytea PRIMARY KEY CHECK (octet_length(id) = 16),
    transfer bytea NOT NULL,
    -- Where it is in the journal: the record and the entry within it.
    seq bigint NOT NULL,
    entry integer NOT NULL
);

CREATE TABLE pending (
    id bytea PRIMARY KEY CHECK (octet_length(id) = 16),
    status smallint NOT NULL
);

CREATE TABLE expiry (
    expires_at bytea NOT NULL CHECK (octet_length(expires_at) = 8),
    id bytea NOT NULL CHECK (octet_length(id) = 16),
    PRIMARY KEY (expires_at, id)
);

CREATE TABLE history (
    account_id bytea NOT NULL CHECK (octet_length(account_id) = 16),
    at bytea NOT NULL CHECK (octet_length(at) = 8),
    balance bytea NOT NULL,
    PRIMARY KEY (account_id, at)
);

-- Transfer ids whose event failed with a transient result (a retry is id_already_failed).
CREATE TABLE failed (
    id bytea PRIMARY KEY CHECK (octet_length(id) = 16)
);

-- The hash-chained journal, one row per record, its bytes exactly the sled journal's.
CREATE TABLE journal (
    seq bigint PRIMARY KEY CHECK (seq > 0),
    hash bytea NOT NULL CHECK (octet_length(hash) = 32),
    record bytea NOT NULL
);

CREATE TABLE signed_heads (
    seq bigint PRIMARY KEY,
    signed_head bytea NOT NULL
);

CREATE TABLE checkpoints (
    seq bigint PRIMARY KEY,
    checkpoint bytea NOT NULL
);

-- The callers' records (a node's payment state): opaque key -> value.
CREATE TABLE records (
    key bytea PRIMARY KEY CHECK (octet_length(key) BETWEEN 1 AND 1024),
    value bytea NOT NULL CHECK (octet_length(value) <= 65536)
);
