//! `kakehashi ledger statement`: one account's ISO 20022 camt.053.001.08 bank-to-customer
//! statement, read offline from a node's ledger (read-only, like the audit; refused while a
//! node holds the ledger).
//!
//! The opening booked balance is the account's posted balance before the period, the closing
//! one after it; each posted transfer in the period is a booked entry (a single-phase transfer,
//! or the posting of a reservation, dated when it was posted), and each reservation still
//! pending is an information entry. Voided and expired reservations moved nothing and are not
//! listed. Without `--to` the closing balance is checked against the account's posted balance
//! (what `ledger audit` recomputes from the journal), so the statement reconciles with the audit.
//!
//! The ledger's transfers hold each payment's UETR but not its end-to-end id; with the node's
//! payment records (`--payments DATA_DIR`, or the node's own with `--config`: the records its
//! ledger keeps, read offline like the pair audit's, before the statement opens the same
//! ledger) the entries quote it too:
//! an outbound payment's from its record, an inbound one's from the instruction its record
//! keeps (the sender found among the agreement's parties by the credit transfer's id).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use kakehashi_ledger::{
    Account, AccountId, ExportedTransfer, PendingStatus, Transfer, TransferFlags,
};
use kakehashi_node::store::Store;
use kakehashi_pki::UnixTime;
use kakehashi_proto::pb;
use kakehashi_protocol::instruction::{self, Uetr};
use kakehashi_protocol::iso20022::camt053::{self, Entry, Statement};
use kakehashi_protocol::money;
use kakehashi_protocol::transfer::{codes, credit_transfer_id};
use prost::Message as _;

use super::books::Books;

/// Nanoseconds per second: ledger timestamps are Unix nanoseconds.
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Seconds in a day.
const DAY_SECONDS: i64 = 86_400;

/// Where the payments' end-to-end ids are: the node's payment records, read before the
/// statement opens the ledger (they are the same database, which one reader holds at a time),
/// and the parties of the agreement (the possible senders of inbound payments).
pub(super) struct Payments {
    /// End-to-end ids of outbound payments, by UETR.
    outbound: BTreeMap<Uetr, String>,
    /// The instructions of inbound payments, by sender and UETR.
    inbound: BTreeMap<(String, Uetr), Vec<u8>>,
    parties: Vec<String>,
}

impl Payments {
    /// Reads what the statement needs from `store` (every outbound record's end-to-end id,
    /// every inbound record's instruction from `parties`), then lets the store go.
    pub(super) async fn load(store: Store, parties: Vec<String>) -> anyhow::Result<Self> {
        let outbound = store
            .outbound_all()
            .await
            .context("reading the payment store")?
            .into_iter()
            .map(|(uetr, record)| (uetr, record.end_to_end_id))
            .collect();
        let mut inbound = BTreeMap::new();
        for party in &parties {
            let records = store
                .inbound_all(party)
                .await
                .context("reading the payment store")?;
            inbound.extend(
                records
                    .into_iter()
                    .map(|(uetr, record)| ((party.clone(), uetr), record.signed_instruction)),
            );
        }
        Ok(Self {
            outbound,
            inbound,
            parties,
        })
    }

    /// The end-to-end id of the payment `uetr` that the transfer `t` belongs to, if the store
    /// has it.
    fn end_to_end_id(&self, t: &Transfer, uetr: Uetr) -> anyhow::Result<Option<String>> {
        match t.code {
            codes::OUTBOUND => Ok(self.outbound.get(&uetr).cloned()),
            codes::INBOUND => {
                // The credit's id derives from the sender and the UETR: it names the sender.
                let Some(sender) = self
                    .parties
                    .iter()
                    .find(|code| credit_transfer_id(code, &uetr.0) == t.id.0)
                else {
                    return Ok(None);
                };
                let Some(signed_instruction) = self.inbound.get(&(sender.clone(), uetr)) else {
                    return Ok(None);
                };
                // The instruction it kept, signed by the sender's bank and verified when it
                // arrived; only its end-to-end id is read here.
                let id = pb::Signed::decode(signed_instruction.as_slice())
                    .ok()
                    .and_then(|signed| instruction::decode(&signed).ok())
                    .map(|decoded| decoded.end_to_end_id);
                Ok(id)
            }
            _ => Ok(None),
        }
    }
}

/// The period asked for: whole UTC days, `from` inclusive, `to` inclusive.
pub(super) struct Period {
    pub(super) from: Option<time::Date>,
    pub(super) to: Option<time::Date>,
}

/// Writes the camt.053 statement of `account` in `books` to `out`; returns the statement for
/// the summary line.
pub(super) fn write_statement(
    books: &Books,
    account: u128,
    period: &Period,
    out: &Path,
    now: UnixTime,
    payments: Option<&Payments>,
) -> anyhow::Result<Statement> {
    let (accounts, transfers) = books.accounts_and_transfers()?;
    let Some(found) = accounts.into_iter().find(|a| a.id == AccountId(account)) else {
        bail!(
            "the ledger in {} has no account {account}",
            books.label().display()
        );
    };
    let statement = statement(&found, &transfers, period, now, payments)?;
    let xml = camt053::write(&statement)?;
    std::fs::write(out, xml).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(statement)
}

/// The statement of `account` from the ledger's `transfers`.
pub(super) fn statement(
    account: &Account,
    transfers: &[ExportedTransfer],
    period: &Period,
    now: UnixTime,
    payments: Option<&Payments>,
) -> anyhow::Result<Statement> {
    let currency = u16::try_from(account.ledger)
        .ok()
        .and_then(money::currency_by_numeric)
        .with_context(|| {
            format!(
                "account {} is in ledger {}, not a currency kakehashi knows",
                account.id.0, account.ledger
            )
        })?;
    if let (Some(from), Some(to)) = (period.from, period.to)
        && to < from
    {
        bail!("--to {to} is before --from {from}");
    }
    let created = seconds(account.timestamp.unix_nanos());
    let from = period.from.map_or(created, day_start);
    // The end of the last day; without --to, now.
    let to = period.to.map_or(now, |d| {
        UnixTime(day_start(d).0.saturating_add(DAY_SECONDS - 1))
    });
    let pending: BTreeMap<u128, &Transfer> = transfers
        .iter()
        .filter(|t| t.transfer.flags.contains(TransferFlags::PENDING))
        .map(|t| (t.transfer.id.0, &t.transfer))
        .collect();
    let id = account.id;
    let mut opening: i128 = 0;
    let mut closing: i128 = 0;
    let mut entries: Vec<(u64, Entry)> = Vec::new();
    for item in transfers {
        let t = &item.transfer;
        let credit = t.credit_account_id == id;
        if !credit && t.debit_account_id != id {
            continue;
        }
        let at = t.timestamp.unix_nanos();
        let at_seconds = seconds(at);
        let pending_now = t.flags.contains(TransferFlags::PENDING)
            && item.pending_status == Some(PendingStatus::Pending);
        let posted = !t.flags.contains(TransferFlags::PENDING)
            && !t.flags.contains(TransferFlags::VOID_PENDING_TRANSFER);
        if !posted && !pending_now {
            continue;
        }
        if posted {
            let signed = i128::try_from(t.amount).context("an amount beyond 2^127")?;
            let signed = if credit { signed } else { -signed };
            if at_seconds.0 < from.0 {
                opening = opening.checked_add(signed).context("balance overflow")?;
            }
            if at_seconds.0 <= to.0 {
                closing = closing.checked_add(signed).context("balance overflow")?;
            }
        }
        if at_seconds.0 < from.0 || at_seconds.0 > to.0 {
            continue;
        }
        // A posting inherits its reservation's UETR (the ledger copies it); look there too.
        let uetr_bits = if t.user_data_128 != 0 {
            t.user_data_128
        } else {
            pending.get(&t.pending_id.0).map_or(0, |p| p.user_data_128)
        };
        let uetr = (matches!(t.code, codes::OUTBOUND | codes::INBOUND) && uetr_bits != 0)
            .then(|| Uetr(uetr_bits.to_be_bytes()));
        let end_to_end_id = match (payments, uetr) {
            (Some(payments), Some(uetr)) => payments.end_to_end_id(t, uetr)?,
            _ => None,
        };
        entries.push((
            at,
            Entry {
                amount_minor: t.amount,
                credit,
                booked: posted,
                booked_at: at_seconds,
                reference: format!("{:032x}", t.id.0),
                kind: kind(t.code),
                uetr,
                end_to_end_id,
            },
        ));
    }
    entries.sort_by_key(|(at, entry)| (*at, entry.reference.clone()));
    if period.to.is_none() {
        let posted = i128::try_from(account.credits_posted)
            .ok()
            .zip(i128::try_from(account.debits_posted).ok())
            .map(|(c, d)| c - d);
        if posted != Some(closing) {
            bail!(
                "account {}: its transfers add up to {closing} but its posted balance is {}; \
                 run `kakehashi ledger audit` on this ledger",
                id.0,
                posted.map_or_else(|| "beyond 2^127".to_owned(), |p| p.to_string())
            );
        }
    }
    Ok(Statement {
        message_id: format!("KKH-STMT-{}-{}", id.0.min(u128::from(u64::MAX)), now.0),
        created: now,
        account: id.0,
        currency,
        from,
        to,
        opening,
        closing,
        entries: entries.into_iter().map(|(_, e)| e).collect(),
    })
}

/// The proprietary bank transaction code of a ledger transfer code.
fn kind(code: u16) -> String {
    match code {
        codes::GENESIS => "GENESIS".to_owned(),
        codes::FUNDING => "FUNDING".to_owned(),
        codes::OUTBOUND => "OUTBOUND".to_owned(),
        codes::INBOUND => "INBOUND".to_owned(),
        codes::CLOSING => "CLOSING".to_owned(),
        codes::SWEEP => "SWEEP".to_owned(),
        other => format!("CODE-{other}"),
    }
}

/// Whole seconds of Unix nanoseconds.
fn seconds(nanos: u64) -> UnixTime {
    UnixTime(i64::try_from(nanos / NANOS_PER_SECOND).unwrap_or(i64::MAX))
}

/// 00:00:00 UTC of `date`.
fn day_start(date: time::Date) -> UnixTime {
    UnixTime(date.midnight().assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use kakehashi_ledger::{Ledger, NewAccount, NewTransfer, Options, Timestamp, TransferId};

    use super::*;

    /// The official camt.053.001.08 schema's verdict, by the protocol crate's own check.
    fn validate(xml: &str) {
        kakehashi_protocol::iso20022::schema::validate(xml, "camt.053.001.08.xsd");
    }

    const DAY: u64 = 86_400 * NANOS_PER_SECOND;
    /// 2026-12-07T00:00:00Z.
    const DEC_7: u64 = 1_796_601_600 * NANOS_PER_SECOND;

    /// A ledger with a customer account 1001 (JPY) funded on 6 December, a payment out posted
    /// on 7 December, one voided and one still pending.
    fn ledger() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let ledger = Ledger::open(dir.path(), key, Options::default()).expect("opens");
        // Every transfer must take effect, or the fixture is not what the test says.
        let transfers = |batch: &[NewTransfer], at: u64| {
            let results = ledger
                .create_transfers(batch, Timestamp(at))
                .expect("written");
            assert!(results.iter().all(|r| r.is_recorded()), "{results:?}");
        };
        let accounts = [1001, 9001, 9002].map(|id| NewAccount {
            id: AccountId(id),
            ledger: 392,
            code: 1,
            ..NewAccount::default()
        });
        ledger
            .create_accounts(&accounts, Timestamp(DEC_7 - 2 * DAY))
            .expect("accounts");
        let plain = |id, debit, credit, amount, code| NewTransfer {
            id: TransferId(id),
            debit_account_id: AccountId(debit),
            credit_account_id: AccountId(credit),
            amount,
            ledger: 392,
            code,
            ..NewTransfer::default()
        };
        transfers(
            &[plain(1, 9001, 1001, 500_000, codes::GENESIS)],
            DEC_7 - DAY,
        );
        let uetr = u128::from_be_bytes(
            Uetr::parse("3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11")
                .expect("uetr")
                .0,
        );
        let reserve = |id, amount| NewTransfer {
            flags: TransferFlags::PENDING,
            user_data_128: uetr + id,
            ..plain(id, 1001, 9002, amount, codes::OUTBOUND)
        };
        transfers(
            &[reserve(10, 25_000), reserve(20, 1_000), reserve(30, 7_000)],
            DEC_7 + 3600 * NANOS_PER_SECOND,
        );
        let resolve = |id, pending, amount, flags| NewTransfer {
            id: TransferId(id),
            pending_id: TransferId(pending),
            amount,
            flags,
            ..NewTransfer::default()
        };
        transfers(
            &[
                resolve(11, 10, 25_000, TransferFlags::POST_PENDING_TRANSFER),
                resolve(21, 20, 1_000, TransferFlags::VOID_PENDING_TRANSFER),
            ],
            DEC_7 + 3601 * NANOS_PER_SECOND,
        );
        ledger.close().expect("closed");
        dir
    }

    fn now() -> UnixTime {
        UnixTime(i64::try_from(DEC_7 / NANOS_PER_SECOND).expect("fits") + 2 * DAY_SECONDS)
    }

    #[test]
    fn a_statement_books_posted_transfers_and_lists_pending_ones() {
        let dir = ledger();
        let out = dir.path().join("statement.xml");
        let whole = Period {
            from: None,
            to: None,
        };
        let s = write_statement(&Books::sled(dir.path()), 1001, &whole, &out, now(), None)
            .expect("statement");
        // Opening at the account's creation: nothing yet; closing the posted balance.
        assert_eq!((s.opening, s.closing), (0, 475_000));
        let booked: Vec<(u128, bool, bool)> = s
            .entries
            .iter()
            .map(|e| (e.amount_minor, e.credit, e.booked))
            .collect();
        // Funding (credit), the payment's posting (debit); the pending reservation as
        // information; the voided one and the reservation behind the posting are not listed.
        assert_eq!(
            booked,
            [
                (500_000, true, true),
                (7_000, false, false),
                (25_000, false, true)
            ]
        );
        let posting = &s.entries[2];
        assert_eq!(posting.kind, "OUTBOUND");
        assert_eq!(
            posting.uetr.map(|u| u.to_string()).as_deref(),
            Some("3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f1b"),
            "the posting quotes its reservation's UETR"
        );
        let xml = std::fs::read_to_string(&out).expect("written");
        assert!(xml.contains("<Cd>CLBD</Cd>"), "{xml}");
        validate(&xml);

        // 7 December alone: opened with the funding, closed after the payment.
        let day = Period {
            from: Some(time::macros::date!(2026 - 12 - 07)),
            to: Some(time::macros::date!(2026 - 12 - 07)),
        };
        let s = write_statement(&Books::sled(dir.path()), 1001, &day, &out, now(), None)
            .expect("statement");
        assert_eq!((s.opening, s.closing), (500_000, 475_000));
        assert_eq!(s.entries.len(), 2);
        validate(&std::fs::read_to_string(&out).expect("written"));
        // 5 December: before everything.
        let before = Period {
            from: Some(time::macros::date!(2026 - 12 - 05)),
            to: Some(time::macros::date!(2026 - 12 - 05)),
        };
        let s = write_statement(&Books::sled(dir.path()), 1001, &before, &out, now(), None)
            .expect("statement");
        assert_eq!((s.opening, s.closing, s.entries.len()), (0, 0, 0));
    }

    #[test]
    fn an_unknown_account_or_a_reversed_period_is_refused() {
        let dir = ledger();
        let out = dir.path().join("statement.xml");
        let whole = Period {
            from: None,
            to: None,
        };
        let err =
            write_statement(&Books::sled(dir.path()), 4242, &whole, &out, now(), None).unwrap_err();
        assert!(format!("{err:#}").contains("no account 4242"), "{err:#}");
        let reversed = Period {
            from: Some(time::macros::date!(2026 - 12 - 07)),
            to: Some(time::macros::date!(2026 - 12 - 06)),
        };
        let err = write_statement(&Books::sled(dir.path()), 1001, &reversed, &out, now(), None)
            .unwrap_err();
        assert!(format!("{err:#}").contains("before --from"), "{err:#}");
    }
}
