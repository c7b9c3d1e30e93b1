//! DeepL's API (developers.deepl.com, "Translate text"): `POST /v2/translate` with the
//! key in `Authorization: DeepL-Auth-Key …` and a JSON body `{"text": [...],
//! "target_lang": "DE", "source_lang": "EN"}` (at most 50 texts and 128 KiB per request;
//! without `source_lang` DeepL detects it), answered with `{"translations":
//! [{"detected_source_language", "text"}]}`. Targets name English and Portuguese by
//! variant (`EN-GB`, `EN-US`, `PT-BR`, `PT-PT`; plain `EN` and `PT` are deprecated),
//! sources never do. 403 is a refused key, 456 a used-up quota, 429 slow down.

use super::exchange;
use crate::config::Secret;
use crate::domain::translation::primary;
use crate::ports::{TranslateError, Translated, Translator};
use serde_json::{json, Value};
use std::time::Duration;

const SERVICE: &str = "DeepL";

/// DeepL's documented limits of one request.
pub const MAX_TEXTS: usize = 50;
pub const MAX_REQUEST_BYTES: usize = 128 * 1024;

pub struct DeepL {
    url: String,
    api_key: Secret,
    client: reqwest::Client,
    timeout: Duration,
}

impl DeepL {
    pub fn new(url: &str, api_key: Secret, timeout: Duration) -> Result<DeepL, String> {
        Ok(DeepL {
            url: url.trim_end_matches('/').to_string(),
            api_key,
            client: exchange::client(timeout)?,
            timeout,
        })
    }

    async fn translate_batch(
        &self,
        texts: &[String],
        source: Option<&str>,
        target: &str,
    ) -> Result<Vec<Translated>, TranslateError> {
        let mut body = json!({"text": texts, "target_lang": target});
        if let Some(source) = source {
            body["source_lang"] = json!(source);
        }
        let request = self
            .client
            .post(format!("{}/v2/translate", self.url))
            .header(
                reqwest::header::AUTHORIZATION,
                format!("DeepL-Auth-Key {}", self.api_key.expose()),
            )
            .json(&body);
        let answer = exchange::exchange(SERVICE, request, self.timeout).await?;
        if !answer.status.is_success() {
            return Err(exchange::refusal(
                SERVICE,
                &answer,
                Some(self.api_key.expose()),
            ));
        }
        read_answer(&answer.body, texts.len())
    }
}

/// DeepL's target code for a tag: English and Portuguese by variant (American English
/// and Brazilian Portuguese when the tag names none), Chinese by script, the rest by
/// language, upper case.
pub fn target_code(tag: &str) -> String {
    let lang = primary(tag);
    let rest = tag
        .trim()
        .split(['-', '_'])
        .skip(1)
        .map(str::to_ascii_uppercase)
        .collect::<Vec<_>>();
    let has = |s: &str| rest.iter().any(|r| r == s);
    match lang.as_str() {
        "en" if has("GB") || has("UK") || has("IE") || has("AU") || has("NZ") => "EN-GB".into(),
        "en" => "EN-US".into(),
        "pt" if has("PT") || has("AO") || has("MZ") => "PT-PT".into(),
        "pt" => "PT-BR".into(),
        "zh" if has("HANT") || has("TW") || has("HK") || has("MO") => "ZH-HANT".into(),
        "zh" => "ZH-HANS".into(),
        "no" | "nn" => "NB".into(),
        other => other.to_ascii_uppercase(),
    }
}

/// DeepL's source code for a tag: the language alone.
pub fn source_code(tag: &str) -> String {
    match primary(tag).as_str() {
        "no" | "nn" => "NB".into(),
        other => other.to_ascii_uppercase(),
    }
}

fn read_answer(body: &[u8], expected: usize) -> Result<Vec<Translated>, TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| exchange::malformed(SERVICE, "the answer is not JSON"))?;
    let items = v
        .get("translations")
        .and_then(Value::as_array)
        .ok_or_else(|| exchange::malformed(SERVICE, "no translations in the answer"))?;
    if items.len() != expected {
        return Err(exchange::malformed(
            SERVICE,
            format!("{} translations for {expected} texts", items.len()),
        ));
    }
    items
        .iter()
        .map(|item| {
            let text = item
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| exchange::malformed(SERVICE, "a translation is not text"))?;
            Ok(Translated {
                text: text.to_string(),
                detected: exchange::detected_language(item.get("detected_source_language")),
            })
        })
        .collect()
}

#[async_trait::async_trait]
impl Translator for DeepL {
    fn service(&self) -> &'static str {
        SERVICE
    }

    async fn translate(
        &self,
        texts: &[String],
        from: Option<&str>,
        to: &str,
    ) -> Result<Vec<Translated>, TranslateError> {
        let target = target_code(to);
        let source = from.map(source_code);
        // Room for the rest of the body (`target_lang`, `source_lang`, brackets).
        let room = MAX_REQUEST_BYTES - 256;
        let mut out = Vec::with_capacity(texts.len());
        for range in exchange::batches(SERVICE, texts, MAX_TEXTS, room)? {
            out.extend(
                self.translate_batch(&texts[range], source.as_deref(), &target)
                    .await?,
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_a_variant_where_deepl_wants_one_and_sources_never_do() {
        for (tag, code) in [
            ("en", "EN-US"),
            ("en-GB", "EN-GB"),
            ("en_us", "EN-US"),
            ("pt", "PT-BR"),
            ("pt-PT", "PT-PT"),
            ("pt-br", "PT-BR"),
            ("zh", "ZH-HANS"),
            ("zh-Hant-TW", "ZH-HANT"),
            ("de-AT", "DE"),
            ("nn", "NB"),
            ("ja", "JA"),
        ] {
            assert_eq!(target_code(tag), code, "{tag}");
        }
        assert_eq!(source_code("en-GB"), "EN");
        assert_eq!(source_code("pt-BR"), "PT");
        assert_eq!(source_code("de"), "DE");
    }

    #[test]
    fn answers_of_the_wrong_shape_or_count_are_errors() {
        let ok = read_answer(
            br#"{"translations":[{"detected_source_language":"DE","text":"Hello"}]}"#,
            1,
        )
        .unwrap();
        assert_eq!(ok[0].text, "Hello");
        assert_eq!(ok[0].detected.as_deref(), Some("de"));
        for (body, n) in [
            (&b"<html>"[..], 1),
            (br#"{"translations":[]}"#, 1),
            (br#"{"translations":[{"text":"a"}]}"#, 2),
            (br#"{"translations":[{"text":7}]}"#, 1),
            (br#"{"message":"x"}"#, 1),
        ] {
            assert!(
                matches!(read_answer(body, n), Err(TranslateError::Malformed { .. })),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
