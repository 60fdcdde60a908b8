//! Time as an argument: the verifier never reads the clock (RFC 5280 §6.1.1(b) makes the
//! validation time an input), so tests and auditors can pin it.

use serde::{Deserialize, Serialize};

/// Seconds since 1970-01-01T00:00:00Z, UTC. Negative values are before the epoch (a
/// GeneralizedTime may encode them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// Parses an RFC 3339 timestamp such as `2030-01-01T00:00:00Z`.
    pub fn parse_rfc3339(text: &str) -> Result<Self, time::error::Parse> {
        let parsed =
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)?;
        Ok(Self(parsed.unix_timestamp()))
    }

    /// Formats as RFC 3339 in UTC, for explanations; falls back to raw seconds when the
    /// value is outside the range `time` can represent.
    pub fn to_rfc3339(self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| format!("@{}", self.0))
    }
}

impl std::fmt::Display for UnixTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_rfc3339_round_trip() {
        let t = UnixTime::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        assert_eq!(t, UnixTime(1_893_456_000));
        assert_eq!(t.to_rfc3339(), "2030-01-01T00:00:00Z");
    }

    #[test]
    fn rejects_timestamp_without_offset() {
        assert!(UnixTime::parse_rfc3339("2030-01-01T00:00:00").is_err());
    }
}
