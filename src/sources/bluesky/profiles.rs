//! Who a DID is: Jetstream names a post's author by DID alone, and a card needs the
//! handle and display name. They come from `app.bsky.actor.getProfiles` (25 actors a
//! call, through the session like every other call), are kept in a bounded cache that
//! Jetstream's `identity` events keep current, and a lookup that fails or takes too long
//! falls back to the DID, so a mention is never held back or dropped for its author's
//! name.

use super::wire::Profile;
use super::xrpc::Call;
use super::Bluesky;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// The lexicon's limit of actors per `getProfiles` call.
pub(super) const PER_CALL: usize = 25;
/// Profiles kept at most (two generations of half each).
pub(super) const CACHE_ENTRIES: usize = 10_000;
/// A display name may change without an `identity` event: look again after this.
const FRESH_FOR: Duration = Duration::from_secs(6 * 60 * 60);
/// The most a batch of lookups may hold the stream back.
pub(super) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// After a lookup timed out, the AppView is given this long before the next try; mentions
/// meanwhile show the DID.
const PAUSE_AFTER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
struct ProfilesPage {
    #[serde(default)]
    profiles: Vec<Profile>,
}

struct Entry {
    profile: Profile,
    at: Instant,
}

/// Profiles by DID with bounded memory: when the young generation is full it becomes the
/// old one (the previous old one is forgotten), and a hit in the old one moves back to
/// the young one, so what is used stays and what is not ages out.
pub(super) struct ProfileCache {
    young: HashMap<String, Entry>,
    old: HashMap<String, Entry>,
    generation: usize,
    /// No lookup before this instant (the last one timed out).
    paused_until: Option<Instant>,
}

impl ProfileCache {
    pub(super) fn new(entries: usize) -> ProfileCache {
        ProfileCache {
            young: HashMap::new(),
            old: HashMap::new(),
            generation: (entries / 2).max(1),
            paused_until: None,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// The cached profile, if it is still fresh.
    pub(super) fn get(&mut self, did: &str) -> Option<Profile> {
        if let Some(e) = self.old.remove(did) {
            self.put(e);
        }
        self.young
            .get(did)
            .filter(|e| e.at.elapsed() < FRESH_FOR)
            .map(|e| e.profile.clone())
    }

    pub(super) fn insert(&mut self, profile: Profile) {
        self.old.remove(&profile.did);
        self.put(Entry {
            profile,
            at: Instant::now(),
        });
    }

    fn put(&mut self, entry: Entry) {
        if self.young.len() >= self.generation && !self.young.contains_key(&entry.profile.did) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(entry.profile.did.clone(), entry);
    }

    /// An `identity` event: the DID's handle is now `handle` (None: look it up again).
    /// Only DIDs already known are touched, so the network's identity events cannot fill
    /// the cache.
    pub(super) fn identity(&mut self, did: &str, handle: Option<&str>) {
        for generation in [&mut self.young, &mut self.old] {
            match handle {
                Some(h) => {
                    if let Some(e) = generation.get_mut(did) {
                        e.profile.handle = h.to_string();
                    }
                }
                None => {
                    generation.remove(did);
                }
            }
        }
    }
}

impl Bluesky {
    /// The profiles of `dids` (each once), from the cache or `getProfiles`; a DID that
    /// cannot be looked up now comes back as itself, with no display name.
    pub(super) async fn profiles(
        &self,
        cache: &std::sync::Mutex<ProfileCache>,
        dids: &[String],
    ) -> HashMap<String, Profile> {
        let mut found = HashMap::new();
        let mut wanted: Vec<String> = Vec::new();
        let paused = {
            let mut c = cache.lock().expect("profile cache lock");
            for did in dids {
                if found.contains_key(did) || wanted.contains(did) {
                    continue;
                }
                match c.get(did) {
                    Some(p) => {
                        found.insert(did.clone(), p);
                    }
                    None => wanted.push(did.clone()),
                }
            }
            c.paused_until.is_some_and(|t| Instant::now() < t)
        };
        if !wanted.is_empty() && !paused {
            let looked_up =
                tokio::time::timeout(LOOKUP_TIMEOUT, self.look_up_profiles(&wanted)).await;
            let mut c = cache.lock().expect("profile cache lock");
            match looked_up {
                Ok(profiles) => {
                    for p in profiles {
                        if wanted.contains(&p.did) {
                            c.insert(p.clone());
                            found.insert(p.did.clone(), p);
                        }
                    }
                }
                Err(_) => {
                    tracing::warn!(
                        timeout_s = LOOKUP_TIMEOUT.as_secs(),
                        "Bluesky getProfiles took too long; mentions show the author's DID for a while"
                    );
                    c.paused_until = Some(Instant::now() + PAUSE_AFTER_TIMEOUT);
                }
            }
        }
        for did in wanted {
            found.entry(did.clone()).or_insert_with(|| Profile {
                handle: did.clone(),
                did,
                display_name: None,
                followers_count: None,
            });
        }
        found
    }

    /// `getProfiles` in calls of up to 25; what fails is logged and left out.
    async fn look_up_profiles(&self, dids: &[String]) -> Vec<Profile> {
        let mut out = Vec::new();
        for chunk in dids.chunks(PER_CALL) {
            let query = chunk.iter().map(|d| ("actors", d.clone())).collect();
            match self
                .call_json::<ProfilesPage>(Call::get("app.bsky.actor.getProfiles", query))
                .await
            {
                Ok(page) => out.extend(page.profiles),
                Err(e) => {
                    tracing::warn!(error = %e, actors = chunk.len(), "Bluesky getProfiles failed; mentions show the author's DID");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(i: usize) -> Profile {
        Profile {
            did: format!("did:plc:{i}"),
            handle: format!("u{i}.test"),
            display_name: None,
            followers_count: None,
        }
    }

    #[test]
    fn the_cache_stays_bounded_and_keeps_what_is_used() {
        let mut c = ProfileCache::new(10);
        c.insert(profile(0));
        for i in 1..1000 {
            c.insert(profile(i));
            // Profile 0 is used all the time: it survives every turn of generations.
            assert!(c.get("did:plc:0").is_some(), "lost the busy one at {i}");
            assert!(c.len() <= 10, "{} entries", c.len());
        }
        assert!(c.get("did:plc:1").is_none(), "an unused one aged out");
        assert!(c.get("did:plc:999").is_some());
    }

    #[test]
    fn identity_events_change_known_handles_only() {
        let mut c = ProfileCache::new(10);
        c.insert(profile(1));
        c.identity("did:plc:1", Some("new.test"));
        assert_eq!(c.get("did:plc:1").unwrap().handle, "new.test");
        c.identity("did:plc:2", Some("stranger.test"));
        assert!(c.get("did:plc:2").is_none());
        assert_eq!(c.len(), 1);
        c.identity("did:plc:1", None);
        assert!(
            c.get("did:plc:1").is_none(),
            "a cleared handle is looked up again"
        );
    }
}
