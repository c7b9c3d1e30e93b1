//! Replies: a post in the thread or a direct message, each looked for among ours first when
//! an earlier try may have reached X.

use super::request::{Call, Endpoint};
use super::wire::{is_duplicate, unescape, DmCreated, DmEvent, One, Page, Tweet};
use super::X;
use crate::ports::{DeliveryError, Published, ReplyRequest};
use crate::wire::request_path::{self, IdShape};
use reqwest::{Method, StatusCode};

/// Our recent posts searched for a reply that may already exist.
const OWN_RECENT: u32 = 20;

impl X {
    /// Our reply among our recent posts: a retry may follow a post whose answer we never saw.
    async fn find_our_tweet(
        &self,
        reply: &ReplyRequest,
    ) -> Result<Option<Published>, DeliveryError> {
        let call = Call {
            method: Method::GET,
            endpoint: Endpoint::Timeline,
            path: request_path::path(
                "/2/users/{}/tweets",
                &[("X user id", IdShape::Snowflake, &self.me.id)],
            )?,
            query: vec![
                ("max_results", OWN_RECENT.to_string()),
                ("tweet.fields", "referenced_tweets,created_at".into()),
            ],
            json: None,
        };
        let page: Page<Tweet> = self.fetch_page(&call).await?;
        let earliest = reply.queued_at - chrono::Duration::minutes(1);
        let want = comparable(without_leading_mentions(&reply.text));
        Ok(page
            .data
            .into_iter()
            .find(|t| {
                t.replied_to() == Some(reply.in_reply_to.as_str())
                    && comparable(without_leading_mentions(&unescape(&t.text))) == want
                    && t.created_at.is_none_or(|c| c >= earliest)
                    && !reply.earlier_replies.contains(&t.id)
            })
            .map(|t| Published {
                url: format!("https://x.com/i/web/status/{}", t.id),
                remote_id: t.id,
            }))
    }

    pub(super) async fn post_reply(
        &self,
        reply: &ReplyRequest,
    ) -> Result<Published, DeliveryError> {
        if reply.maybe_sent {
            if let Some(found) = self.find_our_tweet(reply).await? {
                tracing::info!(ticket = %reply.ticket, post = %found.remote_id, "reply was already published before the restart; not sending again");
                return Ok(found);
            }
        }
        let call = Call {
            method: Method::POST,
            endpoint: Endpoint::CreateTweet,
            path: "/2/tweets".into(),
            query: vec![],
            // X v2 puts the replied-to author's @handle in front of a reply itself and
            // does not count it, so the text is the agent's alone. The body is checked
            // against X's schema: `reply` takes only `in_reply_to_tweet_id` (and
            // `exclude_reply_user_ids`).
            json: Some(serde_json::json!({
                "text": reply.text,
                "reply": { "in_reply_to_tweet_id": reply.in_reply_to },
            })),
        };
        let (status, headers, body) = self.send(&call).await?;
        if status == StatusCode::FORBIDDEN && is_duplicate(&body) {
            // X refuses the same text twice: an earlier try did get through.
            if let Some(found) = self.find_our_tweet(reply).await? {
                tracing::info!(ticket = %reply.ticket, post = %found.remote_id, "X says the reply is a duplicate; found the one already published");
                return Ok(found);
            }
        }
        if !status.is_success() {
            return Err(self.failure(Endpoint::CreateTweet, status, &headers, &body));
        }
        let posted: One<Tweet> = serde_json::from_slice(&body).map_err(|e| {
            DeliveryError::retry(format!(
                "X accepted the reply but sent an answer we cannot read: {e}"
            ))
        })?;
        Ok(Published {
            url: format!("https://x.com/i/web/status/{}", posted.data.id),
            remote_id: posted.data.id,
        })
    }

    /// Our message in the conversation with `author_id`, sent since the reply was queued.
    async fn find_our_dm(
        &self,
        reply: &ReplyRequest,
        author_id: &str,
    ) -> Result<Option<Published>, DeliveryError> {
        let call = Call {
            method: Method::GET,
            endpoint: Endpoint::DmEvents,
            path: request_path::path(
                "/2/dm_conversations/with/{}/dm_events",
                &[("X author id", IdShape::Snowflake, author_id)],
            )?,
            query: vec![
                ("event_types", "MessageCreate".into()),
                (
                    "dm_event.fields",
                    "id,text,event_type,created_at,sender_id,dm_conversation_id".into(),
                ),
                ("max_results", "50".into()),
            ],
            json: None,
        };
        let page: Page<DmEvent> = self.fetch_page(&call).await?;
        let earliest = reply.queued_at - chrono::Duration::minutes(1);
        let want = comparable(&reply.text);
        Ok(page
            .data
            .into_iter()
            .find(|e| {
                e.sender_id.as_deref() == Some(self.me.id.as_str())
                    && comparable(&unescape(&e.text)) == want
                    && e.created_at.is_none_or(|c| c >= earliest)
                    && !reply.earlier_replies.contains(&e.id)
            })
            .map(|e| Published {
                remote_id: e.id,
                url: "https://x.com/messages".into(),
            }))
    }

    pub(super) async fn send_dm(&self, reply: &ReplyRequest) -> Result<Published, DeliveryError> {
        let Some(author_id) = reply.author_id.as_deref().filter(|a| !a.is_empty()) else {
            return Err(DeliveryError::Permanent {
                reason: format!(
                    "no X user id is known for @{}, so no direct message can be sent",
                    reply.author_handle
                ),
            });
        };
        if reply.maybe_sent {
            if let Some(found) = self.find_our_dm(reply, author_id).await? {
                tracing::info!(ticket = %reply.ticket, dm_event = %found.remote_id, "direct message was already sent before the restart; not sending again");
                return Ok(found);
            }
        }
        let call = Call {
            method: Method::POST,
            endpoint: Endpoint::SendDm,
            path: request_path::path(
                "/2/dm_conversations/with/{}/messages",
                &[("X author id", IdShape::Snowflake, author_id)],
            )?,
            query: vec![],
            json: Some(serde_json::json!({ "text": reply.text })),
        };
        let (status, headers, body) = self.send(&call).await?;
        if !status.is_success() {
            return Err(self.failure(Endpoint::SendDm, status, &headers, &body));
        }
        let created: One<DmCreated> = serde_json::from_slice(&body).map_err(|e| {
            DeliveryError::retry(format!(
                "X accepted the direct message but sent an answer we cannot read: {e}"
            ))
        })?;
        Ok(Published {
            remote_id: created.data.dm_event_id,
            url: "https://x.com/messages".into(),
        })
    }
}

/// The text after the @mentions it starts with: X stores a reply with the mentions it
/// filled in itself in front of what we sent.
fn without_leading_mentions(text: &str) -> &str {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix('@') {
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if end == 0 {
            break;
        }
        rest = after[end..].trim_start();
    }
    rest
}

/// A text as compared with what X stored: links become t.co links there, and
/// surrounding whitespace may differ.
fn comparable(text: &str) -> String {
    text.split_whitespace()
        .map(|w| {
            if w.starts_with("http://") || w.starts_with("https://") {
                "<link>"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::super::wire::unescape;
    use super::*;

    #[test]
    fn our_reply_is_recognised_behind_the_mentions_x_filled_in() {
        assert_eq!(without_leading_mentions("@alice @bob thanks!"), "thanks!");
        assert_eq!(without_leading_mentions("thanks @alice"), "thanks @alice");
        assert_eq!(without_leading_mentions("@ alone"), "@ alone");
        assert_eq!(without_leading_mentions("@alice"), "");
    }

    #[test]
    fn texts_compare_despite_escaping_and_shortened_links() {
        assert_eq!(unescape("a &amp;lt; b &lt; c &gt; d"), "a &lt; b < c > d");
        assert_eq!(
            comparable(&unescape("@ana see https://t.co/abc  &amp; thanks")),
            comparable("@ana see https://example.com/long/path & thanks")
        );
        assert_ne!(comparable("@ana yes"), comparable("@ana no"));
    }
}
