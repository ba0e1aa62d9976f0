//! A project's files as a `.tar.gz`, both ways, in memory: nothing touches the host's disk, so
//! an archive's paths and links cannot reach anything. An upload is read with limits on
//! entries and on decompressed bytes (a small archive can inflate without end).

use std::collections::BTreeMap;
use std::io::Read;

use chrono::{DateTime, Utc};

use crate::sessions::files::FilePath;

/// Limits on what an archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: u64,
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
}

/// What reading an archive can refuse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnpackError {
    #[error("not a .tar.gz archive: {0}")]
    Damaged(String),
    #[error("entry {entry:?}: {reason}")]
    Refused { entry: String, reason: String },
    #[error("the archive unpacks beyond the limits: {0}")]
    TooLarge(String),
}

/// What to do with entries that are not regular files or directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Others {
    /// Refuse the archive (an upload: the user sees why).
    Refuse,
    /// Leave them out and say which (a session's workspace, where links are normal).
    Skip,
}

/// Regular files by path, and what was left out.
#[derive(Debug, Default)]
pub struct Unpacked {
    pub files: BTreeMap<String, Vec<u8>>,
    pub skipped: Vec<String>,
}

/// Reads a `.tar.gz`: regular files with validated paths (directories are implied).
pub fn unpack(bytes: &[u8], limits: Limits, others: Others) -> Result<Unpacked, UnpackError> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let entries = archive
        .entries()
        .map_err(|e| UnpackError::Damaged(e.to_string()))?;
    let mut out = Unpacked::default();
    let mut total = 0u64;
    let mut count = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| UnpackError::Damaged(e.to_string()))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        let name = raw
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        if kind.is_dir() || name.is_empty() {
            continue;
        }
        let refused = |reason: &str| UnpackError::Refused {
            entry: raw.clone(),
            reason: reason.to_owned(),
        };
        if !kind.is_file() {
            match others {
                Others::Refuse => {
                    return Err(refused(
                        "only regular files and directories are allowed (no links, devices or FIFOs)",
                    ));
                }
                Others::Skip => {
                    out.skipped.push(raw);
                    continue;
                }
            }
        }
        let path = FilePath::parse(&name).map_err(|e| refused(&e.to_string()))?;
        count += 1;
        if count > limits.max_entries {
            return Err(UnpackError::TooLarge(format!(
                "more than {} files",
                limits.max_entries
            )));
        }
        // Read at most one byte past the limit, whatever the header claims.
        let mut content = Vec::new();
        (&mut entry)
            .take(limits.max_file_bytes + 1)
            .read_to_end(&mut content)
            .map_err(|e| UnpackError::Damaged(e.to_string()))?;
        if content.len() as u64 > limits.max_file_bytes {
            return Err(UnpackError::TooLarge(format!(
                "{name} is over {} bytes",
                limits.max_file_bytes
            )));
        }
        total += content.len() as u64;
        if total > limits.max_total_bytes {
            return Err(UnpackError::TooLarge(format!(
                "more than {} bytes in all",
                limits.max_total_bytes
            )));
        }
        out.files
            .insert(path.workspace().as_str().to_owned(), content);
    }
    if let Some((file, dir)) = collision(&out.files) {
        return Err(UnpackError::Refused {
            entry: dir,
            reason: format!("{file} is a file, so it cannot also be a directory"),
        });
    }
    Ok(out)
}

/// A path that is a file and also the directory of another path, if any.
pub fn collision(files: &BTreeMap<String, Vec<u8>>) -> Option<(String, String)> {
    files.keys().find_map(|path| {
        let dir = format!("{path}/");
        files
            .range(dir.clone()..)
            .next()
            .filter(|(next, _)| next.starts_with(&dir))
            .map(|(next, _)| (path.clone(), next.clone()))
    })
}

/// Writes files into a `.tar.gz` (mode 0644, their modification times).
pub fn pack<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8], DateTime<Utc>)>,
) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    for (path, content, modified) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(u64::try_from(modified.timestamp()).unwrap_or(0));
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, content)?;
    }
    builder.into_inner()?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Limits = Limits {
        max_entries: 10,
        max_file_bytes: 100,
        max_total_bytes: 150,
    };

    fn tar_gz(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            if kind.is_symlink() {
                header.set_link_name("/etc/passwd").unwrap();
            }
            // Raw names, so hostile paths reach the reader as they are.
            header.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn packs_and_unpacks_files() {
        let now = Utc::now();
        let bytes = pack([
            ("a.txt", b"hello".as_slice(), now),
            ("dir/b.py", b"print(1)".as_slice(), now),
        ])
        .unwrap();
        let got = unpack(&bytes, ROOMY, Others::Refuse).unwrap();
        assert_eq!(got.files.len(), 2);
        assert_eq!(got.files["dir/b.py"], b"print(1)");
    }

    #[test]
    fn hostile_entries_are_refused_or_skipped() {
        use tar::EntryType::{Regular, Symlink};
        for path in ["../escape", "/etc/passwd", "a/../../b"] {
            let bytes = tar_gz(&[(path, Regular, b"x")]);
            assert!(
                matches!(
                    unpack(&bytes, ROOMY, Others::Refuse),
                    Err(UnpackError::Refused { .. })
                ),
                "{path}"
            );
        }
        let link = tar_gz(&[("ok.txt", Regular, b"x"), ("link", Symlink, b"")]);
        assert!(matches!(
            unpack(&link, ROOMY, Others::Refuse),
            Err(UnpackError::Refused { .. })
        ));
        let lenient = unpack(&link, ROOMY, Others::Skip).unwrap();
        assert_eq!(lenient.skipped, ["link"]);
        assert_eq!(lenient.files.keys().collect::<Vec<_>>(), ["ok.txt"]);
        let clash = tar_gz(&[("a", Regular, b"x"), ("a/b", Regular, b"y")]);
        assert!(matches!(
            unpack(&clash, ROOMY, Others::Refuse),
            Err(UnpackError::Refused { .. })
        ));
        assert!(matches!(
            unpack(b"not gzip", ROOMY, Others::Refuse),
            Err(UnpackError::Damaged(_))
        ));
    }

    #[test]
    fn limits_hold_whatever_the_archive_claims() {
        use tar::EntryType::Regular;
        let big = vec![b'x'; 101];
        let bytes = tar_gz(&[("big", Regular, &big)]);
        assert!(matches!(
            unpack(&bytes, ROOMY, Others::Refuse),
            Err(UnpackError::TooLarge(_))
        ));
        let chunk = vec![b'x'; 80];
        let two = tar_gz(&[("a", Regular, &chunk), ("b", Regular, &chunk)]);
        assert!(matches!(
            unpack(&two, ROOMY, Others::Refuse),
            Err(UnpackError::TooLarge(_))
        ));
        let names: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
        let entries: Vec<(&str, tar::EntryType, &[u8])> = names
            .iter()
            .map(|n| (n.as_str(), Regular, b"1".as_slice()))
            .collect();
        assert!(matches!(
            unpack(&tar_gz(&entries), ROOMY, Others::Refuse),
            Err(UnpackError::TooLarge(_))
        ));
    }
}
