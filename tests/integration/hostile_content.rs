//! A customer (or a listening tool) controls every field of a mention: the post, the
//! author's name and handle, the links, the network's name, the time it claims. Pushed
//! through the webhook to a team on both surfaces, none of it may ping anyone, link
//! anywhere under a label of its choosing, move a deadline, or make a surface refuse the
//! card.

use crate::drivers::{json_text, Driver, Who};
use crate::harness::*;
use crate::webhook_flows::{deliver, now, start};
use serde_json::{json, Value};

/// Every way to call people or spoof a link that Slack mrkdwn and Discord markdown know.
const PINGS: &str = "<!channel> <!here> <!everyone> <@U0ANA> <@U0BEN|ben> <#C0SUPPORT> \
    <!subteam^S0AGENTS> <https://evil.example/login|https://bank.example> \
    @everyone @here @channel <@1200000000000000001> <@!1200000000000000002> \
    <@&1300000000000000001> <#1100000000000000002> [https://bank.example](https://evil.example) \
    <t:0:R> </mentions claim:1> **bold** `code` &lt;!channel&gt; &amp;";

fn hostile_mention(id: &str, text: &str, url: &str, created_at: &str) -> Value {
    json!({
        "source": "listener", "id": id, "platform": format!("insta<!here>gram @everyone {}", "n".repeat(300)),
        "url": url, "text": text, "created_at": created_at,
        "author": {
            "handle": format!("mallory`<@U0ANA>|<!channel>{}", "h".repeat(300)),
            "name": format!("<!channel> [Support](https://evil.example) @everyone <@&1300000000000000001> {}", "x".repeat(400)),
            "profile_url": "https://evil.example/u|<!here>",
        },
    })
}

/// The labels our own links carry; nothing else may be a link.
const OUR_LABELS: [&str; 6] = [
    "profile",
    "View original",
    "read the whole post",
    "published",
    "original",
    "view post",
];

/// Every `<…>` in text Slack parses is a date or one of our own links, never a mention,
/// a channel call or a link the customer labelled; and the words that call a channel
/// are defused.
fn assert_inert_for_slack(what: &str, text: &str) {
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let end = rest[start..]
            .find('>')
            .map(|e| start + e)
            .unwrap_or(rest.len() - 1);
        let token = &rest[start..=end];
        let ours = token.starts_with("<!date^")
            || (token.starts_with("<http")
                && token.split_once('|').is_some_and(|(url, label)| {
                    !url.contains("evil") && OUR_LABELS.contains(&label.trim_end_matches('>'))
                }));
        assert!(ours, "{what}: customer markup {token:?} in {text:?}");
        rest = &rest[end + 1..];
    }
    for call in ["@everyone", "@here", "@channel"] {
        assert!(!text.contains(call), "{what}: a live {call} in {text:?}");
    }
}

/// In Discord markdown, nothing unescaped from the customer: `<` only opens our own
/// timestamps and link targets, `[` only our own labels, and mass mentions are defused.
fn assert_inert_for_discord(what: &str, text: &str) {
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let escaped = i > 0 && chars[i - 1] == '\\';
        if escaped {
            continue;
        }
        let tail: String = chars[i..].iter().collect();
        if *c == '<' {
            let ts = tail.starts_with("<t:") && tail[3..].starts_with(|d: char| d.is_ascii_digit());
            let link_target = i >= 2 && chars[i - 2] == ']' && chars[i - 1] == '(';
            assert!(ts || link_target, "{what}: customer markup at {tail:?}");
            if link_target {
                assert!(!tail.starts_with("<https://evil"), "{what}: {tail:?}");
            }
        }
        if *c == '[' {
            let label = tail[1..].split(']').next().unwrap_or_default();
            assert!(
                OUR_LABELS.contains(&label) && tail.contains("](<"),
                "{what}: a masked link the customer made at {tail:?}"
            );
        }
    }
    for call in ["@everyone", "@here"] {
        assert!(!text.contains(call), "{what}: a live {call} in {text:?}");
    }
}

/// Discord pings only whom a message's `allowed_mentions` names: every message the bot
/// sends must say so, and never allow `@everyone` or roles from what a customer wrote.
fn assert_discord_requests_ping_nobody(w: &World) {
    let mut checked = 0;
    for (method, path, body) in w.discord.requests() {
        let sends_text = (method == "POST" || method == "PATCH")
            && path.contains("/messages")
            && (body.get("content").is_some() || body.get("embeds").is_some());
        if !sends_text {
            continue;
        }
        checked += 1;
        let allowed = &body["allowed_mentions"];
        assert!(
            allowed.is_object(),
            "{method} {path} without allowed_mentions: {body}"
        );
        let parse = allowed["parse"].as_array().cloned().unwrap_or_default();
        assert!(
            parse.is_empty(),
            "{method} {path} parses mentions: {allowed}"
        );
        assert!(
            allowed["roles"].as_array().is_none_or(|r| r.is_empty()),
            "{allowed}"
        );
        if let Some(content) = body["content"].as_str() {
            assert_inert_for_discord(&format!("{method} {path} content"), content);
        }
        for embed in body["embeds"].as_array().into_iter().flatten() {
            let what = format!("{method} {path} embed");
            // Discord renders markdown in these; author and footer show text as it is.
            let mut markdown = vec![embed["title"].clone(), embed["description"].clone()];
            for field in embed["fields"].as_array().into_iter().flatten() {
                markdown.extend([field["name"].clone(), field["value"].clone()]);
            }
            for text in markdown.iter().filter_map(Value::as_str) {
                assert_inert_for_discord(&what, text);
            }
            for call in ["@everyone", "@here"] {
                assert!(!json_text(embed).contains(call), "{what}: a live {call}");
            }
        }
    }
    assert!(checked > 0, "no Discord message was checked");
}

/// Every string of a Slack message that Slack parses as mrkdwn: the notification text,
/// section and context texts (button labels and option texts are plain text).
fn slack_parsed_texts(message: &crate::fakes::slack::SlackMessage) -> Vec<String> {
    let mut out = vec![message.text.clone()];
    if let Some(blocks) = &message.blocks {
        collect_mrkdwn(blocks, &mut out);
    }
    out
}

#[tokio::test]
async fn a_hostile_mention_pings_nobody_spoofs_nothing_and_fits_both_surfaces() {
    let w = World::both().await;
    let _bot = start(&w).await;
    let (slack, discord) = (w.slack_driver(), w.discord_driver());

    // A post that claims to be from 2001, with a link that would end Slack's link early.
    let long_text = format!("{PINGS}\n{}", "👨‍👩‍👧 refund <!channel> ".repeat(600));
    let body = hostile_mention(
        "m-1",
        &long_text,
        "https://evil.example/p/1|<!channel>",
        "2001-09-09T01:46:40Z",
    );
    let (status, answer) = deliver(&w, &body.to_string(), now(), true).await;
    assert_eq!(status, 202, "{answer}");
    let received = now();

    let s_card = slack.card(1).await;
    let d_card = discord.card(1).await;

    let s_msg = w.slack.message(CHANNEL, &s_card.id).expect("Slack card");
    for text in slack_parsed_texts(&s_msg) {
        assert_inert_for_slack("Slack card", &text);
    }
    assert!(
        surface_chars(&s_msg.text) <= 4000,
        "notification text {} long",
        s_msg.text.len()
    );
    let s_text = slack.card_text(&s_card);
    assert!(s_text.contains('…'), "the long post is cut visibly");
    assert!(
        s_text.contains("the post says 2001-09-09 01:46 UTC"),
        "the claimed time is shown beside the arrival: {s_text}"
    );
    // The deadline runs from when the desk received the mention, not from 2001.
    let due = epoch_after(&s_text, "reply due by <!date^").expect("a due time on the card");
    assert!(
        (due - (received + 3600)).abs() < 300,
        "due {due}, received {received}: {s_text}"
    );
    assert_discord_requests_ping_nobody(&w);
    let d_text = discord.card_text(&d_card);
    assert!(
        d_text.contains("the post says 2001-09-09 01:46 UTC"),
        "{d_text}"
    );
    assert!(
        d_text.contains("not a web link"),
        "the broken link is shown as text: {d_text}"
    );

    // The same customer writes again in the thread: the follow-up line is inert too.
    let follow = json!({
        "source": "listener", "id": "m-2", "platform": body["platform"], "in_reply_to": "m-1",
        "url": "https://social.example/p/2", "text": PINGS, "created_at": "2099-01-01T00:00:00Z",
        "author": body["author"],
    });
    let (status, answer) = deliver(&w, &follow.to_string(), now(), true).await;
    assert_eq!(
        (status, &answer["followups"]),
        (202, &json!([1])),
        "{answer}"
    );
    slack.wait_note(&s_card, "The customer wrote again").await;
    discord.wait_note(&d_card, "The customer wrote again").await;
    for note in slack.notes(&s_card) {
        assert_inert_for_slack("Slack thread line", &note);
    }
    assert_discord_requests_ping_nobody(&w);

    // An agent's click is a thread line that names them without a ping.
    slack.press(&s_card, Who::Ana, "claim").await;
    slack.wait_note(&s_card, "claimed this ticket").await;
    let line = slack
        .notes(&s_card)
        .into_iter()
        .find(|n| n.contains("claimed this ticket"))
        .unwrap();
    assert!(
        !line.contains(&format!("<@{ANA}>")),
        "the agent is pinged about their own click: {line}"
    );
    assert!(line.contains("ana"), "{line}");

    // The reply form on Slack shows the post inert too, within the modal's limits (the
    // fake refuses a view over them): a post on a network we answer on.
    let mut answerable = hostile_mention(
        "m-3",
        &long_text,
        "https://social.example/@m/3",
        "2001-09-09T01:46:40Z",
    );
    answerable["platform"] = json!("mastodon");
    answerable["remote_id"] = json!("109999");
    let (status, answer) = deliver(&w, &answerable.to_string(), now(), true).await;
    assert_eq!(status, 202, "{answer}");
    let s_card = slack.card(2).await;
    let views_before = w.slack.views().len();
    slack.press(&s_card, Who::Ana, "reply").await;
    w.slack
        .wait_until(WAIT, "the reply form", |s| s.views().len() > views_before)
        .await;
    let view = w.slack.views()[views_before].clone();
    let mut texts = Vec::new();
    collect_mrkdwn(&view, &mut texts);
    assert!(!texts.is_empty(), "{view}");
    for text in texts {
        assert_inert_for_slack("Slack reply form", &text);
    }
}

#[tokio::test]
async fn a_post_from_the_future_with_a_valid_link_is_cut_with_the_way_to_the_original() {
    let w = World::both().await;
    let _bot = start(&w).await;
    let (slack, discord) = (w.slack_driver(), w.discord_driver());
    let long_text = "நன்றி 👍🏽 ".repeat(3000);
    let mut body = hostile_mention(
        "f-1",
        &long_text,
        "https://social.example/@mallory/42",
        "2999-12-31T23:59:59Z",
    );
    body["author"]["profile_url"] = json!("https://social.example/@mallory");
    let (status, answer) = deliver(&w, &body.to_string(), now(), true).await;
    assert_eq!(status, 202, "{answer}");
    let received = now();
    let s_card = slack.card(1).await;
    let d_card = discord.card(1).await;
    let s_text = slack.card_text(&s_card);
    assert!(
        s_text.contains("<https://social.example/@mallory/42|read the whole post>"),
        "{s_text}"
    );
    assert!(
        s_text.contains("<https://social.example/@mallory|profile>"),
        "{s_text}"
    );
    let due = epoch_after(&s_text, "reply due by <!date^").expect("a due time");
    assert!((due - (received + 3600)).abs() < 300, "{s_text}");
    let d_text = discord.card_text(&d_card);
    assert!(
        d_text.contains("[read the whole post](<https://social.example/@mallory/42>)"),
        "{d_text}"
    );
    // Cut at a grapheme boundary: no half of a skin-toned thumb before the mark.
    let cut_at = d_text.find("…\n[read the whole post]").expect("the mark");
    assert!(
        d_text[..cut_at].ends_with(['👍', '🏽', ' ', 'ி']),
        "{}",
        &d_text[cut_at - 20..cut_at]
    );
    assert_discord_requests_ping_nobody(&w);
}

/// The texts of every mrkdwn text object in a message's blocks or a view.
fn collect_mrkdwn(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                if let Some(t) = o.get("text").and_then(Value::as_str) {
                    out.push(t.to_string());
                }
            }
            o.values().for_each(|x| collect_mrkdwn(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_mrkdwn(x, out)),
        _ => {}
    }
}

fn surface_chars(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The Unix time written right after `marker` (`<!date^1767225600^…`).
fn epoch_after(text: &str, marker: &str) -> Option<i64> {
    let at = text.find(marker)? + marker.len();
    text[at..].split('^').next()?.parse().ok()
}

/// What an agent types is echoed back in private answers as words: a command that quotes
/// channel calls, mentions and links gets an answer that calls and links nothing.
#[tokio::test]
async fn what_an_agent_types_comes_back_inert_on_both_surfaces() {
    let w = World::both().await;
    w.mastodon.add_mention("alice", "hello");
    let _bot = w.start_bot().await;
    let (slack, discord) = (w.slack_driver(), w.discord_driver());
    slack.card(1).await;
    let typed = [
        "claim <!channel>",
        "<!here> <@U0BEN> <https://evil.example|bank>",
        "stats <!everyone>@here[x](https://evil.example)",
        "oncall override <!subteam^S0AGENTS> 4h",
        "oncall override me <!channel>",
    ];
    for args in typed {
        let answer = slack.command(Who::Ana, args).await;
        assert!(!answer.is_empty(), "{args}");
        assert_inert_for_slack(&format!("Slack answer to {args:?}"), &answer);
    }
    let typed = [
        "stats <@&1300000000000000001>@everyone[x](https://evil.example)",
        "oncall override <@&1300000000000000001>@here[x](https://evil.example) 4h",
        "oncall override me @everyone<#1100000000000000002>",
    ];
    for args in typed {
        let answer = discord.command(Who::Ana, args).await;
        assert!(!answer.is_empty(), "{args}");
        assert_inert_for_discord(&format!("Discord answer to {args:?}"), &answer);
    }
}
