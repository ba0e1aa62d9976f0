//! A fake Kubernetes API server for the backend's tests: the real REST paths and JSON shapes
//! (what `kube`'s client sends and expects), kept in memory, and a tiny fake kubelet that
//! makes created pods run — by starting the REAL agent with a real TCP listener on
//! 127.0.0.1 and the key from the pod's Secret.
//!
//! Served, for `pods`, `secrets` and `persistentvolumeclaims` in any namespace:
//! `POST …/{resource}` (409 AlreadyExists), `GET …/{resource}` (a list, with `labelSelector`,
//! `fieldSelector`, `limit`; with `watch=1|true` a chunked stream of
//! `{"type":…,"object":…}` lines from `resourceVersion`, until `timeoutSeconds`),
//! `GET`/`DELETE …/{resource}/{name}` (404 NotFound as a `Status`). Every change bumps one
//! global `resourceVersion`. Deletion is immediate (no grace, no finalizers) and there is no
//! garbage collector: a Secret owned by a pod stays until deleted, so tests see whether the
//! backend deletes it.
//!
//! The seam to the real agent: all fake pods share the IP 127.0.0.1, so each pod's agent gets
//! its own port, which [`Fake::agent_addr`] tells the backend. Otherwise the agent starts as
//! the pod spec says: the container's arguments (`agent --listen …`, the address's port
//! swapped for the pod's own on 127.0.0.1), its `SANDPIT_AGENT_SECRET_FILE` naming a file
//! that holds the Secret's key bytes, its user (uid/gid 10001, no groups, no capabilities,
//! `no_new_privs`), and a mount namespace of its own with per-pod directories bound on
//! `/workspace`, `/tmp` and `/dev/shm` (the pod's volumes). The agent runs in pod mode, as in
//! a cluster. (Needs root, like the sandbox suites.)
//!
//! Faults: [`Behaviour::ImagePullBackOff`] (new pods stay Pending with that reason),
//! [`Behaviour::EvictAtStart`] (new pods fail before they run),
//! [`Fake::evict`] (the agent is killed and the pod goes Failed/Evicted), [`Fake::stop`]
//! (every connection closed, the port refuses).

#![expect(clippy::unwrap_used, reason = "test fixture")]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::task::JoinSet;

/// What the fake kubelet does with the pods created from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Start the agent and report Running and Ready.
    Run,
    /// Report `Pending` with the container waiting in `ImagePullBackOff`, for good.
    ImagePullBackOff,
    /// Evict the pod before its container starts (`Failed`, reason `Evicted`).
    EvictAtStart,
}

#[derive(Clone, Debug)]
struct Event {
    rv: u64,
    resource: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

struct Agent {
    port: u16,
    child: tokio::process::Child,
    /// The pod's volumes and key file; removed after its processes.
    _dirs: tempfile::TempDir,
}

impl Drop for Agent {
    /// The container goes with the pod, all of it, as a container runtime ends it. Killing
    /// the agent alone is not enough: the processes it started (no PID namespace here) would
    /// outlive it.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            kill_tree(pid as i32);
        }
        let _ = self.child.start_kill();
    }
}

/// SIGKILLs every process below `root` (the agent in pod mode leaves no PID namespace to end
/// them with it).
fn kill_tree(root: i32) {
    for pid in sandpit_sandbox::agent::live_descendants(root).unwrap_or_default() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[derive(Default)]
struct Store {
    rv: u64,
    /// (resource, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Value>,
    log: Vec<Event>,
}

struct Shared {
    store: Mutex<Store>,
    events: broadcast::Sender<Event>,
    behaviour: Mutex<Behaviour>,
    agents: Mutex<HashMap<String, Agent>>,
    agent_bin: PathBuf,
    requests: Mutex<Vec<String>>,
}

type St = Arc<Shared>;

pub struct Fake {
    addr: SocketAddr,
    shared: St,
    server: tokio::task::JoinHandle<()>,
}

fn kind_of(resource: &str) -> Option<&'static str> {
    match resource {
        "pods" => Some("Pod"),
        "secrets" => Some("Secret"),
        "persistentvolumeclaims" => Some("PersistentVolumeClaim"),
        _ => None,
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

fn not_found(resource: &str, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{resource} \"{name}\" not found"),
    )
}

/// `a=b,c!=d,e,!f` (the forms the backend and kube use; no set-based `in`).
fn labels_match(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .all(|term| {
            let get = |k: &str| labels.get(k).and_then(Value::as_str);
            if let Some((k, v)) = term.split_once("!=") {
                get(k.trim()) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                get(k.trim()) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                get(k).is_none()
            } else {
                get(term).is_some()
            }
        })
}

fn fields_match(selector: &str, object: &Value) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let Some((path, want)) = term.split_once('=') else {
            return false;
        };
        let mut at = object;
        for part in path.split('.') {
            at = &at[part];
        }
        at.as_str().unwrap_or("") == want.trim_start_matches('=')
    })
}

fn selected(q: &HashMap<String, String>, object: &Value) -> bool {
    let labels = &object["metadata"]["labels"];
    q.get("labelSelector")
        .is_none_or(|s| labels_match(s, labels))
        && q.get("fieldSelector")
            .is_none_or(|s| fields_match(s, object))
}

impl Shared {
    /// Stores `object` (a new resourceVersion) and tells the watchers.
    fn put(&self, resource: &str, ns: &str, kind: &'static str, mut object: Value) -> Value {
        let mut store = self.store.lock().unwrap();
        store.rv += 1;
        let rv = store.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        let key = (resource.to_owned(), ns.to_owned(), name);
        if kind == "DELETED" {
            store.objects.remove(&key);
        } else {
            store.objects.insert(key, object.clone());
        }
        let event = Event {
            rv,
            resource: resource.to_owned(),
            namespace: ns.to_owned(),
            kind,
            object: object.clone(),
        };
        store.log.push(event.clone());
        let _ = self.events.send(event);
        object
    }

    fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let store = self.store.lock().unwrap();
        store
            .objects
            .get(&(resource.to_owned(), ns.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Changes pod `name`'s status (and nothing else), if it still exists.
    fn set_pod_status(&self, ns: &str, name: &str, status: Value) -> bool {
        let Some(mut pod) = self.get("pods", ns, name) else {
            return false;
        };
        pod["status"] = status;
        self.put("pods", ns, "MODIFIED", pod);
        true
    }
}

async fn list_or_watch(
    State(st): State<St>,
    Path((ns, resource)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    st.requests.lock().unwrap().push(format!("GET {resource}"));
    let Some(kind) = kind_of(&resource) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
        );
    };
    if q.get("watch").is_some_and(|w| w == "1" || w == "true") {
        return watch(st, ns, resource, q);
    }
    let store = st.store.lock().unwrap();
    let mut items: Vec<Value> = store
        .objects
        .iter()
        .filter(|((r, n, _), _)| *r == resource && *n == ns)
        .map(|(_, o)| o.clone())
        .filter(|o| selected(&q, o))
        .collect();
    if let Some(limit) = q.get("limit").and_then(|l| l.parse::<usize>().ok()) {
        items.truncate(limit);
    }
    axum::Json(json!({
        "kind": format!("{kind}List"), "apiVersion": "v1",
        "metadata": {"resourceVersion": store.rv.to_string()},
        "items": items,
    }))
    .into_response()
}

fn watch(st: St, ns: String, resource: String, q: HashMap<String, String>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, Infallible>>(64);
    let mut live = st.events.subscribe();
    let from: Option<u64> = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0);
    // Taken under the lock that `put` holds while sending, so no event falls in between.
    let (backlog, mut last) = {
        let store = st.store.lock().unwrap();
        let backlog: Vec<Event> = match from {
            Some(from) => store.log.iter().filter(|e| e.rv > from).cloned().collect(),
            // No version (or "0"): the current objects first, as ADDED.
            None => store
                .objects
                .iter()
                .filter(|((r, n, _), _)| *r == resource && *n == ns)
                .map(|(_, o)| Event {
                    rv: store.rv,
                    resource: resource.clone(),
                    namespace: ns.clone(),
                    kind: "ADDED",
                    object: o.clone(),
                })
                .collect(),
        };
        (backlog, store.rv)
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(300), Duration::from_secs);
    tokio::spawn(async move {
        let wanted =
            |e: &Event| e.resource == resource && e.namespace == ns && selected(&q, &e.object);
        let line = |e: &Event| Ok(format!("{}\n", json!({"type": e.kind, "object": e.object})));
        let run = async {
            for event in backlog.iter().filter(|e| wanted(e)) {
                if tx.send(line(event)).await.is_err() {
                    return;
                }
            }
            loop {
                match live.recv().await {
                    Ok(event) if event.rv > last => {
                        last = event.rv;
                        if wanted(&event) && tx.send(line(&event)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        };
        let _ = tokio::time::timeout(timeout, run).await;
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .unwrap()
}

async fn create(
    State(st): State<St>,
    Path((ns, resource)): Path<(String, String)>,
    axum::Json(mut object): axum::Json<Value>,
) -> Response {
    st.requests.lock().unwrap().push(format!("POST {resource}"));
    let Some(kind) = kind_of(&resource) else {
        return status(StatusCode::NOT_FOUND, "NotFound", "no such resource".into());
    };
    let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned) else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "metadata.name: Required value".into(),
        );
    };
    if st.get(&resource, &ns, &name).is_some() {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{resource} \"{name}\" already exists"),
        );
    }
    object["apiVersion"] = json!("v1");
    object["kind"] = json!(kind);
    object["metadata"]["namespace"] = json!(ns);
    object["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    if resource == "pods" {
        object["status"] = json!({"phase": "Pending", "qosClass": "Burstable"});
    }
    let stored = st.put(&resource, &ns, "ADDED", object);
    if resource == "pods" {
        let behaviour = *st.behaviour.lock().unwrap();
        tokio::spawn(kubelet(st.clone(), ns, name, behaviour));
    }
    (StatusCode::CREATED, axum::Json(stored)).into_response()
}

async fn get_one(
    State(st): State<St>,
    Path((ns, resource, name)): Path<(String, String, String)>,
) -> Response {
    st.requests
        .lock()
        .unwrap()
        .push(format!("GET {resource}/{name}"));
    match st.get(&resource, &ns, &name) {
        Some(object) => axum::Json(object).into_response(),
        None => not_found(&resource, &name),
    }
}

async fn delete_one(
    State(st): State<St>,
    Path((ns, resource, name)): Path<(String, String, String)>,
) -> Response {
    st.requests
        .lock()
        .unwrap()
        .push(format!("DELETE {resource}/{name}"));
    let Some(object) = st.get(&resource, &ns, &name) else {
        return not_found(&resource, &name);
    };
    if resource == "pods" {
        // The container goes with the pod.
        st.agents.lock().unwrap().remove(&name);
    }
    let gone = st.put(&resource, &ns, "DELETED", object);
    axum::Json(gone).into_response()
}

/// Makes a new pod run: waits for its Secret volume (as a kubelet does), starts its container
/// ([`start_agent`]), waits for the readiness probe (the agent's port accepts) and reports the
/// pod Running and Ready; a container that exits first leaves the pod Failed.
async fn kubelet(st: St, ns: String, name: String, behaviour: Behaviour) {
    tokio::time::sleep(Duration::from_millis(20)).await;
    if behaviour == Behaviour::ImagePullBackOff {
        let image = st
            .get("pods", &ns, &name)
            .map(|p| p["spec"]["containers"][0]["image"].clone())
            .unwrap_or_default();
        st.set_pod_status(
            &ns,
            &name,
            json!({
                "phase": "Pending",
                "containerStatuses": [{
                    "name": "sandbox", "ready": false, "restartCount": 0, "image": image,
                    "imageID": "",
                    "state": {"waiting": {"reason": "ImagePullBackOff",
                        "message": format!("Back-off pulling image {image}")}},
                }],
            }),
        );
        return;
    }
    if behaviour == Behaviour::EvictAtStart {
        st.set_pod_status(&ns, &name, evicted());
        return;
    }
    let key = loop {
        let Some(pod) = st.get("pods", &ns, &name) else {
            return;
        };
        let secret_name = pod["spec"]["volumes"]
            .as_array()
            .and_then(|vs| vs.iter().find_map(|v| v["secret"]["secretName"].as_str()))
            .unwrap()
            .to_owned();
        if let Some(secret) = st.get("secrets", &ns, &secret_name) {
            let data = secret["data"]["key"].as_str().unwrap();
            break base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let Some(pod) = st.get("pods", &ns, &name) else {
        return;
    };
    let mut agent = start_agent(&st.agent_bin, &pod, &key);
    // The readiness probe: Ready once the agent accepts connections (it binds the port itself).
    loop {
        if let Ok(Some(exit)) = agent.child.try_wait() {
            st.set_pod_status(&ns, &name, exited(exit));
            return;
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", agent.port))
            .await
            .is_ok()
        {
            break;
        }
        if st.get("pods", &ns, &name).is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The pod may have been deleted meanwhile: then the agent goes at once.
    if st.get("pods", &ns, &name).is_none() {
        return;
    }
    st.agents.lock().unwrap().insert(name.clone(), agent);
    st.set_pod_status(
        &ns,
        &name,
        json!({
            "phase": "Running", "podIP": "127.0.0.1", "hostIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
                {"type": "Ready", "status": "True"},
            ],
            "containerStatuses": [{
                "name": "sandbox", "ready": true, "started": true, "restartCount": 0,
                "image": "sandpit", "imageID": "",
                "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}},
            }],
        }),
    );
}

/// The pod after its container exited on its own (`restartPolicy: Never`).
fn exited(exit: std::process::ExitStatus) -> Value {
    json!({
        "phase": "Failed",
        "containerStatuses": [{
            "name": "sandbox", "ready": false, "restartCount": 0, "image": "sandpit",
            "imageID": "",
            "state": {"terminated": {"exitCode": exit.code().unwrap_or(137), "reason": "Error"}},
        }],
    })
}

fn evicted() -> Value {
    json!({
        "phase": "Failed", "reason": "Evicted",
        "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi.",
    })
}

/// The pod's user, as its security context says.
const POD_UID: u32 = 10001;

/// Runs the pod's container: its command and environment (the key file holding `key`), as its
/// user, in a mount namespace of its own with a directory per volume. The one change: the
/// agent listens on a port of 127.0.0.1 of its own, since all fake pods share that address.
fn start_agent(bin: &std::path::Path, pod: &Value, key: &[u8]) -> Agent {
    use std::os::unix::fs::PermissionsExt;
    let container = &pod["spec"]["containers"][0];
    let ctx = &pod["spec"]["securityContext"];
    assert_eq!(ctx["runAsUser"], json!(POD_UID), "the pod's user");
    assert_eq!(ctx["runAsGroup"], json!(POD_UID), "the pod's group");
    let mut args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let at = args.iter().position(|a| a == "--listen").unwrap() + 1;
    assert!(args[at].starts_with("0.0.0.0:"), "{args:?}");
    args[at] = format!("127.0.0.1:{port}");

    // Not under /tmp, which the pod's own /tmp covers.
    let dirs = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let own = |path: &std::path::Path| {
        std::os::unix::fs::chown(path, Some(POD_UID), Some(POD_UID)).unwrap();
    };
    mode(dirs.path(), 0o755);
    let mut binds = Vec::new();
    for mount in container["volumeMounts"].as_array().unwrap() {
        let target = mount["mountPath"].as_str().unwrap();
        if mount["readOnly"] == json!(true) {
            continue; // the Secret: its one file is laid out below
        }
        let dir = dirs.path().join(mount["name"].as_str().unwrap());
        std::fs::create_dir(&dir).unwrap();
        own(&dir);
        mode(
            &dir,
            if target == "/workspace" {
                0o755
            } else {
                0o1777
            },
        );
        // A pod's image has the mount point.
        std::fs::create_dir_all(target).unwrap();
        binds.push((dir, target.to_owned()));
    }
    let env = &container["env"][0];
    assert_eq!(env["name"], json!(sandpit_sandbox::agent::SECRET_FILE_ENV));
    let key_file = dirs.path().join("key");
    std::fs::write(&key_file, key).unwrap();
    own(&key_file);
    mode(&key_file, 0o400);

    let mut script = String::new();
    let mut argv: Vec<String> = Vec::new();
    for (i, (dir, target)) in binds.iter().enumerate() {
        script.push_str(&format!("mount --bind \"${}\" {target} && ", i + 1));
        argv.push(dir.display().to_string());
    }
    script.push_str(&format!("shift {} && exec \"$@\"", binds.len()));
    let child = tokio::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(script)
        .arg("sh")
        .args(argv)
        .args([
            "setpriv",
            "--reuid=10001",
            "--regid=10001",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ])
        .arg(bin)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        // The pod's variable names the key file; here it is laid out elsewhere.
        .env(env["name"].as_str().unwrap(), &key_file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    Agent {
        port,
        child,
        _dirs: dirs,
    }
}

impl Fake {
    pub async fn start() -> Self {
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            events,
            behaviour: Mutex::new(Behaviour::Run),
            agents: Mutex::new(HashMap::new()),
            agent_bin: env!("CARGO_BIN_EXE_sandpit-kube-test-agent").into(),
            requests: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route(
                "/api/v1/namespaces/{ns}/{resource}",
                get(list_or_watch).post(create),
            )
            .route(
                "/api/v1/namespaces/{ns}/{resource}/{name}",
                get(get_one).delete(delete_one),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Connections live in this task's JoinSet: aborting the task closes them all.
        let server = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let service = hyper_util::service::TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            shared,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    /// Names of the objects of `resource` in `ns`.
    pub fn names(&self, resource: &str, ns: &str) -> Vec<String> {
        let store = self.shared.store.lock().unwrap();
        store
            .objects
            .keys()
            .filter(|(r, n, _)| r == resource && n == ns)
            .map(|(_, _, name)| name.clone())
            .collect()
    }

    pub fn object(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.shared.get(resource, ns, name)
    }

    /// Pods whose agent is running.
    pub fn running_agents(&self) -> usize {
        self.shared.agents.lock().unwrap().len()
    }

    /// Stores a pod as another server would have made it, without running it.
    pub fn insert_pod(&self, ns: &str, name: &str, labels: Value) {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels,
                "uid": uuid::Uuid::new_v4().to_string()},
            "spec": {"containers": [{"name": "sandbox", "image": "sandpit"}]},
            "status": {"phase": "Running"},
        });
        self.shared.put("pods", ns, "ADDED", pod);
    }

    pub fn insert_secret(&self, ns: &str, name: &str) {
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "data": {"key": base64::engine::general_purpose::STANDARD.encode([0u8; 32])},
        });
        self.shared.put("secrets", ns, "ADDED", secret);
    }

    /// The kubelet evicts the pod: its agent is killed, it goes Failed with reason Evicted.
    pub fn evict(&self, ns: &str, name: &str) {
        self.shared.agents.lock().unwrap().remove(name);
        let changed = self.shared.set_pod_status(ns, name, evicted());
        assert!(changed, "no pod {name} to evict");
    }

    /// How each pod's agent is reached: its own port on 127.0.0.1.
    pub fn agent_addr(&self) -> sandpit_kube::AgentAddr {
        let shared = self.shared.clone();
        Arc::new(move |name, _ip, _port| {
            let port = shared.agents.lock().unwrap().get(name)?.port;
            Some(SocketAddr::from(([127, 0, 0, 1], port)))
        })
    }

    /// The requests served so far, as `VERB resource[/name]`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The API server goes down: its port refuses, open connections (watches) close.
    pub fn stop(&self) {
        self.server.abort();
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.abort();
        // Every pod's agent dies with the fake.
        self.shared.agents.lock().unwrap().clear();
    }
}
