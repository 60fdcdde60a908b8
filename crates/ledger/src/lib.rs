//! kakehashi-ledger (placeholder during bootstrap)
