//! The operator's first minutes: config mistakes and bad credentials are explained.

use crate::harness::*;
use std::path::Path;

/// Run the binary with `args` and the given environment changes (`None` removes a
/// variable); returns whether it succeeded and what it printed on stderr.
async fn mentionbridge(
    w: &World,
    args: &[&str],
    config: &Path,
    env: &[(&str, Option<&str>)],
) -> (bool, String) {
    let mut cmd = w.command();
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn check_config_names_the_file_line_and_key_and_all_missing_variables() {
    let w = World::new().await;
    let bad = w
        .config_text()
        .replace("channel = \"C0SUPPORT\"", "channel = \"#support\"");
    let line = 1 + bad.lines().position(|l| l.contains("#support")).unwrap();
    let path = w.dir.path().join("bad.toml");
    std::fs::write(&path, bad).unwrap();
    let (ok, err) = mentionbridge(&w, &["check-config"], &path, &[]).await;
    assert!(!ok);
    let expected = format!("bad.toml:{line}: `slack.channel`: expected a Slack channel id");
    assert!(err.contains(&expected), "{err}");

    let unset = [
        ("TEST_SLACK_BOT_TOKEN", None),
        ("TEST_MASTODON_TOKEN", None),
    ];
    let (ok, err) = mentionbridge(&w, &["check-config"], &w.config_path(), &unset).await;
    assert!(!ok);
    assert!(
        err.contains("TEST_MASTODON_TOKEN (for mastodon.access_token), TEST_SLACK_BOT_TOKEN (for slack.bot_token)"),
        "{err}"
    );

    let (ok, err) = mentionbridge(&w, &["check-config"], &w.config_path(), &[]).await;
    assert!(ok, "{err}");
}

#[tokio::test]
async fn run_says_which_credential_failed_without_printing_it() {
    let w = World::new().await;
    let wrong = [("TEST_MASTODON_TOKEN", Some("wrong-token-value"))];
    let (ok, err) = mentionbridge(&w, &["run"], &w.config_path(), &wrong).await;
    assert!(!ok);
    assert!(err.contains("Mastodon credentials check failed"), "{err}");
    assert!(
        err.contains("answered 401") && err.contains("mastodon.access_token"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-token-value"),
        "the secret leaked: {err}"
    );

    let wrong = [("TEST_SLACK_BOT_TOKEN", Some("xoxb-wrong-secret"))];
    let (ok, err) = mentionbridge(&w, &["run"], &w.config_path(), &wrong).await;
    assert!(!ok);
    assert!(
        err.contains("Slack credentials check failed") && err.contains("invalid_auth"),
        "{err}"
    );
    assert!(
        !err.contains("xoxb-wrong-secret"),
        "the secret leaked: {err}"
    );
}

#[tokio::test]
async fn metrics_are_served_and_tickets_export_for_a_spreadsheet() {
    let w = World::new().await;
    w.mastodon
        .add_mention("alice", "refund, please; \"asap\"\nthanks");
    let bot = w.start_bot().await;
    let d = w.slack_driver();
    crate::drivers::Driver::card(&d, 1).await;

    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", w.http_port))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("# TYPE mentionbridge_first_response_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("mentionbridge_tickets_opened_total{platform=\"mastodon\"} 1"),
        "{text}"
    );
    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", w.http_port))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(
        health["components"]["outbox"]["state"], "running",
        "{health}"
    );

    // While the bot runs the store is locked: export says so instead of corrupting it.
    let (ok, err) = mentionbridge(&w, &["export"], &w.config_path(), &[]).await;
    assert!(
        !ok && err.contains("is another mentionbridge running on it?"),
        "{err}"
    );
    let (status, _) = bot.terminate().await;
    assert!(status.success());

    // No secrets are needed to export.
    let csv_path = w.dir.path().join("tickets.csv");
    let unset = [
        ("TEST_SLACK_BOT_TOKEN", None),
        ("TEST_MASTODON_TOKEN", None),
    ];
    let args = [
        "export",
        "--format",
        "csv",
        "--output",
        csv_path.to_str().unwrap(),
    ];
    let (ok, err) = mentionbridge(&w, &args, &w.config_path(), &unset).await;
    assert!(ok, "{err}");
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = csv.split("\r\n");
    assert!(lines.next().unwrap().starts_with("id,"), "{csv}");
    assert!(
        csv.contains("\"'@brand refund, please; \"\"asap\"\"\nthanks\""),
        "{csv}"
    );

    let out = w
        .command()
        .args(["export", "--config"])
        .arg(w.config_path())
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let jsonl = String::from_utf8(out.stdout).unwrap();
    let kinds: Vec<String> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("ticket"));
    assert!(kinds.iter().any(|k| k == "audit"));
}
