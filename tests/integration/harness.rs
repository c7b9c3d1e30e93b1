//! Runs the real `mentionbridge` binary against the fakes, with a config written into a
//! temporary directory that survives restarts of the bot (so the sled store does too).

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
pub const SIGNING_SECRET: &str = "test-signing-secret-8f742231b10e";
pub const WAIT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Socket,
    Http,
}

pub struct World {
    pub mastodon: FakeMastodon,
    pub slack: FakeSlack,
    pub dir: tempfile::TempDir,
    pub mode: Mode,
    pub http_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl World {
    pub async fn new() -> World {
        Self::with_mode(Mode::Socket).await
    }

    pub async fn with_mode(mode: Mode) -> World {
        let slack = FakeSlack::start().await;
        slack.set_usergroup(AGENT_GROUP, &[GIA]);
        World {
            mastodon: FakeMastodon::start().await,
            slack,
            dir: tempfile::tempdir().unwrap(),
            mode,
            http_port: free_port(),
        }
    }

    pub fn config_text(&self) -> String {
        let mode = match self.mode {
            Mode::Socket => "socket",
            Mode::Http => "http",
        };
        format!(
            r#"
[store]
path = "store.sled"

[http]
listen = "127.0.0.1:{port}"

[slack]
mode = "{mode}"
api_url = "{slack_api}"
bot_token = "${{TEST_SLACK_BOT_TOKEN}}"
app_token = "${{TEST_SLACK_APP_TOKEN}}"
signing_secret = "${{TEST_SLACK_SIGNING_SECRET}}"
channel = "{CHANNEL}"
agent_user_ids = ["{ANA}", "{BEN}"]
agent_usergroup = "{AGENT_GROUP}"

[mastodon]
instance_url = "{mastodon}"
access_token = "${{TEST_MASTODON_TOKEN}}"
poll_interval_secs = 0.2
initial_backfill = 20

[outbox]
max_backoff_secs = 5
"#,
            port = self.http_port,
            slack_api = self.slack.api_url(),
            mastodon = self.mastodon.url(),
        )
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
        let log = self
            .dir
            .path()
            .join(format!("bot-{}.log", crate::fakes::uuid_like()));
        let mut cmd = self.command();
        cmd.arg("run").arg("--config").arg(&config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let connections_before = self.slack.connections();
        let child = cmd.spawn().expect("the bot binary starts");
        let bot = Bot { child, log };
        match self.mode {
            Mode::Socket => {
                let slack = self.slack.clone();
                bot.wait_or_dump(WAIT, "Socket Mode connection", move || {
                    slack.open_connections() >= 1 && slack.connections() > connections_before
                })
                .await;
            }
            Mode::Http => bot.wait_for_log("HTTP server listening", WAIT).await,
        }
        bot
    }

    /// The card of the `n`th ticket (1-based), once it is posted.
    pub async fn card(&self, n: usize) -> SlackMessage {
        self.slack
            .wait_until(WAIT, &format!("card #{n}"), |s| {
                s.messages(CHANNEL)
                    .iter()
                    .filter(|m| m.metadata.is_some())
                    .count()
                    >= n
            })
            .await;
        self.cards().remove(n - 1)
    }

    pub fn cards(&self) -> Vec<SlackMessage> {
        let mut cards: Vec<_> = self
            .slack
            .messages(CHANNEL)
            .into_iter()
            .filter(|m| m.metadata.is_some())
            .collect();
        cards.sort_by_key(ticket_of);
        cards
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

    pub fn notes(&self, card: &SlackMessage) -> Vec<String> {
        self.slack
            .thread(CHANNEL, &card.ts)
            .into_iter()
            .filter(|m| m.bot_id.is_some())
            .map(|m| m.text)
            .collect()
    }

    pub async fn wait_note(&self, card: &SlackMessage, needle: &str) {
        let ts = card.ts.clone();
        self.slack
            .wait_until(WAIT, &format!("a thread note containing {needle:?}"), |s| {
                s.thread(CHANNEL, &ts)
                    .iter()
                    .any(|m| m.text.contains(needle))
            })
            .await;
    }

    /// Press a card's button as `user` over Socket Mode; returns the ack payload.
    pub async fn press(&self, card: &SlackMessage, user: &str, action_id: &str) -> Value {
        let payload =
            self.slack
                .block_actions_on(CHANNEL, &card.ts, user, &user.to_lowercase(), action_id);
        self.slack.send_envelope("interactive", payload).await
    }

    /// Press Reply, wait for the modal, submit `text`; returns the submission's ack.
    pub async fn reply_via_modal(&self, card: &SlackMessage, user: &str, text: &str) -> Value {
        let before = self.slack.views().len();
        self.press(card, user, "mb_reply").await;
        self.slack
            .wait_until(WAIT, "the reply modal to open", |s| {
                s.views().len() > before
            })
            .await;
        let view_id = self.slack.views()[before]["view_id"]
            .as_str()
            .unwrap()
            .to_string();
        let values = json!({"reply": {"text": {"type": "plain_text_input", "value": text}}});
        let payload = self
            .slack
            .submission_for_view(&view_id, user, &user.to_lowercase(), values);
        self.slack.send_envelope("interactive", payload).await
    }

    pub async fn slash(&self, user: &str, text: &str) -> Value {
        let payload = crate::fakes::slack::slash_command(
            user,
            &user.to_lowercase(),
            "/mentions",
            text,
            CHANNEL,
        );
        self.slack.send_envelope("slash_commands", payload).await
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
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    if let Some(b) = &card.blocks {
        walk(b, &mut out);
    }
    out
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
            if let Some(id) = el["action_id"].as_str() {
                ids.push(id.to_string());
            }
        }
    }
    ids
}

pub struct Bot {
    child: Child,
    log: PathBuf,
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
