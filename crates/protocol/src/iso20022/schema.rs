//! Test support (this crate's tests, and other crates' with the `test-support` feature):
//! validates a written message against its official ISO 20022 schema with
//! `xmllint --schema` (Debian's libxml2-utils), the validator `.ci/run` installs.
//!
//! Without xmllint the check is skipped with a note on stderr, so that `cargo test` runs on a
//! machine without it; with `KAKEHASHI_REQUIRE_XMLLINT` set (as `.ci/run` sets it) a missing
//! xmllint fails the test instead, so CI cannot pass without the validation having run.
//!
//! pacs.002.001.10 has no official XSD here (no registry these machines reach ships one):
//! [`check_model`] checks it instead against the message model of the pinned `pyiso20022`
//! (dataclasses generated from the official schema) with `tests/iso20022/check_model.py`, run
//! by the Python that `KAKEHASHI_ISO20022_PYTHON` names (`.ci/run` sets it to a virtualenv's).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The environment variable that makes a missing xmllint a failure.
pub const REQUIRE_VAR: &str = "KAKEHASHI_REQUIRE_XMLLINT";

/// The committed schema `name` (e.g. `pacs.008.001.08.xsd`).
pub fn xsd(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/iso20022/xsd")
        .join(name)
}

/// What the validation found.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The schema accepts the document.
    Valid,
    /// xmllint is not installed and not required: nothing was checked.
    Skipped,
}

/// Validates `document` against the committed schema `schema`. Panics (failing the test) when
/// the schema refuses it, when the schema file is missing, or when xmllint is missing while
/// [`REQUIRE_VAR`] is set.
#[track_caller]
pub fn validate(document: &str, schema: &str) -> Outcome {
    let schema_path = xsd(schema);
    assert!(
        schema_path.is_file(),
        "{} is missing",
        schema_path.display()
    );
    let child = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema_path)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os(REQUIRE_VAR).is_none(),
                "xmllint is not installed but {REQUIRE_VAR} is set: install libxml2-utils"
            );
            eprintln!("xmllint is not installed: {schema} validation skipped");
            return Outcome::Skipped;
        }
        Err(e) => panic!("running xmllint: {e}"),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(document.as_bytes())
            .expect("writing the document to xmllint");
    }
    let output = child.wait_with_output().expect("waiting for xmllint");
    assert!(
        output.status.success(),
        "{schema} refuses the document:\n{}\n{document}",
        String::from_utf8_lossy(&output.stderr)
    );
    Outcome::Valid
}

/// The environment variable naming the Python (with `pyiso20022` installed) that runs the
/// model check; unset, the check is skipped.
pub const MODEL_PYTHON_VAR: &str = "KAKEHASHI_ISO20022_PYTHON";

/// Checks `document` against the pyiso20022 model of `message` (e.g. `pacs.002.001.10`) with
/// `tests/iso20022/check_model.py`. Skipped when [`MODEL_PYTHON_VAR`] is unset; panics (failing
/// the test) when the model refuses the document or when the variable is set but the check
/// cannot run.
#[track_caller]
pub fn check_model(document: &str, message: &str) -> Outcome {
    let Some(python) = std::env::var_os(MODEL_PYTHON_VAR) else {
        eprintln!("{MODEL_PYTHON_VAR} is not set: {message} model check skipped");
        return Outcome::Skipped;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/iso20022/check_model.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg("--message")
        .arg(message)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{MODEL_PYTHON_VAR}={python:?} cannot run: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(document.as_bytes())
            .expect("writing the document to the model check");
    }
    let output = child
        .wait_with_output()
        .expect("waiting for the model check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => Outcome::Valid,
        Some(1) => panic!("the {message} model refuses the document:\n{stderr}\n{document}"),
        _ => panic!(
            "the {message} model check could not run ({}):\n{stderr}",
            output.status
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check can fail: a document the schema refuses panics (when xmllint is there).
    #[test]
    fn a_document_the_schema_refuses_fails() {
        let refused = std::panic::catch_unwind(|| {
            validate(
                "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08\"/>",
                "pacs.008.001.08.xsd",
            )
        });
        match refused {
            Err(_) => {}
            Ok(outcome) => assert_eq!(outcome, Outcome::Skipped, "an empty Document passed"),
        }
    }

    /// The model check can fail: a pacs.002 without its group header panics (when it runs).
    #[test]
    fn a_document_the_model_refuses_fails() {
        let refused = std::panic::catch_unwind(|| {
            check_model(
                "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10\">\
                 <FIToFIPmtStsRpt/></Document>",
                "pacs.002.001.10",
            )
        });
        match refused {
            Err(_) => {}
            Ok(outcome) => assert_eq!(outcome, Outcome::Skipped, "a header-less report passed"),
        }
    }
}
