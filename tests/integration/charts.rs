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

/// Each file decodes as a PNG of at least 800 pixels across.
fn assert_png(bytes: &[u8], what: &str) {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()))
        .read_info()
        .unwrap_or_else(|e| panic!("{what} is no PNG: {e}"));
    assert!(reader.info().width >= 800, "{what}");
}

/// `/mentions stats charts 30d Europe/Berlin` on Slack: acknowledged privately at once,
/// then the three charts arrive in the channel by the external upload flow (each file's
/// bytes uploaded to the URL Slack gave, then shared with one comment); a bad zone or an
/// outsider gets a private refusal and nothing is uploaded.
#[tokio::test]
async fn slack_stats_charts_are_uploaded_into_the_channel() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "my order never came");
    let _bot = w.start_bot().await;
    let d = w.slack_driver();
    d.card(1).await;

    let refused = d.command(Who::Eve, "stats charts").await;
    assert!(refused.contains("agent"), "{refused}");
    let bad = d.command(Who::Ana, "stats charts Mars/Olympus").await;
    assert!(bad.contains("IANA"), "{bad}");
    assert_eq!(w.slack.count("files.getUploadURLExternal"), 0);

    let said = d.command(Who::Ana, "stats charts 30d Europe/Berlin").await;
    assert!(
        said.contains("30d") && said.contains("Europe/Berlin"),
        "{said}"
    );
    crate::fakes::wait_until(crate::harness::WAIT, "the charts shared", || {
        !w.slack.file_shares().is_empty()
    })
    .await;
    let shares = w.slack.file_shares();
    assert_eq!(shares.len(), 1, "one share for all three");
    let share = &shares[0];
    assert_eq!(share.channel, crate::harness::CHANNEL);
    let names: Vec<&str> = share.files.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(names, ["week.png", "first-response.png", "daily.png"]);
    for f in &share.files {
        assert_png(f.bytes.as_deref().unwrap_or_default(), &f.filename);
        assert!(f.title.as_deref().is_some_and(|t| !t.is_empty()));
        assert!(f
            .alt_txt
            .as_deref()
            .is_some_and(|a| a.contains("Europe/Berlin")));
    }
    let comment = share.initial_comment.clone().unwrap_or_default();
    assert!(comment.contains("(Europe/Berlin)"), "{comment}");
    assert!(comment.contains("mentions"), "{comment}");
}

/// On Discord the same ask is deferred privately and the charts are put into that
/// private answer as attachments (a multipart edit with `payload_json` and `files[n]`).
#[tokio::test]
async fn discord_stats_charts_arrive_as_private_attachments() {
    let w = World::discord().await;
    w.mastodon.add_mention("alice", "my order never came");
    let _bot = w.start_bot().await;
    let d = w.discord_driver();
    d.card(1).await;

    let ask = serde_json::json!([{"type": 1, "name": "stats", "options": [
        {"type": 5, "name": "charts", "value": true},
        {"type": 3, "name": "tz", "value": "Asia/Tokyo"},
    ]}]);
    let payload = d.command_payload(Who::Ana, ask.clone());
    let id = payload["id"].as_str().unwrap().to_string();
    let answer = d.interact(Who::Ana, payload).await;
    assert_eq!(answer["type"], 5, "deferred: {answer}");
    assert_eq!(answer["data"]["flags"], 64, "privately: {answer}");
    crate::fakes::wait_until(crate::harness::WAIT, "the charts attached", || {
        w.discord.original_attachments(&id).len() == 3
    })
    .await;
    let files = w.discord.original_attachments(&id);
    let names: Vec<&str> = files.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(names, ["week.png", "first-response.png", "daily.png"]);
    for f in &files {
        assert_eq!(f.content_type, "image/png");
        assert_png(&f.bytes, &f.filename);
        assert!(f
            .description
            .as_deref()
            .is_some_and(|a| a.contains("Asia/Tokyo")));
    }
    let original = w.discord.original_response(&id).expect("the answer");
    assert!(
        original.content.contains("(Asia/Tokyo)"),
        "{}",
        original.content
    );

    let outsider = d.command_payload(Who::Eve, ask);
    let refused = d.interact(Who::Eve, outsider).await;
    assert_eq!(refused["type"], 4, "{refused}");
}
