//! `mentionbridge erase` and `mentionbridge export --author` (issue 14): one person's
//! data, found by their author key on one network, removed on request or handed over.

use crate::domain::customer::typed_network;
use crate::domain::priority::person_key;
use crate::domain::privacy::{hashed, Removal};
use crate::domain::Ticket;
use crate::ports::{hash_key, tickets_of_author, Store, StoreError};
use chrono::{DateTime, Utc};

/// Tickets read per page while a person's tickets are looked for.
const PAGE: usize = 1000;

/// The author key of `handle` on `platform` as typed (`mastodon`, `bluesky`, `x`, or
/// another network's name), as `/mentions note` and `who` name a person; `None` for an
/// empty handle.
pub fn author_of(platform: &str, handle: &str) -> Option<String> {
    let handle = handle.trim().trim_start_matches('@');
    if handle.is_empty() || platform.trim().is_empty() {
        return None;
    }
    Some(person_key(&typed_network(platform), handle))
}

/// What an erasure did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub tickets: u64,
    pub texts: u64,
    pub identities: u64,
    pub notes: u64,
}

/// Erase every ticket of `author` (see [`author_of`]): text and identity leave each
/// ticket, open ones too (they keep their stage), with the removal recorded on each
/// ticket's trail by the person's keyed hash alone; the agents' notes about the person
/// go too.
pub async fn erase(
    store: &dyn Store,
    author: &str,
    now: DateTime<Utc>,
) -> Result<Erased, StoreError> {
    let tickets = tickets_of_author(store, author, PAGE).await?;
    let mut done = Erased::default();
    if !tickets.is_empty() {
        let key = hash_key(store).await?;
        for t in &tickets {
            let before = t.anonymised.as_ref();
            done.tickets += 1;
            done.texts += u64::from(!before.is_some_and(|a| a.text));
            done.identities += u64::from(!before.is_some_and(|a| a.identity));
            crate::runtime::retention::remove(store, t, Removal::ALL, "erasure", &key, now).await?;
        }
    }
    done.notes = store.forget_person_notes(author).await?;
    store.flush().await?;
    Ok(done)
}

/// Every ticket `author` has (see [`author_of`]), as stored, also those erased before
/// under the desk's hash key (then only what the desk kept).
pub async fn tickets_of(store: &dyn Store, author: &str) -> Result<Vec<Ticket>, StoreError> {
    let mut tickets = tickets_of_author(store, author, PAGE).await?;
    if let Some(key) = store
        .state(crate::domain::privacy::HASH_KEY_STATE)
        .await?
        .as_deref()
        .and_then(crate::domain::privacy::hash_key_of)
    {
        tickets.extend(tickets_of_author(store, &hashed(&key, author), PAGE).await?);
        tickets.sort_by_key(|t| t.id);
    }
    Ok(tickets)
}

/// The line `mentionbridge erase` prints.
pub fn erased_line(done: &Erased, platform: &str, handle: &str) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "erased {} of {} @{}: {}, {}, {}",
        plural(done.tickets, "ticket", "tickets"),
        platform.trim().to_ascii_lowercase(),
        handle.trim().trim_start_matches('@'),
        plural(done.texts, "text", "texts"),
        plural(done.identities, "identity", "identities"),
        plural(done.notes, "note", "notes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_is_named_as_intake_files_them() {
        assert_eq!(
            author_of("Mastodon", " @Zed@Example.social").as_deref(),
            Some("mastodon/zed@example.social")
        );
        assert_eq!(
            author_of("forum", "kim").as_deref(),
            Some("other:forum/kim")
        );
        assert_eq!(
            author_of("other:forum", "kim").as_deref(),
            Some("other:forum/kim")
        );
        assert_eq!(author_of("mastodon", "@"), None);
        assert_eq!(author_of(" ", "kim"), None);
    }

    #[test]
    fn the_printed_line_counts_what_went() {
        let done = Erased {
            tickets: 3,
            texts: 3,
            identities: 2,
            notes: 1,
        };
        assert_eq!(
            erased_line(&done, "Mastodon", "@x"),
            "erased 3 tickets of mastodon @x: 3 texts, 2 identities, 1 note"
        );
    }
}
