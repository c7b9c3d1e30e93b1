//! Privacy (issue 14): what of a person's data a ticket keeps, and for how long. Pure: the
//! retention duty (`runtime::retention`) and `mentionbridge erase` decide here what a
//! ticket becomes and hand the store the rewrite ([`Rewrite`]); time and the hash key come
//! in as arguments.
//!
//! Anonymising keeps what the numbers need (stage, times, route, platform, agents and
//! their actions, SLA marks, priority level and points, language, tags) and removes the
//! customer's text and identity. Where identity must survive for dedupe (the keys that
//! recognise a post already ingested) only a keyed hash ([`hashed`]) is kept.

use super::priority::ticket_author_key;
use super::{Anonymised, AuditEntry, ReplyState, Stage, Ticket};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What stands where the customer's text was (by retention or erasure): inert on every
/// surface.
pub const TEXT_REMOVED: &str = "(text removed: personal data)";
/// What stands where the customer's identity was.
pub const IDENTITY_REMOVED: &str = "(removed)";
/// The state key of the desk's hash key (32 random bytes, hex), made on first need.
pub const HASH_KEY_STATE: &str = "privacy:hash_key";
/// A hashed dedupe key starts so (never a plain key's start: those name a platform).
pub const HASHED_PREFIX: &str = "#h:";

/// How long each kind of a closed ticket's data is kept (`[retention]`); `None`: kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Mention text, follow-ups, translation, reply context, replies' text.
    pub customer_text_days: Option<u32>,
    /// Handle, name, profile URL, platform user id, post URLs and ids.
    pub identity_days: Option<u32>,
    // A survey answer's words are customer text (its score is kept for the numbers).
    // Notes about a person are not tied to one closed ticket: an erasure removes them;
    // they have no `*_days` of their own.
}

impl Retention {
    pub fn is_empty(&self) -> bool {
        self.customer_text_days.is_none() && self.identity_days.is_none()
    }
}

/// What to remove from one ticket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removal {
    pub text: bool,
    pub identity: bool,
}

impl Removal {
    pub const ALL: Removal = Removal {
        text: true,
        identity: true,
    };

    pub fn any(self) -> bool {
        self.text || self.identity
    }
}

/// When a closed ticket closed: its last change (nothing but the desk's bookkeeping
/// changes a closed ticket). Open tickets: none.
pub fn closed_at(t: &Ticket) -> Option<DateTime<Utc>> {
    matches!(t.stage, Stage::Resolved | Stage::Ignored).then_some(t.updated_at)
}

/// What retention removes from `t` at `now` that is not removed already.
pub fn due(t: &Ticket, policy: &Retention, now: DateTime<Utc>) -> Removal {
    let Some(closed) = closed_at(t) else {
        return Removal::default();
    };
    let past = |days: Option<u32>| {
        days.is_some_and(|d| now.signed_duration_since(closed) >= Duration::days(i64::from(d)))
    };
    let done = t.anonymised.as_ref();
    Removal {
        text: past(policy.customer_text_days) && !done.is_some_and(|a| a.text),
        identity: past(policy.identity_days) && !done.is_some_and(|a| a.identity),
    }
}

/// The keyed hash of `value` (HMAC-SHA256 under the desk's key), as stored in place of
/// a dedupe key or an author.
pub fn hashed(key: &[u8], value: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(value.as_bytes());
    format!(
        "{HASHED_PREFIX}{}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// One ticket's privacy rewrite, as the store commits it (see `Store::rewrite_ticket`):
/// the ticket as it is to be stored, the strings to blank out of its audit lines, and
/// the dedupe keys to replace by their keyed hashes (each plain key, its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    pub ticket: Ticket,
    pub redact: Vec<String>,
    pub rekey: Vec<(String, String)>,
}

/// The personal strings of a ticket: what must leave its audit lines too.
pub fn personal_strings(t: &Ticket, removal: Removal) -> Vec<String> {
    let m = &t.mention;
    let mut out: Vec<String> = Vec::new();
    if removal.identity {
        let handle = m.author.handle.trim().trim_start_matches('@').to_string();
        out.push(format!("@{handle}"));
        out.push(handle);
        out.push(m.author.name.clone());
        out.push(m.author.profile_url.clone());
        out.extend(m.author.id.clone());
        out.push(m.url.clone());
        out.push(m.remote_id.clone());
        out.extend(m.in_reply_to.clone());
        out.extend(m.external_id.clone());
        for f in &t.followups {
            out.push(f.url.clone());
            out.push(f.remote_id.clone());
        }
        for r in &t.replies {
            if let ReplyState::Published { remote_id, url } = &r.state {
                out.push(url.clone());
                out.push(remote_id.clone());
            }
        }
    }
    if removal.text {
        out.push(m.text.clone());
        out.extend(m.reply_context.clone());
        out.extend(t.followups.iter().map(|f| f.text.clone()));
        out.extend(t.translation.iter().map(|tr| tr.text.clone()));
        out.extend(t.replies.iter().map(|r| r.text.clone()));
        out.extend(
            t.survey
                .iter()
                .flat_map(|s| &s.answer)
                .map(|a| a.text.clone()),
        );
    }
    // Short strings ("1", "") would blank ordinary words of other lines.
    out.retain(|s| s.chars().count() >= 3 && s != TEXT_REMOVED && s != IDENTITY_REMOVED);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// `t` with `removal` applied (the placeholders in place of what is removed), marked.
pub fn anonymise(t: &Ticket, removal: Removal, why: &str, now: DateTime<Utc>) -> Ticket {
    let mut t = t.clone();
    let strings = personal_strings(&t, removal);
    if removal.text {
        t.mention.text = TEXT_REMOVED.to_string();
        t.mention.reply_context = None;
        t.translation = None;
        for f in &mut t.followups {
            f.text = TEXT_REMOVED.to_string();
        }
        for r in &mut t.replies {
            r.text = TEXT_REMOVED.to_string();
        }
        // The score stays for the numbers; the words the customer answered with go.
        if let Some(a) = t.survey.as_mut().and_then(|s| s.answer.as_mut()) {
            a.text = TEXT_REMOVED.to_string();
        }
        for h in &mut t.rule_hits {
            h.matched = IDENTITY_REMOVED.to_string();
        }
    }
    if removal.identity {
        let m = &mut t.mention;
        m.author.handle = IDENTITY_REMOVED.to_string();
        m.author.name = IDENTITY_REMOVED.to_string();
        m.author.profile_url = String::new();
        m.author.id = None;
        m.url = String::new();
        m.remote_id = format!("removed-{}", t.id.0);
        m.in_reply_to = None;
        m.external_id = None;
        for f in &mut t.followups {
            f.url = String::new();
            f.remote_id = IDENTITY_REMOVED.to_string();
        }
        for r in &mut t.replies {
            if let ReplyState::Published { remote_id, url } = &mut r.state {
                *remote_id = IDENTITY_REMOVED.to_string();
                *url = String::new();
            }
        }
    }
    // Reasons and rule hits may quote the person (a VIP's handle, a matched word).
    for r in &mut t.priority.reasons {
        r.why = redact_text(&r.why, &strings);
    }
    let before = t.anonymised.take();
    t.anonymised = Some(Anonymised {
        at: now,
        why: why.to_string(),
        text: removal.text || before.as_ref().is_some_and(|a| a.text),
        identity: removal.identity || before.as_ref().is_some_and(|a| a.identity),
        author: before.and_then(|a| a.author),
    });
    t
}

/// The rewrite that applies `removal` to `t`: identity removal hashes its dedupe keys
/// (under `key`) so the same post is still recognised.
pub fn rewrite(t: &Ticket, removal: Removal, why: &str, key: &[u8], now: DateTime<Utc>) -> Rewrite {
    let rekey = if removal.identity {
        let mut keys = t.mention.dedupe_keys();
        for f in &t.followups {
            let mut m = t.mention.clone();
            m.remote_id = f.remote_id.clone();
            m.url = f.url.clone();
            keys.extend(m.dedupe_keys());
        }
        for r in &t.replies {
            if let ReplyState::Published { remote_id, url } = &r.state {
                let mut m = t.mention.clone();
                m.remote_id = remote_id.clone();
                m.url = url.clone();
                keys.extend(m.dedupe_keys());
            }
        }
        keys.sort();
        keys.dedup();
        hashed_keys(key, &keys)
    } else {
        Vec::new()
    };
    let mut ticket = anonymise(t, removal, why, now);
    if removal.identity {
        if let Some(a) = ticket.anonymised.as_mut() {
            a.author
                .get_or_insert_with(|| hashed(key, &ticket_author_key(t)));
        }
    }
    Rewrite {
        ticket,
        redact: personal_strings(t, removal),
        rekey,
    }
}

/// The keys a post `m` is known by (`Mention::dedupe_keys`) or answers
/// (`intake::parent_keys`) as a store keeps them once the ticket they name was erased:
/// each plain key with its keyed hash, for a look-up that misses the plain key.
pub fn hashed_keys(key: &[u8], plain: &[String]) -> Vec<(String, String)> {
    plain.iter().map(|k| (k.clone(), hashed(key, k))).collect()
}

/// The desk's hash key from its stored state (hex), if it was made and is readable.
pub fn hash_key_of(raw: &[u8]) -> Option<Vec<u8>> {
    let key = hex::decode(std::str::from_utf8(raw).ok()?.trim()).ok()?;
    (key.len() >= 16).then_some(key)
}

/// The audit line that records a removal: what went, and why (`erasure`, `retention`).
pub fn removal_line(removal: Removal, why: &str) -> String {
    let what = match (removal.text, removal.identity) {
        (true, true) => "customer text and identity",
        (true, false) => "customer text",
        (false, true) => "customer identity",
        (false, false) => "nothing",
    };
    match why {
        "erasure" => format!("{what} erased at the person's request"),
        "retention" => format!("{what} removed under the retention policy"),
        other => format!("{what} removed ({other})"),
    }
}

/// `text` with each of `strings` blanked out.
pub fn redact_text(text: &str, strings: &[String]) -> String {
    let mut out = text.to_string();
    for s in strings {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), IDENTITY_REMOVED);
        }
    }
    out
}

/// An audit line without the strings: who did what when stays.
pub fn redact_audit(entry: &AuditEntry, strings: &[String]) -> AuditEntry {
    AuditEntry {
        what: redact_text(&entry.what, strings),
        detail: entry.detail.as_deref().map(|d| redact_text(d, strings)),
        ..entry.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Author, Mention, Platform, TicketId, Visibility};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
    }

    fn ticket(closed_days_ago: i64) -> Ticket {
        let m = Mention {
            platform: Platform::Mastodon,
            network: None,
            account: "brand".into(),
            remote_id: "109".into(),
            url: "https://social.example/@zelda/109".into(),
            author: Author {
                handle: "zelda".into(),
                name: "Zelda Quux".into(),
                profile_url: "https://social.example/@zelda".into(),
                id: Some("4242".into()),
                followers: Some(10),
            },
            text: "my order 7781 never came".into(),
            language: Some("en".into()),
            created_at: now(),
            in_reply_to: None,
            visibility: Visibility::Public,
            reply_context: None,
            external_id: None,
            detected_language: None,
        };
        let mut t = Ticket::open(TicketId(3), m, now() - Duration::days(40));
        t.stage = Stage::Resolved;
        t.route = "billing".into();
        t.updated_at = now() - Duration::days(closed_days_ago);
        t
    }

    #[test]
    fn retention_counts_from_the_close_and_only_for_closed_tickets() {
        let policy = Retention {
            customer_text_days: Some(30),
            identity_days: None,
        };
        assert!(due(&ticket(31), &policy, now()).text);
        assert!(!due(&ticket(31), &policy, now()).identity);
        assert!(!due(&ticket(29), &policy, now()).any());
        let mut open = ticket(31);
        open.stage = Stage::Posted;
        assert!(!due(&open, &policy, now()).any());
        let done = anonymise(
            &ticket(31),
            due(&ticket(31), &policy, now()),
            "retention",
            now(),
        );
        assert!(!due(&done, &policy, now()).any(), "done once");
        assert!(!due(&ticket(400), &Retention::default(), now()).any());
    }

    #[test]
    fn anonymising_keeps_the_numbers_and_drops_the_person() {
        let t = ticket(31);
        let a = anonymise(&t, Removal::ALL, "erasure", now());
        assert_eq!(
            (a.stage, a.opened_at, &a.route),
            (t.stage, t.opened_at, &t.route)
        );
        assert_eq!(a.mention.platform, t.mention.platform);
        assert_eq!(a.mention.language, t.mention.language);
        let json = serde_json::to_string(&a).unwrap();
        for gone in ["zelda", "Zelda Quux", "7781", "social.example", "4242"] {
            assert!(!json.contains(gone), "{gone} in {json}");
        }
        assert!(a.anonymised.as_ref().is_some_and(|x| x.text && x.identity));
    }

    #[test]
    fn a_survey_answer_keeps_its_score_and_loses_its_words() {
        let mut t = ticket(31);
        t.survey = Some(crate::domain::Survey {
            scale: crate::domain::survey::Scale::Csat,
            asked_at: now() - Duration::days(39),
            seq: 1,
            answer: Some(crate::domain::SurveyAnswer {
                score: 4,
                text: "4, Brannigan was kind".into(),
                at: now() - Duration::days(38),
            }),
            passed: false,
        });
        assert!(personal_strings(&t, Removal::ALL).contains(&"4, Brannigan was kind".to_string()));
        let a = anonymise(&t, Removal::ALL, "erasure", now());
        let answer = a.survey.as_ref().and_then(|s| s.answer.as_ref()).unwrap();
        assert_eq!(answer.score, 4);
        assert_eq!(answer.text, TEXT_REMOVED);
        assert!(!serde_json::to_string(&a).unwrap().contains("Brannigan"));
    }

    #[test]
    fn rewrite_hashes_the_dedupe_keys_under_the_key() {
        let t = ticket(1);
        let r = rewrite(&t, Removal::ALL, "erasure", b"k", now());
        let plain = t.mention.dedupe_keys();
        assert!(!r.rekey.is_empty());
        for (k, h) in &r.rekey {
            assert!(plain.contains(k));
            assert_eq!(h, &hashed(b"k", k));
            assert_ne!(h, &hashed(b"other", k));
            assert!(!h.contains("zelda"));
        }
        let line = AuditEntry {
            ticket: t.id,
            at: now(),
            actor: None,
            what: "replied to @zelda".into(),
            detail: Some("my order 7781 never came".into()),
        };
        // The person's tickets stay filed together, under the hash of their author key.
        let filed = crate::domain::priority::ticket_author_key(&r.ticket);
        assert_eq!(filed, hashed(b"k", "mastodon/zelda"));
        assert_eq!(
            crate::domain::priority::ticket_author_key(&t),
            "mastodon/zelda"
        );
        let red = redact_audit(&line, &r.redact);
        assert!(!red.what.contains("zelda"));
        assert!(!red.detail.unwrap().contains("7781"));
    }
}
