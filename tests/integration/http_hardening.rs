//! The bot's HTTP server against slow and hostile clients, over raw TCP: slowloris
//! headers, a trickling body, idle keep-alive connections, a flood of connections while a
//! signed delivery still gets in, and bodies over the limit refused unread. The `[http]`
//! defaults are used (10 s timeouts, 256 connections, 1 MiB bodies): they are what a desk
//! runs with.

use crate::harness::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "webhook-test-secret-0123456789";

/// A bot with the webhook on and the default `[http]` settings.
async fn start(w: &World) -> Bot {
    *w.extra_config.lock().unwrap() = "\n[webhook]\nsecret = \"${TEST_WEBHOOK_SECRET}\"\n".into();
    let bot = w.start_bot_with(&[("TEST_WEBHOOK_SECRET", SECRET)]).await;
    bot.wait_for_log("HTTP server listening", WAIT).await;
    bot
}

async fn connect(w: &World) -> TcpStream {
    TcpStream::connect(("127.0.0.1", w.http_port))
        .await
        .unwrap()
}

/// The head of a POST to `path` with these extra header lines.
fn post_head(path: &str, extra: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n{extra}\r\n")
        .into_bytes()
}

/// Read what the server sends until it closes the connection (true) or `within` passes
/// without a close (false).
async fn read_until_closed(s: &mut TcpStream, within: Duration, got: &mut Vec<u8>) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return false,
        }
    }
}

/// Send `bytes` one a second; true if the server closed the connection before all went.
async fn trickle(s: &mut TcpStream, bytes: &[u8], got: &mut Vec<u8>) -> bool {
    for byte in bytes {
        if s.write_all(&[*byte]).await.is_err() {
            return true;
        }
        if read_until_closed(s, Duration::from_secs(1), got).await {
            return true;
        }
    }
    false
}

fn signed_delivery(body: &str) -> (String, String) {
    let ts = chrono::Utc::now().timestamp().to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    (
        ts,
        format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
    )
}

#[tokio::test]
async fn a_client_sending_its_headers_a_byte_a_second_is_dropped() {
    let w = World::new().await;
    let bot = start(&w).await;
    let mut s = connect(&w).await;
    let mut got = Vec::new();
    // 14 bytes at one a second, never the blank line that ends the headers: dropped
    // after 10 s.
    let dropped = trickle(&mut s, b"POST /ingest/m", &mut got).await;
    assert!(
        dropped,
        "still connected after 14 s; bot log:\n{}",
        bot.log()
    );
}

#[tokio::test]
async fn a_body_that_trickles_in_is_answered_408_at_the_deadline() {
    let w = World::new().await;
    let bot = start(&w).await;
    let mut s = connect(&w).await;
    s.write_all(&post_head("/ingest/mentions", "Content-Length: 40\r\n"))
        .await
        .unwrap();
    let mut got = Vec::new();
    let dropped = trickle(&mut s, b"[{\"source\": \"slow\"", &mut got).await;
    let answer = String::from_utf8_lossy(&got);
    assert!(
        dropped,
        "still connected; got {answer:?}; log:\n{}",
        bot.log()
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        bot.log().contains("did not arrive in time"),
        "{}",
        bot.log()
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let w = World::new().await;
    let _bot = start(&w).await;
    let mut s = connect(&w).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: bot\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    // The answer comes, the connection stays open for the next request a while, then
    // the server closes it.
    let closed = read_until_closed(&mut s, Duration::from_secs(14), &mut got).await;
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(closed, "an idle connection was kept open for 14 s");
}

const FLOOD: usize = 300;

#[tokio::test]
async fn a_flood_of_slow_connections_does_not_keep_a_signed_delivery_out() {
    let w = World::new().await;
    let bot = start(&w).await;
    // More slow connections than the 256 served at once, opened well within the 10 s
    // header timeout: only the cap makes room here.
    let mut slow = Vec::new();
    for _ in 0..FLOOD {
        let mut s = connect(&w).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: b")
            .await
            .unwrap();
        slow.push(s);
    }
    let body = serde_json::json!([{
        "source": "brandwatch", "id": "flood-1", "platform": "instagram",
        "url": "https://www.instagram.com/p/F1ood/", "text": "is anyone there?",
        "created_at": "2026-11-25T10:00:00Z", "author": {"handle": "@fran", "name": "Fran"}
    }])
    .to_string();
    let (ts, sig) = signed_delivery(&body);
    let answered = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/ingest/mentions", w.http_port))
        .header("content-type", "application/json")
        .header("x-mentionbridge-timestamp", ts)
        .header("x-mentionbridge-signature", sig)
        .body(body)
        .timeout(WAIT)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the signed delivery was not answered: {e}; log:\n{}",
                bot.log()
            )
        });
    assert_eq!(answered.status(), 202);
    let mut closed = 0;
    for s in &mut slow {
        if read_until_closed(s, Duration::from_millis(20), &mut Vec::new()).await {
            closed += 1;
        }
    }
    // At most 256 connections at once: the longest-waiting slow ones made room.
    assert!(
        closed > FLOOD - 256,
        "only {closed} of {FLOOD} slow connections were shed"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_unread() {
    let w = World::new().await;
    let bot = start(&w).await;
    // A gigabyte announced, nothing sent: 413 at once, without waiting for the bytes.
    let mut s = connect(&w).await;
    s.write_all(&post_head(
        "/ingest/mentions",
        "Content-Length: 1073741824\r\n",
    ))
    .await
    .unwrap();
    let mut got = Vec::new();
    read_until_closed(&mut s, WAIT, &mut got).await;
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(bot.log().contains("without reading it"), "{}", bot.log());
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit_on_every_post_route() {
    // Slack's routes too (axum alone would read 2 MiB there before the signature check).
    let w = World::with_mode(Mode::Http).await;
    let _bot = start(&w).await;
    for path in ["/slack/events", "/ingest/mentions"] {
        let mut s = connect(&w).await;
        s.write_all(&post_head(path, "Transfer-Encoding: chunked\r\n"))
            .await
            .unwrap();
        // 1.5 MiB in 64 KiB chunks; the server may stop reading (and close) part way.
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
        for _ in 0..24 {
            if s.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
        let mut got = Vec::new();
        read_until_closed(&mut s, WAIT, &mut got).await;
        let answer = String::from_utf8_lossy(&got);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer:?}");
    }
}
