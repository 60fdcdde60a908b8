//! `kakehashi ledger audit` (replay a node's journal offline and report every discrepancy),
//! `kakehashi ledger export` (accounts and transfers as JSON Lines, for reconciliation) and
//! `kakehashi ledger pair-audit` (do two nodes' books agree on every payment between them) and
//! `kakehashi ledger statement` (one account's ISO 20022 camt.053 statement). The
//! checks are `kakehashi_ledger::audit`'s and `kakehashi_ops::pair_audit`'s; this module parses
//! arguments, formats the reports (text, JSON, and with `--report` an HTML file made by
//! `crate::report`) and picks the exit code. The books are a sled ledger directory
//! (`--data-dir`) or a node configuration's (`--config`: sled or PostgreSQL, see `books`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use kakehashi_ledger::{AuditOptions, AuditReport};
use kakehashi_ops::pair_audit::{self, PairReport};

use crate::client;
use crate::configs::load_config;
use crate::output::ledger_currency;
use crate::report;

mod books;
mod statement;

use books::{Books, BooksArgs};

/// Largest public-key file read: a PEM SubjectPublicKeyInfo is about 113 bytes.
const KEY_FILE_SIZE_MAX: u64 = 64 << 10;

#[derive(clap::Subcommand)]
pub(crate) enum LedgerCommand {
    /// Replay a ledger's journal offline: recompute every balance, check the hash chain, the
    /// signatures of the checkpoints and signed heads, and that debits equal credits per
    /// currency; report how many records follow the last signed one.
    ///
    /// Read-only; refuses a sled database a running node holds (on PostgreSQL, stop the node
    /// first: its books may move between the audit's reads of them otherwise). Exit 0 clean, 1
    /// discrepancies found (each one listed), 2 usage or input error.
    Audit {
        #[command(flatten)]
        books: BooksArgs,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The node key the checkpoints must be signed with: 64 hex digits, or a PEM public
        /// key file. Without it, the key of the signing certificate of --config's node, or
        /// with --data-dir the key stored in the database, which proves consistency but not
        /// whose key it is.
        #[arg(long, value_name = "HEX|FILE")]
        expected_key: Option<String>,
        /// Also fail (exit 1) when any journal record follows the last signed head or
        /// checkpoint: the node signs its head at every clean close, so an unsigned tail
        /// means it was killed, or the signatures were removed.
        #[arg(long)]
        require_signed_head: bool,
        /// Also write a self-contained HTML report to FILE: the key used, each check with its
        /// verdict, the debits and credits of each currency as a chart, every discrepancy.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
    /// Write every account and transfer as JSON Lines (u128 values as decimal strings).
    Export {
        #[command(flatten)]
        books: BooksArgs,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check that two nodes' books agree on every payment between them, in both directions:
    /// each credit on the receiver has the sender's posted reservation with the same UETR and
    /// amounts, receipts verify under the agreement, voided payments are credited nowhere,
    /// and the corridor and liquidity balances equal the sums of the settled payments. Runs
    /// each node's own ledger audit too.
    ///
    /// Read-only; refuses databases a running node holds (stop both nodes first). Payments
    /// still in doubt are listed but are not discrepancies. Exit 0 the pair agrees, 1
    /// discrepancies found (each listed with its UETR), 2 usage or input error.
    PairAudit(PairAuditArgs),
    /// Write one account's ISO 20022 camt.053.001.08 bank-to-customer statement: opening and
    /// closing booked balances, one entry per posted transfer with the payment's UETR, and
    /// the reservations still pending as information (docs/iso20022.md).
    ///
    /// Read-only, like the audit; refuses a database a running node holds. Without --to the
    /// closing balance is checked against the account's posted balance. Exit 0 written, 2
    /// usage or input error.
    Statement {
        #[command(flatten)]
        books: BooksArgs,
        /// The account.
        #[arg(long, value_name = "ID")]
        account: u128,
        /// The first day of the statement, UTC (default: the account's opening).
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        from: Option<time::Date>,
        /// The last day of the statement, UTC (default: up to now).
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        to: Option<time::Date>,
        /// Where to write the camt.053 XML.
        #[arg(long, value_name = "FILE")]
        camt053: PathBuf,
        /// The node's data directory, whose ledger holds its payment records (read-only): the
        /// entries then quote the payments' end-to-end ids, which the ledger's transfers do not
        /// hold. With --config the node's own payment records are read anyway.
        #[arg(long, value_name = "DIR", conflicts_with = "config")]
        payments: Option<PathBuf>,
        /// The agreement whose parties may have sent the inbound payments (default: the
        /// configuration's `mra` with --config, else certs/mra.toml).
        #[arg(long, value_name = "FILE")]
        mra: Option<PathBuf>,
    },
}

/// A `YYYY-MM-DD` date.
fn parse_date(text: &str) -> Result<time::Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format).map_err(|_| format!("{text:?} is not a date like 2026-12-07"))
}

/// Arguments of `kakehashi ledger pair-audit`.
#[derive(clap::Args)]
pub(crate) struct PairAuditArgs {
    /// A node's TOML configuration; give it twice, once per node (e.g.
    /// `--config crates/node/devnet/jp.toml --config crates/node/devnet/sg.toml`).
    #[arg(long = "config", value_name = "FILE", required = true)]
    configs: Vec<PathBuf>,
    /// A node's data directory instead of its configuration's `data_dir`; give it twice, in
    /// the order of `--config`.
    #[arg(
        long = "data-dir",
        value_name = "DIR",
        conflicts_with = "devnet_data_dir"
    )]
    data_dirs: Vec<PathBuf>,
    /// The `--data-dir` of a `kakehashi devnet`: each node's data is in a subdirectory named
    /// by its jurisdiction in lower case (`DIR/jp`, `DIR/sg`), as devnet lays it out.
    #[arg(long, value_name = "DIR")]
    devnet_data_dir: Option<PathBuf>,
    /// The agreement the evidence is verified under (default: the first configuration's
    /// `mra`).
    #[arg(long, value_name = "FILE")]
    mra: Option<PathBuf>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report to FILE: the agreement and keys used, each
    /// check with its verdict, the corridor and liquidity positions of each direction as a
    /// chart, the payments in doubt and every discrepancy by UETR.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

pub(crate) fn run(cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LedgerCommand::Audit {
            books,
            json,
            expected_key,
            require_signed_head,
            report,
        } => {
            let (books, config) = Books::locate(&books)?;
            let expected_key = match (expected_key, &config) {
                (Some(given), _) => Some(parse_key(&given)?),
                // The node signs its checkpoints with its signing certificate's key.
                (None, Some(config)) => Some(
                    pair_audit::ledger_key(config)
                        .context("cannot pin the audit to the node's key")?,
                ),
                (None, None) => None,
            };
            audit(
                &books,
                json,
                expected_key,
                require_signed_head,
                report.as_deref(),
            )
        }
        LedgerCommand::Export { books, output } => {
            export(&Books::locate(&books)?.0, output.as_deref())
        }
        LedgerCommand::PairAudit(args) => pair_audit(&args),
        LedgerCommand::Statement {
            books,
            account,
            from,
            to,
            camt053,
            payments,
            mra,
        } => {
            let period = statement::Period { from, to };
            let (books, config) = Books::locate(&books)?;
            let store = match payments {
                Some(dir) => Some(
                    kakehashi_node::store::Store::open_read_only(&dir).with_context(|| {
                        format!("cannot open the payment store in {}", dir.display())
                    })?,
                ),
                None => books.payment_store()?,
            };
            let mra = mra.unwrap_or_else(|| {
                config
                    .as_ref()
                    .map_or_else(|| PathBuf::from("certs/mra.toml"), |c| c.mra.clone())
            });
            let payments = match store {
                Some(store) => {
                    let parties = client::load_mra(&mra)?
                        .jurisdictions()
                        .iter()
                        .map(|j| j.code.clone())
                        .collect();
                    // Read now: the store is the ledger's records, and the statement opens
                    // the ledger next.
                    Some(client::runtime()?.block_on(statement::Payments::load(store, parties))?)
                }
                None => None,
            };
            let written = statement::write_statement(
                &books,
                account,
                &period,
                &camt053,
                client::now()?,
                payments.as_ref(),
            )?;
            eprintln!(
                "camt.053 statement of account {account}: {} entries, opening {} closing {} \
                 (minor units of {}), written to {}",
                written.entries.len(),
                written.opening,
                written.closing,
                written.currency.alpha,
                camt053.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn audit(
    books: &Books,
    json: bool,
    expected_key: Option<VerifyingKey>,
    require_signed_head: bool,
    html: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let pinned = expected_key.as_ref().map(|key| hex::encode(key.to_bytes()));
    let mut report = books.audit(&AuditOptions { expected_key })?;
    let label = books.label();
    let data_dir = label.as_path();
    if require_signed_head {
        report.require_signed_head();
    }
    let mut out = std::io::stdout().lock();
    if json {
        let mut value = serde_json::to_value(&report).context("encoding the report")?;
        if let Some(object) = value.as_object_mut() {
            object.insert("clean".into(), report.is_clean().into());
        }
        serde_json::to_writer_pretty(&mut out, &value).context("writing the report")?;
        writeln!(out).context("writing the report")?;
    } else {
        out.write_all(human_report(data_dir, &report).as_bytes())
            .context("writing the report")?;
    }
    out.flush().context("writing the report")?;
    drop(out);
    if let Some(path) = html {
        let page = report::ledger_audit_html(&report::LedgerAuditRun {
            data_dir,
            report: &report,
            expected_key: pinned,
            require_signed_head,
            command: report::command_line(),
            generated: report::generated_at(),
        })?;
        report::write(path, &page)?;
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Accepts 64 hex digits or a PEM SubjectPublicKeyInfo file holding an Ed25519 key.
fn parse_key(given: &str) -> anyhow::Result<VerifyingKey> {
    if given.len() == 64 && given.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut bytes = [0; 32];
        hex::decode_to_slice(given, &mut bytes).context("--expected-key is not hex")?;
        return VerifyingKey::from_bytes(&bytes)
            .map_err(|_| anyhow::anyhow!("--expected-key is not a valid Ed25519 public key"));
    }
    let path = Path::new(given);
    let size = std::fs::metadata(path)
        .with_context(|| {
            format!("--expected-key {given}: neither 64 hex digits nor a readable key file")
        })?
        .len();
    if size > KEY_FILE_SIZE_MAX {
        bail!("--expected-key {given}: {size} bytes is too large for a public key file");
    }
    let pem = std::fs::read_to_string(path).with_context(|| format!("reading {given}"))?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|error| {
        anyhow::anyhow!("--expected-key {given}: not a PEM Ed25519 public key ({error})")
    })
}

fn human_report(data_dir: &Path, report: &AuditReport) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(text, "ledger audit of {}", data_dir.display());
    let _ = writeln!(text, "  node key     {}", or_none(&report.verifying_key));
    let _ = writeln!(
        text,
        "  journal      {} records, head {}",
        report.records, report.head
    );
    let _ = writeln!(
        text,
        "  checkpoints  {} verified",
        report.checkpoints_verified
    );
    let _ = writeln!(
        text,
        "  signed heads {} verified",
        report.signed_heads_verified
    );
    let _ = writeln!(
        text,
        "  signed to    record {} of {}{}",
        report.last_signed_seq,
        report.records,
        match report.records_unsigned {
            0 => String::new(),
            unsigned => format!(
                "; {unsigned} records after it are not signed (a node killed before it \
                 signed them, or signatures removed)"
            ),
        }
    );
    let _ = writeln!(
        text,
        "  contents     {} accounts, {} transfers, {} expiries",
        report.accounts, report.transfers, report.expiries
    );
    for totals in &report.ledgers {
        let _ = writeln!(
            text,
            "  ledger {} ({}): {} accounts; posted debits {} / credits {}; pending debits {} / \
             credits {}",
            totals.ledger,
            ledger_currency(totals.ledger),
            totals.accounts,
            totals.debits_posted,
            totals.credits_posted,
            totals.debits_pending,
            totals.credits_pending
        );
    }
    if report.is_clean() {
        let _ = writeln!(text, "result: clean");
    } else {
        let total = report.discrepancies.len() as u64 + report.discrepancies_not_listed;
        let _ = writeln!(text, "result: {total} discrepancies");
        list_discrepancies(
            &mut text,
            &report.discrepancies,
            report.discrepancies_not_listed,
        );
    }
    text
}

/// Appends each discrepancy as a list item, and how many more were found but not listed.
fn list_discrepancies(text: &mut String, listed: &[impl std::fmt::Display], not_listed: u64) {
    use std::fmt::Write as _;
    for discrepancy in listed {
        let _ = writeln!(text, "  - {discrepancy}");
    }
    if not_listed > 0 {
        let _ = writeln!(text, "  … and {not_listed} more not listed");
    }
}

fn or_none(value: &str) -> &str {
    if value.is_empty() {
        "(none stored)"
    } else {
        value
    }
}

fn export(books: &Books, output: Option<&Path>) -> anyhow::Result<ExitCode> {
    let summary = match output {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut out = BufWriter::new(file);
            books.export(&mut out)
        }
        None => {
            let mut out = BufWriter::new(std::io::stdout().lock());
            books.export(&mut out)
        }
    }?;
    eprintln!(
        "exported {} accounts and {} transfers",
        summary.accounts, summary.transfers
    );
    Ok(ExitCode::SUCCESS)
}

fn pair_audit(args: &PairAuditArgs) -> anyhow::Result<ExitCode> {
    let [first, second] = args.configs.as_slice() else {
        bail!(
            "give --config twice, once for each node of the pair (got {})",
            args.configs.len()
        );
    };
    let mut configs = [load_config(first)?, load_config(second)?];
    match (args.data_dirs.as_slice(), &args.devnet_data_dir) {
        ([], None) => {}
        ([a, b], None) => {
            for (config, dir) in configs.iter_mut().zip([a, b]) {
                *config = config.clone().with_data_dir(dir);
            }
        }
        ([], Some(devnet)) => {
            for config in &mut configs {
                let dir = devnet.join(config.jurisdiction.to_ascii_lowercase());
                *config = config.clone().with_data_dir(dir);
            }
        }
        (dirs, _) => bail!(
            "give --data-dir twice (once per --config, in the same order) or not at all; got {}",
            dirs.len()
        ),
    }
    let [a, b] = &configs;
    let mra_path = args.mra.clone().unwrap_or_else(|| a.mra.clone());
    let mra = client::load_mra(&mra_path)?;
    let mra_path = std::fs::canonicalize(&mra_path).unwrap_or(mra_path);
    let (a_books, b_books) = client::runtime()?
        .block_on(pair_audit::load_pair(a, b, &mra))
        .context("cannot audit the pair (the books are unchanged)")?;
    let report = pair_audit::audit_pair(&a_books, &b_books, &mra);
    let keys = [(a, &a_books), (b, &b_books)]
        .into_iter()
        .map(|(config, books)| report::NodeKey {
            jurisdiction: config.jurisdiction.clone(),
            signing_cert: config.signing.cert.display().to_string(),
            stored_key: books
                .ledger_audit
                .as_ref()
                .map(|audit| audit.verifying_key.clone())
                .filter(|key| !key.is_empty()),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = serde_json::to_value(&report).context("encoding the report")?;
        if let Some(object) = value.as_object_mut() {
            object.insert("agrees".into(), report.agrees().into());
            object.insert(
                "agreement".into(),
                serde_json::json!({ "id": mra.agreement_id(), "path": mra_path.display().to_string() }),
            );
        }
        serde_json::to_writer_pretty(&mut out, &value).context("writing the report")?;
        writeln!(out).context("writing the report")?;
    } else {
        let agreement = format!("{} ({})", mra.agreement_id(), mra_path.display());
        out.write_all(human_pair_report(&agreement, &report).as_bytes())
            .context("writing the report")?;
    }
    out.flush().context("writing the report")?;
    drop(out);
    if let Some(path) = &args.report {
        let page = report::pair_audit_html(&report::PairAuditRun {
            report: &report,
            mra: &mra,
            mra_path: &mra_path,
            keys,
            command: report::command_line(),
            generated: report::generated_at(),
        })?;
        report::write(path, &page)?;
    }
    Ok(if report.agrees() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn human_pair_report(agreement: &str, report: &PairReport) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let names: Vec<String> = report
        .nodes
        .iter()
        .map(|n| format!("{} ({}, {})", n.jurisdiction, n.currency, n.data_dir))
        .collect();
    let _ = writeln!(text, "pair audit of {}", names.join(" and "));
    let _ = writeln!(text, "  agreement     {agreement}");
    for node in &report.nodes {
        let verdict = match node.ledger_audit_clean {
            Some(true) => "clean",
            Some(false) => "DISCREPANCIES (listed below)",
            None => "not run",
        };
        let _ = writeln!(
            text,
            "  ledger audit  {}: {verdict}; {} journal records, {} checkpoints verified",
            node.jurisdiction, node.ledger_records, node.ledger_checkpoints_verified
        );
    }
    for d in &report.directions {
        let p = &d.position;
        let mark = |equal: bool| if equal { "=" } else { "≠" };
        let _ = writeln!(
            text,
            "  {} → {}       {} payments: {} settled, {} rejected, {} in doubt, {} inconsistent",
            d.sender, d.receiver, d.payments, d.settled, d.rejected, d.in_doubt, d.inconsistent
        );
        let _ = writeln!(
            text,
            "    {} corridor {}: posted {} {} settled source {}; pending {} {} in doubt {}",
            d.sender,
            p.corridor_account,
            p.corridor_posted,
            mark(p.corridor_posted == p.settled_source),
            p.settled_source,
            p.corridor_pending,
            mark(p.corridor_pending == p.reserved_in_doubt),
            p.reserved_in_doubt
        );
        let _ = writeln!(
            text,
            "    {} liquidity {}: debited {} {} settled target {} (funded {})",
            d.receiver,
            p.liquidity_account,
            p.liquidity_debited,
            mark(p.liquidity_debited == p.settled_target),
            p.settled_target,
            p.liquidity_funded
        );
    }
    if !report.in_doubt.is_empty() {
        let total = report.in_doubt.len() as u64 + report.in_doubt_not_listed;
        let _ = writeln!(
            text,
            "in doubt: {total} (waiting for the receiver's answer; not discrepancies)"
        );
        for p in &report.in_doubt {
            let _ = writeln!(
                text,
                "  - {} {} → {}: reserved {}; sender record {}, receiver record {}",
                p.uetr,
                p.sender,
                p.receiver,
                p.reserved,
                p.sender_record.as_deref().unwrap_or("none"),
                p.receiver_record.as_deref().unwrap_or("none")
            );
        }
        if report.in_doubt_not_listed > 0 {
            let _ = writeln!(
                text,
                "  … and {} more not listed",
                report.in_doubt_not_listed
            );
        }
    }
    if report.agrees() {
        let _ = writeln!(text, "result: the pair agrees");
    } else {
        let _ = writeln!(text, "result: {} discrepancies", report.discrepancy_count());
        list_discrepancies(
            &mut text,
            &report.discrepancies,
            report.discrepancies_not_listed,
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_key_accepts_hex_and_rejects_garbage() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]).verifying_key();
        let parsed = parse_key(&hex::encode(key.to_bytes())).expect("hex key");
        assert_eq!(parsed, key);
        assert!(parse_key("not-a-key-or-file").is_err());
        assert!(parse_key(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn human_report_lists_each_discrepancy() {
        let report = AuditReport {
            discrepancies: vec![kakehashi_ledger::Discrepancy {
                location: kakehashi_ledger::Location::JournalRecord { seq: 2 },
                detail: "content altered".into(),
            }],
            ..AuditReport::default()
        };
        let text = human_report(Path::new("data"), &report);
        assert!(text.contains("result: 1 discrepancies"), "{text}");
        assert!(
            text.contains("  - journal record 2: content altered"),
            "{text}"
        );
        assert!(human_report(Path::new("data"), &AuditReport::default()).contains("result: clean"));
    }

    #[test]
    fn human_report_says_how_many_records_follow_the_last_signature() {
        let mut report = AuditReport {
            records: 9,
            last_signed_seq: 7,
            records_unsigned: 2,
            ..AuditReport::default()
        };
        let text = human_report(Path::new("data"), &report);
        assert!(
            text.contains("  signed to    record 7 of 9; 2 records after it are not signed"),
            "{text}"
        );
        assert!(text.contains("result: clean"), "{text}");
        report.require_signed_head();
        let text = human_report(Path::new("data"), &report);
        assert!(
            text.contains("  - journal record 8: records 8 to 9 follow the last signed head"),
            "{text}"
        );
    }

    fn small_ledger() -> tempfile::TempDir {
        use kakehashi_ledger::{AccountId, Ledger, NewAccount, Options, Timestamp};
        let dir = tempfile::tempdir().expect("tempdir");
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let ledger = Ledger::open(dir.path(), key, Options::default()).expect("opens");
        let account = NewAccount {
            id: AccountId(1),
            ledger: 392,
            code: 1,
            ..NewAccount::default()
        };
        ledger
            .create_accounts(&[account], Timestamp(1))
            .expect("created");
        ledger.close().expect("closed");
        dir
    }

    #[test]
    fn audit_exits_0_when_clean_and_1_when_the_pinned_key_differs() {
        let dir = small_ledger();
        let right = hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[5; 32])
                .verifying_key()
                .to_bytes(),
        );
        let code = audit(
            &Books::sled(dir.path()),
            true,
            Some(parse_key(&right).expect("key")),
            true,
            None,
        )
        .expect("runs");
        assert_eq!(format!("{code:?}"), format!("{:?}", ExitCode::SUCCESS));
        let wrong = hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[6; 32])
                .verifying_key()
                .to_bytes(),
        );
        let code = audit(
            &Books::sled(dir.path()),
            false,
            Some(parse_key(&wrong).expect("key")),
            false,
            None,
        )
        .expect("runs");
        assert_eq!(format!("{code:?}"), format!("{:?}", ExitCode::from(1)));
    }

    #[test]
    fn pair_report_text_names_each_discrepancy_and_payment_in_doubt() {
        use kakehashi_ops::pair_audit::{Amount, DiscrepancyKind, InDoubt, PairDiscrepancy};
        let mut report = PairReport {
            nodes: Vec::new(),
            directions: Vec::new(),
            in_doubt: vec![InDoubt {
                uetr: "in-doubt-uetr".into(),
                sender: "AA".into(),
                receiver: "BB".into(),
                reserved: Amount {
                    currency: "JPY".into(),
                    value: "500".into(),
                },
                sender_record: Some("forwarded".into()),
                receiver_record: None,
            }],
            in_doubt_not_listed: 0,
            discrepancies: Vec::new(),
            discrepancies_not_listed: 0,
        };
        let text = human_pair_report("agreement-x", &report);
        assert!(text.contains("result: the pair agrees"), "{text}");
        assert!(
            text.contains("in-doubt-uetr AA → BB: reserved 500 JPY; sender record forwarded"),
            "{text}"
        );
        report.discrepancies.push(PairDiscrepancy {
            kind: DiscrepancyKind::MissingCredit,
            node: "BB".into(),
            uetr: Some("some-uetr".into()),
            detail: "no credit".into(),
            repaired_by_recovery: false,
        });
        let text = human_pair_report("agreement-x", &report);
        assert!(text.contains("result: 1 discrepancies"), "{text}");
        assert!(
            text.contains("  - missing_credit on BB, UETR some-uetr: no credit"),
            "{text}"
        );
    }

    #[test]
    fn audit_writes_the_html_report_when_asked() {
        let dir = small_ledger();
        let out = tempfile::tempdir().expect("tempdir");
        let path = out.path().join("audit.html");
        let code = audit(&Books::sled(dir.path()), true, None, true, Some(&path)).expect("runs");
        assert_eq!(format!("{code:?}"), format!("{:?}", ExitCode::SUCCESS));
        let html = std::fs::read_to_string(&path).expect("the report is written");
        assert!(html.contains("Result: clean"), "{html}");
        assert!(html.contains("ledger 392 (JPY), 1 accounts"), "{html}");
        assert_eq!(html.matches("<svg").count(), 1, "{html}");
        let unwritable = out.path().join("absent").join("audit.html");
        assert!(
            audit(
                &Books::sled(dir.path()),
                true,
                None,
                true,
                Some(&unwritable)
            )
            .is_err()
        );
    }

    #[test]
    fn audit_of_a_missing_directory_is_an_input_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(
            audit(
                &Books::sled(&dir.path().join("absent")),
                false,
                None,
                false,
                None
            )
            .is_err()
        );
    }
}
