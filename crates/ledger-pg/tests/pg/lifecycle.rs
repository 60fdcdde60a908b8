//! Reopening, two ledgers on one schema, and records with their transfers.
