//! The participant's side of the API, as a library: connect to a node's public listener over
//! TLS (verifying the node under the agreement), and build and sign pacs.008-style
//! instructions with a bank's key. The CLI, the end-to-end tests and the load example use it,
//! so they all speak to a node exactly as an outside client would.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use kakehashi_pki::cert::Cert;
use kakehashi_pki::mra::Mra;
use kakehashi_pki::tls::NodeServerCertVerifier;
use kakehashi_pki::{UnixTime, pem};
use kakehashi_proto::SIGNING_DOMAIN_INSTRUCTION;
use kakehashi_proto::pb::{self, payments_client::PaymentsClient};
use prost::Message;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Identity};

use crate::instruction::{Uetr, to_timestamp};
use crate::signed;
use crate::tls::{TlsIdentity, install_crypto_provider};

/// Longest a participant may make an instruction live; nodes refuse longer ones (their
/// `instruction_max_lifetime_secs`, 600 in the devnet configurations).
pub const INSTRUCTION_LIFETIME_SECS: i64 = 300;

/// How long connecting (TCP and TLS) may take before [`connect`] gives up: a node on this
/// machine or a LAN answers in milliseconds, so five seconds only expires when it is down or
/// unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest message [`connect`] encodes or decodes: tonic's own default decoding ceiling (4 MiB),
/// stated here so the limit is explicit and applies to requests too. Nodes accept at most
/// `[limits] max_message_bytes` (64 KiB by default), so a larger request could never succeed.
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 4 << 20;

/// Why a participant could not connect or load its identity.
#[derive(Debug, thiserror::Error)]
pub enum ParticipantError {
    /// A file is unreadable or not what it should be.
    #[error("{what} {path}: {message}")]
    File {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The node's TLS set-up is unusable.
    #[error("connecting to {url}: {message}")]
    Connect {
        /// The node.
        url: String,
        /// What failed.
        message: String,
    },
    /// The node's address does not parse as a URL.
    #[error("{url} is not a valid URL: {message}")]
    InvalidUrl {
        /// The address given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The node's certificate cannot be checked as `relying`, which the agreement does not
    /// know.
    #[error("cannot check node certificates as {relying}: {message}")]
    Verifier {
        /// The jurisdiction that was to rely on the agreement.
        relying: String,
        /// What is wrong.
        message: String,
    },
    /// The node answered with a TLS certificate that `relying` does not recognize.
    #[error(
        "refused the node at {url}: its TLS certificate is not recognized by {relying}: {reason}"
    )]
    Refused {
        /// The node.
        url: String,
        /// The jurisdiction that refused it.
        relying: String,
        /// The verifier's explanation.
        reason: String,
    },
    /// The connection failed for any other reason (nothing listening, a timeout, a TLS
    /// failure the verifier did not explain).
    #[error("cannot reach the node at {url}: {message}")]
    Unreachable {
        /// The node.
        url: String,
        /// The transport error and its causes.
        message: String,
    },
}

/// How [`connect_with`] reaches a node. [`ConnectOptions::default`] is what [`connect`] uses,
/// apart from the server name it is given.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The name the node's certificate must be valid for; `None` takes the URL's host.
    pub server_name: Option<String>,
    /// A client certificate for the operator RPCs.
    pub identity: Option<Identity>,
    /// How long TCP and TLS may take.
    pub connect_timeout: Duration,
    /// Deadline of every call on the channel; `None` leaves each call to set its own (a
    /// `grpc-timeout` on the request) or to wait for the node's own request deadline.
    pub request_timeout: Option<Duration>,
    /// Largest message encoded or decoded.
    pub message_bytes_max: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            server_name: None,
            identity: None,
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: None,
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
        }
    }
}

/// Connects to a node's public listener at `url` (`https://host:port`). The node must present
/// a node-tls certificate that `relying` (the participant's jurisdiction) recognizes under
/// `mra`, valid for `server_name`. `identity` is a client certificate for the operator RPCs.
pub async fn connect(
    url: &str,
    server_name: &str,
    mra: Arc<Mra>,
    relying: &str,
    identity: Option<&TlsIdentity>,
) -> Result<PaymentsClient<Channel>, ParticipantError> {
    let options = ConnectOptions {
        server_name: Some(server_name.to_owned()),
        identity: identity.map(TlsIdentity::tonic_identity),
        ..ConnectOptions::default()
    };
    connect_with(url, mra, relying, &options).await
}

/// [`connect`] with every option explicit. A certificate the verifier refuses is reported as
/// [`ParticipantError::Refused`] with the verifier's explanation (rustls's own error only names
/// the TLS alert).
pub async fn connect_with(
    url: &str,
    mra: Arc<Mra>,
    relying: &str,
    options: &ConnectOptions,
) -> Result<PaymentsClient<Channel>, ParticipantError> {
    install_crypto_provider();
    // The verifier reports why it refused a certificate through this hook; the handshake error
    // that reaches us is often too terse to act on.
    let refusal: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = Arc::clone(&refusal);
    let verifier = NodeServerCertVerifier::new(mra, relying)
        .map_err(|e| ParticipantError::Verifier {
            relying: relying.to_owned(),
            message: e.to_string(),
        })?
        .with_refusal_hook(Arc::new(move |error| {
            if let Ok(mut slot) = seen.lock() {
                *slot = Some(error.to_string());
            }
        }));
    let mut tls = ClientTlsConfig::new();
    if let Some(name) = &options.server_name {
        tls = tls.domain_name(name.clone());
    }
    if let Some(identity) = &options.identity {
        tls = tls.identity(identity.clone());
    }
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| ParticipantError::InvalidUrl {
            url: url.to_owned(),
            message: error_chain(&e),
        })?
        .connect_timeout(options.connect_timeout);
    if let Some(timeout) = options.request_timeout {
        endpoint = endpoint.timeout(timeout);
    }
    let endpoint = endpoint
        .tls_config_with_verifier(tls, Arc::new(verifier))
        .map_err(|e| ParticipantError::Connect {
            url: url.to_owned(),
            message: error_chain(&e),
        })?;
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(error) => {
            let why = refusal.lock().ok().and_then(|slot| slot.clone());
            return Err(match why {
                Some(reason) => ParticipantError::Refused {
                    url: url.to_owned(),
                    relying: relying.to_owned(),
                    reason,
                },
                None => ParticipantError::Unreachable {
                    url: url.to_owned(),
                    message: error_chain(&error),
                },
            });
        }
    };
    Ok(PaymentsClient::new(channel)
        .max_decoding_message_size(options.message_bytes_max)
        .max_encoding_message_size(options.message_bytes_max))
}

/// An error and its sources on one line (tonic's transport errors nest the useful part), each
/// cause once: some wrappers repeat their source's text in their own.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A bank as a participant: its payment-signing key and certificate chain.
#[derive(Clone, Debug)]
pub struct Bank {
    /// The BIC: the common name of the signing certificate.
    pub bic: String,
    /// The Ed25519 key.
    pub key: SigningKey,
    /// DER, leaf first.
    pub chain: Vec<Vec<u8>>,
}

impl Bank {
    /// Loads a bank from its PEM chain (leaf first) and PKCS#8 key.
    pub fn load(chain: &Path, key: &Path) -> Result<Self, ParticipantError> {
        let file = |what: &'static str, path: &Path, message: String| ParticipantError::File {
            what,
            path: path.to_owned(),
            message,
        };
        let chain_bytes =
            std::fs::read(chain).map_err(|e| file("bank certificate", chain, e.to_string()))?;
        let chain_der = pem::blocks_or_der(&chain_bytes, "CERTIFICATE")
            .map_err(|m| file("bank certificate", chain, m))?;
        let leaf = chain_der
            .first()
            .ok_or_else(|| file("bank certificate", chain, "no certificate".into()))?;
        let cert =
            Cert::from_der(leaf).map_err(|e| file("bank certificate", chain, e.to_string()))?;
        let bic = cert
            .subject()
            .attributes("2.5.4.3")
            .find_map(|a| a.text())
            .ok_or_else(|| file("bank certificate", chain, "no common name (BIC)".into()))?;
        let key_text =
            std::fs::read_to_string(key).map_err(|e| file("bank key", key, e.to_string()))?;
        let key_pair = SigningKey::from_pkcs8_pem(&key_text)
            .map_err(|e| file("bank key", key, format!("not an Ed25519 PKCS#8 key: {e}")))?;
        Ok(Self {
            bic,
            key: key_pair,
            chain: chain_der,
        })
    }
}

/// What a debtor wants to pay, apart from the quote.
#[derive(Clone, Debug)]
pub struct Order {
    /// The debtor's account on the sending node.
    pub debtor_account: u128,
    /// The debtor's name.
    pub debtor_name: String,
    /// The creditor's bank.
    pub creditor_agent_bic: String,
    /// The creditor's account on the receiving node.
    pub creditor_account: u128,
    /// The creditor's name.
    pub creditor_name: String,
    /// Free text for the creditor.
    pub remittance_information: String,
}

/// Builds the instruction for `order` at `quote` (its source amount is the amount debited) and
/// signs it with `bank`'s key. `now` is the creation time; the instruction expires
/// [`INSTRUCTION_LIFETIME_SECS`] later.
pub fn instruction(
    bank: &Bank,
    order: &Order,
    quote: &pb::Signed,
    uetr: Uetr,
    now: UnixTime,
) -> Result<pb::Signed, crate::reason::Rejection> {
    let terms = pb::Quote::decode(quote.payload.as_slice())
        .map_err(|e| crate::reason::Rejection::format(format!("the quote does not decode: {e}")))?;
    let short = uetr.to_string();
    let short = short.get(..8).unwrap_or_default();
    let body = pb::CreditTransferInstruction {
        uetr: uetr.to_string(),
        end_to_end_id: format!("E2E-{short}"),
        instruction_id: format!("{}-{short}", bank.bic),
        creation_date_time: Some(to_timestamp(now)),
        expiry_date_time: Some(to_timestamp(UnixTime(
            now.0.saturating_add(INSTRUCTION_LIFETIME_SECS),
        ))),
        interbank_settlement_amount: terms.source_amount,
        charge_bearer: "SHAR".into(),
        debtor_agent_bic: bank.bic.clone(),
        debtor_account: order.debtor_account.to_string(),
        debtor_name: order.debtor_name.clone(),
        creditor_agent_bic: order.creditor_agent_bic.clone(),
        creditor_account: order.creditor_account.to_string(),
        creditor_name: order.creditor_name.clone(),
        remittance_information: order.remittance_information.clone(),
        quote: Some(quote.clone()),
    };
    Ok(signed::sign(
        SIGNING_DOMAIN_INSTRUCTION,
        body.encode_to_vec(),
        &bank.key,
        &bank.chain,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn a_bank_is_named_by_its_certificate() {
        let dir = repo().join("certs/jp/banks");
        let bank = Bank::load(&dir.join("KKHAJPJ0.pem"), &dir.join("KKHAJPJ0.key.pem")).unwrap();
        assert_eq!(bank.bic, "KKHAJPJ0");
        assert_eq!(bank.chain.len(), 2);
    }

    #[test]
    fn a_missing_key_names_the_file() {
        let dir = repo().join("certs/jp/banks");
        let err = Bank::load(&dir.join("KKHAJPJ0.pem"), &dir.join("missing.pem")).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
