//! `kakehashi conformance`: runs an x509-limbo file through the verifier, writes limbo's
//! results format and prints a closing summary.
//!
//! Exit codes: 0 when there is no wrong accept and the pass count reaches `--floor`; 1 on any
//! wrong accept or a pass count below the floor; 2 on unreadable input (from `main`).

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use kakehashi_devpki::limbo::{self, CaseResult, ResultsFile};
use kakehashi_pki::UnixTime;

/// Worker threads for the run: the cases are independent and CPU-bound.
const WORKERS_MAX: usize = 8;

#[derive(clap::Args)]
pub(crate) struct ConformanceArgs {
    /// A limbo-format JSON file.
    file: PathBuf,
    /// Where to write limbo's results JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Fail (exit 1) when fewer cases than this pass.
    #[arg(long)]
    floor: Option<usize>,
    /// Read the floor for this file from a floors file (`conformance/floors.toml`), keyed by
    /// the file's name; `--floor` wins when both are given.
    #[arg(long, conflicts_with = "floor")]
    floors: Option<PathBuf>,
    /// List every case whose result differs from the expectation.
    #[arg(long)]
    show_failures: bool,
    /// Validation time for testcases that have none (RFC 3339); defaults to now.
    #[arg(long)]
    at: Option<String>,
}

pub(crate) fn run(args: ConformanceArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let file = limbo::parse_file(&bytes)
        .with_context(|| format!("{} is not a limbo-format file", args.file.display()))?;
    let default_time = match &args.at {
        Some(text) => UnixTime::parse_rfc3339(text)
            .with_context(|| format!("--at {text:?} is not an RFC 3339 time"))?,
        None => now(),
    };

    let name = args.file.file_name().map_or_else(
        || args.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let floor = match (&args.floor, &args.floors) {
        (Some(floor), _) => Some(*floor),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let floor = floor_for(&text, &name)
                .with_context(|| format!("in {}", path.display()))?
                .with_context(|| format!("{} has no floor for {name}", path.display()))?;
            Some(floor)
        }
        (None, None) => None,
    };

    let results = run_all(&file, default_time);
    if let Some(out) = &args.out {
        let doc = ResultsFile {
            version: 1,
            harness: "kakehashi",
            results: results.clone(),
        };
        let json = serde_json::to_vec_pretty(&doc).context("cannot encode results")?;
        std::fs::write(out, json).with_context(|| format!("cannot write {}", out.display()))?;
    }

    let summary = limbo::summarize(&file, &results);
    let mut stdout = std::io::stdout().lock();
    if args.show_failures {
        for (id, expected, actual, context) in &summary.mismatches {
            writeln!(
                stdout,
                "{id}: expected {expected:?}, got {actual:?}: {context}"
            )?;
        }
    }
    let name = args.file.file_name().map_or_else(
        || args.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    writeln!(
        stdout,
        "{name}: {} passed, {} wrong accepts, {} wrong rejects, {} skipped ({} cases)",
        summary.passed,
        summary.wrong_accepts,
        summary.wrong_rejects,
        summary.skipped,
        summary.total
    )?;
    let mut ok = true;
    if summary.wrong_accepts > 0 {
        writeln!(
            stdout,
            "{name}: FAIL: {} wrong accepts",
            summary.wrong_accepts
        )?;
        ok = false;
    }
    if let Some(floor) = floor
        && summary.passed < floor
    {
        writeln!(
            stdout,
            "{name}: FAIL: {} passed is below the floor of {floor}",
            summary.passed
        )?;
        ok = false;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The floors file: a `[floors]` table of `"file name" = pass count`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FloorsFile {
    floors: std::collections::BTreeMap<String, usize>,
}

/// The floor for `name` in a floors file (the format of `conformance/floors.toml`).
fn floor_for(text: &str, name: &str) -> anyhow::Result<Option<usize>> {
    let file: FloorsFile = toml::from_str(text).context("not a valid floors file")?;
    Ok(file.floors.get(name).copied())
}

/// Runs every case on a few threads, keeping file order.
fn run_all(file: &limbo::LimboFile, default_time: UnixTime) -> Vec<CaseResult> {
    let total = file.testcases.len();
    let progress = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(total as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, WORKERS_MAX);
    let chunk = total.div_ceil(workers).max(1);
    let mut results = Vec::with_capacity(total);
    std::thread::scope(|scope| {
        let handles: Vec<_> = file
            .testcases
            .chunks(chunk)
            .map(|cases| {
                let progress = progress.clone();
                scope.spawn(move || {
                    cases
                        .iter()
                        .map(|case| {
                            let r = limbo::run_case(case, default_time);
                            progress.inc(1);
                            r
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (handle, cases) in handles.into_iter().zip(file.testcases.chunks(chunk)) {
            // A worker that panicked is a verifier bug; its cases are reported as failures
            // so the run still finishes and the defect shows in the summary.
            match handle.join() {
                Ok(r) => results.extend(r),
                Err(_) => results.extend(cases.iter().map(|c| CaseResult {
                    id: c.id.clone(),
                    actual_result: limbo::CaseOutcome::Failure,
                    context: "verifier panicked".to_owned(),
                })),
            }
        }
    });
    progress.finish_and_clear();
    results
}

/// The current time, for testcases without a validation time (limbo's convention). Only the
/// CLI edge reads the clock; the verifier takes time as an argument.
fn now() -> UnixTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    UnixTime(i64::try_from(secs).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_floor_of_the_named_file_from_the_floors_table() {
        let text =
            "# ratchet\n[floors]\n\"limbo-dev.json\" = 6841 # measured\n\"pkits-dev.json\" = 176\n";
        assert_eq!(floor_for(text, "pkits-dev.json").unwrap(), Some(176));
        assert_eq!(floor_for(text, "limbo-dev.json").unwrap(), Some(6841));
        assert_eq!(floor_for(text, "other.json").unwrap(), None);
        assert!(floor_for("[floors]\n\"a.json\" = many\n", "a.json").is_err());
        // A file without the `[floors]` table, or with stray tables, is refused rather than
        // read as "no floor", so a typo cannot silently disable the ratchet.
        assert!(floor_for("[other]\n\"a.json\" = 1\n", "a.json").is_err());
    }
}
