//! How a party name becomes the key it is screened by.
//!
//! The steps, in order (each list name goes through the same ones once, at load):
//!
//! 1. Unicode NFKC: full-width and half-width forms, ligatures, circled and parenthesized
//!    letters become their plain letters (`Ｓａｎｃｔｉｏｎｅｄ` → `Sanctioned`, `ｻﾝ` → `サン`,
//!    `㈱` → `(株)`).
//! 2. The Japanese abbreviations `(株)` and `(有)` are spelled out (`株式会社`, `有限会社`), so
//!    step 7 recognizes them.
//! 3. Diacritics removed: the name is decomposed (NFD) and the combining marks of the
//!    combining-diacritics blocks (U+0300–036F, U+1AB0–1AFF, U+1DC0–1DFF, U+20D0–20FF,
//!    U+FE20–FE2F) dropped, then recomposed (NFC). Marks that are letters' parts in their own
//!    script (Thai vowels and tone marks, the kana voicing marks) stay.
//! 4. Case folding and the confusable skeleton of Unicode TS #39 (`unicode-security`), per
//!    character ([`fold_char`]): ASCII letters are lower-cased; every other character becomes
//!    the prototype it imitates, lower-cased: a Cyrillic `С`, a Greek `ο`, a digit `0` in place
//!    of `O` become the Latin letter they imitate, and default-ignorable characters
//!    (zero-width spaces and joiners, soft hyphens) are dropped.
//! 5. Punctuation, symbols and spaces separate tokens and are dropped: a token is a run of
//!    letters, digits and combining marks.
//! 6. (In the scorer, not here: token order does not matter.)
//! 7. Legal forms removed ([`LEGAL_FORMS`]): at the end of the name for forms written in
//!    Latin letters (`Co`, `Ltd`, `Pte Ltd`, `K.K.`, `GmbH`, ...), at either end and also
//!    written without a space for Japanese and Thai forms (`株式会社`, `บริษัท … จำกัด`). They
//!    are removed repeatedly (`Co., Ltd.` is `Co` and `Ltd`), but never down to nothing: a name
//!    that is only legal forms keeps them.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

/// The legal forms screening ignores, as written in names. Every form in one row is an
/// equivalent spelling of one kind of company; all rows are removed alike, so a name listed
/// as `X Co` also catches `X Ltd`, `X K.K.`, `株式会社X` and plain `X`: the legal form is not
/// what identifies a sanctioned party, and a sanctioned party that re-registers under another
/// form must still be caught. Each form is normalized by the same steps as a name, so `Co.`,
/// `CO` and `Ｃｏ．` are one form.
pub const LEGAL_FORMS: &[(&str, &[&str])] = &[
    ("company", &["Co", "Co.", "Company", "Cie"]),
    ("limited", &["Ltd", "Ltd.", "Limited"]),
    (
        "company limited",
        &["Co Ltd", "Co., Ltd.", "Co.,Ltd.", "Company Limited"],
    ),
    (
        "Singapore private limited",
        &[
            "Pte",
            "Pte.",
            "Pte Ltd",
            "Pte. Ltd.",
            "Private Limited",
            "Pvt Ltd",
            "Pvt. Ltd.",
        ],
    ),
    (
        "Japanese stock company",
        &[
            "KK",
            "K.K.",
            "Kabushiki Kaisha",
            "Kabushikigaisha",
            "株式会社",
        ],
    ),
    (
        "Japanese limited company",
        &["YK", "Y.K.", "Yugen Kaisha", "有限会社"],
    ),
    (
        "Japanese limited liability company",
        &["GK", "G.K.", "Godo Kaisha", "合同会社"],
    ),
    ("incorporated", &["Inc", "Inc.", "Incorporated"]),
    ("corporation", &["Corp", "Corp.", "Corporation"]),
    (
        "limited liability company",
        &["LLC", "L.L.C.", "Limited Liability Company"],
    ),
    ("limited liability partnership", &["LLP", "L.L.P."]),
    ("German limited company", &["GmbH", "G.m.b.H."]),
    (
        "Malaysian private limited",
        &["Sdn Bhd", "Sdn. Bhd.", "Sendirian Berhad", "Bhd", "Berhad"],
    ),
    (
        "public limited company",
        &[
            "PLC",
            "P.L.C.",
            "Public Limited Company",
            "Public Company Limited",
            "PCL",
        ],
    ),
    // Thai: บริษัท (company) before the name, จำกัด (limited) after it, มหาชน (public) after
    // that, often in parentheses.
    (
        "Thai company limited",
        &["บริษัท", "จำกัด", "มหาชน", "บจก.", "บมจ."],
    ),
];

/// A name as screening compares it: its tokens after normalization and without legal forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameKey {
    /// The tokens, in the order written.
    pub tokens: Vec<String>,
}

impl NameKey {
    /// The tokens sorted and joined by one space: equal for names that differ only in token
    /// order (the exact-match key).
    pub fn sorted(&self) -> String {
        let mut tokens: Vec<&str> = self.tokens.iter().map(String::as_str).collect();
        tokens.sort_unstable();
        tokens.join(" ")
    }

    /// The tokens in the order written, without separators (`Sanctioned Trading` and
    /// `SanctionedTrading` give the same string).
    pub fn joined(&self) -> String {
        self.tokens.concat()
    }

    /// Whether nothing of the name is left (it was only punctuation or spaces).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// The screening key of `name` (steps 1 to 7 of the module documentation).
pub fn normalize(name: &str) -> NameKey {
    let tokens = tokenize(name);
    NameKey {
        tokens: strip_legal_forms(tokens, legal_forms()),
    }
}

/// Steps 1 to 5: the normalized tokens, legal forms still in.
fn tokenize(name: &str) -> Vec<String> {
    let nfkc: String = name.nfkc().collect();
    let spelled = nfkc
        .replace("(株)", " 株式会社 ")
        .replace("(有)", " 有限会社 ");
    let bare: String = spelled.nfd().filter(|c| !is_diacritic(*c)).nfc().collect();
    let mut folded = String::with_capacity(bare.len());
    // Each distinct character other than an ASCII letter is folded once: a name of a few
    // characters repeated (140 ligatures that NFKC makes 2,520 characters) costs no more
    // lookups than the characters it is made of.
    let mut seen: HashMap<char, std::ops::Range<usize>> = HashMap::new();
    for c in bare.chars() {
        if c.is_ascii_alphabetic() {
            folded.push(c.to_ascii_lowercase());
            continue;
        }
        if let Some(range) = seen.get(&c) {
            folded.extend_from_within(range.clone());
            continue;
        }
        let start = folded.len();
        fold_char(c, &mut folded);
        seen.insert(c, start..folded.len());
    }
    let folded: String = folded.nfc().collect();
    folded
        .split(|c: char| !is_token_char(c))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Step 3 for one character: its case-folded confusable prototype, appended to `out`.
///
/// TS #39 skeletons are case-sensitive (a Cyrillic `Т` imitates `T`, its small `т` the small
/// capital `ᴛ`; `I` and `l` share one prototype), so the fold is per character:
/// - ASCII letters are lower-cased and kept: they are what the others are folded to;
/// - other characters take the prototype of the character as written, lower-cased, when that
///   is ASCII (`С` → `c`, `0` → `o`, `1` → `l`), a capital imitating `I` giving `i` as `I`
///   does; otherwise the prototype of their lower case.
fn fold_char(c: char, out: &mut String) {
    if c.is_ascii_alphabetic() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    let mut buf = [0u8; 4];
    let prototype: String = unicode_security::skeleton(c.encode_utf8(&mut buf)).collect();
    if prototype.is_ascii() {
        if c.is_uppercase() && prototype == "l" {
            out.push('i');
        } else {
            out.push_str(&prototype.to_ascii_lowercase());
        }
        return;
    }
    let lower: String = c.to_lowercase().collect();
    let prototype: String = unicode_security::skeleton(&lower).collect();
    out.extend(prototype.chars().flat_map(char::to_lowercase));
}

/// A combining mark of the combining-diacritics blocks (accents, cedillas, strokes, tildes).
fn is_diacritic(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
    )
}

/// Part of a token: a letter, a digit, or a combining mark that belongs to its letter (Thai
/// vowel and tone marks, kana voicing marks).
fn is_token_char(c: char) -> bool {
    c.is_alphanumeric() || unicode_normalization::char::is_combining_mark(c)
}

/// A legal form, normalized.
#[derive(Debug)]
struct Form {
    /// Its tokens.
    tokens: Vec<String>,
    /// Written without spaces around it (Japanese, Thai): also removed from the start or the
    /// end of the name's first or last token, and at the start of the name too.
    unspaced: bool,
}

/// [`LEGAL_FORMS`] normalized, longest first (so `Pte Ltd` is removed as one form before
/// `Ltd` alone leaves `Pte` behind).
fn legal_forms() -> &'static [Form] {
    static FORMS: std::sync::OnceLock<Vec<Form>> = std::sync::OnceLock::new();
    FORMS.get_or_init(|| {
        let mut forms: Vec<Form> = LEGAL_FORMS
            .iter()
            .flat_map(|(_, spellings)| spellings.iter())
            .map(|spelling| Form {
                tokens: tokenize(spelling),
                unspaced: !spelling.is_ascii(),
            })
            .filter(|form| !form.tokens.is_empty())
            .collect();
        forms.sort_by_key(|form| {
            std::cmp::Reverse((form.tokens.len(), form.tokens.concat().chars().count()))
        });
        forms
    })
}

/// Removes legal forms from both ends of `tokens` until none is left there, keeping at least
/// one token.
fn strip_legal_forms(mut tokens: Vec<String>, forms: &[Form]) -> Vec<String> {
    // Each pass removes at least one token or shortens one, so this ends; the bound is a
    // guard against a table entry that would not shrink anything.
    for _ in 0..64 {
        if !strip_one(&mut tokens, forms) {
            break;
        }
    }
    tokens
}

/// Removes one legal form at an end of `tokens`, if one is there and something else remains.
fn strip_one(tokens: &mut Vec<String>, forms: &[Form]) -> bool {
    for form in forms {
        let n = form.tokens.len();
        if tokens.len() > n && tokens[tokens.len() - n..] == form.tokens[..] {
            tokens.truncate(tokens.len() - n);
            return true;
        }
        if form.unspaced && tokens.len() > n && tokens[..n] == form.tokens[..] {
            tokens.drain(..n);
            return true;
        }
    }
    // Japanese and Thai forms are written against the name: `サンクション商事株式会社`.
    for form in forms.iter().filter(|f| f.unspaced && f.tokens.len() == 1) {
        let affix = &form.tokens[0];
        if let Some(last) = tokens.last_mut()
            && let Some(rest) = last.strip_suffix(affix.as_str())
            && !rest.is_empty()
        {
            let rest = rest.to_owned();
            *last = rest;
            return true;
        }
        if let Some(first) = tokens.first_mut()
            && let Some(rest) = first.strip_prefix(affix.as_str())
            && !rest.is_empty()
        {
            let rest = rest.to_owned();
            *first = rest;
            return true;
        }
    }
    false
}
