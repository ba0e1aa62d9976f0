//! Which sandbox pods nobody can drive any more. A pod's agent key lives only in the memory of
//! the server process that made it (and in the pod's Secret, which the server may read but
//! never lists), so a pod outlives its usefulness the moment that process ends.
//!
//! The rule, for every pod in the namespace labelled as a sandpit sandbox
//! ([`crate::objects::SANDBOX_SELECTOR`]):
//!
//! - owned (`sandpit.dev/owner`) by another server instance that is live: kept — it is that
//!   server's to end;
//! - owned by this instance: kept only if this process holds it (a sandbox or a warm pod).
//!   A pod of our own id that we do not hold was left by an earlier process with the same
//!   id (a restarted container keeps its pod's name);
//! - anything else — a dead owner, or no owner label at all: deleted, with its Secret.
//!
//! "Live" is the caller's knowledge (the server's cluster membership); this crate has no
//! database. Workspace claims are never reconciled: they belong to sessions, not servers.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Pod;

use crate::objects::{LABEL_OWNER, OwnerId};

/// The names of the pods in `pods` to delete under the module's rule.
pub fn orphans<'a>(
    pods: &'a [Pod],
    me: &OwnerId,
    live_owners: &HashSet<String>,
    held: &HashSet<String>,
) -> Vec<&'a str> {
    pods.iter()
        .filter_map(|pod| {
            let name = pod.metadata.name.as_deref()?;
            let owner = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(LABEL_OWNER));
            let keep = match owner {
                Some(owner) if owner == me.as_str() => held.contains(name),
                Some(owner) => live_owners.contains(owner),
                None => false,
            };
            (!keep).then_some(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, owner: Option<&str>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        if let Some(owner) = owner {
            pod.metadata.labels = Some([(LABEL_OWNER.to_owned(), owner.to_owned())].into());
        }
        pod
    }

    #[test]
    fn pods_of_dead_owners_and_of_nobody_go_and_the_live_ones_stay() {
        let pods = [
            pod("live", Some("b")),
            pod("dead", Some("c")),
            pod("unlabelled", None),
            pod("mine-held", Some("a")),
            pod("mine-left-over", Some("a")),
        ];
        let me = OwnerId::parse("a").unwrap();
        let live = HashSet::from(["a".to_owned(), "b".to_owned()]);
        let held = HashSet::from(["mine-held".to_owned()]);
        assert_eq!(
            orphans(&pods, &me, &live, &held),
            ["dead", "unlabelled", "mine-left-over"]
        );
    }

    #[test]
    fn our_own_pods_stay_even_when_the_caller_forgets_us() {
        let pods = [pod("mine", Some("a"))];
        let me = OwnerId::parse("a").unwrap();
        let held = HashSet::from(["mine".to_owned()]);
        assert!(orphans(&pods, &me, &HashSet::new(), &held).is_empty());
    }
}
