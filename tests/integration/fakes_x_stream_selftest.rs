//! Self-tests of the fake X's filtered stream, driven with plain HTTP as X documents
//! it: the app-only bearer check and the not-enrolled 403, the rules endpoints' answers,
//! and the stream's chunked newline-delimited JSON with its keep-alives and test
//! controls.

use crate::fakes::x::{self as fx, FakeX};
use crate::fakes::Fault;
use serde_json::{json, Value};
use std::time::Duration;

const RULES: &str = "/2/tweets/search/stream/rules";
const STREAM: &str = "/2/tweets/search/stream";

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// `GET path_and_query` with this `Authorization` header (none: without one).
async fn get(fake: &FakeX, path_and_query: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut req = http().get(format!("{}{path_and_query}", fake.url()));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap()
}

/// The `Authorization` of the app's Bearer Token.
fn app() -> String {
    format!("Bearer {}", fx::APP_BEARER_TOKEN)
}

async fn rules(fake: &FakeX, body: Option<Value>, query: &str) -> (u16, Value) {
    let url = format!("{}{RULES}{query}", fake.url());
    let req = match body {
        Some(b) => http().post(url).json(&b),
        None => http().get(url),
    };
    let resp = req.bearer_auth(fx::APP_BEARER_TOKEN).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn open(fake: &FakeX, query: &str) -> reqwest::Response {
    let resp = get(fake, &format!("{STREAM}{query}"), Some(&app())).await;
    assert_eq!(resp.status(), 200);
    resp
}

async fn chunk(resp: &mut reqwest::Response) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .expect("a chunk in time")
        .expect("the stream is up")
        .expect("not ended")
        .to_vec()
}

#[tokio::test]
async fn fake_x_stream_endpoints_take_only_the_app_bearer_token() {
    let fake = FakeX::start().await;
    for path in [RULES, STREAM] {
        assert_eq!(get(&fake, path, None).await.status(), 401, "{path}");
        assert_eq!(
            get(&fake, path, Some("Bearer nope")).await.status(),
            401,
            "{path}"
        );
        let oauth1 = get(&fake, path, Some("OAuth oauth_consumer_key=\"k\"")).await;
        assert_eq!(oauth1.status(), 403, "{path}");
        let body: Value = oauth1.json().await.unwrap();
        assert_eq!(body["title"], "Unsupported Authentication");
    }
    let (status, _) = rules(&fake, None, "").await;
    assert_eq!(status, 200);

    fake.set_stream_not_enrolled(true);
    let resp = get(&fake, STREAM, Some(&app())).await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "client-not-enrolled");
    assert_eq!(
        body["type"],
        "https://api.twitter.com/2/problems/client-forbidden"
    );
    assert_eq!(body["detail"], fx::NOT_ENROLLED_DETAIL);
    assert_eq!(fake.live_streams(), 0);
}

#[tokio::test]
async fn fake_x_rules_are_added_refused_listed_and_deleted_as_x_answers() {
    let fake = FakeX::start().await;
    let (status, empty) = rules(&fake, None, "").await;
    assert_eq!(status, 200);
    assert!(empty.get("data").is_none(), "{empty}");
    assert_eq!(empty["meta"]["result_count"], 0);
    assert!(empty["meta"]["sent"].is_string());

    let long = "a".repeat(fx::MAX_RULE_CHARS + 1);
    let (status, added) = rules(
        &fake,
        Some(json!({"add": [
            {"value": "acme", "tag": "kw"},
            {"value": "@brand"},
            {"value": "acme", "tag": "again"},
            {"value": long},
        ]})),
        "",
    )
    .await;
    assert_eq!(status, 201);
    let data = added["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["value"], "acme");
    assert_eq!(data[0]["tag"], "kw");
    assert!(data[1].get("tag").is_none());
    let summary = &added["meta"]["summary"];
    assert_eq!(
        (summary["created"].clone(), summary["not_created"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(
        (summary["valid"].clone(), summary["invalid"].clone()),
        (json!(3), json!(1))
    );
    let errors = added["errors"].as_array().unwrap();
    assert_eq!(errors[0]["title"], "DuplicateRule");
    assert_eq!(errors[0]["id"], data[0]["id"], "the existing rule's id");
    assert_eq!(errors[1]["title"], "Invalid Rule");

    // A dry run changes nothing.
    let (_, dry) = rules(
        &fake,
        Some(json!({"add": [{"value": "dry"}]})),
        "?dry_run=true",
    )
    .await;
    assert_eq!(dry["meta"]["summary"]["created"], 0);
    assert_eq!(fake.stream_rules().len(), 2);

    let (_, listed) = rules(&fake, None, "").await;
    assert_eq!(listed["meta"]["result_count"], 2);
    let id = data[0]["id"].as_str().unwrap();
    let (_, one) = rules(&fake, None, &format!("?ids={id}")).await;
    assert_eq!(one["data"].as_array().unwrap().len(), 1);

    let (status, deleted) = rules(&fake, Some(json!({"delete": {"ids": [id, "1"]}})), "").await;
    assert_eq!(status, 200);
    assert_eq!(deleted["meta"]["summary"]["deleted"], 1);
    assert_eq!(deleted["meta"]["summary"]["not_deleted"], 1);
    assert_eq!(deleted["errors"][0]["value"], "1");
    assert_eq!(fake.stream_rules().len(), 1);

    let (status, both) = rules(
        &fake,
        Some(json!({"add": [{"value": "x"}], "delete": {"ids": ["1"]}})),
        "",
    )
    .await;
    assert_eq!(status, 400, "{both}");
    assert_eq!(fake.rule_calls(), (3, 4));
}

#[tokio::test]
async fn fake_x_stream_sends_matching_posts_as_lines_with_keep_alives_between() {
    let fake = FakeX::start().await;
    fake.set_keep_alive(Duration::from_millis(150));
    let mention = fake.add_stream_rule("@brand -from:brand", Some("m"));
    fake.add_stream_rule("\"acme down\" -is:retweet", Some("kw"));
    let mut resp = open(
        &fake,
        "?expansions=author_id&tweet.fields=author_id,created_at&user.fields=username,name",
    )
    .await;
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(chunk(&mut resp).await, b"\r\n", "a keep-alive");

    // Neither rule: not sent. The brand's own mention: excluded by -from:brand.
    fake.add_tweet("carol", "acme is fine", None);
    fake.add_tweet(fx::BRAND_USERNAME, "@brand note to self", None);
    let id = fake.add_mention("alice", "hi & bye");
    let line = loop {
        let c = chunk(&mut resp).await;
        if c != b"\r\n" {
            break c;
        }
    };
    assert!(line.ends_with(b"\r\n"));
    let v: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["data"]["id"], id);
    assert_eq!(v["data"]["text"], "@brand hi &amp; bye");
    assert_eq!(v["data"]["author_id"], fake.user_id("alice"));
    assert!(v["data"]["created_at"].is_string());
    assert_eq!(v["includes"]["users"][0]["username"], "alice");
    assert_eq!(v["matching_rules"], json!([{"id": mention, "tag": "m"}]));

    // A phrase matches as a substring, whatever the case.
    fake.split_next_stream_post();
    let kw = fake.add_tweet("dave", "is ACME DOWN again?", None);
    let mut halves: Vec<Vec<u8>> = Vec::new();
    loop {
        let c = chunk(&mut resp).await;
        if c == b"\r\n" && halves.is_empty() {
            continue; // A keep-alive before the post.
        }
        halves.push(c);
        if halves.concat().ends_with(b"\r\n") {
            break;
        }
    }
    assert_eq!(halves.len(), 2, "the line came in two chunks");
    let v: Value = serde_json::from_slice(&halves.concat()).unwrap();
    assert_eq!(v["data"]["id"], kw);
    assert_eq!(fake.stream_posts_sent(), 2);

    fake.send_stream_line(r#"{"errors":[{"title":"operational-disconnect"}]}"#);
    loop {
        let c = chunk(&mut resp).await;
        if c != b"\r\n" {
            assert_eq!(
                c,
                b"{\"errors\":[{\"title\":\"operational-disconnect\"}]}\r\n"
            );
            break;
        }
    }
    fake.drop_streams();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .unwrap()
        {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert!(ended.is_err(), "an abrupt end, not a clean one: {ended:?}");
    assert_eq!(fake.stream_connects(), 1);
}

#[tokio::test]
async fn fake_x_stream_goes_quiet_and_refuses_connects_when_told() {
    let fake = FakeX::start().await;
    fake.set_keep_alive(Duration::from_millis(100));
    let mut resp = open(&fake, "").await;
    assert_eq!(chunk(&mut resp).await, b"\r\n");
    fake.quiet_streams();
    // What was already on its way may still come; then nothing.
    while let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::from_millis(150), resp.chunk()).await
    {
    }
    let silent = tokio::time::timeout(Duration::from_millis(500), resp.chunk()).await;
    assert!(silent.is_err(), "no bytes after going quiet: {silent:?}");
    assert_eq!(fake.live_streams(), 1);

    fake.fail_next_connects(vec![Fault::too_many_requests(5)]);
    let refused = get(&fake, STREAM, Some(&app())).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["x-rate-limit-remaining"], "0");
    // The rules are not refused by a connect's fault.
    let (status, _) = rules(&fake, None, "").await;
    assert_eq!(status, 200);
    assert_eq!(fake.stream_connects(), 2);
}
