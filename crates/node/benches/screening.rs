//! Sanctions screening speed: one party name screened against a list of 10,000 entries (about
//! 15,000 names with their aliases), as the engine does for each name of each payment. Run
//! with `cargo bench -p kakehashi-node --bench screening`.
//!
//! The list is generated (the same every run): company names of two or three invented words,
//! a third of them with a common word (`Trading`, `International`, `Holdings`, `Shipping`,
//! ...) as real lists have, a legal form, and persons' names; every third entry has an alias.
//!
//! - `screen_10k/clean_name`: a customer's name that is on no list (the usual case);
//! - `screen_10k/common_words`: a clean name made of the list's common words (`Pacific
//!   Trading Holdings Pte Ltd`), whose tokens meet thousands of listed names in the index;
//! - `screen_10k/common_words_only`: three of the list's common words (`Trading Holdings
//!   Shipping`), each met by about a thousand listed names whose sizes are close enough to
//!   be scored: the index's worst case;
//! - `screen_10k/adversarial_*`: names at the instruction's limit of 140 characters built to
//!   make screening slow: `common_words_140` (common words over and over: many tokens, each
//!   meeting thousands of listed names), `repeated_char_140` (one token of 140 letters, whose
//!   deletions would cost the square of its length), `nfkc_expansion_140` (140 characters
//!   that NFKC turns into 2,520, in 560 tokens);
//! - `screen_10k/listed_variant`: a listed name written differently (full-width, another
//!   legal form): found by its exact key;
//! - `screen_10k/listed_typo`: a listed name with a typo: found through the index and scored;
//! - `scan_10k/clean_name`: the first case scored against every listed name without the
//!   index, for comparison;
//! - `load_10k`: preparing the list (normalization and the index), what a reload costs.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kakehashi_node::screening::{ListEntry, SanctionsList, THRESHOLD_DEFAULT};
use kakehashi_protocol::instruction::NAME_CHARS_MAX;

const ENTRIES: usize = 10_000;
const MEASUREMENT_TIME: Duration = Duration::from_secs(3);
const WARM_UP_TIME: Duration = Duration::from_secs(1);

const COMMON: &[&str] = &[
    "Trading",
    "International",
    "Holdings",
    "Shipping",
    "Group",
    "Industries",
    "Bank",
    "Energy",
    "Logistics",
    "Maritime",
];
const FORMS: &[&str] = &[
    "Co", "Ltd", "Pte Ltd", "LLC", "Inc", "Corp", "GmbH", "K.K.", "PLC", "",
];
const SYLLABLES: &[&str] = &[
    "ka", "ro", "mi", "sta", "ne", "vo", "lin", "ter", "za", "bu", "dor", "el", "an", "qui", "pol",
    "sen", "ta", "rik", "ve", "mon", "ga", "shi", "tek", "lo", "ram", "du", "fen", "ix",
];

/// A small deterministic generator (a linear congruential one): the list is the same on
/// every run, so runs compare.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n
    }

    fn word(&mut self) -> String {
        let len = 2 + self.next(3);
        let mut word: String = (0..len)
            .map(|_| SYLLABLES[self.next(SYLLABLES.len())])
            .collect();
        if let Some(first) = word.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        word
    }

    fn company(&mut self) -> String {
        let mut words = vec![self.word()];
        if self.next(2) == 0 {
            words.push(self.word());
        }
        if self.next(3) == 0 {
            words.push(COMMON[self.next(COMMON.len())].to_owned());
        }
        let form = FORMS[self.next(FORMS.len())];
        if !form.is_empty() {
            words.push(form.to_owned());
        }
        words.join(" ")
    }
}

fn entries() -> Vec<ListEntry> {
    let mut rng = Lcg(0x5eed);
    (0..ENTRIES)
        .map(|i| {
            let name = if i % 4 == 0 {
                format!("{} {}", rng.word(), rng.word())
            } else {
                rng.company()
            };
            let aliases = if i % 3 == 0 {
                vec![rng.company()]
            } else {
                Vec::new()
            };
            ListEntry {
                name: Some(name),
                aliases,
                origin: format!("list row {}", i + 2),
                ..ListEntry::default()
            }
        })
        .collect()
}

fn screening(c: &mut Criterion) {
    let entries = entries();
    // A name the generator made, written differently, and with a typo.
    let listed = entries[ENTRIES / 2].name.clone().unwrap_or_default();
    let list = SanctionsList::new(entries.clone(), THRESHOLD_DEFAULT);
    let variant = format!("{} Kabushiki Kaisha", listed.to_uppercase());
    let typo = typo(&listed);
    assert!(list.match_name(&variant).is_some(), "{variant}");
    assert!(list.match_name(&typo).is_some(), "{typo}");
    let cases = [
        ("clean_name", "Tan Wei Ming".to_owned()),
        (
            "common_words",
            "Pacific Trading Holdings Pte Ltd".to_owned(),
        ),
        ("common_words_only", "Trading Holdings Shipping".to_owned()),
        (
            "adversarial_common_words_140",
            at_most_140(&COMMON.join(" ").repeat(3)),
        ),
        ("adversarial_repeated_char_140", "a".repeat(NAME_CHARS_MAX)),
        // U+FDFA ARABIC LIGATURE SALLALLAHOU ALAYHE WASALLAM: 18 characters under NFKC.
        (
            "adversarial_nfkc_expansion_140",
            "\u{FDFA}".repeat(NAME_CHARS_MAX),
        ),
        ("listed_variant", variant),
        ("listed_typo", typo),
    ];
    let mut group = c.benchmark_group("screen_10k");
    group
        .measurement_time(MEASUREMENT_TIME)
        .warm_up_time(WARM_UP_TIME);
    for (what, name) in &cases {
        group.bench_function(*what, |b| b.iter(|| list.match_name(black_box(name))));
    }
    group.finish();

    let mut group = c.benchmark_group("scan_10k");
    group
        .measurement_time(MEASUREMENT_TIME)
        .warm_up_time(WARM_UP_TIME)
        .sample_size(20);
    group.bench_function("clean_name", |b| {
        b.iter(|| list.match_name_scanning_all(black_box("Tan Wei Ming")))
    });
    group.finish();

    let mut group = c.benchmark_group("load");
    group
        .measurement_time(MEASUREMENT_TIME)
        .warm_up_time(WARM_UP_TIME)
        .sample_size(10);
    group.bench_function("load_10k", |b| {
        b.iter(|| SanctionsList::new(black_box(entries.clone()), THRESHOLD_DEFAULT))
    });
    group.finish();
}

/// The first [`NAME_CHARS_MAX`] characters of `text`: the longest name an instruction takes.
fn at_most_140(text: &str) -> String {
    text.chars().take(NAME_CHARS_MAX).collect()
}

/// `name` with its third letter doubled (one insertion).
fn typo(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        out.push(c);
        if i == 2 {
            out.push(c);
        }
    }
    out
}

criterion_group!(benches, screening);
criterion_main!(benches);
