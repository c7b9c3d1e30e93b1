//! What only Discord has: the embed card and its thread, guild commands and autocomplete,
//! gateway drops, Discord's 429s and nonces, and the signed HTTP interactions endpoint.
//! The scenarios every surface shares are in `scenarios.rs`.

use crate::drivers::{json_text, Driver, Who};
use crate::fakes::discord::{sign, GUILD_ID};
use crate::fakes::Fault;
use crate::harness::*;
use serde_json::json;

#[tokio::test]
async fn a_mention_becomes_an_embed_card_with_a_thread_and_the_command_is_registered_once() {
    let w = World::discord().await;
    let ids = w
        .mastodon
        .add_mention("alice@other.social", "My **order** never arrived @everyone");
    let bot = w.start_bot().await;
    let d = w.discord_driver();
    let card = d.card(1).await;

    let m = w.discord.message(D_CHANNEL, &card.id).unwrap();
    let embed = &m.embeds[0];
    assert_eq!(embed["title"], "Mastodon mention #1");
    assert!(
        embed["url"].as_str().unwrap().contains(&ids.status_id),
        "link to the original: {embed}"
    );
    assert!(embed["author"]["name"]
        .as_str()
        .unwrap()
        .contains("@alice@other.social"));
    assert_eq!(
        embed["description"], "\\@brand My \\*\\*order\\*\\* never arrived \\@\u{200B}everyone",
        "customer text cannot format or ping"
    );
    let text = json_text(&m.embeds);
    assert!(
        text.contains("Open") && text.contains(":R>"),
        "state and age: {text}"
    );
    assert_eq!(
        d.buttons(&card),
        ["claim", "reply", "dm", "resolve", "ignore"]
    );
    assert!(m.nonce.is_some(), "posted with a nonce");
    // The thread is opened right after the card is posted.
    w.discord
        .wait_until(WAIT, "a thread on the card", |f| {
            f.thread_of(&card.id).is_some()
        })
        .await;
    let thread = w.discord.thread_of(&card.id).unwrap();
    assert!(w.discord.channel(&thread).unwrap()["name"]
        .as_str()
        .unwrap()
        .starts_with("Ticket #1"));

    let commands = w.discord.guild_commands(GUILD_ID);
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0]["name"], "mentions");
    let subs: Vec<&str> = commands[0]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for verb in [
        "list", "stats", "canned", "oncall", "claim", "unclaim", "resolve", "ignore", "reopen",
        "dm", "reply",
    ] {
        assert!(
            subs.contains(&verb),
            "/mentions {verb} is registered: {subs:?}"
        );
    }
    let identify = &w.discord.identify_payloads()[0];
    assert_eq!(identify["intents"], 1, "GUILDS only: no privileged intent");

    let (status, _) = bot.terminate().await;
    assert!(status.success());
    let _bot = w.start_bot().await;
    assert_eq!(
        w.discord.guild_commands(GUILD_ID).len(),
        1,
        "a restart does not duplicate the command"
    );
    assert_eq!(
        w.discord.command_overwrites().len(),
        2,
        "registered by bulk overwrite each start"
    );
}

#[tokio::test]
async fn ticket_numbers_are_offered_as_the_agent_types() {
    let w = World::discord().await;
    for i in 0..12 {
        w.mastodon.add_mention(&format!("c{i}"), "help");
    }
    let _bot = w.start_bot().await;
    let d = w.discord_driver();
    d.card(12).await;
    let (id, name, roles) = crate::drivers::discord_user(Who::Ana);
    let options = json!([{"type": 1, "name": "claim", "options": [{"type": 4, "name": "ticket", "value": "1", "focused": true}]}]);
    let payload = w
        .discord
        .autocomplete_interaction(id, name, roles, "mentions", options, D_CHANNEL);
    let answer = d.interact(Who::Ana, payload).await;
    assert_eq!(answer["type"], 8, "{answer}");
    let values: Vec<i64> = answer["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_i64().unwrap())
        .collect();
    assert_eq!(
        values,
        [1, 10, 11, 12],
        "open tickets whose number starts with 1"
    );

    let (id, name, roles) = crate::drivers::discord_user(Who::Eve);
    let options = json!([{"type": 1, "name": "claim", "options": [{"type": 4, "name": "ticket", "value": "", "focused": true}]}]);
    let payload = w
        .discord
        .autocomplete_interaction(id, name, roles, "mentions", options, D_CHANNEL);
    let answer = d.interact(Who::Eve, payload).await;
    assert_eq!(
        answer["data"]["choices"],
        json!([]),
        "nothing offered to a non-agent"
    );
}

#[tokio::test]
async fn gateway_drops_are_survived_and_buttons_keep_working() {
    let w = World::discord().await;
    w.mastodon.add_mention("alice", "first");
    let _bot = w.start_bot().await;
    let d = w.discord_driver();
    let card = d.card(1).await;

    let ready = w.discord.ready_count();
    w.discord.drop_gateway();
    w.discord.wait_for_ready(ready + 1, WAIT).await;
    d.press(&card, Who::Ana, "claim").await;
    d.wait_card_text(&card, &d.mention(Who::Ana)).await;

    let ready = w.discord.ready_count();
    w.discord.send_reconnect();
    w.discord.wait_for_ready(ready + 1, WAIT).await;
    d.press(&card, Who::Ana, "resolve").await;
    d.wait_card_text(&card, "Resolved").await;
}

#[tokio::test]
async fn discord_429_is_honoured_and_the_card_is_posted_once() {
    let w = World::discord().await;
    let route = format!("POST /channels/{D_CHANNEL}/messages");
    w.discord
        .fail_next(&route, vec![Fault::too_many_requests(1)]);
    w.mastodon.add_mention("alice", "rate limited card");
    let bot = w.start_bot().await;
    let d = w.discord_driver();
    d.card(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(d.cards().len(), 1);
    let log = bot.log();
    assert!(
        log.contains("rate-limited; holding back every call through this gate"),
        "the 429 held the route's gate and the post waited its turn: {log}"
    );
    assert!(
        !log.contains(w.discord.token()),
        "the token never reaches the log"
    );
}

#[tokio::test]
async fn killed_after_discord_created_the_card_but_before_it_was_recorded_posts_no_second_card() {
    let w = World::discord().await;
    w.mastodon.add_mention("alice", "hello?");
    w.discord
        .lose_next_answers(&format!("POST /channels/{D_CHANNEL}/messages"), 1);
    let bot = w.start_bot().await;
    let d = w.discord_driver();
    d.card(1).await; // on Discord, but the bot never heard back
    bot.kill().await;

    let bot = w.start_bot().await;
    bot.wait_for_log("card posted", WAIT).await;
    let card = d.card(1).await;
    d.press(&card, Who::Ana, "claim").await;
    d.wait_card_text(&card, &d.mention(Who::Ana)).await;
    assert_eq!(d.cards().len(), 1, "one card, and it is the live one");
    assert!(w.discord.thread_of(&card.id).is_some());
}

#[tokio::test]
async fn unknown_buttons_are_refused_privately() {
    let w = World::discord().await;
    w.mastodon.add_mention("alice", "hi");
    let bot = w.start_bot().await;
    let d = w.discord_driver();
    let card = d.card(1).await;
    let mut payload = d.press_payload(&card, Who::Ana, "claim", &[]);
    payload["data"]["custom_id"] = json!("mb:teleport:1");
    d.interact(Who::Ana, payload).await;
    d.wait_told(Who::Ana, "not one mentionbridge knows").await;
    bot.wait_for_log("unknown button pressed", WAIT).await;
    assert_eq!(d.card_updates(), 0);
}

#[tokio::test]
async fn the_http_interactions_endpoint_verifies_signature_and_age() {
    let w = World::with(None, Some(Mode::Http)).await;
    w.mastodon.add_mention("alice", "over http");
    let _bot = w.start_bot().await;
    let d = w.discord_driver();
    let card = d.card(1).await;
    let endpoint = d.endpoint();

    let (status, pong) = d.deliver(&w.discord.ping_interaction()).await;
    assert_eq!((status, pong), (200, json!({"type": 1})));

    let press = d.press_payload(&card, Who::Ana, "claim", &[]);
    let body = press.to_string();
    let post = |sig: String, ts: String, body: String| {
        let endpoint = endpoint.clone();
        async move {
            reqwest::Client::new()
                .post(endpoint)
                .header("content-type", "application/json")
                .header("x-signature-ed25519", sig)
                .header("x-signature-timestamp", ts)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let now = chrono::Utc::now().timestamp().to_string();
    let forged = post(
        sign(&now, &body.replace("ana", "eve")),
        now.clone(),
        body.clone(),
    )
    .await;
    assert_eq!(forged.status(), 401);
    let old = (chrono::Utc::now().timestamp() - 600).to_string();
    let stale = post(sign(&old, &body), old, body.clone()).await;
    assert_eq!(
        stale.status(),
        401,
        "a correctly signed but old request is a replay"
    );
    assert!(stale.text().await.unwrap().contains("more than 5 minutes"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(d.card_updates(), 0, "nothing changed");

    let (status, answer) = d.deliver(&press).await;
    assert_eq!(status, 200);
    assert_eq!(answer["type"], 6, "acknowledged: {answer}");
    d.wait_card_text(&card, &d.mention(Who::Ana)).await;
}

#[tokio::test]
async fn slow_answers_are_deferred_within_three_seconds_then_delivered() {
    let w = World::discord().await;
    w.mastodon.add_mention("alice", "slow day");
    let _bot = w
        .start_bot_with(&[("MENTIONBRIDGE_FAILPOINT", "slow-desk")])
        .await;
    let d = w.discord_driver();
    let card = d.card(1).await;

    // A button: acknowledged in time (the fake refuses callbacks after 3 s), then done.
    d.press(&card, Who::Ana, "claim").await;
    d.wait_card_text(&card, &d.mention(Who::Ana)).await;

    // A command: "thinking…" in time, then the answer replaces it.
    let options = json!([{"type": 1, "name": "resolve", "options": [{"type": 4, "name": "ticket", "value": 1}]}]);
    let payload = d.command_payload(Who::Ana, options);
    let interaction = w.discord.send_interaction(payload);
    let first = w.discord.wait_for_callback(&interaction, WAIT).await;
    assert_eq!(first["type"], 5, "deferred: {first}");
    assert_eq!(first["data"]["flags"], 64, "and private");
    w.discord
        .wait_until(WAIT, "the late answer", |f| {
            f.original_response(&interaction)
                .is_some_and(|m| m.content == "Done: resolved ticket #1.")
        })
        .await;
    d.wait_card_text(&card, "Resolved").await;
}

#[tokio::test]
async fn a_page_pings_the_on_call_agent_and_nobody_else() {
    let w = World::discord().await;
    w.page_on_call
        .store(true, std::sync::atomic::Ordering::SeqCst);
    w.mastodon.add_mention("alice", "ping me");
    let _bot = w.start_bot().await;
    let d = w.discord_driver();
    let card = d.card(1).await;
    d.wait_note(&card, "New ticket for").await;
    let thread = w.discord.thread_of(&card.id).unwrap();
    let bodies: Vec<serde_json::Value> = w
        .discord
        .requests()
        .into_iter()
        .filter(|(m, p, _)| m == "POST" && p.contains(&format!("/channels/{thread}/messages")))
        .map(|(_, _, b)| b)
        .collect();
    let page = bodies
        .iter()
        .find(|b| {
            b["content"]
                .as_str()
                .unwrap_or("")
                .contains("New ticket for")
        })
        .expect("the page was posted in the card's thread");
    assert_eq!(page["allowed_mentions"]["users"], json!([D_ANA]), "{page}");
    let others: Vec<_> = bodies.iter().filter(|b| !std::ptr::eq(*b, page)).collect();
    assert!(
        others.iter().all(|b| b["allowed_mentions"]["users"]
            .as_array()
            .is_none_or(|u| u.is_empty())),
        "other lines ping nobody: {others:?}"
    );
}

/// An unclaimed ticket calls the secondary on-call by name, then the whole channel; on
/// Discord only those pings are allowed, and the card counts down to the deadline.
#[tokio::test]
async fn an_unclaimed_ticket_escalates_to_the_secondary_then_the_channel_on_discord() {
    use chrono::TimeZone;
    let w = World::discord().await;
    *w.oncall_config.lock().unwrap() = Some(format!(
        r#"[oncall]
page_new_tickets = false

[[oncall.rotation]]
name = "front"
time_zone = "UTC"
members = ["discord:{D_ANA}"]
shifts = [{{ days = ["mon-sun"], start = "00:00", end = "12:00" }}, {{ days = ["mon-sun"], start = "12:00", end = "00:00" }}]

[[oncall.rotation]]
name = "backup"
time_zone = "UTC"
layer = "secondary"
members = ["discord:{D_BEN}"]
shifts = [{{ days = ["mon-sun"], start = "00:00", end = "12:00" }}, {{ days = ["mon-sun"], start = "12:00", end = "00:00" }}]
"#
    ));
    let start = chrono::Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    w.set_clock(start);
    w.mastodon.set_clock(Some(start));
    w.mastodon.add_mention("alice", "nobody home?");
    let clock = w.clock_file().display().to_string();
    let _bot = w
        .start_bot_with(&[("MENTIONBRIDGE_CLOCK_FILE", clock.as_str())])
        .await;
    let d = w.discord_driver();
    let card = d.card(1).await;
    let due = (start + chrono::Duration::minutes(60)).timestamp();
    assert!(
        d.card_text(&card).contains(&format!("<t:{due}:R>")),
        "{}",
        d.card_text(&card)
    );

    w.discord
        .wait_until(WAIT, "a thread on the card", |f| {
            f.thread_of(&card.id).is_some()
        })
        .await;
    let thread = w.discord.thread_of(&card.id).unwrap();
    let posted = |needle: &str| {
        w.discord
            .requests()
            .into_iter()
            .filter(|(m, p, _)| m == "POST" && p.contains(&format!("/channels/{thread}/messages")))
            .map(|(_, _, b)| b)
            .find(|b| b["content"].as_str().unwrap_or("").contains(needle))
    };
    w.set_clock(start + chrono::Duration::minutes(15));
    d.wait_note(&card, "Escalated (level 1)").await;
    let level1 = posted("Escalated (level 1)").unwrap();
    assert!(level1["content"]
        .as_str()
        .unwrap()
        .contains(&format!("<@{D_BEN}>")));
    assert_eq!(
        level1["allowed_mentions"]["users"],
        json!([D_BEN]),
        "{level1}"
    );
    assert!(
        !level1["allowed_mentions"]["parse"]
            .to_string()
            .contains("everyone"),
        "{level1}"
    );

    w.set_clock(start + chrono::Duration::minutes(30));
    d.wait_note(&card, "Escalated (level 2)").await;
    let level2 = posted("Escalated (level 2)").unwrap();
    assert!(
        level2["content"].as_str().unwrap().contains("@here"),
        "{level2}"
    );
    assert_eq!(
        level2["allowed_mentions"]["parse"],
        json!(["everyone"]),
        "{level2}"
    );
}
