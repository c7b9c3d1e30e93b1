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
