//! A repeat-verification cache: verdicts keyed by certificate hashes, the anchor set, the CRL
//! set and the options, each reused only inside the time window in which it cannot change.
//!
//! Path validation depends on the validation time only through comparisons with the times
//! written in its inputs: each certificate's notBefore and notAfter (RFC 5280 §6.1.3(a)(2)) and
//! each CRL's thisUpdate and nextUpdate (RFC 5280 §6.3.3(a)). Between two consecutive such
//! instants every comparison has the same outcome, so the verdict computed at one time inside
//! that interval is the verdict at every other time inside it. [`TimeWindow::around`] computes
//! the interval; [`VerdictCache`] stores verdicts with their windows under a digest of every
//! other input ([`CacheKey`]), bounded by [`CACHE_ENTRIES_MAX`].
//!
//! The cache is a layer around the verifier: it never changes what `verify_chain` decides, it
//! only skips recomputing a decision whose inputs it has seen, byte for byte.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, PoisonError, RwLock};

use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer as _;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::cert::Cert;
use crate::crl::CrlSet;
use crate::error::Error;
use crate::mra::{Mra, RecognitionVerdict};
use crate::purpose::Purpose;
use crate::time::UnixTime;
use crate::validate::{PathError, ValidatedPath, ValidationOptions, verify_chain};

/// Most verdicts held at once. A node verifies the chains of its peer nodes and of a few hundred
/// participant banks, which repeat; a thousand entries holds all of them with room to spare,
/// while a verdict (its path and the list of checks, a few kilobytes) times a thousand keeps the
/// cache to a few megabytes even when a hostile peer floods it with distinct chains.
pub const CACHE_ENTRIES_MAX: usize = 1024;

/// Longest span of validation time, in seconds, on either side of the first verification, over
/// which a verdict is reused: one hour. The window computed from the inputs' own dates is exact
/// for today's rules; this cap bounds the damage if a future time-dependent rule is added to the
/// verifier without teaching the cache about it, at the price of one re-verification an hour.
pub const CACHE_WINDOW_SECONDS_MAX: i64 = 3600;

/// A half-open interval `[from, until)` of validation times over which a verdict holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    /// First validation time inside the window.
    pub from: UnixTime,
    /// First validation time after the window.
    pub until: UnixTime,
}

impl TimeWindow {
    /// The largest window containing `now` in which no instant of `boundaries` is crossed,
    /// capped to [`CACHE_WINDOW_SECONDS_MAX`] on each side of `now`.
    ///
    /// Each boundary `b` is treated as two change points, `b` and `b + 1`, so that a window
    /// either lies wholly before `b`, is exactly `{b}`, or lies wholly after it. That makes the
    /// window correct whether the verifier compares with `<` or `<=` (RFC 5280 §4.1.2.5 makes
    /// validity inclusive of both ends; a CRL is stale only after nextUpdate).
    pub fn around(now: UnixTime, boundaries: impl IntoIterator<Item = UnixTime>) -> Self {
        let mut from = now.0.saturating_sub(CACHE_WINDOW_SECONDS_MAX);
        let mut until = now.0.saturating_add(CACHE_WINDOW_SECONDS_MAX);
        for b in boundaries {
            for change in [b.0, b.0.saturating_add(1)] {
                if change <= now.0 {
                    from = from.max(change);
                } else {
                    until = until.min(change);
                }
            }
        }
        Self {
            from: UnixTime(from),
            until: UnixTime(until),
        }
    }

    /// True when `time` lies inside the window.
    pub fn contains(&self, time: UnixTime) -> bool {
        self.from <= time && time < self.until
    }
}

/// A SHA-256 digest of every input of a verification except the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// Starts a key for inputs of kind `domain` (a fixed string per caller, so keys of different
    /// verification layers can never collide).
    pub fn builder(domain: &str) -> CacheKeyBuilder {
        let mut builder = CacheKeyBuilder(Sha256::new());
        builder.bytes(domain.as_bytes());
        builder
    }

    /// The digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Feeds inputs into a [`CacheKey`]. Every item is length-prefixed, so two different input
/// sequences never produce the same byte stream.
#[derive(Clone, Debug)]
pub struct CacheKeyBuilder(Sha256);

impl CacheKeyBuilder {
    /// Adds one length-prefixed byte string.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    /// Adds a count, for example the number of intermediates that follow, so that the split
    /// between lists is part of the key.
    pub fn count(&mut self, count: usize) -> &mut Self {
        self.0.update((count as u64).to_be_bytes());
        self
    }

    /// The finished key.
    pub fn finish(&self) -> CacheKey {
        CacheKey(self.0.clone().finalize().into())
    }
}

struct Entry<V> {
    window: TimeWindow,
    verdict: Arc<V>,
}

struct Entries<V> {
    map: HashMap<CacheKey, Entry<V>>,
    /// Keys in insertion order, oldest first: eviction is first in, first out, which needs no
    /// write on the read path and so lets hits share a read lock.
    order: VecDeque<CacheKey>,
}

/// A bounded, thread-safe map from [`CacheKey`] to a verdict and the window it holds in.
pub struct VerdictCache<V> {
    entries: RwLock<Entries<V>>,
    capacity: usize,
}

impl<V> Default for VerdictCache<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> std::fmt::Debug for VerdictCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<V> VerdictCache<V> {
    /// An empty cache holding at most [`CACHE_ENTRIES_MAX`] verdicts.
    pub fn new() -> Self {
        Self::with_capacity(CACHE_ENTRIES_MAX)
    }

    /// An empty cache holding at most `capacity` verdicts (at least one, at most
    /// [`CACHE_ENTRIES_MAX`]).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(Entries {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            capacity: capacity.clamp(1, CACHE_ENTRIES_MAX),
        }
    }

    /// The verdict stored under `key`, if `now` lies inside its window.
    pub fn get(&self, key: &CacheKey, now: UnixTime) -> Option<Arc<V>> {
        // A panic while the lock was held cannot leave an entry half-written (each map
        // operation is one call), so a poisoned lock's contents are still usable.
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .map
            .get(key)
            .filter(|entry| entry.window.contains(now))
            .map(|entry| Arc::clone(&entry.verdict))
    }

    /// Stores `verdict` under `key` for the validation times in `window`, replacing any verdict
    /// already there and evicting the oldest entries beyond the capacity. Returns the stored
    /// verdict.
    pub fn insert(&self, key: CacheKey, window: TimeWindow, verdict: V) -> Arc<V> {
        let verdict = Arc::new(verdict);
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let entry = Entry {
            window,
            verdict: Arc::clone(&verdict),
        };
        if entries.map.insert(key, entry).is_none() {
            entries.order.push_back(key);
        }
        while entries.map.len() > self.capacity {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            entries.map.remove(&oldest);
        }
        verdict
    }

    /// Number of verdicts held.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    /// True when no verdict is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most verdicts this cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every verdict (after the anchors or the CRLs change, for instance).
    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.map.clear();
        entries.order.clear();
    }
}

/// What [`verify_chain`] decided about one chain.
pub type Verdict = Result<ValidatedPath, PathError>;

/// Key domain of [`CachingVerifier`] entries.
const CHAIN_KEY_DOMAIN: &str = "kakehashi-pki verify_chain v1";

/// Why a [`CachingVerifier`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// A CRL did not parse, or its dates could not be read.
    #[error("CRL {index} is unusable: {detail}")]
    Crl {
        /// Position of the CRL in the list given.
        index: usize,
        /// What is wrong.
        detail: String,
    },
}

/// [`verify_chain`] with a fixed set of trust anchors and CRLs and a [`VerdictCache`] in front
/// of it: a chain seen before, with the same options, at a time inside the window of its
/// earlier verdict, gets that verdict back without parsing or checking a signature.
///
/// A cached verdict is the very value the first verification returned, so its explanation
/// (the checks' details) cites that verification's time, not the current one; the decision,
/// the path and the rules are the same at every time inside the window.
#[derive(Debug)]
pub struct CachingVerifier {
    anchors: Vec<Cert>,
    crls: CrlSet,
    /// SHA-256 over the anchors' and the CRLs' DER, in order.
    trust_digest: [u8; 32],
    /// The anchors' notBefore and notAfter and the CRLs' thisUpdate and nextUpdate: the
    /// instants at which a verdict may change, besides those of the chain itself.
    trust_boundaries: Vec<UnixTime>,
    cache: VerdictCache<Verdict>,
}

impl CachingVerifier {
    /// A verifier for `anchors` and the DER CRLs `crls`, with a cache of
    /// [`CACHE_ENTRIES_MAX`] verdicts.
    pub fn new(anchors: Vec<Cert>, crls: &[&[u8]]) -> Result<Self, CacheError> {
        Self::with_capacity(anchors, crls, CACHE_ENTRIES_MAX)
    }

    /// As [`CachingVerifier::new`], holding at most `capacity` verdicts.
    pub fn with_capacity(
        anchors: Vec<Cert>,
        crls: &[&[u8]],
        capacity: usize,
    ) -> Result<Self, CacheError> {
        let mut digest = CacheKey::builder("kakehashi-pki trust inputs v1");
        let mut trust_boundaries = Vec::with_capacity(2 * (anchors.len() + crls.len()));
        digest.count(anchors.len());
        for anchor in &anchors {
            digest.bytes(&anchor.sha256());
            trust_boundaries.extend([anchor.not_before(), anchor.not_after()]);
        }
        let mut set = CrlSet::new();
        digest.count(crls.len());
        for (index, der) in crls.iter().enumerate() {
            set.add_der(der).map_err(|e| CacheError::Crl {
                index,
                detail: e.to_string(),
            })?;
            trust_boundaries.extend(crl_dates(index, der)?);
            digest.bytes(der);
        }
        Ok(Self {
            anchors,
            crls: set,
            trust_digest: *digest.finish().as_bytes(),
            trust_boundaries,
            cache: VerdictCache::with_capacity(capacity),
        })
    }

    /// The trust anchors, in the order [`ValidatedPath::anchor_index`] refers to.
    pub fn anchors(&self) -> &[Cert] {
        &self.anchors
    }

    /// The cache, for its size and for clearing it.
    pub fn cache(&self) -> &VerdictCache<Verdict> {
        &self.cache
    }

    /// Verifies a DER leaf with DER intermediates under `opts`. A repeat is answered from the
    /// cache before anything is parsed; a certificate that does not parse is an `Err` (and is
    /// not cached).
    pub fn verify_der(
        &self,
        leaf: &[u8],
        intermediates: &[&[u8]],
        opts: &ValidationOptions,
    ) -> Result<Arc<Verdict>, Error> {
        let leaf_hash: [u8; 32] = Sha256::digest(leaf).into();
        let hashes: Vec<[u8; 32]> = intermediates
            .iter()
            .map(|der| Sha256::digest(der).into())
            .collect();
        let key = self.key(&leaf_hash, &hashes, opts);
        if let Some(verdict) = self.cache.get(&key, opts.time) {
            return Ok(verdict);
        }
        let leaf = Cert::from_der(leaf)?;
        let intermediates = intermediates
            .iter()
            .map(|der| Cert::from_der(der))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.verify_and_store(key, &leaf, &intermediates, opts))
    }

    /// Verifies parsed certificates under `opts`, answering repeats from the cache.
    pub fn verify(
        &self,
        leaf: &Cert,
        intermediates: &[Cert],
        opts: &ValidationOptions,
    ) -> Arc<Verdict> {
        let hashes: Vec<[u8; 32]> = intermediates.iter().map(Cert::sha256).collect();
        let key = self.key(&leaf.sha256(), &hashes, opts);
        if let Some(verdict) = self.cache.get(&key, opts.time) {
            return verdict;
        }
        self.verify_and_store(key, leaf, intermediates, opts)
    }

    fn verify_and_store(
        &self,
        key: CacheKey,
        leaf: &Cert,
        intermediates: &[Cert],
        opts: &ValidationOptions,
    ) -> Arc<Verdict> {
        let verdict = if self.crls.is_empty() {
            verify_chain(leaf, intermediates, &self.anchors, &self.crls, opts)
        } else {
            // The intermediates may have signed some CRLs (crl::CrlSet::add_issuer); they are
            // added to a copy so that the shared set never holds one caller's pool.
            let mut crls = self.crls.clone();
            for cert in intermediates {
                // Past the set's bound a CRL issuer is missing, which can only make a status
                // unknown and so reject: failing closed needs no handling here.
                let _ = crls.add_issuer(cert.clone());
            }
            verify_chain(leaf, intermediates, &self.anchors, &crls, opts)
        };
        let chain_boundaries = std::iter::once(leaf)
            .chain(intermediates)
            .flat_map(|c| [c.not_before(), c.not_after()]);
        let window = TimeWindow::around(
            opts.time,
            chain_boundaries.chain(self.trust_boundaries.iter().copied()),
        );
        self.cache.insert(key, window, verdict)
    }

    /// Digest of the chain, the trust inputs and every option except the time.
    fn key(
        &self,
        leaf: &[u8; 32],
        intermediates: &[[u8; 32]],
        opts: &ValidationOptions,
    ) -> CacheKey {
        // Destructured field by field so that a new option fails to compile here until it is
        // added to the key: an option missing from the key would let one setting's verdict
        // answer another's.
        let ValidationOptions {
            time: _,
            required_ekus,
            required_key_usage,
            peer_name,
            policy,
            revocation,
            chain_depth_max,
            intermediates_max,
            profile,
            budget,
        } = opts;
        let mut builder = CacheKey::builder(CHAIN_KEY_DOMAIN);
        builder.bytes(&self.trust_digest).bytes(leaf);
        builder.count(intermediates.len());
        for hash in intermediates {
            builder.bytes(hash);
        }
        let options = format!(
            "{required_ekus:?}|{required_key_usage}|{peer_name:?}|{policy:?}|{revocation:?}|\
             {chain_depth_max}|{intermediates_max:?}|{profile:?}|{budget:?}"
        );
        builder.bytes(options.as_bytes());
        builder.finish()
    }
}

/// thisUpdate and nextUpdate (when present) of a DER CRL (RFC 5280 §5.1.2.4, §5.1.2.5).
fn crl_dates(index: usize, der: &[u8]) -> Result<Vec<UnixTime>, CacheError> {
    let (_, crl) = CertificateRevocationList::from_der(der).map_err(|e| CacheError::Crl {
        index,
        detail: e.to_string(),
    })?;
    let tbs = &crl.tbs_cert_list;
    let mut dates = vec![UnixTime(tbs.this_update.timestamp())];
    dates.extend(tbs.next_update.map(|t| UnixTime(t.timestamp())));
    Ok(dates)
}

/// Key domain of [`RecognitionCache`] entries.
const RECOGNITION_KEY_DOMAIN: &str = "kakehashi-pki recognize v1";

/// [`Mra::recognize`] for one agreement with a [`VerdictCache`] in front of it: a node checks
/// the same few chains (its peers' receipt keys, its banks' signing keys) for every payment, so
/// a repeat inside its time window is answered without parsing a path or checking a signature.
///
/// Besides the chain's own dates, a recognition verdict changes at the agreement's and its
/// clauses' `not_before`/`not_after` and at the thisUpdate/nextUpdate of every party's CRLs;
/// all of them bound the window. The key binds the agreement's canonical bytes, whether its
/// signatures verified, and every party's anchors and CRLs, so a cache built for one agreement
/// never answers for another.
#[derive(Debug)]
pub struct RecognitionCache {
    trust_digest: [u8; 32],
    trust_boundaries: Vec<UnixTime>,
    cache: VerdictCache<RecognitionVerdict>,
}

impl RecognitionCache {
    /// A cache for `mra`, holding at most [`CACHE_ENTRIES_MAX`] verdicts. Fails when one of the
    /// agreement's CRLs has unreadable dates (loading the agreement already parsed them).
    pub fn new(mra: &Mra) -> Result<Self, CacheError> {
        let mut digest = CacheKey::builder("kakehashi-pki agreement inputs v1");
        digest.bytes(mra.canonical_bytes());
        digest.count(usize::from(mra.signatures_verified()));
        digest.count(usize::from(mra.unsigned_allowed()));
        let mut boundaries = vec![mra.not_before, mra.not_after];
        for row in &mra.rows {
            boundaries.extend([row.not_before, row.not_after]);
        }
        digest.count(mra.jurisdictions.len());
        let mut index = 0;
        for party in &mra.jurisdictions {
            digest.count(party.anchors.len());
            for anchor in party.anchor_certs() {
                digest.bytes(&anchor.sha256());
                boundaries.extend([anchor.not_before(), anchor.not_after()]);
            }
            digest.count(party.crls.len());
            for der in &party.crls {
                digest.bytes(der);
                boundaries.extend(crl_dates(index, der)?);
                index += 1;
            }
        }
        Ok(Self {
            trust_digest: *digest.finish().as_bytes(),
            trust_boundaries: boundaries,
            cache: VerdictCache::new(),
        })
    }

    /// The cache, for its size and for clearing it.
    pub fn cache(&self) -> &VerdictCache<RecognitionVerdict> {
        &self.cache
    }

    /// [`Mra::recognize`], answering repeats from the cache. `mra` must be the agreement the
    /// cache was built for; `extra_crls` whose dates cannot be read are not cached around.
    ///
    /// The intermediates may be owned (`Cert`) or shared with a cache of parsed certificates
    /// (`Arc<Cert>`): both forms ask the same question under the same key. A repeat copies no
    /// certificate; a miss copies the intermediates once, for [`Mra::recognize`] (little beside
    /// the path validation that the miss runs).
    // The arguments are `Mra::recognize`'s and the agreement's: grouping them in a struct
    // would only move the list.
    #[allow(clippy::too_many_arguments)]
    pub fn recognize<C: Borrow<Cert>>(
        &self,
        mra: &Mra,
        relying: &str,
        purpose: Purpose,
        leaf: &Cert,
        intermediates: &[C],
        extra_crls: &[Vec<u8>],
        time: UnixTime,
    ) -> Arc<RecognitionVerdict> {
        let digests = intermediates.iter().map(|cert| cert.borrow().sha256());
        let key = self.recognition_key(relying, purpose, leaf, digests, extra_crls);
        if let Some(verdict) = self.cache.get(&key, time) {
            return verdict;
        }
        let intermediates: Vec<Cert> = intermediates.iter().map(|c| c.borrow().clone()).collect();
        self.recognize_missed(
            key,
            mra,
            relying,
            purpose,
            leaf,
            &intermediates,
            extra_crls,
            time,
        )
    }

    /// The key of a recognition: the agreement's inputs, the relying jurisdiction, the purpose,
    /// the chain (the leaf's and each intermediate's digest, in order) and the extra CRLs.
    fn recognition_key(
        &self,
        relying: &str,
        purpose: Purpose,
        leaf: &Cert,
        intermediates: impl ExactSizeIterator<Item = [u8; 32]>,
        extra_crls: &[Vec<u8>],
    ) -> CacheKey {
        let mut key = CacheKey::builder(RECOGNITION_KEY_DOMAIN);
        key.bytes(&self.trust_digest)
            .bytes(relying.as_bytes())
            .bytes(purpose.as_str().as_bytes())
            .bytes(&leaf.sha256())
            .count(intermediates.len());
        for digest in intermediates {
            key.bytes(&digest);
        }
        key.count(extra_crls.len());
        for crl in extra_crls {
            key.bytes(crl);
        }
        key.finish()
    }

    /// A recognition the cache did not hold under `key`: computed, and kept for its window.
    // As `recognize`, with the key.
    #[allow(clippy::too_many_arguments)]
    fn recognize_missed(
        &self,
        key: CacheKey,
        mra: &Mra,
        relying: &str,
        purpose: Purpose,
        leaf: &Cert,
        intermediates: &[Cert],
        extra_crls: &[Vec<u8>],
        time: UnixTime,
    ) -> Arc<RecognitionVerdict> {
        let verdict = mra.recognize(relying, purpose, leaf, intermediates, extra_crls, time);
        let mut boundaries = self.trust_boundaries.clone();
        for cert in std::iter::once(leaf).chain(intermediates) {
            boundaries.extend([cert.not_before(), cert.not_after()]);
        }
        for (index, der) in extra_crls.iter().enumerate() {
            match crl_dates(index, der) {
                Ok(dates) => boundaries.extend(dates),
                // A CRL whose dates are unreadable cannot bound a window: do not cache.
                Err(_) => return Arc::new(verdict),
            }
        }
        self.cache
            .insert(key, TimeWindow::around(time, boundaries), verdict)
    }
}

/// Most verified signatures a [`SignatureCache`] remembers. An entry is a 32-byte digest (about
/// a hundred bytes with the map's overhead), so four thousand cost well under a megabyte while
/// covering every CA-to-CA edge of dozens of jurisdictions with room for the leaves in use.
pub const SIGNATURE_CACHE_ENTRIES_MAX: usize = 4096;

/// Signatures already verified, across verifications: the "validated intermediates" half of the
/// cache. A signature's validity depends only on the signed bytes, the signature, its algorithm
/// and the issuer's key, never on the time, so an edge verified once (an issuing CA signed by
/// its root, typically) needs no second check however many leaves chain through it. Only
/// successes are remembered; a failure is recomputed, so nothing here can turn a bad signature
/// into a good one.
///
/// Path building does not consult it yet: `path.rs` checks each edge with
/// `signature::verify_cert_signed_by`. Routing that one call through a shared `SignatureCache`
/// (passed in with the validation options) lets a new leaf under known CAs pay for one
/// signature instead of one per certificate.
pub struct SignatureCache {
    verified: RwLock<DigestSet>,
    capacity: usize,
}

struct DigestSet {
    set: std::collections::HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl Default for SignatureCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SignatureCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl SignatureCache {
    /// An empty cache of at most [`SIGNATURE_CACHE_ENTRIES_MAX`] signatures.
    pub fn new() -> Self {
        Self::with_capacity(SIGNATURE_CACHE_ENTRIES_MAX)
    }

    /// An empty cache of at most `capacity` signatures (at least one, at most
    /// [`SIGNATURE_CACHE_ENTRIES_MAX`]).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            verified: RwLock::new(DigestSet {
                set: std::collections::HashSet::new(),
                order: VecDeque::new(),
            }),
            capacity: capacity.clamp(1, SIGNATURE_CACHE_ENTRIES_MAX),
        }
    }

    /// [`crate::signature::verify_cert_signed_by`], answered from the cache when this exact
    /// certificate was verified before under this exact issuer key.
    pub fn verify_cert_signed_by(
        &self,
        cert: &Cert,
        issuer: &Cert,
    ) -> Result<(), crate::signature::SignatureError> {
        // The certificate's digest covers the TBS bytes, the signature algorithm and the
        // signature value (RFC 5280 §4.1.1); the SPKI DER covers the key and its parameters.
        let key = *CacheKey::builder("kakehashi-pki verified signature v1")
            .bytes(&cert.sha256())
            .bytes(issuer.spki().der())
            .finish()
            .as_bytes();
        let known = self
            .verified
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .set
            .contains(&key);
        if known {
            return Ok(());
        }
        crate::signature::verify_cert_signed_by(cert, issuer)?;
        let mut verified = self
            .verified
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if verified.set.insert(key) {
            verified.order.push_back(key);
        }
        while verified.set.len() > self.capacity {
            let Some(oldest) = verified.order.pop_front() else {
                break;
            };
            verified.set.remove(&oldest);
        }
        Ok(())
    }

    /// Number of signatures remembered.
    pub fn len(&self) -> usize {
        self.verified
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .set
            .len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
