//! Signing and verifying a [`pb::Signed`]: an encoded message, an Ed25519 signature over
//! `domain || payload`, and the signer's certificate chain, recognized under the
//! mutual-recognition agreement.
//!
//! The domain prefix (`kakehashi_proto::SIGNING_DOMAIN_*`) names the kind of object, so a
//! signature over a quote can never pass as one over an instruction or a receipt. Verification
//! runs cheapest and most certain first, and stops at the first failure:
//!
//! 1. sizes: payload, chain length, each certificate, signature length (FF01);
//! 2. every chain certificate parses as DER X.509 (FF01);
//! 3. the leaf's key is Ed25519 (DS0B);
//! 4. the signature verifies with `verify_strict` (RFC 8032 §5.1.7 with the small-order and
//!    non-canonical checks) over `domain || payload` (DS0B);
//! 5. the relying jurisdiction recognizes the chain for the purpose at the time under the MRA
//!    (DS0B, with the verdict's rule and message);
//! 6. the leaf has a common name, the signer's identity (a bank's BIC, a node's name) (DS0B).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use kakehashi_pki::cache::RecognitionCache;
use kakehashi_pki::cert::{Cert, OID_COMMON_NAME};
use kakehashi_pki::mra::{Mra, RecognitionVerdict};
use kakehashi_pki::signature::KeyAlgorithm;
use kakehashi_pki::{Purpose, UnixTime};
use kakehashi_proto::{
    SIGNING_DOMAIN_INSTRUCTION, SIGNING_DOMAIN_QUOTE, SIGNING_DOMAIN_RECEIPT, pb,
};
use sha2::{Digest, Sha256};

use crate::reason::Rejection;

/// Largest signed payload: an instruction with every text field at its ISO 20022 maximum and a
/// quote with its chain inside is about 6 KiB; 64 KiB is the node's message limit.
pub const PAYLOAD_LEN_MAX: usize = 64 * 1024;

/// Most certificates in a signer chain: leaf, a few intermediates and perhaps the root. The
/// verifier's path depth is far below this; it bounds the parsing work on hostile input.
pub const CHAIN_LEN_MAX: usize = 8;

/// Largest certificate in a signer chain: Ed25519 certificates are under 1 KiB; 16 KiB leaves
/// room for RSA-4096 intermediates with long policy and name-constraint extensions.
pub const CERT_LEN_MAX: usize = 16 * 1024;

/// An Ed25519 signature is exactly 64 bytes (RFC 8032 §5.1.6).
pub const SIGNATURE_LEN: usize = 64;

/// Signs `domain || payload` with `key` and packs the payload, the signature and `chain` (DER,
/// leaf first, the certificate of `key` first).
pub fn sign(domain: &[u8], payload: Vec<u8>, key: &SigningKey, chain: &[Vec<u8>]) -> pb::Signed {
    let signature = key.sign(&signed_bytes(domain, &payload));
    pb::Signed {
        payload,
        signature: signature.to_bytes().to_vec(),
        signer_chain: chain.to_vec(),
    }
}

/// Who signed, as established by [`verify`].
///
/// A proof type: only [`verify`] (which the quote and receipt checks of this crate call) makes
/// one, after the signature verified and the agreement recognized the chain. Its fields are
/// private, and it has no public constructor, `Default` or `Deserialize`, so code outside this
/// crate can read a signer but not forge one:
///
/// ```compile_fail,E0451
/// use kakehashi_protocol::signed::Signer;
/// let forged = Signer { subject_cn: "KKHAJPJ0".into(), ..todo!() };
/// ```
#[derive(Clone, Debug)]
pub struct Signer {
    subject_cn: String,
    jurisdiction: String,
    leaf_sha256: [u8; 32],
    public_key: VerifyingKey,
    /// Shared with the recognition cache that answered it: a verdict holds the path and every
    /// check made, dozens of allocations a copy would repeat for each signature.
    verdict: Arc<RecognitionVerdict>,
}

impl Signer {
    /// The leaf certificate's subject common name (a bank's BIC, or a node's name).
    pub fn subject_cn(&self) -> &str {
        &self.subject_cn
    }

    /// The jurisdiction whose anchor the chain validated to.
    pub fn jurisdiction(&self) -> &str {
        &self.jurisdiction
    }

    /// SHA-256 of the leaf certificate's DER.
    pub fn leaf_sha256(&self) -> [u8; 32] {
        self.leaf_sha256
    }

    /// The leaf's Ed25519 public key, the one the signature verified with: a node compares it
    /// with its own key to tell its own quotes from those of another key its jurisdiction
    /// certified.
    pub fn public_key(&self) -> VerifyingKey {
        self.public_key
    }

    /// The verifier's full verdict (recognized), for logs and explanations.
    pub fn verdict(&self) -> &RecognitionVerdict {
        &self.verdict
    }
}

/// Certificates parsed from signer chains, by the SHA-256 of their DER.
///
/// A node sees the same few chains in every payment (each bank's signing chain, each peer's
/// quote and receipt chains), and parsing them was about a seventh of a relaying node's CPU.
/// Parsing is a pure function of the bytes, so a certificate parsed once serves every later
/// copy of the same bytes. Only certificates that parse are kept; the map is cleared when full,
/// so hostile chains cost memory only up to the bound.
#[derive(Debug, Default)]
pub struct ParsedCerts {
    by_digest: Mutex<HashMap<[u8; 32], Arc<Cert>>>,
}

/// Distinct certificates [`ParsedCerts`] keeps: far more than the chains of a jurisdiction's
/// banks and nodes, and a few megabytes at most.
pub const PARSED_CERTS_MAX: usize = 1024;

impl ParsedCerts {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`Cert::from_der`], answered from the cache when these bytes were parsed before.
    pub fn parse(&self, der: &[u8]) -> Result<Cert, kakehashi_pki::error::Error> {
        self.parse_shared(der).map(|cert| (*cert).clone())
    }

    /// [`Self::parse`] without copying the certificate out of the cache: a [`Cert`] owns every
    /// field it parsed (a few dozen allocations), and a caller that only reads it (the
    /// participant API's caller check, on every request) need not copy it.
    pub fn parse_shared(&self, der: &[u8]) -> Result<Arc<Cert>, kakehashi_pki::error::Error> {
        let digest: [u8; 32] = Sha256::digest(der).into();
        let cached = self
            .by_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
            .cloned();
        if let Some(cert) = cached {
            return Ok(cert);
        }
        let cert = Arc::new(Cert::from_der(der)?);
        let mut by_digest = self
            .by_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if by_digest.len() >= PARSED_CERTS_MAX {
            by_digest.clear();
        }
        by_digest.insert(digest, Arc::clone(&cert));
        Ok(cert)
    }

    /// Certificates held.
    pub fn len(&self) -> usize {
        self.by_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The agreement a signature is checked under, with optional caches of its recognition
/// verdicts and of parsed certificates (a node checks the same few chains for every payment).
/// `&Mra` converts into an uncached `Trust`.
#[derive(Clone, Copy, Debug)]
pub struct Trust<'a> {
    mra: &'a Mra,
    cache: Option<&'a RecognitionCache>,
    certs: Option<&'a ParsedCerts>,
}

impl<'a> Trust<'a> {
    /// `mra` with `cache`, which must have been built for `mra`.
    pub fn cached(mra: &'a Mra, cache: &'a RecognitionCache) -> Self {
        Self {
            mra,
            cache: Some(cache),
            certs: None,
        }
    }

    /// The same, parsing signer certificates through `certs`.
    pub fn with_parsed_certs(self, certs: &'a ParsedCerts) -> Self {
        Self {
            certs: Some(certs),
            ..self
        }
    }

    /// Parses one certificate (a signer's, or a TLS client's) through the cache, if any,
    /// shared rather than copied out of it (see [`ParsedCerts::parse_shared`]).
    pub fn parse_shared(&self, der: &[u8]) -> Result<Arc<Cert>, kakehashi_pki::error::Error> {
        match self.certs {
            Some(certs) => certs.parse_shared(der),
            None => Cert::from_der(der).map(Arc::new),
        }
    }

    /// The agreement.
    pub fn mra(&self) -> &'a Mra {
        self.mra
    }

    /// [`Mra::recognize`] under this agreement, answered from the cache when there is one
    /// (the same verdict, bounded by the same time window, as the uncached call). The verdict
    /// is shared with the cache, not copied out of it. The intermediates may be owned or
    /// shared (parsed through [`Self::parse_shared`]); when the recognition cache answers, none
    /// is copied, and otherwise they are copied once for the agreement's verifier.
    pub fn recognize<C: Borrow<Cert>>(
        &self,
        relying: &str,
        purpose: Purpose,
        leaf: &Cert,
        intermediates: &[C],
        extra_crls: &[Vec<u8>],
        time: UnixTime,
    ) -> Arc<RecognitionVerdict> {
        let Some(cache) = self.cache else {
            let intermediates: Vec<Cert> =
                intermediates.iter().map(|c| c.borrow().clone()).collect();
            let verdict =
                self.mra
                    .recognize(relying, purpose, leaf, &intermediates, extra_crls, time);
            return Arc::new(verdict);
        };
        cache.recognize(
            self.mra,
            relying,
            purpose,
            leaf,
            intermediates,
            extra_crls,
            time,
        )
    }

    /// [`Self::recognize`], taking the intermediates: without a recognition cache, those no
    /// other holder shares (parsed without a cache of parsed certificates) are moved into the
    /// call rather than copied.
    fn recognize_chain(
        &self,
        relying: &str,
        purpose: Purpose,
        leaf: &Cert,
        intermediates: Vec<Arc<Cert>>,
        extra_crls: &[Vec<u8>],
        time: UnixTime,
    ) -> Arc<RecognitionVerdict> {
        if self.cache.is_some() {
            return self.recognize(relying, purpose, leaf, &intermediates, extra_crls, time);
        }
        let intermediates: Vec<Cert> = intermediates
            .into_iter()
            .map(Arc::unwrap_or_clone)
            .collect();
        let verdict = self
            .mra
            .recognize(relying, purpose, leaf, &intermediates, extra_crls, time);
        Arc::new(verdict)
    }
}

impl<'a> From<&'a Mra> for Trust<'a> {
    fn from(mra: &'a Mra) -> Self {
        Self {
            mra,
            cache: None,
            certs: None,
        }
    }
}

impl<'a> From<&'a Arc<Mra>> for Trust<'a> {
    fn from(mra: &'a Arc<Mra>) -> Self {
        Self::from(&**mra)
    }
}

/// Verifies `signed` as a `domain` object whose signer `relying` recognizes for `purpose` at
/// `time` under `mra`, with `extra_crls` (DER) besides the agreement's. See the module
/// documentation for the order of the checks. Nothing here looks inside the payload.
pub fn verify<'a>(
    signed: &pb::Signed,
    domain: &[u8],
    mra: impl Into<Trust<'a>>,
    relying: &str,
    purpose: Purpose,
    time: UnixTime,
    extra_crls: &[Vec<u8>],
) -> Result<Signer, Rejection> {
    let kind = domain_name(domain);
    let trust: Trust<'a> = mra.into();
    let opened = open(signed, &kind, trust)?;
    opened.verify_signature(domain, &signed.payload, &kind)?;
    opened.recognize(&kind, trust, relying, purpose, time, extra_crls)
}

/// [`verify`] of every envelope of `batch`, answered in the same order, each with the same
/// result [`verify`] gives it (the same [`Signer`], or the same refusal) — but with the
/// Ed25519 signatures of the batch verified together (ed25519-dalek's batch verification, a
/// single multiscalar multiplication, about half the work of verifying them one by one). If
/// the batch does not verify, its signatures are verified again one by one with
/// `verify_strict`, so only the bad ones are refused, each as [`verify`] refuses it.
///
/// What goes into the batch equation is held to what `verify_strict` requires first: a
/// canonical, not small-order commitment `R` and a public key that is not small-order; an
/// envelope that fails that is verified on its own with `verify_strict`. The batch equation is
/// the cofactorless one, with weights derived from the whole batch; the one difference left
/// from `verify_strict` concerns a commitment with a small-order component added to a valid
/// signature (a malleated copy of a signature the key's holder made over the same payload,
/// never a forgery), which the batch may accept.
pub fn verify_batch<'a>(
    batch: &[&pb::Signed],
    domain: &[u8],
    mra: impl Into<Trust<'a>>,
    relying: &str,
    purpose: Purpose,
    time: UnixTime,
    extra_crls: &[Vec<u8>],
) -> Vec<Result<Signer, Rejection>> {
    let kind = domain_name(domain);
    let trust: Trust<'a> = mra.into();
    let opened: Vec<Result<Opened, Rejection>> = batch
        .iter()
        .map(|signed| open(signed, &kind, trust))
        .collect();
    let messages: Vec<Vec<u8>> = batch
        .iter()
        .map(|signed| signed_bytes(domain, &signed.payload))
        .collect();
    // The envelopes whose signature goes into the batch equation.
    let batched: Vec<usize> = opened
        .iter()
        .enumerate()
        .filter_map(|(index, opened)| match opened {
            Ok(opened) if opened.batchable() => Some(index),
            _ => None,
        })
        .collect();
    let mut verified = vec![false; batch.len()];
    if batched.len() > 1 {
        let mut keys = Vec::with_capacity(batched.len());
        let mut signatures = Vec::with_capacity(batched.len());
        let mut batch_messages = Vec::with_capacity(batched.len());
        for &index in &batched {
            if let (Some(Ok(opened)), Some(message)) = (opened.get(index), messages.get(index)) {
                keys.push(opened.key);
                signatures.push(opened.signature);
                batch_messages.push(message.as_slice());
            }
        }
        if ed25519_dalek::verify_batch(&batch_messages, &signatures, &keys).is_ok() {
            for &index in &batched {
                if let Some(flag) = verified.get_mut(index) {
                    *flag = true;
                }
            }
        }
    }
    opened
        .into_iter()
        .zip(messages)
        .zip(verified)
        .map(|((opened, message), verified)| {
            let opened = opened?;
            if !verified {
                opened.verify_message(&message, &kind)?;
            }
            opened.recognize(&kind, trust, relying, purpose, time, extra_crls)
        })
        .collect()
}

/// An envelope through steps 1 to 3: its chain parsed (shared with the trust's cache of parsed
/// certificates, if any), its key and signature read.
struct Opened {
    leaf: Arc<Cert>,
    intermediates: Vec<Arc<Cert>>,
    key: VerifyingKey,
    signature: Signature,
}

/// Steps 1 to 3 of [`verify`], and the signature's length.
fn open(signed: &pb::Signed, kind: &str, trust: Trust<'_>) -> Result<Opened, Rejection> {
    check_sizes(signed, kind)?;
    let mut certs = Vec::with_capacity(signed.signer_chain.len());
    for (index, der) in signed.signer_chain.iter().enumerate() {
        let cert = trust.parse_shared(der).map_err(|e| {
            Rejection::format(format!(
                "{kind}: signer_chain[{index}] is not a DER X.509 certificate: {e}"
            ))
        })?;
        certs.push(cert);
    }
    let mut certs = certs.into_iter();
    let Some(leaf) = certs.next() else {
        // check_sizes refused an empty chain; failing closed keeps this branch harmless.
        return Err(Rejection::format(format!("{kind}: signer_chain is empty")));
    };
    let intermediates: Vec<Arc<Cert>> = certs.collect();

    let algorithm = leaf.spki().algorithm();
    if *algorithm != KeyAlgorithm::Ed25519 {
        return Err(Rejection::signature(format!(
            "{kind}: the signer certificate {} has a {} key; kakehashi signatures are Ed25519",
            leaf.subject_display(),
            algorithm.name()
        )));
    }
    let key = <[u8; 32]>::try_from(leaf.spki().key())
        .ok()
        .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
        .ok_or_else(|| {
            Rejection::signature(format!(
                "{kind}: the signer certificate {} holds an invalid Ed25519 public key",
                leaf.subject_display()
            ))
        })?;
    let signature = <[u8; SIGNATURE_LEN]>::try_from(signed.signature.as_slice())
        .map(|bytes| Signature::from_bytes(&bytes))
        .map_err(|_| {
            Rejection::format(format!(
                "{kind}: signature must be exactly {SIGNATURE_LEN} bytes"
            ))
        })?;
    Ok(Opened {
        leaf,
        intermediates,
        key,
        signature,
    })
}

impl Opened {
    /// Step 4: the signature over `domain || payload`.
    fn verify_signature(&self, domain: &[u8], payload: &[u8], kind: &str) -> Result<(), Rejection> {
        self.verify_message(&signed_bytes(domain, payload), kind)
    }

    /// Step 4 over the signed bytes `message` (`domain || payload`).
    fn verify_message(&self, message: &[u8], kind: &str) -> Result<(), Rejection> {
        self.key
            .verify_strict(message, &self.signature)
            .map_err(|_| {
                Rejection::signature(format!(
                    "{kind}: signature does not verify with the key of the signer certificate {} \
                     (the payload was altered, or signed by another key or for another kind of object)",
                    self.leaf.subject_display()
                ))
            })
    }

    /// Whether the signature may go into a batch equation: the checks `verify_strict` makes
    /// besides the equation (a key and a commitment `R` that are not small-order, `R` encoded
    /// canonically) hold, so the batch refuses what `verify_strict` refuses for them. A
    /// non-canonical `s` fails the batch as a whole, and the one-by-one pass then refuses it.
    fn batchable(&self) -> bool {
        let r = self.signature.r_bytes();
        !self.key.is_weak() && canonical_y(r) && !small_order_encoding(r)
    }

    /// Steps 5 and 6: recognition of the chain, and the signer's common name.
    fn recognize(
        self,
        kind: &str,
        trust: Trust<'_>,
        relying: &str,
        purpose: Purpose,
        time: UnixTime,
        extra_crls: &[Vec<u8>],
    ) -> Result<Signer, Rejection> {
        let leaf = &*self.leaf;
        let verdict =
            trust.recognize_chain(relying, purpose, leaf, self.intermediates, extra_crls, time);
        let jurisdiction = match (verdict.recognized(), verdict.anchor_jurisdiction()) {
            (true, Some(jurisdiction)) => jurisdiction.to_owned(),
            _ => {
                let (rule, message) = verdict
                    .reason()
                    .map_or(("MRA", "not recognized (no reason given)"), |r| {
                        (r.rule.as_str(), r.message.as_str())
                    });
                return Err(Rejection::signature(format!(
                    "{kind}: the signer certificate {} is not recognized by {relying} for {purpose} \
                     at {time}: {rule}: {message}",
                    leaf.subject_display()
                )));
            }
        };

        let subject_cn = leaf
            .subject()
            .attributes(OID_COMMON_NAME)
            .next()
            .and_then(|attribute| attribute.text())
            .filter(|cn| !cn.is_empty())
            .ok_or_else(|| {
                Rejection::signature(format!(
                    "{kind}: the signer certificate {} has no common name to identify the signer",
                    leaf.subject_display()
                ))
            })?;
        Ok(Signer {
            subject_cn,
            jurisdiction,
            leaf_sha256: leaf.sha256(),
            public_key: self.key,
            verdict,
        })
    }
}

/// Whether the 32-byte point encoding `bytes` holds a canonical y coordinate (below
/// p = 2^255 − 19; the top bit is the sign of x).
fn canonical_y(bytes: &[u8; 32]) -> bool {
    let mut y = *bytes;
    y[31] &= 0x7f;
    // y ≥ p only for 0x7fff..ffed up to 0x7fff..ffff (little-endian).
    let top_all_ones = y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff);
    !(top_all_ones && y[0] >= 0xed)
}

/// Whether `bytes`, whatever its sign bit, has the y coordinate of one of the eight points of
/// small order.
fn small_order_encoding(bytes: &[u8; 32]) -> bool {
    static SMALL_ORDER_Y: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    let ys = SMALL_ORDER_Y.get_or_init(|| {
        curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .map(|point| {
                let mut y = point.compress().to_bytes();
                y[31] &= 0x7f;
                y
            })
            .collect()
    });
    let mut y = *bytes;
    y[31] &= 0x7f;
    ys.contains(&y)
}

/// The bounds of step 1, before any parsing.
fn check_sizes(signed: &pb::Signed, kind: &str) -> Result<(), Rejection> {
    if signed.payload.len() > PAYLOAD_LEN_MAX {
        return Err(Rejection::format(format!(
            "{kind}: payload is {} bytes; at most {PAYLOAD_LEN_MAX} are allowed",
            signed.payload.len()
        )));
    }
    if signed.signature.len() != SIGNATURE_LEN {
        return Err(Rejection::format(format!(
            "{kind}: signature is {} bytes; an Ed25519 signature is exactly {SIGNATURE_LEN}",
            signed.signature.len()
        )));
    }
    if signed.signer_chain.is_empty() {
        return Err(Rejection::format(format!(
            "{kind}: signer_chain is empty; send the signer's certificate chain, leaf first"
        )));
    }
    if signed.signer_chain.len() > CHAIN_LEN_MAX {
        return Err(Rejection::format(format!(
            "{kind}: signer_chain has {} certificates; at most {CHAIN_LEN_MAX} are allowed",
            signed.signer_chain.len()
        )));
    }
    if let Some((index, der)) = signed
        .signer_chain
        .iter()
        .enumerate()
        .find(|(_, der)| der.len() > CERT_LEN_MAX)
    {
        return Err(Rejection::format(format!(
            "{kind}: signer_chain[{index}] is {} bytes; at most {CERT_LEN_MAX} are allowed",
            der.len()
        )));
    }
    Ok(())
}

/// `domain || payload`, the bytes an Ed25519 signature covers.
fn signed_bytes(domain: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(domain.len().saturating_add(payload.len()));
    bytes.extend_from_slice(domain);
    bytes.extend_from_slice(payload);
    bytes
}

/// A readable name for a signing domain, to open details: `instruction`, `quote`, `receipt`.
fn domain_name(domain: &[u8]) -> String {
    match domain {
        d if d == SIGNING_DOMAIN_INSTRUCTION => "signed instruction".to_owned(),
        d if d == SIGNING_DOMAIN_QUOTE => "signed quote".to_owned(),
        d if d == SIGNING_DOMAIN_RECEIPT => "signed receipt".to_owned(),
        other => String::from_utf8_lossy(other).trim_end().to_owned(),
    }
}

/// Shared fixtures for the node's domain tests: the committed development PKI and agreement.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::PathBuf;

    use ed25519_dalek::SigningKey;
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    use kakehashi_pki::UnixTime;
    use kakehashi_pki::mra::Mra;

    /// The repository root, two levels above this crate.
    pub(crate) fn repo_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// `certs/<relative>`.
    pub(crate) fn certs(relative: &str) -> PathBuf {
        repo_root().join("certs").join(relative)
    }

    /// The committed agreement, signed by JP, SG and TH.
    pub(crate) fn mra() -> Mra {
        Mra::load(&certs("mra.toml")).expect("certs/mra.toml loads")
    }

    /// The DER certificates of a PEM chain file under certs/, leaf first.
    pub(crate) fn chain(relative: &str) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(certs(relative)).expect("chain file");
        let ders = kakehashi_pki::pem::blocks_or_der(&bytes, "CERTIFICATE").expect("PEM chain");
        assert!(!ders.is_empty(), "{relative} holds no certificate");
        ders
    }

    /// A PKCS#8 PEM Ed25519 key under certs/.
    pub(crate) fn key(relative: &str) -> SigningKey {
        let text = std::fs::read_to_string(certs(relative)).expect("key file");
        SigningKey::from_pkcs8_pem(&text).expect("PKCS#8 Ed25519 key")
    }

    /// Inside every dev certificate's validity and the agreement's window.
    pub(crate) fn at_2027() -> UnixTime {
        UnixTime::parse_rfc3339("2027-01-01T00:00:00Z").expect("time")
    }

    /// The committed agreement without the rows that recognize TH, signed again by every
    /// party with the committed dev keys: TH stays a party that nobody recognizes (the
    /// committed agreement has a row for every pair, so a refusal by the agreement needs this).
    pub(crate) fn mra_without_th() -> Mra {
        let text = std::fs::read_to_string(certs("mra.toml")).expect("certs/mra.toml");
        let unsigned = &text[..text.find("[[signature]]").expect("a signed agreement")];
        let root = certs("").canonicalize().expect("certs dir");
        let marker = "[[recognition]]\n";
        let mut rows = unsigned.split(marker);
        let mut kept = rows.next().unwrap_or_default().to_owned();
        for row in rows {
            if !row.contains("issuing = \"TH\"\n") {
                kept.push_str(marker);
                kept.push_str(row);
            }
        }
        assert!(
            !kept.contains("issuing = \"TH\""),
            "every row recognizing TH removed"
        );
        // Anchor and CRL paths are relative to the agreement's file; this copy lives elsewhere.
        for code in ["jp", "sg", "th"] {
            kept = kept.replace(
                &format!("\"{code}/"),
                &format!("\"{}/{code}/", root.display()),
            );
        }
        let path = std::env::temp_dir().join(format!(
            "kakehashi-protocol-mra-without-th-{}-{:?}.toml",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, kept).expect("write the agreement");
        let loaded = Mra::load(&path);
        let _ = std::fs::remove_file(&path);
        let mut mra = loaded.expect("the edited agreement parses");
        for code in ["JP", "SG", "TH"] {
            let key = key(&format!("mra-keys/{}.key.pem", code.to_lowercase()));
            mra.sign(code, &key).expect("sign");
        }
        mra.verify_signatures().expect("signed by every party");
        mra
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{at_2027, chain, key, mra, mra_without_th};
    use super::*;
    use crate::reason::ReasonCode;

    fn bank_signed(bank: &str, jurisdiction: &str, payload: &[u8]) -> pb::Signed {
        let dir = jurisdiction.to_lowercase();
        sign(
            SIGNING_DOMAIN_INSTRUCTION,
            payload.to_vec(),
            &key(&format!("{dir}/banks/{bank}.key.pem")),
            &chain(&format!("{dir}/banks/{bank}.pem")),
        )
    }

    fn verify_payment(signed: &pb::Signed, relying: &str) -> Result<Signer, Rejection> {
        verify(
            signed,
            SIGNING_DOMAIN_INSTRUCTION,
            &mra(),
            relying,
            Purpose::PaymentSigning,
            at_2027(),
            &[],
        )
    }

    #[track_caller]
    fn rejected(result: Result<Signer, Rejection>, code: ReasonCode, needle: &str) -> Rejection {
        let r = result.expect_err("must be rejected");
        assert_eq!(r.code, code, "{}", r.detail);
        assert!(r.detail.contains(needle), "{:?} lacks {needle:?}", r.detail);
        r
    }

    #[test]
    fn sg_recognizes_a_jp_bank_signature() {
        let signed = bank_signed("KKHAJPJ0", "JP", b"hello");
        let signer = verify_payment(&signed, "SG").expect("recognized");
        assert_eq!(signer.subject_cn, "KKHAJPJ0");
        assert_eq!(signer.jurisdiction, "JP");
        assert!(signer.verdict.recognized());
        let leaf = Cert::from_der(&signed.signer_chain[0]).expect("leaf");
        assert_eq!(signer.leaf_sha256, leaf.sha256());
        assert_eq!(
            signer.public_key,
            key("jp/banks/KKHAJPJ0.key.pem").verifying_key()
        );
    }

    #[test]
    fn a_jurisdiction_recognizes_its_own_bank() {
        let signed = bank_signed("KKHAJPJ0", "JP", b"hello");
        assert_eq!(
            verify_payment(&signed, "JP").expect("own").jurisdiction,
            "JP"
        );
    }

    #[test]
    fn tampered_payload_is_ds0b() {
        let mut signed = bank_signed("KKHAJPJ0", "JP", b"pay 100");
        signed.payload = b"pay 900".to_vec();
        rejected(
            verify_payment(&signed, "SG"),
            ReasonCode::Ds0b,
            "signature does not verify",
        );
    }

    #[test]
    fn tampered_signature_is_ds0b() {
        let mut signed = bank_signed("KKHAJPJ0", "JP", b"pay 100");
        signed.signature[10] ^= 1;
        rejected(
            verify_payment(&signed, "SG"),
            ReasonCode::Ds0b,
            "signature does not verify",
        );
    }

    #[test]
    fn a_signature_for_another_domain_is_ds0b() {
        let signed = bank_signed("KKHAJPJ0", "JP", b"pay 100");
        let r = verify(
            &signed,
            SIGNING_DOMAIN_RECEIPT,
            &mra(),
            "SG",
            Purpose::PaymentSigning,
            at_2027(),
            &[],
        );
        rejected(r, ReasonCode::Ds0b, "signature does not verify");
    }

    #[test]
    fn a_key_that_does_not_match_the_leaf_is_ds0b() {
        let signed = sign(
            SIGNING_DOMAIN_INSTRUCTION,
            b"pay".to_vec(),
            &key("jp/banks/KKHBJPJ0.key.pem"),
            &chain("jp/banks/KKHAJPJ0.pem"),
        );
        rejected(
            verify_payment(&signed, "SG"),
            ReasonCode::Ds0b,
            "signature does not verify",
        );
    }

    #[test]
    fn a_th_bank_relied_on_by_sg_is_ds0b_with_the_mra_reason() {
        let signed = bank_signed("KKHATHB0", "TH", b"pay");
        // Under the committed agreement SG recognizes TH's banks.
        assert_eq!(
            verify_payment(&signed, "SG")
                .expect("recognized")
                .jurisdiction,
            "TH"
        );
        let without_th = mra_without_th();
        let under = |relying| {
            verify(
                &signed,
                SIGNING_DOMAIN_INSTRUCTION,
                &without_th,
                relying,
                Purpose::PaymentSigning,
                at_2027(),
                &[],
            )
        };
        let r = rejected(under("SG"), ReasonCode::Ds0b, "not recognized by SG");
        assert!(r.detail.contains("MRA §recognition"), "{}", r.detail);
        // TH itself recognizes its own bank: the refusal above is the agreement's, not the chain's.
        assert_eq!(under("TH").expect("own").jurisdiction, "TH");
    }

    #[test]
    fn a_revoked_bank_is_ds0b_naming_revocation() {
        let signed = bank_signed("KKHCJPJ0", "JP", b"pay");
        let r = rejected(
            verify_payment(&signed, "SG"),
            ReasonCode::Ds0b,
            "RFC 5280 §6.3",
        );
        assert!(r.detail.to_lowercase().contains("revoked"), "{}", r.detail);
    }

    #[test]
    fn a_receipt_key_cannot_sign_payments() {
        let signed = sign(
            SIGNING_DOMAIN_INSTRUCTION,
            b"pay".to_vec(),
            &key("jp/node/receipt.key.pem"),
            &chain("jp/node/receipt.pem"),
        );
        let r = rejected(
            verify_payment(&signed, "SG"),
            ReasonCode::Ds0b,
            "payment-signing",
        );
        assert!(r.detail.contains("RFC 5280 §4.2.1.12"), "{}", r.detail);
        // The same chain is fine for its own purpose.
        let ok = verify(
            &signed,
            SIGNING_DOMAIN_INSTRUCTION,
            &mra(),
            "SG",
            Purpose::ReceiptSigning,
            at_2027(),
            &[],
        );
        assert_eq!(
            ok.expect("receipt-signing").subject_cn,
            "Kakehashi JP Node receipt signing"
        );
    }

    #[test]
    fn an_expired_time_is_ds0b() {
        let signed = bank_signed("KKHAJPJ0", "JP", b"pay");
        let late = UnixTime::parse_rfc3339("2040-01-01T00:00:00Z").expect("time");
        let r = verify(
            &signed,
            SIGNING_DOMAIN_INSTRUCTION,
            &mra(),
            "SG",
            Purpose::PaymentSigning,
            late,
            &[],
        );
        rejected(r, ReasonCode::Ds0b, "not recognized");
    }

    #[test]
    fn size_bounds_are_ff01() {
        let good = bank_signed("KKHAJPJ0", "JP", b"pay");

        let mut big = bank_signed("KKHAJPJ0", "JP", &vec![0; PAYLOAD_LEN_MAX + 1]);
        rejected(
            verify_payment(&big, "SG"),
            ReasonCode::Ff01,
            "at most 65536",
        );
        big = bank_signed("KKHAJPJ0", "JP", &vec![0; PAYLOAD_LEN_MAX]);
        assert!(verify_payment(&big, "SG").is_ok());

        let mut short = good.clone();
        short.signature.pop();
        rejected(verify_payment(&short, "SG"), ReasonCode::Ff01, "exactly 64");
        let mut long = good.clone();
        long.signature.push(0);
        rejected(verify_payment(&long, "SG"), ReasonCode::Ff01, "exactly 64");

        let mut empty = good.clone();
        empty.signer_chain.clear();
        rejected(
            verify_payment(&empty, "SG"),
            ReasonCode::Ff01,
            "signer_chain is empty",
        );

        let mut many = good.clone();
        many.signer_chain = vec![good.signer_chain[0].clone(); CHAIN_LEN_MAX + 1];
        rejected(verify_payment(&many, "SG"), ReasonCode::Ff01, "at most 8");

        let mut huge = good.clone();
        huge.signer_chain.push(vec![0; CERT_LEN_MAX + 1]);
        rejected(
            verify_payment(&huge, "SG"),
            ReasonCode::Ff01,
            "signer_chain[2]",
        );
    }

    #[test]
    fn a_non_ed25519_signer_key_is_ds0b() {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let params = rcgen::CertificateParams::new(vec!["bank.test".to_owned()]).expect("params");
        let cert = params.self_signed(&key_pair).expect("certificate");
        let mut signed = bank_signed("KKHAJPJ0", "JP", b"pay");
        signed.signer_chain = vec![cert.der().to_vec()];
        rejected(
            verify_payment(&signed, "SG"),
            ReasonCode::Ds0b,
            "has a P-256 key",
        );
    }

    #[test]
    fn garbage_certificates_are_ff01() {
        let mut signed = bank_signed("KKHAJPJ0", "JP", b"pay");
        signed.signer_chain[1] = b"not a certificate".to_vec();
        rejected(
            verify_payment(&signed, "SG"),
            ReasonCode::Ff01,
            "signer_chain[1] is not a DER",
        );
        signed.signer_chain[0].truncate(100);
        rejected(
            verify_payment(&signed, "SG"),
            ReasonCode::Ff01,
            "signer_chain[0]",
        );
    }

    #[test]
    fn a_chain_missing_its_issuing_ca_is_ds0b() {
        let mut signed = bank_signed("KKHAJPJ0", "JP", b"pay");
        signed.signer_chain.truncate(1);
        rejected(
            verify_payment(&signed, "SG"),
            ReasonCode::Ds0b,
            "not recognized",
        );
    }

    #[test]
    fn relying_party_outside_the_agreement_is_ds0b() {
        let signed = bank_signed("KKHAJPJ0", "JP", b"pay");
        rejected(
            verify_payment(&signed, "XX"),
            ReasonCode::Ds0b,
            "MRA §parties",
        );
    }

    #[test]
    fn parsed_certificates_are_reused_and_give_the_same_verdicts() {
        let mra = mra();
        let certs = ParsedCerts::new();
        let trust = Trust::from(&mra).with_parsed_certs(&certs);
        let signed = bank_signed("KKHAJPJ0", "JP", b"pay");
        let check = |signed: &pb::Signed| {
            verify(
                signed,
                SIGNING_DOMAIN_INSTRUCTION,
                trust,
                "SG",
                Purpose::PaymentSigning,
                at_2027(),
                &[],
            )
        };
        let first = check(&signed).expect("recognized");
        assert_eq!(certs.len(), signed.signer_chain.len());
        let again = check(&signed).expect("recognized from parsed certificates");
        assert_eq!(
            certs.len(),
            signed.signer_chain.len(),
            "nothing parsed twice"
        );
        assert_eq!(again.leaf_sha256, first.leaf_sha256);
        assert_eq!(again.subject_cn, "KKHAJPJ0");
        assert_eq!(again.jurisdiction, first.jurisdiction);
        // The cache never turns bad bytes or a bad signature into a good answer.
        let mut forged = signed.clone();
        forged.payload = b"pay twice".to_vec();
        rejected(
            check(&forged),
            ReasonCode::Ds0b,
            "signature does not verify",
        );
        let mut truncated = signed.clone();
        truncated.signer_chain[0].truncate(100);
        rejected(check(&truncated), ReasonCode::Ff01, "signer_chain[0]");
        assert_eq!(
            certs.len(),
            signed.signer_chain.len(),
            "bad bytes are not kept"
        );
    }

    /// Issue 14, item 4: through both caches the signer's certificates and its verdict are
    /// shared, not copied, and every answer is the uncached one: the same verdict, the same
    /// refusals (a forged payload, a relying party that does not recognize the chain, a time
    /// past the chain's validity), alone and in a batch.
    #[test]
    fn shared_certificates_and_verdicts_decide_as_uncached() {
        let mra = mra();
        let recognition = RecognitionCache::new(&mra).expect("cache");
        let certs = ParsedCerts::new();
        let cached = Trust::cached(&mra, &recognition).with_parsed_certs(&certs);
        let uncached = Trust::from(&mra);
        let late = UnixTime::parse_rfc3339("2040-01-01T00:00:00Z").expect("time");
        let signed = bank_signed("KKHAJPJ0", "JP", b"pay");
        let mut forged = signed.clone();
        forged.payload = b"pay twice".to_vec();
        let check = |trust: Trust<'_>, signed: &pb::Signed, relying: &str, time: UnixTime| {
            verify(
                signed,
                SIGNING_DOMAIN_INSTRUCTION,
                trust,
                relying,
                Purpose::PaymentSigning,
                time,
                &[],
            )
        };
        let first = check(cached, &signed, "SG", at_2027()).expect("recognized");
        let again = check(cached, &signed, "SG", at_2027()).expect("recognized");
        assert!(
            std::ptr::eq(first.verdict(), again.verdict()),
            "the cache's verdict, shared"
        );
        let plain = check(uncached, &signed, "SG", at_2027()).expect("recognized");
        assert_eq!(first.verdict(), plain.verdict());
        assert_eq!(first.subject_cn(), plain.subject_cn());
        assert_eq!(first.leaf_sha256(), plain.leaf_sha256());
        let batch = [&signed, &forged, &signed];
        let together = verify_batch(
            &batch,
            SIGNING_DOMAIN_INSTRUCTION,
            cached,
            "SG",
            Purpose::PaymentSigning,
            at_2027(),
            &[],
        );
        for (envelope, result) in batch.iter().zip(together) {
            match (check(uncached, envelope, "SG", at_2027()), result) {
                (Ok(alone), Ok(batched)) => {
                    assert_eq!(alone.verdict(), batched.verdict());
                    assert!(std::ptr::eq(first.verdict(), batched.verdict()));
                }
                (Err(alone), Err(batched)) => assert_eq!(alone, batched),
                (alone, batched) => panic!("alone {alone:?}, batched {batched:?}"),
            }
        }
        // Last: the late verdict takes the chain's entry in the recognition cache.
        for (envelope, relying, time) in [
            (&forged, "SG", at_2027()),
            (&signed, "XX", at_2027()),
            (&signed, "SG", late),
        ] {
            let with = check(cached, envelope, relying, time).expect_err("refused");
            let without = check(uncached, envelope, relying, time).expect_err("refused");
            assert_eq!(with, without);
        }
        check(cached, &signed, "SG", at_2027()).expect("recognized again at its time");
        assert_eq!(certs.len(), signed.signer_chain.len(), "parsed once");
    }

    #[test]
    fn the_parsed_certificate_cache_is_bounded() {
        let certs = ParsedCerts::new();
        let ders = chain("jp/banks/KKHAJPJ0.pem");
        let der = &ders[0];
        assert!(certs.parse(der).is_ok());
        // Fill the cache with distinct keys by hand: parsing 1,024 distinct certificates
        // would need as many certificates.
        {
            let mut by_digest = certs.by_digest.lock().expect("lock");
            let cert = Arc::new(Cert::from_der(der).expect("parses"));
            for n in 0..PARSED_CERTS_MAX - 1 {
                let mut digest = [0xee; 32];
                digest[..8].copy_from_slice(&(n as u64).to_le_bytes());
                by_digest.insert(digest, Arc::clone(&cert));
            }
        }
        assert_eq!(certs.len(), PARSED_CERTS_MAX);
        let other = &ders[1];
        let parsed = certs.parse(other).expect("parses");
        assert_eq!(
            parsed.sha256(),
            Cert::from_der(other).expect("parses").sha256()
        );
        assert_eq!(certs.len(), 1, "cleared when full, then the new one kept");
    }

    fn verify_payments(batch: &[pb::Signed], relying: &str) -> Vec<Result<Signer, Rejection>> {
        let refs: Vec<&pb::Signed> = batch.iter().collect();
        verify_batch(
            &refs,
            SIGNING_DOMAIN_INSTRUCTION,
            &mra(),
            relying,
            Purpose::PaymentSigning,
            at_2027(),
            &[],
        )
    }

    /// A batch's results are [`verify`]'s, envelope by envelope: the same signer (name,
    /// jurisdiction, leaf, key) or the same refusal.
    #[track_caller]
    fn same_as_one_by_one(batch: &[pb::Signed], relying: &str) -> Vec<Result<Signer, Rejection>> {
        let together = verify_payments(batch, relying);
        assert_eq!(together.len(), batch.len());
        for (signed, result) in batch.iter().zip(&together) {
            match (verify_payment(signed, relying), result) {
                (Ok(alone), Ok(batched)) => {
                    assert_eq!(alone.subject_cn(), batched.subject_cn());
                    assert_eq!(alone.jurisdiction(), batched.jurisdiction());
                    assert_eq!(alone.leaf_sha256(), batched.leaf_sha256());
                    assert_eq!(alone.public_key(), batched.public_key());
                    assert_eq!(alone.verdict(), batched.verdict());
                }
                (Err(alone), Err(batched)) => assert_eq!(&alone, batched),
                (alone, batched) => panic!("alone {alone:?}, batched {batched:?}"),
            }
        }
        together
    }

    fn many(n: usize) -> Vec<pb::Signed> {
        let banks = [("KKHAJPJ0", "JP"), ("KKHBJPJ0", "JP"), ("KKHASGS0", "SG")];
        (0..n)
            .map(|i| {
                let (bank, jurisdiction) = banks[i % banks.len()];
                bank_signed(bank, jurisdiction, format!("pay {i}").as_bytes())
            })
            .collect()
    }

    #[test]
    fn a_batch_of_good_signatures_verifies_as_one_by_one() {
        let batch = many(12);
        let results = same_as_one_by_one(&batch, "JP");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(
            results[2].as_ref().expect("SG bank").jurisdiction(),
            "SG",
            "recognized per envelope"
        );
    }

    #[test]
    fn one_bad_signature_among_many_is_refused_alone() {
        let mut batch = many(9);
        batch[4].payload = b"pay 1000000".to_vec();
        let results = same_as_one_by_one(&batch, "SG");
        for (index, result) in results.into_iter().enumerate() {
            if index == 4 {
                rejected(result, ReasonCode::Ds0b, "signature does not verify");
            } else {
                assert!(result.is_ok(), "{index}: {result:?}");
            }
        }
    }

    #[test]
    fn a_signature_by_a_key_other_than_the_leafs_is_refused_in_a_batch() {
        let mut batch = many(5);
        batch.push(sign(
            SIGNING_DOMAIN_INSTRUCTION,
            b"pay".to_vec(),
            &key("jp/banks/KKHBJPJ0.key.pem"),
            &chain("jp/banks/KKHAJPJ0.pem"),
        ));
        let results = same_as_one_by_one(&batch, "SG");
        let last = results.into_iter().last().expect("six results");
        rejected(last, ReasonCode::Ds0b, "signature does not verify");
    }

    #[test]
    fn refusals_before_and_after_the_signature_keep_their_order_in_a_batch() {
        let mut batch = many(4);
        batch[0].signer_chain.clear();
        batch[1].signature = vec![0; SIGNATURE_LEN];
        // A good signature under a chain SG does not recognize for payment signing (a
        // certificate without the purpose's EKU): refused after the signature verified.
        batch.push(sign(
            SIGNING_DOMAIN_INSTRUCTION,
            b"pay".to_vec(),
            &key("fixtures/wrong-purpose/chain.key.pem"),
            &chain("fixtures/wrong-purpose/chain.pem"),
        ));
        let results = same_as_one_by_one(&batch, "SG");
        assert_eq!(
            results[0].as_ref().expect_err("no chain").code,
            ReasonCode::Ff01
        );
        assert_eq!(
            results[1].as_ref().expect_err("zero signature").code,
            ReasonCode::Ds0b
        );
        assert!(results[2].is_ok() && results[3].is_ok(), "{results:?}");
        rejected(results[4].clone(), ReasonCode::Ds0b, "not recognized by SG");
    }

    #[test]
    fn an_empty_batch_has_no_results_and_one_envelope_is_verified_alone() {
        assert!(verify_payments(&[], "SG").is_empty());
        let one = same_as_one_by_one(&many(1), "SG");
        assert!(one[0].is_ok(), "{one:?}");
    }

    #[test]
    fn point_encodings_outside_the_batch_rules_are_recognized() {
        let mut p_minus_one = [0xff; 32];
        p_minus_one[0] = 0xec;
        p_minus_one[31] = 0x7f;
        assert!(canonical_y(&p_minus_one));
        assert!(small_order_encoding(&p_minus_one), "y = -1 is of order 2");
        let mut p = p_minus_one;
        p[0] = 0xed;
        assert!(!canonical_y(&p));
        let mut one = [0; 32];
        one[0] = 1;
        assert!(small_order_encoding(&one), "the identity");
        one[31] = 0x80;
        assert!(small_order_encoding(&one), "whatever the sign bit");
        let good = many(1);
        let signature = Signature::from_slice(&good[0].signature).expect("64 bytes");
        assert!(canonical_y(signature.r_bytes()));
        assert!(!small_order_encoding(signature.r_bytes()));
    }
}
