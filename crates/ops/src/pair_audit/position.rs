//! Reconciling one direction's position: the sender's corridor account and the receiver's
//! liquidity account against the sums of the payments between them.

use kakehashi_node::store::AccountKind;

use super::report::{Amount, DiscrepancyKind, PairReport, Position};
use super::{Leg, NodeBooks};

/// A running sum of minor units; `None` once it overflowed (reported, never wrapped).
#[derive(Clone, Copy)]
pub(super) struct Total(Option<u128>);

impl Total {
    pub(super) fn add(&mut self, minor: u128) {
        self.0 = self.0.and_then(|sum| sum.checked_add(minor));
    }
}

/// Sums gathered over one direction's payments.
pub(super) struct Sums {
    pub(super) settled_source: Total,
    pub(super) settled_target: Total,
    pub(super) reserved_in_doubt: Total,
    /// Σ source amounts of payments the receiver settled whose reservation is still pending:
    /// the part of a corridor difference that the sender's recovery will post.
    pub(super) unresolved_source: Total,
}

impl Sums {
    pub(super) fn zero() -> Self {
        Self {
            settled_source: Total(Some(0)),
            settled_target: Total(Some(0)),
            reserved_in_doubt: Total(Some(0)),
            unresolved_source: Total(Some(0)),
        }
    }
}

/// One balance and the sum of payments it must equal.
struct Reconciliation<'b> {
    /// The node whose account it is.
    node: &'b NodeBooks,
    balance: Option<u128>,
    sum: Option<u128>,
    /// The part of a difference that recovery closes, if any.
    repairable_gap: Option<u128>,
    /// The balance, for the finding (`corridor account 9002 posted credits`).
    what: String,
    /// The payments summed, for the finding.
    against: String,
}

impl Leg<'_> {
    /// The position before any payment is counted: zero in each node's currency.
    pub(super) fn empty_position(&self) -> Position {
        let zero_s = Amount::of(self.sender.currency, 0);
        let zero_r = Amount::of(self.receiver.currency, 0);
        Position {
            corridor_account: self.sender.corridor_account.to_string(),
            corridor_posted: zero_s.clone(),
            settled_source: zero_s.clone(),
            corridor_pending: zero_s.clone(),
            reserved_in_doubt: zero_s,
            liquidity_account: self.receiver.liquidity_account.to_string(),
            liquidity_debited: zero_r.clone(),
            settled_target: zero_r.clone(),
            liquidity_funded: zero_r,
            reconciled: false,
        }
    }

    /// The corridor account on the sender and the liquidity account on the receiver exist,
    /// in the node's currency, with the code of their kind.
    pub(super) fn check_accounts(&self, report: &mut PairReport) {
        for (node, id, kind) in [
            (
                self.sender,
                self.sender.corridor_account,
                AccountKind::Corridor,
            ),
            (
                self.receiver,
                self.receiver.liquidity_account,
                AccountKind::Liquidity,
            ),
        ] {
            match node.accounts.get(&id) {
                None => report.flag(
                    DiscrepancyKind::BookingWrong,
                    &node.jurisdiction,
                    None,
                    format!(
                        "the {} account {id} for {} is not in the ledger",
                        kind.as_str(),
                        node.peer
                    ),
                ),
                Some(account) => {
                    let numeric = u32::from(node.currency.numeric);
                    if account.ledger != numeric || account.code != kind.ledger_code() {
                        report.flag(
                            DiscrepancyKind::BookingWrong,
                            &node.jurisdiction,
                            None,
                            format!(
                                "the {} account {id} is in ledger {} with code {}; expected \
                                 ledger {numeric} ({}) and code {}",
                                kind.as_str(),
                                account.ledger,
                                account.code,
                                node.currency.alpha,
                                kind.ledger_code()
                            ),
                        );
                    }
                }
            }
        }
    }

    /// The balances of the corridor and liquidity accounts against the payments' sums.
    pub(super) fn position(&self, report: &mut PairReport, sums: &Sums) -> Position {
        let (s, r) = (self.sender, self.receiver);
        let corridor = s
            .accounts
            .get(&s.corridor_account)
            .cloned()
            .unwrap_or_default();
        let liquidity = r
            .accounts
            .get(&r.liquidity_account)
            .cloned()
            .unwrap_or_default();
        let unresolved = sums.unresolved_source.0.filter(|gap| *gap > 0);
        let checks = [
            Reconciliation {
                node: s,
                balance: Some(corridor.credits_posted),
                sum: sums.settled_source.0,
                repairable_gap: unresolved,
                what: format!("corridor account {} posted credits", s.corridor_account),
                against: format!(
                    "the source amounts of the payments {} settled",
                    r.jurisdiction
                ),
            },
            Reconciliation {
                node: s,
                balance: Some(corridor.credits_pending),
                sum: sums.reserved_in_doubt.0,
                repairable_gap: None,
                what: format!("corridor account {} pending credits", s.corridor_account),
                against: "the reservations still pending".to_owned(),
            },
            Reconciliation {
                node: r,
                balance: Some(liquidity.debits_posted),
                sum: sums.settled_target.0,
                repairable_gap: None,
                what: format!("liquidity account {} posted debits", r.liquidity_account),
                against: format!(
                    "the amounts {} credited for {}",
                    r.jurisdiction, s.jurisdiction
                ),
            },
        ];
        let mut reconciled = true;
        for check in checks {
            reconciled &= self.reconcile(report, check);
        }
        let amount_s = |m: Option<u128>| Amount::of(s.currency, m.unwrap_or(u128::MAX));
        let amount_r = |m: Option<u128>| Amount::of(r.currency, m.unwrap_or(u128::MAX));
        Position {
            corridor_account: s.corridor_account.to_string(),
            corridor_posted: amount_s(Some(corridor.credits_posted)),
            settled_source: amount_s(sums.settled_source.0),
            corridor_pending: amount_s(Some(corridor.credits_pending)),
            reserved_in_doubt: amount_s(sums.reserved_in_doubt.0),
            liquidity_account: r.liquidity_account.to_string(),
            liquidity_debited: amount_r(Some(liquidity.debits_posted)),
            settled_target: amount_r(sums.settled_target.0),
            liquidity_funded: amount_r(Some(liquidity.credits_posted)),
            reconciled,
        }
    }

    /// Whether the balance equals its sum; flags the difference when not.
    fn reconcile(&self, report: &mut PairReport, check: Reconciliation<'_>) -> bool {
        let (s, r) = (self.sender, self.receiver);
        let Reconciliation {
            node,
            balance,
            sum,
            repairable_gap,
            what,
            against,
        } = check;
        if balance == sum && sum.is_some() {
            return true;
        }
        let show = |v: Option<u128>| {
            v.map_or_else(
                || "more than 2^128 minor units".to_owned(),
                |m| Amount::of(node.currency, m).to_string(),
            )
        };
        // A gap made only of payments the sender has not yet posted closes when its
        // recovery posts them.
        let repairable = matches!(
            (balance, repairable_gap, sum),
            (Some(b), Some(gap), Some(total)) if b.checked_add(gap) == Some(total)
        );
        let mut detail = format!(
            "{} → {}: {what} are {} but {against} sum to {}",
            s.jurisdiction,
            r.jurisdiction,
            show(balance),
            show(sum)
        );
        if repairable {
            detail.push_str(&format!(
                "; the difference is what {} has not yet posted for payments {} settled",
                s.jurisdiction, r.jurisdiction
            ));
        }
        report.flag_as(
            DiscrepancyKind::PositionDiffers,
            &node.jurisdiction,
            None,
            detail,
            repairable,
        );
        false
    }
}
