//! Killercoda's text conventions: the actions after code (`{{exec}}`, `{{copy}}` …), and
//! the root user's home, which in sandpit is the learner's workspace.

use std::sync::LazyLock;

use regex::Regex;

/// The workspace, where `/root` and `~` of a scenario go.
pub const WORKSPACE: &str = "/workspace";

const ACTION: &str = r"\{\{\s*(?:exec(?:ute)?(?:\s+interrupt)?|copy)\s*\}\}";

static ANY_ACTION: LazyLock<Regex> = LazyLock::new(|| compile(ACTION));
static INLINE_EXEC: LazyLock<Regex> =
    LazyLock::new(|| compile(r"`([^`\n]+)`\{\{\s*exec(?:ute)?(?:\s+interrupt)?\s*\}\}"));
/// The action after a closing code fence that runs the block.
static FENCE_EXEC: LazyLock<Regex> =
    LazyLock::new(|| compile(r"\A\{\{\s*exec(?:ute)?(?:\s+interrupt)?\s*\}\}\z"));
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| compile(r"\{\{[^{}\n]{1,80}\}\}"));

fn compile(pattern: &str) -> Regex {
    match Regex::new(pattern) {
        Ok(r) => r,
        // The patterns are constants of this file; the unit tests compile every one.
        Err(e) => panic!("a killercoda pattern does not compile: {e}"),
    }
}

/// What one markdown page turned into.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The text with its actions removed: plain code.
    pub markdown: String,
    /// The commands marked `{{exec}}`, in the order they appear.
    pub exec: Vec<String>,
    /// How many action markers were removed.
    pub actions: usize,
    /// Other `{{…}}` left in the text (e.g. `{{TRAFFIC_HOST1_8080}}`), which sandpit has not.
    pub placeholders: Vec<String>,
}

/// Reads a step's markdown: the `{{exec}}` commands, then the text without actions.
pub fn page(text: &str) -> Page {
    let mut exec: Vec<(usize, String)> = INLINE_EXEC
        .captures_iter(text)
        .filter_map(|c| {
            let whole = c.get(0)?;
            Some((whole.start(), c.get(1)?.as_str().trim().to_owned()))
        })
        .chain(fenced_exec(text))
        .collect();
    exec.sort_by_key(|(at, _)| *at);
    let actions = ANY_ACTION.find_iter(text).count();
    let markdown = ANY_ACTION.replace_all(text, "").into_owned();
    let placeholders = PLACEHOLDER
        .find_iter(&markdown)
        .map(|m| m.as_str().to_owned())
        .collect();
    Page {
        markdown,
        exec: exec.into_iter().map(|(_, c)| c).collect(),
        actions,
        placeholders,
    }
}

/// The code blocks whose closing fence carries `{{exec}}`: (where the block starts, its code).
fn fenced_exec(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    // The open block's start and the start of its code.
    let mut open: Option<(usize, usize)> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.trim().strip_prefix("```") {
            match open {
                None => open = Some((offset, offset + line.len())),
                Some((start, code)) => {
                    if FENCE_EXEC.is_match(rest.trim()) {
                        found.push((start, text[code..offset].trim().to_owned()));
                    }
                    open = None;
                }
            }
        }
        offset += line.len();
    }
    found
}

/// Characters that may stand before or after `/root` or `~` for it to be a path of its own.
fn is_boundary(b: u8) -> bool {
    b.is_ascii_whitespace() || b"\"'`=:;|&()<>".contains(&b)
}

/// `/root` and `~` (as whole paths or path starts) replaced by the workspace, and how many.
/// `/mnt/root`, `/rootfs`, `~user` and `~~` stay as they are.
pub fn rewrite_home(text: &str) -> (String, usize) {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut count = 0;
    let mut last = 0;
    let mut i = 0;
    while i < bytes.len() {
        let starts_path = i == 0 || is_boundary(bytes[i - 1]);
        let len = if !starts_path {
            0
        } else if bytes[i..].starts_with(b"/root") {
            5
        } else if bytes[i] == b'~' {
            1
        } else {
            0
        };
        let ends_path = len > 0
            && bytes
                .get(i + len)
                .is_none_or(|&b| b == b'/' || is_boundary(b));
        if ends_path {
            // `i` is at an ASCII byte, so a character boundary.
            out.push_str(&text[last..i]);
            out.push_str(WORKSPACE);
            count += 1;
            i += len;
            last = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[last..]);
    (out, count)
}
