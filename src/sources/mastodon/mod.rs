//! Mastodon (and Mastodon-compatible servers: GoToSocial, Akkoma, Pleroma): mentions from
//! the notifications API (and, when enabled, its streaming API: `stream`), replies as
//! statuses in the thread.
//!
//! Ids are opaque strings ordered by the server, never parsed as numbers. Rate limits are
//! read from `X-RateLimit-*` on every answer; 429 and 5xx are retried by the caller with
//! the server's hint. A reply is sent with an `Idempotency-Key`, and because some servers
//! ignore that header, a retry first looks for our own reply in the status's context.

use crate::config::{MastodonConfig, Secret};
use crate::domain::{text::TextRules, Author, Mention, Platform, Visibility};
use crate::ports::DeliveryError;
use crate::ports::{Batch, MentionStream, Published, Publisher, ReplyRequest, Source};
use crate::sources::http::{self, Gates, RateLimitHeaders};
use crate::wire::hints::HintForm;
use crate::wire::request_path::{self, IdShape};
use chrono::{DateTime, Utc};
use reqwest::{header::HeaderMap, Method, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;

mod endpoint;
pub mod stream;

const PAGE: u32 = 80;
/// Where Mastodon says how much of its request budget is left.
const LIMITS: RateLimitHeaders = RateLimitHeaders {
    remaining: "x-ratelimit-remaining",
    reset: "x-ratelimit-reset",
    reset_form: HintForm::Rfc3339,
};
/// Hashtag timelines page by at most 40.
const TAG_PAGE: u32 = 40;

/// One feed read: its mentions (oldest first), where to continue, and whether more wait.
struct Feed {
    mentions: Vec<Mention>,
    cursor: String,
    more: bool,
}

/// Where each feed of this account continues; stored as the source's one cursor.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct FeedCursors {
    #[serde(default)]
    notifications: Option<String>,
    #[serde(default)]
    hashtags: std::collections::BTreeMap<String, String>,
}

impl FeedCursors {
    fn parse(cursor: Option<&str>) -> FeedCursors {
        match cursor {
            Some(c) if c.starts_with('{') => serde_json::from_str(c).unwrap_or_default(),
            // An older plain cursor is the notifications position.
            Some(c) => FeedCursors {
                notifications: Some(c.to_string()),
                ..FeedCursors::default()
            },
            None => FeedCursors::default(),
        }
    }

    fn encode(&self) -> String {
        serde_json::to_string(self).expect("cursors serialize")
    }
}
/// The cursor before any notification.
const BEGINNING: &str = "0";

/// Why talking to Mastodon failed outside the outbox (start-up checks). The messages
/// already name the URL, the status and what to check.
#[derive(Debug, Error)]
pub enum MastodonError {
    /// Network trouble, 429 or 5xx: worth trying again later.
    #[error("{0}")]
    Unavailable(String),
    /// A 4xx: the token or the URL needs fixing.
    #[error("{0}")]
    Refused(String),
    #[error("Mastodon sent an unexpected answer for {url}: {reason}")]
    Unexpected { url: String, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
struct Account {
    id: String,
    acct: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default, deserialize_with = "crate::sources::follower_count")]
    followers_count: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Status {
    id: String,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    url: Option<String>,
    created_at: DateTime<Utc>,
    account: Account,
    #[serde(default)]
    content: String,
    #[serde(default)]
    spoiler_text: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    in_reply_to_id: Option<String>,
    #[serde(default = "public")]
    visibility: String,
}

fn public() -> String {
    "public".into()
}

#[derive(Debug, Clone, Deserialize)]
struct Notification {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    status: Option<Status>,
}

/// What a feed the desk reads is made of, on the REST API and on the stream alike:
/// notifications (`/api/v1/notifications`, `user:notification`) or statuses (a hashtag's
/// timeline and its stream).
trait FeedItem: for<'de> Deserialize<'de> {
    fn id(&self) -> &str;
    /// The status that is a mention for the desk, if this item carries one.
    fn hit(self) -> Option<Status>;
}

impl FeedItem for Notification {
    fn id(&self) -> &str {
        &self.id
    }

    /// Only a mention notification; other kinds (favourites, follows…) carry none the
    /// desk wants.
    fn hit(self) -> Option<Status> {
        self.status.filter(|_| self.kind == "mention")
    }
}

impl FeedItem for Status {
    fn id(&self) -> &str {
        &self.id
    }

    /// Kept when it is public: a tag's timeline and its stream hold public statuses
    /// only, so anything else is a server's mistake.
    fn hit(self) -> Option<Status> {
        (self.visibility == "public").then_some(self)
    }
}

#[derive(Debug, Deserialize)]
struct Context {
    #[serde(default)]
    descendants: Vec<Status>,
}

#[derive(Debug, Deserialize)]
struct ServerError {
    error: String,
}

pub struct Mastodon {
    http: reqwest::Client,
    base: String,
    token: Secret,
    me: Account,
    config: MastodonConfig,
    rules: RwLock<TextRules>,
    /// No request before this instant: the server said its budget is spent.
    gate: Gates<()>,
    /// The streaming connection, when `streaming` is on.
    stream: Option<Arc<stream::MastodonStream>>,
}

impl Mastodon {
    /// Check the token (`verify_credentials`) and read the instance's text limits.
    pub async fn connect(config: &MastodonConfig) -> Result<Mastodon, MastodonError> {
        let http = http::client().map_err(MastodonError::Unavailable)?;
        let mut client = Mastodon {
            http,
            base: config.instance_url.clone(),
            token: config.access_token.clone(),
            me: Account {
                id: String::new(),
                acct: String::new(),
                username: String::new(),
                display_name: String::new(),
                url: None,
                followers_count: None,
            },
            config: config.clone(),
            rules: RwLock::new(TextRules::default()),
            gate: Gates::default(),
            stream: None,
        };
        client.me = client
            .get_json("/api/v1/accounts/verify_credentials")
            .await?;
        if config.streaming {
            client.stream = Some(Arc::new(stream::MastodonStream::new(
                client.http.clone(),
                config,
                client.me.clone(),
            )));
        }
        let rules = client.instance_rules().await;
        *client.rules.write().expect("rules lock") = rules;
        tracing::info!(
            account = %client.me.acct,
            max_chars = rules.max_chars,
            "Mastodon account verified"
        );
        Ok(client)
    }

    pub fn account(&self) -> &str {
        &self.me.acct
    }

    async fn instance_rules(&self) -> TextRules {
        #[derive(Deserialize)]
        struct Instance {
            configuration: Option<Configuration>,
        }
        #[derive(Deserialize)]
        struct Configuration {
            statuses: Option<Statuses>,
        }
        #[derive(Deserialize)]
        struct Statuses {
            max_characters: Option<usize>,
            characters_reserved_per_url: Option<usize>,
        }
        let defaults = TextRules::default();
        match self.get_json::<Instance>("/api/v2/instance").await {
            Ok(Instance {
                configuration:
                    Some(Configuration {
                        statuses: Some(s), ..
                    }),
            }) => TextRules::mastodon(
                s.max_characters.unwrap_or(defaults.max_chars),
                s.characters_reserved_per_url.unwrap_or(23),
            ),
            Ok(_) => defaults,
            Err(e) => {
                tracing::warn!(error = %e, "instance limits unknown, assuming Mastodon's defaults (500 characters)");
                defaults
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn wait_for_budget(&self) {
        if let Some(t) = self.gate.opens_at(&()) {
            tracing::info!(
                wait_ms = (t - Instant::now()).as_millis() as u64,
                "Mastodon rate limit reached, waiting for reset"
            );
            tokio::time::sleep_until(t).await;
        }
    }

    /// Remember when the server's request budget is spent.
    fn note_limits(&self, headers: &HeaderMap) {
        if let Some(reset) = LIMITS.spent(headers, 1, Utc::now()) {
            self.gate.shut((), reset.min(Duration::from_secs(300)));
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<http::Answer, DeliveryError> {
        self.wait_for_budget().await;
        let url = self.url(path);
        let req = build(
            self.http
                .request(method, &url)
                .bearer_auth(self.token.expose()),
        );
        http::exchange(
            req,
            || format!("Mastodon at {} could not be reached", self.base),
            || format!("Mastodon answer from {url} was cut off"),
            |headers| self.note_limits(headers),
        )
        .await
    }

    /// Turn a non-success answer into the right kind of failure, with the server's words.
    fn failure(
        &self,
        path: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> DeliveryError {
        let said = serde_json::from_slice::<ServerError>(body)
            .map(|e| e.error)
            .unwrap_or_else(|_| http::body_excerpt(body));
        let url = self.url(path);
        if http::is_transient(status) {
            let after = LIMITS.retry_wait(status, headers, Utc::now());
            return DeliveryError::Retry {
                after,
                reason: format!("Mastodon answered {} for {url}: {said}", status.as_u16()),
            };
        }
        let hint = match status {
            StatusCode::UNAUTHORIZED => {
                format!("{said} (check the token in mastodon.access_token)")
            }
            StatusCode::FORBIDDEN => {
                format!("{said} (the token needs read:notifications and write:statuses)")
            }
            _ => said,
        };
        DeliveryError::Permanent {
            reason: format!("Mastodon answered {} for {url}: {hint}", status.as_u16()),
        }
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, MastodonError> {
        let body = self.get(path).await.map_err(|e| {
            http::failure_at_start(e, MastodonError::Unavailable, MastodonError::Refused)
        })?;
        serde_json::from_slice(&body).map_err(|e| MastodonError::Unexpected {
            url: self.url(path),
            reason: e.to_string(),
        })
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, DeliveryError> {
        let (status, headers, body) = self.send(Method::GET, path, |r| r).await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(self.failure(path, status, &headers, &body))
        }
    }

    /// The mention a status is for this account, as the poll and the stream both read
    /// it; our own statuses are none.
    fn mention_of(me: &Account, status: Status) -> Option<Mention> {
        (status.account.id != me.id).then(|| Self::to_mention(&me.acct, status))
    }

    fn to_mention(account: &str, status: Status) -> Mention {
        let text = html_to_text(&status.content);
        let text = if status.spoiler_text.is_empty() {
            text
        } else {
            format!("CW: {}\n{}", status.spoiler_text, text)
        };
        Mention {
            platform: Platform::Mastodon,
            network: None,
            account: account.to_string(),
            url: status
                .url
                .clone()
                .or(status.uri.clone())
                .unwrap_or_default(),
            author: Author {
                handle: status.account.acct.clone(),
                name: if status.account.display_name.is_empty() {
                    status.account.username.clone()
                } else {
                    status.account.display_name.clone()
                },
                profile_url: status.account.url.clone().unwrap_or_default(),
                id: Some(status.account.id.clone()),
                followers: status.account.followers_count,
            },
            text,
            language: status.language,
            created_at: status.created_at,
            in_reply_to: status.in_reply_to_id,
            visibility: match status.visibility.as_str() {
                "unlisted" => Visibility::Unlisted,
                "private" => Visibility::Private,
                "direct" => Visibility::Direct,
                _ => Visibility::Public,
            },
            remote_id: status.id,
            reply_context: None,
            external_id: None,
            detected_language: None,
        }
    }

    async fn poll_once(&self, cursor: Option<&str>) -> Result<Batch, DeliveryError> {
        let mut position = FeedCursors::parse(cursor);
        let include = if self.config.include_filtered {
            "&include_filtered=true"
        } else {
            ""
        };
        let notifications = self
            .read_feed::<Notification>(
                "/api/v1/notifications?types[]=mention",
                include,
                PAGE,
                position.notifications.as_deref(),
            )
            .await?;
        position.notifications = Some(notifications.cursor);
        let mut mentions = notifications.mentions;
        let mut more = notifications.more;
        // Keyword watches: the public timeline of each hashtag.
        for tag in &self.config.hashtags {
            let path = request_path::path(
                "/api/v1/timelines/tag/{}",
                &[("hashtag", IdShape::Hashtag, tag)],
            )? + "?";
            let feed = self
                .read_feed::<Status>(
                    &path,
                    "",
                    TAG_PAGE,
                    position.hashtags.get(tag).map(String::as_str),
                )
                .await?;
            position.hashtags.insert(tag.clone(), feed.cursor);
            mentions.extend(feed.mentions);
            more |= feed.more;
        }
        mentions.sort_by_key(|m| m.created_at);
        Ok(Batch {
            mentions,
            cursor: Some(position.encode()),
            more,
        })
    }

    /// Read one feed of `T`s forward from its cursor, newest first as Mastodon sends
    /// them; our own statuses are left out.
    async fn read_feed<T: FeedItem>(
        &self,
        path: &str,
        extra: &str,
        page_size: u32,
        cursor: Option<&str>,
    ) -> Result<Feed, DeliveryError> {
        let (limit, position) = match cursor {
            // min_id walks forward from the cursor: the oldest unseen page first, so a
            // burst larger than a page is never skipped.
            Some(c) => (page_size, format!("&min_id={}", urlencode(c))),
            // First start: take the newest few, so a new install does not flood the channel.
            None => (self.config.initial_backfill.max(1), String::new()),
        };
        let path = format!("{path}&limit={limit}{position}{extra}").replace("?&", "?");
        let body = self.get(&path).await?;
        let page = serde_json::from_slice::<Vec<T>>(&body).map(|page| {
            page.into_iter()
                .map(|item| (item.id().to_string(), item.hit()))
                .collect::<Vec<_>>()
        });
        let items = page.map_err(|e| DeliveryError::Permanent {
            reason: format!(
                "Mastodon sent a page we cannot read from {}: {e}",
                self.url(&path)
            ),
        })?;
        // Newest first on the wire; the newest id is where the next read starts. A first
        // start with nothing at all still fixes a starting point ("0" sorts before every
        // Mastodon, GoToSocial and Pleroma id), so a burst arriving before the next poll
        // is read in full instead of only its newest page.
        let next = items
            .first()
            .map(|(id, _)| id.clone())
            .or(cursor.map(String::from))
            .unwrap_or_else(|| BEGINNING.to_string());
        let more = items.len() as u32 >= limit && cursor.is_some();
        let mut mentions: Vec<Mention> = items
            .into_iter()
            .filter_map(|(_, status)| Self::mention_of(&self.me, status?))
            .collect();
        mentions.reverse();
        if cursor.is_none() && self.config.initial_backfill == 0 {
            mentions.clear();
        }
        Ok(Feed {
            mentions,
            cursor: next,
            more,
        })
    }

    /// A retry may follow a send whose answer we never saw: our reply may exist already.
    async fn find_our_reply(
        &self,
        reply: &ReplyRequest,
    ) -> Result<Option<Published>, DeliveryError> {
        let path = request_path::path(
            "/api/v1/statuses/{}/context",
            &[("Mastodon status id", IdShape::Opaque, &reply.in_reply_to)],
        )?;
        let body = self.get(&path).await?;
        let context: Context = serde_json::from_slice(&body).map_err(|e| {
            DeliveryError::retry(format!(
                "Mastodon sent a context we cannot read from {}: {e}",
                self.url(&path)
            ))
        })?;
        let earliest = reply.queued_at - chrono::Duration::minutes(2);
        Ok(context
            .descendants
            .into_iter()
            .find(|s| {
                s.account.id == self.me.id
                    && s.in_reply_to_id.as_deref() == Some(reply.in_reply_to.as_str())
                    && s.created_at >= earliest
                    && !reply.earlier_replies.contains(&s.id)
            })
            .map(|s| Published {
                url: s.url.clone().or(s.uri.clone()).unwrap_or_default(),
                remote_id: s.id,
            }))
    }

    async fn post_reply(&self, reply: &ReplyRequest) -> Result<Published, DeliveryError> {
        if reply.maybe_sent {
            if let Some(found) = self.find_our_reply(reply).await? {
                tracing::info!(ticket = %reply.ticket, status = %found.remote_id, "reply was already published before the restart; not sending again");
                return Ok(found);
            }
        }
        let body = serde_json::json!({
            "status": reply.text,
            "in_reply_to_id": reply.in_reply_to,
            "visibility": match reply.visibility {
                Visibility::Public => "public",
                Visibility::Unlisted => "unlisted",
                Visibility::Private => "private",
                Visibility::Direct => "direct",
            },
        });
        let path = "/api/v1/statuses";
        let (status, headers, resp) = self
            .send(Method::POST, path, |r| {
                r.header("Idempotency-Key", &reply.idempotency_key)
                    .json(&body)
            })
            .await?;
        if !status.is_success() {
            return Err(self.failure(path, status, &headers, &resp));
        }
        let posted: Status = serde_json::from_slice(&resp).map_err(|e| {
            DeliveryError::retry(format!(
                "Mastodon accepted the reply but sent an answer we cannot read: {e}"
            ))
        })?;
        Ok(Published {
            url: posted
                .url
                .clone()
                .or(posted.uri.clone())
                .unwrap_or_default(),
            remote_id: posted.id,
        })
    }
}

#[async_trait::async_trait]
impl Source for Mastodon {
    fn cursor_key(&self) -> String {
        format!("mastodon:{}:{}", self.base, self.me.id)
    }

    fn poll_interval(&self) -> Duration {
        self.config.poll_interval
    }

    async fn poll(&self, cursor: Option<&str>) -> Result<Batch, DeliveryError> {
        self.poll_once(cursor).await
    }

    fn stream(&self) -> Option<Arc<dyn MentionStream>> {
        self.stream.clone().map(|s| s as Arc<dyn MentionStream>)
    }
}

#[async_trait::async_trait]
impl Publisher for Mastodon {
    fn platform(&self) -> Platform {
        Platform::Mastodon
    }

    fn text_rules(&self) -> TextRules {
        *self.rules.read().expect("rules lock")
    }

    async fn publish(&self, reply: &ReplyRequest) -> Result<Published, DeliveryError> {
        self.post_reply(reply).await
    }
}

/// A page of `/api/v1/notifications` read the way the poller reads it: the mentions
/// among the notifications, for `account` (the fuzz tests feed it arbitrary bytes).
pub fn mentions_in_notifications(
    account: &str,
    body: &[u8],
) -> Result<Vec<Mention>, serde_json::Error> {
    let page: Vec<Notification> = serde_json::from_slice(body)?;
    Ok(page
        .into_iter()
        .filter_map(FeedItem::hit)
        .map(|s| Mastodon::to_mention(account, s))
        .collect())
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Mastodon sends status content as HTML; agents read plain text. The HTML is parsed by a
/// real HTML parser (servers differ in what they emit: GoToSocial, Akkoma…), entities are
/// decoded here, and the text is escaped again for each chat surface when a card renders.
pub fn html_to_text(html: &str) -> String {
    let fragment = scraper::Html::parse_fragment(html);
    let mut out = String::with_capacity(html.len());
    write_text(fragment.root_element(), &mut out);
    // Paragraphs are separated by one blank line, however the markup nested them.
    let mut tidy = String::with_capacity(out.len());
    let mut newlines = 0;
    for c in out.trim().chars() {
        if c == '\n' {
            newlines += 1;
            if newlines > 2 {
                continue;
            }
        } else {
            newlines = 0;
        }
        tidy.push(c);
    }
    tidy
}

fn write_text(element: scraper::ElementRef<'_>, out: &mut String) {
    for child in element.children() {
        if let Some(text) = child.value().as_text() {
            out.push_str(text);
        } else if let Some(el) = scraper::ElementRef::wrap(child) {
            match el.value().name() {
                "br" => out.push('\n'),
                "script" | "style" | "template" => {}
                "p" | "div" | "blockquote" | "pre" | "ul" | "ol" | "h1" | "h2" | "h3" | "h4"
                | "h5" | "h6" => {
                    write_text(el, out);
                    out.push_str("\n\n");
                }
                "li" => {
                    write_text(el, out);
                    out.push('\n');
                }
                _ => write_text(el, out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_html_becomes_readable_text() {
        let html = r#"<p><span class="h-card"><a href="https://m.example/@brand" class="u-url mention">@<span>brand</span></a></span> my order &amp; refund?</p><p>line<br />two &#39;ok&#39; &#x1F600;</p>"#;
        assert_eq!(
            html_to_text(html),
            "@brand my order & refund?\n\nline\ntwo 'ok' 😀"
        );
        assert_eq!(html_to_text("a &unknown; b & c"), "a &unknown; b & c");
    }

    #[test]
    fn entities_that_decode_to_markup_stay_text_and_hidden_markup_is_not_read() {
        // `&lt;!channel&gt;` decodes to `<!channel>`: plain text here, escaped by every
        // surface when it renders. Comments and scripts are not the post's words.
        let html = "<p>&lt;!channel&gt; &lt;@U0ANA&gt; &amp;lt;</p><!-- <b>x</b> --><script>alert(1)</script><p>ok</p>";
        assert_eq!(html_to_text(html), "<!channel> <@U0ANA> &lt;\n\nok");
        // Unclosed and broken markup is still text, never a panic.
        assert_eq!(html_to_text("<p>a <b>b <i>c"), "a b c");
        assert_eq!(html_to_text("a < b > c"), "a < b > c");
        assert_eq!(html_to_text("<p></p><p></p><p>x</p>"), "x");
    }
}
