//! X (API v2) end to end: the real binary against the fake X, with Slack as the desk.

use crate::drivers::{Driver, Who};
use crate::fakes::x::{self as fx, FakeX};
use crate::fakes::Fault;
use crate::harness::*;
use std::time::Duration;

pub(crate) const OAUTH1_ENV: [(&str, &str); 4] = [
    ("TEST_X_CONSUMER_KEY", fx::CONSUMER_KEY),
    ("TEST_X_CONSUMER_SECRET", fx::CONSUMER_SECRET),
    ("TEST_X_ACCESS_TOKEN", fx::ACCESS_TOKEN),
    ("TEST_X_ACCESS_TOKEN_SECRET", fx::ACCESS_TOKEN_SECRET),
];

const OAUTH2_ENV: [(&str, &str); 2] = [
    ("TEST_X_CLIENT_SECRET", fx::CLIENT_SECRET),
    ("TEST_X_REFRESH_TOKEN", fx::INITIAL_REFRESH_TOKEN),
];

/// An `[x]` section with OAuth 1.0a user context.
pub(crate) fn oauth1_section(x: &FakeX, budget: u32, keywords: &[&str]) -> String {
    format!(
        r#"
[x]
api_url = "{url}"
user_id = "{id}"
auth = "oauth1"
consumer_key = "${{TEST_X_CONSUMER_KEY}}"
consumer_secret = "${{TEST_X_CONSUMER_SECRET}}"
access_token = "${{TEST_X_ACCESS_TOKEN}}"
access_token_secret = "${{TEST_X_ACCESS_TOKEN_SECRET}}"
poll_interval_secs = 0.2
keywords = {keywords:?}
daily_request_budget = {budget}
"#,
        url = x.url(),
        id = fx::BRAND_ID,
    )
}

fn oauth2_section(x: &FakeX) -> String {
    format!(
        r#"
[x]
api_url = "{url}"
user_id = "{id}"
auth = "oauth2"
client_id = "{client}"
client_secret = "${{TEST_X_CLIENT_SECRET}}"
refresh_token = "${{TEST_X_REFRESH_TOKEN}}"
poll_interval_secs = 0.2
daily_request_budget = 100000
"#,
        url = x.url(),
        id = fx::BRAND_ID,
        client = fx::CLIENT_ID,
    )
}

pub(crate) async fn with_oauth1(w: &World, x: &FakeX, budget: u32, keywords: &[&str]) -> Bot {
    *w.extra_config.lock().unwrap() = oauth1_section(x, budget, keywords);
    w.start_bot_with(&OAUTH1_ENV).await
}

#[tokio::test]
async fn x_mention_becomes_a_card_and_the_reply_is_exactly_one_signed_post_in_its_thread() {
    let w = World::new().await;
    let x = FakeX::start().await;
    let mention = x.add_mention("alice", "my order & refund <3 ?");
    let bot = with_oauth1(&w, &x, 100_000, &[]).await;
    let d = w.slack_driver();
    let card = d.card(1).await;
    let text = d.card_text(&card);
    assert!(text.contains("alice"), "{text}");
    // X sends `&amp;`/`&lt;`; the card escapes once more for Slack's mrkdwn, so a
    // single escaping here means the bot decoded X's.
    assert!(
        text.contains("my order &amp; refund &lt;3 ?"),
        "decoded once: {text}"
    );

    d.reply_via_modal(&card, Who::Ana, "Refund sent today.")
        .await
        .expect("accepted");
    let posted = x.wait_for_tweets(1, WAIT).await;
    assert_eq!(posted[0].text, "@alice Refund sent today.");
    assert_eq!(
        posted[0].in_reply_to_tweet_id.as_deref(),
        Some(mention.as_str())
    );
    d.wait_card_text(&card, &posted[0].id).await;
    d.wait_card_text(&card, "published").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(x.created_tweets().len(), 1, "exactly one post");
    // Every request carried a valid OAuth 1.0a signature (the fake recomputes it).
    assert!(x.auth_failures().is_empty(), "{:?}", x.auth_failures());
    assert!(x.count("GET", "/2/users/me") >= 1);
    assert!(
        x.count("GET", &format!("/2/users/{}/mentions", fx::BRAND_ID)) >= 2,
        "polled after the first page: {:?}",
        x.requests()
    );
    assert!(
        x.requests()
            .iter()
            .any(|(_, p)| p.contains("since_id=") && p.contains("expansions=author_id")),
        "later polls ask for what is new only: {:?}",
        x.requests()
    );
    assert!(bot.log().contains("X account verified"));
}

#[tokio::test]
async fn x_keyword_posts_become_cards_and_x_refusals_reach_the_agent_in_its_own_words() {
    let w = World::new().await;
    let x = FakeX::start().await;
    let _bot = with_oauth1(&w, &x, 100_000, &["acme"]).await;
    let d = w.slack_driver();
    // After the first poll: a post about the brand that does not mention the account.
    tokio::time::sleep(Duration::from_millis(600)).await;
    x.add_tweet("carol", "is ACME down again?", None);
    x.add_tweet(fx::BRAND_USERNAME, "acme status: all good", None);
    let card = d.card(1).await;
    assert!(d.card_text(&card).contains("is ACME down again?"));
    assert!(
        x.requests()
            .iter()
            .any(|(_, p)| p.starts_with("/2/tweets/search/recent?query=acme%20-from%3Abrand")),
        "{:?}",
        x.requests()
    );

    // Self-serve apps may only reply to posts that mention the account.
    d.reply_via_modal(&card, Who::Ana, "Not down, promise.")
        .await
        .expect("accepted");
    let text = d.wait_card_text(&card, "not published").await;
    assert!(text.contains("not been mentioned"), "{text}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(x.created_tweets().is_empty());
    assert_eq!(d.cards().len(), 1, "our own post is no ticket");
}

#[tokio::test]
async fn x_private_reply_is_exactly_one_direct_message_and_a_closed_inbox_is_explained() {
    let w = World::new().await;
    let x = FakeX::start().await;
    x.add_mention("alice", "my account number is wrong");
    x.add_mention("bob", "me too");
    x.set_accepts_dms("bob", false);
    let _bot = with_oauth1(&w, &x, 100_000, &[]).await;
    let d = w.slack_driver();
    d.card(2).await;
    let card = d.card_with("my account number is wrong");
    d.reply_privately_via_form(&card, Who::Ana, "Send us the last 4 digits here.", None)
        .await
        .expect("accepted");
    let dms = x.wait_for_dms(1, WAIT).await;
    assert_eq!(dms[0].text, "Send us the last 4 digits here.");
    assert_eq!(dms[0].recipient_id, x.user_id("alice"));
    d.wait_card_text(&card, "published").await;

    let card2 = d.card_with("me too");
    d.reply_privately_via_form(&card2, Who::Ana, "Write to us here.", None)
        .await
        .expect("accepted");
    let text = d.wait_card_text(&card2, "not published").await;
    assert!(text.contains(fx::DM_NOT_ALLOWED_DETAIL), "{text}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(x.sent_dms().len(), 1, "exactly one DM");
    assert!(x.created_tweets().is_empty(), "nothing public");
}

#[tokio::test]
async fn x_429_waits_for_the_reset_then_posts_once() {
    let w = World::new().await;
    let x = FakeX::start().await;
    let mention = x.add_mention("alice", "hello?");
    let _bot = with_oauth1(&w, &x, 100_000, &[]).await;
    let d = w.slack_driver();
    let card = d.card(1).await;
    x.fail_next("POST /2/tweets", vec![Fault::too_many_requests(3)]);
    let asked = std::time::Instant::now();
    d.reply_via_modal(&card, Who::Ana, "Hi!")
        .await
        .expect("accepted");
    let posted = x.wait_for_tweets(1, WAIT).await;
    assert!(
        asked.elapsed() >= Duration::from_millis(1800),
        "waited for x-rate-limit-reset, not sooner ({:?})",
        asked.elapsed()
    );
    assert_eq!(
        posted[0].in_reply_to_tweet_id.as_deref(),
        Some(mention.as_str())
    );
    d.wait_card_text(&card, "published").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(x.count("POST", "/2/tweets"), 2, "one refused, one accepted");
    assert_eq!(x.created_tweets().len(), 1);
}

#[tokio::test]
async fn x_oauth2_refreshes_an_expired_token_and_uses_the_rotated_refresh_token_after_a_restart() {
    let w = World::new().await;
    let x = FakeX::start().await;
    x.add_mention("alice", "token test");
    *w.extra_config.lock().unwrap() = oauth2_section(&x);
    let bot = w.start_bot_with(&OAUTH2_ENV).await;
    let d = w.slack_driver();
    let card = d.card(1).await;
    assert_eq!(x.token_refreshes(), 1, "one refresh at start");

    x.expire_access_tokens();
    d.reply_via_modal(&card, Who::Ana, "Fixed.")
        .await
        .expect("accepted");
    x.wait_for_tweets(1, WAIT).await;
    d.wait_card_text(&card, "published").await;
    assert_eq!(x.token_refreshes(), 2, "refreshed once on 401");
    let log = bot.log();
    assert!(
        !log.contains(fx::INITIAL_REFRESH_TOKEN),
        "no secret in the log"
    );
    assert!(!log.contains(fx::CLIENT_SECRET), "no secret in the log");
    bot.kill().await;

    // The configured refresh token was rotated away: only the stored one works now.
    x.expire_access_tokens();
    let _bot = w.start_bot_with(&OAUTH2_ENV).await;
    x.add_mention("bob", "after the restart");
    let card2 = d.card(2).await;
    assert_eq!(x.token_refreshes(), 3);
    assert_eq!(
        x.used_refresh_tokens(),
        vec![
            fx::INITIAL_REFRESH_TOKEN.to_string(),
            fx::refresh_token(1),
            fx::refresh_token(2)
        ]
    );
    d.reply_via_modal(&card2, Who::Ana, "Welcome back.")
        .await
        .expect("accepted");
    x.wait_for_tweets(2, WAIT).await;
    assert!(x.auth_failures().iter().all(|f| f.contains("expired")));
}

#[tokio::test]
async fn x_budget_spent_stops_polling_but_replies_still_go_out() {
    let w = World::new().await;
    let x = FakeX::start().await;
    x.add_mention("alice", "budget test");
    let bot = with_oauth1(&w, &x, 6, &[]).await;
    let d = w.slack_driver();
    let card = d.card(1).await;
    bot.wait_for_log("X daily request budget of 6 spent", WAIT)
        .await;
    let mentions = format!("/2/users/{}/mentions", fx::BRAND_ID);
    let polled = x.count("GET", &mentions);
    assert_eq!(x.request_count(), 6, "{:?}", x.requests());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(x.count("GET", &mentions), polled, "no more polling today");
    assert!(bot.log().contains("polling paused until 00:00 UTC"));
    // The team is told in the channel, once.
    let warnings = |slack: &crate::fakes::slack::FakeSlack| {
        slack
            .messages(CHANNEL)
            .into_iter()
            .filter(|m| {
                m.text.contains("Mentions are not being collected")
                    && m.text.contains("budget of 6 spent")
            })
            .count()
    };
    w.slack
        .wait_until(WAIT, "a budget warning in the channel", |s| {
            warnings(s) == 1
        })
        .await;

    d.reply_via_modal(&card, Who::Ana, "Still answering.")
        .await
        .expect("accepted");
    x.wait_for_tweets(1, WAIT).await;
    d.wait_card_text(&card, "published").await;
    assert_eq!(x.request_count(), 7, "the reply is the only request");
}

#[tokio::test]
async fn x_lost_answer_then_kill_and_restart_finds_the_post_instead_of_posting_again() {
    let w = World::new().await;
    let x = FakeX::start().await;
    let mention = x.add_mention("alice", "where is my parcel?");
    let bot = with_oauth1(&w, &x, 100_000, &[]).await;
    let d = w.slack_driver();
    let card = d.card(1).await;

    x.lose_next_answers("POST /2/tweets", 1);
    d.reply_via_modal(
        &card,
        Who::Ana,
        "It ships tomorrow: https://example.com/track/1",
    )
    .await
    .expect("accepted");
    x.wait_for_tweets(1, WAIT).await; // X posted it, the bot never heard
    bot.kill().await;

    let bot = with_oauth1(&w, &x, 100_000, &[]).await;
    bot.wait_for_log("already published before the restart", WAIT)
        .await;
    let posted = x.created_tweets();
    d.wait_card_text(&card, &posted[0].id).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(x.created_tweets().len(), 1, "no second post");
    assert_eq!(x.replies_to(&mention).len(), 1);
    assert_eq!(x.count("POST", "/2/tweets"), 1);
    assert!(x.count("GET", &format!("/2/users/{}/tweets", fx::BRAND_ID)) >= 1);
}

#[tokio::test]
async fn x_killed_before_the_publish_then_restarted_posts_exactly_once() {
    let w = World::new().await;
    let x = FakeX::start().await;
    x.add_mention("alice", "anyone there?");
    *w.extra_config.lock().unwrap() = oauth1_section(&x, 100_000, &[]);
    let mut env = OAUTH1_ENV.to_vec();
    env.push(("MENTIONBRIDGE_FAILPOINT", "before-publish"));
    let bot = w.start_bot_with(&env).await;
    let d = w.slack_driver();
    let card = d.card(1).await;
    d.reply_via_modal(&card, Who::Ana, "Yes, here.")
        .await
        .expect("accepted");
    bot.wait_for_log("FAILPOINT before-publish reached", WAIT)
        .await;
    bot.kill().await;
    assert!(x.created_tweets().is_empty());

    let _bot = w.start_bot_with(&OAUTH1_ENV).await;
    x.wait_for_tweets(1, WAIT).await;
    d.wait_card_text(&card, "published").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(x.created_tweets().len(), 1);
    assert_eq!(x.created_tweets()[0].text, "@alice Yes, here.");
}
