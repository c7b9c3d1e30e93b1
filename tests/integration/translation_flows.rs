//! Machine translation through the real binary: a German mention's card shows it in the
//! team's English (once per ticket, across a restart), an agent's English draft is
//! translated into German and shown beside it before anything is sent, and exactly the
//! version the agent confirmed is published on Mastodon, on Slack and on Discord. And
//! without `[translation]`, no request reaches any translation service.

use crate::drivers::{discord_user, json_text, Driver, Who};
use crate::fakes::deepl::FakeDeepl;
use crate::fakes::libretranslate::FakeLibreTranslate;
use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

const GERMAN: &str = "Hallo, meine Bestellung ist nicht angekommen!";
/// The fake's English for it (the fake Mastodon's mention starts with the brand's handle).
const IN_ENGLISH: &str = "[en] @brand Hello, my order is not arrived!";

fn deepl_section(url: &str) -> String {
    format!(
        "\n[translation]\nprovider = \"deepl\"\nurl = \"{url}\"\napi_key = \"${{TEST_DEEPL_KEY}}\"\nteam_language = \"en\"\ntimeout_secs = 5\n"
    )
}

fn libretranslate_section(url: &str) -> String {
    format!(
        "\n[translation]\nprovider = \"libretranslate\"\nurl = \"{url}\"\napi_key = \"${{TEST_LT_KEY}}\"\nteam_language = \"en-GB\"\n"
    )
}

/// The reply form Ana opens on `card`: its view id and the view.
async fn open_reply_form(w: &World, card: &crate::fakes::slack::SlackMessage) -> (String, Value) {
    let before = w.slack.views().len();
    w.press(card, ANA, "mb_reply").await;
    w.slack
        .wait_until(WAIT, "the reply form to open", |s| s.views().len() > before)
        .await;
    let opened = w.slack.views()[before].clone();
    (
        opened["view_id"].as_str().unwrap().to_string(),
        opened["view"].clone(),
    )
}

#[tokio::test]
async fn a_german_mentions_card_shows_it_in_english_once_even_across_a_restart() {
    let w = World::new().await;
    let key = format!("{}:fx", crate::fakes::canary());
    let deepl = FakeDeepl::start(&key).await;
    *w.extra_config.lock().unwrap() = deepl_section(&deepl.url());
    w.mastodon.mention("kai", GERMAN).language(Some("de")).add();
    let bot = w.start_bot_with(&[("TEST_DEEPL_KEY", &key)]).await;

    let card = w.card(1).await;
    let card = w.wait_card_text(&card, "Machine translation").await;
    let text = blocks_text(&card);
    assert!(text.contains(IN_ENGLISH), "{text}");
    assert!(
        text.contains("German (de)") && text.contains("DeepL"),
        "{text}"
    );
    assert!(
        text.contains("Hallo, meine Bestellung"),
        "the original stays: {text}"
    );
    // Posted first, translated after: the card never waits for the service.
    let posted = w
        .slack
        .requests()
        .into_iter()
        .find(|(m, _)| m == "chat.postMessage")
        .expect("the card was posted");
    assert!(
        !posted.1.to_string().contains("Machine translation"),
        "{posted:?}"
    );
    assert!(w
        .slack
        .updates(&card.ts)
        .iter()
        .any(|u| u.to_string().contains("Machine translation")));
    let sent = deepl.translations();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["source_lang"], "DE");
    assert_eq!(sent[0].body["target_lang"], "EN-US");

    // After a restart the stored translation is shown; nobody asks for it again. An
    // English mention is not sent at all; the next German one is.
    bot.kill().await;
    w.mastodon.add_mention("lee", "Where is my parcel?");
    let _bot = w.start_bot_with(&[("TEST_DEEPL_KEY", &key)]).await;
    w.card(2).await;
    w.mastodon
        .mention("uta", "Danke, wo ist mein Paket?")
        .language(Some("de"))
        .add();
    let third = w.card(3).await;
    w.wait_card_text(&third, "Machine translation").await;
    assert_eq!(deepl.translations().len(), 2, "{:#?}", deepl.translations());
    assert!(!blocks_text(&w.card(2).await).contains("Machine translation"));
    assert!(blocks_text(&w.card_now(&card)).contains(IN_ENGLISH));
}

#[tokio::test]
async fn on_slack_an_english_draft_is_shown_in_german_and_exactly_the_confirmed_text_is_published()
{
    let w = World::new().await;
    let key = format!("{}:fx", crate::fakes::canary());
    let deepl = FakeDeepl::start(&key).await;
    *w.extra_config.lock().unwrap() = deepl_section(&deepl.url());
    w.mastodon.mention("kai", GERMAN).language(Some("de")).add();
    let _bot = w.start_bot_with(&[("TEST_DEEPL_KEY", &key)]).await;
    let card = w.card(1).await;
    w.wait_card_text(&card, "Machine translation").await;

    let (view_id, form) = open_reply_form(&w, &card).await;
    let offer = json_text(&form["blocks"]);
    assert!(
        offer.contains("Translate into German (de) first"),
        "{offer}"
    );

    let draft = "Sorry, your refund is on its way";
    let values = json!({
        "reply": {"text": {"type": "plain_text_input", "value": draft}},
        "translate": {"translate": {"type": "checkboxes", "selected_options": [
            {"text": {"type": "plain_text", "text": "Translate into German (de) first"}, "value": "de"}
        ]}},
    });
    let answer = w
        .slack_driver()
        .submit_view(&view_id, ANA, "ana", values)
        .await;
    assert_eq!(answer["response_action"], "update", "{answer}");
    let shown = json_text(&answer["view"]);
    assert!(shown.contains(draft), "the original is shown: {shown}");
    let translated = "[de] Entschuldigung, deine Rückerstattung ist on its way";
    assert!(shown.contains(translated), "and its translation: {shown}");
    assert!(
        w.mastodon.posted_statuses().is_empty(),
        "nothing is sent before the agent confirms"
    );
    w.slack.apply_submission_answer(&view_id, &answer).unwrap();

    // The agent corrects the machine's German and confirms: that, exactly, goes out.
    let confirmed = "Entschuldigung! Deine Rückerstattung ist unterwegs.";
    let values = json!({"reply": {"text": {"type": "plain_text_input", "value": confirmed}}});
    let closed = w
        .slack_driver()
        .submit_view(&view_id, ANA, "ana", values)
        .await;
    assert!(closed.is_null(), "the form closes: {closed}");
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert_eq!(posted[0].status, format!("@kai {confirmed}"));
    w.wait_card_text(&card, "published").await;
    assert_eq!(w.mastodon.posted_statuses().len(), 1);
    assert_eq!(deepl.translations().len(), 2, "the card's and the draft's");
    let asked = &deepl.translations()[1].body;
    assert_eq!(asked["text"], json!([draft]));
    assert_eq!(
        (asked["source_lang"].clone(), asked["target_lang"].clone()),
        (json!("EN"), json!("DE"))
    );
}

#[tokio::test]
async fn on_discord_only_the_version_pressed_is_published_and_only_once() {
    let w = World::discord().await;
    let lt = FakeLibreTranslate::start().await;
    let key = crate::fakes::canary();
    lt.require_key(&key);
    *w.extra_config.lock().unwrap() = libretranslate_section(&lt.url());
    w.mastodon.mention("kai", GERMAN).language(Some("de")).add();
    let _bot = w.start_bot_with(&[("TEST_LT_KEY", &key)]).await;
    let d = w.discord_driver();
    let card = d.card(1).await;
    w.discord
        .wait_until(WAIT, "the card's translation", |_| {
            d.card_text(&card).contains("Machine translation")
        })
        .await;
    let text = d.card_text(&card);
    assert!(
        text.contains("Machine translation, German (de) → English (en-GB) (LibreTranslate)"),
        "{text}"
    );
    assert!(
        text.contains("> \\[en\\] \\@brand Hello, my order is not arrived!"),
        "inert, as customer text is: {text}"
    );
    assert_eq!(lt.translations()[0].params["api_key"], key.as_str());

    let form = d
        .interact(Who::Ana, d.press_payload(&card, Who::Ana, "reply", &[]))
        .await;
    assert_eq!(form["type"], 9, "{form}");
    assert!(
        form.to_string().contains("\"custom_id\":\"translate\""),
        "{form}"
    );
    let modal_id = form["data"]["custom_id"].as_str().unwrap().to_string();
    let draft = "Thanks, we sent you a DM";
    let submit = d.form_submission(Who::Ana, &modal_id, &[("text", draft), ("translate", "de")]);
    let interaction = submit["id"].as_str().unwrap().to_string();
    let answer = d.interact(Who::Ana, submit).await;
    assert_eq!(answer["type"], 4, "{answer}");
    let shown = json_text(&answer["data"]["embeds"]);
    assert!(shown.contains(draft), "{shown}");
    let translated = "[de] Danke, wir geschickt dir eine DM";
    assert!(
        shown.contains("\\[de\\] Danke, wir geschickt dir eine DM"),
        "shown inert: {shown}"
    );
    assert!(
        w.mastodon.posted_statuses().is_empty(),
        "nothing is sent before a press"
    );

    let message = w
        .discord
        .original_response(&interaction)
        .expect("the private message");
    let buttons: Vec<String> = message.components[0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["custom_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        buttons.len(),
        3,
        "send translation, send original, edit: {buttons:?}"
    );
    let (id, name, roles) = discord_user(Who::Ana);
    let press = |custom_id: &str| {
        w.discord
            .component_interaction(D_CHANNEL, &message.id, id, name, roles, custom_id)
    };
    // Both presses as the agent's client makes them from the message it shows.
    let (send, original) = (press(&buttons[0]), press(&buttons[1]));
    let sent = d.interact(Who::Ana, send).await;
    assert_eq!(
        sent["type"], 7,
        "the message is replaced, its buttons gone: {sent}"
    );
    assert_eq!(sent["data"]["components"], json!([]));
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert_eq!(posted[0].status, format!("@kai {translated}"));

    // A second press from the same old message sends nothing more.
    let again = d.interact(Who::Ana, original).await;
    assert!(again.to_string().contains("already sent"), "{again}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.mastodon.posted_statuses().len(), 1);
}

#[tokio::test]
async fn without_a_translation_section_nothing_reaches_a_translation_service() {
    let w = World::both().await;
    let deepl = FakeDeepl::start("unused-key:fx").await;
    let lt = FakeLibreTranslate::start().await;
    w.mastodon.mention("kai", GERMAN).language(Some("de")).add();
    let _bot = w.start_bot().await;
    let card = w.card(1).await;
    let (_, form) = open_reply_form(&w, &card).await;
    assert!(!json_text(&form["blocks"]).contains("Translate"), "{form}");
    let d = w.discord_driver();
    let dcard = d.card(1).await;
    let dform = d
        .interact(Who::Ana, d.press_payload(&dcard, Who::Ana, "reply", &[]))
        .await;
    assert!(
        !dform.to_string().contains("\"custom_id\":\"translate\""),
        "{dform}"
    );
    assert!(d.reply_via_modal(&dcard, Who::Ana, "Danke!").await.is_ok());
    w.mastodon.wait_for_posts(1, WAIT).await;
    w.wait_card_text(&card, "published").await;
    assert!(!blocks_text(&w.card_now(&card)).contains("Machine translation"));
    assert!(!d.card_text(&dcard).contains("Machine translation"));
    assert_eq!(deepl.request_count() + lt.request_count(), 0);
}

#[tokio::test]
async fn a_translation_service_that_refuses_holds_up_nothing_and_tells_no_channel() {
    let w = World::new().await;
    let lt = FakeLibreTranslate::start().await;
    lt.require_key("the-servers-key");
    *w.extra_config.lock().unwrap() = libretranslate_section(&lt.url());
    w.mastodon.mention("kai", GERMAN).language(Some("de")).add();
    let wrong = crate::fakes::canary();
    let bot = w.start_bot_with(&[("TEST_LT_KEY", &wrong)]).await;
    let card = w.card(1).await;
    bot.wait_for_log("could not be translated", WAIT).await;
    w.press(&card, ANA, "mb_claim").await;
    let card = w.wait_card_text(&card, "Claimed").await;
    assert!(!blocks_text(&card).contains("Machine translation"));
    assert_eq!(lt.translations().len(), 1, "a refusal is not retried");
    assert_eq!(
        w.slack.messages(CHANNEL).len(),
        1,
        "the card alone: no announcement in the channel"
    );
}

#[tokio::test]
async fn on_slack_a_slow_translation_shows_translating_then_both_versions() {
    let w = World::new().await;
    let key = format!("{}:fx", crate::fakes::canary());
    let deepl = FakeDeepl::start(&key).await;
    *w.extra_config.lock().unwrap() = deepl_section(&deepl.url());
    w.mastodon.mention("kai", GERMAN).language(Some("de")).add();
    let _bot = w.start_bot_with(&[("TEST_DEEPL_KEY", &key)]).await;
    let card = w.card(1).await;
    w.wait_card_text(&card, "Machine translation").await;
    let (view_id, _) = open_reply_form(&w, &card).await;

    // Slack waits 3 s for a form's answer; this service takes longer.
    deepl.fail_next(
        "POST /v2/translate",
        vec![crate::fakes::Fault::Delay(Duration::from_secs(3))],
    );
    let values = json!({
        "reply": {"text": {"type": "plain_text_input", "value": "Thanks"}},
        "translate": {"translate": {"type": "checkboxes", "selected_options": [
            {"text": {"type": "plain_text", "text": "Translate"}, "value": "de"}
        ]}},
    });
    let answer = w
        .slack_driver()
        .submit_view(&view_id, ANA, "ana", values)
        .await;
    assert_eq!(answer["response_action"], "update", "{answer}");
    assert!(
        json_text(&answer["view"]).contains("Translating your reply into German"),
        "{answer}"
    );
    w.slack.apply_submission_answer(&view_id, &answer).unwrap();
    w.slack
        .wait_until(WAIT, "the translation to replace the form", |s| {
            s.view(&view_id)
                .is_some_and(|v| json_text(&v["blocks"]).contains("[de] Danke"))
        })
        .await;
    let values = json!({"reply": {"text": {"type": "plain_text_input", "value": "[de] Danke"}}});
    w.slack_driver()
        .submit_view(&view_id, ANA, "ana", values)
        .await;
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert_eq!(posted[0].status, "@kai [de] Danke");
}
