//! How old a signed request may be. Slack, Discord and the mentions webhook all sign a
//! timestamp with the body; a request whose timestamp is far from now is refused, so a
//! captured request cannot be replayed.

/// Why a signed request's timestamp is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staleness {
    NotATime,
    /// Seconds away from now.
    TooOld(i64),
}

/// Signed requests older (or newer) than five minutes are refused.
pub fn check_request_age(timestamp: &str, now_unix: i64) -> Result<(), Staleness> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| Staleness::NotATime)?;
    // A hostile timestamp (i64::MIN, say) must not overflow the subtraction.
    let skew = now_unix.saturating_sub(ts).saturating_abs();
    if skew > 300 {
        return Err(Staleness::TooOld(skew));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_minutes_either_way_is_fresh_and_beyond_is_refused() {
        assert_eq!(check_request_age("1000", 1300), Ok(()));
        assert_eq!(check_request_age(" 1300 ", 1000), Ok(()));
        assert_eq!(check_request_age("1000", 1301), Err(Staleness::TooOld(301)));
        assert_eq!(check_request_age("soon", 1000), Err(Staleness::NotATime));
        assert_eq!(
            check_request_age(&i64::MIN.to_string(), i64::MAX),
            Err(Staleness::TooOld(i64::MAX))
        );
    }
}
