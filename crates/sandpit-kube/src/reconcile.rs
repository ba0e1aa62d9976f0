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
//! - on the persistent workspace (`sandpit.dev/workspace`) of a session that is still live:
//!   kept, whoever made it — the server that takes the session over adopts it, with its
//!   processes and the terminal its agent holds ([`crate::KubeBackend`]'s `adopt`), and its
//!   Secret is readable to any replica;
//! - anything else — a dead owner, or no owner label at all: deleted, with its Secret.
//!
//! "Live" is the caller's knowledge (the server's cluster membership, its live sessions);
//! this crate has no database. Workspace claims are never reconciled: they belong to
//! sessions, not servers, and go with them (`remove_workspace`).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Pod;

use crate::objects::{LABEL_OWNER, LABEL_WORKSPACE, OwnerId};

/// The names of the pods in `pods` to delete under the module's rule.
pub fn orphans<'a>(
    pods: &'a [Pod],
    me: &OwnerId,
    live_owners: &HashSet<String>,
    held: &HashSet<String>,
    live_workspaces: &HashSet<String>,
) -> Vec<&'a str> {
    pods.iter()
        .filter_map(|pod| {
            let name = pod.metadata.name.as_deref()?;
            let label = |key: &str| pod.metadata.labels.as_ref().and_then(|l| l.get(key));
            let adoptable = label(LABEL_WORKSPACE).is_some_and(|w| live_workspaces.contains(w));
            let keep = adoptable
                || match label(LABEL_OWNER) {
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

    fn on_workspace(mut pod: Pod, digest: &str) -> Pod {
        pod.metadata
            .labels
            .get_or_insert_default()
            .insert(LABEL_WORKSPACE.to_owned(), digest.to_owned());
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
            orphans(&pods, &me, &live, &held, &HashSet::new()),
            ["dead", "unlabelled", "mine-left-over"]
        );
    }

    #[test]
    fn a_pod_on_a_live_sessions_workspace_stays_for_whoever_takes_the_session_over() {
        let pods = [
            on_workspace(pod("dead-on-live", Some("c")), "w1"),
            on_workspace(pod("dead-on-ended", Some("c")), "w2"),
            on_workspace(pod("mine-left-on-live", Some("a")), "w3"),
            on_workspace(pod("unlabelled-on-live", None), "w1"),
            on_workspace(pod("live-owner-on-ended", Some("b")), "w2"),
        ];
        let me = OwnerId::parse("a").unwrap();
        let live = HashSet::from(["a".to_owned(), "b".to_owned()]);
        let workspaces = HashSet::from(["w1".to_owned(), "w3".to_owned()]);
        assert_eq!(
            orphans(&pods, &me, &live, &HashSet::new(), &workspaces),
            ["dead-on-ended"],
            "a live owner's pod stays even when its session looks ended (it may be starting \
             one the caller has not seen yet)"
        );
    }

    #[test]
    fn our_own_pods_stay_even_when_the_caller_forgets_us() {
        let pods = [pod("mine", Some("a"))];
        let me = OwnerId::parse("a").unwrap();
        let held = HashSet::from(["mine".to_owned()]);
        assert!(orphans(&pods, &me, &HashSet::new(), &held, &HashSet::new()).is_empty());
    }
}
