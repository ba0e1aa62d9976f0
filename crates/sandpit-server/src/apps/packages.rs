//! The `installing` stage's rules: what an app's `requirements.txt` or `package.json` asks
//! for, checked against the runtime's allowlist and the versions installed on this server.
//! Nothing is downloaded: sandboxes have no network, so a package is usable only when it is
//! installed here already, and the messages say so.

use std::cmp::Ordering;

/// One dependency an app declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// As written (for messages).
    pub name: String,
    /// Compared with the allowlist: lowercase, `-` and `.` as `_` for Python.
    pub key: String,
    /// The version constraint as written (`>=0.90`, `^4.18.0`), empty for any.
    pub constraint: String,
    /// Where it was declared, e.g. `requirements.txt:3`.
    pub at: String,
}

/// A refusal: where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
    pub file: String,
    pub line: Option<u32>,
}

fn refusal(code: &'static str, file: &str, line: Option<u32>, message: String) -> Refusal {
    Refusal {
        code,
        message,
        file: file.to_owned(),
        line,
    }
}

pub fn python_key(name: &str) -> String {
    name.to_ascii_lowercase().replace(['-', '.'], "_")
}

/// Reads `requirements.txt`: one requirement per line, `#` comments; pip options, URLs and
/// editable installs are refused (nothing is fetched).
pub fn requirements(text: &str) -> Result<Vec<Wanted>, Refusal> {
    const FILE: &str = "requirements.txt";
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let line = raw.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('-') || line.contains("://") || line.contains('@') {
            return Err(refusal(
                "requirement_not_supported",
                FILE,
                Some(line_no),
                format!(
                    "{FILE}:{line_no}: `{line}`: only package names with versions can be \
                     used here (nothing is downloaded; this server is offline)"
                ),
            ));
        }
        // Environment markers (`; python_version < "3.12"`) are ignored: one Python runs here.
        let spec = line.split(';').next().unwrap_or("").trim();
        let name_end = spec
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
            .unwrap_or(spec.len());
        let name = &spec[..name_end];
        let mut rest = spec[name_end..].trim();
        if rest.starts_with('[') {
            rest = rest.split_once(']').map_or("", |(_, r)| r).trim();
        }
        if name.is_empty() {
            return Err(refusal(
                "invalid_requirement",
                FILE,
                Some(line_no),
                format!("{FILE}:{line_no}: `{line}` does not start with a package name"),
            ));
        }
        out.push(Wanted {
            name: name.to_owned(),
            key: python_key(name),
            constraint: rest.replace(' ', ""),
            at: format!("{FILE}:{line_no}"),
        });
    }
    Ok(out)
}

/// Reads `package.json`'s `dependencies` (development ones are not needed to run).
pub fn node_dependencies(text: &str) -> Result<Vec<Wanted>, Refusal> {
    const FILE: &str = "package.json";
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        refusal(
            "invalid_package_json",
            FILE,
            u32::try_from(e.line()).ok(),
            format!("{FILE}:{}: not valid JSON: {e}", e.line()),
        )
    })?;
    let Some(deps) = value.get("dependencies") else {
        return Ok(Vec::new());
    };
    let deps = deps.as_object().ok_or_else(|| {
        refusal(
            "invalid_package_json",
            FILE,
            None,
            format!("{FILE}: `dependencies` must be an object of names to versions"),
        )
    })?;
    deps.iter()
        .map(|(name, version)| {
            let version = version.as_str().ok_or_else(|| {
                refusal(
                    "invalid_package_json",
                    FILE,
                    None,
                    format!("{FILE}: the version of {name} must be a string"),
                )
            })?;
            Ok(Wanted {
                name: name.clone(),
                key: name.clone(),
                constraint: version.trim().to_owned(),
                at: FILE.to_owned(),
            })
        })
        .collect()
}

/// Refuses a dependency the runtime does not allow.
pub fn check_allowed(wanted: &[Wanted], allowed: &[String], runtime: &str) -> Result<(), Refusal> {
    for w in wanted {
        if !allowed
            .iter()
            .any(|a| a.replace('-', "_") == w.key.replace('-', "_"))
        {
            let (file, line) = split_at(&w.at);
            return Err(refusal(
                "package_not_allowed",
                &file,
                line,
                format!(
                    "{}: {} cannot be installed: {runtime} apps here may use {} (this server \
                     is offline and installs nothing else)",
                    w.at,
                    w.name,
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn split_at(at: &str) -> (String, Option<u32>) {
    match at.rsplit_once(':') {
        Some((file, line)) => (file.to_owned(), line.parse().ok()),
        None => (at.to_owned(), None),
    }
}

/// Checks a dependency against the installed version (`None`: not installed).
pub fn check_installed(w: &Wanted, installed: Option<&str>, node: bool) -> Result<(), Refusal> {
    let (file, line) = split_at(&w.at);
    let Some(have) = installed else {
        return Err(refusal(
            "package_unavailable",
            &file,
            line,
            format!(
                "{}: {} is allowed but not installed on this server, and it is offline: ask \
                 its operator to install it",
                w.at, w.name
            ),
        ));
    };
    let satisfied = if node {
        node_satisfies(&w.constraint, have)
    } else {
        python_satisfies(&w.constraint, have)
    };
    if satisfied {
        Ok(())
    } else {
        Err(refusal(
            "package_version_unavailable",
            &file,
            line,
            format!(
                "{}: {} {} is wanted, but this server has {} {have} and cannot download \
                 another (it is offline): ask for {have}, or leave the version out",
                w.at, w.name, w.constraint, w.name
            ),
        ))
    }
}

/// Numeric release parts of a version (`0.92.0rc1` → `[0, 92, 0]`).
fn release(v: &str) -> Vec<u64> {
    v.trim_start_matches(['v', '='])
        .split('.')
        .map_while(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

fn compare(a: &[u64], b: &[u64]) -> Ordering {
    let len = a.len().max(b.len());
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    (0..len)
        .map(|i| at(a, i).cmp(&at(b, i)))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// PEP 440 comparisons, comma-separated, on release numbers (`==1.2.*` too).
pub fn python_satisfies(constraint: &str, have: &str) -> bool {
    let have = release(have);
    constraint.split(',').filter(|c| !c.is_empty()).all(|c| {
        let (op, v) = ["===", "==", "!=", "~=", ">=", "<=", ">", "<"]
            .into_iter()
            .find_map(|op| c.strip_prefix(op).map(|v| (op, v)))
            .unwrap_or(("==", c));
        if let Some(prefix) = v.strip_suffix(".*") {
            let want = release(prefix);
            let matches = have.len() >= want.len() && have[..want.len()] == want[..];
            return if op == "!=" { !matches } else { matches };
        }
        let want = release(v);
        let ord = compare(&have, &want);
        match op {
            "==" | "===" => ord.is_eq(),
            "!=" => !ord.is_eq(),
            ">=" => ord.is_ge(),
            "<=" => ord.is_le(),
            ">" => ord.is_gt(),
            "<" => ord.is_lt(),
            // ~=X.Y: >= X.Y and == X.*
            _ => {
                let prefix = &want[..want.len().saturating_sub(1).max(1).min(want.len())];
                ord.is_ge() && have.len() >= prefix.len() && have[..prefix.len()] == prefix[..]
            }
        }
    })
}

/// npm ranges: `*`, `latest`, exact, `^`, `~`, comparisons, `x` wildcards, and `||`.
pub fn node_satisfies(constraint: &str, have: &str) -> bool {
    let have = release(have);
    constraint.split("||").any(|alt| {
        alt.split_whitespace().all(|c| {
            if c == "*" || c == "latest" || c.is_empty() || c == "x" {
                return true;
            }
            let (op, v) = [">=", "<=", ">", "<", "^", "~", "="]
                .into_iter()
                .find_map(|op| c.strip_prefix(op).map(|v| (op, v)))
                .unwrap_or(("", c));
            let want = release(v);
            if want.is_empty() {
                return false;
            }
            let ord = compare(&have, &want);
            let same = |n: usize| have.len() >= n && want.len() >= n && have[..n] == want[..n];
            match op {
                ">=" => ord.is_ge(),
                "<=" => ord.is_le(),
                ">" => ord.is_gt(),
                "<" => ord.is_lt(),
                "^" => {
                    // Same leftmost non-zero part, and not older.
                    let lead = want.iter().position(|p| *p != 0).unwrap_or(want.len() - 1);
                    ord.is_ge() && same(lead + 1)
                }
                "~" => ord.is_ge() && same(want.len().min(2)),
                // `4.18.2`, `4.x`, `4`: the parts given must match.
                _ => same(want.len()),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_are_read_with_their_lines() {
        let wanted =
            requirements("# web\nfastapi>=0.90\n\nuvicorn[standard] == 0.17.6 # server\nJinja2\n")
                .unwrap();
        let got: Vec<_> = wanted
            .iter()
            .map(|w| (w.key.as_str(), w.constraint.as_str(), w.at.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("fastapi", ">=0.90", "requirements.txt:2"),
                ("uvicorn", "==0.17.6", "requirements.txt:4"),
                ("jinja2", "", "requirements.txt:5"),
            ]
        );
        let refused = requirements("flask\n-e git+https://x/y\n").unwrap_err();
        assert_eq!(refused.code, "requirement_not_supported");
        assert_eq!(refused.line, Some(2));
        assert!(requirements("pkg @ https://x/y.whl").is_err());
    }

    #[test]
    fn allowlist_and_installed_versions_decide() {
        let allowed = vec!["fastapi".to_owned(), "typing_extensions".to_owned()];
        let wanted = requirements("typing-extensions\nrequests\n").unwrap();
        let refused = check_allowed(&wanted, &allowed, "python").unwrap_err();
        assert_eq!(refused.code, "package_not_allowed");
        assert!(
            refused.message.contains("requirements.txt:2: requests"),
            "{refused:?}"
        );
        assert!(check_allowed(&wanted[..1], &allowed, "python").is_ok());

        let fastapi = &requirements("fastapi==0.110.0").unwrap()[0];
        let refused = check_installed(fastapi, Some("0.92.0"), false).unwrap_err();
        assert_eq!(refused.code, "package_version_unavailable");
        assert!(refused.message.contains("0.92.0"), "{refused:?}");
        assert_eq!(
            check_installed(fastapi, None, false).unwrap_err().code,
            "package_unavailable"
        );
    }

    #[test]
    fn python_constraints() {
        for (c, have, ok) in [
            ("", "1.0", true),
            (">=0.90", "0.92.0", true),
            (">=0.100", "0.92.0", false),
            ("==0.92.*", "0.92.0", true),
            ("==0.92", "0.92.0", true),
            ("!=0.92.0", "0.92.0", false),
            (">=0.80,<1", "0.92.0", true),
            ("~=2.2", "2.2.2", true),
            ("~=2.2", "3.0", false),
            ("~=2.2.0", "2.3", false),
            ("<0.92", "0.92.0", false),
        ] {
            assert_eq!(python_satisfies(c, have), ok, "{c} {have}");
        }
    }

    #[test]
    fn npm_ranges() {
        for (c, have, ok) in [
            ("^4.18.0", "4.18.2", true),
            ("^4.19.0", "4.18.2", false),
            ("^5.0.0", "4.18.2", false),
            ("~4.18.0", "4.18.2", true),
            ("~4.17.0", "4.18.2", false),
            ("4.x", "4.18.2", true),
            ("4.18.2", "4.18.2", true),
            ("*", "4.18.2", true),
            (">=4 <5", "4.18.2", true),
            ("^3 || ^4", "4.18.2", true),
            ("^0.2.1", "0.3.0", false),
            ("github:x/y", "4.18.2", false),
        ] {
            assert_eq!(node_satisfies(c, have), ok, "{c} {have}");
        }
    }

    #[test]
    fn package_json_dependencies() {
        let wanted =
            node_dependencies(r#"{"name":"x","dependencies":{"express":"^4.18.0"}}"#).unwrap();
        assert_eq!(wanted[0].key, "express");
        assert_eq!(wanted[0].constraint, "^4.18.0");
        assert!(node_dependencies(r#"{"name":"x"}"#).unwrap().is_empty());
        assert_eq!(
            node_dependencies("{nope").unwrap_err().code,
            "invalid_package_json"
        );
        assert!(node_dependencies(r#"{"dependencies":{"express":4}}"#).is_err());
    }
}
