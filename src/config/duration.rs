//! Durations as the configuration writes them: an unsigned integer and one unit, `500ms`, `60s`,
//! `5m` or `1h`. Combinations (`1m30s`), fractions and spaces are refused, so every value has one
//! spelling. Pure: no I/O.

use std::time::Duration;

/// Why a duration could not be read. `Display` is the message after the setting's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Not `<integer><unit>`.
    Syntax {
        /// The text as written.
        text: String,
    },
    /// Too large to represent.
    Overflow {
        /// The text as written.
        text: String,
    },
    /// `0` where the setting needs a positive duration.
    Zero {
        /// The text as written.
        text: String,
    },
}

/// The units, longest suffix first so that `ms` is not read as `m`.
const UNITS: [(&str, u64); 4] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];

// === impl DurationError ===

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::Syntax { text } => {
                write!(f, "invalid duration {text:?} (use 500ms, 60s, 5m or 1h)")
            }
            DurationError::Overflow { text } => write!(f, "duration {text:?} is too large"),
            DurationError::Zero { text } => write!(f, "duration {text:?} must be greater than 0"),
        }
    }
}

/// Parses `500ms`, `60s`, `5m` or `1h`; `zero_ok` says whether `0s` is meaningful for the setting.
pub(crate) fn parse(text: &str, zero_ok: bool) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax {
        text: text.to_owned(),
    };
    let (digits, millis_per_unit) = UNITS
        .iter()
        .find_map(|(unit, ms)| text.strip_suffix(unit).map(|d| (d, *ms)))
        .ok_or_else(syntax)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    let millis = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis_per_unit))
        .ok_or_else(|| DurationError::Overflow {
            text: text.to_owned(),
        })?;
    if millis == 0 && !zero_ok {
        return Err(DurationError::Zero {
            text: text.to_owned(),
        });
    }
    Ok(Duration::from_millis(millis))
}

/// Writes `d` as the configuration would: `250ms`, seconds up to a minute (`60s`, as the
/// documented defaults are written), then the largest exact unit (`5m`, `2h`, `90m`), so that
/// [`parse`] reads it back. Sub-millisecond parts cannot come from [`parse`] and are dropped.
pub(crate) fn format(d: Duration) -> String {
    let millis = d.as_millis();
    if millis % 1000 != 0 {
        return format!("{millis}ms");
    }
    let secs = millis / 1000;
    if secs <= 60 || secs % 60 != 0 {
        return format!("{secs}s");
    }
    let mins = secs / 60;
    if mins % 60 == 0 {
        format!("{}h", mins / 60)
    } else {
        format!("{mins}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_is_read() {
        assert_eq!(parse("500ms", false), Ok(Duration::from_millis(500)));
        assert_eq!(parse("60s", false), Ok(Duration::from_secs(60)));
        assert_eq!(parse("5m", false), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h", false), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn zero_is_refused_unless_the_setting_allows_it() {
        assert_eq!(parse("0s", true), Ok(Duration::ZERO));
        assert_eq!(
            parse("0ms", false),
            Err(DurationError::Zero { text: "0ms".into() })
        );
    }

    #[test]
    fn other_spellings_are_refused() {
        for bad in [
            "",
            "60",
            "s",
            "5 minutes",
            "1m30s",
            "1.5s",
            "-1s",
            "+1s",
            "60S",
            " 60s",
            "1d",
        ] {
            assert_eq!(
                parse(bad, true),
                Err(DurationError::Syntax { text: bad.into() }),
                "{bad}"
            );
        }
    }

    #[test]
    fn overflow_is_refused() {
        let text = format!("{}h", u64::MAX);
        assert_eq!(parse(&text, true), Err(DurationError::Overflow { text }));
    }

    #[test]
    fn message_shows_the_accepted_forms() {
        let err = parse("5 minutes", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid duration "5 minutes" (use 500ms, 60s, 5m or 1h)"#
        );
    }

    #[test]
    fn format_writes_what_the_documentation_writes_and_reads_back() {
        for (d, s) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(60), "60s"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(5400), "90m"),
            (Duration::from_secs(7200), "2h"),
        ] {
            assert_eq!(format(d), s);
            assert_eq!(parse(s, true), Ok(d));
        }
    }
}
