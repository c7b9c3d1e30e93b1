//! Request paths with ids from outside in them. A status id from a Mastodon server, an X
//! author id, a Discord interaction token: each becomes one path segment only after its
//! shape is checked, and is then percent-encoded by the `url` crate, so an id such as
//! `../../admin` or `1?x=y#` can never change which endpoint a request reaches.

use crate::ports::DeliveryError;
use thiserror::Error;

/// What an id must look like before it may become a path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdShape {
    /// A decimal 64-bit snowflake (X, Discord).
    Snowflake,
    /// An id a server chose (Mastodon: numbers; GoToSocial: ULIDs; Pleroma/Akkoma: flake
    /// ids): letters, digits, `-`, `_`, `.`, `~`, at most 128 of them.
    Opaque,
    /// A token of the same alphabet, longer (Discord's interaction tokens).
    Token,
    /// A hashtag: letters and digits of any script, and `_`.
    Hashtag,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{what} {shown} is not a valid id; the request was not sent")]
pub struct BadId {
    pub what: &'static str,
    /// The start of the id, quoted, for the log: enough to recognise it, never a token.
    shown: String,
}

impl From<BadId> for DeliveryError {
    fn from(e: BadId) -> Self {
        DeliveryError::Permanent {
            reason: e.to_string(),
        }
    }
}

impl IdShape {
    fn admits(self, id: &str) -> bool {
        let opaque = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~');
        // `.` and `..` would be dropped or resolved by any URL parser.
        let not_dots = !id.chars().all(|c| c == '.');
        match self {
            IdShape::Snowflake => {
                (1..=20).contains(&id.len())
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && id.parse::<u64>().is_ok()
            }
            IdShape::Opaque => (1..=128).contains(&id.len()) && id.chars().all(opaque) && not_dots,
            IdShape::Token => (1..=1024).contains(&id.len()) && id.chars().all(opaque) && not_dots,
            IdShape::Hashtag => {
                (1..=256).contains(&id.len()) && id.chars().all(|c| c.is_alphanumeric() || c == '_')
            }
        }
    }
}

/// Check an id's shape.
pub fn checked<'a>(what: &'static str, shape: IdShape, id: &'a str) -> Result<&'a str, BadId> {
    if shape.admits(id) {
        return Ok(id);
    }
    let shown = if shape == IdShape::Token {
        // A token is a credential: say only how long it was.
        format!("({} characters)", id.chars().count())
    } else {
        format!("{:?}", id.chars().take(40).collect::<String>())
    };
    Err(BadId { what, shown })
}

/// The path `template` names with each `{}` replaced, in order, by one checked and
/// percent-encoded id: `path("/api/v1/statuses/{}/context", &[("Mastodon status id",
/// IdShape::Opaque, id)])`. The template is ours; only the ids come from outside.
pub fn path(
    template: &'static str,
    ids: &[(&'static str, IdShape, &str)],
) -> Result<String, BadId> {
    let mut url = url::Url::parse("http://path.invalid/").expect("a fixed, valid URL");
    let mut ids = ids.iter();
    {
        let mut segments = url
            .path_segments_mut()
            .expect("an http URL has path segments");
        segments.clear();
        for part in template.trim_start_matches('/').split('/') {
            if part == "{}" {
                let (what, shape, id) = ids.next().expect("as many ids as the template has {}");
                segments.push(checked(what, *shape, id)?);
            } else {
                segments.push(part);
            }
        }
    }
    debug_assert!(ids.next().is_none(), "more ids than the template has {{}}");
    Ok(url.path().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Mastodon status id";

    #[test]
    fn a_good_id_fills_its_segment() {
        assert_eq!(
            path(
                "/api/v1/statuses/{}/context",
                &[(STATUS, IdShape::Opaque, "01HV9ZK3X8Q")]
            ),
            Ok("/api/v1/statuses/01HV9ZK3X8Q/context".to_string())
        );
        assert_eq!(
            path(
                "/channels/{}/messages/{}",
                &[
                    ("channel", IdShape::Snowflake, "1100000000000000001"),
                    ("message", IdShape::Snowflake, "1100000000000000002"),
                ]
            )
            .unwrap(),
            "/channels/1100000000000000001/messages/1100000000000000002"
        );
        assert_eq!(
            path(
                "/webhooks/{}/{}/messages/@original",
                &[
                    ("application", IdShape::Snowflake, "42"),
                    ("token", IdShape::Token, "aW50ZXJhY3Rpb24.x-y_z"),
                ]
            )
            .unwrap(),
            "/webhooks/42/aW50ZXJhY3Rpb24.x-y_z/messages/@original"
        );
        // Hashtags may be in any script; they are percent-encoded, not refused.
        assert_eq!(
            path(
                "/api/v1/timelines/tag/{}",
                &[("hashtag", IdShape::Hashtag, "café_2")]
            )
            .unwrap(),
            "/api/v1/timelines/tag/caf%C3%A9_2"
        );
    }

    #[test]
    fn a_hostile_id_never_changes_the_path() {
        for hostile in [
            "../../admin",
            "..",
            ".",
            "1?x=y#",
            "1/2",
            "1%2F2",
            "",
            "1 2",
            "１２３",
            "1\r\nHost: evil",
            &"9".repeat(200),
        ] {
            for shape in [
                IdShape::Opaque,
                IdShape::Snowflake,
                IdShape::Token,
                IdShape::Hashtag,
            ] {
                if let Ok(p) = path("/api/v1/statuses/{}/context", &[(STATUS, shape, hostile)]) {
                    // Only a shape that admits it (a number, a hashtag in another script)
                    // gets through, and then as one encoded segment.
                    let segments: Vec<&str> = p.trim_start_matches('/').split('/').collect();
                    assert_eq!(segments.len(), 5, "{hostile:?} as {shape:?}: {p}");
                    assert_eq!(segments[4], "context");
                    assert!(!p.contains(['?', '#', ' ', '\r', '\n']), "{p}");
                }
            }
            assert!(
                path(
                    "/api/v1/statuses/{}/context",
                    &[(STATUS, IdShape::Opaque, hostile)]
                )
                .is_err(),
                "{hostile:?}"
            );
        }
        assert!(checked("X user id", IdShape::Snowflake, "18446744073709551616").is_err());
        assert!(checked("X user id", IdShape::Snowflake, "-1").is_err());
    }

    #[test]
    fn the_refusal_says_which_id_and_never_shows_a_token() {
        let e = checked(STATUS, IdShape::Opaque, "../../admin").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Mastodon status id \"../../admin\" is not a valid id; the request was not sent"
        );
        let e = checked("interaction token", IdShape::Token, "secret/abc").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(matches!(
            DeliveryError::from(e),
            DeliveryError::Permanent { .. }
        ));
    }
}
