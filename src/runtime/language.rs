//! Each mention's language, detected before it is stored: the watchers and the webhook
//! intake pass every delivery through [`Languages::stamp`], so a mention reaches intake
//! (inside the store's transaction) already carrying the detector's verdict, and routes,
//! canned replies and cards all go by the same language (`Mention::language_in_use`).
//! Detection is CPU work on a model, so it runs on tokio's blocking threads: never on the
//! workers that carry the desk's I/O, and never inside a store transaction or the group
//! commit.

use crate::domain::language::{enough_text, judge, text_to_detect, too_short, LanguagePolicy};
use crate::domain::{DetectedLanguage, Mention};
use crate::ports::LanguageDetector;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The desk's detector and when to trust it; the default detects nothing (every mention
/// keeps only its platform's tag).
#[derive(Clone, Default)]
pub struct Languages {
    detector: Option<Arc<dyn LanguageDetector>>,
    policy: LanguagePolicy,
}

impl Languages {
    pub fn new(detector: Arc<dyn LanguageDetector>, policy: LanguagePolicy) -> Languages {
        Languages {
            detector: Some(detector),
            policy,
        }
    }

    /// No detection: the platform's tag is the language.
    pub fn off() -> Languages {
        Languages::default()
    }

    /// The verdict on one post's text, on the calling thread; `None` when detection is
    /// off. A text too short to tell is not shown to the detector.
    pub fn judge(&self, text: &str) -> Option<DetectedLanguage> {
        let detector = self.detector.as_ref()?;
        let words = text_to_detect(text);
        Some(if enough_text(&words) {
            judge(detector.detect(&words), &self.policy)
        } else {
            too_short()
        })
    }

    /// `mentions`, each with its verdict (one that has a verdict already keeps it), judged
    /// on a blocking thread. A mention the detector fails on (it panicked) goes on without
    /// a verdict, its platform's tag standing: a mention is never held back or lost
    /// because its language could not be told.
    pub async fn stamp(&self, mentions: &[Mention]) -> Vec<Mention> {
        if self.detector.is_none() || mentions.is_empty() {
            return mentions.to_vec();
        }
        let languages = self.clone();
        let mut judged = mentions.to_vec();
        let done = tokio::task::spawn_blocking(move || {
            for m in judged.iter_mut().filter(|m| m.detected_language.is_none()) {
                match std::panic::catch_unwind(AssertUnwindSafe(|| languages.judge(&m.text))) {
                    Ok(verdict) => m.detected_language = verdict,
                    Err(_) => tracing::warn!(
                        remote_id = %m.remote_id,
                        "the language detector failed on a mention; its platform's tag stands"
                    ),
                }
            }
            judged
        })
        .await;
        match done {
            Ok(judged) => judged,
            Err(e) => {
                tracing::warn!(error = %e, "language detection did not finish; the platforms' tags stand");
                mentions.to_vec()
            }
        }
    }

    /// Detect once, so the first mention does not wait for the detector to read its
    /// models; how long that took, or `None` when detection is off.
    pub async fn warm_up(&self) -> Option<Duration> {
        self.detector.as_ref()?;
        let languages = self.clone();
        let started = Instant::now();
        tokio::task::spawn_blocking(move || {
            languages.judge("Warm up: is this text English, dansk, norsk, Bahasa Melayu?")
        })
        .await
        .ok()?;
        Some(started.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::language::Guess;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Says every text is in `language` with `confidence`, and counts what it was asked.
    struct Fixed {
        language: &'static str,
        confidence: f64,
        asked: AtomicUsize,
    }

    impl LanguageDetector for Fixed {
        fn detect(&self, text: &str) -> Option<Guess> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            assert!(text.contains("fejlen"), "a post's words, cleaned: {text}");
            if text.contains("BOOM") {
                panic!("the model broke");
            }
            Some(Guess {
                language: self.language.into(),
                confidence: self.confidence,
            })
        }
    }

    fn detector(language: &'static str, confidence: f64) -> Arc<Fixed> {
        Arc::new(Fixed {
            language,
            confidence,
            asked: AtomicUsize::new(0),
        })
    }

    fn mention(text: &str, tag: Option<&str>) -> Mention {
        crate::domain::language::sofies_mention(text, tag)
    }

    const DANISH: &str = "@brandco jeg kan ikke finde fejlen i appen 😡 https://x.example/1";

    #[tokio::test]
    async fn a_sure_verdict_is_the_language_an_unsure_one_leaves_the_platforms_tag() {
        let sure = Languages::new(detector("da", 0.91), LanguagePolicy::default());
        let stamped = sure.stamp(&[mention(DANISH, Some("en"))]).await;
        assert_eq!(
            stamped[0].language.as_deref(),
            Some("en"),
            "the tag is kept"
        );
        assert_eq!(stamped[0].language_in_use().map(|(l, _)| l), Some("da"));
        assert_eq!(
            stamped[0].detected_language.as_ref().unwrap().confidence,
            91
        );

        let unsure = Languages::new(detector("nb", 0.2), LanguagePolicy::default());
        let stamped = unsure.stamp(&[mention(DANISH, Some("da"))]).await;
        let verdict = stamped[0].detected_language.clone().unwrap();
        assert_eq!(
            (verdict.language.as_deref(), verdict.sure),
            (Some("nb"), false)
        );
        assert_eq!(stamped[0].language_in_use().map(|(l, _)| l), Some("da"));
    }

    #[tokio::test]
    async fn a_post_too_short_to_tell_is_not_shown_to_the_detector() {
        let fixed = detector("da", 0.99);
        let languages = Languages::new(fixed.clone(), LanguagePolicy::default());
        let stamped = languages
            .stamp(&[
                mention("😍😍 @brandco tak!", Some("da")),
                mention(DANISH, None),
            ])
            .await;
        assert_eq!(fixed.asked.load(Ordering::SeqCst), 1);
        assert_eq!(stamped[0].detected_language, Some(too_short()));
        assert_eq!(stamped[0].language_in_use().map(|(l, _)| l), Some("da"));
        assert!(stamped[1].detected_language.as_ref().unwrap().sure);
    }

    #[tokio::test]
    async fn a_failing_detector_holds_back_no_mention() {
        let languages = Languages::new(detector("da", 0.9), LanguagePolicy::default());
        let broken = mention("BOOM fejlen er her, hvad gør jeg nu?", Some("da"));
        let stamped = languages
            .stamp(&[broken.clone(), mention(DANISH, None)])
            .await;
        assert_eq!(stamped.len(), 2);
        assert_eq!(stamped[0], broken, "unchanged: its tag stands");
        assert!(
            stamped[1].detected_language.is_some(),
            "the rest are judged"
        );
    }

    #[tokio::test]
    async fn without_a_detector_mentions_pass_unchanged() {
        let m = mention(DANISH, Some("en"));
        assert_eq!(Languages::off().stamp(std::slice::from_ref(&m)).await, [m]);
        assert_eq!(Languages::off().judge(DANISH), None);
        assert_eq!(Languages::off().warm_up().await, None);
        // A mention judged already keeps its verdict.
        let fixed = detector("da", 0.9);
        let mut judged = mention(DANISH, None);
        judged.detected_language = Some(too_short());
        let languages = Languages::new(fixed.clone(), LanguagePolicy::default());
        assert_eq!(
            languages.stamp(std::slice::from_ref(&judged)).await,
            [judged]
        );
        assert_eq!(fixed.asked.load(Ordering::SeqCst), 0);
    }
}
