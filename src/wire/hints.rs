//! How long to wait before the next try at a platform. Every wait a platform hints at (a
//! `Retry-After`, a rate-limit reset) is read here, by one parser that never panics and
//! keeps the answer between a second and a day: a header is outside data, and neither
//! `Retry-After: 1e300` nor a reset already past may stall a job forever or loop hot.

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use std::time::Duration;

/// The longest a platform's hint may hold work back. No window we know of is longer
/// (Mastodon's posting window is 3 hours, X's budgets are daily); a longer one is a
/// broken or hostile header, and waiting a day is the most we grant it.
pub const LONGEST_HINT: Duration = Duration::from_secs(24 * 60 * 60);
/// The shortest: a hint of zero (or a reset already past) repeated on every answer
/// would otherwise make the next try immediate, again and again.
pub const SHORTEST_HINT: Duration = Duration::from_secs(1);

/// How a header says when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintForm {
    /// `Retry-After`: delay-seconds (Discord sends fractions) or an HTTP-date.
    RetryAfter,
    /// The epoch second the window resets (X `x-rate-limit-reset`, Bluesky
    /// `ratelimit-reset`); fractions allowed (Discord's `X-RateLimit-Reset`).
    EpochSeconds,
    /// An RFC 3339 instant (Mastodon's `X-RateLimit-Reset`).
    Rfc3339,
}

/// The wait a header hints at, if it says anything we can read. Anything unreadable
/// (not a number, NaN, negative seconds, a malformed date) is no hint at all, so our
/// own backoff applies; anything readable is clamped to [`SHORTEST_HINT`, `LONGEST_HINT`].
pub fn hinted_wait(value: Option<&str>, form: HintForm, now: DateTime<Utc>) -> Option<Duration> {
    let value = value?.trim();
    let secs_from_now = |at: DateTime<Utc>| (at - now).num_milliseconds() as f64 / 1000.0;
    let secs = match form {
        HintForm::RetryAfter => match value.parse::<f64>() {
            // NaN and negatives fail this; +inf is merely huge.
            Ok(s) if s >= 0.0 => s,
            Ok(_) => return None,
            Err(_) => secs_from_now(DateTime::parse_from_rfc2822(value).ok()?.to_utc()),
        },
        HintForm::EpochSeconds => {
            let at = value.parse::<f64>().ok().filter(|s| !s.is_nan())?;
            at - now.timestamp_millis() as f64 / 1000.0
        }
        HintForm::Rfc3339 => secs_from_now(DateTime::parse_from_rfc3339(value).ok()?.to_utc()),
    };
    Some(clamp_secs(secs))
}

/// [`hinted_wait`] for a header of an answer.
pub fn header_wait(
    headers: &HeaderMap,
    name: &str,
    form: HintForm,
    now: DateTime<Utc>,
) -> Option<Duration> {
    hinted_wait(headers.get(name).and_then(|v| v.to_str().ok()), form, now)
}

/// A hint given as a number of seconds in a body (Discord's `retry_after`).
pub fn hinted_secs(secs: f64) -> Option<Duration> {
    (secs >= 0.0).then(|| clamp_secs(secs))
}

/// A hint a client library already parsed (slack-morphism's `Retry-After`).
pub fn clamp_hint(hint: Duration) -> Duration {
    hint.clamp(SHORTEST_HINT, LONGEST_HINT)
}

fn clamp_secs(secs: f64) -> Duration {
    // NaN never reaches here; infinite and huge values clamp before the conversion,
    // which would panic on them.
    let secs = secs.clamp(SHORTEST_HINT.as_secs_f64(), LONGEST_HINT.as_secs_f64());
    Duration::from_secs_f64(secs)
}

/// Exponential backoff with a cap; the platform's Retry-After wins when it says more.
pub fn backoff(attempt: u32, hint: Option<Duration>, cap: Duration) -> Duration {
    let exp = Duration::from_millis(500u64.saturating_mul(1u64 << attempt.min(16)));
    let base = exp.min(cap);
    match hint {
        // Hints are clamped where they are parsed; clamp again for those built in code.
        Some(h) => h.clamp(Duration::from_millis(100), LONGEST_HINT.max(cap)),
        None => base,
    }
}

/// The instant `wait` after `now`, saturating instead of failing: a wait too long for
/// the calendar must never turn into "now".
pub fn later(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|w| now.checked_add_signed(w))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn backoff_grows_then_caps_and_honours_the_platform_hint() {
        let cap = Duration::from_secs(60);
        assert_eq!(backoff(0, None, cap), Duration::from_millis(500));
        assert_eq!(backoff(3, None, cap), Duration::from_secs(4));
        assert_eq!(backoff(30, None, cap), cap);
        assert_eq!(
            backoff(0, Some(Duration::from_secs(7)), cap),
            Duration::from_secs(7)
        );
        // A hint longer than our cap is still honoured: the platform knows best.
        assert_eq!(
            backoff(0, Some(Duration::from_secs(90)), cap),
            Duration::from_secs(90)
        );
        // ... up to a day.
        assert_eq!(backoff(0, Some(Duration::MAX), cap), LONGEST_HINT);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_ignores_nonsense() {
        let ra = |v: &str| hinted_wait(Some(v), HintForm::RetryAfter, now());
        assert_eq!(ra("2"), Some(Duration::from_secs(2)));
        assert_eq!(ra(" 2.5 "), Some(Duration::from_millis(2500)));
        assert_eq!(
            ra("Sun, 01 Mar 2026 12:00:30 GMT"),
            Some(Duration::from_secs(30))
        );
        for nonsense in ["soon", "", "-5", "NaN", "nan", "-inf", "0x10", "1,5"] {
            assert_eq!(ra(nonsense), None, "{nonsense:?}");
        }
        assert_eq!(hinted_wait(None, HintForm::RetryAfter, now()), None);
    }

    #[test]
    fn huge_hints_wait_a_day_and_zero_or_past_ones_wait_a_second() {
        let ra = |v: &str| hinted_wait(Some(v), HintForm::RetryAfter, now());
        // Each of these panicked (from_secs_f64) or came out as zero before.
        for huge in [
            "1e300",
            "inf",
            "18446744073709551616",
            "99999999999999999999999",
        ] {
            assert_eq!(ra(huge), Some(LONGEST_HINT), "{huge:?}");
        }
        assert_eq!(ra("0"), Some(SHORTEST_HINT));
        assert_eq!(ra("Mon, 01 Jan 1990 00:00:00 GMT"), Some(SHORTEST_HINT));
        assert_eq!(ra("Fri, 31 Dec 9999 23:59:59 GMT"), Some(LONGEST_HINT));
        assert_eq!(hinted_secs(1e300), Some(LONGEST_HINT));
        assert_eq!(hinted_secs(f64::NAN), None);
        assert_eq!(hinted_secs(-1.0), None);
        assert_eq!(clamp_hint(Duration::from_secs(u64::MAX)), LONGEST_HINT);
        assert_eq!(clamp_hint(Duration::ZERO), SHORTEST_HINT);
    }

    #[test]
    fn resets_read_epoch_seconds_and_rfc3339_and_never_panic() {
        let epoch = |v: &str| hinted_wait(Some(v), HintForm::EpochSeconds, now());
        let in_90 = (now().timestamp() + 90).to_string();
        assert_eq!(epoch(&in_90), Some(Duration::from_secs(90)));
        assert_eq!(epoch("0"), Some(SHORTEST_HINT));
        for odd in [
            "-9223372036854775808",
            "9223372036854775807",
            "1e300",
            "-1e300",
        ] {
            let wait = epoch(odd).expect("a number is a hint");
            assert!((SHORTEST_HINT..=LONGEST_HINT).contains(&wait), "{odd:?}");
        }
        assert_eq!(epoch("soon"), None);
        assert_eq!(epoch("NaN"), None);

        let rfc = |v: &str| hinted_wait(Some(v), HintForm::Rfc3339, now());
        assert_eq!(
            rfc("2026-03-01T12:05:00.000Z"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(rfc("+262143-12-31T23:59:59Z"), None);
        assert_eq!(rfc("9999-12-31T23:59:59Z"), Some(LONGEST_HINT));
        assert_eq!(rfc("1970-01-01T00:00:00Z"), Some(SHORTEST_HINT));
        assert_eq!(rfc("tomorrow"), None);
    }

    #[test]
    fn a_wait_too_long_for_the_calendar_saturates_instead_of_becoming_now() {
        assert_eq!(later(now(), Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            later(now(), Duration::from_secs(60)),
            now() + chrono::Duration::seconds(60)
        );
    }
}
