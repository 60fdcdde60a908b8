//! Keys derived from the seed: Ed25519 for every CA, bank, receipt and MRA authority, ECDSA
//! P-256 for node TLS, and their PKCS#8 encodings.

use ed25519_dalek::SigningKey as DalekSigningKey;
use sha2::Digest as _;

use crate::DevPkiError;
use crate::encode::{der_tlv, pem_encode};

/// Domain separation for key derivation: a key derived for another use never collides.
const KEY_DERIVATION_LABEL: &[u8] = b"kakehashi-devpki-v1";

/// Derives the Ed25519 key called `name` from `seed`.
pub fn derive_key(seed: &str, name: &str) -> DalekSigningKey {
    let mut hasher = sha2::Sha256::new();
    hasher.update(KEY_DERIVATION_LABEL);
    hasher.update([0]);
    hasher.update(seed.as_bytes());
    hasher.update([0]);
    hasher.update(name.as_bytes());
    let digest = hasher.finalize();
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&digest);
    DalekSigningKey::from_bytes(&secret)
}

/// The Ed25519 private key as PKCS#8 version 1 (RFC 8410 §7: PrivateKeyInfo with the 32-byte
/// seed as CurvePrivateKey, no public key). Version 2 with the public key attached is also
/// valid (RFC 5958), but OpenSSL 3.0 refuses it, and auditors reach for openssl first.
pub(crate) fn pkcs8_v1_pem(key: &DalekSigningKey) -> String {
    // id-Ed25519 (RFC 8410 §3): 1.3.101.112.
    const ID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    let mut body = der_tlv(0x02, &[0x00]);
    body.extend(der_tlv(0x30, ID_ED25519));
    body.extend(der_tlv(0x04, &der_tlv(0x04, key.as_bytes())));
    pem_encode("PRIVATE KEY", &der_tlv(0x30, &body))
}

/// Domain separation for P-256 key derivation, distinct from the Ed25519 label so that a node
/// TLS scalar never equals an Ed25519 seed derived for the same name.
const P256_KEY_DERIVATION_LABEL: &[u8] = b"kakehashi-devpki-v1-p256";

/// Candidates tried before giving up on a P-256 scalar. A SHA-256 output is outside [1, n)
/// with probability about 2^-32 (n is just under 2^256), so the second candidate is already
/// astronomically unlikely to be needed; the bound only keeps the loop finite.
const P256_SCALAR_CANDIDATES: u8 = 16;

/// Length of a P-256 private scalar and of each affine coordinate (SEC 1 §2.3.5, §2.3.3).
const P256_LEN: usize = 32;

/// Derives the P-256 private scalar called `name` from `seed`: the first SHA-256 of
/// `label || 0 || seed || 0 || name || 0 || i` (i = 0, 1, …) that lies in [1, n), the
/// "testing candidates" method of FIPS 186-5 §A.2.2, so the scalar is uniform and never reduced.
pub(crate) fn derive_p256_scalar(seed: &str, name: &str) -> Result<[u8; P256_LEN], DevPkiError> {
    for counter in 0..P256_SCALAR_CANDIDATES {
        let mut hasher = sha2::Sha256::new();
        hasher.update(P256_KEY_DERIVATION_LABEL);
        hasher.update([0]);
        hasher.update(seed.as_bytes());
        hasher.update([0]);
        hasher.update(name.as_bytes());
        hasher.update([0, counter]);
        let digest = hasher.finalize();
        let mut scalar = [0u8; P256_LEN];
        scalar.copy_from_slice(&digest);
        // `from_slice` refuses zero and values at or above the group order n.
        if ::p256::SecretKey::from_slice(&scalar).is_ok() {
            return Ok(scalar);
        }
    }
    Err(DevPkiError::Key {
        what: name.to_owned(),
        reason: format!("no valid P-256 scalar in {P256_SCALAR_CANDIDATES} candidates"),
    })
}

/// The P-256 private key as PKCS#8 (RFC 5208 §5) holding an ECPrivateKey (RFC 5915 §3) with
/// its public key, which ring (and so rustls and rcgen) requires and checks against the scalar.
/// The RustCrypto `p256` crate computes the public key; ring exposes no way to.
pub(crate) fn p256_pkcs8_pem(scalar: &[u8; P256_LEN], name: &str) -> Result<String, DevPkiError> {
    use ::p256::pkcs8::{EncodePrivateKey as _, LineEnding};
    let refuse = |reason: String| DevPkiError::Key {
        what: name.to_owned(),
        reason,
    };
    let key = ::p256::SecretKey::from_slice(scalar)
        .map_err(|_| refuse("the P-256 scalar is zero or not below the group order".into()))?;
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| refuse(format!("encoding the P-256 key as PKCS#8: {e}")))
}
