//! `bot-config.toml`: parsing, `${ENV}` interpolation for secrets, and validation that
//! names the file, line and key of any mistake. Every external base URL lives here so that
//! self-hosted instances (and the test fakes) can be reached.

mod storms;
// ---- charts (issue 14, part 4) ----
mod charts;
pub use storms::StormsConfig;
// privacy (issue 14)
mod retention;
pub use retention::RetentionConfig;
// surveys (issue 14, part 2)
mod priority;
mod rules;
mod surveys;

use crate::domain::oncall::Schedule;
use crate::domain::routes::{Route, Routes, DEFAULT_ROUTE};
use crate::domain::sla::SlaPolicy;
use crate::domain::Platform;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

mod translation;
pub use translation::{TranslationConfig, TranslationProvider, DEEPL_FREE_URL, DEEPL_PRO_URL};
mod approvals;
mod language;

pub use language::LanguageConfig;

/// Slack signing secrets are 32 hex characters; anything shorter is not one.
pub const SLACK_SIGNING_SECRET_LEN: usize = 32;
/// The webhook's shared key: long enough that it cannot be guessed.
pub const WEBHOOK_SECRET_MIN_LEN: usize = 16;

/// A value that came from the environment. Never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret given in code (tests, tools); configuration reads them from the
    /// environment.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// One mistake in the file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: `{}`: {}", self.path, l, self.key, self.message),
            None => write!(f, "{}: `{}`: {}", self.path, self.key, self.message),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackMode {
    Socket,
    Http,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// The brand's name, for canned replies' `{brand}`.
    brand: Option<String>,
    #[serde(default)]
    canned: Vec<crate::domain::canned::CannedReply>,
    store: RawStore,
    http: Option<RawHttp>,
    #[serde(default)]
    sla: RawPolicy,
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default)]
    oncall: RawOnCall,
    slack: Option<RawSlack>,
    discord: Option<RawDiscord>,
    mastodon: Option<RawMastodon>,
    bluesky: Option<RawBluesky>,
    x: Option<RawX>,
    webhook: Option<RawWebhook>,
    #[serde(default)]
    outbox: RawOutbox,
    /// People with accounts on both surfaces, who are one agent.
    #[serde(default)]
    agents: Vec<crate::domain::agents::Agent>,
    /// Storms become incidents (`[storms]`; absent: off).
    storms: Option<storms::RawStorms>,
    /// How long closed tickets keep personal data (`[retention]`; absent: kept).
    retention: Option<retention::RawRetention>,
    /// The satisfaction survey after a resolve (`[surveys]`; absent: never asked).
    surveys: Option<surveys::RawSurveys>,
    /// How new tickets' priorities are judged.
    #[serde(default)]
    priority: priority::RawPriority,
    /// What the team's rules do with new mentions.
    #[serde(default)]
    rules: Vec<rules::RawRule>,
    /// Machine translation of mentions and drafts (optional).
    translation: Option<translation::RawTranslation>,
    approvals: Option<approvals::RawApprovals>,
    #[serde(default)]
    language: language::RawLanguage,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default = "default_backend")]
    backend: String,
    /// sled: the store's directory.
    path: Option<String>,
    /// postgres: the connection URL, from the environment.
    url: Option<String>,
    pool_size: Option<usize>,
    /// postgres: "disable", "prefer" or "require" (a verified certificate).
    tls: Option<String>,
    /// postgres: a PEM file of CA certificates trusted besides the system's.
    ca_file: Option<String>,
    connect_timeout_secs: Option<f64>,
    /// How long a replica's duties and claims outlive it (the failover bound).
    lease_secs: Option<f64>,
}

fn default_backend() -> String {
    "sled".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_header_read_timeout")]
    header_read_timeout_secs: f64,
    #[serde(default = "default_body_read_timeout")]
    body_read_timeout_secs: f64,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: usize,
    // ---- charts (issue 14, part 4) ----
    /// Bearer token of `/charts/*` (`"${CHARTS_TOKEN}"`); absent: the chart routes are off.
    #[serde(default)]
    charts_token: Option<String>,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: default_listen(),
            header_read_timeout_secs: default_header_read_timeout(),
            body_read_timeout_secs: default_body_read_timeout(),
            max_connections: default_max_connections(),
            max_body_bytes: default_max_body_bytes(),
            charts_token: None,
        }
    }
}

fn default_header_read_timeout() -> f64 {
    10.0
}
fn default_body_read_timeout() -> f64 {
    10.0
}
fn default_max_connections() -> usize {
    256
}
fn default_max_body_bytes() -> usize {
    1 << 20
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnCall {
    #[serde(default)]
    rotation: Vec<crate::domain::oncall::Rotation>,
    /// Mention the on-call agents in a new ticket's thread.
    #[serde(default = "default_true")]
    page_new_tickets: bool,
    /// Post a digest in the channel whenever the people on call change.
    #[serde(default = "default_true")]
    handoff_digest: bool,
    /// At a hand-off, release unanswered tickets held by agents going off call.
    #[serde(default)]
    release_claims_at_handoff: bool,
    /// The default route's off-hours acknowledgement.
    off_hours_ack: Option<String>,
}

impl Default for RawOnCall {
    fn default() -> Self {
        RawOnCall {
            rotation: Vec::new(),
            page_new_tickets: true,
            handoff_digest: true,
            release_claims_at_handoff: false,
            off_hours_ack: None,
        }
    }
}

/// SLA targets: `[sla]` for every route, `[route.sla]` to differ for one route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    first_response_minutes: Option<u64>,
    resolution_hours: Option<f64>,
    warn_at: Option<f64>,
    escalate_unclaimed_after_minutes: Option<Vec<u64>>,
    remind_idle_claim_minutes: Option<u64>,
    release_idle_claim_minutes: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    #[serde(default)]
    platforms: Vec<String>,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    keywords: Vec<String>,
    page: Option<bool>,
    #[serde(default)]
    rotations: Vec<String>,
    off_hours_ack: Option<String>,
    /// Only mentions of at least this priority take the route.
    min_priority: Option<String>,
    #[serde(default)]
    sla: RawPolicy,
    /// Resolved tickets of this route get the satisfaction survey (`[surveys]`).
    #[serde(default)]
    survey: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    #[serde(default = "default_slack_mode")]
    mode: SlackMode,
    #[serde(default = "default_slack_api")]
    api_url: String,
    bot_token: String,
    app_token: Option<String>,
    signing_secret: Option<String>,
    channel: String,
    #[serde(default)]
    agent_user_ids: Vec<String>,
    agent_usergroup: Option<String>,
    #[serde(default = "default_slash")]
    slash_command: String,
    #[serde(default = "default_slack_rate")]
    messages_per_second: f64,
    #[serde(default = "default_slack_burst")]
    message_burst: u32,
}

/// Slack: "one message per second to a specific channel, with short bursts of over 1
/// allowed" (chat.postMessage, rate limits).
fn default_slack_rate() -> f64 {
    1.0
}
fn default_slack_burst() -> u32 {
    3
}

fn default_slack_mode() -> SlackMode {
    SlackMode::Socket
}
fn default_slack_api() -> String {
    "https://slack.com/api".into()
}
fn default_slash() -> String {
    "/mentions".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscordMode {
    /// Interactions arrive over the gateway websocket the bot opens (no public URL).
    Gateway,
    /// Discord posts signed interactions to `/discord/interactions` on the HTTP server.
    Http,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscord {
    #[serde(default = "default_discord_mode")]
    mode: DiscordMode,
    #[serde(default = "default_discord_api")]
    api_url: String,
    bot_token: String,
    public_key: Option<String>,
    guild_id: String,
    channel_id: String,
    #[serde(default)]
    agent_role_ids: Vec<String>,
    #[serde(default)]
    agent_user_ids: Vec<String>,
}

fn default_discord_mode() -> DiscordMode {
    DiscordMode::Gateway
}
fn default_discord_api() -> String {
    "https://discord.com/api/v10".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    secret: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBluesky {
    #[serde(default = "default_bluesky_service")]
    service_url: String,
    handle: String,
    app_password: String,
    #[serde(default = "default_poll")]
    poll_interval_secs: f64,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    jetstream: bool,
    #[serde(default = "default_jetstream_url")]
    jetstream_url: String,
    #[serde(default = "default_reconcile_secs")]
    reconcile_secs: f64,
    #[serde(default = "default_stream_quiet_secs")]
    stream_quiet_secs: f64,
}

fn default_bluesky_service() -> String {
    "https://bsky.social".into()
}

/// One of the public instances Bluesky runs (PLATFORMS.md "Bluesky Jetstream").
pub const DEFAULT_JETSTREAM_URL: &str = "wss://jetstream2.us-east.bsky.network/subscribe";

fn default_jetstream_url() -> String {
    DEFAULT_JETSTREAM_URL.into()
}

fn default_reconcile_secs() -> f64 {
    300.0
}

fn default_stream_quiet_secs() -> f64 {
    30.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XAuth {
    /// OAuth 1.0a user context: consumer key/secret and access token/secret (no expiry).
    Oauth1,
    /// OAuth 2.0 user context with a refresh token (`offline.access`).
    Oauth2,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawX {
    #[serde(default = "default_x_api")]
    api_url: String,
    user_id: String,
    auth: XAuth,
    consumer_key: Option<String>,
    consumer_secret: Option<String>,
    access_token: Option<String>,
    access_token_secret: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    #[serde(default = "default_x_poll")]
    poll_interval_secs: f64,
    #[serde(default)]
    keywords: Vec<String>,
    daily_request_budget: u32,
    /// Read mentions from the filtered stream beside polling (tiers that include it).
    #[serde(default)]
    stream: bool,
    /// The app's Bearer Token (OAuth 2.0 App-Only), which the filtered stream requires.
    bearer_token: Option<String>,
    #[serde(default = "default_x_reconcile")]
    reconcile_secs: f64,
    #[serde(default = "default_x_stream_quiet")]
    stream_quiet_secs: f64,
}

fn default_x_api() -> String {
    "https://api.x.com".into()
}
fn default_x_poll() -> f64 {
    120.0
}
/// Every poll costs money: while the stream is up, one every 15 minutes is enough.
fn default_x_reconcile() -> f64 {
    900.0
}
/// X sends a keep-alive every 20 s: one missed and a second's margin.
fn default_x_stream_quiet() -> f64 {
    21.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMastodon {
    instance_url: String,
    access_token: String,
    #[serde(default = "default_poll")]
    poll_interval_secs: f64,
    #[serde(default = "default_true")]
    include_filtered: bool,
    #[serde(default = "default_backfill")]
    initial_backfill: u32,
    #[serde(default)]
    hashtags: Vec<String>,
    #[serde(default = "default_true")]
    streaming: bool,
    #[serde(default = "default_reconcile_secs")]
    reconcile_secs: f64,
    #[serde(default = "default_mastodon_quiet")]
    stream_quiet_secs: f64,
}

fn default_poll() -> f64 {
    30.0
}
fn default_true() -> bool {
    true
}
fn default_backfill() -> u32 {
    20
}
/// Mastodon and GoToSocial ping every 30 s: two missed pings and a margin.
fn default_mastodon_quiet() -> f64 {
    70.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbox {
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    #[serde(default = "default_max_backoff")]
    max_backoff_secs: u64,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
}

impl Default for RawOutbox {
    fn default() -> Self {
        RawOutbox {
            concurrency: default_concurrency(),
            max_backoff_secs: default_max_backoff(),
            max_attempts: default_max_attempts(),
        }
    }
}

fn default_max_attempts() -> u32 {
    20
}

fn default_concurrency() -> usize {
    8
}
fn default_max_backoff() -> u64 {
    300
}

/// Where the desk keeps its data (`[store]`).
#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    /// The embedded store, for one machine (one process holds it).
    Sled { path: PathBuf },
    /// A PostgreSQL database that several replicas share.
    Postgres(PostgresConfig),
}

impl StoreConfig {
    /// Where it is, for logs: the directory, or the database without its credentials.
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Sled { path } => path.display().to_string(),
            StoreConfig::Postgres(pg) => pg.describe(),
        }
    }
}

/// How to reach PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/dbname?…` (or key=value form): a secret.
    pub url: Secret,
    pub pool_size: usize,
    pub tls: PgTls,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
}

impl PostgresConfig {
    /// From a URL given on the command line (`store copy --to`), with the defaults
    /// `[store]` has; the error never repeats the URL (it holds a password).
    pub fn from_url(url: &str, tls: PgTls) -> Result<PostgresConfig, String> {
        if url.parse::<tokio_postgres::Config>().is_err() {
            return Err(
                "not a PostgreSQL connection URL: expected postgres://user:password@host:5432/dbname"
                    .into(),
            );
        }
        Ok(PostgresConfig {
            url: Secret(url.to_string()),
            pool_size: 4,
            tls,
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
        })
    }

    /// The database as logs may show it: host, port and name, never the credentials.
    pub fn describe(&self) -> String {
        match self.url.expose().parse::<tokio_postgres::Config>() {
            Ok(c) => {
                let hosts: Vec<String> = c
                    .get_hosts()
                    .iter()
                    .map(|h| match h {
                        tokio_postgres::config::Host::Tcp(h) => h.clone(),
                        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                    })
                    .collect();
                let ports: Vec<String> = c.get_ports().iter().map(|p| p.to_string()).collect();
                format!(
                    "postgres://{}:{}/{}",
                    hosts.join(","),
                    ports.join(","),
                    c.get_dbname().unwrap_or("")
                )
            }
            Err(_) => "postgres (unreadable URL)".into(),
        }
    }
}

/// TLS to PostgreSQL. With TLS the server's certificate is always verified (system
/// roots, plus `ca_file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgTls {
    Disable,
    /// TLS if the server offers it (for a database on this machine or a private net).
    Prefer,
    Require,
}

/// The validated configuration the runtime uses.
#[derive(Debug, Clone)]
pub struct Config {
    pub source_path: PathBuf,
    pub store: StoreConfig,
    /// How long this replica's duties (leases) and job claims outlive it.
    pub lease: Duration,
    pub http_listen: std::net::SocketAddr,
    /// An `[http]` section was given: serve `/healthz` and `/metrics` even when no
    /// surface or webhook needs the server.
    pub http_configured: bool,
    /// How the HTTP server treats slow and large requests (`[http]`).
    pub http: HttpLimits,
    // ---- charts (issue 14, part 4) ----
    /// `[http] charts_token`: the bearer token of `/charts/*`; `None`: those routes are off.
    pub charts_token: Option<Secret>,
    /// Routes (`[[route]]`) and the default route (`[sla]`, `[oncall]`).
    pub routes: crate::domain::routes::Routes,
    pub handoff_digest: bool,
    pub release_claims_at_handoff: bool,
    pub brand: String,
    /// On-call rotations (`[[oncall.rotation]]`); overrides come from chat at run time.
    pub oncall: crate::domain::oncall::Schedule,
    pub page_new_tickets: bool,
    /// The library of standard answers (`[[canned]]`).
    pub canned: Vec<crate::domain::canned::CannedReply>,
    /// Cards go to every configured surface: Slack, Discord, or both.
    pub slack: Option<SlackConfig>,
    pub discord: Option<DiscordConfig>,
    /// The social platforms watched; at least one.
    pub mastodon: Option<MastodonConfig>,
    pub bluesky: Option<BlueskyConfig>,
    pub x: Option<XConfig>,
    /// The inbound webhook for listening tools (`POST /ingest/mentions`).
    pub webhook: Option<WebhookConfig>,
    pub outbox: OutboxConfig,
    /// `[[agents]]`: which Slack and Discord accounts are one person (each an agent).
    pub agents: crate::domain::agents::Agents,
    /// `[storms]`: when many mentions about one thing become one incident card.
    pub storms: StormsConfig,
    /// `[retention]`: days each kind of a closed ticket's personal data is kept.
    pub retention: RetentionConfig,
    /// `[surveys]`: the satisfaction survey after a resolve; `None`: nobody is asked.
    pub surveys: Option<crate::domain::survey::SurveyPolicy>,
    /// `[translation]`: None, and nothing is ever sent to a translation service.
    pub translation: Option<TranslationConfig>,
    /// Which drafts wait for another agent's approval.
    pub approvals: crate::domain::approval::ApprovalPolicy,
    /// `[language]`: detecting each mention's language.
    pub language: LanguageConfig,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The shared HMAC-SHA256 key senders sign with.
    pub secret: Secret,
}

#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub mode: SlackMode,
    /// Without a trailing slash, e.g. `https://slack.com/api`.
    pub api_url: String,
    pub bot_token: Secret,
    pub app_token: Option<Secret>,
    pub signing_secret: Option<Secret>,
    pub channel: String,
    pub agent_user_ids: Vec<String>,
    pub agent_usergroup: Option<String>,
    pub slash_command: String,
    /// The pace new messages are posted at, per channel, ahead of Slack's limit.
    pub messages_per_second: f64,
    pub message_burst: u32,
}

#[derive(Debug, Clone)]
pub struct DiscordConfig {
    pub mode: DiscordMode,
    /// REST base, without a trailing slash, e.g. `https://discord.com/api/v10`.
    pub api_url: String,
    pub bot_token: Secret,
    /// The application's Ed25519 public key (hex), for HTTP mode.
    pub public_key: Option<String>,
    pub guild_id: String,
    pub channel_id: String,
    pub agent_role_ids: Vec<String>,
    pub agent_user_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MastodonConfig {
    /// Without a trailing slash, e.g. `https://mastodon.social`.
    pub instance_url: String,
    pub access_token: Secret,
    pub poll_interval: Duration,
    pub include_filtered: bool,
    pub initial_backfill: u32,
    /// Keyword watches: public posts with these hashtags are tickets too.
    pub hashtags: Vec<String>,
    /// Use the server's streaming API beside polling when it has one.
    pub streaming: bool,
    /// How often the source is still polled while the stream is up.
    pub reconcile_every: Duration,
    /// A stream with no frame at all (not even a ping) for this long is dropped.
    pub stream_quiet: Duration,
}

#[derive(Debug, Clone)]
pub struct BlueskyConfig {
    /// The PDS or entryway, without a trailing slash (`https://bsky.social`).
    pub service_url: String,
    pub handle: String,
    pub app_password: Secret,
    pub poll_interval: Duration,
    /// Searched with `app.bsky.feed.searchPosts` besides the notifications, and matched
    /// on every post Jetstream carries when it is on.
    pub keywords: Vec<String>,
    /// `jetstream = true`: every public post on the network is read from Jetstream and
    /// matched on the desk; None (the default) polls only.
    pub jetstream: Option<JetstreamConfig>,
}

/// Bluesky's Jetstream as the desk reads it (`[bluesky] jetstream = true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetstreamConfig {
    /// A `ws://` or `wss://` URL without query or credentials
    /// (`wss://jetstream2.us-east.bsky.network/subscribe`); the desk adds the
    /// subscription's parameters itself.
    pub url: String,
    /// How often the notifications and keyword searches are still polled while the
    /// stream is up (`reconcile_secs`, 30 to 3600, default 300).
    pub reconcile_every: Duration,
    /// No frame for this long and the connection is taken for dead (`stream_quiet_secs`,
    /// 1 to 600, default 30): with every post on the network flowing, Jetstream is never
    /// silent for long.
    pub quiet: Duration,
}

#[derive(Debug, Clone)]
pub enum XCredentials {
    Oauth1 {
        consumer_key: Secret,
        consumer_secret: Secret,
        access_token: Secret,
        access_token_secret: Secret,
    },
    Oauth2 {
        client_id: String,
        client_secret: Option<Secret>,
        refresh_token: Secret,
    },
}

#[derive(Debug, Clone)]
pub struct XConfig {
    /// Without a trailing slash (`https://api.x.com`).
    pub api_url: String,
    /// The brand account's numeric user id.
    pub user_id: String,
    pub credentials: XCredentials,
    pub poll_interval: Duration,
    pub keywords: Vec<String>,
    /// Requests allowed per UTC day (every X request costs money).
    pub daily_request_budget: u32,
    /// `stream = true`: mentions also arrive over the filtered stream; None (the
    /// default) polls only.
    pub stream: Option<XStreamConfig>,
}

/// X's filtered stream as the desk reads it (`[x] stream = true`).
#[derive(Debug, Clone)]
pub struct XStreamConfig {
    /// The app's Bearer Token (OAuth 2.0 App-Only): the stream and its rules take no
    /// user-context credentials.
    pub bearer_token: Secret,
    /// How often the mentions are still polled while the stream is up (`reconcile_secs`,
    /// 60 to 86400, default 900).
    pub reconcile_every: Duration,
    /// No byte at all (not even the 20 s keep-alive) for this long and the connection is
    /// taken for dead (`stream_quiet_secs`, 1 to 600, default 21).
    pub quiet: Duration,
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub concurrency: usize,
    pub max_backoff: Duration,
    /// Tries before a job is given up on and shown to the team as failed.
    pub max_attempts: u32,
    /// How long a sender's claim on a job lasts without renewal: a replica that dies
    /// mid-send leaves its jobs to the others after this long.
    pub claim_for: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            concurrency: default_concurrency(),
            max_backoff: Duration::from_secs(default_max_backoff()),
            max_attempts: default_max_attempts(),
            claim_for: Duration::from_secs(DEFAULT_LEASE_SECS),
        }
    }
}

/// How long a duty's lease, or a job's claim, outlives its holder by default: the bound
/// on how long a dead replica's work waits for another.
pub const DEFAULT_LEASE_SECS: u64 = 15;

// The limits are a wire type (the server reads them); their defaults are the config's.
pub use crate::wire::http::HttpLimits;

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs_f64(default_header_read_timeout()),
            body_read_timeout: Duration::from_secs_f64(default_body_read_timeout()),
            max_connections: default_max_connections(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(path, &text, &|var| std::env::var(var).ok())
    }

    /// Only the store's settings, for operator commands that need no other credentials
    /// (`export`, `migrate`): only the store's own variables need be set.
    pub fn store_of(path: &Path) -> Result<StoreConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: shown.clone(),
            source,
        })?;
        let syntax = |e: toml::de::Error| syntax_error(&shown, &text, &e);
        /// The file with every other section ignored, so errors in `[store]` keep their
        /// place in the file.
        #[derive(Deserialize)]
        struct OnlyStore {
            store: Option<RawStore>,
        }
        let Some(store) = toml::from_str::<OnlyStore>(&text).map_err(syntax)?.store else {
            return Err(ConfigError::Invalid(vec![Problem {
                path: shown,
                line: None,
                key: "store".into(),
                message: "missing: expected a [store] section".into(),
            }]));
        };
        let env = |var: &str| std::env::var(var).ok();
        let mut v = Validator {
            path: &shown,
            text: &text,
            env: &env,
            problems: Vec::new(),
            missing: BTreeSet::new(),
            agents_on: (false, false),
        };
        let (store, _) = v.store(&store, path);
        v.finish(store)
    }

    /// Parse and validate; `env` looks up variables (injected so tests need no globals).
    pub fn parse(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax_error(&shown, text, &e))?;
        let mut v = Validator {
            path: &shown,
            text,
            env,
            problems: Vec::new(),
            missing: BTreeSet::new(),
            agents_on: (false, false),
        };
        let config = v.build(raw, path);
        v.finish(config)
    }
}

impl Validator<'_> {
    /// The value, if nothing was wrong; else every problem, missing variables first.
    fn finish<T>(mut self, value: T) -> Result<T, ConfigError> {
        let shown = self.path.to_string();
        if !self.missing.is_empty() {
            let vars: Vec<_> = self.missing.iter().cloned().collect();
            self.problems.insert(
                0,
                Problem {
                    path: shown.clone(),
                    line: None,
                    key: "environment".into(),
                    message: format!(
                        "missing environment variable{}: {} (set {} before starting)",
                        if vars.len() > 1 { "s" } else { "" },
                        vars.join(", "),
                        if vars.len() > 1 { "them" } else { "it" }
                    ),
                },
            );
        }
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError::Invalid(self.problems))
        }
    }
}

struct Validator<'a> {
    path: &'a str,
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
    missing: BTreeSet<String>,
    /// Some `[[agents]]` entry names a Slack account, a Discord account.
    agents_on: (bool, bool),
}

impl Validator<'_> {
    /// `[store]`, and the lease every duty and claim is held for.
    fn store(&mut self, raw: &RawStore, path: &Path) -> (StoreConfig, Duration) {
        let lease = match raw.lease_secs {
            None => Duration::from_secs(crate::config::DEFAULT_LEASE_SECS),
            Some(secs) if secs.is_finite() && (3.0..=600.0).contains(&secs) => {
                Duration::from_secs_f64(secs)
            }
            Some(secs) => {
                self.problem(
                    "store",
                    "lease_secs",
                    format!("is {secs}: expected 3 to 600 seconds (renewed every third of it)"),
                );
                Duration::from_secs(crate::config::DEFAULT_LEASE_SECS)
            }
        };
        let sled_only = [("path", raw.path.is_some())];
        let pg_only = [
            ("url", raw.url.is_some()),
            ("pool_size", raw.pool_size.is_some()),
            ("tls", raw.tls.is_some()),
            ("ca_file", raw.ca_file.is_some()),
            ("connect_timeout_secs", raw.connect_timeout_secs.is_some()),
        ];
        let misplaced = |v: &mut Self, keys: &[(&str, bool)], backend: &str| {
            for (key, given) in keys {
                if *given {
                    v.problem(
                        "store",
                        key,
                        format!("does not apply to backend = \"{backend}\""),
                    );
                }
            }
        };
        let store = match raw.backend.as_str() {
            "sled" => {
                misplaced(self, &pg_only, "sled");
                let p = PathBuf::from(self.interpolate(
                    "store",
                    "path",
                    raw.path.as_deref().unwrap_or(""),
                ));
                if p.as_os_str().is_empty() {
                    self.problem(
                        "store",
                        "path",
                        "expected a directory path for the sled store",
                    );
                }
                // Relative to the config file, so the bot can be started from anywhere.
                let path = if p.is_relative() {
                    path.parent().unwrap_or(Path::new(".")).join(p)
                } else {
                    p
                };
                StoreConfig::Sled { path }
            }
            "postgres" => {
                misplaced(self, &sled_only, "postgres");
                let url = match &raw.url {
                    Some(u) => self.secret("store", "url", u),
                    None => {
                        self.problem(
                            "store",
                            "url",
                            "missing: expected url = \"${DATABASE_URL}\" for backend = \"postgres\"",
                        );
                        Secret::default()
                    }
                };
                if !url.expose().is_empty()
                    && url.expose().parse::<tokio_postgres::Config>().is_err()
                {
                    // The value holds a password: it is not echoed.
                    self.problem(
                        "store",
                        "url",
                        "is not a PostgreSQL connection URL: expected postgres://user:password@host:5432/dbname",
                    );
                }
                let pool_size = match raw.pool_size {
                    None => 16,
                    Some(n) if (1..=1000).contains(&n) => n,
                    Some(n) => {
                        self.problem(
                            "store",
                            "pool_size",
                            format!("is {n}: expected 1 to 1000 connections"),
                        );
                        16
                    }
                };
                let tls = match raw.tls.as_deref() {
                    None | Some("prefer") => PgTls::Prefer,
                    Some("require") => PgTls::Require,
                    Some("disable") => PgTls::Disable,
                    Some(other) => {
                        self.problem(
                            "store",
                            "tls",
                            format!(
                                "is \"{other}\": expected \"require\", \"prefer\" or \"disable\""
                            ),
                        );
                        PgTls::Prefer
                    }
                };
                let ca_file = raw.ca_file.as_ref().map(|f| {
                    let p = PathBuf::from(self.interpolate("store", "ca_file", f));
                    let p = if p.is_relative() {
                        path.parent().unwrap_or(Path::new(".")).join(p)
                    } else {
                        p
                    };
                    if !p.is_file() {
                        self.problem(
                            "store",
                            "ca_file",
                            format!("{} is not a readable file of PEM certificates", p.display()),
                        );
                    }
                    p
                });
                let connect_timeout = match raw.connect_timeout_secs {
                    None => Duration::from_secs(10),
                    Some(s) if s.is_finite() && (0.1..=300.0).contains(&s) => {
                        Duration::from_secs_f64(s)
                    }
                    Some(s) => {
                        self.problem(
                            "store",
                            "connect_timeout_secs",
                            format!("is {s}: expected 0.1 to 300 seconds"),
                        );
                        Duration::from_secs(10)
                    }
                };
                StoreConfig::Postgres(PostgresConfig {
                    url,
                    pool_size,
                    tls,
                    ca_file,
                    connect_timeout,
                })
            }
            other => {
                self.problem(
                    "store",
                    "backend",
                    format!("is \"{other}\": expected \"sled\" (one machine) or \"postgres\" (replicas)"),
                );
                StoreConfig::Sled {
                    path: PathBuf::new(),
                }
            }
        };
        (store, lease)
    }

    /// `[[agents]]`, each mistake reported at its entry's key.
    fn agents(&mut self, list: &[crate::domain::agents::Agent]) -> crate::domain::agents::Agents {
        let agents = crate::domain::agents::Agents::new(list.to_vec());
        for p in agents.problems() {
            self.problem_at(
                locate_entry_key(self.text, "agents", p.index, p.key),
                format!("agents[{}].{}", p.index, p.key),
                p.message,
            );
        }
        self.agents_on = (
            list.iter().any(|a| a.slack.is_some()),
            list.iter().any(|a| a.discord.is_some()),
        );
        agents
    }

    fn problem(&mut self, section: &str, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            path: self.path.into(),
            line: locate_key(self.text, section, key),
            key: format!("{section}.{key}"),
            message: message.into(),
        });
    }

    /// Replace every `${VAR}` with the variable's value; remember the missing ones.
    fn interpolate(&mut self, section: &str, key: &str, value: &str) -> String {
        let mut out = String::new();
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                self.problem(section, key, "has `${` without a closing `}`");
                return out;
            };
            let var = &after[..end];
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.problem(
                    section,
                    key,
                    format!("`${{{var}}}` is not a valid environment variable name"),
                );
            } else {
                match (self.env)(var) {
                    Some(val) => out.push_str(&val),
                    None => {
                        self.missing.insert(format!("{var} (for {section}.{key})"));
                    }
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn secret(&mut self, section: &str, key: &str, value: &str) -> Secret {
        if !value.contains("${") && !value.is_empty() {
            self.problem(
                section,
                key,
                "secrets must come from the environment: write it as \"${SOME_VAR}\"",
            );
            // The literal is neither used nor echoed.
            return Secret::default();
        }
        let missing_before = self.missing.len();
        let secret = Secret(self.interpolate(section, key, value));
        // A missing variable is already reported; an empty one is a credential that would
        // accept (or send) anything, so it is refused here rather than at the first request.
        if self.missing.len() == missing_before && secret.expose().trim().is_empty() {
            self.problem(
                section,
                key,
                if value.contains("${") {
                    format!("{value} is set but empty: expected the credential itself")
                } else {
                    "is empty: expected a credential from the environment, e.g. \"${SOME_VAR}\""
                        .to_string()
                },
            );
        }
        secret
    }

    /// A key that signs or verifies inbound requests: empty, whitespace or too short
    /// for the real thing is refused, so no request is ever checked against a weak key.
    fn signing_key(
        &mut self,
        section: &str,
        key: &str,
        value: &str,
        min_len: usize,
        what: &str,
    ) -> Secret {
        let missing_before = self.missing.len();
        let problems_before = self.problems.len();
        let secret = self.secret(section, key, value);
        let unresolved = self.missing.len() != missing_before;
        let already_refused = self.problems.len() != problems_before;
        if !unresolved && !already_refused && secret.expose().trim().len() < min_len {
            self.problem(
                section,
                key,
                format!(
                    "is {} characters long, too short to be real: expected {what}",
                    secret.expose().trim().chars().count()
                ),
            );
        }
        secret
    }

    fn base_url(&mut self, section: &str, key: &str, value: &str) -> String {
        let value = self.interpolate(section, key, value);
        match url::Url::parse(&value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                value.trim_end_matches('/').to_string()
            }
            _ => {
                self.problem(
                    section,
                    key,
                    format!(
                        "expected an http(s) URL like https://mastodon.social, found {value:?}"
                    ),
                );
                value
            }
        }
    }

    fn slack(&mut self, s: &RawSlack) -> SlackConfig {
        let api_url = self.base_url("slack", "api_url", &s.api_url);
        let bot_token = self.secret("slack", "bot_token", &s.bot_token);
        let app_token = s
            .app_token
            .as_deref()
            .map(|t| self.secret("slack", "app_token", t));
        let signing_secret = s.signing_secret.as_deref().map(|t| {
            self.signing_key(
                "slack",
                "signing_secret",
                t,
                SLACK_SIGNING_SECRET_LEN,
                "the app's Signing Secret (Basic Information → App Credentials, 32 characters)",
            )
        });
        match s.mode {
            SlackMode::Socket if app_token.is_none() => self.problem(
                "slack",
                "mode",
                "socket mode needs `app_token` (an app-level token, xapp-…, with connections:write)",
            ),
            SlackMode::Http if signing_secret.is_none() => self.problem(
                "slack",
                "mode",
                "http mode needs `signing_secret` (Basic Information → Signing Secret)",
            ),
            _ => {}
        }
        if !looks_like_slack_id(&s.channel, &['C', 'G']) {
            self.problem(
                "slack",
                "channel",
                format!(
                    "expected a Slack channel id like C0123456789 (not a #name), found {:?}",
                    s.channel
                ),
            );
        }
        for id in &s.agent_user_ids {
            if !looks_like_slack_id(id, &['U', 'W']) {
                self.problem(
                    "slack",
                    "agent_user_ids",
                    format!("expected Slack user ids like U0123ABCD, found {id:?}"),
                );
            }
        }
        if let Some(g) = &s.agent_usergroup {
            if !looks_like_slack_id(g, &['S']) {
                self.problem(
                    "slack",
                    "agent_usergroup",
                    format!("expected a user group id like S0123ABCD, found {g:?}"),
                );
            }
        }
        if s.agent_user_ids.is_empty() && s.agent_usergroup.is_none() && !self.agents_on.0 {
            self.problem(
                "slack",
                "agent_user_ids",
                "no agents configured: set agent_user_ids and/or agent_usergroup, or nobody can act on a ticket",
            );
        }
        if !s.slash_command.starts_with('/') || s.slash_command.len() < 2 {
            self.problem(
                "slack",
                "slash_command",
                format!(
                    "expected a command like /mentions, found {:?}",
                    s.slash_command
                ),
            );
        }

        SlackConfig {
            mode: s.mode,
            api_url,
            bot_token,
            app_token,
            signing_secret,
            channel: s.channel.clone(),
            agent_user_ids: s.agent_user_ids.clone(),
            agent_usergroup: s.agent_usergroup.clone(),
            slash_command: s.slash_command.clone(),
            messages_per_second: self.rate("slack", "messages_per_second", s.messages_per_second),
            message_burst: self.burst("slack", "message_burst", s.message_burst),
        }
    }

    /// A pace in calls per second: 0.01 to 1,000.
    fn rate(&mut self, section: &str, key: &str, per_second: f64) -> f64 {
        if !(per_second.is_finite() && (0.01..=1000.0).contains(&per_second)) {
            self.problem(
                section,
                key,
                format!("expected calls per second between 0.01 and 1000, found {per_second}"),
            );
            return 1.0;
        }
        per_second
    }

    /// How many calls a pace lets through at once: 1 to 100.
    fn burst(&mut self, section: &str, key: &str, burst: u32) -> u32 {
        if !(1..=100).contains(&burst) {
            self.problem(
                section,
                key,
                format!("expected a number of calls between 1 and 100, found {burst}"),
            );
            return 1;
        }
        burst
    }

    fn discord(&mut self, d: &RawDiscord) -> DiscordConfig {
        let api_url = self.base_url("discord", "api_url", &d.api_url);
        let bot_token = self.secret("discord", "bot_token", &d.bot_token);
        let missing_before = self.missing.len();
        let public_key = d.public_key.as_deref().map(|k| {
            self.interpolate("discord", "public_key", k)
                .trim()
                .to_string()
        });
        if let Some(k) = &public_key {
            let unresolved = self.missing.len() != missing_before;
            let valid = is_ed25519_public_key(k);
            if !unresolved && !valid {
                let found = if k.is_empty() {
                    "it is empty".to_string()
                } else {
                    format!("found {} characters", k.chars().count())
                };
                self.problem(
                    "discord",
                    "public_key",
                    format!("expected the application's Ed25519 public key: 64 hex characters (General Information → Public Key); {found}"),
                );
            }
        }
        if d.mode == DiscordMode::Http && public_key.is_none() {
            self.problem(
                "discord",
                "mode",
                "http mode needs `public_key` to verify Discord's signatures",
            );
        }
        for (key, value) in [("guild_id", &d.guild_id), ("channel_id", &d.channel_id)] {
            if !looks_like_snowflake(value) {
                self.problem(
                    "discord",
                    key,
                    format!("expected a Discord id (17 to 20 digits; Developer Mode → Copy ID), found {value:?}"),
                );
            }
        }
        for (key, ids) in [
            ("agent_role_ids", &d.agent_role_ids),
            ("agent_user_ids", &d.agent_user_ids),
        ] {
            for id in ids {
                if !looks_like_snowflake(id) {
                    self.problem(
                        "discord",
                        key,
                        format!("expected Discord ids (17 to 20 digits), found {id:?}"),
                    );
                }
            }
        }
        if d.agent_role_ids.is_empty() && d.agent_user_ids.is_empty() && !self.agents_on.1 {
            self.problem(
                "discord",
                "agent_role_ids",
                "no agents configured: set agent_role_ids and/or agent_user_ids, or nobody can act on a ticket",
            );
        }
        DiscordConfig {
            mode: d.mode,
            api_url,
            bot_token,
            public_key,
            guild_id: d.guild_id.clone(),
            channel_id: d.channel_id.clone(),
            agent_role_ids: d.agent_role_ids.clone(),
            agent_user_ids: d.agent_user_ids.clone(),
        }
    }

    fn mastodon(&mut self, m: &RawMastodon) -> MastodonConfig {
        let instance_url = self.base_url("mastodon", "instance_url", &m.instance_url);
        let access_token = self.secret("mastodon", "access_token", &m.access_token);
        if m.initial_backfill > 80 {
            self.problem(
                "mastodon",
                "initial_backfill",
                "expected 0 to 80 (one page of notifications)",
            );
        }

        let hashtags: Vec<String> = m
            .hashtags
            .iter()
            .map(|t| t.trim().trim_start_matches('#').to_string())
            .filter(|t| !t.is_empty())
            .collect();
        for tag in &hashtags {
            let shape = crate::wire::request_path::IdShape::Hashtag;
            if crate::wire::request_path::checked("hashtag", shape, tag).is_err() {
                self.problem(
                    "mastodon",
                    "hashtags",
                    format!("expected hashtags of letters, digits and _ only, found {tag:?}"),
                );
            }
        }
        let reconcile_every = self.bounded_secs(
            "mastodon",
            "reconcile_secs",
            m.reconcile_secs,
            30.0..=3600.0,
        );
        let stream_quiet = self.bounded_secs(
            "mastodon",
            "stream_quiet_secs",
            m.stream_quiet_secs,
            1.0..=600.0,
        );
        MastodonConfig {
            instance_url,
            access_token,
            poll_interval: self.poll_interval("mastodon", m.poll_interval_secs),
            include_filtered: m.include_filtered,
            initial_backfill: m.initial_backfill,
            hashtags,
            streaming: m.streaming,
            reconcile_every,
            stream_quiet,
        }
    }

    fn canned(
        &mut self,
        library: &[crate::domain::canned::CannedReply],
    ) -> Vec<crate::domain::canned::CannedReply> {
        let mut seen = std::collections::HashSet::new();
        for c in library {
            if c.id.is_empty()
                || !c
                    .id
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                self.problem(
                    "canned",
                    "id",
                    format!(
                        "expected a short id of letters, digits, - or _, found {:?}",
                        c.id
                    ),
                );
            }
            if !seen.insert(c.id.clone()) {
                self.problem("canned", "id", format!("{:?} is used twice", c.id));
            }
            let unknown = c.unknown_variables();
            if !unknown.is_empty() {
                self.problem(
                    "canned",
                    "text",
                    format!(
                        "canned reply {:?} has unknown variables {} (known: {{author}}, {{author_name}}, {{agent}}, {{ticket}}, {{brand}})",
                        c.id,
                        unknown.join(", ")
                    ),
                );
            }
        }
        library.to_vec()
    }

    fn oncall(&mut self, raw: &RawOnCall) -> Schedule {
        let schedule = Schedule {
            rotations: raw.rotation.clone(),
            ..Schedule::default()
        };
        for problem in schedule.validate() {
            self.problems.push(Problem {
                path: self.path.into(),
                line: self
                    .text
                    .lines()
                    .position(|l| l.trim() == "[[oncall.rotation]]")
                    .map(|i| i + 1),
                key: "oncall.rotation".into(),
                message: problem,
            });
        }
        schedule
    }

    fn problem_at(&mut self, line: Option<usize>, key: String, message: impl Into<String>) {
        self.problems.push(Problem {
            path: self.path.into(),
            line,
            key,
            message: message.into(),
        });
    }

    /// A policy from `raw`, taking what it leaves out from `base`. `line` and `key` say
    /// where a mistake is reported.
    fn policy(
        &mut self,
        raw: &RawPolicy,
        base: &SlaPolicy,
        line: &dyn Fn(&str) -> Option<usize>,
        key: &str,
    ) -> SlaPolicy {
        let mut p = base.clone();
        // Past a year is a typo, and past what a deadline can be added to a date.
        const MAX_MINUTES: u64 = 366 * 24 * 60;
        let minutes = |m: u64| chrono::Duration::minutes(m.clamp(1, MAX_MINUTES) as i64);
        let minutes_range = "expected a number of minutes, at least 1 and at most 527040 (a year)";
        if let Some(m) = raw.first_response_minutes {
            if m == 0 || m > MAX_MINUTES {
                self.problem_at(
                    line("first_response_minutes"),
                    format!("{key}.first_response_minutes"),
                    minutes_range,
                );
            }
            p.first_response = minutes(m.max(1));
        }
        if let Some(h) = raw.resolution_hours {
            if !(h.is_finite() && h > 0.0 && h <= (MAX_MINUTES / 60) as f64) {
                self.problem_at(
                    line("resolution_hours"),
                    format!("{key}.resolution_hours"),
                    "expected a positive number of hours, at most 8784 (a year)",
                );
            } else {
                p.resolution = Some(chrono::Duration::seconds((h * 3600.0) as i64));
            }
        }
        if let Some(w) = raw.warn_at {
            if !(w > 0.0 && w < 1.0) {
                self.problem_at(
                    line("warn_at"),
                    format!("{key}.warn_at"),
                    format!(
                        "expected a share of the target between 0 and 1 (e.g. 0.75), found {w}"
                    ),
                );
            } else {
                p.warn_at = w;
            }
        }
        if let Some(levels) = &raw.escalate_unclaimed_after_minutes {
            if levels.iter().any(|m| *m == 0 || *m > MAX_MINUTES)
                || levels.windows(2).any(|w| w[0] >= w[1])
            {
                self.problem_at(
                    line("escalate_unclaimed_after_minutes"),
                    format!("{key}.escalate_unclaimed_after_minutes"),
                    "expected rising minutes, e.g. [15, 30] (level 1: secondary on-call, level 2: the channel)",
                );
            }
            p.unclaimed_escalation = levels.iter().map(|m| minutes(*m)).collect();
        }
        for (value, key_name) in [
            (raw.remind_idle_claim_minutes, "remind_idle_claim_minutes"),
            (raw.release_idle_claim_minutes, "release_idle_claim_minutes"),
        ] {
            if value.is_some_and(|m| m == 0 || m > MAX_MINUTES) {
                self.problem_at(line(key_name), format!("{key}.{key_name}"), minutes_range);
            }
        }
        if let Some(m) = raw.remind_idle_claim_minutes {
            p.idle_claim_reminder = minutes(m.max(1));
        }
        if let Some(m) = raw.release_idle_claim_minutes {
            p.idle_claim_release = minutes(m.max(1));
        }
        // Judged where it is set: a route that sets neither inherits a checked pair.
        let sets_either =
            raw.remind_idle_claim_minutes.is_some() || raw.release_idle_claim_minutes.is_some();
        if sets_either && p.idle_claim_release <= p.idle_claim_reminder {
            let key_name = if raw.release_idle_claim_minutes.is_some() {
                "release_idle_claim_minutes"
            } else {
                "remind_idle_claim_minutes"
            };
            self.problem_at(
                line(key_name),
                format!("{key}.{key_name}"),
                "must be longer than remind_idle_claim_minutes (remind first, then release)",
            );
        }
        p
    }

    fn off_hours_ack(
        &mut self,
        text: &Option<String>,
        line: Option<usize>,
        key: String,
    ) -> Option<String> {
        let text = text.as_ref()?;
        let unknown: Vec<&str> = text
            .match_indices('{')
            .filter_map(|(i, _)| text[i..].find('}').map(|j| &text[i..i + j + 1]))
            .filter(|v| !matches!(*v, "{author}" | "{author_name}" | "{brand}" | "{expected}"))
            .collect();
        if text.trim().is_empty() || !unknown.is_empty() {
            self.problem_at(
                line,
                key,
                format!(
                    "expected a short public answer; unknown variables: {} (known: {{author}}, {{author_name}}, {{brand}}, {{expected}})",
                    if unknown.is_empty() { "none, but it is empty".to_string() } else { unknown.join(", ") }
                ),
            );
        }
        Some(text.clone())
    }

    fn routes(&mut self, raw: &RawConfig, schedule: &Schedule) -> Routes {
        let text = self.text;
        let sla_line = |k: &str| locate_key(text, "sla", k);
        let base = self.policy(&raw.sla, &SlaPolicy::default(), &sla_line, "sla");
        let ack_line = locate_key(text, "oncall", "off_hours_ack");
        let mut default = Route::default_route(base.clone(), raw.oncall.page_new_tickets);
        default.off_hours_ack = self.off_hours_ack(
            &raw.oncall.off_hours_ack,
            ack_line,
            "oncall.off_hours_ack".into(),
        );
        let headers: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| {
                l.split('#').next().is_some_and(|h| {
                    h.chars()
                        .filter(|c| !c.is_whitespace())
                        .eq("[[route]]".chars())
                })
            })
            .map(|(i, _)| i + 1)
            .collect();
        let mut names = BTreeSet::new();
        let mut routes = Vec::new();
        for (i, r) in raw.route.iter().enumerate() {
            let header = headers.get(i).copied();
            // The line of `key` within this route's part of the file.
            let next_header = headers.get(i + 1).copied().unwrap_or(usize::MAX);
            let line_of = |k: &str| {
                header.and_then(|h| {
                    text.lines()
                        .enumerate()
                        .skip(h)
                        .take_while(|(n, _)| n + 1 < next_header)
                        .find(|(_, l)| l.split_once('=').is_some_and(|(lk, _)| lk.trim() == k))
                        .map(|(n, _)| n + 1)
                        .or(Some(h))
                })
            };
            let key = format!("route[{i}]");
            if r.name.trim().is_empty() || r.name == DEFAULT_ROUTE || !names.insert(r.name.clone())
            {
                self.problem_at(
                    line_of("name"),
                    format!("{key}.name"),
                    format!(
                        "expected a unique route name other than \"default\", found {:?}",
                        r.name
                    ),
                );
            }
            let mut platforms = Vec::new();
            for p in &r.platforms {
                match platform_named(p) {
                    Some(platform) => platforms.push(platform),
                    None => self.problem_at(
                        line_of("platforms"),
                        format!("{key}.platforms"),
                        format!("{p:?} is not a platform (mastodon, bluesky, x, other)"),
                    ),
                }
            }
            let min_priority = r.min_priority.as_deref().and_then(|name| {
                let level = crate::domain::priority::Level::parse(name);
                if level.is_none() {
                    self.problem_at(
                        line_of("min_priority"),
                        format!("{key}.min_priority"),
                        format!("{name:?} is not a priority level (low, normal, high, urgent)"),
                    );
                }
                level
            });
            for rotation in &r.rotations {
                if !schedule.rotations.iter().any(|x| &x.name == rotation) {
                    self.problem_at(
                        line_of("rotations"),
                        format!("{key}.rotations"),
                        format!("there is no [[oncall.rotation]] named {rotation:?}"),
                    );
                }
            }
            let sla = self.policy(&r.sla, &base, &line_of, &format!("{key}.sla"));
            let off_hours_ack = self.off_hours_ack(
                &r.off_hours_ack,
                line_of("off_hours_ack"),
                format!("{key}.off_hours_ack"),
            );
            routes.push(Route {
                name: r.name.clone(),
                platforms,
                languages: r.languages.iter().map(|l| l.to_ascii_lowercase()).collect(),
                keywords: r.keywords.iter().map(|k| k.to_lowercase()).collect(),
                sla,
                page: r.page.unwrap_or(raw.oncall.page_new_tickets),
                rotations: r.rotations.clone(),
                off_hours_ack,
                min_priority,
            });
        }
        Routes {
            routes,
            default,
            card_hold: Default::default(),
            triage: Default::default(),
        }
    }

    fn http_limits(&mut self, raw: &RawHttp) -> HttpLimits {
        let mut secs = |key: &str, value: f64| {
            if !(value.is_finite() && (0.1..=3600.0).contains(&value)) {
                self.problem("http", key, "expected a number of seconds from 0.1 to 3600");
                return Duration::from_secs(10);
            }
            Duration::from_secs_f64(value)
        };
        let header_read_timeout = secs("header_read_timeout_secs", raw.header_read_timeout_secs);
        let body_read_timeout = secs("body_read_timeout_secs", raw.body_read_timeout_secs);
        if !(1..=65_536).contains(&raw.max_connections) {
            self.problem("http", "max_connections", "expected 1 to 65536");
        }
        if !(1024..=64 << 20).contains(&raw.max_body_bytes) {
            self.problem(
                "http",
                "max_body_bytes",
                "expected 1024 to 67108864 bytes (64 MiB)",
            );
        }
        HttpLimits {
            header_read_timeout,
            body_read_timeout,
            max_connections: raw.max_connections.clamp(1, 65_536),
            max_body_bytes: raw.max_body_bytes.clamp(1024, 64 << 20),
        }
    }

    fn poll_interval(&mut self, section: &str, secs: f64) -> Duration {
        if !(secs.is_finite() && secs >= 0.1) {
            self.problem(
                section,
                "poll_interval_secs",
                "expected a number of seconds, at least 0.1",
            );
        }
        // `nan` is valid TOML and survives `clamp`; `from_secs_f64` would panic on it.
        Duration::from_secs_f64(if secs.is_nan() {
            0.1
        } else {
            secs.clamp(0.1, 86_400.0)
        })
    }

    fn bluesky(&mut self, b: &RawBluesky) -> BlueskyConfig {
        let service_url = self.base_url("bluesky", "service_url", &b.service_url);
        let app_password = self.secret("bluesky", "app_password", &b.app_password);
        let handle = b.handle.trim_start_matches('@').to_string();
        if !handle.contains('.') {
            self.problem(
                "bluesky",
                "handle",
                format!(
                    "expected a handle like brand.bsky.social, found {:?}",
                    b.handle
                ),
            );
        }
        let jetstream_url = self.websocket_url("bluesky", "jetstream_url", &b.jetstream_url);
        let reconcile_every =
            self.bounded_secs("bluesky", "reconcile_secs", b.reconcile_secs, 30.0..=3600.0);
        let quiet = self.bounded_secs(
            "bluesky",
            "stream_quiet_secs",
            b.stream_quiet_secs,
            1.0..=600.0,
        );
        BlueskyConfig {
            service_url,
            handle,
            app_password,
            poll_interval: self.poll_interval("bluesky", b.poll_interval_secs),
            keywords: b.keywords.clone(),
            jetstream: b.jetstream.then_some(JetstreamConfig {
                url: jetstream_url,
                reconcile_every,
                quiet,
            }),
        }
    }

    /// A number of seconds within `range` (the range's start when it is not).
    fn bounded_secs(
        &mut self,
        section: &str,
        key: &str,
        secs: f64,
        range: std::ops::RangeInclusive<f64>,
    ) -> Duration {
        if secs.is_finite() && range.contains(&secs) {
            return Duration::from_secs_f64(secs);
        }
        self.problem(
            section,
            key,
            format!(
                "is {secs}: expected {} to {} seconds",
                range.start(),
                range.end()
            ),
        );
        Duration::from_secs_f64(*range.start())
    }

    /// A websocket URL the desk subscribes at: `ws://` or `wss://` with a host, and
    /// neither credentials (they would travel to a third party and show in logs) nor a
    /// query (the desk writes the subscription's parameters itself).
    fn websocket_url(&mut self, section: &str, key: &str, value: &str) -> String {
        let value = self.interpolate(section, key, value);
        let problem = match url::Url::parse(&value) {
            Ok(u) if !matches!(u.scheme(), "ws" | "wss") || u.host().is_none() => {
                "expected a ws:// or wss:// URL like wss://jetstream2.us-east.bsky.network/subscribe"
            }
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                "must not carry credentials: Jetstream needs none"
            }
            Ok(u) if u.query().is_some() || u.fragment().is_some() => {
                "must not carry a query: the subscription's parameters are added by the bot"
            }
            Ok(_) => return value,
            Err(_) => "expected a ws:// or wss:// URL like wss://jetstream2.us-east.bsky.network/subscribe",
        };
        // The value is not echoed: a URL that carries credentials must not reach a log.
        self.problem(section, key, problem);
        value
    }

    fn x(&mut self, x: &RawX) -> XConfig {
        let api_url = self.base_url("x", "api_url", &x.api_url);
        if x.user_id.is_empty() || !x.user_id.chars().all(|c| c.is_ascii_digit()) {
            self.problem(
                "x",
                "user_id",
                format!(
                    "expected the account's numeric user id, found {:?}",
                    x.user_id
                ),
            );
        }
        let need = |v: &Option<String>, key: &'static str, this: &mut Self| -> Secret {
            match v {
                Some(v) => this.secret("x", key, v),
                None => {
                    this.problem(
                        "x",
                        key,
                        format!(
                            "required with auth = \"{}\"",
                            if matches!(x.auth, XAuth::Oauth1) {
                                "oauth1"
                            } else {
                                "oauth2"
                            }
                        ),
                    );
                    Secret::default()
                }
            }
        };
        let credentials = match x.auth {
            XAuth::Oauth1 => XCredentials::Oauth1 {
                consumer_key: need(&x.consumer_key, "consumer_key", self),
                consumer_secret: need(&x.consumer_secret, "consumer_secret", self),
                access_token: need(&x.access_token, "access_token", self),
                access_token_secret: need(&x.access_token_secret, "access_token_secret", self),
            },
            XAuth::Oauth2 => {
                let refresh_token = need(&x.refresh_token, "refresh_token", self);
                let client_id = x.client_id.clone().unwrap_or_else(|| {
                    self.problem("x", "client_id", "required with auth = \"oauth2\"");
                    String::new()
                });
                let client_secret = x
                    .client_secret
                    .as_deref()
                    .map(|s| self.secret("x", "client_secret", s));
                XCredentials::Oauth2 {
                    client_id,
                    client_secret,
                    refresh_token,
                }
            }
        };
        if x.daily_request_budget == 0 {
            self.problem(
                "x",
                "daily_request_budget",
                "expected the number of requests allowed per day (every X request costs money)",
            );
        }
        let stream = x.stream.then(|| XStreamConfig {
            bearer_token: match &x.bearer_token {
                Some(t) => self.secret("x", "bearer_token", t),
                None => {
                    self.problem_at(
                        locate_key(self.text, "x", "stream"),
                        "x.bearer_token".into(),
                        "stream = true needs `bearer_token`: the app's Bearer Token \
                         (OAuth 2.0 App-Only, developer portal → Keys and tokens), e.g. \
                         bearer_token = \"${X_BEARER_TOKEN}\"",
                    );
                    Secret::default()
                }
            },
            reconcile_every: self.bounded_secs(
                "x",
                "reconcile_secs",
                x.reconcile_secs,
                60.0..=86_400.0,
            ),
            quiet: self.bounded_secs("x", "stream_quiet_secs", x.stream_quiet_secs, 1.0..=600.0),
        });
        XConfig {
            api_url,
            user_id: x.user_id.clone(),
            credentials,
            poll_interval: self.poll_interval("x", x.poll_interval_secs),
            keywords: x.keywords.clone(),
            daily_request_budget: x.daily_request_budget,
            stream,
        }
    }

    fn build(&mut self, raw: RawConfig, path: &Path) -> Config {
        let (store, lease) = self.store(&raw.store, path);
        let raw_http = raw.http.clone().unwrap_or_default();
        let http = self.http_limits(&raw_http);
        let charts_token = raw_http
            .charts_token
            .as_deref()
            .map(|v| self.secret("http", "charts_token", v));
        let listen = raw_http.listen;
        let http_listen = listen.parse().unwrap_or_else(|_| {
            self.problem(
                "http",
                "listen",
                format!("expected an address like 127.0.0.1:8080, found {listen:?}"),
            );
            ([127, 0, 0, 1], 8080).into()
        });

        let agents = self.agents(&raw.agents);
        let slack = raw.slack.as_ref().map(|s| self.slack(s));
        let discord = raw.discord.as_ref().map(|d| self.discord(d));
        if slack.is_none() && discord.is_none() {
            self.problems.push(Problem {
                path: self.path.into(),
                line: None,
                key: "slack / discord".into(),
                message:
                    "no chat surface configured: add a [slack] or a [discord] section (or both)"
                        .into(),
            });
        }

        let mastodon = raw.mastodon.as_ref().map(|m| self.mastodon(m));
        let bluesky = raw.bluesky.as_ref().map(|b| self.bluesky(b));
        let x = raw.x.as_ref().map(|x| self.x(x));
        let webhook = raw.webhook.as_ref().map(|w| {
            let secret = self.signing_key(
                "webhook",
                "secret",
                &w.secret,
                WEBHOOK_SECRET_MIN_LEN,
                "a shared random key of at least 16 characters (it signs every request)",
            );
            WebhookConfig { secret }
        });
        if mastodon.is_none() && bluesky.is_none() && x.is_none() && webhook.is_none() {
            self.problems.push(Problem {
                path: self.path.into(),
                line: None,
                key: "mastodon / bluesky / x / webhook".into(),
                message: "no source of mentions configured: add a [mastodon], [bluesky], [x] or [webhook] section".into(),
            });
        }
        if raw.outbox.concurrency == 0 || raw.outbox.concurrency > 64 {
            self.problem("outbox", "concurrency", "expected 1 to 64");
        }
        if raw.outbox.max_attempts == 0 || raw.outbox.max_attempts > 1000 {
            self.problem("outbox", "max_attempts", "expected 1 to 1000");
        }

        let mut oncall = self.oncall(&raw.oncall);
        oncall.agents = agents.clone();
        let mut routes = self.routes(&raw, &oncall);
        routes.triage.priority = self.priority(&raw.priority);
        routes.triage.rules = self.rules(&raw.rules, &routes);
        let approvals = self.approvals(raw.approvals.as_ref());
        routes.set_approval_reminder(approvals.remind_after);
        let translation = raw.translation.as_ref().map(|t| self.translation(t));
        // The brand's own words are in every mention: they never make a storm's topic.
        let mut own_words: Vec<String> = raw.brand.iter().cloned().collect();
        if let Some(m) = &mastodon {
            own_words.extend(m.hashtags.iter().cloned());
        }
        if let Some(b) = &bluesky {
            own_words.push(b.handle.split('.').next().unwrap_or("").to_string());
            own_words.extend(b.keywords.iter().cloned());
        }
        if let Some(x) = &x {
            own_words.extend(x.keywords.iter().cloned());
        }
        let storms = self.storms(raw.storms.as_ref(), &own_words);
        routes.card_hold = crate::domain::routes::CardHold {
            wait: chrono::Duration::from_std(storms.hold).unwrap_or_default(),
            own_card_from: storms.own_card_from,
        };
        Config {
            source_path: path.to_path_buf(),
            store,
            lease,
            http_listen,
            http_configured: raw.http.is_some(),
            http,
            charts_token,
            brand: raw.brand.clone().unwrap_or_else(|| "our team".into()),
            routes,
            oncall,
            page_new_tickets: raw.oncall.page_new_tickets,
            handoff_digest: raw.oncall.handoff_digest,
            release_claims_at_handoff: raw.oncall.release_claims_at_handoff,
            canned: self.canned(&raw.canned),
            slack,
            discord,
            mastodon,
            bluesky,
            x,
            webhook,
            outbox: OutboxConfig {
                concurrency: raw.outbox.concurrency.clamp(1, 64),
                max_backoff: Duration::from_secs(raw.outbox.max_backoff_secs.max(1)),
                max_attempts: raw.outbox.max_attempts.clamp(1, 1000),
                claim_for: lease,
            },
            agents,
            storms,
            translation,
            approvals,
            language: self.language(&raw.language),
            retention: self.retention(raw.retention.as_ref()),
            surveys: self.surveys(raw.surveys.as_ref(), &raw.route),
        }
    }
}

/// A platform as the configuration names it (`mastodon`, `bluesky`, `x` or `twitter`,
/// `other` or `webhook`), any case.
fn platform_named(name: &str) -> Option<Platform> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "mastodon" => Platform::Mastodon,
        "bluesky" => Platform::Bluesky,
        "x" | "twitter" => Platform::X,
        "other" | "webhook" => Platform::Other,
        _ => return None,
    })
}

fn looks_like_snowflake(s: &str) -> bool {
    (17..=20).contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit())
}

fn looks_like_slack_id(s: &str, prefixes: &[char]) -> bool {
    s.len() >= 5
        && s.starts_with(prefixes)
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The 1-based line of `key` in the `index`th (0-based) `[[section]]` entry, or of that
/// entry's header when the key is not written.
fn locate_entry_key(text: &str, section: &str, index: usize, key: &str) -> Option<usize> {
    let header = format!("[[{section}]]");
    let mut seen = 0;
    let mut inside = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.split('#').next().unwrap_or("").trim();
        if trimmed.starts_with('[') {
            if inside.is_some() {
                break;
            }
            if trimmed == header {
                if seen == index {
                    inside = Some(i + 1);
                }
                seen += 1;
            }
            continue;
        }
        if inside.is_some() {
            if let Some((k, _)) = trimmed.split_once('=') {
                if k.trim().trim_matches('"') == key {
                    return Some(i + 1);
                }
            }
        }
    }
    inside
}

/// A TOML or type error at its place in the file, naming the key set on that line (as
/// `section.key`) when there is one.
fn syntax_error(path: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
    let message = e.message().trim();
    let message = match key_on_line(text, line) {
        Some(key) if !message.contains(&format!("`{key}`")) => format!("`{key}`: {message}"),
        _ => message.to_string(),
    };
    ConfigError::Syntax {
        path: path.to_string(),
        line,
        column,
        message,
    }
}

/// The key a line of the file sets (`key = …`), with the table it is in: `sla.first_response_minutes`.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?;
    let (key, _) = here.split_once('=')?;
    let key = key.trim();
    let plain = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"'))
    };
    if !plain(key) {
        return None;
    }
    let key = key.replace('"', "");
    let table = lines[..line - 1].iter().rev().find_map(|l| {
        let l = l.trim();
        let inner = l
            .strip_prefix("[[")
            .and_then(|r| r.split_once("]]"))
            .map(|(t, _)| t);
        let inner = inner.or_else(|| {
            l.strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .map(|(t, _)| t)
        });
        inner.map(|t| t.trim().replace('"', ""))
    });
    Some(match table {
        Some(t) if plain(&t) => format!("{t}.{key}"),
        _ => key,
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The 1-based line where `key` is set inside `[section]`, or the section header's line
/// when the key is absent.
fn locate_key(text: &str, section: &str, key: &str) -> Option<usize> {
    let header = format!("[{section}]");
    let mut in_section = false;
    let mut header_line = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_section = trimmed.split('#').next().map(str::trim) == Some(header.as_str());
            if in_section {
                header_line = Some(i + 1);
            }
            continue;
        }
        if in_section {
            if let Some((k, _)) = trimmed.split_once('=') {
                if k.trim().trim_matches('"') == key {
                    return Some(i + 1);
                }
            }
        }
    }
    header_line
}

/// Whether `key` is a Discord application public key: 64 hex characters of a valid
/// Ed25519 point (what the interactions endpoint's verifier will accept).
fn is_ed25519_public_key(key: &str) -> bool {
    hex::decode(key)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .is_some_and(|bytes| ed25519_dalek::VerifyingKey::from_bytes(&bytes).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const GOOD: &str = r#"
[store]
path = "data/bot.sled"

[slack]
bot_token = "${SLACK_BOT_TOKEN}"
app_token = "${SLACK_APP_TOKEN}"
channel = "C0SUPPORT"
agent_user_ids = ["U0ANA"]

[mastodon]
instance_url = "https://social.example/"
access_token = "${MASTODON_TOKEN}"
"#;

    pub(super) fn env_all(var: &str) -> Option<String> {
        Some(format!("value-of-{var}"))
    }

    pub(super) fn parse(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/mb/bot-config.toml"), text, env)
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_line_and_its_key() {
        let text = format!("{GOOD}\n[retention]\nidentity_days = \"30\"\n");
        let line = text
            .lines()
            .position(|l| l.starts_with("identity_days"))
            .unwrap()
            + 1;
        let Err(ConfigError::Syntax {
            line: at, message, ..
        }) = parse(&text, &env_all)
        else {
            panic!("a type error");
        };
        assert_eq!(at, line);
        assert!(
            message.starts_with("`retention.identity_days`: "),
            "{message}"
        );
        // In an array of tables the table's name is given; an unknown key is named once.
        let text = format!("{GOOD}\n[[route]]\nnmae = \"vip\"\n");
        let Err(ConfigError::Syntax { message, .. }) = parse(&text, &env_all) else {
            panic!("an unknown key");
        };
        assert!(
            message.starts_with("`route.nmae`: unknown field"),
            "{message}"
        );
    }

    #[test]
    fn a_complete_file_parses_with_defaults_and_secrets_from_the_environment() {
        let c = parse(GOOD, &env_all).unwrap();
        assert_eq!(
            c.mastodon.as_ref().unwrap().instance_url,
            "https://social.example"
        );
        let slack = c.slack.as_ref().unwrap();
        assert_eq!(slack.api_url, "https://slack.com/api");
        assert_eq!(slack.bot_token.expose(), "value-of-SLACK_BOT_TOKEN");
        assert_eq!(
            c.store,
            StoreConfig::Sled {
                path: PathBuf::from("/etc/mb/data/bot.sled")
            }
        );
        assert_eq!(slack.mode, SlackMode::Socket);
        assert!(c.discord.is_none());
        assert!(
            !format!("{c:?}").contains("value-of"),
            "secrets leak into Debug"
        );
    }

    /// Each credential that signs or verifies requests, as a config fragment that
    /// enables it (the key's value is `$V`).
    fn signing_keys() -> Vec<(&'static str, String)> {
        vec![
            (
                "slack.signing_secret",
                GOOD.replace(
                    "app_token = \"${SLACK_APP_TOKEN}\"\n",
                    "mode = \"http\"\nsigning_secret = \"$V\"\n",
                ),
            ),
            (
                "webhook.secret",
                format!("{GOOD}\n[webhook]\nsecret = \"$V\"\n"),
            ),
            (
                "discord.public_key",
                GOOD.replace("[slack]", "[other_slack]")
                    .replace("[mastodon]", "[discord]\nmode = \"http\"\nbot_token = \"${DISCORD_BOT_TOKEN}\"\npublic_key = \"$V\"\nguild_id = \"1100000000000000001\"\nchannel_id = \"1100000000000000002\"\nagent_user_ids = [\"1200000000000000001\"]\n\n[mastodon]")
                    .replace("[other_slack]\nbot_token = \"${SLACK_BOT_TOKEN}\"\napp_token = \"${SLACK_APP_TOKEN}\"\nchannel = \"C0SUPPORT\"\nagent_user_ids = [\"U0ANA\"]\n", ""),
            ),
        ]
    }

    #[test]
    fn signing_keys_that_are_empty_short_or_resolve_to_nothing_fail_closed() {
        let real_key = "d7ef5ce0a7ff6aa2ec5e0a0ff2d3d5e0ffb4f8e7a1c1a4e5f4b0c2d3e4f5a6b7";
        let env = |var: &str| match var {
            "EMPTY" => Some(String::new()),
            "BLANK" => Some("   ".into()),
            "SHORT" => Some("abc123".into()),
            "GOOD_KEY" => Some(real_key.into()),
            other => Some(format!("value-of-{other}-0123456789abcdef0123456789")),
        };
        for (key, fragment) in signing_keys() {
            // The fragment itself is sound with a real key.
            let good = fragment.replace("$V", "${GOOD_KEY}");
            parse(&good, &env).unwrap_or_else(|e| panic!("{key} with a real key: {e}"));
            let line = good
                .lines()
                .position(|l| l.contains("${GOOD_KEY}"))
                .unwrap()
                + 1;
            for bad in ["${EMPTY}", "${BLANK}", "${SHORT}", "", "   "] {
                let text = fragment.replace("$V", bad);
                let err = parse(&text, &env)
                    .err()
                    .unwrap_or_else(|| panic!("{key} = {bad:?} was accepted"))
                    .to_string();
                assert!(
                    err.contains(&format!("bot-config.toml:{line}: `{key}`")),
                    "{key} = {bad:?}: {err}"
                );
                assert!(!err.contains("abc123"), "the short value is echoed: {err}");
            }
        }
    }

    fn with_store(store: &str) -> String {
        GOOD.replace("[store]\npath = \"data/bot.sled\"\n", store)
    }

    #[test]
    fn a_postgres_store_takes_its_url_from_the_environment_and_never_shows_the_password() {
        let env = |var: &str| match var {
            "DATABASE_URL" => Some("postgres://desk:CANARYpw@db.internal:5433/desk".into()),
            other => Some(format!("value-of-{other}")),
        };
        let c = parse(
            &with_store("[store]\nbackend = \"postgres\"\nurl = \"${DATABASE_URL}\"\ntls = \"require\"\nlease_secs = 9\n"),
            &env,
        )
        .unwrap();
        let StoreConfig::Postgres(pg) = &c.store else {
            panic!("postgres expected: {:?}", c.store);
        };
        assert_eq!(pg.tls, PgTls::Require);
        assert_eq!(pg.pool_size, 16);
        assert_eq!(c.lease, Duration::from_secs(9));
        assert_eq!(c.outbox.claim_for, Duration::from_secs(9));
        assert_eq!(pg.describe(), "postgres://db.internal:5433/desk");
        assert!(!format!("{c:?}").contains("CANARYpw"));
        // Sled stays the default, with the default lease.
        let c = parse(GOOD, &env_all).unwrap();
        assert!(matches!(c.store, StoreConfig::Sled { .. }));
        assert_eq!(c.lease, Duration::from_secs(DEFAULT_LEASE_SECS));
    }

    #[test]
    fn store_mistakes_name_their_line_and_key_and_a_bad_url_is_not_echoed() {
        let env = |var: &str| match var {
            "DATABASE_URL" => Some("postgres://desk:CANARYpw@db:notaport/desk".into()),
            other => Some(format!("value-of-{other}")),
        };
        let cases = [
            (
                "[store]\nbackend = \"mysql\"\n",
                "store.backend",
                "expected \"sled\"",
            ),
            ("[store]\nbackend = \"postgres\"\n", "store.url", "missing"),
            (
                "[store]\nbackend = \"postgres\"\nurl = \"postgres://u:literal@h/db\"\n",
                "store.url",
                "secrets must come from the environment",
            ),
            (
                "[store]\nbackend = \"postgres\"\nurl = \"${DATABASE_URL}\"\n",
                "store.url",
                "is not a PostgreSQL connection URL",
            ),
            (
                "[store]\nbackend = \"sled\"\npath = \"x\"\npool_size = 3\n",
                "store.pool_size",
                "does not apply",
            ),
            (
                "[store]\npath = \"x\"\nlease_secs = 1\n",
                "store.lease_secs",
                "3 to 600",
            ),
        ];
        for (store, key, needle) in cases {
            let text = with_store(store);
            let err = parse(&text, &env).unwrap_err().to_string();
            let line = text
                .lines()
                .position(|l| {
                    let k = key.trim_start_matches("store.");
                    // A missing key is reported at its section's header.
                    l.starts_with(k) || (needle == "missing" && l == "[store]")
                })
                .map(|i| i + 1)
                .unwrap();
            assert!(
                err.contains(&format!("bot-config.toml:{line}: `{key}`")) && err.contains(needle),
                "{store:?}: {err}"
            );
            assert!(
                !err.contains("CANARYpw") && !err.contains("literal"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_store_alone_is_read_for_operator_commands_with_mistakes_at_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bot-config.toml");
        let text = with_store("[store]\npath = \"data/bot.sled\"\npool_size = \"many\"\n");
        std::fs::write(&path, &text).unwrap();
        let line = text
            .lines()
            .position(|l| l.starts_with("pool_size"))
            .unwrap()
            + 1;
        let err = Config::store_of(&path).unwrap_err().to_string();
        assert!(err.contains(&format!("bot-config.toml:{line}:")), "{err}");
        std::fs::write(&path, GOOD).unwrap();
        assert_eq!(
            Config::store_of(&path).unwrap(),
            StoreConfig::Sled {
                path: dir.path().join("data/bot.sled")
            }
        );
    }

    #[test]
    fn any_credential_set_to_an_empty_variable_is_refused() {
        let env = |var: &str| {
            (var != "MASTODON_TOKEN")
                .then(|| format!("value-of-{var}"))
                .or(Some(String::new()))
        };
        let err = parse(GOOD, &env).unwrap_err().to_string();
        assert!(
            err.contains(":13: `mastodon.access_token`: ${MASTODON_TOKEN} is set but empty"),
            "{err}"
        );
    }

    #[test]
    fn all_missing_variables_are_listed_at_once() {
        let err = parse(GOOD, &|_| None).unwrap_err().to_string();
        assert!(
            err.contains("SLACK_BOT_TOKEN (for slack.bot_token)"),
            "{err}"
        );
        assert!(err.contains("SLACK_APP_TOKEN"), "{err}");
        assert!(err.contains("MASTODON_TOKEN"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn http_and_outbox_limits_have_safe_defaults_and_refuse_nonsense() {
        let c = parse(GOOD, &env_all).unwrap();
        assert_eq!(c.http, HttpLimits::default());
        assert_eq!(c.http.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.http.max_connections, 256);
        assert_eq!(c.outbox.max_attempts, 20);

        let tuned = format!(
            "{GOOD}\n[http]\nheader_read_timeout_secs = 2.5\nbody_read_timeout_secs = 3\n\
             max_connections = 8\nmax_body_bytes = 4096\n\n[outbox]\nmax_attempts = 3\n"
        );
        let c = parse(&tuned, &env_all).unwrap();
        assert_eq!(c.http.header_read_timeout, Duration::from_millis(2500));
        assert_eq!(c.http.body_read_timeout, Duration::from_secs(3));
        assert_eq!((c.http.max_connections, c.http.max_body_bytes), (8, 4096));
        assert_eq!(c.outbox.max_attempts, 3);

        for (section, bad) in [
            ("http", "header_read_timeout_secs = nan"),
            ("http", "body_read_timeout_secs = 0"),
            ("http", "max_connections = 0"),
            ("http", "max_body_bytes = 10"),
            ("outbox", "max_attempts = 0"),
        ] {
            let text = format!("{GOOD}\n[{section}]\n{bad}\n");
            let err = parse(&text, &env_all).unwrap_err().to_string();
            let key = bad.split(' ').next().unwrap();
            assert!(err.contains(&format!("{section}.{key}")), "{bad}: {err}");
        }
    }

    #[test]
    fn approvals_hold_nothing_by_default_and_refuse_nonsense_by_line() {
        let c = parse(GOOD, &env_all).unwrap();
        assert!(!c.approvals.holds_anything());
        let careful = format!(
            "{GOOD}\n[approvals]\nwords = [\"Refund\", \"legal\"]\ntrainees = [\"slack:U0NEW\"]\nbulk_answers = true\nmin_reach = 10000\nmin_priority = \"urgent\"\n"
        );
        let c = parse(&careful, &env_all).unwrap();
        assert_eq!(c.approvals.words, ["refund", "legal"]);
        assert_eq!(c.approvals.trainees, ["slack:U0NEW"]);
        assert_eq!(c.approvals.min_reach, Some(10_000));
        assert_eq!(c.approvals.min_priority, Some(crate::domain::Level::Urgent));
        assert_eq!(
            c.approvals.remind_after,
            Some(chrono::Duration::minutes(15))
        );
        assert_eq!(
            c.routes.default.sla.approval_reminder,
            Some(chrono::Duration::minutes(15))
        );
        for bad in [
            "trainees = [\"U0NEW\"]",
            "trainees = [\"discord:abc\"]",
            "words = [\" \"]",
            "remind_after_minutes = 100000",
            "min_priority = \"dire\"",
        ] {
            let text = format!("{GOOD}\n[approvals]\n{bad}\n");
            let err = parse(&text, &env_all).unwrap_err().to_string();
            let key = bad.split(' ').next().unwrap();
            assert!(err.contains(&format!("approvals.{key}")), "{bad}: {err}");
            let line = text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
            assert!(
                err.contains(&format!(":{line}")),
                "{bad} names line {line}: {err}"
            );
        }
    }

    #[test]
    fn slacks_pace_defaults_to_one_message_a_second_and_refuses_nonsense() {
        let c = parse(GOOD, &env_all).unwrap();
        let slack = c.slack.unwrap();
        assert_eq!((slack.messages_per_second, slack.message_burst), (1.0, 3));
        for bad in [
            "messages_per_second = 0",
            "messages_per_second = nan",
            "messages_per_second = 5000",
            "message_burst = 0",
        ] {
            let text = GOOD.replace("[slack]", &format!("[slack]\n{bad}"));
            let err = parse(&text, &env_all).unwrap_err().to_string();
            let key = bad.split(' ').next().unwrap();
            assert!(err.contains(&format!("slack.{key}")), "{bad}: {err}");
            assert!(err.contains(":"), "names the line: {err}");
        }
    }

    #[test]
    fn a_nan_poll_interval_is_a_config_error_not_a_panic() {
        let text = GOOD.replace(
            "access_token = \"${MASTODON_TOKEN}\"",
            "access_token = \"${MASTODON_TOKEN}\"\npoll_interval_secs = nan",
        );
        let err = parse(&text, &env_all).unwrap_err().to_string();
        assert!(err.contains("poll_interval_secs"), "{err}");
    }

    const BLUESKY: &str =
        "\n[bluesky]\nhandle = \"brand.bsky.social\"\napp_password = \"${BLUESKY_APP_PASSWORD}\"\n";

    #[test]
    fn jetstream_is_off_unless_asked_for_and_takes_its_defaults() {
        let c = parse(&format!("{GOOD}{BLUESKY}"), &env_all).unwrap();
        assert_eq!(c.bluesky.as_ref().unwrap().jetstream, None);

        let c = parse(&format!("{GOOD}{BLUESKY}jetstream = true\n"), &env_all).unwrap();
        assert_eq!(
            c.bluesky.unwrap().jetstream,
            Some(JetstreamConfig {
                url: DEFAULT_JETSTREAM_URL.into(),
                reconcile_every: Duration::from_secs(300),
                quiet: Duration::from_secs(30),
            })
        );

        let c = parse(
            &format!(
                "{GOOD}{BLUESKY}jetstream = true\njetstream_url = \"ws://127.0.0.1:6008/subscribe\"\n\
                 reconcile_secs = 30\nstream_quiet_secs = 1.5\n"
            ),
            &env_all,
        )
        .unwrap();
        let j = c.bluesky.unwrap().jetstream.unwrap();
        assert_eq!(j.url, "ws://127.0.0.1:6008/subscribe");
        assert_eq!(j.reconcile_every, Duration::from_secs(30));
        assert_eq!(j.quiet, Duration::from_millis(1500));
    }

    #[test]
    fn jetstream_mistakes_name_their_line_and_key_and_a_url_with_credentials_is_not_echoed() {
        let cases = [
            (
                "jetstream_url = \"https://jetstream.example/subscribe\"",
                "ws:// or wss://",
            ),
            ("jetstream_url = \"wss://\"", "ws:// or wss://"),
            (
                "jetstream_url = \"wss://me:CANARYpw@jetstream.example/subscribe\"",
                "credentials",
            ),
            (
                "jetstream_url = \"wss://jetstream.example/subscribe?cursor=1\"",
                "query",
            ),
            ("reconcile_secs = 10", "30 to 3600"),
            ("reconcile_secs = 4000", "30 to 3600"),
            ("reconcile_secs = nan", "30 to 3600"),
            ("stream_quiet_secs = 0", "1 to 600"),
            ("stream_quiet_secs = 601", "1 to 600"),
            ("stream_quiet_secs = inf", "1 to 600"),
        ];
        for (bad, needle) in cases {
            let text = format!("{GOOD}{BLUESKY}jetstream = true\n{bad}\n");
            let err = parse(&text, &env_all)
                .err()
                .unwrap_or_else(|| panic!("{bad} was accepted"))
                .to_string();
            let key = bad.split(' ').next().unwrap();
            let line = text.lines().position(|l| l == bad).unwrap() + 1;
            assert!(
                err.contains(&format!("bot-config.toml:{line}: `bluesky.{key}`")),
                "{bad}: {err}"
            );
            assert!(err.contains(needle), "{bad}: {err}");
            assert!(!err.contains("CANARYpw"), "the URL is echoed: {err}");
        }
        // A wrong type is a syntax error at its line, as for every other key.
        let text = format!("{GOOD}{BLUESKY}jetstream = \"yes\"\n");
        let err = parse(&text, &env_all).unwrap_err().to_string();
        let line = text
            .lines()
            .position(|l| l.starts_with("jetstream ="))
            .unwrap()
            + 1;
        assert!(err.contains(&format!("bot-config.toml:{line}")), "{err}");
    }

    #[test]
    fn mastodon_streams_by_default_and_its_intervals_keep_within_bounds() {
        let m = parse(GOOD, &env_all).unwrap().mastodon.unwrap();
        assert!(m.streaming);
        assert_eq!(m.reconcile_every, Duration::from_secs(300));
        assert_eq!(m.stream_quiet, Duration::from_secs(70));

        let with = |keys: &str| {
            GOOD.replace(
                "access_token = \"${MASTODON_TOKEN}\"",
                &format!("access_token = \"${{MASTODON_TOKEN}}\"\n{keys}"),
            )
        };
        let m = parse(
            &with("streaming = false\nreconcile_secs = 30\nstream_quiet_secs = 1"),
            &env_all,
        )
        .unwrap()
        .mastodon
        .unwrap();
        assert!(!m.streaming);
        assert_eq!(m.reconcile_every, Duration::from_secs(30));
        assert_eq!(m.stream_quiet, Duration::from_secs(1));

        for (keys, key, needle) in [
            (
                "reconcile_secs = 29",
                "reconcile_secs",
                "is 29: expected 30 to 3600 seconds",
            ),
            (
                "reconcile_secs = 3601",
                "reconcile_secs",
                "is 3601: expected 30 to 3600 seconds",
            ),
            (
                "stream_quiet_secs = 0",
                "stream_quiet_secs",
                "is 0: expected 1 to 600 seconds",
            ),
            (
                "stream_quiet_secs = 601",
                "stream_quiet_secs",
                "is 601: expected 1 to 600 seconds",
            ),
        ] {
            let text = with(keys);
            let err = parse(&text, &env_all).unwrap_err().to_string();
            let line = line_of(&text, keys);
            assert!(
                err.contains(&format!(
                    "bot-config.toml:{line}: `mastodon.{key}`: {needle}"
                )),
                "{keys}: {err}"
            );
        }
        // Not a whole number of seconds: the parser names the line.
        let text = with("stream_quiet_secs = -5");
        let err = parse(&text, &env_all).unwrap_err().to_string();
        let line = line_of(&text, "stream_quiet_secs = -5");
        assert!(err.contains(&format!("bot-config.toml:{line}:")), "{err}");
    }

    const X_SECTION: &str = "\n[x]\nuser_id = \"1500000000000000001\"\nauth = \"oauth1\"\nconsumer_key = \"${X_CONSUMER_KEY}\"\nconsumer_secret = \"${X_CONSUMER_SECRET}\"\naccess_token = \"${X_ACCESS_TOKEN}\"\naccess_token_secret = \"${X_ACCESS_TOKEN_SECRET}\"\ndaily_request_budget = 500\n";

    #[test]
    fn x_polls_only_unless_the_stream_is_asked_for_with_the_app_bearer_token() {
        let c = parse(&format!("{GOOD}{X_SECTION}"), &env_all).unwrap();
        assert!(c.x.unwrap().stream.is_none());

        let text =
            format!("{GOOD}{X_SECTION}stream = true\nbearer_token = \"${{X_BEARER_TOKEN}}\"\n");
        let stream = parse(&text, &env_all).unwrap().x.unwrap().stream.unwrap();
        assert_eq!(stream.bearer_token.expose(), "value-of-X_BEARER_TOKEN");
        assert_eq!(stream.reconcile_every, Duration::from_secs(900));
        assert_eq!(stream.quiet, Duration::from_secs(21));
        assert!(
            !format!("{stream:?}").contains("value-of"),
            "the token leaks into Debug"
        );

        let text = format!(
            "{GOOD}{X_SECTION}stream = true\nbearer_token = \"${{X_BEARER_TOKEN}}\"\nreconcile_secs = 60\nstream_quiet_secs = 600\n"
        );
        let stream = parse(&text, &env_all).unwrap().x.unwrap().stream.unwrap();
        assert_eq!(stream.reconcile_every, Duration::from_secs(60));
        assert_eq!(stream.quiet, Duration::from_secs(600));

        // A bearer token without the stream is not even looked up.
        let text = format!("{GOOD}{X_SECTION}bearer_token = \"${{UNSET}}\"\n");
        let env = |var: &str| (var != "UNSET").then(|| format!("value-of-{var}"));
        assert!(parse(&text, &env).unwrap().x.unwrap().stream.is_none());
    }

    #[test]
    fn x_stream_mistakes_name_their_line_and_key_and_never_echo_the_token() {
        let base = format!("{GOOD}{X_SECTION}");
        for (keys, at, key, needle) in [
            (
                "stream = true",
                "stream = true",
                "x.bearer_token",
                "stream = true needs `bearer_token`",
            ),
            (
                "stream = true\nbearer_token = \"CANARYliteral\"",
                "bearer_token = \"CANARYliteral\"",
                "x.bearer_token",
                "secrets must come from the environment",
            ),
            (
                "stream = true\nbearer_token = \"${X_BEARER_TOKEN}\"\nreconcile_secs = 59",
                "reconcile_secs = 59",
                "x.reconcile_secs",
                "is 59: expected 60 to 86400 seconds",
            ),
            (
                "stream = true\nbearer_token = \"${X_BEARER_TOKEN}\"\nreconcile_secs = 86401",
                "reconcile_secs = 86401",
                "x.reconcile_secs",
                "is 86401: expected 60 to 86400 seconds",
            ),
            (
                "stream = true\nbearer_token = \"${X_BEARER_TOKEN}\"\nstream_quiet_secs = 0",
                "stream_quiet_secs = 0",
                "x.stream_quiet_secs",
                "is 0: expected 1 to 600 seconds",
            ),
            (
                "stream = true\nbearer_token = \"${X_BEARER_TOKEN}\"\nstream_quiet_secs = 601",
                "stream_quiet_secs = 601",
                "x.stream_quiet_secs",
                "is 601: expected 1 to 600 seconds",
            ),
        ] {
            let text = format!("{base}{keys}\n");
            let err = parse(&text, &env_all).unwrap_err().to_string();
            let line = line_of(&text, at);
            assert!(
                err.contains(&format!("bot-config.toml:{line}: `{key}`: {needle}")),
                "{keys}: {err}"
            );
            assert!(
                !err.contains("CANARY"),
                "the literal token is echoed: {err}"
            );
        }
        // Set but empty in the environment.
        let text = format!("{base}stream = true\nbearer_token = \"${{EMPTY}}\"\n");
        let env = |var: &str| {
            Some(if var == "EMPTY" {
                String::new()
            } else {
                format!("value-of-{var}")
            })
        };
        let err = parse(&text, &env).unwrap_err().to_string();
        assert!(
            err.contains("`x.bearer_token`: ${EMPTY} is set but empty"),
            "{err}"
        );
    }

    #[test]
    fn a_hashtag_that_would_change_a_request_path_is_refused() {
        let text = GOOD.replace(
            "access_token = \"${MASTODON_TOKEN}\"",
            "access_token = \"${MASTODON_TOKEN}\"\nhashtags = [\"brand\", \"../admin\"]",
        );
        let err = parse(&text, &env_all).unwrap_err().to_string();
        assert!(
            err.contains("mastodon.hashtags") && err.contains("../admin"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_value_names_file_line_and_key() {
        let text = GOOD.replace("\"C0SUPPORT\"", "\"#support\"");
        let err = parse(&text, &env_all).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "/etc/mb/bot-config.toml:8: `slack.channel`: expected a Slack channel id"
            ),
            "{err}"
        );
    }

    #[test]
    fn syntax_and_unknown_keys_name_the_line() {
        let text = GOOD.replace("channel = ", "chanel = ");
        let err = parse(&text, &env_all).unwrap_err().to_string();
        assert!(err.starts_with("/etc/mb/bot-config.toml:8:"), "{err}");
        assert!(err.contains("unknown field `chanel`"), "{err}");
        let err = parse("[store\npath=1", &env_all).unwrap_err().to_string();
        assert!(err.starts_with("/etc/mb/bot-config.toml:1:"), "{err}");
    }

    #[test]
    fn literal_secrets_and_bad_urls_are_refused_without_echoing_the_secret() {
        let text = GOOD
            .replace("\"${MASTODON_TOKEN}\"", "\"abc123secret\"")
            .replace("https://social.example/", "social.example");
        let err = parse(&text, &env_all).unwrap_err().to_string();
        assert!(
            err.contains(":13: `mastodon.access_token`: secrets must come from the environment"),
            "{err}"
        );
        assert!(
            err.contains(":12: `mastodon.instance_url`: expected an http(s) URL"),
            "{err}"
        );
        assert!(!err.contains("abc123secret"), "{err}");
    }

    #[test]
    fn discord_alone_is_a_complete_desk_and_its_ids_are_checked() {
        let discord_only = GOOD[..GOOD.find("[slack]").unwrap()].to_string()
            + r#"
[discord]
bot_token = "${DISCORD_BOT_TOKEN}"
guild_id = "1100000000000000001"
channel_id = "1100000000000000002"
agent_role_ids = ["1100000000000000003"]

[mastodon]
instance_url = "https://social.example/"
access_token = "${MASTODON_TOKEN}"
"#;
        let c = parse(&discord_only, &env_all).unwrap();
        assert!(c.slack.is_none());
        let d = c.discord.unwrap();
        assert_eq!(d.api_url, "https://discord.com/api/v10");
        assert_eq!(d.mode, DiscordMode::Gateway);

        let bad = discord_only
            .replace("\"1100000000000000002\"", "\"#support\"")
            .replace("[discord]\n", "[discord]\nmode = \"http\"\n");
        let err = parse(&bad, &env_all).unwrap_err().to_string();
        assert!(
            err.contains(":10: `discord.channel_id`: expected a Discord id"),
            "{err}"
        );
        assert!(
            err.contains("`discord.mode`: http mode needs `public_key`"),
            "{err}"
        );

        let none = GOOD[..GOOD.find("[slack]").unwrap()].to_string()
            + "[mastodon]\ninstance_url = \"https://social.example\"\naccess_token = \"${MASTODON_TOKEN}\"\n";
        let err = parse(&none, &env_all).unwrap_err().to_string();
        assert!(err.contains("no chat surface configured"), "{err}");
    }

    #[test]
    fn socket_mode_needs_an_app_token() {
        let text = GOOD.replace("app_token = \"${SLACK_APP_TOKEN}\"\n", "");
        let err = parse(&text, &env_all).unwrap_err().to_string();
        assert!(
            err.contains("`slack.mode`: socket mode needs `app_token`"),
            "{err}"
        );
    }

    /// Two routes and the default route's own `[sla]` and `[oncall]` keys, after `GOOD`.
    const ROUTES: &str = r#"
[sla]
first_response_minutes = 90
warn_at = 0.5
resolution_hours = 8

[oncall]
handoff_digest = false
release_claims_at_handoff = true
off_hours_ack = "Thanks {author}! {brand} is back {expected}."

[[oncall.rotation]]
name = "emea"
time_zone = "Europe/Berlin"
members = ["slack:U0ANA"]
shifts = [{ days = ["mon-fri"], start = "09:00", end = "17:00" }]

[[route]]
name = "billing"
platforms = ["Mastodon", "bluesky"]
languages = ["DE", "pt-BR"]
keywords = ["Refund", "INVOICE"]
page = false
rotations = ["emea"]
off_hours_ack = "Billing answers {expected}."

[route.sla]
first_response_minutes = 30
escalate_unclaimed_after_minutes = [5, 10]

[[route]]
name = "vip"
keywords = ["urgent"]
"#;

    fn routed() -> String {
        format!("{GOOD}{ROUTES}")
    }

    /// The 1-based line numbers of the lines reading exactly `line` (trimmed).
    fn lines_of(text: &str, line: &str) -> Vec<usize> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| l.trim() == line)
            .map(|(i, _)| i + 1)
            .collect()
    }

    /// The line number of the only line reading `line`.
    /// `text` is refused with one problem about `key` at the line reading `line`, saying
    /// `message`.
    pub(super) fn assert_refused_at(text: &str, line: &str, key: &str, message: &str) {
        let err = parse(text, &env_all).unwrap_err().to_string();
        let want = format!("/etc/mb/bot-config.toml:{}: `{key}`: ", line_of(text, line));
        assert!(
            err.starts_with(&want),
            "{line}: expected {want:?}, got:\n{err}"
        );
        assert!(err.contains(message), "{line}: {err}");
    }

    pub(super) fn line_of(text: &str, line: &str) -> usize {
        match lines_of(text, line)[..] {
            [n] => n,
            ref found => panic!("{line:?} is on lines {found:?}, expected exactly one"),
        }
    }

    fn minutes(m: i64) -> chrono::Duration {
        chrono::Duration::minutes(m)
    }

    #[test]
    fn routes_keep_their_own_targets_and_take_the_rest_from_the_sla_section() {
        let c = parse(&routed(), &env_all).unwrap();
        let names: Vec<_> = c.routes.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["billing", "vip"]);

        let default = &c.routes.default;
        assert_eq!(default.name, DEFAULT_ROUTE);
        assert_eq!(default.sla.first_response, minutes(90));
        assert_eq!(default.sla.warn_at, 0.5);
        assert_eq!(default.sla.resolution, Some(chrono::Duration::hours(8)));
        assert_eq!(
            default.off_hours_ack.as_deref(),
            Some("Thanks {author}! {brand} is back {expected}.")
        );

        let billing = &c.routes.routes[0];
        assert_eq!(
            billing.sla.first_response,
            minutes(30),
            "its own target wins"
        );
        assert_eq!(billing.sla.warn_at, 0.5, "inherited from [sla]");
        assert_eq!(billing.sla.resolution, Some(chrono::Duration::hours(8)));
        assert_eq!(
            billing.sla.unclaimed_escalation,
            vec![minutes(5), minutes(10)]
        );
        assert_eq!(
            billing.sla.idle_claim_reminder,
            SlaPolicy::default().idle_claim_reminder
        );
        assert_eq!(
            billing.platforms,
            vec![Platform::Mastodon, Platform::Bluesky]
        );
        assert_eq!(billing.languages, ["de", "pt-br"]);
        assert_eq!(billing.keywords, ["refund", "invoice"]);
        assert!(!billing.page);
        assert_eq!(billing.rotations, ["emea"]);
        assert_eq!(
            billing.off_hours_ack.as_deref(),
            Some("Billing answers {expected}.")
        );

        let vip = &c.routes.routes[1];
        assert_eq!(
            vip.sla, default.sla,
            "a route without [route.sla] is the default's"
        );
        assert!(vip.page, "page follows [oncall] page_new_tickets");
        assert!(vip.platforms.is_empty() && vip.rotations.is_empty());
        assert_eq!(vip.off_hours_ack, None);

        assert!(!c.handoff_digest);
        assert!(c.release_claims_at_handoff);
    }

    #[test]
    fn without_routes_every_mention_takes_the_default_route_and_hand_offs_keep_claims() {
        let c = parse(GOOD, &env_all).unwrap();
        assert!(c.routes.routes.is_empty());
        assert_eq!(c.routes.default.sla, SlaPolicy::default());
        assert_eq!(c.routes.default.off_hours_ack, None);
        assert!(c.handoff_digest);
        assert!(!c.release_claims_at_handoff);
    }

    #[test]
    fn route_and_sla_mistakes_name_the_key_and_its_line() {
        let good = routed();
        // (what the mistake is, the file with it, the line it is on, the key, the message)
        let cases: Vec<(&str, String, usize, &str, &str)> = {
            let with = |from: &str, to: &str| {
                assert!(good.contains(from), "{from:?} is not in the test file");
                good.replacen(from, to, 1)
            };
            let dup = with("name = \"vip\"", "name = \"billing\"");
            let dup_line = lines_of(&dup, "name = \"billing\"")[1];
            let default = with("name = \"vip\"", "name = \"default\"");
            let default_line = line_of(&default, "name = \"default\"");
            let platform = with("\"bluesky\"]", "\"myspace\"]");
            let platform_line = line_of(&platform, "platforms = [\"Mastodon\", \"myspace\"]");
            let rotation = with("rotations = [\"emea\"]", "rotations = [\"apac\"]");
            let rotation_line = line_of(&rotation, "rotations = [\"apac\"]");
            let warn = with(
                "first_response_minutes = 30\n",
                "first_response_minutes = 30\nwarn_at = 1.5\n",
            );
            let warn_line = line_of(&warn, "warn_at = 1.5");
            let falling = with("[5, 10]", "[30, 15]");
            let falling_line = line_of(&falling, "escalate_unclaimed_after_minutes = [30, 15]");
            let release = with(
                "first_response_minutes = 30\n",
                "first_response_minutes = 30\nremind_idle_claim_minutes = 30\nrelease_idle_claim_minutes = 30\n",
            );
            let release_line = line_of(&release, "release_idle_claim_minutes = 30");
            let ack = with("Billing answers {expected}.", "Billing answers {name}.");
            let ack_line = line_of(&ack, "off_hours_ack = \"Billing answers {name}.\"");
            let sla_warn = with("warn_at = 0.5", "warn_at = 1.5");
            let sla_warn_line = line_of(&sla_warn, "warn_at = 1.5");
            let oncall_ack = with("Thanks {author}!", "Thanks {name}!");
            let oncall_ack_line = line_of(
                &oncall_ack,
                "off_hours_ack = \"Thanks {name}! {brand} is back {expected}.\"",
            );
            vec![
                (
                    "a name used twice",
                    dup,
                    dup_line,
                    "route[1].name",
                    "expected a unique route name",
                ),
                (
                    "the reserved name",
                    default,
                    default_line,
                    "route[1].name",
                    "other than \"default\"",
                ),
                (
                    "an unknown platform",
                    platform,
                    platform_line,
                    "route[0].platforms",
                    "\"myspace\" is not a platform",
                ),
                (
                    "an unknown rotation",
                    rotation,
                    rotation_line,
                    "route[0].rotations",
                    "there is no [[oncall.rotation]] named \"apac\"",
                ),
                (
                    "a share above 1",
                    warn,
                    warn_line,
                    "route[0].sla.warn_at",
                    "found 1.5",
                ),
                (
                    "falling levels",
                    falling,
                    falling_line,
                    "route[0].sla.escalate_unclaimed_after_minutes",
                    "expected rising minutes",
                ),
                (
                    "release no later than remind",
                    release,
                    release_line,
                    "route[0].sla.release_idle_claim_minutes",
                    "must be longer than remind_idle_claim_minutes",
                ),
                (
                    "an unknown variable",
                    ack,
                    ack_line,
                    "route[0].off_hours_ack",
                    "unknown variables: {name}",
                ),
                (
                    "a share above 1 in [sla]",
                    sla_warn,
                    sla_warn_line,
                    "sla.warn_at",
                    "found 1.5",
                ),
                (
                    "an unknown variable in [oncall]",
                    oncall_ack,
                    oncall_ack_line,
                    "oncall.off_hours_ack",
                    "unknown variables: {name}",
                ),
            ]
        };
        for (what, text, line, key, message) in cases {
            let err = parse(&text, &env_all).unwrap_err().to_string();
            let want = format!("/etc/mb/bot-config.toml:{line}: `{key}`: ");
            assert!(
                err.starts_with(&want),
                "{what}: expected {want:?}…, got:\n{err}"
            );
            assert!(
                err.contains(message),
                "{what}: expected {message:?} in:\n{err}"
            );
            assert_eq!(
                err.lines().count(),
                1,
                "{what}: one mistake, one problem:\n{err}"
            );
        }
    }

    #[test]
    fn an_unknown_key_in_a_route_is_a_syntax_error_on_its_line() {
        for (from, to, unknown) in [
            ("page = false", "pager = false", "pager"),
            (
                "first_response_minutes = 30",
                "first_response_mins = 30",
                "first_response_mins",
            ),
        ] {
            let text = routed().replacen(from, to, 1);
            let err = parse(&text, &env_all).unwrap_err().to_string();
            let line = line_of(&text, to);
            assert!(
                err.starts_with(&format!("/etc/mb/bot-config.toml:{line}:")),
                "expected line {line}:\n{err}"
            );
            assert!(err.contains(&format!("unknown field `{unknown}`")), "{err}");
        }
    }

    #[test]
    fn agents_link_accounts_and_their_mistakes_name_the_entry_line_and_key() {
        let linked = format!(
            "{GOOD}\n[[agents]]\nname = \"Kim\"\nslack = \"U0KIM\"\ndiscord = \"1200000000000000009\"\n"
        );
        let config = parse(&linked, &env_all).unwrap();
        assert!(config
            .agents
            .same("slack:U0KIM", "discord:1200000000000000009"));
        // On-call lists follow the person.
        assert_eq!(config.oncall.agents, config.agents);

        let bad = format!(
            "{linked}\n[[agents]]\nname = \"Lee\"\nslack = \"lee\"\n\n[[agents]]\nname = \"Mo\"\ndiscord = \"1200000000000000009\"\n"
        );
        let err = parse(&bad, &env_all).unwrap_err().to_string();
        let line_of = |needle: &str| 1 + bad.lines().position(|l| l == needle).unwrap();
        assert!(
            err.contains(&format!(
                "bot-config.toml:{}: `agents[1].slack`: expected a Slack user id",
                line_of("slack = \"lee\"")
            )),
            "{err}"
        );
        let second_discord = 1 + bad
            .lines()
            .enumerate()
            .filter(|(_, l)| *l == "discord = \"1200000000000000009\"")
            .nth(1)
            .unwrap()
            .0;
        assert!(
            err.contains(&format!(
                "bot-config.toml:{second_discord}: `agents[2].discord`: 1200000000000000009 is already \"Kim\"'s account"
            )),
            "{err}"
        );
        // An [[agents]] entry is an agent: a surface needs no other list.
        let only_linked = linked.replace("agent_user_ids = [\"U0ANA\"]\n", "");
        assert!(parse(&only_linked, &env_all).is_ok());
    }

    #[test]
    fn author_name_is_a_known_variable_everywhere() {
        let text = format!(
            "{GOOD}\n[oncall]\noff_hours_ack = \"{{author}} hi {{author_name}}\"\n\n[[canned]]\nid = \"hi\"\ntitle = \"Hi\"\ntext = \"Hi {{author_name}} ({{author}})\"\n"
        );
        let parsed = parse(&text, &env_all);
        assert!(parsed.is_ok(), "{:?}", parsed.err().map(|e| e.to_string()));
        let unknown = text.replace("{author_name}", "{author_nam}");
        let err = parse(&unknown, &env_all).unwrap_err().to_string();
        assert!(err.contains("unknown variables"), "{err}");
    }
}
