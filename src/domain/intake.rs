//! Intake: what a mention that just arrived does to the desk. Already seen: nothing. An
//! answer, by the same author, to a post of a ticket's conversation (its first mention, a
//! follow-up, or our reply): it joins that ticket, reopening it if it was closed.
//! Anything else opens a ticket, judged by the triage (its priority, what the rules do
//! with it: a rule may keep it off the channel as spam) and stamped with its route and
//! first-response deadline. The store looks up what this needs inside its transaction
//! and persists the outcome.

use super::priority::Contact;
use super::routes::{Routes, DEFAULT_ROUTE};
use super::{apply_followup, AuditEntry, Effect, Mention, Stage, Ticket, TicketId, Transition};
use chrono::{DateTime, Utc};

/// What the store knows about a mention, looked up by the keys intake names.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    /// One of [`Mention::dedupe_keys`] is remembered: the mention was stored before.
    pub seen: bool,
    /// The ticket that holds the post the mention answers (found by [`post_keys`] of
    /// its `in_reply_to`), if any.
    pub parent: Option<&'a Ticket>,
    /// The author's earlier tickets, newest first (found by
    /// [`super::priority::author_key`]; a store keeps the latest
    /// [`super::priority::CONTACTS_KEPT`]).
    pub contacts: &'a [Contact],
}

/// What to persist for one mention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// Stored before: nothing changes.
    Duplicate,
    /// A customer's follow-up joins (and reopens) the ticket of its conversation.
    FollowUp(Transition),
    /// A new ticket, its cards to post and its first audit line.
    Opened(Transition),
}

impl Intake {
    /// The ticket to remember the mention's keys under, unless it is a duplicate.
    pub fn transition(&self) -> Option<&Transition> {
        match self {
            Intake::Duplicate => None,
            Intake::FollowUp(tr) | Intake::Opened(tr) => Some(tr),
        }
    }
}

/// Decide what `mention`, received at `now`, does. A new ticket takes number `next`.
/// Deadlines run from `now`, the time the desk received the post, never from the time
/// the post claims (a clock the customer controls).
pub fn admit(
    mention: &Mention,
    known: Known<'_>,
    next: TicketId,
    routes: &Routes,
    now: DateTime<Utc>,
) -> Intake {
    if known.seen {
        return Intake::Duplicate;
    }
    if let Some(parent) = known
        .parent
        .filter(|t| t.mention.author.handle == mention.author.handle)
    {
        // -- surveys (issue 14, part 2): an answer to the survey is recorded, not a reopen.
        if !parent.kept_off_by_rule() {
            if let Some(tr) = super::survey::record_answer(parent, mention, now) {
                return Intake::FollowUp(tr);
            }
        }
        let mut tr = apply_followup(parent, mention, now);
        super::survey::passed(&mut tr.ticket);
        if parent.kept_off_by_rule() {
            // Spam stays off the channel: the post joins its ticket, which stays ignored.
            tr.ticket.stage = Stage::Ignored;
            tr.effects.clear();
            tr.audit.what = "customer follow-up, kept ignored by a rule".into();
        }
        return Intake::FollowUp(tr);
    }
    let judged = routes.triage.judge(mention, known.contacts, now);
    let mut ticket = Ticket::open(next, mention.clone(), now);
    let route = match judged.route.as_deref() {
        Some(name) => routes.named(name),
        None => routes.route_for_priority(mention, judged.priority.level),
    };
    // The default route is stored as no name, so a renamed default still applies.
    if route.name != DEFAULT_ROUTE {
        ticket.route = route.name.clone();
    }
    let target = routes
        .triage
        .priority
        .first_response(judged.priority.level, route.sla.first_response);
    ticket.respond_by = Some(now + target);
    let what = judged.audit_line();
    ticket.priority = judged.priority;
    ticket.tags = judged.tags;
    ticket.rule_hits = judged.hits;
    let effects = if judged.ignored {
        // Nothing is deleted: the ticket is stored, only without a card.
        ticket.stage = Stage::Ignored;
        Vec::new()
    } else {
        vec![Effect::PostCards]
    };
    Intake::Opened(Transition {
        audit: AuditEntry {
            ticket: next,
            at: now,
            actor: None,
            what,
            detail: Some(mention.url.clone()),
        },
        ticket,
        effects,
    })
}

/// When a new ticket's card may be posted: after the routes' card hold (`[storms]
/// hold_seconds`), so a storm it belongs to is recognised first and its members join
/// the incident's card instead of flooding the channel. `None`: at once.
/// A ticket of the priority that keeps its own card (`[storms] own_card_from`) never waits.
pub fn cards_not_before(routes: &Routes, ticket: &Ticket) -> Option<DateTime<Utc>> {
    let hold = &routes.card_hold;
    (hold.wait > chrono::Duration::zero() && !hold.own_card(ticket))
        .then(|| ticket.received_at() + hold.wait)
}

/// The keys post `remote_id` of `mention`'s conversation is remembered by: the source's
/// own key first; then, where a post id is global (X, Bluesky), the post's key, so a post
/// brought by another path (a webhook) still finds it.
pub fn post_keys(mention: &Mention, remote_id: &str) -> Vec<String> {
    let mut post = mention.clone();
    post.remote_id = remote_id.to_string();
    std::iter::once(post.dedupe_key())
        .chain(mention.post_key_of(remote_id))
        .collect()
}

/// The keys to find the ticket whose post `mention` answers by, if it answers one.
pub fn parent_keys(mention: &Mention) -> Vec<String> {
    mention
        .in_reply_to
        .as_deref()
        .map(|parent| post_keys(mention, parent))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::routes::Route;
    use crate::domain::sla::SlaPolicy;
    use crate::domain::{Author, Note, Platform, Stage, Visibility};
    use chrono::{Duration, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
    }

    fn mention(id: &str, author: &str) -> Mention {
        Mention {
            platform: Platform::Mastodon,
            network: None,
            account: "brand".into(),
            remote_id: id.into(),
            url: format!("https://m.example/@{author}/{id}"),
            author: Author {
                handle: author.into(),
                name: author.into(),
                profile_url: format!("https://m.example/@{author}"),
                id: None,
                followers: None,
            },
            text: "help".into(),
            language: None,
            created_at: now(),
            in_reply_to: None,
            visibility: Visibility::Public,
            reply_context: None,
            external_id: None,
            detected_language: None,
        }
    }

    fn answer(id: &str, author: &str, to: &str) -> Mention {
        Mention {
            in_reply_to: Some(to.into()),
            ..mention(id, author)
        }
    }

    const NOTHING: Known<'static> = Known {
        seen: false,
        parent: None,
        contacts: &[],
    };

    fn german_route() -> Routes {
        let sla = SlaPolicy {
            first_response: Duration::minutes(20),
            ..SlaPolicy::default()
        };
        let mut german = Route::default_route(sla, false);
        german.name = "german".into();
        german.languages = vec!["de".into()];
        Routes {
            routes: vec![german],
            default: Route::default_route(SlaPolicy::default(), true),
            card_hold: Default::default(),
            triage: Default::default(),
        }
    }

    #[test]
    fn a_new_tickets_card_waits_for_storms_unless_its_priority_keeps_its_own() {
        let mut routes = Routes::default();
        let t = Ticket::open(TicketId(1), mention("1", "alice"), now());
        assert_eq!(cards_not_before(&routes, &t), None, "no hold: at once");
        routes.card_hold.wait = Duration::seconds(20);
        assert_eq!(
            cards_not_before(&routes, &t),
            Some(now() + Duration::seconds(20))
        );
        routes.card_hold.own_card_from = Some(crate::domain::Level::Urgent);
        let mut urgent = t.clone();
        urgent.priority.level = crate::domain::Level::Urgent;
        assert_eq!(cards_not_before(&routes, &urgent), None);
        assert!(
            cards_not_before(&routes, &t).is_some(),
            "a normal one still waits"
        );
    }

    #[test]
    fn a_new_mention_opens_a_ticket_with_its_cards_to_post() {
        let m = mention("1", "alice");
        let Intake::Opened(tr) = admit(&m, NOTHING, TicketId(7), &Routes::default(), now()) else {
            panic!("a new ticket")
        };
        assert_eq!(tr.ticket.id, TicketId(7));
        assert_eq!(tr.ticket.stage, Stage::New);
        assert_eq!(tr.ticket.mention, m);
        assert_eq!(tr.effects, vec![Effect::PostCards]);
        assert_eq!(tr.audit.ticket, TicketId(7));
        assert_eq!(tr.audit.what, "mention received");
        assert_eq!(tr.audit.detail.as_deref(), Some(m.url.as_str()));
        assert_eq!(tr.audit.actor, None);
    }

    #[test]
    fn a_mention_seen_before_changes_nothing() {
        let known = Known {
            seen: true,
            parent: None,
            contacts: &[],
        };
        let m = mention("1", "alice");
        assert_eq!(
            admit(&m, known, TicketId(2), &Routes::default(), now()),
            Intake::Duplicate
        );
        assert_eq!(Intake::Duplicate.transition(), None);
    }

    #[test]
    fn an_answer_by_the_same_author_joins_the_open_ticket() {
        let first = Ticket::open(TicketId(3), mention("1", "alice"), now());
        let later = now() + Duration::minutes(5);
        let m = answer("2", "alice", "1");
        let known = Known {
            seen: false,
            parent: Some(&first),
            contacts: &[],
        };
        let Intake::FollowUp(tr) = admit(&m, known, TicketId(4), &Routes::default(), later) else {
            panic!("a follow-up")
        };
        assert_eq!(tr.ticket.id, TicketId(3), "no new ticket number used");
        assert_eq!(tr.ticket.followups.len(), 1);
        assert_eq!(tr.ticket.followups[0].at, later);
        assert!(tr.ticket.customer_replied);
        assert_eq!(tr.audit.what, "customer follow-up");
        assert!(tr.effects.contains(&Effect::UpdateCards));
    }

    #[test]
    fn an_answer_to_a_closed_ticket_reopens_it() {
        let mut closed = Ticket::open(TicketId(3), mention("1", "alice"), now());
        closed.stage = Stage::Resolved;
        let m = answer("2", "alice", "1");
        let known = Known {
            seen: false,
            parent: Some(&closed),
            contacts: &[],
        };
        let Intake::FollowUp(tr) = admit(&m, known, TicketId(4), &Routes::default(), now()) else {
            panic!("a follow-up")
        };
        assert!(!tr.ticket.is_closed());
        assert_eq!(tr.audit.what, "customer wrote again; reopened");
        assert!(tr.effects.iter().any(|e| matches!(
            e,
            Effect::ThreadNote(Note::CustomerFollowUp { reopened: true, .. })
        )));
    }

    #[test]
    fn an_answer_by_someone_else_is_a_ticket_of_its_own() {
        let first = Ticket::open(TicketId(3), mention("1", "alice"), now());
        let m = answer("2", "bob", "1");
        let known = Known {
            seen: false,
            parent: Some(&first),
            contacts: &[],
        };
        let outcome = admit(&m, known, TicketId(4), &Routes::default(), now());
        assert!(matches!(outcome, Intake::Opened(tr) if tr.ticket.id == TicketId(4)));
    }

    #[test]
    fn a_new_ticket_carries_its_route_and_first_response_deadline() {
        let routes = german_route();
        let mut m = mention("1", "alice");
        m.language = Some("de".into());
        let Intake::Opened(tr) = admit(&m, NOTHING, TicketId(1), &routes, now()) else {
            panic!("a new ticket")
        };
        assert_eq!(tr.ticket.route, "german");
        assert_eq!(tr.ticket.respond_by, Some(now() + Duration::minutes(20)));
        // Anything else takes the default route, stored without a name.
        let Intake::Opened(tr) = admit(&mention("2", "bob"), NOTHING, TicketId(2), &routes, now())
        else {
            panic!("a new ticket")
        };
        assert_eq!(tr.ticket.route, "");
        assert_eq!(tr.ticket.respond_by, Some(now() + Duration::minutes(60)));
    }

    #[test]
    fn the_deadline_runs_from_when_the_desk_received_the_post_not_its_claimed_time() {
        let mut m = mention("1", "alice");
        // The post claims to be from two days ago (or from the future): not trusted.
        m.created_at = now() - Duration::days(2);
        let received = now();
        let Intake::Opened(tr) = admit(&m, NOTHING, TicketId(1), &Routes::default(), received)
        else {
            panic!("a new ticket")
        };
        assert_eq!(tr.ticket.opened_at, received);
        assert_eq!(tr.ticket.respond_by, Some(received + Duration::minutes(60)));
        m.created_at = now() + Duration::days(2);
        let Intake::Opened(tr) = admit(&m, NOTHING, TicketId(1), &Routes::default(), received)
        else {
            panic!("a new ticket")
        };
        assert_eq!(tr.ticket.respond_by, Some(received + Duration::minutes(60)));
    }

    fn spam_and_vip() -> Routes {
        use crate::domain::priority::Level;
        use crate::domain::triage::{Actions, Rule};
        use crate::domain::words::Term;
        let mut routes = german_route();
        let mut vip_desk = Route::default_route(SlaPolicy::default(), true);
        vip_desk.name = "vip-desk".into();
        vip_desk.min_priority = Some(Level::High);
        routes.routes.push(vip_desk);
        let p = &mut routes.triage.priority;
        p.vip.insert(Platform::Mastodon, vec!["bigcorp".into()]);
        p.first_response.insert(Level::High, Duration::minutes(15));
        routes.triage.rules = vec![
            Rule {
                name: "crypto spam".into(),
                words: vec![Term::new("airdrop").unwrap()],
                actions: Actions {
                    ignore: true,
                    ..Actions::default()
                },
                ..Rule::default()
            },
            Rule {
                name: "german words".into(),
                words: vec![Term::new("hallo").unwrap()],
                actions: Actions {
                    tags: vec!["dach".into()],
                    route: Some("german".into()),
                    ..Actions::default()
                },
                ..Rule::default()
            },
        ];
        routes
    }

    #[test]
    fn a_spam_rule_keeps_the_ticket_but_posts_no_card_and_says_which_rule() {
        let mut m = mention("1", "spammer");
        m.text = "Free airdrop!".into();
        let Intake::Opened(tr) = admit(&m, NOTHING, TicketId(9), &spam_and_vip(), now()) else {
            panic!("a ticket, even for spam")
        };
        assert_eq!(tr.ticket.stage, Stage::Ignored);
        assert!(tr.effects.is_empty(), "no card");
        assert!(tr.ticket.kept_off_by_rule());
        assert_eq!(tr.ticket.rule_hits[0].rule, "crypto spam");
        assert!(
            tr.audit
                .what
                .contains("ignored by a rule; rule \"crypto spam\": ignored"),
            "{}",
            tr.audit.what
        );
        // The spammer answering their own post joins the ticket, which stays ignored.
        let again = answer("2", "spammer", "1");
        let known = Known {
            seen: false,
            parent: Some(&tr.ticket),
            contacts: &[],
        };
        let Intake::FollowUp(f) = admit(&again, known, TicketId(10), &spam_and_vip(), now()) else {
            panic!("a follow-up")
        };
        assert_eq!(f.ticket.stage, Stage::Ignored);
        assert!(f.effects.is_empty());
        assert_eq!(f.ticket.followups.len(), 1);
    }

    #[test]
    fn priority_is_stamped_and_picks_the_route_and_target_and_a_rule_may_route() {
        use crate::domain::priority::{Contact, Level};
        let routes = spam_and_vip();
        let Intake::Opened(tr) = admit(
            &mention("1", "bigcorp"),
            NOTHING,
            TicketId(1),
            &routes,
            now(),
        ) else {
            panic!("a ticket")
        };
        assert_eq!(tr.ticket.priority.level, Level::High);
        assert_eq!(tr.ticket.priority.why(), "VIP");
        assert_eq!(
            tr.ticket.route, "vip-desk",
            "the route asking for high priority"
        );
        assert_eq!(tr.ticket.respond_by, Some(now() + Duration::minutes(15)));
        // Someone else is normal: not the VIP desk, the route's own target.
        let Intake::Opened(tr) = admit(&mention("2", "kim"), NOTHING, TicketId(2), &routes, now())
        else {
            panic!("a ticket")
        };
        assert_eq!(tr.ticket.route, "");
        assert_eq!(tr.ticket.respond_by, Some(now() + Duration::minutes(60)));
        // The earlier tickets the store found by author count.
        let earlier = [Contact {
            ticket: TicketId(2),
            received: now(),
            open: true,
        }];
        let known = Known {
            contacts: &earlier,
            ..NOTHING
        };
        let Intake::Opened(tr) = admit(&mention("3", "kim"), known, TicketId(3), &routes, now())
        else {
            panic!("a ticket")
        };
        assert_eq!(tr.ticket.priority.why(), "2nd contact this week");
        // A routing rule sends it where it says, tagged, with that route's target.
        let mut m = mention("4", "kim");
        m.text = "Hallo zusammen".into();
        let Intake::Opened(tr) = admit(&m, NOTHING, TicketId(4), &routes, now()) else {
            panic!("a ticket")
        };
        assert_eq!(tr.ticket.route, "german");
        assert_eq!(tr.ticket.tags, vec!["dach".to_string()]);
        assert_eq!(tr.ticket.respond_by, Some(now() + Duration::minutes(20)));
        assert_eq!(tr.effects, vec![Effect::PostCards]);
        assert!(tr
            .audit
            .what
            .starts_with("mention received; rule \"german words\""));
    }

    #[test]
    fn a_post_is_found_by_its_source_key_and_where_global_by_its_post_key() {
        let m = answer("2", "alice", "1");
        assert_eq!(parent_keys(&m), vec![mention("1", "alice").dedupe_key()]);
        assert!(
            parent_keys(&mention("2", "alice")).is_empty(),
            "answers nothing"
        );
        let mut on_x = answer("1790000000000000002", "alice", "1790000000000000001");
        on_x.platform = Platform::X;
        let keys = parent_keys(&on_x);
        assert_eq!(keys.len(), 2, "the source's key and the post's global key");
        assert_eq!(
            keys[1],
            on_x.post_key_of("1790000000000000001").unwrap(),
            "the same key a webhook delivery of that post is remembered by"
        );
    }
}
