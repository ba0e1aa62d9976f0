//! What a pod's status means for a sandbox: ready (with its address), still starting (and
//! why, for the error if it never gets there), or failed for good. Pure, so every status the
//! kubelet reports is tested without one.

use k8s_openapi::api::core::v1::Pod;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Running, ready, and with an address.
    Ready { ip: String },
    /// Not yet; `why` is the latest reason the pod gave (`ImagePullBackOff: …`, `Unschedulable: …`).
    Starting { why: Option<String> },
    /// It will never be ready: failed, evicted, exited, or being deleted.
    Failed { why: String },
}

/// Waiting reasons that no amount of waiting fixes.
const HOPELESS: &[&str] = &["InvalidImageName", "ErrImageNeverPull"];

pub fn pod_state(pod: &Pod) -> PodState {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodState::Failed {
            why: "the pod is being deleted".into(),
        };
    }
    let Some(status) = &pod.status else {
        return PodState::Starting { why: None };
    };
    let reason_message = |reason: Option<&String>, message: Option<&String>| match (reason, message)
    {
        (Some(r), Some(m)) if !m.is_empty() => format!("{r}: {m}"),
        (Some(r), _) => r.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => String::new(),
    };
    match status.phase.as_deref() {
        Some("Failed") => {
            let why = reason_message(status.reason.as_ref(), status.message.as_ref());
            return PodState::Failed {
                why: if why.is_empty() {
                    "the pod failed".into()
                } else {
                    why
                },
            };
        }
        Some("Succeeded") => {
            return PodState::Failed {
                why: "the agent exited".into(),
            };
        }
        _ => {}
    }
    let containers = status.container_statuses.as_deref().unwrap_or_default();
    for container in containers {
        let Some(state) = &container.state else {
            continue;
        };
        if let Some(ended) = &state.terminated {
            let reason = ended.reason.clone().unwrap_or_else(|| "Terminated".into());
            return PodState::Failed {
                why: format!("the agent exited with code {} ({reason})", ended.exit_code),
            };
        }
        if let Some(waiting) = &state.waiting {
            let why = reason_message(waiting.reason.as_ref(), waiting.message.as_ref());
            if waiting
                .reason
                .as_deref()
                .is_some_and(|r| HOPELESS.contains(&r))
            {
                return PodState::Failed { why };
            }
            if !why.is_empty() {
                return PodState::Starting { why: Some(why) };
            }
        }
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    let ready = condition("Ready").is_some_and(|c| c.status == "True");
    let ip = status.pod_ip.clone().filter(|ip| !ip.is_empty());
    match (status.phase.as_deref(), ready, ip) {
        (Some("Running"), true, Some(ip)) => PodState::Ready { ip },
        _ => {
            let unscheduled = condition("PodScheduled").filter(|c| c.status == "False");
            let why = unscheduled
                .map(|c| reason_message(c.reason.as_ref(), c.message.as_ref()))
                .or_else(|| status.phase.clone().map(|p| format!("phase {p}")));
            PodState::Starting { why }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p"},
            "status": status,
        }))
        .unwrap()
    }

    fn ready() -> serde_json::Value {
        serde_json::json!({
            "phase": "Running", "podIP": "10.1.2.3",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "sandbox", "ready": true, "restartCount": 0,
                "image": "i", "imageID": "", "state": {"running": {}}}],
        })
    }

    #[test]
    fn running_ready_and_addressed_is_ready() {
        assert_eq!(
            pod_state(&pod(ready())),
            PodState::Ready {
                ip: "10.1.2.3".into()
            }
        );
    }

    #[test]
    fn running_without_readiness_or_address_is_still_starting() {
        let mut status = ready();
        status["conditions"][0]["status"] = "False".into();
        assert!(matches!(pod_state(&pod(status)), PodState::Starting { .. }));
        let mut status = ready();
        status.as_object_mut().unwrap().remove("podIP");
        assert!(matches!(pod_state(&pod(status)), PodState::Starting { .. }));
    }

    #[test]
    fn an_image_that_cannot_be_pulled_says_so_while_starting() {
        let status = serde_json::json!({
            "phase": "Pending",
            "containerStatuses": [{"name": "sandbox", "ready": false, "restartCount": 0,
                "image": "i", "imageID": "",
                "state": {"waiting": {"reason": "ImagePullBackOff",
                    "message": "Back-off pulling image \"nope:1\""}}}],
        });
        assert_eq!(
            pod_state(&pod(status)),
            PodState::Starting {
                why: Some("ImagePullBackOff: Back-off pulling image \"nope:1\"".into())
            }
        );
    }

    #[test]
    fn an_invalid_image_name_fails_at_once() {
        let status = serde_json::json!({
            "phase": "Pending",
            "containerStatuses": [{"name": "sandbox", "ready": false, "restartCount": 0,
                "image": "i", "imageID": "", "state": {"waiting": {"reason": "InvalidImageName"}}}],
        });
        assert!(matches!(pod_state(&pod(status)), PodState::Failed { .. }));
    }

    #[test]
    fn eviction_is_a_failure_that_names_its_reason() {
        let status = serde_json::json!({
            "phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory.",
        });
        assert_eq!(
            pod_state(&pod(status)),
            PodState::Failed {
                why: "Evicted: The node was low on resource: memory.".into()
            }
        );
    }

    #[test]
    fn an_exited_agent_or_a_deleted_pod_is_a_failure() {
        let mut status = ready();
        status["containerStatuses"][0]["state"] =
            serde_json::json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        let PodState::Failed { why } = pod_state(&pod(status)) else {
            panic!("not a failure");
        };
        assert!(why.contains("code 1"), "{why}");
        let mut deleting = pod(ready());
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        assert!(matches!(pod_state(&deleting), PodState::Failed { .. }));
    }

    #[test]
    fn an_unschedulable_pod_says_why() {
        let status = serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient memory."}],
        });
        let PodState::Starting { why: Some(why) } = pod_state(&pod(status)) else {
            panic!("not starting with a reason");
        };
        assert!(why.starts_with("Unschedulable: 0/3 nodes"), "{why}");
    }
}
