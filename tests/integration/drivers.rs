//! One driver per chat surface, the only place tests build what a person's click, form,
//! command or thread message sends to the bot: Slack over Socket Mode or signed HTTP,
//! Discord over the gateway or its interactions endpoint, as the world is configured.
//! The `Driver` trait lets the support team's scenarios be written once and run on both.

use crate::fakes::slack::SlackMessage;
use crate::harness::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// The people in the tests: Ana and Ben are agents, Eve is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Ana,
    Ben,
    Eve,
}

/// A ticket's card on one surface.
#[derive(Clone, Debug)]
pub struct Card {
    pub id: String,
    pub ticket: u64,
}

#[allow(async_fn_in_trait)]
pub trait Driver {
    fn surface(&self) -> &'static str;
    /// How the card and notes name this person when they hold a ticket.
    fn mention(&self, who: Who) -> String;
    /// The `n`th card (by ticket number), once posted.
    async fn card(&self, n: usize) -> Card;
    fn cards(&self) -> Vec<Card>;
    /// Everything a person reads on the card.
    fn card_text(&self, card: &Card) -> String;
    /// The card's buttons, as verbs: claim, unclaim, reply, resolve, ignore, reopen.
    fn buttons(&self, card: &Card) -> Vec<String>;
    async fn press(&self, card: &Card, who: Who, verb: &str);
    /// Open the reply form and submit `text`: Ok when accepted, Err with the refusal.
    async fn reply_via_modal(&self, card: &Card, who: Who, text: &str) -> Result<(), String>;
    /// Open the private-reply form and submit it, with an optional public acknowledgement.
    async fn reply_privately_via_form(
        &self,
        card: &Card,
        who: Who,
        text: &str,
        ack: Option<&str>,
    ) -> Result<(), String>;
    /// Pick a canned reply on the card: returns the text the form opened with, then submits
    /// `edit(text)`.
    async fn reply_with_canned(
        &self,
        card: &Card,
        who: Who,
        canned: &str,
        edit: &dyn Fn(&str) -> String,
    ) -> (String, Result<(), String>);
    /// Press "Edit draft" on the card: returns the draft the form opened with, then
    /// submits `edit(draft)`.
    async fn edit_draft_via_form(
        &self,
        card: &Card,
        who: Who,
        edit: &dyn Fn(&str) -> String,
    ) -> (String, Result<(), String>);
    /// `/mentions <args>`; returns the private answer.
    async fn command(&self, who: Who, args: &str) -> String;
    /// What this person was told privately so far.
    fn told(&self, who: Who) -> Vec<String>;
    fn card_updates(&self) -> usize;
    fn forms_opened(&self) -> usize;
    fn notes(&self, card: &Card) -> Vec<String>;

    /// The card whose text contains `needle` (mentions that arrive in one poll have no
    /// order among themselves: find each by what it says).
    fn card_with(&self, needle: &str) -> Card {
        self.cards()
            .into_iter()
            .find(|c| self.card_text(c).contains(needle))
            .unwrap_or_else(|| panic!("a {} card with {needle:?}", self.surface()))
    }

    async fn wait_told(&self, who: Who, needle: &str) -> String {
        let what = format!("{who:?} to be told {needle:?} on {}", self.surface());
        crate::fakes::wait_until(WAIT, &what, || {
            self.told(who).iter().any(|t| t.contains(needle))
        })
        .await;
        self.told(who)
            .into_iter()
            .rev()
            .find(|t| t.contains(needle))
            .unwrap_or_default()
    }

    async fn wait_card_text(&self, card: &Card, needle: &str) -> String {
        let what = format!(
            "the {} card of ticket {} to show {needle:?}",
            self.surface(),
            card.ticket
        );
        crate::fakes::wait_until(WAIT, &what, || self.card_text(card).contains(needle)).await;
        self.card_text(card)
    }

    async fn wait_note(&self, card: &Card, needle: &str) {
        let what = format!("a {} thread line containing {needle:?}", self.surface());
        crate::fakes::wait_until(WAIT, &what, || {
            self.notes(card).iter().any(|n| n.contains(needle))
        })
        .await;
    }
}

pub fn slack_user(who: Who) -> &'static str {
    match who {
        Who::Ana => ANA,
        Who::Ben => BEN,
        Who::Eve => EVE,
    }
}

/// The username Slack sends with a person's interactions.
pub fn slack_name(who: Who) -> &'static str {
    match who {
        Who::Ana => "ana",
        Who::Ben => "ben",
        Who::Eve => "eve",
    }
}

/// Slack as the team uses it: every payload reaches the bot the way the world is
/// configured, as a Socket Mode envelope or as a request signed with the app's signing
/// secret, so a story written against this driver runs in either mode.
pub struct SlackDriver {
    pub slack: crate::fakes::slack::FakeSlack,
    mode: Mode,
    http_port: u16,
}

/// Slack sends interactivity payloads as a form with one field, `payload`, holding the JSON.
pub fn interactivity_form(payload: &Value) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

/// The bot's answer body: its JSON, Null when empty (as a bare Socket Mode ack).
async fn answer_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Seconds since the epoch, as Slack writes `X-Slack-Request-Timestamp`.
pub fn slack_timestamp() -> String {
    chrono::Utc::now().timestamp().to_string()
}

impl SlackDriver {
    pub fn new(slack: crate::fakes::slack::FakeSlack, mode: Mode, http_port: u16) -> Self {
        SlackDriver {
            slack,
            mode,
            http_port,
        }
    }

    /// A request to one of the bot's Slack routes exactly as given: the timestamp and
    /// signature may be forged or stale, and `retry` adds Slack's redelivery headers.
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: String,
        signed: (&str, &str),
        retry: Option<(u32, &str)>,
    ) -> reqwest::Response {
        let (ts, signature) = signed;
        let mut req = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}{path}", self.http_port))
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", signature);
        if let Some((num, reason)) = retry {
            req = req
                .header("x-slack-retry-num", num.to_string())
                .header("x-slack-retry-reason", reason);
        }
        req.body(body).send().await.unwrap()
    }

    /// The same, signed now with the team's signing secret, as Slack sends it.
    pub async fn post_signed(
        &self,
        path: &str,
        content_type: &str,
        body: String,
        retry: Option<(u32, &str)>,
    ) -> reqwest::Response {
        let ts = slack_timestamp();
        let signature = crate::fakes::slack::sign_request(SIGNING_SECRET, &ts, &body);
        self.post(path, content_type, body, (&ts, &signature), retry)
            .await
    }

    /// A signed form to `path` that the bot must accept (200); returns its answer.
    async fn form_answered(&self, path: &str, form: String) -> Value {
        let resp = self
            .post_signed(path, "application/x-www-form-urlencoded", form, None)
            .await;
        let (status, answer) = answer_of(resp).await;
        assert_eq!(status, 200, "{path} accepts it: {answer}");
        answer
    }

    /// A button press, a menu pick or a form submission; returns the bot's answer (Null
    /// for a bare acknowledgement).
    pub async fn interactive(&self, payload: Value) -> Value {
        match self.mode {
            Mode::Socket => self.slack.send_envelope("interactive", payload).await,
            Mode::Http => {
                self.form_answered("/slack/interactivity", interactivity_form(&payload))
                    .await
            }
        }
    }

    /// `/mentions <text>` typed by this person; returns the bot's answer.
    pub async fn slash_command(&self, user: &str, user_name: &str, text: &str) -> Value {
        let payload =
            crate::fakes::slack::slash_command(user, user_name, "/mentions", text, CHANNEL);
        match self.mode {
            Mode::Socket => self.slack.send_envelope("slash_commands", payload).await,
            Mode::Http => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in payload.as_object().into_iter().flatten() {
                    form.append_pair(k, v.as_str().unwrap_or_default());
                }
                self.form_answered("/slack/commands", form.finish()).await
            }
        }
    }

    /// An Events API event (`event_callback`), with Slack's retry fields (attempt,
    /// reason) when Slack delivers it again; returns the HTTP status (200 for an ack).
    pub async fn event(&self, event: &Value, retry: Option<(u32, &str)>) -> u16 {
        match (self.mode, retry) {
            (Mode::Socket, None) => {
                self.slack.send_envelope("events_api", event.clone()).await;
                200
            }
            (Mode::Socket, Some((attempt, reason))) => {
                self.slack
                    .send_envelope_with("events_api", event.clone(), attempt, reason, WAIT)
                    .await
                    .unwrap_or_else(|e| panic!("fake Slack: {e}"));
                200
            }
            (Mode::Http, retry) => self
                .post_signed(
                    "/slack/events",
                    "application/json",
                    event.to_string(),
                    retry,
                )
                .await
                .status()
                .as_u16(),
        }
    }

    /// The cards in the support channel (the bot's messages that carry a ticket), by
    /// ticket number.
    pub fn card_messages(&self) -> Vec<SlackMessage> {
        let mut cards: Vec<_> = self
            .slack
            .messages(CHANNEL)
            .into_iter()
            .filter(|m| m.metadata.is_some())
            .collect();
        cards.sort_by_key(ticket_of);
        cards
    }

    /// The card of the `n`th ticket (1-based) once it is posted; `what` names it if it
    /// never is.
    pub async fn card_message(&self, n: usize, what: &str) -> SlackMessage {
        self.slack
            .wait_until(WAIT, what, |s| {
                s.messages(CHANNEL)
                    .iter()
                    .filter(|m| m.metadata.is_some())
                    .count()
                    >= n
            })
            .await;
        self.card_messages().remove(n - 1)
    }

    /// This person presses the button `action_id` on the message `ts`; returns the ack.
    pub async fn press_as(&self, ts: &str, user: &str, user_name: &str, action_id: &str) -> Value {
        let payload = self
            .slack
            .block_actions_on(CHANNEL, ts, user, user_name, action_id);
        self.interactive(payload).await
    }

    /// Waits for the form opened after `views_before` forms, returns its id and the form
    /// as the bot opened it.
    async fn opened_form(&self, views_before: usize, what: &str) -> (String, Value) {
        self.slack
            .wait_until(WAIT, &format!("the {what} modal to open"), |s| {
                s.views().len() > views_before
            })
            .await;
        let opened = self.slack.views()[views_before].clone();
        (opened["view_id"].as_str().unwrap().to_string(), opened)
    }

    /// Submits the form `view_id` with these `state.values`; returns the bot's answer.
    pub async fn submit_view(
        &self,
        view_id: &str,
        user: &str,
        user_name: &str,
        values: Value,
    ) -> Value {
        let payload = self
            .slack
            .submission_for_view(view_id, user, user_name, values);
        self.interactive(payload).await
    }

    /// Presses `action_id` on the message `ts`, waits for its form and submits `values`;
    /// returns the submission's answer (Null: the form closed).
    pub async fn submit_form_on(
        &self,
        ts: &str,
        user: &str,
        user_name: &str,
        action_id: &str,
        values: Value,
    ) -> Value {
        let before = self.slack.views().len();
        self.press_as(ts, user, user_name, action_id).await;
        let what = action_id.trim_start_matches("mb_");
        let (view_id, _) = self.opened_form(before, what).await;
        self.submit_view(&view_id, user, user_name, values).await
    }

    /// The message event Slack sends when this person writes `text` (as message `ts`) in
    /// the thread of `thread_ts`.
    pub fn thread_message(&self, user: &str, thread_ts: &str, ts: &str, text: &str) -> Value {
        crate::fakes::slack::thread_message_event(user, CHANNEL, thread_ts, ts, text)
    }

    /// This person writes `text` in the thread of `thread_ts`; returns the HTTP status.
    pub async fn post_in_thread(&self, user: &str, thread_ts: &str, ts: &str, text: &str) -> u16 {
        let event = self.thread_message(user, thread_ts, ts, text);
        self.event(&event, None).await
    }

    /// Press `verb`, wait for its modal, submit `values`: Ok when the modal closes, Err
    /// with the inline error Slack would show under the reply field.
    async fn submit_form(
        &self,
        card: &Card,
        who: Who,
        verb: &str,
        values: Value,
    ) -> Result<(), String> {
        let action_id = format!("mb_{verb}");
        let ack = self
            .submit_form_on(
                &card.id,
                slack_user(who),
                slack_name(who),
                &action_id,
                values,
            )
            .await;
        if ack == Value::Null {
            Ok(())
        } else {
            assert_eq!(ack["response_action"], "errors", "{ack}");
            Err(ack["errors"]["reply"]
                .as_str()
                .unwrap_or_default()
                .to_string())
        }
    }
}

impl SlackDriver {
    /// Wait for the form opened after `before` views, submit `edit(its prefilled reply)`:
    /// returns the prefilled text and Ok, or the inline error under the reply field.
    async fn edit_opened_form(
        &self,
        before: usize,
        what: &str,
        who: Who,
        edit: &dyn Fn(&str) -> String,
    ) -> (String, Result<(), String>) {
        let (view_id, opened) = self.opened_form(before, what).await;
        let filled = opened["view"]["blocks"][1]["element"]["initial_value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let values =
            json!({"reply": {"text": {"type": "plain_text_input", "value": edit(&filled)}}});
        let ack = self
            .submit_view(&view_id, slack_user(who), slack_name(who), values)
            .await;
        let result = if ack == Value::Null {
            Ok(())
        } else {
            Err(ack["errors"]["reply"]
                .as_str()
                .unwrap_or_default()
                .to_string())
        };
        (filled, result)
    }
}

impl Driver for SlackDriver {
    fn surface(&self) -> &'static str {
        "Slack"
    }

    fn mention(&self, who: Who) -> String {
        format!("<@{}>", slack_user(who))
    }

    async fn card(&self, n: usize) -> Card {
        let m = self.card_message(n, &format!("Slack card #{n}")).await;
        Card {
            ticket: ticket_of(&m),
            id: m.ts,
        }
    }

    fn cards(&self) -> Vec<Card> {
        self.card_messages()
            .into_iter()
            .map(|m| Card {
                ticket: ticket_of(&m),
                id: m.ts,
            })
            .collect()
    }

    fn card_text(&self, card: &Card) -> String {
        self.slack
            .message(CHANNEL, &card.id)
            .map(|m| blocks_text(&m))
            .unwrap_or_default()
    }

    fn buttons(&self, card: &Card) -> Vec<String> {
        let m = self.slack.message(CHANNEL, &card.id).expect("card exists");
        buttons(&m)
            .into_iter()
            .map(|b| b.trim_start_matches("mb_").to_string())
            .collect()
    }

    async fn press(&self, card: &Card, who: Who, verb: &str) {
        let action_id = format!("mb_{verb}");
        let ack = self
            .press_as(&card.id, slack_user(who), slack_name(who), &action_id)
            .await;
        assert_eq!(
            ack,
            Value::Null,
            "button presses are acknowledged empty, at once"
        );
    }

    async fn reply_via_modal(&self, card: &Card, who: Who, text: &str) -> Result<(), String> {
        let values = json!({"reply": {"text": {"type": "plain_text_input", "value": text}}});
        self.submit_form(card, who, "reply", values).await
    }

    async fn reply_privately_via_form(
        &self,
        card: &Card,
        who: Who,
        text: &str,
        ack: Option<&str>,
    ) -> Result<(), String> {
        let values = json!({
            "reply": {"text": {"type": "plain_text_input", "value": text}},
            "ack": {"text": {"type": "plain_text_input", "value": ack}},
        });
        self.submit_form(card, who, "dm", values).await
    }

    async fn edit_draft_via_form(
        &self,
        card: &Card,
        who: Who,
        edit: &dyn Fn(&str) -> String,
    ) -> (String, Result<(), String>) {
        let before = self.slack.views().len();
        self.press_as(&card.id, slack_user(who), slack_name(who), "mb_edit")
            .await;
        self.edit_opened_form(before, "edit", who, edit).await
    }

    async fn reply_with_canned(
        &self,
        card: &Card,
        who: Who,
        canned: &str,
        edit: &dyn Fn(&str) -> String,
    ) -> (String, Result<(), String>) {
        let before = self.slack.views().len();
        let mut payload = self.slack.block_actions_on(
            CHANNEL,
            &card.id,
            slack_user(who),
            slack_name(who),
            "mb_canned",
        );
        payload["actions"][0]["type"] = json!("static_select");
        payload["actions"][0]["selected_option"] = json!({
            "text": {"type": "plain_text", "text": canned, "emoji": true},
            "value": format!("{}:{canned}", card.ticket),
        });
        if let Some(a) = payload["actions"][0].as_object_mut() {
            a.remove("value");
        }
        self.interactive(payload).await;
        self.edit_opened_form(before, "reply", who, edit).await
    }

    async fn command(&self, who: Who, args: &str) -> String {
        let answer = self
            .slash_command(slack_user(who), slack_name(who), args)
            .await;
        assert_eq!(answer["response_type"], "ephemeral", "{answer}");
        answer["text"].as_str().unwrap_or_default().to_string()
    }

    fn told(&self, who: Who) -> Vec<String> {
        self.slack
            .ephemerals()
            .into_iter()
            .filter(|e| e["user"] == slack_user(who))
            .map(|e| e["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn card_updates(&self) -> usize {
        self.slack.count("chat.update")
    }

    fn forms_opened(&self) -> usize {
        self.slack.views().len()
    }

    fn notes(&self, card: &Card) -> Vec<String> {
        self.slack
            .thread(CHANNEL, &card.id)
            .into_iter()
            .filter(|m| m.bot_id.is_some())
            .map(|m| m.text)
            .collect()
    }
}

/// Shared bookkeeping for drivers that learn answers asynchronously.
#[derive(Clone, Default)]
pub struct Told(pub Arc<Mutex<Vec<(Who, String)>>>);

impl Told {
    pub fn push(&self, who: Who, text: String) {
        self.0.lock().unwrap().push((who, text));
    }

    pub fn of(&self, who: Who) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, _)| *w == who)
            .map(|(_, t)| t.clone())
            .collect()
    }
}

pub fn discord_user(who: Who) -> (&'static str, &'static str, &'static [&'static str]) {
    match who {
        Who::Ana => (D_ANA, "ana", &[D_SUPPORT_ROLE]),
        Who::Ben => (D_BEN, "ben", &[]),
        Who::Eve => (D_EVE, "eve", &[D_OTHER_ROLE]),
    }
}

/// Discord as the team uses it: every interaction reaches the bot the way the world is
/// configured, dispatched over the gateway or posted, signed, to the bot's interactions
/// endpoint.
pub struct DiscordDriver {
    pub discord: crate::fakes::discord::FakeDiscord,
    mode: Mode,
    http_port: u16,
    told: Told,
    forms: Arc<Mutex<usize>>,
}

/// Every string in a JSON value, one per line: what a person reads in an embed.
pub fn json_text(v: &Value) -> String {
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
    walk(v, &mut out);
    out
}

impl DiscordDriver {
    pub fn new(discord: crate::fakes::discord::FakeDiscord, mode: Mode, http_port: u16) -> Self {
        DiscordDriver {
            discord,
            mode,
            http_port,
            told: Told::default(),
            forms: Arc::new(Mutex::new(0)),
        }
    }

    /// The bot's interactions endpoint (HTTP mode).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/discord/interactions", self.http_port)
    }

    /// Delivers one interaction: over the gateway (answered by its first callback, 200)
    /// or signed to the endpoint (answered inline, with the endpoint's status).
    pub async fn deliver(&self, payload: &Value) -> (u16, Value) {
        match self.mode {
            Mode::Socket => {
                let id = self.discord.send_interaction(payload.clone());
                (200, self.discord.wait_for_callback(&id, WAIT).await)
            }
            Mode::Http => self.discord.deliver_http(&self.endpoint(), payload).await,
        }
    }

    /// Deliver an interaction as `who` and return the bot's first answer, remembering
    /// what the person was told privately.
    pub async fn interact(&self, who: Who, payload: Value) -> Value {
        let (status, answer) = self.deliver(&payload).await;
        assert_eq!(status, 200, "the interaction is accepted: {answer}");
        match answer["type"].as_u64() {
            Some(4) => {
                assert_eq!(
                    answer["data"]["flags"], 64,
                    "answers are private (ephemeral): {answer}"
                );
                self.told.push(
                    who,
                    answer["data"]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            Some(9) => *self.forms.lock().unwrap() += 1,
            _ => {}
        }
        answer
    }

    /// A press of the card's `verb` component (a select when `values` is not empty).
    pub fn press_payload(&self, card: &Card, who: Who, verb: &str, values: &[&str]) -> Value {
        let (id, name, roles) = discord_user(who);
        let custom_id = format!("mb:{verb}:{}", card.ticket);
        if values.is_empty() {
            self.discord
                .component_interaction(D_CHANNEL, &card.id, id, name, roles, &custom_id)
        } else {
            self.discord
                .select_interaction(D_CHANNEL, &card.id, id, name, roles, &custom_id, values)
        }
    }

    /// Send a press that must open a form; returns the form's first field's prefilled
    /// text and the form's custom id.
    async fn open_form(&self, who: Who, payload: Value) -> (String, String) {
        let modal = self.interact(who, payload).await;
        assert_eq!(modal["type"], 9, "a form opens: {modal}");
        let filled = modal["data"]["components"][0]["components"][0]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (
            filled,
            modal["data"]["custom_id"].as_str().unwrap().to_string(),
        )
    }

    /// Submit a form: Ok when the reply was queued, Err with what the agent was told.
    async fn submit_form(
        &self,
        who: Who,
        modal_id: &str,
        fields: &[(&str, &str)],
    ) -> Result<(), String> {
        let submit = self.form_submission(who, modal_id, fields);
        let answer = self.interact(who, submit).await;
        let said = answer["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Accepted: queued, or held for another agent's approval.
        if said.contains("queued") || said.contains("waits for another agent's approval") {
            Ok(())
        } else {
            Err(said)
        }
    }

    /// This person's submission of the form `modal_id` with these text inputs.
    pub fn form_submission(&self, who: Who, modal_id: &str, fields: &[(&str, &str)]) -> Value {
        let (id, name, roles) = discord_user(who);
        self.discord
            .modal_submit(id, name, roles, modal_id, fields, D_CHANNEL)
    }

    /// This person's `/mentions` with these options, as Discord sends it.
    pub fn command_payload(&self, who: Who, options: Value) -> Value {
        let (id, name, roles) = discord_user(who);
        self.discord
            .command_interaction(id, name, roles, "mentions", options, D_CHANNEL)
    }

    fn command_options(args: &str) -> Value {
        let mut words = args.split_whitespace();
        let verb = words.next().unwrap_or("list");
        if verb == "oncall" {
            let rest: Vec<&str> = words.collect();
            let options = match rest.as_slice() {
                ["override", member, length @ ..] => json!([
                    {"type": 3, "name": "override", "value": member},
                    {"type": 3, "name": "for", "value": length.join(" ")},
                ]),
                _ => json!([]),
            };
            return json!([{"type": 1, "name": "oncall", "options": options}]);
        }
        if verb == "stats" {
            let window: Vec<Value> = words
                .next()
                .map(|w| json!({"type": 3, "name": "window", "value": w}))
                .into_iter()
                .collect();
            return json!([{"type": 1, "name": "stats", "options": window}]);
        }
        let mut options = Vec::new();
        if let Some(n) = words.next() {
            options
                .push(json!({"type": 4, "name": "ticket", "value": n.parse::<i64>().unwrap_or(0)}));
        }
        let rest: Vec<&str> = words.collect();
        if verb == "reply" || verb == "dm" {
            options.push(json!({"type": 3, "name": "text", "value": rest.join(" ")}));
        }
        json!([{"type": 1, "name": verb, "options": options}])
    }
}

impl Driver for DiscordDriver {
    fn surface(&self) -> &'static str {
        "Discord"
    }

    fn mention(&self, who: Who) -> String {
        format!("<@{}>", discord_user(who).0)
    }

    async fn card(&self, n: usize) -> Card {
        self.discord
            .wait_until(WAIT, &format!("Discord card #{n}"), |d| {
                d.messages(D_CHANNEL)
                    .iter()
                    .filter(|m| m.embeds[0]["title"].is_string())
                    .count()
                    >= n
            })
            .await;
        self.cards().remove(n - 1)
    }

    fn cards(&self) -> Vec<Card> {
        let mut cards: Vec<Card> = self
            .discord
            .messages(D_CHANNEL)
            .into_iter()
            .filter_map(|m| {
                let title = m.embeds[0]["title"].as_str()?.to_string();
                let ticket = title.rsplit('#').next()?.parse().ok()?;
                Some(Card { id: m.id, ticket })
            })
            .collect();
        cards.sort_by_key(|c| c.ticket);
        cards
    }

    fn card_text(&self, card: &Card) -> String {
        self.discord
            .message(D_CHANNEL, &card.id)
            .map(|m| json_text(&m.embeds))
            .unwrap_or_default()
    }

    fn buttons(&self, card: &Card) -> Vec<String> {
        let m = self
            .discord
            .message(D_CHANNEL, &card.id)
            .expect("card exists");
        m.components
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["type"] == 2)
            .filter_map(|b| {
                b["custom_id"]
                    .as_str()
                    .and_then(|c| c.split(':').nth(1))
                    .map(String::from)
            })
            .collect()
    }

    async fn press(&self, card: &Card, who: Who, verb: &str) {
        let payload = self.press_payload(card, who, verb, &[]);
        let answer = self.interact(who, payload).await;
        assert!(
            matches!(answer["type"].as_u64(), Some(4 | 6 | 9)),
            "{answer}"
        );
    }

    async fn reply_via_modal(&self, card: &Card, who: Who, text: &str) -> Result<(), String> {
        let payload = self.press_payload(card, who, "reply", &[]);
        let (_, modal_id) = self.open_form(who, payload).await;
        self.submit_form(who, &modal_id, &[("text", text)]).await
    }

    async fn reply_privately_via_form(
        &self,
        card: &Card,
        who: Who,
        text: &str,
        ack: Option<&str>,
    ) -> Result<(), String> {
        let payload = self.press_payload(card, who, "dm", &[]);
        let (_, modal_id) = self.open_form(who, payload).await;
        let mut fields = vec![("text", text)];
        if let Some(ack) = ack {
            fields.push(("ack", ack));
        }
        self.submit_form(who, &modal_id, &fields).await
    }

    async fn edit_draft_via_form(
        &self,
        card: &Card,
        who: Who,
        edit: &dyn Fn(&str) -> String,
    ) -> (String, Result<(), String>) {
        let payload = self.press_payload(card, who, "edit", &[]);
        let (filled, modal_id) = self.open_form(who, payload).await;
        let edited = edit(&filled);
        let sent = self
            .submit_form(who, &modal_id, &[("text", edited.as_str())])
            .await;
        (filled, sent)
    }

    async fn reply_with_canned(
        &self,
        card: &Card,
        who: Who,
        canned: &str,
        edit: &dyn Fn(&str) -> String,
    ) -> (String, Result<(), String>) {
        let payload = self.press_payload(card, who, "canned", &[canned]);
        let (filled, modal_id) = self.open_form(who, payload).await;
        let edited = edit(&filled);
        let sent = self
            .submit_form(who, &modal_id, &[("text", edited.as_str())])
            .await;
        (filled, sent)
    }

    async fn command(&self, who: Who, args: &str) -> String {
        let payload = self.command_payload(who, Self::command_options(args));
        let answer = self.interact(who, payload).await;
        assert_eq!(answer["type"], 4, "{answer}");
        answer["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn told(&self, who: Who) -> Vec<String> {
        self.told.of(who)
    }

    fn card_updates(&self) -> usize {
        self.discord.count("PATCH", "/api/v10/channels/")
    }

    fn forms_opened(&self) -> usize {
        *self.forms.lock().unwrap()
    }

    fn notes(&self, card: &Card) -> Vec<String> {
        match self.discord.thread_of(&card.id) {
            Some(thread) => self
                .discord
                .messages(&thread)
                .into_iter()
                .map(|m| m.content)
                .collect(),
            None => Vec::new(),
        }
    }
}
