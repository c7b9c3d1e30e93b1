//! The daily request budget: every X request counted per UTC day in the store, and logged.
//! Posts the filtered stream delivers cost money too ("Posts: Read"); they are counted
//! on their own per UTC day (`x:stream-posts:<date>`) so the bill can be read from the store.

use crate::ports::{SharedStore, Store};
use chrono::{NaiveDate, Utc};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How often the day's request count is logged at info level (besides when it runs out).
const BUDGET_LOG_EVERY: Duration = Duration::from_secs(15 * 60);

/// Requests made on `day` (UTC), as the store counted them.
struct Day {
    day: NaiveDate,
    used: u32,
    last_logged: Option<Instant>,
}

/// The day's requests against `x.daily_request_budget`, shared by everything that calls
/// X for this account (the poll, the replies, the filtered stream).
pub(super) struct Budget {
    store: SharedStore,
    limit: u32,
    today: Mutex<Day>,
}

impl Budget {
    /// The budget of `limit` requests a day, starting from what the store counted today.
    pub(super) async fn open(store: SharedStore, limit: u32) -> Budget {
        let day = Utc::now().date_naive();
        let used = read_count(store.as_ref(), day).await;
        Budget::counted(store, limit, day, used)
    }

    /// The budget of `limit` requests a day, `used` of them spent on `day`.
    pub(super) fn counted(store: SharedStore, limit: u32, day: NaiveDate, used: u32) -> Budget {
        Budget {
            store,
            limit,
            today: Mutex::new(Day {
                day,
                used,
                last_logged: None,
            }),
        }
    }

    pub(super) fn limit(&self) -> u32 {
        self.limit
    }

    /// Today's budget, rolled over at 00:00 UTC.
    /// At 00:00 UTC the budget starts again from what the store counted for the new day
    /// (read without holding the lock across the store call).
    async fn roll_over(&self) -> NaiveDate {
        let today = Utc::now().date_naive();
        if self.today.lock().expect("budget lock").day == today {
            return today;
        }
        let stored = read_count(self.store.as_ref(), today).await;
        let mut b = self.today.lock().expect("budget lock");
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
            let mut b = self.today.lock().expect("budget lock");
            b.used = match &counted {
                Ok(n) => u32::try_from(*n).unwrap_or(u32::MAX).max(b.used),
                Err(_) => b.used.saturating_add(1),
            };
            b.used
        };
        if let Err(e) = counted {
            tracing::warn!(error = %e, "cannot record the X request count; counting here meanwhile");
        }
        (used, self.limit)
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
        self.today.lock().expect("budget lock").used
    }

    /// Whether today's requests are all spent.
    pub(super) async fn spent(&self) -> bool {
        self.used_today().await >= self.limit
    }

    pub(super) async fn log(&self, force: bool) {
        let budget = self.limit;
        let used = self.used_today().await;
        let due = {
            let mut b = self.today.lock().expect("budget lock");
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

    /// Count `posts` the filtered stream delivered (each one is billed as a post read),
    /// in the store for today (UTC); the day's total, when the store could count it.
    pub(super) async fn count_streamed_posts(&self, posts: u64) -> Option<u64> {
        let key = streamed_posts_key(Utc::now().date_naive());
        match self.store.count_up(&key, posts).await {
            Ok(total) => Some(total),
            Err(e) => {
                tracing::warn!(error = %e, "cannot record the count of posts X streamed");
                None
            }
        }
    }
}

/// Whether today's (UTC) X requests, as the store counted them, reach `limit`: a bulk
/// answer waits for the next day rather than spend what polling needs.
pub async fn spent_today(store: &dyn Store, limit: u32) -> bool {
    read_count(store, Utc::now().date_naive()).await >= limit
}

fn budget_key(day: NaiveDate) -> String {
    format!("x:budget:{}", day.format("%Y-%m-%d"))
}

fn streamed_posts_key(day: NaiveDate) -> String {
    format!("x:stream-posts:{}", day.format("%Y-%m-%d"))
}

async fn read_count(store: &dyn Store, day: NaiveDate) -> u32 {
    let stored = store.state(&budget_key(day)).await.ok().flatten();
    u32::try_from(crate::ports::count_of(stored.as_deref())).unwrap_or(0)
}

/// How long until the UTC day ends (and the budget starts again).
pub(super) fn until_the_day_ends() -> Duration {
    let now = Utc::now();
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    (midnight - now).to_std().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_is_counted_per_utc_day_in_the_store() {
        let store: SharedStore = std::sync::Arc::new(crate::store::SledStore::temporary().unwrap());
        let budget = Budget::open(store.clone(), 10).await;
        assert_eq!(budget.count_request().await, (1, 10));
        assert_eq!(budget.count_request().await, (2, 10));
        let key = budget_key(Utc::now().date_naive());
        assert_eq!(store.state(&key).await.unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(read_count(store.as_ref(), Utc::now().date_naive()).await, 2);
        // A second handle on the same store (another replica) starts from the count.
        let again = Budget::open(store.clone(), 10).await;
        assert_eq!(again.used_today().await, 2);
        assert!(!again.spent().await);
    }

    #[tokio::test]
    async fn streamed_posts_are_counted_apart_from_requests() {
        let store: SharedStore = std::sync::Arc::new(crate::store::SledStore::temporary().unwrap());
        let budget = Budget::open(store.clone(), 10).await;
        assert_eq!(budget.count_streamed_posts(3).await, Some(3));
        assert_eq!(budget.count_streamed_posts(2).await, Some(5));
        assert_eq!(budget.used_today().await, 0, "posts are not requests");
        let key = streamed_posts_key(Utc::now().date_naive());
        assert_eq!(store.state(&key).await.unwrap().as_deref(), Some(&b"5"[..]));
    }

    #[test]
    fn the_day_ends_within_a_day() {
        let left = until_the_day_ends();
        assert!(left > Duration::ZERO && left <= Duration::from_secs(86_400));
    }
}
