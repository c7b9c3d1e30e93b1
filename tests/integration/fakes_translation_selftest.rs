//! Self-tests of the translation fakes: they answer raw HTTP the way LibreTranslate's
//! `app.py` and DeepL's documented API do (shapes, codes, refusals), and their
//! "translation" is the deterministic one the flow tests rely on.

use crate::fakes::deepl::FakeDeepl;
use crate::fakes::libretranslate::FakeLibreTranslate;
use crate::fakes::translation::{detect, render};
use crate::fakes::Fault;
use serde_json::{json, Value};
use std::time::Duration;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[test]
fn the_fake_translation_is_deterministic_and_keeps_what_it_does_not_know() {
    assert_eq!(
        render("Hallo, meine Bestellung ist nicht angekommen!", "de", "en"),
        "[en] Hello, my order is not arrived!"
    );
    assert_eq!(
        render("Sorry, your refund is on its way", "en", "de-AT"),
        "[de] Entschuldigung, deine Rückerstattung ist on its way"
    );
    assert_eq!(render("Same words", "en-GB", "EN-US"), "Same words");
    assert_eq!(detect("Meine Bestellung ist nicht da"), "de");
    assert_eq!(detect("Bonjour, ma commande"), "fr");
    assert_eq!(detect("zzz"), "en");
}

#[tokio::test]
async fn libretranslate_translates_strings_and_arrays_and_detects_on_auto() {
    let lt = FakeLibreTranslate::start().await;
    let post = |body: Value| {
        http()
            .post(format!("{}/translate", lt.url()))
            .json(&body)
            .send()
    };

    let (code, v) = answer(
        post(json!({"q": "Hallo", "source": "de", "target": "en", "format": "text"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(v, json!({"translatedText": "[en] Hello"}));

    let (code, v) = answer(
        post(json!({"q": ["Hallo", "Danke"], "source": "auto", "target": "en"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(v["translatedText"], json!(["[en] Hello", "[en] Thanks"]));
    assert_eq!(v["detectedLanguage"][1]["language"], "de");
    assert_eq!(v["detectedLanguage"].as_array().unwrap().len(), 2);

    // A form works as well as JSON, as in app.py.
    let resp = http()
        .post(format!("{}/translate", lt.url()))
        .form(&[("q", "Bonjour"), ("source", "auto"), ("target", "en")])
        .send()
        .await
        .unwrap();
    let (code, v) = answer(resp).await;
    assert_eq!(
        (code, v["detectedLanguage"]["language"].clone()),
        (200, json!("fr"))
    );

    let (code, v) = answer(
        http()
            .get(format!("{}/languages", lt.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    let codes: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"pt-BR") && codes.contains(&"de"),
        "{codes:?}"
    );
    assert!(v[0]["targets"].as_array().is_some());

    let (code, v) = answer(
        http()
            .post(format!("{}/detect", lt.url()))
            .json(&json!({"q": "Meine Bestellung"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((code, v[0]["language"].clone()), (200, json!("de")));
    assert_eq!(lt.translations().len(), 3);
}

#[tokio::test]
async fn libretranslate_refuses_as_the_real_server_does() {
    let lt = FakeLibreTranslate::start().await;
    let post = |body: Value| {
        http()
            .post(format!("{}/translate", lt.url()))
            .json(&body)
            .send()
    };
    let cases = [
        (json!({"source": "de", "target": "en"}), 400, "missing q"),
        (json!({"q": "x", "target": "en"}), 400, "missing source"),
        (json!({"q": "x", "source": "de"}), 400, "missing target"),
        (
            json!({"q": "x", "source": "de", "target": "ta"}),
            400,
            "ta is not supported",
        ),
        (
            json!({"q": "x", "source": "en", "target": "en"}),
            400,
            "not available",
        ),
        (
            json!({"q": "x", "source": "de", "target": "en", "format": "pdf"}),
            400,
            "format",
        ),
    ];
    for (body, code, says) in cases {
        let (got, v) = answer(post(body.clone()).await.unwrap()).await;
        assert_eq!(got, code, "{body}");
        assert!(v["error"].as_str().unwrap().contains(says), "{body}: {v}");
    }
    lt.set_batch_limit(Some(2));
    lt.set_char_limit(Some(10));
    let (code, v) = answer(
        post(json!({"q": ["a", "b", "c"], "source": "de", "target": "en"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 400, "{v}");
    let (code, _) = answer(
        post(json!({"q": "a very long text", "source": "de", "target": "en"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 400);

    lt.require_key("lt-key-1");
    let (code, v) = answer(
        post(json!({"q": "x", "source": "de", "target": "en"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 400, "a key is required: {v}");
    let (code, v) = answer(
        post(json!({"q": "x", "source": "de", "target": "en", "api_key": "wrong"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((code, v["error"].clone()), (403, json!("Invalid API key")));
    let (code, _) = answer(
        post(json!({"q": "x", "source": "de", "target": "en", "api_key": "lt-key-1"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200);

    lt.fail_next(
        "POST /translate",
        vec![Fault::too_many_requests(7), Fault::http(200, "not json")],
    );
    let resp = post(json!({"q": "x", "source": "de", "target": "en", "api_key": "lt-key-1"}))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let resp = post(json!({"q": "x", "source": "de", "target": "en"}))
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "not json");
}

#[tokio::test]
async fn deepl_takes_its_key_in_the_header_and_names_variants_as_documented() {
    let key = format!("{}:fx", crate::fakes::canary());
    let deepl = FakeDeepl::start(&key).await;
    let post = |auth: Option<&str>, body: Value| {
        let mut req = http()
            .post(format!("{}/v2/translate", deepl.url()))
            .json(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    let auth = format!("DeepL-Auth-Key {key}");

    let (code, v) = answer(
        post(
            Some(&auth),
            json!({"text": ["Hallo", "Danke"], "target_lang": "EN-US"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        v,
        json!({"translations": [
            {"detected_source_language": "DE", "text": "[en] Hello"},
            {"detected_source_language": "DE", "text": "[en] Thanks"},
        ]})
    );
    assert_eq!(deepl.characters_used(), 10);

    let refused = [
        (None, json!({"text": ["x"], "target_lang": "DE"}), 403),
        (
            Some("Bearer nope"),
            json!({"text": ["x"], "target_lang": "DE"}),
            403,
        ),
        (Some(auth.as_str()), json!({"target_lang": "DE"}), 400),
        (Some(auth.as_str()), json!({"text": ["x"]}), 400),
        (
            Some(auth.as_str()),
            json!({"text": ["x"], "target_lang": "EN"}),
            400,
        ),
        (
            Some(auth.as_str()),
            json!({"text": ["x"], "target_lang": "PT"}),
            400,
        ),
        (
            Some(auth.as_str()),
            json!({"text": ["x"], "target_lang": "XX"}),
            400,
        ),
        (
            Some(auth.as_str()),
            json!({"text": ["x"], "target_lang": "DE", "source_lang": "EN-GB"}),
            400,
        ),
        (
            Some(auth.as_str()),
            json!({"text": vec!["x"; 51], "target_lang": "DE"}),
            400,
        ),
        (
            Some(auth.as_str()),
            json!({"text": ["y".repeat(130 * 1024)], "target_lang": "DE"}),
            413,
        ),
    ];
    for (a, body, code) in refused {
        let (got, v) = answer(post(a, body).await.unwrap()).await;
        assert_eq!(got, code, "{v}");
        assert!(v["message"].is_string(), "{v}");
    }

    deepl.set_character_limit(12);
    let (code, v) = answer(
        post(
            Some(&auth),
            json!({"text": ["Hallo Welt"], "target_lang": "EN-GB"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(code, 456, "{v}");
    let (code, v) = answer(
        http()
            .get(format!("{}/v2/usage", deepl.url()))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, v),
        (200, json!({"character_count": 10, "character_limit": 12}))
    );

    deepl.fail_next("POST /v2/translate", vec![Fault::too_many_requests(3)]);
    let resp = post(Some(&auth), json!({"text": ["x"], "target_lang": "DE"}))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    assert!(deepl.requests().iter().all(|r| !r.key_elsewhere));
}
