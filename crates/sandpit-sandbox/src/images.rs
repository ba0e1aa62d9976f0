//! Base images for boxes with a container engine, built on this host from Debian's packages:
//! no registry is reachable here, and many deployments have none. Each image is a Debian
//! root file system made by `debootstrap`, trimmed, and imported into one containers-storage
//! directory (the "store") under the names the labs use (`python:3.11-slim` …), which boxes
//! share read-only ([`crate::spec::ContainersSpec::image_store`]).
//!
//! A build makes a new store beside the old one and then points `current` at it (a rename, so
//! a box starting meanwhile sees one or the other, whole); the store before it is kept for
//! boxes that still have it, older ones go. The tools are run as programs with argument
//! lists: `debootstrap`, `tar` and `podman` do this well and nothing in Rust does it better.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

/// Debian's release the images are made of (its Python is 3.11).
pub const SUITE: &str = "bookworm";

/// One image: what goes in it and the names it answers to (Docker Hub's, `docker.io/library/`).
#[derive(Debug, Clone, Copy)]
pub struct Recipe {
    pub name: &'static str,
    /// Packages beyond debootstrap's minimal base.
    pub packages: &'static [&'static str],
    pub tags: &'static [&'static str],
    pub cmd: &'static str,
    /// `python` and `pip` on the `PATH` as the official images have them, and `pip install`
    /// allowed (Debian marks its Python as managed by apt).
    pub python: bool,
}

const PYTHON: &[&str] = &["python3", "python3-pip", "python3-venv", "ca-certificates"];
const PYTHON_FULL: &[&str] = &[
    "python3",
    "python3-pip",
    "python3-venv",
    "ca-certificates",
    "gcc",
    "libc6-dev",
    "python3-dev",
];

/// The images `sandpit images build` makes. The tags say what is inside: Debian 12 and its
/// Python 3.11 (there is no 3.12 to be had from Debian 12).
pub const RECIPES: &[Recipe] = &[
    Recipe {
        name: "debian",
        packages: &[],
        tags: &[
            "debian:bookworm-slim",
            "debian:12-slim",
            "debian:bookworm",
            "debian:12",
            "debian:latest",
        ],
        cmd: "bash",
        python: false,
    },
    Recipe {
        name: "python-slim",
        packages: PYTHON,
        tags: &[
            "python:3.11-slim",
            "python:3.11-slim-bookworm",
            "python:3-slim",
            "python:slim",
        ],
        cmd: "python3",
        python: true,
    },
    Recipe {
        name: "python",
        packages: PYTHON_FULL,
        tags: &[
            "python:3.11",
            "python:3.11-bookworm",
            "python:3",
            "python:bookworm",
            "python:latest",
        ],
        cmd: "python3",
        python: true,
    },
];

/// What is removed from each root file system: package lists and caches, documentation,
/// translations and logs — nothing a program needs.
pub const TRIMS: &[&str] = &[
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/log",
];

#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error("building images needs root (debootstrap and podman's storage); running as uid {0}")]
    NotRoot(u32),
    #[error("{0} is not installed (Debian: apt-get install debootstrap podman)")]
    Missing(&'static str),
    #[error("{what} failed ({status}): {stderr}")]
    Failed {
        what: String,
        status: String,
        stderr: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("podman's image list is not what was expected: {0}")]
    Listing(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImagesError {
    let context = context.into();
    move |source| ImagesError::Io { context, source }
}

/// How a build goes.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub mirror: String,
}

/// One image built.
#[derive(Debug, Clone)]
pub struct Built {
    pub name: &'static str,
    pub tags: Vec<String>,
    pub size_bytes: u64,
    pub seconds: f64,
}

/// An image in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    pub tags: Vec<String>,
    pub size_bytes: u64,
}

/// `docker.io/library/NAME:TAG`, as short names resolve.
pub fn qualified(tag: &str) -> String {
    format!("docker.io/library/{tag}")
}

/// The store in use (`images_dir/current`, resolved), if one was built.
pub fn current_store(images_dir: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(images_dir.join("current"))
        .ok()
        .filter(|p| p.is_dir())
}

/// `podman` against a store, untouched by the host's own containers configuration.
fn podman(store: &Path, runroot: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("podman");
    cmd.arg("--root")
        .arg(store)
        .arg("--runroot")
        .arg(runroot)
        .args([
            "--storage-driver",
            "overlay",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ])
        .env("CONTAINERS_CONF", "/dev/null");
    cmd
}

async fn run(what: &str, cmd: &mut tokio::process::Command) -> Result<String, ImagesError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(io(format!("starting {what}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        Err(ImagesError::Failed {
            what: what.to_owned(),
            status: out.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        })
    }
}

fn on_path(tool: &'static str) -> Result<(), ImagesError> {
    let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|dir| Path::new(dir).join(tool).is_file());
    if found {
        Ok(())
    } else {
        Err(ImagesError::Missing(tool))
    }
}

/// What is missing for a build, if anything.
pub fn preflight() -> Result<(), ImagesError> {
    let uid = nix::unistd::geteuid();
    if !uid.is_root() {
        return Err(ImagesError::NotRoot(uid.as_raw()));
    }
    for tool in ["debootstrap", "podman", "tar"] {
        on_path(tool)?;
    }
    Ok(())
}

/// Files debootstrap copies from the building host, emptied: an image must not carry this
/// host's name or name servers.
pub const HOST_FILES: &[&str] = &["etc/hostname", "etc/resolv.conf"];

/// Empties what [`TRIMS`] names under `rootfs` (the directories stay, empty) and the
/// [`HOST_FILES`]; for Python images, adds `python`/`pip` and lifts Debian's "externally
/// managed" mark.
pub fn trim(rootfs: &Path, recipe: &Recipe) -> std::io::Result<()> {
    for file in HOST_FILES {
        let path = rootfs.join(file);
        if path.is_file() {
            std::fs::write(&path, b"")?;
        }
    }
    for dir in TRIMS {
        let dir = rootfs.join(dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name() == "locale.alias" {
                continue;
            }
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
    }
    if recipe.python {
        let bin = rootfs.join("usr/local/bin");
        std::fs::create_dir_all(&bin)?;
        for (name, target) in [("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")] {
            let link = bin.join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(target, link)?;
        }
        let managed = rootfs.join("usr/lib/python3.11/EXTERNALLY-MANAGED");
        if managed.exists() {
            std::fs::remove_file(managed)?;
        }
    }
    Ok(())
}

/// The argument list of one `debootstrap`.
pub fn debootstrap_args(recipe: &Recipe, cache: &Path, rootfs: &Path, mirror: &str) -> Vec<String> {
    let mut args = vec!["--variant=minbase".to_owned()];
    if !recipe.packages.is_empty() {
        args.push(format!("--include={}", recipe.packages.join(",")));
    }
    args.push(format!("--cache-dir={}", cache.display()));
    args.push(SUITE.to_owned());
    args.push(rootfs.display().to_string());
    args.push(mirror.to_owned());
    args
}

/// The `--change` arguments of an import: the image's configuration.
pub fn import_changes(recipe: &Recipe) -> Vec<String> {
    vec![
        "--change".into(),
        "ENV LANG=C.UTF-8".into(),
        "--change".into(),
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "--change".into(),
        format!("CMD [\"{}\"]", recipe.cmd),
    ]
}

/// Builds every recipe into a new store under `images_dir` and makes it `current`.
/// `progress` hears what is being done.
pub async fn build(
    images_dir: &Path,
    options: &BuildOptions,
    mut progress: impl FnMut(&str),
) -> Result<Vec<Built>, ImagesError> {
    preflight()?;
    std::fs::create_dir_all(images_dir)
        .map_err(io(format!("creating {}", images_dir.display())))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let store = images_dir.join(format!("store-{stamp}"));
    let work = images_dir.join("work");
    let cache = images_dir.join("debs");
    let runroot = runroot_of(&store);
    for dir in [&work, &cache, &runroot] {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    let mut built = Vec::new();
    let result = async {
        for recipe in RECIPES {
            let started = Instant::now();
            let rootfs = work.join(recipe.name);
            if rootfs.exists() {
                std::fs::remove_dir_all(&rootfs).map_err(io("removing an old root"))?;
            }
            progress(&format!("{}: debootstrap {SUITE}", recipe.name));
            run(
                "debootstrap",
                tokio::process::Command::new("debootstrap").args(debootstrap_args(
                    recipe,
                    &cache,
                    &rootfs,
                    &options.mirror,
                )),
            )
            .await?;
            trim(&rootfs, recipe).map_err(io(format!("trimming {}", rootfs.display())))?;
            let tarball = work.join(format!("{}.tar", recipe.name));
            run(
                "tar",
                tokio::process::Command::new("tar")
                    .arg("--numeric-owner")
                    .arg("-C")
                    .arg(&rootfs)
                    .arg("-cf")
                    .arg(&tarball)
                    .arg("."),
            )
            .await?;
            let first = qualified(recipe.tags[0]);
            progress(&format!("{}: import as {first}", recipe.name));
            let id = run(
                "podman import",
                podman(&store, &runroot)
                    .args(["import", "--quiet"])
                    .args(import_changes(recipe))
                    .arg(&tarball)
                    .arg(&first),
            )
            .await?;
            for tag in &recipe.tags[1..] {
                run(
                    "podman tag",
                    podman(&store, &runroot)
                        .arg("tag")
                        .arg(&first)
                        .arg(qualified(tag)),
                )
                .await?;
            }
            let _ = std::fs::remove_file(&tarball);
            let _ = std::fs::remove_dir_all(&rootfs);
            let size = list_store(&store, &runroot)
                .await?
                .into_iter()
                .find(|i| id.trim().trim_start_matches("sha256:").starts_with(&i.id))
                .map_or(0, |i| i.size_bytes);
            built.push(Built {
                name: recipe.name,
                tags: recipe.tags.iter().map(|t| (*t).to_owned()).collect(),
                size_bytes: size,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        Ok::<_, ImagesError>(())
    }
    .await;
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&store);
        let _ = std::fs::remove_dir_all(&work);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&work);
    make_current(images_dir, &store)?;
    prune(images_dir);
    Ok(built)
}

/// Points `images_dir/current` at `store` in one rename.
pub fn make_current(images_dir: &Path, store: &Path) -> Result<(), ImagesError> {
    let next = images_dir.join("current.new");
    let _ = std::fs::remove_file(&next);
    let name = store
        .file_name()
        .ok_or_else(|| ImagesError::Listing(format!("{} has no name", store.display())))?;
    std::os::unix::fs::symlink(name, &next).map_err(io("making the current link"))?;
    std::fs::rename(&next, images_dir.join("current")).map_err(io("swapping the current link"))
}

/// Removes the stores older than the one before `current`.
pub fn prune(images_dir: &Path) -> Vec<PathBuf> {
    let current = current_store(images_dir);
    let Ok(entries) = std::fs::read_dir(images_dir) else {
        return Vec::new();
    };
    let mut stores: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stamp = name.strip_prefix("store-")?.parse().ok()?;
            Some((stamp, e.path()))
        })
        .collect();
    // Their run directories go with them.
    stores.sort();
    let mut removed = Vec::new();
    // Newest first: the current one and the one before it stay.
    for (_, path) in stores.into_iter().rev().skip(2) {
        if Some(&path) != current.as_ref() && std::fs::remove_dir_all(&path).is_ok() {
            let _ = std::fs::remove_dir_all(runroot_of(&path));
            removed.push(path);
        }
    }
    removed
}

#[derive(serde::Deserialize)]
struct Listed {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Option<Vec<String>>,
    #[serde(rename = "Size")]
    size: u64,
}

async fn list_store(store: &Path, runroot: &Path) -> Result<Vec<ImageInfo>, ImagesError> {
    let out = run(
        "podman images",
        podman(store, runroot).args(["images", "--format", "json"]),
    )
    .await?;
    let listed: Vec<Listed> =
        serde_json::from_str(&out).map_err(|e| ImagesError::Listing(e.to_string()))?;
    // Podman lists an image once per name; one entry per image, with all of them.
    let mut images: Vec<ImageInfo> = Vec::new();
    for l in listed {
        let id: String = l.id.chars().take(12).collect();
        let names = l
            .names
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.trim_start_matches("docker.io/library/").to_owned());
        match images.iter_mut().find(|i| i.id == id) {
            Some(image) => {
                for name in names {
                    if !image.tags.contains(&name) {
                        image.tags.push(name);
                    }
                }
            }
            None => images.push(ImageInfo {
                id,
                tags: names.collect(),
                size_bytes: l.size,
            }),
        }
    }
    Ok(images)
}

/// The images of the current store.
pub async fn list(images_dir: &Path) -> Result<Vec<ImageInfo>, ImagesError> {
    let Some(store) = current_store(images_dir) else {
        return Ok(Vec::new());
    };
    list_store(&store, &runroot_of(&store)).await
}

/// Podman's run state for a store, beside it: Podman records the first one a store was used
/// with and refuses another.
fn runroot_of(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_owned();
    name.push(".run");
    store.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tag_is_unique_and_names_debian_12_or_python_3_11() {
        let mut seen = std::collections::HashSet::new();
        for recipe in RECIPES {
            for tag in recipe.tags {
                assert!(seen.insert(*tag), "{tag} twice");
                assert!(!tag.contains("3.12"), "{tag}: Debian 12 has no Python 3.12");
                assert!(qualified(tag).starts_with("docker.io/library/"));
            }
            assert_eq!(recipe.python, recipe.tags[0].starts_with("python"));
        }
        // The labs' base images are among them.
        for used in [
            "python:3.11-slim",
            "python:3.11-bookworm",
            "python:3.11-slim-bookworm",
        ] {
            assert!(seen.contains(used), "{used}");
        }
    }

    #[test]
    fn debootstrap_is_told_the_packages_the_cache_and_the_mirror() {
        let args = debootstrap_args(
            &RECIPES[1],
            Path::new("/c"),
            Path::new("/r"),
            "http://m/debian",
        );
        assert_eq!(
            args,
            [
                "--variant=minbase",
                "--include=python3,python3-pip,python3-venv,ca-certificates",
                "--cache-dir=/c",
                "bookworm",
                "/r",
                "http://m/debian"
            ]
        );
        assert!(
            !debootstrap_args(&RECIPES[0], Path::new("/c"), Path::new("/r"), "m")
                .iter()
                .any(|a| a.starts_with("--include"))
        );
        assert!(import_changes(&RECIPES[1]).contains(&"CMD [\"python3\"]".to_owned()));
    }

    #[test]
    fn trimming_empties_caches_and_docs_and_readies_python() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for dir in [
            "usr/share/doc/x",
            "var/lib/apt/lists",
            "usr/share/locale/de",
            "usr/lib/python3.11",
            "usr/bin",
        ] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        std::fs::write(r.join("usr/share/doc/x/README"), "x").unwrap();
        std::fs::write(r.join("var/lib/apt/lists/list"), "x").unwrap();
        std::fs::write(r.join("usr/share/locale/locale.alias"), "x").unwrap();
        std::fs::write(r.join("usr/lib/python3.11/EXTERNALLY-MANAGED"), "x").unwrap();
        std::fs::write(r.join("usr/bin/python3"), "x").unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/resolv.conf"), "nameserver 10.0.0.1\n").unwrap();
        trim(r, &RECIPES[1]).unwrap();
        assert_eq!(std::fs::read(r.join("etc/resolv.conf")).unwrap(), b"");
        assert!(r.join("usr/share/doc").read_dir().unwrap().next().is_none());
        assert!(
            r.join("var/lib/apt/lists")
                .read_dir()
                .unwrap()
                .next()
                .is_none()
        );
        assert!(!r.join("usr/share/locale/de").exists());
        assert!(r.join("usr/share/locale/locale.alias").exists());
        assert!(!r.join("usr/lib/python3.11/EXTERNALLY-MANAGED").exists());
        assert_eq!(
            std::fs::read_link(r.join("usr/local/bin/python")).unwrap(),
            Path::new("/usr/bin/python3")
        );
    }

    #[test]
    fn current_moves_in_one_step_and_old_stores_go() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for stamp in [100, 200, 300, 400] {
            std::fs::create_dir(d.join(format!("store-{stamp}"))).unwrap();
        }
        assert_eq!(current_store(d), None);
        make_current(d, &d.join("store-400")).unwrap();
        assert_eq!(
            current_store(d),
            Some(d.join("store-400").canonicalize().unwrap())
        );
        let removed = prune(d);
        assert_eq!(removed.len(), 2);
        assert!(d.join("store-300").exists(), "the one before stays");
        assert!(!d.join("store-100").exists());
        make_current(d, &d.join("store-300")).unwrap();
        assert_eq!(
            current_store(d),
            Some(d.join("store-300").canonicalize().unwrap())
        );
        assert!(!d.join("current.new").exists());
    }
}
