//! `audit_pair` on books built in memory: a pair that agrees, and each kind of finding.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kakehashi_ledger::{AccountId, PendingStatus, Timestamp, Transfer, TransferFlags, TransferId};
use kakehashi_node::store::{
    AccountKind, InboundRecord, InboundState, OutboundRecord, OutboundState,
};
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb;
use prost::Message as _;

use kakehashi_protocol::bank::{self, Bank, InstructionOptions, Order};
use kakehashi_protocol::instruction::{self, Uetr};
use kakehashi_protocol::money::{self, Currency, Rate};
use kakehashi_protocol::quote::{self, QuoteAsk, QuoteIssuer, QuoteOffer};
use kakehashi_protocol::receipt;
use kakehashi_protocol::transfer::{codes, credit_transfer_id, transfer_id};

use super::{AccountView, Amount, Booked, DiscrepancyKind, NodeBooks, PairReport, audit_pair};
use crate::test_support::{at_2027, certs, chain, key, mra};

/// One end of the test corridor, as the committed dev PKI and devnet configs have it.
struct Side {
    code: &'static str,
    dir: &'static str,
    currency: &'static str,
    bank: &'static str,
    customer: u128,
    corridor: u128,
    liquidity: u128,
    mid_to_peer: &'static str,
}

const JP: Side = Side {
    code: "JP",
    dir: "jp",
    currency: "JPY",
    bank: "KKHAJPJ0",
    customer: 1001,
    corridor: 9002,
    liquidity: 9003,
    mid_to_peer: "0.0087",
};

const SG: Side = Side {
    code: "SG",
    dir: "sg",
    currency: "SGD",
    bank: "KKHASGS0",
    customer: 2001,
    corridor: 9102,
    liquidity: 9103,
    mid_to_peer: "114.9",
};

/// Funds in each liquidity account before any payment.
const FUNDED: u128 = 1_000_000_000;

fn currency(side: &Side) -> &'static Currency {
    money::currency(side.currency).expect("known currency")
}

fn books(side: &Side, peer: &Side) -> NodeBooks {
    let numeric = u32::from(currency(side).numeric);
    let mut accounts = BTreeMap::new();
    accounts.insert(
        side.corridor,
        AccountView {
            ledger: numeric,
            code: AccountKind::Corridor.ledger_code(),
            ..AccountView::default()
        },
    );
    accounts.insert(
        side.liquidity,
        AccountView {
            ledger: numeric,
            code: AccountKind::Liquidity.ledger_code(),
            credits_posted: FUNDED,
            ..AccountView::default()
        },
    );
    NodeBooks {
        jurisdiction: side.code.to_owned(),
        currency: currency(side),
        data_dir: PathBuf::from(side.dir),
        peer: peer.code.to_owned(),
        corridor_account: side.corridor,
        liquidity_account: side.liquidity,
        clock_skew_secs: 30,
        accounts,
        transfers: vec![Booked {
            transfer: Transfer {
                id: TransferId(transfer_id(b"genesis", &side.liquidity.to_be_bytes())),
                debit_account_id: AccountId(1),
                credit_account_id: AccountId(side.liquidity),
                amount: FUNDED,
                ledger: numeric,
                code: codes::GENESIS,
                ..transfer()
            },
            status: None,
        }],
        outbound: BTreeMap::new(),
        inbound: BTreeMap::new(),
        ledger_audit: None,
    }
}

fn transfer() -> Transfer {
    Transfer {
        id: TransferId(0),
        debit_account_id: AccountId(0),
        credit_account_id: AccountId(0),
        amount: 0,
        pending_id: TransferId(0),
        user_data_128: 0,
        user_data_64: 0,
        user_data_32: 0,
        timeout: 0,
        ledger: 0,
        code: 0,
        flags: TransferFlags::NONE,
        timestamp: Timestamp(0),
    }
}

/// A version-4 UETR made from `n`.
pub(super) fn uetr(n: u8) -> Uetr {
    let mut bytes = [n; 16];
    bytes[6] = 0x40 | (n & 0x0f);
    bytes[8] = 0x80 | (n & 0x3f);
    Uetr(bytes)
}

/// The pair's books and the payments in them, in the state the protocol leaves them.
struct Fixture {
    jp: NodeBooks,
    sg: NodeBooks,
    mra: Mra,
}

impl Fixture {
    fn new() -> Self {
        Self {
            jp: books(&JP, &SG),
            sg: books(&SG, &JP),
            mra: mra(),
        }
    }

    fn books_mut(&mut self, side: &Side) -> &mut NodeBooks {
        if side.code == "JP" {
            &mut self.jp
        } else {
            &mut self.sg
        }
    }

    /// Sends `amount` (minor units) from `from` to `to` and settles it on both books,
    /// with a real signed quote, instruction and receipt. Returns the UETR and the
    /// amount credited.
    fn settle(&mut self, from: &Side, to: &Side, n: u8, amount: u128) -> (Uetr, u128) {
        let id = uetr(n);
        let t = at_2027();
        let issuer = QuoteIssuer {
            jurisdiction: from.code.to_owned(),
            key: key(&format!("{}/node/receipt.key.pem", from.dir)),
            chain: chain(&format!("{}/node/receipt.pem", from.dir)),
            ttl_secs: 60,
        };
        let quote = issuer
            .issue(
                &QuoteOffer {
                    counterparty: to.code,
                    source: (currency(from), amount),
                    target_currency: currency(to),
                    mid: Rate::parse(from.mid_to_peer).expect("rate"),
                    spread_bps: 25,
                },
                t,
                format!("Q-{n}"),
            )
            .expect("quote");
        let asked = QuoteAsk {
            source: (currency(from), amount),
            counterparty: to.code.to_owned(),
            target_currency: currency(to),
        };
        let quote = quote::verify_quote_for(quote, &asked, &self.mra, from.code, t, 30)
            .expect("quote verifies");
        let target = quote.terms().target.1;
        let bank = Bank::load(
            &certs(&format!("{}/banks/{}.pem", from.dir, from.bank)),
            &certs(&format!("{}/banks/{}.key.pem", from.dir, from.bank)),
        )
        .expect("bank");
        let order = Order {
            debtor_account: from.customer,
            debtor_name: "Debtor".into(),
            creditor_agent_bic: to.bank.into(),
            creditor_account: to.customer,
            creditor_name: "Creditor".into(),
            remittance_information: String::new(),
        };
        let options = InstructionOptions::default();
        let signed_instr = bank::instruction(&bank, &order, &quote, id, t, &options);
        let instr = instruction::decode(&signed_instr).expect("decodes");
        let stamp = Timestamp::from_unix_nanos(
            u64::try_from(t.0).expect("positive") * 1_000_000_000 + u64::from(n),
        );
        let reservation = Transfer {
            id: TransferId(transfer_id(b"reserve", &id.0)),
            debit_account_id: AccountId(from.customer),
            credit_account_id: AccountId(from.corridor),
            amount,
            user_data_128: u128::from_be_bytes(id.0),
            ledger: u32::from(currency(from).numeric),
            code: codes::OUTBOUND,
            flags: TransferFlags::PENDING,
            timestamp: stamp,
            ..transfer()
        };
        let post = Transfer {
            id: TransferId(transfer_id(b"post", &id.0)),
            pending_id: reservation.id,
            flags: TransferFlags::POST_PENDING_TRANSFER,
            ..reservation
        };
        let credit = Transfer {
            id: TransferId(credit_transfer_id(from.code, &id.0)),
            debit_account_id: AccountId(to.liquidity),
            credit_account_id: AccountId(to.customer),
            amount: target,
            user_data_128: u128::from_be_bytes(id.0),
            ledger: u32::from(currency(to).numeric),
            code: codes::INBOUND,
            timestamp: stamp,
            ..transfer()
        };
        let receipt = receipt::build_receipt(
            &instr,
            to.code,
            from.code,
            (currency(to), target),
            credit.id.0,
            t,
        );
        let signed_receipt = receipt::sign_receipt(
            &receipt,
            &key(&format!("{}/node/receipt.key.pem", to.dir)),
            &chain(&format!("{}/node/receipt.pem", to.dir)),
        )
        .encode_to_vec();
        let sha = hex::encode(instr.payload_sha256);
        let sender = self.books_mut(from);
        sender.transfers.push(Booked {
            transfer: reservation,
            status: Some(PendingStatus::Posted),
        });
        sender.transfers.push(Booked {
            transfer: post,
            status: None,
        });
        sender.outbound.insert(
            id,
            OutboundRecord {
                state: OutboundState::Settled,
                signed_instruction: signed_instr.encode_to_vec(),
                instruction_sha256: sha.clone(),
                peer: to.code.into(),
                end_to_end_id: instr.end_to_end_id.clone(),
                debtor_account: from.customer,
                amount_minor: amount,
                reservation_id: reservation.id.0,
                reason_code: None,
                reason_detail: None,
                decided_by: Some(to.code.into()),
                receipt: Some(signed_receipt.clone()),
                credited_minor: Some(target),
                created_at: 1,
                updated_at: 1,
            },
        );
        let corridor = sender.accounts.get_mut(&from.corridor).expect("corridor");
        corridor.credits_posted += amount;
        let receiver = self.books_mut(to);
        receiver.transfers.push(Booked {
            transfer: credit,
            status: None,
        });
        receiver.inbound.insert(
            id,
            InboundRecord {
                state: InboundState::Settled,
                instruction_sha256: sha,
                sender: from.code.into(),
                reason_code: None,
                reason_detail: None,
                receipt: Some(signed_receipt),
                creditor_account: to.customer,
                credited_minor: target,
                credit_transfer_id: credit.id.0,
                signed_instruction: signed_instr.encode_to_vec(),
                updated_at: 1,
            },
        );
        let liquidity = receiver.accounts.get_mut(&to.liquidity).expect("liquidity");
        liquidity.debits_posted += target;
        (id, target)
    }

    fn audit(&self) -> PairReport {
        audit_pair(&self.jp, &self.sg, &self.mra)
    }
}

fn kinds(report: &PairReport, uetr: &Uetr) -> Vec<DiscrepancyKind> {
    let text = uetr.to_string();
    report
        .discrepancies
        .iter()
        .filter(|d| d.uetr.as_deref() == Some(text.as_str()))
        .map(|d| d.kind)
        .collect()
}

fn has(report: &PairReport, kind: DiscrepancyKind) -> bool {
    report.discrepancies.iter().any(|d| d.kind == kind)
}

fn remove_transfer(books: &mut NodeBooks, id: u128) {
    let before = books.transfers.len();
    books.transfers.retain(|b| b.transfer.id.0 != id);
    assert_eq!(books.transfers.len(), before - 1, "transfer {id} was there");
}

#[test]
fn settled_payments_both_ways_agree_and_reconcile() {
    let mut f = Fixture::new();
    let (_, to_sg) = f.settle(&JP, &SG, 1, 100_000);
    f.settle(&JP, &SG, 2, 2_500);
    let (_, to_jp) = f.settle(&SG, &JP, 3, 12_345);
    let report = f.audit();
    assert!(report.agrees(), "{:#?}", report.discrepancies);
    let [jp_sg, sg_jp] = &report.directions[..] else {
        panic!("two directions: {:?}", report.directions)
    };
    assert_eq!(
        (jp_sg.sender.as_str(), jp_sg.receiver.as_str()),
        ("JP", "SG")
    );
    assert_eq!((jp_sg.settled, jp_sg.rejected, jp_sg.in_doubt), (2, 0, 0));
    assert_eq!((sg_jp.settled, sg_jp.rejected, sg_jp.in_doubt), (1, 0, 0));
    assert!(jp_sg.position.reconciled && sg_jp.position.reconciled);
    assert_eq!(jp_sg.position.corridor_posted.to_string(), "102500 JPY");
    assert_eq!(
        jp_sg.position.settled_source,
        jp_sg.position.corridor_posted
    );
    assert_ne!(to_sg, 0);
    assert_eq!(sg_jp.position.corridor_posted.to_string(), "123.45 SGD");
    assert_eq!(
        sg_jp.position.liquidity_debited,
        Amount::of(currency(&JP), to_jp)
    );
    assert!(report.in_doubt.is_empty());
}

#[test]
fn a_posted_reservation_without_the_receivers_credit_is_a_missing_credit() {
    let mut f = Fixture::new();
    let (id, _) = f.settle(&JP, &SG, 1, 100_000);
    remove_transfer(&mut f.sg, credit_transfer_id(JP.code, &id.0));
    f.sg.inbound.remove(&id);
    let report = f.audit();
    assert!(!report.agrees());
    assert_eq!(kinds(&report, &id), [DiscrepancyKind::MissingCredit]);
    // The books no longer reconcile either: JP owes for a payment SG never paid out.
    assert!(has(&report, DiscrepancyKind::PositionDiffers));
    assert_eq!(report.directions[0].inconsistent, 1);
}

#[test]
fn a_credit_that_differs_from_the_quote_and_receipt_is_an_amount_difference() {
    let mut f = Fixture::new();
    let (id, target) = f.settle(&JP, &SG, 1, 100_000);
    let credit_id = credit_transfer_id(JP.code, &id.0);
    for booked in &mut f.sg.transfers {
        if booked.transfer.id.0 == credit_id {
            booked.transfer.amount = target + 1;
        }
    }
    let report = f.audit();
    let found = kinds(&report, &id);
    assert!(found.contains(&DiscrepancyKind::AmountDiffers), "{found:?}");
    let detail = report
        .discrepancies
        .iter()
        .find(|d| d.detail.contains("the quote gives"))
        .expect("the quote comparison is reported");
    assert_eq!(detail.node, "SG");
    assert!(has(&report, DiscrepancyKind::PositionDiffers));
}

#[test]
fn a_credit_without_any_reservation_is_an_orphan() {
    let mut f = Fixture::new();
    let (id, _) = f.settle(&JP, &SG, 1, 100_000);
    remove_transfer(&mut f.jp, transfer_id(b"reserve", &id.0));
    remove_transfer(&mut f.jp, transfer_id(b"post", &id.0));
    f.jp.outbound.remove(&id);
    let report = f.audit();
    assert!(
        kinds(&report, &id).contains(&DiscrepancyKind::CreditWithoutReservation),
        "{:#?}",
        report.discrepancies
    );
}

#[test]
fn an_extra_credit_carrying_a_settled_uetr_is_found() {
    let mut f = Fixture::new();
    let (id, target) = f.settle(&JP, &SG, 1, 100_000);
    f.sg.transfers.push(Booked {
        transfer: Transfer {
            id: TransferId(77),
            debit_account_id: AccountId(SG.liquidity),
            credit_account_id: AccountId(SG.customer),
            amount: target,
            user_data_128: u128::from_be_bytes(id.0),
            ledger: 702,
            code: codes::INBOUND,
            ..transfer()
        },
        status: None,
    });
    // Whatever the order the ledger lists them in, the protocol's credit is the one kept.
    f.sg.transfers.rotate_right(1);
    f.sg.accounts.get_mut(&SG.liquidity).unwrap().debits_posted += target;
    let report = f.audit();
    assert_eq!(kinds(&report, &id), [DiscrepancyKind::BookingWrong]);
    assert!(
        report.discrepancies[0]
            .detail
            .contains("credit 77 also carries")
    );
    // SG paid out twice for one payment: the liquidity position is off by one credit.
    assert!(has(&report, DiscrepancyKind::PositionDiffers));
}

#[test]
fn a_receipt_whose_signature_was_altered_is_unverifiable() {
    let mut f = Fixture::new();
    let (id, _) = f.settle(&JP, &SG, 1, 100_000);
    let tamper = |bytes: &mut Vec<u8>| {
        let mut signed = pb::Signed::decode(bytes.as_slice()).expect("decodes");
        signed.signature[0] ^= 1;
        *bytes = signed.encode_to_vec();
    };
    tamper(f.sg.inbound.get_mut(&id).unwrap().receipt.as_mut().unwrap());
    tamper(
        f.jp.outbound
            .get_mut(&id)
            .unwrap()
            .receipt
            .as_mut()
            .unwrap(),
    );
    let report = f.audit();
    assert_eq!(kinds(&report, &id), [DiscrepancyKind::ReceiptInvalid]);
    assert!(report.discrepancies[0].detail.contains("does not verify"));
    // The payment still settled on both ledgers.
    assert_eq!(report.directions[0].settled, 1);
}

#[test]
fn a_settled_record_without_its_receipt_is_found_even_when_the_sender_holds_one() {
    let mut f = Fixture::new();
    let (id, _) = f.settle(&JP, &SG, 1, 100_000);
    f.sg.inbound.get_mut(&id).unwrap().receipt = None;
    let report = f.audit();
    assert_eq!(kinds(&report, &id), [DiscrepancyKind::ReceiptInvalid]);
    assert_eq!(report.discrepancies[0].node, "SG");
}

#[test]
fn a_sender_copy_of_the_receipt_that_differs_is_found() {
    let mut f = Fixture::new();
    let (id, _) = f.settle(&JP, &SG, 1, 100_000);
    let (other, _) = f.settle(&JP, &SG, 2, 5_000);
    let wrong = f.jp.outbound[&other].receipt.clone();
    f.jp.outbound.get_mut(&id).unwrap().receipt = wrong;
    let report = f.audit();
    assert_eq!(kinds(&report, &id), [DiscrepancyKind::ReceiptInvalid]);
}

#[test]
fn a_pending_reservation_the_receiver_settled_is_sender_not_yet_resolved() {
    let mut f = Fixture::new();
    let (id, _) = f.settle(&JP, &SG, 1, 100_000);
    remove_transfer(&mut f.jp, transfer_id(b"post", &id.0));
    for booked in &mut f.jp.transfers {
        if booked.transfer.id.0 == transfer_id(b"reserve", &id.0) {
            booked.status = Some(PendingStatus::Pending);
        }
    }
    let record = f.jp.outbound.get_mut(&id).unwrap();
    record.state = OutboundState::Forwarded;
    record.receipt = None;
    record.credited_minor = None;
    let corridor = f.jp.accounts.get_mut(&JP.corridor).unwrap();
    corridor.credits_posted -= 100_000;
    corridor.credits_pending += 100_000;
    let report = f.audit();
    let found = kinds(&report, &id);
    assert_eq!(
        found,
        [DiscrepancyKind::SenderNotYetResolved],
        "{report:#?}"
    );
    assert!(report.discrepancies[0].repaired_by_recovery);
    assert!(
        report.in_doubt.is_empty(),
        "settled by the receiver: not merely in doubt"
    );
}

#[test]
fn a_pending_reservation_without_a_credit_is_in_doubt_and_not_a_discrepancy() {
    let mut f = Fixture::new();
    let (id, _) = f.settle(&JP, &SG, 1, 100_000);
    remove_transfer(&mut f.jp, transfer_id(b"post", &id.0));
    remove_transfer(&mut f.sg, credit_transfer_id(JP.code, &id.0));
    f.sg.inbound.remove(&id);
    f.sg.accounts.get_mut(&SG.liquidity).unwrap().debits_posted = 0;
    let record = f.jp.outbound.get_mut(&id).unwrap();
    record.state = OutboundState::Forwarded;
    record.receipt = None;
    let corridor = f.jp.accounts.get_mut(&JP.corridor).unwrap();
    corridor.credits_posted = 0;
    corridor.credits_pending = 100_000;
    let report = f.audit();
    assert!(report.agrees(), "{:#?}", report.discrepancies);
    assert_eq!(report.directions[0].in_doubt, 1);
    assert_eq!(report.in_doubt.len(), 1);
    assert_eq!(report.in_doubt[0].uetr, id.to_string());
    assert_eq!(report.in_doubt[0].reserved.to_string(), "100000 JPY");
    assert_eq!(
        report.in_doubt[0].sender_record.as_deref(),
        Some("forwarded")
    );
}

#[test]
fn a_crash_between_credit_and_record_on_both_sides_is_reported_as_repairable() {
    // The receiver credited and crashed before recording the decision; the sender's
    // reservation is still pending: exactly what the next status query and recovery fix.
    let mut f = Fixture::new();
    let (id, _) = f.settle(&JP, &SG, 1, 100_000);
    remove_transfer(&mut f.jp, transfer_id(b"post", &id.0));
    let record = f.jp.outbound.get_mut(&id).unwrap();
    record.state = OutboundState::Forwarded;
    record.receipt = None;
    record.credited_minor = None;
    let corridor = f.jp.accounts.get_mut(&JP.corridor).unwrap();
    corridor.credits_posted = 0;
    corridor.credits_pending = 100_000;
    let inbound = f.sg.inbound.get_mut(&id).unwrap();
    inbound.state = InboundState::Accepting;
    inbound.receipt = None;
    let report = f.audit();
    let mut found = kinds(&report, &id);
    found.sort();
    assert_eq!(
        found,
        [
            DiscrepancyKind::ReceiverNotYetRecorded,
            DiscrepancyKind::SenderNotYetResolved
        ],
        "{report:#?}"
    );
    // Including the corridor position, short by exactly the unposted payment.
    assert!(has(&report, DiscrepancyKind::PositionDiffers));
    assert!(
        report.discrepancies.iter().all(|d| d.repaired_by_recovery),
        "{report:#?}"
    );
}

#[test]
fn a_sender_that_stopped_before_reserving_is_in_doubt() {
    let mut f = Fixture::new();
    let (id, target) = f.settle(&JP, &SG, 1, 100_000);
    remove_transfer(&mut f.jp, transfer_id(b"reserve", &id.0));
    remove_transfer(&mut f.jp, transfer_id(b"post", &id.0));
    remove_transfer(&mut f.sg, credit_transfer_id(JP.code, &id.0));
    f.sg.inbound.remove(&id);
    f.jp.accounts.get_mut(&JP.corridor).unwrap().credits_posted = 0;
    f.sg.accounts.get_mut(&SG.liquidity).unwrap().debits_posted -= target;
    let record = f.jp.outbound.get_mut(&id).unwrap();
    record.state = OutboundState::Reserving;
    record.receipt = None;
    record.credited_minor = None;
    let report = f.audit();
    assert!(report.agrees(), "{:#?}", report.discrepancies);
    assert_eq!(report.in_doubt.len(), 1);
    assert_eq!(report.in_doubt[0].reserved.to_string(), "0 JPY");
    assert_eq!(
        report.in_doubt[0].sender_record.as_deref(),
        Some("reserving")
    );
}

/// Turns the settled payment `id` of JP → SG into one JP voided, SG having `inbound`.
fn void(f: &mut Fixture, id: Uetr, amount: u128) {
    let post = transfer_id(b"post", &id.0);
    for booked in &mut f.jp.transfers {
        if booked.transfer.id.0 == post {
            booked.transfer.id = TransferId(transfer_id(b"void", &id.0));
            booked.transfer.flags = TransferFlags::VOID_PENDING_TRANSFER;
        }
    }
    let record = f.jp.outbound.get_mut(&id).unwrap();
    record.state = OutboundState::Rejected;
    record.receipt = None;
    record.credited_minor = None;
    f.jp.accounts.get_mut(&JP.corridor).unwrap().credits_posted -= amount;
}

#[test]
fn a_voided_reservation_the_receiver_credited_is_credited_but_voided() {
    let mut f = Fixture::new();
    let (id, _) = f.settle(&JP, &SG, 1, 100_000);
    void(&mut f, id, 100_000);
    let report = f.audit();
    assert!(
        kinds(&report, &id).contains(&DiscrepancyKind::CreditedButVoided),
        "{:#?}",
        report.discrepancies
    );
}

#[test]
fn a_voided_reservation_the_receiver_fenced_is_a_clean_rejection() {
    let mut f = Fixture::new();
    let (id, target) = f.settle(&JP, &SG, 1, 100_000);
    void(&mut f, id, 100_000);
    remove_transfer(&mut f.sg, credit_transfer_id(JP.code, &id.0));
    f.sg.accounts.get_mut(&SG.liquidity).unwrap().debits_posted -= target;
    let record = f.sg.inbound.get_mut(&id).unwrap();
    record.state = InboundState::Fenced;
    record.receipt = None;
    let report = f.audit();
    assert!(report.agrees(), "{:#?}", report.discrepancies);
    assert_eq!(report.directions[0].rejected, 1);
    // But a receiver still accepting it could yet credit: that is flagged.
    f.sg.inbound.get_mut(&id).unwrap().state = InboundState::Accepting;
    assert_eq!(kinds(&f.audit(), &id), [DiscrepancyKind::RecordMismatch]);
}

#[test]
fn a_transfer_into_the_corridor_that_is_no_reservation_is_unexplained() {
    let mut f = Fixture::new();
    f.settle(&JP, &SG, 1, 100_000);
    f.jp.transfers.push(Booked {
        transfer: Transfer {
            id: TransferId(5),
            debit_account_id: AccountId(JP.customer),
            credit_account_id: AccountId(JP.corridor),
            amount: 10,
            ledger: 392,
            code: codes::FUNDING,
            ..transfer()
        },
        status: None,
    });
    f.jp.accounts.get_mut(&JP.corridor).unwrap().credits_posted += 10;
    let report = f.audit();
    assert!(has(&report, DiscrepancyKind::UnexplainedMovement));
    assert!(has(&report, DiscrepancyKind::PositionDiffers));
}

#[test]
fn a_corridor_account_in_the_wrong_currency_is_a_booking_error() {
    let mut f = Fixture::new();
    f.jp.accounts.get_mut(&JP.corridor).unwrap().ledger = 702;
    let report = f.audit();
    assert!(has(&report, DiscrepancyKind::BookingWrong));
}

/// Issue 13, item 3: an account closed by a closing transfer (a pending transfer of 0 from
/// the customer to the funding account), its balance swept in the same chain and reopened
/// by voiding the closing transfer, touches neither the corridor nor the liquidity account:
/// the pair still agrees and reconciles.
#[test]
fn closing_sweeping_and_reopening_a_customer_account_leave_the_pair_reconciled() {
    let mut f = Fixture::new();
    f.settle(&JP, &SG, 1, 100_000);
    f.settle(&SG, &JP, 2, 12_345);
    let funding = AccountId(1);
    let close = Transfer {
        id: TransferId(transfer_id(b"close", &[7; 24])),
        debit_account_id: AccountId(JP.customer),
        credit_account_id: funding,
        amount: 0,
        ledger: 392,
        code: codes::CLOSING,
        flags: TransferFlags::PENDING.union(TransferFlags::CLOSING_DEBIT),
        ..transfer()
    };
    let sweep = Transfer {
        id: TransferId(transfer_id(b"sweep", &[7; 24])),
        debit_account_id: AccountId(JP.customer),
        credit_account_id: funding,
        amount: 4_000,
        ledger: 392,
        code: codes::SWEEP,
        flags: TransferFlags::LINKED.union(TransferFlags::BALANCING_DEBIT),
        ..transfer()
    };
    let reopen = Transfer {
        id: TransferId(transfer_id(b"reopen", &[7; 24])),
        pending_id: close.id,
        flags: TransferFlags::VOID_PENDING_TRANSFER,
        ..close
    };
    for (transfer, status) in [
        (sweep, None),
        (close, Some(PendingStatus::Voided)),
        (reopen, None),
    ] {
        f.jp.transfers.push(Booked { transfer, status });
    }
    let report = f.audit();
    assert!(report.agrees(), "{:#?}", report.discrepancies);
    assert!(
        report.directions.iter().all(|d| d.position.reconciled),
        "{:?}",
        report.directions
    );
}
