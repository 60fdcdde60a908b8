//! The sanctions list file: CSV, one party a row.
//!
//! ```text
//! # Lines starting with '#' are comments.
//! name,aliases,bic,account,country
//! Sanctioned Trading Co,サンクション商事株式会社|Sanctioned Trading Company,SNCTJPJT,,JP
//! ,,EVILSGSGXXX,,SG
//! ,,,4242,
//! ```
//!
//! - The header row is required and names the five columns in this order.
//! - `name`: the party's name as listed (at most 140 characters, no control characters);
//!   `aliases`: further names of the same party, separated by `|` (a name never contains one
//!   in practice, and `|` needs no quoting in CSV); `bic`: an agent BIC (8 or 11 characters;
//!   8, or 11 ending in `XXX`, covers every branch); `account`: a local account id (decimal);
//!   `country`: ISO 3166-1 alpha-2, informational (shown in the refusal, not matched).
//! - Every field may be empty, but each row needs a name, a BIC or an account; aliases need a
//!   name. Fields are trimmed; a field with a comma is quoted (`"Sanctioned, Trading Co"`).
//!
//! A file that breaks any of this is refused whole, with the row and the reason: a list is
//! either loaded completely or not at all.

use std::fmt;
use std::path::Path;

use super::{ListEntry, normalize};
use crate::config::NAME_CHARS_MAX;

/// Largest list file read: 100,000 parties with several aliases each stay far below this; the
/// bound keeps a wrong path (a disk image, a log) from being read into memory.
pub const LIST_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Most rows in a list file.
pub const LIST_ROWS_MAX: usize = 100_000;

/// Most aliases in one row.
pub const ALIASES_MAX: usize = 64;

/// The columns of the header row, in order.
pub const COLUMNS: [&str; 5] = ["name", "aliases", "bic", "account", "country"];

/// The separator of the `aliases` column.
pub const ALIAS_SEPARATOR: char = '|';

/// Why a list was refused; [`ListErrorReason::code`] is the stable code operators and their
/// tools match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListErrorReason {
    /// The file could not be read (missing, no permission).
    Unreadable,
    /// The file is larger than [`LIST_BYTES_MAX`] or has more than [`LIST_ROWS_MAX`] rows.
    TooLarge,
    /// Not CSV of the documented shape: no or a wrong header row, a row with another number
    /// of fields, bad UTF-8, an unterminated quote.
    Malformed,
    /// A field breaks a rule (a name too long or with a control character, a name that is only
    /// punctuation, a BIC or account that is not one, a row with nothing to match).
    InvalidEntry,
}

impl ListErrorReason {
    /// The stable code: `LIST_UNREADABLE`, `LIST_TOO_LARGE`, `LIST_MALFORMED` or
    /// `LIST_INVALID_ENTRY`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unreadable => "LIST_UNREADABLE",
            Self::TooLarge => "LIST_TOO_LARGE",
            Self::Malformed => "LIST_MALFORMED",
            Self::InvalidEntry => "LIST_INVALID_ENTRY",
        }
    }
}

/// A sanctions list that was refused, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} {}", reason.code(), message)]
pub struct ListError {
    /// The kind of failure.
    pub reason: ListErrorReason,
    /// What is wrong (file, row, field) and what to do.
    pub message: String,
}

impl ListError {
    fn new(reason: ListErrorReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Reads and parses the list at `path` ([`parse`]).
pub fn read(path: &Path) -> Result<Vec<ListEntry>, ListError> {
    let unreadable = |e: std::io::Error| {
        ListError::new(
            ListErrorReason::Unreadable,
            format!("cannot read sanctions list {}: {e}", path.display()),
        )
    };
    let len = std::fs::metadata(path).map_err(unreadable)?.len();
    if len > LIST_BYTES_MAX {
        return Err(ListError::new(
            ListErrorReason::TooLarge,
            format!(
                "sanctions list {} is {len} bytes, more than the {LIST_BYTES_MAX} accepted; is \
                 this the right file?",
                path.display()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    parse(&bytes).map_err(|e| ListError {
        message: format!("sanctions list {}: {}", path.display(), e.message),
        ..e
    })
}

/// Parses list text (the module documentation gives the format). Entries are named
/// `list row N`, N the file's line of the row, so a refusal points at it.
pub fn parse(bytes: &[u8]) -> Result<Vec<ListEntry>, ListError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(bytes);
    let malformed = |e: &csv::Error| {
        let line = e
            .position()
            .map(|p| format!("line {}: ", p.line()))
            .unwrap_or_default();
        ListError::new(
            ListErrorReason::Malformed,
            format!("{line}not a sanctions list in the documented CSV shape ({e})"),
        )
    };
    let header = reader.headers().map_err(|e| malformed(&e))?.clone();
    let columns: Vec<String> = header.iter().map(str::to_lowercase).collect();
    if columns != COLUMNS {
        return Err(ListError::new(
            ListErrorReason::Malformed,
            format!(
                "the header row is {:?}; it must be `{}`",
                header.iter().collect::<Vec<_>>(),
                COLUMNS.join(",")
            ),
        ));
    }
    let mut entries = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| malformed(&e))?;
        if entries.len() == LIST_ROWS_MAX {
            return Err(ListError::new(
                ListErrorReason::TooLarge,
                format!("more than {LIST_ROWS_MAX} rows; split the list or raise the bound"),
            ));
        }
        let line = record.position().map_or(0, csv::Position::line);
        let field = |i: usize| record.get(i).unwrap_or_default();
        let row = Row {
            line,
            name: field(0),
            aliases: field(1),
            bic: field(2),
            account: field(3),
            country: field(4),
        };
        entries.push(row.entry()?);
    }
    Ok(entries)
}

/// One row's fields, trimmed.
struct Row<'a> {
    line: u64,
    name: &'a str,
    aliases: &'a str,
    bic: &'a str,
    account: &'a str,
    country: &'a str,
}

impl Row<'_> {
    fn invalid(&self, column: &str, message: impl fmt::Display) -> ListError {
        ListError::new(
            ListErrorReason::InvalidEntry,
            format!("line {}, {column}: {message}", self.line),
        )
    }

    fn entry(&self) -> Result<ListEntry, ListError> {
        let name = (!self.name.is_empty())
            .then(|| check_name(self.name).map_err(|m| self.invalid("name", m)))
            .transpose()?;
        let aliases: Vec<String> = self
            .aliases
            .split(ALIAS_SEPARATOR)
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| check_name(a).map_err(|m| self.invalid("aliases", m)))
            .collect::<Result<_, _>>()?;
        if aliases.len() > ALIASES_MAX {
            return Err(self.invalid(
                "aliases",
                format!(
                    "{} aliases, more than the {ALIASES_MAX} accepted",
                    aliases.len()
                ),
            ));
        }
        if !aliases.is_empty() && name.is_none() {
            return Err(self.invalid("aliases", "aliases need a name in the same row"));
        }
        let bic = (!self.bic.is_empty())
            .then(|| check_bic(self.bic).map_err(|m| self.invalid("bic", m)))
            .transpose()?;
        let account = (!self.account.is_empty())
            .then(|| check_account(self.account).map_err(|m| self.invalid("account", m)))
            .transpose()?;
        let country = (!self.country.is_empty())
            .then(|| check_country(self.country).map_err(|m| self.invalid("country", m)))
            .transpose()?;
        if name.is_none() && bic.is_none() && account.is_none() {
            return Err(self.invalid(
                "row",
                "no name, BIC or account: the row would match nothing",
            ));
        }
        Ok(ListEntry {
            name,
            aliases,
            bic,
            account,
            country,
            origin: format!("list row {}", self.line),
        })
    }
}

/// A listed name: the rules of an instruction's party name, and something left to match.
pub(super) fn check_name(name: &str) -> Result<String, String> {
    let chars = name.chars().count();
    if chars > NAME_CHARS_MAX {
        return Err(format!(
            "name has {chars} characters; ISO 20022 allows {NAME_CHARS_MAX}"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("name contains a control character; remove it".to_owned());
    }
    if normalize(name).is_empty() {
        return Err(format!(
            "{name:?} has no letter or digit; it would match nothing"
        ));
    }
    Ok(name.to_owned())
}

/// ISO 9362: 4 letters (institution), 2 letters (country), 2 alphanumerics (location), and
/// optionally 3 alphanumerics (branch).
pub(super) fn check_bic(bic: &str) -> Result<String, String> {
    match kakehashi_protocol::instruction::bic_problem(bic) {
        None => Ok(bic.to_owned()),
        Some(problem) => Err(format!(
            "`{bic}` is not a BIC: it {problem}; use 8 or 11 upper-case characters A-Z/0-9, \
             letters in the first six (ISO 9362)"
        )),
    }
}

fn check_account(text: &str) -> Result<u128, String> {
    match text.parse::<u128>() {
        Ok(id) if id != 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(format!(
            "`{text}` is not an account id; use a non-zero decimal number up to 2^128-1"
        )),
    }
}

fn check_country(text: &str) -> Result<String, String> {
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a country code; use two upper-case letters (ISO 3166-1 alpha-2)"
        ))
    }
}
