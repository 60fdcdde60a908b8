use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;

use super::canonical::find_signature_section;
use super::schema::is_dotted_oid;
use super::*;
use crate::cert::Cert;
use crate::purpose::{KAKEHASHI_ARC, Purpose};
use crate::verdict::Outcome;

// The committed development PKI (`certs/` at the repository root), which `kakehashi pki
// init` generated: the generator lives in a crate that depends on this one, and the devpki
// tests check that `certs/` is exactly its output for the recorded seed.
fn certs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs")
}

fn committed(relative: &str) -> Result<Vec<u8>, MraError> {
    std::fs::read(certs_dir().join(relative)).map_err(|cause| MraError::Read {
        path: PathBuf::from(relative),
        cause,
    })
}

/// The committed agreement as `kakehashi pki init` wrote it, signed by every party.
fn generated_text() -> String {
    String::from_utf8(committed("mra.toml").unwrap()).unwrap()
}

/// The authority key of `code` (lower case), as committed in `certs/mra-keys/`.
fn authority_key(code: &str) -> SigningKey {
    let pem = std::fs::read_to_string(certs_dir().join(format!("mra-keys/{code}.key.pem")));
    SigningKey::from_pkcs8_pem(&pem.unwrap()).unwrap()
}

/// The development PKI's policy OID for `level` in the jurisdiction with ISO 3166 numeric
/// code `number` (`certs/README.md`, "Assurance levels").
fn policy_oid(number: u32, level: AssuranceLevel) -> String {
    format!("{KAKEHASHI_ARC}.2.{number}.{}", level.number())
}

fn parse(text: &str) -> Result<Mra, MraError> {
    Mra::parse_with(text, Path::new("test-mra.toml"), &mut committed)
}

fn unsigned_text() -> String {
    let text = generated_text();
    let start = find_signature_section(&text).unwrap();
    text[..start].to_owned()
}

fn field_error(text: &str) -> (String, String) {
    match parse(text) {
        Err(MraError::Field { field, reason, .. }) => (field, reason),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn generated_agreement_verifies_and_lists_three_parties() {
    let mra = parse(&generated_text()).unwrap();
    mra.verify_signatures().unwrap();
    let codes: Vec<&str> = mra.jurisdictions.iter().map(|j| j.code.as_str()).collect();
    assert_eq!(codes, ["JP", "SG", "TH"]);
    // Every party recognizes every other: one row per ordered pair.
    assert_eq!(mra.rows.len(), 6);
    assert!(mra.canonical_bytes().starts_with(CANONICAL_PREFIX));
}

#[test]
fn refuses_agreement_without_signatures_and_names_every_missing_party() {
    let mra = parse(&unsigned_text()).unwrap();
    match mra.verify_signatures() {
        Err(MraError::Unsigned { missing }) => assert_eq!(missing, ["JP", "SG", "TH"]),
        other => panic!("expected Unsigned, got {other:?}"),
    }
}

#[test]
fn refuses_agreement_signed_by_only_some_parties() {
    let mut mra = parse(&unsigned_text()).unwrap();
    mra.sign("JP", &authority_key("jp")).unwrap();
    match mra.verify_signatures() {
        Err(MraError::Unsigned { missing }) => assert_eq!(missing, ["SG", "TH"]),
        other => panic!("expected Unsigned, got {other:?}"),
    }
}

#[test]
fn refuses_a_tampered_row_as_a_bad_signature() {
    let text = generated_text().replacen(
        "minimum_level = \"substantial\"",
        "minimum_level = \"low\"",
        1,
    );
    let mra = parse(&text).unwrap();
    assert!(matches!(
        mra.verify_signatures(),
        Err(MraError::BadSignature { .. })
    ));
}

#[test]
fn refuses_a_tampered_signature_byte() {
    let text = generated_text();
    let at = text.find("ed25519 = \"").unwrap() + "ed25519 = \"".len();
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let mra = parse(std::str::from_utf8(&bytes).unwrap()).unwrap();
    match mra.verify_signatures() {
        Err(MraError::BadSignature { jurisdiction }) => assert_eq!(jurisdiction, "JP"),
        other => panic!("expected BadSignature, got {other:?}"),
    }
}

#[test]
fn replacing_an_anchor_breaks_that_partys_signatures() {
    let text =
        generated_text().replace("anchors = [\"jp/root.pem\"]", "anchors = [\"th/root.pem\"]");
    let mra = parse(&text).unwrap();
    assert!(matches!(
        mra.verify_signatures(),
        Err(MraError::BadSignature { .. })
    ));
}

#[test]
fn reformatting_and_reordering_keep_signatures_valid() {
    let text = generated_text();
    // Swap the first two recognition rows and write one time with a +09:00 offset.
    let first = text.find("[[recognition]]").unwrap();
    let second = first + 1 + text[first + 1..].find("[[recognition]]").unwrap();
    let third = second + 1 + text[second + 1..].find("[[recognition]]").unwrap();
    let mut reordered = String::new();
    reordered.push_str(&text[..first]);
    reordered.push_str(&text[second..third]);
    reordered.push_str(&text[first..second]);
    reordered.push_str(&text[third..]);
    let reordered = reordered
        .replacen(
            "not_before = \"2026-01-01T00:00:00Z\"",
            "not_before   =   \"2026-01-01T09:00:00+09:00\"",
            1,
        )
        .replace("# ", "#  ");
    assert_ne!(reordered, text);
    let mra = parse(&reordered).unwrap();
    mra.verify_signatures().unwrap();
    assert_eq!(
        mra.canonical_bytes(),
        parse(&text).unwrap().canonical_bytes()
    );
}

#[test]
fn canonical_json_has_sorted_keys() {
    let mra = parse(&generated_text()).unwrap();
    let json = &mra.canonical_bytes()[CANONICAL_PREFIX.len()..];
    let value: serde_json::Value = serde_json::from_slice(json).unwrap();
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    let text = std::str::from_utf8(json).unwrap();
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| text.find(&format!("\"{k}\":")).unwrap())
        .collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(positions, sorted, "keys appear in ascending order");
    assert!(!text.contains('\n'), "compact JSON has no newlines");
}

#[test]
fn signing_needs_the_listed_authority_key() {
    let mut mra = parse(&unsigned_text()).unwrap();
    let sg_key = authority_key("sg");
    assert!(matches!(
        mra.sign("JP", &sg_key),
        Err(MraError::WrongKey { .. })
    ));
    assert!(matches!(
        mra.sign("FR", &sg_key),
        Err(MraError::UnknownJurisdiction { .. })
    ));
}

#[test]
fn writing_signatures_keeps_comments_and_round_trips() {
    let text = unsigned_text();
    let mut mra = parse(&text).unwrap();
    for code in ["jp", "sg", "th"] {
        let key = authority_key(code);
        mra.sign(&code.to_ascii_uppercase(), &key).unwrap();
    }
    let written = mra.with_signatures(&text).unwrap();
    assert!(written.starts_with(text.trim_end()));
    assert_eq!(written, generated_text());
    parse(&written).unwrap().verify_signatures().unwrap();
    // Re-signing replaces rather than appends.
    let again = parse(&written).unwrap().with_signatures(&written).unwrap();
    assert_eq!(again.matches("[[signature]]").count(), 3);
}

#[test]
fn rejects_bad_toml_with_the_file_name() {
    let err = parse("version = [").unwrap_err();
    assert!(matches!(err, MraError::Syntax { .. }));
    assert!(err.to_string().contains("test-mra.toml"));
}

#[test]
fn rejects_unknown_fields() {
    let text = unsigned_text().replace("version = 1", "version = 1\nsurprise = true");
    assert!(matches!(parse(&text), Err(MraError::Syntax { .. })));
}

#[test]
fn rejects_unsupported_version() {
    let (field, _) = field_error(&unsigned_text().replace("version = 1", "version = 2"));
    assert_eq!(field, "version");
}

#[test]
fn rejects_row_naming_an_unknown_jurisdiction() {
    let text = unsigned_text().replacen("relying = \"SG\"", "relying = \"FR\"", 1);
    let (field, reason) = field_error(&text);
    assert_eq!(field, "recognition[0].relying");
    assert!(reason.contains("FR"));
}

#[test]
fn rejects_lowercase_or_long_jurisdiction_code() {
    let (field, _) = field_error(&unsigned_text().replacen("code = \"JP\"", "code = \"jp\"", 1));
    assert_eq!(field, "jurisdiction[0].code");
    let (field, _) = field_error(&unsigned_text().replacen("code = \"JP\"", "code = \"JPN\"", 1));
    assert_eq!(field, "jurisdiction[0].code");
}

#[test]
fn rejects_a_malformed_policy_oid() {
    let text = unsigned_text().replacen(
        "[jurisdiction.policies]\n",
        "[jurisdiction.policies]\n\"1.02.x\" = \"low\"\n",
        1,
    );
    let (field, reason) = field_error(&text);
    assert!(field.starts_with("jurisdiction[0].policies"), "{field}");
    assert!(reason.contains("1.02.x"));
}

#[test]
fn rejects_an_unknown_level() {
    let text = unsigned_text().replacen("= \"low\"", "= \"medium\"", 1);
    let (field, reason) = field_error(&text);
    assert!(field.starts_with("jurisdiction[0].policies"));
    assert!(reason.contains("medium"));
}

#[test]
fn rejects_a_missing_anchor_file_naming_it() {
    let text = unsigned_text().replace("jp/root.pem", "jp/nowhere.pem");
    let (field, reason) = field_error(&text);
    assert_eq!(field, "jurisdiction[0].anchors[0]");
    assert!(reason.contains("nowhere.pem"));
}

#[test]
fn rejects_an_anchor_that_is_not_a_certificate() {
    let text = unsigned_text().replace("anchors = [\"jp/root.pem\"]", "anchors = [\"jp/crl.pem\"]");
    let (field, reason) = field_error(&text);
    assert_eq!(field, "jurisdiction[0].anchors[0]");
    assert!(reason.contains("CERTIFICATE"));
}

#[test]
fn accepts_an_inline_pem_anchor() {
    let pem = String::from_utf8(committed("jp/root.pem").unwrap()).unwrap();
    let text = unsigned_text().replace(
        "anchors = [\"jp/root.pem\"]",
        &format!("anchors = [\"\"\"\n{pem}\"\"\"]"),
    );
    let inline = parse(&text).unwrap();
    assert_eq!(
        inline.canonical_bytes(),
        parse(&unsigned_text()).unwrap().canonical_bytes()
    );
}

#[test]
fn rejects_a_bad_date() {
    let text = unsigned_text().replacen(
        "not_before = \"2026-01-01T00:00:00Z\"",
        "not_before = \"2026-13-01\"",
        1,
    );
    let (field, reason) = field_error(&text);
    assert_eq!(field, "not_before");
    assert!(reason.contains("2026-13-01"));
}

#[test]
fn rejects_a_window_that_ends_before_it_starts() {
    let text = unsigned_text().replacen(
        "not_after = \"2036-01-01T00:00:00Z\"",
        "not_after = \"2025-01-01T00:00:00Z\"",
        1,
    );
    let (field, _) = field_error(&text);
    assert_eq!(field, "recognition[0].not_after");
}

#[test]
fn rejects_a_self_recognition_row_and_duplicate_ids() {
    let text = unsigned_text().replacen("issuing = \"JP\"", "issuing = \"SG\"", 1);
    let (field, reason) = field_error(&text);
    assert_eq!(field, "recognition[0].issuing");
    assert!(reason.contains("self-recognition"));
    let text =
        unsigned_text().replacen("id = \"JP-recognizes-SG\"", "id = \"SG-recognizes-JP\"", 1);
    let (field, _) = field_error(&text);
    assert_eq!(field, "recognition[1].id");
}

#[test]
fn rejects_an_unknown_purpose() {
    let text = unsigned_text().replacen("\"node-tls\", ", "\"server-auth\", ", 1);
    let (field, reason) = field_error(&text);
    assert_eq!(field, "recognition[0].purposes");
    assert!(reason.contains("server-auth"));
}

#[test]
fn rejects_a_signature_by_a_stranger_or_of_wrong_length() {
    let text = format!(
        "{}[[signature]]\njurisdiction = \"FR\"\ned25519 = \"AAAA\"\n",
        unsigned_text()
    );
    let (field, _) = field_error(&text);
    assert_eq!(field, "signature[0].jurisdiction");
    let text = format!(
        "{}[[signature]]\njurisdiction = \"JP\"\ned25519 = \"AAAA\"\n",
        unsigned_text()
    );
    let (field, reason) = field_error(&text);
    assert_eq!(field, "signature[0].ed25519");
    assert!(reason.contains("64 bytes"));
}

#[test]
fn load_reads_anchors_relative_to_the_file_and_reports_missing_files() {
    let mra = Mra::load(&certs_dir().join("mra.toml")).unwrap();
    mra.verify_signatures().unwrap();
    let err = Mra::load(&certs_dir().join("absent.toml")).unwrap_err();
    assert!(matches!(err, MraError::Read { .. }));
}

#[test]
fn dotted_oid_syntax() {
    assert!(is_dotted_oid("2.25.1"));
    assert!(is_dotted_oid("1.3.6.1.5.5.7.3.1"));
    assert!(!is_dotted_oid("3.1"));
    assert!(!is_dotted_oid("1"));
    assert!(!is_dotted_oid("1..2"));
    assert!(!is_dotted_oid("1.02"));
    assert!(!is_dotted_oid("1.2.a"));
}

#[test]
fn highest_level_picks_the_best_mapped_policy() {
    let mra = parse(&unsigned_text()).unwrap();
    let jp = mra.jurisdiction("JP").unwrap();
    let low = policy_oid(392, AssuranceLevel::Low);
    let high = policy_oid(392, AssuranceLevel::High);
    let sg_high = policy_oid(702, AssuranceLevel::High);
    assert_eq!(
        jp.highest_level([low.as_str(), high.as_str()]).map(|l| l.0),
        Some(AssuranceLevel::High)
    );
    assert_eq!(jp.highest_level([sg_high.as_str()]), None);
}

// --- Recognition ------------------------------------------------------------------

const PINNED: &str = "2027-01-01T00:00:00Z";

fn at(text: &str) -> UnixTime {
    UnixTime::parse_rfc3339(text).unwrap()
}

/// Parses `text` (an unsigned agreement) and signs it as every party.
fn signed(text: &str) -> Mra {
    let mut mra = parse(text).unwrap();
    for code in ["jp", "sg", "th"] {
        let key = authority_key(code);
        mra.sign(&code.to_ascii_uppercase(), &key).unwrap();
    }
    mra.verify_signatures().unwrap();
    mra
}

fn chain(path: &str) -> Vec<Cert> {
    Cert::parse_pem_or_der_bundle(&committed(path).unwrap()).unwrap()
}

fn recognize(
    mra: &Mra,
    relying: &str,
    purpose: Purpose,
    path: &str,
    time: &str,
) -> RecognitionVerdict {
    let certs = chain(path);
    mra.recognize(relying, purpose, &certs[0], &certs[1..], &[], at(time))
}

#[track_caller]
fn assert_refused(verdict: &RecognitionVerdict, rule: &str) {
    let json = serde_json::to_string_pretty(verdict).unwrap();
    assert!(!verdict.recognized, "{json}");
    assert_eq!(
        verdict.reason.as_ref().map(|r| r.rule.as_str()),
        Some(rule),
        "{json}"
    );
}

#[test]
fn sg_recognizes_a_jp_bank_under_its_row() {
    let mra = signed(&unsigned_text());
    let v = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "jp/banks/KKHAJPJ0.pem",
        PINNED,
    );
    assert!(v.recognized, "{v:?}");
    assert_eq!(v.anchor_jurisdiction.as_deref(), Some("JP"));
    assert_eq!(
        v.clause.as_deref(),
        Some("MRA §recognition.SG-recognizes-JP")
    );
    assert_eq!(v.level_reached, Some(AssuranceLevel::High));
    assert_eq!(v.level_required, Some(AssuranceLevel::Substantial));
    assert_eq!(v.policies, [policy_oid(392, AssuranceLevel::High)]);
    assert_eq!(v.path.len(), 3);
    assert!(
        v.checks
            .iter()
            .any(|c| c.rule == "MRA §level" && c.outcome == Outcome::Pass)
    );
}

#[test]
fn a_jurisdiction_recognizes_its_own_bank_without_a_row() {
    let mra = signed(&unsigned_text());
    let v = recognize(
        &mra,
        "JP",
        Purpose::PaymentSigning,
        "jp/banks/KKHBJPJ0.pem",
        PINNED,
    );
    assert!(v.recognized, "{v:?}");
    assert_eq!(v.clause.as_deref(), Some("MRA §self-recognition"));
}

#[test]
fn self_recognition_holds_outside_the_agreement_window_but_cross_border_does_not() {
    let mra = signed(&unsigned_text());
    let before = "2025-07-01T00:00:00Z";
    let own = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "sg/banks/KKHASGS0.pem",
        before,
    );
    assert!(own.recognized, "{own:?}");
    let foreign = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "jp/banks/KKHAJPJ0.pem",
        before,
    );
    assert_refused(&foreign, "MRA §validity");
}

/// `text` without the rows in which `issuing` is recognized.
fn without_rows_recognizing(text: &str, issuing: &str) -> String {
    let marker = "\n[[recognition]]\n";
    let mut parts = text.split(marker);
    let mut kept = parts.next().unwrap_or_default().to_owned();
    let mut dropped = 0;
    for row in parts {
        if row.contains(&format!("issuing = \"{issuing}\"\n")) {
            dropped += 1;
        } else {
            kept.push_str(marker);
            kept.push_str(row);
        }
    }
    assert!(dropped > 0, "no row recognizes {issuing}");
    kept
}

#[test]
fn refuses_a_jurisdiction_without_a_row() {
    // The committed agreement has a row for every pair: take SG's recognition of TH away.
    let mra = signed(&without_rows_recognizing(&unsigned_text(), "TH"));
    let v = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "th/banks/KKHATHB0.pem",
        PINNED,
    );
    assert_refused(&v, "MRA §recognition");
    assert_eq!(v.anchor_jurisdiction.as_deref(), Some("TH"));
}

#[test]
fn refuses_a_purpose_the_row_does_not_cover() {
    let mra = signed(&unsigned_text());
    // Rows never carry participant-tls: a bank connects to its own jurisdiction's node.
    let v = recognize(
        &mra,
        "TH",
        Purpose::ParticipantTls,
        "jp/banks/KKHAJPJ0-tls.pem",
        PINNED,
    );
    assert_refused(&v, "MRA §recognition.TH-recognizes-JP");
    assert!(v.checks.iter().any(|c| c.name == "recognition-purpose"));
    let ok = recognize(
        &mra,
        "TH",
        Purpose::ReceiptSigning,
        "jp/node/receipt.pem",
        PINNED,
    );
    assert!(ok.recognized, "{ok:?}");
}

#[test]
fn refuses_a_time_outside_the_rows_window() {
    let text = unsigned_text().replacen(
        "not_before = \"2026-01-01T00:00:00Z\"\nnot_after = \"2036-01-01T00:00:00Z\"",
        "not_before = \"2027-06-01T00:00:00Z\"\nnot_after = \"2036-01-01T00:00:00Z\"",
        1,
    );
    let mra = signed(&text);
    let v = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "jp/banks/KKHAJPJ0.pem",
        PINNED,
    );
    assert_refused(&v, "MRA §recognition.SG-recognizes-JP");
    assert!(v.checks.iter().any(|c| c.name == "recognition-window"));
    let later = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "jp/banks/KKHAJPJ0.pem",
        "2027-06-01T00:00:00Z",
    );
    assert!(
        later.recognized,
        "the window's first second is inside: {later:?}"
    );
}

#[test]
fn refuses_a_level_below_the_rows_minimum() {
    let text = unsigned_text().replacen(
        "minimum_level = \"substantial\"",
        "minimum_level = \"high\"",
        1,
    );
    let mra = signed(&text);
    let v = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "jp/banks/KKHBJPJ0.pem",
        PINNED,
    );
    assert_refused(&v, "MRA §level");
    assert_eq!(v.level_reached, Some(AssuranceLevel::Substantial));
    assert_eq!(v.level_required, Some(AssuranceLevel::High));
    let high = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "jp/banks/KKHAJPJ0.pem",
        PINNED,
    );
    assert!(high.recognized, "{high:?}");
}

#[test]
fn refuses_a_policy_no_map_assigns() {
    // Drop JP's map entry for "high": KKHAJPJ0's only policy then maps to nothing.
    let high = policy_oid(392, AssuranceLevel::High);
    let text = unsigned_text().replacen(&format!("\"{high}\" = \"high\"\n"), "", 1);
    let mra = signed(&text);
    let v = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "jp/banks/KKHAJPJ0.pem",
        PINNED,
    );
    assert_refused(&v, "MRA §level");
    assert_eq!(v.level_reached, None);
}

#[test]
fn recognition_refuses_an_unsigned_agreement_unless_allowed() {
    let mut mra = parse(&unsigned_text()).unwrap();
    let v = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "jp/banks/KKHAJPJ0.pem",
        PINNED,
    );
    assert_refused(&v, "MRA §signatures");
    crate::danger::allow_unsigned_agreement(&mut mra, true);
    let v = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "jp/banks/KKHAJPJ0.pem",
        PINNED,
    );
    assert!(v.recognized, "{v:?}");
    let warning = v
        .checks
        .iter()
        .find(|c| c.rule == "MRA §signatures")
        .unwrap();
    assert_eq!(warning.outcome, Outcome::NotApplicable);
    assert!(warning.detail.contains("WARNING"));
}

#[test]
fn recognition_refuses_a_tampered_agreement() {
    let text = generated_text().replacen(
        "minimum_level = \"substantial\"",
        "minimum_level = \"low\"",
        1,
    );
    let mra = parse(&text).unwrap();
    let v = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "jp/banks/KKHAJPJ0.pem",
        PINNED,
    );
    assert_refused(&v, "MRA §signatures");
}

#[test]
fn refuses_a_relying_party_outside_the_agreement() {
    let mra = signed(&unsigned_text());
    let v = recognize(
        &mra,
        "FR",
        Purpose::PaymentSigning,
        "jp/banks/KKHAJPJ0.pem",
        PINNED,
    );
    assert_refused(&v, "MRA §parties");
}

#[test]
fn a_malformed_extra_crl_fails_closed() {
    let mra = signed(&unsigned_text());
    let certs = chain("jp/banks/KKHAJPJ0.pem");
    let v = mra.recognize(
        "SG",
        Purpose::PaymentSigning,
        &certs[0],
        &certs[1..],
        &[vec![0x30, 0x00]],
        at(PINNED),
    );
    assert_refused(&v, "RFC 5280 §5.1");
}

#[test]
fn reports_the_most_specific_failure_across_parties() {
    let mra = signed(&unsigned_text());
    // JP's anchors give a bad signature; SG's and TH's give "unknown issuer".
    let v = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "fixtures/broken-signature/chain.pem",
        PINNED,
    );
    assert_refused(&v, "RFC 5280 §6.1.3(a)(1)");
    let tried = v.checks.iter().find(|c| c.name == "anchors-tried").unwrap();
    assert!(
        tried.detail.contains("JP:") && tried.detail.contains("SG:"),
        "{}",
        tried.detail
    );
}

#[test]
fn a_revoked_bank_is_refused_with_the_mras_crls() {
    let mra = signed(&unsigned_text());
    let v = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "jp/banks/KKHCJPJ0.pem",
        PINNED,
    );
    assert_refused(&v, "RFC 5280 §6.3");
}

#[test]
fn verdict_serializes_with_its_decision_and_checks() {
    let mra = signed(&unsigned_text());
    let v = recognize(
        &mra,
        "SG",
        Purpose::PaymentSigning,
        "jp/banks/KKHAJPJ0.pem",
        PINNED,
    );
    let json: serde_json::Value = serde_json::to_value(&v).unwrap();
    assert_eq!(json["recognized"], true);
    assert_eq!(json["purpose"], "payment-signing");
    assert_eq!(json["level_reached"], "high");
    assert_eq!(json["time"], PINNED);
    assert!(json["checks"].as_array().unwrap().len() > 5);
}

#[test]
fn mutated_and_truncated_agreements_never_panic() {
    // Every error is a Result: flip, delete or truncate at many positions of a real file.
    let text = generated_text();
    let bytes = text.as_bytes();
    let mut outcomes = [0usize; 2];
    for at in (0..bytes.len()).step_by(47) {
        let mut flipped = bytes.to_vec();
        flipped[at] ^= 0x20;
        let mut deleted = bytes.to_vec();
        deleted.remove(at);
        for candidate in [flipped, deleted, bytes[..at].to_vec()] {
            if let Ok(text) = std::str::from_utf8(&candidate) {
                let ok = parse(text).is_ok_and(|m| m.verify_signatures().is_ok());
                outcomes[usize::from(ok)] += 1;
            }
        }
    }
    assert!(outcomes[0] > 0, "some mutations must be refused");
}

/// Issue 12: an operator identity is local. A row that would let another jurisdiction's PKI
/// mint operators of this node is refused, naming the rule; participant TLS may be carried.
#[test]
fn rejects_a_row_carrying_the_operator_purpose_but_not_participant_tls() {
    let first = unsigned_text();
    let at = first.find("purposes = [").expect("a purposes line");
    let text = format!(
        "{}purposes = [\"operator\", {}",
        &first[..at],
        &first[at + 12..]
    );
    let (field, reason) = field_error(&text);
    assert_eq!(field, "recognition[0].purposes");
    assert!(reason.contains("self-recognition"), "{reason}");
    let text = format!(
        "{}purposes = [\"participant-tls\", {}",
        &first[..at],
        &first[at + 12..]
    );
    parse(&text).expect("participant-tls may be recognized across borders");
}
