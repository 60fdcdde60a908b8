//! `kakehashi replay`'s ISO 20022 side: reading pacs.008.001.08 messages (a file, or every
//! `.xml` file of a directory) as the payments to send, and writing the pacs.002.001.10 status
//! reports that answer them (`--pacs002-out DIR`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kakehashi_ops::replay::{self, LineError, Parties, Payment};
use kakehashi_pki::UnixTime;
use kakehashi_proto::pb;
use kakehashi_protocol::iso20022::{pacs002, pacs008};

use kakehashi_ops::replay::LineResult;

/// The input of a run: the payments and, for pacs.008 input, the message files in the order
/// their payments are numbered.
pub(super) struct Input {
    pub(super) payments: Vec<Payment>,
    /// The pacs.008 files read (empty for JSON Lines).
    pub(super) messages: Vec<PathBuf>,
}

/// The files that did not pass, each with its refusals.
pub(super) type InputErrors = Vec<(PathBuf, Vec<LineError>)>;

/// Whether `path` is pacs.008 input: a directory, a file named `*.xml`, or a file whose first
/// non-blank character is `<`.
pub(super) fn is_xml(path: &Path, bytes: Option<&[u8]>) -> bool {
    if path.is_dir() || has_xml_extension(path) {
        return true;
    }
    bytes.is_some_and(|b| {
        b.strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(b)
            .iter()
            .find(|c| !c.is_ascii_whitespace())
            == Some(&b'<')
    })
}

fn has_xml_extension(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
}

/// Reads the pacs.008 messages at `path` (a file, or the `.xml` files of a directory in name
/// order) into payments numbered across them. `read` reads one file whole (with the size
/// limit). Every file is checked; any refusal fails the whole run before anything is sent.
pub(super) fn read_messages(
    path: &Path,
    parties: &Parties,
    read: impl Fn(&Path) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Result<Input, InputErrors>> {
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && has_xml_extension(p))
            .collect();
        files.sort();
        anyhow::ensure!(!files.is_empty(), "{} holds no .xml file", path.display());
        files
    } else {
        vec![path.to_path_buf()]
    };
    let today = time::OffsetDateTime::now_utc().date();
    let mut payments = Vec::new();
    let mut errors = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let bytes = read(file)?;
        match replay::parse_pacs008(&bytes, parties, today, index, payments.len() + 1) {
            Ok(mut more) => payments.append(&mut more),
            Err(refusals) => errors.push((file.clone(), refusals)),
        }
    }
    if errors.is_empty() {
        Ok(Ok(Input {
            payments,
            messages: files,
        }))
    } else {
        Ok(Err(errors))
    }
}

/// Prints the refusals of every file that did not pass.
pub(super) fn print_errors(errors: &InputErrors) {
    let mut text = String::new();
    for (file, refusals) in errors {
        let _ = writeln!(
            text,
            "error: {}: {} refusal(s); nothing was sent",
            file.display(),
            refusals.len()
        );
        for r in refusals {
            let _ = writeln!(text, "  {r}");
        }
    }
    eprint!("{text}");
}

/// What a payment's pacs.002 quotes: its line number and origin.
pub(super) struct Answered {
    pub(super) line: usize,
    pub(super) uetr: kakehashi_protocol::instruction::Uetr,
    pub(super) instruction_id: String,
    pub(super) origin: Option<replay::Pacs008Origin>,
}

impl Answered {
    pub(super) fn of(payment: &Payment) -> Self {
        Self {
            line: payment.line,
            uetr: payment.uetr,
            instruction_id: payment.instruction_id.clone(),
            origin: payment.pacs008.clone(),
        }
    }
}

/// Writes one pacs.002.001.10 report per input message into `dir` (`<message
/// stem>.pacs002.xml`; for JSON Lines input one report for the file), each transaction's
/// status from its result: ACSC, RJCT with the reason, PDNG while in doubt (and for a payment
/// that got no answer, whose outcome `kakehashi status` can tell later).
pub(super) fn write_reports(
    dir: &Path,
    input: &Path,
    messages: &[PathBuf],
    answered: &[Answered],
    results: &[LineResult],
    now: UnixTime,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let sources: Vec<&Path> = if messages.is_empty() {
        vec![input]
    } else {
        messages.iter().map(PathBuf::as_path).collect()
    };
    let mut written = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        let transactions: Vec<pacs002::TransactionStatus> = answered
            .iter()
            .filter(|a| a.origin.as_ref().map_or(0, |o| o.message) == index)
            .filter_map(|a| {
                let result = results.iter().find(|r| r.line == a.line)?;
                Some(status_of(a, result))
            })
            .collect();
        let report = pacs002::Report {
            message_id: format!("KKH-STS-{}-{}", now.0, index + 1),
            created: now,
            transactions,
        };
        let xml = pacs002::write(&report)?;
        let stem = source
            .file_stem()
            .map_or_else(|| "replay".into(), |s| s.to_string_lossy().into_owned());
        let path = dir.join(format!("{stem}.pacs002.xml"));
        std::fs::write(&path, xml).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The pacs.002 status of one payment's result.
fn status_of(answered: &Answered, result: &LineResult) -> pacs002::TransactionStatus {
    let status = match result.status.as_str() {
        "ACSC" => pb::TransactionStatus::Acsc,
        "RJCT" => pb::TransactionStatus::Rjct,
        // PDNG, and ERROR: no answer came, so the outcome is not known here.
        _ => pb::TransactionStatus::Pdng,
    };
    let origin = answered.origin.as_ref();
    // A reason is an ISO 20022 code of 1 to 4 capitals and digits; anything else the run
    // recorded (a transport error's name) goes into the detail.
    let is_code = (1..=4).contains(&result.reason.len())
        && result
            .reason
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let (reason_code, reason_detail) = if is_code || result.reason.is_empty() {
        (result.reason.clone(), result.detail.clone())
    } else {
        (
            String::new(),
            format!("{}: {}", result.reason, result.detail),
        )
    };
    pacs002::TransactionStatus {
        original_message: origin.map(|o| pacs002::OriginalMessage {
            message_id: o.message_id.clone(),
            name: pacs008::MESSAGE_NAME.to_owned(),
            created: Some(o.created.clone()),
        }),
        instruction_id: Some(answered.instruction_id.clone()),
        end_to_end_id: result.end_to_end_id.clone(),
        transaction_id: origin.and_then(|o| o.transaction_id.clone()),
        uetr: answered.uetr,
        status,
        reason_code,
        reason_detail,
    }
}
