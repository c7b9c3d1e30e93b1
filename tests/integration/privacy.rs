//! Privacy (issue 14): the bot's log at its default level carries no customer text;
//! `mentionbridge erase` removes one person (tickets, cards, notes) from sled and
//! PostgreSQL; `export --author` hands one person's data over; `[retention]` removes
//! text and identity past their days.

use crate::drivers::{Driver, Who};
use crate::harness::*;

/// A mention with a recognisable handle, name-like text and order number goes through a
/// whole flow (card, reply published, resolve); the bot's log at `info` (its default)
/// names none of it, while it does log the flow.
#[tokio::test]
async fn the_log_at_its_default_level_carries_no_customer_text() {
    let w = World::new().await;
    let d = w.slack_driver();
    w.mastodon.add_mention(
        "quillonprivtest@elsewhere.example",
        "Zorblax order 55721 never arrived",
    );
    let bot = w.start_bot_with(&[("MENTIONBRIDGE_LOG", "info")]).await;
    let card = d.card(1).await;
    d.reply_via_modal(&card, Who::Ana, "Sorry Zorblax, we resend 55721 today.")
        .await
        .expect("accepted");
    w.mastodon.wait_for_posts(1, WAIT).await;
    d.wait_note(&card, "Reply published").await;
    assert_eq!(
        d.command(Who::Ana, "resolve 1").await,
        "Done: resolved ticket #1."
    );
    d.wait_card_text(&card, "Resolved").await;
    bot.wait_for_log("mentions stored", WAIT).await;
    let log = bot.log();
    for personal in ["quillonprivtest", "elsewhere.example", "Zorblax", "55721"] {
        assert!(
            !log.contains(personal),
            "{personal} in the bot's log:\n{log}"
        );
    }
}

/// What a person's erasure must leave no trace of.
const ZED: &str = "erasemeprivtest@elsewhere.example";
const ZED_TRACES: [&str; 4] = ["erasemeprivtest", "Quorvath", "66219", "Flintmoor"];

/// An agent's note about Zed (its word "Flintmoor" is one of [`ZED_TRACES`]).
async fn note_about_zed(w: &World) {
    let d = w.slack_driver();
    let said = d
        .command(
            Who::Ana,
            &format!("note mastodon @{ZED} lives in Flintmoor, prefers e-mail"),
        )
        .await;
    assert!(said.starts_with("Noted about"), "{said}");
}

/// Run `mentionbridge ARGS --config` on the world's config: success, stdout, stderr.
async fn cli(w: &World, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = w.command();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .args(args)
        .arg("--config")
        .arg(w.config_path())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every byte under `dir`, as (lossy) text and as lowercase hex.
fn bytes_under(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(bytes_under(&path));
        } else {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Zed and Otto write in; Zed asks to be erased. Two tickets, two cards.
async fn two_people_write_in(w: &World, env: &[(&str, &str)]) -> (Bot, String) {
    let zed = w
        .mastodon
        .add_mention(ZED, "Quorvath here, order 66219 never arrived");
    w.mastodon
        .add_mention("ottokeep@elsewhere.example", "parcel 4410 is late");
    let bot = w.start_bot_with(env).await;
    let d = w.slack_driver();
    d.card(2).await;
    (bot, zed.status_id)
}

/// After erasure the same post delivered again makes no new card, while a new post does.
async fn the_erased_post_again_is_a_duplicate(w: &World, zed_status: &str) {
    let d = w.slack_driver();
    w.mastodon.notify_again(zed_status);
    w.mastodon
        .add_mention("newcomerprivtest@elsewhere.example", "hello there");
    let third = d.card(3).await;
    assert!(d.card_text(&third).contains("hello there"));
    // The duplicate came before the newcomer: had it made a card, that card would be 3.
    assert_eq!(d.cards().len(), 3, "no card for the erased post again");
}

#[tokio::test]
async fn erase_on_sled_leaves_no_trace_of_the_person_and_keeps_the_others() {
    let w = World::new().await;
    let (bot, zed_status) = two_people_write_in(&w, &[]).await;
    note_about_zed(&w).await;
    // While the bot holds the store, erase refuses and changes nothing.
    let (ok, _, err) = cli(
        &w,
        &["erase", "--platform", "mastodon", "--author", ZED],
        &[],
    )
    .await;
    assert!(!ok && err.contains("stop the bot first"), "{err}");
    let (status, _) = bot.terminate().await;
    assert!(status.success());

    let (ok, out, err) = cli(
        &w,
        &["erase", "--platform", "mastodon", "--author", ZED],
        &[],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        format!("erased 1 ticket of mastodon @{ZED}: 1 text, 1 identity, 1 note")
    );
    // Asked again, nothing is left to find, and the operator is told where to look.
    let (ok, again, err) = cli(
        &w,
        &["erase", "--platform", "mastodon", "--author", ZED],
        &[],
    )
    .await;
    assert!(ok, "{err}");
    assert!(again.starts_with("erased 0 tickets"), "{again}");
    assert!(err.contains("nothing is stored"), "{err}");
    let store = bytes_under(&w.dir.path().join("store.sled"));
    for trace in ZED_TRACES {
        assert!(
            !contains(&store, trace),
            "{trace} in the sled store's files"
        );
    }
    assert!(
        contains(&store, "ottokeep") && contains(&store, "4410"),
        "Otto is kept"
    );
    // The export of everything names Zed nowhere either, and Otto still.
    let (ok, export, err) = cli(&w, &["export"], &[]).await;
    assert!(ok, "{err}");
    for trace in ZED_TRACES {
        assert!(!export.contains(trace), "{trace} in the export:\n{export}");
    }
    assert!(export.contains("parcel 4410 is late"));
    assert!(
        export.contains("erased at the person's request"),
        "{export}"
    );

    let bot = w.start_bot().await;
    the_erased_post_again_is_a_duplicate(&w, &zed_status).await;
    // The card lost the text when the bot came back (its re-render was queued).
    let d = w.slack_driver();
    let first = d.card(1).await;
    d.wait_card_text(&first, "removed").await;
    for trace in ZED_TRACES {
        assert!(!d.card_text(&first).contains(trace), "{trace} on the card");
    }
    let log = bot.log();
    for trace in ZED_TRACES {
        assert!(!log.contains(trace), "{trace} in the bot's log");
    }
}

#[tokio::test]
async fn erase_on_postgres_leaves_no_row_naming_the_person() {
    let pg = crate::postgres::shared();
    let url = pg.fresh_database();
    let w = World::new().await;
    *w.store_config.lock().unwrap() = Some(
        "[store]\nbackend = \"postgres\"\nurl = \"${TEST_DATABASE_URL}\"\npool_size = 4\ntls = \"disable\"\n"
            .to_string(),
    );
    let env = [("TEST_DATABASE_URL", url.as_str())];
    let (bot, zed_status) = two_people_write_in(&w, &env).await;
    note_about_zed(&w).await;
    // With PostgreSQL the bot may keep running: erasure is a transaction like any other.
    let (ok, out, err) = cli(
        &w,
        &["erase", "--platform", "mastodon", "--author", ZED],
        &env,
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("erased 1 ticket of mastodon") && out.contains("1 note"),
        "{out}"
    );
    let tables = pg.psql_in(
        &url,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
    );
    let mut dump = String::new();
    for table in tables.lines().filter(|t| !t.trim().is_empty()) {
        dump.push_str(&pg.psql_in(&url, &format!("SELECT t::text FROM \"{}\" t", table.trim())));
    }
    for trace in ZED_TRACES {
        assert!(!dump.contains(trace), "{trace} in the database");
        // bytea columns (dedupe keys) print as hex.
        assert!(
            !dump.contains(&hex(trace)),
            "{trace} in the database (as bytes)"
        );
    }
    assert!(dump.contains("parcel 4410 is late"), "Otto is kept");
    the_erased_post_again_is_a_duplicate(&w, &zed_status).await;
    // Zed's own access request now finds only what the desk kept.
    let (ok, export, err) = cli(
        &w,
        &["export", "--author", ZED, "--platform", "mastodon"],
        &env,
    )
    .await;
    assert!(ok, "{err}");
    assert!(export.contains("\"kind\":\"record\""), "{export}");
    for trace in ZED_TRACES {
        assert!(!export.contains(trace), "{trace} in the export:\n{export}");
    }
    drop(bot);
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// `export --author` gives one person's tickets, text and audit, and nobody else's.
#[tokio::test]
async fn an_access_request_exports_one_persons_data() {
    let w = World::new().await;
    let (bot, _) = two_people_write_in(&w, &[]).await;
    note_about_zed(&w).await;
    bot.terminate().await;
    let (ok, out, err) = cli(
        &w,
        &[
            "export",
            "--author",
            &format!("@{ZED}"),
            "--platform",
            "mastodon",
        ],
        &[],
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("Quorvath here, order 66219 never arrived"),
        "{out}"
    );
    assert!(out.contains("\"kind\":\"audit\""), "{out}");
    assert!(
        out.contains("\"kind\":\"person_note\"")
            && out.contains("lives in Flintmoor, prefers e-mail"),
        "{out}"
    );
    assert!(!out.contains("ottokeep") && !out.contains("4410"), "{out}");
    // Without --platform the request is refused as a usage error.
    let (ok, _, err) = cli(&w, &["export", "--author", ZED], &[]).await;
    assert!(!ok && err.contains("--platform"), "{err}");
}

/// `[retention]` on a controlled clock: the ticket closed 31 days ago loses its text,
/// the one closed yesterday keeps it.
#[tokio::test]
async fn retention_anonymises_a_ticket_closed_past_its_days_and_not_a_fresher_one() {
    let w = World::new().await;
    w.extra_config.lock().unwrap().push_str(
        "\n[retention]\ncustomer_text_days = 30\nidentity_days = 30\ncheck_every_minutes = 1\n",
    );
    let start = chrono::Utc::now();
    w.set_clock(start);
    w.mastodon
        .add_mention(ZED, "Quorvath here, order 66219 never arrived");
    let clock = w.clock_file().display().to_string();
    let env = [("MENTIONBRIDGE_CLOCK_FILE", clock.as_str())];
    let bot = w.start_bot_with(&env).await;
    let d = w.slack_driver();
    let old = d.card(1).await;
    assert_eq!(
        d.command(Who::Ana, "resolve 1").await,
        "Done: resolved ticket #1."
    );
    w.set_clock(start + chrono::Duration::days(30));
    w.mastodon
        .add_mention("ottokeep@elsewhere.example", "parcel 4410 is late");
    let fresh = d.card(2).await;
    assert_eq!(
        d.command(Who::Ana, "resolve 2").await,
        "Done: resolved ticket #2."
    );
    w.set_clock(start + chrono::Duration::days(31));
    d.wait_card_text(&old, "removed").await;
    for trace in ZED_TRACES {
        assert!(!d.card_text(&old).contains(trace), "{trace} on the card");
    }
    bot.terminate().await;
    let (ok, export, err) = cli(&w, &["export"], &env).await;
    assert!(ok, "{err}");
    for trace in ZED_TRACES {
        assert!(!export.contains(trace), "{trace} in the export");
    }
    assert!(
        export.contains("parcel 4410 is late"),
        "the fresher ticket keeps its text"
    );
    assert!(export.contains("removed under the retention policy"));
    assert!(d.card_text(&fresh).contains("4410"));
}
