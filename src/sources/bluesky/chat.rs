//! Private replies as Bluesky chat messages, proxied through the PDS; a retry looks for
//! our message in the conversation first.

use super::publish::link_facets;
use super::wire::{parse_time, ConvoOutput, MessageView, MessagesPage};
use super::xrpc::Call;
use super::Bluesky;
use crate::ports::{DeliveryError, Published, ReplyRequest};
use serde_json::{json, Value};

impl Bluesky {
    /// A retry may follow a send whose answer we never saw: our message may be there.
    async fn find_our_message(
        &self,
        convo: &str,
        reply: &ReplyRequest,
    ) -> Result<Option<String>, DeliveryError> {
        let page: MessagesPage = self
            .call_json(
                Call::get(
                    "chat.bsky.convo.getMessages",
                    vec![("convoId", convo.to_string()), ("limit", "100".into())],
                )
                .chat(),
            )
            .await?;
        let me = self.did();
        let earliest = reply.queued_at - chrono::Duration::minutes(2);
        Ok(page
            .messages
            .into_iter()
            .filter_map(|m| serde_json::from_value::<MessageView>(m).ok())
            .find(|m| {
                m.sender.did == me
                    && m.text.as_deref() == Some(reply.text.as_str())
                    && parse_time(&m.sent_at).is_some_and(|t| t >= earliest)
                    && !reply.earlier_replies.contains(&m.id)
            })
            .map(|m| m.id))
    }

    pub(super) async fn publish_message(
        &self,
        reply: &ReplyRequest,
    ) -> Result<Published, DeliveryError> {
        let member = reply
            .author_id
            .clone()
            .filter(|d| d.starts_with("did:"))
            .ok_or_else(|| DeliveryError::Permanent {
                reason: format!(
                    "no Bluesky DID is known for @{}, so no chat message can be sent",
                    reply.author_handle
                ),
            })?;
        let convo: ConvoOutput = self
            .call_json(
                Call::get(
                    "chat.bsky.convo.getConvoForMembers",
                    vec![("members", member)],
                )
                .chat(),
            )
            .await?;
        let convo = convo.convo.id;
        let url = format!("https://bsky.app/messages/{convo}");
        if reply.maybe_sent {
            if let Some(id) = self.find_our_message(&convo, reply).await? {
                tracing::info!(ticket = %reply.ticket, message = %id, "reply was already published before the restart; not sending again");
                return Ok(Published { remote_id: id, url });
            }
        }
        let mut message = json!({"text": reply.text});
        let facets = link_facets(&reply.text);
        if !facets.is_empty() {
            message["facets"] = Value::Array(facets);
        }
        let sent: MessageView = self
            .call_json(
                Call::post(
                    "chat.bsky.convo.sendMessage",
                    json!({"convoId": convo, "message": message}),
                )
                .chat(),
            )
            .await?;
        Ok(Published {
            remote_id: sent.id,
            url,
        })
    }
}
