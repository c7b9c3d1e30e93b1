//! A fake DeepL API on 127.0.0.1, as developers.deepl.com documents it: `POST
//! /v2/translate` with `Authorization: DeepL-Auth-Key <key>` (the only place a key is
//! taken) and a JSON body `{"text": [...], "target_lang", "source_lang"?}` →
//! `{"translations": [{"detected_source_language": "DE", "text": "…"}]}`, and `GET
//! /v2/usage` → `{"character_count", "character_limit"}`. As DeepL does it refuses:
//! a missing or unknown key (403), more than 50 texts or a bad language (400), a body
//! over 128 KiB (413), characters beyond the account's quota (456); and it takes target
//! codes with their variants only (`EN-GB`/`EN-US`, `PT-BR`/`PT-PT`: plain `EN` and `PT`
//! are deprecated, refused here so a client that sends them is caught), sources without
//! variants. Errors are `{"message": "…"}`. The translation is `fakes::translation`'s.
//!
//! Faults (`fail_next`) answer before any of that (`Fault::http(200, "…")` for a hostile
//! body, `Fault::status(456)`, `Fault::Hang`, …).

use super::scaffold::{
    json_response, lock, Call, FakeServer, FaultQueue, Listener, Refusal, RequestLog, Route,
};
use super::translation::{detect, render};
use super::Fault;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// DeepL's limits of one request.
pub const MAX_TEXTS: usize = 50;
pub const MAX_BODY: usize = 128 * 1024;

const TARGETS: &[&str] = &[
    "AR", "BG", "CS", "DA", "DE", "EL", "EN-GB", "EN-US", "ES", "ET", "FI", "FR", "HU", "ID", "IT",
    "JA", "KO", "LT", "LV", "NB", "NL", "PL", "PT-BR", "PT-PT", "RO", "RU", "SK", "SL", "SV", "TR",
    "UK", "ZH", "ZH-HANS", "ZH-HANT",
];
const SOURCES: &[&str] = &[
    "AR", "BG", "CS", "DA", "DE", "EL", "EN", "ES", "ET", "FI", "FR", "HU", "ID", "IT", "JA", "KO",
    "LT", "LV", "NB", "NL", "PL", "PT", "RO", "RU", "SK", "SL", "SV", "TR", "UK", "ZH",
];

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct DeeplRequest {
    pub method: String,
    pub path: String,
    /// The `Authorization` header as sent (None: absent).
    pub authorization: Option<String>,
    /// Where else a key was looked for and found (a query or body `auth_key`): DeepL
    /// no longer takes it there, and a client must never send it so.
    pub key_elsewhere: bool,
    /// The JSON body (Null when not JSON).
    pub body: Value,
    pub body_bytes: usize,
}

struct DState {
    key: String,
    /// Characters translated so far, and the account's limit.
    used: u64,
    limit: u64,
}

struct Shared {
    state: Mutex<DState>,
    requests: RequestLog<DeeplRequest>,
    faults: FaultQueue,
    server: FakeServer,
}

/// Handle to a running fake DeepL (cheap to clone; clones share state).
#[derive(Clone)]
pub struct FakeDeepl {
    shared: Arc<Shared>,
}

impl FakeDeepl {
    /// A fake whose account holds `key` (a free-plan key ends in `:fx`).
    pub async fn start(key: &str) -> FakeDeepl {
        let listener = Listener::bind("DeepL", 0).await;
        let shared = Arc::new(Shared {
            state: Mutex::new(DState {
                key: key.to_string(),
                used: 0,
                limit: 500_000,
            }),
            requests: RequestLog::default(),
            faults: FaultQueue::default(),
            server: listener.server(),
        });
        listener.serve(Router::new().fallback(handle).with_state(shared.clone()));
        FakeDeepl { shared }
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        self.shared.server.url()
    }

    /// The account's character limit (the free plan's is 500,000 a month).
    pub fn set_character_limit(&self, limit: u64) {
        lock(&self.shared.state).limit = limit;
    }

    pub fn characters_used(&self) -> u64 {
        lock(&self.shared.state).used
    }

    pub fn fail_next(&self, route: &str, faults: Vec<Fault>) {
        self.shared.faults.push(Route::parse(route), faults);
    }

    pub fn requests(&self) -> Vec<DeeplRequest> {
        self.shared.requests.all()
    }

    /// The `POST /v2/translate` requests, in order.
    pub fn translations(&self) -> Vec<DeeplRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == "/v2/translate")
            .collect()
    }

    pub fn request_count(&self) -> usize {
        self.shared.requests.len()
    }

    pub async fn wait_for_translations(&self, n: usize, timeout: Duration) -> Vec<DeeplRequest> {
        super::scaffold::wait_for_at_least(
            timeout,
            &format!("{n} translations on fake DeepL"),
            n,
            || self.translations(),
            &self.shared.requests,
        )
        .await
    }
}

fn error(code: u16, message: &str) -> Response {
    json_response(code, &json!({ "message": message }))
}

fn usual(code: u16) -> Response {
    match code {
        400 => error(400, "Bad request"),
        403 => error(403, "Authorization failed"),
        413 => error(413, "Request Entity Too Large"),
        429 => error(429, "Too many requests"),
        456 => error(456, "Quota Exceeded"),
        500 => error(500, "Internal error"),
        other => error(other, "Error"),
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let call = Call::read(req, 4 << 20).await;
    let authorization = call
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body: Value = serde_json::from_slice(&call.body).unwrap_or(Value::Null);
    let key_elsewhere = call.query.contains("auth_key")
        || body.get("auth_key").is_some()
        || String::from_utf8_lossy(&call.body).contains("auth_key=");
    shared.requests.record(DeeplRequest {
        method: call.method.to_string(),
        path: call.path.clone(),
        authorization: authorization.clone(),
        key_elsewhere,
        body: body.clone(),
        body_bytes: call.body.len(),
    });
    let fault = shared
        .faults
        .take(|r| r.matches(call.method.as_str(), &call.path));
    if let Some(refusal) = Fault::play(fault).await {
        let Refusal { retry_after, .. } = refusal;
        let mut resp = refusal.response(usual);
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        return resp;
    }
    let expected = format!("DeepL-Auth-Key {}", lock(&shared.state).key);
    if authorization.as_deref() != Some(expected.as_str()) {
        return error(403, "Authorization failed. Please supply a valid DeepL-Auth-Key via the Authorization header.");
    }
    match (call.method.as_str(), call.path.as_str()) {
        ("GET", "/v2/usage") => {
            let st = lock(&shared.state);
            json_response(
                200,
                &json!({"character_count": st.used, "character_limit": st.limit}),
            )
        }
        ("POST", "/v2/translate") => {
            if call.body.len() > MAX_BODY {
                return usual(413);
            }
            translate(&shared, &body)
        }
        _ => error(404, "Not found"),
    }
}

fn translate(shared: &Shared, body: &Value) -> Response {
    let Some(items) = body.get("text").and_then(Value::as_array) else {
        return error(400, "Parameter 'text' not specified.");
    };
    let texts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
    let Some(texts) = texts.filter(|t| !t.is_empty()) else {
        return error(400, "Parameter 'text' must be a list of strings.");
    };
    if texts.len() > MAX_TEXTS {
        return error(400, "Too many texts: at most 50 in one request.");
    }
    let Some(target) = body.get("target_lang").and_then(Value::as_str) else {
        return error(400, "Parameter 'target_lang' not specified.");
    };
    let target = target.to_ascii_uppercase();
    if target == "EN" || target == "PT" {
        return error(
            400,
            &format!(
                "Value for 'target_lang' not supported: {target} is deprecated, name the variant."
            ),
        );
    }
    if !TARGETS.contains(&target.as_str()) {
        return error(400, "Value for 'target_lang' not supported.");
    }
    let source = match body.get("source_lang").and_then(Value::as_str) {
        Some(s) if SOURCES.contains(&s.to_ascii_uppercase().as_str()) => {
            Some(s.to_ascii_lowercase())
        }
        Some(_) => return error(400, "Value for 'source_lang' not supported."),
        None => None,
    };
    let characters: u64 = texts.iter().map(|t| t.chars().count() as u64).sum();
    {
        let mut st = lock(&shared.state);
        if st.used + characters > st.limit {
            return usual(456);
        }
        st.used += characters;
    }
    let translations: Vec<Value> = texts
        .iter()
        .map(|t| {
            let from = source.clone().unwrap_or_else(|| detect(t).to_string());
            json!({
                "detected_source_language": from.to_ascii_uppercase(),
                "text": render(t, &from, &target),
            })
        })
        .collect();
    json_response(200, &json!({ "translations": translations }))
}
