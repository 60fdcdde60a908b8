//! The column encodings: ids as 16-byte big-endian `bytea`, timestamps as 8-byte big-endian
//! `bytea` (so that bytea order is numeric order and nothing is rounded), and the ledger's own
//! encodings for accounts, transfers and balances.

use kakehashi_ledger::engine::encoding;
use kakehashi_ledger::{Account, AccountBalance, PendingStatus, Timestamp, Transfer};

use crate::Error;

pub(crate) fn id(id: u128) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

pub(crate) fn decode_id(bytes: &[u8]) -> Result<u128, Error> {
    <[u8; 16]>::try_from(bytes)
        .map(u128::from_be_bytes)
        .map_err(|_| Error::corrupt("id", format!("{} bytes, not 16", bytes.len())))
}

pub(crate) fn timestamp(at: Timestamp) -> Vec<u8> {
    at.0.to_be_bytes().to_vec()
}

pub(crate) fn decode_timestamp(bytes: &[u8]) -> Result<Timestamp, Error> {
    <[u8; 8]>::try_from(bytes)
        .map(|bytes| Timestamp(u64::from_be_bytes(bytes)))
        .map_err(|_| Error::corrupt("timestamp", format!("{} bytes, not 8", bytes.len())))
}

pub(crate) fn hash(bytes: &[u8]) -> Result<[u8; 32], Error> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| Error::corrupt("hash", format!("{} bytes, not 32", bytes.len())))
}

pub(crate) fn seq(value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::corrupt("sequence number", value))
}

/// A journal sequence number as a `bigint` (journals never reach 2^63 records).
pub(crate) fn seq_column(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

pub(crate) fn account(bytes: &[u8]) -> Result<Account, Error> {
    encoding::decode_account(bytes).map_err(|error| Error::corrupt("account", error))
}

pub(crate) fn transfer(bytes: &[u8]) -> Result<Transfer, Error> {
    encoding::decode_transfer(bytes).map_err(|error| Error::corrupt("transfer", error))
}

pub(crate) fn balance(bytes: &[u8]) -> Result<AccountBalance, Error> {
    encoding::decode_balance(bytes).map_err(|error| Error::corrupt("account balance", error))
}

pub(crate) fn pending_status(value: i16) -> Result<PendingStatus, Error> {
    u8::try_from(value)
        .ok()
        .and_then(encoding::decode_pending_status)
        .ok_or_else(|| Error::corrupt("pending status", value))
}

pub(crate) fn pending_status_column(status: PendingStatus) -> i16 {
    i16::from(encoding::pending_status(status))
}

/// The smallest key above every key that starts with `prefix` (`None`: no such key, the
/// prefix is empty or all 0xff).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_timestamps_sort_as_bytes_like_the_numbers() {
        let ids = [
            0u128,
            1,
            255,
            256,
            u64::MAX as u128,
            u128::MAX - 1,
            u128::MAX,
        ];
        for pair in ids.windows(2) {
            assert!(id(pair[0]) < id(pair[1]));
            assert_eq!(decode_id(&id(pair[0])).expect("decodes"), pair[0]);
        }
        let times = [0u64, 1, 1 << 32, u64::MAX];
        for pair in times.windows(2) {
            assert!(timestamp(Timestamp(pair[0])) < timestamp(Timestamp(pair[1])));
        }
        assert!(decode_id(&[1, 2, 3]).is_err());
    }

    #[test]
    fn a_prefix_end_bounds_exactly_the_keys_with_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
