//! How a ticket looks in Discord: an embed with buttons, the reply modal, the slash
//! command definition and thread lines, built with serenity's builders.

use crate::chat::incident::IncidentButton;
use crate::chat::markup::{safe_url, surface_len};
use crate::chat::{approved_by, CardButton, Markup};
use crate::domain::canned::CannedReply;
use crate::domain::incident::Incident;
use crate::domain::text::TextRules;
use crate::domain::IncidentId;
use crate::domain::{
    ReplyState, Stage, SurfaceKind, Ticket, TicketId, Visibility, CLOCK_SKEW_SHOWN_MINUTES,
};
use serenity::all::{
    ButtonStyle, CommandOptionType, CreateActionRow, CreateButton, CreateCommand,
    CreateCommandOption, CreateEmbed, CreateEmbedAuthor, CreateEmbedFooter, CreateInputText,
    CreateModal, CreateSelectMenu, CreateSelectMenuKind, CreateSelectMenuOption, InputTextStyle,
    Timestamp,
};

pub const COMMAND: &str = "mentions";
pub const REPLY_MODAL: &str = "mb:reply";
pub const REPLY_INPUT: &str = "text";
pub const PRIVATE_MODAL: &str = "mb:dm";
/// Custom id prefix of the form that rewrites a draft waiting for approval.
pub const EDIT_MODAL: &str = "mb:editdraft";
pub const ACK_INPUT: &str = "ack";
pub const CANNED_MENU: &str = "mb:canned";
pub const BULK_MODAL: &str = "mbi:bulk";
/// Custom ids of the bulk answer form's fields: `lang:<code>`, `lang:` for every other
/// language.
pub const BULK_FIELD: &str = "lang:";

/// Discord custom ids of the card's buttons: `mb:<verb>:<ticket>`.
pub fn custom_id(button: CardButton, ticket: TicketId) -> String {
    format!("mb:{}:{}", button.verb(), ticket)
}

/// Discord custom ids of an incident card's buttons: `mbi:<verb>:<incident>`.
pub fn incident_custom_id(button: IncidentButton, incident: IncidentId) -> String {
    format!("mbi:{}:{}", button.verb(), incident)
}

/// `mbi:pause:7` → (Pause, 7). None for anything we did not make.
pub fn parse_incident_custom_id(custom_id: &str) -> Option<(IncidentButton, IncidentId)> {
    let mut parts = custom_id.splitn(3, ':');
    if parts.next()? != "mbi" {
        return None;
    }
    let button = IncidentButton::from_verb(parts.next()?)?;
    Some((button, parts.next()?.parse().ok()?))
}

pub fn incident_title(incident: &Incident) -> String {
    DiscordMarkup.fit_plain(
        &crate::chat::incident::title(incident, &DiscordMarkup),
        limits::TITLE,
    )
}

/// An incident's card as an embed: the summary in its description, samples, languages,
/// authors and the bulk answer as fields, within the embed's limits.
pub fn incident_embed(incident: &Incident) -> CreateEmbed {
    let d = &DiscordMarkup;
    let text = crate::chat::incident::text(incident, d, 300);
    let fit = |s: &str, max: usize| crate::chat::markup::cut_to(s, max);
    let mut embed = CreateEmbed::new()
        .title(incident_title(incident))
        .colour(0x00e6_7e22)
        .description(fit(&text.summary, limits::DESCRIPTION))
        .field(
            "Languages",
            fit(&text.languages, limits::FIELD_VALUE),
            false,
        );
    for (n, sample) in text.samples.iter().enumerate() {
        embed = embed.field(
            format!("Sample {}", n + 1),
            fit(sample, limits::FIELD_VALUE),
            false,
        );
    }
    embed = embed.field("Authors", fit(&text.authors, limits::FIELD_VALUE), false);
    if !text.bulk.is_empty() {
        embed = embed.field("Bulk answer", fit(&text.bulk, limits::FIELD_VALUE), false);
    }
    embed.footer(CreateEmbedFooter::new(fit(&text.hint, limits::FOOTER)))
}

pub fn incident_buttons(incident: &Incident) -> Vec<CreateActionRow> {
    let row: Vec<CreateButton> = IncidentButton::for_incident(incident)
        .into_iter()
        .enumerate()
        .map(|(i, (b, label))| {
            CreateButton::new(incident_custom_id(b, incident.id))
                .label(truncate(&label, limits::BUTTON_LABEL))
                .style(if i == 0 {
                    ButtonStyle::Primary
                } else {
                    ButtonStyle::Secondary
                })
        })
        .collect();
    if row.is_empty() {
        Vec::new()
    } else {
        vec![CreateActionRow::Buttons(row)]
    }
}

/// The bulk answer form: a text per language (at most four, Discord forms hold five
/// fields), every other language last and required.
pub fn bulk_modal(incident: &Incident, drafts: &[(String, String)]) -> CreateModal {
    let rows = crate::chat::incident::form_languages(incident, 4)
        .into_iter()
        .map(|language| {
            let mut input = CreateInputText::new(
                InputTextStyle::Paragraph,
                truncate(
                    &crate::chat::incident::form_label(&language, incident),
                    limits::INPUT_LABEL,
                ),
                format!("{BULK_FIELD}{language}"),
            )
            .placeholder(truncate(
                "One reply to each member; {author} is their @handle",
                limits::PLACEHOLDER,
            ))
            .required(language.is_empty())
            .max_length(limits::INPUT_VALUE as u16);
            if let Some((_, draft)) = drafts.iter().find(|(l, _)| *l == language) {
                input = input.value(crate::chat::markup::cut_to(draft, limits::INPUT_VALUE));
            }
            CreateActionRow::InputText(input)
        })
        .collect();
    CreateModal::new(
        format!("{BULK_MODAL}:{}", incident.id),
        truncate(
            &format!("Answer incident #{}", incident.id),
            limits::MODAL_TITLE,
        ),
    )
    .components(rows)
}

/// `mb:claim:42` → (Claim, 42). None for anything we did not make.
pub fn parse_custom_id(custom_id: &str) -> Option<(CardButton, TicketId)> {
    let mut parts = custom_id.splitn(3, ':');
    if parts.next()? != "mb" {
        return None;
    }
    let button = CardButton::from_verb(parts.next()?)?;
    Some((button, parts.next()?.parse().ok()?))
}

/// Discord markdown: escape what would otherwise format, link or ping. A backslash before
/// each markdown character keeps it literal (`<@123>`, `[label](url)`, `# heading`,
/// `-# small`, `<t:…>`, `</cmd:…>` all stay text); mass mentions are defused as well, and
/// every message we send also says whom it may ping (`allowed_mentions`).
pub fn escape(s: &str) -> String {
    let s = crate::chat::markup::defuse_mass_mentions(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '#' | '[' | ']' | '<' | '@'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Our own sentences that quote something from outside: only what could mention, call
/// or link is escaped (`<`, `@`, `[`, `]`), so our `code` and **bold** still render.
pub fn defang(s: &str) -> String {
    let s = crate::chat::markup::defuse_mass_mentions(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '<' | '@' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn quote(s: &str) -> String {
    crate::chat::markup::quote_lines(s, escape)
}

/// Discord's documented limits (discord-api-docs, Embed and Component objects).
pub mod limits {
    pub const TITLE: usize = 256;
    pub const DESCRIPTION: usize = 4096;
    pub const FIELDS: usize = 25;
    pub const FIELD_NAME: usize = 256;
    pub const FIELD_VALUE: usize = 1024;
    pub const FOOTER: usize = 2048;
    pub const AUTHOR: usize = 256;
    /// Title, description, field names and values, footer and author together.
    pub const EMBED_TOTAL: usize = 6000;
    pub const CONTENT: usize = 2000;
    pub const BUTTON_LABEL: usize = 80;
    pub const OPTIONS: usize = 25;
    pub const OPTION_LABEL: usize = 100;
    pub const THREAD_NAME: usize = 100;
    pub const MODAL_TITLE: usize = 45;
    pub const INPUT_LABEL: usize = 45;
    pub const PLACEHOLDER: usize = 100;
    pub const INPUT_VALUE: usize = 4000;
    pub const URL: usize = 2000;
}

/// A message's link in the guild: `https://discord.com/channels/{guild}/{channel}/{message}`.
/// None when an id is not a snowflake (it is put in a link as it is).
pub fn message_link(guild: &str, channel: &str, message: &str) -> Option<String> {
    let snowflake = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    (snowflake(guild) && snowflake(channel) && snowflake(message))
        .then(|| format!("https://discord.com/channels/{guild}/{channel}/{message}"))
}

pub struct DiscordMarkup;

impl Markup for DiscordMarkup {
    fn surface(&self) -> SurfaceKind {
        SurfaceKind::Discord
    }
    fn escape(&self, text: &str) -> String {
        escape(text)
    }
    fn quote(&self, text: &str) -> String {
        quote(text)
    }
    fn channel_ping(&self) -> &'static str {
        "@here"
    }
    fn bold(&self, text: &str) -> String {
        format!("**{text}**")
    }
    fn raw_link(&self, url: &str, label: &str) -> String {
        // Angle brackets keep Discord from unfurling a preview of every link.
        format!("[{label}](<{url}>)")
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

fn colour(ticket: &Ticket) -> u32 {
    match (ticket.stage, &ticket.holder) {
        (Stage::Resolved, _) => 0x002e_b86f,
        (Stage::Ignored, _) => 0x0080_848e,
        (Stage::Replied, _) => 0x0058_65f2,
        (_, Some(_)) => 0x00f0_b232,
        _ => 0x00ed_4245,
    }
}

/// Short plain texts (labels, titles, placeholders) cut to a limit at a grapheme
/// boundary, with mass mentions in what they quote defused.
fn truncate(s: &str, max: usize) -> String {
    DiscordMarkup.fit_plain(s, max)
}

pub fn card_title(ticket: &Ticket) -> String {
    format!(
        "{} mention #{}",
        DiscordMarkup.fit(ticket.mention.network_label(), 50).0,
        ticket.id
    )
}

/// The embed's characters as Discord adds them up against its 6,000 total.
fn embed_len(e: &serde_json::Value) -> usize {
    let len = |v: &serde_json::Value| v.as_str().map(surface_len).unwrap_or(0);
    len(&e["title"])
        + len(&e["description"])
        + len(&e["footer"]["text"])
        + len(&e["author"]["name"])
        + e["fields"]
            .as_array()
            .map(|fs| fs.iter().map(|f| len(&f["name"]) + len(&f["value"])).sum())
            .unwrap_or(0)
}

/// `customer`: the lines about who the customer is (see `chat::customer::card_lines`),
/// already in Discord markdown; none for a first contact.
pub fn card_embed(ticket: &Ticket, customer: &[String]) -> CreateEmbed {
    let m = &ticket.mention;
    let d = &DiscordMarkup;
    let mut embed = CreateEmbed::new()
        .title(card_title(ticket))
        .author(CreateEmbedAuthor::new(d.fit_plain(
            &format!("{} (@{})", m.author.name, m.author.handle),
            limits::AUTHOR,
        )))
        .colour(colour(ticket))
        .field("State", ticket.state_label(), true)
        .field("Posted", posted(ticket), true)
        .footer(CreateEmbedFooter::new(format!(
            "{} · {} {}{}",
            d.fit_plain(m.network_label(), 50),
            visibility_label(m.visibility),
            if m.in_reply_to.is_some() {
                "reply"
            } else {
                "mention"
            },
            crate::domain::language::card_label(m)
                .map(|l| format!(" · {}", d.fit_plain(&l, 60)))
                .unwrap_or_default()
        )));
    // A link Discord would refuse (not a well-formed http(s) URL) is left out, so the card
    // is still accepted; the post's address then shows as text.
    let url = safe_url(&m.url).filter(|u| u.len() <= limits::URL);
    match &url {
        Some(url) => embed = embed.url(url),
        None => {
            embed = embed.field(
                "Original",
                d.fit(&format!("not a web link: {}", m.url), 300).0,
                false,
            )
        }
    }
    if let Some(link) = safe_url(&m.author.profile_url)
        .map(|u| d.raw_link(&u, "profile"))
        .filter(|l| surface_len(l) <= limits::FIELD_VALUE)
    {
        embed = embed.field("Author", link, true);
    }
    if let Ok(ts) = Timestamp::from_unix_timestamp(m.created_at.timestamp()) {
        embed = embed.timestamp(ts);
    }
    if let Some(c) = &ticket.holder {
        embed = embed.field(
            "Held by",
            format!("{} since <t:{}:t>", d.who(&c.agent), c.since.timestamp()),
            true,
        );
    }
    if let Some(by) = &ticket.closed_by {
        embed = embed.field("Closed by", d.who(by), true);
    }
    if let Some(due) = ticket.respond_by.filter(|_| ticket.awaiting_answer()) {
        // Discord renders `<t:…:R>` live ("in 12 minutes", "3 minutes ago").
        embed = embed.field(
            if ticket.sla.breached {
                "🔴 Reply overdue"
            } else {
                "Reply due"
            },
            format!("<t:{}:R>", due.timestamp()),
            true,
        );
    }
    if !ticket.route.is_empty() && ticket.route != crate::domain::routes::DEFAULT_ROUTE {
        embed = embed.field("Route", d.fit(&ticket.route, 100).0, true);
    }
    if let Some(line) = crate::chat::priority_line(ticket, d) {
        embed = embed.field("Priority", line, false);
    }
    if let Some(value) = whole_lines(customer, limits::FIELD_VALUE) {
        embed = embed.field("Customer", value, false);
    }
    if let Some((name, value)) = super::translation::card_field(ticket) {
        embed = embed.field(name, value, false);
    }
    for r in ticket.replies.iter().rev().take(MAX_REPLY_FIELDS).rev() {
        let mut head = match &r.state {
            ReplyState::Pending => "⏳ sending…".to_string(),
            ReplyState::Published { url, .. } => {
                format!("✅ {}{}", d.link(url, "published"), approved_by(r, d))
            }
            ReplyState::Failed { reason } => format!("❌ not published: {}", d.fit(reason, 300).0),
            ReplyState::AwaitingApproval => format!(
                "🛂 awaits approval: {}",
                d.fit(
                    &r.review
                        .as_ref()
                        .map(|v| v.reasons.join("; "))
                        .unwrap_or_default(),
                    300
                )
                .0
            ),
            ReplyState::Rejected { by } => format!("🚫 rejected by {}", d.name(by)),
        };
        if surface_len(&head) > 400 {
            head = "✅ published".to_string();
        }
        head.push('\n');
        let quoted = d.fit_quote(&r.text, MAX_REPLY_QUOTE).0;
        embed = embed.field(
            format!("Reply by {}", d.fit_plain(&r.by.name, 200)),
            head + &quoted,
            false,
        );
    }
    // The post gets whatever the 6,000-character total leaves, up to the description's
    // own 4,096; a cut text ends with the mark and the way to the whole post.
    let used = embed_len(&serde_json::to_value(&embed).unwrap_or_default());
    let room = limits::DESCRIPTION.min(limits::EMBED_TOTAL.saturating_sub(used + 8));
    let more = url
        .map(|u| format!("\n{}", d.raw_link(&u, "read the whole post")))
        .unwrap_or_default();
    let (description, cut) = d.fit(&m.text, room);
    let description = if cut {
        d.fit(&m.text, room.saturating_sub(surface_len(&more))).0 + &more
    } else {
        description
    };
    embed.description(description)
}

/// As many of `lines` as fit in `max` characters, whole (a line cut short could end
/// inside a link); `None` when there are none.
fn whole_lines(lines: &[String], max: usize) -> Option<String> {
    let mut out = String::new();
    for line in lines {
        let next = if out.is_empty() {
            line.clone()
        } else {
            format!("{out}\n{line}")
        };
        if surface_len(&next) > max {
            break;
        }
        out = next;
    }
    (!out.is_empty()).then_some(out)
}

/// Reply fields an embed shows, and how much of each reply they quote (the thread has
/// every reply in full); with the other fields this leaves the post most of the total.
const MAX_REPLY_FIELDS: usize = 3;
const MAX_REPLY_QUOTE: usize = 500;

/// When the post says it was written, and when the desk received it if the two differ by
/// more than a few minutes (deadlines run from the desk's own clock).
fn posted(ticket: &Ticket) -> String {
    let m = &ticket.mention;
    let received = ticket.received_at();
    if (received - m.created_at).num_minutes().abs() > CLOCK_SKEW_SHOWN_MINUTES {
        format!(
            "received <t:{}:R> (the post says {})",
            received.timestamp(),
            m.created_at.format("%Y-%m-%d %H:%M UTC")
        )
    } else {
        format!("<t:{}:R>", m.created_at.timestamp())
    }
}

pub fn card_buttons(
    ticket: &Ticket,
    can_reply: bool,
    canned: &[CannedReply],
) -> Vec<CreateActionRow> {
    let row = CardButton::for_ticket(ticket, can_reply)
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if *b == CardButton::OpenOriginal {
                // Discord refuses a whole message whose link button is not a valid URL.
                return match safe_url(&ticket.mention.url).filter(|u| u.len() <= limits::URL) {
                    Some(url) => CreateButton::new_link(url).label(b.label()),
                    None => CreateButton::new(format!("mb:nolink:{}", ticket.id))
                        .label("Original: not a web link")
                        .style(ButtonStyle::Secondary)
                        .disabled(true),
                };
            }
            CreateButton::new(custom_id(*b, ticket.id))
                .label(b.label_for(can_reply))
                .style(if i == 0 {
                    ButtonStyle::Primary
                } else {
                    ButtonStyle::Secondary
                })
        })
        .collect();
    let mut rows = vec![CreateActionRow::Buttons(row)];
    // The canned-reply picker: choosing one opens the reply form with it filled in.
    if can_reply && !ticket.is_closed() && !canned.is_empty() {
        let options = canned
            .iter()
            .take(limits::OPTIONS)
            .map(|c| {
                CreateSelectMenuOption::new(truncate(&c.title, limits::OPTION_LABEL), c.id.clone())
            })
            .collect();
        rows.push(CreateActionRow::SelectMenu(
            CreateSelectMenu::new(
                format!("{CANNED_MENU}:{}", ticket.id),
                CreateSelectMenuKind::String { options },
            )
            .placeholder("Canned reply…"),
        ));
    }
    rows
}

pub fn thread_name(ticket: &Ticket) -> String {
    truncate(
        &format!("Ticket #{} · @{}", ticket.id, ticket.mention.author.handle),
        limits::THREAD_NAME,
    )
}

/// The reply form; with `private`, a private message plus an optional short public
/// acknowledgement. Discord forms hold only text inputs, so the mention is quoted in the
/// placeholder.
pub fn reply_modal(
    ticket: &Ticket,
    rules: TextRules,
    private: bool,
    initial: Option<&str>,
) -> CreateModal {
    reply_form(ticket, rules, private, initial, None)
}

/// The reply form, with a field to translate the draft into `translate_to` first (the
/// customer's language) when translation is configured.
pub fn reply_form(
    ticket: &Ticket,
    rules: TextRules,
    private: bool,
    initial: Option<&str>,
    translate_to: Option<&str>,
) -> CreateModal {
    let (prefix, title) = if private {
        (PRIVATE_MODAL, format!("Reply privately to #{}", ticket.id))
    } else {
        (REPLY_MODAL, format!("Reply to mention #{}", ticket.id))
    };
    let mut rows = reply_rows(ticket, rules, private, initial);
    if let Some(to) = translate_to {
        rows.push(super::translation::translate_input(to));
    }
    CreateModal::new(
        format!("{prefix}:{}", ticket.id),
        truncate(&title, limits::MODAL_TITLE),
    )
    .components(rows)
}

/// The form to rewrite a draft that waits for approval, filled with it as it reads.
pub fn edit_draft_modal(ticket: &Ticket, rules: TextRules, draft: &str) -> CreateModal {
    CreateModal::new(
        format!("{EDIT_MODAL}:{}", ticket.id),
        truncate(
            &format!("Edit the draft for #{}", ticket.id),
            limits::MODAL_TITLE,
        ),
    )
    .components(reply_rows(ticket, rules, false, Some(draft)))
}

fn reply_rows(
    ticket: &Ticket,
    rules: TextRules,
    private: bool,
    initial: Option<&str>,
) -> Vec<CreateActionRow> {
    let m = &ticket.mention;
    let label = if private {
        format!("Private message ({} max)", rules.max_chars)
    } else {
        format!(
            "Reply ({} counts {} chars max)",
            m.platform.label(),
            rules.max_chars
        )
    };
    let input = CreateInputText::new(
        InputTextStyle::Paragraph,
        truncate(&label, limits::INPUT_LABEL),
        REPLY_INPUT,
    )
    .placeholder(truncate(
        &format!("To @{}: {}", m.author.handle, m.text.replace('\n', " ")),
        limits::PLACEHOLDER,
    ))
    .required(true)
    .max_length(limits::INPUT_VALUE as u16);
    let input = match initial {
        // The agent's own draft, sent to the customer as it stands: cut, never altered.
        Some(text) => input.value(crate::chat::markup::cut_to(text, limits::INPUT_VALUE)),
        None => input,
    };
    let mut rows = vec![CreateActionRow::InputText(input)];
    if private {
        rows.push(CreateActionRow::InputText(
            CreateInputText::new(
                InputTextStyle::Short,
                "Public acknowledgement (optional)",
                ACK_INPUT,
            )
            .placeholder("We've sent you a DM.")
            .required(false)
            .max_length(280),
        ));
    }
    rows
}

fn ticket_option(verb: &str) -> CreateCommandOption {
    let description = match verb {
        "dm" => "Reply privately to a mention ticket".to_string(),
        "approve" => "Approve the draft on a mention ticket".to_string(),
        "reject" => "Reject the draft on a mention ticket".to_string(),
        "why" => "Why a ticket has its priority, and what the rules did".to_string(),
        _ => format!("{} a mention ticket", crate::chat::capitalised(verb)),
    };
    CreateCommandOption::new(CommandOptionType::SubCommand, verb, description).add_sub_option(
        CreateCommandOption::new(CommandOptionType::Integer, "ticket", "Ticket number")
            .required(true)
            .min_int_value(1)
            .set_autocomplete(true),
    )
}

/// `/mentions list|claim|unclaim|reply|resolve|ignore|reopen|why|note|who|…`.
pub fn command() -> CreateCommand {
    let mut cmd = CreateCommand::new(COMMAND)
        .description("Social media mention tickets")
        .dm_permission(false)
        .add_option(CreateCommandOption::new(
            CommandOptionType::SubCommand,
            "list",
            "List open mention tickets",
        ))
        .add_option(
            CreateCommandOption::new(
                CommandOptionType::SubCommand,
                "stats",
                "Response times and SLA",
            )
            .add_sub_option(
                CreateCommandOption::new(CommandOptionType::String, "window", "Period")
                    .add_string_choice("last 24 hours", "24h")
                    .add_string_choice("last 7 days", "7d")
                    .add_string_choice("last 30 days", "30d"),
            )
            .add_sub_option(CreateCommandOption::new(
                CommandOptionType::Boolean,
                "charts",
                "Answer with charts (when customers write, who is on shift, speed, SLA, CSAT)",
            ))
            .add_sub_option(
                CreateCommandOption::new(
                    CommandOptionType::String,
                    "tz",
                    "Time zone for the charts, e.g. Europe/Berlin (default UTC)",
                )
                .max_length(64),
            ),
        );
    cmd = cmd.add_option(CreateCommandOption::new(
        CommandOptionType::SubCommand,
        "canned",
        "List the canned replies",
    ));
    cmd = cmd.add_option(
        CreateCommandOption::new(
            CommandOptionType::SubCommand,
            "oncall",
            "Who is on call; or put someone on call",
        )
        .add_sub_option(CreateCommandOption::new(
            CommandOptionType::String,
            "override",
            "Put on call now: me, slack:U… or discord:…",
        ))
        .add_sub_option(CreateCommandOption::new(
            CommandOptionType::String,
            "for",
            "How long, e.g. 4h",
        )),
    );
    for verb in [
        "claim", "unclaim", "resolve", "ignore", "reopen", "approve", "reject", "why",
    ] {
        cmd = cmd.add_option(ticket_option(verb));
    }
    cmd = cmd.add_option(
        CreateCommandOption::new(
            CommandOptionType::SubCommand,
            "incident",
            "List an incident's members",
        )
        .add_sub_option(
            CreateCommandOption::new(CommandOptionType::Integer, "incident", "Incident number")
                .required(true)
                .min_int_value(1),
        )
        .add_sub_option(
            CreateCommandOption::new(CommandOptionType::Integer, "page", "Page").min_int_value(1),
        ),
    );
    cmd = cmd.add_option(
        CreateCommandOption::new(
            CommandOptionType::SubCommand,
            "split",
            "Give an incident's member its own card",
        )
        .add_sub_option(
            CreateCommandOption::new(CommandOptionType::Integer, "ticket", "Ticket number")
                .required(true)
                .min_int_value(1),
        ),
    );
    // Required options come first, as Discord wants them.
    let handle = || {
        CreateCommandOption::new(
            CommandOptionType::String,
            "handle",
            "The customer's handle, e.g. @kim@social.example",
        )
        .required(true)
        .max_length(200)
    };
    let network = || {
        CreateCommandOption::new(
            CommandOptionType::String,
            "network",
            "Their network, when several are configured",
        )
        .add_string_choice("Mastodon", "mastodon")
        .add_string_choice("Bluesky", "bluesky")
        .add_string_choice("X", "x")
    };
    cmd = cmd.add_option(
        CreateCommandOption::new(
            CommandOptionType::SubCommand,
            "note",
            "Leave the team a note about a customer (never sent to them)",
        )
        .add_sub_option(handle())
        .add_sub_option(
            CreateCommandOption::new(CommandOptionType::String, "text", "The note")
                .required(true)
                .max_length(1000),
        )
        .add_sub_option(network()),
    );
    cmd = cmd.add_option(
        CreateCommandOption::new(
            CommandOptionType::SubCommand,
            "who",
            "A customer's tickets and the team's notes, privately",
        )
        .add_sub_option(handle())
        .add_sub_option(network()),
    );
    cmd = cmd.add_option(
        ticket_option("dm").add_sub_option(
            CreateCommandOption::new(
                CommandOptionType::String,
                "text",
                "Your private message to the customer",
            )
            .required(true)
            .max_length(4000),
        ),
    );
    cmd.add_option(
        ticket_option("reply").add_sub_option(
            CreateCommandOption::new(
                CommandOptionType::String,
                "text",
                "Your answer to the customer",
            )
            .required(true)
            .max_length(4000),
        ),
    )
}

/// `/mentions list`: open tickets, highest priority first, as an ephemeral message.
/// How many open tickets the list shows at most.
pub const LISTED: usize = 20;

/// How many choices autocomplete offers (Discord's limit).
pub const CHOICES: usize = 25;

pub fn open_list(open: &crate::ports::OpenTickets) -> String {
    crate::chat::open_list(open, &DiscordMarkup, LISTED, limits::CONTENT)
}

/// Autocomplete choices for a ticket option: open tickets matching what was typed.
pub fn ticket_choices(tickets: &[Ticket], typed: &str) -> Vec<(String, u64)> {
    let typed = typed.trim().trim_start_matches('#');
    tickets
        .iter()
        .filter(|t| typed.is_empty() || t.id.to_string().starts_with(typed))
        .take(CHOICES)
        .map(|t| {
            let name = truncate(
                &format!(
                    "#{} {} @{}: {}",
                    t.id,
                    t.state_label(),
                    t.mention.author.handle,
                    t.mention.text.replace('\n', " ")
                ),
                100,
            );
            (name, t.id.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_round_trip_and_strangers_are_refused() {
        let id = custom_id(CardButton::Resolve, TicketId(42));
        assert_eq!(id, "mb:resolve:42");
        assert_eq!(
            parse_custom_id(&id),
            Some((CardButton::Resolve, TicketId(42)))
        );
        assert_eq!(parse_custom_id("mb:teleport:42"), None);
        assert_eq!(parse_custom_id("other:claim:42"), None);
        assert_eq!(parse_custom_id("mb:claim:x"), None);
    }

    #[test]
    fn markdown_and_mentions_in_customer_text_are_neutralised() {
        assert_eq!(
            escape("**hi** @everyone <@123>"),
            "\\*\\*hi\\*\\* \\@\u{200B}everyone \\<\\@123\\>"
        );
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
