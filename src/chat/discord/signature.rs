//! Discord's HTTP interactions are signed with the application's Ed25519 key over
//! `timestamp + body`. serenity's `Verifier` checks the signature; it does not check the
//! timestamp's age, so a captured request could be replayed forever: we refuse anything
//! older than five minutes.

use crate::wire::freshness::{check_request_age, Staleness};
use serenity::interactions_endpoint::Verifier;
use thiserror::Error;

impl From<Staleness> for SignatureError {
    fn from(s: Staleness) -> Self {
        match s {
            Staleness::NotATime => SignatureError::BadTimestamp,
            Staleness::TooOld(skew) => SignatureError::Stale(skew),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing X-Signature-Ed25519 or X-Signature-Timestamp header")]
    Missing,
    #[error("X-Signature-Timestamp is not a Unix time")]
    BadTimestamp,
    #[error("request is {0} s away from now (more than 5 minutes): refused as a possible replay")]
    Stale(i64),
    #[error("invalid request signature")]
    Mismatch,
}

pub struct InteractionVerifier(Verifier);

/// The configured public key is not an Ed25519 key.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("the Discord public key is not 64 hex characters of a valid Ed25519 key")]
pub struct BadPublicKey;

impl InteractionVerifier {
    /// Fails closed: there is no verifier without a real key (serenity's own constructor
    /// panics on a bad one).
    pub fn new(public_key_hex: &str) -> Result<InteractionVerifier, BadPublicKey> {
        let bytes: [u8; 32] = hex::decode(public_key_hex.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(BadPublicKey)?;
        Verifier::try_new(bytes)
            .map(InteractionVerifier)
            .map_err(|_| BadPublicKey)
    }

    pub fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), SignatureError> {
        let (Some(sig), Some(ts)) = (signature, timestamp) else {
            return Err(SignatureError::Missing);
        };
        check_request_age(ts, now_unix)?;
        self.0
            .verify(sig, ts, body)
            .map_err(|_| SignatureError::Mismatch)
    }
}
