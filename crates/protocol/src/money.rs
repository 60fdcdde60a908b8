//! Money: the ISO 4217 currencies kakehashi knows, decimal amounts ↔ integer minor units, and
//! FX rates and conversion.
//!
//! Amounts on the wire are ISO 20022 `ActiveCurrencyAndAmount`: a decimal in major units with at
//! most the currency's minor-unit digits (ISO 4217 "exponent"). Inside the node every amount is
//! an integer count of minor units (`u128`), never a float.
//!
//! **The rounding rule.** A conversion is `floor(source × rate)` in the target currency's minor
//! unit: it rounds toward zero, so a creditor never receives more than the quoted rate gives and
//! the node never pays out value it did not receive. A spread is applied to the mid rate the same
//! way (`floor(mid × (10,000 − bps) / 10,000)` at the rate's 12-digit precision).

use kakehashi_proto::pb;

use crate::reason::Rejection;

/// An ISO 4217 currency.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Currency {
    /// The alphabetic code, e.g. `"JPY"`.
    pub alpha: &'static str,
    /// The numeric code, e.g. 392; also the ledger id of the currency.
    pub numeric: u16,
    /// Minor-unit digits (ISO 4217 "exponent"): 0 for JPY, 2 for SGD.
    pub exponent: u8,
}

impl Currency {
    /// Minor units per major unit: 10^exponent.
    pub fn minor_per_major(&self) -> u128 {
        pow10(u32::from(self.exponent))
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.alpha)
    }
}

/// Largest minor-unit exponent in the table. ISO 4217 has none above 4 (CLF, UYW), and the ones
/// kakehashi lists stop at 3 (KWD); bounding it keeps every `10^exponent` a small constant.
pub const EXPONENT_MAX: u8 = 3;

/// The currencies kakehashi knows (ISO 4217, numeric codes and minor units as published by the
/// maintenance agency): the ASEAN currencies and the major ones they trade against. Sorted by
/// alphabetic code.
pub const CURRENCIES: &[Currency] = &[
    Currency {
        alpha: "AUD",
        numeric: 36,
        exponent: 2,
    },
    Currency {
        alpha: "BND",
        numeric: 96,
        exponent: 2,
    },
    Currency {
        alpha: "CAD",
        numeric: 124,
        exponent: 2,
    },
    Currency {
        alpha: "CHF",
        numeric: 756,
        exponent: 2,
    },
    Currency {
        alpha: "CNY",
        numeric: 156,
        exponent: 2,
    },
    Currency {
        alpha: "EUR",
        numeric: 978,
        exponent: 2,
    },
    Currency {
        alpha: "GBP",
        numeric: 826,
        exponent: 2,
    },
    Currency {
        alpha: "HKD",
        numeric: 344,
        exponent: 2,
    },
    Currency {
        alpha: "IDR",
        numeric: 360,
        exponent: 2,
    },
    Currency {
        alpha: "INR",
        numeric: 356,
        exponent: 2,
    },
    Currency {
        alpha: "JPY",
        numeric: 392,
        exponent: 0,
    },
    Currency {
        alpha: "KHR",
        numeric: 116,
        exponent: 2,
    },
    Currency {
        alpha: "KRW",
        numeric: 410,
        exponent: 0,
    },
    Currency {
        alpha: "KWD",
        numeric: 414,
        exponent: 3,
    },
    Currency {
        alpha: "LAK",
        numeric: 418,
        exponent: 2,
    },
    Currency {
        alpha: "MMK",
        numeric: 104,
        exponent: 2,
    },
    Currency {
        alpha: "MYR",
        numeric: 458,
        exponent: 2,
    },
    Currency {
        alpha: "NZD",
        numeric: 554,
        exponent: 2,
    },
    Currency {
        alpha: "PHP",
        numeric: 608,
        exponent: 2,
    },
    Currency {
        alpha: "SGD",
        numeric: 702,
        exponent: 2,
    },
    Currency {
        alpha: "THB",
        numeric: 764,
        exponent: 2,
    },
    Currency {
        alpha: "TWD",
        numeric: 901,
        exponent: 2,
    },
    Currency {
        alpha: "USD",
        numeric: 840,
        exponent: 2,
    },
    Currency {
        alpha: "VND",
        numeric: 704,
        exponent: 0,
    },
];

/// The currency with ISO 4217 alphabetic code `alpha` (exact, upper case), if kakehashi knows it.
pub fn currency(alpha: &str) -> Option<&'static Currency> {
    CURRENCIES.iter().find(|c| c.alpha == alpha)
}

/// The currency with ISO 4217 numeric code `n` (the ledger's currency id).
pub fn currency_by_numeric(n: u16) -> Option<&'static Currency> {
    CURRENCIES.iter().find(|c| c.numeric == n)
}

/// Most digits in an amount. u128 holds every 38-digit number (its maximum is about 3.4 × 10^38),
/// so a value of this many digits can only overflow through the minor-unit scaling, which is
/// checked; more digits are refused before any arithmetic.
pub const AMOUNT_DIGITS_MAX: usize = 38;

/// Longest amount text: the digits plus one decimal point.
const AMOUNT_TEXT_LEN_MAX: usize = AMOUNT_DIGITS_MAX + 1;

/// How much of a refused text a detail quotes: enough to recognize it, bounded for logs.
const EXCERPT_CHARS_MAX: usize = 48;

/// Parses a wire amount into its currency and minor units.
///
/// The value must be ASCII digits, optionally followed by `.` and 1 to `exponent` digits: no
/// sign, exponent, grouping, spaces or non-ASCII digits, and no redundant leading zero (`"0.5"`
/// is fine, `"00.5"` is not). At most [`AMOUNT_DIGITS_MAX`] digits. Zero is allowed here; the
/// caller decides whether it may be.
pub fn parse_amount(
    a: &pb::ActiveCurrencyAndAmount,
) -> Result<(&'static Currency, u128), Rejection> {
    let Some(ccy) = currency(&a.currency) else {
        return Err(Rejection::format(format!(
            "unknown currency {}: expected an ISO 4217 alphabetic code kakehashi knows, in upper \
             case (e.g. JPY, SGD, THB)",
            excerpt(&a.currency)
        )));
    };
    if a.value.len() > AMOUNT_TEXT_LEN_MAX {
        return Err(Rejection::format(format!(
            "{} amount {} is longer than {AMOUNT_DIGITS_MAX} digits",
            ccy.alpha,
            excerpt(&a.value)
        )));
    }
    let exponent = u32::from(ccy.exponent);
    let minor = parse_decimal(&a.value, exponent, exponent).map_err(|problem| {
        Rejection::format(format!(
            "{} amount {} {problem}",
            ccy.alpha,
            excerpt(&a.value)
        ))
    })?;
    Ok((ccy, minor))
}

/// Formats minor units as a wire amount with exactly `exponent` fraction digits: SGD 1230 →
/// `"12.30"`, JPY 1500 → `"1500"`.
pub fn format_amount(c: &Currency, minor: u128) -> pb::ActiveCurrencyAndAmount {
    let digits = usize::from(c.exponent);
    let value = if digits == 0 {
        minor.to_string()
    } else {
        let per_major = c.minor_per_major();
        format!("{}.{:0digits$}", minor / per_major, minor % per_major)
    };
    pb::ActiveCurrencyAndAmount {
        currency: c.alpha.to_owned(),
        value,
    }
}

/// Most fraction digits in a rate: ISO 20022 `BaseOneRate` allows 10; 12 leaves room for a
/// spread applied to a 10-digit mid rate without losing its last digit.
pub const RATE_FRACTION_DIGITS_MAX: u32 = 12;

/// Most integer digits in a rate. The largest real cross rates (e.g. IDR or VND per KWD) are
/// below 10^6; 12 digits keeps a rate below 10^24 scaled units, so `amount × rate` stays in u128
/// for any amount below about 3 × 10^14 minor units.
pub const RATE_INTEGER_DIGITS_MAX: usize = 12;

/// Longest rate text: integer digits, a point, fraction digits.
const RATE_TEXT_LEN_MAX: usize = RATE_INTEGER_DIGITS_MAX + 1 + RATE_FRACTION_DIGITS_MAX as usize;

/// The fixed-point scale of [`Rate`]: 10^[`RATE_FRACTION_DIGITS_MAX`].
pub const RATE_SCALE: u128 = 1_000_000_000_000;
const _: () = assert!(RATE_SCALE == 10u128.pow(RATE_FRACTION_DIGITS_MAX));

/// Largest scaled rate: the largest value with [`RATE_INTEGER_DIGITS_MAX`] integer digits.
const RATE_SCALED_MAX: u128 = RATE_SCALE * 1_000_000_000_000 - 1;
const _: () = assert!(RATE_SCALED_MAX == 10u128.pow(24) - 1);

/// A spread of 10,000 basis points is the whole rate.
pub const SPREAD_BPS_FULL: u32 = 10_000;

/// An exchange rate: target-currency major units per source-currency major unit, a positive
/// decimal with at most [`RATE_FRACTION_DIGITS_MAX`] fraction digits, held as an integer scaled
/// by [`RATE_SCALE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate {
    scaled: u128,
}

impl Rate {
    /// Parses a positive decimal rate such as `"0.0087"` or `"114.942528735632"`: ASCII digits,
    /// optionally `.` and 1 to 12 digits, at most 12 integer digits, no sign or exponent, no
    /// redundant leading zero, not zero.
    pub fn parse(s: &str) -> Result<Self, Rejection> {
        let refuse =
            |problem: &str| Rejection::format(format!("exchange rate {} {problem}", excerpt(s)));
        if s.len() > RATE_TEXT_LEN_MAX {
            return Err(refuse(&format!(
                "is longer than {RATE_TEXT_LEN_MAX} characters ({RATE_INTEGER_DIGITS_MAX} integer \
                 and {RATE_FRACTION_DIGITS_MAX} fraction digits at most)"
            )));
        }
        let scaled = parse_decimal(s, RATE_FRACTION_DIGITS_MAX, RATE_FRACTION_DIGITS_MAX)
            .map_err(|problem| refuse(&problem))?;
        // Leading zeros are refused, so more than 12 integer digits means a value of 10^12 or
        // more, i.e. a scaled value above RATE_SCALED_MAX.
        if scaled > RATE_SCALED_MAX {
            return Err(refuse(&format!(
                "has more than {RATE_INTEGER_DIGITS_MAX} integer digits"
            )));
        }
        Self::from_scaled(scaled).ok_or_else(|| refuse("is zero; a rate must be positive"))
    }

    /// The rate from its scaled integer form (value × 10^12), if positive and within bounds.
    pub fn from_scaled(scaled: u128) -> Option<Self> {
        (scaled > 0 && scaled <= RATE_SCALED_MAX).then_some(Self { scaled })
    }

    /// The rate × 10^12.
    pub fn scaled(self) -> u128 {
        self.scaled
    }

    /// The rate after taking a spread of `spread_bps` basis points from the mid rate:
    /// `floor(mid × (10,000 − bps) / 10,000)` at 12-digit precision, so the spread never favours
    /// the customer by a rounding. A spread above 10,000 bps counts as 10,000. The result can
    /// be zero (a full spread, or a rate below 10^-8 with any spread), which is not a usable
    /// rate: [`convert`] then gives zero and the quote code refuses it.
    pub fn with_spread(self, spread_bps: u32) -> Self {
        let keep = u128::from(SPREAD_BPS_FULL - spread_bps.min(SPREAD_BPS_FULL));
        // Cannot overflow: scaled < 10^24 and keep <= 10^4; saturating keeps that panic-free
        // should the bound ever change.
        Self {
            scaled: self.scaled.saturating_mul(keep) / u128::from(SPREAD_BPS_FULL),
        }
    }
}

impl std::fmt::Display for Rate {
    /// The shortest decimal form: no trailing fraction zeros, no point for whole rates, so that
    /// `Rate::parse(&rate.to_string()) == Ok(rate)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let integer = self.scaled / RATE_SCALE;
        let fraction = self.scaled % RATE_SCALE;
        if fraction == 0 {
            return write!(f, "{integer}");
        }
        let digits = format!("{fraction:012}");
        write!(f, "{integer}.{}", digits.trim_end_matches('0'))
    }
}

/// Converts `source_minor` minor units of `from` at `rate` into minor units of `to`:
/// `floor(source_minor × rate × 10^to.exponent / 10^from.exponent)`.
///
/// The rounding rule: toward zero in the target minor unit, so a creditor never receives more
/// than the quoted rate gives. Every step is checked; an overflow of u128 is FF01.
pub fn convert(
    source_minor: u128,
    from: &Currency,
    rate: Rate,
    to: &Currency,
) -> Result<u128, Rejection> {
    let numerator = source_minor
        .checked_mul(rate.scaled)
        .and_then(|n| n.checked_mul(to.minor_per_major()))
        .ok_or_else(|| {
            Rejection::format(format!(
                "converting {source_minor} {from} minor units at rate {rate} into {to} overflows \
                 128-bit arithmetic; the amount is too large for this rate"
            ))
        })?;
    // Cannot overflow: RATE_SCALE is 10^12 and minor_per_major at most 10^EXPONENT_MAX.
    let denominator = RATE_SCALE.saturating_mul(from.minor_per_major());
    Ok(numerator / denominator)
}

/// 10^exponent for the small exponents used here (at most 38 stays in u128; larger saturates).
fn pow10(exponent: u32) -> u128 {
    10u128.checked_pow(exponent).unwrap_or(u128::MAX)
}

/// Parses a strict unsigned decimal and returns value × 10^scale, or what is wrong with it as a
/// phrase that follows the quoted text ("has 3 fraction digits; at most 2 are allowed").
/// `fraction_digits_max` must not exceed `scale`.
fn parse_decimal(text: &str, fraction_digits_max: u32, scale: u32) -> Result<u128, String> {
    if text.is_empty() {
        return Err("is empty; write a decimal such as 1500 or 12.34".to_owned());
    }
    if let Some((position, ch)) = text
        .char_indices()
        .find(|&(_, ch)| !(ch.is_ascii_digit() || ch == '.'))
    {
        return Err(format!(
            "contains {ch:?} at byte {position}; only ASCII digits and one '.' are allowed (no \
             sign, exponent, grouping or spaces)"
        ));
    }
    let (integer, fraction) = match text.split_once('.') {
        Some((integer, fraction)) => (integer, Some(fraction)),
        None => (text, None),
    };
    if integer.is_empty() {
        return Err("has no digit before the '.'".to_owned());
    }
    if integer.len() > 1 && integer.starts_with('0') {
        return Err("has a redundant leading zero".to_owned());
    }
    let fraction = fraction.unwrap_or("");
    if text.contains('.') {
        if fraction.contains('.') {
            return Err("has more than one '.'".to_owned());
        }
        if fraction.is_empty() {
            return Err("has no digit after the '.'".to_owned());
        }
    }
    if fraction.len() > fraction_digits_max as usize {
        return Err(format!(
            "has {} fraction digits; at most {fraction_digits_max} are allowed",
            fraction.len()
        ));
    }
    if integer.len() + fraction.len() > AMOUNT_DIGITS_MAX {
        return Err(format!("has more than {AMOUNT_DIGITS_MAX} digits"));
    }
    let overflow = || "is too large for 128-bit minor units".to_owned();
    let mut value: u128 = 0;
    for digit in integer.bytes().chain(fraction.bytes()) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(digit - b'0')))
            .ok_or_else(overflow)?;
    }
    // fraction.len() <= fraction_digits_max <= scale, checked above.
    let padding = scale.saturating_sub(fraction.len() as u32);
    value.checked_mul(pow10(padding)).ok_or_else(overflow)
}

/// A bounded, escaped quotation of untrusted text for a detail message.
pub(crate) fn excerpt(text: &str) -> String {
    if text.chars().count() <= EXCERPT_CHARS_MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(EXCERPT_CHARS_MAX).collect();
        format!("{head:?}… ({} bytes)", text.len())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::reason::ReasonCode;

    fn amount(currency: &str, value: &str) -> pb::ActiveCurrencyAndAmount {
        pb::ActiveCurrencyAndAmount {
            currency: currency.to_owned(),
            value: value.to_owned(),
        }
    }

    #[track_caller]
    fn parsed(currency: &str, value: &str) -> u128 {
        let (c, minor) = parse_amount(&amount(currency, value)).expect("a valid amount");
        assert_eq!(c.alpha, currency);
        minor
    }

    #[track_caller]
    fn refused(currency: &str, value: &str, needle: &str) {
        let r = parse_amount(&amount(currency, value)).expect_err("an invalid amount");
        assert_eq!(r.code, ReasonCode::Ff01);
        assert!(r.detail.contains(needle), "{:?} lacks {needle:?}", r.detail);
    }

    #[test]
    fn table_has_the_corridor_currencies_with_iso_codes() {
        let jpy = currency("JPY").expect("JPY");
        assert_eq!((jpy.numeric, jpy.exponent), (392, 0));
        let sgd = currency("SGD").expect("SGD");
        assert_eq!((sgd.numeric, sgd.exponent), (702, 2));
        let thb = currency("THB").expect("THB");
        assert_eq!((thb.numeric, thb.exponent), (764, 2));
        assert_eq!(
            currency("VND").map(|c| (c.numeric, c.exponent)),
            Some((704, 0))
        );
        assert_eq!(
            currency("KRW").map(|c| (c.numeric, c.exponent)),
            Some((410, 0))
        );
        assert_eq!(currency("USD").map(|c| c.numeric), Some(840));
        assert_eq!(currency_by_numeric(392), Some(jpy));
        assert_eq!(currency_by_numeric(702), Some(sgd));
        assert_eq!(currency("jpy"), None);
        assert_eq!(currency("XXX"), None);
        assert_eq!(currency_by_numeric(0), None);
    }

    #[test]
    fn table_codes_are_unique_well_formed_and_sorted() {
        for (i, c) in CURRENCIES.iter().enumerate() {
            assert!(c.alpha.len() == 3 && c.alpha.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(c.numeric > 0 && c.numeric < 1000, "{}", c.alpha);
            assert!(c.exponent <= EXPONENT_MAX, "{}", c.alpha);
            for d in &CURRENCIES[i + 1..] {
                assert!(c.alpha < d.alpha, "{} before {}", c.alpha, d.alpha);
                assert_ne!(c.numeric, d.numeric, "{} and {}", c.alpha, d.alpha);
            }
        }
    }

    #[test]
    fn parses_amounts_into_minor_units() {
        assert_eq!(parsed("JPY", "1500"), 1500);
        assert_eq!(parsed("JPY", "0"), 0);
        assert_eq!(parsed("SGD", "12.34"), 1234);
        assert_eq!(parsed("SGD", "12.3"), 1230);
        assert_eq!(parsed("SGD", "12"), 1200);
        assert_eq!(parsed("SGD", "0.05"), 5);
        assert_eq!(parsed("SGD", "0.00"), 0);
        assert_eq!(parsed("KWD", "1.234"), 1234);
        assert_eq!(parsed("JPY", &"9".repeat(38)), 10u128.pow(38) - 1);
    }

    #[test]
    fn refuses_malformed_amounts_naming_the_problem() {
        refused("JPY", "", "is empty");
        refused("JPY", "-5", "'-'");
        refused("JPY", "+5", "'+'");
        refused("JPY", "1e3", "'e'");
        refused("JPY", " 15", "' '");
        refused("JPY", "15 ", "' '");
        refused("JPY", "1,500", "','");
        refused("JPY", "١٥", "only ASCII digits");
        refused("JPY", "１５", "only ASCII digits");
        refused("JPY", "15.0", "at most 0 are allowed");
        refused("SGD", "12.345", "3 fraction digits; at most 2");
        refused("SGD", "12.", "no digit after");
        refused("SGD", ".5", "no digit before");
        refused("SGD", "1.2.3", "more than one '.'");
        refused("SGD", "012.30", "leading zero");
        refused("JPY", "00", "leading zero");
        refused("JPY", &"9".repeat(39), "more than 38 digits");
        refused("JPY", &"9".repeat(40), "longer than 38 digits");
        refused("SGD", &"9".repeat(38), "too large");
        refused("XYZ", "1", "unknown currency \"XYZ\"");
        refused("sgd", "1", "unknown currency");
        refused("", "1", "unknown currency");
    }

    #[test]
    fn refusal_quotes_long_input_bounded() {
        let long = "x".repeat(10_000);
        let r = parse_amount(&amount(&long, "1")).expect_err("unknown currency");
        assert!(r.detail.len() < 300, "{}", r.detail.len());
        assert!(r.detail.contains("10000 bytes"));
    }

    #[test]
    fn formats_exactly_exponent_fraction_digits() {
        let sgd = currency("SGD").expect("SGD");
        let jpy = currency("JPY").expect("JPY");
        let kwd = currency("KWD").expect("KWD");
        assert_eq!(format_amount(sgd, 1230).value, "12.30");
        assert_eq!(format_amount(sgd, 5).value, "0.05");
        assert_eq!(format_amount(sgd, 0).value, "0.00");
        assert_eq!(format_amount(jpy, 1500).value, "1500");
        assert_eq!(format_amount(jpy, 0).value, "0");
        assert_eq!(format_amount(kwd, 1).value, "0.001");
        assert_eq!(format_amount(sgd, 1230).currency, "SGD");
    }

    #[test]
    fn rates_parse_and_print_canonically() {
        let r = Rate::parse("0.0087").expect("rate");
        assert_eq!(r.scaled(), 8_700_000_000);
        assert_eq!(r.to_string(), "0.0087");
        assert_eq!(Rate::parse("115").expect("rate").to_string(), "115");
        assert_eq!(Rate::parse("115.50").expect("rate").to_string(), "115.5");
        assert_eq!(Rate::parse("0.000000000001").expect("rate").scaled(), 1);
        assert_eq!(
            Rate::parse("999999999999.999999999999")
                .expect("rate")
                .scaled(),
            RATE_SCALED_MAX
        );
    }

    #[test]
    fn rates_refuse_zero_signs_and_excess_digits() {
        for (text, needle) in [
            ("0", "is zero"),
            ("0.000", "is zero"),
            ("-1", "'-'"),
            ("1e-3", "'e'"),
            ("0.0000000000001", "13 fraction digits; at most 12"),
            ("1000000000000", "more than 12 integer digits"),
            ("", "is empty"),
            ("01.5", "leading zero"),
            ("1.", "no digit after"),
            ("1.5 ", "' '"),
            ("-100000000000000", "'-'"),
        ] {
            let r = Rate::parse(text).expect_err(text);
            assert_eq!(r.code, ReasonCode::Ff01);
            assert!(r.detail.contains(needle), "{text}: {}", r.detail);
            assert!(r.detail.contains("exchange rate"), "{}", r.detail);
        }
        assert_eq!(Rate::from_scaled(0), None);
        assert_eq!(Rate::from_scaled(RATE_SCALED_MAX + 1), None);
    }

    #[test]
    fn spread_is_taken_from_the_mid_rate_and_floored() {
        let mid = Rate::parse("0.0087").expect("rate");
        // 0.0087 × 0.9975 = 0.00867825
        assert_eq!(mid.with_spread(25).to_string(), "0.00867825");
        assert_eq!(mid.with_spread(0), mid);
        // 1e-12 × 0.9999 floors to zero: the spread never rounds in the customer's favour.
        assert_eq!(
            Rate::parse("0.000000000001")
                .expect("rate")
                .with_spread(1)
                .scaled(),
            0
        );
        assert_eq!(mid.with_spread(10_000).scaled(), 0);
        assert_eq!(mid.with_spread(u32::MAX).scaled(), 0);
        // 115 × 0.9999 = 114.9885 exactly.
        assert_eq!(
            Rate::parse("115").expect("rate").with_spread(1).to_string(),
            "114.9885"
        );
    }

    #[test]
    fn convert_floors_into_the_target_minor_unit() {
        let jpy = currency("JPY").expect("JPY");
        let sgd = currency("SGD").expect("SGD");
        let rate = Rate::parse("0.00867825").expect("rate");
        // 10,000 JPY × 0.00867825 = 86.7825 SGD → 8678 cents (floor), not 8679.
        assert_eq!(convert(10_000, jpy, rate, sgd), Ok(8678));
        // 1 SGD cent × 115 = 1.15 JPY → 1 JPY.
        assert_eq!(
            convert(1, sgd, Rate::parse("115").expect("rate"), jpy),
            Ok(1)
        );
        // 12.34 SGD × 114.9885 = 1418.95809 JPY → 1418.
        assert_eq!(
            convert(1234, sgd, Rate::parse("114.9885").expect("rate"), jpy),
            Ok(1418)
        );
        assert_eq!(convert(0, jpy, rate, sgd), Ok(0));
    }

    #[test]
    fn convert_overflow_is_ff01_not_a_panic() {
        let jpy = currency("JPY").expect("JPY");
        let sgd = currency("SGD").expect("SGD");
        let rate = Rate::parse("999999999999").expect("rate");
        let r = convert(u128::MAX, jpy, rate, sgd).expect_err("overflow");
        assert_eq!(r.code, ReasonCode::Ff01);
        assert!(r.detail.contains("overflows"), "{}", r.detail);
    }

    fn any_currency() -> impl Strategy<Value = &'static Currency> {
        (0..CURRENCIES.len()).prop_map(|i| &CURRENCIES[i])
    }

    proptest! {
        #[test]
        fn parse_of_format_is_identity(c in any_currency(), minor in 0u128..10u128.pow(38)) {
            let text = format_amount(c, minor);
            let (back, back_minor) = parse_amount(&text).expect("formatted amounts parse");
            prop_assert_eq!(back, c);
            prop_assert_eq!(back_minor, minor);
        }

        #[test]
        fn rate_parse_of_display_is_identity(scaled in 1u128..=RATE_SCALED_MAX) {
            let rate = Rate::from_scaled(scaled).expect("in range");
            prop_assert_eq!(Rate::parse(&rate.to_string()), Ok(rate));
        }

        #[test]
        fn convert_is_monotone_and_never_exceeds_the_exact_product(
            from in any_currency(),
            to in any_currency(),
            a in 0u128..10u128.pow(15),
            b in 0u128..10u128.pow(15),
            scaled in 1u128..10u128.pow(18),
        ) {
            let rate = Rate::from_scaled(scaled).expect("in range");
            let (low, high) = (a.min(b), a.max(b));
            let converted_low = convert(low, from, rate, to).expect("no overflow in range");
            let converted_high = convert(high, from, rate, to).expect("no overflow in range");
            prop_assert!(converted_low <= converted_high);
            // exact = high × scaled × 10^to / (10^12 × 10^from); floor means
            // converted × denominator <= numerator < (converted + 1) × denominator.
            let numerator = high * scaled * to.minor_per_major();
            let denominator = RATE_SCALE * from.minor_per_major();
            prop_assert!(converted_high * denominator <= numerator);
            prop_assert!(numerator < (converted_high + 1) * denominator);
        }

        #[test]
        fn spread_never_raises_the_rate(scaled in 1u128..=RATE_SCALED_MAX, bps in 0u32..20_000) {
            let mid = Rate::from_scaled(scaled).expect("in range");
            prop_assert!(mid.with_spread(bps).scaled() <= mid.scaled());
        }

        #[test]
        fn parse_amount_never_panics(currency in "[A-Z]{3}|.{0,4}", value in ".{0,50}") {
            let _ = parse_amount(&amount(&currency, &value));
            let _ = Rate::parse(&value);
        }
    }
}
