//! Self-tests of the shared fakes: they speak the wire protocol real clients expect.
//!
//! Slack's Web API is driven through slack-morphism's own `SlackClient` (its request
//! building, paths, query parameters and JSON bodies, and its response models) over a
//! small reqwest-backed `SlackClientHttpConnector` that decodes responses exactly like
//! slack-morphism's hyper connector. Socket Mode is driven by a minimal websocket
//! client written here, with every frame parsed/produced by slack-morphism's models.
use crate::fakes::mastodon::{FakeMastodon, IdStyle, BRAND_ID};
use crate::fakes::slack::{self, FakeSlack, APP_TOKEN, BOT_TOKEN, DEFAULT_CHANNEL};
use crate::fakes::Fault;
use serde_json::{json, Value};
use slack_morphism::errors::*;
use slack_morphism::prelude::*;
use slack_morphism::signature_verifier::SlackEventSignatureVerifier;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------
// Mastodon
// ---------------------------------------------------------------------------

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

async fn mget(fake: &FakeMastodon, path_and_query: &str) -> reqwest::Response {
    http()
        .get(format!("{}{}", fake.url(), path_and_query))
        .bearer_auth(fake.token())
        .send()
        .await
        .expect("GET")
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_string())
        .collect()
}

fn link(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("link")
        .map(|v| v.to_str().unwrap().to_string())
}

async fn paging_scenario(style: IdStyle) {
    let fake = FakeMastodon::start().await;
    fake.set_id_style(style);
    let m: Vec<_> = (1..=5)
        .map(|i| {
            if i == 3 {
                fake.add_notification("favourite", "carol");
            }
            fake.add_mention("alice", &format!("help {i}"))
        })
        .collect();
    let n: Vec<String> = m.iter().map(|x| x.notification_id.clone()).collect();
    for w in n.windows(2) {
        assert!((w[0].len(), &w[0]) < (w[1].len(), &w[1]), "ids sort: {n:?}");
    }
    match style {
        IdStyle::Ulid => {
            for id in n.iter().chain(m.iter().map(|x| &x.status_id)) {
                assert_eq!(id.len(), 26, "{id}");
                assert!(id
                    .chars()
                    .all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)));
            }
        }
        IdStyle::Numeric => {
            for id in &n {
                id.parse::<u64>().expect("numeric id");
            }
        }
    }

    // Newest page, with Mastodon's Link header (params sorted, brackets encoded).
    let resp = mget(&fake, "/api/v1/notifications?types[]=mention&limit=2").await;
    assert_eq!(resp.status(), 200);
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(resp.headers().get(h).is_some(), "{h}");
    }
    let reset = resp.headers()["x-ratelimit-reset"].to_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(reset).expect("ISO 8601 reset");
    assert_eq!(resp.headers()["x-ratelimit-limit"], "300");
    let base = fake.url();
    let expected_link = format!(
        "<{base}/api/v1/notifications?limit=2&max_id={}&types%5B%5D=mention>; rel=\"next\", <{base}/api/v1/notifications?limit=2&min_id={}&types%5B%5D=mention>; rel=\"prev\"",
        n[3], n[4]
    );
    assert_eq!(link(&resp).as_deref(), Some(expected_link.as_str()));
    let page: Value = resp.json().await.unwrap();
    assert_eq!(ids(&page), vec![n[4].clone(), n[3].clone()]);

    // Entity shapes.
    let first = &page[0];
    assert_eq!(first["type"], "mention");
    chrono::DateTime::parse_from_rfc3339(first["created_at"].as_str().unwrap()).unwrap();
    let status = &first["status"];
    assert_eq!(status["id"], m[4].status_id.as_str());
    assert_eq!(status["visibility"], "public");
    assert_eq!(status["in_reply_to_id"], Value::Null);
    assert_eq!(status["language"], "en");
    assert_eq!(status["account"]["acct"], "alice");
    assert_eq!(first["account"]["username"], "alice");
    assert_eq!(
        status["content"],
        format!(
            "<p><span class=\"h-card\"><a href=\"{base}/@brand\" class=\"u-url mention\">@<span>brand</span></a></span> help 5</p>"
        )
    );
    assert_eq!(status["mentions"][0]["id"], BRAND_ID);
    assert_eq!(status["mentions"][0]["acct"], "brand");
    assert!(status["url"].as_str().unwrap().starts_with(&base));
    assert!(status["uri"].as_str().unwrap().starts_with(&base));

    // Following rel="next".
    let next = expected_link[1..expected_link.find('>').unwrap()].to_string();
    let resp = http()
        .get(next)
        .bearer_auth(fake.token())
        .send()
        .await
        .unwrap();
    let page: Value = resp.json().await.unwrap();
    assert_eq!(ids(&page), vec![n[2].clone(), n[1].clone()]);

    // min_id: the page immediately newer than it (oldest ones), newest first;
    // percent-encoded brackets work too.
    let resp = mget(
        &fake,
        &format!(
            "/api/v1/notifications?types%5B%5D=mention&limit=2&min_id={}",
            n[0]
        ),
    )
    .await;
    let page: Value = resp.json().await.unwrap();
    assert_eq!(ids(&page), vec![n[2].clone(), n[1].clone()]);

    // since_id: the newest page newer than it.
    let resp = mget(
        &fake,
        &format!(
            "/api/v1/notifications?types[]=mention&limit=2&since_id={}",
            n[0]
        ),
    )
    .await;
    let page: Value = resp.json().await.unwrap();
    assert_eq!(ids(&page), vec![n[4].clone(), n[3].clone()]);

    // Nothing newer: empty page, no Link header.
    let resp = mget(
        &fake,
        &format!("/api/v1/notifications?types[]=mention&min_id={}", n[4]),
    )
    .await;
    assert!(link(&resp).is_none());
    assert_eq!(resp.json::<Value>().await.unwrap(), json!([]));

    // Without types[] other notification types come too; limit defaults to 40.
    let all: Value = mget(&fake, "/api/v1/notifications")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 6);
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["type"] == "favourite"));

    // Filtered notifications only with include_filtered=true.
    let filtered = fake.mention("mallory", "spam?").filtered().add();
    let page: Value = mget(&fake, "/api/v1/notifications?types[]=mention")
        .await
        .json()
        .await
        .unwrap();
    assert!(!ids(&page).contains(&filtered.notification_id));
    let page: Value = mget(
        &fake,
        "/api/v1/notifications?types[]=mention&include_filtered=true",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(ids(&page)[0], filtered.notification_id);

    // Auth.
    let resp = http()
        .get(format!("{}/api/v1/notifications", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"error": "The access token is invalid"})
    );
    assert!(fake.count("GET", "/api/v1/notifications") >= 8);
}

#[tokio::test]
async fn mastodon_notifications_paging_numeric_ids() {
    paging_scenario(IdStyle::Numeric).await;
}

#[tokio::test]
async fn mastodon_notifications_paging_ulid_ids() {
    paging_scenario(IdStyle::Ulid).await;
}

#[tokio::test]
async fn mastodon_statuses_idempotency_length_and_context() {
    let fake = FakeMastodon::start().await;
    let m1 = fake.add_mention("alice", "my order is late");
    let m2 = fake.add_mention_with("bob@remote.example", "private q", "direct", None);

    let me: Value = mget(&fake, "/api/v1/accounts/verify_credentials")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], BRAND_ID);
    assert_eq!(me["acct"], "brand");
    assert_eq!(me["url"], format!("{}/@brand", fake.url()));
    assert!(me["source"]["privacy"].is_string());

    // Instance v2 is public.
    fake.set_max_characters(120);
    let inst: Value = http()
        .get(format!("{}/api/v2/instance", fake.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inst["configuration"]["statuses"]["max_characters"], 120);
    assert_eq!(
        inst["configuration"]["statuses"]["characters_reserved_per_url"],
        23
    );

    // JSON post with an Idempotency-Key, twice: one status.
    let post = |body: Value, key: &'static str| {
        let url = format!("{}/api/v1/statuses", fake.url());
        async move {
            http()
                .post(url)
                .bearer_auth(crate::fakes::mastodon::TOKEN)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let body = json!({"status": "@alice sorry <3 & thanks", "in_reply_to_id": m1.status_id, "visibility": "public", "language": "en"});
    let r1 = post(body.clone(), "k1").await;
    assert_eq!(r1.status(), 200);
    let s1: Value = r1.json().await.unwrap();
    let r2: Value = post(body, "k1").await.json().await.unwrap();
    assert_eq!(s1["id"], r2["id"]);
    assert_eq!(fake.posted_statuses().len(), 1);
    assert_eq!(s1["account"]["id"], BRAND_ID);
    assert_eq!(s1["in_reply_to_id"], m1.status_id.as_str());
    let alice_id = fake.status(&m1.status_id).unwrap()["account"]["id"].clone();
    assert_eq!(s1["in_reply_to_account_id"], alice_id);
    assert!(s1["content"]
        .as_str()
        .unwrap()
        .contains("sorry &lt;3 &amp; thanks"));
    assert_eq!(s1["mentions"][0]["acct"], "alice");

    // Form-encoded post; a new key makes a new status.
    let r3 = http()
        .post(format!("{}/api/v1/statuses", fake.url()))
        .bearer_auth(fake.token())
        .header("Idempotency-Key", "k2")
        .form(&[
            ("status", "@bob@remote.example answer"),
            ("in_reply_to_id", m2.status_id.as_str()),
            ("visibility", "direct"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r3.status(), 200);
    let s3: Value = r3.json().await.unwrap();
    assert_eq!(s3["visibility"], "direct");
    let posted = fake.posted_statuses();
    assert_eq!(posted.len(), 2);
    assert_eq!(posted[1].visibility.as_deref(), Some("direct"));
    assert_eq!(posted[1].idempotency_key.as_deref(), Some("k2"));
    assert_eq!(
        posted[1].in_reply_to_id.as_deref(),
        Some(m2.status_id.as_str())
    );
    assert_eq!(posted[0].status, "@alice sorry <3 & thanks");

    // A server that ignores Idempotency-Key duplicates.
    fake.set_ignore_idempotency(true);
    let again: Value = post(
        json!({"status": "@alice again", "in_reply_to_id": m1.status_id, "visibility": "public"}),
        "k1",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_ne!(again["id"], s1["id"]);
    fake.set_ignore_idempotency(false);

    // Context lists the brand's replies.
    let ctx: Value = mget(&fake, &format!("/api/v1/statuses/{}/context", m1.status_id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ctx["ancestors"], json!([]));
    let desc = ids(&ctx["descendants"]);
    assert_eq!(
        desc,
        vec![s1["id"].as_str().unwrap(), again["id"].as_str().unwrap()]
    );
    let ctx: Value = mget(
        &fake,
        &format!("/api/v1/statuses/{}/context", s1["id"].as_str().unwrap()),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(ids(&ctx["ancestors"]), vec![m1.status_id.clone()]);

    // Length: 120 max here; each URL counts 23.
    let long = "x".repeat(121);
    let r = post(json!({"status": long, "visibility": "public"}), "k3").await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Validation failed: Text character limit of 120 exceeded"})
    );
    let with_url = format!("{} https://example.com/{}", "y".repeat(90), "z".repeat(200));
    let r = post(json!({"status": with_url, "visibility": "public"}), "k4").await;
    assert_eq!(r.status(), 200, "90 + 1 + 23 = 114 <= 120");

    // Unknown and deleted statuses.
    let r = post(
        json!({"status": "hi", "in_reply_to_id": "999", "visibility": "public"}),
        "k5",
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Record not found"})
    );
    assert!(fake.delete_status(&m2.status_id));
    let r = post(
        json!({"status": "hi", "in_reply_to_id": m2.status_id, "visibility": "direct"}),
        "k6",
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        mget(&fake, &format!("/api/v1/statuses/{}", m2.status_id))
            .await
            .status(),
        404
    );
    assert_eq!(
        mget(&fake, &format!("/api/v1/statuses/{}/context", m2.status_id))
            .await
            .status(),
        404
    );
    let page: Value = mget(&fake, "/api/v1/notifications?types[]=mention")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&page), vec![m1.notification_id.clone()]);
    assert_eq!(fake.replies_to(&m1.status_id).len(), 2);
}

#[tokio::test]
async fn mastodon_faults_and_held_posts() {
    let fake = FakeMastodon::start().await;
    let m = fake.add_mention("alice", "hello");

    fake.fail_next("/api/v1/notifications", vec![Fault::too_many_requests(7)]);
    let r = mget(&fake, "/api/v1/notifications").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Too many requests"})
    );
    assert_eq!(mget(&fake, "/api/v1/notifications").await.status(), 200);

    fake.fail_next("POST /api/v1/statuses", vec![Fault::status(503)]);
    assert_eq!(
        mget(&fake, &format!("/api/v1/statuses/{}", m.status_id))
            .await
            .status(),
        200,
        "a POST-only fault does not hit GET"
    );
    let post = || {
        http()
            .post(format!("{}/api/v1/statuses", fake.url()))
            .bearer_auth(fake.token())
            .header("Idempotency-Key", "held-1")
            .json(&json!({"status": "@alice hi", "in_reply_to_id": m.status_id, "visibility": "public"}))
    };
    assert_eq!(post().send().await.unwrap().status(), 503);
    assert!(fake.posted_statuses().is_empty());

    // Held: the status exists, but the client never sees the answer.
    fake.hold_status_posts(true);
    let err = post()
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("held response must time out");
    assert!(err.is_timeout(), "{err}");
    let posted = fake.wait_for_posts(1, Duration::from_secs(2)).await;
    assert_eq!(posted[0].idempotency_key.as_deref(), Some("held-1"));
    let ctx: Value = mget(&fake, &format!("/api/v1/statuses/{}/context", m.status_id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&ctx["descendants"]), vec![posted[0].id.clone()]);

    // A retry with the same key, released: the same status comes back.
    let pending = tokio::spawn(post().send());
    crate::fakes::wait_until(Duration::from_secs(2), "a held post", || {
        fake.held_posts() >= 1
    })
    .await;
    fake.hold_status_posts(false);
    let again: Value = pending.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(again["id"], posted[0].id.as_str());
    assert_eq!(fake.posted_statuses().len(), 1);
    assert_eq!(fake.count("POST", "/api/v1/statuses"), 3);
}

#[tokio::test]
async fn mastodon_rate_limit_throttles_and_fixed_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fake = FakeMastodon::start_on(port).await;
    assert_eq!(fake.url(), format!("http://127.0.0.1:{port}"));
    let m = fake.add_mention("alice", "hi");
    fake.set_paging_rate_limit(2);
    fake.set_enforce_rate_limit(true);
    let q = format!(
        "/api/v1/notifications?types[]=mention&min_id={}",
        m.notification_id
    );
    let r = mget(&fake, &q).await;
    assert_eq!(r.headers()["x-ratelimit-limit"], "2");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "1");
    let r = mget(&fake, &q).await;
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let r = mget(&fake, &q).await;
    assert_eq!(r.status(), 429);
    assert!(
        r.headers().get("retry-after").is_none(),
        "Mastodon sends none"
    );
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Too many requests"})
    );
    // Requests without paging parameters only count against the 300/5 min throttle.
    let r = mget(&fake, "/api/v1/notifications?types[]=mention").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-limit"], "300");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "296");

    let slack_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let slack = FakeSlack::start_on(slack_port).await;
    assert_eq!(
        slack.api_url(),
        format!("http://127.0.0.1:{slack_port}/api")
    );
}

// ---------------------------------------------------------------------------
// Slack Web API through slack-morphism's client
// ---------------------------------------------------------------------------

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A `SlackClientHttpConnector` over reqwest that decodes answers exactly like
/// slack-morphism's hyper connector (JSON only when the content type says so, `error`
/// → ApiError, 429 → RateLimitError with Retry-After, other statuses → HttpError).
#[derive(Clone)]
struct ReqwestConnector {
    http: reqwest::Client,
    api_url: String,
}

fn system_error(message: String) -> SlackClientError {
    SlackClientError::SystemError(SlackClientSystemError::new().with_message(message))
}

fn protocol_error(err: serde_json::Error, body: &str) -> SlackClientError {
    SlackClientError::ProtocolError(
        SlackClientProtocolError::new(err).with_json_body(body.to_string()),
    )
}

async fn decode<RS: serde::de::DeserializeOwned>(
    sent: reqwest::Result<reqwest::Response>,
) -> ClientResult<RS> {
    let resp = sent.map_err(|e| system_error(e.to_string()))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    // As hyper_ext: an absent content type counts as JSON, any other must be application/json.
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    let body = resp.text().await.map_err(|e| system_error(e.to_string()))?;
    match status.as_u16() {
        200 if is_json => {
            let envelope: SlackEnvelopeMessage =
                serde_json::from_str(&body).map_err(|e| protocol_error(e, &body))?;
            match envelope.error {
                None => serde_json::from_str(&body).map_err(|e| protocol_error(e, &body)),
                Some(code) => Err(SlackClientError::ApiError(
                    SlackClientApiError::new(code).with_http_response_body(body),
                )),
            }
        }
        200 | 204 => serde_json::from_str("{}").map_err(|e| protocol_error(e, "{}")),
        429 => {
            let code = serde_json::from_str::<SlackEnvelopeMessage>(&body)
                .ok()
                .and_then(|e| e.error);
            Err(SlackClientError::RateLimitError(
                SlackRateLimitError::new()
                    .opt_retry_after(
                        headers
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|s| s.parse().ok())
                            .map(Duration::from_secs),
                    )
                    .opt_code(code)
                    .with_http_response_body(body),
            ))
        }
        _ => Err(SlackClientError::HttpError(
            SlackClientHttpError::new(status).with_http_response_body(body),
        )),
    }
}

impl SlackClientHttpConnector for ReqwestConnector {
    fn http_get_uri<'a, RS>(
        &'a self,
        full_uri: url::Url,
        context: SlackClientApiCallContext<'a>,
    ) -> BoxFut<'a, ClientResult<RS>>
    where
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a + 'a + Send,
    {
        Box::pin(async move {
            let mut req = self.http.get(full_uri.as_str());
            if let Some(token) = context.token {
                req = req.bearer_auth(token.token_value.value());
            }
            decode(req.send().await).await
        })
    }

    fn http_get_with_client_secret<'a, RS>(
        &'a self,
        _full_uri: url::Url,
        _client_id: &'a SlackClientId,
        _client_secret: &'a SlackClientSecret,
    ) -> BoxFut<'a, ClientResult<RS>>
    where
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a + 'a + Send,
    {
        Box::pin(async { Err(system_error("OAuth is not faked".into())) })
    }

    fn http_post_uri<'a, RQ, RS>(
        &'a self,
        full_uri: url::Url,
        request_body: &'a RQ,
        context: SlackClientApiCallContext<'a>,
    ) -> BoxFut<'a, ClientResult<RS>>
    where
        RQ: serde::ser::Serialize + Send + Sync,
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a + Send + 'a,
    {
        let body = serde_json::to_string(request_body);
        Box::pin(async move {
            let body = body.map_err(|e| system_error(e.to_string()))?;
            let mut req = self
                .http
                .post(full_uri.as_str())
                .header("content-type", "application/json; charset=utf-8")
                .body(body);
            if let Some(token) = context.token {
                req = req.bearer_auth(token.token_value.value());
            }
            decode(req.send().await).await
        })
    }

    fn http_post_uri_multipart_form<'a, 'p, RS, PT, TS>(
        &'a self,
        _full_uri: url::Url,
        _file: Option<slack_morphism::multipart_form::FileMultipartData<'p>>,
        _params: &'p PT,
        _context: SlackClientApiCallContext<'a>,
    ) -> BoxFut<'a, ClientResult<RS>>
    where
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a + Send + 'a,
        PT: std::iter::IntoIterator<Item = (&'p str, Option<TS>)> + Clone,
        TS: AsRef<str> + 'p + Send,
    {
        Box::pin(async { Err(system_error("multipart is not faked".into())) })
    }

    fn http_post_uri_binary<'a, 'p, RS>(
        &'a self,
        _full_uri: url::Url,
        _content_type: String,
        _data: &'a [u8],
        _context: SlackClientApiCallContext<'a>,
    ) -> BoxFut<'a, ClientResult<RS>>
    where
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a + Send + 'a,
    {
        Box::pin(async { Err(system_error("binary upload is not faked".into())) })
    }

    fn create_method_uri_path(&self, method_relative_uri: &str) -> ClientResult<url::Url> {
        format!("{}/{}", self.api_url, method_relative_uri)
            .parse()
            .map_err(|e: url::ParseError| system_error(e.to_string()))
    }
}

fn slack_client(fake: &FakeSlack) -> SlackClient<ReqwestConnector> {
    SlackClient::new(ReqwestConnector {
        http: http(),
        api_url: fake.api_url(),
    })
}

fn api_error_code<T: std::fmt::Debug>(r: ClientResult<T>) -> String {
    match r {
        Err(SlackClientError::ApiError(e)) => e.code,
        other => panic!("expected an ApiError, got {other:?}"),
    }
}

fn card_blocks(ticket: &str) -> Vec<SlackBlock> {
    serde_json::from_value(json!([
        {"type": "section", "block_id": "mention", "text": {"type": "mrkdwn", "text": "*@alice*: my order is late"}},
        {"type": "actions", "block_id": "actions", "elements": [
            {"type": "button", "action_id": "reply", "text": {"type": "plain_text", "text": "Reply"}, "value": ticket},
            {"type": "button", "action_id": "close", "text": {"type": "plain_text", "text": "Close"}, "value": ticket}
        ]}
    ]))
    .expect("blocks")
}

#[tokio::test]
async fn slack_web_api_through_slack_morphism() {
    let fake = FakeSlack::start().await;
    let client = slack_client(&fake);
    let bot = SlackApiToken::new(BOT_TOKEN.into());
    let session = client.open_session(&bot);

    let me = session.auth_test().await.expect("auth.test");
    assert_eq!(me.user_id.value(), "U0BOT");
    assert_eq!(me.team_id.value(), "T0001");
    assert_eq!(
        me.bot_id.as_ref().map(|b| b.value().as_str()),
        Some("B0001")
    );

    // Card with blocks and metadata.
    let metadata = SlackMessageMetadata::new("mention_ticket".into()).with_event_payload(
        [("ticket_id".to_string(), "t-1".to_string())]
            .into_iter()
            .collect(),
    );
    let posted = session
        .chat_post_message(&SlackApiChatPostMessageRequest::new(
            DEFAULT_CHANNEL.into(),
            SlackMessageContent::new()
                .with_text("New mention from @alice".into())
                .with_blocks(card_blocks("t-1"))
                .with_metadata(metadata.clone()),
        ))
        .await
        .expect("chat.postMessage");
    let ts = posted.ts.value().to_string();
    assert_eq!(posted.channel.value(), DEFAULT_CHANNEL);
    assert_eq!(posted.message.content.metadata.as_ref(), Some(&metadata));
    let stored = &fake.messages(DEFAULT_CHANNEL)[0];
    assert_eq!(stored.ts, ts);
    assert_eq!(
        stored.metadata,
        Some(json!({"event_type": "mention_ticket", "event_payload": {"ticket_id": "t-1"}}))
    );
    assert_eq!(
        stored.blocks.as_ref().unwrap()[1]["elements"][0]["value"],
        "t-1"
    );

    // Thread reply: not in history, in thread().
    let reply = session
        .chat_post_message(
            &SlackApiChatPostMessageRequest::new(
                DEFAULT_CHANNEL.into(),
                SlackMessageContent::new().with_text("Answer sent".into()),
            )
            .with_thread_ts(ts.clone().into()),
        )
        .await
        .expect("thread reply");
    assert!(reply.ts.value() > &ts, "ts increase");
    assert_eq!(fake.thread(DEFAULT_CHANNEL, &ts).len(), 1);
    assert_eq!(fake.messages(DEFAULT_CHANNEL).len(), 1);

    // chat.update keeps metadata, replaces blocks, records the update.
    let upd = session
        .chat_update(&SlackApiChatUpdateRequest::new(
            DEFAULT_CHANNEL.into(),
            SlackMessageContent::new()
                .with_text("Answered".into())
                .with_blocks(
                    serde_json::from_value(json!([
                        {"type": "section", "text": {"type": "mrkdwn", "text": "Answered by <@U1>"}}
                    ]))
                    .unwrap(),
                ),
            ts.clone().into(),
        ))
        .await
        .expect("chat.update");
    assert_eq!(upd.ts.value(), &ts);
    assert_eq!(fake.updates(&ts).len(), 1);
    let now = fake.message(DEFAULT_CHANNEL, &ts).unwrap();
    assert_eq!(now.text, "Answered");
    assert!(now.edited);
    assert!(now.metadata.is_some());
    assert_eq!(
        api_error_code(
            session
                .chat_update(&SlackApiChatUpdateRequest::new(
                    DEFAULT_CHANNEL.into(),
                    SlackMessageContent::new().with_text("x".into()),
                    "1.000001".into(),
                ))
                .await
        ),
        "message_not_found"
    );

    // History with metadata.
    let hist = session
        .conversations_history(
            &SlackApiConversationsHistoryRequest::new()
                .with_channel(DEFAULT_CHANNEL.into())
                .with_limit(10)
                .with_include_all_metadata(true),
        )
        .await
        .expect("conversations.history");
    assert_eq!(hist.messages.len(), 1);
    let h = &hist.messages[0];
    assert_eq!(h.origin.ts.value(), &ts);
    assert_eq!(h.content.metadata.as_ref(), Some(&metadata));
    assert_eq!(h.parent.reply_count, Some(1));
    assert_eq!(
        h.sender.bot_id.as_ref().map(|b| b.value().as_str()),
        Some("B0001")
    );
    assert_eq!(
        h.edited.as_ref().map(|e| e.user.value().as_str()),
        Some("U0BOT")
    );
    let hist = session
        .conversations_history(
            &SlackApiConversationsHistoryRequest::new().with_channel(DEFAULT_CHANNEL.into()),
        )
        .await
        .unwrap();
    let md = hist.messages[0].content.metadata.as_ref().unwrap();
    assert_eq!(md.event_type, "mention_ticket");
    assert!(
        md.event_payload.is_none(),
        "payload only with include_all_metadata"
    );

    // Paging with cursors and oldest.
    for i in 0..3 {
        session
            .chat_post_message(&SlackApiChatPostMessageRequest::new(
                DEFAULT_CHANNEL.into(),
                SlackMessageContent::new().with_text(format!("m{i}")),
            ))
            .await
            .unwrap();
    }
    let p1 = session
        .conversations_history(
            &SlackApiConversationsHistoryRequest::new()
                .with_channel(DEFAULT_CHANNEL.into())
                .with_limit(2),
        )
        .await
        .unwrap();
    assert_eq!(p1.has_more, Some(true));
    let texts = |r: &SlackApiConversationsHistoryResponse| -> Vec<String> {
        r.messages
            .iter()
            .map(|m| m.content.text.clone().unwrap_or_default())
            .collect()
    };
    assert_eq!(texts(&p1), vec!["m2", "m1"]);
    let cursor = p1.response_metadata.unwrap().next_cursor.unwrap();
    let p2 = session
        .conversations_history(
            &SlackApiConversationsHistoryRequest::new()
                .with_channel(DEFAULT_CHANNEL.into())
                .with_limit(2)
                .with_cursor(cursor),
        )
        .await
        .unwrap();
    assert_eq!(texts(&p2), vec!["m0", "Answered"]);
    assert_eq!(p2.has_more, Some(false));
    let newer = session
        .conversations_history(
            &SlackApiConversationsHistoryRequest::new()
                .with_channel(DEFAULT_CHANNEL.into())
                .with_oldest(ts.clone().into()),
        )
        .await
        .unwrap();
    assert_eq!(texts(&newer), vec!["m2", "m1", "m0"]);

    // Errors.
    assert_eq!(
        api_error_code(
            session
                .chat_post_message(&SlackApiChatPostMessageRequest::new(
                    "C0NOPE".into(),
                    SlackMessageContent::new().with_text("x".into()),
                ))
                .await
        ),
        "channel_not_found"
    );
    let too_long: Vec<SlackBlock> = serde_json::from_value(json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": "a".repeat(3001)}}
    ]))
    .unwrap();
    let err = session
        .chat_post_message(&SlackApiChatPostMessageRequest::new(
            DEFAULT_CHANNEL.into(),
            SlackMessageContent::new()
                .with_text("x".into())
                .with_blocks(too_long),
        ))
        .await;
    assert_eq!(api_error_code(err), "invalid_blocks");
    let wrong = SlackApiToken::new("xoxb-wrong".into());
    assert_eq!(
        api_error_code(client.open_session(&wrong).auth_test().await),
        "invalid_auth"
    );
    let app = SlackApiToken::new(APP_TOKEN.into());
    assert_eq!(
        api_error_code(client.open_session(&app).auth_test().await),
        "not_allowed_token_type"
    );

    // 429 with Retry-After.
    fake.fail_next("chat.postMessage", vec![Fault::too_many_requests(3)]);
    match session
        .chat_post_message(&SlackApiChatPostMessageRequest::new(
            DEFAULT_CHANNEL.into(),
            SlackMessageContent::new().with_text("x".into()),
        ))
        .await
    {
        Err(SlackClientError::RateLimitError(e)) => {
            assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
            assert_eq!(e.code.as_deref(), Some("ratelimited"));
        }
        other => panic!("expected a rate limit error, got {other:?}"),
    }

    // Ephemeral, user groups.
    session
        .chat_post_ephemeral(&SlackApiChatPostEphemeralRequest::new(
            DEFAULT_CHANNEL.into(),
            "U1".into(),
            SlackMessageContent::new().with_text("only you".into()),
        ))
        .await
        .expect("chat.postEphemeral");
    assert_eq!(fake.ephemerals()[0]["user"], "U1");
    fake.set_usergroup("S0AGENTS", &["U1", "U2"]);
    let members = session
        .usergroups_users_list(&SlackApiUserGroupsUsersListRequest::new("S0AGENTS".into()))
        .await
        .expect("usergroups.users.list");
    assert_eq!(members.users.len(), 2);

    // Modals: open, update, expired trigger.
    let modal: SlackView = serde_json::from_value(json!({
        "type": "modal",
        "callback_id": "reply_modal",
        "private_metadata": "t-1",
        "title": {"type": "plain_text", "text": "Reply to @alice"},
        "submit": {"type": "plain_text", "text": "Send"},
        "blocks": [{"type": "input", "block_id": "answer", "label": {"type": "plain_text", "text": "Answer"},
                    "element": {"type": "plain_text_input", "action_id": "answer_input", "multiline": true}}]
    }))
    .unwrap();
    let opened = session
        .views_open(&SlackApiViewsOpenRequest::new(
            slack::new_trigger_id().into(),
            modal.clone(),
        ))
        .await
        .expect("views.open");
    let view_id = opened.view.state_params.id.value().to_string();
    assert!(view_id.starts_with('V'));
    match &opened.view.view {
        SlackView::Modal(m) => assert_eq!(m.private_metadata.as_deref(), Some("t-1")),
        other => panic!("{other:?}"),
    }
    session
        .views_update(
            &SlackApiViewsUpdateRequest::new(modal.clone()).with_view_id(view_id.clone().into()),
        )
        .await
        .expect("views.update");
    assert_eq!(fake.views().len(), 2);
    fake.set_trigger_expiry(Some(Duration::from_millis(1)));
    let stale = slack::new_trigger_id();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        api_error_code(
            session
                .views_open(&SlackApiViewsOpenRequest::new(stale.into(), modal))
                .await
        ),
        "expired_trigger_id"
    );

    // apps.connections.open needs the app-level token.
    let url = client
        .open_session(&app)
        .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
        .await
        .expect("apps.connections.open");
    assert!(url
        .url
        .value()
        .as_str()
        .starts_with(&format!("ws://127.0.0.1:{}/socket?ticket=", fake.port())));
    assert_eq!(
        api_error_code(
            session
                .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
                .await
        ),
        "not_allowed_token_type"
    );
    assert_eq!(fake.count("chat.postMessage"), 8);
}

// ---------------------------------------------------------------------------
// Socket Mode
// ---------------------------------------------------------------------------

/// Field-for-field mirror of slack-morphism's `SlackSocketModeEvent` and its hello /
/// disconnect / envelope models (`#[serde(tag = "type")]`, envelope params flattened).
/// In slack-morphism 2.31.1 those models cannot be named from outside the crate (the
/// private `models::socket_mode` is shadowed by the public `socket_mode` listener
/// module), so the test parses frames with this mirror and the payloads with
/// slack-morphism's own (public) payload types.
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "type")]
#[allow(dead_code, clippy::large_enum_variant)]
enum SocketFrame {
    #[serde(rename = "hello")]
    Hello {
        connection_info: ConnectionInfo,
        num_connections: u32,
        debug_info: DebugInfo,
    },
    #[serde(rename = "disconnect")]
    Disconnect {
        reason: String,
        debug_info: DebugInfo,
    },
    #[serde(rename = "interactive")]
    Interactive {
        envelope_id: String,
        accepts_response_payload: bool,
        payload: SlackInteractionEvent,
    },
    #[serde(rename = "events_api")]
    EventsApi {
        envelope_id: String,
        accepts_response_payload: bool,
        payload: SlackPushEventCallback,
    },
    #[serde(rename = "slash_commands")]
    SlashCommands {
        envelope_id: String,
        accepts_response_payload: bool,
        payload: SlackCommandEvent,
    },
}

#[derive(Debug, serde::Deserialize)]
struct ConnectionInfo {
    app_id: SlackAppId,
}

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct DebugInfo {
    host: String,
    started: Option<String>,
    build_number: Option<u64>,
    approximate_connection_time: Option<u64>,
}

#[derive(Debug, PartialEq)]
enum WsEvent {
    Text(String),
    Close,
    /// The connection ended without a close frame.
    Eof,
}

/// A minimal RFC 6455 client: enough to drive the fake's Socket Mode endpoint.
struct WsClient {
    stream: TcpStream,
}

impl WsClient {
    async fn connect(url: &str) -> Result<WsClient, String> {
        let rest = url.strip_prefix("ws://").ok_or("not ws://")?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut stream = TcpStream::connect(host).await.map_err(|e| e.to_string())?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await.map_err(|e| e.to_string())? == 0 {
                return Err("closed during handshake".into());
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        if !head.starts_with("HTTP/1.1 101") {
            return Err(head.lines().next().unwrap_or("").to_string());
        }
        Ok(WsClient { stream })
    }

    async fn send_text(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.expect("ws write");
    }

    async fn recv(&mut self) -> WsEvent {
        loop {
            let mut h = [0u8; 2];
            if self.stream.read_exact(&mut h).await.is_err() {
                return WsEvent::Eof;
            }
            let opcode = h[0] & 0x0f;
            let mut len = (h[1] & 0x7f) as u64;
            if len == 126 {
                let mut b = [0u8; 2];
                if self.stream.read_exact(&mut b).await.is_err() {
                    return WsEvent::Eof;
                }
                len = u16::from_be_bytes(b) as u64;
            } else if len == 127 {
                let mut b = [0u8; 8];
                if self.stream.read_exact(&mut b).await.is_err() {
                    return WsEvent::Eof;
                }
                len = u64::from_be_bytes(b);
            }
            let mut payload = vec![0u8; len as usize];
            if self.stream.read_exact(&mut payload).await.is_err() {
                return WsEvent::Eof;
            }
            match opcode {
                0x1 => return WsEvent::Text(String::from_utf8(payload).expect("utf-8")),
                0x8 => return WsEvent::Close,
                _ => continue, // ping/pong/continuation: not used by the fake
            }
        }
    }

    async fn recv_timeout(&mut self) -> WsEvent {
        tokio::time::timeout(Duration::from_secs(5), self.recv())
            .await
            .expect("a websocket frame within 5 s")
    }

    async fn recv_event(&mut self) -> SocketFrame {
        match self.recv_timeout().await {
            WsEvent::Text(t) => serde_json::from_str(&t)
                .unwrap_or_else(|e| panic!("slack-morphism cannot parse {t}: {e}")),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn open_socket(fake: &FakeSlack) -> (WsClient, String) {
    let client = slack_client(fake);
    let app = SlackApiToken::new(APP_TOKEN.into());
    let url = client
        .open_session(&app)
        .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
        .await
        .expect("apps.connections.open")
        .url
        .value()
        .to_string();
    (WsClient::connect(&url).await.expect("ws connect"), url)
}

#[tokio::test]
async fn slack_socket_mode_protocol() {
    let fake = FakeSlack::start().await;
    let err = fake
        .send_envelope_with("events_api", json!({}), 0, "", Duration::from_millis(50))
        .await
        .expect_err("no socket yet");
    assert!(err.contains("no open Socket Mode connection"), "{err}");

    let (mut ws, url) = open_socket(&fake).await;
    match ws.recv_event().await {
        SocketFrame::Hello {
            connection_info,
            num_connections,
            debug_info,
        } => {
            assert_eq!(num_connections, 1);
            assert_eq!(connection_info.app_id.value(), "A0001");
            assert_eq!(debug_info.approximate_connection_time, Some(18060));
        }
        other => panic!("expected hello, got {other:?}"),
    }
    fake.wait_for_connection(1, Duration::from_secs(2)).await;
    assert_eq!(fake.open_connections(), 1);

    // A ticket is single-use.
    assert!(WsClient::connect(&url).await.is_err());

    // block_actions: a bare ack (what slack-morphism sends for an Empty response) → Null.
    let payload = slack::block_actions(
        "U1",
        "agent",
        "reply",
        "t-1",
        DEFAULT_CHANNEL,
        "1700000000.000100",
        &slack::new_trigger_id(),
    );
    let f = fake.clone();
    let pending = tokio::spawn(async move { f.send_envelope("interactive", payload).await });
    let SocketFrame::Interactive {
        envelope_id,
        accepts_response_payload,
        payload,
    } = ws.recv_event().await
    else {
        panic!("expected an interactive envelope");
    };
    assert!(!accepts_response_payload);
    assert!(matches!(payload, SlackInteractionEvent::BlockActions(_)));
    ws.send_text(&json!({ "envelope_id": envelope_id }).to_string())
        .await;
    assert_eq!(pending.await.unwrap(), Value::Null);

    // Slash command: the ack's payload (SlackCommandEventResponse) comes back.
    let payload = slack::slash_command("U1", "agent", "/mb", "list", DEFAULT_CHANNEL);
    let f = fake.clone();
    let pending = tokio::spawn(async move { f.send_envelope("slash_commands", payload).await });
    let SocketFrame::SlashCommands {
        envelope_id,
        accepts_response_payload,
        payload,
    } = ws.recv_event().await
    else {
        panic!("expected a slash_commands envelope");
    };
    assert!(accepts_response_payload);
    assert_eq!(payload.command.value(), "/mb");
    let response =
        SlackCommandEventResponse::new(SlackMessageContent::new().with_text("2 open".into()));
    let ack =
        json!({"envelope_id": envelope_id, "payload": serde_json::to_value(&response).unwrap()});
    ws.send_text(&ack.to_string()).await;
    assert_eq!(pending.await.unwrap(), json!({"text": "2 open"}));

    // view_submission accepts a response payload.
    let payload = slack::view_submission("U1", "agent", "reply_modal", "t-1", json!({}));
    let id = fake
        .post_envelope("interactive", payload, 0, "")
        .expect("open socket");
    let SocketFrame::Interactive {
        accepts_response_payload,
        payload,
        ..
    } = ws.recv_event().await
    else {
        panic!("expected an interactive envelope");
    };
    assert!(accepts_response_payload);
    assert!(matches!(payload, SlackInteractionEvent::ViewSubmission(_)));
    ws.send_text(&json!({"envelope_id": id, "payload": {"response_action": "clear"}}).to_string())
        .await;
    assert_eq!(
        fake.wait_for_ack(&id, Duration::from_secs(2))
            .await
            .unwrap(),
        json!({"response_action": "clear"})
    );

    // Events API: a person's thread reply, redelivered.
    let parent = fake.add_user_message(DEFAULT_CHANNEL, "U2", "a parent", None);
    let event = fake.user_thread_reply("U1", DEFAULT_CHANNEL, &parent, "we refunded you");
    let id = fake
        .post_envelope("events_api", event, 1, "timeout")
        .expect("open socket");
    let frame = ws.recv_timeout().await;
    let WsEvent::Text(raw) = frame else {
        panic!("{frame:?}");
    };
    let raw: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(raw["retry_attempt"], 1);
    assert_eq!(raw["retry_reason"], "timeout");
    let SocketFrame::EventsApi {
        accepts_response_payload,
        payload,
        ..
    } = serde_json::from_value(raw).unwrap()
    else {
        panic!("expected an events_api envelope");
    };
    assert!(!accepts_response_payload);
    match &payload.event {
        SlackEventCallbackBody::Message(m) => {
            assert_eq!(
                m.origin.thread_ts.as_ref().map(|t| t.value().as_str()),
                Some(parent.as_str())
            );
            assert_eq!(
                m.sender.user.as_ref().map(|u| u.value().as_str()),
                Some("U1")
            );
        }
        other => panic!("expected a message event, got {other:?}"),
    }
    ws.send_text(&json!({ "envelope_id": id }).to_string())
        .await;
    assert_eq!(
        fake.wait_for_ack(&id, Duration::from_secs(2))
            .await
            .unwrap(),
        Value::Null
    );
    assert_eq!(fake.acks().len(), 4);
    assert_eq!(fake.thread(DEFAULT_CHANNEL, &parent).len(), 1);

    // Disconnect: Slack's message, then a close frame.
    fake.send_disconnect("refresh_requested");
    match ws.recv_event().await {
        SocketFrame::Disconnect { reason, .. } => assert_eq!(reason, "refresh_requested"),
        other => panic!("expected disconnect, got {other:?}"),
    }
    assert_eq!(ws.recv_timeout().await, WsEvent::Close);
    fake.wait_until(Duration::from_secs(3), "the socket to close", |f| {
        f.open_connections() == 0
    })
    .await;

    // A new connection; drop_socket ends it without a close frame.
    let (mut ws2, _) = open_socket(&fake).await;
    assert!(matches!(ws2.recv_event().await, SocketFrame::Hello { .. }));
    fake.wait_for_connection(2, Duration::from_secs(2)).await;
    fake.drop_socket();
    assert_eq!(ws2.recv_timeout().await, WsEvent::Eof);
}

// ---------------------------------------------------------------------------
// Payload builders
// ---------------------------------------------------------------------------

#[tokio::test]
async fn slack_payload_builders_deserialize_into_slack_morphism() {
    let ba = slack::block_actions(
        "U1",
        "agent",
        "reply",
        "t-1",
        DEFAULT_CHANNEL,
        "1700000000.000100",
        "1.2.3",
    );
    match serde_json::from_value::<SlackInteractionEvent>(ba).unwrap() {
        SlackInteractionEvent::BlockActions(e) => {
            let a = &e.actions.unwrap()[0];
            assert_eq!(a.action_id.value(), "reply");
            assert_eq!(a.value.as_deref(), Some("t-1"));
            assert_eq!(e.user.unwrap().id.value(), "U1");
            assert_eq!(e.trigger_id.value(), "1.2.3");
            match e.container {
                SlackInteractionActionContainer::Message(c) => {
                    assert_eq!(c.message_ts.value(), "1700000000.000100");
                    assert_eq!(c.channel_id.unwrap().value(), DEFAULT_CHANNEL);
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }

    let values =
        json!({"answer": {"answer_input": {"type": "plain_text_input", "value": "Refunded!"}}});
    let vs = slack::view_submission("U1", "agent", "reply_modal", "t-1", values);
    match serde_json::from_value::<SlackInteractionEvent>(vs).unwrap() {
        SlackInteractionEvent::ViewSubmission(e) => {
            let state = e.view.state_params.state.unwrap();
            let v = &state.values[&"answer".into()][&"answer_input".into()];
            assert_eq!(v.value.as_deref(), Some("Refunded!"));
            match e.view.view {
                SlackView::Modal(m) => {
                    assert_eq!(m.private_metadata.as_deref(), Some("t-1"));
                    assert_eq!(m.callback_id.unwrap().value(), "reply_modal");
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }

    let sc = slack::slash_command("U1", "agent", "/mb", "list open", DEFAULT_CHANNEL);
    let sc: SlackCommandEvent = serde_json::from_value(sc).unwrap();
    assert_eq!(sc.text.as_deref(), Some("list open"));
    assert_eq!(sc.channel_id.value(), DEFAULT_CHANNEL);

    let ev = slack::thread_message_event(
        "U1",
        DEFAULT_CHANNEL,
        "1700000000.000100",
        "1700000005.000200",
        "done",
    );
    let ev: SlackPushEventCallback = serde_json::from_value(ev).unwrap();
    match ev.event {
        SlackEventCallbackBody::Message(m) => {
            assert_eq!(m.origin.ts.value(), "1700000005.000200");
            assert_eq!(m.content.unwrap().text.as_deref(), Some("done"));
        }
        other => panic!("expected Message, got {other:?}"),
    }

    // Builders from the fake's state.
    let fake = FakeSlack::start().await;
    let client = slack_client(&fake);
    let bot = SlackApiToken::new(BOT_TOKEN.into());
    let session = client.open_session(&bot);
    let posted = session
        .chat_post_message(&SlackApiChatPostMessageRequest::new(
            DEFAULT_CHANNEL.into(),
            SlackMessageContent::new()
                .with_text("card".into())
                .with_blocks(card_blocks("t-9")),
        ))
        .await
        .unwrap();
    let ba = fake.block_actions_on(DEFAULT_CHANNEL, posted.ts.value(), "U1", "agent", "close");
    match serde_json::from_value::<SlackInteractionEvent>(ba).unwrap() {
        SlackInteractionEvent::BlockActions(e) => {
            let a = &e.actions.unwrap()[0];
            assert_eq!(a.value.as_deref(), Some("t-9"));
            assert_eq!(a.block_id.as_ref().unwrap().value(), "actions");
            assert_eq!(e.message.unwrap().content.blocks.unwrap().len(), 2);
        }
        other => panic!("{other:?}"),
    }
    let opened = session
        .views_open(&SlackApiViewsOpenRequest::new(
            slack::new_trigger_id().into(),
            serde_json::from_value(json!({
                "type": "modal", "callback_id": "reply_modal", "private_metadata": "t-9",
                "title": {"type": "plain_text", "text": "Reply"},
                "submit": {"type": "plain_text", "text": "Send"},
                "blocks": [{"type": "input", "block_id": "answer", "label": {"type": "plain_text", "text": "Answer"},
                            "element": {"type": "plain_text_input", "action_id": "answer_input"}}]
            }))
            .unwrap(),
        ))
        .await
        .unwrap();
    let vs = fake.submission_for_view(
        opened.view.state_params.id.value(),
        "U1",
        "agent",
        json!({"answer": {"answer_input": {"type": "plain_text_input", "value": "ok"}}}),
    );
    assert!(matches!(
        serde_json::from_value::<SlackInteractionEvent>(vs).unwrap(),
        SlackInteractionEvent::ViewSubmission(_)
    ));

    // Request signing, Slack's documented example; and slack-morphism's verifier agrees.
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    assert_eq!(
        slack::sign_request("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body),
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    );
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = slack::sign_request("s3cret", &ts, "{\"a\":1}");
    SlackEventSignatureVerifier::new(&SlackSigningSecret::new("s3cret".into()))
        .verify(&sig, "{\"a\":1}", &ts)
        .expect("slack-morphism accepts the signature");
}
