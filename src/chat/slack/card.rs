//! How a ticket looks in Slack: the Block Kit card, the reply modal, thread notes and the
//! `/mentions` list. Pure functions from domain values to slack-morphism types.

use crate::chat::incident::IncidentButton;
use crate::chat::markup::{safe_url, surface_len};
use crate::chat::{approved_by, CardButton, Markup};
use crate::domain::canned::CannedReply;
use crate::domain::incident::Incident;
use crate::domain::text::TextRules;
use crate::domain::IncidentId;
use crate::domain::{
    Note, ReplyState, Stage, SurfaceKind, Ticket, TicketId, Visibility, CLOCK_SKEW_SHOWN_MINUTES,
};
use slack_morphism::prelude::*;
use std::collections::HashMap;

pub const METADATA_EVENT: &str = "mentionbridge_ticket";
pub const REPLY_CALLBACK: &str = "mb_reply";
pub const REPLY_BLOCK: &str = "reply";
pub const REPLY_INPUT: &str = "text";
pub const PRIVATE_CALLBACK: &str = "mb_reply_private";
/// `callback_id` of the form that rewrites a draft waiting for approval.
pub const EDIT_CALLBACK: &str = "mb_edit_draft";
pub const ACK_BLOCK: &str = "ack";
pub const CANNED_ACTION: &str = "mb_canned";
pub const INCIDENT_EVENT: &str = "mentionbridge_incident";
pub const BULK_CALLBACK: &str = "mb_bulk";
pub const BULK_INPUT: &str = "text";
/// Block ids of the bulk answer form's fields: `lang_<code>`, `lang_any` for every other
/// language.
const BULK_BLOCK: &str = "lang_";
const ANY_LANGUAGE: &str = "any";

/// Slack `action_id`s of the card's buttons: `mb_<verb>`.
pub fn action_id(button: CardButton) -> String {
    format!("mb_{}", button.verb())
}

pub fn button_of_action_id(id: &str) -> Option<CardButton> {
    id.strip_prefix("mb_").and_then(CardButton::from_verb)
}

/// Slack `action_id`s of an incident card's buttons: `mbi_<verb>`.
pub fn incident_action_id(button: IncidentButton) -> String {
    format!("mbi_{}", button.verb())
}

pub fn incident_button_of_action_id(id: &str) -> Option<IncidentButton> {
    id.strip_prefix("mbi_").and_then(IncidentButton::from_verb)
}

/// An incident's card: what the storm is about, how big and fast, samples, languages,
/// authors, the bulk answer's progress, and its buttons.
pub fn incident_blocks(incident: &Incident) -> Vec<SlackBlock> {
    let t = &SlackMarkup;
    let text = crate::chat::incident::text(incident, t, 600);
    let context = |s: String| -> SlackBlock {
        SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
            SlackBlockMarkDownText::new(crate::chat::markup::cut_to(&s, limits::TEXT)),
        )])
        .into()
    };
    let mut blocks: Vec<SlackBlock> = vec![SlackSectionBlock::new()
        .with_text(md(crate::chat::markup::cut_to(
            &format!("*{}*\n{}", text.title, text.summary),
            limits::TEXT,
        )))
        .into()];
    blocks.push(context(text.languages));
    for sample in text.samples {
        blocks.push(
            SlackSectionBlock::new()
                .with_text(md(crate::chat::markup::cut_to(&sample, limits::TEXT)))
                .into(),
        );
    }
    blocks.push(context(text.authors));
    if !text.bulk.is_empty() {
        blocks.push(
            SlackSectionBlock::new()
                .with_text(md(crate::chat::markup::cut_to(&text.bulk, limits::TEXT)))
                .into(),
        );
    }
    blocks.push(context(text.hint));
    let buttons: Vec<SlackActionBlockElement> = IncidentButton::for_incident(incident)
        .into_iter()
        .enumerate()
        .map(|(i, (b, label))| {
            let mut el =
                SlackBlockButtonElement::new(t.fit_plain(&label, limits::OPTION_TEXT).into())
                    .with_action_id(incident_action_id(b).into())
                    .with_value(incident.id.to_string());
            if i == 0 {
                el = el.with_style(SlackBlockButtonStyle::Primary);
            }
            el.into()
        })
        .collect();
    if !buttons.is_empty() {
        blocks.push(
            SlackActionsBlock::new(buttons)
                .with_block_id(format!("mbi_actions_{}", incident.id).into())
                .into(),
        );
    }
    blocks
}

pub fn incident_content(incident: &Incident) -> SlackMessageContent {
    let fallback = format!(
        "{}: {} mentions",
        crate::chat::incident::title(incident, &SlackMarkup),
        incident.members
    );
    SlackMessageContent::new()
        .with_text(crate::chat::markup::cut_to(&fallback, limits::FALLBACK))
        .with_blocks(incident_blocks(incident))
        .with_metadata(
            SlackMessageMetadata::new(INCIDENT_EVENT.into()).with_event_payload(HashMap::from([(
                "incident_id".to_string(),
                incident.id.to_string(),
            )])),
        )
}

/// The incident a message's metadata names, if it is one of our incident cards.
pub fn incident_of_metadata(metadata: Option<&SlackMessageMetadata>) -> Option<IncidentId> {
    let m = metadata?;
    if m.event_type != INCIDENT_EVENT {
        return None;
    }
    m.event_payload.as_ref()?.get("incident_id")?.parse().ok()
}

/// The bulk answer form: a text per language (`drafts`: language → a canned reply to
/// start from), every other language last and required.
pub fn bulk_modal(incident: &Incident, drafts: &[(String, String)]) -> SlackView {
    let t = &SlackMarkup;
    let head = match incident.samples.first() {
        Some(s) => format!(
            "*{}*\nOne reply to each member, in the thread of their own post, each exactly once. Variables: `{{author}}`, `{{author_name}}`, `{{agent}}`, `{{ticket}}`, `{{brand}}`.\n{}",
            t.fit(&crate::chat::incident::title(incident, t), 300).0,
            t.fit_quote(&s.text, 1000).0
        ),
        None => t.fit(&crate::chat::incident::title(incident, t), 300).0,
    };
    let mut blocks: Vec<SlackBlock> = vec![SlackSectionBlock::new()
        .with_text(md(crate::chat::markup::cut_to(&head, limits::TEXT)))
        .into()];
    for language in crate::chat::incident::form_languages(incident, 5) {
        let mut input = SlackBlockPlainTextInputElement::new()
            .with_action_id(BULK_INPUT.into())
            .with_multiline(true);
        if let Some((_, draft)) = drafts.iter().find(|(l, _)| *l == language) {
            input = input.with_initial_value(crate::chat::markup::cut_to(draft, limits::TEXT));
        }
        let block = format!(
            "{BULK_BLOCK}{}",
            if language.is_empty() {
                ANY_LANGUAGE
            } else {
                language.as_str()
            }
        );
        let label = t.fit_plain(
            &crate::chat::incident::form_label(&language, incident),
            limits::LABEL.min(150),
        );
        blocks.push(
            SlackInputBlock::new(label.into(), input.into())
                .with_block_id(block.into())
                .with_optional(!language.is_empty())
                .into(),
        );
    }
    SlackView::Modal(
        SlackModalView::new("Answer the incident".into(), blocks)
            .with_submit("Send to all".into())
            .with_close("Cancel".into())
            .with_callback_id(BULK_CALLBACK.into())
            .with_private_metadata(incident.id.to_string()),
    )
}

/// The language a bulk form field's block id stands for (`""`: every other language).
pub fn bulk_language_of_block(block: &str) -> Option<String> {
    let code = block.strip_prefix(BULK_BLOCK)?;
    Some(if code == ANY_LANGUAGE {
        String::new()
    } else {
        code.to_string()
    })
}

/// Escape text for mrkdwn: Slack treats `&`, `<` and `>` as control characters (every
/// mention, link and date is written inside `<…>`); words that would call the channel
/// are defused as well, for clients and integrations that link them.
pub fn escape(s: &str) -> String {
    crate::chat::markup::defuse_mass_mentions(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn quote(s: &str) -> String {
    crate::chat::markup::quote_lines(s, escape)
}

/// Slack's documented limits (docs.slack.dev, Block Kit reference).
pub mod limits {
    /// A section's or a context element's text object.
    pub const TEXT: usize = 3000;
    /// The message's `text`, shown in notifications when `blocks` is set.
    pub const FALLBACK: usize = 4000;
    /// Blocks in one message.
    pub const MESSAGE_BLOCKS: usize = 50;
    /// A `plain_text_input`'s placeholder, an option's text, a button's label.
    pub const PLACEHOLDER: usize = 150;
    pub const OPTION_TEXT: usize = 75;
    pub const OPTIONS: usize = 100;
    pub const BUTTON_URL: usize = 3000;
    /// An input block's label, a hint.
    pub const LABEL: usize = 2000;
    /// A modal's title, submit and close labels.
    pub const MODAL_TITLE: usize = 24;
}

/// A message's permanent link in the workspace at `workspace` (`https://team.slack.com/`):
/// `{workspace}archives/{channel}/p{ts without its dot}`. None when an id holds anything
/// but what Slack's ids do (it is put in a link as it is).
pub fn permalink(workspace: &str, channel: &str, ts: &str) -> Option<String> {
    let id_like = |s: &str, ok: fn(char) -> bool| !s.is_empty() && s.chars().all(ok);
    if !id_like(channel, |c| c.is_ascii_alphanumeric())
        || !id_like(ts, |c| c.is_ascii_digit() || c == '.')
    {
        return None;
    }
    let base = if workspace.ends_with('/') {
        workspace.to_string()
    } else {
        format!("{workspace}/")
    };
    Some(format!("{base}archives/{channel}/p{}", ts.replace('.', "")))
}

pub(super) fn md(s: impl Into<String>) -> SlackBlockText {
    SlackBlockMarkDownText::new(s.into()).into()
}

fn slack_date(t: chrono::DateTime<chrono::Utc>, token: &str) -> String {
    // Slack renders this in each reader's own time zone; the fallback is UTC.
    format!(
        "<!date^{}^{}|{}>",
        t.timestamp(),
        token,
        t.format("%Y-%m-%d %H:%M UTC")
    )
}

fn state_emoji(ticket: &Ticket) -> &'static str {
    match (ticket.stage, &ticket.holder) {
        (Stage::Resolved, _) => ":white_check_mark:",
        (Stage::Ignored, _) => ":no_entry_sign:",
        (Stage::Replied, _) => ":speech_balloon:",
        (_, Some(_)) => ":raising_hand:",
        _ => ":new:",
    }
}

fn visibility_label(v: Visibility) -> &'static str {
    match v {
        Visibility::Public => "public",
        Visibility::Unlisted => "unlisted",
        Visibility::Private => "followers-only",
        Visibility::Direct => "direct message",
    }
}

/// Fallback text for notifications and screen readers. Slack parses it as mrkdwn, so it
/// is escaped like every other field.
pub fn card_text(ticket: &Ticket) -> String {
    let m = &ticket.mention;
    let t = &SlackMarkup;
    format!(
        "{} mention #{} from @{}: {}",
        t.fit(m.network_label(), 50).0,
        ticket.id,
        t.fit(&m.author.handle, 100).0,
        t.fit(&m.text.replace('\n', " "), 140).0
    )
}

pub fn card_metadata(ticket: &Ticket) -> SlackMessageMetadata {
    SlackMessageMetadata::new(METADATA_EVENT.into()).with_event_payload(HashMap::from([
        ("ticket_id".to_string(), ticket.id.to_string()),
        ("remote_id".to_string(), ticket.mention.remote_id.clone()),
    ]))
}

/// `customer`: the lines about who the customer is (see `chat::customer::card_lines`),
/// already in mrkdwn; none for a first contact.
pub fn card_blocks(
    ticket: &Ticket,
    can_reply: bool,
    canned: &[CannedReply],
    customer: &[String],
) -> Vec<SlackBlock> {
    let m = &ticket.mention;
    let t = &SlackMarkup;
    let mut blocks: Vec<SlackBlock> = Vec::new();
    let profile = match safe_url(&m.author.profile_url) {
        Some(url) => format!(" · {}", t.raw_link(&url, "profile")),
        None => String::new(),
    };
    blocks.push(
        SlackSectionBlock::new()
            .with_text(md(format!(
                "*{}* {} (`@{}`){} · {} {}",
                t.fit(m.network_label(), 50).0,
                t.bold(&t.fit(&m.author.name, 100).0),
                t.fit(&m.author.handle, 100).0.replace('`', "'"),
                profile,
                visibility_label(m.visibility),
                if m.in_reply_to.is_some() {
                    "reply"
                } else {
                    "mention"
                },
            )))
            .into(),
    );
    if let Some(line) = crate::chat::priority_line(ticket, t) {
        blocks.push(
            SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
                SlackBlockMarkDownText::new(line),
            )])
            .into(),
        );
    }
    if !customer.is_empty() {
        blocks.push(
            SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
                SlackBlockMarkDownText::new(crate::chat::markup::cut_to(
                    &customer.join("\n"),
                    limits::TEXT,
                )),
            )])
            .into(),
        );
    }
    // The post itself, cut to the section's limit with the way to the whole of it.
    let more = format!("\n{}", t.link(&m.url, "read the whole post"));
    let (text, cut) = t.fit_quote(&m.text, limits::TEXT - surface_len(&more));
    blocks.push(
        SlackSectionBlock::new()
            .with_text(md(if cut { text + &more } else { text }))
            .into(),
    );
    blocks.extend(super::translation::card_block(ticket));

    let mut status = format!(
        "{} *{}* · ticket #{} · {} · {}",
        state_emoji(ticket),
        ticket.state_label(),
        ticket.id,
        posted(ticket),
        t.link(&m.url, "View original")
    );
    if let Some(c) = &ticket.holder {
        status.push_str(&format!(
            " · held by {} since {}",
            t.who(&c.agent),
            slack_date(c.since, "{time}")
        ));
    }
    if let Some(by) = &ticket.closed_by {
        status.push_str(&format!(" · closed by {}", t.who(by)));
    }
    if let Some(due) = ticket.respond_by.filter(|_| ticket.awaiting_answer()) {
        // A message does not tick: the card is re-rendered at the warning and the breach.
        if ticket.sla.breached {
            status.push_str(&format!(
                " · :red_circle: *reply overdue* since {}",
                slack_date(due, "{time}")
            ));
        } else {
            status.push_str(&format!(
                " · {}reply due by {}",
                if ticket.sla.warned {
                    ":hourglass: "
                } else {
                    ""
                },
                slack_date(due, "{time}")
            ));
        }
    }
    if !ticket.route.is_empty() && ticket.route != crate::domain::routes::DEFAULT_ROUTE {
        status.push_str(&format!(" · route {}", t.fit(&ticket.route, 100).0));
    }
    if let Some(language) = crate::domain::language::card_label(m) {
        status.push_str(&format!(" · {}", t.fit(&language, 60).0));
    }
    blocks.push(
        SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
            SlackBlockMarkDownText::new(status),
        )])
        .into(),
    );

    // The latest replies, within the message's block budget (the thread has them all).
    let shown = ticket.replies.len().min(MAX_REPLY_BLOCKS);
    if shown < ticket.replies.len() {
        blocks.push(
            SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
                SlackBlockMarkDownText::new(format!(
                    "{} earlier replies are in the thread.",
                    ticket.replies.len() - shown
                )),
            )])
            .into(),
        );
    }
    for r in &ticket.replies[ticket.replies.len() - shown..] {
        let outcome = match &r.state {
            ReplyState::Pending => ":hourglass_flowing_sand: sending…".to_string(),
            ReplyState::Published { url, .. } => {
                format!(
                    ":white_check_mark: {}{}",
                    t.link(url, "published"),
                    approved_by(r, t)
                )
            }
            ReplyState::Failed { reason } => format!(":x: not published: {}", t.fit(reason, 300).0),
            ReplyState::AwaitingApproval => format!(
                ":passport_control: awaits approval: {}",
                t.fit(
                    &r.review
                        .as_ref()
                        .map(|v| v.reasons.join("; "))
                        .unwrap_or_default(),
                    300
                )
                .0
            ),
            ReplyState::Rejected { by } => format!(":no_entry_sign: rejected by {}", t.name(by)),
        };
        let head = format!(
            "{} replied ({}):\n",
            if r.auto { t.name(&r.by) } else { t.who(&r.by) },
            outcome,
        );
        let (quoted, _) = t.fit_quote(&r.text, limits::TEXT - surface_len(&head));
        blocks.push(
            SlackSectionBlock::new()
                .with_text(md(head + &quoted))
                .into(),
        );
    }

    let mut elements: Vec<SlackActionBlockElement> = CardButton::for_ticket(ticket, can_reply)
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut el = SlackBlockButtonElement::new(b.label_for(can_reply).into())
                .with_action_id(action_id(*b).into())
                .with_value(ticket.id.to_string());
            if *b == CardButton::OpenOriginal {
                if let Some(url) = safe_url(&ticket.mention.url)
                    .filter(|u| u.len() <= limits::BUTTON_URL)
                    .and_then(|u| u.parse().ok())
                {
                    el = el.with_url(url);
                }
            }
            if i == 0 {
                el = el.with_style(SlackBlockButtonStyle::Primary);
            }
            el.into()
        })
        .collect();
    // The canned-reply picker: choosing one opens the reply form with it filled in.
    if can_reply && !ticket.is_closed() && !canned.is_empty() {
        let options = canned
            .iter()
            .take(limits::OPTIONS)
            .map(|c| {
                SlackBlockChoiceItem::new(
                    t.fit_plain(&c.title, limits::OPTION_TEXT).into(),
                    format!("{}:{}", ticket.id, c.id),
                )
            })
            .collect();
        elements.push(
            SlackBlockStaticSelectElement::new()
                .with_action_id(CANNED_ACTION.into())
                .with_placeholder("Canned reply…".into())
                .with_options(options)
                .into(),
        );
    }
    blocks.push(
        SlackActionsBlock::new(elements)
            .with_block_id(format!("mb_actions_{}", ticket.id).into())
            .into(),
    );
    blocks
}

/// Reply sections a card shows, so that it stays well inside Slack's 50 blocks.
const MAX_REPLY_BLOCKS: usize = 20;

/// When the post says it was written, and when the desk received it if the two differ by
/// more than a few minutes (a platform's or a customer's clock can be years off; the
/// desk's deadlines run from its own).
fn posted(ticket: &Ticket) -> String {
    let m = &ticket.mention;
    let received = ticket.received_at();
    if (received - m.created_at).num_minutes().abs() > CLOCK_SKEW_SHOWN_MINUTES {
        format!(
            "received {} (the post says {})",
            slack_date(received, "{ago}"),
            m.created_at.format("%Y-%m-%d %H:%M UTC")
        )
    } else {
        format!("posted {}", slack_date(m.created_at, "{ago}"))
    }
}

pub fn card_content(
    ticket: &Ticket,
    can_reply: bool,
    canned: &[CannedReply],
    customer: &[String],
) -> SlackMessageContent {
    SlackMessageContent::new()
        .with_text(card_text(ticket))
        .with_blocks(card_blocks(ticket, can_reply, canned, customer))
        .with_metadata(card_metadata(ticket))
}

/// The ticket id a card carries in its metadata, if the message is one of our cards.
pub fn ticket_of_metadata(metadata: Option<&SlackMessageMetadata>) -> Option<(TicketId, String)> {
    let m = metadata?;
    if m.event_type != METADATA_EVENT {
        return None;
    }
    let payload = m.event_payload.as_ref()?;
    let id = payload.get("ticket_id")?.parse().ok()?;
    Some((id, payload.get("remote_id").cloned().unwrap_or_default()))
}

/// The reply form; with `private`, a private message plus an optional short public
/// acknowledgement ("We've sent you a DM").
pub fn reply_modal(
    ticket: &Ticket,
    rules: TextRules,
    private: bool,
    initial: Option<&str>,
) -> SlackView {
    reply_form(ticket, rules, private, initial, None)
}

/// The reply form, offering to translate the draft into `translate_to` first (the
/// customer's language) when translation is configured.
pub fn reply_form(
    ticket: &Ticket,
    rules: TextRules,
    private: bool,
    initial: Option<&str>,
    translate_to: Option<&str>,
) -> SlackView {
    let m = &ticket.mention;
    let t = &SlackMarkup;
    let handle = t.fit_plain(&m.author.handle, 60);
    let hint = if private {
        format!(
            "Sent to @{handle} privately ({}). Counted as {} counts: {}.",
            private_channel(m.platform),
            m.platform.label(),
            rules.describe()
        )
    } else {
        format!(
            "{} allows {}, counted with the @{handle} prefix we add. The reply is {} like the mention.",
            m.platform.label(),
            rules.describe(),
            visibility_label(m.visibility)
        )
    };
    let mut input = SlackBlockPlainTextInputElement::new()
        .with_action_id(REPLY_INPUT.into())
        .with_multiline(true)
        .with_focus_on_load(true)
        .with_placeholder(
            t.fit_plain(&format!("Your answer to @{handle}"), limits::PLACEHOLDER)
                .into(),
        );
    if let Some(text) = initial {
        // The agent's own draft, sent to the customer as it stands: cut, never altered.
        input = input.with_initial_value(crate::chat::markup::cut_to(text, limits::TEXT));
    }
    let label = t.fit_plain(
        &format!(
            "{} @{handle}",
            if private {
                "Private message to"
            } else {
                "Reply to"
            },
        ),
        limits::LABEL.min(150),
    );
    let head = format!(
        "*{}* (`@{}`) wrote:\n",
        t.fit(&m.author.name, 100).0,
        t.fit(&m.author.handle, 100).0.replace('`', "'"),
    );
    let (quoted, _) = t.fit_quote(&m.text, limits::TEXT - surface_len(&head));
    let mut blocks: Vec<SlackBlock> = vec![
        SlackSectionBlock::new()
            .with_text(md(head + &quoted))
            .into(),
        SlackInputBlock::new(label.into(), input.into())
            .with_block_id(REPLY_BLOCK.into())
            .with_hint(t.fit_plain(&hint, limits::LABEL).into())
            .into(),
    ];
    if private {
        let ack = SlackBlockPlainTextInputElement::new()
            .with_action_id(REPLY_INPUT.into())
            .with_placeholder("We've sent you a DM.".into());
        blocks.push(
            SlackInputBlock::new("Public acknowledgement (optional)".into(), ack.into())
                .with_block_id(ACK_BLOCK.into())
                .with_optional(true)
                .with_hint("Posted first, in public, in the customer's thread.".into())
                .into(),
        );
    }
    if let Some(to) = translate_to {
        blocks.push(super::translation::translate_option(to));
    }
    SlackView::Modal(
        SlackModalView::new(
            if private {
                "Reply privately"
            } else {
                "Reply to mention"
            }
            .into(),
            blocks,
        )
        .with_submit(
            if private {
                "Send privately"
            } else {
                "Send reply"
            }
            .into(),
        )
        .with_close("Cancel".into())
        .with_callback_id(
            if private {
                PRIVATE_CALLBACK
            } else {
                REPLY_CALLBACK
            }
            .into(),
        )
        .with_private_metadata(ticket.id.to_string()),
    )
}

/// The form to rewrite a draft that waits for approval, filled with it as it reads.
pub fn edit_draft_modal(ticket: &Ticket, rules: TextRules, draft: &str) -> SlackView {
    match reply_modal(ticket, rules, false, Some(draft)) {
        SlackView::Modal(modal) => SlackView::Modal(
            modal
                .with_title("Edit draft".into())
                .with_submit("Save for approval".into())
                .with_callback_id(EDIT_CALLBACK.into()),
        ),
        other => other,
    }
}

/// How each platform delivers a private reply, in its users' words.
pub fn private_channel(platform: crate::domain::Platform) -> &'static str {
    match platform {
        crate::domain::Platform::Mastodon => "a direct message",
        crate::domain::Platform::Bluesky => "a Bluesky chat",
        crate::domain::Platform::X => "an X DM",
        crate::domain::Platform::Other => "not available",
    }
}

/// Slack's markup for the surface-neutral wording of notes.
pub struct SlackMarkup;

impl Markup for SlackMarkup {
    fn surface(&self) -> SurfaceKind {
        SurfaceKind::Slack
    }
    fn escape(&self, text: &str) -> String {
        escape(text)
    }
    fn quote(&self, text: &str) -> String {
        quote(text)
    }
    fn channel_ping(&self) -> &'static str {
        "<!here>"
    }
    fn bold(&self, text: &str) -> String {
        format!("*{text}*")
    }
    fn raw_link(&self, url: &str, label: &str) -> String {
        format!("<{url}|{label}>")
    }
}

/// A thread line, within what a notification shows.
pub fn note_text(note: &Note) -> String {
    crate::chat::markup::cut_to(
        &crate::chat::note_sentence(note, &SlackMarkup),
        limits::FALLBACK,
    )
}

/// `/mentions` (or `/mentions list`): open tickets, oldest first.
/// How many open tickets the list shows at most.
pub const LISTED: usize = 30;

pub fn open_list(open: &crate::ports::OpenTickets) -> String {
    crate::chat::open_list(open, &SlackMarkup, LISTED, limits::FALLBACK)
}

pub const USAGE: &str = "Usage: `/mentions` (list open tickets) · `/mentions claim|unclaim|resolve|ignore|reopen|approve|reject <ticket>` · `/mentions reply <ticket> <text>` · `/mentions dm <ticket> <text>` (private reply) · `/mentions why <ticket>` (its priority and rules) · `/mentions stats [24h|7d|30d]` · `/mentions stats charts [7d|30d] [time zone]` (charts into this channel) · `/mentions incident <number> [page]` (an incident's members) · `/mentions split <ticket>` (a member gets its own card) · `/mentions note [network] @handle <text>` (a note about a customer for the team, never sent to them) · `/mentions who @handle [network]` (their tickets and notes)";
