//! The error paths most likely to echo what came in: a payload that does not parse, an
//! answer that cannot be delivered. Each scenario ends with the bot's log scanned for
//! the canaries (as every scenario's does when its bot stops); these make sure the
//! paths are taken.

use crate::drivers::Who;
use crate::fakes::Fault;
use crate::harness::*;
use serde_json::json;

/// Ana's press of Claim on card 1, as Slack sends it (with its minted tokens).
fn ana_presses_claim() -> serde_json::Value {
    crate::fakes::slack::block_actions(
        ANA,
        "ana",
        "mb_claim",
        "1",
        CHANNEL,
        "1700000000.000100",
        &crate::fakes::slack::new_trigger_id(),
    )
}

#[tokio::test]
async fn a_socket_mode_envelope_that_does_not_parse_is_logged_without_its_tokens() {
    let w = World::new().await;
    let bot = w.start_bot().await;
    let mut payload = ana_presses_claim();
    // A shape Slack might send one day: the whole envelope is refused by the parser.
    payload["user"] = json!("U0ANA");
    // Sent without waiting for the ack: what matters is the log line, and under a busy
    // suite the ack can come late.
    let sent = w.slack.post_envelope("interactive", payload, 0, "");
    assert!(sent.is_some(), "the bot's Socket Mode connection is open");
    bot.wait_for_log("Slack Socket Mode event could not be handled", WAIT)
        .await;
    assert_no_secrets("the bot", &bot.log());
}

#[tokio::test]
async fn a_discord_answer_that_cannot_be_delivered_is_logged_without_the_interaction_token() {
    let w = World::discord().await;
    let bot = w.start_bot().await;
    w.discord
        .fail_next("POST /interactions", vec![Fault::status(500)]);
    let list = json!([{"type": 1, "name": "list", "options": []}]);
    let payload = w.discord_driver().command_payload(Who::Ana, list);
    w.discord.send_interaction(payload);
    bot.wait_for_log("could not answer a Discord interaction", WAIT)
        .await;
    assert_no_secrets("the bot", &bot.log());
}

#[tokio::test]
async fn a_gateway_interaction_that_does_not_parse_is_logged_without_its_token() {
    let w = World::discord().await;
    let bot = w.start_bot().await;
    let list = json!([{"type": 1, "name": "list", "options": []}]);
    let payload = w.discord_driver().command_payload(Who::Ana, list);
    // A dispatch without its sequence number: the gateway client cannot read the frame.
    let frame = json!({"op": 0, "t": "INTERACTION_CREATE", "d": payload});
    w.discord.send_raw_frame(&frame.to_string());
    bot.wait_for_log("Unhandled error", WAIT).await;
    assert_no_secrets("the bot", &bot.log());
}

/// Slack's HTTP mode: a signed payload whose shape we do not know is refused with where it
/// broke, never with serde's message, which quotes the offending value (here the
/// interaction's own `response_url`).
#[tokio::test]
async fn an_http_mode_payload_that_does_not_parse_is_logged_without_what_it_quoted() {
    let w = World::with_mode(Mode::Http).await;
    let bot = w.start_bot().await;
    let mut payload = ana_presses_claim();
    payload["user"] = payload["response_url"].clone();
    assert!(payload["user"]
        .as_str()
        .unwrap()
        .contains(crate::fakes::CANARY));
    let form = crate::drivers::interactivity_form(&payload);
    let answer = w
        .slack_driver()
        .post_signed(
            "/slack/interactivity",
            "application/x-www-form-urlencoded",
            form,
            None,
        )
        .await;
    assert_eq!(answer.status(), 400);
    let said = answer.text().await.unwrap();
    assert!(!said.contains(crate::fakes::CANARY), "{said}");
    bot.wait_for_log("malformed Slack interaction", WAIT).await;
    assert_no_secrets("the bot", &bot.log());
}
