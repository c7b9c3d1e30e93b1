//! Charts of the work over HTTP (issue 14, part 4): behind `[http] charts_token`, PNGs
//! and the data they are drawn from, which matches `/mentions stats` for the window.

use crate::drivers::{Driver, Who};
use crate::harness::World;

const TOKEN: &str = "charts-CANARY5d1e7a90b2c4";

/// The world's config with `charts_token` under `[http]`.
fn with_token(w: &World) {
    let text = w.config_text().replacen(
        "[http]\n",
        "[http]\ncharts_token = \"${CHARTS_TOKEN}\"\n",
        1,
    );
    assert!(
        text.contains("charts_token"),
        "the harness config has an [http] section"
    );
    std::fs::write(w.config_path(), text).unwrap();
}

async fn get(w: &World, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("http://127.0.0.1:{}{path}", w.http_port));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn without_a_configured_token_the_charts_are_not_there() {
    let w = World::new().await;
    let _bot = w.start_bot().await;
    for path in ["/charts/week.png", "/charts/week.json", "/charts/daily.png"] {
        assert_eq!(get(&w, path, None).await.status(), 404, "{path}");
        assert_eq!(get(&w, path, Some(TOKEN)).await.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn the_charts_answer_the_right_token_only_and_match_the_stats() {
    let w = World::new().await;
    with_token(&w);
    w.mastodon.add_mention("alice", "my order never came");
    w.mastodon.add_mention("bob", "app crashes on start");
    let bot = w.start_bot_with(&[("CHARTS_TOKEN", TOKEN)]).await;
    let d = w.slack_driver();
    d.card(2).await;

    assert_eq!(get(&w, "/charts/week.png", None).await.status(), 401);
    let wrong = get(&w, "/charts/week.png", Some("charts-wrong")).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.headers()["www-authenticate"], "Bearer");

    let bad_zone = get(&w, "/charts/week.png?tz=Mars/Olympus", Some(TOKEN)).await;
    assert_eq!(bad_zone.status(), 400);
    assert!(bad_zone.text().await.unwrap().contains("IANA"));
    for days in ["0", "367", "-1", "7d", "99999999999999999999"] {
        let bad = get(&w, &format!("/charts/daily.png?days={days}"), Some(TOKEN)).await;
        assert_eq!(bad.status(), 400, "days={days}");
    }

    for path in [
        "/charts/week.png?tz=Europe/Berlin",
        "/charts/first-response.png?days=30",
        "/charts/daily.png?days=7&tz=America/New_York",
    ] {
        let ok = get(&w, path, Some(TOKEN)).await;
        assert_eq!(ok.status(), 200, "{path}");
        assert_eq!(ok.headers()["content-type"], "image/png");
        let bytes = ok.bytes().await.unwrap();
        let reader = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()))
            .read_info()
            .expect("a PNG");
        assert!(reader.info().width >= 800, "{path}");
    }

    let data: serde_json::Value = get(&w, "/charts/week.json?days=7", Some(TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let total = data["week"]["total"].as_u64().unwrap();
    assert_eq!(total, 2, "{data}");
    let per_hour: u64 = data["week"]["mentions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    let per_day: u64 = data["daily"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["received"].as_u64().unwrap())
        .sum();
    assert_eq!((per_hour, per_day), (total, total));
    let stats = d.command(Who::Ana, "stats 7d").await;
    assert!(stats.contains(&format!("{total} opened")), "{stats}");

    let log = bot.log();
    assert!(!log.contains(TOKEN), "the token was logged");
}
