//! The CBPR+ character sets and lengths of the texts kakehashi reads from and writes into
//! ISO 20022 messages.
//!
//! CBPR+ narrows ISO 20022's `Max35Text` and `Max140Text` (any Unicode) to what SWIFT's
//! networks carry: identifiers (`MsgId`, `InstrId`, `EndToEndId`, `TxId`) use the FIN "x"
//! set (`CBPR_RestrictedFINXMax35Text`: `a-z A-Z 0-9 / - ? : ( ) . , ' +` and space, not
//! starting or ending with `/` and without `//`), names and remittance information the
//! extended set (`CBPR_Max140Text_Extended`: the x set plus `! # $ % & * = ^ _ \` { | } ~ " ; <
//! > @ [ \ ]`).

use super::Refusal;

/// The characters of SWIFT's FIN "x" set besides letters and digits.
const X_PUNCTUATION: &str = "/-?:().,'+ ";

/// The characters the CBPR+ extended set adds to the x set.
const EXTENDED_PUNCTUATION: &str = "!#$%&*=^_`{|}~\";<>@[\\]";

/// Whether `c` is in the FIN x set.
fn is_x(c: char) -> bool {
    c.is_ascii_alphanumeric() || X_PUNCTUATION.contains(c)
}

/// Whether `c` is in the CBPR+ extended set.
pub(crate) fn is_extended(c: char) -> bool {
    is_x(c) || EXTENDED_PUNCTUATION.contains(c)
}

/// Checks an identifier: 1 to `max` characters of the x set, not starting or ending with `/`
/// and without `//` (CBPR+ `CBPR_RestrictedFINXMax35Text`).
pub(crate) fn identifier(path: &str, value: &str, max: usize) -> Result<String, Refusal> {
    let refuse = |problem: String| {
        Refusal::ff01(
            path,
            format!(
                "{problem}; an identifier is 1 to {max} characters of a-z A-Z 0-9 / - ? : ( ) . , \
                 ' + and space (CBPR+ RestrictedFINXMax{max}Text)"
            ),
        )
    };
    check_length(value, max).map_err(refuse)?;
    if let Some((position, c)) = value.chars().enumerate().find(|(_, c)| !is_x(*c)) {
        return Err(refuse(format!(
            "character {} ({c:?}) is outside the CBPR+ character set",
            position + 1
        )));
    }
    if value.starts_with('/') || value.ends_with('/') || value.contains("//") {
        return Err(refuse(
            "it starts or ends with '/' or holds '//', which CBPR+ forbids".to_owned(),
        ));
    }
    Ok(value.to_owned())
}

/// Checks a name or remittance text: 1 to `max` characters of the CBPR+ extended set
/// (`CBPR_Max140Text_Extended`).
pub(crate) fn extended(path: &str, value: &str, max: usize) -> Result<String, Refusal> {
    let refuse = |problem: String| {
        Refusal::ff01(
            path,
            format!(
                "{problem}; the text is 1 to {max} characters of the CBPR+ extended character \
                 set (Latin letters, digits, space and / - ? : ( ) . , ' + ! # $ % & * = ^ _ ` \
                 {{ | }} ~ \" ; < > @ [ \\ ])"
            ),
        )
    };
    check_length(value, max).map_err(refuse)?;
    if let Some((position, c)) = value.chars().enumerate().find(|(_, c)| !is_extended(*c)) {
        return Err(refuse(format!(
            "character {} ({c:?}) is outside the CBPR+ character set",
            position + 1
        )));
    }
    Ok(value.to_owned())
}

/// What is wrong with the length of `value`, if anything.
fn check_length(value: &str, max: usize) -> Result<(), String> {
    let chars = value.chars().count();
    if chars == 0 {
        return Err("it is empty".to_owned());
    }
    if chars > max {
        return Err(format!("it is {chars} characters, more than {max}"));
    }
    Ok(())
}

/// `value` made fit for a CBPR+ extended text of at most `max` characters: characters outside
/// the set become `?`, and a text longer than `max` is cut, ending in `...`. For texts kakehashi
/// writes from its own data (a refusal's detail), never for what it reads.
pub(crate) fn fit_extended(value: &str, max: usize) -> String {
    let mut text: String = value
        .chars()
        .map(|c| if is_extended(c) { c } else { '?' })
        .collect();
    if text.chars().count() > max {
        text = text.chars().take(max.saturating_sub(3)).collect();
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_take_the_x_set_only() {
        assert_eq!(
            identifier("p", "INV-2026/01 (a)", 35).unwrap(),
            "INV-2026/01 (a)"
        );
        for (bad, words) in [
            ("", "empty"),
            ("x".repeat(36).as_str(), "36 characters"),
            ("a_b", "character 2 ('_')"),
            ("Müller", "character 2 ('ü')"),
            ("/abc", "starts or ends with '/'"),
            ("abc/", "'/'"),
            ("a//b", "'//'"),
        ] {
            let refusal = identifier("/P", bad, 35).unwrap_err();
            assert_eq!(refusal.path, "/P");
            assert!(
                refusal.detail.contains(words),
                "{bad:?}: {}",
                refusal.detail
            );
        }
    }

    #[test]
    fn names_take_the_extended_set() {
        assert_eq!(
            extended("p", "Sato & Co. <Tokyo> @ [1]", 140).unwrap(),
            "Sato & Co. <Tokyo> @ [1]"
        );
        assert!(extended("p", "山田", 140).is_err());
        assert!(extended("p", "a\tb", 140).is_err());
        assert!(extended("p", &"n".repeat(141), 140).is_err());
        assert!(extended("p", &"n".repeat(140), 140).is_ok());
    }

    #[test]
    fn fitting_replaces_and_cuts() {
        assert_eq!(fit_extended("a→b", 105), "a?b");
        let long = fit_extended(&"x".repeat(200), 105);
        assert_eq!(long.chars().count(), 105);
        assert!(long.ends_with("..."));
        assert!(long.chars().all(is_extended));
    }
}
