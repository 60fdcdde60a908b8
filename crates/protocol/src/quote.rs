//! FX quotes: issued and signed by the sending node with its receipt-signing key, verified by
//! both nodes before a payment settles at the quoted terms.
//!
//! A quote fixes `target = convert(source, rate)` with `rate = mid.with_spread(spread_bps)`
//! (see [`crate::money`] for the rounding rule: floor, toward zero, in both steps). The
//! verifier recomputes both and refuses any difference, so neither side can settle at terms
//! the issuer did not sign, even by one minor unit.

use ed25519_dalek::SigningKey;
use kakehashi_pki::{Purpose, UnixTime};
use kakehashi_proto::{SIGNING_DOMAIN_QUOTE, pb};
use prost::Message as _;

use crate::instruction::{ID_CHARS_MAX, to_timestamp, unix_time};
use crate::money::{
    Currency, Rate, SPREAD_BPS_FULL, convert, excerpt, format_amount, parse_amount,
};
use crate::reason::{ReasonCode, Rejection};
use crate::signed::{self, Signer, Trust};

/// Largest spread, in basis points: anything at or above 10,000 would leave no rate at all.
pub const SPREAD_BPS_MAX: u32 = SPREAD_BPS_FULL - 1;

/// Longest quote lifetime, in seconds: one day. Quotes are meant to be used within minutes
/// (the example configuration says 60 s); a verifier refuses a quote that claims to stay valid
/// longer, so a leaked quote cannot pin a stale rate for weeks.
pub const QUOTE_LIFETIME_SECS_MAX: u64 = 24 * 60 * 60;

/// Longest jurisdiction code: ISO 3166-1 alpha-2, as the agreement uses.
const JURISDICTION_LEN: usize = 2;

/// What a node needs to issue quotes: its jurisdiction, its receipt-signing key and chain (DER,
/// leaf first), and how long a quote stays valid.
pub struct QuoteIssuer {
    /// The issuing node's jurisdiction, e.g. `"JP"`.
    pub jurisdiction: String,
    /// The node's receipt-signing key.
    pub key: SigningKey,
    /// The certificate chain of `key`, DER, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// Quote lifetime in seconds: 1 to [`QUOTE_LIFETIME_SECS_MAX`].
    pub ttl_secs: u64,
}

/// The verified terms of a quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteTerms {
    /// Unique per issuing node.
    pub quote_id: String,
    /// The issuing (sending) node's jurisdiction; equals the signer's.
    pub issuing: String,
    /// The creditor's node's jurisdiction.
    pub counterparty: String,
    /// What the debtor pays (positive).
    pub source: (&'static Currency, u128),
    /// What the creditor receives: `convert(source, rate)` (positive).
    pub target: (&'static Currency, u128),
    /// The rate applied: `mid.with_spread(spread_bps)`.
    pub rate: Rate,
    /// The mid-market rate.
    pub mid: Rate,
    /// The spread taken, in basis points.
    pub spread_bps: u32,
    /// When the quote was issued.
    pub issued_at: UnixTime,
    /// The last instant an instruction may be created under this quote.
    pub expires_at: UnixTime,
}

/// The terms a node offers in a quote, before it signs them: what the debtor pays, to which
/// jurisdiction, in which currency the creditor is paid, and at what rate.
#[derive(Clone, Copy, Debug)]
pub struct QuoteOffer<'a> {
    /// The creditor's node's jurisdiction.
    pub counterparty: &'a str,
    /// What the debtor pays, in the issuing node's currency.
    pub source: (&'static Currency, u128),
    /// The creditor's currency.
    pub target_currency: &'static Currency,
    /// The mid-market rate.
    pub mid: Rate,
    /// The spread taken, in basis points.
    pub spread_bps: u32,
}

impl QuoteIssuer {
    /// Issues a signed quote at `offer`, valid from `now` for `ttl_secs`. The caller picks
    /// `quote_id` (unique per node, 1 to 35 characters). FF01 when the terms are unusable: zero
    /// source, a spread of 10,000 bps or more, a target that rounds to zero, an overflow.
    pub fn issue(
        &self,
        offer: &QuoteOffer<'_>,
        now: UnixTime,
        quote_id: String,
    ) -> Result<pb::Signed, Rejection> {
        self.issue_with_terms(offer, now, quote_id)
            .map(|(signed, _)| signed)
    }

    /// [`Self::issue`], also returning the terms signed: exactly what [`verify_quote`] returns
    /// for the signed quote, so that the issuer can hold them without decoding its own quote
    /// again.
    pub fn issue_with_terms(
        &self,
        offer: &QuoteOffer<'_>,
        now: UnixTime,
        quote_id: String,
    ) -> Result<(pb::Signed, QuoteTerms), Rejection> {
        let QuoteOffer {
            counterparty,
            source,
            target_currency: target_ccy,
            mid,
            spread_bps,
        } = *offer;
        check_quote_id(&quote_id)?;
        jurisdiction_code("issuing_jurisdiction", &self.jurisdiction)?;
        jurisdiction_code("counterparty_jurisdiction", counterparty)?;
        if counterparty == self.jurisdiction {
            return Err(Rejection::format(format!(
                "counterparty_jurisdiction {counterparty} is this node's own; quotes are for \
                 cross-border payments"
            )));
        }
        if self.ttl_secs == 0 || self.ttl_secs > QUOTE_LIFETIME_SECS_MAX {
            return Err(Rejection::format(format!(
                "quote ttl_secs is {}; it must be 1 to {QUOTE_LIFETIME_SECS_MAX}",
                self.ttl_secs
            )));
        }
        let (rate, target) = terms(source, target_ccy, mid, spread_bps)?;
        let expires_at = i64::try_from(self.ttl_secs)
            .ok()
            .and_then(|ttl| now.0.checked_add(ttl))
            .map(UnixTime)
            .ok_or_else(|| Rejection::format("quote expiry overflows the time range"))?;
        let quote = pb::Quote {
            quote_id,
            issuing_jurisdiction: self.jurisdiction.clone(),
            counterparty_jurisdiction: counterparty.to_owned(),
            source_amount: Some(format_amount(source.0, source.1)),
            target_amount: Some(format_amount(target_ccy, target)),
            exchange_rate: rate.to_string(),
            mid_rate: mid.to_string(),
            spread_bps,
            issued_at: Some(to_timestamp(now)),
            expires_at: Some(to_timestamp(expires_at)),
        };
        let signed = signed::sign(
            SIGNING_DOMAIN_QUOTE,
            quote.encode_to_vec(),
            &self.key,
            &self.chain,
        );
        let terms = QuoteTerms {
            quote_id: quote.quote_id,
            issuing: quote.issuing_jurisdiction,
            counterparty: quote.counterparty_jurisdiction,
            source,
            target: (target_ccy, target),
            rate,
            mid,
            spread_bps,
            issued_at: now,
            expires_at,
        };
        Ok((signed, terms))
    }
}

/// Verifies a signed quote for `relying` at `now`, allowing `skew_secs` of clock difference.
///
/// In order: the signature and chain (receipt-signing purpose, recognized by `relying`) and the
/// signer's jurisdiction equal to `issuing_jurisdiction` → DS0B; every field well-formed, the
/// rate equal to `mid.with_spread(spread_bps)`, the target equal to `convert(source, rate)`, the
/// lifetime at most a day → FF01; `now > expires_at + skew` → AB05.
pub fn verify_quote<'a>(
    signed: &pb::Signed,
    mra: impl Into<Trust<'a>>,
    relying: &str,
    now: UnixTime,
    skew_secs: u64,
    extra_crls: &[Vec<u8>],
) -> Result<(QuoteTerms, Signer), Rejection> {
    let signer = signed::verify(
        signed,
        SIGNING_DOMAIN_QUOTE,
        mra,
        relying,
        Purpose::ReceiptSigning,
        now,
        extra_crls,
    )?;
    let raw = pb::Quote::decode(signed.payload.as_slice())
        .map_err(|e| Rejection::format(format!("payload is not a Quote: {e}")))?;
    jurisdiction_code("quote issuing_jurisdiction", &raw.issuing_jurisdiction)?;
    if signer.jurisdiction() != raw.issuing_jurisdiction {
        return Err(Rejection::signature(format!(
            "quote says issuing_jurisdiction {} but its signer {} is certified under {}'s anchor",
            raw.issuing_jurisdiction,
            signer.subject_cn(),
            signer.jurisdiction()
        )));
    }
    check_quote_id(&raw.quote_id)?;
    jurisdiction_code(
        "quote counterparty_jurisdiction",
        &raw.counterparty_jurisdiction,
    )?;
    if raw.counterparty_jurisdiction == raw.issuing_jurisdiction {
        return Err(Rejection::format(format!(
            "quote counterparty_jurisdiction equals issuing_jurisdiction {}",
            raw.issuing_jurisdiction
        )));
    }
    let source = amount("quote source_amount", raw.source_amount.as_ref())?;
    let target = amount("quote target_amount", raw.target_amount.as_ref())?;
    let rate = Rate::parse(&raw.exchange_rate).map_err(|r| prefixed("quote exchange_rate", r))?;
    let mid = Rate::parse(&raw.mid_rate).map_err(|r| prefixed("quote mid_rate", r))?;
    let (expected_rate, expected_target) = terms(source, target.0, mid, raw.spread_bps)?;
    if rate != expected_rate {
        return Err(Rejection::format(format!(
            "quote exchange_rate {rate} is not mid_rate {mid} less {} bps, which is {expected_rate}",
            raw.spread_bps
        )));
    }
    if target.1 != expected_target {
        return Err(Rejection::format(format!(
            "quote target_amount {} {} is not source_amount {} {} at rate {rate}, which is {} {} \
             (rounded down)",
            format_amount(target.0, target.1).value,
            target.0,
            format_amount(source.0, source.1).value,
            source.0,
            format_amount(target.0, expected_target).value,
            target.0
        )));
    }
    let issued_at = unix_time("quote issued_at", raw.issued_at.as_ref())?;
    let expires_at = unix_time("quote expires_at", raw.expires_at.as_ref())?;
    // Both lie within the Timestamp range (checked above), so the difference fits in i64.
    let lifetime = expires_at.0.saturating_sub(issued_at.0);
    if lifetime <= 0 || lifetime.unsigned_abs() > QUOTE_LIFETIME_SECS_MAX {
        return Err(Rejection::format(format!(
            "quote lifetime from issued_at {issued_at} to expires_at {expires_at} must be 1 to \
             {QUOTE_LIFETIME_SECS_MAX} seconds"
        )));
    }
    let skew = i64::try_from(skew_secs).unwrap_or(i64::MAX);
    if issued_at.0 > now.0.saturating_add(skew) {
        return Err(Rejection::format(format!(
            "quote issued_at {issued_at} is in the future (now {now}, allowed clock skew \
             {skew_secs} s)"
        )));
    }
    if now.0 > expires_at.0.saturating_add(skew) {
        return Err(Rejection::new(
            ReasonCode::Ab05,
            format!(
                "quote {} expired at {expires_at} (now {now}, allowed clock skew {skew_secs} s); \
                 ask for a new quote",
                excerpt(&raw.quote_id)
            ),
        ));
    }
    let terms = QuoteTerms {
        quote_id: raw.quote_id,
        issuing: raw.issuing_jurisdiction,
        counterparty: raw.counterparty_jurisdiction,
        source,
        target,
        rate,
        mid,
        spread_bps: raw.spread_bps,
        issued_at,
        expires_at,
    };
    Ok((terms, signer))
}

/// What a participant asks a quote for: what the debtor pays and where the payment goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteAsk {
    /// What the debtor pays, in the sending node's currency.
    pub source: (&'static Currency, u128),
    /// The creditor's node's jurisdiction.
    pub counterparty: String,
    /// The creditor's currency: the counterparty's in the agreement.
    pub target_currency: &'static Currency,
}

/// A quote a bank may sign an instruction at: it verified under the agreement and it is for the
/// payment that was asked. Only [`verify_quote_for`] builds one, and the instruction builder
/// ([`crate::bank::instruction`]) takes nothing else, so a bank cannot sign at a quote it did
/// not check.
#[derive(Clone, Debug)]
pub struct VerifiedQuote {
    signed: pb::Signed,
    terms: QuoteTerms,
    signer: Signer,
}

impl VerifiedQuote {
    /// The quote as the node signed it: the instruction carries these exact bytes.
    pub fn signed(&self) -> &pb::Signed {
        &self.signed
    }

    /// Its verified terms.
    pub fn terms(&self) -> &QuoteTerms {
        &self.terms
    }

    /// Who signed it.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }
}

/// Why a participant will not sign at a quote.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// The quote verified, but the debtor would pay another amount than asked.
    #[error(
        "quoted {} for a request of {}",
        amount_text(*quoted),
        amount_text(*asked)
    )]
    Amount {
        /// The quote's source amount.
        quoted: (&'static Currency, u128),
        /// The amount asked for.
        asked: (&'static Currency, u128),
    },
    /// The quote verified, but for a payment to another jurisdiction.
    #[error("quoted for a payment to {quoted}, not {asked}")]
    Counterparty {
        /// The quote's counterparty jurisdiction.
        quoted: String,
        /// The jurisdiction asked for.
        asked: String,
    },
    /// The quote does not verify ([`verify_quote`]'s rejection says which rule).
    #[error("sent a quote that does not verify under the agreement as {relying}: {rejection}")]
    Invalid {
        /// The jurisdiction that verified it.
        relying: String,
        /// Why it does not verify.
        rejection: Rejection,
    },
    /// The quote verified, but the creditor would be paid in another currency.
    #[error("quoted a payment credited in {quoted}, not {asked}")]
    TargetCurrency {
        /// The quote's target currency.
        quoted: &'static Currency,
        /// The counterparty's currency.
        asked: &'static Currency,
    },
}

/// Verifies `signed` as [`verify_quote`] does (no extra CRLs) and checks that it is for what
/// was `asked`: a signed quote proves who quoted, not that it is the payment the bank wants, and
/// the bank signs an instruction for the quoted source amount.
pub fn verify_quote_for<'a>(
    signed: pb::Signed,
    asked: &QuoteAsk,
    mra: impl Into<Trust<'a>>,
    relying: &str,
    now: UnixTime,
    skew_secs: u64,
) -> Result<VerifiedQuote, QuoteError> {
    let (terms, signer) =
        verify_quote(&signed, mra, relying, now, skew_secs, &[]).map_err(|rejection| {
            QuoteError::Invalid {
                relying: relying.to_owned(),
                rejection,
            }
        })?;
    check_asked(&terms, asked)?;
    Ok(VerifiedQuote {
        signed,
        terms,
        signer,
    })
}

/// Whether verified `terms` are the ones `asked` for.
fn check_asked(terms: &QuoteTerms, asked: &QuoteAsk) -> Result<(), QuoteError> {
    if terms.source != asked.source {
        return Err(QuoteError::Amount {
            quoted: terms.source,
            asked: asked.source,
        });
    }
    if terms.counterparty != asked.counterparty {
        return Err(QuoteError::Counterparty {
            quoted: terms.counterparty.clone(),
            asked: asked.counterparty.clone(),
        });
    }
    if terms.target.0 != asked.target_currency {
        return Err(QuoteError::TargetCurrency {
            quoted: terms.target.0,
            asked: asked.target_currency,
        });
    }
    Ok(())
}

/// `10000 JPY`, `12.30 SGD`.
fn amount_text((currency, minor): (&'static Currency, u128)) -> String {
    format!(
        "{} {}",
        format_amount(currency, minor).value,
        currency.alpha
    )
}

/// The rate and target amount a quote for `source` in `target_ccy` at `mid` less `spread_bps`
/// must carry; FF01 when either is unusable.
fn terms(
    source: (&'static Currency, u128),
    target_ccy: &'static Currency,
    mid: Rate,
    spread_bps: u32,
) -> Result<(Rate, u128), Rejection> {
    if source.1 == 0 {
        return Err(Rejection::format(
            "quote source_amount is zero; a payment must be positive",
        ));
    }
    if source.0 == target_ccy {
        return Err(Rejection::format(format!(
            "quote source and target currency are both {}; a quote converts between two",
            target_ccy
        )));
    }
    if spread_bps > SPREAD_BPS_MAX {
        return Err(Rejection::format(format!(
            "quote spread_bps is {spread_bps}; at most {SPREAD_BPS_MAX} are allowed"
        )));
    }
    let rate = mid.with_spread(spread_bps);
    if rate.scaled() == 0 {
        return Err(Rejection::format(format!(
            "mid_rate {mid} less {spread_bps} bps rounds to a zero rate"
        )));
    }
    let target = convert(source.1, source.0, rate, target_ccy)?;
    if target == 0 {
        return Err(Rejection::format(format!(
            "source_amount {} {} converts to zero {} at rate {rate}; send a larger amount",
            format_amount(source.0, source.1).value,
            source.0,
            target_ccy
        )));
    }
    Ok((rate, target))
}

/// A required, positive amount.
fn amount(
    field: &str,
    value: Option<&pb::ActiveCurrencyAndAmount>,
) -> Result<(&'static Currency, u128), Rejection> {
    let value = value.ok_or_else(|| Rejection::format(format!("{field} is missing")))?;
    let (currency, minor) = parse_amount(value).map_err(|r| prefixed(field, r))?;
    if minor == 0 {
        return Err(Rejection::format(format!(
            "{field} is zero; it must be positive"
        )));
    }
    Ok((currency, minor))
}

/// A quote id: 1 to 35 printable characters (ISO 20022 Max35Text).
fn check_quote_id(quote_id: &str) -> Result<(), Rejection> {
    let chars = quote_id.chars().count();
    if chars == 0 || chars > ID_CHARS_MAX || quote_id.chars().any(char::is_control) {
        return Err(Rejection::format(format!(
            "quote_id {} must be 1 to {ID_CHARS_MAX} printable characters",
            excerpt(quote_id)
        )));
    }
    Ok(())
}

/// A jurisdiction code: ISO 3166-1 alpha-2, upper case, as the agreement names parties.
pub(crate) fn jurisdiction_code(field: &str, value: &str) -> Result<(), Rejection> {
    if value.len() != JURISDICTION_LEN || !value.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Rejection::format(format!(
            "{field} {} is not a jurisdiction code (two upper-case letters, ISO 3166-1 alpha-2)",
            excerpt(value)
        )));
    }
    Ok(())
}

/// Prefixes a rejection's detail with the field it concerns.
fn prefixed(field: &str, rejection: Rejection) -> Rejection {
    Rejection::new(rejection.code, format!("{field}: {}", rejection.detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::currency;
    use crate::signed::test_support::{at_2027, chain, key, mra};

    const SKEW: u64 = 30;

    fn jpy() -> &'static Currency {
        currency("JPY").expect("JPY")
    }

    fn sgd() -> &'static Currency {
        currency("SGD").expect("SGD")
    }

    fn jp_issuer() -> QuoteIssuer {
        QuoteIssuer {
            jurisdiction: "JP".to_owned(),
            key: key("jp/node/receipt.key.pem"),
            chain: chain("jp/node/receipt.pem"),
            ttl_secs: 60,
        }
    }

    fn mid() -> Rate {
        Rate::parse("0.0087").expect("rate")
    }

    fn jp_quote() -> pb::Signed {
        jp_issuer()
            .issue(
                &QuoteOffer {
                    counterparty: "SG",
                    source: (jpy(), 10_000),
                    target_currency: sgd(),
                    mid: mid(),
                    spread_bps: 25,
                },
                at_2027(),
                "Q-1".to_owned(),
            )
            .expect("issued")
    }

    /// Re-signs an edited quote with the JP node's receipt key, so only the edit is wrong.
    fn resigned(edit: impl FnOnce(&mut pb::Quote)) -> pb::Signed {
        let mut raw = pb::Quote::decode(jp_quote().payload.as_slice()).expect("quote");
        edit(&mut raw);
        signed::sign(
            SIGNING_DOMAIN_QUOTE,
            raw.encode_to_vec(),
            &key("jp/node/receipt.key.pem"),
            &chain("jp/node/receipt.pem"),
        )
    }

    fn verify_at(
        signed: &pb::Signed,
        relying: &str,
        now: UnixTime,
    ) -> Result<QuoteTerms, Rejection> {
        verify_quote(signed, &mra(), relying, now, SKEW, &[]).map(|(terms, _)| terms)
    }

    #[track_caller]
    fn rejected(result: Result<QuoteTerms, Rejection>, code: ReasonCode, needle: &str) {
        let r = result.expect_err("must be rejected");
        assert_eq!(r.code, code, "{}", r.detail);
        assert!(r.detail.contains(needle), "{:?} lacks {needle:?}", r.detail);
    }

    /// The issuer holds the terms `issue_with_terms` returns instead of verifying its own quote
    /// again, so they must be exactly the terms the verifier reads from the signed bytes.
    #[test]
    fn the_terms_issued_are_the_terms_the_verifier_reads() {
        for (source, spread_bps) in [(10_000, 25), (1, 0), (987_654_321, 9_999)] {
            let (signed, issued) = jp_issuer()
                .issue_with_terms(
                    &QuoteOffer {
                        counterparty: "SG",
                        source: (jpy(), source),
                        target_currency: sgd(),
                        mid: Rate::parse("114.123456789").expect("rate"),
                        spread_bps,
                    },
                    at_2027(),
                    "Q-7".to_owned(),
                )
                .expect("issued");
            assert_eq!(verify_at(&signed, "JP", at_2027()), Ok(issued));
        }
    }

    #[test]
    fn issued_quote_verifies_at_both_ends_with_floored_terms() {
        let signed = jp_quote();
        for relying in ["JP", "SG"] {
            let (terms, signer) =
                verify_quote(&signed, &mra(), relying, at_2027(), SKEW, &[]).expect("valid");
            assert_eq!(signer.jurisdiction(), "JP");
            assert_eq!(terms.quote_id, "Q-1");
            assert_eq!(
                (terms.issuing.as_str(), terms.counterparty.as_str()),
                ("JP", "SG")
            );
            assert_eq!(terms.source, (jpy(), 10_000));
            // 10,000 JPY × 0.0087 × 0.9975 = 86.7825 SGD, floored to 86.78.
            assert_eq!(terms.target, (sgd(), 8678));
            assert_eq!(terms.rate.to_string(), "0.00867825");
            assert_eq!(terms.mid, mid());
            assert_eq!(terms.spread_bps, 25);
            assert_eq!(terms.issued_at, at_2027());
            assert_eq!(terms.expires_at, UnixTime(at_2027().0 + 60));
        }
    }

    #[test]
    fn expiry_allows_the_clock_skew_and_no_more() {
        let signed = jp_quote();
        let last = UnixTime(at_2027().0 + 60 + 30);
        assert!(verify_at(&signed, "SG", last).is_ok());
        rejected(
            verify_at(&signed, "SG", UnixTime(last.0 + 1)),
            ReasonCode::Ab05,
            "expired at",
        );
    }

    #[test]
    fn a_quote_from_the_future_is_refused() {
        let signed = jp_quote();
        assert!(verify_at(&signed, "SG", UnixTime(at_2027().0 - 30)).is_ok());
        rejected(
            verify_at(&signed, "SG", UnixTime(at_2027().0 - 31)),
            ReasonCode::Ff01,
            "in the future",
        );
    }

    #[test]
    fn tampered_quote_is_ds0b() {
        let mut signed = jp_quote();
        let raw = pb::Quote::decode(signed.payload.as_slice()).expect("quote");
        let edited = pb::Quote {
            target_amount: Some(format_amount(sgd(), 8679)),
            ..raw
        };
        signed.payload = edited.encode_to_vec();
        rejected(
            verify_at(&signed, "SG", at_2027()),
            ReasonCode::Ds0b,
            "does not verify",
        );
    }

    #[test]
    fn target_off_by_one_minor_unit_is_ff01() {
        let up = resigned(|q| q.target_amount = Some(format_amount(sgd(), 8679)));
        rejected(
            verify_at(&up, "SG", at_2027()),
            ReasonCode::Ff01,
            "which is 86.78 SGD",
        );
        let down = resigned(|q| q.target_amount = Some(format_amount(sgd(), 8677)));
        rejected(
            verify_at(&down, "SG", at_2027()),
            ReasonCode::Ff01,
            "target_amount 86.77 SGD",
        );
    }

    #[test]
    fn rate_not_matching_mid_and_spread_is_ff01() {
        let s = resigned(|q| q.exchange_rate = "0.0087".to_owned());
        rejected(
            verify_at(&s, "SG", at_2027()),
            ReasonCode::Ff01,
            "less 25 bps, which is 0.00867825",
        );
        let s = resigned(|q| q.spread_bps = 10);
        rejected(
            verify_at(&s, "SG", at_2027()),
            ReasonCode::Ff01,
            "exchange_rate",
        );
    }

    /// One edit of a quote's fields.
    type Edit = Box<dyn FnOnce(&mut pb::Quote)>;

    #[test]
    fn malformed_fields_are_ff01_and_named() {
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|q| q.quote_id = String::new()), "quote_id \"\""),
            (Box::new(|q| q.quote_id = "q".repeat(36)), "1 to 35"),
            (
                Box::new(|q| q.counterparty_jurisdiction = "sg".into()),
                "counterparty_jurisdiction",
            ),
            (
                Box::new(|q| q.counterparty_jurisdiction = "JP".into()),
                "equals issuing",
            ),
            (
                Box::new(|q| q.source_amount = None),
                "source_amount is missing",
            ),
            (
                Box::new(|q| q.source_amount = Some(format_amount(jpy(), 0))),
                "source_amount is zero",
            ),
            (
                Box::new(|q| q.target_amount.as_mut().expect("set").value = "86.785".into()),
                "target_amount: SGD amount",
            ),
            (
                Box::new(|q| q.exchange_rate = "-1".into()),
                "exchange_rate: exchange rate \"-1\"",
            ),
            (
                Box::new(|q| q.mid_rate = String::new()),
                "mid_rate: exchange rate \"\" is empty",
            ),
            (Box::new(|q| q.spread_bps = 10_000), "at most 9999"),
            (Box::new(|q| q.issued_at = None), "issued_at is missing"),
            (
                Box::new(|q| q.expires_at = q.issued_at),
                "must be 1 to 86400 seconds",
            ),
            (
                Box::new(|q| {
                    q.expires_at = Some(to_timestamp(UnixTime(at_2027().0 + 86_401)));
                }),
                "must be 1 to 86400 seconds",
            ),
            (
                Box::new(|q| {
                    q.target_amount = Some(format_amount(jpy(), 8678));
                }),
                "both JPY",
            ),
        ];
        for (edit, needle) in cases {
            rejected(
                verify_at(&resigned(edit), "SG", at_2027()),
                ReasonCode::Ff01,
                needle,
            );
        }
    }

    #[test]
    fn garbage_payload_signed_by_the_node_is_ff01() {
        let s = signed::sign(
            SIGNING_DOMAIN_QUOTE,
            vec![0xff; 7],
            &key("jp/node/receipt.key.pem"),
            &chain("jp/node/receipt.pem"),
        );
        rejected(
            verify_at(&s, "SG", at_2027()),
            ReasonCode::Ff01,
            "payload is not a Quote",
        );
    }

    #[test]
    fn a_bank_key_cannot_sign_quotes() {
        let raw = pb::Quote::decode(jp_quote().payload.as_slice()).expect("quote");
        let s = signed::sign(
            SIGNING_DOMAIN_QUOTE,
            raw.encode_to_vec(),
            &key("jp/banks/KKHAJPJ0.key.pem"),
            &chain("jp/banks/KKHAJPJ0.pem"),
        );
        rejected(
            verify_at(&s, "SG", at_2027()),
            ReasonCode::Ds0b,
            "receipt-signing",
        );
    }

    #[test]
    fn a_quote_claiming_another_issuer_is_ds0b() {
        let raw = pb::Quote::decode(jp_quote().payload.as_slice()).expect("quote");
        // The SG node signs a quote that says JP issued it.
        let s = signed::sign(
            SIGNING_DOMAIN_QUOTE,
            raw.encode_to_vec(),
            &key("sg/node/receipt.key.pem"),
            &chain("sg/node/receipt.pem"),
        );
        rejected(
            verify_at(&s, "SG", at_2027()),
            ReasonCode::Ds0b,
            "issuing_jurisdiction JP",
        );
    }

    #[test]
    fn issue_refuses_unusable_terms() {
        let issuer = jp_issuer();
        let issue = |source: u128, spread: u32, counterparty: &str, id: &str| {
            issuer
                .issue(
                    &QuoteOffer {
                        counterparty,
                        source: (jpy(), source),
                        target_currency: sgd(),
                        mid: mid(),
                        spread_bps: spread,
                    },
                    at_2027(),
                    id.to_owned(),
                )
                .map(|_| ())
                .expect_err("refused")
        };
        assert!(
            issue(0, 25, "SG", "Q")
                .detail
                .contains("source_amount is zero")
        );
        assert!(
            issue(1, 25, "SG", "Q")
                .detail
                .contains("converts to zero SGD")
        );
        assert!(
            issue(100, 10_000, "SG", "Q")
                .detail
                .contains("at most 9999")
        );
        assert!(issue(100, 25, "JP", "Q").detail.contains("this node's own"));
        assert!(
            issue(100, 25, "sg", "Q")
                .detail
                .contains("counterparty_jurisdiction")
        );
        assert!(issue(100, 25, "SG", "").detail.contains("quote_id"));
        let r = issuer
            .issue(
                &QuoteOffer {
                    counterparty: "SG",
                    source: (jpy(), 100),
                    target_currency: jpy(),
                    mid: mid(),
                    spread_bps: 25,
                },
                at_2027(),
                "Q".to_owned(),
            )
            .expect_err("same currency");
        assert!(r.detail.contains("both JPY"), "{}", r.detail);
        let forever = QuoteIssuer {
            ttl_secs: QUOTE_LIFETIME_SECS_MAX + 1,
            ..jp_issuer()
        };
        let r = forever
            .issue(
                &QuoteOffer {
                    counterparty: "SG",
                    source: (jpy(), 100),
                    target_currency: sgd(),
                    mid: mid(),
                    spread_bps: 25,
                },
                at_2027(),
                "Q".to_owned(),
            )
            .expect_err("too long");
        assert!(r.detail.contains("ttl_secs"), "{}", r.detail);
        let r = jp_issuer()
            .issue(
                &QuoteOffer {
                    counterparty: "SG",
                    source: (jpy(), u128::MAX / 10),
                    target_currency: sgd(),
                    mid: mid(),
                    spread_bps: 25,
                },
                at_2027(),
                "Q".to_owned(),
            )
            .expect_err("overflow");
        assert!(r.detail.contains("overflows"), "{}", r.detail);
    }

    fn asked(source: (&'static Currency, u128), counterparty: &str) -> QuoteAsk {
        QuoteAsk {
            source,
            counterparty: counterparty.to_owned(),
            target_currency: sgd(),
        }
    }

    /// Verified terms of 10,000 JPY (or `source_minor`) to `counterparty` in SGD.
    fn jp_terms(source_minor: u128, counterparty: &str) -> QuoteTerms {
        QuoteTerms {
            source: (jpy(), source_minor),
            counterparty: counterparty.to_owned(),
            ..verify_at(&jp_quote(), "JP", at_2027()).expect("valid")
        }
    }

    #[test]
    fn a_quote_is_signed_at_only_for_what_was_asked() {
        let want = asked((jpy(), 10_000), "SG");
        check_asked(&jp_terms(10_000, "SG"), &want).unwrap();
        let more = check_asked(&jp_terms(10_001, "SG"), &want).unwrap_err();
        assert!(more.to_string().contains("quoted 10001 JPY"), "{more}");
        let elsewhere = check_asked(&jp_terms(10_000, "TH"), &want).unwrap_err();
        assert!(
            elsewhere.to_string().contains("to TH, not SG"),
            "{elsewhere}"
        );
        let in_sgd = asked((sgd(), 1_000_000), "SG");
        assert!(check_asked(&jp_terms(10_000, "SG"), &in_sgd).is_err());
        let in_thb = QuoteAsk {
            target_currency: currency("THB").expect("THB"),
            ..want
        };
        let other = check_asked(&jp_terms(10_000, "SG"), &in_thb).unwrap_err();
        assert!(other.to_string().contains("in SGD, not THB"), "{other}");
    }

    #[test]
    fn verify_quote_for_keeps_the_signed_bytes_and_refuses_what_does_not_verify() {
        let signed = jp_quote();
        let want = asked((jpy(), 10_000), "SG");
        let verified = verify_quote_for(signed.clone(), &want, &mra(), "JP", at_2027(), SKEW)
            .expect("verifies and is as asked");
        assert_eq!(verified.signed(), &signed);
        assert_eq!(verified.terms().target, (sgd(), 8678));
        assert_eq!(verified.signer().jurisdiction(), "JP");
        let late = UnixTime(at_2027().0 + 60 + SKEW as i64 + 1);
        match verify_quote_for(signed.clone(), &want, &mra(), "JP", late, SKEW) {
            Err(QuoteError::Invalid { relying, rejection }) => {
                assert_eq!(relying, "JP");
                assert_eq!(rejection.code, ReasonCode::Ab05);
            }
            other => panic!("an expired quote verified: {other:?}"),
        }
        let other_amount = asked((jpy(), 9_999), "SG");
        let refused = verify_quote_for(signed, &other_amount, &mra(), "JP", at_2027(), SKEW)
            .expect_err("not as asked");
        assert!(matches!(refused, QuoteError::Amount { .. }), "{refused}");
    }

    #[test]
    fn sg_to_jp_quote_floors_into_whole_yen() {
        let issuer = QuoteIssuer {
            jurisdiction: "SG".to_owned(),
            key: key("sg/node/receipt.key.pem"),
            chain: chain("sg/node/receipt.pem"),
            ttl_secs: 60,
        };
        let mid = Rate::parse("114.942528735632").expect("rate");
        let s = issuer
            .issue(
                &QuoteOffer {
                    counterparty: "JP",
                    source: (sgd(), 1234),
                    target_currency: jpy(),
                    mid,
                    spread_bps: 25,
                },
                at_2027(),
                "SGQ-7".to_owned(),
            )
            .expect("issued");
        let terms = verify_at(&s, "JP", at_2027()).expect("valid");
        // 114.942528735632 × 0.9975 = 114.655172413792 (exact here); × 12.34 SGD = 1414.84… JPY → 1414.
        assert_eq!(terms.target, (jpy(), 1414));
        assert_eq!(terms.rate.to_string(), "114.655172413792");
    }
}
