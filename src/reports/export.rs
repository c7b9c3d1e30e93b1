//! Ticket and audit exports behind `mentionbridge export`: JSON lines for a warehouse, CSV
//! for a spreadsheet. One column list serves both, so the CSV header and the JSON keys
//! never drift apart.

use super::keys::{agent_key, platform_key, stage_key};
use super::numbers::{first_response, resolved_at};
use crate::domain::{AuditEntry, LanguageSource, ReplyState, Ticket};
use crate::ports::{Store, StoreError};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use std::fmt::Write as _;
use std::io::{self, Write};

/// Export columns of a ticket, in order; [`ticket_cells`] gives the values in the same
/// order, so the CSV header and the JSON keys are one list.
const TICKET_COLUMNS: [&str; 35] = [
    "id",
    "platform",
    "network",
    "account",
    "author",
    "author_name",
    "url",
    "text",
    "language",
    "created_at",
    "opened_at",
    "updated_at",
    "stage",
    "state",
    "holder_id",
    "holder_name",
    "replies_published",
    "replies_failed",
    "followups",
    "first_response_seconds",
    "first_responder_id",
    "first_responder_name",
    "resolved_at",
    "closed_by_id",
    "language_used",
    "language_source",
    "priority",
    "priority_score",
    "priority_reasons",
    "tags",
    "rules",
    "incident",
    "survey_scale",
    "survey_score",
    "survey_answered_at",
];

const AUDIT_COLUMNS: [&str; 6] = ["ticket", "at", "actor_id", "actor_name", "what", "detail"];

fn time(t: DateTime<Utc>) -> Value {
    Value::from(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn ticket_cells(t: &Ticket) -> [Value; TICKET_COLUMNS.len()] {
    let m = &t.mention;
    let holder = t.holder.as_ref().map(|c| &c.agent);
    let first = first_response(t);
    let count = |f: fn(&ReplyState) -> bool| t.replies.iter().filter(|r| f(&r.state)).count();
    [
        Value::from(t.id.0),
        Value::from(platform_key(m.platform)),
        Value::from(m.network_label()),
        Value::from(m.account.as_str()),
        Value::from(m.author.handle.as_str()),
        Value::from(m.author.name.as_str()),
        Value::from(m.url.as_str()),
        Value::from(m.text.as_str()),
        Value::from(m.language.clone()),
        time(m.created_at),
        time(t.opened_at),
        time(t.updated_at),
        Value::from(stage_key(t.stage)),
        Value::from(t.state_label()),
        Value::from(holder.map(agent_key)),
        Value::from(holder.map(|a| a.name.clone())),
        Value::from(count(|s| matches!(s, ReplyState::Published { .. }))),
        Value::from(count(|s| matches!(s, ReplyState::Failed { .. }))),
        Value::from(t.followups.len()),
        Value::from(first.map(|(d, _)| d.num_seconds())),
        Value::from(first.map(|(_, a)| agent_key(a))),
        Value::from(first.map(|(_, a)| a.name.clone())),
        resolved_at(t).map_or(Value::Null, time),
        Value::from(t.closed_by.as_ref().map(agent_key)),
        Value::from(m.language_in_use().map(|(l, _)| l.to_string())),
        Value::from(m.language_in_use().map(|(_, source)| match source {
            LanguageSource::Detected => "detected",
            LanguageSource::Platform => "platform",
        })),
        Value::from(t.priority.level.label()),
        Value::from(t.priority.score),
        Value::from(
            t.priority
                .reasons
                .iter()
                .map(|r| r.why.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Value::from(t.tags.join(" ")),
        Value::from(
            t.rule_hits
                .iter()
                .map(|h| format!("{}: {}", h.rule, h.did))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Value::from(t.incident.map(|i| i.0)),
        // The scale when a survey was asked; score and time once it was answered.
        Value::from(t.survey.as_ref().map(|s| s.scale.label())),
        Value::from(
            t.survey
                .as_ref()
                .and_then(|s| s.answer.as_ref())
                .map(|a| a.score),
        ),
        t.survey
            .as_ref()
            .and_then(|s| s.answer.as_ref())
            .map_or(Value::Null, |a| time(a.at)),
    ]
}

fn audit_cells(e: &AuditEntry) -> [Value; AUDIT_COLUMNS.len()] {
    [
        Value::from(e.ticket.0),
        time(e.at),
        Value::from(e.actor.as_ref().map(agent_key)),
        Value::from(e.actor.as_ref().map(|a| a.name.clone())),
        Value::from(e.what.as_str()),
        Value::from(e.detail.clone()),
    ]
}

/// One JSON object on one line, `kind` first, then the columns in order.
fn write_json_line(
    out: &mut impl Write,
    kind: &str,
    columns: &[&str],
    cells: &[Value],
) -> io::Result<()> {
    let mut line = format!("{{\"kind\":{}", Value::from(kind));
    for (column, cell) in columns.iter().zip(cells) {
        let _ = write!(line, ",{}:{cell}", Value::from(*column));
    }
    line.push_str("}\n");
    out.write_all(line.as_bytes())
}

/// Tickets then audit entries, one JSON object per line (`"kind":"ticket"` or
/// `"kind":"audit"`), times in RFC 3339 UTC, absent values as `null`.
pub fn export_jsonl(
    tickets: &[Ticket],
    audit: &[AuditEntry],
    out: &mut impl Write,
) -> io::Result<()> {
    for t in tickets {
        write_json_line(out, "ticket", &TICKET_COLUMNS, &ticket_cells(t))?;
    }
    for e in audit {
        write_json_line(out, "audit", &AUDIT_COLUMNS, &audit_cells(e))?;
    }
    out.flush()
}

/// A CSV field per RFC 4180: quoted, with quotes doubled, when it holds a comma, a
/// quote, CR or LF. Text a spreadsheet would run as a formula (starting with `=`, `+`,
/// `-`, `@`, tab or CR: customers' posts often start with `@brand`) gets a leading `'`,
/// which spreadsheets show as plain text (OWASP's CSV-injection advice).
fn csv_field(cell: &Value) -> String {
    let text = match cell {
        Value::Null => String::new(),
        Value::String(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{s}"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn write_csv_row(out: &mut impl Write, cells: &[Value]) -> io::Result<()> {
    let row: Vec<String> = cells.iter().map(csv_field).collect();
    out.write_all(row.join(",").as_bytes())?;
    out.write_all(b"\r\n")
}

/// The tickets as RFC 4180 CSV (UTF-8, CRLF line ends, a header row), for a spreadsheet;
/// text that a spreadsheet would run as a formula is neutralised (see `csv_field`).
pub fn export_csv_tickets(tickets: &[Ticket], out: &mut impl Write) -> io::Result<()> {
    let header: Vec<Value> = TICKET_COLUMNS.iter().map(|c| Value::from(*c)).collect();
    write_csv_row(out, &header)?;
    for t in tickets {
        write_csv_row(out, &ticket_cells(t))?;
    }
    out.flush()
}

/// Why an export from the store stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot write the export: {0}")]
    Write(#[from] io::Error),
}

/// Tickets and audit lines read per page by the exports from a store.
pub const EXPORT_PAGE: usize = 1000;

/// [`export_jsonl`] of everything in `store`, with its incidents between the tickets and
/// the audit (`"kind":"incident"`, one line each: size, first answer, bulk answer), read
/// `page` records at a time: memory stays bounded whatever the store holds.
pub async fn export_jsonl_from(
    store: &dyn Store,
    page: usize,
    out: &mut (impl Write + Send),
) -> Result<(), ExportError> {
    let page = page.max(1);
    each_ticket(store, page, |t| {
        write_json_line(out, "ticket", &TICKET_COLUMNS, &ticket_cells(t))
    })
    .await?;
    let mut after = None;
    loop {
        let incidents = store.incidents_after(after, page).await?;
        for i in &incidents {
            write_json_line(
                out,
                "incident",
                &super::INCIDENT_COLUMNS,
                &super::incident_cells(i),
            )?;
        }
        match incidents.last() {
            Some(last) if incidents.len() == page => after = Some(last.id),
            _ => break,
        }
    }
    let mut after = None;
    loop {
        let lines = store.audit_after(after, page).await?;
        for (_, e) in &lines {
            write_json_line(out, "audit", &AUDIT_COLUMNS, &audit_cells(e))?;
        }
        match lines.last() {
            Some((pos, _)) if lines.len() == page => after = Some(*pos),
            _ => break,
        }
    }
    Ok(out.flush()?)
}

/// The columns of a note about a person in [`export_person_jsonl`].
const PERSON_NOTE_COLUMNS: [&str; 4] = ["at", "by", "by_id", "text"];

/// One person's data for an access request (`mentionbridge export --author`): for each
/// of `tickets`, its export line, then the whole ticket as stored (`"kind":"record"`:
/// every follow-up, reply and note), then its audit trail; last, what agents wrote
/// about the person under their author key `author` (`"kind":"person_note"`).
pub async fn export_person_jsonl(
    store: &dyn Store,
    author: &str,
    tickets: &[Ticket],
    out: &mut (impl Write + Send),
) -> Result<(), ExportError> {
    for t in tickets {
        write_json_line(out, "ticket", &TICKET_COLUMNS, &ticket_cells(t))?;
        let record = serde_json::to_value(t).map_err(io::Error::other)?;
        write_json_line(
            out,
            "record",
            &["id", "ticket"],
            &[Value::from(t.id.0), record],
        )?;
        for e in store.audit_of(t.id).await? {
            write_json_line(out, "audit", &AUDIT_COLUMNS, &audit_cells(&e))?;
        }
    }
    for n in store.person_notes(author).await? {
        write_json_line(
            out,
            "person_note",
            &PERSON_NOTE_COLUMNS,
            &[
                Value::from(n.at.to_rfc3339()),
                Value::from(n.by.name),
                Value::from(n.by.user_id),
                Value::from(n.text),
            ],
        )?;
    }
    Ok(out.flush()?)
}

/// [`export_csv_tickets`] of every ticket in `store`, read `page` at a time.
pub async fn export_csv_from(
    store: &dyn Store,
    page: usize,
    out: &mut (impl Write + Send),
) -> Result<(), ExportError> {
    let header: Vec<Value> = TICKET_COLUMNS.iter().map(|c| Value::from(*c)).collect();
    write_csv_row(out, &header)?;
    each_ticket(store, page, |t| write_csv_row(out, &ticket_cells(t))).await?;
    Ok(out.flush()?)
}

/// `write` every ticket in `store`, by number, read `page` at a time.
async fn each_ticket(
    store: &dyn Store,
    page: usize,
    mut write: impl FnMut(&Ticket) -> io::Result<()> + Send,
) -> Result<(), ExportError> {
    let page = page.max(1);
    let mut after = None;
    loop {
        let tickets = store.tickets_after(after, page).await?;
        for t in &tickets {
            write(t)?;
        }
        match tickets.last() {
            Some(last) if tickets.len() == page => after = Some(last.id),
            _ => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Platform, SurfaceKind, TicketId};
    use crate::reports::testkit::*;

    /// Split RFC 4180 text into rows of fields.
    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
        let mut chars = text.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\r') => assert_eq!(chars.next(), Some('\n'), "CRLF"),
                (false, '\n') => panic!("bare LF outside quotes"),
                (false, c) => field.push(c),
            }
            if !quoted && c == '\r' {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
        }
        assert!(
            field.is_empty() && row.is_empty(),
            "last row ends with CRLF"
        );
        rows
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_keeps_every_script() {
        let mut t = week().remove(1);
        t.mention.text = "Hi, my \"order\"\nவணக்கம் 🙏🏽".into();
        t.mention.author.name = "Ana, María".into();
        let mut out = Vec::new();
        export_csv_tickets(&[t.clone(), week().remove(6)], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(",\"Hi, my \"\"order\"\"\nவணக்கம் 🙏🏽\","),
            "{text}"
        );
        let rows = parse_csv(&text);
        assert_eq!(rows.len(), 3, "header and two tickets");
        assert_eq!(rows[0], TICKET_COLUMNS);
        assert!(rows.iter().all(|r| r.len() == TICKET_COLUMNS.len()));
        let col = |name: &str| TICKET_COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(rows[1][col("text")], t.mention.text);
        assert_eq!(rows[1][col("author_name")], "Ana, María");
        assert_eq!(rows[1][col("first_response_seconds")], "1800");
        assert_eq!(rows[1][col("resolved_at")], "2026-11-20T13:00:00Z");
        assert_eq!(rows[1][col("first_responder_name")], "Ana");
        assert_eq!(
            rows[2][col("first_response_seconds")],
            "",
            "ticket 7 unanswered"
        );
        assert_eq!(rows[2][col("holder_id")], "");
        assert_eq!(rows[1][col("language_used")], "en");
        assert_eq!(rows[1][col("language_source")], "platform");
        assert_eq!(rows[1][col("priority")], "normal");
    }

    #[test]
    fn the_export_says_how_a_ticket_was_triaged() {
        use crate::domain::{DetectedLanguage, Level, Reason, RuleHit};
        let mut t = week().remove(0);
        t.mention.detected_language = Some(DetectedLanguage {
            language: Some("da".into()),
            confidence: 92,
            sure: true,
        });
        t.priority.level = Level::Urgent;
        t.priority.score = 70;
        t.priority.reasons = vec![
            Reason {
                why: "VIP".into(),
                points: 40,
            },
            Reason {
                why: "urgent word: outage".into(),
                points: 30,
            },
        ];
        t.tags = vec!["billing".into(), "press".into()];
        t.rule_hits = vec![RuleHit {
            rule: "billing-words".into(),
            matched: "word \"invoice\"".into(),
            did: "tagged billing".into(),
            ignored: false,
        }];
        let mut out = Vec::new();
        export_csv_tickets(&[t], &mut out).unwrap();
        let rows = parse_csv(&String::from_utf8(out).unwrap());
        let col = |name: &str| TICKET_COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(rows[1][col("language")], "en", "the platform's own tag");
        assert_eq!(rows[1][col("language_used")], "da");
        assert_eq!(rows[1][col("language_source")], "detected");
        assert_eq!(rows[1][col("priority")], "urgent");
        assert_eq!(rows[1][col("priority_score")], "70");
        assert_eq!(rows[1][col("priority_reasons")], "VIP; urgent word: outage");
        assert_eq!(rows[1][col("tags")], "billing press");
        assert_eq!(rows[1][col("rules")], "billing-words: tagged billing");
    }

    #[tokio::test]
    async fn the_store_hands_over_every_ticket_and_the_whole_audit_log() {
        use crate::domain::{apply, AgentAction, Desk};
        use crate::ports::Store;
        let store = crate::store::SledStore::temporary().unwrap();
        let mentions = [
            ticket(1, Platform::X, at(24, 8, 0)).mention,
            ticket(2, Platform::X, at(24, 8, 1)).mention,
        ];
        store
            .ingest("x", &mentions, None, at(24, 8, 2))
            .await
            .unwrap();
        let mut desk = Desk::new();
        desk.roster_mut(SurfaceKind::Slack).user_ids = ["U1".to_string()].into();
        store
            .act(TicketId(1), &|t| {
                apply(t, AgentAction::Ignore, &ana(), &desk, at(24, 9, 0))
            })
            .await
            .unwrap()
            .unwrap();
        let all = store.all_tickets().await.unwrap();
        let ids: Vec<u64> = all.iter().map(|t| t.id.0).collect();
        assert_eq!(ids, [1, 2], "the ignored one too, in number order");
        let log: Vec<(u64, String)> = store
            .audit_all()
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.ticket.0, e.what))
            .collect();
        let what = |id, w: &str| (id, w.to_string());
        assert_eq!(
            log,
            [
                what(1, "mention received"),
                what(1, "ignored"),
                what(2, "mention received")
            ]
        );
        let mut out = Vec::new();
        export_jsonl(&all, &store.audit_all().await.unwrap(), &mut out).unwrap();
        assert_eq!(String::from_utf8(out.clone()).unwrap().lines().count(), 5);
        let mut csv = Vec::new();
        export_csv_tickets(&all, &mut csv).unwrap();
        // Read a page at a time from the store, the exports are the same, whatever the
        // page (one record, two, more than there are).
        for page in [1, 2, 1000] {
            let mut paged = Vec::new();
            export_jsonl_from(&store, page, &mut paged).await.unwrap();
            assert_eq!(paged, out, "JSON lines, pages of {page}");
            let mut paged = Vec::new();
            export_csv_from(&store, page, &mut paged).await.unwrap();
            assert_eq!(paged, csv, "CSV, pages of {page}");
        }
    }

    #[test]
    fn jsonl_is_tickets_then_audit_one_object_per_line() {
        let week = week();
        let audit = vec![
            AuditEntry {
                ticket: TicketId(2),
                at: at(20, 13, 0),
                actor: Some(ana()),
                what: "resolved".into(),
                detail: None,
            },
            AuditEntry {
                ticket: TicketId(7),
                at: at(24, 7, 0),
                actor: None,
                what: "mention received".into(),
                detail: Some("https://social.example/m7 \"quoted\"\nவணக்கம்".into()),
            },
        ];
        let mut out = Vec::new();
        export_jsonl(&week, &audit, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 14);
        let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds[..12], ["ticket"; 12]);
        assert_eq!(kinds[12..], ["audit"; 2]);
        let waits: Vec<Option<i64>> = lines[..12]
            .iter()
            .map(|l| l["first_response_seconds"].as_i64())
            .collect();
        assert_eq!(
            waits,
            [
                Some(600),
                Some(1800),
                Some(5400),
                Some(3600),
                Some(2700),
                None,
                None,
                None,
                None,
                Some(3900),
                Some(1800),
                Some(60)
            ]
        );
        let t2 = &lines[1];
        assert_eq!(t2["id"], 2);
        assert_eq!(t2["stage"], "resolved");
        assert_eq!(t2["resolved_at"], "2026-11-20T13:00:00Z");
        assert_eq!(t2["holder_id"], "slack:U1");
        assert_eq!(t2["closed_by_id"], "slack:U1");
        assert_eq!(lines[5]["replies_failed"], 1);
        assert_eq!(lines[12]["actor_name"], "Ana");
        assert_eq!(lines[13]["actor_id"], Value::Null);
        assert_eq!(
            lines[13]["detail"],
            audit[1].detail.clone().unwrap().as_str()
        );
        assert!(
            text.starts_with("{\"kind\":\"ticket\",\"id\":1,"),
            "kind first"
        );
    }

    #[test]
    fn csv_text_that_a_spreadsheet_would_run_is_neutralised() {
        assert_eq!(
            csv_field(&Value::from("=HYPERLINK(\"x\")")),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(csv_field(&Value::from("@brand hi")), "'@brand hi");
        assert_eq!(csv_field(&Value::from("-1")), "'-1");
        assert_eq!(csv_field(&Value::from(-1)), "-1", "numbers are numbers");
        assert_eq!(csv_field(&Value::from("plain")), "plain");
    }
}
