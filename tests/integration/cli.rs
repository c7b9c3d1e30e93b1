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
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let what = format!("mentionbridge {}", args.join(" "));
    assert_no_secrets(&what, &stderr);
    assert_no_secrets(&what, &String::from_utf8_lossy(&out.stdout));
    (out.status.success(), stderr)
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
    let wrong = [(
        "TEST_MASTODON_TOKEN",
        Some("wrong-token-CANARY0d5e3a7c19b2f468"),
    )];
    let (ok, err) = mentionbridge(&w, &["run"], &w.config_path(), &wrong).await;
    assert!(!ok);
    assert!(err.contains("Mastodon credentials check failed"), "{err}");
    assert!(
        err.contains("answered 401") && err.contains("mastodon.access_token"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-token-CANARY0d5e3a7c19b2f468"),
        "the secret leaked: {err}"
    );

    let wrong = [(
        "TEST_SLACK_BOT_TOKEN",
        Some("xoxb-wrong-CANARY7a2c9e4b1f03d856"),
    )];
    let (ok, err) = mentionbridge(&w, &["run"], &w.config_path(), &wrong).await;
    assert!(!ok);
    assert!(
        err.contains("Slack credentials check failed") && err.contains("invalid_auth"),
        "{err}"
    );
    assert!(
        !err.contains("xoxb-wrong-CANARY7a2c9e4b1f03d856"),
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
    // One process on sled holds every duty, and says so.
    let duties = health["duties"].as_object().expect("duties on /healthz");
    let watcher = duties
        .iter()
        .find(|(name, _)| name.starts_with("watcher:mastodon"))
        .map(|(_, d)| d)
        .unwrap_or_else(|| panic!("the Mastodon watcher's duty: {health}"));
    assert_eq!(watcher["held"], true, "{health}");
    assert!(
        watcher["lease_age_secs"].as_f64().unwrap() < 15.0,
        "{health}"
    );
    assert_eq!(duties["scheduler"]["held"], true, "{health}");
    assert!(health["outbox_depth"].is_u64(), "{health}");
    assert!(health["replica"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(
        text.contains("mentionbridge_duty_held{duty=\"scheduler\"} 1")
            && text.contains("mentionbridge_outbox_depth "),
        "{text}"
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

/// A key that verifies inbound requests and is empty, blank or too short is a config
/// error in `check-config` and `run`, naming the file, line and key; `run` then never
/// opens its HTTP port, so no request is ever judged against a weak key.
#[tokio::test]
async fn weak_signing_keys_are_refused_before_anything_listens() {
    let w = World::with_mode(Mode::Http).await;
    w.extra_config
        .lock()
        .unwrap()
        .push_str("\n[webhook]\nsecret = \"${TEST_WEBHOOK_SECRET}\"\n");
    let path = w.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let line_of = |needle: &str| 1 + text.lines().position(|l| l.contains(needle)).unwrap();
    let good_webhook = ("TEST_WEBHOOK_SECRET", Some("a-webhook-secret-long-enough"));
    let (ok, err) = mentionbridge(&w, &["check-config"], &path, &[good_webhook]).await;
    assert!(ok, "{err}");

    let cases = [
        (
            "TEST_SLACK_SIGNING_SECRET",
            "slack.signing_secret",
            "TEST_SLACK_SIGNING_SECRET}",
        ),
        (
            "TEST_WEBHOOK_SECRET",
            "webhook.secret",
            "TEST_WEBHOOK_SECRET}",
        ),
    ];
    for (var, key, needle) in cases {
        for weak in ["", "  ", "abc"] {
            let env = [good_webhook, (var, Some(weak))];
            let expected = format!("bot-config.toml:{}: `{key}`", line_of(needle));
            for cmd in ["check-config", "run"] {
                let (ok, err) = mentionbridge(&w, &[cmd], &path, &env).await;
                assert!(!ok, "{cmd} accepted {key} = {weak:?}");
                assert!(err.contains(&expected), "{cmd}, {key} = {weak:?}: {err}");
            }
            let listening = std::net::TcpStream::connect(("127.0.0.1", w.http_port)).is_ok();
            assert!(!listening, "the HTTP port opened with {key} = {weak:?}");
        }
    }
}
