//! Quotes: what this node offers for paying a peer jurisdiction.

use std::sync::atomic::Ordering;

use kakehashi_proto::pb;
use kakehashi_protocol::money;
use kakehashi_protocol::quote::QuoteOffer;
use kakehashi_protocol::reason::{ReasonCode, Rejection};

use super::Engine;

impl Engine {
    /// Issues a signed quote for paying `source` (this node's currency) to `counterparty`.
    pub fn quote(
        &self,
        counterparty: &str,
        source: &pb::ActiveCurrencyAndAmount,
    ) -> Result<pb::Signed, Rejection> {
        let Some(peer) = self.parts.peers.get(counterparty) else {
            return Err(Rejection::new(
                ReasonCode::Ff01,
                format!(
                    "counterparty_jurisdiction: {} has no corridor to {counterparty:?} (peers: {})",
                    self.jurisdiction(),
                    self.parts
                        .peers
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let (currency, minor) = money::parse_amount(source)?;
        if currency.alpha != self.parts.currency.alpha {
            return Err(Rejection::new(
                ReasonCode::Ff01,
                format!(
                    "source_amount: quotes from {} are in {}, not {}",
                    self.jurisdiction(),
                    self.parts.currency.alpha,
                    currency.alpha
                ),
            ));
        }
        if minor == 0 {
            return Err(Rejection::new(
                ReasonCode::Ff01,
                "source_amount: must be greater than zero",
            ));
        }
        if minor > self.parts.limits.payment_minor_max {
            return Err(Rejection::new(
                ReasonCode::Rr04,
                format!(
                    "source_amount: above this node's limit of {} {}",
                    money::format_amount(currency, self.parts.limits.payment_minor_max).value,
                    currency.alpha
                ),
            ));
        }
        let (_, t) = self.clock().now();
        let seq = self.quote_seq.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; 6];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| Rejection::new(ReasonCode::Ff01, "no randomness for a quote id"))?;
        let quote_id = format!("Q-{}-{}-{seq}", self.jurisdiction(), hex::encode(nonce));
        self.quotes.issue(
            &QuoteOffer {
                counterparty: &peer.jurisdiction,
                source: (currency, minor),
                target_currency: peer.currency,
                mid: peer.mid,
                spread_bps: self.parts.spread_bps,
            },
            t,
            quote_id,
        )
    }
}
