//! Runs of the transfer index: which ids of a group share one index key (see
//! [`PREFIX_TRANSFER`](super::trees::PREFIX_TRANSFER)).

use crate::codec::{SPREAD_RUN_MAX, SpreadRun, StoredRun, TransferRun};
use crate::model::TransferId;

/// Splits located transfers (in record order) into runs of consecutive ids at consecutive
/// entries of one record (see [`PREFIX_TRANSFER`](super::trees::PREFIX_TRANSFER)).
fn packed_runs(locations: &[(TransferId, u64, u32)]) -> Vec<(TransferId, TransferRun)> {
    let mut runs: Vec<(TransferId, TransferRun)> = Vec::new();
    for &(id, seq, index) in locations {
        if let Some((first, run)) = runs.last_mut() {
            let next_id = first.0.checked_add(u128::from(run.len));
            let next_index = run.index.checked_add(run.len);
            if run.seq == seq && next_id == Some(id.0) && next_index == Some(index) {
                run.len += 1;
                continue;
            }
        }
        runs.push((id, TransferRun { seq, index, len: 1 }));
    }
    runs
}

/// Packed runs this short or shorter may join a spread run: below that a spread run's four
/// bytes per id cost less than a key per packed run; above it one packed key is cheaper.
const SPREAD_PIECE_MAX: u32 = 8;

/// The runs that index one group's transfers (see
/// [`PREFIX_TRANSFER`](super::trees::PREFIX_TRANSFER)): packed runs, with short ones whose ids
/// follow one another (in id order, whatever their records) merged into spread runs of up to
/// [`SPREAD_RUN_MAX`] ids.
pub(super) fn transfer_runs(locations: &[(TransferId, u64, u32)]) -> Vec<(TransferId, StoredRun)> {
    /// A short packed run waiting to join a spread run: its record as an offset from the
    /// group's first, and its entries `start..end`, all known to fit u16.
    struct Piece {
        first: TransferId,
        run: TransferRun,
        seq_offset: u16,
        start: u16,
        end: u16,
    }
    let mut packed = packed_runs(locations);
    packed.sort_unstable_by_key(|(first, _)| *first);
    let Some(base_seq) = locations.iter().map(|(_, seq, _)| *seq).min() else {
        return Vec::new();
    };
    let mut runs = Vec::with_capacity(packed.len());
    // Short packed runs whose ids follow one another, waiting to become one spread run.
    let mut pending: Vec<Piece> = Vec::new();
    let mut pending_ids = 0usize;
    let flush = |pending: &mut Vec<Piece>, runs: &mut Vec<(TransferId, StoredRun)>| {
        match pending.as_slice() {
            [] => {}
            [piece] => runs.push((piece.first, StoredRun::Packed(piece.run))),
            [first, ..] => {
                let entries = pending
                    .iter()
                    .flat_map(|piece| {
                        (piece.start..piece.end).map(|index| (piece.seq_offset, index))
                    })
                    .collect();
                runs.push((
                    first.first,
                    StoredRun::Spread(SpreadRun { base_seq, entries }),
                ));
            }
        }
        pending.clear();
    };
    for (first, run) in packed {
        let piece = (run.len <= SPREAD_PIECE_MAX)
            .then(|| {
                let seq_offset = u16::try_from(run.seq.checked_sub(base_seq)?).ok()?;
                let start = u16::try_from(run.index).ok()?;
                let end = start.checked_add(u16::try_from(run.len).ok()?)?;
                Some(Piece {
                    first,
                    run,
                    seq_offset,
                    start,
                    end,
                })
            })
            .flatten();
        let Some(piece) = piece else {
            flush(&mut pending, &mut runs);
            pending_ids = 0;
            runs.push((first, StoredRun::Packed(run)));
            continue;
        };
        let len = usize::from(piece.end - piece.start);
        let follows = pending.last().is_some_and(|last| {
            last.first.0.checked_add(u128::from(last.run.len)) == Some(first.0)
        });
        if !follows || pending_ids.saturating_add(len) > SPREAD_RUN_MAX {
            flush(&mut pending, &mut runs);
            pending_ids = 0;
        }
        pending.push(piece);
        pending_ids = pending_ids.saturating_add(len);
    }
    flush(&mut pending, &mut runs);
    runs
}

#[cfg(test)]
mod tests;
