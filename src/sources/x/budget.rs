//! The daily request budget: every X request counted per UTC day in the store, and logged.

use super::X;
use crate::ports::Store;
use chrono::{NaiveDate, Utc};
use std::time::Duration;
use tokio::time::Instant;

/// How often the day's request count is logged at info level (besides when it runs out).
const BUDGET_LOG_EVERY: Duration = Duration::from_secs(15 * 60);

/// Requests made on `day` (UTC), as the store counted them.
pub(super) struct Budget {
    day: NaiveDate,
    used: u32,
    last_logged: Option<Instant>,
}

impl Budget {
    pub(super) fn new(day: NaiveDate, used: u32) -> Budget {
        Budget {
            day,
            used,
            last_logged: None,
        }
    }
}

impl X {
    /// Today's budget, rolled over at 00:00 UTC.
    /// At 00:00 UTC the budget starts again from what the store counted for the new day
    /// (read without holding the lock across the store call).
    async fn roll_over(&self) -> NaiveDate {
        let today = Utc::now().date_naive();
        if self.budget.lock().expect("budget lock").day == today {
            return today;
        }
        let stored = read_count(self.store.as_ref(), today).await;
        let mut b = self.budget.lock().expect("budget lock");
        if b.day != today {
            b.day = today;
            b.used = stored;
            b.last_logged = None;
        }
        today
    }

    /// Count one request against today's budget. The count lives in the store, so
    /// replicas sharing it spend one budget between them.
    pub(super) async fn count_request(&self) -> (u32, u32) {
        let today = self.roll_over().await;
        let counted = self.store.count_up(&budget_key(today), 1).await;
        let used = {
            let mut b = self.budget.lock().expect("budget lock");
            b.used = match &counted {
                Ok(n) => u32::try_from(*n).unwrap_or(u32::MAX).max(b.used),
                Err(_) => b.used.saturating_add(1),
            };
            b.used
        };
        if let Err(e) = counted {
            tracing::warn!(error = %e, "cannot record the X request count; counting here meanwhile");
        }
        (used, self.config.daily_request_budget)
    }

    /// Count a request of the API proper, saying so when it spends the day's budget.
    pub(super) async fn count_call(&self) {
        let (used, budget) = self.count_request().await;
        if used == budget {
            tracing::warn!(
                budget,
                "X daily request budget spent: polling pauses until 00:00 UTC; replies are still sent"
            );
        } else if used > budget {
            tracing::info!(
                requests_today = used,
                budget,
                "X request over the daily budget (a reply)"
            );
        }
    }

    /// Requests made today, after rolling over at 00:00 UTC.
    pub(super) async fn used_today(&self) -> u32 {
        self.roll_over().await;
        self.budget.lock().expect("budget lock").used
    }

    pub(super) async fn log_budget(&self, force: bool) {
        let budget = self.config.daily_request_budget;
        let used = self.used_today().await;
        let due = {
            let mut b = self.budget.lock().expect("budget lock");
            let due = force
                || b.last_logged
                    .is_none_or(|t| t.elapsed() >= BUDGET_LOG_EVERY);
            if due {
                b.last_logged = Some(Instant::now());
            }
            due
        };
        if due {
            tracing::info!(
                requests_today = used,
                remaining = budget.saturating_sub(used),
                budget,
                "X request budget (UTC day)"
            );
        }
    }
}

fn budget_key(day: NaiveDate) -> String {
    format!("x:budget:{}", day.format("%Y-%m-%d"))
}

pub(super) async fn read_count(store: &dyn Store, day: NaiveDate) -> u32 {
    let stored = store.state(&budget_key(day)).await.ok().flatten();
    u32::try_from(crate::ports::count_of(stored.as_deref())).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::test_client as client;
    use super::*;

    #[tokio::test]
    async fn the_budget_is_counted_per_utc_day_in_the_store() {
        let x = client();
        assert_eq!(x.count_request().await, (1, 10));
        assert_eq!(x.count_request().await, (2, 10));
        let key = budget_key(Utc::now().date_naive());
        assert_eq!(
            x.store.state(&key).await.unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(
            read_count(x.store.as_ref(), Utc::now().date_naive()).await,
            2
        );
    }
}
