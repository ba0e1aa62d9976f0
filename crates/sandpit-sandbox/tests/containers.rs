#![expect(clippy::unwrap_used, reason = "tests")]
//! A rootless container engine (the host's Podman) inside native sandboxes with
//! [`ContainersSpec`]: containers run, share the box's network, stay inside its limits, see
//! the shared base images as their own, and leave nothing behind when the box goes. The base
//! image here is a one-file busybox image the test imports itself (the real ones come from
//! `sandpit images`).

#[expect(
    dead_code,
    reason = "the shared fixture has helpers this suite does not use"
)]
mod common;
#[expect(
    dead_code,
    reason = "the shared fixture has helpers this suite does not use"
)]
#[path = "common/process.rs"]
mod process;
use common::{Host, text};
use process::{describe, eventually};

use std::path::{Path, PathBuf};
use std::time::Duration;

use sandpit_sandbox::spec::containers;
use sandpit_sandbox::{
    Backend, ContainersSpec, Output, ProcessLimits, ProcessSpec, Sandbox, SandboxLimits,
    SandboxSpec,
};

const MIB: u64 = 1 << 20;
const PATIENCE: Duration = Duration::from_secs(60);
const IMAGE: &str = "docker.io/library/tiny:1";

fn limits() -> SandboxLimits {
    SandboxLimits {
        memory_bytes: 512 * MIB,
        pids: 128,
        cpu_millicores: None,
        workspace_bytes: 32 * MIB,
        tmp_bytes: 16 * MIB,
        shm_bytes: 8 * MIB,
    }
}

/// An image store holding one busybox image, made with the host's podman as root, as
/// `sandpit images` makes the real ones.
fn image_store(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "echo", "id", "cat", "sleep", "httpd", "ls", "touch", "rm", "dd", "mkdir",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    let tarball = dir.join("rootfs.tar");
    let mut tar = tar::Builder::new(std::fs::File::create(&tarball).unwrap());
    tar.follow_symlinks(false);
    tar.append_dir_all(".", &rootfs).unwrap();
    tar.into_inner().unwrap();
    let store = dir.join("store");
    let status = std::process::Command::new("podman")
        .arg("--root")
        .arg(&store)
        .arg("--runroot")
        .arg(dir.join("runroot"))
        .args([
            "--storage-driver",
            "overlay",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "import",
            "--quiet",
            "--change",
            "CMD [\"sh\"]",
        ])
        .arg(&tarball)
        .arg(IMAGE)
        .env("CONTAINERS_CONF", "/dev/null")
        .status()
        .expect("podman is installed (scripts/deps)");
    assert!(status.success(), "podman import: {status}");
    store
}

struct Engine {
    host: Host,
    dir: tempfile::TempDir,
    store: PathBuf,
}

impl Engine {
    async fn new(uids: std::ops::Range<u32>) -> Self {
        let host = Host::with(uids, limits()).await;
        let dir = tempfile::tempdir().unwrap();
        let store = image_store(dir.path());
        Self { host, dir, store }
    }

    fn disks(&self) -> PathBuf {
        self.dir.path().join("disks")
    }

    async fn sandbox(&self) -> Box<dyn Sandbox> {
        let mut spec = SandboxSpec::new(limits());
        spec.containers = Some(ContainersSpec {
            dir: self.disks(),
            disk_bytes: 256 * MIB,
            max_files: 20_000,
            image_store: Some(self.store.clone()),
        });
        self.host.backend.create(&spec).await.unwrap()
    }
}

async fn sh(sandbox: &dyn Sandbox, script: &str) -> Output {
    let mut spec = ProcessSpec::new(["/bin/sh", "-c", script]);
    containers::apply_env(&mut spec);
    spec.env.insert("HOME".into(), "/workspace".into());
    spec.limits = ProcessLimits {
        wall_ms: Some(PATIENCE.as_millis() as u64),
        cpu_ms: None,
        output_bytes: Some(1 << 20),
        // Files as large as the disk: the disk is the limit under test.
        file_size_bytes: 1 << 30,
        // Engines give containers 1024 descriptors (containers.conf), which must fit.
        open_files: 4096,
    };
    tokio::time::timeout(PATIENCE, async {
        sandbox
            .spawn(spec)
            .await
            .unwrap()
            .output(b"")
            .await
            .unwrap()
    })
    .await
    .unwrap_or_else(|_| panic!("{script} did not finish"))
}

async fn sh_ok(sandbox: &dyn Sandbox, script: &str) -> String {
    let out = sh(sandbox, script).await;
    assert_eq!(out.exit.code, Some(0), "{script}: {}", describe(&out));
    text(&out.stdout)
}

#[tokio::test]
async fn a_container_runs_as_root_of_its_own_namespaces_and_can_change_its_image() {
    let engine = Engine::new(64_000..64_004).await;
    let sandbox = engine.sandbox().await;
    let out = sh_ok(
        &*sandbox,
        &format!(
            "podman run --rm {IMAGE} sh -c 'id -u; echo x >> /etc/passwd && echo wrote; \
             ls -ld /bin | cut -c1-10' 2>&1"
        ),
    )
    .await;
    let lines: Vec<&str> = out.lines().filter(|l| !l.contains("level=")).collect();
    // Root inside (the box's uid is 0 in the engine's user namespace); the shared image's
    // root-owned files are the container's to change (copied up into its own layer).
    assert_eq!(lines.first(), Some(&"0"), "{out}");
    assert!(lines.contains(&"wrote"), "{out}");
    // The base image is listed read-only, from the shared store.
    let images = sh_ok(
        &*sandbox,
        "podman images --format '{{.Repository}}:{{.Tag}} {{.ReadOnly}}'",
    )
    .await;
    assert!(images.contains("docker.io/library/tiny:1 true"), "{images}");
    // Outside the container the box is unchanged: its uid is not root.
    assert_ne!(sh_ok(&*sandbox, "id -u").await.trim(), "0");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_published_port_is_the_box_s_and_nowhere_else() {
    let engine = Engine::new(64_004..64_008).await;
    let sandbox = engine.sandbox().await;
    sh_ok(
        &*sandbox,
        &format!(
            "mkdir -p /workspace/site && echo hello-from-a-container > /workspace/site/index.html && \
             podman run -d --name web -p 80:8080 -v /workspace/site:/www {IMAGE} httpd -f -p 8080 -h /www >/dev/null"
        ),
    )
    .await;
    // The container's 8080 published at the box's port 80 (the box's own network namespace
    // lets its user bind it), reached from the host only through the sandbox's own connect.
    tokio::time::timeout(PATIENCE, async {
        while !sandbox.listening_ports().await.contains(&80) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the container listens on port 80");
    let mut stream = sandbox.connect(80).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.contains("hello-from-a-container"), "{answer}");
    // Not the container's own port: it has a network namespace of its own.
    assert!(!sandbox.listening_ports().await.contains(&8080));
    // The host has no such listener: nothing was published outside the box.
    assert!(std::net::TcpStream::connect(("127.0.0.1", 80)).is_err());
    sandbox.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_in_a_container_stops_at_the_box_limit() {
    let engine = Engine::new(64_008..64_012).await;
    let sandbox = engine.sandbox().await;
    let out = sh(
        &*sandbox,
        &format!(
            "podman run --rm {IMAGE} sh -c 'echo started; i=0; while [ $i -lt 400 ]; do sleep 30 & i=$((i+1)); done; echo spawned-all' 2>&1; echo done"
        ),
    )
    .await;
    let all = text(&out.stdout);
    assert!(
        all.contains("started"),
        "the container did not start: {all}"
    );
    assert!(
        !all.contains("spawned-all"),
        "400 processes fit in a box of 128: {all}"
    );
    let usage = sandbox.usage().await.unwrap();
    assert!(usage.pids <= limits().pids, "{usage:?}");
    // The box still works afterwards.
    assert_eq!(sh_ok(&*sandbox, "echo alive").await.trim(), "alive");
    sandbox.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_disk_is_bounded_and_gone_with_the_box() {
    let engine = Engine::new(64_012..64_016).await;
    let sandbox = engine.sandbox().await;
    // A layer larger than the disk fails inside the box; the host's disk is not touched.
    let out = sh(
        &*sandbox,
        &format!("podman run --rm {IMAGE} dd if=/dev/zero of=/big bs=1M count=400 2>&1"),
    )
    .await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains("No space left"),
        "{}",
        describe(&out)
    );
    sh_ok(
        &*sandbox,
        &format!("podman run -d {IMAGE} sleep 600 >/dev/null"),
    )
    .await;
    let before: Vec<_> = std::fs::read_dir(engine.disks()).unwrap().collect();
    assert!(
        before.is_empty(),
        "the disk's file is unlinked once mounted"
    );
    let uid_procs = || {
        let out = std::process::Command::new("ps")
            .args(["-e", "-o", "uid=,comm="])
            .output()
            .unwrap();
        let ps = text(&out.stdout);
        ps.lines().filter(|l| l.trim().starts_with("6401")).count()
    };
    assert!(uid_procs() > 0, "the container runs as the box's uid");
    sandbox.destroy().await.unwrap();
    eventually("no process of the box remains", || uid_procs() == 0).await;
    eventually("no loop device backs a deleted scratch disk", || {
        let out = std::process::Command::new("losetup")
            .arg("-a")
            .output()
            .unwrap();
        !text(&out.stdout).contains(&engine.disks().display().to_string())
    })
    .await;
}

#[tokio::test]
async fn only_a_box_with_an_engine_may_make_user_namespaces() {
    let engine = Engine::new(64_016..64_020).await;
    let plain = engine.host.sandbox().await;
    let out = sh(&*plain, "unshare --user --map-root-user true 2>&1").await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains("Operation not permitted"),
        "{}",
        describe(&out)
    );
    plain.destroy().await.unwrap();
    let with = engine.sandbox().await;
    sh_ok(&*with, "unshare --user --map-root-user --mount true").await;
    // What the engine does not need stays refused (ptrace, kernel keyrings).
    let out = sh(&*with, "strace -o /dev/null true 2>&1").await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
    with.destroy().await.unwrap();
}

#[tokio::test]
async fn docker_builds_and_runs_images_with_users_ports_and_health_checks() {
    let engine = Engine::new(64_020..64_024).await;
    let sandbox = engine.sandbox().await;
    assert_eq!(
        sh_ok(&*sandbox, "command -v docker").await.trim(),
        "/run/engine/bin/docker"
    );
    sh_ok(
        &*sandbox,
        "mkdir -p /workspace/app && cd /workspace/app && printf '%s\\n' \
         'FROM tiny:1' 'RUN echo built > /www' 'USER 1000' 'EXPOSE 8080' \
         'HEALTHCHECK CMD true' 'CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/\"]' \
         > Dockerfile && docker build -q -t app . >/dev/null 2>&1",
    )
    .await;
    let inspect = sh_ok(
        &*sandbox,
        "docker image inspect app --format \
         '{{len .RootFS.Layers}}|{{.Config.User}}|{{.Config.ExposedPorts}}|{{.Config.Healthcheck.Test}}' 2>/dev/null",
    )
    .await;
    assert_eq!(inspect.trim(), "2|1000|map[8080/tcp:{}]|[CMD-SHELL true]");
    sh_ok(
        &*sandbox,
        "docker run -d -p 8080:8080 --name web app >/dev/null 2>&1",
    )
    .await;
    tokio::time::timeout(PATIENCE, async {
        while !sandbox.listening_ports().await.contains(&8080) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the container listens on port 8080");
    assert_eq!(
        sh_ok(&*sandbox, "busybox wget -qO- http://127.0.0.1:8080/www").await,
        "built\n"
    );
    // A user of the image's own: the box's subordinate ids, mapped by the agent on request.
    let id = sh_ok(&*sandbox, "docker exec web id -u 2>/dev/null").await;
    assert_eq!(id.trim(), "1000");
    let ps = sh_ok(
        &*sandbox,
        "docker ps --format '{{.Names}} {{.Status}}' 2>/dev/null",
    )
    .await;
    assert!(ps.starts_with("web Up"), "{ps}");
    sandbox.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_to_the_engine_stay_inside_the_box() {
    let engine = Engine::new(64_028..64_032).await;
    let sandbox = engine.sandbox().await;
    let fails = |script: &'static str, says: &'static str| {
        let sandbox = &sandbox;
        async move {
            let out = sh(&**sandbox, &format!("{script} 2>&1")).await;
            assert_ne!(out.exit.code, Some(0), "{script}: {}", describe(&out));
            assert!(
                text(&out.stdout).contains(says),
                "{script}: {}",
                describe(&out)
            );
        }
    };
    // --privileged asks for the host's sysfs, which a box has none of.
    fails(
        "docker run --rm --privileged tiny:1 true",
        "Operation not permitted",
    )
    .await;
    // / is the box's own root, read-only.
    fails(
        "docker run --rm -v /:/host tiny:1 touch /host/usr/planted",
        "Read-only file system",
    )
    .await;
    // No registry: said at once.
    fails("docker pull alpine", "blocked").await;
    // The host's PID namespace is not the engine's to give.
    fails(
        "docker run --rm --pid host tiny:1 true",
        "private PID namespace",
    )
    .await;
    // A port the box already uses cannot be published again (slirp4netns says so its way).
    sh_ok(
        &*sandbox,
        "docker run -d -p 8090:80 tiny:1 httpd -f -p 80 >/dev/null 2>&1",
    )
    .await;
    fails(
        "docker run -d -p 8090:80 tiny:1 httpd -f -p 80",
        "port redirection",
    )
    .await;
    // A build that never ends stops at its process's wall time; the box goes on.
    let mut spec = ProcessSpec::new([
        "/bin/sh",
        "-c",
        "mkdir -p /workspace/forever && cd /workspace/forever && \
         printf 'FROM tiny:1\\nRUN sleep 1000\\n' > Dockerfile && docker build -t forever .",
    ]);
    containers::apply_env(&mut spec);
    spec.limits = ProcessLimits {
        wall_ms: Some(3_000),
        cpu_ms: None,
        output_bytes: Some(1 << 20),
        file_size_bytes: 1 << 30,
        open_files: 4096,
    };
    let out = sandbox
        .spawn(spec)
        .await
        .unwrap()
        .output(b"")
        .await
        .unwrap();
    assert_eq!(
        out.exit.limit,
        Some(sandpit_sandbox::LimitKind::WallTime),
        "{}",
        describe(&out)
    );
    assert_eq!(
        sh_ok(&*sandbox, "echo still-here").await.trim(),
        "still-here"
    );
    assert!(!std::path::Path::new("/usr/planted").exists());
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn another_box_sees_none_of_a_box_s_images_or_containers() {
    let engine = Engine::new(64_032..64_036).await;
    let a = engine.sandbox().await;
    let b = engine.sandbox().await;
    sh_ok(
        &*a,
        "mkdir -p /workspace/x && cd /workspace/x && printf 'FROM tiny:1\\nRUN echo a > /a\\n' > Dockerfile \
         && docker build -q -t mine . >/dev/null 2>&1 && docker run -d --name kept tiny:1 sleep 600 >/dev/null 2>&1",
    )
    .await;
    let listed = |sandbox| async move {
        sh_ok(
            sandbox,
            "docker images --format '{{.Repository}}'; docker ps -a --format '{{.Names}}'",
        )
        .await
    };
    let in_a = listed(&*a).await;
    assert!(
        in_a.contains("localhost/mine") && in_a.contains("kept"),
        "{in_a}"
    );
    let in_b = listed(&*b).await;
    assert!(!in_b.contains("mine") && !in_b.contains("kept"), "{in_b}");
    // Both see the shared base image.
    assert!(in_b.contains("docker.io/library/tiny"), "{in_b}");
    a.destroy().await.unwrap();
    b.destroy().await.unwrap();
}
