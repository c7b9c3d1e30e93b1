//! `[retention]` (issue 14): how many days each kind of a closed ticket's personal data
//! is kept, counted from when the ticket closed. An absent section or key: kept. The
//! retention duty (`runtime::retention`) anonymises what is past its days.

use super::Validator;
use crate::domain::privacy::Retention;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    customer_text_days: Option<i64>,
    identity_days: Option<i64>,
    /// How often the duty looks, in minutes.
    #[serde(default = "default_every")]
    check_every_minutes: i64,
    // Hook: notes about a person and survey answers add their `*_days` keys here.
}

fn default_every() -> i64 {
    60
}

/// The validated `[retention]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    pub policy: Retention,
    pub check_every: std::time::Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            policy: Retention::default(),
            check_every: std::time::Duration::from_secs(3600),
        }
    }
}

/// The most days a key takes: about a hundred years.
const MAX_DAYS: i64 = 36_500;

impl Validator<'_> {
    pub(super) fn retention(&mut self, raw: Option<&RawRetention>) -> RetentionConfig {
        let Some(raw) = raw else {
            return RetentionConfig::default();
        };
        const S: &str = "retention";
        let days = |v: &mut Validator, key: &str, value: Option<i64>| -> Option<u32> {
            let value = value?;
            if (0..=MAX_DAYS).contains(&value) {
                u32::try_from(value).ok()
            } else {
                v.problem(
                    S,
                    key,
                    format!("expected days between 0 and {MAX_DAYS} (leave the key out to keep the data), found {value}"),
                );
                None
            }
        };
        let customer_text_days = days(self, "customer_text_days", raw.customer_text_days);
        let identity_days = days(self, "identity_days", raw.identity_days);
        if !(1..=10_080).contains(&raw.check_every_minutes) {
            self.problem(
                S,
                "check_every_minutes",
                format!(
                    "expected minutes between 1 and 10080, found {}",
                    raw.check_every_minutes
                ),
            );
        }
        RetentionConfig {
            policy: Retention {
                customer_text_days,
                identity_days,
            },
            check_every: std::time::Duration::from_secs(
                60 * raw.check_every_minutes.clamp(1, 10_080) as u64,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused_at, env_all, parse, GOOD};
    use crate::domain::privacy::Retention;

    #[test]
    fn without_the_section_everything_is_kept() {
        let cfg = parse(GOOD, &env_all).expect("good config");
        assert_eq!(cfg.retention.policy, Retention::default());
    }

    #[test]
    fn days_per_kind_are_read() {
        let text = format!("{GOOD}\n[retention]\ncustomer_text_days = 30\nidentity_days = 90\n");
        let cfg = parse(&text, &env_all).expect("good config");
        assert_eq!(cfg.retention.policy.customer_text_days, Some(30));
        assert_eq!(cfg.retention.policy.identity_days, Some(90));
    }

    #[test]
    fn negative_days_are_refused_at_their_line() {
        let text = format!("{GOOD}\n[retention]\ncustomer_text_days = -3\n");
        assert_refused_at(
            &text,
            "customer_text_days = -3",
            "retention.customer_text_days",
            "expected days",
        );
    }
}
