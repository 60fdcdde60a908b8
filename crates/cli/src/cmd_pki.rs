//! `kakehashi pki` (generate the development PKI) and `kakehashi mra` (sign and verify the
//! mutual-recognition agreement). The work is done by `kakehashi_devpki` and
//! `kakehashi_pki::mra`; this module parses arguments, prints and picks exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use kakehashi_pki::mra::{Mra, MraError, SignatureStatus};

/// Largest key file read: a PKCS#8 Ed25519 key is under 200 bytes of PEM.
const KEY_FILE_SIZE_MAX: u64 = 64 * 1024;

#[derive(clap::Subcommand)]
pub(crate) enum PkiCommand {
    /// Generate the development PKI (JP, SG, TH, fixtures) and the signed MRA into a directory.
    ///
    /// Development only: every private key is written next to its certificate.
    Init {
        /// Output directory, e.g. `certs`.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite the generated files in a non-empty directory (other files are kept).
        #[arg(long)]
        force: bool,
        /// Derive every key from this text instead of a fresh random seed; the same seed
        /// regenerates the same files byte for byte (see `certs/dev-seed.txt`).
        #[arg(long)]
        seed: Option<String>,
    },
}

#[derive(clap::Subcommand)]
pub(crate) enum MraCommand {
    /// Sign the agreement as one jurisdiction's authority and write the signature into the file.
    Sign {
        /// The agreement, e.g. `certs/mra.toml`.
        #[arg(long)]
        mra: PathBuf,
        /// The signing jurisdiction's code, e.g. `JP`.
        #[arg(long)]
        jurisdiction: String,
        /// The authority's Ed25519 private key (PKCS#8 PEM), e.g. `certs/mra-keys/jp.key.pem`.
        #[arg(long)]
        key: PathBuf,
    },
    /// Print the agreement's canonical bytes (what each party signs) to standard output, so
    /// that signatures can be checked with other tools.
    Canonical {
        /// The agreement, e.g. `certs/mra.toml`.
        #[arg(long)]
        mra: PathBuf,
    },
    /// Check that every party signed the agreement and every signature verifies.
    ///
    /// Exit 0 when all parties signed and all signatures verify, 1 otherwise, 2 on bad input.
    Verify {
        /// The agreement, e.g. `certs/mra.toml`.
        #[arg(long)]
        mra: PathBuf,
        /// Accept missing signatures (for experiments); an invalid signature still fails.
        #[arg(long)]
        allow_unsigned: bool,
        /// Print a JSON report instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run_pki(cmd: PkiCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PkiCommand::Init { out, force, seed } => {
            let seed = match seed {
                Some(seed) => seed,
                None => kakehashi_devpki::random_seed()?,
            };
            let pki =
                kakehashi_devpki::generate(&seed).context("generating the development PKI")?;
            let written = pki.write_to(&out, force)?;
            println!(
                "wrote {written} files to {} (seed in dev-seed.txt)",
                out.display()
            );
            println!("DEVELOPMENT ONLY: the private keys are in the same directory.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn run_mra(cmd: MraCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        MraCommand::Sign {
            mra,
            jurisdiction,
            key,
        } => sign(&mra, &jurisdiction, &key),
        MraCommand::Verify {
            mra,
            allow_unsigned,
            json,
        } => verify(&mra, allow_unsigned, json),
        MraCommand::Canonical { mra } => {
            use std::io::Write as _;
            let mra = Mra::load(&mra)?;
            let mut out = std::io::stdout().lock();
            out.write_all(mra.canonical_bytes())?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn sign(path: &Path, jurisdiction: &str, key: &Path) -> anyhow::Result<ExitCode> {
    let mut mra = Mra::load(path)?;
    let key = read_signing_key(key)?;
    mra.sign(jurisdiction, &key)?;
    mra.save_signatures()
        .with_context(|| format!("writing the signature into {}", path.display()))?;
    println!("{}: signed as {jurisdiction}", path.display());
    let missing = mra.unsigned_parties();
    if missing.is_empty() {
        println!("every party has signed");
    } else {
        println!("still to sign: {}", missing.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read the key {}", path.display()))?
        .len();
    anyhow::ensure!(
        size <= KEY_FILE_SIZE_MAX,
        "{} is {size} bytes; an Ed25519 PKCS#8 key is far smaller",
        path.display()
    );
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key {}", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        anyhow::anyhow!(
            "{} is not an Ed25519 private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----): {e}",
            path.display()
        )
    })
}

#[derive(serde::Serialize)]
struct VerifyReport {
    mra: String,
    agreement_id: String,
    ok: bool,
    allow_unsigned: bool,
    parties: Vec<PartyReport>,
}

#[derive(serde::Serialize)]
struct PartyReport {
    jurisdiction: String,
    status: SignatureStatus,
}

fn verify(path: &Path, allow_unsigned: bool, json: bool) -> anyhow::Result<ExitCode> {
    let mra = Mra::load(path)?;
    let parties: Vec<PartyReport> = mra
        .signature_statuses()
        .into_iter()
        .map(|(jurisdiction, status)| PartyReport {
            jurisdiction,
            status,
        })
        .collect();
    let invalid = parties.iter().any(|p| p.status == SignatureStatus::Invalid);
    let missing = parties.iter().any(|p| p.status == SignatureStatus::Missing);
    let ok = !invalid && (!missing || allow_unsigned);
    if json {
        let report = VerifyReport {
            mra: path.display().to_string(),
            agreement_id: mra.agreement_id().to_owned(),
            ok,
            allow_unsigned,
            parties,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} ({})", path.display(), mra.agreement_id());
        for p in &parties {
            let mark = if p.status == SignatureStatus::Valid {
                "✓"
            } else {
                "✗"
            };
            println!(
                "  {mark} {}: signature {}",
                p.jurisdiction,
                p.status.as_str()
            );
        }
        match mra.verify_signatures() {
            Ok(()) => println!("every party signed; all signatures verify"),
            Err(MraError::Unsigned { missing }) if ok => println!(
                "not signed by {}; accepted only because --allow-unsigned was given",
                missing.join(", ")
            ),
            Err(err) => println!("refused: {err}"),
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A freshly generated PKI in a temporary directory; returns the directory and the path of
    /// its agreement.
    fn generated() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        run_pki(PkiCommand::Init {
            out: dir.path().to_owned(),
            force: false,
            seed: Some("cli-unit-tests".into()),
        })
        .unwrap();
        let mra = dir.path().join("mra.toml");
        (dir, mra)
    }

    fn verify_code(mra: &Path, allow_unsigned: bool) -> anyhow::Result<ExitCode> {
        run_mra(MraCommand::Verify {
            mra: mra.to_owned(),
            allow_unsigned,
            json: true,
        })
    }

    fn strip_signatures(mra: &Path) {
        let text = std::fs::read_to_string(mra).unwrap();
        let start = text.find("[[signature]]").unwrap();
        std::fs::write(mra, &text[..start]).unwrap();
    }

    #[test]
    fn init_writes_a_signed_agreement_that_verifies() {
        let (_dir, mra) = generated();
        assert_eq!(verify_code(&mra, false).unwrap(), ExitCode::SUCCESS);
    }

    #[test]
    fn init_refuses_a_non_empty_directory_without_force() {
        let (dir, _) = generated();
        let again = run_pki(PkiCommand::Init {
            out: dir.path().to_owned(),
            force: false,
            seed: None,
        });
        assert!(again.is_err());
    }

    #[test]
    fn verify_exits_1_when_unsigned_and_0_when_explicitly_allowed() {
        let (_dir, mra) = generated();
        strip_signatures(&mra);
        assert_eq!(verify_code(&mra, false).unwrap(), ExitCode::from(1));
        assert_eq!(verify_code(&mra, true).unwrap(), ExitCode::SUCCESS);
    }

    #[test]
    fn verify_exits_1_on_a_tampered_agreement_even_when_unsigned_is_allowed() {
        let (_dir, mra) = generated();
        let text = std::fs::read_to_string(&mra).unwrap();
        std::fs::write(&mra, text.replacen("\"substantial\"\n", "\"low\"\n", 1)).unwrap();
        assert_eq!(verify_code(&mra, true).unwrap(), ExitCode::from(1));
    }

    #[test]
    fn verify_reports_bad_input_as_an_error() {
        let (dir, mra) = generated();
        assert!(verify_code(&dir.path().join("absent.toml"), false).is_err());
        std::fs::write(&mra, "version = [").unwrap();
        assert!(verify_code(&mra, false).is_err());
    }

    #[test]
    fn signing_as_every_party_restores_a_verifiable_agreement() {
        let (dir, mra) = generated();
        let original = std::fs::read_to_string(&mra).unwrap();
        strip_signatures(&mra);
        for code in ["jp", "sg", "th"] {
            run_mra(MraCommand::Sign {
                mra: mra.clone(),
                jurisdiction: code.to_ascii_uppercase(),
                key: dir.path().join(format!("mra-keys/{code}.key.pem")),
            })
            .unwrap();
        }
        assert_eq!(verify_code(&mra, false).unwrap(), ExitCode::SUCCESS);
        assert_eq!(std::fs::read_to_string(&mra).unwrap(), original);
    }

    #[test]
    fn signing_with_another_partys_key_is_refused_and_changes_nothing() {
        let (dir, mra) = generated();
        strip_signatures(&mra);
        let before = std::fs::read(&mra).unwrap();
        let result = run_mra(MraCommand::Sign {
            mra: mra.clone(),
            jurisdiction: "JP".into(),
            key: dir.path().join("mra-keys/sg.key.pem"),
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read(&mra).unwrap(), before);
        let not_a_key = run_mra(MraCommand::Sign {
            mra: mra.clone(),
            jurisdiction: "JP".into(),
            key: dir.path().join("jp/root.pem"),
        });
        assert!(not_a_key.is_err());
    }
}
