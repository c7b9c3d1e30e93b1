//! What every fake server has in common, written once: a listener on 127.0.0.1 and the
//! task serving it, the log of requests a fake saw, the queue of faults a test scripted
//! for the next calls of a route (and of answers to lose), and waiting with a deadline
//! for something a test expects. Each fake keeps what is its platform's own: how a route
//! is named, what its log records, the body and headers a fault answers with.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::serve::ListenerExt;
use axum::Router;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Locks a fake's state; a test that panicked while holding it has already failed, so
/// what it left behind is still the best account of what happened.
pub fn lock<S>(state: &Mutex<S>) -> MutexGuard<'_, S> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a fake listens. Copied into the fake's state: several fakes write their own
/// address into what they answer (Socket Mode URLs, gateway URLs, account URLs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FakeServer {
    port: u16,
}

impl FakeServer {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A bound listener, not serving yet: the fake builds its state (which needs the port)
/// between [`Listener::bind`] and [`Listener::serve`].
pub struct Listener {
    tcp: tokio::net::TcpListener,
    server: FakeServer,
}

impl Listener {
    /// Binds 127.0.0.1:`port` (0 = ephemeral); panics naming the fake when it cannot.
    pub async fn bind(fake: &str, port: u16) -> Listener {
        let tcp = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("fake {fake}: cannot bind 127.0.0.1:{port}: {e}"));
        let port = tcp.local_addr().expect("local addr").port();
        Listener {
            tcp,
            server: FakeServer { port },
        }
    }

    pub fn server(&self) -> FakeServer {
        self.server
    }

    /// Serves `app` until the test's runtime ends: each `#[tokio::test]` owns its runtime,
    /// and the server task (with every connection it spawned) ends with it.
    pub fn serve(self, app: Router) -> FakeServer {
        let server = self.server;
        // As the platforms' servers do: no Nagle delay on what the fake writes (a frame
        // written in two parts would otherwise wait for the desk's delayed ACK).
        let tcp = self.tcp.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(tcp, app).await;
        });
        server
    }
}

/// One request as a fake's handler reads it: everything up front, so the fake can log it
/// and look for a scripted fault before it decides anything.
pub struct Call {
    pub method: Method,
    pub path: String,
    /// Without the `?`; empty when there is none.
    pub query: String,
    /// As the client sent it (`/api/v1/notifications?limit=40`).
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    /// Reads `request`, its body up to `limit` bytes (a longer or broken body reads as
    /// empty, which each fake then refuses in its platform's words).
    pub async fn read(request: Request, limit: usize) -> Call {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or("").to_string();
        let path_and_query = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| path.clone());
        let headers = request.headers().clone();
        let body = axum::body::to_bytes(request.into_body(), limit)
            .await
            .unwrap_or_default();
        Call {
            method,
            path,
            query,
            path_and_query,
            headers,
            body,
        }
    }
}

/// The token of an `Authorization: Bearer …` header (the scheme in either case).
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
}

/// A query string (or form body) as its decoded pairs, in order.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// A JSON answer as most platforms send it (`application/json; charset=utf-8`).
pub fn json_response(code: u16, body: &Value) -> Response {
    json_text_response(code, body.to_string())
}

/// A JSON answer whose text is given as it is (a test's scripted body, valid or not).
pub fn json_text_response(code: u16, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// Every request a fake saw, in arrival order, as the fake chooses to record it (method
/// and path; the parameters or JSON body where tests read them).
pub struct RequestLog<R> {
    seen: Mutex<Vec<R>>,
}

impl<R> Default for RequestLog<R> {
    fn default() -> Self {
        RequestLog {
            seen: Mutex::new(Vec::new()),
        }
    }
}

impl<R: Clone> RequestLog<R> {
    pub fn record(&self, request: R) {
        lock(&self.seen).push(request);
    }

    pub fn all(&self) -> Vec<R> {
        lock(&self.seen).clone()
    }

    pub fn len(&self) -> usize {
        lock(&self.seen).len()
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.seen).is_empty()
    }

    /// How many recorded requests `which` picks.
    pub fn count(&self, which: impl Fn(&R) -> bool) -> usize {
        lock(&self.seen).iter().filter(|r| which(r)).count()
    }

    pub fn clear(&self) {
        lock(&self.seen).clear();
    }
}

/// The requests a scripted fault is for: a path prefix (or a platform's method name),
/// optionally for one HTTP method only, written `"POST /api/v1/statuses"` or
/// `"/api/v1/statuses"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Upper case (`"POST"`); None: any method.
    pub method: Option<String>,
    pub prefix: String,
}

impl Route {
    /// `"METHOD /prefix"` or `"/prefix"`. The method is compared without regard to case.
    pub fn parse(spec: &str) -> Route {
        match spec.split_once(' ') {
            Some((method, prefix)) => Route {
                method: Some(method.to_ascii_uppercase()),
                prefix: prefix.to_string(),
            },
            None => Route::named(spec),
        }
    }

    /// A route named by a platform's method (`chat.postMessage`, an XRPC nsid), any HTTP
    /// method; the fake compares the name whole.
    pub fn named(name: &str) -> Route {
        Route {
            method: None,
            prefix: name.to_string(),
        }
    }

    /// Whether a request with this method and path is one of this route's.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.starts_with(&self.prefix)
    }
}

/// What a test scripted for the next calls of a route: each matching request takes the
/// next item of the first route (in the order they were queued) that still has one; a
/// route whose items are used up stops matching, and requests pass again.
///
/// Faults use `FaultQueue<Fault>`; answers to lose (the platform acts, the client never
/// hears back) use `FaultQueue<()>`, one item per answer.
pub struct FaultQueue<T = Fault> {
    routes: Mutex<Vec<(Route, VecDeque<T>)>>,
}

impl<T> Default for FaultQueue<T> {
    fn default() -> Self {
        FaultQueue {
            routes: Mutex::new(Vec::new()),
        }
    }
}

impl<T> FaultQueue<T> {
    pub fn push(&self, route: Route, items: impl IntoIterator<Item = T>) {
        let items: VecDeque<T> = items.into_iter().collect();
        if !items.is_empty() {
            lock(&self.routes).push((route, items));
        }
    }

    /// The next item for the first queued route `hit` accepts, if any.
    pub fn take(&self, hit: impl Fn(&Route) -> bool) -> Option<T> {
        let mut routes = lock(&self.routes);
        let found = routes
            .iter_mut()
            .find(|(route, items)| !items.is_empty() && hit(route))
            .and_then(|(_, items)| items.pop_front());
        routes.retain(|(_, items)| !items.is_empty());
        found
    }
}

impl FaultQueue<()> {
    /// The next `n` matching requests lose their answer.
    pub fn push_n(&self, route: Route, n: usize) {
        self.push(route, std::iter::repeat_n((), n));
    }

    /// Whether this request's answer is to be lost (and one fewer after it).
    pub fn take_one(&self, hit: impl Fn(&Route) -> bool) -> bool {
        self.take(hit).is_some()
    }
}

/// An injected failure, consumed by exactly one matching request
/// (see `FakeMastodon::fail_next` and `FakeSlack::fail_next`).
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Answer with this HTTP status instead of doing the work. `retry_after` (seconds)
    /// becomes a `Retry-After` header. An empty `body` means "the platform's usual body
    /// for that status" (Mastodon 429: `{"error":"Too many requests"}`, Slack 429:
    /// `{"ok":false,"error":"ratelimited"}`, ...). The body is sent as JSON.
    Status {
        code: u16,
        retry_after: Option<u64>,
        body: String,
    },
    /// Wait this long, then handle the request normally.
    Delay(Duration),
    /// Never answer (the request is not processed); the client has to time out.
    Hang,
}

/// A [`Fault::Status`] drawn for a request: the fake answers it in its platform's words.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub code: u16,
    pub retry_after: Option<u64>,
    /// Empty: the platform's usual body for `code`.
    pub body: String,
}

impl Refusal {
    /// The scripted body, or (when none was given) `usual(code)`: the platform's own
    /// answer for that status.
    pub fn response(&self, usual: impl FnOnce(u16) -> Response) -> Response {
        if self.body.is_empty() {
            usual(self.code)
        } else {
            json_text_response(self.code, self.body.clone())
        }
    }
}

impl Fault {
    /// A bare status with the platform's default body.
    pub fn status(code: u16) -> Fault {
        Fault::Status {
            code,
            retry_after: None,
            body: String::new(),
        }
    }

    /// HTTP 429 with `Retry-After: secs` and the platform's default body.
    pub fn too_many_requests(retry_after_secs: u64) -> Fault {
        Fault::Status {
            code: 429,
            retry_after: Some(retry_after_secs),
            body: String::new(),
        }
    }

    /// Any status with an explicit JSON body.
    pub fn http(code: u16, body: impl Into<String>) -> Fault {
        Fault::Status {
            code,
            retry_after: None,
            body: body.into(),
        }
    }

    /// Plays the fault drawn for a request (if any): a hang never returns, a delay waits
    /// and lets the request through (None), a status comes back as the refusal to answer.
    pub async fn play(fault: Option<Fault>) -> Option<Refusal> {
        match fault? {
            Fault::Hang => std::future::pending().await,
            Fault::Delay(d) => {
                tokio::time::sleep(d).await;
                None
            }
            Fault::Status {
                code,
                retry_after,
                body,
            } => Some(Refusal {
                code,
                retry_after,
                body,
            }),
        }
    }
}

/// Never answers: the platform acted, and the client never hears back.
pub async fn lose_answer<T>() -> T {
    std::future::pending().await
}

/// How often the waiting helpers look again.
const POLL: Duration = Duration::from_millis(10);

/// Looks at `probe` every `every` until it yields a value, or None once `timeout` has
/// passed (for callers that report a miss in their own words).
pub async fn poll<T>(
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls `probe` every 10 ms until it yields a value; after `timeout` panics saying
/// what it waited for and, when `seen` says something, what there was instead.
pub async fn wait_for<T>(
    timeout: Duration,
    what: &str,
    probe: impl FnMut() -> Option<T>,
    seen: impl FnOnce() -> String,
) -> T {
    match poll(timeout, POLL, probe).await {
        Some(found) => found,
        None => {
            let seen = seen();
            if seen.is_empty() {
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            panic!("timed out after {timeout:?} waiting for {what}; {seen}");
        }
    }
}

/// Waits until `items()` holds at least `n` things (posts, messages, DMs) and returns
/// them; a timeout shows what there was and every request the fake saw.
pub async fn wait_for_at_least<T: std::fmt::Debug, R: Clone + std::fmt::Debug>(
    timeout: Duration,
    what: &str,
    n: usize,
    items: impl Fn() -> Vec<T>,
    log: &RequestLog<R>,
) -> Vec<T> {
    let enough = || Some(items()).filter(|found| found.len() >= n);
    let seen = || {
        let found = items();
        format!(
            "got {}: {found:#?}\nrequests: {:#?}",
            found.len(),
            log.all()
        )
    };
    wait_for(timeout, what, enough, seen).await
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(timeout, what, || cond().then_some(()), String::new).await
}
