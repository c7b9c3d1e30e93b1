//! Every inbound parser fed arbitrary input. Valid documents in `tests/corpus/<target>/`
//! are mutated by a small seeded generator (bytes flipped, spliced and cut; JSON values
//! swapped for other types, huge numbers, deep nesting, odd unicode, keys dropped or
//! added) and each input must be answered without a panic and, where it is cheap to say,
//! with a property kept. The handlers run in this process against the bot's own HTTP
//! router (requests signed as Slack, Discord or a listening tool would sign them), so a
//! panic in work they spawn counts too. A short run is part of `cargo test`;
//! `MB_FUZZ_ITERS=200000 cargo test --release --test integration fuzz` runs longer
//! (docs/fuzzing.md). An input that fails is saved into its corpus directory as
//! `found-<hash>` and replayed on every later run.

use axum::body::Body;
use axum::http::Request;
use hmac::{Hmac, Mac};
use mentionbridge::chat::discord::Discord;
use mentionbridge::chat::slack::Slack;
use mentionbridge::config::Config;
use mentionbridge::domain::{text::TextRules, Desk, Platform, SurfaceKind};
use mentionbridge::ports::SharedStore;
use mentionbridge::runtime::desk::DeskService;
use mentionbridge::store::SledStore;
use serde_json::{json, Value};
use sha2::Sha256;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

// ----- the generator --------------------------------------------------------------------

/// splitmix64: small, fast, and the same inputs for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.next() % n.max(1) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// How many mutated inputs per target: `MB_FUZZ_ITERS`, or a short default.
fn iterations(default: usize) -> usize {
    std::env::var("MB_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `MB_FUZZ_SEED` explores other inputs; the default keeps `cargo test` repeatable.
fn seed_for(target: &str) -> u64 {
    let base = std::env::var("MB_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6d62_2d66_757a_7a00);
    base ^ fnv(target.as_bytes())
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Strings that have broken parsers before: empty, huge, numeric edge cases, escapes,
/// mentions and link syntax, percent and form syntax, direction overrides, combining
/// marks, emoji sequences, noncharacters.
const TRICKY: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "#",
    "#1",
    "1.5",
    "1e999",
    "-0",
    "NaN",
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999999999999",
    "\0",
    "\u{7f}",
    "\u{202e}gpj.exe",
    "e\u{301}\u{301}\u{301}",
    "\u{1F469}\u{200D}\u{1F4BB}",
    "\u{FFFE}",
    "\u{10FFFF}",
    "\u{3000}",
    "\u{a0}",
    "<!channel>",
    "<!here>",
    "@everyone",
    "<@U0ANA>",
    "<https://evil.example|https://bank.example>",
    "[spoof](https://evil.example)",
    "%",
    "%zz",
    "%00",
    "&",
    "=",
    "+",
    "&amp;",
    "&#x110000;",
    "&#99999999999;",
    "${",
    "${X}",
    "\\",
    "\"",
    "'",
    "\r\n",
    "at://",
    "at://did:plc:x",
    "mb:claim:",
    "mb:claim:99999999999999999999",
    "mb_reply",
    "slack:",
    "discord:",
    "slack:U0ANA",
    "1200000000000000001",
    "2024-02-30T25:61:61Z",
    "+275760-09-13T00:00:00Z",
    "-000001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
];

/// Tokens spliced into raw bytes: JSON structure, escapes JSON refuses, huge numbers.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "-",
    "\\u0000",
    "\\ud800",
    "\\",
    "1e999",
    "99999999999999999999999999",
    "-9223372036854775809",
    "0.0000000000000000000001",
    "%ff",
    "&",
    "=",
    "\n",
    "\r",
    "\t",
    "\u{0}",
    "\u{feff}",
    "\u{202e}",
];

fn tricky_string(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 | 1 => rng.pick(TRICKY).to_string(),
        2 => rng.pick(TRICKY).repeat(1 + rng.below(40)),
        // Long text: past every surface's limits.
        3 if rng.one_in(16) => "é🙂x".repeat(1 + rng.below(30_000)),
        _ => (0..rng.below(48))
            .map(|_| {
                let ranges: &[(u32, u32)] = &[
                    (0x20, 0x7e),
                    (0x00, 0x1f),
                    (0xa0, 0x24f),
                    (0x300, 0x36f),
                    (0x590, 0x6ff),
                    (0x200b, 0x202e),
                    (0x4e00, 0x4fff),
                    (0x1f300, 0x1f6ff),
                    (0xfff0, 0xffff),
                ];
                let (lo, hi) = *rng.pick(ranges);
                char::from_u32(lo + rng.below((hi - lo + 1) as usize) as u32).unwrap_or('?')
            })
            .collect(),
    }
}

fn tricky_number(rng: &mut Rng) -> Value {
    let numbers = [
        json!(0),
        json!(-1),
        json!(1),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1e300),
        json!(-1e300),
        json!(0.5),
        json!(4_294_967_296u64),
        json!(9_007_199_254_740_993u64),
    ];
    rng.pick(&numbers).clone()
}

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => tricky_number(rng),
        3 | 4 => Value::String(tricky_string(rng)),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        6 => Value::Object(
            (0..rng.below(4))
                .map(|_| (tricky_string(rng), random_value(rng, depth + 1)))
                .collect(),
        ),
        _ => nested(rng.below(200) + 1, Value::Null),
    }
}

/// `levels` arrays (or objects) around `inner`: deep nesting.
fn nested(levels: usize, inner: Value) -> Value {
    (0..levels).fold(inner, |v, i| {
        if i % 2 == 0 {
            Value::Array(vec![v])
        } else {
            json!({ "a": v })
        }
    })
}

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                here.push(Step::Key(k.clone()));
                paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                here.push(Step::Index(i));
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn node<'a>(mut v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    for step in path {
        v = match step {
            Step::Key(k) => &mut v[k.as_str()],
            Step::Index(i) => &mut v[*i],
        };
    }
    v
}

/// One change to one node of a JSON document, chosen the way a confused or hostile
/// sender would change it.
fn mutate_json(rng: &mut Rng, doc: &mut Value, others: &[Value]) {
    let mut all = Vec::new();
    paths(doc, &mut Vec::new(), &mut all);
    let path = rng.pick(&all).clone();
    let target = node(doc, &path);
    match rng.below(9) {
        0 => *target = random_value(rng, 0),
        1 => match target {
            Value::String(s) => match rng.below(4) {
                0 => s.push_str(&tricky_string(rng)),
                1 => *s = tricky_string(rng),
                2 => {
                    let cut = s.char_indices().nth(rng.below(s.len() + 1)).map(|(i, _)| i);
                    s.truncate(cut.unwrap_or(s.len()));
                }
                _ => *target = tricky_number(rng),
            },
            Value::Number(_) => *target = tricky_number(rng),
            Value::Bool(b) => *b = !*b,
            other => *other = Value::String(tricky_string(rng)),
        },
        2 => {
            if let Value::Object(m) = target {
                if !m.is_empty() {
                    let k = m.keys().nth(rng.below(m.len())).cloned().unwrap();
                    m.remove(&k);
                }
            }
        }
        3 => {
            if let Value::Object(m) = target {
                let key = if m.is_empty() || rng.one_in(2) {
                    tricky_string(rng)
                } else {
                    m.keys().nth(rng.below(m.len())).cloned().unwrap()
                };
                m.insert(key, random_value(rng, 0));
            }
        }
        4 => {
            if let Value::Array(items) = target {
                match rng.below(3) {
                    0 if !items.is_empty() => {
                        items.remove(rng.below(items.len()));
                    }
                    1 if !items.is_empty() => {
                        let copy = items[rng.below(items.len())].clone();
                        let most = if rng.one_in(8) { 500 } else { 3 };
                        for _ in 0..1 + rng.below(most) {
                            items.push(copy.clone());
                        }
                    }
                    _ => items.push(random_value(rng, 0)),
                }
            }
        }
        5 => *target = Value::Array(vec![target.take()]),
        6 => *target = nested(1 + rng.below(200), target.take()),
        // Graft a part of another valid document (right keys, wrong place).
        _ => {
            if let Some(other) = others.get(rng.below(others.len())) {
                let mut theirs = Vec::new();
                paths(other, &mut Vec::new(), &mut theirs);
                let from = rng.pick(&theirs).clone();
                let mut other = other.clone();
                *target = node(&mut other, &from).take();
            }
        }
    }
}

fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let at = rng.below(bytes.len() + 1);
    match rng.below(8) {
        0 if !bytes.is_empty() => {
            let i = rng.below(bytes.len());
            bytes[i] ^= 1 << rng.below(8);
        }
        1 if !bytes.is_empty() => {
            let i = rng.below(bytes.len());
            bytes[i] = rng.next() as u8;
        }
        2 => {
            let token = rng.pick(TOKENS).as_bytes().to_vec();
            bytes.splice(at..at, token);
        }
        3 => {
            let end = (at + 1 + rng.below(32)).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        4 => {
            let end = (at + 1 + rng.below(64)).min(bytes.len());
            let piece = bytes[at.min(end)..end].to_vec();
            bytes.splice(at..at, piece);
        }
        5 => {
            let other = rng.pick(seeds);
            let from = rng.below(other.len() + 1);
            bytes.truncate(at);
            bytes.extend_from_slice(&other[from..]);
        }
        6 => bytes.truncate(at),
        _ => {
            // A number where one was: replace a run of digits with a huge one.
            if let Some(start) = bytes[at..].iter().position(u8::is_ascii_digit) {
                let start = at + start;
                let len = bytes[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let huge = rng.pick(&TOKENS[9..13]).as_bytes().to_vec();
                bytes.splice(start..start + len, huge);
            }
        }
    }
    bytes.truncate(1 << 20);
}

/// A mutant of one of the seeds: JSON-aware most of the time, raw bytes otherwise.
fn mutant(rng: &mut Rng, seeds: &[Vec<u8>], json_seeds: &[Value]) -> Vec<u8> {
    let i = rng.below(seeds.len());
    let rounds = 1 + rng.below(4);
    let mut bytes = match json_seeds.get(i).filter(|_| !rng.one_in(4)) {
        Some(doc) => {
            let mut doc = doc.clone();
            for _ in 0..rounds {
                mutate_json(rng, &mut doc, json_seeds);
            }
            serde_json::to_vec(&doc).expect("a Value serializes")
        }
        None => seeds[i].clone(),
    };
    if bytes == seeds[i] || rng.one_in(3) {
        for _ in 0..rounds {
            mutate_bytes(rng, &mut bytes, seeds);
        }
    }
    bytes
}

// ----- running a target -------------------------------------------------------------------

thread_local! {
    /// Panics seen on this thread while a target runs (spawned tasks included: the
    /// handlers run on a current-thread runtime on the fuzzing thread).
    static CAUGHT: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

fn catch_panics_on_this_thread() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let caught = CAUGHT.with(|c| match c.borrow_mut().as_mut() {
                Some(seen) => {
                    seen.push(info.to_string());
                    true
                }
                None => false,
            });
            if !caught {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, returning what it returned (None if it panicked) and every panic seen on
/// this thread meanwhile.
fn watched<T>(f: impl FnOnce() -> T) -> (Option<T>, Vec<String>) {
    CAUGHT.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
    let seen = CAUGHT.with(|c| c.borrow_mut().take().unwrap_or_default());
    (out, seen)
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target)
}

fn read_corpus(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("tests/corpus/{target}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!seeds.is_empty(), "tests/corpus/{target} holds no seeds");
    seeds
}

/// The input as a person can read it in a test failure: escaped text, or hex.
fn shown(input: &[u8]) -> String {
    let head = &input[..input.len().min(1500)];
    let more = if input.len() > head.len() {
        format!(" … ({} bytes in all)", input.len())
    } else {
        String::new()
    };
    match std::str::from_utf8(head) {
        Ok(s) => format!("\"{}\"{more}", s.escape_debug()),
        Err(_) => format!("hex {}{more}", hex::encode(head)),
    }
}

/// Runs `check` on every seed as it is, then on `iterations(default)` mutants; a panic
/// (here or in work the input spawned) or an `Err` from `check` is a finding. Findings
/// are saved as regression seeds and fail the test, naming the input.
fn fuzz(
    target: &str,
    default: usize,
    mut make: impl FnMut(&mut Rng, &[Vec<u8>], &[Value]) -> Vec<u8>,
    mut check: impl FnMut(&[u8]) -> Result<(), String>,
) {
    catch_panics_on_this_thread();
    let seeds = read_corpus(target);
    let json_seeds: Vec<Value> = seeds
        .iter()
        .map_while(|s| serde_json::from_slice(s).ok())
        .collect();
    let json_seeds = if json_seeds.len() == seeds.len() {
        json_seeds
    } else {
        Vec::new()
    };
    let mut rng = Rng(seed_for(target));
    let n = iterations(default);
    let started = std::time::Instant::now();
    let mut findings = Vec::new();
    let mut tried = 0;
    for i in 0..seeds.len() + n {
        let input = match seeds.get(i) {
            Some(seed) => seed.clone(),
            None => make(&mut rng, &seeds, &json_seeds),
        };
        tried += 1;
        let (outcome, mut problems) = watched(|| check(&input));
        if let Some(Err(broken)) = outcome {
            problems.push(broken);
        }
        if problems.is_empty() {
            continue;
        }
        let name = format!("found-{:016x}", fnv(&input));
        let path = corpus_dir(target).join(&name);
        if !path.exists() {
            let _ = std::fs::write(&path, &input);
        }
        findings.push(format!(
            "{target}: {} on input {} (saved as tests/corpus/{target}/{name})",
            problems.join("; "),
            shown(&input)
        ));
        if findings.len() >= 5 {
            break;
        }
    }
    eprintln!(
        "fuzz {target}: {tried} inputs, {} findings, {:.1} s",
        findings.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(findings.is_empty(), "{}", findings.join("\n\n"));
}

/// Mutants of the seeds, as most targets want them.
fn mutants(rng: &mut Rng, seeds: &[Vec<u8>], json: &[Value]) -> Vec<u8> {
    mutant(rng, seeds, json)
}

// ----- the desk the handlers act on -------------------------------------------------------

const SIGNING_SECRET: &str = "fuzz-signing-secret-CANARY2f1e0d9c8b7a6954";
const WEBHOOK_SECRET: &str = "fuzz-webhook-secret-CANARY5a4b3c2d1e0f9788";

/// The bot's HTTP router over a real desk (a temporary store holding a few tickets),
/// with Slack and Discord in HTTP mode. Their APIs point at a closed port: every call
/// out fails at once, so no input waits on a network and nothing stays running.
struct Bench {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    slack: Arc<Slack>,
    discord: Arc<Discord>,
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Bench {
    fn new() -> Bench {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let port = closed_port();
        let text = format!(
            r#"
brand = "BrandCo"

[[canned]]
id = "refund"
title = "Refund on its way"
text = "Hi {{author}}, your refund is on its way. {{agent}}, {{brand}} (ticket {{ticket}})"

[oncall]
[[oncall.rotation]]
name = "everyone"
time_zone = "Asia/Kolkata"
members = ["slack:U0ANA", "discord:1200000000000000001"]
shifts = [
    {{ days = ["mon-sun"], start = "00:00", end = "12:00" }},
    {{ days = ["mon-sun"], start = "12:00", end = "00:00" }},
]

[store]
path = "unused.sled"

[http]
listen = "127.0.0.1:{port}"

[webhook]
secret = "${{WEBHOOK_SECRET}}"

[slack]
mode = "http"
api_url = "http://127.0.0.1:{port}/api"
bot_token = "${{SLACK_BOT_TOKEN}}"
signing_secret = "${{SLACK_SIGNING_SECRET}}"
channel = "C0SUPPORT"
agent_user_ids = ["U0ANA", "U0BEN"]

[discord]
mode = "http"
api_url = "http://127.0.0.1:{port}/api/v10"
bot_token = "${{DISCORD_BOT_TOKEN}}"
public_key = "{key}"
guild_id = "{guild}"
channel_id = "1100000000000000010"
agent_role_ids = ["1300000000000000001"]
agent_user_ids = ["1200000000000000002"]
"#,
            key = crate::fakes::discord::public_key_hex(),
            guild = crate::fakes::discord::GUILD_ID,
        );
        let env = |var: &str| {
            Some(match var {
                "WEBHOOK_SECRET" => WEBHOOK_SECRET.to_string(),
                "SLACK_SIGNING_SECRET" => SIGNING_SECRET.to_string(),
                "SLACK_BOT_TOKEN" => crate::fakes::slack::BOT_TOKEN.to_string(),
                _ => crate::fakes::discord::BOT_TOKEN.to_string(),
            })
        };
        let config = Config::parse(Path::new("fuzz.toml"), &text, &env).expect("the config");
        let store: SharedStore = Arc::new(SledStore::temporary().unwrap());
        // A few tickets to act on: the webhook seeds (a network we cannot answer on,
        // Mastodon and X posts we can).
        let mentions: Vec<_> = read_corpus("webhook")
            .iter()
            .filter_map(|body| mentionbridge::sources::webhook::parse(body).ok())
            .flatten()
            .collect();
        rt.block_on(store.ingest("webhook", &mentions, None, chrono::Utc::now()))
            .unwrap();
        let mut roster = Desk::new();
        for p in [Platform::Mastodon, Platform::Bluesky, Platform::X] {
            roster = roster.with_rules(p, TextRules::default());
        }
        let slack_config = config.slack.clone().unwrap();
        let discord_config = config.discord.clone().unwrap();
        roster.roster_mut(SurfaceKind::Slack).user_ids =
            slack_config.agent_user_ids.iter().cloned().collect();
        let d = roster.roster_mut(SurfaceKind::Discord);
        d.user_ids = discord_config.agent_user_ids.iter().cloned().collect();
        d.role_ids = discord_config.agent_role_ids.iter().cloned().collect();
        let wake = Arc::new(tokio::sync::Notify::new());
        let desk = Arc::new(
            DeskService::new(store.clone(), roster, wake.clone())
                .with_canned(config.canned.clone(), config.brand.clone())
                .with_oncall(config.oncall.clone(), config.routes.clone()),
        );
        let _guard = rt.enter();
        let slack = Arc::new(Slack::new(&slack_config, desk.clone()).unwrap());
        let discord = Arc::new(Discord::new(&discord_config, desk.clone()).unwrap());
        let router = mentionbridge::app::http::router(
            Some(slack.clone()),
            Some(discord.clone()),
            Some(mentionbridge::app::http::Ingest {
                store: store.clone(),
                secret: config.webhook.unwrap().secret,
                wake,
                clock: Arc::new(mentionbridge::ports::SystemClock),
                languages: Default::default(),
            }),
            mentionbridge::app::http::Metrics {
                replica: mentionbridge::runtime::duties::Replica::new(
                    "fuzz",
                    store.clone(),
                    std::time::Duration::from_secs(15),
                ),
                desk,
                health: Default::default(),
                sources: Default::default(),
                surfaces: Vec::new(),
            },
            &Default::default(),
        );
        drop(_guard);
        Bench {
            rt,
            router,
            slack,
            discord,
        }
    }

    /// Run `work` and everything it spawned to the end (at most 10 s: longer is a
    /// finding, work that spins or hangs).
    fn run<T>(&self, work: impl std::future::Future<Output = T>) -> Result<T, String> {
        self.rt.block_on(async {
            let out = work.await;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
                > 0
            {
                if tokio::time::Instant::now() > deadline {
                    return Err("work it started was still running 10 s later".to_string());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(out)
        })
    }

    /// POST `body` to `path` with `headers`; the answer's status.
    fn post(&self, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> Result<u16, String> {
        let mut req = Request::builder().method("POST").uri(path);
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req.body(Body::from(body)).map_err(|e| e.to_string())?;
        let router = self.router.clone();
        self.run(async move {
            let resp = router.oneshot(req).await.expect("the router is infallible");
            let status = resp.status().as_u16();
            let _ = axum::body::to_bytes(resp.into_body(), 1 << 24).await;
            status
        })
    }

    fn slack_post(&self, path: &str, body: Vec<u8>) -> Result<u16, String> {
        let ts = chrono::Utc::now().timestamp().to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:").as_bytes());
        mac.update(&body);
        let sig = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
        self.post(
            path,
            &[
                ("x-slack-request-timestamp", ts),
                ("x-slack-signature", sig),
                ("content-type", "application/x-www-form-urlencoded".into()),
            ],
            body,
        )
    }

    fn discord_post(&self, body: &[u8]) -> Result<u16, String> {
        // Discord signs text; JSON is text, so a mutant is sent as (lossy) UTF-8.
        let body = String::from_utf8_lossy(body).into_owned();
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = crate::fakes::discord::sign(&ts, &body);
        self.post(
            "/discord/interactions",
            &[
                ("x-signature-ed25519", sig),
                ("x-signature-timestamp", ts),
                ("content-type", "application/json".into()),
            ],
            body.into_bytes(),
        )
    }

    /// An interaction read and answered as the endpoint does once the signature holds
    /// (checking an Ed25519 signature costs ~20 ms in a debug build: most inputs skip it).
    fn discord_answer(&self, body: &[u8]) -> Result<(), String> {
        let Ok(interaction) = mentionbridge::chat::discord::interaction_from_json(body) else {
            return Ok(());
        };
        let discord = self.discord.clone();
        self.run(async move { drop(discord.answer(interaction).await) })
    }

    /// Most inputs straight to the handler, one in eight through the signed endpoint.
    fn discord_interaction(&self, body: &[u8]) -> Result<(), String> {
        if fnv(body) % 8 == 0 {
            not_a_server_error(self.discord_post(body))
        } else {
            self.discord_answer(body)
        }
    }
}

/// No answer of the router may be a server error for a request it could read.
fn not_a_server_error(status: Result<u16, String>) -> Result<(), String> {
    match status? {
        s if s >= 500 && s != 503 => Err(format!("answered {s}")),
        _ => Ok(()),
    }
}

fn form(pairs: &[(String, String)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

// ----- chat commands ------------------------------------------------------------------------

const VERBS: &[&str] = &[
    "list", "stats", "oncall", "canned", "help", "claim", "unclaim", "resolve", "ignore", "reopen",
    "reply", "dm", "CLAIM", "Oncall", "teleport", "",
];
const TICKETS: &[&str] = &[
    "1",
    "2",
    "#1",
    "0",
    "-1",
    " 2 ",
    "#",
    "1e3",
    "١",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
];
const LENGTHS: &[&str] = &[
    "4h",
    "30m",
    "2d",
    "7d",
    "1m",
    "0h",
    "8d",
    "30min",
    "4H",
    "4 h",
    "-1h",
    "1.5h",
    "h",
    "٤h",
    "9999999999999999h",
    "99999999999999999m",
    "9223372036854775807d",
    "153722867280912930m",
    "2562047788015215h",
    "106751991167300d",
];
const MEMBERS: &[&str] = &[
    "me",
    "ME",
    "slack:U0ANA",
    "slack:U0EVE",
    "discord:1200000000000000001",
    "<@U0ANA>",
    "<@U0ANA|ana>",
    "<@1200000000000000001>",
    "<@!1200000000000000001>",
    "@kim",
    "slack:",
    "discord:",
    ":",
    "x:y",
    "slack:U0ANA:extra",
    "<!channel>",
    "<@>",
    "<@",
];
const WINDOWS: &[&str] = &[
    "24h",
    "7d",
    "30d",
    "366d",
    "367d",
    "0d",
    "+7d",
    "1.5d",
    "d",
    "8784h",
    "9223372036854775807h",
    "99999999999999999999d",
];

/// A `/mentions …` line as people (and cats on keyboards) type it.
fn command_text(rng: &mut Rng) -> String {
    let mut words: Vec<String> = match rng.below(3) {
        0 => vec![
            "oncall".into(),
            "override".into(),
            rng.pick(MEMBERS).to_string(),
            rng.pick(LENGTHS).to_string(),
        ],
        1 => vec![rng.pick(VERBS).to_string(), rng.pick(TICKETS).to_string()],
        _ => vec![rng.pick(VERBS).to_string()],
    };
    for _ in 0..rng.below(3) {
        let pools: [&[&str]; 5] = [TICKETS, LENGTHS, MEMBERS, WINDOWS, TRICKY];
        let pool = *rng.pick(&pools);
        words.push(rng.pick(pool).to_string());
    }
    let gaps = [" ", "  ", "\t", "\n", "\u{a0}", "\u{3000}", ""];
    let mut text = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            let gap = *rng.pick(&gaps);
            text.push_str(gap);
        }
        text.push_str(w);
    }
    text
}

/// The same words as a Discord `/mentions` interaction's options, typed loosely: the
/// right names with the wrong types, numbers out of range, missing and extra options.
fn discord_options(rng: &mut Rng, text: &str) -> Value {
    let mut words = text.split_whitespace();
    let verb = words.next().unwrap_or("list").to_string();
    let names = ["ticket", "text", "override", "for", "window", "member"];
    let options: Vec<Value> = words
        .map(|w| {
            let name = if rng.one_in(8) {
                tricky_string(rng)
            } else {
                rng.pick(&names).to_string()
            };
            let (kind, value) = match rng.below(5) {
                0 => (
                    4,
                    w.parse::<i64>()
                        .map(Value::from)
                        .unwrap_or_else(|_| tricky_number(rng)),
                ),
                1 => (4, Value::String(w.to_string())),
                2 => (10, tricky_number(rng)),
                3 => (
                    *rng.pick(&[5, 6, 7, 8, 9, 11, 99]),
                    Value::String(w.to_string()),
                ),
                _ => (3, Value::String(w.to_string())),
            };
            json!({"type": kind, "name": name, "value": value, "focused": rng.one_in(6)})
        })
        .collect();
    json!([{"type": if rng.one_in(8) { 2 } else { 1 }, "name": verb, "options": options}])
}

// ----- the targets --------------------------------------------------------------------------

#[test]
fn slack_events_api_bodies_never_panic() {
    let bench = Bench::new();
    fuzz("slack_events", 100, mutants, |input| {
        not_a_server_error(bench.slack_post("/slack/events", input.to_vec()))
    });
}

#[test]
fn slack_interaction_and_view_submission_payloads_never_panic() {
    let bench = Bench::new();
    fuzz("slack_interactions", 100, mutants, |input| {
        let payload = String::from_utf8_lossy(input).into_owned();
        let body = form(&[("payload".into(), payload)]);
        not_a_server_error(bench.slack_post("/slack/interactivity", body))
    });
}

#[test]
fn slack_slash_command_forms_never_panic() {
    let bench = Bench::new();
    fuzz(
        "slack_commands",
        100,
        |rng, seeds, _| {
            let mut body = rng.pick(seeds).clone();
            if rng.one_in(2) {
                let mut pairs = form_pairs(&body);
                for (k, v) in pairs.iter_mut() {
                    if k == "text" {
                        *v = command_text(rng);
                    } else if rng.one_in(10) {
                        *v = tricky_string(rng);
                    }
                }
                if rng.one_in(6) && !pairs.is_empty() {
                    pairs.remove(rng.below(pairs.len()));
                }
                body = form(&pairs);
            } else {
                for _ in 0..1 + rng.below(3) {
                    mutate_bytes(rng, &mut body, seeds);
                }
            }
            body
        },
        |input| not_a_server_error(bench.slack_post("/slack/commands", input.to_vec())),
    );
}

#[test]
fn slack_socket_mode_envelopes_never_panic() {
    use slack_morphism::prelude::{
        SlackCommandEvent, SlackInteractionEvent, SlackPushEventCallback,
    };
    /// slack-morphism's own envelope type is private; this reads a frame the same way
    /// (tagged by `type`, with the library's payload types).
    #[derive(serde::Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    #[allow(clippy::large_enum_variant)] // as slack-morphism's own
    enum Envelope {
        Interactive { payload: SlackInteractionEvent },
        EventsApi { payload: SlackPushEventCallback },
        SlashCommands { payload: SlackCommandEvent },
        Hello {},
        Disconnect {},
    }
    let bench = Bench::new();
    fuzz("slack_socket", 100, mutants, |input| {
        // As slack-morphism's listener reads a frame, then hands its payload to us.
        let Ok(text) = std::str::from_utf8(input) else {
            return Ok(());
        };
        let Ok(event) = serde_json::from_str::<Envelope>(text) else {
            return Ok(());
        };
        let slack = bench.slack.clone();
        bench.run(async move {
            match event {
                Envelope::Interactive { payload } => drop(slack.on_interaction(payload).await),
                Envelope::EventsApi { payload } => slack.on_push(payload).await,
                Envelope::SlashCommands { payload } => drop(slack.on_command(payload).await),
                Envelope::Hello {} | Envelope::Disconnect {} => {}
            }
        })
    });
}

#[test]
fn discord_http_interactions_never_panic() {
    let bench = Bench::new();
    fuzz("discord_interactions", 100, mutants, |input| {
        bench.discord_interaction(input)
    });
}

#[test]
fn discord_gateway_dispatches_never_panic() {
    use serenity::model::event::{Event, GatewayEvent};
    let bench = Bench::new();
    fuzz("discord_gateway", 100, mutants, |input| {
        // As serenity's shard reads a frame; an interaction then goes to our handler.
        let Ok(text) = std::str::from_utf8(input) else {
            return Ok(());
        };
        let Ok(GatewayEvent::Dispatch(_, Event::InteractionCreate(e))) =
            serde_json::from_str::<GatewayEvent>(text)
        else {
            return Ok(());
        };
        let discord = bench.discord.clone();
        bench.run(async move { drop(discord.answer(e.interaction).await) })
    });
}

#[test]
fn chat_commands_on_both_surfaces_never_panic() {
    let bench = Bench::new();
    let interaction: Value = serde_json::from_slice(
        &std::fs::read(corpus_dir("discord_interactions").join("command_oncall_override.json"))
            .unwrap(),
    )
    .unwrap();
    let slack_form =
        std::fs::read(corpus_dir("slack_commands").join("oncall_override.form")).unwrap();
    fuzz(
        "chat_commands",
        150,
        |rng, seeds, json| {
            if rng.one_in(4) {
                mutant(rng, seeds, json)
            } else {
                command_text(rng).into_bytes()
            }
        },
        |input| {
            let text = String::from_utf8_lossy(input).into_owned();
            let mut pairs = form_pairs(&slack_form);
            for (k, v) in pairs.iter_mut() {
                if k == "text" {
                    v.clone_from(&text);
                }
            }
            not_a_server_error(bench.slack_post("/slack/commands", form(&pairs)))?;
            let mut rng = Rng(fnv(input));
            let mut discord = interaction.clone();
            discord["data"]["options"] = discord_options(&mut rng, &text);
            discord["type"] = json!(if rng.one_in(4) { 4 } else { 2 });
            bench.discord_interaction(&serde_json::to_vec(&discord).unwrap())
        },
    );
}

#[test]
fn webhook_deliveries_never_panic_and_only_signed_ones_verify() {
    use mentionbridge::sources::webhook;
    let bench = Bench::new();
    let sign = |secret: &str, ts: &str, body: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    fuzz("webhook", 150, mutants, |input| {
        let now = chrono::Utc::now().timestamp();
        let ts = now.to_string();
        let sig = sign(WEBHOOK_SECRET, &ts, input);
        let verify = |ts: &str, sig: &str, body: &[u8]| {
            webhook::verify(WEBHOOK_SECRET, Some(ts), Some(sig), body, now).is_ok()
        };
        if !verify(&ts, &sig, input) {
            return Err("refused a body signed with the right secret".into());
        }
        let mut forged = input.to_vec();
        let mut rng = Rng(fnv(input));
        mutate_bytes(&mut rng, &mut forged, &[input.to_vec()]);
        if forged != input && verify(&ts, &sig, &forged) {
            return Err(format!(
                "accepted a body it did not sign: {}",
                shown(&forged)
            ));
        }
        if verify(
            &ts,
            &sign("another-secret-of-some-length", &ts, input),
            input,
        ) {
            return Err("accepted a signature made with another secret".into());
        }
        if verify(
            &(now - 301).to_string(),
            &sign(WEBHOOK_SECRET, &(now - 301).to_string(), input),
            input,
        ) {
            return Err("accepted a request older than five minutes".into());
        }
        let _ = webhook::parse(input);
        let status = bench.post(
            webhook::PATH,
            &[
                (webhook::TIMESTAMP_HEADER, ts),
                (webhook::SIGNATURE_HEADER, sig),
            ],
            input.to_vec(),
        );
        not_a_server_error(status)
    });
}

#[test]
fn mastodon_pages_never_panic() {
    fuzz("mastodon", 400, mutants, |input| {
        let _ = mentionbridge::sources::mastodon::mentions_in_notifications("brand", input);
        let _ = mentionbridge::sources::mastodon::html_to_text(&String::from_utf8_lossy(input));
        Ok(())
    });
}

#[test]
fn bluesky_pages_never_panic() {
    fuzz("bluesky", 400, mutants, |input| {
        let _ = mentionbridge::sources::bluesky::mentions_in_notifications("brand.test", input);
        Ok(())
    });
}

#[test]
fn x_pages_never_panic() {
    fuzz("x", 400, mutants, |input| {
        let _ = mentionbridge::sources::x::mentions_in_page("1500000000000000001", input);
        let _ = mentionbridge::sources::x::mentions_in_stream("1500000000000000001", input);
        Ok(())
    });
}

#[test]
fn config_files_never_panic_and_every_problem_is_located() {
    use mentionbridge::config::ConfigError;
    fuzz(
        "config",
        200,
        |rng, seeds, _| {
            let mut text = rng.pick(seeds).clone();
            for _ in 0..1 + rng.below(4) {
                if rng.one_in(2) {
                    // A value swapped for a tricky one, keeping the file TOML.
                    let s = String::from_utf8_lossy(&text).into_owned();
                    let lines: Vec<&str> = s.lines().collect();
                    let i = rng.below(lines.len());
                    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                    if let Some((key, _)) = lines[i].split_once('=') {
                        let value = match rng.below(4) {
                            0 => format!("{:?}", tricky_string(rng)),
                            1 => tricky_number(rng).to_string(),
                            2 => format!("[{:?}, {}]", tricky_string(rng), tricky_number(rng)),
                            _ => format!("\"${{{}}}\"", tricky_string(rng)),
                        };
                        out[i] = format!("{key}= {value}");
                    } else if rng.one_in(2) {
                        out[i] = format!("# {}", out[i]);
                    } else {
                        out.insert(i, out[rng.below(out.len())].clone());
                    }
                    text = out.join("\n").into_bytes();
                } else {
                    mutate_bytes(rng, &mut text, seeds);
                }
            }
            text
        },
        |input| {
            let text = String::from_utf8_lossy(input);
            let env = |var: &str| {
                let mut rng = Rng(fnv(var.as_bytes()));
                match rng.below(6) {
                    0 => None,
                    1 => Some(String::new()),
                    2 => Some(tricky_string(&mut rng)),
                    3 => Some("${NESTED}".into()),
                    _ => Some(format!("value-of-{var}-{}", crate::fakes::CANARY)),
                }
            };
            let lines = text.lines().count() + 1;
            match Config::parse(Path::new("bot-config.toml"), &text, &env) {
                Ok(_) => Ok(()),
                Err(ConfigError::Syntax { line, .. }) if line == 0 || line > lines => Err(format!(
                    "a syntax error on line {line} of a {lines}-line file"
                )),
                Err(ConfigError::Invalid(problems)) => {
                    if problems.is_empty() {
                        return Err("refused with no problem named".into());
                    }
                    match problems
                        .iter()
                        .find(|p| p.key.is_empty() || p.line.is_some_and(|l| l == 0 || l > lines))
                    {
                        Some(p) => Err(format!("a problem not located: {p:?}")),
                        None => Ok(()),
                    }
                }
                Err(_) => Ok(()),
            }
        },
    );
}
