#!/usr/bin/env python3
"""Policy checks on a rendered sandpit chart (the output of `helm template`), beyond the schema:
what the chart promises about security and wiring, so a template change that breaks a promise
fails scripts/check-deploy. Prints one line per failure; exits 1 when any check fails.

usage: check-rendered.py RENDERED.yaml [SANDPIT_BINARY]
With a sandpit binary, the rendered sandpit.toml is also loaded by `sandpit config show`.
"""
import subprocess
import sys
import tempfile
import tomllib

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}
SANDBOX_LABEL = ("app.kubernetes.io/component", "sandbox")
NEW_SECTIONS = ("kubernetes", "cluster")  # tables the Kubernetes release adds to sandpit.toml

failures = []


def fail(msg):
    failures.append(msg)


def name(obj):
    md = obj.get("metadata", {})
    return f"{obj.get('kind')}/{md.get('namespace', '-')}/{md.get('name')}"


def pod_spec(obj):
    spec = obj.get("spec", {})
    if obj["kind"] == "Pod":
        return spec
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    return spec["template"]["spec"]


def check_containers(obj):
    ps = pod_spec(obj)
    psc = ps.get("securityContext") or {}
    containers = ps.get("containers", []) + ps.get("initContainers", [])
    if not containers:
        fail(f"{name(obj)}: no containers")
    for c in containers:
        where = f"{name(obj)} container {c.get('name')}"
        sc = c.get("securityContext") or {}
        if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
            fail(f"{where}: runAsNonRoot is not true")
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        if uid in (None, 0):
            fail(f"{where}: runAsUser is {uid!r} (expected a non-zero uid)")
        if sc.get("readOnlyRootFilesystem") is not True:
            fail(f"{where}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            fail(f"{where}: privileged")
        drop = (sc.get("capabilities") or {}).get("drop") or []
        if "ALL" not in drop:
            fail(f"{where}: capabilities.drop lacks ALL ({drop})")
        if (sc.get("capabilities") or {}).get("add"):
            fail(f"{where}: adds capabilities")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            fail(f"{where}: seccompProfile is {seccomp!r}")
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if not (res.get(kind) or {}).get(r):
                    fail(f"{where}: resources.{kind}.{r} is not set")
    if ps.get("hostNetwork") or ps.get("hostPID") or ps.get("hostIPC"):
        fail(f"{name(obj)}: uses a host namespace")
    for v in ps.get("volumes", []):
        if "hostPath" in v:
            fail(f"{name(obj)}: hostPath volume {v.get('name')}")


def selects_sandboxes(np):
    labels = (np["spec"].get("podSelector") or {}).get("matchLabels") or {}
    return labels.get(SANDBOX_LABEL[0]) == SANDBOX_LABEL[1]


def check_sandbox_policy(policies, agent_port, sandbox_ns, server_labels):
    mine = [p for p in policies if selects_sandboxes(p) and p["metadata"].get("namespace") == sandbox_ns]
    if not mine:
        fail(f"no NetworkPolicy in {sandbox_ns} selects {SANDBOX_LABEL[0]}={SANDBOX_LABEL[1]}")
        return
    for p in mine:
        spec = p["spec"]
        types = spec.get("policyTypes") or []
        if "Egress" not in types:
            fail(f"{name(p)}: policyTypes lacks Egress, so sandbox egress is not denied")
        if spec.get("egress"):
            fail(f"{name(p)}: allows sandbox egress: {spec['egress']}")
        if "Ingress" not in types:
            fail(f"{name(p)}: policyTypes lacks Ingress")
        for rule in spec.get("ingress") or []:
            ports = [pt.get("port") for pt in rule.get("ports") or []]
            if ports != [agent_port]:
                fail(f"{name(p)}: ingress ports {ports}, expected only the agent port {agent_port}")
            peers = rule.get("from") or []
            if not peers:
                fail(f"{name(p)}: ingress from anywhere")
            for peer in peers:
                sel = (peer.get("podSelector") or {}).get("matchLabels") or {}
                if "ipBlock" in peer or sel != server_labels or "namespaceSelector" not in peer:
                    fail(f"{name(p)}: ingress peer {peer} is not exactly the server pods")
    # No other policy that may select sandbox pods may open what this one closes (policies add
    # up). One whose selector pins the component label to another value cannot select them.
    for p in policies:
        if p["metadata"].get("namespace") != sandbox_ns or p in mine:
            continue
        sel = p["spec"].get("podSelector") or {}
        component = (sel.get("matchLabels") or {}).get(SANDBOX_LABEL[0])
        disjoint = component is not None and component != SANDBOX_LABEL[1]
        if not disjoint and (p["spec"].get("egress") or p["spec"].get("ingress")):
            fail(f"{name(p)}: another policy that can select sandbox pods allows traffic")


def check_config(toml_text, binary):
    try:
        cfg = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        fail(f"sandpit.toml does not parse: {e}")
        return None
    k = cfg.get("kubernetes") or {}
    for key in ("namespace", "image", "agent_port", "warm_pods", "workspace", "workspace_size_mb"):
        if key not in k:
            fail(f"sandpit.toml: [kubernetes] lacks {key}")
    if k.get("workspace") not in ("pvc", "pod"):
        fail(f"sandpit.toml: kubernetes.workspace is {k.get('workspace')!r}")
    if cfg.get("data_dir") != "/var/lib/sandpit":
        fail(f"sandpit.toml: data_dir is {cfg.get('data_dir')!r}")
    if (cfg.get("server") or {}).get("bind") != "0.0.0.0:8080":
        fail("sandpit.toml: server.bind is not 0.0.0.0:8080")
    if binary:
        check_with_binary(cfg, toml_text, binary)
    return cfg


def toml_dump(table, prefix=""):
    """Enough TOML for what the chart renders (scalars, arrays of scalars, nested tables)."""
    import json
    lines, subs = [], []
    for key, v in table.items():
        (subs if isinstance(v, dict) else lines).append((key, v))
    out = [f"{key} = {json.dumps(v)}" for key, v in lines]
    for key, v in subs:
        full = f"{prefix}.{key}" if prefix else key
        out += ["", f"[{full}]", toml_dump(v, full)]
    return "\n".join(out)


def check_with_binary(cfg, toml_text, binary):
    def show(text):
        with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
            f.write(text)
            f.flush()
            return subprocess.run([binary, "--config", f.name, "config", "show"],
                                  capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})

    r = show(toml_text)
    if r.returncode == 0:
        print(f"  sandpit.toml: accepted whole by {binary} config show")
        return
    if not any(f"found `{s}`" in r.stderr for s in NEW_SECTIONS):
        fail(f"sandpit.toml rejected by {binary}: {r.stderr.strip()}")
        return
    # A binary from before the Kubernetes backend: every other key must still be one it knows.
    rest = {k: v for k, v in cfg.items() if k not in NEW_SECTIONS}
    r = show(toml_dump(rest))
    if r.returncode != 0:
        fail(f"sandpit.toml without [kubernetes]/[cluster] rejected by {binary}: {r.stderr.strip()}")
    else:
        print(f"  sandpit.toml: {binary} predates [kubernetes]/[cluster]; every other key accepted by its config show")


def main():
    rendered, binary = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
    with open(rendered) as f:
        objs = [o for o in yaml.safe_load_all(f) if o]
    kinds = {}
    for o in objs:
        kinds.setdefault(o["kind"], []).append(o)
    for o in objs:
        if o["kind"] in WORKLOADS:
            check_containers(o)

    deployments = kinds.get("Deployment", [])
    if len(deployments) != 1:
        fail(f"expected one Deployment, found {len(deployments)}")
        return
    dep = deployments[0]
    server_labels = dep["spec"]["selector"]["matchLabels"]
    container = pod_spec(dep)["containers"][0]
    env = {e["name"]: e for e in container.get("env", [])}
    for var in ("SANDPIT_DATABASE__URL_FILE", "SANDPIT_AUTH__SECRET_FILE", "SANDPIT_SANDBOX__BACKEND",
                "SANDPIT_CLUSTER__ADVERTISE_URL", "POD_IP"):
        if var not in env:
            fail(f"{name(dep)}: env {var} missing")
    if env.get("SANDPIT_SANDBOX__BACKEND", {}).get("value") != "kubernetes":
        fail(f"{name(dep)}: SANDPIT_SANDBOX__BACKEND is not kubernetes")
    if env.get("SANDPIT_CLUSTER__ADVERTISE_URL", {}).get("value") != "http://$(POD_IP):8080":
        fail(f"{name(dep)}: SANDPIT_CLUSTER__ADVERTISE_URL is not http://$(POD_IP):8080")
    if (env.get("POD_IP", {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") != "status.podIP":
        fail(f"{name(dep)}: POD_IP is not from the downward API")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        if (container.get(probe) or {}).get("httpGet", {}).get("path") != path:
            fail(f"{name(dep)}: {probe} is not GET {path}")
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    for path in ("/var/lib/sandpit", "/tmp", "/etc/sandpit"):
        if path not in mounts:
            fail(f"{name(dep)}: nothing mounted at {path}")
    if container.get("args", [])[:3] != ["serve", "--config", "/etc/sandpit/sandpit.toml"]:
        fail(f"{name(dep)}: args are {container.get('args')}")
    replicas = dep["spec"].get("replicas", 1)
    if replicas > 1 and not kinds.get("PodDisruptionBudget"):
        fail(f"{replicas} replicas but no PodDisruptionBudget")
    for pdb in kinds.get("PodDisruptionBudget", []):
        if pdb["spec"]["selector"]["matchLabels"] != server_labels:
            fail(f"{name(pdb)}: does not select the server pods")

    cms = [c for c in kinds.get("ConfigMap", []) if "sandpit.toml" in c.get("data", {})]
    if len(cms) != 1:
        fail(f"expected one ConfigMap with sandpit.toml, found {len(cms)}")
        return
    cfg = check_config(cms[0]["data"]["sandpit.toml"], binary)
    if cfg is None:
        return
    sandbox_ns = cfg["kubernetes"]["namespace"]
    agent_port = cfg["kubernetes"]["agent_port"]

    services = kinds.get("Service", [])
    if not services or services[0]["spec"].get("selector") != server_labels:
        fail("the Service does not select the server pods")

    check_sandbox_policy(kinds.get("NetworkPolicy", []), agent_port, sandbox_ns, server_labels)

    roles = [r for r in kinds.get("Role", []) if r["metadata"].get("namespace") == sandbox_ns]
    if not roles:
        fail(f"no Role in the sandbox namespace {sandbox_ns}")
    for r in kinds.get("Role", []) + kinds.get("ClusterRole", []):
        for rule in r.get("rules", []):
            if "*" in rule.get("verbs", []) or "*" in rule.get("resources", []):
                fail(f"{name(r)}: wildcard rule {rule}")
            if any(res in ("pods/exec", "pods/attach", "nodes") for res in rule.get("resources", [])):
                fail(f"{name(r)}: grants {rule['resources']}")
    if kinds.get("ClusterRole") or kinds.get("ClusterRoleBinding"):
        fail("the chart grants cluster-wide rights")
    sas = {s["metadata"]["name"] for s in kinds.get("ServiceAccount", [])}
    for rb in kinds.get("RoleBinding", []):
        for s in rb.get("subjects", []):
            if sas and s.get("name") not in sas:
                fail(f"{name(rb)}: binds {s.get('name')}, not the chart's ServiceAccount")
    for ns in kinds.get("Namespace", []):
        if ns["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") != "restricted":
            fail(f"{name(ns)}: does not enforce the restricted Pod Security Standard")


if __name__ == "__main__":
    main()
    for f in failures:
        print(f"  FAIL {f}")
    sys.exit(1 if failures else 0)
