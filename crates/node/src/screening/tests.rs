use std::path::PathBuf;

use super::list::{self, ListErrorReason};
use super::*;

/// The committed test list and its variants (crates/node/tests/data/sanctions).
const LIST: &str = include_str!("../../tests/data/sanctions/list.csv");
const VARIANTS: &str = include_str!("../../tests/data/sanctions/variants.csv");

fn test_list() -> SanctionsList {
    let entries = list::parse(LIST.as_bytes()).expect("the committed list parses");
    SanctionsList::new(entries, THRESHOLD_DEFAULT)
}

/// `\u{...}` escapes written into the variants file for invisible characters.
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\\u{") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 3..];
        let end = tail.find('}').expect("closed escape");
        let c = u32::from_str_radix(&tail[..end], 16)
            .ok()
            .and_then(char::from_u32)
            .expect("a code point");
        out.push(c);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

struct Variant {
    /// `match` (true) or `pass` and `miss` (false: the name is not matched).
    expect_match: bool,
    /// `pass`: an innocent name (not a known miss).
    innocent: bool,
    name: String,
    entry: String,
    what: String,
}

fn variants() -> Vec<Variant> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(VARIANTS.as_bytes());
    reader
        .records()
        .map(|r| {
            let r = r.expect("a variant row");
            Variant {
                expect_match: match &r[0] {
                    "match" => true,
                    "pass" | "miss" => false,
                    other => panic!("expect is {other:?}"),
                },
                innocent: &r[0] == "pass",
                // Leading and trailing spaces are part of some variants: not trimmed.
                name: unescape(&r[1]),
                entry: r[2].to_owned(),
                what: r[3].to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_variant_is_caught_and_every_innocent_name_passes() {
    let list = test_list();
    let mut wrong = Vec::new();
    let mut lowest_match = f64::MAX;
    for v in variants() {
        let found = list.match_name(&v.name);
        match (&found, v.expect_match) {
            (Some(m), true) if m.entry == v.entry => lowest_match = lowest_match.min(m.score),
            (None, false) => {}
            _ => wrong.push(format!(
                "{:?} ({}): expected {}, got {:?}",
                v.name,
                v.what,
                if v.expect_match {
                    format!("a match of {:?}", v.entry)
                } else {
                    "no match".to_owned()
                },
                found.map(|m| (m.entry, m.score))
            )),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(lowest_match >= THRESHOLD_DEFAULT);
}

/// The best score of `name` against the listed names the matching rule lets it be compared
/// with (equal keys, or a token or the whole name equal to one of the listed name's once at
/// most one character is deleted from each), found by scanning every listed name instead of
/// through the index; `None` if there is no such name.
fn best_by_scan(list: &SanctionsList, name: &str) -> Option<f64> {
    // Itself and, from FUZZY_TOKEN_CHARS_MIN characters, each form with one deletion.
    let neighbours = |t: &str| {
        let chars: Vec<char> = t.chars().collect();
        let mut set = HashSet::from([t.to_owned()]);
        if chars.len() >= FUZZY_TOKEN_CHARS_MIN {
            for at in 0..chars.len() {
                let mut c = chars.clone();
                c.remove(at);
                set.insert(c.into_iter().collect::<String>());
            }
        }
        set
    };
    let within_one_edit = |a: &str, b: &str| !neighbours(a).is_disjoint(&neighbours(b));
    let pieces = |p: &Prepared| {
        let mut v = p.tokens.clone();
        if p.tokens.len() > 1 {
            v.push(p.joined.clone());
        }
        v
    };
    let query = Prepared::new(normalize(name));
    if query.tokens.is_empty() {
        return None;
    }
    list.names
        .iter()
        .filter(|n| {
            n.key.sorted == query.sorted
                || pieces(&query)
                    .iter()
                    .any(|q| pieces(&n.key).iter().any(|t| within_one_edit(q, t)))
        })
        .map(|n| score(&query, &n.key))
        .fold(None, |best: Option<f64>, s| {
            Some(best.map_or(s, |b| b.max(s)))
        })
}

/// The index finds what a scan of every listed name under the same rule finds.
#[test]
fn the_index_finds_what_a_full_scan_finds() {
    let list = test_list();
    let mut names: Vec<String> = variants().into_iter().map(|v| v.name).collect();
    // Names the variants file does not have: one edit at each position of a listed name.
    for base in ["Sanctioned Trading", "Rosneftegaz", "Orchid Maritime"] {
        for (at, _) in base.char_indices() {
            let mut edited = base.to_owned();
            edited.replace_range(at..=at, "x");
            names.push(edited);
        }
    }
    for name in names {
        let scanned = best_by_scan(&list, &name).filter(|s| *s >= list.threshold());
        let indexed = list.match_name(&name).map(|m| m.score);
        assert_eq!(indexed, scanned, "{name:?}");
    }
}

/// Where the default threshold lands (THRESHOLD_DEFAULT's documentation): the innocent names
/// score at most 0.86, the variants at least 0.92.
#[test]
fn the_default_threshold_has_a_margin_on_both_sides() {
    let list = test_list();
    let (mut innocent_max, mut variant_min) = (0.0_f64, 1.0_f64);
    for v in variants() {
        let best = best_by_scan(&list, &v.name).unwrap_or(0.0);
        if v.expect_match {
            variant_min = variant_min.min(best);
        } else if v.innocent {
            innocent_max = innocent_max.max(best);
        }
    }
    println!("innocent names score at most {innocent_max:.3}, variants at least {variant_min:.3}");
    assert!(
        innocent_max <= 0.86,
        "an innocent name scores {innocent_max}"
    );
    assert!(variant_min >= 0.92, "a variant scores {variant_min}");
}

#[test]
fn normalization_folds_width_case_confusables_diacritics_and_punctuation() {
    let key = |s: &str| normalize(s).tokens;
    let plain = key("Sanctioned Trading");
    assert_eq!(key("Ｓａｎｃｔｉｏｎｅｄ　Ｔｒａｄｉｎｇ"), plain);
    assert_eq!(key("SANCTIONED TRADING"), plain);
    assert_eq!(key("Sаnctiоnеd Trаding"), plain, "Cyrillic а о е");
    assert_eq!(key("Sanctiοned Trαding"), plain, "Greek ο α");
    assert_eq!(key("Sánctiöned Trãdíng"), plain);
    assert_eq!(key("Sanctioned, Trading!"), plain);
    assert_eq!(key("Sanc\u{200B}tioned Trading"), plain, "zero-width space");
    // Kana voicing marks are part of the letter, not diacritics.
    assert_ne!(key("ガス"), key("カス"));
    // Thai vowel and tone marks stay in the token.
    assert_eq!(key("สยามแบล็ค").len(), 1);
}

#[test]
fn legal_forms_are_removed_at_the_ends_but_never_to_nothing() {
    let key = |s: &str| normalize(s).tokens.join(" ");
    let bare = key("Orchid Maritime");
    for form in [
        "Orchid Maritime Pte Ltd",
        "Orchid Maritime Pte. Ltd.",
        "Orchid Maritime Private Limited",
        "Orchid Maritime Co., Ltd.",
        "Orchid Maritime K.K.",
        "株式会社 Orchid Maritime",
        "Orchid Maritime 株式会社",
        "Orchid Maritime Sdn. Bhd.",
        "Orchid Maritime GmbH",
        "Orchid Maritime LLC",
        "Orchid Maritime PLC",
        "บริษัท Orchid Maritime จำกัด (มหาชน)",
    ] {
        assert_eq!(key(form), bare, "{form}");
    }
    // A Latin legal form at the start is part of the name.
    assert_ne!(key("Co Orchid Maritime"), bare);
    // A word that only begins like a form stays.
    assert_eq!(key("Orchid Cooperative"), key("orchid cooperative"));
    assert_ne!(key("Orchid Cooperative"), key("Orchid"));
    // Only legal forms: kept, so the name still has a key.
    assert!(!normalize("Company Limited").is_empty());
    // Every spelling in the table normalizes to something (a typo in the table would not).
    for (kind, spellings) in LEGAL_FORMS {
        for s in *spellings {
            assert!(!normalize(s).is_empty(), "{kind}: {s}");
        }
    }
}

#[test]
fn bics_match_exactly_with_xxx_as_the_primary_office() {
    let entry = |bic: &str| ListEntry {
        bic: Some(bic.to_owned()),
        ..ListEntry::default()
    };
    let list = SanctionsList::new(
        vec![
            entry("ORCHSGSGXXX"),
            entry("SNCTJPJT"),
            entry("BADBSGS1ABC"),
        ],
        THRESHOLD_DEFAULT,
    );
    for bic in [
        "ORCHSGSG",
        "ORCHSGSGXXX",
        "ORCHSGSG001",
        "SNCTJPJT",
        "SNCTJPJTXXX",
        "SNCTJPJT123",
    ] {
        assert!(list.has_bic(bic), "{bic}");
    }
    assert!(list.has_bic("BADBSGS1ABC"));
    // A listed branch is that branch only.
    for bic in [
        "BADBSGS1",
        "BADBSGS1XXX",
        "BADBSGS1ABD",
        "ORCHSGSH",
        "SNCTJPJ0",
    ] {
        assert!(!list.has_bic(bic), "{bic}");
    }
}

#[test]
fn accounts_match_exactly() {
    let list = test_list();
    assert!(list.has_account(4242));
    assert!(!list.has_account(424));
    assert!(!list.has_account(42420));
}

#[test]
fn the_committed_list_parses_with_rows_named_by_line() {
    let entries = list::parse(LIST.as_bytes()).expect("parses");
    assert_eq!(entries.len(), 8);
    let first = &entries[0];
    assert_eq!(first.name.as_deref(), Some("Sanctioned Trading Co"));
    assert_eq!(
        first.aliases,
        [
            "サンクション商事株式会社",
            "Sanctioned Trading Company Limited"
        ]
    );
    assert_eq!(first.bic.as_deref(), Some("SNCTJPJT"));
    assert_eq!(first.country.as_deref(), Some("JP"));
    assert_eq!(first.origin, "list row 5");
    assert_eq!(entries[7].account, Some(4242));
}

#[test]
fn a_list_that_breaks_a_rule_is_refused_with_its_reason_and_row() {
    let header = "name,aliases,bic,account,country\n";
    let cases: &[(&str, ListErrorReason, &str)] = &[
        ("", ListErrorReason::Malformed, "header"),
        (
            "name,bic\nX,ABCDJPJT\n",
            ListErrorReason::Malformed,
            "header",
        ),
        (
            "x,,,,\n\"unterminated,,,,\n",
            ListErrorReason::Malformed,
            "",
        ),
        ("X,,,\n", ListErrorReason::Malformed, "line 2"),
        (
            "X,,abcdjpjt,,\n",
            ListErrorReason::InvalidEntry,
            "line 2, bic",
        ),
        ("X,,,0,\n", ListErrorReason::InvalidEntry, "line 2, account"),
        (
            "X,,,-4,\n",
            ListErrorReason::InvalidEntry,
            "line 2, account",
        ),
        (
            "X,,,,Japan\n",
            ListErrorReason::InvalidEntry,
            "line 2, country",
        ),
        (",,,,JP\n", ListErrorReason::InvalidEntry, "line 2, row"),
        (
            ",Alias,,,\n",
            ListErrorReason::InvalidEntry,
            "line 2, aliases",
        ),
        ("...,,,,\n", ListErrorReason::InvalidEntry, "line 2, name"),
        ("A\u{7}B,,,,\n", ListErrorReason::InvalidEntry, "control"),
    ];
    for (body, reason, says) in cases {
        let text = if body.starts_with("name,bic") || body.is_empty() {
            (*body).to_owned()
        } else {
            format!("{header}{body}")
        };
        let error = list::parse(text.as_bytes()).expect_err(body);
        assert_eq!(error.reason, *reason, "{body:?}: {error}");
        assert!(error.message.contains(says), "{body:?}: {error}");
    }
    let long = format!("{header}{},,,,\n", "x".repeat(141));
    let error = list::parse(long.as_bytes()).expect_err("too long");
    assert_eq!(error.reason, ListErrorReason::InvalidEntry);
    assert_eq!(error.reason.code(), "LIST_INVALID_ENTRY");
    // Invalid UTF-8 is malformed, not a panic.
    let error = list::parse(b"name,aliases,bic,account,country\n\xff\xfe,,,,\n").expect_err("utf8");
    assert_eq!(error.reason, ListErrorReason::Malformed);
}

#[test]
fn a_missing_file_is_unreadable() {
    let error = list::read(&PathBuf::from("/nonexistent/sanctions.csv")).expect_err("missing");
    assert_eq!(error.reason, ListErrorReason::Unreadable);
    assert_eq!(error.reason.code(), "LIST_UNREADABLE");
}

#[test]
fn a_reload_puts_a_new_file_in_force_and_a_bad_one_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("list.csv");
    std::fs::write(
        &path,
        "name,aliases,bic,account,country\nOrchid Maritime,,,,SG\n",
    )
    .expect("write");
    let sanctions = Sanctions::load(ListSource {
        inline: vec![ListEntry {
            name: Some("Sanctioned Trading Co".to_owned()),
            origin: "config".to_owned(),
            ..ListEntry::default()
        }],
        file: Some(path.clone()),
        threshold: THRESHOLD_DEFAULT,
    })
    .expect("loads");
    let listed = |name: &str| sanctions.current().match_name(name).is_some();
    assert!(listed("Orchid Maritime"));
    assert!(listed("Sanctioned Trading Co"));
    assert!(!listed("Rosneftegaz"));

    std::fs::write(
        &path,
        "name,aliases,bic,account,country\nRosneftegaz,,,,RU\n",
    )
    .expect("write");
    let reloaded = sanctions.reload().expect("reloads");
    assert_eq!(
        reloaded,
        Reloaded {
            entries: 2,
            names: 2,
            generation: 2
        }
    );
    assert!(listed("Rosneftegaz"));
    assert!(!listed("Orchid Maritime"));
    assert!(listed("Sanctioned Trading Co"), "inline entries stay");

    std::fs::write(&path, "name,aliases,bic,account,country\nX,,not-a-bic,,\n").expect("write");
    let error = sanctions.reload().expect_err("refused");
    assert_eq!(error.reason, ListErrorReason::InvalidEntry);
    assert!(listed("Rosneftegaz"), "the list in force is unchanged");
    std::fs::remove_file(&path).expect("remove");
    let error = sanctions.reload().expect_err("refused");
    assert_eq!(error.reason, ListErrorReason::Unreadable);
    assert!(listed("Rosneftegaz"));
    assert_eq!(sanctions.reload().map(|r| r.generation).ok(), None);
}

#[test]
fn the_threshold_is_clamped_to_its_range() {
    assert_eq!(
        SanctionsList::new(Vec::new(), 0.1).threshold(),
        THRESHOLD_MIN
    );
    assert_eq!(SanctionsList::new(Vec::new(), 2.0).threshold(), 1.0);
    assert_eq!(
        SanctionsList::new(Vec::new(), f64::NAN).threshold(),
        THRESHOLD_DEFAULT
    );
}

#[test]
fn a_threshold_of_one_matches_only_equal_keys() {
    let entries = list::parse(LIST.as_bytes()).expect("parses");
    let list = SanctionsList::new(entries, 1.0);
    assert!(list.match_name("Trading Sanctioned K.K.").is_some());
    assert!(list.match_name("Sanctioned Tradng Co").is_none());
}

#[test]
fn names_with_nothing_to_match_match_nothing() {
    let list = test_list();
    for name in ["", "   ", "...", "Co.", "\u{200B}"] {
        assert_eq!(list.match_name(name), None, "{name:?}");
    }
}

/// The pruned scorer the index uses gives the full scorer's answer at every floor.
#[test]
fn pruned_scoring_agrees_with_full_scoring() {
    let list = test_list();
    for v in variants() {
        let query = Prepared::new(normalize(&v.name));
        for listed in &list.names {
            let full = score(&query, &listed.key);
            for floor in [0.5, 0.75, 0.85, THRESHOLD_DEFAULT, 0.95, 1.0] {
                let pruned = score_at_least(&query, &listed.key, floor);
                assert_eq!(
                    pruned,
                    (full >= floor).then_some(full),
                    "{:?} at {floor}",
                    v.name
                );
            }
        }
    }
}

/// The token alignment as first written: every pair of tokens scored, then paired greedily.
/// The reference the bounded alignment must agree with.
fn token_alignment_scoring_every_pair(a: &Prepared, b: &Prepared) -> f64 {
    let total = a.total + b.total;
    if total == 0 {
        return 0.0;
    }
    let mut pairs = Vec::new();
    for (i, ta) in a.chars.iter().enumerate() {
        for (j, tb) in b.chars.iter().enumerate() {
            let s = strsim::generic_jaro_winkler(ta, tb);
            if s >= TOKEN_SIMILARITY_MIN {
                pairs.push((s, i, j));
            }
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0));
    let mut used_a = vec![false; a.tokens.len()];
    let mut used_b = vec![false; b.tokens.len()];
    let mut sum = 0.0;
    for (s, i, j) in pairs {
        if used_a[i] || used_b[j] {
            continue;
        }
        used_a[i] = true;
        used_b[j] = true;
        sum += s * (a.lens[i] + b.lens[j]) as f64;
    }
    sum / total as f64
}

/// Names to compare with each other: the committed list and variants, near-misses of the
/// alignment's bounds (a shared word, a word of two edits, a long token, tokens of one
/// repeated letter, more than 255 of one letter, where the bags' counts saturate).
fn names_for_bounds() -> Vec<Prepared> {
    let mut names: Vec<String> = variants().into_iter().map(|v| v.name).collect();
    names.extend(
        list::parse(LIST.as_bytes())
            .expect("parses")
            .into_iter()
            .flat_map(|e| e.name.into_iter().chain(e.aliases)),
    );
    names.extend(
        [
            "Sanctioned Trading",
            "Sanctioned Tardnig",
            "Trading Sanctioned Holdings",
            "Sanktioned Tradding Kompany",
            "Pacific Trading Holdings",
            "Orchid Trading",
            "Internationalization Trading",
            "aaaa aaab aaba abaa",
            "aaaa",
            "abcdefghij jihgfedcba",
        ]
        .map(str::to_owned),
    );
    names.push("a".repeat(300));
    names.push(format!("{} b", "a".repeat(299)));
    names.push("ab".repeat(150));
    names
        .iter()
        .map(|n| normalize(&unescape(n)))
        .filter(|k| !k.is_empty())
        .map(Prepared::new)
        .collect()
}

/// The similarity bound never falls below the similarity, for every pair of tokens.
#[test]
fn the_jaro_winkler_bound_bounds_every_token_pair() {
    let names = names_for_bounds();
    for a in &names {
        for b in &names {
            for (ta, bag_a) in a.chars.iter().zip(&a.token_bags) {
                for (tb, bag_b) in b.chars.iter().zip(&b.token_bags) {
                    let s = strsim::generic_jaro_winkler(ta, tb);
                    let bound = jaro_winkler_bound(ta, bag_a, tb, bag_b);
                    assert!(
                        s <= bound,
                        "{:?} / {:?}: {s} above its bound {bound}",
                        a.tokens,
                        b.tokens
                    );
                }
            }
        }
    }
}

/// The bounded alignment gives the answer of scoring every pair whenever that reaches the
/// floor, and 0 or that answer otherwise.
#[test]
fn the_bounded_alignment_agrees_with_scoring_every_pair() {
    let names = names_for_bounds();
    for a in &names {
        for b in &names {
            let full = token_alignment_scoring_every_pair(a, b);
            assert_eq!(
                token_alignment(a, b),
                full,
                "{:?} / {:?}",
                a.tokens,
                b.tokens
            );
            for floor in [0.5, THRESHOLD_MIN, 0.85, THRESHOLD_DEFAULT, 0.95, 1.0] {
                let bounded = token_alignment_at_least(a, b, floor);
                if full >= floor {
                    assert_eq!(bounded, full, "{:?} / {:?} at {floor}", a.tokens, b.tokens);
                } else {
                    assert!(
                        bounded == 0.0 || bounded == full,
                        "{:?} / {:?} at {floor}: {bounded}, not 0 or {full}",
                        a.tokens,
                        b.tokens
                    );
                }
            }
        }
    }
}

/// A listed name the sizes rule out could not have reached the floor by scoring.
#[test]
fn the_size_bound_bounds_the_score() {
    let names = names_for_bounds();
    for a in &names {
        for b in &names {
            let size = (b.total as u32, b.tokens.len() as u32);
            let s = score(a, b);
            assert!(
                s <= size_bound(a, size) + 1e-12,
                "{:?} / {:?}: {s} above {}",
                a.tokens,
                b.tokens,
                size_bound(a, size)
            );
        }
    }
}

/// A query's strings longer than every listed one but one share no key with the list, so
/// leaving their keys out finds the same candidates.
#[test]
fn keys_of_strings_too_long_for_the_list_are_left_out() {
    let short = Prepared::new(normalize("Orchid Maritime"));
    let longest = short.total + 1;
    let long = Prepared::new(normalize("Orchidmaritimeshipping Maritime"));
    let all: HashSet<u64> = long.neighbourhood(usize::MAX).into_iter().collect();
    let kept: HashSet<u64> = long.neighbourhood(longest).into_iter().collect();
    let listed: HashSet<u64> = short.neighbourhood(usize::MAX).into_iter().collect();
    assert!(kept.len() < all.len(), "the long token's keys are left out");
    assert_eq!(
        all.intersection(&listed).count(),
        kept.intersection(&listed).count(),
        "and they met nothing listed"
    );
    assert!(
        kept.intersection(&listed).count() > 0,
        "the shared word still meets"
    );
}
