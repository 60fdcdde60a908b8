//! A bank's client: its signing identity, its participant-TLS connection to its node, and the
//! participant flow's calls.

use std::sync::Arc;

use kakehashi_node::participant::{
    self, Answer, ConnectOptions, Participant, PaymentRequest, VerifiedReceipt,
};
use kakehashi_node::tls::TlsIdentity;
use kakehashi_node::{Clock as _, SystemClock};
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb;
use kakehashi_proto::pb::payments_client::PaymentsClient;
use kakehashi_protocol::bank::{Bank, InstructionOptions, Order};
use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::quote::VerifiedQuote;
use tonic::transport::Channel;

use crate::Error;
use crate::pair::TestPair;

/// A payment a bank asks its node for: from one of its accounts to a creditor at a bank of the
/// other node, in major units of the sending node's currency.
#[derive(Clone, Debug)]
pub struct Transfer {
    /// The debtor's account, held by the paying bank.
    pub from: u128,
    /// The creditor's bank (its BIC); its node's jurisdiction is the counterparty.
    pub to_bic: String,
    /// The creditor's account on the other ledger.
    pub to_account: u128,
    /// The amount, a decimal string in major units of the sender's currency (`"25000"`).
    pub amount: String,
    /// The creditor's name (screened by both nodes); default `account <id> at <BIC>`.
    pub creditor_name: Option<String>,
    /// The UETR; default a new random one.
    pub uetr: Option<Uetr>,
}

impl Transfer {
    /// `amount` from account `from` to account `to_account` at bank `to_bic`.
    pub fn new(from: u128, to_bic: &str, to_account: u128, amount: &str) -> Self {
        Self {
            from,
            to_bic: to_bic.to_owned(),
            to_account,
            amount: amount.to_owned(),
            creditor_name: None,
            uetr: None,
        }
    }

    /// With the creditor's name.
    pub fn creditor_name(mut self, name: &str) -> Self {
        self.creditor_name = Some(name.to_owned());
        self
    }

    /// With this UETR (to pay the same payment twice, say).
    pub fn uetr(mut self, uetr: Uetr) -> Self {
        self.uetr = Some(uetr);
        self
    }
}

/// How a payment ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// ACSC: settled on both ledgers, with the receiving node's receipt, verified under the
    /// agreement.
    Settled {
        /// The sending node's status report.
        report: Box<pb::PaymentStatusReport>,
        /// The receipt.
        receipt: Box<VerifiedReceipt>,
    },
    /// RJCT: refused with an ISO 20022 reason code; nothing moved.
    Rejected {
        /// The reason code (`AM04`, `RR04`, ...).
        code: String,
        /// The node's explanation.
        detail: String,
    },
    /// PDNG: in doubt; the nodes resolve it (ask again with [`BankClient::status`]).
    Pending {
        /// The sending node's status report.
        report: Box<pb::PaymentStatusReport>,
    },
}

impl Outcome {
    /// `ACSC`, `RJCT` or `PDNG`.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Settled { .. } => "ACSC",
            Self::Rejected { .. } => "RJCT",
            Self::Pending { .. } => "PDNG",
        }
    }

    /// The reason code of a rejection.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A payment and how it ended.
#[derive(Clone, Debug)]
pub struct Paid {
    /// Its UETR.
    pub uetr: Uetr,
    /// The quote the instruction was signed at (`None` when the node refused to quote).
    pub quote: Option<VerifiedQuote>,
    /// The outcome.
    pub outcome: Outcome,
}

/// A bank of the pair: its signing identity and a connection to its node presenting its
/// participant-TLS identity, as the bank's own client would have.
#[derive(Clone)]
pub struct BankClient {
    bic: String,
    jurisdiction: String,
    accounts: Vec<u128>,
    identity: Bank,
    client: PaymentsClient<Channel>,
    mra: Arc<Mra>,
    /// The jurisdiction of each other bank of the pair, for the counterparty of a transfer.
    counterparties: Vec<(String, String)>,
}

impl std::fmt::Debug for BankClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankClient")
            .field("bic", &self.bic)
            .field("jurisdiction", &self.jurisdiction)
            .field("accounts", &self.accounts)
            .finish_non_exhaustive()
    }
}

impl BankClient {
    /// Loads bank `bic` of node `index` (its `<BIC>.pem` and `.key.pem` to sign,
    /// `<BIC>-tls.pem` and `-tls.key.pem` to connect) and connects it.
    pub(crate) async fn connect(
        pair: &TestPair,
        index: usize,
        bic: &str,
        accounts: Vec<u128>,
    ) -> Result<Self, Error> {
        let config = &pair.configs[index];
        let jurisdiction = config.jurisdiction.clone();
        let dir = pair.banks_dir(&jurisdiction);
        let identity = Bank::load(
            &dir.join(format!("{bic}.pem")),
            &dir.join(format!("{bic}.key.pem")),
        )
        .map_err(|e| Error::Setup(e.to_string()))?;
        let client = connect_bank(pair, &jurisdiction, bic).await?;
        let counterparties = pair
            .configs
            .iter()
            .flat_map(|c| {
                c.accounts
                    .iter()
                    .filter(|a| !a.owner_bic.is_empty())
                    .map(|a| (a.owner_bic.clone(), c.jurisdiction.clone()))
            })
            .collect();
        Ok(Self {
            bic: bic.to_owned(),
            jurisdiction,
            accounts,
            identity,
            client,
            mra: Arc::clone(&pair.mra),
            counterparties,
        })
    }

    /// The bank's BIC.
    pub fn bic(&self) -> &str {
        &self.bic
    }

    /// Its node's jurisdiction.
    pub fn jurisdiction(&self) -> &str {
        &self.jurisdiction
    }

    /// The accounts it holds there (from the configuration).
    pub fn accounts(&self) -> &[u128] {
        &self.accounts
    }

    /// The connection to its node, for calls the client has no method for.
    pub fn payments(&self) -> PaymentsClient<Channel> {
        self.client.clone()
    }

    /// Asks its node for a quote of `amount` (major units of its currency) to
    /// `counterparty`, and verifies it under the agreement.
    pub async fn quote(&self, amount: &str, counterparty: &str) -> Result<VerifiedQuote, Error> {
        let participant = Participant::new(self.mra.as_ref(), &self.jurisdiction);
        let amount = self.amount(amount)?;
        let ask = participant.ask(&amount, counterparty)?;
        let now = SystemClock.now().1;
        Ok(participant
            .quote(&mut self.client.clone(), &ask, now)
            .await?)
    }

    /// Pays `transfer` through the participant flow: quote, verify it, sign the instruction,
    /// submit, verify the receipt. A refusal is an [`Outcome::Rejected`]; an error is a call
    /// without an answer, a quote that does not verify, or a settled payment whose receipt
    /// does not verify.
    pub async fn pay(&self, transfer: &Transfer) -> Result<Paid, Error> {
        let counterparty = self
            .counterparties
            .iter()
            .find(|(bic, _)| *bic == transfer.to_bic)
            .map(|(_, jurisdiction)| jurisdiction.clone())
            .ok_or_else(|| {
                Error::Setup(format!(
                    "no bank {} holds an account in the pair's configurations",
                    transfer.to_bic
                ))
            })?;
        let uetr = match transfer.uetr {
            Some(uetr) => uetr,
            None => Uetr::new_v4(&ring::rand::SystemRandom::new())
                .map_err(|_| Error::Setup("the random number generator failed".to_owned()))?,
        };
        let default_name = |account: u128, bic: &str| format!("account {account} at {bic}");
        let request = PaymentRequest {
            uetr,
            amount: self.amount(&transfer.amount)?,
            counterparty,
            order: Order {
                debtor_account: transfer.from,
                debtor_name: default_name(transfer.from, &self.bic),
                creditor_agent_bic: transfer.to_bic.clone(),
                creditor_account: transfer.to_account,
                creditor_name: transfer
                    .creditor_name
                    .clone()
                    .unwrap_or_else(|| default_name(transfer.to_account, &transfer.to_bic)),
                remittance_information: String::new(),
            },
            options: InstructionOptions::default(),
        };
        let participant = Participant::new(self.mra.as_ref(), &self.jurisdiction);
        let now = SystemClock.now().1;
        let paid = participant
            .pay(&mut self.client.clone(), &self.identity, &request, now)
            .await?;
        let outcome = match paid.answer {
            Answer::Refused(refusal) => Outcome::Rejected {
                detail: refusal.detail().to_owned(),
                code: refusal.code,
            },
            Answer::Report(report) => match report.transaction_status() {
                pb::TransactionStatus::Acsc => match paid.receipt? {
                    Some(receipt) => Outcome::Settled {
                        report,
                        receipt: Box::new(receipt),
                    },
                    None => {
                        return Err(participant::ReceiptError::Missing {
                            uetr: uetr.to_string(),
                        }
                        .into());
                    }
                },
                pb::TransactionStatus::Rjct => Outcome::Rejected {
                    code: report.status_reason_code.clone(),
                    detail: report.status_reason_detail.clone(),
                },
                _ => Outcome::Pending { report },
            },
        };
        Ok(Paid {
            uetr,
            quote: paid.quote,
            outcome,
        })
    }

    /// The status report of payment `uetr` (this bank's, as debtor or creditor agent).
    pub async fn status(&self, uetr: &Uetr) -> Result<pb::PaymentStatusReport, Error> {
        self.client
            .clone()
            .get_payment_status(pb::PaymentStatusRequest {
                uetr: uetr.to_string(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| Error::Call {
                what: format!("the status of {uetr}"),
                status: Box::new(status),
            })
    }

    /// The balances of every account it holds at its node.
    pub async fn balances(&self) -> Result<Vec<pb::AccountBalance>, Error> {
        participant::balances(&mut self.client.clone(), &[])
            .await
            .map_err(|status| Error::Call {
                what: format!("the balances of {}", self.bic),
                status: Box::new(status),
            })
    }

    /// The posted balance of `account`, in minor units (yen, cents).
    pub async fn balance(&self, account: u128) -> Result<u128, Error> {
        let balances = participant::balances(&mut self.client.clone(), &[account])
            .await
            .map_err(|status| Error::Call {
                what: format!("the balance of {account}"),
                status: Box::new(status),
            })?;
        let posted = balances
            .iter()
            .find(|b| b.account == account.to_string())
            .and_then(|b| b.posted_balance.as_ref())
            .ok_or_else(|| Error::Setup(format!("the node reported no balance for {account}")))?;
        kakehashi_protocol::money::parse_amount(posted)
            .map(|(_, minor)| minor)
            .map_err(|e| Error::Setup(format!("the balance of {account} does not parse: {e}")))
    }

    /// `value` in the currency of the bank's jurisdiction.
    fn amount(&self, value: &str) -> Result<pb::ActiveCurrencyAndAmount, Error> {
        let currency = self
            .mra
            .jurisdiction(&self.jurisdiction)
            .map(|j| j.currency.clone())
            .ok_or_else(|| {
                Error::Setup(format!(
                    "{} is not a party to the agreement",
                    self.jurisdiction
                ))
            })?;
        Ok(pb::ActiveCurrencyAndAmount {
            currency,
            value: value.to_owned(),
        })
    }
}

/// A connection to `jurisdiction`'s node presenting bank `bic`'s participant-TLS identity
/// (`<BIC>-tls.pem` beside its signing chain), or none when the bank has none: the node then
/// refuses its submissions (UNAUTHENTICATED), as it would the real bank's.
pub(crate) async fn connect_bank(
    pair: &TestPair,
    jurisdiction: &str,
    bic: &str,
) -> Result<PaymentsClient<Channel>, Error> {
    let url = pair
        .url(jurisdiction)
        .ok_or_else(|| Error::Setup(format!("no {jurisdiction} node in the pair")))?;
    let dir = pair.banks_dir(jurisdiction);
    let identity = TlsIdentity::load(
        &dir.join(format!("{bic}-tls.pem")),
        &dir.join(format!("{bic}-tls.key.pem")),
    )
    .ok();
    let options = ConnectOptions {
        identity: identity.as_ref().map(TlsIdentity::tonic_identity),
        ..ConnectOptions::default()
    };
    Ok(participant::connect_with(&url, Arc::clone(&pair.mra), jurisdiction, &options).await?)
}
