//! `replay --junit OUT.xml`: the run as a JUnit XML report, the format CI systems (GitHub
//! Actions, GitLab, Jenkins, Buildkite) show test results from.
//!
//! One `<testsuite>` for the file, one `<testcase>` per payment line: named after the line
//! number and the end-to-end id, its class the file, its time the line's latency, and
//! properties with the UETR, the status, the reason, the expectation and the latency. A line
//! whose expectation was not met (or whose settled payment's receipt did not verify) carries a
//! `<failure>`; a line whose outcome is unknown (PDNG, or no answer at all) an `<error>`: CI
//! then shows "unknown" apart from "wrong". The suite carries the counts (tests, failures,
//! errors, skipped) and the run's time.
//!
//! The XML is written with quick-xml (as the ISO 20022 messages are), which escapes text and
//! attribute values; characters XML 1.0 cannot carry at all (control characters a node's
//! message might hold) are replaced with U+FFFD first.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use kakehashi_ops::replay::{LineResult, Verdict};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

/// The counts of a suite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) tests: usize,
    pub(super) failures: usize,
    pub(super) errors: usize,
    pub(super) skipped: usize,
}

impl Counts {
    fn of(results: &[LineResult]) -> Self {
        let mut counts = Self {
            tests: results.len(),
            ..Self::default()
        };
        for r in results {
            match r.verdict() {
                Verdict::Fine => {}
                Verdict::NotMet => counts.failures += 1,
                Verdict::Unknown => counts.errors += 1,
            }
        }
        counts
    }
}

/// Writes the report of `results` (read from `file`, run in `wall`) to `out`.
pub(super) fn write(
    out: &Path,
    file: &Path,
    results: &[LineResult],
    wall: Duration,
) -> anyhow::Result<Counts> {
    let (xml, counts) = report(&file.display().to_string(), results, wall)
        .context("cannot encode the JUnit report")?;
    std::fs::write(out, xml)
        .with_context(|| format!("cannot write the JUnit report {}", out.display()))?;
    Ok(counts)
}

/// The report's XML text and its counts; `file` names the suite and every case's class.
pub(super) fn report(
    file: &str,
    results: &[LineResult],
    wall: Duration,
) -> std::io::Result<(Vec<u8>, Counts)> {
    let counts = Counts::of(results);
    let file = xml_chars(file);
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let (tests, failures, errors, skipped) = (
        counts.tests.to_string(),
        counts.failures.to_string(),
        counts.errors.to_string(),
        counts.skipped.to_string(),
    );
    let time = secs(wall);
    let suite_name = format!("kakehashi replay {file}");
    writer
        .create_element("testsuites")
        .with_attributes([
            ("name", suite_name.as_str()),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", errors.as_str()),
            ("skipped", skipped.as_str()),
            ("time", time.as_str()),
        ])
        .write_inner_content(|w| {
            w.create_element("testsuite")
                .with_attributes([
                    ("name", file.as_str()),
                    ("tests", tests.as_str()),
                    ("failures", failures.as_str()),
                    ("errors", errors.as_str()),
                    ("skipped", skipped.as_str()),
                    ("time", time.as_str()),
                ])
                .write_inner_content(|w| {
                    for result in results {
                        testcase(w, &file, result)?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    let mut xml = writer.into_inner();
    xml.push(b'\n');
    Ok((xml, counts))
}

/// One line's `<testcase>`.
fn testcase(w: &mut Writer<Vec<u8>>, file: &str, r: &LineResult) -> std::io::Result<()> {
    let name = if r.end_to_end_id.is_empty() {
        format!("line {}", r.line)
    } else {
        format!("line {}: {}", r.line, xml_chars(&r.end_to_end_id))
    };
    let time = secs(r.latency);
    let latency_ms = format!("{:.3}", r.latency.as_secs_f64() * 1e3);
    let expected = r.expect.map(|e| e.to_string()).unwrap_or_default();
    let mut properties = vec![
        ("uetr", xml_chars(&r.uetr)),
        ("status", r.status.as_str().to_owned()),
        ("reason", xml_chars(&r.reason)),
        ("expected", expected.clone()),
        ("route", xml_chars(&r.route)),
        ("latency_ms", latency_ms),
    ];
    if r.earlier {
        properties.push(("decided_earlier", "true".to_owned()));
    }
    let outcome = r.outcome();
    let detail = xml_chars(&r.detail);
    w.create_element("testcase")
        .with_attributes([
            ("name", name.as_str()),
            ("classname", file),
            ("time", time.as_str()),
        ])
        .write_inner_content(|w| {
            w.create_element("properties").write_inner_content(|w| {
                for (key, value) in &properties {
                    w.create_element("property")
                        .with_attributes([("name", *key), ("value", value.as_str())])
                        .write_empty()?;
                }
                Ok(())
            })?;
            match r.verdict() {
                Verdict::Fine => {}
                Verdict::NotMet => {
                    let message = match (&r.receipt_problem, r.expect) {
                        (Some(problem), _) => {
                            format!("{outcome}, but the receipt does not verify: {problem}")
                        }
                        (None, Some(expected)) => format!("expected {expected}, got {outcome}"),
                        (None, None) => format!("got {outcome}"),
                    };
                    w.create_element("failure")
                        .with_attributes([
                            ("message", xml_chars(&message).as_str()),
                            ("type", outcome.as_str()),
                        ])
                        .write_text_content(BytesText::new(&detail))?;
                }
                Verdict::Unknown => {
                    let message = format!(
                        "outcome unknown ({}){}",
                        r.status,
                        if expected.is_empty() {
                            String::new()
                        } else {
                            format!("; expected {expected}")
                        }
                    );
                    w.create_element("error")
                        .with_attributes([
                            ("message", message.as_str()),
                            ("type", r.status.as_str()),
                        ])
                        .write_text_content(BytesText::new(&detail))?;
                }
            }
            Ok(())
        })?;
    Ok(())
}

/// Seconds with millisecond precision, as JUnit's `time` attributes hold them.
fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// `text` with every character XML 1.0 cannot represent, escaped or not (§2.2: controls other
/// than tab, LF and CR, surrogates, U+FFFE and U+FFFF), replaced with U+FFFD.
fn xml_chars(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\u{0}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}' => '\u{FFFD}',
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use kakehashi_ops::replay::{Expect, LineStatus};
    use kakehashi_protocol::reason::ReasonCode;
    use quick_xml::Reader;
    use quick_xml::XmlVersion;
    use quick_xml::escape::resolve_predefined_entity;
    use quick_xml::events::Event;

    use super::*;

    fn line(
        line: usize,
        status: LineStatus,
        reason: &str,
        expect: Option<Expect>,
        met: Option<bool>,
    ) -> LineResult {
        LineResult {
            line,
            uetr: format!("00000000-0000-4000-8000-00000000000{line}"),
            end_to_end_id: format!("E2E-{line}"),
            route: "JP→SG".to_owned(),
            status,
            reason: reason.to_owned(),
            expect,
            met,
            latency: Duration::from_millis(12),
            ..LineResult::default()
        }
    }

    /// Every element of `xml` with its attributes (name, value), in document order, and the
    /// text of every element, read back with quick-xml's own reader (which unescapes).
    /// An element's name and its attributes (name, value).
    type Element = (String, Vec<(String, String)>);

    fn parse(xml: &[u8]) -> (Vec<Element>, Vec<String>) {
        let mut reader = Reader::from_reader(xml);
        let mut elements = Vec::new();
        let mut texts = Vec::new();
        // An element's text arrives in pieces: text and entity references.
        let mut text = String::new();
        let mut buf = Vec::new();
        loop {
            match reader.read_event_into(&mut buf).expect("well-formed XML") {
                Event::Start(e) | Event::Empty(e) => {
                    text.clear();
                    let name = e.name().as_ref().to_owned();
                    let attributes = e
                        .attributes()
                        .map(|a| {
                            let a = a.expect("well-formed attribute");
                            (
                                a.key.as_ref().to_owned(),
                                a.normalized_value(XmlVersion::Implicit1_0)
                                    .expect("escaped value")
                                    .into_owned(),
                            )
                        })
                        .collect();
                    elements.push((name, attributes));
                }
                Event::Text(t) => text.push_str(&t.xml10_content()),
                Event::GeneralRef(r) => match r.resolve_char_ref().expect("character reference") {
                    Some(c) => text.push(c),
                    None => {
                        text.push_str(resolve_predefined_entity(&r).expect("a predefined entity"))
                    }
                },
                Event::End(_) => {
                    if !text.trim().is_empty() {
                        texts.push(std::mem::take(&mut text));
                    }
                    text.clear();
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        (elements, texts)
    }

    fn attribute<'a>(attributes: &'a [(String, String)], name: &str) -> &'a str {
        attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no attribute {name} in {attributes:?}"))
    }

    #[test]
    fn the_suite_counts_passes_failures_and_unknown_outcomes() {
        let results = [
            line(1, LineStatus::Acsc, "", Some(Expect::Settled), Some(true)),
            line(
                2,
                LineStatus::Rjct,
                "AM04",
                Some(Expect::Settled),
                Some(false),
            ),
            line(3, LineStatus::Pdng, "", Some(Expect::Settled), None),
            line(4, LineStatus::Error, "", None, None),
            line(5, LineStatus::Rjct, "AC01", None, None),
            line(
                6,
                LineStatus::Rjct,
                "AM04",
                Some(Expect::Rejected(Some(ReasonCode::Am04))),
                Some(true),
            ),
        ];
        let (xml, counts) =
            report("payments.jsonl", &results, Duration::from_millis(1500)).unwrap();
        assert_eq!(
            counts,
            Counts {
                tests: 6,
                failures: 1,
                errors: 2,
                skipped: 0
            }
        );
        let (elements, _) = parse(&xml);
        let suite = &elements.iter().find(|(n, _)| n == "testsuite").unwrap().1;
        for (name, want) in [
            ("tests", "6"),
            ("failures", "1"),
            ("errors", "2"),
            ("skipped", "0"),
        ] {
            assert_eq!(attribute(suite, name), want, "testsuite {name}");
        }
        assert_eq!(attribute(suite, "time"), "1.500");
        let cases: Vec<&Vec<(String, String)>> = elements
            .iter()
            .filter(|(n, _)| n == "testcase")
            .map(|(_, a)| a)
            .collect();
        assert_eq!(cases.len(), 6);
        assert_eq!(attribute(cases[0], "name"), "line 1: E2E-1");
        assert_eq!(attribute(cases[0], "classname"), "payments.jsonl");
        assert_eq!(attribute(cases[0], "time"), "0.012");
        // The failure and the errors sit in the cases of lines 2, 3 and 4, in that order.
        let names: Vec<&str> = elements.iter().map(|(n, _)| n.as_str()).collect();
        let verdicts: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| matches!(*n, "testcase" | "failure" | "error"))
            .collect();
        assert_eq!(
            verdicts,
            [
                "testcase", "testcase", "failure", "testcase", "error", "testcase", "error",
                "testcase", "testcase"
            ]
        );
        let failure = &elements.iter().find(|(n, _)| n == "failure").unwrap().1;
        assert_eq!(
            attribute(failure, "message"),
            "expected ACSC, got RJCT AM04"
        );
        let properties: Vec<(&str, &str)> = elements
            .iter()
            .filter(|(n, _)| n == "property")
            .take(6)
            .map(|(_, a)| (attribute(a, "name"), attribute(a, "value")))
            .collect();
        assert_eq!(
            properties,
            [
                ("uetr", "00000000-0000-4000-8000-000000000001"),
                ("status", "ACSC"),
                ("reason", ""),
                ("expected", "ACSC"),
                ("route", "JP→SG"),
                ("latency_ms", "12.000"),
            ]
        );
    }

    #[test]
    fn markup_in_ids_and_details_is_escaped_and_unrepresentable_characters_replaced() {
        let mut tricky = line(
            7,
            LineStatus::Rjct,
            "AC01",
            Some(Expect::Settled),
            Some(false),
        );
        tricky.end_to_end_id = r#"<a href="x">&'"#.to_owned();
        tricky.detail = "creditor \"<Tan & Co>\" ]]> unknown\u{1}\u{0}".to_owned();
        let file = "dir/a&b<c>.jsonl";
        let (xml, _) = report(file, &[tricky], Duration::ZERO).unwrap();
        let text = String::from_utf8(xml.clone()).unwrap();
        assert!(!text.contains("<a href"), "{text}");
        assert!(!text.contains('\u{0}') && !text.contains('\u{1}'), "{text}");
        let (elements, texts) = parse(&xml);
        let case = &elements.iter().find(|(n, _)| n == "testcase").unwrap().1;
        assert_eq!(attribute(case, "name"), r#"line 7: <a href="x">&'"#);
        assert_eq!(attribute(case, "classname"), file);
        assert_eq!(
            texts,
            ["creditor \"<Tan & Co>\" ]]> unknown\u{FFFD}\u{FFFD}".to_owned()]
        );
    }
}
