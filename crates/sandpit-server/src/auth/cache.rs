//! A short-lived cache of resolved credentials, so most authenticated requests cost no database
//! round trip (nor the `last_used_at` write that SQLite would serialise).
//!
//! Entries live `TTL` at most and never past the credential's own expiry. This server drops
//! entries at once when it revokes a credential or changes a role; another server sharing the
//! same PostgreSQL sees such a change within `TTL`. A TTL map over `dashmap` is all this needs,
//! which is why it is written here rather than pulling in a general cache crate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use uuid::Uuid;

use super::Principal;

/// How long a resolved credential is trusted without asking the store again.
pub const TTL: Duration = Duration::from_secs(30);
/// Upper bound on entries; past it, expired ones are swept and new ones are not cached.
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct AuthCache {
    entries: DashMap<[u8; 32], (Instant, Arc<Principal>)>,
}

impl AuthCache {
    pub fn get(&self, hash: &[u8; 32]) -> Option<Arc<Principal>> {
        let entry = self.entries.get(hash)?;
        let (valid_until, principal) = &*entry;
        if Instant::now() < *valid_until {
            return Some(principal.clone());
        }
        drop(entry);
        self.entries.remove(hash);
        None
    }

    /// Caches a principal until `TTL` from now or `expires_in` (the credential's remaining
    /// lifetime), whichever comes first.
    pub fn insert(&self, hash: [u8; 32], principal: Arc<Principal>, expires_in: Option<Duration>) {
        if self.entries.len() >= CAPACITY {
            let now = Instant::now();
            self.entries.retain(|_, (until, _)| *until > now);
            if self.entries.len() >= CAPACITY {
                return;
            }
        }
        let ttl = expires_in.map_or(TTL, |e| e.min(TTL));
        self.entries.insert(hash, (Instant::now() + ttl, principal));
    }

    /// Forgets a revoked credential.
    pub fn forget_credential(&self, credential_id: Uuid) {
        self.entries
            .retain(|_, (_, p)| p.credential_id != credential_id);
    }

    /// Forgets every credential of a user (after their role or account changed).
    pub fn forget_user(&self, user_id: Uuid) {
        self.entries.retain(|_, (_, p)| p.user.id != user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use sandpit_store::{CredentialKind, Role, User};

    fn principal(user: Uuid, credential: Uuid) -> Arc<Principal> {
        Arc::new(Principal {
            user: User {
                id: user,
                username: "u".into(),
                email: None,
                password_hash: None,
                role: Role::Learner,
                created_at: Utc::now(),
                updated_at: Utc::now(),
            },
            credential_id: credential,
            kind: CredentialKind::Session,
        })
    }

    #[test]
    fn hits_until_forgotten_or_expired() {
        let cache = AuthCache::default();
        let (u1, c1, c2) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        cache.insert([1; 32], principal(u1, c1), None);
        cache.insert([2; 32], principal(u1, c2), None);
        cache.insert(
            [3; 32],
            principal(Uuid::now_v7(), Uuid::now_v7()),
            Some(Duration::ZERO),
        );
        assert!(cache.get(&[1; 32]).is_some());
        assert!(
            cache.get(&[3; 32]).is_none(),
            "an expired credential is never served"
        );
        cache.forget_credential(c1);
        assert!(cache.get(&[1; 32]).is_none());
        assert!(cache.get(&[2; 32]).is_some());
        cache.forget_user(u1);
        assert!(cache.get(&[2; 32]).is_none());
    }
}
