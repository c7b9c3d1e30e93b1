//! Listening tools push mentions through the signed webhook.

use crate::drivers::{Driver, Who};
use crate::harness::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "webhook-test-secret-CANARY6813ec1566f2078f";

pub(crate) fn signature(ts: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    crate::fakes::remember_signature(&signature);
    format!("sha256={signature}")
}

pub(crate) async fn deliver(w: &World, body: &str, ts: i64, secret_ok: bool) -> (u16, Value) {
    let ts = ts.to_string();
    let sig = if secret_ok {
        signature(&ts, body)
    } else {
        signature(&ts, &format!("{body} "))
    };
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/ingest/mentions", w.http_port))
        .header("content-type", "application/json")
        .header("x-mentionbridge-timestamp", ts)
        .header("x-mentionbridge-signature", sig)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) async fn start(w: &World) -> Bot {
    *w.extra_config.lock().unwrap() = "\n[webhook]\nsecret = \"${TEST_WEBHOOK_SECRET}\"\n".into();
    let bot = w.start_bot_with(&[("TEST_WEBHOOK_SECRET", SECRET)]).await;
    bot.wait_for_log("HTTP server listening", WAIT).await;
    bot
}

#[tokio::test]
async fn a_pushed_mention_becomes_a_card_once_and_bad_deliveries_change_nothing() {
    let w = World::new().await;
    let _bot = start(&w).await;
    let d = w.slack_driver();
    let instagram = json!({
        "source": "brandwatch", "id": "bw-1", "platform": "instagram",
        "url": "https://www.instagram.com/p/C0ffee/", "text": "Still waiting for my refund",
        "created_at": "2026-11-25T10:00:00Z", "author": {"handle": "@ana_ig", "name": "Ana"}
    })
    .to_string();

    assert_eq!(deliver(&w, &instagram, now(), false).await.0, 401, "forged");
    assert_eq!(
        deliver(&w, &instagram, now() - 600, true).await.0,
        401,
        "stale"
    );
    let (status, body) = deliver(&w, "{\"source\": ", now(), true).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );
    let missing = instagram.replace("\"id\":\"bw-1\",", "");
    let (status, body) = deliver(&w, &missing, now(), true).await;
    assert_eq!(status, 422);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("missing field `id`"),
        "{body}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(d.cards().is_empty(), "nothing was stored");

    let (status, body) = deliver(&w, &instagram, now(), true).await;
    assert_eq!((status, &body["new_tickets"]), (202, &json!([1])), "{body}");
    let card = d.card(1).await;
    let text = d.card_text(&card);
    assert!(
        text.contains("Instagram") && text.contains("@ana_ig"),
        "{text}"
    );
    assert_eq!(
        d.buttons(&card),
        ["claim", "open", "resolve", "ignore"],
        "no reply where we cannot post"
    );
    assert!(text.contains("Mark answered"), "{text}");

    let (status, body) = deliver(&w, &instagram, now(), true).await;
    assert_eq!((status, &body["duplicates"]), (202, &json!(1)), "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(d.cards().len(), 1, "a redelivery makes no second card");

    let said = d.command(Who::Ana, "reply 1 hello").await;
    assert!(said.contains("cannot post on Instagram"), "{said}");
    d.press(&card, Who::Ana, "resolve").await;
    d.wait_card_text(&card, "Resolved").await;
}

#[tokio::test]
async fn a_pushed_mastodon_mention_with_its_native_id_is_answered_on_mastodon() {
    let w = World::new().await;
    let _bot = start(&w).await;
    let d = w.slack_driver();
    let status_id = w
        .mastodon
        .add_mention("bob", "found you via a listening tool")
        .status_id;
    let body = json!([{
        "source": "talkwalker", "id": "tw-77", "platform": "mastodon", "remote_id": status_id,
        "url": "https://social.example/@bob/1", "text": "found you via a listening tool",
        "created_at": "2026-11-25T10:00:00Z", "author": {"handle": "bob"}
    }])
    .to_string();
    let (status, _) = deliver(&w, &body, now(), true).await;
    assert_eq!(status, 202);
    // The bot also sees the same post through its own Mastodon polling: with the native
    // id both are one mention only if the keys match; the webhook's carries the tool's name.
    let card = d.card(1).await;
    let mine = d
        .cards()
        .into_iter()
        .find(|c| d.card_text(c).contains("talkwalker") || c.ticket == card.ticket)
        .unwrap();
    d.reply_via_modal(&mine, Who::Ana, "Thanks for reaching out!")
        .await
        .expect("accepted");
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert_eq!(
        posted[0].in_reply_to_id.as_deref(),
        Some(status_id.as_str())
    );
}
