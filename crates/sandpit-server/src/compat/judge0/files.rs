//! `additional_files`: a zip unpacked into the program's workspace, refused whole when an
//! entry could escape it (a path with `..` or a root, a link, a device) or the zip unpacks
//! beyond its limits. This is where Judge0 itself was escaped (symlinked additional files), so
//! nothing here trusts an entry's name or mode, and sizes are counted as bytes come out, not
//! as the zip claims them.

use std::io::Read;

use sandpit_sandbox::WorkspacePath;

/// The files of the zip `bytes`, at most `max_bytes` unpacked and `max_files` entries.
pub fn unpack(
    bytes: &[u8],
    max_bytes: u64,
    max_files: usize,
) -> Result<Vec<(WorkspacePath, Vec<u8>)>, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("is not a zip archive: {e}"))?;
    if zip.len() > max_files {
        return Err(format!("holds {} entries; at most {max_files}", zip.len()));
    }
    let mut files: Vec<(WorkspacePath, Vec<u8>)> = Vec::new();
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| format!("entry {i} cannot be read: {e}"))?;
        let name = entry.name().to_owned();
        if entry.is_dir() {
            continue;
        }
        // The Unix mode in the entry, when it has one: only regular files.
        if entry.unix_mode().is_some_and(special) {
            return Err(format!("{name:?} is a link or a special file"));
        }
        if entry.is_symlink() {
            return Err(format!("{name:?} is a link"));
        }
        let path = WorkspacePath::parse(name.trim_start_matches("./"))
            .map_err(|e| format!("{name:?}: {e}"))?;
        if files.iter().any(|(p, _)| *p == path) {
            return Err(format!("{path} is in the zip twice"));
        }
        let mut data = Vec::new();
        let room = max_bytes.saturating_sub(total);
        (&mut entry)
            .take(room + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("{name:?} cannot be unpacked: {e}"))?;
        total += data.len() as u64;
        if total > max_bytes {
            return Err(format!(
                "unpacks to more than {} KiB (judge0.max_extract_kb)",
                max_bytes >> 10
            ));
        }
        files.push((path, data));
    }
    Ok(files)
}

/// A Unix mode whose file type is set and is not a regular file's (a link, FIFO, device …).
fn special(mode: u32) -> bool {
    let kind = mode & 0o170_000;
    kind != 0 && kind != 0o100_000
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;

    use super::*;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            out.start_file(*name, SimpleFileOptions::default())
                .expect("start");
            out.write_all(data).expect("write");
        }
        out.finish().expect("finish").into_inner()
    }

    #[test]
    fn files_unpack_with_their_paths() {
        let zip = zip_of(&[("run", b"echo hi"), ("lib/util.py", b"x = 1")]);
        let files = unpack(&zip, 1 << 20, 10).unwrap();
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["run", "lib/util.py"]);
        assert_eq!(files[1].1, b"x = 1");
    }

    #[test]
    fn escaping_names_links_and_oversize_zips_are_refused() {
        for name in ["../x", "/etc/passwd", "a/../../b"] {
            let zip = zip_of(&[(name, b"x")]);
            assert!(unpack(&zip, 1 << 20, 10).is_err(), "{name}");
        }
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        out.add_symlink("link", "/etc/shadow", SimpleFileOptions::default())
            .unwrap();
        let link = out.finish().unwrap().into_inner();
        let err = unpack(&link, 1 << 20, 10).unwrap_err();
        assert!(err.contains("link"), "{err}");
        // Modes of a FIFO, a character device and a link are special; a plain file's, or
        // none, is not.
        assert!(special(0o010_644) && special(0o020_644) && special(0o120_777));
        assert!(!special(0o100_644) && !special(0o644));
        // A bomb: what it unpacks to is counted, not what it claims.
        let big = zip_of(&[("zeros", &vec![0u8; 200_000])]);
        assert!(big.len() < 10_000);
        let err = unpack(&big, 100_000, 10).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        let many = zip_of(&[("a", b""), ("b", b""), ("c", b"")]);
        assert!(unpack(&many, 1 << 20, 2).is_err());
        assert!(unpack(b"not a zip", 1 << 20, 2).is_err());
        let twice = zip_of(&[("a", b"1"), ("./a", b"2")]);
        assert!(unpack(&twice, 1 << 20, 10).is_err());
    }
}
