//! Runs the real `mentionbridge` binary against the fakes, with a config written into a
//! temporary directory that survives restarts of the bot (so the sled store does too).

use crate::fakes::discord::FakeDiscord;
use crate::fakes::mastodon::FakeMastodon;
use crate::fakes::slack::{FakeSlack, SlackMessage};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub const CHANNEL: &str = "C0SUPPORT";
pub const ANA: &str = "U0ANA";
pub const BEN: &str = "U0BEN";
/// In the channel, but not an agent.
pub const EVE: &str = "U0EVE";
/// An agent only through the agents' user group.
pub const GIA: &str = "U0GIA";
pub const AGENT_GROUP: &str = "S0AGENTS";
pub const SIGNING_SECRET: &str = "test-signing-secret-CANARY1d1f1dcb44335224";
pub const WAIT: Duration = Duration::from_secs(15);

/// How a surface reaches the bot: its own websocket (Slack Socket Mode, Discord gateway)
/// or signed HTTP requests to the bot's server.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Socket,
    Http,
}

/// Discord people and roles (snowflakes), mirroring Ana, Ben and Eve on Slack.
pub const D_ANA: &str = "1200000000000000001";
pub const D_BEN: &str = "1200000000000000002";
pub const D_EVE: &str = "1200000000000000003";
/// Members with this role are agents (Ana has it; Ben is listed by user id).
pub const D_SUPPORT_ROLE: &str = "1300000000000000001";
pub const D_OTHER_ROLE: &str = "1300000000000000002";
pub const D_CHANNEL: &str = crate::fakes::discord::DEFAULT_CHANNEL;

pub struct World {
    pub mastodon: FakeMastodon,
    pub slack: FakeSlack,
    pub discord: FakeDiscord,
    pub dir: tempfile::TempDir,
    /// Which surfaces the bot is configured with, and how each reaches it.
    pub slack_mode: Option<Mode>,
    pub discord_mode: Option<Mode>,
    pub http_port: u16,
    /// More config sections (e.g. `[bluesky]` pointing at a fake), set before the bot
    /// first starts.
    pub extra_config: std::sync::Mutex<String>,
    /// Lines added to the `[mastodon]` section (e.g. `hashtags = ["brand"]`).
    pub mastodon_extra: std::sync::Mutex<String>,
    /// Lines added to the `[slack]` section. By default the desk posts at a pace the
    /// fake keeps up with (tests not about pacing post many cards at once); a test of
    /// Slack's pace empties it, so the desk keeps its own default pace.
    pub slack_extra: std::sync::Mutex<String>,
    /// Page the on-call agents about new tickets (off by default so threads stay quiet).
    pub page_on_call: std::sync::atomic::AtomicBool,
    /// Replaces the default `[oncall]` section (one always-on rotation) when set.
    pub oncall_config: std::sync::Mutex<Option<String>>,
    /// Replaces the default `[store]` section (sled in the world's directory) when set,
    /// e.g. with a PostgreSQL database that several replicas share.
    pub store_config: std::sync::Mutex<Option<String>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl World {
    /// The running bot's `/metrics` page, as text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.http_port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A Slack team (Socket Mode).
    pub async fn new() -> World {
        Self::with(Some(Mode::Socket), None).await
    }

    /// A Discord team (gateway).
    pub async fn discord() -> World {
        Self::with(None, Some(Mode::Socket)).await
    }

    /// A team working in both.
    pub async fn both() -> World {
        Self::with(Some(Mode::Socket), Some(Mode::Socket)).await
    }

    pub async fn with_mode(mode: Mode) -> World {
        Self::with(Some(mode), None).await
    }

    pub async fn with(slack_mode: Option<Mode>, discord_mode: Option<Mode>) -> World {
        let slack = FakeSlack::start().await;
        slack.set_usergroup(AGENT_GROUP, &[GIA]);
        World {
            mastodon: FakeMastodon::start().await,
            slack,
            discord: FakeDiscord::start().await,
            dir: tempfile::tempdir().unwrap(),
            slack_mode,
            discord_mode,
            http_port: free_port(),
            extra_config: std::sync::Mutex::new(String::new()),
            mastodon_extra: std::sync::Mutex::new(String::new()),
            slack_extra: std::sync::Mutex::new(
                "messages_per_second = 200\nmessage_burst = 100".into(),
            ),
            page_on_call: std::sync::atomic::AtomicBool::new(false),
            oncall_config: std::sync::Mutex::new(None),
            store_config: std::sync::Mutex::new(None),
        }
    }

    /// Slack as this world's team reaches the bot (Socket Mode unless set to HTTP).
    pub fn slack_driver(&self) -> crate::drivers::SlackDriver {
        let mode = self.slack_mode.unwrap_or(Mode::Socket);
        crate::drivers::SlackDriver::new(self.slack.clone(), mode, self.http_port)
    }

    /// Discord as this world's team reaches the bot (the gateway unless set to HTTP).
    pub fn discord_driver(&self) -> crate::drivers::DiscordDriver {
        let mode = self.discord_mode.unwrap_or(Mode::Socket);
        crate::drivers::DiscordDriver::new(self.discord.clone(), mode, self.http_port)
    }

    pub fn config_text(&self) -> String {
        let mode = |m: Mode, socket: &str| {
            if m == Mode::Socket {
                socket.to_string()
            } else {
                "http".to_string()
            }
        };
        let mut text = format!(
            r#"
brand = "BrandCo"

[[canned]]
id = "refund"
title = "Refund on its way"
language = "en"
text = "Hi {{author}}, your refund is on its way. {{agent}}, {{brand}} (ticket {{ticket}})"

[[canned]]
id = "tak"
title = "Tak for din besked"
language = "da"
text = "Tak, {{author}}!"

{oncall}
{store}

[http]
listen = "127.0.0.1:{port}"

[mastodon]
instance_url = "{mastodon}"
access_token = "${{TEST_MASTODON_TOKEN}}"
initial_backfill = 20
{mastodon_extra}

[outbox]
max_backoff_secs = 5
"#,
            port = self.http_port,
            mastodon = self.mastodon.url(),
            mastodon_extra = {
                // Quick polls, unless the test sets its own.
                let extra = self.mastodon_extra.lock().unwrap();
                if extra.contains("poll_interval_secs") {
                    extra.clone()
                } else {
                    format!("poll_interval_secs = 0.2\n{extra}")
                }
            },
            store = self
                .store_config
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| "[store]\npath = \"store.sled\"\n".to_string()),
            oncall = self
                .oncall_config
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| format!(
                    r#"[oncall]
page_new_tickets = {page}

[[oncall.rotation]]
name = "everyone"
time_zone = "Asia/Kolkata"
members = ["slack:{ANA}", "discord:{D_ANA}"]
shifts = [
    {{ days = ["mon-sun"], start = "00:00", end = "12:00" }},
    {{ days = ["mon-sun"], start = "12:00", end = "00:00" }},
]"#,
                    page = self.page_on_call.load(std::sync::atomic::Ordering::SeqCst),
                )),
        );
        if let Some(m) = self.slack_mode {
            text.push_str(&format!(
                r#"
[slack]
mode = "{mode}"
api_url = "{slack_api}"
bot_token = "${{TEST_SLACK_BOT_TOKEN}}"
app_token = "${{TEST_SLACK_APP_TOKEN}}"
signing_secret = "${{TEST_SLACK_SIGNING_SECRET}}"
channel = "{CHANNEL}"
agent_user_ids = ["{ANA}", "{BEN}"]
agent_usergroup = "{AGENT_GROUP}"
{extra}
"#,
                mode = mode(m, "socket"),
                slack_api = self.slack.api_url(),
                extra = self.slack_extra.lock().unwrap(),
            ));
        }
        if let Some(m) = self.discord_mode {
            text.push_str(&format!(
                r#"
[discord]
mode = "{mode}"
api_url = "{discord_api}"
bot_token = "${{TEST_DISCORD_BOT_TOKEN}}"
public_key = "{public_key}"
guild_id = "{guild}"
channel_id = "{D_CHANNEL}"
agent_role_ids = ["{D_SUPPORT_ROLE}"]
agent_user_ids = ["{D_BEN}"]
"#,
                mode = mode(m, "gateway"),
                discord_api = self.discord.api_url(),
                public_key = crate::fakes::discord::public_key_hex(),
                guild = crate::fakes::discord::GUILD_ID,
            ));
        }
        text.push_str(&self.extra_config.lock().unwrap());
        text
    }

    /// The desk's clock file (the `MENTIONBRIDGE_CLOCK_FILE` test hook).
    pub fn clock_file(&self) -> PathBuf {
        self.dir.path().join("clock.txt")
    }

    /// Move the desk's clock (atomically, so the bot never reads half a time).
    pub fn set_clock(&self, at: chrono::DateTime<chrono::Utc>) {
        let tmp = self.dir.path().join("clock.tmp");
        std::fs::write(&tmp, at.to_rfc3339()).unwrap();
        std::fs::rename(&tmp, self.clock_file()).unwrap();
    }

    pub fn config_path(&self) -> PathBuf {
        let path = self.dir.path().join("bot-config.toml");
        if !path.exists() {
            std::fs::write(&path, self.config_text()).unwrap();
        }
        path
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mentionbridge"));
        cmd.env("TEST_SLACK_BOT_TOKEN", self.slack.bot_token())
            .env("TEST_SLACK_APP_TOKEN", self.slack.app_token())
            .env("TEST_SLACK_SIGNING_SECRET", SIGNING_SECRET)
            .env("TEST_MASTODON_TOKEN", self.mastodon.token())
            .env("TEST_DISCORD_BOT_TOKEN", self.discord.token())
            .env("MENTIONBRIDGE_LOG", "info,mentionbridge=debug")
            .env_remove("MENTIONBRIDGE_FAILPOINT")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Start the bot and wait until it listens (Socket Mode connected, or HTTP bound).
    pub async fn start_bot(&self) -> Bot {
        self.start_bot_with(&[]).await
    }

    pub async fn start_bot_with(&self, env: &[(&str, &str)]) -> Bot {
        let config = self.config_path();
        self.start_bot_on(&config, env).await
    }

    /// Start replica `n` of a desk whose store is shared (see `store_config`): the same
    /// config, but its own HTTP port.
    pub async fn start_replica(&self, n: usize, env: &[(&str, &str)]) -> Bot {
        let path = self.dir.path().join(format!("bot-config-replica-{n}.toml"));
        let text = self.config_text().replace(
            &format!("listen = \"127.0.0.1:{}\"", self.http_port),
            &format!("listen = \"127.0.0.1:{}\"", free_port()),
        );
        std::fs::write(&path, text).unwrap();
        self.start_bot_on(&path, env).await
    }

    async fn start_bot_on(&self, config: &std::path::Path, env: &[(&str, &str)]) -> Bot {
        let log = self
            .dir
            .path()
            .join(format!("bot-{}.log", crate::fakes::uuid_like()));
        let mut cmd = self.command();
        cmd.arg("run").arg("--config").arg(config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // Both streams into one file (one shared offset), scanned for secrets on drop.
        let out = std::fs::File::create(&log).unwrap();
        cmd.stdout(out.try_clone().unwrap()).stderr(out);
        let slack_before = self.slack.connections();
        let discord_before = self.discord.ready_count();
        let child = cmd.spawn().expect("the bot binary starts");
        let http_port = std::fs::read_to_string(config)
            .ok()
            .and_then(|text| {
                let at = text.find("listen = \"127.0.0.1:")? + "listen = \"127.0.0.1:".len();
                text[at..].split('"').next()?.parse().ok()
            })
            .unwrap_or(self.http_port);
        let bot = Bot {
            child,
            log,
            http_port,
        };
        if self.slack_mode == Some(Mode::Socket) {
            let slack = self.slack.clone();
            bot.wait_or_dump(WAIT, "Slack Socket Mode connection", move || {
                slack.open_connections() >= 1 && slack.connections() > slack_before
            })
            .await;
        }
        if self.discord_mode == Some(Mode::Socket) {
            let discord = self.discord.clone();
            bot.wait_or_dump(WAIT, "Discord gateway READY", move || {
                discord.ready_count() > discord_before
            })
            .await;
        }
        if self.discord_mode.is_some() {
            let discord = self.discord.clone();
            bot.wait_or_dump(WAIT, "the /mentions guild command", move || {
                !discord
                    .guild_commands(crate::fakes::discord::GUILD_ID)
                    .is_empty()
            })
            .await;
        }
        if [self.slack_mode, self.discord_mode].contains(&Some(Mode::Http)) {
            bot.wait_for_log("HTTP server listening", WAIT).await;
        }
        bot
    }

    /// The card of the `n`th ticket (1-based), once it is posted.
    pub async fn card(&self, n: usize) -> SlackMessage {
        self.slack_driver()
            .card_message(n, &format!("card #{n}"))
            .await
    }

    pub fn cards(&self) -> Vec<SlackMessage> {
        self.slack_driver().card_messages()
    }

    /// A fresh view of a card (after updates).
    pub fn card_now(&self, card: &SlackMessage) -> SlackMessage {
        self.slack
            .message(CHANNEL, &card.ts)
            .expect("card still exists")
    }

    pub async fn wait_card_text(&self, card: &SlackMessage, needle: &str) -> SlackMessage {
        let ts = card.ts.clone();
        self.slack
            .wait_until(WAIT, &format!("card {ts} to show {needle:?}"), |s| {
                s.message(CHANNEL, &ts)
                    .is_some_and(|m| blocks_text(&m).contains(needle))
            })
            .await;
        self.card_now(card)
    }

    /// Press a card's button as `user` (through the Slack driver); returns the answer.
    pub async fn press(&self, card: &SlackMessage, user: &str, action_id: &str) -> Value {
        self.slack_driver()
            .press_as(&card.ts, user, &user.to_lowercase(), action_id)
            .await
    }

    /// Press Reply, wait for the modal, submit `text`; returns the submission's answer.
    pub async fn reply_via_modal(&self, card: &SlackMessage, user: &str, text: &str) -> Value {
        let values = json!({"reply": {"text": {"type": "plain_text_input", "value": text}}});
        self.slack_driver()
            .submit_form_on(&card.ts, user, &user.to_lowercase(), "mb_reply", values)
            .await
    }

    pub async fn wait_ephemeral(&self, user: &str, needle: &str) -> String {
        self.slack
            .wait_until(
                WAIT,
                &format!("an ephemeral to {user} saying {needle:?}"),
                |s| {
                    s.ephemerals()
                        .iter()
                        .any(|e| e["user"] == user && e.to_string().contains(needle))
                },
            )
            .await;
        self.slack
            .ephemerals()
            .into_iter()
            .rev()
            .find(|e| e["user"] == user)
            .map(|e| e["text"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    }
}

pub fn ticket_of(card: &SlackMessage) -> u64 {
    card.metadata.as_ref().unwrap()["event_payload"]["ticket_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Everything a person can read on a card, flattened.
pub fn blocks_text(card: &SlackMessage) -> String {
    card.blocks
        .as_ref()
        .map(crate::drivers::json_text)
        .unwrap_or_default()
}

/// The action ids of a card's buttons.
pub fn buttons(card: &SlackMessage) -> Vec<String> {
    let mut ids = Vec::new();
    for block in card
        .blocks
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for el in block["elements"].as_array().into_iter().flatten() {
            if el["type"] != "button" {
                continue;
            }
            if let Some(id) = el["action_id"].as_str() {
                ids.push(id.to_string());
            }
        }
    }
    ids
}

/// Lines of `output` that show a secret: one of the canaries the fakes and the harness
/// hand out, or a request signature the fakes computed. Each comes back redacted (the
/// canary's random part and the signature replaced), so the report does not repeat it.
pub fn canary_leaks(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| {
            let redacted = redact_secrets(line);
            (redacted != line).then_some(redacted)
        })
        .collect()
}

fn redact_secrets(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some((start, end, kind)) = next_secret(rest) {
        out.push_str(&rest[..start]);
        out.push_str(kind);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The first secret in `s`: its byte span and what to show instead.
fn next_secret(s: &str) -> Option<(usize, usize, &'static str)> {
    let canary = s.find(crate::fakes::CANARY).map(|at| {
        let tail = &s[at + crate::fakes::CANARY.len()..];
        let len = tail
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tail.len());
        (
            at,
            at + crate::fakes::CANARY.len() + len,
            "CANARY[redacted]",
        )
    });
    // Signatures are hex (Slack and the webhook 64 digits, Discord 128).
    let mut signature = None;
    let mut run = None;
    for (i, c) in s.char_indices().chain([(s.len(), ' ')]) {
        match (c.is_ascii_hexdigit(), run) {
            (true, None) => run = Some(i),
            (false, Some(start)) => {
                if i - start >= 64 && crate::fakes::is_known_signature(&s[start..i]) {
                    signature = Some((start, i, "[signature redacted]"));
                    break;
                }
                run = None;
            }
            _ => {}
        }
    }
    match (canary, signature) {
        (Some(c), Some(g)) => Some(if c.0 <= g.0 { c } else { g }),
        (c, g) => c.or(g),
    }
}

/// Fails the test when `output` (what a process wrote) shows a secret.
pub fn assert_no_secrets(what: &str, output: &str) {
    let leaks = canary_leaks(output);
    if leaks.is_empty() {
        return;
    }
    let report = format!(
        "{what} wrote {} line(s) with a secret in them:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    // A second panic while unwinding would abort the whole test binary.
    if std::thread::panicking() {
        eprintln!("{report}");
    } else {
        panic!("{report}");
    }
}

pub struct Bot {
    child: Child,
    log: PathBuf,
    /// Where its HTTP server listens (`/healthz`, `/metrics`).
    pub http_port: u16,
}

/// Every bot process is also a secret scan: once it has stopped, every line it wrote is
/// searched for the canaries.
impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        // Wait (briefly) for the exit, so the last lines are in the file too.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_no_secrets("the bot", &self.log());
    }
}

impl Bot {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_or_dump(&self, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !cond() {
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; bot log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let log = self.log.clone();
        self.wait_or_dump(timeout, &format!("{needle:?} in the bot log"), || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(needle)
        })
        .await;
    }

    /// Where its log goes (for a test that prints the logs of several bots on failure).
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// The process id, for signals the harness has no method for (SIGSTOP, SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("bot is running")
    }

    /// Send `signal` (e.g. "STOP", "CONT") to the bot.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL the bot");
    }

    /// SIGTERM, then wait for a graceful exit.
    pub async fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().expect("bot is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("bot exits within 30 s of SIGTERM")
            .unwrap();
        (exit, self.log())
    }
}

#[cfg(test)]
mod leak_scan {
    use super::*;

    #[test]
    fn the_scan_finds_canaries_and_signatures_and_redacts_them() {
        let minted = crate::fakes::canary();
        let signature = crate::fakes::slack::sign_request(SIGNING_SECRET, "1", "body");
        let hex = signature.trim_start_matches("v0=");
        let output = format!(
            "INFO fine line\n\
             DEBUG token=xoxb-test-{minted} sent\n\
             WARN refused: signature {signature}\n\
             INFO no secret: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
        );
        let leaks = canary_leaks(&output);
        assert_eq!(
            leaks,
            vec![
                "DEBUG token=xoxb-test-CANARY[redacted] sent".to_string(),
                "WARN refused: signature v0=[signature redacted]".to_string(),
            ]
        );
        let random_part = &minted[crate::fakes::CANARY.len()..];
        assert!(leaks
            .iter()
            .all(|l| !l.contains(random_part) && !l.contains(hex)));
    }

    #[tokio::test]
    async fn a_bot_that_logs_a_canary_fails_its_test_when_it_stops() {
        let w = World::new().await;
        w.mastodon.add_mention("alice", "hi");
        let bot = w.start_bot().await;
        let card = w.card(1).await;
        // The bot logs an unknown button's action id (harmless): give it a canary.
        let action_id = format!("mb_{}", crate::fakes::canary());
        let payload = crate::fakes::slack::block_actions(
            ANA,
            "ana",
            &action_id,
            "1",
            CHANNEL,
            &card.ts,
            &crate::fakes::slack::new_trigger_id(),
        );
        w.slack_driver().interactive(payload).await;
        bot.wait_for_log("unknown button pressed", WAIT).await;
        let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(bot)));
        let report = *stopped
            .expect_err("the scan fails the test")
            .downcast::<String>()
            .unwrap();
        assert!(report.contains("mb_CANARY[redacted]"), "{report}");
        assert!(
            !report.contains(&action_id),
            "the report repeats the secret"
        );
    }
}
