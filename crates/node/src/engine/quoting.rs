//! Quotes: what this node offers for paying a peer jurisdiction, and the checks that tie a
//! quote to the node that issued it.
//!
//! A quote is a firm offer of this node's FX desk. The sender settles only a quote it issued
//! itself (issue 11, defect 7): signed with this node's own quote-signing key (another key its
//! jurisdiction certified for receipts is not this node), under an id it issued and still
//! holds, byte for byte the terms it signed, and at the rate its `[fx]` configuration gives for
//! the corridor. A quote is single-use: the first payment (UETR) that passes the quote checks
//! takes it, and another payment under it is refused.
//!
//! The quotes issued are held in memory only, each until it expires (plus the allowed clock
//! skew). A free quote (not yet taken) keeps its signature and terms, at most
//! [`QUOTES_HELD_MAX`] of them and [`QUOTES_PER_ASKER_MAX`] for one asker (a bank, or everyone
//! without a bank identity): past either a new quote is refused (RR04), never a free one
//! withdrawn. A taken quote keeps only what answers a second payment under it (DUPL), at most
//! [`QUOTES_TAKEN_MAX`], the oldest forgotten first (a payment under it then hears AB05). A restart
//! therefore withdraws every quote issued before it: such a quote is refused and the bank asks
//! for a new one. That is also why single use needs no durable index: a quote can only be
//! taken in the process that issued it, so no restart can make a taken quote usable again.
//!
//! Reason codes (ISO 20022 ExternalStatusReason1Code), chosen for what the bank must do:
//!
//! - DS0B: the quote is not signed by this node's own key, or its content differs from what
//!   this node signed under that id. The signature does not show that this node offered these
//!   terms, which is what DS0B (signature or signer not valid) says.
//! - AB05: this node does not hold the quote (expired, issued before a restart, withdrawn), or
//!   its terms are not this node's current rate. An expired quote already gets AB05 from the
//!   verifier, and the bank's remedy is the same: ask for a new quote.
//! - DUPL: the quote already carried another payment. A firm quote is for one payment; a
//!   second payment under it is most often the same payment sent again under a new UETR,
//!   which is the double payment DUPL exists to stop.
//!
//! The receiver checks the other side of the corridor: the rate of a peer's quote must lie
//! within `[fx] rate_band_bps` of the receiver's own mid rate, or it is refused with RR04, the
//! code of the receiver's other limits (its largest credit).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use kakehashi_pki::{Purpose, UnixTime};
use kakehashi_proto::pb;
use kakehashi_protocol::instruction::{Instruction, Uetr};
use kakehashi_protocol::money::{self, RATE_SCALE, Rate, SPREAD_BPS_FULL};
use kakehashi_protocol::quote::{self, QuoteOffer, QuoteTerms};
use kakehashi_protocol::reason::{ReasonCode, Rejection};
use kakehashi_protocol::signed::Signer;
use prost::Message as _;
use sha2::{Digest, Sha256};

use super::{Engine, PeerLink};

/// Most free quotes (issued, unexpired, not yet taken by a payment) a node holds at once. A
/// free quote is about 600 bytes (the map's slot and the signature and terms it owns, measured
/// with heaptrack), so this is about 60 MB at most. A bank takes its quote within moments, so a
/// node serving payments holds few free quotes; only quotes asked for and never used stay free
/// until they expire (their lifetime plus the clock skew). At the bound a new quote is refused
/// (RR04, a limit of this node: use the quotes already issued or wait for them to expire), and
/// no free quote is ever withdrawn for room: a bank may still settle under it.
pub const QUOTES_HELD_MAX: usize = 100_000;

/// Most free quotes one asker holds: each bank (by the BIC of its participant-TLS identity),
/// and everyone who asks without one, together. GetQuote answers anyone (a quote is public
/// pricing), so without a share a stranger could fill [`QUOTES_HELD_MAX`] with quotes it never
/// uses and every bank would be refused quotes until they expired; with it, a stranger fills
/// only the anonymous share, and a bank only its own. A bank takes its quotes within moments,
/// so its free quotes at any time are few; the share only bounds the ones it asks for and
/// leaves. The default of `[limits] max_free_quotes_per_asker`.
pub const QUOTES_PER_ASKER_MAX: usize = 10_000;

/// Most taken quotes a node remembers. A taken quote keeps only what answers a second payment
/// under it (its key, payload digest, expiry and the payment that took it): an 81-byte slot of
/// the map and 16 bytes of the take order, 100 to 200 bytes with the tables' spare room
/// (heaptrack: 6 MiB for 37,000). The map's table for 200,000 is 262,144 slots, so this is
/// about 25 MB at most; below it a node remembers the quotes taken within a quote's lifetime
/// plus the clock skew (1,730 a second with the default 60 s and 30 s: 156,000, the same
/// table). At the bound the oldest taken quote is forgotten: a payment presenting it is then
/// refused AB05 (not held) instead of DUPL, still refused, so forgetting never makes a quote
/// usable again.
pub(super) const QUOTES_TAKEN_MAX: usize = 200_000;

/// A quote id as the registry keys it: the first 16 bytes of its SHA-256. Ids are this node's
/// own (a random part and a sequence number), and one presented by a bank only finds a quote
/// if its digest prefix matches one held, a second preimage of 128 bits; the payload digest
/// is still compared after. Sixteen bytes instead of the id's string keep a taken quote small.
type QuoteKey = [u8; 16];

fn key(quote_id: &str) -> QuoteKey {
    let digest = Sha256::digest(quote_id.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// One quote this node issued and still holds.
#[derive(Debug)]
struct Held {
    /// SHA-256 of the signed quote's payload: the exact terms this node signed.
    payload_sha256: [u8; 32],
    /// When the quote expires.
    expires_at: UnixTime,
    /// Free (with what the shortcut past verification needs) or taken.
    state: State,
}

#[derive(Debug)]
enum State {
    /// Issued, not yet taken by a payment.
    Free(Box<Offer>),
    /// Taken by this payment: the signature and terms are dropped, since a payment presenting
    /// the quote again takes the full verification (see [`IssuedQuotes::own_terms`]).
    Taken(Uetr),
}

/// Who asked for a quote, for the share of free quotes each asker may hold
/// (10,000, `QUOTES_PER_ASKER_MAX`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum QuoteAsker {
    /// A bank, by the BIC its participant-TLS certificate names.
    Bank(Arc<str>),
    /// Anyone without a bank's identity (no client certificate, the operator, a tool).
    Anonymous,
}

impl std::fmt::Display for QuoteAsker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bank(bic) => write!(f, "bank {bic}"),
            Self::Anonymous => f.write_str("callers without a bank identity"),
        }
    }
}

/// What this node signed for a free quote.
#[derive(Debug)]
struct Offer {
    /// Who asked for it: whose share it counts against while free.
    asker: QuoteAsker,
    /// The signature this node made over the payload.
    signature: Vec<u8>,
    /// The terms as this node signed them: what [`quote::verify_quote`] reads from the payload.
    terms: QuoteTerms,
}

impl Held {
    /// Whether the quote is past its expiry plus `skew_secs` at `now`.
    fn expired(&self, now: UnixTime, skew_secs: i64) -> bool {
        now.0 > self.expires_at.0.saturating_add(skew_secs)
    }

    fn is_free(&self) -> bool {
        matches!(self.state, State::Free(_))
    }
}

/// The quotes this node issued and still holds, by quote id, with their issue order (free
/// quotes) and take order (taken quotes) for release and the bounds.
#[derive(Debug)]
pub(super) struct IssuedQuotes {
    inner: Mutex<IssuedInner>,
    /// [`QUOTES_HELD_MAX`], smaller in tests.
    free_max: usize,
    /// [`QUOTES_PER_ASKER_MAX`], smaller in tests.
    asker_max: usize,
    /// [`QUOTES_TAKEN_MAX`], smaller in tests.
    taken_max: usize,
}

impl Default for IssuedQuotes {
    fn default() -> Self {
        Self::with_asker_share(QUOTES_PER_ASKER_MAX)
    }
}

#[derive(Debug, Default)]
struct IssuedInner {
    by_key: HashMap<QuoteKey, Held>,
    /// Keys of free quotes in issue order. The lifetime is one configured value, so this is
    /// also expiry order (up to clock steps, which only delay a release). A quote taken since
    /// leaves its key here until it reaches the front or [`IssuedInner::compact`] runs.
    free_order: VecDeque<QuoteKey>,
    /// How many quotes are free.
    free: usize,
    /// How many quotes are free, by asker (no entry for none).
    free_by_asker: HashMap<QuoteAsker, usize>,
    /// Keys of taken quotes in take order: near expiry order (a quote is taken moments after
    /// it is issued), and the order the oldest is forgotten in at [`QUOTES_TAKEN_MAX`].
    taken_order: VecDeque<QuoteKey>,
}

impl IssuedInner {
    /// Releases the quotes expired at `now` beyond `skew_secs`, and the oldest taken quotes
    /// beyond `taken_max`. Free quotes are released only when expired.
    fn release(&mut self, now: UnixTime, skew_secs: i64, taken_max: usize) {
        while let Some(&key) = self.free_order.front() {
            match self.by_key.get(&key) {
                Some(held) if held.is_free() => {
                    if !held.expired(now, skew_secs) {
                        break;
                    }
                    if let Some(Held {
                        state: State::Free(offer),
                        ..
                    }) = self.by_key.remove(&key)
                    {
                        self.unfree(&offer.asker);
                    }
                }
                // Taken since it was issued: its place is in `taken_order` now.
                _ => {}
            }
            self.free_order.pop_front();
        }
        while let Some(&key) = self.taken_order.front() {
            let expired = self
                .by_key
                .get(&key)
                .is_none_or(|held| held.expired(now, skew_secs));
            if !expired && self.taken_order.len() <= taken_max {
                break;
            }
            self.by_key.remove(&key);
            self.taken_order.pop_front();
        }
        self.compact();
    }

    /// Counts one free quote of `asker` as no longer free (taken or released).
    fn unfree(&mut self, asker: &QuoteAsker) {
        self.free -= 1;
        if let Some(count) = self.free_by_asker.get_mut(asker) {
            *count -= 1;
            if *count == 0 {
                self.free_by_asker.remove(asker);
            }
        }
    }

    /// Drops the keys of taken quotes from `free_order` once they are most of it (a quote that
    /// stays free keeps the ones behind it from reaching the front), so the order holds at
    /// most about twice the free quotes; each key is dropped once, so the cost per quote stays
    /// constant.
    fn compact(&mut self) {
        if self.free_order.len() > 2 * self.free + 1_024 {
            let by_key = &self.by_key;
            self.free_order
                .retain(|key| by_key.get(key).is_some_and(Held::is_free));
        }
    }
}

/// Why a quote presented with a payment is not one this node holds for it.
#[derive(Debug, PartialEq, Eq)]
enum Take {
    /// Not held: never issued here, expired, withdrawn by a restart, or forgotten once taken
    /// past [`QUOTES_TAKEN_MAX`].
    NotHeld,
    /// Held under that id, but the presented terms are not the ones signed.
    Altered,
    /// Taken by another payment.
    TakenBy(Uetr),
}

/// A quote not issued: this node holds [`QUOTES_HELD_MAX`] free quotes, or the asker its
/// [`QUOTES_PER_ASKER_MAX`].
#[derive(Debug, PartialEq, Eq)]
enum Full {
    /// Every asker's free quotes together are at the node's bound.
    Node { free: usize },
    /// This asker's free quotes are at its share.
    Asker { free: usize },
}

impl IssuedQuotes {
    /// The node's registry: the node's bounds, and `asker_max` free quotes for one asker
    /// (`[limits] max_free_quotes_per_asker`, at most [`QUOTES_HELD_MAX`]).
    pub(super) fn with_asker_share(asker_max: usize) -> Self {
        Self::with_bounds(
            QUOTES_HELD_MAX,
            asker_max.clamp(1, QUOTES_HELD_MAX),
            QUOTES_TAKEN_MAX,
        )
    }

    /// A registry holding at most `free_max` free quotes (`asker_max` of one asker) and
    /// `taken_max` taken ones.
    fn with_bounds(free_max: usize, asker_max: usize, taken_max: usize) -> Self {
        Self {
            inner: Mutex::default(),
            free_max,
            asker_max,
            taken_max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IssuedInner> {
        // The map stays consistent under a panic elsewhere (each change is one insert or
        // remove with its count), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds a quote just issued for `asker`: `signed`, whose terms are `terms`; refused when
    /// this node already holds its most free quotes, or `asker` its share (no free quote is
    /// withdrawn for room).
    fn hold(
        &self,
        asker: &QuoteAsker,
        signed: &pb::Signed,
        terms: QuoteTerms,
        expires_at: UnixTime,
        now: UnixTime,
        skew: i64,
    ) -> Result<(), Full> {
        let mut inner = self.lock();
        inner.release(now, skew, self.taken_max);
        let mine = inner.free_by_asker.get(asker).copied().unwrap_or(0);
        if mine >= self.asker_max {
            return Err(Full::Asker { free: mine });
        }
        if inner.free >= self.free_max {
            return Err(Full::Node { free: inner.free });
        }
        let key = key(&terms.quote_id);
        // Ids carry a random part and a sequence number, so a collision is a bug; keeping the
        // first holder is the safe choice.
        if let std::collections::hash_map::Entry::Vacant(slot) = inner.by_key.entry(key) {
            slot.insert(Held {
                payload_sha256: Sha256::digest(&signed.payload).into(),
                expires_at,
                state: State::Free(Box::new(Offer {
                    asker: asker.clone(),
                    signature: signed.signature.clone(),
                    terms,
                })),
            });
            inner.free += 1;
            *inner.free_by_asker.entry(asker.clone()).or_insert(0) += 1;
            inner.free_order.push_back(key);
        }
        Ok(())
    }

    /// The terms of quote `quote_id` when `signed` is, byte for byte, the quote this node
    /// issued under that id (payload and signature; the caller compares the chain) and still
    /// holds free at `now`; `None` otherwise, including when it expired or was taken, so that
    /// the caller's full verification gives its answer (a taken quote then hears DUPL, or
    /// passes for the payment that took it).
    fn own_terms(
        &self,
        quote_id: &str,
        signed: &pb::Signed,
        now: UnixTime,
        skew: i64,
    ) -> Option<QuoteTerms> {
        let inner = self.lock();
        let held = inner.by_key.get(&key(quote_id))?;
        let State::Free(offer) = &held.state else {
            return None;
        };
        let live =
            !held.expired(now, skew) && offer.terms.issued_at.0 <= now.0.saturating_add(skew);
        let digest: [u8; 32] = Sha256::digest(&signed.payload).into();
        (live
            && offer.terms.quote_id == quote_id
            && digest == held.payload_sha256
            && signed.signature == offer.signature)
            .then(|| offer.terms.clone())
    }

    /// Whether payment `uetr` may take quote `quote_id` (payload `payload`): held, with these
    /// exact terms, and not taken by another payment. Takes it when `take`.
    fn check(
        &self,
        quote_id: &str,
        payload: &[u8],
        uetr: Uetr,
        now: UnixTime,
        skew: i64,
        take: bool,
    ) -> Result<(), Take> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.release(now, skew, self.taken_max);
        let key = key(quote_id);
        let Some(held) = inner.by_key.get_mut(&key) else {
            return Err(Take::NotHeld);
        };
        let digest: [u8; 32] = Sha256::digest(payload).into();
        if digest != held.payload_sha256 {
            return Err(Take::Altered);
        }
        let asker = match &held.state {
            State::Taken(other) if *other != uetr => return Err(Take::TakenBy(*other)),
            State::Taken(_) => return Ok(()),
            State::Free(offer) => offer.asker.clone(),
        };
        if take {
            held.state = State::Taken(uetr);
            inner.unfree(&asker);
            inner.taken_order.push_back(key);
            inner.release(now, skew, self.taken_max);
        }
        Ok(())
    }

    /// How many quotes are held, free and taken (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_key.len()
    }
}

impl Engine {
    /// Issues a signed quote for paying `source` (this node's currency) to `counterparty`,
    /// asked for by `asker` (whose share of free quotes it counts against until taken).
    pub fn quote(
        &self,
        asker: &QuoteAsker,
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
        self.parts
            .entropy
            .fill(&mut nonce)
            .map_err(|_| Rejection::new(ReasonCode::Ff01, "no randomness for a quote id"))?;
        let quote_id = format!("Q-{}-{}-{seq}", self.jurisdiction(), hex::encode(nonce));
        let (signed, terms) = self.quotes.issue_with_terms(
            &QuoteOffer {
                counterparty: &peer.jurisdiction,
                source: (currency, minor),
                target_currency: peer.currency,
                mid: peer.mid,
                spread_bps: self.parts.spread_bps,
            },
            t,
            quote_id,
        )?;
        let expires_at = terms.expires_at;
        self.issued
            .hold(asker, &signed, terms, expires_at, t, self.skew())
            .map_err(|full| {
                let whose = match full {
                    Full::Node { free } => format!("{} holds {free} quotes", self.jurisdiction()),
                    Full::Asker { free } => format!(
                        "{} holds {free} quotes for {asker}, the share of one asker",
                        self.jurisdiction()
                    ),
                };
                Rejection::new(
                    ReasonCode::Rr04,
                    format!(
                        "{whose} issued and not yet used, its limit; use one of them or ask \
                         again once some have expired"
                    ),
                )
            })?;
        Ok(signed)
    }

    /// The allowed clock skew, in seconds, as the quote verifier applies it.
    fn skew(&self) -> i64 {
        i64::try_from(self.parts.limits.clock_skew_secs).unwrap_or(i64::MAX)
    }

    /// The sender's check of the quote an instruction carries: the instruction debits this
    /// node's currency under a quote this node issued and still holds, free for this payment
    /// (see the module documentation), for the instruction's amount, to a peer it has a
    /// corridor with. Returns the peer and the quote's id, which [`Self::take_quote`] takes
    /// once every other check before the lock has passed.
    pub(super) fn check_own_quote(
        &self,
        instr: &Instruction,
        t: UnixTime,
    ) -> Result<(PeerLink, String), Rejection> {
        if instr.currency.alpha != self.parts.currency.alpha {
            return Err(Rejection::new(
                ReasonCode::Ff01,
                format!(
                    "interbank_settlement_amount: {} debits in {}, not {}",
                    self.jurisdiction(),
                    self.parts.currency.alpha,
                    instr.currency.alpha
                ),
            ));
        }
        let terms = match self.held_own_quote(&instr.quote, t) {
            Some(terms) => terms,
            None => self.verify_own_quote(&instr.quote, t)?,
        };
        let Some(peer) = self.parts.peers.get(&terms.counterparty).cloned() else {
            return Err(Rejection::new(
                ReasonCode::Ff01,
                format!("quote: no corridor to {}", terms.counterparty),
            ));
        };
        self.held_quote(&terms.quote_id, instr, t, false)?;
        self.check_own_rate(&terms, &peer)?;
        if terms.source.1 != instr.amount_minor || terms.source.0.alpha != instr.currency.alpha {
            return Err(Rejection::new(
                ReasonCode::Ff01,
                format!(
                    "interbank_settlement_amount {} {} differs from the quote's source amount {} {}",
                    money::format_amount(instr.currency, instr.amount_minor).value,
                    instr.currency.alpha,
                    money::format_amount(terms.source.0, terms.source.1).value,
                    terms.source.0.alpha
                ),
            ));
        }
        Ok((peer, terms.quote_id))
    }

    /// The terms of `signed` when it is, byte for byte (payload, signature and chain), a quote
    /// this node issued and still holds, and its signing chain is still recognized at `t`;
    /// `None` sends the quote to [`Self::verify_own_quote`].
    ///
    /// Such a quote's signature is not verified again: this node made it over these exact
    /// bytes moments ago, and holds them in memory. What could a participant do with that?
    /// Only present this node's own quote unaltered, which is what every genuine payment does:
    /// a quote with any byte of its terms changed no longer matches the payload digest held
    /// under its id, and one with another signature or chain (a zeroed signature, another
    /// key's) no longer matches either; both take the full verification, which refuses them
    /// as before (DS0B, or AB05 when this node holds no quote under that id). Nothing here
    /// decides whether the quote is free: single use (DUPL), the rate (AB05) and the amount are
    /// checked after, the same for both paths. The receiver verifies the quote's signature
    /// under the agreement itself, so no peer relies on this shortcut. Expiry is checked here
    /// as the verifier checks it, so an expired quote takes the full path and gets the
    /// verifier's AB05.
    fn held_own_quote(&self, signed: &pb::Signed, t: UnixTime) -> Option<QuoteTerms> {
        if signed.signer_chain != self.parts.signing_chain {
            return None;
        }
        // The id is only a key to look up: the terms returned are the ones held, and are
        // returned only if the payload is byte for byte the one held under the id.
        let quote_id = pb::Quote::decode(signed.payload.as_slice()).ok()?.quote_id;
        let terms = self.issued.own_terms(&quote_id, signed, t, self.skew())?;
        // The verifier also asks whether the signer's chain is still recognized at `t` (it may
        // have expired since the quote was issued); so does this path, through the caches.
        let trust = self.trust();
        let mut certs = self
            .parts
            .signing_chain
            .iter()
            .map(|der| trust.parse_shared(der));
        let leaf = certs.next()?.ok()?;
        let intermediates = certs.map(Result::ok).collect::<Option<Vec<_>>>()?;
        trust
            .recognize(
                self.jurisdiction(),
                Purpose::ReceiptSigning,
                &leaf,
                &intermediates,
                &[],
                t,
            )
            .recognized()
            .then_some(terms)
    }

    /// The full verification of a quote presented as this node's: its signature and chain
    /// under the agreement, issued by this node's jurisdiction with this node's own key.
    fn verify_own_quote(&self, signed: &pb::Signed, t: UnixTime) -> Result<QuoteTerms, Rejection> {
        let (terms, signer) = quote::verify_quote(
            signed,
            self.trust(),
            self.jurisdiction(),
            t,
            self.parts.limits.clock_skew_secs,
            &[],
        )?;
        if terms.issuing != self.jurisdiction() {
            return Err(Rejection::new(
                ReasonCode::Ds0b,
                format!(
                    "the quote was issued by {}, not by this node ({})",
                    terms.issuing,
                    self.jurisdiction()
                ),
            ));
        }
        self.check_own_signer(&terms, &signer)?;
        Ok(terms)
    }

    /// The quote was signed with this node's own quote-signing key. Any key the agreement
    /// certifies for this jurisdiction's receipts passes the verifier; only this one is the
    /// node's desk.
    fn check_own_signer(&self, terms: &QuoteTerms, signer: &Signer) -> Result<(), Rejection> {
        if signer.public_key() == self.parts.signing_key.verifying_key() {
            return Ok(());
        }
        Err(Rejection::new(
            ReasonCode::Ds0b,
            format!(
                "quote {} is signed by {} ({}), not with this node's own quote-signing key; \
                 only quotes this node issued settle here",
                &terms.quote_id,
                signer.subject_cn(),
                hex::encode(signer.public_key().as_bytes())
            ),
        ))
    }

    /// The quote's terms are those this node's `[fx]` configuration gives for the corridor to
    /// `peer`: its mid rate, its spread, the rate they make, the peer's currency.
    fn check_own_rate(&self, terms: &QuoteTerms, peer: &PeerLink) -> Result<(), Rejection> {
        let spread_bps = self.parts.spread_bps;
        let rate = peer.mid.with_spread(spread_bps);
        if terms.mid == peer.mid
            && terms.spread_bps == spread_bps
            && terms.rate == rate
            && terms.target.0.alpha == peer.currency.alpha
        {
            return Ok(());
        }
        Err(Rejection::new(
            ReasonCode::Ab05,
            format!(
                "quote {} is at {} {} per {} (mid {} less {} bps); this node's rate for {} is {} \
                 {} (mid {} less {spread_bps} bps); ask for a new quote",
                &terms.quote_id,
                terms.rate,
                terms.target.0.alpha,
                terms.source.0.alpha,
                terms.mid,
                terms.spread_bps,
                peer.jurisdiction,
                rate,
                peer.currency.alpha,
                peer.mid
            ),
        ))
    }

    /// Takes quote `quote_id` (checked by [`Self::check_own_quote`]) for the instruction's
    /// payment, checking again under the registry's lock, so that of two payments under one
    /// quote exactly one takes it. Called last before the UETR's lock: a payment refused by an
    /// earlier check leaves the quote free.
    pub(super) fn take_quote(
        &self,
        quote_id: &str,
        instr: &Instruction,
        t: UnixTime,
    ) -> Result<(), Rejection> {
        self.held_quote(quote_id, instr, t, true)
    }

    /// The quote is held with exactly the terms presented, and no other payment took it; takes
    /// it when `take`.
    fn held_quote(
        &self,
        id: &str,
        instr: &Instruction,
        t: UnixTime,
        take: bool,
    ) -> Result<(), Rejection> {
        let held = self
            .issued
            .check(id, &instr.quote.payload, instr.uetr, t, self.skew(), take);
        match held {
            Ok(()) => Ok(()),
            Err(Take::NotHeld) => Err(Rejection::new(
                ReasonCode::Ab05,
                format!(
                    "{} holds no quote {id}: it expired, or was issued before this node \
                     restarted, or was withdrawn; ask for a new quote",
                    self.jurisdiction()
                ),
            )),
            Err(Take::Altered) => Err(Rejection::new(
                ReasonCode::Ds0b,
                format!(
                    "quote {id} differs from the quote {} issued under that id",
                    self.jurisdiction()
                ),
            )),
            Err(Take::TakenBy(other)) => Err(Rejection::new(
                ReasonCode::Dupl,
                format!(
                    "quote {id} already carried payment {other}; a quote is for one payment, \
                     ask for a new quote"
                ),
            )),
        }
    }

    /// The receiver's check of a peer's quote: its rate lies within `[fx] rate_band_bps` of
    /// this node's own mid rate for the corridor, so a peer cannot make this node credit at
    /// whatever rate it signs. RR04, like the receiver's other limits.
    pub(super) fn check_rate_band(
        &self,
        link: &PeerLink,
        terms: &QuoteTerms,
    ) -> Result<(), Rejection> {
        let band_bps = self.parts.rate_band_bps;
        match rate_deviation(terms.rate, link.mid, band_bps) {
            Deviation::Within => Ok(()),
            outside => Err(Rejection::new(
                ReasonCode::Rr04,
                format!(
                    "quote {} is at {} {} per {}, {outside} the inverse of this node's mid rate \
                     ({} {} per {}); the band is {band_bps} bps",
                    &terms.quote_id,
                    terms.rate,
                    terms.target.0.alpha,
                    terms.source.0.alpha,
                    link.mid,
                    link.currency.alpha,
                    self.parts.currency.alpha
                ),
            )),
        }
    }
}

/// How far a quote's rate is from the receiver's mid rate.
#[derive(Debug, PartialEq, Eq)]
enum Deviation {
    /// Within the band.
    Within,
    /// Above it by more than the band, in basis points (floored).
    Above(u128),
    /// Below it by more than the band, in basis points (floored).
    Below(u128),
    /// So far off that the product of the rates does not fit in 128 bits.
    Overflow,
}

impl std::fmt::Display for Deviation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Within => f.write_str("within the band of"),
            Self::Above(bps) => write!(f, "{bps} bps above"),
            Self::Below(bps) => write!(f, "{bps} bps below"),
            Self::Overflow => f.write_str("nowhere near"),
        }
    }
}

/// Compares `rate` (units of the receiver's currency per unit of the sender's) with `mid`
/// (units of the sender's currency per unit of the receiver's, as the receiver's `[fx]` gives
/// it): their product is 1 at the receiver's mid, and must be within `band_bps` of 1. Exact
/// integer arithmetic on the rates' scaled forms (each × 10^12, so the product is × 10^24).
fn rate_deviation(rate: Rate, mid: Rate, band_bps: u32) -> Deviation {
    let one = RATE_SCALE.saturating_mul(RATE_SCALE);
    let per_bps = one / u128::from(SPREAD_BPS_FULL);
    let Some(product) = rate.scaled().checked_mul(mid.scaled()) else {
        return Deviation::Overflow;
    };
    let off = product.abs_diff(one);
    if off <= per_bps.saturating_mul(u128::from(band_bps)) {
        Deviation::Within
    } else if product > one {
        Deviation::Above(off / per_bps)
    } else {
        Deviation::Below(off / per_bps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKEW: i64 = 30;

    fn at(secs: i64) -> UnixTime {
        UnixTime(1_800_000_000 + secs)
    }

    fn uetr(n: u8) -> Uetr {
        Uetr([n; 16])
    }

    fn signed(payload: &[u8], signature: u8) -> pb::Signed {
        pb::Signed {
            payload: payload.to_vec(),
            signature: vec![signature; 64],
            signer_chain: Vec::new(),
        }
    }

    fn terms(id: &str, now: UnixTime) -> QuoteTerms {
        let jpy = money::currency("JPY").expect("JPY");
        let sgd = money::currency("SGD").expect("SGD");
        QuoteTerms {
            quote_id: id.to_owned(),
            issuing: "JP".to_owned(),
            counterparty: "SG".to_owned(),
            source: (jpy, 1_000),
            target: (sgd, 867),
            rate: Rate::parse("0.00867825").expect("rate"),
            mid: Rate::parse("0.0087").expect("rate"),
            spread_bps: 25,
            issued_at: now,
            expires_at: UnixTime(now.0 + 60),
        }
    }

    fn held(quotes: &IssuedQuotes, id: &str, payload: &[u8], now: UnixTime) {
        try_hold(quotes, id, payload, now).expect("room for the quote");
    }

    fn try_hold(
        quotes: &IssuedQuotes,
        id: &str,
        payload: &[u8],
        now: UnixTime,
    ) -> Result<(), Full> {
        try_hold_for(&QuoteAsker::Anonymous, quotes, id, payload, now)
    }

    fn try_hold_for(
        asker: &QuoteAsker,
        quotes: &IssuedQuotes,
        id: &str,
        payload: &[u8],
        now: UnixTime,
    ) -> Result<(), Full> {
        quotes.hold(
            asker,
            &signed(payload, 1),
            terms(id, now),
            UnixTime(now.0 + 60),
            now,
            SKEW,
        )
    }

    /// The shortcut past the signature check answers only for the exact quote held: payload
    /// and signature byte for byte, under its id, unexpired. Anything else is `None` and gets
    /// the full verification.
    #[test]
    fn only_the_exact_quote_held_skips_verification() {
        let quotes = IssuedQuotes::default();
        held(&quotes, "Q-1", b"terms", at(0));
        let own =
            |id: &str, signed: &pb::Signed, now: UnixTime| quotes.own_terms(id, signed, now, SKEW);
        assert_eq!(
            own("Q-1", &signed(b"terms", 1), at(1)),
            Some(terms("Q-1", at(0)))
        );
        assert_eq!(own("Q-1", &signed(b"better terms", 1), at(1)), None);
        assert_eq!(
            own("Q-1", &signed(b"terms", 2), at(1)),
            None,
            "other signature"
        );
        let mut short = signed(b"terms", 1);
        short.signature.pop();
        assert_eq!(own("Q-1", &short, at(1)), None, "truncated signature");
        assert_eq!(own("Q-2", &signed(b"terms", 1), at(1)), None, "not held");
        assert_eq!(
            own("Q-1", &signed(b"terms", 1), at(60 + SKEW)),
            Some(terms("Q-1", at(0)))
        );
        assert_eq!(
            own("Q-1", &signed(b"terms", 1), at(61 + SKEW)),
            None,
            "expired: the verifier says so"
        );
        assert_eq!(
            own("Q-1", &signed(b"terms", 1), at(-1 - SKEW)),
            None,
            "issued in the future of a clock set back: the verifier says so"
        );
    }

    #[test]
    fn a_quote_is_taken_once_by_one_payment() {
        let quotes = IssuedQuotes::default();
        held(&quotes, "Q-1", b"terms", at(0));
        // A check that does not take leaves the quote free.
        assert_eq!(
            quotes.check("Q-1", b"terms", uetr(2), at(1), SKEW, false),
            Ok(())
        );
        assert_eq!(
            quotes.check("Q-1", b"terms", uetr(1), at(1), SKEW, true),
            Ok(())
        );
        assert_eq!(
            quotes.check("Q-1", b"terms", uetr(2), at(1), SKEW, false),
            Err(Take::TakenBy(uetr(1)))
        );
        // The same payment again (a resubmission) finds it taken by itself.
        assert_eq!(
            quotes.check("Q-1", b"terms", uetr(1), at(2), SKEW, true),
            Ok(())
        );
        assert_eq!(
            quotes.check("Q-1", b"terms", uetr(2), at(2), SKEW, true),
            Err(Take::TakenBy(uetr(1)))
        );
    }

    #[test]
    fn other_terms_under_a_held_id_and_unknown_ids_are_refused() {
        let quotes = IssuedQuotes::default();
        held(&quotes, "Q-1", b"terms", at(0));
        assert_eq!(
            quotes.check("Q-1", b"better terms", uetr(1), at(1), SKEW, true),
            Err(Take::Altered)
        );
        assert_eq!(
            quotes.check("Q-2", b"terms", uetr(1), at(1), SKEW, true),
            Err(Take::NotHeld)
        );
        // A refusal takes nothing: the quote is still free for its payment.
        assert_eq!(
            quotes.check("Q-1", b"terms", uetr(1), at(1), SKEW, true),
            Ok(())
        );
    }

    #[test]
    fn a_quote_is_held_until_its_expiry_plus_the_skew() {
        let quotes = IssuedQuotes::default();
        held(&quotes, "Q-1", b"terms", at(0));
        assert_eq!(
            quotes.check("Q-1", b"terms", uetr(1), at(60 + SKEW), SKEW, true),
            Ok(())
        );
        assert_eq!(
            quotes.check("Q-1", b"terms", uetr(1), at(61 + SKEW), SKEW, true),
            Err(Take::NotHeld)
        );
        assert_eq!(quotes.len(), 0, "released once expired");
    }

    #[test]
    fn at_the_bound_a_new_quote_is_refused_and_no_free_quote_is_withdrawn() {
        let quotes = IssuedQuotes::with_bounds(3, 5, 10);
        for i in 0..3 {
            held(&quotes, &format!("Q-{i}"), b"terms", at(0));
        }
        assert_eq!(
            try_hold(&quotes, "Q-3", b"terms", at(1)),
            Err(Full::Node { free: 3 })
        );
        assert_eq!(
            quotes.check("Q-3", b"terms", uetr(1), at(1), SKEW, true),
            Err(Take::NotHeld),
            "a refused quote is not held"
        );
        // Every free quote is still there for its payment.
        assert_eq!(
            quotes.check("Q-0", b"terms", uetr(1), at(1), SKEW, true),
            Ok(())
        );
        // Taken, it no longer counts against the bound: there is room again.
        held(&quotes, "Q-3", b"terms", at(1));
        assert_eq!(
            quotes.check("Q-3", b"terms", uetr(2), at(1), SKEW, true),
            Ok(())
        );
        // So is there once free quotes expire.
        held(&quotes, "Q-4", b"terms", at(0));
        assert!(try_hold(&quotes, "Q-5", b"terms", at(1)).is_err());
        held(&quotes, "Q-5", b"terms", at(61 + SKEW));
        assert_eq!(
            quotes.check("Q-1", b"terms", uetr(3), at(61 + SKEW), SKEW, false),
            Err(Take::NotHeld),
            "expired"
        );
        assert_eq!(
            quotes.len(),
            2,
            "only Q-5 and Q-3 (issued at 1 s, taken, held to 91 s) are left"
        );
        assert_eq!(
            quotes.check("Q-5", b"terms", uetr(3), at(61 + SKEW), SKEW, false),
            Ok(())
        );
    }

    /// One asker at its share is refused; another asker still gets quotes, up to the node's
    /// bound; a quote taken or expired gives its asker room again.
    #[test]
    fn each_asker_has_its_own_share_of_free_quotes() {
        let quotes = IssuedQuotes::with_bounds(5, 2, 10);
        let stranger = QuoteAsker::Anonymous;
        let bank = |bic: &str| QuoteAsker::Bank(bic.into());
        for i in 0..2 {
            try_hold_for(&stranger, &quotes, &format!("S-{i}"), b"terms", at(0)).expect("room");
        }
        assert_eq!(
            try_hold_for(&stranger, &quotes, "S-2", b"terms", at(0)),
            Err(Full::Asker { free: 2 }),
            "the anonymous share is used up"
        );
        for (i, bic) in ["KKHAJPJ0", "KKHAJPJ0", "KKHAJPJ1"].iter().enumerate() {
            try_hold_for(&bank(bic), &quotes, &format!("B-{i}"), b"terms", at(0))
                .expect("a bank's quotes do not count against the stranger's share");
        }
        assert_eq!(
            try_hold_for(&bank("KKHAJPJ1"), &quotes, "B-3", b"terms", at(0)),
            Err(Full::Node { free: 5 }),
            "the node's bound still holds over every share"
        );
        // A taken quote leaves its asker's share and the node's count.
        assert_eq!(
            quotes.check("S-0", b"terms", uetr(1), at(1), SKEW, true),
            Ok(())
        );
        try_hold_for(&stranger, &quotes, "S-3", b"terms", at(1)).expect("room after a take");
        // Expired quotes leave it too, and an asker with none left has no entry.
        try_hold_for(&bank("KKHAJPJ0"), &quotes, "B-4", b"terms", at(62 + SKEW))
            .expect("room once the others expired");
        let inner = quotes.lock();
        assert_eq!(inner.free, 1);
        assert_eq!(
            inner.free_by_asker.iter().collect::<Vec<_>>(),
            [(&bank("KKHAJPJ0"), &1)]
        );
    }

    #[test]
    fn expired_quotes_are_pruned_and_live_ones_kept() {
        let quotes = IssuedQuotes::default();
        held(&quotes, "Q-old", b"terms", at(0));
        held(&quotes, "Q-taken", b"terms", at(0));
        assert_eq!(
            quotes.check("Q-taken", b"terms", uetr(1), at(1), SKEW, true),
            Ok(())
        );
        held(&quotes, "Q-live", b"terms", at(50));
        assert_eq!(quotes.len(), 3);
        // Issuing a quote releases what expired, free and taken alike.
        held(&quotes, "Q-new", b"terms", at(61 + SKEW));
        assert_eq!(quotes.len(), 2);
        for (id, expect) in [
            ("Q-old", Err(Take::NotHeld)),
            ("Q-taken", Err(Take::NotHeld)),
            ("Q-live", Ok(())),
            ("Q-new", Ok(())),
        ] {
            assert_eq!(
                quotes.check(id, b"terms", uetr(2), at(61 + SKEW), SKEW, false),
                expect,
                "{id}"
            );
        }
    }

    /// A taken quote keeps only what answers a second payment under it: DUPL for another
    /// payment, the same answer as before for the payment that took it, DS0B for other terms;
    /// the shortcut past verification is gone (the full verification answers).
    #[test]
    fn a_taken_quote_keeps_its_answers_but_not_its_terms() {
        let quotes = IssuedQuotes::default();
        held(&quotes, "Q-1", b"terms", at(0));
        assert!(
            quotes
                .own_terms("Q-1", &signed(b"terms", 1), at(1), SKEW)
                .is_some()
        );
        assert_eq!(
            quotes.check("Q-1", b"terms", uetr(1), at(1), SKEW, true),
            Ok(())
        );
        assert_eq!(
            quotes.own_terms("Q-1", &signed(b"terms", 1), at(1), SKEW),
            None
        );
        let inner = quotes.lock();
        assert!(matches!(
            inner.by_key[&key("Q-1")].state,
            State::Taken(u) if u == uetr(1)
        ));
        assert_eq!(inner.free, 0);
        drop(inner);
        assert_eq!(
            quotes.check("Q-1", b"other", uetr(1), at(2), SKEW, true),
            Err(Take::Altered)
        );
        assert_eq!(
            quotes.check("Q-1", b"terms", uetr(2), at(2), SKEW, true),
            Err(Take::TakenBy(uetr(1)))
        );
    }

    /// Past the bound on taken quotes the oldest is forgotten: a payment under it is refused
    /// as not held (AB05), still refused; the newer ones still answer DUPL.
    #[test]
    fn past_the_taken_bound_the_oldest_taken_quote_is_forgotten_and_stays_unusable() {
        let quotes = IssuedQuotes::with_bounds(10, 10, 2);
        for (i, id) in ["Q-0", "Q-1", "Q-2"].iter().enumerate() {
            held(&quotes, id, b"terms", at(0));
            let n = u8::try_from(i).expect("small") + 1;
            assert_eq!(
                quotes.check(id, b"terms", uetr(n), at(1), SKEW, true),
                Ok(())
            );
        }
        assert_eq!(quotes.len(), 2);
        assert_eq!(
            quotes.check("Q-0", b"terms", uetr(9), at(1), SKEW, true),
            Err(Take::NotHeld)
        );
        assert_eq!(
            quotes.check("Q-1", b"terms", uetr(9), at(1), SKEW, true),
            Err(Take::TakenBy(uetr(2)))
        );
    }

    /// A quote that stays free keeps the keys of the quotes issued after it from reaching the
    /// front of the issue order; once taken, they are dropped from it, so the order stays
    /// near the number of free quotes.
    #[test]
    fn the_issue_order_does_not_grow_with_taken_quotes() {
        let quotes = IssuedQuotes::default();
        held(&quotes, "Q-unused", b"terms", at(0));
        for i in 0..20_000u32 {
            let id = format!("Q-{i}");
            held(&quotes, &id, b"terms", at(0));
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            assert_eq!(
                quotes.check(&id, b"terms", Uetr(bytes), at(0), SKEW, true),
                Ok(())
            );
        }
        let inner = quotes.lock();
        assert_eq!(inner.free, 1);
        assert!(inner.free_order.len() <= 2 * inner.free + 1_024 + 1);
        assert_eq!(inner.taken_order.len(), 20_000);
    }

    /// The node's answer at the bound: GetQuote is refused with RR04 and its detail, and a
    /// quote issued before it still carries its payment.
    #[tokio::test]
    async fn at_the_bound_the_node_refuses_a_new_quote_with_rr04() {
        let pair = crate::testing::pair().await;
        let jp = pair.jp.engine();
        // A payment's quote, issued before the node fills up.
        let signed = crate::testing::jp_to_sg(jp, crate::testing::new_uetr());
        let now = jp.clock().now().1;
        let free = jp.issued.lock().free;
        // Many banks' quotes, none past its own share: the node's bound is what refuses.
        for i in free..QUOTES_HELD_MAX {
            let asker = QuoteAsker::Bank(format!("BANK{}", i % 16).into());
            try_hold_for(&asker, &jp.issued, &format!("Q-fill-{i}"), b"terms", now).expect("room");
        }
        let jpy = money::currency("JPY").expect("JPY");
        let refused = jp
            .quote(
                &QuoteAsker::Anonymous,
                "SG",
                &money::format_amount(jpy, 10_000),
            )
            .expect_err("no room for a quote");
        assert_eq!(refused.code, ReasonCode::Rr04);
        assert!(
            refused
                .detail
                .contains("100000 quotes issued and not yet used"),
            "{}",
            refused.detail
        );
        match jp.submit(signed).await.expect("answered") {
            crate::engine::Submitted::Report(report) => assert_eq!(
                report.transaction_status(),
                pb::TransactionStatus::Acsc,
                "{report:?}"
            ),
            crate::engine::Submitted::Invalid(refused) => panic!("{refused:?}"),
        }
    }

    fn rate(text: &str) -> Rate {
        Rate::parse(text).expect("rate")
    }

    #[test]
    fn the_band_is_measured_against_the_inverse_of_the_receivers_mid() {
        // SG's mid: 114.9 JPY per SGD. JP's quote at 0.0087 less 25 bps is 0.00867825 SGD per
        // JPY: 0.00867825 × 114.9 = 0.997130925, 28.69 bps below.
        let mid = rate("114.9");
        let jp = rate("0.00867825");
        assert_eq!(rate_deviation(jp, mid, 29), Deviation::Within);
        assert_eq!(rate_deviation(jp, mid, 28), Deviation::Below(28));
        // 0.0095 × 114.9 = 1.09155: 915.5 bps above.
        assert_eq!(
            rate_deviation(rate("0.0095"), mid, 100),
            Deviation::Above(915)
        );
        // Exactly the inverse, and exactly at the band's edge (1.01 × 1).
        assert_eq!(
            rate_deviation(rate("0.01"), rate("100"), 1),
            Deviation::Within
        );
        assert_eq!(
            rate_deviation(rate("0.0101"), rate("100"), 100),
            Deviation::Within
        );
        assert_eq!(
            rate_deviation(rate("0.0101"), rate("100"), 99),
            Deviation::Above(100)
        );
        // The largest rates overflow the product, far outside any band.
        let huge = rate("999999999999.999999999999");
        assert_eq!(
            rate_deviation(huge, huge, SPREAD_BPS_FULL),
            Deviation::Overflow
        );
        assert_eq!(
            rate_deviation(rate("0.000000000001"), rate("0.000000000001"), 9_999),
            Deviation::Below(9_999)
        );
    }
}
