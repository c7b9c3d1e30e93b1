//! Triage through the real binary against the fakes, on every chat surface: a VIP and an
//! author with a big following jump the queue in `/mentions`; a spam rule keeps a card
//! away while the mention stays on the desk (found with `/mentions why`, in the export,
//! with its audit line naming the rule, and brought back with `reopen`); a bad regular
//! expression in `[[rules]]` stops the bot at start with its line.

use crate::drivers::{Driver, Who};
use crate::harness::*;
use serde_json::json;

const PRIORITY: &str = r#"
[priority]
vip = { mastodon = ["bigcorp@partner.example"] }
"#;

const SPAM_RULE: &str = r#"
[[rules]]
name = "crypto spam"
words = ["airdrop", "giveaway"]
ignore = true
"#;

/// Where `needle` first appears in `text` (it must).
fn at(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} in {text}"))
}

pub async fn a_vip_and_a_big_account_jump_the_queue<D: Driver>(w: &World, d: &D) {
    w.extra_config.lock().unwrap().push_str(PRIORITY);
    w.mastodon
        .add_mention("olga", "how do I change my address?");
    w.mastodon.add_mention("oscar", "where is my parcel?");
    let _bot = w.start_bot().await;
    d.card(1).await;
    d.card(2).await;
    // Later, and as plain as the others: a VIP, someone 250k people follow, and
    // someone whose server reports a count that is no count.
    w.mastodon.set_followers("famous", json!(250_000));
    w.mastodon.set_followers("weird", json!(-5));
    // One poll each, so their numbers follow (3, 4, 5).
    w.mastodon
        .add_mention("bigcorp@partner.example", "a question about our contract");
    let vip = d.card(3).await;
    w.mastodon.add_mention("famous", "hello there");
    let famous = d.card(4).await;
    w.mastodon.add_mention("weird", "hi");
    let weird = d.card(5).await;

    let text = d.card_text(&vip);
    assert!(
        text.contains("High priority") && text.contains("VIP"),
        "{text}"
    );
    let text = d.card_text(&famous);
    assert!(
        text.contains("High priority") && text.contains("250k followers"),
        "{text}"
    );
    let text = d.card_text(&weird);
    assert!(
        !text.contains("followers") && !text.contains("priority"),
        "a hostile count is ignored: {text}"
    );

    let list = d.command(Who::Ana, "list").await;
    assert!(list.contains("Open mention tickets (5)"), "{list}");
    let order: Vec<usize> = ["#3", "#4", "#1", "#2", "#5"]
        .iter()
        .map(|n| at(&list, n))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "the VIP and the big account first, then the rest by waiting time: {list}"
    );
    assert!(list.contains("high"), "{list}");

    let why = d.command(Who::Ana, "why 4").await;
    assert!(
        why.contains("high priority") && why.contains("250k followers (+40)"),
        "{why}"
    );
    assert!(why.contains("Rules: none matched"), "{why}");
}

pub async fn a_spam_rule_keeps_the_card_away_and_the_mention_on_the_desk<D: Driver>(
    w: &World,
    d: &D,
) {
    w.extra_config.lock().unwrap().push_str(SPAM_RULE);
    w.mastodon
        .add_mention("spammer", "Free AIRDROP for everyone, click now");
    let bot = w.start_bot().await;
    // The spam is ticket 1 once stored, whatever the channel shows.
    let mut why = String::new();
    for _ in 0..75 {
        why = d.command(Who::Ana, "why 1").await;
        if why.contains("crypto spam") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        why.contains("crypto spam") && why.contains("airdrop"),
        "which rule and what matched: {why}"
    );
    assert!(why.contains("Kept off the channel by a rule"), "{why}");
    // The next poll brings a real question (ticket 2): its card is the only one.
    w.mastodon.add_mention("alice", "my order never came");
    let first = d.card(1).await;
    assert!(d.card_text(&first).contains("my order never came"));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(d.cards().len(), 1, "no card for the spam");

    let list = d.command(Who::Ana, "list").await;
    assert!(
        list.contains("Open mention tickets (1)") && !list.contains("#1"),
        "{list}"
    );
    // Someone who is not an agent is told so.
    let refused = d.command(Who::Eve, "why 1").await;
    assert!(!refused.contains("crypto spam"), "{refused}");

    let (status, _) = bot.terminate().await;
    assert!(status.success());
    let out = w
        .command()
        .args(["export", "--config"])
        .arg(w.config_path())
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let spam = lines
        .iter()
        .find(|l| l["kind"] == "ticket" && l["id"] == 1)
        .expect("the spam is exported as a ticket");
    assert_eq!(spam["stage"], "ignored", "{spam}");
    let audit = lines
        .iter()
        .find(|l| l["kind"] == "audit" && l["ticket"] == 1)
        .expect("its audit line");
    assert!(
        audit
            .to_string()
            .contains("rule \\\"crypto spam\\\": ignored"),
        "{audit}"
    );

    // An agent who disagrees brings it back: reopened, it gets its card.
    let _bot = w.start_bot().await;
    assert_eq!(
        d.command(Who::Ana, "reopen 1").await,
        "Done: reopened ticket #1."
    );
    d.card(2).await;
    d.card_with("AIRDROP");
}

// `on_every_surface!` is the scenarios' (see `scenarios.rs`).
on_every_surface!(
    a_vip_and_a_big_account_jump_the_queue,
    a_spam_rule_keeps_the_card_away_and_the_mention_on_the_desk,
);

#[tokio::test]
async fn a_bad_regular_expression_stops_the_bot_with_its_line() {
    let w = World::new().await;
    w.extra_config.lock().unwrap().push_str(
        "\n[[rules]]\nname = \"crypto spam\"\nignore = true\npatterns = ['(?i)free\\s+(crypto']\n",
    );
    let path = w.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let line = 1 + text
        .lines()
        .position(|l| l.starts_with("patterns ="))
        .unwrap();
    for cmd in ["check-config", "run"] {
        let out = w
            .command()
            .args([cmd, "--config"])
            .arg(&path)
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd} accepted a bad pattern");
        assert!(
            err.contains(&format!(
                "bot-config.toml:{line}: `rules[0].patterns`: not a usable regular expression"
            )),
            "{cmd}: {err}"
        );
    }
    assert_eq!(w.slack.connections(), 0, "the bot never connected to Slack");
}
