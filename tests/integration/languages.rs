//! Languages: the detector's accuracy on the labelled sample of short posts in
//! `tests/corpus/languages.tsv` (through the desk's own path: the post cleaned, too-short
//! texts left alone, the confidence judged), and an untagged Danish mention that, through
//! the real binary, takes the Danish route, reads "Danish" on both surfaces' cards and is
//! offered the Danish canned reply first.

use crate::drivers::{Driver, Who};
use crate::harness::*;
use mentionbridge::domain::language::LanguagePolicy;
use mentionbridge::language::Lingua;
use mentionbridge::runtime::language::Languages;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

const SAMPLE: &str = include_str!("../corpus/languages.tsv");

/// The label `?`: too little text to tell; the desk must be unsure.
const UNSURE: &str = "?";

/// The pairs and languages the sample is hardest on, reported on their own.
const HARD: [&str; 7] = ["da", "nb", "nn", "ms", "id", "ta", "ur"];

/// Labelled posts: (language, text).
fn sample() -> Vec<(&'static str, &'static str)> {
    SAMPLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_once('\t').expect("label<TAB>text"))
        .collect()
}

fn desk_languages() -> Languages {
    Languages::new(Arc::new(Lingua::new()), LanguagePolicy::default())
}

/// How the desk did on one language's posts.
#[derive(Default)]
struct Tally {
    posts: usize,
    /// Sure, and right (for `?`: unsure, as it should be).
    right: usize,
    /// Unsure: the platform's tag stands.
    unsure: usize,
    /// Sure, and wrong: the mention goes by the wrong language.
    wrong: usize,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.posts += other.posts;
        self.right += other.right;
        self.unsure += other.unsure;
        self.wrong += other.wrong;
    }

    fn accuracy(&self) -> f64 {
        100.0 * self.right as f64 / self.posts.max(1) as f64
    }

    fn row(&self, label: &str) -> String {
        format!(
            "{label:<6} {:>5} {:>5} {:>6} {:>5} {:>8.1}%",
            self.posts,
            self.right,
            self.unsure,
            self.wrong,
            self.accuracy()
        )
    }
}

#[test]
fn the_detector_tells_the_samples_languages_apart() {
    let languages = desk_languages();
    let mut by_language: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut misses = Vec::new();
    for (label, text) in sample() {
        let verdict = languages.judge(text).expect("detection is on");
        let t = by_language.entry(label).or_default();
        t.posts += 1;
        let said = verdict.language.as_deref().unwrap_or("-");
        match (verdict.sure, label == UNSURE) {
            (false, true) => t.right += 1,
            (true, false) if said == label => t.right += 1,
            (false, false) => {
                t.unsure += 1;
                misses.push(format!(
                    "unsure  {label} ({said} {}%): {text}",
                    verdict.confidence
                ));
            }
            (true, _) => {
                t.wrong += 1;
                misses.push(format!(
                    "WRONG   {label} as {said} {}%: {text}",
                    verdict.confidence
                ));
            }
        }
    }
    let mut all = Tally::default();
    let mut hard = Tally::default();
    let mut table = format!(
        "{:<6} {:>5} {:>5} {:>6} {:>5} {:>9}\n",
        "lang", "posts", "right", "unsure", "wrong", "accuracy"
    );
    for (label, t) in &by_language {
        table.push_str(&t.row(label));
        table.push('\n');
        all.add(t);
        if HARD.contains(label) {
            hard.add(t);
        }
    }
    table.push_str(&hard.row("hard"));
    table.push('\n');
    table.push_str(&all.row("all"));
    println!("{table}\n{}", misses.join("\n"));

    // Floors a little under what was measured (98.0% overall, 95.8% on the hard
    // languages, 4 confident mistakes in 306), so a change that costs accuracy fails.
    assert!(
        all.accuracy() >= 95.0,
        "overall accuracy fell:\n{table}\n{}",
        misses.join("\n")
    );
    assert!(
        hard.accuracy() >= 93.0,
        "Danish/Norwegian, Malay/Indonesian, Tamil or Urdu fell:\n{table}"
    );
    assert!(
        all.wrong * 100 <= all.posts * 2,
        "confidently wrong on more than 2% of posts:\n{table}"
    );
    for (label, t) in &by_language {
        assert!(t.accuracy() >= 80.0, "{label} fell below 80%:\n{table}");
    }
    for script_of_its_own in ["ta", "ur", "hi", "bn", "th", "ko", "ja", "zh"] {
        let t = &by_language[script_of_its_own];
        assert_eq!(t.wrong, 0, "{script_of_its_own} mistaken:\n{table}");
    }
    let unsure = &by_language[UNSURE];
    assert_eq!(
        unsure.right, unsure.posts,
        "a post of emoji, handles or links is never given a language:\n{table}"
    );
}

const NORDIC_ROUTE: &str = r#"
[[route]]
name = "nordic"
languages = ["da"]

[route.sla]
first_response_minutes = 15
"#;

/// The ids of the canned replies a card offers, in the order offered.
fn offered(components: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                // Slack's `mb_canned`; Discord's `mb:canned:<ticket>`.
                let id = |key: &str| o.get(key).and_then(Value::as_str).unwrap_or_default();
                let picker =
                    id("action_id") == "mb_canned" || id("custom_id").starts_with("mb:canned:");
                if picker {
                    for option in o["options"].as_array().into_iter().flatten() {
                        let value = option["value"].as_str().unwrap_or_default();
                        // Slack's values carry the ticket: `42:tak`.
                        out.push(value.rsplit(':').next().unwrap_or(value).to_string());
                    }
                }
                o.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(components, &mut out);
    out
}

#[tokio::test]
async fn an_untagged_danish_mention_is_routed_shown_and_answered_in_danish_on_both_surfaces() {
    let w = World::both().await;
    w.extra_config.lock().unwrap().push_str(NORDIC_ROUTE);
    w.mastodon
        .mention(
            "sofie",
            "Hej! Min pakke er stadig ikke kommet, og det er over en uge siden jeg bestilte 😡 #kundeservice",
        )
        .language(None)
        .add();
    // Tagged English by the author's app, but too little text to tell: the tag stands.
    w.mastodon.mention("tom", "🔥🔥 thx!").add();
    // Tagged Danish, and only emoji: the tag stands and takes the Danish route.
    w.mastodon
        .mention("mette", "😍😍😍")
        .language(Some("da"))
        .add();
    // A tag is text from outside like any other: shown, never a ping.
    w.mastodon
        .mention("mallory", "🙂🙂")
        .language(Some("<!channel> @everyone"))
        .add();
    let _bot = w.start_bot().await;
    let (slack, discord) = (w.slack_driver(), w.discord_driver());
    slack.card(4).await;
    discord.card(4).await;

    let on_slack = slack.card_with("pakke");
    let text = slack.card_text(&on_slack);
    assert!(text.contains("route nordic"), "{text}");
    assert!(text.contains("Danish (detected, "), "{text}");
    let on_discord = discord.card_with("pakke");
    let text = discord.card_text(&on_discord);
    assert!(text.contains("nordic"), "the Route field: {text}");
    assert!(text.contains("Danish (detected, "), "{text}");

    let slack_blocks = |card: &crate::drivers::Card| {
        w.slack
            .message(CHANNEL, &card.id)
            .and_then(|m| m.blocks)
            .unwrap_or_default()
    };
    let discord_components = |card: &crate::drivers::Card| {
        w.discord
            .message(D_CHANNEL, &card.id)
            .map(|m| m.components)
            .unwrap_or_default()
    };
    assert_eq!(offered(&slack_blocks(&on_slack)), ["tak"]);
    assert_eq!(offered(&discord_components(&on_discord)), ["tak"]);

    // The platform's tag where the detector could not tell.
    let thanks = slack.card_with("thx");
    let text = slack.card_text(&thanks);
    assert!(text.contains("English (platform tag)"), "{text}");
    assert!(!text.contains("route nordic"), "{text}");
    assert_eq!(offered(&slack_blocks(&thanks)), ["refund"]);
    let hearts = discord.card_with("😍😍😍");
    let text = discord.card_text(&hearts);
    assert!(text.contains("Danish (platform tag)"), "{text}");
    assert!(text.contains("nordic"), "{text}");
    let text = slack.card_text(&slack.card_with("🙂🙂"));
    assert!(text.contains("(platform tag)"), "{text}");
    assert!(!text.contains("<!channel>"), "{text}");
    let text = discord.card_text(&discord.card_with("🙂🙂"));
    assert!(text.contains("(platform tag)"), "{text}");
    assert!(!text.contains("@everyone"), "{text}");

    // `/mentions` lists each open ticket with the language it goes by.
    let list = slack.command(Who::Ana, "list").await;
    let line = list
        .lines()
        .find(|l| l.contains("@sofie"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(line.contains(" · da · "), "{line}");

    // The Danish answer, picked on Discord, is what the customer gets.
    let (filled, sent) = discord
        .reply_with_canned(&on_discord, Who::Ana, "tak", &|t| t.to_string())
        .await;
    sent.expect("accepted");
    assert_eq!(filled, "Tak, @sofie!");
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert_eq!(posted[0].status, "Tak, @sofie!");
}
