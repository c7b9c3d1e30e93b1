//! The nouns of the support desk: mentions, tickets, agents, effects and audit entries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Dense, human-friendly ticket number (`/mentions claim 42`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TicketId(pub u64);

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for TicketId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .trim_start_matches('#')
            .parse::<u64>()
            .map(TicketId)
            .map_err(|_| format!("`{s}` is not a ticket number (expected e.g. 42)"))
    }
}

/// An incident's number (`/mentions incident 7`): its own sequence, apart from tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IncidentId(pub u64);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for IncidentId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .trim_start_matches('#')
            .parse::<u64>()
            .map(IncidentId)
            .map_err(|_| format!("`{s}` is not an incident number (expected e.g. 7)"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Mastodon,
    Bluesky,
    X,
    /// A network we only hear about (through the inbound webhook) and cannot answer on.
    Other,
}

impl Platform {
    pub fn label(self) -> &'static str {
        match self {
            Platform::Mastodon => "Mastodon",
            Platform::Bluesky => "Bluesky",
            Platform::X => "X",
            Platform::Other => "Other",
        }
    }

    /// The platform a listening tool names (`"mastodon"`, `"bluesky"`, `"x"`/`"twitter"`).
    pub fn from_name(name: &str) -> Platform {
        match name.trim().to_ascii_lowercase().as_str() {
            "mastodon" => Platform::Mastodon,
            "bluesky" | "bsky" => Platform::Bluesky,
            "x" | "twitter" => Platform::X,
            _ => Platform::Other,
        }
    }
}

/// Who can see a post. Replies never widen the audience of the post they answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Unlisted,
    Private,
    Direct,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// Handle as the platform addresses it (`alice` or `alice@other.social`).
    pub handle: String,
    pub name: String,
    pub profile_url: String,
    /// The platform's stable id for the person (Mastodon account id, Bluesky DID, X
    /// user id): private messages go to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// How many people follow the author, where the platform says (their reach): it
    /// weighs in the ticket's priority and shows on the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followers: Option<u64>,
}

/// One post on a social platform that names the brand, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mention {
    pub platform: Platform,
    /// The network's own name when `platform` is `Other` (e.g. "Instagram").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The brand account on that platform (a bridge may watch several).
    pub account: String,
    pub remote_id: String,
    pub url: String,
    pub author: Author,
    pub text: String,
    pub language: Option<String>,
    pub created_at: DateTime<Utc>,
    pub in_reply_to: Option<String>,
    pub visibility: Visibility,
    /// What the platform's publisher needs to reply in the thread, opaque to everyone
    /// else (Bluesky: the post's CID and its thread root as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_context: Option<String>,
    /// The listening tool's own id for the post (webhook deliveries): with the tool's
    /// name in `account`, it identifies the delivery whatever else the body says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// What the desk's detector made of the text (see `domain::language`), set before the
    /// mention is stored; `language` stays the platform's own tag. None: not detected
    /// (detection off, or stored before the desk detected languages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_language: Option<DetectedLanguage>,
}

/// The detector's verdict on a mention's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectedLanguage {
    /// Its best guess (ISO 639-1, `da`); none when the text was too short to tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// How sure it was of the guess, in percent (its share of the likelihood among the
    /// languages it knows).
    #[serde(default)]
    pub confidence: u8,
    /// Sure enough to go by: the guess is the mention's language. Otherwise the
    /// platform's tag stands.
    #[serde(default)]
    pub sure: bool,
}

/// Where the language the desk goes by came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LanguageSource {
    Detected,
    /// The platform's (or the listening tool's) tag.
    Platform,
}

impl Mention {
    /// The language routes, canned replies and the card go by: the detected one when the
    /// detector was sure, else the platform's tag (when it gave one).
    pub fn language_in_use(&self) -> Option<(&str, LanguageSource)> {
        match &self.detected_language {
            Some(DetectedLanguage {
                language: Some(l),
                sure: true,
                ..
            }) => Some((l, LanguageSource::Detected)),
            _ => self
                .language
                .as_deref()
                .filter(|l| !l.trim().is_empty())
                .map(|l| (l, LanguageSource::Platform)),
        }
    }

    /// The network's name as agents know it.
    pub fn network_label(&self) -> &str {
        match (&self.platform, &self.network) {
            (Platform::Other, Some(n)) => n,
            (p, _) => p.label(),
        }
    }

    /// The key the source that brought the mention knows it by (platform, account, remote
    /// id): a later post answering `remote_id` finds its conversation by it.
    pub fn dedupe_key(&self) -> String {
        format!(
            "{:?}\u{0}{}\u{0}{}",
            self.platform, self.account, self.remote_id
        )
    }

    /// Every key the mention is remembered by; a mention matching any of them was seen
    /// before. Besides the source's own key: the listening tool's (source, id) for a
    /// webhook delivery, so a retry with a different body is still the same mention; and
    /// the post's identity on its platform, so the same post brought by a poller and by a
    /// webhook is one ticket.
    pub fn dedupe_keys(&self) -> Vec<String> {
        let mut keys = vec![self.dedupe_key()];
        if let Some(id) = &self.external_id {
            keys.push(format!("tool\u{0}{}\u{0}{id}", self.account));
        }
        keys.extend(self.post_key());
        keys
    }

    /// The post's identity across every path that can bring it to the desk, when its
    /// platform has one: an X post's id, a Bluesky post's `at://did:…` URI (both global),
    /// a Mastodon status's URL (its ids differ from server to server, its URL does not).
    /// Other networks have none we can trust: two tools' posts are never merged on a
    /// guess.
    pub fn post_key(&self) -> Option<String> {
        let platform = match self.platform {
            Platform::Other => Platform::from_name(self.network.as_deref().unwrap_or("")),
            p => p,
        };
        let native = (self.platform == platform).then_some(self.remote_id.as_str());
        let id = match platform {
            Platform::X => native
                .filter(|id| is_x_id(id))
                .map(str::to_string)
                .or_else(|| x_id_of_url(&self.url)),
            Platform::Bluesky => native
                .filter(|id| id.starts_with("at://did:"))
                .map(str::to_string)
                .or_else(|| bluesky_uri_of_url(&self.url)),
            Platform::Mastodon => mastodon_status_url(&self.url),
            Platform::Other => None,
        }?;
        Some(format!("post\u{0}{}\u{0}{id}", platform.label()))
    }

    /// The post key of another post on the same platform by its native id (the post this
    /// one answers, say), when an id alone is global there (X, Bluesky).
    pub fn post_key_of(&self, remote_id: &str) -> Option<String> {
        let mut other = self.clone();
        other.remote_id = remote_id.to_string();
        other.url = String::new();
        other.external_id = None;
        match self.platform {
            Platform::X | Platform::Bluesky => other.post_key(),
            _ => None,
        }
    }
}

fn is_x_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

fn parsed_http(url: &str) -> Option<url::Url> {
    url::Url::parse(url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// `https://x.com/alice/status/123` (or twitter.com, mobile., `/i/web/status/123`).
fn x_id_of_url(url: &str) -> Option<String> {
    let u = parsed_http(url)?;
    let host = u.host_str()?.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    let host = host.strip_prefix("mobile.").unwrap_or(host);
    if !matches!(host, "x.com" | "twitter.com") {
        return None;
    }
    let segments: Vec<&str> = u.path_segments()?.collect();
    let at = segments.iter().position(|s| *s == "status")?;
    segments
        .get(at + 1)
        .filter(|id| is_x_id(id))
        .map(|id| id.to_string())
}

/// `https://bsky.app/profile/did:plc:…/post/<rkey>` as its `at://` URI. A profile named
/// by handle is not usable: handles change hands.
fn bluesky_uri_of_url(url: &str) -> Option<String> {
    let u = parsed_http(url)?;
    if !u.host_str()?.eq_ignore_ascii_case("bsky.app") {
        return None;
    }
    let segments: Vec<&str> = u.path_segments()?.collect();
    match segments.as_slice() {
        ["profile", did, "post", rkey]
            if did.starts_with("did:")
                && !rkey.is_empty()
                && rkey.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            Some(format!("at://{did}/app.bsky.feed.post/{rkey}"))
        }
        _ => None,
    }
}

/// A status URL written one way: host lowercased, no query or fragment (a tool's
/// tracking parameters), no trailing slash, and the ActivityPub form
/// `/users/alice/statuses/1` as the web form `/@alice/1`.
fn mastodon_status_url(url: &str) -> Option<String> {
    let u = parsed_http(url)?;
    let host = u.host_str()?.to_ascii_lowercase();
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    let segments: Vec<&str> = u.path_segments()?.filter(|s| !s.is_empty()).collect();
    let path = match segments.as_slice() {
        ["users", user, "statuses", id] => format!("/@{user}/{id}"),
        [] => return None,
        other => format!("/{}", other.join("/")),
    };
    Some(format!("{host}{port}{path}"))
}

/// The chat surfaces agents work in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SurfaceKind {
    Slack,
    Discord,
}

impl SurfaceKind {
    pub fn label(self) -> &'static str {
        match self {
            SurfaceKind::Slack => "Slack",
            SurfaceKind::Discord => "Discord",
        }
    }
}

/// An agent (or would-be agent) as a chat surface identifies them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRef {
    pub surface: SurfaceKind,
    pub user_id: String,
    pub name: String,
    /// The roles the surface reported with this action (Discord); used to judge it,
    /// never stored.
    #[serde(skip)]
    pub roles: Vec<String>,
}

impl AgentRef {
    /// The agent as on-call schedules name them: `slack:U…`, `discord:…`.
    pub fn member_key(&self) -> String {
        format!(
            "{}:{}",
            self.surface.label().to_ascii_lowercase(),
            self.user_id
        )
    }

    pub fn same_person(&self, other: &AgentRef) -> bool {
        self.surface == other.surface && self.user_id == other.user_id
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub agent: AgentRef,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// Stored, card not yet confirmed on any surface.
    New,
    /// A card is up; waiting for an agent.
    Posted,
    /// At least one reply went out.
    Replied,
    Resolved,
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyState {
    /// Persisted in the outbox, not yet confirmed by the platform.
    Pending,
    Published {
        remote_id: String,
        url: String,
    },
    /// The platform refused it for good; the reason is the platform's.
    Failed {
        reason: String,
    },
    /// A draft that matched the desk's risk rules: nothing goes out until another agent
    /// approves it (see `domain::approval`).
    AwaitingApproval,
    /// A draft another agent (or its author) turned down: never sent.
    Rejected {
        by: AgentRef,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub seq: u32,
    /// The exact text that goes out (on Mastodon with the customer's @handle first; see
    /// `compose_reply`).
    pub text: String,
    pub visibility: Visibility,
    /// Sent as a private message (Mastodon direct, Bluesky chat, X DM), not in the thread.
    #[serde(default)]
    pub private: bool,
    pub by: AgentRef,
    pub at: DateTime<Utc>,
    pub state: ReplyState,
    /// Sent by the desk itself (the off-hours acknowledgement), not an agent's answer:
    /// it stops no SLA clock and counts as no response.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto: bool,
    /// Why the draft needed a second pair of eyes, and who gave it, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
}

/// The second pair of eyes on a risky draft: why it was held, who approved it (never its
/// author), and whether the approvers were reminded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub reasons: Vec<String>,
    #[serde(default)]
    pub approved_by: Option<AgentRef>,
    #[serde(default)]
    pub approved_at: Option<DateTime<Utc>>,
    /// The approvers were reminded that this draft waits.
    #[serde(default)]
    pub reminded: bool,
}

/// A later post by the customer in the same conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    pub remote_id: String,
    pub url: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    pub mention: Mention,
    pub stage: Stage,
    pub holder: Option<Claim>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_by: Option<AgentRef>,
    pub replies: Vec<Reply>,
    /// The customer's later posts in the same conversation, oldest first.
    #[serde(default)]
    pub followups: Vec<FollowUp>,
    /// The customer wrote since the last answer: the card says so.
    #[serde(default)]
    pub customer_replied: bool,
    /// The route the mention matched (its SLA, paging and off-hours rules); empty for
    /// the default route.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub route: String,
    /// When the first response is due under the route's target, stamped on arrival.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond_by: Option<DateTime<Utc>>,
    /// What the SLA clocks already did about this ticket, so each step happens once.
    #[serde(default)]
    pub sla: SlaMarks,
    /// The customer was told the team is off shift (once per conversation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub off_hours_acked: bool,
    /// The storm this ticket arrived in: it is shown on the incident's card instead of a
    /// card of its own (until an agent splits it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentId>,
    /// How urgent the ticket was judged on arrival, and why (see `domain::priority`;
    /// waiting adds to it when tickets are listed).
    #[serde(default, skip_serializing_if = "Priority::is_plain")]
    pub priority: Priority,
    /// Tags the configured rules gave the ticket on arrival.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// What each configured rule that matched the mention did (see `domain::triage`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_hits: Vec<RuleHit>,
    /// The mention machine-translated into the team's language (`[translation]`), kept
    /// so that a restart never asks for it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translation: Option<MentionTranslation>,
    // -- privacy (issue 14): what of the customer's data was removed, and why ------------
    /// Set once the customer's text or identity was removed (retention or erasure, see
    /// `domain::privacy`): the card renders the placeholders, nothing of the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymised: Option<Anonymised>,
    // -- surveys (issue 14, part 2) --
    /// The satisfaction survey asked after a resolve, and its answer (see `domain::survey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<Survey>,
}

/// What of a ticket's personal data was removed, when and why (see `domain::privacy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anonymised {
    pub at: DateTime<Utc>,
    /// `retention` (the configured days passed) or `erasure` (`mentionbridge erase`).
    pub why: String,
    /// The customer's text (mention, follow-ups, translation, reply context, replies).
    #[serde(default)]
    pub text: bool,
    /// Who they are (handle, name, profile, ids, post URLs).
    #[serde(default)]
    pub identity: bool,
    /// With identity removed: the keyed hash of the author's key
    /// (`domain::priority::author_key`), which the index of an author's tickets files the
    /// ticket under instead, so the person's tickets still group without naming them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

/// A mention's text as a translation service rendered it in the team's language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MentionTranslation {
    pub text: String,
    /// The language it was translated from: the mention's own, or what the service
    /// detected when the platform did not say.
    pub from: Option<String>,
    pub to: String,
    /// Which service translated it, for the card's label ("DeepL").
    pub by: String,
    pub at: DateTime<Utc>,
}

// -- what triage stamps on a ticket (judged in `priority` and `triage`) ------------------

/// How urgent a ticket is, lowest first.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Low, Level::Normal, Level::High, Level::Urgent];

    pub fn label(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Normal => "normal",
            Level::High => "high",
            Level::Urgent => "urgent",
        }
    }

    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.label().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A ticket's priority: its level, the points it was judged on, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Priority {
    pub level: Level,
    pub score: i32,
    /// Each reason with the points it gave, in the order judged.
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub why: String,
    pub points: i32,
}

impl Priority {
    /// Normal with nothing said about it (what tickets from before priorities were).
    pub fn is_plain(&self) -> bool {
        *self == Priority::default()
    }

    /// The reasons as the card shows them: "VIP · 48k followers".
    pub fn why(&self) -> String {
        self.reasons
            .iter()
            .map(|r| r.why.as_str())
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

/// What one rule that matched did, kept on the ticket and told on demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleHit {
    pub rule: String,
    /// What in the mention matched ("word \"airdrop\"", "link bit.ly").
    pub matched: String,
    /// What the rule did ("ignored", "tagged billing", "routed to billing").
    pub did: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignored: bool,
}

impl RuleHit {
    /// `rule "spam": ignored (word "airdrop")`.
    pub fn sentence(&self) -> String {
        format!("rule {:?}: {} ({})", self.rule, self.did, self.matched)
    }
}

/// A post's claimed time further than this from when the desk received it is shown on
/// the card beside the time of arrival.
pub const CLOCK_SKEW_SHOWN_MINUTES: i64 = 5;

impl Ticket {
    /// When the desk received the mention. Every clock (first-response and resolution
    /// targets, escalations, digests, numbers) starts here: the post's `created_at` is
    /// what the platform or the customer claims and can be years off either way.
    pub fn received_at(&self) -> DateTime<Utc> {
        self.opened_at
    }

    pub fn open(id: TicketId, mention: Mention, now: DateTime<Utc>) -> Ticket {
        Ticket {
            id,
            mention,
            stage: Stage::New,
            holder: None,
            opened_at: now,
            updated_at: now,
            closed_by: None,
            replies: Vec::new(),
            followups: Vec::new(),
            customer_replied: false,
            route: String::new(),
            respond_by: None,
            sla: Default::default(),
            off_hours_acked: false,
            incident: None,
            priority: Default::default(),
            tags: Vec::new(),
            rule_hits: Vec::new(),
            translation: None,
            anonymised: None,
            survey: None,
        }
    }

    /// A rule ignored the mention on arrival and no agent has looked at it since: it is
    /// on the desk (counted, listed by number, exported) but has no card.
    pub fn kept_off_by_rule(&self) -> bool {
        self.stage == Stage::Ignored
            && self.closed_by.is_none()
            && self.rule_hits.iter().any(|h| h.ignored)
    }

    /// The earliest published reply by an agent: how long the customer waited for it
    /// (from when the desk received the mention), and who sent it. Public and private
    /// replies count; pending and failed ones, and the desk's own acknowledgement, do not.
    pub fn first_response(&self) -> Option<(chrono::Duration, &AgentRef)> {
        self.replies
            .iter()
            .filter(|r| !r.auto && matches!(r.state, ReplyState::Published { .. }))
            .min_by_key(|r| (r.at, r.seq))
            .map(|r| {
                let waited = (r.at - self.received_at()).max(chrono::Duration::zero());
                (waited, &r.by)
            })
    }

    /// When an agent's first answer went out, if one did (the desk's own off-hours
    /// acknowledgement is not an answer).
    pub fn first_answer(&self) -> Option<DateTime<Utc>> {
        self.replies
            .iter()
            .filter(|r| !r.auto && matches!(r.state, ReplyState::Published { .. }))
            .map(|r| r.at)
            .min()
    }

    /// The SLA clocks run while the ticket is open and no agent's answer is out or on
    /// its way.
    pub fn awaiting_answer(&self) -> bool {
        !self.is_closed()
            && self.first_answer().is_none()
            && !self
                .replies
                .iter()
                .any(|r| !r.auto && matches!(r.state, ReplyState::Pending))
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.stage, Stage::Resolved | Stage::Ignored)
    }

    pub fn pending_reply(&self) -> Option<&Reply> {
        self.replies
            .iter()
            .find(|r| matches!(r.state, ReplyState::Pending | ReplyState::AwaitingApproval))
    }

    /// The drafts waiting for another agent's approval (one submission: a private
    /// answer and its public acknowledgement wait together).
    pub fn drafts_awaiting_approval(&self) -> impl Iterator<Item = &Reply> {
        self.replies
            .iter()
            .filter(|r| matches!(r.state, ReplyState::AwaitingApproval))
    }

    /// The draft waiting for approval that the agent wrote last (the answer itself).
    pub fn draft_awaiting_approval(&self) -> Option<&Reply> {
        self.drafts_awaiting_approval().last()
    }

    pub fn reply(&self, seq: u32) -> Option<&Reply> {
        self.replies.iter().find(|r| r.seq == seq)
    }

    /// What an agent sees as the ticket's state, in their words.
    pub fn state_label(&self) -> String {
        match (&self.stage, &self.holder) {
            (Stage::Resolved, _) => "Resolved".into(),
            (Stage::Ignored, _) => "Ignored".into(),
            (_, _) if self.draft_awaiting_approval().is_some() => "Reply awaits approval".into(),
            (_, _) if self.pending_reply().is_some() => "Reply sending".into(),
            (_, _)
                if self
                    .replies
                    .last()
                    .is_some_and(|r| matches!(r.state, ReplyState::Failed { .. })) =>
            {
                "Reply failed".into()
            }
            _ if self.customer_replied => "Customer replied".into(),
            (Stage::Replied, _) => "Replied".into(),
            (_, Some(_)) => "Claimed".into(),
            _ => "Open".into(),
        }
    }
}

/// What an agent did, whatever the surface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAction {
    Claim,
    Unclaim,
    Reply {
        text: String,
    },
    /// Answer in private, optionally after a short public acknowledgement.
    ReplyPrivately {
        text: String,
        public_ack: Option<String>,
    },
    Resolve,
    Ignore,
    Reopen,
    /// Approve the draft waiting on the ticket: it goes out exactly as it reads.
    Approve,
    /// Turn the waiting draft down: it is never sent.
    RejectDraft,
    /// Rewrite the waiting draft; it waits for approval again, by someone other than
    /// the one who edited it.
    EditDraft {
        text: String,
    },
}

impl AgentAction {
    pub fn verb(&self) -> &'static str {
        match self {
            AgentAction::Claim => "claim",
            AgentAction::Unclaim => "unclaim",
            AgentAction::Reply { .. } => "reply",
            AgentAction::ReplyPrivately { .. } => "reply privately",
            AgentAction::Resolve => "resolve",
            AgentAction::Ignore => "ignore",
            AgentAction::Reopen => "reopen",
            AgentAction::Approve => "approve",
            AgentAction::RejectDraft => "reject",
            AgentAction::EditDraft { .. } => "edit",
        }
    }
}

/// What the outside world reported back about an effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemEvent {
    CardPosted,
    ReplyPublished {
        seq: u32,
        remote_id: String,
        url: String,
    },
    ReplyFailed {
        seq: u32,
        reason: String,
    },
}

/// A line for the card's thread: surfaces render it in their own idiom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Note {
    Claimed {
        by: AgentRef,
    },
    Unclaimed {
        by: AgentRef,
    },
    ReplyQueued {
        by: AgentRef,
        text: String,
    },
    ReplyPublished {
        url: String,
    },
    ReplyFailed {
        reason: String,
    },
    Resolved {
        by: AgentRef,
    },
    Ignored {
        by: AgentRef,
    },
    Reopened {
        by: AgentRef,
    },
    /// The customer wrote again in the conversation (and, if it was closed, reopened it).
    CustomerFollowUp {
        text: String,
        url: String,
        reopened: bool,
    },
    /// A new ticket, for whoever is on call (member keys such as `slack:U…`).
    Paged {
        members: Vec<String>,
    },
    /// The first-response target is near: `left` minutes remain (the holder, or the
    /// on-call agents, are named).
    SlaWarning {
        minutes_left: i64,
        members: Vec<String>,
    },
    /// The first-response target passed without an answer.
    SlaBreached {
        members: Vec<String>,
    },
    /// Nobody claimed the ticket in time: the next level is called (level 1 the
    /// secondary on-call, level 2 and up the whole channel).
    Escalated {
        level: usize,
        members: Vec<String>,
        channel: bool,
    },
    /// The holder has not answered for `idle_minutes`.
    ClaimReminder {
        holder: AgentRef,
        idle_minutes: i64,
    },
    /// The holder's claim was released (idle too long, or their shift ended) for the
    /// agents on call.
    ClaimReleased {
        holder: AgentRef,
        why: String,
        members: Vec<String>,
    },
    /// The resolution target passed with the ticket still open.
    ResolutionOverdue {
        members: Vec<String>,
    },
    /// The customer was told the team is off shift.
    OffHoursAcknowledged,
    /// A draft waits for a second pair of eyes (never its author's).
    ApprovalAsked {
        by: AgentRef,
        text: String,
        reasons: Vec<String>,
    },
    /// A draft was approved and goes out as it read.
    DraftApproved {
        by: AgentRef,
        author: AgentRef,
    },
    /// A draft was turned down and will not be sent.
    DraftRejected {
        by: AgentRef,
        author: AgentRef,
    },
    /// A waiting draft was rewritten; it waits for approval again.
    DraftEdited {
        by: AgentRef,
        text: String,
    },
    /// A draft has waited `minutes` for approval: the on-call agents (not its author)
    /// are asked to look.
    ApprovalReminder {
        author: AgentRef,
        minutes: i64,
        members: Vec<String>,
    },
    /// A card on another surface disappeared (deleted message or channel).
    CardLost {
        surface: SurfaceKind,
        reason: String,
    },
    /// A step of an incident's bulk answer (on the incident card's thread).
    Bulk {
        by: Option<AgentRef>,
        step: BulkStep,
    },
    /// A new incident, for whoever is on call: one page for the whole storm.
    IncidentPaged {
        members: Vec<String>,
    },
    /// A member of an incident was split off and got a card of its own.
    SplitOff {
        ticket: TicketId,
        by: AgentRef,
    },
    // -- surveys (issue 14, part 2) --
    /// The customer answered the satisfaction survey (`text` is theirs: inert).
    SurveyAnswered {
        score: u8,
        scale: Scale,
        text: String,
    },
}

/// What happened to an incident's bulk answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BulkStep {
    Started {
        members: u64,
        languages: Vec<String>,
        /// It waits for another agent's approval.
        #[serde(default)]
        held: bool,
    },
    Approved,
    Paused,
    Resumed,
    Cancelled,
    /// Every member then in the incident was handled.
    Finished {
        queued: u64,
        skipped: u64,
    },
}

impl Note {
    /// The on-call members (keys like `slack:U…`) a note calls by name: they get a
    /// notification, everyone else named is only mentioned.
    pub fn pings(&self) -> Vec<String> {
        match self {
            Note::Paged { members }
            | Note::IncidentPaged { members }
            | Note::SlaWarning { members, .. }
            | Note::SlaBreached { members }
            | Note::Escalated { members, .. }
            | Note::ClaimReleased { members, .. }
            | Note::ResolutionOverdue { members }
            | Note::ApprovalReminder { members, .. } => members.clone(),
            Note::ClaimReminder { holder, .. } => vec![holder.member_key()],
            _ => Vec::new(),
        }
    }

    /// The note calls the whole channel (`@here`).
    pub fn pings_channel(&self) -> bool {
        matches!(self, Note::Escalated { channel: true, .. })
    }
}

/// What the core asks the outside world to do; each becomes an outbox job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    PostCards,
    UpdateCards,
    ThreadNote(Note),
    PublishReply {
        seq: u32,
    },
    /// A shift hand-off summary for the channel (not about one ticket).
    Digest(Digest),
    /// An incident's card, on every surface (queued among the desk's own jobs).
    PostIncidentCard {
        incident: IncidentId,
    },
    /// Re-render an incident's cards from the incident as it is now.
    UpdateIncidentCards {
        incident: IncidentId,
    },
    /// A line in the thread of an incident's cards.
    IncidentNote {
        incident: IncidentId,
        note: Note,
    },
    /// Translate the mention into the team's language (`[translation]`) and show it on
    /// the card; queued once the card is up, so translating never delays it.
    TranslateMention,
}

/// Which of a ticket's queues an effect waits in. Within a lane a ticket's effects run
/// one at a time in queue order (a card is posted before it is updated); the lanes run
/// side by side, so a slow chat surface never delays a customer's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    Chat,
    Platform,
    /// A translation service's pace is its own: a slow or absent one holds up neither
    /// the card nor the reply.
    Translation,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Chat => "chat",
            Lane::Platform => "platform",
            Lane::Translation => "translation",
        }
    }
}

impl Effect {
    pub fn lane(&self) -> Lane {
        match self {
            Effect::PublishReply { .. } => Lane::Platform,
            Effect::TranslateMention => Lane::Translation,
            _ => Lane::Chat,
        }
    }
}

/// One append-only line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub ticket: TicketId,
    pub at: DateTime<Utc>,
    pub actor: Option<AgentRef>,
    pub what: String,
    pub detail: Option<String>,
}

impl AuditEntry {
    /// The outbox gave up on one of the ticket's jobs after `tries`.
    pub fn gave_up(ticket: TicketId, at: DateTime<Utc>, tries: u32, reason: &str) -> AuditEntry {
        AuditEntry {
            ticket,
            at,
            actor: None,
            what: format!("gave up after {tries} tries"),
            detail: Some(reason.to_string()),
        }
    }

    /// The ticket's card on `surface` is gone or could not be posted.
    pub fn card_lost(
        ticket: TicketId,
        at: DateTime<Utc>,
        surface: SurfaceKind,
        reason: &str,
    ) -> AuditEntry {
        AuditEntry {
            ticket,
            at,
            actor: None,
            what: format!("{} card lost", surface.label()),
            detail: Some(reason.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub ticket: Ticket,
    pub effects: Vec<Effect>,
    pub audit: AuditEntry,
}

/// What was already done about a ticket's clocks, so each step happens once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlaMarks {
    pub warned: bool,
    pub breached: bool,
    /// Escalation levels already reached.
    pub escalated: usize,
    /// The claim (by its start) whose holder was reminded / released.
    pub reminded_claim: Option<DateTime<Utc>>,
    pub released_claim: Option<DateTime<Utc>>,
    pub resolution_overdue: bool,
    /// The scheduler weighed the off-hours acknowledgement for this ticket (sent it, or
    /// found it not owed), so it no longer looks for one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub off_hours_considered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// The hand-off instant.
    pub at: DateTime<Utc>,
    /// The previous hand-off: "this shift" ran from here to `at`.
    pub since: DateTime<Utc>,
    /// Primary on call after and before the hand-off (member keys).
    pub incoming: Vec<String>,
    pub outgoing: Vec<String>,
    /// Open tickets still waiting for an agent (unanswered, or the customer wrote again).
    pub waiting: usize,
    /// Open tickets answered and not resolved yet.
    pub answered_open: usize,
    /// Open, unanswered, and past the first-response target.
    pub breaching: Vec<TicketId>,
    /// Tickets waiting for an agent and held by someone going off call, with the
    /// holder's member key.
    pub held_by_outgoing: Vec<(TicketId, String)>,
    /// Tickets whose first answer went out during the ending shift.
    pub answered: usize,
    /// Claims of outgoing agents released for the incoming shift.
    #[serde(default)]
    pub released: Vec<TicketId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mention(platform: Platform, account: &str, remote_id: &str, url: &str) -> Mention {
        Mention {
            platform,
            network: None,
            account: account.into(),
            remote_id: remote_id.into(),
            url: url.into(),
            author: Author {
                handle: "alice".into(),
                name: "Alice".into(),
                profile_url: String::new(),
                id: None,
                followers: None,
            },
            text: "hi".into(),
            language: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            in_reply_to: None,
            visibility: Visibility::Public,
            reply_context: None,
            external_id: None,
            detected_language: None,
        }
    }

    /// As the webhook builds it: a named network without a native id is `Other`.
    fn heard_of(network: &str, url: &str) -> Mention {
        let mut m = mention(Platform::Other, "webhook:bw", "bw-1", url);
        m.network = Some(network.into());
        m.external_id = Some("bw-1".into());
        m
    }

    #[test]
    fn the_same_post_by_two_paths_has_one_post_key() {
        // X: the poller's tweet id, the webhook's remote id, or the id in the post's URL.
        let polled = mention(
            Platform::X,
            "1500",
            "1790000000000000002",
            "https://x.com/alice/status/1790000000000000002",
        );
        let pushed = mention(
            Platform::X,
            "webhook:bw",
            "1790000000000000002",
            "https://example.com",
        );
        let linked = heard_of(
            "twitter",
            "https://mobile.twitter.com/Alice/status/1790000000000000002?s=20",
        );
        assert!(polled.post_key().is_some());
        assert_eq!(polled.post_key(), pushed.post_key());
        assert_eq!(polled.post_key(), linked.post_key());
        // Bluesky: the at:// URI, or a bsky.app link that names the DID.
        let uri = "at://did:plc:abc123/app.bsky.feed.post/3kxyz";
        let polled = mention(
            Platform::Bluesky,
            "brand.bsky.social",
            uri,
            "https://bsky.app/profile/alice.bsky.social/post/3kxyz",
        );
        let linked = heard_of(
            "bluesky",
            "https://bsky.app/profile/did:plc:abc123/post/3kxyz",
        );
        assert_eq!(polled.post_key(), linked.post_key());
        assert_eq!(
            heard_of(
                "bluesky",
                "https://bsky.app/profile/alice.bsky.social/post/3kxyz"
            )
            .post_key(),
            None,
            "a handle can change hands"
        );
        // Mastodon: ids differ between servers, the status URL does not.
        let polled = mention(
            Platform::Mastodon,
            "brand",
            "109",
            "https://other.social/@alice/1234",
        );
        let linked = heard_of(
            "mastodon",
            "https://Other.Social/users/alice/statuses/1234/?utm_source=bw#top",
        );
        assert_eq!(polled.post_key(), linked.post_key());
    }

    #[test]
    fn different_posts_never_share_a_key() {
        let a = mention(Platform::X, "1500", "1790000000000000002", "");
        let b = mention(Platform::X, "1500", "1790000000000000003", "");
        assert_ne!(a.post_key(), b.post_key());
        let a = mention(
            Platform::Mastodon,
            "brand",
            "1",
            "https://other.social/@alice/1234",
        );
        let b = mention(
            Platform::Mastodon,
            "brand",
            "2",
            "https://other.social/@alice/1235",
        );
        let c = mention(
            Platform::Mastodon,
            "brand",
            "3",
            "https://else.social/@alice/1234",
        );
        assert_ne!(a.post_key(), b.post_key());
        assert_ne!(a.post_key(), c.post_key());
        // Networks without a trustworthy id are keyed by their source only.
        assert_eq!(
            heard_of("instagram", "https://www.instagram.com/p/C0ffee/").post_key(),
            None
        );
        // The same id on two platforms is two posts.
        let x = mention(Platform::X, "1500", "42", "");
        let mut other = heard_of("x", "https://x.com/a/status/42");
        assert_eq!(x.post_key(), other.post_key());
        other.network = Some("threads".into());
        assert_ne!(x.post_key(), other.post_key());
    }

    #[test]
    fn a_tool_retry_is_recognised_by_its_own_id_whatever_the_body_says() {
        let first = heard_of("instagram", "https://www.instagram.com/p/C0ffee/");
        let mut again = first.clone();
        again.remote_id = "native-9".into();
        again.url = "https://www.instagram.com/p/C0ffee/?igsh=1".into();
        let shared: Vec<_> = first
            .dedupe_keys()
            .into_iter()
            .filter(|k| again.dedupe_keys().contains(k))
            .collect();
        assert_eq!(shared.len(), 1, "{shared:?}");
    }
}

/// Where a ticket's card lives on a surface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRef {
    pub surface: SurfaceKind,
    pub channel: String,
    /// The message id on the surface (Slack `ts`, Discord snowflake).
    pub message_id: String,
    /// Where the card's notes go when it is not the message's own reply thread
    /// (a Discord thread channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
}

// -- surveys (issue 14, part 2): the types a ticket carries; their rules are `domain::survey`

/// The survey's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Customer satisfaction, 1 (very unhappy) to 5 (very happy).
    Csat,
    /// Net promoter score, 0 (would never recommend) to 10.
    Nps,
}

/// A survey on a ticket: asked once, answered at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survey {
    pub scale: Scale,
    pub asked_at: DateTime<Utc>,
    /// The desk's reply that carries the question.
    pub seq: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<SurveyAnswer>,
    /// The customer's next message was no answer: later ones are ordinary follow-ups.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyAnswer {
    pub score: u8,
    /// What the customer wrote (customer text: inert wherever it is shown).
    pub text: String,
    pub at: DateTime<Utc>,
}
