//! Rules on the source tree that the compiler does not check.
//!
//! Jurisdictions are data, not code (ARCHITECTURE.md, `crates/node`): no Rust source under
//! `crates/node/src`, `crates/protocol/src` or `crates/ops/src` names a jurisdiction code (`JP`,
//! `SG`, `TH`) as a token, in code or in a string literal. A token is the code with no letter,
//! digit or `_` on either side, as `grep -w` has it: `"JP"` and `JP→SG` name codes, `JPY` and
//! `SG_PEER` do not. Left out:
//! - items under `#[cfg(test)]` (test modules, test fixtures) and files named `tests.rs` or
//!   under a `tests/` directory: tests run the committed JP, SG and TH data;
//! - comments, doc comments included: the docs give codes as examples of the data (a sample
//!   receipt, "a party code such as `JP`"), which makes no code depend on a jurisdiction.
//!   Comments name codes in several files today, all of them examples.
//!
//! A violation names the file, the line and the code. An exception goes in [`ALLOWED`] with
//! its reason; one that no longer matches fails too, so the list only shrinks.

use std::path::{Path, PathBuf};

use kakehashi_e2e::repo_root;

/// The source directories held to the rule, from the repository root.
const SCANNED: &[&str] = &["crates/node/src", "crates/protocol/src", "crates/ops/src"];

/// The jurisdiction codes of the committed agreement (`certs/mra.toml`).
const CODES: &[&str] = &["JP", "SG", "TH"];

/// Lines that may name a code: the file, the line's text without its indentation, and why.
const ALLOWED: &[(&str, &str, &str)] = &[];

#[test]
fn no_jurisdiction_code_in_node_protocol_or_ops_sources() {
    let root = repo_root();
    let mut violations = Vec::new();
    let mut allowed_used = vec![false; ALLOWED.len()];
    let mut files_scanned = 0;
    for dir in SCANNED {
        for path in rust_sources(&root.join(dir)) {
            let relative = relative_name(&root, &path);
            let source = std::fs::read_to_string(&path).expect("read a Rust source");
            files_scanned += 1;
            for finding in scan(&source) {
                let text = finding.text.trim();
                let allowed = ALLOWED
                    .iter()
                    .position(|(file, line, _)| *file == relative && *line == text);
                match allowed {
                    Some(index) => allowed_used[index] = true,
                    None => violations.push(format!(
                        "{relative}:{}: names {}: {text}",
                        finding.line, finding.code
                    )),
                }
            }
        }
    }
    assert!(files_scanned > 0, "no Rust source found under {SCANNED:?}");
    assert!(
        violations.is_empty(),
        "jurisdictions are data, not code: take the code from the configuration or the \
         agreement (or, for a test, put it under #[cfg(test)]):\n{}",
        violations.join("\n")
    );
    let stale: Vec<String> = ALLOWED
        .iter()
        .zip(&allowed_used)
        .filter(|(_, used)| !**used)
        .map(|((file, line, _), _)| format!("{file}: {line}"))
        .collect();
    assert!(
        stale.is_empty(),
        "these exceptions match no line any more: remove them from ALLOWED in tests/tests/tidy.rs\n{}",
        stale.join("\n")
    );
}

#[test]
fn scanner_finds_codes_in_code_and_strings() {
    let source = "\
fn sender() -> &'static str {
    \"JP\"
}
const ROUTE: &str = r#\"JP→SG\"#;
fn is_th(code: &str) -> bool { code == \"TH\" }
";
    let found: Vec<(usize, &str)> = scan(source).iter().map(|f| (f.line, f.code)).collect();
    assert_eq!(found, [(2, "JP"), (4, "JP"), (4, "SG"), (5, "TH")]);
}

#[test]
fn scanner_skips_comments_other_words_and_test_items() {
    let source = "\
//! A relay between parties such as JP and SG.
/// e.g. `\"TH\"`
/* a block comment: JP /* nested: SG */ still a comment: TH */
const CURRENCY: &str = \"JPY\"; // JP
const QUOTE: char = '\"'; const PEER: &str = \"SG_PEER\";
fn longest<'a>(a: &'a str) -> &'a str { a }
#[cfg(test)]
mod tests {
    const BRACE: &str = \"{\";
    fn jp() -> &'static str { \"JP\" }
}
#[cfg(test)]
mod more_tests;
#[cfg(test)]
const FIXTURE: [&str; 2] = [\"SG\", \"TH\"];
";
    assert_eq!(scan(source), []);
}

#[test]
fn scanner_resumes_after_a_test_item() {
    let source = "\
#[cfg(test)]
mod tests {
    fn f() { let s = \"}\"; }
}
fn after() -> &'static str { \"SG\" }
#[cfg(test)]
mod other;
const TH: u8 = 0;
";
    let found: Vec<(usize, &str)> = scan(source).iter().map(|f| (f.line, f.code)).collect();
    assert_eq!(found, [(5, "SG"), (8, "TH")]);
}

/// Where a source names a jurisdiction code.
#[derive(Debug, PartialEq, Eq)]
struct Finding {
    /// 1-based line number.
    line: usize,
    code: &'static str,
    /// The whole line, for the message.
    text: String,
}

/// What a character of a source is part of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Code,
    Comment,
    Literal,
}

/// The jurisdiction codes `source` names in code and string or character literals, outside
/// comments and items under `#[cfg(test)]`.
fn scan(source: &str) -> Vec<Finding> {
    let chars: Vec<char> = source.chars().collect();
    let classes = classify(&chars);
    let skipped = test_items(&chars, &classes);
    let lines: Vec<&str> = source.lines().collect();
    let mut findings = Vec::new();
    let mut line = 1;
    for (i, &c) in chars.iter().enumerate() {
        if c == '\n' {
            line += 1;
            continue;
        }
        if classes[i] == Class::Comment || skipped[i] {
            continue;
        }
        let before = i.checked_sub(1).map(|j| chars[j]);
        if before.is_some_and(is_word) {
            continue;
        }
        for &code in CODES {
            let len = code.chars().count();
            let Some(candidate) = chars.get(i..i + len) else {
                continue;
            };
            let after = chars.get(i + len).copied();
            if candidate.iter().copied().eq(code.chars()) && !after.is_some_and(is_word) {
                findings.push(Finding {
                    line,
                    code,
                    text: lines.get(line - 1).copied().unwrap_or_default().to_owned(),
                });
            }
        }
    }
    findings
}

/// A character that continues a word (an identifier, a number, `JPY`).
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Classifies each character as code, comment (line, block, nested block, doc) or literal
/// (string, raw string, character), so that a `"` in a comment or a `//` in a string is read
/// for what it is.
fn classify(chars: &[char]) -> Vec<Class> {
    let mut classes = vec![Class::Code; chars.len()];
    let at = |i: usize| chars.get(i).copied();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let class = match chars[i] {
            '/' if at(i + 1) == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                Class::Comment
            }
            '/' if at(i + 1) == Some('*') => {
                let mut depth = 0_usize;
                while i < chars.len() {
                    if chars[i] == '/' && at(i + 1) == Some('*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && at(i + 1) == Some('/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                Class::Comment
            }
            'r' if starts_raw_string(chars, i) => {
                i += 1;
                let mut hashes = 0;
                while at(i) == Some('#') {
                    hashes += 1;
                    i += 1;
                }
                i += 1; // the opening quote
                while i < chars.len() {
                    let closes = chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == Some('#'));
                    i += 1;
                    if closes {
                        i += hashes;
                        break;
                    }
                }
                Class::Literal
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                Class::Literal
            }
            // A character literal ('x', '\n', '\u{7f}'), not a lifetime or label ('a).
            '\'' if at(i + 1) == Some('\\') || at(i + 2) == Some('\'') => {
                i += if at(i + 1) == Some('\\') { 3 } else { 2 };
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                Class::Literal
            }
            _ => {
                i += 1;
                Class::Code
            }
        };
        let end = i.min(chars.len());
        classes[start..end].fill(class);
    }
    classes
}

/// Whether a raw string literal (`r"…"`, `r#"…"#`, `br"…"`, `cr"…"`) starts at `chars[i]`, an
/// `r`; `r#ident` is a raw identifier, and an `r` inside a word is not a prefix.
fn starts_raw_string(chars: &[char], i: usize) -> bool {
    let prefix_start = match i.checked_sub(1).map(|j| chars[j]) {
        Some('b' | 'c') => i - 1,
        _ => i,
    };
    let starts_word = prefix_start
        .checked_sub(1)
        .is_none_or(|j| !is_word(chars[j]));
    let mut j = i + 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    starts_word && chars.get(j) == Some(&'"')
}

/// Marks the characters of every item under `#[cfg(test)]` (the attribute included), or of
/// the whole file after an inner `#![cfg(test)]`. An item ends at a `;` outside any brackets
/// (`mod tests;`, a `const`) or where its first braces close (`mod tests { … }`).
fn test_items(chars: &[char], classes: &[Class]) -> Vec<bool> {
    let mut skipped = vec![false; chars.len()];
    // The code alone, comments and literals blanked, with an index back into `chars`.
    let code: Vec<(usize, char)> = chars
        .iter()
        .enumerate()
        .filter(|&(i, c)| classes[i] == Class::Code && !c.is_whitespace())
        .map(|(i, &c)| (i, c))
        .collect();
    let matches = |k: usize, pattern: &str| {
        pattern
            .chars()
            .enumerate()
            .all(|(n, p)| code.get(k + n).is_some_and(|&(_, c)| c == p))
    };
    const ATTRIBUTE: &str = "#[cfg(test)]";
    let mut k = 0;
    while k < code.len() {
        if matches(k, "#![cfg(test)]") {
            skipped[code[k].0..].fill(true);
            break;
        }
        if !matches(k, ATTRIBUTE) {
            k += 1;
            continue;
        }
        let start = code[k].0;
        let mut end = chars.len();
        let mut depth = 0_usize;
        let mut j = k + ATTRIBUTE.len();
        while let Some(&(index, c)) = code.get(j) {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' => depth = depth.saturating_sub(1),
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = index + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = index + 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        skipped[start..end].fill(true);
        k = j + 1;
    }
    skipped
}

/// The `.rs` files under `dir`, sorted, leaving out test-only files (`tests.rs`, anything
/// under a `tests/` directory).
fn rust_sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("read {}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name != "tests") {
                files.extend(rust_sources(&path));
            }
        } else if path.extension().is_some_and(|ext| ext == "rs")
            && path.file_name().is_some_and(|name| name != "tests.rs")
        {
            files.push(path);
        }
    }
    files
}

/// `path` relative to the repository root, with `/` between components.
fn relative_name(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
