//! The team chat surfaces. Each surface module renders and keeps cards in sync (the
//! `Surface` port), serves its own inbound routes and turns its inbound events into
//! actions on the desk, which it reaches through the `AgentDesk` port. What every surface
//! shares lives here: the card's buttons, the wording of thread lines and lists, and the
//! `/mentions` grammar (`command`).

pub mod command;
pub mod customer;
pub mod discord;
pub mod incident;
pub mod markup;
pub mod pacing;
pub mod slack;

pub use markup::{member_id, Markup};

use crate::domain::priority::{reach_label, Level};
use crate::domain::{AgentAction, Note, Stage, Ticket};
use chrono::{DateTime, Utc};

/// A card's buttons, the same on every surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardButton {
    Claim,
    Unclaim,
    Reply,
    ReplyPrivately,
    Resolve,
    Ignore,
    Reopen,
    /// A link to the post, for networks we cannot answer on.
    OpenOriginal,
    /// The draft waiting for approval goes out as it reads.
    Approve,
    /// Open the waiting draft to rewrite it.
    EditDraft,
    /// Turn the waiting draft down.
    RejectDraft,
}

impl CardButton {
    const ALL: [CardButton; 11] = [
        CardButton::Claim,
        CardButton::Unclaim,
        CardButton::Reply,
        CardButton::ReplyPrivately,
        CardButton::Resolve,
        CardButton::Ignore,
        CardButton::Reopen,
        CardButton::OpenOriginal,
        CardButton::Approve,
        CardButton::EditDraft,
        CardButton::RejectDraft,
    ];

    pub fn verb(self) -> &'static str {
        match self {
            CardButton::Claim => "claim",
            CardButton::Unclaim => "unclaim",
            CardButton::Reply => "reply",
            CardButton::ReplyPrivately => "dm",
            CardButton::Resolve => "resolve",
            CardButton::Ignore => "ignore",
            CardButton::Reopen => "reopen",
            CardButton::OpenOriginal => "open",
            CardButton::Approve => "approve",
            CardButton::EditDraft => "edit",
            CardButton::RejectDraft => "reject",
        }
    }

    pub fn from_verb(verb: &str) -> Option<CardButton> {
        CardButton::ALL.into_iter().find(|b| b.verb() == verb)
    }

    pub fn label(self) -> &'static str {
        match self {
            CardButton::Claim => "Claim",
            CardButton::Unclaim => "Unclaim",
            CardButton::Reply => "Reply",
            CardButton::ReplyPrivately => "Reply privately",
            CardButton::Resolve => "Resolve",
            CardButton::Ignore => "Ignore",
            CardButton::Reopen => "Reopen",
            CardButton::OpenOriginal => "Open original",
            CardButton::Approve => "Approve reply",
            CardButton::EditDraft => "Edit draft",
            CardButton::RejectDraft => "Reject draft",
        }
    }

    /// The action a button stands for; Reply opens a form instead.
    pub fn action(self) -> Option<AgentAction> {
        match self {
            CardButton::Claim => Some(AgentAction::Claim),
            CardButton::Unclaim => Some(AgentAction::Unclaim),
            CardButton::Resolve => Some(AgentAction::Resolve),
            CardButton::Ignore => Some(AgentAction::Ignore),
            CardButton::Reopen => Some(AgentAction::Reopen),
            CardButton::Approve => Some(AgentAction::Approve),
            CardButton::RejectDraft => Some(AgentAction::RejectDraft),
            CardButton::Reply
            | CardButton::ReplyPrivately
            | CardButton::OpenOriginal
            | CardButton::EditDraft => None,
        }
    }

    /// The buttons a card shows in the ticket's state, the most likely next step first.
    /// Where we cannot answer (`can_reply` false) the card links to the original and
    /// Resolve reads "Mark answered".
    pub fn for_ticket(ticket: &Ticket, can_reply: bool) -> &'static [CardButton] {
        use CardButton::*;
        if !ticket.is_closed() && ticket.draft_awaiting_approval().is_some() {
            return &[Approve, EditDraft, RejectDraft, Unclaim];
        }
        match (ticket.stage, &ticket.holder, can_reply) {
            (Stage::Resolved | Stage::Ignored, _, _) => &[Reopen],
            (_, Some(_), true) => &[Reply, ReplyPrivately, Resolve, Unclaim, Ignore],
            (_, None, true) => &[Claim, Reply, ReplyPrivately, Resolve, Ignore],
            (_, Some(_), false) => &[OpenOriginal, Resolve, Unclaim, Ignore],
            (_, None, false) => &[Claim, OpenOriginal, Resolve, Ignore],
        }
    }

    pub fn label_for(self, can_reply: bool) -> &'static str {
        match (self, can_reply) {
            (CardButton::Resolve, false) => "Mark answered",
            (b, _) => b.label(),
        }
    }
}

/// `/mentions list`: open tickets in the list's order (priority, then waiting time),
/// each marked with its level unless normal, at most `max` of them and at most
/// `max_len` characters in all (the surface's message limit).
pub fn open_list(
    open: &crate::ports::OpenTickets,
    m: &dyn Markup,
    max: usize,
    max_len: usize,
) -> String {
    let tickets = &open.first;
    if tickets.is_empty() {
        return "No open mention tickets. 🎉".into();
    }
    let mut out = m.bold(&format!("Open mention tickets ({}):", open.total)) + "\n";
    // Room for the closing "…and N more." line.
    let budget = max_len.saturating_sub(40);
    let mut listed = 0;
    for t in tickets.iter().take(max) {
        let holder = t
            .holder
            .as_ref()
            .map(|c| format!(" · {}", m.name(&c.agent)))
            .unwrap_or_default();
        let level = match t.priority.level {
            Level::Normal => String::new(),
            other => format!("{} {} · ", level_mark(other), other.label()),
        };
        let language = t
            .mention
            .language_in_use()
            .map(|(l, _)| format!(" · {}", m.fit(l, 12).0))
            .unwrap_or_default();
        let line = format!(
            "• {} {level}{}{}{} · @{}: {} ({})\n",
            m.bold(&format!("#{}", t.id)),
            t.state_label(),
            holder,
            language,
            m.fit(&t.mention.author.handle, 60).0,
            m.fit(&t.mention.text.replace('\n', " "), 80).0,
            m.link(&t.mention.url, "original")
        );
        if markup::surface_len(&out) + markup::surface_len(&line) > budget {
            break;
        }
        out.push_str(&line);
        listed += 1;
    }
    if open.total > listed {
        out.push_str(&format!("…and {} more.", open.total - listed));
    }
    out
}

/// A level's mark, the same on every surface.
pub fn level_mark(level: Level) -> &'static str {
    match level {
        Level::Urgent => "🔴",
        Level::High => "🟠",
        Level::Normal => "⚪",
        Level::Low => "🔵",
    }
}

/// What a card says about the ticket's priority, the author's reach and its tags:
/// "🟠 High priority: VIP · 48k followers", or only "12.3k followers", or nothing for a
/// normal ticket with nothing to say. Every part is escaped (reasons quote the team's
/// words; tags are the team's), so the caller adds it as it is.
pub fn priority_line(ticket: &Ticket, m: &dyn Markup) -> Option<String> {
    let p = &ticket.priority;
    let mut parts = Vec::new();
    if !p.is_plain() {
        let mut head = format!(
            "{} {}",
            level_mark(p.level),
            m.bold(&format!("{} priority", capitalised(p.level.label())))
        );
        if !p.reasons.is_empty() {
            head.push_str(&format!(": {}", m.fit(&p.why(), 500).0));
        }
        parts.push(head);
    }
    if let Some(reach) = ticket.mention.author.followers.map(reach_label) {
        if !p.reasons.iter().any(|r| r.why == reach) {
            parts.push(m.escape(&reach));
        }
    }
    if !ticket.tags.is_empty() {
        parts.push(format!("tags: {}", m.fit(&ticket.tags.join(", "), 300).0));
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

pub fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// `/mentions why <ticket>`: why the ticket is where it is: its priority now with the
/// points of each reason, what each rule did, its tags and route, and for a mention a
/// rule kept off the channel, how to bring it back.
pub fn why_text(ticket: &Ticket, m: &dyn Markup) -> String {
    let p = &ticket.priority;
    let mut out = format!(
        "{}\n",
        m.bold(&format!(
            "Ticket #{}: {} priority (score {})",
            ticket.id,
            p.level.label(),
            p.score
        ))
    );
    if p.reasons.is_empty() {
        out.push_str("• Priority: nothing raised or lowered it.\n");
    }
    for r in &p.reasons {
        out.push_str(&format!("• {} ({:+})\n", m.fit(&r.why, 300).0, r.points));
    }
    if ticket.rule_hits.is_empty() {
        out.push_str("• Rules: none matched.\n");
    }
    for hit in &ticket.rule_hits {
        out.push_str(&format!("• {}\n", m.fit(&hit.sentence(), 500).0));
    }
    if !ticket.tags.is_empty() {
        out.push_str(&format!(
            "• Tags: {}\n",
            m.fit(&ticket.tags.join(", "), 300).0
        ));
    }
    if !ticket.route.is_empty() {
        out.push_str(&format!("• Route: {}\n", m.fit(&ticket.route, 100).0));
    }
    if ticket.kept_off_by_rule() {
        out.push_str(&format!(
            "• Kept off the channel by a rule (stored, no card): `/mentions reopen {}` posts its card.",
            ticket.id
        ));
    } else {
        out.push_str(&format!("• State: {}", ticket.state_label()));
    }
    // Within the smaller surface's message (Discord's 2,000): whole lines before the
    // last are left out.
    let mut lines: Vec<&str> = out.lines().collect();
    let mut cut = false;
    while lines.len() > 2 && markup::surface_len(&lines.join("\n")) > WHY_MAX - 10 {
        lines.remove(lines.len() - 2);
        cut = true;
    }
    if cut {
        lines.insert(lines.len() - 1, "• …");
    }
    lines.join("\n")
}

const WHY_MAX: usize = 1900;

/// How much of a customer's or agent's text a thread line quotes: well inside Discord's
/// 2,000-character messages (and Slack's 4,000 for readable notifications) with room for
/// the line's own words; the whole text is one click away.
pub const NOTE_QUOTE_MAX: usize = 1500;

/// The wording of a card's thread line, the same on every surface.
pub fn note_sentence(note: &Note, m: &dyn Markup) -> String {
    match note {
        // Lines about an action name the agent who did it: they clicked, they need no
        // notification about it.
        Note::Claimed { by } => format!("🙋 {} claimed this ticket.", m.name(by)),
        Note::Unclaimed { by } => format!("↩️ {} released this ticket.", m.name(by)),
        Note::ReplyQueued { by, text } => {
            format!(
                "📤 {} is replying:\n{}",
                m.name(by),
                m.fit_quote(text, NOTE_QUOTE_MAX).0
            )
        }
        Note::ReplyPublished { url } => {
            format!("✅ Reply published: {}", m.link(url, "view the reply"))
        }
        Note::ReplyFailed { reason } => {
            format!("❌ Reply not published: {}", m.fit(reason, 500).0)
        }
        Note::Resolved { by } => format!("✅ {} resolved this ticket.", m.name(by)),
        Note::Ignored { by } => format!("🚫 {} ignored this ticket.", m.name(by)),
        Note::Reopened { by } => format!("🔄 {} reopened this ticket.", m.name(by)),
        Note::CustomerFollowUp {
            text,
            url,
            reopened,
        } => format!(
            "💬 The customer wrote again{}:\n{}\n{}",
            if *reopened { " (ticket reopened)" } else { "" },
            m.fit_quote(text, NOTE_QUOTE_MAX).0,
            m.link(url, "view post")
        ),
        Note::Paged { members } => format!(
            "📣 New ticket for {} (on call).",
            members
                .iter()
                .map(|k| m.member(k))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Note::SlaWarning {
            minutes_left,
            members,
        } => format!(
            "⏳ {minutes_left} min left to answer this customer{}.",
            for_whom(members, m)
        ),
        Note::SlaBreached { members } => format!(
            "🔴 The first-response target passed without an answer{}.",
            for_whom(members, m)
        ),
        Note::Escalated {
            level,
            members,
            channel,
        } => {
            let who = if *channel {
                format!("{} anyone who can take it", m.channel_ping())
            } else {
                people(members, m)
            };
            format!("🚨 Escalated (level {level}): {who}, this ticket needs an owner.")
        }
        Note::ClaimReminder {
            holder,
            idle_minutes,
        } => format!(
            "⏰ {}, you claimed this {idle_minutes} min ago and the customer has no answer yet.",
            m.member(&holder.member_key())
        ),
        Note::ClaimReleased {
            holder,
            why,
            members,
        } => format!(
            "↩️ {}'s claim was released ({}); it is open for {}.",
            m.name(holder),
            m.fit(why, 200).0,
            if members.is_empty() {
                "anyone".to_string()
            } else {
                people(members, m)
            }
        ),
        Note::ResolutionOverdue { members } => format!(
            "🟠 The resolution target passed and this ticket is still open{}.",
            for_whom(members, m)
        ),
        Note::OffHoursAcknowledged => {
            "🌙 Nobody is on shift: the customer was told when to expect an answer.".to_string()
        }
        Note::ApprovalAsked { by, text, reasons } => format!(
            "🛂 {}'s reply waits for another agent's approval ({}):\n{}",
            m.name(by),
            m.fit(&reasons.join("; "), 300).0,
            m.fit_quote(text, NOTE_QUOTE_MAX).0
        ),
        Note::DraftApproved { by, author } => format!(
            "👍 {} approved {}'s reply; it is being published.",
            m.name(by),
            m.name(author)
        ),
        Note::DraftRejected { by, author } => format!(
            "👎 {} rejected {}'s draft; nothing was sent.",
            m.name(by),
            m.name(author)
        ),
        Note::DraftEdited { by, text } => format!(
            "✏️ {} edited the draft; it waits for approval again:\n{}",
            m.name(by),
            m.fit_quote(text, NOTE_QUOTE_MAX).0
        ),
        Note::ApprovalReminder {
            author,
            minutes,
            members,
        } => format!(
            "🛂 {}'s reply has waited {minutes} min for approval{}.",
            m.name(author),
            if members.is_empty() {
                String::new()
            } else {
                format!(": {}, can you look?", people(members, m))
            }
        ),
        Note::CardLost { surface, reason } => format!(
            "⚠️ This ticket's {} card is gone ({}); it is no longer kept in sync there.",
            surface.label(),
            m.fit(reason, 500).0
        ),
        Note::Bulk { by, step } => {
            use crate::domain::BulkStep;
            let who = by
                .as_ref()
                .map(|a| m.name(a))
                .unwrap_or_else(|| "The desk".to_string());
            match step {
                BulkStep::Started {
                    members,
                    languages,
                    held,
                } => format!(
                    "📨 {who} {} a bulk answer: one reply to each of {} members{}.",
                    if *held {
                        "wrote, for another agent to approve,"
                    } else {
                        "started"
                    },
                    incident::thousands(*members),
                    if languages.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", in {} and every other language",
                            m.fit(&languages.join(", "), 200).0
                        )
                    }
                ),
                BulkStep::Approved => {
                    format!("✅ {who} approved the bulk answer: it goes out now.")
                }
                BulkStep::Paused => format!("⏸️ {who} paused the bulk answer."),
                BulkStep::Resumed => format!("▶️ {who} resumed the bulk answer."),
                BulkStep::Cancelled => format!(
                    "⏹️ {who} cancelled the bulk answer; replies already queued still go out."
                ),
                BulkStep::Finished { queued, skipped } => format!(
                    "✅ Bulk answer handed out: {} replies queued, {} members skipped (answered already, closed or held by someone else).",
                    incident::thousands(*queued),
                    incident::thousands(*skipped)
                ),
            }
        }
        Note::IncidentPaged { members } => format!(
            "📣 A storm of mentions for {} (on call): they are on this one card, with one answer for all.",
            people(members, m)
        ),
        Note::SplitOff { ticket, by } => format!(
            "↗️ {} split ticket #{ticket} off this incident; it has a card of its own now.",
            m.name(by)
        ),
        // -- surveys (issue 14, part 2) --
        Note::SurveyAnswered { score, scale, text } => {
            let stars = crate::domain::survey::stars(*score, *scale);
            format!(
                "📊 Survey answer: {score}/{}{}{}\n{}",
                scale.max(),
                if stars.is_empty() { "" } else { " " },
                stars,
                m.fit_quote(text, NOTE_QUOTE_MAX).0
            )
        }
    }
}

/// ", approved by Ben" on a reply that needed a second pair of eyes.
pub fn approved_by(reply: &crate::domain::Reply, m: &dyn Markup) -> String {
    match reply.review.as_ref().and_then(|r| r.approved_by.as_ref()) {
        Some(by) => format!(", approved by {}", m.name(by)),
        None => String::new(),
    }
}

fn people(members: &[String], m: &dyn Markup) -> String {
    members
        .iter()
        .map(|k| m.member(k))
        .collect::<Vec<_>>()
        .join(", ")
}

fn for_whom(members: &[String], m: &dyn Markup) -> String {
    if members.is_empty() {
        String::new()
    } else {
        format!(" ({})", people(members, m))
    }
}

/// The shift hand-off summary posted in the cards channel.
pub fn digest_text(d: &crate::domain::handoff::Digest, m: &dyn Markup) -> String {
    let list = |keys: &[String]| {
        if keys.is_empty() {
            "nobody".to_string()
        } else {
            people(keys, m)
        }
    };
    let tickets = |ids: &[crate::domain::TicketId]| {
        ids.iter()
            .map(|id| format!("#{id}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "🔁 {} at {} UTC: {} going off, {} coming on.\n",
        m.bold("Shift hand-off"),
        d.at.format("%a %Y-%m-%d %H:%M"),
        list(&d.outgoing),
        list(&d.incoming)
    );
    out.push_str(&format!(
        "• Waiting for an answer: {} · Answered, not resolved: {} · Answered this shift: {}\n",
        d.waiting, d.answered_open, d.answered
    ));
    out.push_str(&format!(
        "• Breaching: {}\n",
        if d.breaching.is_empty() {
            "none".to_string()
        } else {
            format!("{} ({})", d.breaching.len(), tickets(&d.breaching))
        }
    ));
    if d.held_by_outgoing.is_empty() {
        out.push_str("• Held by people going off shift: none");
    } else {
        let held: Vec<String> = d
            .held_by_outgoing
            .iter()
            .map(|(id, key)| format!("#{id} ({})", m.member(key)))
            .collect();
        out.push_str(&format!(
            "• Held by people going off shift: {}",
            held.join(", ")
        ));
    }
    if !d.released.is_empty() {
        out.push_str(&format!(
            "\n• Released for the incoming shift: {}",
            tickets(&d.released)
        ));
    }
    out
}

/// `/mentions oncall`: who is on call now, in the surface's own words for its agents
/// (`slack:U…` becomes a Slack mention on Slack, `discord:…` a Discord one on Discord).
pub fn on_call_text(
    now: &crate::domain::oncall::OnCall,
    next_change: Option<DateTime<Utc>>,
    m: &dyn Markup,
) -> String {
    let name = |key: &String| m.member(key);
    let list = |keys: &[String]| {
        if keys.is_empty() {
            "nobody".to_string()
        } else {
            keys.iter().map(name).collect::<Vec<_>>().join(", ")
        }
    };
    let mut out = format!("On call now: {} (primary)", list(&now.primary));
    if !now.secondary.is_empty() {
        out.push_str(&format!(", {} (secondary)", list(&now.secondary)));
    }
    out.push('.');
    if let Some(next) = next_change {
        out.push_str(&format!(
            " Next change: {} UTC.",
            next.format("%a %Y-%m-%d %H:%M")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Chat is an adapter: it reaches the desk through `ports` and nothing else of the
    /// runtime, and it never reaches into another adapter or the app.
    #[test]
    fn chat_imports_only_the_layers_below_it() {
        // Module names only, so that this list does not find itself.
        let above_or_beside: Vec<String> = [
            "runtime",
            "store",
            "sources",
            "stats",
            "reports",
            "app",
            "http",
            "translators",
        ]
        .iter()
        .map(|m| format!("crate::{m}"))
        .collect();
        fn visit(dir: &Path, forbidden: &[String], found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("src/chat is readable") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    visit(&path, forbidden, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("a source file");
                    for (n, line) in text.lines().enumerate() {
                        let code = line.trim_start();
                        if !code.starts_with("//")
                            && forbidden.iter().any(|m| code.contains(m.as_str()))
                        {
                            found.push(format!("{}:{}: {code}", path.display(), n + 1));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        visit(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/chat"),
            &above_or_beside,
            &mut found,
        );
        assert!(
            found.is_empty(),
            "chat imports upwards or sideways:\n{}",
            found.join("\n")
        );
    }
}
