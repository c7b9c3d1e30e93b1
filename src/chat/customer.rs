//! Who the customer is, as every surface words it: the short block on a ticket's card
//! (their earlier tickets on the same network, links to those cards, open ones flagged,
//! the team's latest notes about them) and the private `/mentions who` answer. The links
//! are ours (each surface says where its own cards live); everything a customer or an
//! agent wrote goes through the surface's `Markup`, so it never pings or links.

use super::Markup;
use crate::domain::customer::{stamp, Customer, EarlierTicket, PersonNote};
use crate::domain::CardRef;

/// Where a card lives on the surface rendering (`None`: another surface's card, or no
/// address known).
pub type CardLink<'a> = &'a dyn Fn(&CardRef) -> Option<String>;

/// How long a note may run on a card (`/mentions who` shows it whole, within the
/// message's own limit).
const NOTE_ON_CARD: usize = 300;

/// The lines a card shows about its customer, each ready to put in a block as it is:
/// the summary, the earlier cards, then the newest notes. None for a first contact
/// nobody wrote about.
pub fn card_lines(customer: &Customer, m: &dyn Markup, link: CardLink) -> Vec<String> {
    let mut lines = Vec::new();
    let history = &customer.history;
    if let Some(summary) = history.summary() {
        lines.push(format!("🗂 {}", m.escape(&summary)));
        let listed: Vec<String> = history
            .earlier
            .iter()
            .map(|e| earlier_label(e, m, link))
            .collect();
        lines.push(format!("Earlier: {}", listed.join(" · ")));
    }
    for note in customer.latest_notes() {
        lines.push(note_line(note, m, NOTE_ON_CARD));
    }
    lines
}

/// `/mentions who`: everything the desk knows about the person, for one agent's eyes:
/// their tickets with links (open ones flagged) and every note, oldest first.
pub fn who_text(
    person: &str,
    customer: &Customer,
    m: &dyn Markup,
    link: CardLink,
    max_note: usize,
) -> String {
    let mut out = m.bold(&m.escape(person));
    let history = &customer.history;
    match history.summary() {
        None => out.push_str("\nNo tickets from them yet."),
        Some(summary) => {
            out.push_str(&format!("\n{}", m.escape(&summary)));
            for e in &history.earlier {
                out.push_str(&format!(
                    "\n• {} · received {}",
                    earlier_label(e, m, link),
                    stamp(e.received)
                ));
            }
            if history.more > 0 {
                out.push_str(&format!("\n• and {} older", history.more));
            }
        }
    }
    if customer.notes.is_empty() {
        out.push_str("\nNo notes about them.");
    } else {
        out.push_str(&format!("\n{}", m.bold("Notes")));
        for note in &customer.notes {
            out.push_str(&format!(
                "\n• {} · {}",
                stamp(note.at),
                note_line(note, m, max_note)
            ));
        }
    }
    out
}

/// "#7 Resolved", linked to its card here when it has one, flagged when still open.
fn earlier_label(e: &EarlierTicket, m: &dyn Markup, link: CardLink) -> String {
    let label = format!("#{} {}", e.id, e.state);
    let shown = match e.cards.iter().find_map(link) {
        Some(url) => m.raw_link(&url, &m.escape(&label)),
        None => m.escape(&label),
    };
    if e.open {
        format!("{shown} {}", m.bold("(still open)"))
    } else {
        shown
    }
}

/// "Note from ana: …", the agent named without a ping and the text escaped.
fn note_line(note: &PersonNote, m: &dyn Markup, max: usize) -> String {
    format!(
        "📝 Note from {}: {}",
        m.name(&note.by),
        m.fit(&note.text.replace('\n', " "), max).0
    )
}
