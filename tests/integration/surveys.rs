//! Satisfaction surveys (issue 14, part 2) through the binary, against fake Mastodon and
//! Slack: a resolve asks one question in the customer's language by the configured
//! channel, the customer's answer lands in the card's thread and on the ticket without
//! reopening it, nobody is asked twice (per ticket, per person within the period), an
//! ignored ticket is never asked, `/mentions stats` counts the answers as the test does
//! by hand, and a crash right after the resolve still sends the question exactly once;
//! an NPS survey (0-10) counts in stats, `/metrics` and the export the same way.

use crate::drivers::{Driver, Who};
use crate::fakes::mastodon::PostedStatus;
use crate::harness::*;

/// Surveys on the default route; questions in three languages; Mastodon asks privately.
/// Language detection is off so each mention goes by its platform tag.
const SURVEYS: &str = r#"
[language]
enabled = false

[surveys]
scale = "csat"
once_per_person = "30d"
default_route = true

[surveys.questions]
en = "How did we do? Reply 1-5"
de = "Wie war es? Antworte mit 1-5"
es = "¿Qué tal lo hicimos? Responde 1-5"

[surveys.delivery]
mastodon = "private"
"#;

async fn surveyed_world() -> World {
    let w = World::new().await;
    w.extra_config.lock().unwrap().push_str(SURVEYS);
    w
}

/// Each (customer, language, text) mentions the brand on Mastodon; their status ids.
fn write_in<'a>(
    w: &World,
    posts: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
) -> Vec<String> {
    posts
        .map(|(who, language, text)| {
            w.mastodon
                .mention(who, text)
                .language(Some(language))
                .add()
                .status_id
        })
        .collect()
}

/// The ticket lines of `mentionbridge export` (the bot stopped).
async fn exported_tickets(w: &World) -> Vec<serde_json::Value> {
    crate::inbound_once::exported(w)
        .await
        .into_iter()
        .filter(|v| v["kind"] == "ticket")
        .collect()
}

/// The exported ticket whose text contains `text`.
fn exported_with<'a>(exported: &'a [serde_json::Value], text: &str) -> &'a serde_json::Value {
    exported
        .iter()
        .find(|t| t["text"].as_str().is_some_and(|x| x.contains(text)))
        .unwrap_or_else(|| panic!("a ticket with {text:?} exported"))
}

/// Our posts in reply to the customer's status `status_id`, once there are `n`.
async fn replies(w: &World, status_id: &str, n: usize) -> Vec<PostedStatus> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = w.mastodon.replies_to(status_id);
        if r.len() >= n {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} replies to {status_id}, have {r:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The question: our second post in the conversation of status `status_id`, once the
/// bot has recorded it as published (the card shows its id), so the customer's answer to
/// it finds its ticket.
async fn question_of(
    w: &World,
    d: &impl Driver,
    card: &crate::drivers::Card,
    status_id: &str,
) -> PostedStatus {
    let asked = replies(w, status_id, 2).await.remove(1);
    d.wait_card_text(card, &asked.id).await;
    asked
}

/// An agent answers the customer's post `text` (status `status_id`, on the `n`th card
/// or an earlier one) and the reply is published; returns its card.
async fn answer(
    w: &World,
    d: &impl Driver,
    n: usize,
    text: &str,
    status_id: &str,
) -> crate::drivers::Card {
    d.card(n).await;
    let card = d.card_with(text);
    d.reply_via_modal(&card, Who::Ana, "Sorry about that, it is fixed now.")
        .await
        .expect("accepted");
    replies(w, status_id, 1).await;
    d.wait_note(&card, "Reply published").await;
    card
}

/// [`answer`], then the ticket is resolved with `/mentions resolve`.
async fn answer_and_resolve(
    w: &World,
    d: &impl Driver,
    n: usize,
    text: &str,
    status_id: &str,
) -> crate::drivers::Card {
    let card = answer(w, d, n, text, status_id).await;
    assert_eq!(
        d.command(Who::Ana, &format!("resolve {}", card.ticket))
            .await,
        format!("Done: resolved ticket #{}.", card.ticket)
    );
    d.wait_card_text(&card, "Resolved").await;
    card
}

#[tokio::test]
async fn a_resolve_asks_in_the_customers_language_and_the_answer_is_recorded_without_reopening() {
    let w = surveyed_world().await;
    let d = w.slack_driver();
    // (customer, language, their post, the question they get, their answer, its score)
    let customers = [
        (
            "alice",
            "en",
            "my order is late",
            "How did we do? Reply 1-5",
            "@brandco 5",
            5u8,
        ),
        (
            "bruno",
            "de",
            "Meine Bestellung ist noch nicht da",
            "Wie war es? Antworte mit 1-5",
            "★★★★",
            4,
        ),
        (
            "carla",
            "es",
            "Mi pedido no ha llegado",
            "¿Qué tal lo hicimos? Responde 1-5",
            "😕",
            2,
        ),
    ];
    let posts = write_in(&w, customers.iter().map(|c| (c.0, c.1, c.2)));
    let bot = w.start_bot().await;
    let mut first = None;
    for (i, (who, _, text, question, answer, score)) in customers.iter().enumerate() {
        let card = answer_and_resolve(&w, &d, customers.len(), text, &posts[i]).await;
        first.get_or_insert(card.ticket);
        // The question: our second post in the conversation, private as configured.
        let asked = question_of(&w, &d, &card, &posts[i]).await;
        assert_eq!(asked.status, format!("@{who} {question}"));
        assert_eq!(asked.visibility.as_deref(), Some("direct"));
        // The customer answers it: a note in the card's thread, no new card, still resolved.
        w.mastodon
            .mention(who, answer)
            .visibility("direct")
            .in_reply_to(&asked.id)
            .add();
        d.wait_note(&card, &format!("Survey answer: {score}/5"))
            .await;
        assert!(
            d.card_text(&card).contains("Resolved"),
            "{}",
            d.card_text(&card)
        );
        assert_eq!(d.cards().len(), customers.len(), "an answer posts no card");
    }
    // The same people are not asked again when a ticket is reopened and resolved.
    let alices = first.expect("alice's ticket");
    d.command(Who::Ana, &format!("reopen {alices}")).await;
    assert_eq!(
        d.command(Who::Ana, &format!("resolve {alices}")).await,
        format!("Done: resolved ticket #{alices}.")
    );

    // The numbers, counted by hand from the answers above.
    let scores: Vec<u8> = customers.iter().map(|c| c.5).collect();
    let satisfied = scores.iter().filter(|s| **s >= 4).count();
    let mean = scores.iter().map(|s| f64::from(*s)).sum::<f64>() / scores.len() as f64;
    let pct = satisfied as f64 * 100.0 / scores.len() as f64;
    let want = format!(
        "Satisfaction: CSAT {pct:.0}% ({satisfied} of {} answers 4-5, mean {mean:.1})",
        scores.len()
    );
    let stats = d.command(Who::Ana, "stats 7d").await;
    assert!(stats.contains(&want), "{want} in:\n{stats}");

    // A later conversation's question is out: the reopened ticket's would have been too.
    let last = w
        .mastodon
        .add_mention("dora", "where is my parcel")
        .status_id;
    answer_and_resolve(&w, &d, 4, "where is my parcel", &last).await;
    replies(&w, &last, 2).await;
    assert_eq!(
        w.mastodon.replies_to(&posts[0]).len(),
        2,
        "the reopened and resolved ticket asked nothing again"
    );

    // The answers are on the tickets: the export carries each one's scale and score.
    let (status, _) = bot.terminate().await;
    assert!(status.success());
    let exported = exported_tickets(&w).await;
    for c in &customers {
        let t = exported_with(&exported, c.2);
        assert_eq!(t["stage"], "resolved", "{t}");
        assert_eq!(t["survey_scale"], "csat", "{t}");
        assert_eq!(t["survey_score"], u64::from(c.5), "{t}");
        assert!(t["survey_answered_at"].is_string(), "{t}");
    }
}

#[tokio::test]
async fn nobody_is_asked_twice_within_the_period_and_an_ignored_ticket_is_never_asked() {
    let w = surveyed_world().await;
    let d = w.slack_driver();
    let first = w
        .mastodon
        .add_mention("alice", "my order is late")
        .status_id;
    let _bot = w.start_bot().await;
    answer_and_resolve(&w, &d, 1, "my order is late", &first).await;
    replies(&w, &first, 2).await;

    // Alice writes again about something else: a new ticket, resolved, not surveyed.
    let second = w
        .mastodon
        .add_mention("alice", "and my invoice is wrong")
        .status_id;
    answer_and_resolve(&w, &d, 2, "and my invoice is wrong", &second).await;

    // Bob's ticket is answered, then ignored: no question.
    let bobs = w
        .mastodon
        .add_mention("bob", "you call this service?")
        .status_id;
    answer(&w, &d, 3, "you call this service?", &bobs).await;
    assert_eq!(
        d.command(Who::Ana, "ignore 3").await,
        "Done: ignored ticket #3."
    );

    // Carol, asked for the first time: her question goes out after theirs would have.
    let carols = w.mastodon.add_mention("carol", "login fails").status_id;
    // (resolved with the card's button this time)
    let card = answer(&w, &d, 4, "login fails", &carols).await;
    d.press(&card, Who::Ana, "resolve").await;
    d.wait_card_text(&card, "Resolved").await;
    replies(&w, &carols, 2).await;
    assert_eq!(
        w.mastodon.replies_to(&second).len(),
        1,
        "alice was asked on ticket 1 within once_per_person"
    );
    assert_eq!(
        w.mastodon.replies_to(&bobs).len(),
        1,
        "ignored: never asked"
    );
}

#[tokio::test]
async fn killed_right_after_the_resolve_the_question_goes_out_exactly_once_after_restart() {
    let w = surveyed_world().await;
    let d = w.slack_driver();
    let post = w
        .mastodon
        .add_mention("alice", "my order is late")
        .status_id;
    let bot = w.start_bot().await;
    let card = answer(&w, &d, 1, "my order is late", &post).await;
    // The question's send is held at the server: the bot dies before it hears back.
    w.mastodon.hold_status_posts(true);
    assert_eq!(
        d.command(Who::Ana, "resolve 1").await,
        "Done: resolved ticket #1."
    );
    bot.kill().await;
    w.mastodon.hold_status_posts(false);

    let _bot = w.start_bot().await;
    let asked = question_of(&w, &d, &card, &post).await;
    assert_eq!(asked.status, "@alice How did we do? Reply 1-5");
    // A later conversation's reply goes out after any retry of the question would have.
    let later = w.mastodon.add_mention("bob", "hello").status_id;
    answer(&w, &d, 2, "hello", &later).await;
    assert_eq!(
        w.mastodon.replies_to(&post).len(),
        2,
        "one answer and one question: {:?}",
        w.mastodon.replies_to(&post)
    );
    // The answer still finds the survey after the restart.
    w.mastodon
        .mention("alice", "great, thanks!")
        .visibility("direct")
        .in_reply_to(&asked.id)
        .add();
    d.wait_note(&card, "Survey answer: 5/5").await;
}

#[tokio::test]
async fn on_discord_the_cards_button_asks_and_a_german_answer_in_words_lands_in_its_thread() {
    let w = World::discord().await;
    w.extra_config.lock().unwrap().push_str(SURVEYS);
    let d = w.discord_driver();
    let post = w
        .mastodon
        .mention("bruno", "Meine Bestellung ist noch nicht da")
        .language(Some("de"))
        .add()
        .status_id;
    let _bot = w.start_bot().await;
    let card = answer(&w, &d, 1, "Meine Bestellung", &post).await;
    d.press(&card, Who::Ana, "resolve").await;
    d.wait_card_text(&card, "Resolved").await;
    let asked = question_of(&w, &d, &card, &post).await;
    assert_eq!(asked.status, "@bruno Wie war es? Antworte mit 1-5");
    w.mastodon
        .mention("bruno", "sehr gut, danke")
        .visibility("direct")
        .in_reply_to(&asked.id)
        .add();
    d.wait_note(&card, "Survey answer: 5/5").await;
    assert!(
        d.card_text(&card).contains("Resolved"),
        "{}",
        d.card_text(&card)
    );
    assert_eq!(d.cards().len(), 1);
}

/// NPS (0-10) through the binary: the question goes out as a public reply (the default
/// delivery) in English or French, answers in digits and words are read on the 0-10 scale,
/// and `/mentions stats`, `/metrics` and the export agree with the count by hand.
#[tokio::test]
async fn an_nps_survey_is_answered_in_two_languages_and_counted_in_stats_and_metrics() {
    let w = World::new().await;
    w.extra_config.lock().unwrap().push_str(
        r#"
[language]
enabled = false

[surveys]
scale = "nps"
default_route = true

[surveys.questions]
en = "How likely are you to recommend us? Reply 0-10"
fr = "Nous recommanderiez-vous ? Répondez de 0 à 10"
"#,
    );
    let d = w.slack_driver();
    // (customer, language, their post, their answer, its score)
    let customers = [
        (
            "alice",
            "en",
            "my order is late",
            "@brandco 9 out of 10",
            9u8,
        ),
        (
            "bruno",
            "fr",
            "ma commande est en retard",
            "@brandco 3/10",
            3,
        ),
        ("carla", "en", "app crashes", "@brandco 10", 10),
    ];
    let posts = write_in(&w, customers.iter().map(|c| (c.0, c.1, c.2)));
    let bot = w.start_bot().await;
    for (i, (who, language, text, answer, score)) in customers.iter().enumerate() {
        let card = answer_and_resolve(&w, &d, customers.len(), text, &posts[i]).await;
        let asked = question_of(&w, &d, &card, &posts[i]).await;
        let question = if *language == "fr" {
            "Nous recommanderiez-vous ? Répondez de 0 à 10"
        } else {
            "How likely are you to recommend us? Reply 0-10"
        };
        assert_eq!(asked.status, format!("@{who} {question}"));
        assert_ne!(
            asked.visibility.as_deref(),
            Some("direct"),
            "a public reply"
        );
        w.mastodon.mention(who, answer).in_reply_to(&asked.id).add();
        d.wait_note(&card, &format!("Survey answer: {score}/10"))
            .await;
    }
    // By hand: promoters score 9-10, detractors 0-6.
    let scores: Vec<u8> = customers.iter().map(|c| c.4).collect();
    let promoters = scores.iter().filter(|s| **s >= 9).count();
    let detractors = scores.iter().filter(|s| **s <= 6).count();
    let nps = (promoters as f64 - detractors as f64) * 100.0 / scores.len() as f64;
    let want = format!(
        "NPS {nps:+.0} ({} answers: {promoters} promoters, {detractors} detractors)",
        scores.len()
    );
    let stats = d.command(Who::Ana, "stats 7d").await;
    assert!(stats.contains(&want), "{want} in:\n{stats}");
    assert!(!stats.contains("CSAT"), "no CSAT answers: {stats}");

    let metrics = w.metrics().await;
    let nps_line = format!("mentionbridge_nps{{platform=\"mastodon\"}} {}", nps.round());
    assert!(
        metrics.lines().any(|l| l.starts_with(&nps_line)),
        "{nps_line} in:\n{metrics}"
    );
    for score in &scores {
        let answers = metrics
            .lines()
            .filter(|l| {
                l.starts_with("mentionbridge_survey_answers_total{scale=\"nps\"")
                    && l.contains(&format!("score=\"{score}\""))
            })
            .count();
        assert_eq!(answers, 1, "score {score} in:\n{metrics}");
    }

    let (status, _) = bot.terminate().await;
    assert!(status.success());
    let exported = exported_tickets(&w).await;
    for c in &customers {
        let t = exported_with(&exported, c.2);
        assert_eq!(
            (t["survey_scale"].as_str(), t["survey_score"].as_u64()),
            (Some("nps"), Some(u64::from(c.4))),
            "{t}"
        );
    }
}
