//! The mapping rules: one Killercoda scenario → one lab folder (docs/labs.md, "Importing
//! Killercoda scenarios", has them as a table).

use std::fmt::Write as _;

use super::markdown::{self, WORKSPACE};
use super::model::{Asset, Index, Page};
use super::{INDEX, ImportError, Imported, Report};
use crate::load::{FolderFiles, is_slug};
use crate::manifest::Difficulty;

const SETUP: &str = "setup.sh";
const SOLUTION: &str = "solution.sh";
const MAX_TITLE: usize = 120;
const MAX_SUMMARY: usize = 600;

/// Converts the scenario `files` (paths relative to its folder, named `folder_name`).
pub fn import(files: &FolderFiles, folder_name: &str) -> Result<Imported, ImportError> {
    let raw = files.get(INDEX).ok_or(ImportError::NoIndex)?;
    let text = std::str::from_utf8(raw).map_err(|_| ImportError::NotUtf8)?;
    let index: Index = serde_json::from_str(text).map_err(|e| ImportError::BadIndex {
        line: e.line(),
        column: e.column(),
        message: without_position(&e),
    })?;
    if index.details.steps.is_empty() {
        return Err(ImportError::NoSteps);
    }
    let mut c = Converter {
        files,
        out: FolderFiles::new(),
        report: Report::default(),
    };
    let lab_toml = c.lab_toml(&index, folder_name);
    let slug = lab_toml.slug.clone();
    c.out.insert("lab.toml".into(), lab_toml.text.into_bytes());
    Ok(Imported {
        slug,
        files: c.out,
        report: c.report,
    })
}

/// serde_json's message without its " at line L column C" (the error names them itself).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

struct Converter<'a> {
    files: &'a FolderFiles,
    out: FolderFiles,
    report: Report,
}

struct LabToml {
    slug: String,
    text: String,
}

/// A TOML basic string of `s` (quotes and escapes as TOML wants them).
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Relative paths in index.json may start with `./`.
fn normal(rel: &str) -> String {
    rel.trim_start_matches("./").to_owned()
}

impl Converter<'_> {
    fn lab_toml(&mut self, index: &Index, folder_name: &str) -> LabToml {
        let slug = self.slug(folder_name, &index.title);
        let title = self.bounded("title", &index.title, &slug, MAX_TITLE);
        let summary = self.bounded("description", &index.description, &title, MAX_SUMMARY);
        let difficulty = self.difficulty(index.difficulty.as_deref());
        self.environment(index);

        let mut setup = Vec::new();
        let mut solution = Vec::new();
        let details = &index.details;
        let intro = details.intro.as_ref().map(|p| self.side_page(p, "intro"));
        if let Some(intro) = &intro {
            solution.push(("intro".to_owned(), intro.exec.clone()));
        }
        if let Some(intro) = &details.intro {
            self.background(intro, "intro", &mut setup);
        }
        let finish = details.finish.as_ref().map(|p| self.side_page(p, "finish"));

        let mut text = String::from(
            "# Imported from a Killercoda scenario by `sandpit lab import killercoda`.\n",
        );
        let _ = writeln!(text, "slug = {}", quoted(&slug));
        let _ = writeln!(text, "title = {}", quoted(&title));
        let _ = writeln!(text, "summary = {}", quoted(&summary));
        let _ = writeln!(text, "difficulty = {}", quoted(difficulty.as_str()));
        text.push_str("tags = [\"killercoda\"]\n");
        let last = details.steps.len() - 1;
        let mut steps_toml = String::new();
        for (i, step) in details.steps.iter().enumerate() {
            let n = i + 1;
            let id = format!("step{n}");
            let mut page = self.step_page(step, n);
            if i == 0
                && let Some(intro) = intro.as_ref().filter(|p| !p.markdown.trim().is_empty())
            {
                page.markdown =
                    format!("{}\n\n---\n\n{}", intro.markdown.trim_end(), page.markdown);
            }
            if i == last
                && let Some(finish) = finish.as_ref().filter(|f| !f.markdown.trim().is_empty())
            {
                page.markdown =
                    format!("{}\n\n---\n\n{}", page.markdown.trim_end(), finish.markdown);
                self.report.changed(
                    &finish.file,
                    format!("the finish text is appended to the last step ({id}): sandpit has no finish page"),
                );
            }
            let text_rel = format!("steps/{n:02}-{id}.md");
            self.out
                .insert(text_rel.clone(), page.markdown.into_bytes());
            if page.exec.is_empty() {
                self.report.changed(
                    step.text.as_deref().map(normal).as_deref().unwrap_or(INDEX),
                    format!("{id} has no {{{{exec}}}} commands: {SOLUTION} does nothing for it; write its solution there"),
                );
            }
            solution.push((id.clone(), page.exec));
            self.background(step, &id, &mut setup);
            if let Some(fg) = &step.foreground {
                self.report.not_mapped(
                    &normal(fg),
                    "a foreground script has no sandpit equivalent (nothing is typed into the learner's terminal)",
                );
            }
            let title = match step.title.as_deref().map(str::trim) {
                Some(t) if !t.is_empty() => t.chars().take(MAX_TITLE).collect(),
                _ => format!("Step {n}"),
            };
            let _ = write!(
                steps_toml,
                "\n[[steps]]\nid = {}\ntitle = {}\ntext = {}\n\n[[steps.checks]]\n",
                quoted(&id),
                quoted(&title),
                quoted(&text_rel)
            );
            steps_toml.push_str(&self.check(step, &id));
        }
        if !setup.is_empty() {
            self.out
                .insert(SETUP.into(), setup_script(&setup).into_bytes());
            let _ = writeln!(text, "setup = {}", quoted(SETUP));
        }
        self.out
            .insert(SOLUTION.into(), solution_script(&solution).into_bytes());
        let _ = writeln!(text, "solution_script = {}", quoted(SOLUTION));
        self.assets(index);
        text.push_str(&steps_toml);
        LabToml { slug, text }
    }

    /// The folder's name as a slug, else the title's, else a fixed one.
    fn slug(&mut self, folder_name: &str, title: &str) -> String {
        for candidate in [folder_name, title] {
            let slug = slugify(candidate);
            if is_slug(&slug) {
                if slug != candidate {
                    self.report.changed(
                        ".",
                        format!("the slug is {slug:?}, made from {candidate:?} (a-z, 0-9 and '-')"),
                    );
                }
                return slug;
            }
        }
        let slug = "killercoda-scenario".to_owned();
        self.report.changed(
            ".",
            format!("neither the folder's name nor the title make a slug: it is {slug:?}"),
        );
        slug
    }

    /// A text field within the lab's bounds: `fallback` when empty, cut when too long.
    fn bounded(&mut self, field: &str, value: &str, fallback: &str, max: usize) -> String {
        let value = value.trim();
        if value.is_empty() {
            self.report.changed(
                INDEX,
                format!("{field} is empty: {fallback:?} is used instead"),
            );
            return fallback.chars().take(max).collect();
        }
        if value.chars().count() > max {
            self.report.changed(
                INDEX,
                format!("{field} is cut to the lab's {max} characters"),
            );
            return value.chars().take(max).collect();
        }
        value.to_owned()
    }

    fn difficulty(&mut self, raw: Option<&str>) -> Difficulty {
        let Some(raw) = raw else {
            self.report
                .changed(INDEX, "no difficulty: the lab is \"beginner\"");
            return Difficulty::Beginner;
        };
        match raw.trim().to_ascii_lowercase().as_str() {
            "beginner" | "easy" => Difficulty::Beginner,
            "intermediate" | "medium" => Difficulty::Intermediate,
            "advanced" | "hard" | "expert" => Difficulty::Advanced,
            _ => {
                self.report.changed(
                    INDEX,
                    format!("difficulty {raw:?} is not beginner, intermediate or advanced: the lab is \"beginner\""),
                );
                Difficulty::Beginner
            }
        }
    }

    /// Everything of index.json outside the steps that sandpit has no field for.
    fn environment(&mut self, index: &Index) {
        let image = index
            .backend
            .as_ref()
            .map(|b| b.imageid.trim())
            .unwrap_or("");
        let plain = image.is_empty() || image.starts_with("ubuntu") || image.starts_with("debian");
        if !plain {
            self.report.not_mapped(
                INDEX,
                format!("backend.imageid {image:?} is not mappable: the lab runs in the default environment (the host's /usr in a sandbox, not a VM or a cluster), so checks that need that environment will fail"),
            );
        }
        if let Some(time) = &index.time {
            self.report.not_mapped(
                INDEX,
                format!("time {time:?}: a session lives for the server's default time (set ttl_minutes to change it)"),
            );
        }
        if index.interface.is_some() {
            self.report.not_mapped(
                INDEX,
                "interface: sandpit's lab page always has the steps, an editor and a terminal",
            );
        }
    }

    /// A scenario file as text, or a note saying why it is not there.
    fn text_file(&mut self, rel: &str, what: &str) -> Option<String> {
        let rel = normal(rel);
        match self.files.get(&rel) {
            None => {
                self.report.not_mapped(
                    &rel,
                    format!("no such file (named by index.json as {what})"),
                );
                None
            }
            Some(data) => match String::from_utf8(data.clone()) {
                Ok(text) => Some(text),
                Err(_) => {
                    self.report
                        .not_mapped(&rel, format!("is not UTF-8 text ({what})"));
                    None
                }
            },
        }
    }

    /// A markdown page: `/root` rewritten, `{{exec}}` commands read, actions removed.
    fn markdown(&mut self, rel: &str, what: &str) -> Option<Converted> {
        let text = self.text_file(rel, what)?;
        let file = normal(rel);
        let (text, rewrites) = markdown::rewrite_home(&text);
        if rewrites > 0 {
            self.report.changed(
                &file,
                format!("{rewrites} /root or ~ path(s) rewritten to {WORKSPACE}"),
            );
        }
        let page = markdown::page(&text);
        if page.actions > 0 {
            self.report.changed(
                &file,
                format!(
                    "{} {{{{exec}}}}/{{{{copy}}}} marker(s) removed: the commands are plain code",
                    page.actions
                ),
            );
        }
        for p in &page.placeholders {
            self.report.not_mapped(
                &file,
                format!("{p} has no sandpit equivalent and is left in the text"),
            );
        }
        Some(Converted {
            file,
            markdown: page.markdown,
            exec: page.exec,
        })
    }

    fn step_page(&mut self, step: &Page, n: usize) -> Converted {
        let converted = match &step.text {
            Some(rel) => self.markdown(rel, &format!("step {n}'s text")),
            None => {
                self.report
                    .not_mapped(INDEX, format!("details.steps[{}] has no text", n - 1));
                None
            }
        };
        converted.unwrap_or_else(|| Converted {
            file: INDEX.into(),
            markdown: format!("# Step {n}\n"),
            exec: Vec::new(),
        })
    }

    /// The intro or the finish: its text (empty when missing); a verify script there is
    /// not a step's and is reported.
    fn side_page(&mut self, page: &Page, name: &str) -> Converted {
        if let Some(v) = &page.verify {
            self.report.not_mapped(
                &normal(v),
                format!("the {name} page has no checks in sandpit"),
            );
        }
        if name == "finish" {
            for script in [&page.background, &page.foreground].into_iter().flatten() {
                self.report.not_mapped(
                    &normal(script),
                    "a finish script has no sandpit equivalent (a lab ends with its last check)",
                );
            }
        } else if let Some(fg) = &page.foreground {
            self.report.not_mapped(
                &normal(fg),
                "a foreground script has no sandpit equivalent (nothing is typed into the learner's terminal)",
            );
        }
        let converted = page
            .text
            .as_ref()
            .and_then(|rel| self.markdown(rel, &format!("the {name} text")));
        converted.unwrap_or_else(|| Converted {
            file: INDEX.into(),
            markdown: String::new(),
            exec: Vec::new(),
        })
    }

    /// A page's background script, added to the lab's setup.
    fn background(&mut self, page: &Page, name: &str, setup: &mut Vec<(String, String)>) {
        let Some(rel) = &page.background else {
            return;
        };
        let Some(script) = self.script(rel, &format!("{name}'s background")) else {
            return;
        };
        let file = normal(rel);
        if name == "intro" {
            self.report.changed(
                &file,
                format!("runs as the lab's {SETUP}: at session start, as the learner (not root), in {WORKSPACE}"),
            );
        } else {
            self.report.changed(
                &file,
                format!("appended to the lab's {SETUP}: runs at session start, not when {name} starts, and as the learner (not root)"),
            );
        }
        setup.push((file, script));
    }

    /// A script with its `/root` and `~` paths rewritten (reported).
    fn script(&mut self, rel: &str, what: &str) -> Option<String> {
        let text = self.text_file(rel, what)?;
        let (text, rewrites) = markdown::rewrite_home(&text);
        if rewrites > 0 {
            self.report.changed(
                &normal(rel),
                format!("{rewrites} /root or ~ path(s) rewritten to {WORKSPACE}"),
            );
        }
        Some(text)
    }

    /// The `[[steps.checks]]` body of a step: its verify script, else a check that passes.
    fn check(&mut self, step: &Page, id: &str) -> String {
        let verify = step
            .verify
            .as_ref()
            .and_then(|rel| Some((normal(rel), self.script(rel, &format!("{id}'s verify"))?)));
        match verify {
            Some((file, script)) => {
                let rel = format!("checks/{id}-verify.sh");
                self.out.insert(rel.clone(), script.into_bytes());
                format!(
                    "type = \"command\"\ncode = {}\nscript_file = {}\nmessage = {}\nhint = {}\n",
                    quoted(&format!("{id}-verify")),
                    quoted(&rel),
                    quoted(&format!("this step is not done yet ({file} did not pass)")),
                    quoted("Do every task of this step's text, then press Check again."),
                )
            }
            None => {
                self.report.changed(
                    step.verify.as_deref().map(normal).as_deref().unwrap_or(INDEX),
                    format!("{id} has no verify script: it gets a check that always passes (sandpit needs one per step)"),
                );
                format!(
                    "type = \"command\"\ncode = {}\nscript = \"exit 0\"\nhint = {}\n",
                    quoted(&format!("{id}-read")),
                    quoted("Read the step, then press Check."),
                )
            }
        }
    }

    /// `details.assets`: files for `/root` (or `~`) become starter files.
    fn assets(&mut self, index: &Index) {
        for (host, assets) in &index.details.assets {
            if host != "host01" {
                self.report.not_mapped(
                    INDEX,
                    format!("details.assets.{host}: a lab has one sandbox, host01; these files are left out"),
                );
                continue;
            }
            for asset in assets {
                self.asset(asset);
            }
        }
    }

    fn asset(&mut self, asset: &Asset) {
        let from = format!("assets/{}", normal(&asset.file));
        let target = asset.target.trim().trim_end_matches('/');
        let dir = match target {
            "/root" | "~" => Some(""),
            t => t.strip_prefix("/root/").or_else(|| t.strip_prefix("~/")),
        };
        let Some(dir) = dir else {
            self.report.not_mapped(
                &from,
                format!(
                    "target {:?} is outside /root: only the workspace is the learner's",
                    asset.target
                ),
            );
            return;
        };
        let matched: Vec<(String, Vec<u8>)> = self
            .files
            .iter()
            .filter_map(|(path, data)| {
                let rel = path.strip_prefix("assets/")?;
                let name = asset_name(&asset.file, rel)?;
                Some((name, data.clone()))
            })
            .collect();
        if matched.is_empty() {
            self.report
                .not_mapped(&from, "no file of assets/ matches it".to_owned());
        }
        for (name, data) in matched {
            let dest = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            match asset.chmod.as_deref().map(str::trim) {
                None => {}
                Some("+x" | "a+x" | "u+x" | "755" | "0755" | "700") if data.starts_with(b"#!") => {}
                Some(mode) => self.report.not_mapped(
                    &format!("assets/{dest}"),
                    format!("chmod {mode:?}: workspace files are 0755 when they start with #! and 0644 otherwise"),
                ),
            }
            self.out.insert(format!("starter/{dest}"), data);
        }
    }
}

/// The page text and commands of a converted markdown file.
struct Converted {
    /// The scenario file it came from.
    file: String,
    markdown: String,
    exec: Vec<String>,
}

/// Where `rel` (a path under assets/) lands in the target when `pattern` takes it: its name
/// for an exact match; for a `*` pattern, its path below the pattern's folder (`notes/*`
/// puts `notes/a/b.md` at `a/b.md`).
fn asset_name(pattern: &str, rel: &str) -> Option<String> {
    let pattern = normal(pattern);
    if !pattern.contains('*') {
        return (rel == pattern).then(|| rel.rsplit('/').next().unwrap_or(rel).to_owned());
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = rel.strip_prefix(parts[0])?;
    for (i, part) in parts.iter().enumerate().skip(1) {
        if i == parts.len() - 1 {
            if !rest.ends_with(part) {
                return None;
            }
        } else {
            let at = rest.find(part)?;
            rest = &rest[at + part.len()..];
        }
    }
    let folder = parts[0].rfind('/').map_or(0, |at| at + 1);
    Some(rel[folder..].to_owned())
}

/// The lab's `setup.sh`: each background script in its own subshell, in order, so that an
/// `exit` in one does not skip the next; it fails when any did.
fn setup_script(parts: &[(String, String)]) -> String {
    let mut out = String::from(
        "# The Killercoda scenario's background scripts, in order (sandpit lab import).\n\
         # Runs once at session start, as the learner, in /workspace.\nstatus=0\n",
    );
    for (file, script) in parts {
        let _ = write!(
            out,
            "\n# --- {file}\n(\n{}\n) || status=$?\n",
            script.trim_end()
        );
    }
    out.push_str("exit $status\n");
    out
}

/// The lab's `solution.sh`: the `{{exec}}` commands of the intro and each step, in order, as
/// a learner would type them into the terminal.
fn solution_script(parts: &[(String, Vec<String>)]) -> String {
    let mut out = String::from(
        "# The {{exec}} commands of the Killercoda scenario, in order (sandpit lab import).\n\
         # `sandpit lab test` runs it over the starter to solve the lab.\ncd /workspace\n",
    );
    for (name, commands) in parts {
        if commands.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n# --- {name}");
        for c in commands {
            out.push_str(c);
            out.push('\n');
        }
    }
    out
}

/// Lower case, runs of anything but a-z and 0-9 as one '-', at most 63 characters.
fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_matches('-').chars().take(63).collect();
    slug.trim_end_matches('-').to_owned()
}
