//! The scaffold every fake stands on: scripted faults come in the order they were queued
//! and then requests pass, the request log keeps what was sent, and waiting gives up with
//! a sentence naming what it waited for.

use crate::fakes::scaffold::{
    poll, wait_for, wait_until, Call, Fault, FaultQueue, Listener, Refusal, RequestLog, Route,
};
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

/// The smallest fake: logs every call with its body, answers scripted faults, else 200.
struct Echo {
    log: RequestLog<(String, String, String)>,
    faults: FaultQueue,
}

async fn echo(State(echo): State<Arc<Echo>>, req: Request) -> Response {
    let call = Call::read(req, 1 << 20).await;
    echo.log.record((
        call.method.to_string(),
        call.path_and_query.clone(),
        String::from_utf8_lossy(&call.body).into_owned(),
    ));
    let fault = echo
        .faults
        .take(|r| r.matches(call.method.as_str(), &call.path));
    if let Some(refusal) = Fault::play(fault).await {
        return refusal.response(|code| {
            crate::fakes::scaffold::json_response(code, &serde_json::json!({"usual": code}))
        });
    }
    crate::fakes::scaffold::json_response(200, &serde_json::json!({"ok": true}))
}

async fn start_echo() -> (Arc<Echo>, String) {
    let echo_state = Arc::new(Echo {
        log: RequestLog::default(),
        faults: FaultQueue::default(),
    });
    let listener = Listener::bind("Echo", 0).await;
    let server = listener.serve(Router::new().fallback(echo).with_state(echo_state.clone()));
    (echo_state, server.url())
}

#[tokio::test]
async fn scripted_faults_are_served_in_order_then_requests_pass() {
    let (echo, url) = start_echo().await;
    echo.faults.push(
        Route::parse("POST /statuses"),
        vec![
            Fault::status(503),
            Fault::http(429, r#"{"error":"slow down"}"#),
        ],
    );
    echo.faults
        .push(Route::parse("/statuses"), vec![Fault::status(500)]);
    let client = reqwest::Client::new();
    let post = || async {
        let resp = client
            .post(format!("{url}/statuses"))
            .body("hi")
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    // A GET is not the POST route's: it takes the next fault of the route for any method.
    let got = client
        .get(format!("{url}/statuses/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 500, "the any-method route's fault");
    assert_eq!(post().await, (503, r#"{"usual":503}"#.to_string()));
    assert_eq!(post().await, (429, r#"{"error":"slow down"}"#.to_string()));
    assert_eq!(post().await.0, 200, "the script is used up: requests pass");
    assert_eq!(post().await.0, 200);
}

#[test]
fn the_fault_queue_takes_the_first_route_that_still_has_a_fault() {
    let queue: FaultQueue = FaultQueue::default();
    queue.push(Route::named("chat.postMessage"), vec![Fault::status(500)]);
    queue.push(
        Route::named("chat.postMessage"),
        vec![Fault::too_many_requests(2)],
    );
    queue.push(Route::named("chat.update"), vec![Fault::Hang]);
    let post = |r: &Route| r.prefix == "chat.postMessage";
    assert_eq!(queue.take(post), Some(Fault::status(500)));
    assert_eq!(queue.take(post), Some(Fault::too_many_requests(2)));
    assert_eq!(queue.take(post), None, "then calls pass");
    assert_eq!(queue.take(|r| r.prefix == "chat.update"), Some(Fault::Hang));

    let lost: FaultQueue<()> = FaultQueue::default();
    lost.push_n(Route::parse("post /2/tweets"), 2);
    let hit = |r: &Route| r.matches("POST", "/2/tweets");
    assert!(!lost.take_one(|r| r.matches("GET", "/2/tweets")));
    assert!(lost.take_one(hit));
    assert!(lost.take_one(hit));
    assert!(!lost.take_one(hit), "two answers lost, then answers arrive");
}

#[tokio::test]
async fn a_delay_lets_the_request_through_and_a_status_comes_back_to_answer() {
    let started = std::time::Instant::now();
    let passed = Fault::play(Some(Fault::Delay(Duration::from_millis(50)))).await;
    assert_eq!(passed, None);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(Fault::play(None).await, None);
    assert_eq!(
        Fault::play(Some(Fault::too_many_requests(7))).await,
        Some(Refusal {
            code: 429,
            retry_after: Some(7),
            body: String::new()
        })
    );
    let hung = tokio::time::timeout(Duration::from_millis(50), Fault::play(Some(Fault::Hang)));
    assert!(hung.await.is_err(), "a hang never answers");
}

#[tokio::test]
async fn the_request_log_records_method_path_and_body_in_order() {
    let (echo, url) = start_echo().await;
    let client = reqwest::Client::new();
    client
        .post(format!("{url}/api/v1/statuses?x=1"))
        .body(r#"{"status":"Refund sent."}"#)
        .send()
        .await
        .unwrap();
    client.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(
        echo.log.all(),
        vec![
            (
                "POST".to_string(),
                "/api/v1/statuses?x=1".to_string(),
                r#"{"status":"Refund sent."}"#.to_string()
            ),
            ("GET".to_string(), "/health".to_string(), String::new()),
        ]
    );
    assert_eq!(echo.log.count(|(m, _, _)| m == "POST"), 1);
    assert_eq!(echo.log.len(), 2);
    echo.log.clear();
    assert!(echo.log.is_empty());
}

/// The panic message of a wait that gave up.
async fn gave_up(wait: impl std::future::Future<Output = ()> + Send + 'static) -> String {
    let err = tokio::spawn(wait).await.expect_err("the wait gives up");
    let panic = err.into_panic();
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[tokio::test]
async fn waiting_gives_up_naming_what_it_waited_for_and_what_there_was() {
    let said = gave_up(wait_until(
        Duration::from_millis(30),
        "Ana's claim to show on the card",
        || false,
    ))
    .await;
    assert_eq!(
        said,
        "timed out after 30ms waiting for Ana's claim to show on the card"
    );

    let said = gave_up(async {
        wait_for(
            Duration::from_millis(30),
            "2 posted statuses on fake Mastodon",
            || None::<()>,
            || "got 1: [\"Refund sent.\"]".to_string(),
        )
        .await
    })
    .await;
    assert_eq!(
        said,
        "timed out after 30ms waiting for 2 posted statuses on fake Mastodon; got 1: [\"Refund sent.\"]"
    );

    let mut looks = 0;
    let found = wait_for(
        Duration::from_secs(5),
        "the third look",
        || {
            looks += 1;
            (looks == 3).then_some("found")
        },
        String::new,
    )
    .await;
    assert_eq!(found, "found");
    let missed = poll(Duration::from_millis(20), Duration::from_millis(5), || {
        None::<()>
    });
    assert_eq!(
        missed.await,
        None,
        "poll reports a miss instead of panicking"
    );
}
