//! The contract of the store's ticket indexes: after every kind of ticket write, what the
//! indexes answer (open tickets by number, the next-due index, tickets by the instant
//! received, first answers in a span, the counters behind `/metrics`) is what the
//! tickets themselves say, worked out from `all_tickets` by the domain's own functions.

use super::*;
use mentionbridge::domain::oncall::OnCall;
use mentionbridge::domain::routes::{Route, Routes};
use mentionbridge::domain::sla::{apply_steps, due_steps, off_hours_considered, SlaPolicy};
use mentionbridge::domain::Ticket;
use mentionbridge::ports::tally::{desk_counts, TicketFacts};
use mentionbridge::ports::{heads_of, OpenPriority};
use mentionbridge::reports::{desk_counts_of, Targets};

fn ids(tickets: &[Ticket]) -> Vec<TicketId> {
    tickets.iter().map(|t| t.id).collect()
}

/// Every index of `store` agrees with its tickets, judged at `now` under `routes`.
pub async fn assert_indexes_match(
    store: &SharedStore,
    routes: &Routes,
    now: DateTime<Utc>,
    when: &str,
) {
    let all = store.all_tickets().await.unwrap();
    let open: Vec<TicketId> = all
        .iter()
        .filter(|t| !t.is_closed())
        .map(|t| t.id)
        .collect();
    assert_eq!(
        ids(&store.open_tickets_numbered("", usize::MAX).await.unwrap()),
        open,
        "{when}: the open tickets, oldest first"
    );
    assert_eq!(ids(&store.open_tickets().await.unwrap()), open, "{when}");
    let sorted_by: Vec<OpenPriority> = all
        .iter()
        .filter(|t| !t.is_closed())
        .map(OpenPriority::of)
        .collect();
    assert_eq!(
        store.open_priorities().await.unwrap(),
        sorted_by,
        "{when}: what the open list sorts by"
    );
    let in_order = |mut v: Vec<OpenPriority>| {
        v.sort_by_key(|o| (o.waiting, o.score, o.received, o.ticket));
        v
    };
    for limit in [1, 2, usize::MAX] {
        assert_eq!(
            in_order(store.open_list_heads(limit).await.unwrap()),
            in_order(heads_of(sorted_by.clone(), limit)),
            "{when}: the heads of the open list, {limit} per group"
        );
    }
    assert_eq!(
        store.open_ticket_count().await.unwrap(),
        open.len(),
        "{when}"
    );
    assert_eq!(store.ticket_count().await.unwrap(), all.len(), "{when}");

    let mut due: Vec<(DateTime<Utc>, TicketId)> = all
        .iter()
        .filter_map(|t| routes.next_due(t).map(|d| (d, t.id)))
        .collect();
    due.sort();
    let everything = store
        .due_tickets(now + Duration::days(3650), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        ids(&everything.tickets),
        due.iter().map(|d| d.1).collect::<Vec<_>>(),
        "{when}: every scheduled ticket, soonest first"
    );
    assert_eq!(everything.next, None, "{when}");
    let by_now = store.due_tickets(now, usize::MAX).await.unwrap();
    assert_eq!(
        ids(&by_now.tickets),
        due.iter()
            .filter(|d| d.0 <= now)
            .map(|d| d.1)
            .collect::<Vec<_>>(),
        "{when}: due now"
    );
    assert_eq!(
        by_now.next,
        due.iter().find(|d| d.0 > now).map(|d| d.0),
        "{when}: when the next is due"
    );

    // Received in the last two hours, read a page of one at a time.
    let (from, to) = (now - Duration::hours(2), now + Duration::seconds(1));
    let mut expected: Vec<&Ticket> = all
        .iter()
        .filter(|t| from <= t.opened_at && t.opened_at < to)
        .collect();
    expected.sort_by_key(|t| (t.opened_at, t.id));
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.received_facts(from, to, after, 1).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.opened_at, last.id));
        paged.extend(page);
    }
    assert_eq!(
        paged,
        expected
            .iter()
            .map(|t| TicketFacts::of(t))
            .collect::<Vec<_>>(),
        "{when}: by the instant received, each with its ticket's facts as now"
    );
    let answered = all
        .iter()
        .filter_map(Ticket::first_answer)
        .filter(|a| from <= *a && *a < to)
        .count();
    assert_eq!(
        store.first_answers_between(from, to).await.unwrap(),
        answered,
        "{when}: first answers"
    );

    let targets = Targets {
        default_sla: routes.default.sla.first_response,
        sla_of: Box::new(|route| routes.named(route).sla.first_response),
        shift_of: Box::new(|_| None),
    };
    let target = |route: &str| routes.named(route).sla.first_response;
    assert_eq!(
        desk_counts(store.as_ref(), now, &target).await.unwrap(),
        desk_counts_of(&all, now, &targets),
        "{when}: the counters behind /metrics"
    );
}

/// A route, the default, with `policy`; it acknowledges off-hours mentions if `ack`.
fn routes_of(policy: SlaPolicy, ack: bool) -> Routes {
    Routes {
        routes: vec![Route {
            name: "vip".into(),
            platforms: vec![Platform::X],
            ..Route::default_route(SlaPolicy::default(), true)
        }],
        default: Route {
            off_hours_ack: ack.then(|| "Back {expected}.".to_string()),
            ..Route::default_route(policy, true)
        },
        card_hold: Default::default(),
        triage: Default::default(),
    }
}

fn minutes(m: i64) -> DateTime<Utc> {
    now() + Duration::minutes(m)
}

pub async fn the_indexes_follow_every_kind_of_ticket_write(place: &dyn Place) {
    let routes = Routes::default();
    let store = place.open();
    let desk = desk_of(&["ANA".to_string()]);
    let act = |id: u64, action: AgentAction, at: DateTime<Utc>| {
        let (store, desk) = (store.clone(), desk.clone());
        async move {
            store
                .act(TicketId(id), &|t| {
                    apply(t, action.clone(), &agent("ANA"), &desk, at)
                })
                .await
                .unwrap()
                .expect("Ana may")
        }
    };
    assert_indexes_match(&store, &routes, now(), "empty").await;

    three_tickets(&store).await;
    assert_indexes_match(&store, &routes, now(), "intake").await;

    act(1, AgentAction::Claim, minutes(1)).await;
    assert_indexes_match(&store, &routes, minutes(2), "a claim").await;

    let publish = ana_replies(&store).await;
    assert_indexes_match(&store, &routes, minutes(2), "a reply queued").await;
    let published = SystemEvent::ReplyPublished {
        seq: 1,
        remote_id: "99".into(),
        url: "https://m.example/@brand/99".into(),
    };
    store
        .complete(&publish, Some(published), minutes(5))
        .await
        .unwrap();
    assert_indexes_match(&store, &routes, minutes(5), "a reply published").await;

    let policy = routes.default.sla.clone();
    let step = |t: &Ticket| {
        apply_steps(
            t,
            &due_steps(t, &t.sla, &policy, minutes(16)),
            &OnCall::default(),
            minutes(16),
        )
    };
    assert!(store
        .transition(TicketId(2), &step)
        .await
        .unwrap()
        .is_some());
    assert_indexes_match(&store, &routes, minutes(16), "an SLA step").await;

    act(1, AgentAction::Resolve, minutes(20)).await;
    assert_indexes_match(&store, &routes, minutes(20), "resolved").await;

    // The customer answers the satisfaction survey: its facts and counters follow.
    let answered = |t: &Ticket| {
        use mentionbridge::domain::{AuditEntry, Scale, Survey, SurveyAnswer, Transition};
        let mut next = t.clone();
        next.survey = Some(Survey {
            scale: Scale::Csat,
            asked_at: minutes(20),
            seq: 2,
            answer: Some(SurveyAnswer {
                score: 4,
                text: "4".into(),
                at: minutes(25),
            }),
            passed: false,
        });
        Some(Transition {
            audit: AuditEntry {
                ticket: t.id,
                at: minutes(25),
                actor: None,
                what: "satisfaction survey answered".into(),
                detail: None,
            },
            ticket: next,
            effects: Vec::new(),
        })
    };
    assert!(store
        .transition(TicketId(1), &answered)
        .await
        .unwrap()
        .is_some());
    assert_indexes_match(&store, &routes, minutes(25), "a survey answered").await;
    let facts = store
        .received_facts(minutes(-60), minutes(60), None, 10)
        .await
        .unwrap();
    assert_eq!(
        facts
            .iter()
            .find(|f| f.id == TicketId(1))
            .and_then(|f| f.survey)
            .map(|s| s.score),
        Some(4)
    );

    let mut again = mention("d", "alice");
    again.in_reply_to = Some("a".into());
    let done = store
        .ingest("src", &[again], None, minutes(30))
        .await
        .unwrap();
    assert_eq!(done.followups, vec![TicketId(1)]);
    assert!(!store
        .ticket(TicketId(1))
        .await
        .unwrap()
        .unwrap()
        .is_closed());
    assert_indexes_match(&store, &routes, minutes(30), "reopened by a follow-up").await;

    act(3, AgentAction::Ignore, minutes(40)).await;
    assert_indexes_match(&store, &routes, minutes(40), "ignored").await;
    // Later, bob's ticket has waited past its target: the breach counts without a write.
    assert_indexes_match(&store, &routes, minutes(120), "two hours on").await;
}

pub async fn a_due_instant_moves_when_its_sla_step_is_taken(place: &dyn Place) {
    let store = with_tickets(place, &["a"]).await;
    let quiet = store.due_tickets(minutes(1), 10).await.unwrap();
    assert!(quiet.tickets.is_empty());
    assert_eq!(quiet.next, Some(minutes(15)), "the first escalation");
    let due = store.due_tickets(minutes(16), 10).await.unwrap();
    assert_eq!(ids(&due.tickets), vec![TicketId(1)]);
    let policy = SlaPolicy::default();
    let step = |t: &Ticket| {
        apply_steps(
            t,
            &due_steps(t, &t.sla, &policy, minutes(16)),
            &OnCall::default(),
            minutes(16),
        )
    };
    store
        .transition(TicketId(1), &step)
        .await
        .unwrap()
        .expect("escalated");
    let after = store.due_tickets(minutes(16), 10).await.unwrap();
    assert!(after.tickets.is_empty(), "taken: no longer due");
    assert_eq!(after.next, Some(minutes(30)), "the next level");
    // More due than asked for: the rest is due already.
    store
        .ingest(
            "src",
            &[
                mention("b", "bob"),
                mention("c", "carol"),
                mention("d", "dan"),
            ],
            None,
            now(),
        )
        .await
        .unwrap();
    let some = store.due_tickets(minutes(16), 2).await.unwrap();
    assert_eq!(ids(&some.tickets), vec![TicketId(2), TicketId(3)]);
    assert!(
        some.next.is_some_and(|n| n <= minutes(16)),
        "{:?}",
        some.next
    );
}

pub async fn an_off_hours_mark_stops_a_ticket_being_due_for_it(place: &dyn Place) {
    let routes = routes_of(SlaPolicy::default(), true);
    let store = place.open_with(routes.clone());
    store
        .ingest("src", &[mention("a", "alice")], None, now())
        .await
        .unwrap();
    let due = store.due_tickets(now(), 10).await.unwrap();
    assert_eq!(ids(&due.tickets), vec![TicketId(1)], "due at once");
    let jobs = store.jobs().await.unwrap().len();
    let audit = store.audit_of(TicketId(1)).await.unwrap().len();
    let marked = store
        .mark(TicketId(1), &off_hours_considered)
        .await
        .unwrap()
        .expect("not weighed yet");
    assert!(marked.sla.off_hours_considered);
    assert_eq!(
        store
            .mark(TicketId(1), &off_hours_considered)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.jobs().await.unwrap().len(), jobs, "no job for a mark");
    assert_eq!(
        store.audit_of(TicketId(1)).await.unwrap().len(),
        audit,
        "no audit line"
    );
    let after = store.due_tickets(now(), 10).await.unwrap();
    assert!(after.tickets.is_empty());
    assert_eq!(after.next, Some(minutes(15)));
    assert_indexes_match(&store, &routes, now(), "marked").await;
    assert!(matches!(
        store.mark(TicketId(9), &off_hours_considered).await,
        Err(StoreError::NoSuchTicket(TicketId(9)))
    ));
}

pub async fn a_change_of_routes_makes_every_open_ticket_looked_at_again(place: &dyn Place) {
    let hourly = routes_of(SlaPolicy::default(), false);
    {
        let store = place.open_with(hourly.clone());
        let mentions: Vec<Mention> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|id| mention(id, "alice"))
            .collect();
        store.ingest("src", &mentions, None, now()).await.unwrap();
        store
            .act(TicketId(5), &|t| {
                apply(
                    t,
                    AgentAction::Ignore,
                    &agent("ANA"),
                    &desk_of(&["ANA".into()]),
                    now(),
                )
            })
            .await
            .unwrap()
            .expect("ignored");
        // Under these routes nothing is due before the escalation at 15 minutes.
        assert!(store
            .due_tickets(minutes(6), 10)
            .await
            .unwrap()
            .tickets
            .is_empty());
        store.flush().await.unwrap();
    }
    // The configuration now escalates after 5 minutes: after a restart, the four open
    // tickets are due at 6 minutes, found two per round, without a write to any of them.
    let faster = routes_of(
        SlaPolicy {
            unclaimed_escalation: vec![Duration::minutes(5)],
            ..SlaPolicy::default()
        },
        false,
    );
    let store = place.open_with(faster.clone());
    let first = store.due_tickets(minutes(6), 2).await.unwrap();
    assert_eq!(ids(&first.tickets), vec![TicketId(1), TicketId(2)]);
    assert!(
        first.next.is_some_and(|n| n <= minutes(6)),
        "more to look at: {:?}",
        first.next
    );
    let second = store.due_tickets(minutes(6), 2).await.unwrap();
    assert_eq!(
        ids(&second.tickets),
        vec![TicketId(1), TicketId(2)],
        "still the two soonest (nothing taken yet)"
    );
    let third = store.due_tickets(minutes(6), 10).await.unwrap();
    assert_eq!(
        ids(&third.tickets),
        vec![TicketId(1), TicketId(2), TicketId(3), TicketId(4)],
        "every open ticket, the ignored one aside"
    );
    assert_eq!(third.next, None, "nothing else scheduled");
    assert_indexes_match(&store, &faster, minutes(6), "after the change").await;
    // The same routes again after another restart: nothing to compute.
    drop(store);
    let store = place.open_with(faster.clone());
    assert_eq!(store.due_tickets(minutes(6), 10).await.unwrap(), third);
}

pub async fn open_tickets_are_found_by_the_number_typed(place: &dyn Place) {
    let names: Vec<String> = (1..=25).map(|i| format!("p{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let store = with_tickets(place, &refs).await;
    let desk = desk_of(&["ANA".to_string()]);
    for closed in [1, 12, 20] {
        store
            .act(TicketId(closed), &|t| {
                apply(t, AgentAction::Resolve, &agent("ANA"), &desk, now())
            })
            .await
            .unwrap()
            .expect("resolved");
    }
    let open: Vec<u64> = (1..=25).filter(|n| ![1, 12, 20].contains(n)).collect();
    for (typed, limit) in [
        ("", 100),
        ("", 5),
        ("1", 100),
        ("1", 3),
        ("2", 100),
        ("12", 10),
        ("25", 10),
        ("26", 10),
        ("0", 10),
        ("x", 10),
    ] {
        let expected: Vec<TicketId> = open
            .iter()
            .filter(|n| n.to_string().starts_with(typed))
            .take(limit)
            .map(|n| TicketId(*n))
            .collect();
        assert_eq!(
            ids(&store.open_tickets_numbered(typed, limit).await.unwrap()),
            expected,
            "typed {typed:?}, at most {limit}"
        );
    }
    assert_eq!(store.open_ticket_count().await.unwrap(), open.len());
}

/// Tickets 1 (alice), 2 (bob) and 3 (carol, on X), received at `now()`.
async fn three_tickets(store: &SharedStore) {
    let mut on_x = mention("c", "carol");
    on_x.platform = Platform::X;
    store
        .ingest(
            "src",
            &[mention("a", "alice"), mention("b", "bob"), on_x],
            None,
            now(),
        )
        .await
        .unwrap();
}

/// A small desk with a bit of everything: three tickets (one on X), one claimed,
/// answered and published, one ignored.
pub async fn a_varied_desk(store: &SharedStore) {
    three_tickets(store).await;
    let desk = desk_of(&["ANA".to_string()]);
    for (id, action) in [(1, AgentAction::Claim), (3, AgentAction::Ignore)] {
        store
            .act(TicketId(id), &|t| {
                apply(t, action.clone(), &agent("ANA"), &desk, minutes(1))
            })
            .await
            .unwrap()
            .expect("Ana may");
    }
    let publish = ana_replies(store).await;
    let published = SystemEvent::ReplyPublished {
        seq: 1,
        remote_id: "99".into(),
        url: "https://m.example/@brand/99".into(),
    };
    store
        .complete(&publish, Some(published), minutes(5))
        .await
        .unwrap();
    store.flush().await.unwrap();
}
