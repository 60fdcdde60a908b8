//! The participant's side of the API, as a library: connect to a node's public listener over
//! TLS (verifying the node under the agreement), and build and sign pacs.008-style
//! instructions with a bank's key. The CLI, the end-to-end tests and the load example use it,
//! so they all speak to a node exactly as an outside client would.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kakehashi_pki::mra::Mra;
use kakehashi_pki::tls::NodeServerCertVerifier;
use kakehashi_proto::pb::payments_client::PaymentsClient;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Identity};

use crate::tls::{TlsIdentity, install_crypto_provider};

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

impl From<kakehashi_protocol::bank::BankFileError> for ParticipantError {
    fn from(error: kakehashi_protocol::bank::BankFileError) -> Self {
        Self::File {
            what: error.what,
            path: error.path,
            message: error.message,
        }
    }
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
