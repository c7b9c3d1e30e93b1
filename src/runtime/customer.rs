//! Who the customer behind a ticket is, read from the store for their cards and for
//! `/mentions who`: their earlier tickets on the same network (one index read, then
//! the few tickets a card lists with their cards) and the team's notes about them.

use crate::domain::customer::{Customer, CustomerHistory, CONTACTS_READ};
use crate::domain::TicketId;
use crate::ports::{Store, StoreError};

/// The person known by `author_key` (see `domain::priority::author_key`) as a card of
/// ticket `current` shows them: only the tickets before it count as earlier
/// (`TicketId(u64::MAX)`: every ticket of theirs).
pub async fn customer_of(
    store: &dyn Store,
    author_key: &str,
    current: TicketId,
) -> Result<Customer, StoreError> {
    let contacts = store.author_contacts(author_key, CONTACTS_READ).await?;
    let (listed, more) = CustomerHistory::earlier_of(current, &contacts);
    let mut earlier = Vec::with_capacity(listed.len());
    for id in listed {
        if let Some(ticket) = store.ticket(id).await? {
            let cards = store.cards(id).await?;
            earlier.push((ticket, cards));
        }
    }
    Ok(Customer {
        history: CustomerHistory::build(earlier, more),
        notes: store.person_notes(author_key).await?,
    })
}
