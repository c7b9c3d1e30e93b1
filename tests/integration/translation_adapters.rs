//! The translation adapters against the fakes: where the key goes (and nowhere else),
//! how texts are batched, how language tags become each service's codes, and that every
//! refusal, timeout and hostile answer comes back as the port's error, never a panic,
//! and never with the key in it.

use crate::fakes::deepl::FakeDeepl;
use crate::fakes::libretranslate::FakeLibreTranslate;
use crate::fakes::Fault;
use mentionbridge::config::Secret;
use mentionbridge::ports::{TranslateError, Translator};
use mentionbridge::translators::{DeepL, LibreTranslate};
use serde_json::json;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

/// What a scripted answer must come back as.
type Expect = fn(&TranslateError) -> bool;

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|t| t.to_string()).collect()
}

/// The error, shown and debugged, never carries `key`.
fn assert_keyless(e: &TranslateError, key: &str) {
    assert!(!e.to_string().contains(key), "{e}");
    assert!(!format!("{e:?}").contains(key), "{e:?}");
}

#[tokio::test]
async fn libretranslate_sends_the_key_in_the_body_only_when_configured() {
    let lt = FakeLibreTranslate::start().await;
    let open = LibreTranslate::new(&lt.url(), None, TIMEOUT).unwrap();
    let out = open
        .translate(
            &texts(&["Meine Bestellung ist nicht angekommen"]),
            Some("de"),
            "en",
        )
        .await
        .unwrap();
    assert_eq!(out[0].text, "[en] My order is not arrived");
    let sent = lt.translations();
    assert_eq!(
        sent[0].params,
        json!({"q": "Meine Bestellung ist nicht angekommen", "source": "de", "target": "en", "format": "text"}),
        "one text goes as a string, and no api_key without one"
    );

    let key = crate::fakes::canary();
    lt.require_key(&key);
    let keyed = LibreTranslate::new(&lt.url(), Some(Secret::new(key.clone())), TIMEOUT).unwrap();
    let out = keyed
        .translate(&texts(&["Hallo", "Danke"]), None, "en-GB")
        .await
        .unwrap();
    assert_eq!(out[0].text, "[en] Hello");
    assert_eq!(out[1].detected.as_deref(), Some("de"));
    let last = lt.translations().pop().unwrap();
    assert_eq!(last.params["api_key"], key);
    assert_eq!(last.params["source"], "auto");
    assert_eq!(last.params["target"], "en", "en-GB is the server's en");
    assert_eq!(last.params["q"], json!(["Hallo", "Danke"]));
    // /languages is read once per adapter, not per translation.
    keyed
        .translate(&texts(&["Danke"]), Some("de"), "en")
        .await
        .unwrap();
    let asked = lt
        .requests()
        .iter()
        .filter(|r| r.path == "/languages")
        .count();
    assert_eq!(asked, 2, "once for each of the two adapters");

    // The wrong key is refused; the error names the service, not the key.
    let wrong = format!("{}-wrong", crate::fakes::canary());
    let refused = LibreTranslate::new(&lt.url(), Some(Secret::new(wrong.clone())), TIMEOUT)
        .unwrap()
        .translate(&texts(&["Hallo"]), Some("de"), "en")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, TranslateError::Refused { .. }),
        "{refused:?}"
    );
    assert_keyless(&refused, &wrong);
}

#[tokio::test]
async fn libretranslate_maps_tags_to_the_servers_codes_and_batches() {
    let lt = FakeLibreTranslate::start().await;
    lt.set_batch_limit(Some(25));
    let adapter = LibreTranslate::new(&lt.url(), None, TIMEOUT).unwrap();
    adapter
        .translate(&texts(&["Thanks"]), Some("en-US"), "pt-br")
        .await
        .unwrap();
    let sent = lt.translations().pop().unwrap();
    assert_eq!(
        (sent.params["source"].clone(), sent.params["target"].clone()),
        (json!("en"), json!("pt-BR"))
    );
    let err = adapter
        .translate(&texts(&["Thanks"]), Some("en"), "ta")
        .await
        .unwrap_err();
    assert!(matches!(err, TranslateError::Unsupported { .. }), "{err:?}");

    let many: Vec<String> = (0..60).map(|i| format!("Danke {i}")).collect();
    let before = lt.translations().len();
    let out = adapter.translate(&many, Some("de"), "en").await.unwrap();
    assert_eq!(out.len(), 60);
    assert_eq!(out[59].text, "[en] Thanks 59", "in order");
    let sizes: Vec<usize> = lt.translations()[before..]
        .iter()
        .map(|r| r.params["q"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![25, 25, 10]);
}

#[tokio::test]
async fn libretranslate_refusals_and_hostile_answers_are_errors() {
    let lt = FakeLibreTranslate::start().await;
    let adapter = LibreTranslate::new(&lt.url(), None, Duration::from_secs(1)).unwrap();
    // Read the languages first, so each fault below meets a translation.
    adapter
        .translate(&texts(&["Hallo"]), Some("de"), "en")
        .await
        .unwrap();
    let huge = format!("{{\"translatedText\": \"{}\"}}", "a".repeat(3 << 20));
    let cases: Vec<(Fault, Expect)> = vec![
        (
            Fault::too_many_requests(9),
            |e| matches!(e, TranslateError::RateLimited { after: Some(d), .. } if *d == Duration::from_secs(9)),
        ),
        (Fault::status(500), |e| {
            matches!(e, TranslateError::Unavailable { .. })
        }),
        (Fault::status(403), |e| {
            matches!(e, TranslateError::Refused { .. })
        }),
        (Fault::status(400), |e| {
            matches!(e, TranslateError::Unsupported { .. })
        }),
        (Fault::http(200, "<html>busy</html>"), |e| {
            matches!(e, TranslateError::Malformed { .. })
        }),
        (Fault::http(200, r#"{"translatedText": ["a", "b"]}"#), |e| {
            matches!(e, TranslateError::Malformed { .. })
        }),
        (Fault::http(200, r#"{"translatedText": 42}"#), |e| {
            matches!(e, TranslateError::Malformed { .. })
        }),
        (Fault::http(200, huge), |e| {
            matches!(e, TranslateError::Malformed { .. })
        }),
        (Fault::http(301, "{}"), |e| {
            matches!(e, TranslateError::Unsupported { .. })
        }),
        (Fault::Hang, |e| {
            matches!(e, TranslateError::Unavailable { .. })
        }),
    ];
    for (fault, expected) in cases {
        let shown = format!("{fault:?}").chars().take(80).collect::<String>();
        lt.fail_next("POST /translate", vec![fault]);
        let err = adapter
            .translate(&texts(&["Hallo"]), Some("de"), "en")
            .await
            .unwrap_err();
        assert!(expected(&err), "{shown}: {err:?}");
    }
    // Nobody listening: unavailable, not a panic.
    let gone = LibreTranslate::new("http://127.0.0.1:9", None, Duration::from_secs(1)).unwrap();
    let err = gone
        .translate(&texts(&["Hallo"]), Some("de"), "en")
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn deepl_puts_the_key_in_the_authorization_header_and_nowhere_else() {
    let key = format!("{}:fx", crate::fakes::canary());
    let deepl = FakeDeepl::start(&key).await;
    let adapter = DeepL::new(&deepl.url(), Secret::new(key.clone()), TIMEOUT).unwrap();
    let out = adapter
        .translate(&texts(&["Hallo", "Meine Bestellung"]), None, "en")
        .await
        .unwrap();
    assert_eq!(out[0].text, "[en] Hello");
    assert_eq!(out[1].detected.as_deref(), Some("de"));
    let sent = deepl.translations().pop().unwrap();
    assert_eq!(
        sent.authorization.as_deref(),
        Some(format!("DeepL-Auth-Key {key}").as_str())
    );
    assert!(!sent.key_elsewhere);
    assert!(!sent.body.to_string().contains(&key), "{}", sent.body);
    assert_eq!(
        sent.body,
        json!({"text": ["Hallo", "Meine Bestellung"], "target_lang": "EN-US"})
    );

    adapter
        .translate(&texts(&["Thanks"]), Some("en-GB"), "pt")
        .await
        .unwrap();
    let sent = deepl.translations().pop().unwrap();
    assert_eq!(sent.body["source_lang"], "EN");
    assert_eq!(sent.body["target_lang"], "PT-BR");

    let wrong = format!("{}:fx", crate::fakes::canary());
    let err = DeepL::new(&deepl.url(), Secret::new(wrong.clone()), TIMEOUT)
        .unwrap()
        .translate(&texts(&["Hallo"]), None, "en-GB")
        .await
        .unwrap_err();
    assert!(matches!(err, TranslateError::Refused { .. }), "{err:?}");
    assert_keyless(&err, &wrong);
    assert_keyless(&err, &key);
}

#[tokio::test]
async fn deepl_batches_by_fifty_texts_and_by_128_kib() {
    let key = "batch-key:fx";
    let deepl = FakeDeepl::start(key).await;
    deepl.set_character_limit(10_000_000);
    let adapter = DeepL::new(&deepl.url(), Secret::new(key), TIMEOUT).unwrap();
    let many: Vec<String> = (0..120).map(|i| format!("Danke {i}")).collect();
    let out = adapter.translate(&many, Some("de"), "en-GB").await.unwrap();
    assert_eq!(out.len(), 120);
    assert_eq!(out[119].text, "[en] Thanks 119");
    let sizes: Vec<usize> = deepl
        .translations()
        .iter()
        .map(|r| r.body["text"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![50, 50, 20]);

    // Three texts of 50 KiB: no two fit in one 128 KiB request.
    let big: Vec<String> = (0..3)
        .map(|i| format!("{i}{}", "x".repeat(50 * 1024)))
        .collect();
    let before = deepl.translations().len();
    adapter.translate(&big, Some("en"), "de").await.unwrap();
    let requests = &deepl.translations()[before..];
    assert_eq!(
        requests
            .iter()
            .map(|r| r.body["text"].as_array().unwrap().len())
            .collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert!(requests.iter().all(|r| r.body_bytes <= 128 * 1024));
    // One text no request can carry is refused before anything is sent.
    let before = deepl.request_count();
    let err = adapter
        .translate(&["z".repeat(200 * 1024)], Some("en"), "de")
        .await
        .unwrap_err();
    assert!(matches!(err, TranslateError::Unsupported { .. }), "{err:?}");
    assert_eq!(deepl.request_count(), before);
}

#[tokio::test]
async fn deepl_quota_slow_down_outages_and_hostile_answers_are_errors() {
    let key = format!("{}:fx", crate::fakes::canary());
    let deepl = FakeDeepl::start(&key).await;
    let adapter = DeepL::new(
        &deepl.url(),
        Secret::new(key.clone()),
        Duration::from_secs(1),
    )
    .unwrap();
    let cases: Vec<(Fault, Expect)> = vec![
        (Fault::status(456), |e| {
            matches!(e, TranslateError::QuotaExceeded { .. })
        }),
        (
            Fault::too_many_requests(4),
            |e| matches!(e, TranslateError::RateLimited { after: Some(d), .. } if *d == Duration::from_secs(4)),
        ),
        (Fault::status(403), |e| {
            matches!(e, TranslateError::Refused { .. })
        }),
        (Fault::status(413), |e| {
            matches!(e, TranslateError::Unsupported { .. })
        }),
        (Fault::status(503), |e| {
            matches!(e, TranslateError::Unavailable { .. })
        }),
        (Fault::http(200, "not json"), |e| {
            matches!(e, TranslateError::Malformed { .. })
        }),
        (
            Fault::http(200, r#"{"translations": [{"text": "a"}, {"text": "b"}]}"#),
            |e| matches!(e, TranslateError::Malformed { .. }),
        ),
        (Fault::http(200, r#"{"translations": "many"}"#), |e| {
            matches!(e, TranslateError::Malformed { .. })
        }),
        (Fault::Hang, |e| {
            matches!(e, TranslateError::Unavailable { .. })
        }),
    ];
    for (fault, expected) in cases {
        let shown = format!("{fault:?}");
        deepl.fail_next("POST /v2/translate", vec![fault]);
        let err = adapter
            .translate(&texts(&["Hallo"]), Some("de"), "en")
            .await
            .unwrap_err();
        assert!(expected(&err), "{shown}: {err:?}");
        assert_keyless(&err, &key);
    }
    // A body that echoes the key back is shown without it.
    deepl.fail_next(
        "POST /v2/translate",
        vec![Fault::http(
            403,
            format!(r#"{{"message": "key {key} is wrong"}}"#),
        )],
    );
    let err = adapter
        .translate(&texts(&["Hallo"]), Some("de"), "en")
        .await
        .unwrap_err();
    assert_keyless(&err, &key);
    assert!(err.to_string().contains("***"), "{err}");
}
