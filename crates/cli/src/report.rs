//! The HTML reports: `kakehashi bench --report FILE`, `kakehashi ledger audit --report FILE`
//! and `kakehashi ledger pair-audit --report FILE` write one self-contained file each, to
//! archive and send: the figures and verdicts the command prints, the charts (plotters, inline
//! SVG), what was run and with what. Nothing in a report is fetched or scripted; it reads the
//! same offline in any browser.
//!
//! The commands gather the data (the load report, the audit reports) and this module presents
//! it: `page` writes the HTML and escapes every text, `chart` draws the charts, and `bench`,
//! `audit` and `pair` lay out the three reports.

use std::path::Path;

use anyhow::Context as _;

mod audit;
mod bench;
mod chart;
mod page;
mod pair;

pub(crate) use audit::{LedgerAuditRun, ledger_audit_html};
pub(crate) use bench::{BenchRun, Machine, bench_html};
pub(crate) use pair::{NodeKey, PairAuditRun, pair_audit_html};

/// Writes `html` to `path` and says so on standard error (standard output stays the
/// command's text or JSON).
pub(crate) fn write(path: &Path, html: &str) -> anyhow::Result<()> {
    std::fs::write(path, html)
        .with_context(|| format!("cannot write the report to {}", path.display()))?;
    eprintln!("report written to {}", path.display());
    Ok(())
}

/// This process's command line, each argument quoted for a POSIX shell where it needs it, so
/// that the report says exactly what was run; the program by its file name (`kakehashi`), not
/// the directory it was built or installed in.
pub(crate) fn command_line() -> String {
    let mut args = std::env::args_os();
    let program = args
        .next()
        .and_then(|arg| {
            Path::new(&arg)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "kakehashi".to_owned());
    std::iter::once(program)
        .chain(args.map(|arg| arg.to_string_lossy().into_owned()))
        .map(|arg| shell_quote(&arg))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `arg` as a POSIX shell reads it back: unchanged when it has only safe characters, else in
/// single quotes (a quote inside written `'\''`).
fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// When the report was made, for its subtitle (RFC 3339, UTC).
pub(crate) fn generated_at() -> String {
    crate::client::now().map_or_else(|_| "an unknown time".to_owned(), |t| t.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_only_where_a_shell_needs_it() {
        assert_eq!(shell_quote("--payments"), "--payments");
        assert_eq!(shell_quote("a/b.html"), "a/b.html");
        assert_eq!(shell_quote("two words"), "'two words'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(x)"), "'$(x)'");
    }
}
