//! The session: `createSession` with the app password only when there is nothing to reuse,
//! `refreshSession` when the access token is stale, and the tokens kept in the store.

use super::xrpc::{Answer, Call, LIMITS};
use super::{Bluesky, BlueskyError};
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A logged-in session, as `createSession`/`refreshSession` return it (the fields we
/// keep). Deliberately not `Debug`: it holds the tokens.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Session {
    pub(super) access_jwt: String,
    pub(super) refresh_jwt: String,
    pub(super) did: String,
    pub(super) handle: String,
}

pub(super) fn session_key(handle: &str) -> String {
    format!("bluesky:session:{handle}")
}

impl Bluesky {
    async fn persist(&self, session: &Session) -> Result<(), BlueskyError> {
        let bytes = serde_json::to_vec(session).expect("a session always serializes");
        self.store
            .set_state(&session_key(&self.config.handle), &bytes)
            .await
            .map_err(|e| BlueskyError::Store(e.to_string()))
    }

    async fn save(&self, session: Session) -> Result<(), BlueskyError> {
        self.persist(&session).await?;
        *self.session.lock().expect("session lock") = session;
        self.store
            .flush()
            .await
            .map_err(|e| BlueskyError::Store(e.to_string()))
    }

    /// `createSession` with the app password. Limited by Bluesky: only when there is no
    /// session to reuse or renew.
    pub(super) async fn login(&self) -> Result<(), BlueskyError> {
        let nsid = "com.atproto.server.createSession";
        let body = json!({
            "identifier": self.config.handle,
            "password": self.config.app_password.expose(),
        });
        tracing::info!(handle = %self.config.handle, "logging in to Bluesky (createSession)");
        let answer = self
            .send(&Call::post(nsid, body), None)
            .await
            .map_err(|e| BlueskyError::Unavailable(e.to_string()))?;
        if !answer.status.is_success() {
            return Err(self.login_failure(nsid, &answer));
        }
        let session: Session =
            serde_json::from_slice(&answer.body).map_err(|e| BlueskyError::Unexpected {
                nsid: nsid.into(),
                reason: e.to_string(),
            })?;
        self.save(session).await
    }

    fn login_failure(&self, nsid: &str, answer: &Answer) -> BlueskyError {
        let said = answer.said();
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            let wait = LIMITS
                .reset_wait(&answer.headers, Utc::now())
                .map(|d| format!("; try again in {} s", d.as_secs().max(1)))
                .unwrap_or_default();
            return BlueskyError::Unavailable(format!(
                "Bluesky limits logins (createSession: 30 per 5 minutes, 300 per day) and answered {said}{wait}"
            ));
        }
        if answer.status.is_server_error() {
            return BlueskyError::Unavailable(format!(
                "Bluesky answered {} for {}: {said}",
                answer.status.as_u16(),
                self.url(nsid)
            ));
        }
        if answer.status == StatusCode::UNAUTHORIZED
            || matches!(
                answer.xrpc_error().map(|e| e.error).as_deref(),
                Some("AuthenticationRequired" | "AuthFactorTokenRequired" | "AccountTakedown")
            )
        {
            return BlueskyError::Login {
                handle: self.config.handle.clone(),
                service: self.config.service_url.clone(),
                said,
            };
        }
        BlueskyError::Refused(format!(
            "Bluesky answered {} for {}: {said} (check bluesky.service_url and bluesky.handle)",
            answer.status.as_u16(),
            self.url(nsid)
        ))
    }

    /// Renew the session after `stale` (the access token that was refused): refresh,
    /// and only if the refresh is refused, log in again.
    pub(super) async fn renew(&self, stale: &str) -> Result<(), BlueskyError> {
        let _one_at_a_time = self.renewing.lock().await;
        // Refresh tokens are single-use: of several replicas sharing the store, one at
        // a time renews, and the others pick up what it stored.
        let lock = format!("lock:{}", session_key(&self.config.handle));
        let renewed = crate::sources::http::exclusively(
            self.store.as_ref(),
            &lock,
            std::time::Duration::from_secs(20),
            async { Ok(self.renew_alone(stale).await) },
        )
        .await
        .map_err(|e| BlueskyError::Unavailable(e.to_string()))?;
        renewed
    }

    async fn renew_alone(&self, stale: &str) -> Result<(), BlueskyError> {
        if let Some(stored) = self
            .store
            .state(&session_key(&self.config.handle))
            .await
            .map_err(|e| BlueskyError::Store(e.to_string()))?
            .and_then(|b| serde_json::from_slice::<Session>(&b).ok())
            .filter(|s| s.access_jwt != stale && !s.access_jwt.is_empty())
        {
            // Renewed meanwhile, here or by another replica.
            *self.session.lock().expect("session lock") = stored;
            return Ok(());
        }
        let current = self.session.lock().expect("session lock").clone();
        if current.access_jwt != stale && !current.access_jwt.is_empty() {
            return Ok(()); // someone else renewed it meanwhile
        }
        if !current.refresh_jwt.is_empty() {
            let nsid = "com.atproto.server.refreshSession";
            let call = Call {
                method: Method::POST,
                nsid,
                query: Vec::new(),
                body: None,
                chat: false,
            };
            let answer = self
                .send(&call, Some(&current.refresh_jwt))
                .await
                .map_err(|e| BlueskyError::Unavailable(e.to_string()))?;
            if answer.status.is_success() {
                let session: Session =
                    serde_json::from_slice(&answer.body).map_err(|e| BlueskyError::Unexpected {
                        nsid: nsid.into(),
                        reason: e.to_string(),
                    })?;
                tracing::info!(handle = %session.handle, "Bluesky session refreshed");
                return self.save(session).await;
            }
            if answer.status == StatusCode::TOO_MANY_REQUESTS || answer.status.is_server_error() {
                return Err(BlueskyError::Unavailable(format!(
                    "Bluesky answered {} for {}: {}",
                    answer.status.as_u16(),
                    self.url(nsid),
                    answer.said()
                )));
            }
            tracing::warn!(said = %answer.said(), "Bluesky refused to refresh the session; logging in again");
        }
        self.login().await
    }
}
