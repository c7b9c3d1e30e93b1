//! OAuth 2.0 user context: the session kept in the store, and the refresh that trades a
//! refresh token for an access token and X's rotated refresh token.

use super::request::Endpoint;
use super::wire::x_said;
use super::{Auth, XError, X};
use crate::config::{Secret, XConfig};
use crate::ports::DeliveryError;
use crate::ports::Store;
use crate::sources::http;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// What we keep of an OAuth 2.0 session in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredTokens {
    refresh_token: String,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    /// SHA-256 of the configured refresh token this session descends from: a new token
    /// in the config (the app was authorised again) wins over the stored one.
    origin: String,
}

fn oauth2_key(user_id: &str) -> String {
    format!("x:oauth2:{user_id}")
}

fn fingerprint(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The session to start from: the stored (rotated) one while it descends from the
/// configured refresh token, else the configured token itself.
pub(super) async fn starting_session(
    store: &dyn Store,
    config: &XConfig,
    refresh_token: &Secret,
) -> Result<StoredTokens, XError> {
    let origin = fingerprint(refresh_token.expose());
    let stored = store
        .state(&oauth2_key(&config.user_id))
        .await
        .map_err(|e| XError::Store(e.to_string()))?
        .and_then(|b| serde_json::from_slice::<StoredTokens>(&b).ok())
        .filter(|s| s.origin == origin);
    Ok(match stored {
        Some(s) => {
            tracing::info!("X OAuth 2.0: using the stored (rotated) refresh token");
            s
        }
        None => StoredTokens {
            refresh_token: refresh_token.expose().to_string(),
            access_token: None,
            expires_at: None,
            origin,
        },
    })
}

impl X {
    /// `Bearer <access token>`, refreshed first when it expires within a minute.
    pub(super) async fn bearer(
        &self,
        session: &tokio::sync::Mutex<StoredTokens>,
    ) -> Result<String, DeliveryError> {
        let mut s = session.lock().await;
        let fresh = s.access_token.is_some()
            && s.expires_at
                .is_none_or(|t| t > Utc::now() + chrono::Duration::seconds(60));
        if !fresh {
            self.refresh(&mut s).await?;
        }
        Ok(bearer_of(&s))
    }

    /// X answered 401 to `sent` (the `Authorization` we sent): refresh the OAuth 2.0
    /// access token, unless another task did while we waited. True when the request is
    /// worth sending again; OAuth 1.0a has nothing to refresh.
    pub(super) async fn renew_after_401(&self, sent: &str) -> Result<bool, DeliveryError> {
        let Auth::Oauth2 { session, .. } = &self.auth else {
            return Ok(false);
        };
        let mut s = session.lock().await;
        if sent == bearer_of(&s) {
            tracing::info!("X answered 401; refreshing the OAuth 2.0 access token once");
            self.refresh(&mut s).await?;
        }
        Ok(true)
    }

    /// Trade the refresh token for a new access token (and X's rotated refresh token),
    /// stored and flushed before it is used. One replica at a time: whoever comes second
    /// finds the tokens the first stored and uses them instead of spending the (now
    /// revoked) refresh token it knew.
    async fn refresh(&self, s: &mut StoredTokens) -> Result<(), DeliveryError> {
        let lock = format!("lock:{}", oauth2_key(&self.config.user_id));
        let known = s.refresh_token.clone();
        http::exclusively(
            self.store.as_ref(),
            &lock,
            std::time::Duration::from_secs(20),
            async {
                let stored = self
                    .store
                    .state(&oauth2_key(&self.config.user_id))
                    .await
                    .map_err(|e| DeliveryError::retry(format!("cannot read X tokens: {e}")))?
                    .and_then(|b| serde_json::from_slice::<StoredTokens>(&b).ok())
                    .filter(|t| t.origin == s.origin && t.refresh_token != known);
                if let Some(newer) = stored {
                    tracing::info!(
                        "X OAuth 2.0 tokens were refreshed by another replica; using them"
                    );
                    *s = newer;
                    if s.access_token.is_some() {
                        return Ok(());
                    }
                }
                self.refresh_now(s).await
            },
        )
        .await
    }

    async fn refresh_now(&self, s: &mut StoredTokens) -> Result<(), DeliveryError> {
        let Auth::Oauth2 {
            client_id,
            client_secret,
            ..
        } = &self.auth
        else {
            return Ok(());
        };
        let url = self.url("/2/oauth2/token");
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", s.refresh_token.as_str()),
            ("client_id", client_id.as_str()),
        ];
        let mut req = self.http.post(&url).form(&form);
        if let Some(secret) = client_secret {
            req = req.basic_auth(client_id, Some(secret.expose()));
        }
        self.budget.count_request().await;
        let (status, headers, body) = http::exchange(
            req,
            || {
                format!(
                    "X at {} could not be reached to refresh the OAuth 2.0 token",
                    self.base
                )
            },
            || "X's token answer was cut off".into(),
            |_| {},
        )
        .await?;
        if !status.is_success() {
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                return Err(self.failure(Endpoint::Token, status, &headers, &body));
            }
            #[derive(Deserialize)]
            struct OauthError {
                #[serde(default)]
                error: String,
                #[serde(default)]
                error_description: String,
            }
            let said = serde_json::from_slice::<OauthError>(&body)
                .map(|e| format!("{} {}", e.error, e.error_description))
                .unwrap_or_else(|_| x_said(&body));
            return Err(DeliveryError::Permanent {
                reason: format!(
                    "X refused the OAuth 2.0 refresh token ({} {}): {} (authorise the app again \
                     with the offline.access scope and put the new token in x.refresh_token; \
                     check x.client_id and x.client_secret)",
                    status.as_u16(),
                    url,
                    said.trim()
                ),
            });
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            DeliveryError::retry(format!("X sent a token answer we cannot read: {e}"))
        })?;
        s.access_token = Some(answer.access_token);
        // X's number: out of chrono's range it would panic; then treat the token as
        // not known to expire (it is refreshed on its first 401).
        s.expires_at = answer
            .expires_in
            .and_then(chrono::Duration::try_seconds)
            .and_then(|d| Utc::now().checked_add_signed(d));
        if let Some(rt) = answer.refresh_token {
            s.refresh_token = rt;
        }
        let bytes = serde_json::to_vec(&*s).expect("tokens serialise");
        let store_err = |e: crate::ports::StoreError| {
            DeliveryError::retry(format!("cannot store X tokens: {e}"))
        };
        self.store
            .set_state(&oauth2_key(&self.config.user_id), &bytes)
            .await
            .map_err(store_err)?;
        self.store.flush().await.map_err(store_err)?;
        tracing::info!("X OAuth 2.0 access token refreshed; the rotated refresh token is stored");
        Ok(())
    }
}

fn bearer_of(s: &StoredTokens) -> String {
    format!("Bearer {}", s.access_token.as_deref().unwrap_or(""))
}
