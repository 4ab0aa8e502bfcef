//! Template periods (`pKIExpirationPeriod`, `pKIOverlapPeriod`): 8 bytes holding a
//! little-endian signed 64-bit count of 100 ns intervals, stored negative
//! ([MS-CRTD] 2.18, 2.20).

use std::fmt;

use thiserror::Error;

/// A span of time as a template states it, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    seconds: u64,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PeriodError {
    #[error("a period is 8 bytes, found {0}")]
    Length(usize),
    #[error("a period is stored as a negative count of 100 ns intervals, found {0}")]
    NotNegative(i64),
}

const TICKS_PER_SECOND: i64 = 10_000_000;

impl Period {
    pub const fn from_seconds(seconds: u64) -> Self {
        Period { seconds }
    }

    pub const fn from_days(days: u64) -> Self {
        Period {
            seconds: days * 86_400,
        }
    }

    pub fn seconds(self) -> u64 {
        self.seconds
    }

    pub fn duration(self) -> time::Duration {
        time::Duration::seconds(self.seconds.min(i64::MAX as u64) as i64)
    }

    /// Decodes the directory's 8 bytes. Zero is accepted (an empty period).
    pub fn from_bytes(b: &[u8]) -> Result<Self, PeriodError> {
        let arr: [u8; 8] = b.try_into().map_err(|_| PeriodError::Length(b.len()))?;
        let ticks = i64::from_le_bytes(arr);
        if ticks > 0 {
            return Err(PeriodError::NotNegative(ticks));
        }
        // i64::MIN cannot be negated; unsigned_abs covers it.
        Ok(Period {
            seconds: ticks.unsigned_abs() / TICKS_PER_SECOND as u64,
        })
    }

    pub fn to_bytes(self) -> [u8; 8] {
        let ticks = (self.seconds as i64).saturating_mul(TICKS_PER_SECOND);
        (-ticks).to_le_bytes()
    }
}

impl fmt::Display for Period {
    /// The way the Certificate Templates console speaks: "1 year", "6 weeks",
    /// "30 minutes"; falls back to the largest unit that divides evenly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 6] = [
            (365 * 86_400, "year"),
            (7 * 86_400, "week"),
            (86_400, "day"),
            (3_600, "hour"),
            (60, "minute"),
            (1, "second"),
        ];
        if self.seconds == 0 {
            return f.write_str("0 seconds");
        }
        let (size, name) = UNITS
            .iter()
            .copied()
            .find(|(size, _)| self.seconds.is_multiple_of(*size))
            .unwrap_or((1, "second"));
        let n = self.seconds / size;
        write!(f, "{n} {name}{}", if n == 1 { "" } else { "s" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        let cases: [(&[u8; 8], u64, &str); 5] = [
            (
                &[0x00, 0x40, 0x39, 0x87, 0x2e, 0xe1, 0xfe, 0xff],
                365 * 86_400,
                "1 year",
            ),
            (
                &[0x00, 0x80, 0x72, 0x0e, 0x5d, 0xc2, 0xfd, 0xff],
                730 * 86_400,
                "2 years",
            ),
            (
                &[0x00, 0x80, 0xa6, 0x0a, 0xff, 0xde, 0xff, 0xff],
                42 * 86_400,
                "6 weeks",
            ),
            (
                &[0x00, 0xc0, 0x1b, 0xd7, 0x7f, 0xfa, 0xff, 0xff],
                7 * 86_400,
                "1 week",
            ),
            (
                &[0x00, 0x40, 0x96, 0xd5, 0x36, 0xff, 0xff, 0xff],
                86_400,
                "1 day",
            ),
        ];
        for (bytes, seconds, text) in cases {
            let p = Period::from_bytes(bytes).unwrap();
            assert_eq!(p.seconds(), seconds);
            assert_eq!(p.to_string(), text);
            assert_eq!(&p.to_bytes(), bytes);
        }
    }

    #[test]
    fn sub_day_values() {
        let p = Period::from_seconds(1800);
        assert_eq!(Period::from_bytes(&p.to_bytes()).unwrap(), p);
        assert_eq!(p.to_string(), "30 minutes");
    }

    #[test]
    fn bad_values_are_errors() {
        assert_eq!(Period::from_bytes(&[0; 7]), Err(PeriodError::Length(7)));
        assert_eq!(Period::from_bytes(&[]), Err(PeriodError::Length(0)));
        assert!(matches!(
            Period::from_bytes(&1i64.to_le_bytes()),
            Err(PeriodError::NotNegative(1))
        ));
        assert!(Period::from_bytes(&i64::MIN.to_le_bytes()).is_ok());
    }
}
