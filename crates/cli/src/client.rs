//! Connecting to a node's `Payments` API as a participant: TLS with the node's certificate
//! checked under the mutual-recognition agreement (`node-tls` purpose, the participant's
//! jurisdiction relying), explicit timeouts and message-size limits, the balance queries the
//! commands share, the user's `--amount`, and a refused call as an error message.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kakehashi_node::participant::{self, ConnectOptions, ParticipantError};
use kakehashi_pki::UnixTime;
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb;
use kakehashi_proto::pb::payments_client::PaymentsClient;
use kakehashi_protocol::money;
use tonic::transport::{Channel, Identity};

/// The JP node's public address in the devnet configuration, the default `--node`.
pub(crate) const DEFAULT_NODE: &str = "https://127.0.0.1:7100";

/// Deadline of one call. A payment waits for the receiving node (the devnet relay timeout is
/// 3 s, the node's own request deadline 5 s), so 30 s is generous; a payment still in doubt
/// after it is reported PDNG by the node rather than lost.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest answer decoded: a balances listing of the node's maximum of 10,000 accounts is
/// about 2 MiB; anything beyond 8 MiB is not an answer this client asked for.
const MESSAGE_BYTES_MAX: usize = 8 << 20;

/// Largest certificate, bundle, CRL, key or agreement file read: a long chain of RSA-8192
/// certificates is well under 1 MiB, and a large CRL under a few; anything bigger is not what
/// the user meant.
const INPUT_FILE_SIZE_MAX: u64 = 16 << 20;

/// Arguments every participant command takes to reach a node.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct ConnectArgs {
    /// The node's public (Payments) address.
    #[arg(long, default_value = DEFAULT_NODE, value_name = "URL")]
    pub(crate) node: String,
    /// The mutual-recognition agreement that decides whether the node's TLS certificate is
    /// recognized.
    #[arg(long, default_value = "certs/mra.toml", value_name = "FILE")]
    pub(crate) mra: PathBuf,
    /// The participant's jurisdiction, which relies on the agreement to recognize the node
    /// (default: the country of the bank certificate, or JP when no bank is given).
    #[arg(long, value_name = "CODE")]
    pub(crate) jurisdiction: Option<String>,
    /// The name to check the node's certificate against (default: the URL's host).
    #[arg(long, value_name = "NAME")]
    pub(crate) tls_server_name: Option<String>,
    /// The TLS client identity to present: a bank's BIC (its participant-TLS certificate
    /// `<agreement dir>/<cc>/banks/<BIC>-tls.pem` and key), or a PEM chain file (leaf first;
    /// key from --identity-key). A node shows a bank only its own accounts and payments and
    /// takes only its own instructions; without an identity it answers quotes only.
    #[arg(long, value_name = "BIC|FILE")]
    pub(crate) identity: Option<String>,
    /// The key of an --identity given as a file (default: the file with `.pem` replaced by
    /// `.key.pem`).
    #[arg(long, value_name = "FILE")]
    pub(crate) identity_key: Option<PathBuf>,
}

impl ConnectArgs {
    /// The participant's jurisdiction: `--jurisdiction`, else `country` (the bank
    /// certificate's), else JP; it must be a party to the agreement.
    pub(crate) fn relying(&self, mra: &Mra, country: Option<&str>) -> anyhow::Result<String> {
        let (code, option) = match (&self.jurisdiction, country) {
            (Some(code), _) => (code.clone(), "--jurisdiction"),
            (None, Some(country)) => (country.to_owned(), "the bank certificate's country"),
            (None, None) => ("JP".to_owned(), "the default jurisdiction"),
        };
        check_party(mra, &code, option)?;
        Ok(code)
    }

    /// Connects to `--node` as `relying`, presenting `--identity` (or `default`, the
    /// command's own choice of chain and key files, when `--identity` is not given).
    pub(crate) async fn connect_as(
        &self,
        mra: &Arc<Mra>,
        relying: &str,
        default: Option<(PathBuf, PathBuf)>,
    ) -> anyhow::Result<NodeClient> {
        let identity = match self.identity_files()?.or(default) {
            Some((cert, key)) => Some(read_identity(&cert, &key)?),
            None => None,
        };
        connect(
            &self.node,
            Arc::clone(mra),
            relying,
            self.tls_server_name.as_deref(),
            identity,
        )
        .await
    }

    /// Connects to `--node` as `relying`, presenting `--identity` when given.
    pub(crate) async fn connect(
        &self,
        mra: &Arc<Mra>,
        relying: &str,
    ) -> anyhow::Result<NodeClient> {
        self.connect_as(mra, relying, None).await
    }

    /// The chain and key files `--identity` names, if given.
    fn identity_files(&self) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
        let Some(text) = &self.identity else {
            return Ok(None);
        };
        if kakehashi_protocol::instruction::bic("--identity", text.clone()).is_ok() {
            let certs = self.mra.parent().unwrap_or_else(|| Path::new("."));
            return Ok(Some(bank_tls_files(certs, text)));
        }
        let cert = PathBuf::from(text);
        let key = match &self.identity_key {
            Some(key) => key.clone(),
            None => key_beside(&cert)
                .with_context(|| format!("--identity {text}: give its key with --identity-key"))?,
        };
        Ok(Some((cert, key)))
    }
}

/// The participant-TLS chain and key of bank `bic` in a development PKI laid out like
/// `certs/`: `<certs>/<cc>/banks/<BIC>-tls.pem` and `-tls.key.pem`, `cc` the BIC's country.
pub(crate) fn bank_tls_files(certs: &Path, bic: &str) -> (PathBuf, PathBuf) {
    let country = bic.get(4..6).unwrap_or_default().to_ascii_lowercase();
    let dir = certs.join(country).join("banks");
    (
        dir.join(format!("{bic}-tls.pem")),
        dir.join(format!("{bic}-tls.key.pem")),
    )
}

/// The participant-TLS identity beside a bank's payment-signing chain `signing`
/// (`<BIC>.pem` → `<BIC>-tls.pem`, `<BIC>-tls.key.pem`), when both files exist: what `pay`
/// presents unless told otherwise.
pub(crate) fn tls_beside_signing(signing: &Path) -> Option<(PathBuf, PathBuf)> {
    let stem = signing.file_name()?.to_str()?.strip_suffix(".pem")?;
    let cert = signing.with_file_name(format!("{stem}-tls.pem"));
    let key = signing.with_file_name(format!("{stem}-tls.key.pem"));
    (cert.is_file() && key.is_file()).then_some((cert, key))
}

/// `<name>.key.pem` beside `<name>.pem`.
fn key_beside(cert: &Path) -> Option<PathBuf> {
    let stem = cert.file_name()?.to_str()?.strip_suffix(".pem")?;
    Some(cert.with_file_name(format!("{stem}.key.pem")))
}

/// A connected `Payments` client and the address it reached, for messages.
#[derive(Clone)]
pub(crate) struct NodeClient {
    pub(crate) payments: PaymentsClient<Channel>,
    pub(crate) url: String,
}

impl NodeClient {
    /// Balances of `accounts` (every account the caller may see when empty, page after page).
    pub(crate) async fn balances(
        &mut self,
        accounts: &[u128],
    ) -> anyhow::Result<Vec<pb::AccountBalance>> {
        participant::balances(&mut self.payments, accounts)
            .await
            .map_err(|s| call_error(&self.url, "the balances query", &s))
    }

    /// One account's balance.
    pub(crate) async fn account_balance(
        &mut self,
        account: u128,
    ) -> anyhow::Result<pb::AccountBalance> {
        let request = pb::BalancesRequest {
            accounts: vec![account.to_string()],
            ..pb::BalancesRequest::default()
        };
        let answer = self
            .payments
            .get_balances(request)
            .await
            .map_err(|s| call_error(&self.url, &format!("balance of account {account}"), &s))?
            .into_inner();
        answer
            .balances
            .into_iter()
            .find(|b| b.account == account.to_string())
            .with_context(|| format!("the node at {} did not report account {account}", self.url))
    }

    /// The node's currency: the first account's (every account of a node is in its currency).
    pub(crate) async fn currency(&mut self) -> anyhow::Result<String> {
        let answer = self
            .payments
            .get_balances(pb::BalancesRequest::default())
            .await
            .map_err(|s| call_error(&self.url, "balances", &s))?
            .into_inner();
        answer
            .balances
            .iter()
            .find_map(|b| b.posted_balance.as_ref().map(|a| a.currency.clone()))
            .with_context(|| {
                format!(
                    "the node at {} reports no accounts to learn its currency from; pass \
                     --currency",
                    self.url
                )
            })
    }
}

/// Checks a user-given amount (`--amount` in major units of `currency`) and returns it as the
/// wire type.
pub(crate) fn parse_user_amount(
    currency: &str,
    value: &str,
) -> anyhow::Result<pb::ActiveCurrencyAndAmount> {
    let amount = pb::ActiveCurrencyAndAmount {
        currency: currency.to_owned(),
        value: value.to_owned(),
    };
    let (_, minor) = money::parse_amount(&amount).map_err(|r| {
        anyhow::anyhow!(
            "--amount {value} {currency}: {}; give a positive decimal in major units with at \
             most the currency's minor digits, e.g. 10000 (JPY) or 12.50 (SGD)",
            r.detail
        )
    })?;
    if minor == 0 {
        bail!("--amount {value}: a payment must be more than zero");
    }
    Ok(amount)
}

/// Loads the agreement and insists that every party signed it: a participant that trusts an
/// unsigned agreement would recognize whatever anchors the file lists.
pub(crate) fn load_mra(path: &Path) -> anyhow::Result<Mra> {
    let mra = Mra::load(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot use the agreement {}: {e} (give the path with --mra, e.g. certs/mra.toml)",
            path.display()
        )
    })?;
    mra.verify_signatures().map_err(|e| {
        anyhow::anyhow!(
            "refusing the agreement {}: {e}; `kakehashi mra verify --mra {}` explains its \
             signatures",
            path.display(),
            path.display()
        )
    })?;
    Ok(mra)
}

/// Checks that `code` is a party to `mra` and names the parties when it is not.
pub(crate) fn check_party(mra: &Mra, code: &str, option: &str) -> anyhow::Result<()> {
    if mra.jurisdiction(code).is_none() {
        let parties: Vec<&str> = mra
            .jurisdictions()
            .iter()
            .map(|j| j.code.as_str())
            .collect();
        bail!(
            "{option} {code}: not a party to agreement {}; use one of: {}",
            mra.agreement_id(),
            parties.join(", ")
        );
    }
    Ok(())
}

/// Connects to `url` over TLS through [`participant::connect_with`]. The node's certificate
/// must be recognized by `relying` for node TLS under `mra` and name the host (or
/// `server_name`); `identity` is the operator's client certificate for the admin calls.
pub(crate) async fn connect(
    url: &str,
    mra: Arc<Mra>,
    relying: &str,
    server_name: Option<&str>,
    identity: Option<Identity>,
) -> anyhow::Result<NodeClient> {
    if !url.starts_with("https://") {
        bail!(
            "--node {url}: give an https:// URL (nodes serve the Payments API over TLS only), \
             e.g. {DEFAULT_NODE}"
        );
    }
    let options = ConnectOptions {
        server_name: server_name.map(str::to_owned),
        identity,
        connect_timeout: participant::CONNECT_TIMEOUT,
        request_timeout: Some(REQUEST_TIMEOUT),
        message_bytes_max: MESSAGE_BYTES_MAX,
    };
    let payments = participant::connect_with(url, mra, relying, &options)
        .await
        .map_err(|error| match error {
            ParticipantError::InvalidUrl { url, message } => {
                anyhow::anyhow!("--node {url} is not a valid URL: {message}")
            }
            ParticipantError::Connect { url, message } => {
                anyhow::anyhow!("cannot set up TLS for {url}: {message}")
            }
            unreachable @ ParticipantError::Unreachable { .. } => anyhow::anyhow!(
                "{unreachable}; is it running? (`kakehashi devnet` starts a JP and an SG node)"
            ),
            // Refused and Verifier already say what happened in the CLI's words.
            other => anyhow::Error::new(other),
        })?;
    Ok(NodeClient {
        payments,
        url: url.to_owned(),
    })
}

/// Reads a TLS client certificate chain and key (PEM): a bank's participant-TLS identity or
/// the operator's.
pub(crate) fn read_identity(cert: &Path, key: &Path) -> anyhow::Result<Identity> {
    let cert_pem = read_bounded(cert, "client certificate")?;
    let key_pem = read_bounded(key, "client key")?;
    Ok(Identity::from_pem(cert_pem, key_pem))
}

/// Reads a file with a size bound and a message that names it.
pub(crate) fn read_bounded(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if meta.len() > INPUT_FILE_SIZE_MAX {
        bail!(
            "{what} {} is {} bytes, more than the {INPUT_FILE_SIZE_MAX}-byte limit; \
             is it the right file?",
            path.display(),
            meta.len()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// A refused call as an error that says what happened and, where it can, what to do.
pub(crate) fn call_error(url: &str, what: &str, status: &tonic::Status) -> anyhow::Error {
    let hint = match status.code() {
        tonic::Code::Unavailable => "; is the node running and reachable?",
        tonic::Code::DeadlineExceeded => "; the node did not answer in time, retry later",
        tonic::Code::Unauthenticated => {
            "; present the bank's TLS identity with --identity BIC (or the operator's with \
             --operator-cert and --operator-key for the account commands)"
        }
        tonic::Code::PermissionDenied => {
            "; a bank sees and sends only its own (--identity names the bank), and operator \
             calls need the certificate the node lists in [admin] operator_certs"
        }
        _ => "",
    };
    anyhow::anyhow!(
        "{what} failed at {url}: {} ({:?}){hint}",
        status.message(),
        status.code()
    )
}

/// The current time: the CLI is the one place that reads the clock (the libraries take time
/// as an argument).
pub(crate) fn now() -> anyhow::Result<UnixTime> {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    let seconds = i64::try_from(since.as_secs()).context("the system clock is out of range")?;
    Ok(UnixTime(seconds))
}

/// A multi-threaded tokio runtime for one command.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
