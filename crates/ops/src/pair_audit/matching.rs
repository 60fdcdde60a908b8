//! Matching one direction's payments by UETR: the sender's reservations into corridor[peer]
//! (with their post or void) against the receiver's credits from liquidity[peer], and how
//! each payment stands across the pair.

use std::collections::{BTreeMap, BTreeSet};

use kakehashi_ledger::{PendingStatus, Transfer, TransferFlags, TransferId};
use kakehashi_node::store::{InboundRecord, OutboundRecord, OutboundState};

use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::transfer::{codes, credit_transfer_id, transfer_id};

use super::position::Sums;
use super::report::{
    Amount, DirectionReport, DiscrepancyKind, IN_DOUBT_LISTED_MAX, InDoubt, PairReport,
    inbound_state_name, outbound_state_name,
};
use super::{Booked, Credited, Leg, Reserved, Standing};

impl<'a> Leg<'a> {
    /// Checks this direction's accounts and every payment in it, and reconciles its position.
    pub(super) fn check(&self, report: &mut PairReport) -> DirectionReport {
        let (s, r) = (self.sender, self.receiver);
        self.check_accounts(report);
        let reservations = self.reservations(report);
        let credits = self.credits(report);
        let uetrs: BTreeSet<Uetr> = reservations
            .keys()
            .chain(credits.keys())
            .chain(s.outbound.keys())
            .chain(r.inbound.keys())
            .copied()
            .collect();
        let mut direction = DirectionReport {
            sender: s.jurisdiction.clone(),
            receiver: r.jurisdiction.clone(),
            payments: uetrs.len() as u64,
            settled: 0,
            rejected: 0,
            in_doubt: 0,
            inconsistent: 0,
            position: self.empty_position(),
        };
        let mut sums = Sums::zero();
        for uetr in &uetrs {
            let standing = self.check_payment(
                report,
                uetr,
                reservations.get(uetr).copied(),
                credits.get(uetr).copied(),
                &mut sums,
            );
            match standing {
                Standing::Settled => direction.settled += 1,
                Standing::Rejected => direction.rejected += 1,
                Standing::InDoubt => direction.in_doubt += 1,
                Standing::Inconsistent => direction.inconsistent += 1,
            }
        }
        direction.position = self.position(report, &sums);
        direction
    }

    /// The sender's reservations into the corridor, by UETR; flags every other movement of
    /// the corridor account.
    fn reservations(&self, report: &mut PairReport) -> BTreeMap<Uetr, Reserved<'a>> {
        let s = self.sender;
        let corridor = s.corridor_account;
        let mut resolutions: BTreeMap<u128, &'a Transfer> = BTreeMap::new();
        let mut pending: Vec<&'a Booked> = Vec::new();
        for booked in &s.transfers {
            let t = &booked.transfer;
            if t.debit_account_id.0 != corridor && t.credit_account_id.0 != corridor {
                continue;
            }
            if t.flags.resolves_pending() {
                resolutions.insert(t.pending_id.0, t);
            } else if t.flags.contains(TransferFlags::PENDING) && t.credit_account_id.0 == corridor
            {
                pending.push(booked);
            } else {
                report.flag(
                    DiscrepancyKind::UnexplainedMovement,
                    &s.jurisdiction,
                    None,
                    format!(
                        "transfer {} (code {}) moves {} between accounts {} and {} on the \
                         corridor to {}, but is not a payment reservation",
                        t.id.0,
                        t.code,
                        Amount::of(s.currency, t.amount),
                        t.debit_account_id.0,
                        t.credit_account_id.0,
                        s.peer
                    ),
                );
            }
        }
        let mut reservations = BTreeMap::new();
        for booked in pending {
            let t = &booked.transfer;
            let uetr = Uetr(t.user_data_128.to_be_bytes());
            let state = match resolutions.remove(&t.id.0) {
                Some(r) if r.flags.contains(TransferFlags::POST_PENDING_TRANSFER) => {
                    Reserved::Posted(t, r)
                }
                Some(_) => Reserved::Voided(t),
                None if booked.status == Some(PendingStatus::Expired) => Reserved::Expired(t),
                None => Reserved::Pending(t),
            };
            let derived = transfer_id(b"reserve", &uetr.0);
            if let Some(extra) =
                keep_derived(&mut reservations, uetr, state, derived, |r| r.transfer().id)
            {
                report.flag(
                    DiscrepancyKind::BookingWrong,
                    &s.jurisdiction,
                    Some(&uetr),
                    format!(
                        "reservation {} also carries this UETR; a payment has one \
                         reservation, {derived}",
                        extra.0
                    ),
                );
            }
        }
        for resolution in resolutions.values() {
            report.flag(
                DiscrepancyKind::UnexplainedMovement,
                &s.jurisdiction,
                None,
                format!(
                    "transfer {} resolves transfer {}, which is not a reservation into the \
                     corridor account {corridor}",
                    resolution.id.0, resolution.pending_id.0
                ),
            );
        }
        reservations
    }

    /// The receiver's credits from the liquidity account, by UETR; flags every other
    /// movement of the liquidity account except funding.
    fn credits(&self, report: &mut PairReport) -> BTreeMap<Uetr, &'a Transfer> {
        let r = self.receiver;
        let liquidity = r.liquidity_account;
        let mut credits = BTreeMap::new();
        for booked in &r.transfers {
            let t = &booked.transfer;
            let two_phase = t.flags.contains(TransferFlags::PENDING) || t.flags.resolves_pending();
            let is_credit = t.debit_account_id.0 == liquidity && t.code == codes::INBOUND;
            let is_funding = t.credit_account_id.0 == liquidity
                && (t.code == codes::GENESIS || t.code == codes::FUNDING);
            if t.debit_account_id.0 != liquidity && t.credit_account_id.0 != liquidity {
                continue;
            }
            if is_credit && !two_phase {
                let uetr = Uetr(t.user_data_128.to_be_bytes());
                let derived = credit_transfer_id(&self.sender.jurisdiction, &uetr.0);
                if let Some(extra) = keep_derived(&mut credits, uetr, t, derived, |t| t.id) {
                    report.flag(
                        DiscrepancyKind::BookingWrong,
                        &r.jurisdiction,
                        Some(&uetr),
                        format!(
                            "credit {} also carries this UETR; a payment has one credit, {derived}",
                            extra.0
                        ),
                    );
                }
            } else if !is_funding || two_phase {
                report.flag(
                    DiscrepancyKind::UnexplainedMovement,
                    &r.jurisdiction,
                    None,
                    format!(
                        "transfer {} (code {}) moves {} between accounts {} and {} on the \
                         liquidity for {}, but is neither a payment credit nor funding",
                        t.id.0,
                        t.code,
                        Amount::of(r.currency, t.amount),
                        t.debit_account_id.0,
                        t.credit_account_id.0,
                        r.peer
                    ),
                );
            }
        }
        credits
    }

    /// Classifies one payment and checks everything both nodes hold about it.
    fn check_payment(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        reserved: Option<Reserved<'a>>,
        credit: Option<&'a Transfer>,
        sums: &mut Sums,
    ) -> Standing {
        let out = self.sender.outbound.get(uetr);
        let inb = self.receiver.inbound.get(uetr);
        if let Some(reserved) = reserved {
            self.check_reservation(report, uetr, reserved);
        }
        self.check_sender_record(report, uetr, reserved, out);
        self.check_receiver_record(report, uetr, reserved, credit, inb);
        if let Some(credit) = credit {
            let payment = Credited::new(uetr, credit, reserved, out, inb);
            let source = self.check_evidence(report, &payment);
            sums.settled_source.add(source);
            if let Some(Reserved::Pending(_)) = reserved {
                sums.unresolved_source.add(source);
            }
            sums.settled_target.add(credit.amount);
        }
        if let Some(Reserved::Pending(t)) = reserved {
            sums.reserved_in_doubt.add(t.amount);
        }
        self.classify(report, uetr, reserved, credit, out, inb)
    }

    /// How the payment stands, from the sender's reservation and the receiver's credit. Flags
    /// the combinations a completed protocol run never leaves, and lists payments in doubt.
    fn classify(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        reserved: Option<Reserved<'a>>,
        credit: Option<&'a Transfer>,
        out: Option<&OutboundRecord>,
        inb: Option<&InboundRecord>,
    ) -> Standing {
        match (reserved, credit) {
            (Some(Reserved::Posted(..)), Some(_)) => Standing::Settled,
            (Some(Reserved::Posted(t, _)), None) => {
                self.flag_missing_credit(report, uetr, t);
                Standing::Inconsistent
            }
            (Some(Reserved::Pending(t)), Some(c)) => {
                self.flag_sender_not_yet_resolved(report, uetr, t, c);
                Standing::Inconsistent
            }
            (Some(released @ (Reserved::Voided(_) | Reserved::Expired(_))), Some(c)) => {
                self.flag_credited_but_voided(report, uetr, released, c);
                Standing::Inconsistent
            }
            (None, Some(c)) => {
                self.flag_credit_without_reservation(report, uetr, c);
                Standing::Inconsistent
            }
            (Some(Reserved::Voided(_) | Reserved::Expired(_)), None) => Standing::Rejected,
            (Some(Reserved::Pending(t)), None) => {
                self.list_in_doubt(report, uetr, t.amount, out, inb);
                Standing::InDoubt
            }
            (None, None) => match out.map(|o| o.state) {
                Some(OutboundState::Rejected) => Standing::Rejected,
                Some(OutboundState::Reserving) => {
                    self.list_in_doubt(report, uetr, 0, out, inb);
                    Standing::InDoubt
                }
                // A record that claims more than its ledger shows, or a receiver's record
                // without any trace on the sender: flagged by the record checks.
                _ => Standing::Inconsistent,
            },
        }
    }

    /// The sender posted `reservation`, the receiver holds no credit.
    fn flag_missing_credit(&self, report: &mut PairReport, uetr: &Uetr, reservation: &Transfer) {
        let (s, r) = (self.sender, self.receiver);
        report.flag(
            DiscrepancyKind::MissingCredit,
            &r.jurisdiction,
            Some(uetr),
            format!(
                "{} posted its reservation of {} (transfer {}) but {} holds no credit \
                 from its liquidity account {} for this UETR",
                s.jurisdiction,
                Amount::of(s.currency, reservation.amount),
                reservation.id.0,
                r.jurisdiction,
                r.liquidity_account
            ),
        );
    }

    /// The receiver credited, the sender's `reservation` is still pending.
    fn flag_sender_not_yet_resolved(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        reservation: &Transfer,
        credit: &Transfer,
    ) {
        let (s, r) = (self.sender, self.receiver);
        report.flag(
            DiscrepancyKind::SenderNotYetResolved,
            &s.jurisdiction,
            Some(uetr),
            format!(
                "{} settled it (credit transfer {} of {}) but {}'s reservation of {} \
                 (transfer {}) is still pending",
                r.jurisdiction,
                credit.id.0,
                Amount::of(r.currency, credit.amount),
                s.jurisdiction,
                Amount::of(s.currency, reservation.amount),
                reservation.id.0
            ),
        );
    }

    /// The receiver credited, the sender voided its reservation or let it expire.
    fn flag_credited_but_voided(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        released: Reserved<'_>,
        credit: &Transfer,
    ) {
        let (s, r) = (self.sender, self.receiver);
        let how = if matches!(released, Reserved::Voided(_)) {
            "voided"
        } else {
            "let expire"
        };
        report.flag(
            DiscrepancyKind::CreditedButVoided,
            &r.jurisdiction,
            Some(uetr),
            format!(
                "{} credited {} (transfer {}) but {} {how} its reservation of {} \
                 (transfer {})",
                r.jurisdiction,
                Amount::of(r.currency, credit.amount),
                credit.id.0,
                s.jurisdiction,
                Amount::of(s.currency, released.transfer().amount),
                released.transfer().id.0
            ),
        );
    }

    /// The receiver credited, the sender holds no reservation at all.
    fn flag_credit_without_reservation(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        credit: &Transfer,
    ) {
        let (s, r) = (self.sender, self.receiver);
        report.flag(
            DiscrepancyKind::CreditWithoutReservation,
            &r.jurisdiction,
            Some(uetr),
            format!(
                "{} credited {} to account {} (transfer {}) but {} holds no reservation \
                 into its corridor account {} for this UETR",
                r.jurisdiction,
                Amount::of(r.currency, credit.amount),
                credit.credit_account_id.0,
                credit.id.0,
                s.jurisdiction,
                s.corridor_account
            ),
        );
    }

    fn list_in_doubt(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        reserved: u128,
        out: Option<&OutboundRecord>,
        inb: Option<&InboundRecord>,
    ) {
        if report.in_doubt.len() < IN_DOUBT_LISTED_MAX {
            report.in_doubt.push(InDoubt {
                uetr: uetr.to_string(),
                sender: self.sender.jurisdiction.clone(),
                receiver: self.receiver.jurisdiction.clone(),
                reserved: Amount::of(self.sender.currency, reserved),
                sender_record: out.map(|o| outbound_state_name(o.state).to_owned()),
                receiver_record: inb.map(|i| inbound_state_name(i.state).to_owned()),
            });
        } else {
            report.in_doubt_not_listed = report.in_doubt_not_listed.saturating_add(1);
        }
    }

    /// The reservation and its resolution are booked as the protocol books them.
    fn check_reservation(&self, report: &mut PairReport, uetr: &Uetr, reserved: Reserved<'_>) {
        let s = self.sender;
        let t = reserved.transfer();
        let mut wrong = Vec::new();
        if t.id.0 != transfer_id(b"reserve", &uetr.0) {
            wrong.push("its id does not derive from the UETR".to_owned());
        }
        if t.ledger != u32::from(s.currency.numeric) {
            wrong.push(format!(
                "it is in ledger {}, not {} ({})",
                t.ledger, s.currency.numeric, s.currency.alpha
            ));
        }
        if t.code != codes::OUTBOUND {
            wrong.push(format!("its code is {}, not {}", t.code, codes::OUTBOUND));
        }
        if t.timeout != 0 {
            wrong.push(format!(
                "it has a ledger timeout of {} s (a forwarded reservation may only end by the \
                 receiver's decision)",
                t.timeout
            ));
        }
        match reserved {
            Reserved::Posted(_, post) => {
                if post.id.0 != transfer_id(b"post", &uetr.0) {
                    wrong.push(format!(
                        "its posting transfer {} has an id that does not derive from the UETR",
                        post.id.0
                    ));
                }
                if post.amount != t.amount {
                    report.flag(
                        DiscrepancyKind::AmountDiffers,
                        &s.jurisdiction,
                        Some(uetr),
                        format!(
                            "reserved {} but posted {}",
                            Amount::of(s.currency, t.amount),
                            Amount::of(s.currency, post.amount)
                        ),
                    );
                }
            }
            Reserved::Voided(_) => {}
            Reserved::Expired(_) => wrong.push("it expired in the ledger".to_owned()),
            Reserved::Pending(_) => {}
        }
        if !wrong.is_empty() {
            report.flag(
                DiscrepancyKind::BookingWrong,
                &s.jurisdiction,
                Some(uetr),
                format!("reservation {}: {}", t.id.0, wrong.join("; ")),
            );
        }
    }
}

/// Inserts `value` for `uetr`; when the UETR is already there, keeps the transfer whose id is
/// `derived` (the one the protocol made for this payment) and returns the other's id.
fn keep_derived<T: Copy>(
    map: &mut BTreeMap<Uetr, T>,
    uetr: Uetr,
    value: T,
    derived: u128,
    id: impl Fn(T) -> TransferId,
) -> Option<TransferId> {
    let Some(&existing) = map.get(&uetr) else {
        map.insert(uetr, value);
        return None;
    };
    if id(value).0 == derived {
        map.insert(uetr, value);
        Some(id(existing))
    } else {
        Some(id(value))
    }
}
