//! A LibreTranslate-compatible server the team runs (LibreTranslate/LibreTranslate
//! `app.py`): `POST /translate` with JSON `{q, source, target, format: "text", api_key}`
//! (`q` a string or an array; `source` may be `auto`, and the answer then says
//! `detectedLanguage`), and `GET /languages` for the codes the server offers, read once
//! and used to map a tag such as `pt-BR` to the server's own code. Errors come as
//! `{"error": …}` with 400, 403, 429 or 500.

use super::exchange::{self, Answer};
use crate::config::Secret;
use crate::domain::translation::primary;
use crate::ports::{TranslateError, Translated, Translator};
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;

const SERVICE: &str = "LibreTranslate";

/// Texts per request and bytes of text per request: a server's `--batch-limit` and
/// `--char-limit` are its operator's choice; these keep each request modest.
const MAX_TEXTS: usize = 25;
const MAX_BYTES: usize = 128 * 1024;

pub struct LibreTranslate {
    url: String,
    api_key: Option<Secret>,
    client: reqwest::Client,
    timeout: Duration,
    /// The server's language codes, once read.
    languages: Mutex<Option<Vec<String>>>,
}

impl LibreTranslate {
    pub fn new(
        url: &str,
        api_key: Option<Secret>,
        timeout: Duration,
    ) -> Result<LibreTranslate, String> {
        Ok(LibreTranslate {
            url: url.trim_end_matches('/').to_string(),
            api_key,
            client: exchange::client(timeout)?,
            timeout,
            languages: Mutex::new(None),
        })
    }

    fn key(&self) -> Option<&str> {
        self.api_key.as_ref().map(Secret::expose)
    }

    /// The server's codes (`GET /languages`), read once. When the server will not say,
    /// `None`: tags are sent as their primary subtag and the server judges them.
    async fn languages(&self) -> Option<Vec<String>> {
        if let Some(known) = self.languages.lock().expect("languages lock").clone() {
            return Some(known);
        }
        let request = self.client.get(format!("{}/languages", self.url));
        let answer = exchange::exchange(SERVICE, request, self.timeout)
            .await
            .ok()?;
        if !answer.status.is_success() {
            return None;
        }
        let list: Vec<String> = serde_json::from_slice::<Value>(&answer.body)
            .ok()?
            .as_array()?
            .iter()
            .filter_map(|l| l.get("code")?.as_str())
            .filter(|c| crate::domain::translation::is_language_tag(c))
            .map(str::to_string)
            .collect();
        if list.is_empty() {
            return None;
        }
        *self.languages.lock().expect("languages lock") = Some(list.clone());
        Some(list)
    }

    /// The server's code for `tag`: the whole tag if the server has it (`pt-BR`,
    /// `zh-Hant`), else its language (`de` for `de-AT`).
    fn code_for(known: Option<&[String]>, tag: &str) -> Option<String> {
        match known {
            Some(codes) => codes
                .iter()
                .find(|c| c.eq_ignore_ascii_case(tag))
                .or_else(|| codes.iter().find(|c| c.eq_ignore_ascii_case(&primary(tag))))
                .cloned(),
            None => Some(primary(tag)),
        }
    }

    async fn translate_batch(
        &self,
        texts: &[String],
        source: &str,
        target: &str,
    ) -> Result<Vec<Translated>, TranslateError> {
        // One text goes as a string: the form every LibreTranslate-compatible server takes.
        let q = match texts {
            [one] => json!(one),
            many => json!(many),
        };
        let mut body = json!({"q": q, "source": source, "target": target, "format": "text"});
        if let Some(key) = self.key() {
            body["api_key"] = json!(key);
        }
        let request = self
            .client
            .post(format!("{}/translate", self.url))
            .json(&body);
        let answer = exchange::exchange(SERVICE, request, self.timeout).await?;
        if !answer.status.is_success() {
            return Err(exchange::refusal(SERVICE, &answer, self.key()));
        }
        read_answer(&answer, texts.len())
    }
}

/// `{"translatedText": …, "detectedLanguage": {…}}`, a string and an object for one
/// text, arrays for several; anything else, or another count, is no translation.
fn read_answer(answer: &Answer, expected: usize) -> Result<Vec<Translated>, TranslateError> {
    let v: Value = serde_json::from_slice(&answer.body)
        .map_err(|_| exchange::malformed(SERVICE, "the answer is not JSON"))?;
    let texts: Vec<&Value> = match v.get("translatedText") {
        Some(Value::String(_)) if expected == 1 => vec![&v["translatedText"]],
        Some(Value::Array(items)) => items.iter().collect(),
        _ => {
            return Err(exchange::malformed(
                SERVICE,
                "no translatedText in the answer",
            ))
        }
    };
    if texts.len() != expected {
        return Err(exchange::malformed(
            SERVICE,
            format!("{} translations for {expected} texts", texts.len()),
        ));
    }
    let detected: Vec<Option<&Value>> = match v.get("detectedLanguage") {
        Some(Value::Array(items)) => (0..expected).map(|i| items.get(i)).collect(),
        Some(one) => vec![Some(one); expected],
        None => vec![None; expected],
    };
    texts
        .into_iter()
        .zip(detected)
        .map(|(text, detected)| {
            let text = text
                .as_str()
                .ok_or_else(|| exchange::malformed(SERVICE, "a translation is not text"))?;
            Ok(Translated {
                text: text.to_string(),
                detected: exchange::detected_language(detected.and_then(|d| d.get("language"))),
            })
        })
        .collect()
}

#[async_trait::async_trait]
impl Translator for LibreTranslate {
    fn service(&self) -> &'static str {
        SERVICE
    }

    async fn translate(
        &self,
        texts: &[String],
        from: Option<&str>,
        to: &str,
    ) -> Result<Vec<Translated>, TranslateError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let known = self.languages().await;
        let target =
            Self::code_for(known.as_deref(), to).ok_or_else(|| TranslateError::Unsupported {
                service: SERVICE.to_string(),
                reason: format!("the server offers no {to}"),
            })?;
        // A source the server does not know is left to its detection.
        let source = from
            .and_then(|f| Self::code_for(known.as_deref(), f))
            .unwrap_or_else(|| "auto".to_string());
        let mut out = Vec::with_capacity(texts.len());
        for range in exchange::batches(SERVICE, texts, MAX_TEXTS, MAX_BYTES)? {
            out.extend(
                self.translate_batch(&texts[range], &source, &target)
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
    fn tags_map_to_the_servers_own_codes() {
        let codes: Vec<String> = ["en", "de", "pt", "pt-BR", "zh-Hant"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        let code = |tag| LibreTranslate::code_for(Some(&codes), tag);
        assert_eq!(code("pt-br").as_deref(), Some("pt-BR"));
        assert_eq!(code("pt-PT").as_deref(), Some("pt"));
        assert_eq!(code("de-AT").as_deref(), Some("de"));
        assert_eq!(code("zh-hant").as_deref(), Some("zh-Hant"));
        assert_eq!(code("ta"), None);
        assert_eq!(
            LibreTranslate::code_for(None, "de-AT").as_deref(),
            Some("de")
        );
    }

    fn answer(body: &str) -> Answer {
        Answer {
            status: reqwest::StatusCode::OK,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn answers_of_the_wrong_shape_or_count_are_errors() {
        let ok = read_answer(
            &answer(r#"{"translatedText":"Hello","detectedLanguage":{"confidence":90,"language":"de"}}"#),
            1,
        )
        .unwrap();
        assert_eq!(ok[0].text, "Hello");
        assert_eq!(ok[0].detected.as_deref(), Some("de"));
        let many = read_answer(&answer(r#"{"translatedText":["a","b"]}"#), 2).unwrap();
        assert_eq!(many.len(), 2);
        for (body, n) in [
            ("not json", 1),
            (r#"{"translatedText":["a"]}"#, 2),
            (r#"{"translatedText":"a"}"#, 2),
            (r#"{"translatedText":[1,2]}"#, 2),
            (r#"{"error":"x"}"#, 1),
            (r#"[]"#, 1),
        ] {
            assert!(
                matches!(
                    read_answer(&answer(body), n),
                    Err(TranslateError::Malformed { .. })
                ),
                "{body}"
            );
        }
    }
}
