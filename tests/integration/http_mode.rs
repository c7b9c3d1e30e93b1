//! Slack HTTP mode: signed requests are the only way in.

use crate::fakes::slack::sign_request;
use crate::harness::*;

/// Interactivity payloads arrive as a form with one field, `payload`, holding the JSON.
fn block_actions_payload_form(payload: &serde_json::Value) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

pub(crate) fn now() -> String {
    chrono::Utc::now().timestamp().to_string()
}

pub(crate) async fn post(
    w: &World,
    path: &str,
    body: String,
    ts: &str,
    signature: &str,
    content_type: &str,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}{path}", w.http_port))
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn signed_requests_act_and_forged_or_stale_ones_change_nothing() {
    let w = World::with_mode(Mode::Http).await;
    w.mastodon.add_mention("alice", "http mode");
    let _bot = w.start_bot().await;
    let card = w.card(1).await;
    let form = block_actions_payload_form(
        &w.slack
            .block_actions_on(CHANNEL, &card.ts, ANA, "ana", "mb_claim"),
    );
    let form_type = "application/x-www-form-urlencoded";

    let forged = post(
        &w,
        "/slack/interactivity",
        form.clone(),
        &now(),
        &sign_request("not-the-secret", &now(), &form),
        form_type,
    )
    .await;
    assert_eq!(forged.status(), 401);
    assert!(forged
        .text()
        .await
        .unwrap()
        .contains("signature does not match"));
    let old = (chrono::Utc::now().timestamp() - 600).to_string();
    let stale = post(
        &w,
        "/slack/interactivity",
        form.clone(),
        &old,
        &sign_request(SIGNING_SECRET, &old, &form),
        form_type,
    )
    .await;
    assert_eq!(stale.status(), 401);
    assert!(stale.text().await.unwrap().contains("more than 5 minutes"));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(w.slack.count("chat.update"), 0, "nothing changed");

    let ts = now();
    let ok = post(
        &w,
        "/slack/interactivity",
        form.clone(),
        &ts,
        &sign_request(SIGNING_SECRET, &ts, &form),
        form_type,
    )
    .await;
    assert_eq!(ok.status(), 200);
    w.wait_card_text(&card, "held by <@U0ANA>").await;

    // Slash command over HTTP, form-encoded as Slack sends it.
    let body = "token=x&team_id=T0001&team_domain=test&channel_id=C0SUPPORT&channel_name=support&user_id=U0ANA&user_name=ana&command=%2Fmentions&text=list&api_app_id=A0001&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1&trigger_id=1.2.3";
    let ts = now();
    let resp = post(
        &w,
        "/slack/commands",
        body.to_string(),
        &ts,
        &sign_request(SIGNING_SECRET, &ts, body),
        form_type,
    )
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
    let ts = now();
    let resp = post(
        &w,
        "/slack/events",
        challenge.to_string(),
        &ts,
        &sign_request(SIGNING_SECRET, &ts, challenge),
        "application/json",
    )
    .await;
    assert_eq!(resp.status(), 200);
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        json["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
}
