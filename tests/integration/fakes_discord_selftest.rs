//! Self-tests of the fake Discord: it speaks the wire protocol real clients expect.
//!
//! REST is driven both with plain reqwest (exact status codes, bodies, headers) and
//! with serenity 0.12.5's own `Http` (its routes, request bodies and response models).
//! The gateway is driven by serenity's `Client` (through `HttpBuilder::proxy` and
//! `ratelimiter_disabled(true)`, as the bot does) and by a minimal websocket client
//! written here whose frames are parsed with serenity's `GatewayEvent`.
use crate::fakes::discord::{
    self, FakeDiscord, APP_ID, BOT_TOKEN, BOT_USER_ID, DEFAULT_CHANNEL, GUILD_ID,
};
use crate::fakes::Fault;
use serde_json::{json, Value};
use serenity::all::{
    ActionRowComponent, AutoArchiveDuration, ButtonStyle, ChannelId, ChannelType, Client,
    ClientBuilder, CommandDataOptionValue, CommandOptionType, ComponentInteractionDataKind,
    Context, CreateActionRow, CreateAutocompleteResponse, CreateButton, CreateCommand,
    CreateCommandOption, CreateEmbed, CreateInputText, CreateInteractionResponse,
    CreateInteractionResponseMessage, CreateMessage, CreateModal, CreateThread, EditMessage, Event,
    EventHandler, GatewayEvent, GatewayIntents, GetMessages, GuildId, Http, HttpBuilder,
    InputTextStyle, Interaction, Message, MessageId, Nonce, Ready, ResumedEvent, ShardManager,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ALICE: &str = "1200000000000000001";
const AGENT_ROLE: &str = "1300000000000000001";

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn call(
    fake: &FakeDiscord,
    method: &str,
    path: &str,
    body: Option<Value>,
    auth: Option<&str>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = http().request(method, format!("{}{}", fake.api_url(), path));
    if let Some(token) = auth {
        req = req.header("authorization", format!("Bot {token}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    Answer {
        status,
        headers,
        body,
    }
}

async fn api(fake: &FakeDiscord, method: &str, path: &str, body: Option<Value>) -> Answer {
    call(fake, method, path, body, Some(BOT_TOKEN)).await
}

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("missing header {name}: {:?}", a.headers))
}

fn serenity_http(fake: &FakeDiscord) -> Http {
    HttpBuilder::new(BOT_TOKEN)
        .proxy(fake.url())
        .ratelimiter_disabled(true)
        .application_id(APP_ID.parse::<u64>().expect("app id").into())
        .build()
}

fn card_body(ticket: &str) -> Value {
    json!({
        "content": "",
        "embeds": [{
            "title": format!("Mention {ticket}"),
            "description": "@brand help!",
            "color": 5793266,
            "fields": [{"name": "From", "value": "alice@example.social"}]
        }],
        "components": [{"type": 1, "components": [
            {"type": 2, "style": 1, "label": "Claim", "custom_id": format!("claim:{ticket}")},
            {"type": 2, "style": 2, "label": "Reply", "custom_id": format!("reply:{ticket}")},
            {"type": 2, "style": 5, "label": "Open", "url": "https://example.social/@alice/1"}
        ]}]
    })
}

async fn post_card(fake: &FakeDiscord, channel: &str, ticket: &str) -> Value {
    let a = api(
        fake,
        "POST",
        &format!("/channels/{channel}/messages"),
        Some(card_body(ticket)),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

fn ticket_command() -> Value {
    json!({
        "name": "ticket",
        "description": "Work with tickets",
        "options": [
            {"type": 1, "name": "claim", "description": "Claim a ticket", "options": [
                {"type": 3, "name": "id", "description": "Ticket", "required": true, "autocomplete": true}
            ]},
            {"type": 1, "name": "list", "description": "List open tickets"}
        ]
    })
}

async fn register_commands(fake: &FakeDiscord) -> Value {
    let a = api(
        fake,
        "PUT",
        &format!("/applications/{APP_ID}/guilds/{GUILD_ID}/commands"),
        Some(json!([ticket_command(), {"name": "reply", "description": "Answer a mention"}])),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

fn error_code(e: &serenity::Error) -> Option<(u16, isize)> {
    match e {
        serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) => {
            Some((r.status_code.as_u16(), r.error.code))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------

#[tokio::test]
async fn discord_rest_identity_auth_and_errors() {
    let fake = FakeDiscord::start().await;

    let me = api(&fake, "GET", "/users/@me", None).await;
    assert_eq!(me.status, 200);
    assert_eq!(header(&me, "content-type"), "application/json");
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-reset-after",
        "x-ratelimit-bucket",
    ] {
        header(&me, h);
    }
    assert_eq!(me.body["id"], BOT_USER_ID);
    assert_eq!(me.body["discriminator"], "0");
    assert_eq!(me.body["bot"], true);
    assert!(me.body.get("global_name").is_some());

    for auth in [None, Some("wrong")] {
        let a = call(&fake, "GET", "/users/@me", None, auth).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.body, json!({"message": "401: Unauthorized", "code": 0}));
        assert_eq!(header(&a, "content-type"), "application/json");
    }

    let app = api(&fake, "GET", "/applications/@me", None).await;
    assert_eq!(app.status, 200);
    assert_eq!(app.body["id"], APP_ID);
    assert_eq!(app.body["verify_key"], discord::public_key_hex());
    assert_eq!(app.body["bot_public"], false);
    assert!(app.body["flags"].is_u64());

    let gw = call(&fake, "GET", "/gateway", None, None).await;
    assert_eq!(gw.body, json!({"url": fake.gateway_url()}));
    let gwb = api(&fake, "GET", "/gateway/bot", None).await;
    assert_eq!(gwb.body["shards"], 1);
    assert_eq!(gwb.body["session_start_limit"]["max_concurrency"], 1);

    let a = api(
        &fake,
        "POST",
        "/channels/999/messages",
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!(
        (a.status, a.body),
        (404, json!({"message": "Unknown Channel", "code": 10003}))
    );

    fake.set_missing_access(DEFAULT_CHANNEL, true);
    let path = format!("/channels/{DEFAULT_CHANNEL}/messages");
    let a = api(&fake, "POST", &path, Some(json!({"content": "x"}))).await;
    assert_eq!(
        (a.status, a.body),
        (403, json!({"message": "Missing Access", "code": 50001}))
    );
    fake.set_missing_access(DEFAULT_CHANNEL, false);

    let a = api(&fake, "POST", &path, Some(json!({"content": ""}))).await;
    assert_eq!(
        (a.status, a.body),
        (
            400,
            json!({"message": "Cannot send an empty message", "code": 50006})
        )
    );
    let a = api(
        &fake,
        "POST",
        &path,
        Some(json!({"content": "x".repeat(2001)})),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["code"], 50035);
    assert_eq!(a.body["message"], "Invalid Form Body");
    assert_eq!(
        a.body["errors"]["content"]["_errors"][0]["code"],
        "BASE_TYPE_MAX_LENGTH"
    );
    let mut too_many_buttons = card_body("T9");
    too_many_buttons["components"][0]["components"] = json!((0..6)
        .map(|i| json!({"type": 2, "style": 1, "label": "b", "custom_id": format!("b{i}")}))
        .collect::<Vec<_>>());
    let a = api(&fake, "POST", &path, Some(too_many_buttons)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body["errors"]["components"]["0"]["components"]["_errors"].is_array());

    let a = api(
        &fake,
        "PATCH",
        &format!("{path}/1234567890"),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!(
        (a.status, a.body),
        (404, json!({"message": "Unknown Message", "code": 10008}))
    );

    let raw = http()
        .post(format!("{}{}", fake.api_url(), path))
        .header("authorization", format!("Bot {BOT_TOKEN}"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(raw.status().as_u16(), 400);
    assert_eq!(raw.json::<Value>().await.expect("json")["code"], 50109);

    let no_ct = http()
        .post(format!("{}{}", fake.api_url(), path))
        .header("authorization", format!("Bot {BOT_TOKEN}"))
        .body(r#"{"content":"x"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(no_ct.status().as_u16(), 400);
    let no_ct: Value = no_ct.json().await.expect("json");
    assert_eq!(no_ct["code"], 50035);
    assert_eq!(
        no_ct["errors"]["_errors"][0]["code"],
        "CONTENT_TYPE_INVALID"
    );
    fake.set_require_user_agent(true);
    assert_eq!(api(&fake, "GET", "/users/@me", None).await.status, 400);
    let with_ua = http()
        .get(format!("{}/users/@me", fake.api_url()))
        .header("authorization", format!("Bot {BOT_TOKEN}"))
        .header(
            "user-agent",
            "DiscordBot (https://example.org/mentionbridge, 0.1.0)",
        )
        .send()
        .await
        .expect("send");
    assert_eq!(with_ua.status().as_u16(), 200);
    fake.set_require_user_agent(false);

    assert_eq!(api(&fake, "GET", "/nope", None).await.status, 404);
    assert_eq!(fake.count("GET", "/users/@me"), 5);
    assert_eq!(fake.count("POST", "/api/v10/channels/"), 7);
}

#[tokio::test]
async fn discord_messages_nonce_paging_replies_threads() {
    let fake = FakeDiscord::start().await;
    fake.add_channel("1100000000000000011", "other");
    let path = format!("/channels/{DEFAULT_CHANNEL}/messages");

    let mut body = card_body("T1");
    body["nonce"] = json!("card-T1");
    body["enforce_nonce"] = json!(true);
    let first = api(&fake, "POST", &path, Some(body.clone())).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let m = &first.body;
    assert_eq!(m["channel_id"], DEFAULT_CHANNEL);
    assert_eq!(m["author"]["id"], BOT_USER_ID);
    assert_eq!(m["author"]["bot"], true);
    assert_eq!(m["type"], 0);
    assert_eq!(m["nonce"], "card-T1");
    assert_eq!(m["edited_timestamp"], Value::Null);
    assert_eq!(m["embeds"][0]["type"], "rich");
    assert_eq!(m["embeds"][0]["fields"][0]["inline"], false);
    assert_eq!(m["components"][0]["id"], 1);
    assert_eq!(m["components"][0]["components"][2]["id"], 4);
    serde_json::from_value::<Message>(m.clone()).expect("serenity Message");
    let id = m["id"].as_str().expect("id").to_string();

    // The retried create with the same nonce returns the earlier message.
    let again = api(&fake, "POST", &path, Some(body.clone())).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["id"], id.as_str());
    assert_eq!(fake.messages(DEFAULT_CHANNEL).len(), 1);
    // Without enforce_nonce, or in another channel, a new message is created.
    body["enforce_nonce"] = json!(false);
    let third = api(&fake, "POST", &path, Some(body.clone())).await;
    assert_ne!(third.body["id"], id.as_str());
    body["enforce_nonce"] = json!(true);
    let other = api(
        &fake,
        "POST",
        "/channels/1100000000000000011/messages",
        Some(body.clone()),
    )
    .await;
    assert_eq!(other.status, 200);
    assert_ne!(other.body["id"], id.as_str());
    assert_eq!(fake.messages(DEFAULT_CHANNEL).len(), 2);
    assert_eq!(
        fake.messages(DEFAULT_CHANNEL)[0].nonce.as_deref(),
        Some("card-T1")
    );
    // Reads do not echo the nonce.
    let read = api(&fake, "GET", &format!("{path}/{id}"), None).await;
    assert!(read.body.get("nonce").is_none());

    // Edit.
    let edit = api(
        &fake,
        "PATCH",
        &format!("{path}/{id}"),
        Some(json!({"content": "claimed by bob", "components": []})),
    )
    .await;
    assert_eq!(edit.status, 200);
    assert!(edit.body["edited_timestamp"].is_string());
    assert_eq!(edit.body["components"], json!([]));
    assert_eq!(edit.body["embeds"][0]["title"], "Mention T1");
    let stored = fake.message(DEFAULT_CHANNEL, &id).expect("stored");
    assert!(stored.edited);
    assert_eq!(stored.content, "claimed by bob");
    assert_eq!(fake.edits(&id).len(), 1);

    // Paging: newest first.
    let mut ids = vec![id.clone(), third.body["id"].as_str().unwrap().to_string()];
    for i in 0..3 {
        let a = api(
            &fake,
            "POST",
            &path,
            Some(json!({"content": format!("m{i}")})),
        )
        .await;
        ids.push(a.body["id"].as_str().unwrap().to_string());
    }
    let page = api(&fake, "GET", &format!("{path}?limit=2"), None).await;
    let got: Vec<&str> = page
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str()]);
    let before = api(
        &fake,
        "GET",
        &format!("{path}?limit=2&before={}", ids[3]),
        None,
    )
    .await;
    let got: Vec<&str> = before
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()]);
    let after = api(&fake, "GET", &format!("{path}?after={}", ids[2]), None).await;
    let got: Vec<&str> = after
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str()]);
    assert_eq!(
        api(&fake, "GET", &format!("{path}?limit=101"), None)
            .await
            .status,
        400
    );

    // Replies.
    let reply = api(
        &fake,
        "POST",
        &path,
        Some(json!({"content": "re", "message_reference": {"message_id": id}})),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["type"], 19);
    assert_eq!(reply.body["referenced_message"]["id"], id.as_str());
    let bad = api(
        &fake,
        "POST",
        &path,
        Some(json!({"content": "re", "message_reference": {"message_id": "42"}})),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.body["errors"]["message_reference"]["_errors"][0]["code"],
        "REPLIES_UNKNOWN_MESSAGE"
    );
    let lenient = api(
        &fake,
        "POST",
        &path,
        Some(
            json!({"content": "re", "message_reference": {"message_id": "42", "fail_if_not_exists": false}}),
        ),
    )
    .await;
    assert_eq!(
        (lenient.status, lenient.body["type"].clone()),
        (200, json!(0))
    );

    // Threads: the thread id is the message id, once per message.
    let t = api(
        &fake,
        "POST",
        &format!("{path}/{id}/threads"),
        Some(json!({"name": "Ticket T1", "auto_archive_duration": 1440})),
    )
    .await;
    assert_eq!(t.status, 201, "{}", t.body);
    assert_eq!(t.body["id"], id.as_str());
    assert_eq!(t.body["type"], 11);
    assert_eq!(t.body["parent_id"], DEFAULT_CHANNEL);
    assert_eq!(t.body["guild_id"], GUILD_ID);
    assert_eq!(t.body["thread_metadata"]["auto_archive_duration"], 1440);
    assert_eq!(t.body["thread_metadata"]["archived"], false);
    assert_eq!(t.body["member"]["user_id"], BOT_USER_ID);
    let again = api(
        &fake,
        "POST",
        &format!("{path}/{id}/threads"),
        Some(json!({"name": "again"})),
    )
    .await;
    assert_eq!(
        (again.status, again.body),
        (
            400,
            json!({"message": "A thread has already been created for this message", "code": 160004})
        )
    );
    assert_eq!(fake.thread_of(&id).as_deref(), Some(id.as_str()));
    let in_thread = api(
        &fake,
        "POST",
        &format!("/channels/{id}/messages"),
        Some(json!({"content": "answer sent"})),
    )
    .await;
    assert_eq!(in_thread.status, 200);
    assert_eq!(in_thread.body["channel_id"], id.as_str());
    assert_eq!(in_thread.body["position"], 0);
    assert_eq!(fake.messages(&id).len(), 1);
    let parent = api(&fake, "GET", &format!("{path}/{id}"), None).await;
    assert_eq!(parent.body["thread"]["id"], id.as_str());
    assert_eq!(parent.body["thread"]["message_count"], 1);
    serde_json::from_value::<Message>(parent.body.clone()).expect("serenity Message w/ thread");

    // Deletions.
    fake.delete_channel(&id);
    let gone = api(
        &fake,
        "POST",
        &format!("/channels/{id}/messages"),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!(gone.body["code"], 10003);
    assert!(fake.delete_message(DEFAULT_CHANNEL, &id));
    let gone = api(
        &fake,
        "PATCH",
        &format!("{path}/{id}"),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!(gone.body["code"], 10008);
}

#[tokio::test]
async fn discord_commands_bulk_overwrite_is_idempotent() {
    let fake = FakeDiscord::start().await;
    let path = format!("/applications/{APP_ID}/guilds/{GUILD_ID}/commands");
    let first = register_commands(&fake).await;
    assert_eq!(first.as_array().unwrap().len(), 2);
    let c0 = &first[0];
    assert_eq!(c0["application_id"], APP_ID);
    assert_eq!(c0["guild_id"], GUILD_ID);
    assert_eq!(c0["type"], 1);
    assert!(c0["version"].is_string());
    assert_eq!(c0["options"][0]["options"][0]["autocomplete"], true);
    let second = register_commands(&fake).await;
    assert_eq!(first, second, "same set, same ids and versions");
    assert_eq!(fake.commands_created(), 2);
    assert_eq!(fake.guild_commands(GUILD_ID).len(), 2);
    assert_eq!(fake.command_overwrites().len(), 2);

    let mut changed = ticket_command();
    changed["description"] = json!("Tickets, reworded");
    let third = api(
        &fake,
        "PUT",
        &path,
        Some(json!([changed, {"name": "stats", "description": "Numbers"}])),
    )
    .await;
    assert_eq!(third.status, 200);
    assert_eq!(third.body[0]["id"], first[0]["id"]);
    assert_ne!(third.body[0]["version"], first[0]["version"]);
    assert_eq!(fake.commands_created(), 3);
    let names: Vec<String> = fake
        .guild_commands(GUILD_ID)
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["ticket", "stats"]);
    let listed = api(&fake, "GET", &path, None).await;
    assert_eq!(listed.body, third.body);

    let dup = api(
        &fake,
        "PUT",
        &path,
        Some(json!([{"name": "a", "description": "x"}, {"name": "a", "description": "y"}])),
    )
    .await;
    assert_eq!(dup.status, 400);
    assert_eq!(dup.body["code"], 50035);
    assert_eq!(
        dup.body["errors"]["_errors"][0]["code"],
        "APPLICATION_COMMANDS_DUPLICATE_NAME"
    );
    let bad_name = api(
        &fake,
        "PUT",
        &path,
        Some(json!([{"name": "Bad Name", "description": "x"}])),
    )
    .await;
    assert_eq!(bad_name.status, 400);
    assert!(bad_name.body["errors"]["0"]["name"]["_errors"].is_array());
    let other_guild = api(
        &fake,
        "PUT",
        &format!("/applications/{APP_ID}/guilds/42/commands"),
        Some(json!([])),
    )
    .await;
    assert_eq!(
        other_guild.body,
        json!({"message": "Missing Access", "code": 50001})
    );
    assert_eq!(
        fake.guild_commands(GUILD_ID).len(),
        2,
        "failed calls change nothing"
    );
}

#[tokio::test]
async fn discord_faults_429_and_lost_answers() {
    let fake = FakeDiscord::start().await;
    let path = format!("/channels/{DEFAULT_CHANNEL}/messages");
    fake.fail_next(
        &format!("POST {path}"),
        vec![
            Fault::too_many_requests(2),
            Fault::status(500),
            Fault::Delay(Duration::from_millis(200)),
        ],
    );
    let a = api(&fake, "POST", &path, Some(json!({"content": "1"}))).await;
    assert_eq!(a.status, 429);
    assert_eq!(
        a.body,
        json!({"message": "You are being rate limited.", "retry_after": 2.0, "global": false})
    );
    assert_eq!(header(&a, "retry-after"), "2");
    assert_eq!(header(&a, "x-ratelimit-remaining"), "0");
    assert_eq!(header(&a, "x-ratelimit-scope"), "user");
    assert_eq!(header(&a, "content-type"), "application/json");
    let a = api(&fake, "POST", &path, Some(json!({"content": "2"}))).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.body["code"], 0);
    let t0 = Instant::now();
    let a = api(&fake, "POST", &path, Some(json!({"content": "3"}))).await;
    assert_eq!(a.status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(200));
    assert_eq!(fake.messages(DEFAULT_CHANNEL).len(), 1, "faults do no work");
    // GET is not matched by a POST rule.
    assert_eq!(api(&fake, "GET", &path, None).await.status, 200);

    // A lost answer: the message is created, the client never hears back.
    fake.lose_next_answers("POST /channels/", 1);
    let lost = reqwest::Client::new()
        .post(format!("{}{}", fake.api_url(), path))
        .header("authorization", format!("Bot {BOT_TOKEN}"))
        .json(&json!({"content": "lost", "nonce": "n-lost", "enforce_nonce": true}))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(lost.is_err(), "the answer must never arrive");
    assert_eq!(fake.messages(DEFAULT_CHANNEL).len(), 2);
    // The retry with the same nonce gets the same message back.
    let retry = api(
        &fake,
        "POST",
        &path,
        Some(json!({"content": "lost", "nonce": "n-lost", "enforce_nonce": true})),
    )
    .await;
    assert_eq!(
        retry.body["id"],
        fake.messages(DEFAULT_CHANNEL)[1].id.as_str()
    );
    assert_eq!(fake.messages(DEFAULT_CHANNEL).len(), 2);

    // Enforced buckets answer 429 with the headers' reset.
    fake.set_rate_limit(2, Duration::from_secs(5));
    fake.set_enforce_rate_limit(true);
    let statuses = [
        api(&fake, "GET", &path, None).await,
        api(&fake, "GET", &path, None).await,
        api(&fake, "GET", &path, None).await,
    ];
    assert_eq!(
        statuses.iter().map(|a| a.status).collect::<Vec<_>>(),
        vec![200, 200, 429]
    );
    assert_eq!(header(&statuses[1], "x-ratelimit-remaining"), "0");
    assert!(statuses[2].body["retry_after"].as_f64().unwrap() > 0.0);
    assert_eq!(
        header(&statuses[0], "x-ratelimit-bucket"),
        header(&statuses[2], "x-ratelimit-bucket")
    );

    // Buckets are shared by route (same X-RateLimit-Bucket) but counted per channel.
    fake.add_channel("1100000000000000011", "other");
    let other = api(&fake, "GET", "/channels/1100000000000000011/messages", None).await;
    assert_eq!(other.status, 200, "counted per top-level resource");
    assert_eq!(
        header(&other, "x-ratelimit-bucket"),
        header(&statuses[0], "x-ratelimit-bucket")
    );

    // serenity does not decode Discord's 429 body (it has no "code").
    fake.set_enforce_rate_limit(false);
    fake.fail_next("POST /channels/", vec![Fault::too_many_requests(1)]);
    let http = serenity_http(&fake);
    let e = ChannelId::new(DEFAULT_CHANNEL.parse().unwrap())
        .send_message(&http, CreateMessage::new().content("x"))
        .await
        .expect_err("429");
    assert_eq!(error_code(&e), Some((429, -1)), "{e:?}");
}

// ---------------------------------------------------------------------------
// serenity's Http against the fake REST
// ---------------------------------------------------------------------------

#[tokio::test]
async fn discord_serenity_http_models() {
    let fake = FakeDiscord::start().await;
    let http = serenity_http(&fake);
    let me = http.get_current_user().await.expect("current user");
    assert_eq!(me.id.to_string(), BOT_USER_ID);
    assert!(me.bot);
    let app = http
        .get_current_application_info()
        .await
        .expect("application info");
    assert_eq!(app.id.to_string(), APP_ID);
    assert_eq!(app.verify_key, discord::public_key_hex());
    let gw = http.get_gateway().await.expect("gateway");
    assert_eq!(gw.url, fake.gateway_url());
    let bot_gw = http.get_bot_gateway().await.expect("bot gateway");
    assert_eq!(bot_gw.shards, 1);

    let channel = ChannelId::new(DEFAULT_CHANNEL.parse().unwrap());
    let card = || {
        CreateMessage::new()
            .embed(
                CreateEmbed::new()
                    .title("Mention T1")
                    .description("help")
                    .field("From", "alice", false),
            )
            .components(vec![CreateActionRow::Buttons(vec![
                CreateButton::new("claim:T1")
                    .label("Claim")
                    .style(ButtonStyle::Primary),
                CreateButton::new_link("https://example.social/1").label("Open"),
            ])])
            .nonce(Nonce::String("card-T1".into()))
            .enforce_nonce(true)
    };
    let m1 = channel.send_message(&http, card()).await.expect("send");
    let m2 = channel.send_message(&http, card()).await.expect("resend");
    assert_eq!(m1.id, m2.id, "enforce_nonce dedupes serenity's retry");
    assert_eq!(m1.components.len(), 1);
    assert_eq!(m1.embeds[0].kind.as_deref(), Some("rich"));
    let edited = channel
        .edit_message(&http, m1.id, EditMessage::new().content("claimed"))
        .await
        .expect("edit");
    assert!(edited.edited_timestamp.is_some());
    assert_eq!(edited.content, "claimed");
    let listed = channel
        .messages(&http, GetMessages::new().limit(10))
        .await
        .expect("messages");
    assert_eq!(listed.len(), 1);

    let thread = channel
        .create_thread_from_message(
            &http,
            m1.id,
            CreateThread::new("Ticket T1").auto_archive_duration(AutoArchiveDuration::OneDay),
        )
        .await
        .expect("thread");
    assert_eq!(thread.id.get(), m1.id.get());
    assert_eq!(thread.kind, ChannelType::PublicThread);
    assert_eq!(thread.parent_id, Some(channel));
    let again = channel
        .create_thread_from_message(&http, m1.id, CreateThread::new("again"))
        .await
        .expect_err("second thread");
    assert_eq!(error_code(&again), Some((400, 160004)));
    let in_thread = thread
        .id
        .send_message(&http, CreateMessage::new().content("answer sent"))
        .await
        .expect("send in thread");
    assert_eq!(in_thread.channel_id, thread.id);
    let missing = channel
        .edit_message(&http, MessageId::new(42), EditMessage::new().content("x"))
        .await
        .expect_err("unknown message");
    assert_eq!(error_code(&missing), Some((404, 10008)));

    let commands = || {
        vec![
            CreateCommand::new("ticket")
                .description("Work with tickets")
                .add_option(
                    CreateCommandOption::new(CommandOptionType::SubCommand, "claim", "Claim")
                        .add_sub_option(
                            CreateCommandOption::new(CommandOptionType::String, "id", "Ticket")
                                .required(true)
                                .set_autocomplete(true),
                        ),
                ),
            CreateCommand::new("reply").description("Answer a mention"),
        ]
    };
    let guild = GuildId::new(GUILD_ID.parse().unwrap());
    let a = guild.set_commands(&http, commands()).await.expect("set");
    let b = guild
        .set_commands(&http, commands())
        .await
        .expect("set again");
    assert_eq!(
        a.iter().map(|c| c.id).collect::<Vec<_>>(),
        b.iter().map(|c| c.id).collect::<Vec<_>>()
    );
    assert_eq!(fake.commands_created(), 2);
    assert_eq!(a[0].guild_id, Some(guild));
}

// ---------------------------------------------------------------------------
// Interactions: builders, callbacks, follow-ups, signatures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn discord_builders_deserialize_into_serenity() {
    let fake = FakeDiscord::start().await;
    register_commands(&fake).await;
    let card = post_card(&fake, DEFAULT_CHANNEL, "T1").await;
    let mid = card["id"].as_str().unwrap();

    let m = discord::member(ALICE, "alice", &[AGENT_ROLE]);
    for key in [
        "deaf",
        "mute",
        "flags",
        "pending",
        "permissions",
        "joined_at",
    ] {
        assert!(m.get(key).is_some(), "member lacks {key}");
    }

    let click = fake.component_interaction(
        DEFAULT_CHANNEL,
        mid,
        ALICE,
        "alice",
        &[AGENT_ROLE],
        "claim:T1",
    );
    for key in [
        "attachment_size_limit",
        "entitlements",
        "authorizing_integration_owners",
        "app_permissions",
        "context",
        "channel",
        "guild_locale",
    ] {
        assert!(click.get(key).is_some(), "interaction lacks {key}");
    }
    assert_eq!(
        click["message"],
        fake.message_json(DEFAULT_CHANNEL, mid).unwrap()
    );
    match serde_json::from_value::<Interaction>(click.clone()).expect("component") {
        Interaction::Component(c) => {
            assert_eq!(c.data.custom_id, "claim:T1");
            assert!(matches!(c.data.kind, ComponentInteractionDataKind::Button));
            assert_eq!(c.message.id.to_string(), mid);
            assert_eq!(c.message.components.len(), 1);
            let member = c.member.expect("member");
            assert_eq!(member.user.id.to_string(), ALICE);
            assert_eq!(member.roles[0].to_string(), AGENT_ROLE);
            assert_eq!(member.guild_id.to_string(), GUILD_ID);
            assert_eq!(c.user.id.to_string(), ALICE);
            assert_eq!(c.channel_id.to_string(), DEFAULT_CHANNEL);
            assert_eq!(c.attachment_size_limit, 10_485_760);
            assert!(c.app_permissions.is_some());
        }
        other => panic!("expected a component interaction, got {other:?}"),
    }
    let other = fake.component_interaction(DEFAULT_CHANNEL, mid, ALICE, "alice", &[], "claim:T1");
    assert_ne!(click["id"], other["id"]);
    assert_ne!(click["token"], other["token"]);
    let no_button = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fake.component_interaction(DEFAULT_CHANNEL, mid, ALICE, "alice", &[], "nope")
    }));
    assert!(no_button.is_err(), "a click on a missing button must panic");

    // A select menu.
    let select = api(
        &fake,
        "POST",
        &format!("/channels/{DEFAULT_CHANNEL}/messages"),
        Some(
            json!({"content": "assign", "components": [{"type": 1, "components": [
                {"type": 3, "custom_id": "assign:T1", "options": [{"label": "Bob", "value": "bob"}]}
            ]}]}),
        ),
    )
    .await;
    let pick = fake.select_interaction(
        DEFAULT_CHANNEL,
        select.body["id"].as_str().unwrap(),
        ALICE,
        "alice",
        &[],
        "assign:T1",
        &["bob"],
    );
    match serde_json::from_value::<Interaction>(pick).expect("select") {
        Interaction::Component(c) => match c.data.kind {
            ComponentInteractionDataKind::StringSelect { values } => {
                assert_eq!(values, vec!["bob"])
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }

    let cmd = fake.command_interaction(
        ALICE,
        "alice",
        &[AGENT_ROLE],
        "ticket",
        json!([{"type": 1, "name": "claim", "options": [{"type": 3, "name": "id", "value": "T1"}]}]),
        DEFAULT_CHANNEL,
    );
    assert_eq!(cmd["data"]["guild_id"], GUILD_ID);
    match serde_json::from_value::<Interaction>(cmd).expect("command") {
        Interaction::Command(c) => {
            assert_eq!(c.data.name, "ticket");
            assert_eq!(
                c.data.id.get(),
                fake.guild_commands(GUILD_ID)[0]["id"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            );
            match &c.data.options[0].value {
                CommandDataOptionValue::SubCommand(opts) => {
                    assert_eq!(opts[0].name, "id");
                    assert_eq!(opts[0].value, CommandDataOptionValue::String("T1".into()));
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("expected a command, got {other:?}"),
    }
    // A subcommand without options still deserializes (Discord sends "options": []).
    let list = fake.command_interaction(
        ALICE,
        "alice",
        &[],
        "ticket",
        json!([{"type": 1, "name": "list"}]),
        DEFAULT_CHANNEL,
    );
    assert!(matches!(
        serde_json::from_value::<Interaction>(list).expect("list"),
        Interaction::Command(_)
    ));
    let unregistered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fake.command_interaction(ALICE, "alice", &[], "nope", Value::Null, DEFAULT_CHANNEL)
    }));
    assert!(unregistered.is_err());

    let auto = fake.autocomplete_interaction(
        ALICE,
        "alice",
        &[],
        "ticket",
        json!([{"type": 1, "name": "claim", "options": [{"type": 3, "name": "id", "value": "T", "focused": true}]}]),
        DEFAULT_CHANNEL,
    );
    match serde_json::from_value::<Interaction>(auto).expect("autocomplete") {
        Interaction::Autocomplete(c) => {
            let focused = c.data.autocomplete().expect("focused option");
            assert_eq!((focused.name, focused.value), ("id", "T"));
        }
        other => panic!("expected autocomplete, got {other:?}"),
    }

    let modal = fake.modal_submit(
        ALICE,
        "alice",
        &[AGENT_ROLE],
        "reply:T1",
        &[("answer", "Thanks, fixed!")],
        DEFAULT_CHANNEL,
    );
    match serde_json::from_value::<Interaction>(modal).expect("modal") {
        Interaction::Modal(m) => {
            assert_eq!(m.data.custom_id, "reply:T1");
            match &m.data.components[0].components[0] {
                ActionRowComponent::InputText(t) => {
                    assert_eq!(t.custom_id, "answer");
                    assert_eq!(t.value.as_deref(), Some("Thanks, fixed!"));
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("expected a modal submit, got {other:?}"),
    }

    let ping = fake.ping_interaction();
    assert!(matches!(
        serde_json::from_value::<Interaction>(ping).expect("ping"),
        Interaction::Ping(_)
    ));
}

async fn callback(fake: &FakeDiscord, ix: &Value, body: Value) -> Answer {
    call(
        fake,
        "POST",
        &format!(
            "/interactions/{}/{}/callback",
            ix["id"].as_str().unwrap(),
            ix["token"].as_str().unwrap()
        ),
        Some(body),
        None,
    )
    .await
}

#[tokio::test]
async fn discord_interaction_callbacks_followups_and_deadlines() {
    let fake = FakeDiscord::start().await;
    register_commands(&fake).await;
    let card = post_card(&fake, DEFAULT_CHANNEL, "T1").await;
    let mid = card["id"].as_str().unwrap().to_string();

    // UPDATE_MESSAGE edits the card; a second callback is refused.
    let click = fake.component_interaction(
        DEFAULT_CHANNEL,
        &mid,
        ALICE,
        "alice",
        &[AGENT_ROLE],
        "claim:T1",
    );
    let ix_id = fake.interaction_delivered(&click);
    let update = json!({"type": 7, "data": {"content": "Claimed by alice", "components": []}});
    let a = callback(&fake, &click, update.clone()).await;
    assert_eq!((a.status, a.body.clone()), (204, Value::Null));
    assert_eq!(header(&a, "content-type"), "application/json");
    assert_eq!(fake.callbacks(&ix_id), vec![update.clone()]);
    let card_now = fake.message(DEFAULT_CHANNEL, &mid).unwrap();
    assert_eq!(card_now.content, "Claimed by alice");
    assert_eq!(card_now.components, json!([]));
    assert_eq!(fake.edits(&mid), vec![update["data"].clone()]);
    let a = callback(&fake, &click, json!({"type": 6})).await;
    assert_eq!(
        (a.status, a.body),
        (
            400,
            json!({"message": "Interaction has already been acknowledged.", "code": 40060})
        )
    );
    assert_eq!(fake.callbacks(&ix_id).len(), 1);
    assert_eq!(fake.callback_attempts(&ix_id).len(), 2);
    assert_eq!(
        fake.wait_for_callback(&ix_id, Duration::from_secs(1)).await,
        update
    );

    // Follow-ups: ephemeral ones are not in the channel's history.
    let token = click["token"].as_str().unwrap();
    let f = call(
        &fake,
        "POST",
        &format!("/webhooks/{APP_ID}/{token}"),
        Some(json!({"content": "Only you see this", "flags": 64})),
        None,
    )
    .await;
    assert_eq!(f.status, 200, "{}", f.body);
    assert_eq!(f.body["flags"], 64);
    assert_eq!(f.body["webhook_id"], APP_ID);
    assert_eq!(
        f.body["interaction_metadata"]["interacted_message_id"],
        mid.as_str()
    );
    serde_json::from_value::<Message>(f.body.clone()).expect("serenity Message (follow-up)");
    assert_eq!(fake.followups(token).len(), 1);
    assert_eq!(fake.interaction_messages(&ix_id).len(), 1);
    assert!(fake.interaction_messages(&ix_id)[0].ephemeral);
    assert_eq!(fake.messages(DEFAULT_CHANNEL).len(), 1);

    // The updated card has no buttons left: Discord could not deliver a click on it.
    let gone = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fake.component_interaction(DEFAULT_CHANNEL, &mid, ALICE, "alice", &[], "claim:T1")
    }));
    assert!(gone.is_err());
    let card2 = post_card(&fake, DEFAULT_CHANNEL, "T2").await;
    let mid2 = card2["id"].as_str().unwrap().to_string();

    // Wrong/unknown ids and invalid response types.
    let fresh = fake.component_interaction(DEFAULT_CHANNEL, &mid2, ALICE, "alice", &[], "claim:T2");
    let never = call(
        &fake,
        "POST",
        &format!("/webhooks/{APP_ID}/{}", fresh["token"].as_str().unwrap()),
        Some(json!({"content": "too early"})),
        None,
    )
    .await;
    assert_eq!(
        never.body,
        json!({"message": "Unknown Webhook", "code": 10015})
    );
    let a = callback(&fake, &fresh, json!({"type": 8, "data": {"choices": []}})).await;
    assert_eq!((a.status, a.body["code"].clone()), (400, json!(50035)));
    let mut wrong = fresh.clone();
    wrong["id"] = json!("1");
    let a = callback(&fake, &wrong, json!({"type": 6})).await;
    assert_eq!(
        a.body,
        json!({"message": "Unknown interaction", "code": 10062})
    );

    // The 3 s rule (shortened here).
    fake.set_interaction_deadline(Duration::from_millis(200));
    let late = fake.component_interaction(DEFAULT_CHANNEL, &mid2, ALICE, "alice", &[], "claim:T2");
    fake.interaction_delivered(&late);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = callback(&fake, &late, json!({"type": 6})).await;
    assert_eq!(
        (a.status, a.body),
        (
            404,
            json!({"message": "Unknown interaction", "code": 10062})
        )
    );
    fake.set_interaction_deadline(Duration::from_secs(3));

    // A deferred command response, then the edit of @original.
    let cmd = fake.command_interaction(
        ALICE,
        "alice",
        &[],
        "ticket",
        json!([{"type": 1, "name": "list"}]),
        DEFAULT_CHANNEL,
    );
    let cmd_id = fake.interaction_delivered(&cmd);
    let a = callback(&fake, &cmd, json!({"type": 5})).await;
    assert_eq!(a.status, 204);
    let orig = fake.original_response(&cmd_id).expect("loading message");
    assert_eq!(orig.flags & 128, 128, "loading");
    assert_eq!(orig.kind, 20);
    let ctoken = cmd["token"].as_str().unwrap();
    let e = call(
        &fake,
        "PATCH",
        &format!("/webhooks/{APP_ID}/{ctoken}/messages/@original"),
        Some(json!({"content": "3 open tickets"})),
        None,
    )
    .await;
    assert_eq!(e.status, 200, "{}", e.body);
    assert_eq!(e.body["content"], "3 open tickets");
    assert_eq!(e.body["flags"], 0);
    assert_eq!(e.body["interaction_metadata"]["type"], 2);
    serde_json::from_value::<Message>(e.body.clone()).expect("serenity Message (@original)");
    assert_eq!(
        fake.messages(DEFAULT_CHANNEL).last().unwrap().content,
        "3 open tickets"
    );

    // with_response=true answers the callback response object.
    let cmd2 = fake.command_interaction(ALICE, "alice", &[], "reply", Value::Null, DEFAULT_CHANNEL);
    fake.interaction_delivered(&cmd2);
    let a = call(
        &fake,
        "POST",
        &format!(
            "/interactions/{}/{}/callback?with_response=true",
            cmd2["id"].as_str().unwrap(),
            cmd2["token"].as_str().unwrap()
        ),
        Some(json!({"type": 4, "data": {"content": "hi", "flags": 64}})),
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["interaction"]["id"], cmd2["id"]);
    assert_eq!(a.body["interaction"]["response_message_ephemeral"], true);
    assert_eq!(a.body["resource"]["type"], 4);
    assert_eq!(a.body["resource"]["message"]["content"], "hi");

    // A lost callback answer: acknowledged, the retry gets 40060.
    let click2 =
        fake.component_interaction(DEFAULT_CHANNEL, &mid2, ALICE, "alice", &[], "claim:T2");
    let id2 = fake.interaction_delivered(&click2);
    fake.lose_next_answers("POST /interactions/", 1);
    let lost = reqwest::Client::new()
        .post(format!(
            "{}/interactions/{}/{}/callback",
            fake.api_url(),
            id2,
            click2["token"].as_str().unwrap()
        ))
        .json(&json!({"type": 6}))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(lost.is_err());
    assert_eq!(fake.callbacks(&id2).len(), 1);
    assert_eq!(
        callback(&fake, &click2, json!({"type": 6})).await.body["code"],
        40060
    );
}

#[tokio::test]
async fn discord_http_interactions_signature_and_delivery() {
    use serenity::interactions_endpoint::Verifier;
    let body = r#"{"type":1}"#;
    let ts = "1700000000";
    let sig = discord::sign(ts, body);
    let verifier = Verifier::new(&discord::public_key_hex());
    assert!(verifier.verify(&sig, ts, body.as_bytes()).is_ok());
    assert!(verifier.verify(&sig, ts, br#"{"type":2}"#).is_err());
    assert!(verifier
        .verify(&sig, "1700000001", body.as_bytes())
        .is_err());

    // A tiny endpoint that verifies like serenity and answers inline.
    let fake = FakeDiscord::start().await;
    let card = post_card(&fake, DEFAULT_CHANNEL, "T1").await;
    let seen = Arc::new(Mutex::new(Vec::<bool>::new()));
    let seen2 = seen.clone();
    let app = axum::Router::new().route(
        "/discord/interactions",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let seen = seen2.clone();
            async move {
                let v = Verifier::new(&discord::public_key_hex());
                let ok = v
                    .verify(
                        headers["x-signature-ed25519"].to_str().unwrap(),
                        headers["x-signature-timestamp"].to_str().unwrap(),
                        body.as_bytes(),
                    )
                    .is_ok();
                seen.lock().unwrap().push(ok);
                let ix: Interaction = serde_json::from_str(&body).expect("interaction");
                let answer = match ix {
                    Interaction::Ping(_) => json!({"type": 1}),
                    _ => json!({"type": 7, "data": {"content": "Claimed"}}),
                };
                axum::Json(answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/discord/interactions",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let ping = fake.ping_interaction();
    let (status, answer) = fake.deliver_http(&url, &ping).await;
    assert_eq!((status, answer), (200, json!({"type": 1})));
    let click = fake.component_interaction(
        DEFAULT_CHANNEL,
        card["id"].as_str().unwrap(),
        ALICE,
        "alice",
        &[],
        "claim:T1",
    );
    let (status, _) = fake.deliver_http(&url, &click).await;
    assert_eq!(status, 200);
    assert_eq!(*seen.lock().unwrap(), vec![true, true]);
    assert_eq!(fake.callbacks(click["id"].as_str().unwrap()).len(), 1);
    assert_eq!(
        fake.message(DEFAULT_CHANNEL, card["id"].as_str().unwrap())
            .unwrap()
            .content,
        "Claimed"
    );
}

// ---------------------------------------------------------------------------
// Gateway: serenity's Client
// ---------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Recorder {
    log: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn push(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
}

#[serenity::async_trait]
impl EventHandler for Recorder {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        self.push(format!("ready:{}:{}", ready.user.id, ready.guilds.len()));
    }

    async fn resume(&self, _ctx: Context, _: ResumedEvent) {
        self.push("resumed".into());
    }

    async fn message(&self, _ctx: Context, msg: Message) {
        self.push(format!("message:{}", msg.id));
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        let (tag, result) = match &interaction {
            Interaction::Component(c) => (
                format!("component:{}", c.data.custom_id),
                c.create_response(
                    &ctx.http,
                    CreateInteractionResponse::UpdateMessage(
                        CreateInteractionResponseMessage::new()
                            .content(format!("Claimed by {}", c.user.name))
                            .components(vec![]),
                    ),
                )
                .await,
            ),
            Interaction::Command(c) => (
                format!("command:{}", c.data.name),
                c.create_response(
                    &ctx.http,
                    CreateInteractionResponse::Modal(
                        CreateModal::new("reply:T1", "Reply to alice").components(vec![
                            CreateActionRow::InputText(CreateInputText::new(
                                InputTextStyle::Paragraph,
                                "Answer",
                                "answer",
                            )),
                        ]),
                    ),
                )
                .await,
            ),
            Interaction::Modal(m) => (
                format!("modal:{}", m.data.custom_id),
                m.create_response(
                    &ctx.http,
                    CreateInteractionResponse::Message(
                        CreateInteractionResponseMessage::new()
                            .content("Answer queued")
                            .ephemeral(true),
                    ),
                )
                .await,
            ),
            Interaction::Autocomplete(a) => (
                "autocomplete".to_string(),
                a.create_response(
                    &ctx.http,
                    CreateInteractionResponse::Autocomplete(
                        CreateAutocompleteResponse::new().add_string_choice("T1 (alice)", "T1"),
                    ),
                )
                .await,
            ),
            other => (format!("other:{:?}", other.kind()), Ok(())),
        };
        self.push(format!(
            "{tag}:{}",
            if result.is_ok() { "ok" } else { "err" }
        ));
    }
}

async fn start_client(fake: &FakeDiscord, rec: &Recorder) -> Arc<ShardManager> {
    let intents = GatewayIntents::GUILDS | GatewayIntents::GUILD_MESSAGES;
    let mut client: Client = ClientBuilder::new_with_http(serenity_http(fake), intents)
        .event_handler(rec.clone())
        .await
        .expect("serenity client");
    let manager = client.shard_manager.clone();
    tokio::spawn(async move {
        let _ = client.start().await;
    });
    manager
}

async fn wait_log(rec: &Recorder, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !rec.log().iter().any(|l| l.starts_with(what)) {
        if Instant::now() >= deadline {
            panic!("serenity handler never saw {what:?}; log: {:?}", rec.log());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_gateway_serenity_client_end_to_end() {
    let fake = FakeDiscord::start().await;
    fake.set_heartbeat_interval(300);
    register_commands(&fake).await;
    let rec = Recorder::default();
    let manager = start_client(&fake, &rec).await;
    fake.wait_for_ready(1, Duration::from_secs(10)).await;
    wait_log(
        &rec,
        &format!("ready:{BOT_USER_ID}:1"),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(fake.identifies(), 1);
    assert_eq!(fake.connection_paths(), vec!["/gateway?v=10".to_string()]);
    let identify = &fake.identify_payloads()[0];
    assert_eq!(identify["token"], format!("Bot {BOT_TOKEN}"));
    assert_eq!(identify["compress"], true);
    assert_eq!(identify["shard"], json!([0, 1]));
    assert_eq!(
        identify["intents"].as_u64().unwrap(),
        (GatewayIntents::GUILDS | GatewayIntents::GUILD_MESSAGES).bits()
    );

    // The bot's own message comes back as MESSAGE_CREATE (a serenity Message).
    let card = post_card(&fake, DEFAULT_CHANNEL, "T1").await;
    let mid = card["id"].as_str().unwrap().to_string();
    wait_log(&rec, &format!("message:{mid}"), Duration::from_secs(5)).await;

    // Component → UpdateMessage.
    let click = fake.component_interaction(
        DEFAULT_CHANNEL,
        &mid,
        ALICE,
        "alice",
        &[AGENT_ROLE],
        "claim:T1",
    );
    let id = fake.send_interaction(click);
    let cb = fake.wait_for_callback(&id, Duration::from_secs(5)).await;
    assert_eq!(cb["type"], 7);
    assert_eq!(cb["data"]["content"], "Claimed by alice");
    assert_eq!(
        fake.message(DEFAULT_CHANNEL, &mid).unwrap().content,
        "Claimed by alice"
    );
    wait_log(&rec, "component:claim:T1:ok", Duration::from_secs(2)).await;

    // Command → Modal → modal submit → ephemeral message.
    let cmd = fake.command_interaction(
        ALICE,
        "alice",
        &[AGENT_ROLE],
        "reply",
        Value::Null,
        DEFAULT_CHANNEL,
    );
    let cmd_id = fake.send_interaction(cmd);
    let cb = fake
        .wait_for_callback(&cmd_id, Duration::from_secs(5))
        .await;
    assert_eq!(cb["type"], 9);
    assert_eq!(cb["data"]["custom_id"], "reply:T1");
    let submit = fake.modal_submit(
        ALICE,
        "alice",
        &[AGENT_ROLE],
        "reply:T1",
        &[("answer", "Fixed!")],
        DEFAULT_CHANNEL,
    );
    assert_eq!(
        submit["data"]["components"][0]["components"][0]["value"],
        "Fixed!"
    );
    let submit_id = fake.send_interaction(submit);
    let cb = fake
        .wait_for_callback(&submit_id, Duration::from_secs(5))
        .await;
    assert_eq!(cb["type"], 4);
    assert_eq!(cb["data"]["flags"], 64);
    let orig = fake.original_response(&submit_id).expect("original");
    assert!(orig.ephemeral);
    assert_eq!(orig.content, "Answer queued");

    // Autocomplete.
    let auto = fake.autocomplete_interaction(
        ALICE,
        "alice",
        &[],
        "ticket",
        json!([{"type": 1, "name": "claim", "options": [{"type": 3, "name": "id", "value": "T", "focused": true}]}]),
        DEFAULT_CHANNEL,
    );
    let auto_id = fake.send_interaction(auto);
    let cb = fake
        .wait_for_callback(&auto_id, Duration::from_secs(5))
        .await;
    assert_eq!(
        cb,
        json!({"type": 8, "data": {"choices": [{"name": "T1 (alice)", "value": "T1"}]}})
    );
    for tag in ["command:reply:ok", "modal:reply:T1:ok", "autocomplete:ok"] {
        wait_log(&rec, tag, Duration::from_secs(2)).await;
    }

    // An abrupt TCP drop: serenity resumes; what was dispatched meanwhile is replayed.
    let card2 = post_card(&fake, DEFAULT_CHANNEL, "T2").await;
    let mid2 = card2["id"].as_str().unwrap().to_string();
    fake.wait_until(
        Duration::from_secs(5),
        "MESSAGE_CREATE of card 2 seen",
        |_| rec.log().contains(&format!("message:{mid2}")),
    )
    .await;
    fake.drop_gateway();
    let click2 =
        fake.component_interaction(DEFAULT_CHANNEL, &mid2, ALICE, "alice", &[], "claim:T2");
    let id2 = fake.send_interaction(click2);
    fake.wait_for_ready(2, Duration::from_secs(10)).await;
    let cb = fake.wait_for_callback(&id2, Duration::from_secs(5)).await;
    assert_eq!(cb["type"], 7);
    assert_eq!(
        (fake.identifies(), fake.resumes()),
        (1, 1),
        "serenity resumes after a TCP drop"
    );
    wait_log(&rec, "resumed", Duration::from_secs(2)).await;
    assert_eq!(
        fake.connection_paths()[1],
        "/gateway?v=10",
        "serenity reconnects to the GET /gateway URL, not resume_gateway_url"
    );

    // Reconnect (op 7): serenity resumes too.
    fake.send_reconnect();
    fake.wait_for_ready(3, Duration::from_secs(10)).await;
    assert_eq!((fake.identifies(), fake.resumes()), (1, 2));
    fake.wait_until(
        Duration::from_secs(5),
        "serenity heartbeats at the Hello interval (300 ms)",
        |f| f.heartbeats() >= 2,
    )
    .await;
    manager.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_gateway_serenity_reidentifies_after_invalid_session() {
    let fake = FakeDiscord::start().await;
    let rec = Recorder::default();
    let manager = start_client(&fake, &rec).await;
    fake.wait_for_ready(1, Duration::from_secs(10)).await;

    // The session expired while the connection was down: Resume → op 9 false → Identify.
    fake.expire_session();
    fake.drop_gateway();
    fake.wait_for_ready(2, Duration::from_secs(20)).await;
    assert_eq!(fake.identifies(), 2);
    assert_eq!(fake.resumes(), 0);
    assert!(fake.invalid_sessions() >= 1);
    wait_log(&rec, "ready:", Duration::from_secs(2)).await;
    // Interactions work on the new session.
    let card = post_card(&fake, DEFAULT_CHANNEL, "T1").await;
    let click = fake.component_interaction(
        DEFAULT_CHANNEL,
        card["id"].as_str().unwrap(),
        ALICE,
        "alice",
        &[],
        "claim:T1",
    );
    let id = fake.send_interaction(click);
    assert_eq!(
        fake.wait_for_callback(&id, Duration::from_secs(5)).await["type"],
        7
    );

    // A non-resumable Invalid Session on a live connection: a new Identify too.
    fake.send_invalid_session(false);
    fake.wait_for_ready(3, Duration::from_secs(20)).await;
    assert_eq!(fake.identifies(), 3);
    manager.shutdown_all().await;
}

// ---------------------------------------------------------------------------
// Gateway: raw protocol, frames parsed by serenity
// ---------------------------------------------------------------------------

#[derive(Debug)]
enum Frame {
    Text(String),
    Close(u16),
    Eof,
}

/// A minimal RFC 6455 client.
struct Ws {
    stream: TcpStream,
}

impl Ws {
    async fn connect(url: &str) -> Ws {
        let rest = url.strip_prefix("ws://").expect("ws://");
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut stream = TcpStream::connect(host).await.expect("connect");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            assert_ne!(
                stream.read(&mut b).await.expect("read"),
                0,
                "closed in handshake"
            );
            head.push(b[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        Ws { stream }
    }

    async fn send(&mut self, v: Value) {
        let payload = v.to_string().into_bytes();
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        let mask = [7u8, 1, 9, 3];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.expect("ws write");
    }

    async fn recv(&mut self) -> Frame {
        let fut = async {
            loop {
                let mut h = [0u8; 2];
                if self.stream.read_exact(&mut h).await.is_err() {
                    return Frame::Eof;
                }
                let mut len = (h[1] & 0x7f) as usize;
                if len == 126 {
                    let mut b = [0u8; 2];
                    self.stream.read_exact(&mut b).await.expect("len");
                    len = u16::from_be_bytes(b) as usize;
                } else if len == 127 {
                    let mut b = [0u8; 8];
                    self.stream.read_exact(&mut b).await.expect("len");
                    len = u64::from_be_bytes(b) as usize;
                }
                let mut payload = vec![0u8; len];
                if self.stream.read_exact(&mut payload).await.is_err() {
                    return Frame::Eof;
                }
                match h[0] & 0x0f {
                    0x1 => return Frame::Text(String::from_utf8(payload).expect("utf-8")),
                    0x8 => {
                        let code = if payload.len() >= 2 {
                            u16::from_be_bytes([payload[0], payload[1]])
                        } else {
                            1005
                        };
                        return Frame::Close(code);
                    }
                    _ => continue,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .expect("a frame within 5 s")
    }

    /// The next frame as JSON and as serenity's `GatewayEvent`.
    async fn event(&mut self) -> (Value, GatewayEvent) {
        match self.recv().await {
            Frame::Text(t) => (
                serde_json::from_str(&t).expect("json"),
                serde_json::from_str(&t)
                    .unwrap_or_else(|e| panic!("serenity cannot parse {t}: {e}")),
            ),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

fn identify(token: &str) -> Value {
    json!({"op": 2, "d": {
        "token": token,
        "intents": 1 | (1 << 9),
        "properties": {"os": "linux", "browser": "selftest", "device": "selftest"},
        "shard": [0, 1]
    }})
}

#[tokio::test]
async fn discord_gateway_raw_protocol() {
    let fake = FakeDiscord::start().await;
    let url = format!("{}?v=10&encoding=json", fake.gateway_url());

    // Hello, heartbeat ACK, bad token → 4004.
    let mut ws = Ws::connect(&url).await;
    let (hello, ev) = ws.event().await;
    assert_eq!(hello["op"], 10);
    assert_eq!(hello["d"]["heartbeat_interval"], 41_250);
    assert!(matches!(ev, GatewayEvent::Hello(41_250)));
    ws.send(json!({"op": 1, "d": null})).await;
    let (ack, ev) = ws.event().await;
    assert_eq!(ack["op"], 11);
    assert!(matches!(ev, GatewayEvent::HeartbeatAck));
    ws.send(json!({"op": 3, "d": {}})).await;
    assert!(matches!(ws.recv().await, Frame::Close(4003)));
    let mut ws = Ws::connect(&url).await;
    ws.event().await;
    ws.send(identify("wrong")).await;
    assert!(matches!(ws.recv().await, Frame::Close(4004)));
    let mut ws = Ws::connect(&url).await;
    ws.event().await;
    ws.send(json!({"op": 99, "d": null})).await;
    assert!(matches!(ws.recv().await, Frame::Close(4001)));

    // Identify → READY (seq 1), parsed by serenity.
    let mut ws = Ws::connect(&url).await;
    ws.event().await;
    ws.send(identify(BOT_TOKEN)).await;
    let (ready, ev) = ws.event().await;
    assert_eq!(
        (ready["op"].clone(), ready["s"].clone(), ready["t"].clone()),
        (json!(0), json!(1), json!("READY"))
    );
    let session_id = match ev {
        GatewayEvent::Dispatch(1, Event::Ready(r)) => {
            assert_eq!(r.ready.user.id.to_string(), BOT_USER_ID);
            assert_eq!(r.ready.application.id.to_string(), APP_ID);
            assert_eq!(r.ready.guilds[0].id.to_string(), GUILD_ID);
            assert!(r.ready.guilds[0].unavailable);
            assert!(r.ready.resume_gateway_url.starts_with("ws://127.0.0.1:"));
            r.ready.session_id.clone()
        }
        other => panic!("expected READY, got {other:?}"),
    };
    fake.wait_for_ready(1, Duration::from_secs(1)).await;
    ws.send(identify(BOT_TOKEN)).await;
    assert!(matches!(ws.recv().await, Frame::Close(4005)));

    // Events dispatched while disconnected are replayed on Resume, then RESUMED.
    let card = post_card(&fake, DEFAULT_CHANNEL, "T1").await; // MESSAGE_CREATE, seq 2
    let click = fake.component_interaction(
        DEFAULT_CHANNEL,
        card["id"].as_str().unwrap(),
        ALICE,
        "alice",
        &[AGENT_ROLE],
        "claim:T1",
    );
    let ix_id = fake.send_interaction(click); // seq 3
    assert_eq!(fake.dispatch("TYPING_START", json!({
        "channel_id": DEFAULT_CHANNEL, "guild_id": GUILD_ID, "user_id": ALICE, "timestamp": 1_700_000_000
    })), Some(4));
    let mut ws = Ws::connect(&url).await;
    ws.event().await;
    ws.send(json!({"op": 6, "d": {"token": BOT_TOKEN, "session_id": session_id, "seq": 2}}))
        .await;
    let (f3, ev3) = ws.event().await;
    assert_eq!(
        (f3["s"].clone(), f3["t"].clone()),
        (json!(3), json!("INTERACTION_CREATE"))
    );
    match ev3 {
        GatewayEvent::Dispatch(3, Event::InteractionCreate(i)) => {
            assert_eq!(i.interaction.id().to_string(), ix_id);
            assert!(matches!(i.interaction, Interaction::Component(_)));
        }
        other => panic!("expected INTERACTION_CREATE, got {other:?}"),
    }
    let (f4, _) = ws.event().await;
    assert_eq!(f4["t"], "TYPING_START");
    let (resumed, ev) = ws.event().await;
    assert_eq!(
        (resumed["s"].clone(), resumed["t"].clone()),
        (json!(5), json!("RESUMED"))
    );
    assert!(matches!(ev, GatewayEvent::Dispatch(5, Event::Resumed(_))));
    assert_eq!(fake.resumes(), 1);
    // Live dispatches go to the resumed connection.
    fake.dispatch("TYPING_START", json!({
        "channel_id": DEFAULT_CHANNEL, "guild_id": GUILD_ID, "user_id": ALICE, "timestamp": 1_700_000_001
    }));
    assert_eq!(ws.event().await.0["s"], 6);

    // Reconnect and Invalid Session frames, as serenity parses them.
    fake.send_reconnect();
    assert!(matches!(ws.event().await.1, GatewayEvent::Reconnect));
    fake.send_invalid_session(true);
    assert!(matches!(
        ws.event().await.1,
        GatewayEvent::InvalidateSession(true)
    ));
    fake.request_heartbeat();
    assert!(matches!(ws.event().await.1, GatewayEvent::Heartbeat(..)));

    // An unknown session cannot resume: op 9 false.
    let mut ws2 = Ws::connect(&url).await;
    ws2.event().await;
    ws2.send(json!({"op": 6, "d": {"token": BOT_TOKEN, "session_id": "nope", "seq": 1}}))
        .await;
    let (inv, ev) = ws2.event().await;
    assert_eq!(inv, json!({"t": null, "s": null, "op": 9, "d": false}));
    assert!(matches!(ev, GatewayEvent::InvalidateSession(false)));

    // drop_gateway closes TCP without a close frame.
    fake.drop_gateway();
    assert!(matches!(ws.recv().await, Frame::Eof));
    fake.wait_until(Duration::from_secs(2), "connections to close", |f| {
        f.open_connections() == 0
    })
    .await;
    // Unsupported transport compression is refused explicitly.
    let mut ws3 = Ws::connect(&format!("{url}&compress=zlib-stream")).await;
    ws3.event().await;
    assert!(matches!(ws3.recv().await, Frame::Close(4000)));
}
