//! A fake LibreTranslate server on 127.0.0.1, as LibreTranslate/LibreTranslate `app.py`
//! answers: `POST /translate` (JSON or a form; `q` a string or an array, `source` a code
//! or `auto`, `target`, `format` `text`|`html`, `api_key`) → `{"translatedText": …}`
//! with `detectedLanguage` (`{"confidence", "language"}`, one per text for an array)
//! when the source was `auto`; `POST /detect` → `[{"confidence", "language"}]`;
//! `GET /languages` → `[{"code", "name", "targets"}]`. Errors are `{"error": "…"}`:
//! 400 for a missing parameter, an unsupported language or a request over the server's
//! limits, 403 for a key it does not know (and 400 when a key is required and missing,
//! as `--api-keys --require-api-key-origin` servers do), 429 to slow down, 500.
//! The translation itself is `fakes::translation::render`.
//!
//! Faults (`fail_next`) answer before any of that, so `Fault::http(200, "…")` scripts a
//! hostile body (not JSON, the wrong count, a huge answer).

use super::scaffold::{
    json_response, json_text_response, lock, query_pairs, Call, FakeServer, FaultQueue, Listener,
    Refusal, RequestLog, Route,
};
use super::translation::{detect, render};
use super::Fault;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the fake saw it: method, path, and its parameters as JSON (a form is
/// read into an object of strings).
#[derive(Clone, Debug)]
pub struct LtRequest {
    pub method: String,
    pub path: String,
    pub params: Value,
}

struct LtState {
    /// (code, name) of the languages served; every one translates into every other.
    languages: Vec<(String, String)>,
    /// Keys the server knows; empty: no key is needed (a server without `--api-keys`).
    keys: BTreeSet<String>,
    /// `--batch-limit`: most texts in one request (None: unlimited).
    batch_limit: Option<usize>,
    /// `--char-limit`: most characters in one text (None: unlimited).
    char_limit: Option<usize>,
}

struct Shared {
    state: Mutex<LtState>,
    requests: RequestLog<LtRequest>,
    faults: FaultQueue,
    server: FakeServer,
}

/// Handle to a running fake LibreTranslate (cheap to clone; clones share state).
#[derive(Clone)]
pub struct FakeLibreTranslate {
    shared: Arc<Shared>,
}

impl FakeLibreTranslate {
    pub async fn start() -> FakeLibreTranslate {
        let listener = Listener::bind("LibreTranslate", 0).await;
        let languages = [
            ("en", "English"),
            ("de", "German"),
            ("fr", "French"),
            ("es", "Spanish"),
            ("pt", "Portuguese"),
            ("pt-BR", "Portuguese (Brazil)"),
        ]
        .iter()
        .map(|(c, n)| (c.to_string(), n.to_string()))
        .collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(LtState {
                languages,
                keys: BTreeSet::new(),
                batch_limit: None,
                char_limit: None,
            }),
            requests: RequestLog::default(),
            faults: FaultQueue::default(),
            server: listener.server(),
        });
        listener.serve(Router::new().fallback(handle).with_state(shared.clone()));
        FakeLibreTranslate { shared }
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        self.shared.server.url()
    }

    /// From now on the server needs a key, and knows this one.
    pub fn require_key(&self, key: &str) {
        lock(&self.shared.state).keys.insert(key.to_string());
    }

    pub fn set_batch_limit(&self, limit: Option<usize>) {
        lock(&self.shared.state).batch_limit = limit;
    }

    pub fn set_char_limit(&self, limit: Option<usize>) {
        lock(&self.shared.state).char_limit = limit;
    }

    /// The languages served, replacing the default list (en, de, fr, es, pt, pt-BR).
    pub fn set_languages(&self, codes: &[&str]) {
        lock(&self.shared.state).languages = codes
            .iter()
            .map(|c| (c.to_string(), c.to_string()))
            .collect();
    }

    /// The next requests to `route` (`"POST /translate"`) meet these faults instead.
    pub fn fail_next(&self, route: &str, faults: Vec<Fault>) {
        self.shared.faults.push(Route::parse(route), faults);
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<LtRequest> {
        self.shared.requests.all()
    }

    /// The `POST /translate` requests, in order.
    pub fn translations(&self) -> Vec<LtRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == "/translate")
            .collect()
    }

    /// How many requests reached the server at all.
    pub fn request_count(&self) -> usize {
        self.shared.requests.len()
    }

    pub async fn wait_for_translations(&self, n: usize, timeout: Duration) -> Vec<LtRequest> {
        super::scaffold::wait_for_at_least(
            timeout,
            &format!("{n} translations on fake LibreTranslate"),
            n,
            || self.translations(),
            &self.shared.requests,
        )
        .await
    }
}

fn error(code: u16, message: &str) -> Response {
    json_response(code, &json!({ "error": message }))
}

fn usual(code: u16) -> Response {
    match code {
        400 => error(400, "Invalid request"),
        403 => error(403, "Invalid API key"),
        429 => error(429, "Slowdown: 20 per 1 minute"),
        500 => error(500, "Cannot translate text: internal error"),
        other => error(other, "Error"),
    }
}

/// The request's parameters: a JSON object, or a form read as one.
fn params(call: &Call) -> Option<Value> {
    let json_body = call
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if json_body {
        return serde_json::from_slice::<Value>(&call.body)
            .ok()
            .filter(Value::is_object);
    }
    let text = String::from_utf8_lossy(&call.body).to_string();
    let mut map = serde_json::Map::new();
    for (k, v) in query_pairs(&text)
        .into_iter()
        .chain(query_pairs(&call.query))
    {
        map.insert(k, Value::String(v));
    }
    Some(Value::Object(map))
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let call = Call::read(req, 8 << 20).await;
    let parsed = params(&call);
    shared.requests.record(LtRequest {
        method: call.method.to_string(),
        path: call.path.clone(),
        params: parsed.clone().unwrap_or(Value::Null),
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
    match (call.method.as_str(), call.path.as_str()) {
        ("GET", "/languages") => languages(&shared),
        ("POST", "/translate") => match parsed {
            Some(p) => translate(&shared, &p),
            None => error(400, "Invalid JSON format"),
        },
        ("POST", "/detect") => match parsed {
            Some(p) => detect_route(&shared, &p),
            None => error(400, "Invalid JSON format"),
        },
        _ => json_text_response(404, "{\"error\":\"Not Found\"}".into()),
    }
}

fn languages(shared: &Shared) -> Response {
    let st = lock(&shared.state);
    let codes: Vec<&String> = st.languages.iter().map(|(c, _)| c).collect();
    let list: Vec<Value> = st
        .languages
        .iter()
        .map(|(code, name)| {
            let targets: Vec<&&String> = codes.iter().filter(|c| **c != code).collect();
            json!({"code": code, "name": name, "targets": targets})
        })
        .collect();
    json_response(200, &Value::Array(list))
}

/// The key check of `access_check`: an unknown key is refused, a missing one too when
/// keys are required.
fn key_refused(shared: &Shared, p: &Value) -> Option<Response> {
    let st = lock(&shared.state);
    if st.keys.is_empty() {
        return None;
    }
    match p
        .get("api_key")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
    {
        Some(k) if st.keys.contains(k) => None,
        Some(_) => Some(error(403, "Invalid API key")),
        None => Some(error(
            400,
            "Please contact the server operator to get an API key",
        )),
    }
}

fn served(shared: &Shared, code: &str) -> bool {
    lock(&shared.state).languages.iter().any(|(c, _)| c == code)
}

fn translate(shared: &Shared, p: &Value) -> Response {
    if let Some(refused) = key_refused(shared, p) {
        return refused;
    }
    let (texts, batch): (Vec<String>, bool) = match p.get("q") {
        Some(Value::String(s)) if !s.is_empty() => (vec![s.clone()], false),
        Some(Value::Array(items)) if !items.is_empty() => {
            let texts: Option<Vec<String>> = items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect();
            match texts {
                Some(t) => (t, true),
                None => return error(400, "Invalid request: q must hold text"),
            }
        }
        _ => return error(400, "Invalid request: missing q parameter"),
    };
    let param = |name: &str| {
        p.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let Some(source) = param("source") else {
        return error(400, "Invalid request: missing source parameter");
    };
    let Some(target) = param("target") else {
        return error(400, "Invalid request: missing target parameter");
    };
    let (batch_limit, char_limit) = {
        let st = lock(&shared.state);
        (st.batch_limit, st.char_limit)
    };
    if let Some(limit) = batch_limit.filter(|l| batch && texts.len() > *l) {
        return error(
            400,
            &format!(
                "Invalid request: request ({}) exceeds text limit ({limit})",
                texts.len()
            ),
        );
    }
    if let Some((size, limit)) = char_limit.and_then(|l| {
        texts
            .iter()
            .map(|t| t.chars().count())
            .find(|n| *n > l)
            .map(|n| (n, l))
    }) {
        return error(
            400,
            &format!("Invalid request: request ({size}) exceeds text limit ({limit})"),
        );
    }
    let detected = if source == "auto" {
        detect(&texts.join(" ")).to_string()
    } else {
        source.to_string()
    };
    if !served(shared, &detected) {
        return error(400, &format!("{source} is not supported"));
    }
    if !served(shared, target) {
        return error(400, &format!("{target} is not supported"));
    }
    if detected == target {
        return error(
            400,
            &format!("{target} ({target}) is not available as a target language from {detected} ({detected})"),
        );
    }
    match param("format") {
        None | Some("text") | Some("html") => {}
        Some(other) => return error(400, &format!("{other} format is not supported")),
    }
    let rendered: Vec<String> = texts.iter().map(|t| render(t, &detected, target)).collect();
    let language = json!({"confidence": 90.0, "language": detected});
    let mut out = if batch {
        json!({ "translatedText": rendered })
    } else {
        json!({ "translatedText": rendered[0] })
    };
    if source == "auto" {
        out["detectedLanguage"] = if batch {
            Value::Array(vec![language; texts.len()])
        } else {
            language
        };
    }
    json_response(200, &out)
}

fn detect_route(shared: &Shared, p: &Value) -> Response {
    if let Some(refused) = key_refused(shared, p) {
        return refused;
    }
    match p.get("q").and_then(Value::as_str) {
        Some(q) if !q.is_empty() => {
            json_response(200, &json!([{"confidence": 90.0, "language": detect(q)}]))
        }
        _ => error(400, "Invalid request: missing q parameter"),
    }
}
