//! Bluesky end to end: the real binary against the fake PDS (and fake Slack), plus
//! self-tests of the fake's wire shapes (`selftest`).

use crate::drivers::{Driver, Who};
use crate::fakes::bluesky::{FakeBluesky, WriteOutcome, APP_PASSWORD, CHAT_PROXY};
use crate::fakes::Fault;
use crate::harness::*;
use std::time::{Duration, Instant};

const PASSWORD_ENV: (&str, &str) = ("TEST_BLUESKY_PASSWORD", APP_PASSWORD);

async fn world(keywords: &[&str]) -> (World, FakeBluesky) {
    let w = World::new().await;
    let fake = FakeBluesky::start().await;
    let keywords = if keywords.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = keywords.iter().map(|k| format!("\"{k}\"")).collect();
        format!("keywords = [{}]\n", quoted.join(", "))
    };
    *w.extra_config.lock().unwrap() = format!(
        "\n[bluesky]\nservice_url = \"{}\"\nhandle = \"brand.test\"\napp_password = \"${{TEST_BLUESKY_PASSWORD}}\"\npoll_interval_secs = 0.2\n{keywords}",
        fake.url()
    );
    (w, fake)
}

async fn start(w: &World) -> Bot {
    w.start_bot_with(&[PASSWORD_ENV]).await
}

#[tokio::test]
async fn bluesky_mention_becomes_a_card_and_the_public_reply_is_one_post_in_the_thread() {
    let (w, fake) = world(&[]).await;
    let d = w.slack_driver();
    let (alice_uri, alice_cid) = fake.add_mention("alice.test", "my order is late");
    // Bob answers in Alice's thread and names the brand: the root stays Alice's post.
    let (bob_uri, bob_cid) = fake.add_reply("bob.test", &alice_uri, "mine too, since Monday");
    fake.add_like("carol.test", &alice_uri); // not a mention
    let bot = start(&w).await;

    d.card(2).await;
    // Both arrive in one poll; their order within it is not the point here.
    let cards = d.cards();
    let find = |needle: &str| {
        cards
            .iter()
            .find(|c| d.card_text(c).contains(needle))
            .cloned()
    };
    assert!(
        find("my order is late").is_some(),
        "Alice's mention has a card"
    );
    let card = find("mine too, since Monday").expect("Bob's reply has its own card");

    // A Bluesky reply needs no mention (the reply reference notifies Bob), so the desk
    // adds none; one the agent types becomes a mention facet.
    d.reply_via_modal(
        &card,
        Who::Ana,
        "@bob.test Sorry! Both ship today, see https://status.example/x.",
    )
    .await
    .expect("accepted");
    let posts = fake.wait_for_brand_posts(1, WAIT).await;
    let record = &posts[0].record;
    let text = "@bob.test Sorry! Both ship today, see https://status.example/x.";
    assert_eq!(record["text"], text);
    assert_eq!(record["$type"], "app.bsky.feed.post");
    assert_eq!(record["reply"]["root"]["uri"], alice_uri.as_str());
    assert_eq!(record["reply"]["root"]["cid"], alice_cid.as_str());
    assert_eq!(record["reply"]["parent"]["uri"], bob_uri.as_str());
    assert_eq!(record["reply"]["parent"]["cid"], bob_cid.as_str());
    let mention = &record["facets"][0];
    assert_eq!(mention["index"]["byteStart"], 0);
    assert_eq!(mention["index"]["byteEnd"], "@bob.test".len());
    assert_eq!(
        mention["features"][0]["$type"],
        "app.bsky.richtext.facet#mention"
    );
    assert_eq!(
        mention["features"][0]["did"],
        fake.did_of("bob.test").as_str()
    );
    let link = &record["facets"][1];
    assert_eq!(link["features"][0]["uri"], "https://status.example/x");
    let start = text.find("https://").unwrap();
    assert_eq!(link["index"]["byteStart"], start);
    assert_eq!(
        link["index"]["byteEnd"],
        start + "https://status.example/x".len()
    );
    assert!(record["createdAt"].as_str().unwrap().ends_with('Z'));

    let shown = d.wait_card_text(&card, "published").await;
    assert!(
        shown.contains(&format!(
            "https://bsky.app/profile/brand.test/post/{}",
            posts[0].rkey
        )),
        "{shown}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes = fake.writes();
    assert_eq!(writes.len(), 1, "exactly one write: {writes:?}");
    assert_eq!(writes[0].nsid, "com.atproto.repo.createRecord");
    assert_eq!(writes[0].outcome, WriteOutcome::Created);
    assert_eq!(d.cards().len(), 2, "the like made no card");
    assert_eq!(fake.create_session_count(), 1);
    drop(bot);
}

#[tokio::test]
async fn bluesky_private_reply_is_one_chat_message_through_the_chat_proxy() {
    let (w, fake) = world(&[]).await;
    let d = w.slack_driver();
    fake.add_mention("alice.test", "can you check my account?");
    fake.add_mention("dave.test", "DM me");
    fake.set_accepts_messages("dave.test", false);
    let _bot = start(&w).await;
    d.card(2).await;
    let card = d.card_with("can you check my account?");
    let dave = d.card_with("DM me");

    d.command(
        Who::Ana,
        &format!("dm {} Please send us your order number.", card.ticket),
    )
    .await;
    let messages = fake.wait_for_messages(1, WAIT).await;
    assert_eq!(messages[0].text, "Please send us your order number.");
    assert_eq!(messages[0].sender_did, fake.brand_did());
    let members = fake.convo_members(&messages[0].convo_id);
    assert!(members.contains(&fake.did_of("alice.test")), "{members:?}");
    let shown = d.wait_card_text(&card, "published").await;
    assert!(
        shown.contains(&format!(
            "https://bsky.app/messages/{}",
            messages[0].convo_id
        )),
        "{shown}"
    );
    for r in fake.requests() {
        if r.nsid.starts_with("chat.bsky.") {
            assert_eq!(r.proxy.as_deref(), Some(CHAT_PROXY), "{r:?}");
        }
    }

    // Someone who does not accept messages: refused for good, with Bluesky's words.
    d.command(Who::Ana, &format!("dm {} Hello Dave", dave.ticket))
        .await;
    let shown = d.wait_card_text(&dave, "not published").await;
    assert!(
        shown.contains("recipient has disabled incoming messages"),
        "{shown}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.chat_messages().len(), 1, "exactly one message");
    assert!(fake.brand_posts().is_empty(), "nothing public");
}

#[tokio::test]
async fn bluesky_rate_limited_write_waits_for_the_reset_then_posts_once() {
    let (w, fake) = world(&[]).await;
    let d = w.slack_driver();
    fake.add_mention("alice.test", "hello?");
    fake.fail_next(
        "com.atproto.repo.createRecord",
        vec![Fault::Status {
            code: 429,
            retry_after: Some(2),
            body: String::new(),
        }],
    );
    let _bot = start(&w).await;
    let card = d.card(1).await;
    d.reply_via_modal(&card, Who::Ana, "Hi Alice!")
        .await
        .expect("accepted");
    fake.wait_for_requests("com.atproto.repo.createRecord", 1, WAIT)
        .await;
    let limited_at = Instant::now();
    let posts = fake.wait_for_brand_posts(1, WAIT).await;
    assert!(
        limited_at.elapsed() >= Duration::from_millis(1000),
        "waited for ratelimit-reset, not just the outbox's own backoff"
    );
    assert_eq!(posts[0].record["text"], "Hi Alice!", "no mention added");
    d.wait_card_text(&card, "published").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.brand_posts().len(), 1);
    let writes = fake.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(
        writes[0].nsid, "com.atproto.repo.putRecord",
        "the retry writes the same rkey"
    );
}

#[tokio::test]
async fn bluesky_expired_token_is_refreshed_and_a_restart_reuses_the_stored_session() {
    let (w, fake) = world(&[]).await;
    let d = w.slack_driver();
    let bot = start(&w).await;
    fake.wait_for_requests("app.bsky.notification.listNotifications", 1, WAIT)
        .await;
    assert_eq!(fake.create_session_count(), 1);

    fake.expire_access_tokens();
    fake.add_mention("alice.test", "are you there?");
    d.card(1).await;
    assert_eq!(
        fake.refresh_session_count(),
        1,
        "renewed with refreshSession"
    );
    assert_eq!(fake.create_session_count(), 1, "no second login");
    bot.kill().await;

    // A restart reuses the stored (refreshed) session: no login at all.
    let polls = fake.count("app.bsky.notification.listNotifications");
    let bot = start(&w).await;
    fake.wait_for_requests("app.bsky.notification.listNotifications", polls + 1, WAIT)
        .await;
    assert_eq!(
        fake.create_session_count(),
        1,
        "the stored session was reused"
    );
    assert_eq!(fake.refresh_session_count(), 1);
    bot.kill().await;

    // Down for long: the access token expired and the refresh token is revoked. Only
    // then does the bot log in again.
    fake.expire_access_tokens();
    fake.revoke_refresh_tokens();
    let bot = start(&w).await;
    fake.add_mention("bob.test", "still there?");
    d.card(2).await;
    assert_eq!(fake.create_session_count(), 2);
    assert!(
        !bot.log().contains(APP_PASSWORD),
        "the password is never logged"
    );
}

#[tokio::test]
async fn bluesky_killed_before_the_send_then_restarted_posts_exactly_once() {
    let (w, fake) = world(&[]).await;
    let d = w.slack_driver();
    let (uri, _) = fake.add_mention("alice.test", "where is my parcel?");
    let bot = w
        .start_bot_with(&[PASSWORD_ENV, ("MENTIONBRIDGE_FAILPOINT", "before-publish")])
        .await;
    let card = d.card(1).await;
    d.reply_via_modal(&card, Who::Ana, "It ships tomorrow.")
        .await
        .expect("accepted");
    bot.wait_for_log("FAILPOINT before-publish reached", WAIT)
        .await;
    assert!(fake.brand_posts().is_empty(), "stopped before the send");
    bot.kill().await;

    let _bot = start(&w).await;
    let posts = fake.wait_for_brand_posts(1, WAIT).await;
    assert_eq!(posts[0].record["text"], "It ships tomorrow.");
    assert_eq!(posts[0].record["reply"]["parent"]["uri"], uri.as_str());
    d.wait_card_text(&card, "published").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fake.brand_posts().len(), 1, "exactly one post");
    assert_eq!(fake.writes().len(), 1);
}

#[tokio::test]
async fn bluesky_lost_answer_on_the_write_then_killed_and_restarted_still_one_post() {
    let (w, fake) = world(&[]).await;
    let d = w.slack_driver();
    fake.add_mention("alice.test", "refund status?");
    fake.lose_next_answers("com.atproto.repo.createRecord", 1);
    let bot = start(&w).await;
    let card = d.card(1).await;
    d.reply_via_modal(&card, Who::Ana, "Refund sent.")
        .await
        .expect("accepted");
    let posts = fake.wait_for_brand_posts(1, WAIT).await; // the PDS wrote it; no answer came
    bot.kill().await;

    let _bot = start(&w).await;
    let shown = d.wait_card_text(&card, "published").await;
    assert!(shown.contains(&posts[0].rkey), "{shown}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let now = fake.brand_posts();
    assert_eq!(now.len(), 1, "exactly one post: {now:?}");
    assert_eq!(now[0].cid, posts[0].cid, "the very same record");
    let writes = fake.writes();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(writes[1].nsid, "com.atproto.repo.putRecord");
    assert_eq!(writes[1].rkey, writes[0].rkey);
    assert_eq!(writes[1].outcome, WriteOutcome::Unchanged);
}

#[tokio::test]
async fn bluesky_lost_answer_on_a_chat_message_then_restarted_finds_it_instead_of_sending_again() {
    let (w, fake) = world(&[]).await;
    let d = w.slack_driver();
    fake.add_mention("alice.test", "please DM me");
    fake.lose_next_answers("chat.bsky.convo.sendMessage", 1);
    let bot = start(&w).await;
    let card = d.card(1).await;
    d.command(Who::Ana, "dm 1 Sent you the details.").await;
    fake.wait_for_messages(1, WAIT).await; // delivered; the bot never heard back
    bot.kill().await;

    let bot = start(&w).await;
    d.wait_card_text(&card, "published").await;
    bot.wait_for_log("already published before the restart", WAIT)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fake.chat_messages().len(), 1, "exactly one message");
    assert!(
        fake.count("chat.bsky.convo.getMessages") >= 1,
        "looked first"
    );
}

#[tokio::test]
async fn bluesky_first_start_takes_only_the_newest_page_then_reads_everything_newer() {
    let (w, fake) = world(&[]).await;
    let d = w.slack_driver();
    for i in 0..30 {
        fake.add_mention(&format!("old{i}.test"), &format!("old mention {i}"));
    }
    let bot = start(&w).await;
    d.card(20).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let cards = d.cards();
    assert_eq!(cards.len(), 20, "only the newest page on a first start");
    let texts: Vec<String> = cards.iter().map(|c| d.card_text(c)).collect();
    assert!(texts.iter().any(|t| t.contains("old mention 29")));
    assert!(texts.iter().any(|t| t.contains("old mention 10")));
    assert!(!texts.iter().any(|t| t.contains("old mention 9")));

    // A burst of more than a page while the bot is down: every one of them is read.
    bot.kill().await;
    for i in 0..60 {
        fake.add_mention(&format!("new{i}.test"), &format!("new mention {i}"));
    }
    let _bot = start(&w).await;
    d.card(80).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(d.cards().len(), 80);
    let last = d.cards().pop().unwrap();
    assert!(d.card_text(&last).contains("new mention 59"));
    let first_new = &d.cards()[20];
    assert!(
        d.card_text(first_new).contains("new mention 0"),
        "oldest first"
    );
}

#[tokio::test]
async fn bluesky_keyword_search_finds_posts_once_and_never_our_own() {
    let (w, fake) = world(&["acme"]).await;
    let d = w.slack_driver();
    fake.add_post("erin.test", "acme widgets broke again");
    let _bot = start(&w).await;
    let card = d.card(1).await;
    assert!(d.card_text(&card).contains("acme widgets broke again"));

    fake.add_post("frank.test", "does ACME have support?");
    // Both a mention and a keyword hit: one ticket.
    fake.add_mention("gina.test", "acme refund please");
    d.card(3).await;
    let gina = d
        .cards()
        .into_iter()
        .find(|c| d.card_text(c).contains("acme refund please"));
    let gina = gina.expect("gina's card");
    d.reply_via_modal(&gina, Who::Ana, "acme refunds take 3 days")
        .await
        .expect("accepted");
    fake.wait_for_brand_posts(1, WAIT).await;
    d.wait_card_text(&gina, "published").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        d.cards().len(),
        3,
        "no duplicate, and our own post is no mention"
    );
}

/// The fake's wire shapes, checked against what the lexicons say.
mod selftest {
    use super::*;
    use serde_json::{json, Value};

    struct Client {
        http: reqwest::Client,
        base: String,
    }

    impl Client {
        fn new(fake: &FakeBluesky) -> Client {
            Client {
                http: reqwest::Client::new(),
                base: fake.url(),
            }
        }

        async fn get(
            &self,
            nsid: &str,
            query: &str,
            token: &str,
            proxy: Option<&str>,
        ) -> (u16, reqwest::header::HeaderMap, Value) {
            let mut r = self
                .http
                .get(format!("{}/xrpc/{nsid}?{query}", self.base))
                .bearer_auth(token);
            if let Some(p) = proxy {
                r = r.header("atproto-proxy", p);
            }
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            (status, headers, resp.json().await.unwrap_or(Value::Null))
        }

        async fn post(
            &self,
            nsid: &str,
            body: Value,
            token: Option<&str>,
            proxy: Option<&str>,
        ) -> (u16, Value) {
            let mut r = self
                .http
                .post(format!("{}/xrpc/{nsid}", self.base))
                .json(&body);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            if let Some(p) = proxy {
                r = r.header("atproto-proxy", p);
            }
            let resp = r.send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.json().await.unwrap_or(Value::Null),
            )
        }

        async fn login(&self) -> (String, String) {
            let (s, v) = self
                .post(
                    "com.atproto.server.createSession",
                    json!({"identifier": "brand.test", "password": APP_PASSWORD}),
                    None,
                    None,
                )
                .await;
            assert_eq!(s, 200, "{v}");
            (
                v["accessJwt"].as_str().unwrap().to_string(),
                v["refreshJwt"].as_str().unwrap().to_string(),
            )
        }
    }

    #[tokio::test]
    async fn sessions_expire_refresh_once_and_errors_are_xrpc_bodies() {
        let fake = FakeBluesky::start().await;
        let c = Client::new(&fake);
        let (s, v) = c
            .post(
                "com.atproto.server.createSession",
                json!({"identifier": "brand.test", "password": "wrong"}),
                None,
                None,
            )
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (401, Some("AuthenticationRequired"))
        );
        let (access, refresh) = c.login().await;
        let (s, h, v) = c
            .get("com.atproto.server.getSession", "", &access, None)
            .await;
        assert_eq!(s, 200);
        assert_eq!(v["handle"], "brand.test");
        assert_eq!(v["did"], fake.brand_did().as_str());
        assert!(h.get("ratelimit-limit").is_some() && h.get("ratelimit-reset").is_some());
        assert!(h.get("ratelimit-remaining").is_some() && h.get("ratelimit-policy").is_some());

        fake.expire_access_tokens();
        let (s, _, v) = c
            .get("com.atproto.server.getSession", "", &access, None)
            .await;
        assert_eq!((s, v["error"].as_str()), (400, Some("ExpiredToken")), "{v}");
        let (s, v) = c
            .post(
                "com.atproto.server.refreshSession",
                Value::Null,
                Some(&refresh),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert!(v["accessJwt"].is_string() && v["refreshJwt"].is_string() && v["did"].is_string());
        let (s, v) = c
            .post(
                "com.atproto.server.refreshSession",
                Value::Null,
                Some(&refresh),
                None,
            )
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("ExpiredToken")),
            "rotated"
        );
        let (s, _, v) = c
            .get("com.atproto.server.getSession", "", "nonsense", None)
            .await;
        assert_eq!((s, v["error"].as_str()), (400, Some("InvalidToken")));
        assert_eq!(fake.create_session_count(), 1);
        assert_eq!(fake.refresh_session_count(), 1);

        fake.fail_next(
            "com.atproto.server.getSession",
            vec![Fault::Status {
                code: 429,
                retry_after: Some(30),
                body: String::new(),
            }],
        );
        let (access, _) = c.login().await;
        let (s, h, v) = c
            .get("com.atproto.server.getSession", "", &access, None)
            .await;
        assert_eq!((s, v["error"].as_str()), (429, Some("RateLimitExceeded")));
        assert_eq!(h["ratelimit-remaining"], "0");
        let reset: i64 = h["ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!((reset - chrono::Utc::now().timestamp() - 30).abs() <= 1);
        assert!(h.get("retry-after").is_none());
    }

    #[tokio::test]
    async fn notifications_page_backwards_and_search_filters_by_time() {
        let fake = FakeBluesky::start().await;
        let c = Client::new(&fake);
        let (access, _) = c.login().await;
        let (root, _) = fake.add_mention("alice.test", "one");
        fake.add_like("bob.test", &root);
        fake.add_mention("carol.test", "two");
        fake.add_mention("dave.test", "three acme");
        let (s, _, v) = c
            .get(
                "app.bsky.notification.listNotifications",
                "limit=2",
                &access,
                None,
            )
            .await;
        assert_eq!(s, 200);
        let n = v["notifications"].as_array().unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(
            n[0]["record"]["text"], "@brand.test three acme",
            "newest first"
        );
        for key in [
            "uri",
            "cid",
            "author",
            "reason",
            "record",
            "isRead",
            "indexedAt",
        ] {
            assert!(!n[0][key].is_null(), "{key} in {}", n[0]);
        }
        assert_eq!(n[0]["author"]["handle"], "dave.test");
        assert!(n[0]["author"]["did"]
            .as_str()
            .unwrap()
            .starts_with("did:plc:"));
        let facet = &n[0]["record"]["facets"][0];
        assert_eq!(facet["index"]["byteEnd"], "@brand.test".len());
        assert_eq!(facet["features"][0]["did"], fake.brand_did().as_str());
        let cursor = v["cursor"].as_str().unwrap().to_string();
        let q = format!("limit=2&cursor={}", urlencode(&cursor));
        let (_, _, v) = c
            .get("app.bsky.notification.listNotifications", &q, &access, None)
            .await;
        let n = v["notifications"].as_array().unwrap();
        assert_eq!(n[0]["reason"], "like");
        assert_eq!(n[1]["record"]["text"], "@brand.test one");
        let (_, _, v) = c
            .get(
                "app.bsky.notification.listNotifications",
                "reasons=mention&reasons=reply&reasons=quote",
                &access,
                None,
            )
            .await;
        assert_eq!(v["notifications"].as_array().unwrap().len(), 3, "no like");

        let (s, _, v) = c
            .get(
                "app.bsky.feed.searchPosts",
                "q=ACME&sort=latest",
                &access,
                None,
            )
            .await;
        assert_eq!(s, 200);
        let posts = v["posts"].as_array().unwrap();
        assert_eq!(posts.len(), 1);
        let indexed = posts[0]["indexedAt"].as_str().unwrap().to_string();
        let q = format!("q=acme&since={}", urlencode(&indexed));
        let (_, _, v) = c.get("app.bsky.feed.searchPosts", &q, &access, None).await;
        assert_eq!(
            v["posts"].as_array().unwrap().len(),
            1,
            "since is inclusive"
        );
        let (s, _, v) = c
            .get("app.bsky.feed.searchPosts", "sort=latest", &access, None)
            .await;
        assert_eq!((s, v["error"].as_str()), (400, Some("InvalidRequest")));
    }

    #[tokio::test]
    async fn records_put_identically_are_no_ops_and_chat_needs_the_proxy_header() {
        let fake = FakeBluesky::start().await;
        let c = Client::new(&fake);
        let (access, _) = c.login().await;
        let (uri, cid) = fake.add_mention("alice.test", "hi");
        let record = json!({"$type": "app.bsky.feed.post", "text": "@alice.test hello",
            "createdAt": "2024-05-01T10:00:00.000000Z",
            "reply": {"root": {"uri": uri, "cid": cid}, "parent": {"uri": uri, "cid": cid}},
            "facets": [{"index": {"byteStart": 0, "byteEnd": 11},
                        "features": [{"$type": "app.bsky.richtext.facet#mention", "did": fake.did_of("alice.test")}]}]});
        let write = |nsid: &'static str, record: Value| {
            let body = json!({"repo": fake.brand_did(), "collection": "app.bsky.feed.post",
                              "rkey": "3kaaaaaaaaa22", "record": record});
            let c = &c;
            let access = access.clone();
            async move { c.post(nsid, body, Some(&access), None).await }
        };
        let (s, v) = write("com.atproto.repo.createRecord", record.clone()).await;
        assert_eq!(s, 200, "{v}");
        assert!(v["uri"]
            .as_str()
            .unwrap()
            .ends_with("/app.bsky.feed.post/3kaaaaaaaaa22"));
        let first_cid = v["cid"].as_str().unwrap().to_string();
        let (s, v) = write("com.atproto.repo.createRecord", record.clone()).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("InvalidRequest")),
            "taken"
        );
        let (s, v) = write("com.atproto.repo.putRecord", record.clone()).await;
        assert_eq!((s, v["cid"].as_str()), (200, Some(first_cid.as_str())));
        let mut changed = record.clone();
        changed["text"] = json!("@alice.test hello again");
        let (s, _) = write("com.atproto.repo.putRecord", changed).await;
        assert_eq!(s, 200);
        let outcomes: Vec<WriteOutcome> = fake.writes().into_iter().map(|w| w.outcome).collect();
        assert_eq!(
            outcomes,
            [
                WriteOutcome::Created,
                WriteOutcome::Unchanged,
                WriteOutcome::Replaced
            ]
        );
        assert_eq!(fake.brand_posts().len(), 1);
        let mut bad = record.clone();
        bad["facets"][0]["index"]["byteEnd"] = json!(99);
        let body =
            json!({"repo": fake.brand_did(), "collection": "app.bsky.feed.post", "record": bad});
        let (s, v) = c
            .post("com.atproto.repo.createRecord", body, Some(&access), None)
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("InvalidRequest")),
            "{v}"
        );

        let alice = fake.did_of("alice.test");
        let q = format!("members={}", urlencode(&alice));
        let (s, _, v) = c
            .get("chat.bsky.convo.getConvoForMembers", &q, &access, None)
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (501, Some("MethodNotImplemented"))
        );
        let (s, _, v) = c
            .get(
                "chat.bsky.convo.getConvoForMembers",
                &q,
                &access,
                Some(CHAT_PROXY),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let convo = v["convo"]["id"].as_str().unwrap().to_string();
        assert_eq!(v["convo"]["members"].as_array().unwrap().len(), 2);
        for text in ["first", "second"] {
            let (s, v) = c
                .post(
                    "chat.bsky.convo.sendMessage",
                    json!({"convoId": convo, "message": {"text": text}}),
                    Some(&access),
                    Some(CHAT_PROXY),
                )
                .await;
            assert_eq!(s, 200, "{v}");
            assert_eq!(v["sender"]["did"], fake.brand_did().as_str());
            assert!(v["id"].is_string() && v["rev"].is_string() && v["sentAt"].is_string());
        }
        let (_, _, v) = c
            .get(
                "chat.bsky.convo.getMessages",
                &format!("convoId={convo}"),
                &access,
                Some(CHAT_PROXY),
            )
            .await;
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m[0]["text"], "second", "newest first");
        assert_eq!(m[0]["$type"], "chat.bsky.convo.defs#messageView");
    }

    fn urlencode(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }
}
