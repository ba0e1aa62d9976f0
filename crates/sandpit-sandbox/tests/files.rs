#![expect(clippy::unwrap_used, reason = "tests")]
//! Workspace file operations through the agent against real sandboxes (run as root): tree,
//! stat, move, hash preconditions, archives; and the hostile side: links, hard links, FIFOs and
//! devices planted by sandboxed code, and archives built to escape, explode or break. Every
//! hostile case asserts the refusal and that nothing outside the target changed.

mod common;
use common::{Host, path, text};

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use sandpit_sandbox::protocol::{
    EntryKind, FileError, Precondition, TreeEntry, UnpackLimits, Unpacked,
};
use sandpit_sandbox::{Output, ProcessSpec, Sandbox, SandboxError, SandboxLimits};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;
/// Upper bound for anything a test waits for, so a defect shows as a failure, not a hang.
const PATIENCE: Duration = Duration::from_secs(30);
/// For requests that must be answered at once (a hang is the defect being tested).
const PROMPTLY: Duration = Duration::from_secs(10);

fn box_limits() -> SandboxLimits {
    SandboxLimits {
        memory_bytes: 512 * MIB,
        pids: 64,
        cpu_millicores: Some(1000),
        workspace_bytes: 64 * MIB,
        tmp_bytes: 8 * MIB,
        shm_bytes: 8 * MIB,
    }
}

async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}

async fn sh(sandbox: &dyn Sandbox, script: &str) -> Output {
    within(PATIENCE, script, async {
        sandbox
            .spawn(ProcessSpec::new(["/bin/sh", "-c", script]))
            .await
            .unwrap()
            .output(b"")
            .await
            .unwrap()
    })
    .await
}

/// Runs `sh -c script` and asserts it exited 0; returns stdout.
async fn sh_ok(sandbox: &dyn Sandbox, script: &str) -> String {
    let out = sh(sandbox, script).await;
    assert_eq!(
        out.exit.code,
        Some(0),
        "{script}: {:?}\n{}\n{}",
        out.exit,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

async fn tree(sb: &dyn Sandbox, dir: Option<&str>) -> Vec<TreeEntry> {
    let dir = dir.map(path);
    let listing = sb.tree(dir.as_ref(), 100_000).await.unwrap();
    assert!(!listing.truncated);
    listing.entries
}

fn paths(entries: &[TreeEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

/// Everything observable that a hostile request might change: the workspace tree with every
/// file's contents, the sandbox's `/tmp`, `/etc` and root as sandboxed code sees them.
async fn snapshot(sb: &dyn Sandbox) -> (Vec<TreeEntry>, BTreeMap<String, Vec<u8>>, String) {
    let entries = tree(sb, None).await;
    let mut contents = BTreeMap::new();
    for e in &entries {
        if e.kind == EntryKind::File {
            contents.insert(
                e.path.clone(),
                sb.read_file(&path(&e.path), 64 * MIB).await.unwrap(),
            );
        }
    }
    let outside = sh_ok(
        sb,
        "ls -la --time-style=full-iso /tmp /etc /dev/shm; cat /etc/passwd /etc/hosts",
    )
    .await;
    (entries, contents, outside)
}

fn assert_refused<T: std::fmt::Debug>(result: Result<T, SandboxError>, what: &str) -> String {
    match result {
        Err(SandboxError::File(FileError::Refused(message))) => message,
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

fn limits() -> UnpackLimits {
    UnpackLimits {
        max_entries: 1000,
        max_total_bytes: 16 * MIB,
        max_file_bytes: 8 * MIB,
    }
}

/// A `.tar.gz` of the given regular files.
fn targz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A tar header whose name is set from raw bytes, so names the builder refuses (`..`, absolute
/// paths) can be made.
fn raw_header(name: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    header
}

/// A hand-made archive entry: header and data.
type RawEntry = (tar::Header, Vec<u8>);

/// A `.tar.gz` of hand-made entries.
fn raw_targz(entries: Vec<RawEntry>) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (header, data) in entries {
        builder.append(&header, data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn archive_names(archive: &[u8]) -> Vec<(String, tar::EntryType)> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    tar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                e.header().entry_type(),
            )
        })
        .collect()
}

/// The host pid of a sandboxed `sleep` started with a unique argument, to reach the sandbox's
/// mount namespace from the host (`/proc/PID/root`) for what sandboxed code cannot do itself.
async fn sandbox_host_pid(sb: &dyn Sandbox) -> (sandpit_sandbox::Process, u32) {
    let marker = format!("1000.{}", std::process::id());
    let sleeper = sb
        .spawn(ProcessSpec::new(["/bin/sleep", marker.as_str()]))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            if cmdline.split(|&b| b == 0).any(|a| a == marker.as_bytes()) {
                return (sleeper, pid);
            }
        }
        assert!(std::time::Instant::now() < deadline, "sleeper not found");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Functional

#[tokio::test]
async fn tree_lists_a_nested_workspace_in_order_with_sizes_kinds_and_times() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    sh_ok(
        sb,
        "mkdir -p a/b/c empty && printf 12345 > a/b/five && printf '' > a/zero \
         && head -c 3000 /dev/zero > top && ln -s /etc a/link && mkfifo a/fifo \
         && printf x > a-sibling && touch -h -d @1700000000 a/b/five a/link",
    )
    .await;
    let entries = tree(sb, None).await;
    assert_eq!(
        paths(&entries),
        [
            "a",
            "a/b",
            "a/b/c",
            "a/b/five",
            "a/fifo",
            "a/link",
            "a/zero",
            "a-sibling",
            "empty",
            "top"
        ],
        "depth first, siblings by name, the link not followed"
    );
    let by_path: BTreeMap<&str, &TreeEntry> =
        entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let kinds = |p: &str| (by_path[p].kind, by_path[p].size);
    assert_eq!(kinds("a"), (EntryKind::Dir, 0));
    assert_eq!(kinds("a/b/five"), (EntryKind::File, 5));
    assert_eq!(kinds("a/zero"), (EntryKind::File, 0));
    assert_eq!(kinds("top"), (EntryKind::File, 3000));
    assert_eq!(kinds("a/link"), (EntryKind::Symlink, 0));
    assert_eq!(kinds("a/fifo"), (EntryKind::Other, 0));
    assert_eq!(by_path["a/b/five"].modified_ms, 1_700_000_000_000);
    assert_eq!(by_path["a/link"].modified_ms, 1_700_000_000_000);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (now_ms - by_path["top"].modified_ms).abs() < 60_000,
        "{} vs now {now_ms}",
        by_path["top"].modified_ms
    );

    // Truncation keeps the first entries of the same order.
    let cut = sb.tree(None, 3).await.unwrap();
    assert!(cut.truncated);
    assert_eq!(paths(&cut.entries), ["a", "a/b", "a/b/c"]);
    let exact = sb.tree(None, entries.len() as u32).await.unwrap();
    assert!(!exact.truncated, "exactly max_entries is not truncated");
    assert_eq!(exact.entries, entries);

    // A subtree keeps workspace-relative paths.
    assert_eq!(paths(&tree(sb, Some("a/b")).await), ["a/b/c", "a/b/five"]);
    let not_dir = sb.tree(Some(&path("top")), 10).await.unwrap_err();
    assert!(
        matches!(not_dir, SandboxError::File(FileError::NotADirectory)),
        "{not_dir:?}"
    );
    let missing = sb.tree(Some(&path("nope")), 10).await.unwrap_err();
    assert!(
        matches!(missing, SandboxError::File(FileError::NotFound)),
        "{missing:?}"
    );
    // The tree stops at a link: listing below it is refused.
    assert_refused(
        sb.tree(Some(&path("a/link")), 10).await,
        "tree through a link",
    );
}

#[tokio::test]
async fn stat_describes_a_path_without_following_a_link() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    sh_ok(
        sb,
        "mkdir d && printf hello > d/f && ln -s /etc/passwd l && touch -d @1600000000 d/f",
    )
    .await;
    assert_eq!(
        sb.stat(&path("d/f")).await.unwrap(),
        TreeEntry {
            path: "d/f".into(),
            kind: EntryKind::File,
            size: 5,
            modified_ms: 1_600_000_000_000,
        }
    );
    assert_eq!(sb.stat(&path("d")).await.unwrap().kind, EntryKind::Dir);
    let link = sb.stat(&path("l")).await.unwrap();
    assert_eq!((link.kind, link.size), (EntryKind::Symlink, 0));
    let missing = sb.stat(&path("d/nope")).await.unwrap_err();
    assert!(
        matches!(missing, SandboxError::File(FileError::NotFound)),
        "{missing:?}"
    );
    assert_refused(sb.stat(&path("l/x")).await, "stat through a link");
}

#[tokio::test]
async fn move_renames_files_and_directories_within_the_workspace() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    sh_ok(
        sb,
        "mkdir -p src/pkg && printf one > src/pkg/one.py && printf two > two.txt \
         && printf other > other.txt && mkdir full && printf x > full/x",
    )
    .await;
    // A file into a directory that does not exist yet.
    sb.rename(&path("two.txt"), &path("new/dir/2.txt"), false)
        .await
        .unwrap();
    assert_eq!(
        sb.read_file(&path("new/dir/2.txt"), 10).await.unwrap(),
        b"two"
    );
    let gone = sb.stat(&path("two.txt")).await.unwrap_err();
    assert!(matches!(gone, SandboxError::File(FileError::NotFound)));
    // A directory with its contents.
    sb.rename(&path("src"), &path("lib"), false).await.unwrap();
    assert_eq!(
        paths(&tree(sb, Some("lib")).await),
        ["lib/pkg", "lib/pkg/one.py"]
    );
    // An existing target is refused without `overwrite`, and both stay as they were.
    let exists = sb
        .rename(&path("other.txt"), &path("new/dir/2.txt"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(exists, SandboxError::File(FileError::AlreadyExists)),
        "{exists:?}"
    );
    assert_eq!(
        sb.read_file(&path("new/dir/2.txt"), 10).await.unwrap(),
        b"two"
    );
    assert_eq!(
        sb.read_file(&path("other.txt"), 10).await.unwrap(),
        b"other"
    );
    let exists = sb
        .rename(&path("lib"), &path("full"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(exists, SandboxError::File(FileError::AlreadyExists)),
        "{exists:?}"
    );
    // With `overwrite` the target is replaced: a file, then a non-empty directory.
    sb.rename(&path("other.txt"), &path("new/dir/2.txt"), true)
        .await
        .unwrap();
    assert_eq!(
        sb.read_file(&path("new/dir/2.txt"), 10).await.unwrap(),
        b"other"
    );
    sb.rename(&path("lib"), &path("full"), true).await.unwrap();
    assert_eq!(
        paths(&tree(sb, Some("full")).await),
        ["full/pkg", "full/pkg/one.py"]
    );
    // Into itself, at any depth.
    let before = tree(sb, None).await;
    for to in ["full/inside", "full/pkg/deeper/x"] {
        let message = assert_refused(sb.rename(&path("full"), &path(to), true).await, to);
        assert!(message.contains("into itself"), "{message}");
    }
    // Over a directory that holds the source.
    let message = assert_refused(
        sb.rename(&path("full/pkg/one.py"), &path("full"), true)
            .await,
        "over an ancestor",
    );
    assert!(message.contains("holds it"), "{message}");
    let missing = sb
        .rename(&path("nope"), &path("x"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, SandboxError::File(FileError::NotFound)),
        "{missing:?}"
    );
    assert_eq!(tree(sb, None).await, before, "refused moves change nothing");
}

#[tokio::test]
async fn writes_check_their_hash_precondition_in_the_agent() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    let p = path("notes/today.md");
    // Absent: creating works once.
    let first = sb
        .write_file_if(&p, b"v1".to_vec(), 0o644, Some(Precondition::Absent))
        .await
        .unwrap();
    assert_eq!(first, sha256(b"v1"));
    let again = sb
        .write_file_if(&p, b"v1 again".to_vec(), 0o644, Some(Precondition::Absent))
        .await
        .unwrap_err();
    match again {
        SandboxError::File(FileError::Conflict { current }) => {
            assert_eq!(current, Some(first.clone()));
        }
        other => panic!("{other:?}"),
    }
    // Read gives the hash; a write expecting it succeeds and returns the new one.
    let (data, hash) = sb.read_file_with_hash(&p, 100).await.unwrap();
    assert_eq!(
        (data.as_slice(), hash.as_str()),
        (&b"v1"[..], first.as_str())
    );
    let second = sb
        .write_file_if(
            &p,
            b"v2".to_vec(),
            0o600,
            Some(Precondition::Sha256(hash.clone())),
        )
        .await
        .unwrap();
    assert_eq!(second, sha256(b"v2"));
    // Someone else (sandboxed code here) changed the file: the stale hash is a conflict
    // naming the current contents, and nothing is written.
    sh_ok(sb, "printf v3 > notes/today.md").await;
    let stale = sb
        .write_file_if(
            &p,
            b"lost".to_vec(),
            0o644,
            Some(Precondition::Sha256(second)),
        )
        .await
        .unwrap_err();
    match stale {
        SandboxError::File(FileError::Conflict { current }) => {
            assert_eq!(current, Some(sha256(b"v3")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sb.read_file(&p, 100).await.unwrap(), b"v3");
    // Expecting a hash where nothing is.
    let missing = sb
        .write_file_if(
            &path("nope"),
            b"x".to_vec(),
            0o644,
            Some(Precondition::Sha256(sha256(b"x"))),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            missing,
            SandboxError::File(FileError::Conflict { current: None })
        ),
        "{missing:?}"
    );
    // The mode is the one asked for and no temporary file is left behind.
    sb.write_file(&p, b"v4".to_vec(), 0o640).await.unwrap();
    assert_eq!(sh_ok(sb, "stat -c %a notes/today.md").await.trim(), "640");
    assert_eq!(paths(&tree(sb, None).await), ["notes", "notes/today.md"]);
}

#[tokio::test]
async fn writes_are_atomic_for_readers() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    let a = vec![b'a'; 4 * MIB as usize];
    let b = vec![b'b'; 4 * MIB as usize];
    sb.write_file(&path("f"), a.clone(), 0o644).await.unwrap();
    // A sandboxed reader checks every version it sees is all one letter.
    let reader = sb
        .spawn(ProcessSpec::new([
            "/usr/bin/python3",
            "-c",
            "import time\nend = time.time() + 3\nn = 0\nwhile time.time() < end:\n    \
             d = open('/workspace/f', 'rb').read()\n    \
             assert len(d) == 4 << 20 and d.count(d[:1]) == len(d), 'torn read'\n    n += 1\n\
             print(n)",
        ]))
        .await
        .unwrap();
    for i in 0..30 {
        let data = if i % 2 == 0 { b.clone() } else { a.clone() };
        sb.write_file(&path("f"), data, 0o644).await.unwrap();
    }
    let out = within(PATIENCE, "reader", reader.output(b""))
        .await
        .unwrap();
    assert_eq!(out.exit.code, Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).trim().parse::<u32>().unwrap() > 0);
}

#[tokio::test]
async fn pack_and_unpack_round_trip_between_sandboxes() {
    let host = Host::with(62000..62100, box_limits()).await;
    let a = host.sandbox().await;
    let b = host.sandbox().await;
    sh_ok(
        a.as_ref(),
        "mkdir -p src/deep/er empty-dir && printf 'print(1)\\n' > src/main.py \
         && head -c 1500000 /dev/urandom > src/deep/er/blob.bin && : > src/empty \
         && printf '#!/bin/sh\\necho hi\\n' > run.sh && chmod 750 run.sh \
         && touch -d @1650000000 src/main.py",
    )
    .await;
    let archive = a.pack(None, 32 * MIB).await.unwrap();
    assert!(archive.len() < 3 * MIB as usize, "{} bytes", archive.len());
    let done = b.unpack(None, archive.clone(), limits()).await.unwrap();
    let original = tree(a.as_ref(), None).await;
    assert_eq!(
        done,
        Unpacked {
            entries: original.len() as u32,
            bytes: 1_500_000 + 9 + 18,
        }
    );
    let copy = tree(b.as_ref(), None).await;
    assert_eq!(paths(&copy), paths(&original));
    for (x, y) in original.iter().zip(&copy) {
        assert_eq!((x.kind, x.size), (y.kind, y.size), "{}", x.path);
        if x.kind == EntryKind::File {
            // tar keeps whole seconds.
            assert_eq!(x.modified_ms / 1000, y.modified_ms / 1000, "{}", x.path);
            let p = path(&x.path);
            assert_eq!(
                a.read_file(&p, 4 * MIB).await.unwrap(),
                b.read_file(&p, 4 * MIB).await.unwrap(),
                "{}",
                x.path
            );
        }
    }
    assert_eq!(
        sh_ok(b.as_ref(), "stat -c %a run.sh && ./run.sh").await,
        "750\nhi\n"
    );

    // A subdirectory packs relative to itself and unpacks into another, merging with what is
    // there: files are replaced, others kept.
    let sub = a.pack(Some(&path("src")), 32 * MIB).await.unwrap();
    sh_ok(b.as_ref(), "mkdir -p restored/deep && printf old > restored/main.py && printf keep > restored/deep/keep").await;
    b.unpack(Some(&path("restored")), sub, limits())
        .await
        .unwrap();
    assert_eq!(
        paths(&tree(b.as_ref(), Some("restored")).await),
        [
            "restored/deep",
            "restored/deep/er",
            "restored/deep/er/blob.bin",
            "restored/deep/keep",
            "restored/empty",
            "restored/main.py"
        ]
    );
    assert_eq!(
        b.read_file(&path("restored/main.py"), 100).await.unwrap(),
        b"print(1)\n"
    );
    // Nothing of the staging is left anywhere.
    assert!(
        !tree(b.as_ref(), None)
            .await
            .iter()
            .any(|e| e.path.contains(".sandpit")),
        "staging left behind"
    );

    // Too small a limit for the archive.
    let small = a.pack(None, 1000).await.unwrap_err();
    assert!(
        matches!(small, SandboxError::File(FileError::TooLarge(1000))),
        "{small:?}"
    );
}

#[tokio::test]
async fn pack_keeps_links_as_links_and_skips_fifos() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    sh_ok(
        sb,
        "printf x > f && ln -s /etc etc && ln -s f rel && mkfifo pipe",
    )
    .await;
    let names = archive_names(&within(PROMPTLY, "pack", sb.pack(None, MIB)).await.unwrap());
    assert_eq!(
        names,
        [
            ("etc".to_string(), tar::EntryType::Symlink),
            ("f".to_string(), tar::EntryType::Regular),
            ("rel".to_string(), tar::EntryType::Symlink),
        ]
    );
}

#[tokio::test]
async fn unpack_enforces_file_and_total_size_limits() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    sh_ok(sb, "printf keep > keep").await;
    let before = snapshot(sb).await;
    let big = vec![7u8; 2 * MIB as usize];
    let tight = UnpackLimits {
        max_entries: 10,
        max_total_bytes: 3 * MIB,
        max_file_bytes: MIB,
    };
    let one_big = sb
        .unpack(None, targz(&[("a", b"small"), ("big", &big)]), tight)
        .await
        .unwrap_err();
    assert!(
        matches!(one_big, SandboxError::File(FileError::TooLarge(n)) if n == MIB),
        "{one_big:?}"
    );
    let half = vec![1u8; (MIB / 2) as usize];
    let many: Vec<(String, &[u8])> = (0..8)
        .map(|i| (format!("part{i}"), half.as_slice()))
        .collect();
    let many: Vec<(&str, &[u8])> = many.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    let total = sb.unpack(None, targz(&many), tight).await.unwrap_err();
    assert!(
        matches!(total, SandboxError::File(FileError::TooLarge(n)) if n == 3 * MIB),
        "{total:?}"
    );
    assert_eq!(snapshot(sb).await, before, "nothing half-extracted");
    // Within the limits the same archive works.
    sb.unpack(None, targz(&many[..4]), tight).await.unwrap();
    assert_eq!(sb.stat(&path("part3")).await.unwrap().size, MIB / 2);
}

// ---------------------------------------------------------------------------------------------
// Hostile: what sandboxed code plants

#[tokio::test]
async fn hostile_links_planted_by_sandboxed_code_are_never_followed() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    let host_passwd = std::fs::read("/etc/passwd").unwrap();
    sh_ok(
        sb,
        "mkdir real && printf mine > real/f && ln -s /etc etc && ln -s /proc/1/root agentroot \
         && ln -s / slash && ln -s real/f filelink",
    )
    .await;
    let before = snapshot(sb).await;
    for through in [
        "etc/passwd",
        "agentroot/etc/passwd",
        "slash/etc/hosts",
        "etc/newfile",
    ] {
        let p = path(through);
        assert_refused(
            within(PROMPTLY, through, sb.read_file(&p, MIB)).await,
            through,
        );
        assert_refused(
            within(PROMPTLY, through, sb.read_file_with_hash(&p, MIB)).await,
            through,
        );
        assert_refused(
            sb.write_file(&p, b"pwned".to_vec(), 0o644).await,
            &format!("write {through}"),
        );
        assert_refused(
            sb.write_file_if(&p, b"pwned".to_vec(), 0o644, Some(Precondition::Absent))
                .await,
            &format!("write_file_if {through}"),
        );
        assert_refused(sb.stat(&p).await, &format!("stat {through}"));
        assert_refused(
            sb.rename(&path("real/f"), &p, true).await,
            &format!("move into {through}"),
        );
        assert_refused(
            sb.rename(&p, &path("stolen"), false).await,
            &format!("move out of {through}"),
        );
    }
    for link in ["etc", "agentroot", "slash", "filelink"] {
        let p = path(link);
        assert_refused(sb.read_file(&p, MIB).await, link);
        assert_refused(sb.write_file(&p, b"x".to_vec(), 0o644).await, link);
        assert_refused(sb.tree(Some(&p), 100).await, link);
        assert_refused(sb.pack(Some(&p), MIB).await, link);
        assert_refused(
            sb.unpack(Some(&p), targz(&[("x", b"x")]), limits()).await,
            link,
        );
        assert_refused(sb.rename(&p, &path("moved"), false).await, link);
        assert_refused(sb.rename(&path("real"), &p, true).await, link);
        // Described, not followed.
        assert_eq!(sb.stat(&p).await.unwrap().kind, EntryKind::Symlink);
    }
    // Listed as links and not descended into; packed as links, never as their targets.
    let listed = tree(sb, None).await;
    assert_eq!(
        paths(&listed),
        ["agentroot", "etc", "filelink", "real", "real/f", "slash"]
    );
    let archive = sb.pack(None, 4 * MIB).await.unwrap();
    assert!(
        archive.len() < 4096,
        "{} bytes: a link was followed",
        archive.len()
    );
    let names = archive_names(&archive);
    assert_eq!(names.len(), 6, "{names:?}");
    // An archive written through a link already on disk is refused whole.
    let message = assert_refused(
        sb.unpack(
            None,
            targz(&[("ok.txt", b"fine"), ("etc/evil", b"x")]),
            limits(),
        )
        .await,
        "unpack through a link on disk",
    );
    assert!(message.contains("etc"), "{message}");
    assert_eq!(snapshot(sb).await, before, "nothing changed");
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), host_passwd);
}

#[tokio::test]
async fn hostile_hard_links_do_not_reach_outside_or_share_writes() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    sh_ok(sb, "printf secret > /tmp/secret && printf shared > a").await;
    // The workspace is its own file system: a hard link to a file outside cannot be made.
    let out = sh(sb, "ln /tmp/secret /workspace/hard").await;
    assert_ne!(out.exit.code, Some(0));
    assert!(
        text(&out.stderr).contains("cross-device"),
        "{}",
        text(&out.stderr)
    );
    let out = sh(sb, "ln /etc/passwd /workspace/passwd").await;
    assert_ne!(out.exit.code, Some(0));
    // A hard link inside the workspace: a write replaces the name it was given, not the
    // contents every name shares.
    sh_ok(sb, "ln a b").await;
    sb.write_file(&path("b"), b"changed".to_vec(), 0o644)
        .await
        .unwrap();
    assert_eq!(sb.read_file(&path("a"), 100).await.unwrap(), b"shared");
    assert_eq!(sb.read_file(&path("b"), 100).await.unwrap(), b"changed");
    let archive = sb.pack(None, MIB).await.unwrap();
    assert_eq!(
        archive_names(&archive),
        [
            ("a".to_string(), tar::EntryType::Regular),
            ("b".to_string(), tar::EntryType::Regular)
        ]
    );
    assert_eq!(sh_ok(sb, "cat /tmp/secret").await, "secret");
}

#[tokio::test]
async fn hostile_fifos_and_devices_never_hang_or_open() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    sh_ok(sb, "mkfifo fifo && printf ok > ok").await;
    // Sandboxed code cannot make device nodes; the host plants one to be sure the agent would
    // neither open nor replace it.
    let (sleeper, pid) = sandbox_host_pid(sb).await;
    let dev = format!("/proc/{pid}/root/workspace/null");
    nix::sys::stat::mknod(
        Path::new(&dev),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    let before = snapshot(sb).await;
    for special in ["fifo", "null"] {
        let p = path(special);
        assert_refused(
            within(PROMPTLY, special, sb.read_file(&p, 100)).await,
            special,
        );
        assert_refused(
            within(PROMPTLY, special, sb.read_file_with_hash(&p, 100)).await,
            special,
        );
        assert_refused(
            within(PROMPTLY, special, sb.write_file(&p, b"x".to_vec(), 0o644)).await,
            special,
        );
        assert_refused(
            within(
                PROMPTLY,
                special,
                sb.write_file_if(&p, b"x".to_vec(), 0o644, Some(Precondition::Absent)),
            )
            .await,
            special,
        );
        assert_eq!(sb.stat(&p).await.unwrap().kind, EntryKind::Other);
    }
    let entries = within(PROMPTLY, "tree", sb.tree(None, 100))
        .await
        .unwrap()
        .entries;
    assert_eq!(paths(&entries), ["fifo", "null", "ok"]);
    let archive = within(PROMPTLY, "pack", sb.pack(None, MIB)).await.unwrap();
    assert_eq!(
        archive_names(&archive),
        [("ok".to_string(), tar::EntryType::Regular)]
    );
    assert_eq!(snapshot(sb).await, before);
    drop(sleeper);
    // The agent still answers.
    sb.write_file(&path("after"), b"fine".to_vec(), 0o644)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Hostile: archives

/// Unpacks `archive` into each of `dirs` (`None`: the workspace root); each must be refused
/// the same way, leaving everything as it was. Returns the error.
async fn refused_unpack_into(
    sb: &dyn Sandbox,
    archive: Vec<u8>,
    limits: UnpackLimits,
    dirs: &[Option<&str>],
) -> FileError {
    let before = snapshot(sb).await;
    let mut errors = Vec::new();
    for dir in dirs {
        let dir = dir.map(path);
        let error = within(
            PROMPTLY,
            "unpack",
            sb.unpack(dir.as_ref(), archive.clone(), limits),
        )
        .await
        .unwrap_err();
        match error {
            SandboxError::File(error) => errors.push(error),
            other => panic!("{other:?}"),
        }
        assert_eq!(snapshot(sb).await, before, "nothing half-extracted");
    }
    let first = errors[0].clone();
    assert!(errors.iter().all(|e| *e == first), "{errors:?}");
    first
}

/// Unpacks into the workspace root and into `target`.
async fn refused_unpack(sb: &dyn Sandbox, archive: Vec<u8>, limits: UnpackLimits) -> FileError {
    refused_unpack_into(sb, archive, limits, &[None, Some("target")]).await
}

fn expect_refusal(error: FileError, naming: &str) {
    match error {
        FileError::Refused(message) => {
            assert!(
                message.contains(naming),
                "{message:?} should name {naming:?}"
            )
        }
        other => panic!("expected a refusal naming {naming:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn hostile_archive_entries_that_escape_or_are_not_plain_files() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    sh_ok(
        sb,
        "mkdir target && printf keep > target/keep && printf top > top",
    )
    .await;
    let file = |name: &[u8]| {
        (
            raw_header(name, tar::EntryType::Regular, 4),
            b"evil".to_vec(),
        )
    };
    let ok = || file(b"fine.txt");
    let cases: Vec<(&str, Vec<RawEntry>)> = vec![
        ("../x", vec![ok(), file(b"../x")]),
        ("a/../../x", vec![ok(), file(b"a/../../x")]),
        ("/abs", vec![ok(), file(b"/abs")]),
        ("/etc/passwd", vec![file(b"/etc/passwd")]),
        (
            "link",
            vec![
                {
                    let mut h = raw_header(b"link", tar::EntryType::Symlink, 0);
                    h.set_link_name("/tmp").unwrap();
                    h.set_cksum();
                    (h, Vec::new())
                },
                file(b"link/evil"),
            ],
        ),
        (
            "hard",
            vec![ok(), {
                let mut h = raw_header(b"hard", tar::EntryType::Link, 0);
                h.set_link_name("/tmp/secret").unwrap();
                h.set_cksum();
                (h, Vec::new())
            }],
        ),
        (
            "tty",
            vec![{
                let mut h = raw_header(b"tty", tar::EntryType::Char, 0);
                h.set_device_major(5).unwrap();
                h.set_device_minor(0).unwrap();
                h.set_cksum();
                (h, Vec::new())
            }],
        ),
        (
            "pipe",
            vec![(raw_header(b"pipe", tar::EntryType::Fifo, 0), Vec::new())],
        ),
        (".sandpit-unpack-1", vec![file(b".sandpit-unpack-1/x")]),
        // A name twice, then a file where a directory must be.
        ("fine.txt", vec![ok(), ok()]),
        ("fine.txt/x", vec![ok(), file(b"fine.txt/x")]),
    ];
    for (naming, entries) in cases {
        let error = refused_unpack(sb, raw_targz(entries), limits()).await;
        expect_refusal(error, naming);
    }
    // A symbolic link already on disk inside the target is refused too.
    sh_ok(sb, "ln -s /tmp target/out").await;
    let error = refused_unpack_into(
        sb,
        targz(&[("out/evil", b"x")]),
        limits(),
        &[Some("target")],
    )
    .await;
    expect_refusal(error, "out");
    assert_eq!(sh(sb, "test -e /tmp/evil").await.exit.code, Some(1));
    // And a file where a directory of the archive must go.
    let error = refused_unpack_into(sb, targz(&[("top/x", b"x")]), limits(), &[None]).await;
    expect_refusal(error, "top");
}

#[tokio::test]
async fn hostile_archive_with_too_many_entries_stops_at_the_cap() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for i in 0..100_000 {
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, format!("d{}/f{i}", i % 100), &b"x"[..])
            .unwrap();
    }
    let archive = builder.into_inner().unwrap().finish().unwrap();
    let error = refused_unpack(sb, archive, limits()).await;
    expect_refusal(error, "more than 1000 entries");
}

/// A gzip stream of `size` zero bytes, made of concatenated members (each 1 MiB of zeros
/// compresses to about a kilobyte), so a 2 GiB bomb is built in milliseconds.
fn zero_members(size: u64) -> Vec<u8> {
    static CHUNK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let chunk = CHUNK.get_or_init(|| gz(&vec![0u8; MIB as usize]));
    assert_eq!(size % MIB, 0);
    chunk.repeat((size / MIB) as usize)
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[tokio::test]
async fn hostile_gzip_bombs_stop_at_the_byte_cap() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    let roomy = UnpackLimits {
        max_entries: 100_000,
        max_total_bytes: 8 * MIB,
        max_file_bytes: u64::MAX,
    };
    // One file of 2 GiB of zeros (about 2 MB compressed).
    let mut bomb = gz(raw_header(b"zeros", tar::EntryType::Regular, 2 << 30).as_bytes());
    bomb.extend(zero_members(2 << 30));
    bomb.extend(gz(&[0u8; 1024]));
    assert!(bomb.len() < 4 * MIB as usize, "{}", bomb.len());
    let error = refused_unpack(sb, bomb, roomy).await;
    assert_eq!(error, FileError::TooLarge(8 * MIB));

    // The same bytes as 2048 files of 1 MiB, each under the per-file cap.
    let mut bomb = Vec::new();
    for i in 0..2048 {
        bomb.extend(gz(raw_header(
            format!("z{i}").as_bytes(),
            tar::EntryType::Regular,
            MIB,
        )
        .as_bytes()));
        bomb.extend(zero_members(MIB));
    }
    bomb.extend(gz(&[0u8; 1024]));
    let error = refused_unpack(sb, bomb, roomy).await;
    assert_eq!(error, FileError::TooLarge(8 * MIB));

    // A 1 GiB GNU long-name record: tar metadata the reader would hold in memory.
    let mut bomb =
        gz(raw_header(b"././@LongLink", tar::EntryType::GNULongName, 1 << 30).as_bytes());
    bomb.extend(zero_members(1 << 30));
    let error = refused_unpack(sb, bomb, roomy).await;
    assert!(
        matches!(error, FileError::TooLarge(_) | FileError::Refused(_)),
        "{error:?}"
    );
    assert_eq!(
        sh_ok(sb, "df -k /workspace | tail -1 | awk '{print $3}'")
            .await
            .trim(),
        "0"
    );
}

#[tokio::test]
async fn hostile_damaged_archives_are_refused_whole() {
    let host = Host::with(62000..62100, box_limits()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("f{i}"), vec![i as u8; 100_000]))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let good = targz(&refs);
    let truncated = good[..good.len() / 2].to_vec();
    let error = refused_unpack(sb, truncated, limits()).await;
    expect_refusal(error, "damaged");
    let mut garbage = vec![0u8; 4096];
    let mut urandom = std::fs::File::open("/dev/urandom").unwrap();
    urandom.read_exact(&mut garbage).unwrap();
    let error = refused_unpack(sb, garbage.clone(), limits()).await;
    expect_refusal(error, "damaged");
    // A valid gzip of garbage (not a tar).
    let error = refused_unpack(sb, gz(&garbage), limits()).await;
    expect_refusal(error, "");
    // More than one protocol frame can carry is refused before it is sent.
    let huge = sb
        .unpack(None, vec![0u8; 65 << 20], limits())
        .await
        .unwrap_err();
    assert!(
        matches!(huge, SandboxError::File(FileError::TooLarge(_))),
        "{huge:?}"
    );
    // The good one still works after all that.
    sb.unpack(None, good, limits()).await.unwrap();
    assert_eq!(tree(sb, None).await.len(), 20);
}
