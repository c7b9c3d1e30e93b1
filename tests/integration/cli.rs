//! The operator's first minutes: config mistakes and bad credentials are explained.

use crate::harness::*;

#[tokio::test]
async fn check_config_names_the_file_line_and_key_and_all_missing_variables() {
    let w = World::new().await;
    let bad = w
        .config_text()
        .replace("channel = \"C0SUPPORT\"", "channel = \"#support\"");
    let path = w.dir.path().join("bad.toml");
    std::fs::write(&path, bad).unwrap();
    let out = w
        .command()
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:14: `slack.channel`: expected a Slack channel id"),
        "{err}"
    );

    let out = w
        .command()
        .env_remove("TEST_SLACK_BOT_TOKEN")
        .env_remove("TEST_MASTODON_TOKEN")
        .arg("check-config")
        .arg("--config")
        .arg(w.config_path())
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TEST_MASTODON_TOKEN (for mastodon.access_token), TEST_SLACK_BOT_TOKEN (for slack.bot_token)"), "{err}");

    let out = w
        .command()
        .arg("check-config")
        .arg("--config")
        .arg(w.config_path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn run_says_which_credential_failed_without_printing_it() {
    let w = World::new().await;
    let out = w
        .command()
        .env("TEST_MASTODON_TOKEN", "wrong-token-value")
        .arg("run")
        .arg("--config")
        .arg(w.config_path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Mastodon credentials check failed"), "{err}");
    assert!(
        err.contains("401") && err.contains("mastodon.access_token"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-token-value"),
        "the secret leaked: {err}"
    );

    let out = w
        .command()
        .env("TEST_SLACK_BOT_TOKEN", "xoxb-wrong-secret")
        .arg("run")
        .arg("--config")
        .arg(w.config_path())
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Slack credentials check failed") && err.contains("invalid_auth"),
        "{err}"
    );
    assert!(
        !err.contains("xoxb-wrong-secret"),
        "the secret leaked: {err}"
    );
}
