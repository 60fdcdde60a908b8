//! What `open` checks before a writer starts, as the sled ledger's open does: cheaply, the
//! tail of the books it must vouch for (the records after the last checkpoint or signed head,
//! never the whole history, which is the audit's job).

use ed25519_dalek::VerifyingKey;
use kakehashi_ledger::engine::{
    BalancesDigest, Checkpoint, GENESIS_HASH, SignedHead, decode_journal_record,
};

use crate::sql::Txn;
use crate::{Error, codec};

fn corrupt(what: &str, detail: impl ToString) -> Error {
    Error::corrupt(
        format!("{what} (run the audit for the whole picture)"),
        detail,
    )
}

/// Checks the signatures of the last checkpoint and the last signed head under `key`, that
/// every record from the older of them to the head decodes, hashes to its stored hash (and
/// its hash column), names the hash before it and follows in sequence, that the signed hashes
/// and the head's are those of their records, and the balances the checkpoint signed when it
/// is the head.
pub(crate) async fn verify_tail(txn: &Txn<'_>, key: &VerifyingKey) -> Result<(), Error> {
    let meta = crate::writer::read_meta(txn, false).await?;
    let head = meta.head;
    let signed = match txn
        .query_opt(
            "SELECT signed_head FROM signed_heads ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(Error::database("reading the last signed head"))?
    {
        Some(row) => {
            let bytes: &[u8] = row
                .try_get(0)
                .map_err(Error::database("reading the last signed head"))?;
            let signed =
                SignedHead::decode(bytes).map_err(|error| corrupt("signed head", error))?;
            if !signed.verify(key) {
                return Err(corrupt(
                    "signed head",
                    format!(
                        "the signature at record {} fails under the node key",
                        signed.seq
                    ),
                ));
            }
            Some(signed)
        }
        None => None,
    };
    let checkpoint = match txn
        .query_opt(
            "SELECT checkpoint FROM checkpoints ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(Error::database("reading the last checkpoint"))?
    {
        Some(row) => {
            let bytes: &[u8] = row
                .try_get(0)
                .map_err(Error::database("reading the last checkpoint"))?;
            let checkpoint =
                Checkpoint::decode(bytes).map_err(|error| corrupt("checkpoint", error))?;
            if !checkpoint.verify(key) {
                return Err(corrupt(
                    "checkpoint",
                    format!(
                        "the signature at record {} fails under the node key",
                        checkpoint.seq
                    ),
                ));
            }
            Some(checkpoint)
        }
        None => None,
    };
    // From the older of the two signatures (the whole journal when none was taken yet).
    let from = match (&signed, &checkpoint) {
        (Some(signed), Some(checkpoint)) => signed.seq.min(checkpoint.seq),
        (Some(signed), None) => signed.seq,
        (None, Some(checkpoint)) => checkpoint.seq,
        (None, None) => 1,
    }
    .max(1);
    let rows = txn
        .query(
            "SELECT seq, hash, record FROM journal WHERE seq >= $1 ORDER BY seq",
            &[&codec::seq_column(from)],
        )
        .await
        .map_err(Error::database("reading the journal's tail"))?;
    let mut expected_seq = from;
    let mut prev: Option<[u8; 32]> = (from == 1).then_some(GENESIS_HASH);
    let mut last = (0, GENESIS_HASH);
    for row in rows {
        let seq: i64 = row
            .try_get(0)
            .map_err(Error::database("reading the journal"))?;
        let hash: &[u8] = row
            .try_get(1)
            .map_err(Error::database("reading the journal"))?;
        let bytes: &[u8] = row
            .try_get(2)
            .map_err(Error::database("reading the journal"))?;
        let seq = codec::seq(seq)?;
        let record = format!("journal record {seq}");
        let header = decode_journal_record(bytes).map_err(|error| corrupt(&record, error))?;
        if seq != expected_seq || header.seq != seq {
            return Err(corrupt(
                &record,
                format!(
                    "expected record {expected_seq}, found {} stored as {seq}",
                    header.seq
                ),
            ));
        }
        if header.computed_hash != header.stored_hash || hash != header.stored_hash.as_slice() {
            return Err(corrupt(&record, "its bytes do not hash to its stored hash"));
        }
        if prev.is_some_and(|prev| prev != header.prev_hash) {
            return Err(corrupt(
                &record,
                "it does not name the hash of the record before it",
            ));
        }
        for (what, covered_seq, covered_hash) in [
            (
                "signed head",
                signed.as_ref().map(|s| s.seq),
                signed.as_ref().map(|s| s.head),
            ),
            (
                "checkpoint",
                checkpoint.as_ref().map(|c| c.seq),
                checkpoint.as_ref().map(|c| c.head),
            ),
        ] {
            if covered_seq == Some(seq) && covered_hash != Some(header.stored_hash) {
                return Err(corrupt(
                    what,
                    format!("it signs another hash than record {seq}'s"),
                ));
            }
        }
        prev = Some(header.stored_hash);
        last = (seq, header.stored_hash);
        expected_seq = seq.saturating_add(1);
    }
    let covered_beyond = [
        signed.as_ref().map(|s| s.seq),
        checkpoint.as_ref().map(|c| c.seq),
    ]
    .into_iter()
    .flatten()
    .any(|seq| seq > last.0);
    if last != (head.seq, head.hash) || covered_beyond {
        return Err(corrupt(
            "journal head",
            format!(
                "the head names record {} but the journal ends at record {}",
                head.seq, last.0
            ),
        ));
    }
    if let Some(checkpoint) = checkpoint.filter(|checkpoint| checkpoint.seq == head.seq) {
        let rows = txn
            .query("SELECT account FROM accounts ORDER BY id", &[])
            .await
            .map_err(Error::database("reading accounts"))?;
        let mut digest = BalancesDigest::new();
        for row in rows {
            let bytes: &[u8] = row
                .try_get(0)
                .map_err(Error::database("reading accounts"))?;
            digest.add(&codec::account(bytes)?);
        }
        if digest.finish() != (checkpoint.balances_digest, checkpoint.accounts) {
            return Err(corrupt(
                "accounts",
                "the balances differ from those the checkpoint at the head signed",
            ));
        }
    }
    Ok(())
}
