//! Satisfaction surveys: after an agent resolves a ticket of a route that opted in, the
//! desk asks the customer ONE short question (CSAT 1–5 or NPS 0–10) by the same channel,
//! as its own automatic reply, so the outbox's exactly-once machinery sends it. The
//! customer's next message in the conversation is read as the answer when it parses as
//! one (digits, stars, common words in the supported languages, emoji); the parser is
//! pure and table-driven, and anything ambiguous is no answer. Whether a person was
//! asked recently (`once_per_person`) is the runtime's to know: it passes the verdict in.

use super::model::*;
use super::text::{compose_reply, TextRules};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};

pub use super::model::{Scale, Survey, SurveyAnswer};

impl Scale {
    pub fn min(self) -> u8 {
        match self {
            Scale::Csat => 1,
            Scale::Nps => 0,
        }
    }

    pub fn max(self) -> u8 {
        match self {
            Scale::Csat => 5,
            Scale::Nps => 10,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Scale::Csat => "csat",
            Scale::Nps => "nps",
        }
    }

    pub fn parse(name: &str) -> Option<Scale> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csat" => Some(Scale::Csat),
            "nps" => Some(Scale::Nps),
            _ => None,
        }
    }

    /// A score on the 1–5 feeling scale the word and emoji tables use, on this scale.
    fn of_feeling(self, feeling: u8) -> u8 {
        match self {
            Scale::Csat => feeling,
            // 5 → 10 and 4 → 8 (promoter / passive), 3 and below are detractors.
            Scale::Nps => [0, 0, 3, 5, 8, 10][feeling.min(5) as usize],
        }
    }

    /// `n` out of `of` (5 or 10) on this scale, rounded to the nearest point.
    fn rescale(self, n: u8, of: u8) -> Option<u8> {
        if n > of || of == 0 {
            return None;
        }
        let max = self.max();
        let v = if of == max {
            n
        } else {
            ((u32::from(n) * u32::from(max) + u32::from(of) / 2) / u32::from(of)) as u8
        };
        (self.min()..=max).contains(&v).then_some(v)
    }
}

/// How the question reaches the customer on a platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A reply in the conversation, at the mention's own visibility (never wider).
    Reply,
    /// A private message (Mastodon direct, X DM).
    Private,
}

/// `[surveys]` as the core uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct SurveyPolicy {
    pub scale: Scale,
    /// The question per language code (`en`, `de`); `default_language` is always there.
    pub questions: BTreeMap<String, String>,
    pub default_language: String,
    /// A person is asked at most once in this period.
    pub once_per_person: Duration,
    /// Per platform; a platform missing here gets a reply.
    pub delivery: HashMap<Platform, Delivery>,
    /// The routes that opted in (`survey = true`), by the name reports use (`default`).
    pub routes: HashSet<String>,
}

impl SurveyPolicy {
    /// The question in the language the desk goes by for this mention, else the default.
    pub fn question_for(&self, mention: &Mention) -> &str {
        let language = mention
            .language_in_use()
            .and_then(|(l, _)| l.split(['-', '_']).next())
            .map(|l| l.to_ascii_lowercase());
        language
            .and_then(|l| self.questions.get(&l))
            .or_else(|| self.questions.get(&self.default_language))
            .map(String::as_str)
            .unwrap_or("")
    }

    /// Whether the ticket's route opted in.
    pub fn covers(&self, ticket: &Ticket) -> bool {
        let route = if ticket.route.is_empty() {
            super::routes::DEFAULT_ROUTE
        } else {
            ticket.route.as_str()
        };
        self.routes.contains(route)
    }

    /// Whether the question goes privately, or `None` when it cannot go at all without
    /// widening who sees the conversation (a private mention on a platform where the
    /// desk can only reply in public: Bluesky).
    fn private_for(&self, mention: &Mention) -> Option<bool> {
        let can_private = mention.platform != Platform::Bluesky;
        let wanted = self.delivery.get(&mention.platform).copied() == Some(Delivery::Private);
        let mention_private = matches!(mention.visibility, Visibility::Direct);
        match (mention_private, can_private) {
            (true, true) => Some(true),
            (true, false) => None,
            (false, _) => Some(wanted && can_private),
        }
    }
}

impl Survey {
    /// Still waiting for the customer's answer.
    pub fn open(&self) -> bool {
        self.answer.is_none() && !self.passed
    }
}

/// Whether a resolve of `ticket` owes the customer a survey, apart from the person's
/// recent surveys (the runtime's to judge): the route opted in, the customer got a
/// published answer from an agent, no rule kept it off as spam or tagged it `spam`, it
/// is no incident member (their bulk answers are one message to many; a questionnaire
/// after each would be noise), it was never surveyed (a reopen and a second resolve
/// ask nothing), and the question can reach the customer without widening the
/// conversation.
pub fn owed(ticket: &Ticket, policy: &SurveyPolicy) -> bool {
    !ticket.is_closed()
        && ticket.survey.is_none()
        && policy.covers(ticket)
        && ticket.first_answer().is_some()
        && ticket.incident.is_none()
        && !ticket.rule_hits.iter().any(|h| h.ignored)
        && !ticket.tags.iter().any(|t| t.eq_ignore_ascii_case("spam"))
        && policy.private_for(&ticket.mention).is_some()
        && !policy.question_for(&ticket.mention).trim().is_empty()
}

/// Add the survey's question to a resolve's transition: the desk's own reply (`auto`)
/// and its `PublishReply`, in the same commit as the resolve, so a crash never loses or
/// repeats it. Unchanged unless the transition resolves a ticket that is [`owed`] one
/// and the question fits the platform (`rules`, when known).
pub fn ask_after_resolve(
    mut tr: Transition,
    before: &Ticket,
    policy: &SurveyPolicy,
    rules: Option<&TextRules>,
    by: AgentRef,
    now: DateTime<Utc>,
) -> Transition {
    if tr.ticket.stage != Stage::Resolved || !owed(before, policy) {
        return tr;
    }
    let Some(private) = policy.private_for(&before.mention) else {
        return tr;
    };
    let text = compose_reply(&before.mention, policy.question_for(&before.mention));
    if rules.is_some_and(|r| !r.fits(&text)) {
        return tr;
    }
    let next = &mut tr.ticket;
    let seq = next.replies.iter().map(|r| r.seq).max().unwrap_or(0) + 1;
    next.replies.push(Reply {
        seq,
        text,
        // A private question is a direct message (on Mastodon a direct status), as an
        // agent's private reply is.
        visibility: if private {
            Visibility::Direct
        } else {
            before.mention.visibility
        },
        private,
        by,
        at: now,
        state: ReplyState::Pending,
        auto: true,
        review: None,
    });
    next.survey = Some(Survey {
        scale: policy.scale,
        asked_at: now,
        seq,
        answer: None,
        passed: false,
    });
    tr.effects.push(Effect::PublishReply { seq });
    tr.audit.what = format!("{}; satisfaction survey queued", tr.audit.what);
    tr
}

/// The customer's follow-up on a ticket with an open survey: an answer is recorded (the
/// ticket stays closed, the card's thread says so); `None` when it is no answer, and the
/// caller treats it as an ordinary follow-up (see [`passed`]).
pub fn record_answer(ticket: &Ticket, mention: &Mention, now: DateTime<Utc>) -> Option<Transition> {
    let survey = ticket.survey.as_ref().filter(|s| s.open())?;
    let score = parse_answer(&mention.text, survey.scale)?;
    let mut next = ticket.clone();
    next.followups.push(FollowUp {
        remote_id: mention.remote_id.clone(),
        url: mention.url.clone(),
        text: mention.text.clone(),
        at: now,
    });
    next.updated_at = now;
    if let Some(s) = next.survey.as_mut() {
        s.answer = Some(SurveyAnswer {
            score,
            text: mention.text.clone(),
            at: now,
        });
    }
    Some(Transition {
        audit: AuditEntry {
            ticket: ticket.id,
            at: now,
            actor: None,
            what: "satisfaction survey answered".into(),
            detail: Some(format!("{score}/{}", survey.scale.max())),
        },
        ticket: next,
        effects: vec![Effect::ThreadNote(Note::SurveyAnswered {
            score,
            scale: survey.scale,
            text: mention.text.clone(),
        })],
    })
}

/// The survey is no longer waiting: the customer wrote something that was no answer.
pub fn passed(ticket: &mut Ticket) {
    if let Some(s) = ticket.survey.as_mut().filter(|s| s.open()) {
        s.passed = true;
    }
}

/// `★★★★` for 4 of 5; on the 0–10 scale, none.
pub fn stars(score: u8, scale: Scale) -> String {
    match scale {
        Scale::Csat => "★".repeat(score.min(5).into()),
        Scale::Nps => String::new(),
    }
}

// -- the parser --------------------------------------------------------------------------

/// Longer than this is a paragraph, not an answer.
const MAX_CHARS: usize = 160;
const MAX_WORDS: usize = 12;

/// Words (and phrases) that say how it went, on a 1–5 feeling scale, in en, de, fr, es,
/// nl, pt and da. Phrases of several words are matched before single words.
const WORDS: &[(&str, u8)] = &[
    // Phrases (negations first, so "not good" is never "good").
    ("not good", 2),
    ("not great", 2),
    ("not bad", 3),
    ("very good", 5),
    ("very bad", 1),
    ("nicht gut", 2),
    ("nicht schlecht", 3),
    ("sehr gut", 5),
    ("sehr schlecht", 1),
    ("pas bien", 2),
    ("pas bon", 2),
    ("pas mal", 3),
    ("très bien", 5),
    ("très bon", 5),
    ("très mauvais", 1),
    ("no bueno", 2),
    ("muy bien", 5),
    ("muy bueno", 5),
    ("muy malo", 1),
    ("muy mal", 1),
    ("niet goed", 2),
    ("niet slecht", 3),
    ("heel goed", 5),
    ("erg goed", 5),
    ("heel slecht", 1),
    ("erg slecht", 1),
    ("não é bom", 2),
    ("muito bom", 5),
    ("muito bem", 5),
    ("muito ruim", 1),
    ("ikke godt", 2),
    ("ikke god", 2),
    ("meget godt", 5),
    ("meget god", 5),
    ("meget dårlig", 1),
    ("so so", 3),
    // en
    ("excellent", 5),
    ("great", 5),
    ("amazing", 5),
    ("awesome", 5),
    ("perfect", 5),
    ("fantastic", 5),
    ("brilliant", 5),
    ("super", 5),
    ("good", 4),
    ("nice", 4),
    ("fine", 3),
    ("ok", 3),
    ("okay", 3),
    ("meh", 3),
    ("bad", 2),
    ("poor", 2),
    ("terrible", 1),
    ("awful", 1),
    ("horrible", 1),
    ("useless", 1),
    // de
    ("ausgezeichnet", 5),
    ("hervorragend", 5),
    ("toll", 5),
    ("klasse", 5),
    ("spitze", 5),
    ("gut", 4),
    ("prima", 4),
    ("mittel", 3),
    ("schlecht", 2),
    ("schrecklich", 1),
    ("furchtbar", 1),
    ("mies", 1),
    // fr
    ("génial", 5),
    ("parfait", 5),
    ("formidable", 5),
    ("bien", 4),
    ("bon", 4),
    ("moyen", 3),
    ("mauvais", 2),
    ("nul", 1),
    // es
    ("excelente", 5),
    ("genial", 5),
    ("perfecto", 5),
    ("bueno", 4),
    ("regular", 3),
    ("malo", 2),
    ("mal", 2),
    ("pésimo", 1),
    ("fatal", 1),
    // nl
    ("uitstekend", 5),
    ("geweldig", 5),
    ("top", 5),
    ("goed", 4),
    ("matig", 3),
    ("slecht", 2),
    ("verschrikkelijk", 1),
    ("waardeloos", 1),
    // pt
    ("ótimo", 5),
    ("otimo", 5),
    ("perfeito", 5),
    ("bom", 4),
    ("razoável", 3),
    ("ruim", 2),
    ("péssimo", 1),
    ("horrível", 1),
    // da
    ("fremragende", 5),
    ("fantastisk", 5),
    ("godt", 4),
    ("god", 4),
    ("dårlig", 2),
    ("elendig", 1),
    ("forfærdelig", 1),
];

/// Emoji on the 1–5 feeling scale (without variation selectors).
const EMOJI: &[(char, u8)] = &[
    ('😍', 5),
    ('🤩', 5),
    ('🥰', 5),
    ('❤', 5),
    ('💯', 5),
    ('🙌', 5),
    ('😀', 5),
    ('😃', 5),
    ('😄', 5),
    ('😁', 5),
    ('😊', 4),
    ('🙂', 4),
    ('👍', 4),
    ('👌', 4),
    ('😐', 3),
    ('😑', 3),
    ('🤷', 3),
    ('😕', 2),
    ('🙁', 2),
    ('☹', 2),
    ('😞', 2),
    ('👎', 2),
    ('😠', 1),
    ('😡', 1),
    ('🤬', 1),
    ('😤', 1),
];

/// Words that may stand beside an answer without changing it ("4 stars, thanks!").
const FILLER: &[&str] = &[
    "thanks",
    "thank",
    "you",
    "thx",
    "ty",
    "cheers",
    "it",
    "was",
    "is",
    "i",
    "would",
    "say",
    "give",
    "rate",
    "a",
    "my",
    "rating",
    "score",
    "stars",
    "star",
    "points",
    "really",
    "danke",
    "sterne",
    "stern",
    "punkte",
    "war",
    "ich",
    "gebe",
    "merci",
    "étoiles",
    "étoile",
    "c",
    "était",
    "gracias",
    "estrellas",
    "estrella",
    "fue",
    "bedankt",
    "dank",
    "je",
    "sterren",
    "ster",
    "was",
    "obrigado",
    "obrigada",
    "estrelas",
    "estrela",
    "foi",
    "tak",
    "stjerner",
    "stjerne",
    "det",
    "var",
    "and",
    "so",
    "very",
];

/// Words between two numbers that make them one score: "9 out of 10", "4 von 5".
const OUT_OF: &[&[&str]] = &[
    &["out", "of"],
    &["of"],
    &["von"],
    &["sur"],
    &["de"],
    &["van"],
    &["op"],
    &["em"],
    &["ud", "af"],
    &["af"],
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Slash,
    Star,
    Emoji(u8),
}

fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    // Mentions of the brand that start a reply, and links, say nothing about the score.
    let kept: Vec<&str> = text
        .split_whitespace()
        .filter(|w| !w.starts_with('@') && !w.starts_with("http://") && !w.starts_with("https://"))
        .collect();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if !word.is_empty() {
            out.push(Token::Word(std::mem::take(word)));
        }
    };
    for c in kept.join(" ").chars() {
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
            continue;
        }
        flush(&mut word, &mut out);
        match c {
            '/' => out.push(Token::Slash),
            '★' | '⭐' | '🌟' => out.push(Token::Star),
            _ => {
                if let Some((_, v)) = EMOJI.iter().find(|(e, _)| *e == c) {
                    out.push(Token::Emoji(*v));
                }
            }
        }
    }
    flush(&mut word, &mut out);
    out
}

fn number(t: Option<&Token>) -> Option<u8> {
    match t {
        Some(Token::Word(w)) if w.len() <= 2 && w.bytes().all(|b| b.is_ascii_digit()) => {
            w.parse().ok()
        }
        _ => None,
    }
}

fn word_at(tokens: &[Token], at: usize) -> Option<&str> {
    match tokens.get(at) {
        Some(Token::Word(w)) => Some(w.as_str()),
        _ => None,
    }
}

/// How many tokens from `at` spell `phrase` (its words), if they do.
fn matches_words(tokens: &[Token], at: usize, phrase: &[&str]) -> bool {
    phrase
        .iter()
        .enumerate()
        .all(|(i, p)| word_at(tokens, at + i) == Some(p))
}

/// The customer's message as an answer on `scale`, or `None` when it is none: every
/// signal in it (a number, "4/5", "9 out of 10", stars, words, emoji) must give the
/// same score, and nothing else may be in it but a few polite words.
pub fn parse_answer(text: &str, scale: Scale) -> Option<u8> {
    if text.chars().count() > MAX_CHARS {
        return None;
    }
    let tokens = tokens(text);
    let words = tokens
        .iter()
        .filter(|t| matches!(t, Token::Word(_)))
        .count();
    if words > MAX_WORDS {
        return None;
    }
    let mut scores: Vec<u8> = Vec::new();
    let mut stars = 0u8;
    let mut at = 0;
    while at < tokens.len() {
        if let Some(n) = number(tokens.get(at)) {
            // `n / of` or `n out of of`.
            let mut of = None;
            let mut used = 1;
            if tokens.get(at + 1) == Some(&Token::Slash) {
                if let Some(d) = number(tokens.get(at + 2)) {
                    of = Some(d);
                    used = 3;
                }
            } else if let Some(sep) = OUT_OF
                .iter()
                .find(|sep| matches_words(&tokens, at + 1, sep))
            {
                if let Some(d) = number(tokens.get(at + 1 + sep.len())) {
                    of = Some(d);
                    used = 2 + sep.len();
                }
            }
            let score = match of {
                Some(d) if d == 5 || d == 10 => scale.rescale(n, d)?,
                Some(_) => return None,
                None => (scale.min()..=scale.max()).contains(&n).then_some(n)?,
            };
            scores.push(score);
            at += used;
            continue;
        }
        match &tokens[at] {
            Token::Star => {
                stars = stars.saturating_add(1);
                at += 1;
                continue;
            }
            Token::Emoji(v) => {
                scores.push(scale.of_feeling(*v));
                at += 1;
                continue;
            }
            Token::Slash => {
                at += 1;
                continue;
            }
            Token::Word(_) => {}
        }
        if let Some((phrase, v)) = WORDS.iter().find(|(p, _)| {
            let parts: Vec<&str> = p.split(' ').collect();
            matches_words(&tokens, at, &parts)
        }) {
            scores.push(scale.of_feeling(*v));
            at += phrase.split(' ').count();
            continue;
        }
        if word_at(&tokens, at).is_some_and(|w| FILLER.contains(&w)) {
            at += 1;
            continue;
        }
        // A word that says nothing we know: a sentence, not an answer.
        return None;
    }
    if stars > 0 {
        scores.push(scale.rescale(stars, 5)?);
    }
    let first = *scores.first()?;
    scores.iter().all(|s| *s == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TicketId;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap() + Duration::minutes(min)
    }

    #[test]
    fn digits_fractions_and_out_of_read_as_scores() {
        let csat = [
            ("4", Some(4)),
            ("5!", Some(5)),
            ("4/5", Some(4)),
            ("4 / 5", Some(4)),
            ("@brandco 3", Some(3)),
            ("4 out of 5", Some(4)),
            ("4 von 5, danke", Some(4)),
            ("4 sur 5 merci", Some(4)),
            ("4 de 5", Some(4)),
            ("4 van 5", Some(4)),
            ("4 ud af 5", Some(4)),
            ("8/10", Some(4)),
            ("0", None),
            ("6", None),
            ("6/5", None),
            ("4/7", None),
            ("3 or 4", None),
            ("2 and 5", None),
            ("I waited 3 days", None),
            ("", None),
        ];
        for (text, want) in csat {
            assert_eq!(parse_answer(text, Scale::Csat), want, "{text:?} on CSAT");
        }
        let nps = [
            ("9", Some(9)),
            ("0", Some(0)),
            ("10/10", Some(10)),
            ("9 out of 10", Some(9)),
            ("9 von 10", Some(9)),
            ("7 op 10", Some(7)),
            ("4/5", Some(8)),
            ("11", None),
            ("9 10", None),
        ];
        for (text, want) in nps {
            assert_eq!(parse_answer(text, Scale::Nps), want, "{text:?} on NPS");
        }
    }

    #[test]
    fn stars_count() {
        let cases = [
            ("★★★★", Some(4)),
            ("⭐⭐⭐", Some(3)),
            ("⭐️⭐️⭐️⭐️⭐️", Some(5)),
            ("★★★★☆", Some(4)),
            ("@brandco ⭐⭐⭐⭐ thanks!", Some(4)),
            ("★★★★★★", None),
            ("★★ 5", None),
            ("4 ★★★★", Some(4)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_answer(text, Scale::Csat), want, "{text:?}");
        }
        assert_eq!(parse_answer("⭐⭐⭐⭐⭐", Scale::Nps), Some(10));
    }

    #[test]
    fn words_in_seven_languages() {
        let cases = [
            ("great", 5),
            ("Excellent, thank you!", 5),
            ("good", 4),
            ("not good", 2),
            ("terrible", 1),
            ("sehr gut", 5),
            ("Super!", 5),
            ("schlecht", 2),
            ("nicht gut", 2),
            ("très bien, merci", 5),
            ("mauvais", 2),
            ("génial", 5),
            ("genial", 5),
            ("muy bien", 5),
            ("malo", 2),
            ("slecht", 2),
            ("heel goed", 5),
            ("ótimo", 5),
            ("péssimo", 1),
            ("godt", 4),
            ("meget godt", 5),
            ("dårlig", 2),
        ];
        for (text, want) in cases {
            assert_eq!(parse_answer(text, Scale::Csat), Some(want), "{text:?}");
        }
        assert_eq!(parse_answer("sehr gut", Scale::Nps), Some(10));
        assert_eq!(parse_answer("good", Scale::Nps), Some(8));
        assert_eq!(parse_answer("terrible", Scale::Nps), Some(0));
    }

    #[test]
    fn emoji() {
        let cases = [
            ("😀", Some(5)),
            ("👍", Some(4)),
            ("👍👍", Some(4)),
            ("😐", Some(3)),
            ("👎", Some(2)),
            ("😡", Some(1)),
            ("❤️", Some(5)),
            ("👍 good", Some(4)),
            ("😀 😡", None),
            ("🎉", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_answer(text, Scale::Csat), want, "{text:?}");
        }
    }

    #[test]
    fn sentences_and_contradictions_are_no_answer() {
        for text in [
            "great but terrible",
            "the app still crashes when I open it",
            "5 terrible",
            "good morning, where is my order?",
            "why?",
            "4 days and still nothing",
            &"good ".repeat(20),
            &format!("4 {}", "x".repeat(200)),
        ] {
            assert_eq!(parse_answer(text, Scale::Csat), None, "{text:?}");
        }
    }

    fn policy() -> SurveyPolicy {
        SurveyPolicy {
            scale: Scale::Csat,
            questions: BTreeMap::from([
                ("en".to_string(), "How did we do? Reply 1-5".to_string()),
                ("de".to_string(), "Wie war es? Antworte 1-5".to_string()),
            ]),
            default_language: "en".into(),
            once_per_person: Duration::days(30),
            delivery: HashMap::from([(Platform::X, Delivery::Private)]),
            routes: HashSet::from(["default".to_string()]),
        }
    }

    fn mention(platform: Platform, language: Option<&str>) -> Mention {
        let mut m = crate::domain::language::sofies_mention("my order is late", language);
        m.platform = platform;
        m.author.handle = "alice".into();
        m
    }

    fn agent() -> AgentRef {
        AgentRef {
            surface: SurfaceKind::Slack,
            user_id: "U1".into(),
            name: "Ana".into(),
            roles: Vec::new(),
        }
    }

    fn answered(platform: Platform, language: Option<&str>) -> Ticket {
        let mut tk = Ticket::open(TicketId(1), mention(platform, language), t(0));
        tk.stage = Stage::Replied;
        tk.replies.push(Reply {
            seq: 1,
            text: "@alice on its way".into(),
            visibility: Visibility::Public,
            private: false,
            by: agent(),
            at: t(5),
            state: ReplyState::Published {
                remote_id: "2".into(),
                url: "u".into(),
            },
            auto: false,
            review: None,
        });
        tk
    }

    fn resolve(tk: &Ticket, p: &SurveyPolicy) -> Transition {
        let desk = crate::domain::Desk::new();
        let mut desk = desk;
        desk.roster_mut(SurfaceKind::Slack)
            .user_ids
            .insert("U1".into());
        let tr = crate::domain::apply(tk, AgentAction::Resolve, &agent(), &desk, t(10)).unwrap();
        ask_after_resolve(tr, tk, p, None, agent(), t(10))
    }

    #[test]
    fn a_resolve_asks_once_in_the_mentions_language_and_reopen_resolve_asks_nothing() {
        let tk = answered(Platform::Mastodon, Some("de"));
        let tr = resolve(&tk, &policy());
        let question = tr.ticket.replies.last().unwrap();
        assert_eq!(question.text, "@alice Wie war es? Antworte 1-5");
        assert!(question.auto && !question.private);
        assert_eq!(question.seq, 2);
        assert!(tr.effects.contains(&Effect::PublishReply { seq: 2 }));
        assert_eq!(tr.ticket.survey.as_ref().unwrap().seq, 2);
        // Reopened and resolved again: no second question.
        let desk = {
            let mut d = crate::domain::Desk::new();
            d.roster_mut(SurfaceKind::Slack)
                .user_ids
                .insert("U1".into());
            d
        };
        let reopened =
            crate::domain::apply(&tr.ticket, AgentAction::Reopen, &agent(), &desk, t(11))
                .unwrap()
                .ticket;
        let again = resolve(&reopened, &policy());
        assert_eq!(again.ticket.replies.len(), 2);
        assert!(!again
            .effects
            .iter()
            .any(|e| matches!(e, Effect::PublishReply { .. })));
        // An unknown language falls back to the default.
        let en = resolve(&answered(Platform::Mastodon, Some("sv")), &policy());
        assert_eq!(
            en.ticket.replies.last().unwrap().text,
            "@alice How did we do? Reply 1-5"
        );
    }

    #[test]
    fn never_for_unanswered_spam_incident_members_or_routes_that_did_not_opt_in() {
        let p = policy();
        let mut unanswered = answered(Platform::Mastodon, None);
        unanswered.replies.clear();
        unanswered.stage = Stage::Posted;
        let mut spam = answered(Platform::Mastodon, None);
        spam.rule_hits.push(RuleHit {
            rule: "spam".into(),
            matched: "word".into(),
            did: "ignored".into(),
            ignored: true,
        });
        // A rule that only tags (`tag = "spam"`, the card still posted) counts too.
        let mut tagged = answered(Platform::Mastodon, None);
        tagged.tags.push("Spam".into());
        let mut member = answered(Platform::Mastodon, None);
        member.incident = Some(IncidentId(3));
        let mut other_route = answered(Platform::Mastodon, None);
        other_route.route = "billing".into();
        let mut only_auto = answered(Platform::Mastodon, None);
        only_auto.replies[0].auto = true;
        for tk in [unanswered, spam, tagged, member, other_route, only_auto] {
            assert!(!owed(&tk, &p), "{tk:?}");
        }
        assert!(owed(&answered(Platform::Mastodon, None), &p));
        // Ignoring asks nothing either.
        let desk = {
            let mut d = crate::domain::Desk::new();
            d.roster_mut(SurfaceKind::Slack)
                .user_ids
                .insert("U1".into());
            d
        };
        let tk = answered(Platform::Mastodon, None);
        let tr = crate::domain::apply(&tk, AgentAction::Ignore, &agent(), &desk, t(10)).unwrap();
        let tr = ask_after_resolve(tr, &tk, &p, None, agent(), t(10));
        assert!(tr.ticket.survey.is_none());
    }

    #[test]
    fn delivery_follows_the_platform_and_never_widens_visibility() {
        let p = policy();
        // X is configured private.
        let x = resolve(&answered(Platform::X, None), &p);
        let q = x.ticket.replies.last().unwrap();
        assert!(q.private && q.visibility == Visibility::Direct);
        // Mastodon configured private: a direct status, whatever the mention's visibility.
        let mut m = p.clone();
        m.delivery.insert(Platform::Mastodon, Delivery::Private);
        let q = resolve(&answered(Platform::Mastodon, None), &m).ticket;
        let q = q.replies.last().unwrap();
        assert!(q.private && q.visibility == Visibility::Direct);
        // A direct mention on Mastodon gets a private question.
        let mut direct = answered(Platform::Mastodon, None);
        direct.mention.visibility = Visibility::Direct;
        let d = resolve(&direct, &p);
        let q = d.ticket.replies.last().unwrap();
        assert!(q.private && q.visibility == Visibility::Direct);
        // Bluesky: replies only, so a private conversation is not asked at all.
        let mut bsky_private = p.clone();
        bsky_private
            .delivery
            .insert(Platform::Bluesky, Delivery::Private);
        let b = resolve(&answered(Platform::Bluesky, None), &bsky_private);
        assert!(!b.ticket.replies.last().unwrap().private);
        let mut bsky_direct = answered(Platform::Bluesky, None);
        bsky_direct.mention.visibility = Visibility::Direct;
        assert!(!owed(&bsky_direct, &p));
        // A question too long for the platform is not sent.
        let rules = TextRules::x();
        let mut long = p.clone();
        long.questions.insert("en".into(), "x".repeat(400));
        let tk = answered(Platform::X, None);
        let desk = {
            let mut d = crate::domain::Desk::new();
            d.roster_mut(SurfaceKind::Slack)
                .user_ids
                .insert("U1".into());
            d
        };
        let tr = crate::domain::apply(&tk, AgentAction::Resolve, &agent(), &desk, t(10)).unwrap();
        assert!(
            ask_after_resolve(tr, &tk, &long, Some(&rules), agent(), t(10))
                .ticket
                .survey
                .is_none()
        );
    }

    #[test]
    fn the_answer_is_recorded_once_without_reopening_and_a_non_answer_passes_the_survey() {
        let asked = resolve(&answered(Platform::Mastodon, None), &policy()).ticket;
        let mut reply = mention(Platform::Mastodon, None);
        reply.remote_id = "9".into();
        reply.text = "@brand ⭐⭐⭐⭐".into();
        let tr = record_answer(&asked, &reply, t(20)).expect("an answer");
        assert_eq!(tr.ticket.stage, Stage::Resolved);
        let answer = tr.ticket.survey.as_ref().unwrap().answer.as_ref().unwrap();
        assert_eq!((answer.score, answer.at), (4, t(20)));
        assert!(matches!(
            tr.effects.as_slice(),
            [Effect::ThreadNote(Note::SurveyAnswered { score: 4, .. })]
        ));
        assert_eq!(record_answer(&tr.ticket, &reply, t(21)), None, "once");
        reply.text = "still broken".into();
        assert_eq!(record_answer(&asked, &reply, t(20)), None);
        let mut moved_on = asked.clone();
        passed(&mut moved_on);
        reply.text = "5".into();
        assert_eq!(record_answer(&moved_on, &reply, t(30)), None);
        assert_eq!(stars(4, Scale::Csat), "★★★★");
    }
}
