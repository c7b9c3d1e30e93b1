//! `/mentions`, one grammar for every surface. Slack sends the words as the agent typed
//! them; Discord sends a subcommand with typed options. Both become the same [`Command`],
//! checked by the same rules and refused with the same sentences; each surface then runs
//! it against the desk and renders the answer in its own markup.

use crate::domain::{AgentAction, IncidentId, TicketId};
use thiserror::Error;

/// What an agent asked for with `/mentions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/mentions` or `/mentions list`: the open tickets.
    List,
    /// `/mentions stats [24h|7d|30d]`: the team's numbers (the desk checks the window).
    Stats { window: String },
    /// `/mentions stats charts [24h|7d|30d] [time zone]` (Discord: `stats charts: True`):
    /// the numbers drawn, uploaded where the agent asked.
    Charts { window: String, tz: String },
    /// `/mentions oncall`: who is on call now.
    OnCall,
    /// `/mentions oncall override <member|me> <length>` (the desk checks both).
    OverrideOnCall { member: String, length: String },
    /// `/mentions canned`: the canned reply library.
    Canned,
    /// `/mentions help` (Slack): the usage line.
    Help,
    /// `/mentions incident <number> [page]`: an incident's members, a page at a time.
    Incident { incident: IncidentId, page: usize },
    /// `/mentions split <ticket>`: a member leaves its incident for a card of its own.
    Split { ticket: TicketId },
    /// `/mentions why <ticket>`: its priority and what the rules did, told privately.
    Why { ticket: TicketId },
    /// `/mentions note [network] @handle <text>`: a note about a person for the team.
    Note {
        network: Option<String>,
        handle: String,
        text: String,
    },
    /// `/mentions who @handle [network]`: a person's tickets and notes, told privately.
    Who {
        network: Option<String>,
        handle: String,
    },
    /// `/mentions claim|unclaim|resolve|ignore|reopen <ticket>`,
    /// `/mentions reply|dm <ticket> <text>`.
    Act {
        ticket: TicketId,
        action: AgentAction,
    },
}

/// Why a `/mentions` line means nothing to us, as the agent reads it. A surface may add
/// its own hint (Slack its usage line, Discord "pick one from the list").
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// Discord sent no subcommand at all.
    #[error("Use `/mentions list` or `/mentions claim <ticket>`.")]
    NoSubcommand,
    #[error("Unknown subcommand `{0}`.")]
    Unknown(String),
    #[error("Which ticket?")]
    NoTicket,
    #[error("Which incident? (`/mentions incident 7`)")]
    NoIncident,
    /// Typed `oncall` words that are neither `oncall` nor `oncall override <who> <length>`.
    #[error(
        "Use `/mentions oncall` or `/mentions oncall override @kim 4h` (or `me` instead of @kim)."
    )]
    OnCallUsage,
    /// Discord's `override` option without its `for` option.
    #[error("Say for how long, e.g. `for: 4h`.")]
    NoLength,
    #[error("Whose? (`/mentions who @kim@social.example`, `/mentions note mastodon @kim@social.example prefers email`)")]
    NoHandle,
    #[error("What should the note say? (`/mentions note @kim@social.example prefers email`)")]
    NoNote,
}

/// `[network] @handle` at the start of `words`: the network (a word before the handle
/// that is not one) and the handle, and how many words they took.
fn person_words(words: &[&str]) -> Result<(Option<String>, String, usize), CommandError> {
    match words {
        [handle, ..] if handle.starts_with('@') => Ok((None, handle.to_string(), 1)),
        [network, handle, ..] if handle.starts_with('@') => {
            Ok((Some(network.to_string()), handle.to_string(), 2))
        }
        _ => Err(CommandError::NoHandle),
    }
}

/// What follows the first `n` words of `text`, as typed (its line breaks kept).
fn after_words(text: &str, n: usize) -> &str {
    let mut rest = text.trim_start();
    for _ in 0..n {
        rest = rest
            .find(char::is_whitespace)
            .map_or("", |end| rest[end..].trim_start());
    }
    rest.trim()
}

/// The verbs that act on one ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TicketVerb {
    Claim,
    Unclaim,
    Resolve,
    Ignore,
    Reopen,
    Reply,
    Dm,
    Approve,
    Reject,
}

impl TicketVerb {
    fn parse(verb: &str) -> Option<TicketVerb> {
        Some(match verb {
            "claim" => TicketVerb::Claim,
            "unclaim" => TicketVerb::Unclaim,
            "resolve" => TicketVerb::Resolve,
            "ignore" => TicketVerb::Ignore,
            "reopen" => TicketVerb::Reopen,
            "reply" => TicketVerb::Reply,
            "dm" => TicketVerb::Dm,
            "approve" => TicketVerb::Approve,
            "reject" => TicketVerb::Reject,
            _ => return None,
        })
    }

    /// The action, with `text` for the two that answer the customer.
    fn action(self, text: impl FnOnce() -> String) -> AgentAction {
        match self {
            TicketVerb::Claim => AgentAction::Claim,
            TicketVerb::Unclaim => AgentAction::Unclaim,
            TicketVerb::Resolve => AgentAction::Resolve,
            TicketVerb::Ignore => AgentAction::Ignore,
            TicketVerb::Reopen => AgentAction::Reopen,
            TicketVerb::Reply => AgentAction::Reply { text: text() },
            TicketVerb::Dm => AgentAction::ReplyPrivately {
                text: text(),
                public_ack: None,
            },
            TicketVerb::Approve => AgentAction::Approve,
            TicketVerb::Reject => AgentAction::RejectDraft,
        }
    }
}

/// A typed option of a structured command (Discord's), in no surface's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    Text(String),
    Integer(i64),
    Boolean(bool),
    /// Any other kind of value: as if the option were missing.
    Other,
}

impl Command {
    /// A command typed as words (Slack). The verb is case-insensitive; no verb lists.
    /// `typed` turns the surface's transport escaping of free text back into what the
    /// agent typed; it applies to a reply's text only, never to a member the desk reads in
    /// the surface's own form (`<@U0KIM|kim>`).
    pub fn from_words(
        text: &str,
        typed: impl FnOnce(&str) -> String,
    ) -> Result<Command, CommandError> {
        let mut words = text.split_whitespace();
        let verb = words.next().unwrap_or("list").to_ascii_lowercase();
        match verb.as_str() {
            "list" => return Ok(Command::List),
            "stats" => {
                let first = words.next().unwrap_or("7d");
                if !first.eq_ignore_ascii_case("charts") {
                    return Ok(Command::Stats {
                        window: first.to_string(),
                    });
                }
                // `charts`, then a window and a time zone in either order.
                let (mut window, mut tz) = (String::new(), String::new());
                for w in words.by_ref().take(2) {
                    if looks_like_window(w) {
                        window = w.to_string();
                    } else {
                        tz = w.to_string();
                    }
                }
                return Ok(Command::Charts { window, tz });
            }
            "oncall" => {
                let rest: Vec<&str> = words.collect();
                return match rest.as_slice() {
                    [] => Ok(Command::OnCall),
                    // `override @kim 4h` or `override @kim for 4h`: the length is the rest.
                    ["override", member, length @ ..] if !length.is_empty() => {
                        Ok(Command::OverrideOnCall {
                            member: member.to_string(),
                            length: length.join(" "),
                        })
                    }
                    _ => Err(CommandError::OnCallUsage),
                };
            }
            "canned" => return Ok(Command::Canned),
            "help" => return Ok(Command::Help),
            "incident" => {
                let incident = words
                    .next()
                    .and_then(|w| w.parse::<IncidentId>().ok())
                    .ok_or(CommandError::NoIncident)?;
                let page = words
                    .next()
                    .and_then(|w| w.parse::<usize>().ok())
                    .unwrap_or(1);
                return Ok(Command::Incident { incident, page });
            }
            "split" => {
                let ticket = words
                    .next()
                    .and_then(|w| w.parse::<TicketId>().ok())
                    .ok_or(CommandError::NoTicket)?;
                return Ok(Command::Split { ticket });
            }
            "note" => {
                let rest: Vec<&str> = words.collect();
                let (network, handle, took) = person_words(&rest)?;
                let text = typed(after_words(text, 1 + took));
                if text.trim().is_empty() {
                    return Err(CommandError::NoNote);
                }
                return Ok(Command::Note {
                    network,
                    handle,
                    text,
                });
            }
            "who" => {
                let rest: Vec<&str> = words.collect();
                let (network, handle, took) = person_words(&rest)?;
                // The network may also follow the handle.
                let network = network.or_else(|| rest.get(took).map(|w| w.to_string()));
                return Ok(Command::Who { network, handle });
            }
            _ => {}
        }
        let why = verb == "why";
        let verb = match TicketVerb::parse(&verb) {
            Some(v) => Some(v),
            None if why => None,
            None => return Err(CommandError::Unknown(verb)),
        };
        let ticket = words
            .next()
            .and_then(|w| w.parse::<TicketId>().ok())
            .ok_or(CommandError::NoTicket)?;
        let Some(verb) = verb else {
            return Ok(Command::Why { ticket });
        };
        // Everything after the ticket number, as typed (line breaks kept).
        let body = || {
            typed(
                text.trim_start()
                    .splitn(3, char::is_whitespace)
                    .nth(2)
                    .unwrap_or("")
                    .trim(),
            )
        };
        Ok(Command::Act {
            ticket,
            action: verb.action(body),
        })
    }

    /// A command sent as a subcommand with named options (Discord). A ticket number that
    /// is no ticket's (negative, say) is the desk's to refuse.
    pub fn from_options(
        subcommand: Option<&str>,
        options: &[(&str, OptionValue)],
    ) -> Result<Command, CommandError> {
        let verb = subcommand.ok_or(CommandError::NoSubcommand)?;
        let value = |name: &str| options.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
        let text = |name: &str| match value(name) {
            Some(OptionValue::Text(s)) => Some(s.clone()),
            _ => None,
        };
        match verb {
            "list" => return Ok(Command::List),
            "oncall" => {
                return match (text("override"), text("for")) {
                    (None, _) => Ok(Command::OnCall),
                    (Some(member), Some(length)) => Ok(Command::OverrideOnCall { member, length }),
                    (Some(_), None) => Err(CommandError::NoLength),
                }
            }
            "canned" => return Ok(Command::Canned),
            "stats" => {
                let window = text("window").unwrap_or_else(|| "7d".into());
                return Ok(match value("charts") {
                    Some(OptionValue::Boolean(true)) => Command::Charts {
                        window,
                        tz: text("tz").unwrap_or_default(),
                    },
                    _ => Command::Stats { window },
                });
            }
            "incident" => {
                let Some(OptionValue::Integer(n)) = value("incident") else {
                    return Err(CommandError::NoIncident);
                };
                let page = match value("page") {
                    Some(OptionValue::Integer(p)) => usize::try_from(*p).unwrap_or(1),
                    _ => 1,
                };
                return Ok(Command::Incident {
                    incident: IncidentId(u64::try_from(*n).unwrap_or(0)),
                    page,
                });
            }
            "split" => {
                let Some(OptionValue::Integer(n)) = value("ticket") else {
                    return Err(CommandError::NoTicket);
                };
                return Ok(Command::Split {
                    ticket: TicketId(u64::try_from(*n).unwrap_or(0)),
                });
            }
            "note" | "who" => {
                let handle = text("handle")
                    .filter(|h| !h.trim().is_empty())
                    .ok_or(CommandError::NoHandle)?;
                let network = text("network").filter(|n| !n.trim().is_empty());
                if verb == "who" {
                    return Ok(Command::Who { network, handle });
                }
                let text = text("text")
                    .filter(|t| !t.trim().is_empty())
                    .ok_or(CommandError::NoNote)?;
                return Ok(Command::Note {
                    network,
                    handle,
                    text,
                });
            }
            _ => {}
        }
        let Some(OptionValue::Integer(n)) = value("ticket") else {
            return Err(CommandError::NoTicket);
        };
        let ticket = TicketId(u64::try_from(*n).unwrap_or(0));
        if verb == "why" {
            return Ok(Command::Why { ticket });
        }
        let verb = TicketVerb::parse(verb).ok_or_else(|| CommandError::Unknown(verb.into()))?;
        Ok(Command::Act {
            ticket,
            action: verb.action(|| text("text").unwrap_or_default()),
        })
    }
}

/// What an agent is told once their note about `person` is kept.
pub fn noted_sentence(person: &str) -> String {
    format!("Noted about {person}: shown to the team on their next cards, never sent to them.")
}

/// What an agent is told once a ticket command went through.
pub fn done_sentence(ticket: TicketId, action: &AgentAction) -> String {
    let done = match action {
        AgentAction::Claim => "claimed",
        AgentAction::Unclaim => "released",
        AgentAction::Resolve => "resolved",
        AgentAction::Ignore => "ignored",
        AgentAction::Reopen => "reopened",
        AgentAction::Reply { .. } => "reply queued for",
        AgentAction::ReplyPrivately { .. } => "private reply queued for",
        AgentAction::Approve => "approved the draft of",
        AgentAction::RejectDraft => "rejected the draft of",
        AgentAction::EditDraft { .. } => "edited the draft of",
    };
    format!("Done: {done} ticket #{ticket}.")
}

/// `24h`, `7d`, `30d`: digits and a unit (the desk checks the range); anything else typed
/// after `stats charts` is taken for a time zone.
fn looks_like_window(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    w.strip_suffix(['h', 'd'])
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Result<Command, CommandError> {
        Command::from_words(text, |s| s.to_string())
    }

    fn act(ticket: u64, action: AgentAction) -> Result<Command, CommandError> {
        Ok(Command::Act {
            ticket: TicketId(ticket),
            action,
        })
    }

    fn reply(text: &str) -> AgentAction {
        AgentAction::Reply { text: text.into() }
    }

    fn dm(text: &str) -> AgentAction {
        AgentAction::ReplyPrivately {
            text: text.into(),
            public_ack: None,
        }
    }

    #[test]
    fn typed_words_name_every_command() {
        assert_eq!(words(""), Ok(Command::List));
        assert_eq!(words("   "), Ok(Command::List));
        assert_eq!(words("list"), Ok(Command::List));
        assert_eq!(words("LIST extra words"), Ok(Command::List));
        assert_eq!(
            words("stats"),
            Ok(Command::Stats {
                window: "7d".into()
            })
        );
        assert_eq!(
            words("stats 24h"),
            Ok(Command::Stats {
                window: "24h".into()
            })
        );
        assert_eq!(
            words("stats forever"),
            Ok(Command::Stats {
                window: "forever".into()
            })
        );
        assert_eq!(
            words("stats charts"),
            Ok(Command::Charts {
                window: String::new(),
                tz: String::new()
            })
        );
        assert_eq!(
            words("STATS Charts Europe/Berlin 30d"),
            Ok(Command::Charts {
                window: "30d".into(),
                tz: "Europe/Berlin".into()
            })
        );
        assert_eq!(
            words("stats charts 24h America/New_York"),
            Ok(Command::Charts {
                window: "24h".into(),
                tz: "America/New_York".into()
            })
        );
        assert_eq!(words("oncall"), Ok(Command::OnCall));
        assert_eq!(
            words("oncall override <@U0KIM|kim> 4h"),
            Ok(Command::OverrideOnCall {
                member: "<@U0KIM|kim>".into(),
                length: "4h".into()
            })
        );
        assert_eq!(
            words("oncall override me for 4h"),
            Ok(Command::OverrideOnCall {
                member: "me".into(),
                length: "for 4h".into()
            })
        );
        assert_eq!(words("canned"), Ok(Command::Canned));
        assert_eq!(words("help"), Ok(Command::Help));
        assert_eq!(
            words("incident 7"),
            Ok(Command::Incident {
                incident: IncidentId(7),
                page: 1
            })
        );
        assert_eq!(
            words("incident #7 3"),
            Ok(Command::Incident {
                incident: IncidentId(7),
                page: 3
            })
        );
        assert_eq!(words("incident"), Err(CommandError::NoIncident));
        assert_eq!(
            words("split 123"),
            Ok(Command::Split {
                ticket: TicketId(123)
            })
        );
        assert_eq!(words("split"), Err(CommandError::NoTicket));
        assert_eq!(words("claim 42"), act(42, AgentAction::Claim));
        assert_eq!(words("Claim #42"), act(42, AgentAction::Claim));
        assert_eq!(words("unclaim 42"), act(42, AgentAction::Unclaim));
        assert_eq!(
            words("resolve 42 ignored words"),
            act(42, AgentAction::Resolve)
        );
        assert_eq!(words("ignore 42"), act(42, AgentAction::Ignore));
        assert_eq!(words("reopen 42"), act(42, AgentAction::Reopen));
        assert_eq!(words("reply 42"), act(42, reply("")));
        assert_eq!(words("dm 7 see you"), act(7, dm("see you")));
        assert_eq!(
            words("why #12"),
            Ok(Command::Why {
                ticket: TicketId(12)
            })
        );
        assert_eq!(words("why"), Err(CommandError::NoTicket));
        assert_eq!(
            Command::from_options(Some("why"), &[("ticket", OptionValue::Integer(12))]),
            Ok(Command::Why {
                ticket: TicketId(12)
            })
        );
    }

    #[test]
    fn a_person_is_named_by_handle_with_or_without_a_network() {
        let note = |network: Option<&str>, handle: &str, text: &str| {
            Ok(Command::Note {
                network: network.map(String::from),
                handle: handle.into(),
                text: text.into(),
            })
        };
        assert_eq!(
            words("note @kim@social.example prefers email\nand German"),
            note(None, "@kim@social.example", "prefers email\nand German")
        );
        assert_eq!(
            words("note  mastodon   @kim  VIP"),
            note(Some("mastodon"), "@kim", "VIP")
        );
        assert_eq!(words("note @kim"), Err(CommandError::NoNote));
        assert_eq!(words("note kim likes tea"), Err(CommandError::NoHandle));
        assert_eq!(words("note"), Err(CommandError::NoHandle));
        let who = |network: Option<&str>, handle: &str| {
            Ok(Command::Who {
                network: network.map(String::from),
                handle: handle.into(),
            })
        };
        assert_eq!(words("who @kim"), who(None, "@kim"));
        assert_eq!(words("who @kim bluesky"), who(Some("bluesky"), "@kim"));
        assert_eq!(words("who bluesky @kim"), who(Some("bluesky"), "@kim"));
        assert_eq!(words("who"), Err(CommandError::NoHandle));
        let text = |s: &str| OptionValue::Text(s.into());
        assert_eq!(
            Command::from_options(
                Some("note"),
                &[("handle", text("@kim")), ("text", text("VIP"))]
            ),
            note(None, "@kim", "VIP")
        );
        assert_eq!(
            Command::from_options(
                Some("who"),
                &[("handle", text("@kim")), ("network", text("x"))]
            ),
            who(Some("x"), "@kim")
        );
        assert_eq!(
            Command::from_options(Some("note"), &[("handle", text("@kim"))]),
            Err(CommandError::NoNote)
        );
        assert_eq!(
            Command::from_options(Some("who"), &[]),
            Err(CommandError::NoHandle)
        );
    }

    #[test]
    fn a_typed_reply_keeps_its_lines_and_only_its_text_is_unescaped() {
        assert_eq!(
            words("  reply 42   Thanks!\nWe are on it.  "),
            act(42, reply("Thanks!\nWe are on it."))
        );
        let unescaped =
            Command::from_words("reply 42 hi <@U1|kim>", |s| s.replace("<@U1|kim>", "@kim"));
        assert_eq!(unescaped, act(42, reply("hi @kim")));
        let member = Command::from_words("oncall override <@U1|kim> 4h", |_| unreachable!());
        assert!(
            matches!(member, Ok(Command::OverrideOnCall { member, .. }) if member == "<@U1|kim>")
        );
    }

    #[test]
    fn typed_words_are_refused_in_the_agents_words() {
        assert_eq!(words("claim"), Err(CommandError::NoTicket));
        assert_eq!(words("reply soon hello"), Err(CommandError::NoTicket));
        assert_eq!(words("resolve -1"), Err(CommandError::NoTicket));
        assert_eq!(words("oncall override"), Err(CommandError::OnCallUsage));
        assert_eq!(words("oncall override me"), Err(CommandError::OnCallUsage));
        assert_eq!(words("oncall now"), Err(CommandError::OnCallUsage));
        assert_eq!(
            words("escalate 4"),
            Err(CommandError::Unknown("escalate".into()))
        );
        // An unknown verb is refused before the ticket is looked at.
        assert_eq!(
            words("Frobnicate"),
            Err(CommandError::Unknown("frobnicate".into()))
        );
        assert_eq!(
            CommandError::Unknown("x".into()).to_string(),
            "Unknown subcommand `x`."
        );
        assert_eq!(CommandError::NoTicket.to_string(), "Which ticket?");
        assert_eq!(
            CommandError::OnCallUsage.to_string(),
            "Use `/mentions oncall` or `/mentions oncall override @kim 4h` (or `me` instead of @kim)."
        );
        assert_eq!(
            CommandError::NoSubcommand.to_string(),
            "Use `/mentions list` or `/mentions claim <ticket>`."
        );
        assert_eq!(
            CommandError::NoLength.to_string(),
            "Say for how long, e.g. `for: 4h`."
        );
    }

    #[test]
    fn hostile_words_are_refused_or_carried_as_text_never_a_panic() {
        // The unknown verb is quoted back as typed: escaping it is the renderer's job.
        assert_eq!(
            words("<!channel> 1"),
            Err(CommandError::Unknown("<!channel>".into()))
        );
        assert_eq!(
            words("claim 99999999999999999999999"),
            Err(CommandError::NoTicket)
        );
        assert_eq!(
            words("claim 18446744073709551615"),
            act(u64::MAX, AgentAction::Claim)
        );
        assert_eq!(words("reply\u{3000}42\u{3000}ｈｉ"), act(42, reply("ｈｉ")));
        assert_eq!(
            words("reply 42 \u{0}\u{202e}"),
            act(42, reply("\u{0}\u{202e}"))
        );
        let long = format!("reply 1 {}", "é".repeat(10_000));
        assert!(matches!(words(&long), Ok(Command::Act { .. })));
        assert!(matches!(words("ÇLAIM 1"), Err(CommandError::Unknown(_))));
    }

    #[test]
    fn options_name_every_command() {
        use OptionValue::*;
        let opts = Command::from_options;
        assert_eq!(opts(Some("list"), &[]), Ok(Command::List));
        assert_eq!(
            opts(Some("stats"), &[]),
            Ok(Command::Stats {
                window: "7d".into()
            })
        );
        assert_eq!(
            opts(Some("stats"), &[("window", Text("30d".into()))]),
            Ok(Command::Stats {
                window: "30d".into()
            })
        );
        assert_eq!(
            opts(
                Some("stats"),
                &[("charts", Boolean(true)), ("tz", Text("Asia/Tokyo".into()))]
            ),
            Ok(Command::Charts {
                window: "7d".into(),
                tz: "Asia/Tokyo".into()
            })
        );
        assert_eq!(
            opts(Some("stats"), &[("charts", Boolean(false))]),
            Ok(Command::Stats {
                window: "7d".into()
            })
        );
        assert_eq!(opts(Some("oncall"), &[]), Ok(Command::OnCall));
        assert_eq!(
            opts(Some("oncall"), &[("for", Text("4h".into()))]),
            Ok(Command::OnCall)
        );
        assert_eq!(
            opts(
                Some("oncall"),
                &[("override", Text("me".into())), ("for", Text("4h".into()))]
            ),
            Ok(Command::OverrideOnCall {
                member: "me".into(),
                length: "4h".into()
            })
        );
        assert_eq!(opts(Some("canned"), &[]), Ok(Command::Canned));
        assert_eq!(
            opts(
                Some("incident"),
                &[("incident", Integer(7)), ("page", Integer(2))]
            ),
            Ok(Command::Incident {
                incident: IncidentId(7),
                page: 2
            })
        );
        assert_eq!(
            opts(Some("split"), &[("ticket", Integer(5))]),
            Ok(Command::Split {
                ticket: TicketId(5)
            })
        );
        for (verb, action) in [
            ("claim", AgentAction::Claim),
            ("unclaim", AgentAction::Unclaim),
            ("resolve", AgentAction::Resolve),
            ("ignore", AgentAction::Ignore),
            ("reopen", AgentAction::Reopen),
        ] {
            assert_eq!(opts(Some(verb), &[("ticket", Integer(5))]), act(5, action));
        }
        assert_eq!(
            opts(
                Some("reply"),
                &[("ticket", Integer(5)), ("text", Text("Hi @here".into()))]
            ),
            act(5, reply("Hi @here"))
        );
        assert_eq!(opts(Some("dm"), &[("ticket", Integer(5))]), act(5, dm("")));
    }

    #[test]
    fn options_are_refused_in_the_agents_words() {
        use OptionValue::*;
        let opts = Command::from_options;
        assert_eq!(opts(None, &[]), Err(CommandError::NoSubcommand));
        assert_eq!(opts(Some("claim"), &[]), Err(CommandError::NoTicket));
        assert_eq!(
            opts(Some("claim"), &[("ticket", Text("42".into()))]),
            Err(CommandError::NoTicket)
        );
        assert_eq!(
            opts(Some("claim"), &[("ticket", Other)]),
            Err(CommandError::NoTicket)
        );
        assert_eq!(
            opts(Some("oncall"), &[("override", Text("me".into()))]),
            Err(CommandError::NoLength)
        );
        assert_eq!(
            opts(
                Some("oncall"),
                &[("override", Text("me".into())), ("for", Integer(4))]
            ),
            Err(CommandError::NoLength)
        );
        // Discord registers no `help`: like any other name, it needs a ticket first.
        assert_eq!(opts(Some("help"), &[]), Err(CommandError::NoTicket));
        assert_eq!(
            opts(Some("<@1> escalate"), &[("ticket", Integer(1))]),
            Err(CommandError::Unknown("<@1> escalate".into()))
        );
        // A ticket number no ticket can have is the desk's to refuse: ticket 0.
        assert_eq!(
            opts(Some("claim"), &[("ticket", Integer(-3))]),
            act(0, AgentAction::Claim)
        );
        assert_eq!(
            opts(Some("claim"), &[("ticket", Integer(i64::MIN))]),
            act(0, AgentAction::Claim)
        );
    }

    #[test]
    fn the_done_sentence_names_what_happened() {
        for (action, sentence) in [
            (AgentAction::Claim, "Done: claimed ticket #9."),
            (AgentAction::Unclaim, "Done: released ticket #9."),
            (AgentAction::Resolve, "Done: resolved ticket #9."),
            (AgentAction::Ignore, "Done: ignored ticket #9."),
            (AgentAction::Reopen, "Done: reopened ticket #9."),
            (reply("x"), "Done: reply queued for ticket #9."),
            (dm("x"), "Done: private reply queued for ticket #9."),
        ] {
            assert_eq!(done_sentence(TicketId(9), &action), sentence);
        }
    }
}
