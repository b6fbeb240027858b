//! The windows a quota counts in. Calendar days and months are UTC, so every replica (and the
//! client reading `RateLimit-Reset`) agrees on when a quota starts again; fixed durations are
//! aligned to the Unix epoch for the same reason.

/// How long a quota lasts before it starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    Month,
    /// A fixed number of milliseconds, windows aligned to the epoch.
    Fixed(u64),
}

impl Period {
    /// The window holding `now_ms` (milliseconds since the epoch) as `[start, end)`.
    pub fn window(self, now_ms: u64) -> (u64, u64) {
        const DAY: u64 = 86_400_000;
        match self {
            Period::Fixed(len) => {
                let len = len.max(1);
                let start = now_ms - now_ms % len;
                (start, start + len)
            }
            Period::Day => {
                let start = now_ms - now_ms % DAY;
                (start, start + DAY)
            }
            Period::Month => {
                let days = (now_ms / DAY) as i64;
                let (y, m, _) = civil_from_days(days);
                let start = days_from_civil(y, m, 1) as u64 * DAY;
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let end = days_from_civil(ny, nm, 1) as u64 * DAY;
                (start, end)
            }
        }
    }

    /// The window's length for `RateLimit-Policy`'s `w` (seconds); a month counts 30 days.
    pub fn nominal_secs(self) -> u64 {
        match self {
            Period::Day => 86_400,
            Period::Month => 30 * 86_400,
            Period::Fixed(ms) => ms.div_ceil(1000).max(1),
        }
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    #[test]
    fn calendar_windows() {
        // 2024-02-15 12:00 UTC: a leap-year February.
        let t = 1_707_998_400_000;
        let (s, e) = Period::Month.window(t);
        assert_eq!(s, 1_706_745_600_000, "2024-02-01");
        assert_eq!(e - s, 29 * DAY);
        let (s, e) = Period::Day.window(t);
        assert_eq!((s, e), (1_707_955_200_000, 1_707_955_200_000 + DAY));
        // December rolls into the next year.
        let dec = 1_702_641_600_000; // 2023-12-15 12:00 UTC
        let (s, e) = Period::Month.window(dec);
        assert_eq!(s, 1_701_388_800_000, "2023-12-01");
        assert_eq!(e, 1_704_067_200_000, "2024-01-01");
        assert_eq!(Period::Fixed(2000).window(5_500), (4_000, 6_000));
    }

    proptest::proptest! {
        #[test]
        fn every_instant_lies_in_its_window(now in 0u64..8_000_000_000_000, len in 1u64..10_000_000) {
            for p in [Period::Day, Period::Month, Period::Fixed(len)] {
                let (s, e) = p.window(now);
                proptest::prop_assert!(s <= now && now < e);
                // The next window starts where this one ends.
                proptest::prop_assert_eq!(p.window(e).0, e);
            }
        }

        #[test]
        fn civil_round_trip(days in -100_000i64..200_000) {
            let (y, m, d) = civil_from_days(days);
            proptest::prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
