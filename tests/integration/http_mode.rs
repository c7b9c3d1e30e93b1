//! Slack HTTP mode: signed requests are the only way in.

use crate::drivers::{interactivity_form, slack_timestamp as now};
use crate::fakes::slack::sign_request;
use crate::harness::*;

#[tokio::test]
async fn signed_requests_act_and_forged_or_stale_ones_change_nothing() {
    let w = World::with_mode(Mode::Http).await;
    w.mastodon.add_mention("alice", "http mode");
    let _bot = w.start_bot().await;
    let card = w.card(1).await;
    let slack = w.slack_driver();
    let form = interactivity_form(
        &w.slack
            .block_actions_on(CHANNEL, &card.ts, ANA, "ana", "mb_claim"),
    );
    let form_type = "application/x-www-form-urlencoded";

    let forged = slack
        .post(
            "/slack/interactivity",
            form_type,
            form.clone(),
            (&now(), &sign_request("not-the-secret", &now(), &form)),
            None,
        )
        .await;
    assert_eq!(forged.status(), 401);
    assert!(forged
        .text()
        .await
        .unwrap()
        .contains("signature does not match"));
    let old = (chrono::Utc::now().timestamp() - 600).to_string();
    let stale = slack
        .post(
            "/slack/interactivity",
            form_type,
            form.clone(),
            (&old, &sign_request(SIGNING_SECRET, &old, &form)),
            None,
        )
        .await;
    assert_eq!(stale.status(), 401);
    assert!(stale.text().await.unwrap().contains("more than 5 minutes"));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(w.slack.count("chat.update"), 0, "nothing changed");

    let ok = slack
        .post_signed("/slack/interactivity", form_type, form.clone(), None)
        .await;
    assert_eq!(ok.status(), 200);
    w.wait_card_text(&card, "held by <@U0ANA>").await;

    // Slash command over HTTP, form-encoded as Slack sends it.
    let body = "token=x&team_id=T0001&team_domain=test&channel_id=C0SUPPORT&channel_name=support&user_id=U0ANA&user_name=ana&command=%2Fmentions&text=list&api_app_id=A0001&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1&trigger_id=1.2.3";
    let resp = slack
        .post_signed("/slack/commands", form_type, body.to_string(), None)
        .await;
    assert_eq!(resp.status(), 200);
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(json["response_type"], "ephemeral");
    assert!(json["text"]
        .as_str()
        .unwrap()
        .contains("Open mention tickets (1)"));

    // Events API handshake.
    let challenge = r#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let resp = slack
        .post_signed(
            "/slack/events",
            "application/json",
            challenge.to_string(),
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        json["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
}
