//! Sanctions screening: whether a payment's parties, agents or account are on the sanctions
//! list (regulatory reason RR04).
//!
//! - **Names** (debtor and creditor) are compared by their normalized keys ([`normalize`]:
//!   NFKC, case folding, the TS #39 confusable skeleton, diacritics and punctuation removed,
//!   legal forms removed). Equal keys, tokens in any order, are a match with score 1. Otherwise
//!   the score is the better of two similarities, each from 0 to 1:
//!   - *token alignment*: each token of the name is paired with at most one token of the
//!     listed name, best Jaro–Winkler similarity first (pairs below [`TOKEN_SIMILARITY_MIN`]
//!     are not paired); the score is the sum, over the pairs, of the similarity times the two
//!     tokens' lengths, divided by the length of all tokens of both names. Word order does not
//!     count, a typo costs little, and a token that one name has and the other has not costs
//!     its length (so `Sanctioned Trading Cooperative Society` is far from
//!     `Sanctioned Trading`);
//!   - *whole name*: the normalized Levenshtein similarity of the tokens written together (so
//!     `SanctionedTrading` matches `Sanctioned Trading`).
//!
//!   A name matches when its score reaches the threshold (`[sanctions] threshold`,
//!   [`THRESHOLD_DEFAULT`]). A fuzzy match also needs one token, or the whole name written
//!   together, to meet one of the listed name's: equal, or (both of at least
//!   [`FUZZY_TOKEN_CHARS_MIN`] characters) equal once at most one character is deleted from
//!   each, which covers one insertion, deletion, substitution or swap of neighbours. That is
//!   what the index finds without scanning the list (the deletion neighbourhood of each token,
//!   computed at load), and a name that differs from a listed one in every token is not a
//!   variant of it.
//! - **BICs** match exactly; an 8-character BIC and its 11-character form with branch `XXX` are
//!   the same party, and a listed 8-character BIC (or `XXX`) covers every branch.
//! - **Accounts** match exactly.
//!
//! The index's worst case is a name made of words thousands of listed names share (`Trading
//! Holdings Shipping`): every such name is a candidate. Each candidate is first bounded by its
//! size alone (`size_bound`, a few bytes read per name), then token by token: a pair of
//! tokens is bounded by the characters the two can have in common (`jaro_winkler_bound`), and
//! a listed name is dropped as soon as its tokens that cannot pair with any of the query's
//! lose more characters than the threshold allows; only pairs that may still be paired are
//! scored. The bounds never drop a name that scoring would match (the tests compare them with
//! scoring every pair). A query's strings longer than every listed one but one have no index
//! key computed (they could meet none).
//!
//! Screening one name against a list of 10,000 entries (15,000 names with aliases) takes about
//! 10 µs for an ordinary or a listed name and 150 to 200 µs for one made of common words (1.3
//! to 1.9 ms before the bounds); a name of 140 characters of common words about 110 µs, of 140
//! ligatures that NFKC makes 2,520 characters about 0.7 ms (normalization, linear in that
//! length); scoring every listed name instead takes milliseconds (`cargo bench -p
//! kakehashi-node --bench screening`). Preparing the list costs about 250 ms per 10,000
//! entries, at load and at each reload, off the payment path.
//!
//! The list comes from `[sanctions]` in the configuration (`names`, `bics`, `accounts`) and
//! from the list file it names (`list`, [`list`] gives the format). [`Sanctions::reload`]
//! reads the file again while the node runs (SIGHUP does that); a file that does not load
//! leaves the list in force unchanged.

pub mod list;
mod normalize;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use kakehashi_protocol::instruction::Instruction;
use kakehashi_protocol::reason::{ReasonCode, Rejection};

pub use list::{ListError, ListErrorReason};
pub use normalize::{LEGAL_FORMS, NameKey, normalize};

/// The default similarity threshold, 0.90. The committed variant list
/// (`crates/node/tests/data/sanctions/variants.csv`) shows where it lands: every variant
/// scores 0.96 or more (a one-letter typo in a word of seven letters costs about 0.03, a typo
/// in each of two words about 0.03 to 0.04), while the innocent near-names score 0.86 or less
/// (one word more or less than the listed name, of ordinary length, costs 0.15 to 0.35). So
/// the threshold has room on both sides. Lower, it refuses names that add one word to a
/// listed one (`Sanctioned Trading Partners` scores 0.81, `Industrial Holdings Corp` against
/// `Volkov Industrial Holdings Corp` 0.86); higher, it lets typos in short names through. A
/// list of short names (one or two short words) gains from a higher threshold, and every
/// refusal is for a person to review, not a verdict.
pub const THRESHOLD_DEFAULT: f64 = 0.90;

/// The lowest threshold accepted: below it, sharing one word of two is a match.
pub const THRESHOLD_MIN: f64 = 0.75;

/// Token pairs less similar than this (Jaro–Winkler) are not paired: two unrelated words
/// still share letters, and Jaro–Winkler's bonus for a common prefix rates a short word
/// against a long one with the same start high (`sato` against `sanctioned` is 0.84), so
/// partial credit for such pairs would lift every score. A typo in a word of five letters or
/// more stays above it (`tradng`/`trading` 0.97, `maritlme`/`maritime` 0.95).
pub const TOKEN_SIMILARITY_MIN: f64 = 0.88;

/// Tokens shorter than this must be equal for a fuzzy match to be considered through them: an
/// edit in a two-letter word makes another word.
pub const FUZZY_TOKEN_CHARS_MIN: usize = 4;

/// One party of the list: as configured inline or as a row of the list file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListEntry {
    /// The party's name as listed.
    pub name: Option<String>,
    /// Further names of the same party.
    pub aliases: Vec<String>,
    /// An agent BIC.
    pub bic: Option<String>,
    /// A local account id.
    pub account: Option<u128>,
    /// ISO 3166-1 alpha-2 country, informational.
    pub country: Option<String>,
    /// Where the entry comes from (`config`, `list row 12`), for the refusal's detail.
    pub origin: String,
}

/// A name found on the list.
#[derive(Clone, Debug, PartialEq)]
pub struct NameMatch {
    /// The listed entry's name.
    pub entry: String,
    /// The alias that matched, if not the name itself.
    pub alias: Option<String>,
    /// Where the entry comes from.
    pub origin: String,
    /// Its country, if listed.
    pub country: Option<String>,
    /// The similarity, 1 for equal keys.
    pub score: f64,
}

/// One listed name (or alias), prepared at load.
#[derive(Debug)]
struct ListedName {
    /// Index of its entry.
    entry: usize,
    /// The alias, if this is one.
    alias: Option<String>,
    /// Its prepared key.
    key: Prepared,
}

/// A normalized name with what scoring needs, computed once.
#[derive(Debug)]
struct Prepared {
    tokens: Vec<String>,
    /// The characters of each token.
    chars: Vec<Vec<char>>,
    /// The characters of each token counted in 64 buckets ([`bag_of`]), for
    /// [`jaro_winkler_bound`].
    token_bags: Vec<[u8; 64]>,
    /// Characters of each token.
    lens: Vec<usize>,
    /// `top[k]`: the characters of the `k` longest tokens together (`top[0]` is 0).
    top: Vec<usize>,
    /// Characters of all tokens.
    total: usize,
    /// The tokens written together.
    joined: String,
    /// Its characters.
    joined_chars: Vec<char>,
    /// Its characters counted in 64 buckets ([`bag_of`]).
    bag: [u8; 64],
    /// The exact-match key (tokens sorted).
    sorted: String,
}

impl Prepared {
    fn new(key: NameKey) -> Self {
        let chars: Vec<Vec<char>> = key.tokens.iter().map(|t| t.chars().collect()).collect();
        let token_bags = chars.iter().map(|c| bag_of(c)).collect();
        let lens: Vec<usize> = chars.iter().map(Vec::len).collect();
        let mut longest = lens.clone();
        longest.sort_unstable_by(|a, b| b.cmp(a));
        let top = std::iter::once(0)
            .chain(longest.iter().scan(0, |sum, len| {
                *sum += len;
                Some(*sum)
            }))
            .collect();
        let joined = key.joined();
        let joined_chars: Vec<char> = joined.chars().collect();
        let bag = bag_of(&joined_chars);
        Self {
            total: lens.iter().sum(),
            sorted: key.sorted(),
            tokens: key.tokens,
            chars,
            token_bags,
            lens,
            top,
            joined,
            joined_chars,
            bag,
        }
    }

    /// A lower bound of the edit distance between the two names written together.
    fn bag_distance(&self, other: &Self) -> usize {
        // Two branch-free sums, which the compiler turns into vector instructions.
        let more: usize = (self.bag.iter().zip(&other.bag))
            .map(|(a, b)| usize::from(a.saturating_sub(*b)))
            .sum();
        let fewer: usize = (self.bag.iter().zip(&other.bag))
            .map(|(a, b)| usize::from(b.saturating_sub(*a)))
            .sum();
        more.max(fewer)
    }

    /// The index keys: for each token and for the whole name written together, itself and,
    /// from [`FUZZY_TOKEN_CHARS_MIN`] characters, each form with one character deleted. Two
    /// strings within one edit of each other share one of these.
    ///
    /// Strings of more than `longest` characters are left out: a key has the length of its
    /// string or one less, so such a string shares no key with a string of `longest - 1`
    /// characters or fewer (a query's string longer than every listed one but one cannot meet
    /// any, and its deletions would cost the square of its length to hash).
    fn neighbourhood(&self, longest: usize) -> Vec<u64> {
        let mut keys = Vec::new();
        let whole = (self.tokens.len() > 1).then_some(self.joined.as_str());
        for token in self.tokens.iter().map(String::as_str).chain(whole) {
            let chars: Vec<(usize, char)> = token.char_indices().collect();
            if chars.len() > longest {
                continue;
            }
            keys.push(hash(token));
            if chars.len() < FUZZY_TOKEN_CHARS_MIN {
                continue;
            }
            let mut deleted = String::with_capacity(token.len());
            for &(at, c) in &chars {
                deleted.clear();
                deleted.push_str(&token[..at]);
                deleted.push_str(&token[at + c.len_utf8()..]);
                keys.push(hash(&deleted));
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// How many of `chars` fall in each of 64 buckets (by code point): two strings whose counts
/// differ by `d` are at least `d` edits apart.
fn bag_of(chars: &[char]) -> [u8; 64] {
    let mut bag = [0u8; 64];
    for c in chars {
        let bucket = &mut bag[(u32::from(*c) % 64) as usize];
        *bucket = bucket.saturating_add(1);
    }
    bag
}

/// An upper bound of `strsim::generic_jaro_winkler(a, b)` found without aligning the tokens:
/// Jaro's matching characters are equal characters, so there are no more of them than the
/// two bags have in common (a bucket shared by different characters only raises the count),
/// and Jaro–Winkler grows with Jaro and the common prefix. Zero when nothing is in common.
fn jaro_winkler_bound(a: &[char], bag_a: &[u8; 64], b: &[char], bag_b: &[u8; 64]) -> f64 {
    let saturated = usize::from(u8::MAX);
    let common = if a.len() >= saturated && b.len() >= saturated {
        // Both tokens are long enough for a bucket's count to have stopped at 255 on both
        // sides, where the smaller count no longer bounds the characters in common.
        usize::MAX
    } else {
        // A branch-free sum, which the compiler turns into vector instructions.
        bag_a
            .iter()
            .zip(bag_b)
            .map(|(x, y)| usize::from(*x.min(y)))
            .sum()
    };
    let matches = common.min(a.len()).min(b.len());
    if matches == 0 {
        return 0.0;
    }
    let m = matches as f64;
    // As strsim computes Jaro, with no transposition.
    let jaro = (m / a.len() as f64 + m / b.len() as f64 + 1.0) / 3.0;
    let bound = if jaro > 0.7 {
        let prefix = a.iter().take(4).zip(b).take_while(|(x, y)| x == y).count();
        jaro + 0.1 * prefix as f64 * (1.0 - jaro)
    } else {
        jaro
    };
    // Room for rounding: the bound must never fall below the similarity it bounds.
    bound + 1e-9
}

fn hash(s: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut hasher);
    hasher.finish()
}

/// The similarity of two prepared names (module documentation), from 0 to 1.
fn score(a: &Prepared, b: &Prepared) -> f64 {
    if a.sorted == b.sorted {
        return 1.0;
    }
    token_alignment(a, b).max(whole_name(a, b))
}

/// [`score`] if it reaches `floor`, found without computing what cannot reach it: the token
/// alignment is skipped when even pairing the longest tokens perfectly would stay below, the
/// whole-name similarity when the names' characters differ by more edits than it allows.
fn score_at_least(a: &Prepared, b: &Prepared, floor: f64) -> Option<f64> {
    if a.sorted == b.sorted {
        return Some(1.0);
    }
    let total = (a.total + b.total) as f64;
    let pairs = a.tokens.len().min(b.tokens.len());
    let alignment_bound = (a.top[pairs] + b.top[pairs]) as f64 / total;
    let alignment = if alignment_bound >= floor {
        token_alignment_at_least(a, b, floor)
    } else {
        0.0
    };
    let longest = a.joined_chars.len().max(b.joined_chars.len()) as f64;
    let whole_bound = 1.0 - a.bag_distance(b) as f64 / longest;
    let whole = if whole_bound >= floor.max(alignment) {
        whole_name(a, b)
    } else {
        0.0
    };
    let best = alignment.max(whole);
    (best >= floor).then_some(best)
}

/// An upper bound of the score of `query` against a listed name of `total` characters in
/// `tokens` tokens, from the sizes alone: the whole-name similarity is at most the shorter
/// length over the longer (each character of difference is an edit), and the token alignment
/// at most what pairing the query's longest tokens and every listed character perfectly
/// would give (the bound [`score_at_least`] uses, with all of the listed name's characters in
/// place of its longest tokens').
fn size_bound(query: &Prepared, (total, tokens): (u32, u32)) -> f64 {
    let listed = total as usize;
    let longest = query.total.max(listed);
    if longest == 0 {
        return 1.0;
    }
    let whole = query.total.min(listed) as f64 / longest as f64;
    let pairs = query.tokens.len().min(tokens as usize);
    let alignment = (query.top[pairs] + listed) as f64 / (query.total + listed) as f64;
    whole.max(alignment)
}

/// The normalized Levenshtein similarity of the two names written together.
fn whole_name(a: &Prepared, b: &Prepared) -> f64 {
    let longest = a.joined_chars.len().max(b.joined_chars.len());
    if longest == 0 {
        return 1.0;
    }
    let distance = strsim::generic_levenshtein(&a.joined_chars, &b.joined_chars);
    1.0 - distance as f64 / longest as f64
}

fn token_alignment(a: &Prepared, b: &Prepared) -> f64 {
    token_alignment_at_least(a, b, 0.0)
}

/// The token alignment of `a` and `b` (module documentation) if it may reach `floor`, else 0.
///
/// Each pair's similarity is first bounded ([`jaro_winkler_bound`]); a pair whose bound is
/// below [`TOKEN_SIMILARITY_MIN`] cannot be paired and is never scored. The alignment times
/// the length of all tokens is a sum, over the pairs made, of the similarity times each of the
/// two tokens' lengths, so it is at most the sum, over every token, of its length times its
/// best bound with any token of the other name (0 when it can pair with none): the characters
/// short of that are lost. Tokens of `b` are bounded one by one and the answer is 0 as soon as
/// more characters are lost than `floor` allows, usually after the first token of a listed
/// name that shares one word with the query; only pairs that may be paired are then scored.
/// So the answer is the one scoring every pair gives whenever that reaches `floor`.
fn token_alignment_at_least(a: &Prepared, b: &Prepared, floor: f64) -> f64 {
    let total = a.total + b.total;
    if total == 0 {
        return 0.0;
    }
    // Characters that may be lost while the alignment can still reach `floor`, with room
    // for rounding.
    let may_lose = (1.0 - floor) * total as f64 + 1e-9;
    let (na, nb) = (a.tokens.len(), b.tokens.len());
    // `bounds[i * nb + j]`: the bound of pair (i, j) if it may be paired, else 0.
    let mut bounds = vec![0.0f64; na * nb];
    let mut lost = 0.0;
    for (j, (tb, bag_b)) in b.chars.iter().zip(&b.token_bags).enumerate() {
        let mut best = 0.0f64;
        for (i, (ta, bag_a)) in a.chars.iter().zip(&a.token_bags).enumerate() {
            let bound = jaro_winkler_bound(ta, bag_a, tb, bag_b);
            if bound >= TOKEN_SIMILARITY_MIN {
                let bound = bound.min(1.0);
                bounds[i * nb + j] = bound;
                best = best.max(bound);
            }
        }
        lost += b.lens[j] as f64 * (1.0 - best);
        if lost > may_lose {
            return 0.0;
        }
    }
    for (i, row) in bounds.chunks(nb.max(1)).enumerate().take(na) {
        let best = row.iter().copied().fold(0.0f64, f64::max);
        lost += a.lens[i] as f64 * (1.0 - best);
        if lost > may_lose {
            return 0.0;
        }
    }
    let mut pairs = Vec::new();
    for (i, ta) in a.chars.iter().enumerate() {
        for (j, tb) in b.chars.iter().enumerate() {
            if bounds[i * nb + j] == 0.0 {
                continue;
            }
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

/// A BIC as compared: an 11-character BIC with branch `XXX` is its 8-character form.
fn party_bic(bic: &str) -> &str {
    match bic.strip_suffix("XXX") {
        Some(head) if bic.len() == 11 => head,
        _ => bic,
    }
}

/// A loaded list, its names prepared for screening.
#[derive(Debug)]
pub struct SanctionsList {
    entries: Vec<ListEntry>,
    names: Vec<ListedName>,
    /// Exact-match key → the first listed name with it.
    exact: HashMap<String, usize>,
    /// Deletion-neighbourhood key → the listed names that have it.
    index: HashMap<u64, Vec<u32>>,
    /// Characters of the longest string (token or whole name) a listed name's keys come from,
    /// plus one: a query's strings longer than that cannot share a key.
    key_chars_max: usize,
    /// Each listed name's characters and tokens, side by side for [`size_bound`]: a few bytes
    /// per name read in place of the prepared name, which thousands of candidates do not
    /// need once their size rules them out.
    sizes: Vec<(u32, u32)>,
    /// Listed BICs that cover every branch (8 characters, or 11 ending in `XXX`, as 8).
    bics_all_branches: HashSet<String>,
    /// Listed 11-character BICs of one branch.
    bics_branch: HashSet<String>,
    accounts: HashSet<u128>,
    threshold: f64,
}

impl Default for SanctionsList {
    fn default() -> Self {
        Self::new(Vec::new(), THRESHOLD_DEFAULT)
    }
}

impl SanctionsList {
    /// Prepares `entries` for screening at `threshold` (clamped to [`THRESHOLD_MIN`]..=1).
    pub fn new(entries: Vec<ListEntry>, threshold: f64) -> Self {
        let threshold = if threshold.is_nan() {
            THRESHOLD_DEFAULT
        } else {
            threshold.clamp(THRESHOLD_MIN, 1.0)
        };
        let mut names = Vec::new();
        let mut bics_all_branches = HashSet::new();
        let mut bics_branch = HashSet::new();
        let mut accounts = HashSet::new();
        for (i, entry) in entries.iter().enumerate() {
            let written = entry.name.iter().map(|n| (n, None));
            let aliases = entry.aliases.iter().map(|a| (a, Some(a.clone())));
            for (text, alias) in written.chain(aliases) {
                let key = normalize(text);
                if !key.is_empty() {
                    names.push(ListedName {
                        entry: i,
                        alias,
                        key: Prepared::new(key),
                    });
                }
            }
            if let Some(bic) = &entry.bic {
                let bic = party_bic(bic);
                if bic.len() == 8 {
                    bics_all_branches.insert(bic.to_owned());
                } else {
                    bics_branch.insert(bic.to_owned());
                }
            }
            accounts.extend(entry.account);
        }
        let mut exact = HashMap::new();
        let mut index: HashMap<u64, Vec<u32>> = HashMap::new();
        let key_chars_max = names
            .iter()
            .flat_map(|name| name.key.lens.iter().copied().chain([name.key.total]))
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let sizes = names
            .iter()
            .map(|name| {
                let total = u32::try_from(name.key.total).unwrap_or(u32::MAX);
                let tokens = u32::try_from(name.key.tokens.len()).unwrap_or(u32::MAX);
                (total, tokens)
            })
            .collect();
        for (n, name) in names.iter().enumerate() {
            exact.entry(name.key.sorted.clone()).or_insert(n);
            let Ok(n) = u32::try_from(n) else {
                // More than 4 billion names cannot come from a bounded list; such a name is
                // still found by its exact key.
                continue;
            };
            for key in name.key.neighbourhood(usize::MAX) {
                index.entry(key).or_default().push(n);
            }
        }
        Self {
            entries,
            names,
            exact,
            index,
            key_chars_max,
            sizes,
            bics_all_branches,
            bics_branch,
            accounts,
            threshold,
        }
    }

    /// The similarity a name must reach to match.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// How many entries (rows) the list has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many names and aliases the list screens against.
    pub fn names(&self) -> usize {
        self.names.len()
    }

    /// The best match of `name` on the list, if one reaches the threshold.
    pub fn match_name(&self, name: &str) -> Option<NameMatch> {
        let key = normalize(name);
        if key.is_empty() {
            return None;
        }
        let query = Prepared::new(key);
        if let Some(&n) = self.exact.get(&query.sorted) {
            return Some(self.found(n, 1.0));
        }
        // The names met, one bit each: deduplicated and in order (ties go to the first listed
        // name) without sorting the thousands of postings a common word has.
        let mut met = vec![0u64; self.names.len().div_ceil(64)];
        for key in query.neighbourhood(self.key_chars_max) {
            for &n in self.index.get(&key).into_iter().flatten() {
                if let Some(word) = met.get_mut(n as usize / 64) {
                    *word |= 1 << (n % 64);
                }
            }
        }
        let candidates = met.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    w * 64 + bit
                })
            })
        });
        let mut best: Option<(usize, f64)> = None;
        for n in candidates {
            let floor = best.map_or(self.threshold, |(_, b)| b);
            if self
                .sizes
                .get(n)
                .is_some_and(|&size| size_bound(&query, size) < floor)
            {
                continue;
            }
            let Some(listed) = self.names.get(n) else {
                continue;
            };
            if let Some(s) = score_at_least(&query, &listed.key, floor)
                && best.is_none_or(|(_, b)| s > b)
            {
                best = Some((n, s));
            }
        }
        best.map(|(n, s)| self.found(n, s))
    }

    /// The best match of `name` by scoring it against every listed name, without the index
    /// (and without its one-edit rule): what screening would cost without the index, for the
    /// benchmark's comparison. Not used to screen.
    #[doc(hidden)]
    pub fn match_name_scanning_all(&self, name: &str) -> Option<NameMatch> {
        let key = normalize(name);
        if key.is_empty() {
            return None;
        }
        let query = Prepared::new(key);
        let mut best: Option<(usize, f64)> = None;
        for (n, listed) in self.names.iter().enumerate() {
            let s = score(&query, &listed.key);
            if s >= self.threshold && best.is_none_or(|(_, b)| s > b) {
                best = Some((n, s));
            }
        }
        best.map(|(n, s)| self.found(n, s))
    }

    fn found(&self, n: usize, score: f64) -> NameMatch {
        let listed = &self.names[n];
        let entry = &self.entries[listed.entry];
        NameMatch {
            entry: entry.name.clone().unwrap_or_default(),
            alias: listed.alias.clone(),
            origin: entry.origin.clone(),
            country: entry.country.clone(),
            score,
        }
    }

    /// Whether the agent `bic` is on the list.
    pub fn has_bic(&self, bic: &str) -> bool {
        let party = party_bic(bic);
        self.bics_branch.contains(bic)
            || party
                .get(..8)
                .is_some_and(|head| self.bics_all_branches.contains(head))
    }

    /// Whether the local account `id` is on the list.
    pub fn has_account(&self, id: u128) -> bool {
        self.accounts.contains(&id)
    }
}

/// Where the list comes from: the inline entries of `[sanctions]` and the file it names.
#[derive(Clone, Debug, Default)]
pub struct ListSource {
    /// `[sanctions] names`, `bics` and `accounts`, as entries.
    pub inline: Vec<ListEntry>,
    /// `[sanctions] list`, read at start and at each reload.
    pub file: Option<PathBuf>,
    /// `[sanctions] threshold`.
    pub threshold: f64,
}

impl ListSource {
    /// The list this source gives now: the inline entries, then the file's.
    pub fn load(&self) -> Result<SanctionsList, ListError> {
        let mut entries = self.inline.clone();
        if let Some(path) = &self.file {
            entries.extend(list::read(path)?);
        }
        Ok(SanctionsList::new(entries, self.threshold))
    }
}

/// What a reload loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reloaded {
    /// Entries now in force.
    pub entries: usize,
    /// Names and aliases among them.
    pub names: usize,
    /// How many lists have been in force, this one included (1 at start).
    pub generation: u64,
}

/// The list in force, shared by the engine and whoever reloads it; cheap to clone.
#[derive(Clone, Debug)]
pub struct Sanctions {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    source: ListSource,
    current: RwLock<(Arc<SanctionsList>, u64)>,
}

impl Default for Sanctions {
    /// An empty list that matches nothing.
    fn default() -> Self {
        Self::new(
            ListSource {
                threshold: THRESHOLD_DEFAULT,
                ..ListSource::default()
            },
            SanctionsList::default(),
        )
    }
}

impl Sanctions {
    /// Loads the list `source` gives (the node does not start if it does not load).
    pub fn load(source: ListSource) -> Result<Self, ListError> {
        let list = source.load()?;
        Ok(Self::new(source, list))
    }

    fn new(source: ListSource, list: SanctionsList) -> Self {
        Self {
            shared: Arc::new(Shared {
                source,
                current: RwLock::new((Arc::new(list), 1)),
            }),
        }
    }

    /// The list in force.
    pub fn current(&self) -> Arc<SanctionsList> {
        let current = self
            .shared
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&current.0)
    }

    /// How many lists have been in force, the current one included (1 after the load; each
    /// successful reload adds one).
    pub fn generation(&self) -> u64 {
        self.shared
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
    }

    /// Reads the list again from its source and puts it in force for the payments screened
    /// from then on. A list that does not load changes nothing: the one in force stays, and
    /// the error (with its [`ListErrorReason`] code) is logged and returned.
    pub fn reload(&self) -> Result<Reloaded, ListError> {
        let list = match self.shared.source.load() {
            Ok(list) => list,
            Err(error) => {
                tracing::error!(
                    reason = error.reason.code(),
                    %error,
                    "the sanctions list did not reload; the list in force is unchanged"
                );
                return Err(error);
            }
        };
        let (entries, names) = (list.len(), list.names());
        let mut current = self
            .shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let generation = current.1.saturating_add(1);
        *current = (Arc::new(list), generation);
        drop(current);
        tracing::info!(entries, names, generation, "sanctions list reloaded");
        Ok(Reloaded {
            entries,
            names,
            generation,
        })
    }

    /// The refusal (RR04) if the instruction's party names or agent BICs, or the local
    /// account, are on the list.
    pub(crate) fn screen(&self, instr: &Instruction, local_account: u128) -> Result<(), Rejection> {
        let list = self.current();
        for (role, name) in [
            ("debtor", &instr.debtor_name),
            ("creditor", &instr.creditor_name),
        ] {
            if let Some(m) = list.match_name(name) {
                let source = match &m.alias {
                    Some(alias) => format!("alias {alias:?}, {}", m.origin),
                    None => m.origin.clone(),
                };
                return Err(Rejection::new(
                    ReasonCode::Rr04,
                    format!(
                        "{role} name {name:?} matches sanctions list entry {:?} ({source}) \
                         with score {:.2} (threshold {:.2})",
                        m.entry,
                        m.score,
                        list.threshold()
                    ),
                ));
            }
        }
        for (role, bic) in [
            ("debtor agent", &instr.debtor_agent_bic),
            ("creditor agent", &instr.creditor_agent_bic),
        ] {
            if list.has_bic(bic) {
                return Err(Rejection::new(
                    ReasonCode::Rr04,
                    format!("{role} {bic} is on the sanctions list"),
                ));
            }
        }
        if list.has_account(local_account) {
            return Err(Rejection::new(
                ReasonCode::Rr04,
                format!("account {local_account} is on the sanctions list"),
            ));
        }
        Ok(())
    }
}
