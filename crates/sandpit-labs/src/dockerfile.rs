//! Dockerfiles: a reader that follows BuildKit's Dockerfile frontend, and the static rules the
//! labs of the Dockerfile track are judged by.
//!
//! [`parse`] reads what real Dockerfiles contain: parser directives (`# escape=`), line
//! continuations (with comment and empty lines inside them), case-insensitive instructions,
//! exec (JSON) and shell form, heredocs, `--flags`, ARGs before the first FROM and stages.
//! [`check`] runs [`Rule`]s over the result; every [`Violation`] names its line, quotes the
//! instruction and says how to fix it, because a learner reads it.
//!
//! Pure: no I/O. The judge reads `Dockerfile` and `.dockerignore` and passes their text.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use regex::Regex;

// ---------------------------------------------------------------------------------------------
// The parsed Dockerfile
// ---------------------------------------------------------------------------------------------

/// A syntax error: what Docker would refuse (or, for malformed exec form, silently misread).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line of the instruction (or directive) at fault.
    pub line: usize,
    pub message: String,
}

impl ParseError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

/// A parsed Dockerfile: the ARGs declared before the first FROM, then one or more stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    escape: char,
    meta_args: Vec<Instruction>,
    /// The values of the ARGs declared before the first FROM (defaults, expanded).
    global_args: HashMap<String, String>,
    /// Never empty.
    stages: Vec<Stage>,
}

impl Dockerfile {
    /// The escape (and line-continuation) character: `\`, or a backtick with `# escape=``.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// The ARG instructions before the first FROM.
    pub fn meta_args(&self) -> &[Instruction] {
        &self.meta_args
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The stage `docker build` builds by default: the last one.
    pub fn final_stage(&self) -> &Stage {
        // `parse` refuses a Dockerfile without FROM, so there is always a stage.
        &self.stages[self.stages.len() - 1]
    }

    /// Every instruction in file order (the ARGs before the first FROM, then each stage's FROM
    /// and body).
    pub fn instructions(&self) -> impl Iterator<Item = &Instruction> {
        self.meta_args.iter().chain(
            self.stages
                .iter()
                .flat_map(|s| std::iter::once(&s.from).chain(&s.instructions)),
        )
    }
}

/// One build stage: a FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 0-based, as `COPY --from=<index>` counts.
    pub index: usize,
    /// The `AS` name, lowercased (Docker compares stage names case-insensitively).
    pub name: Option<String>,
    pub from: Instruction,
    /// The image as written, e.g. `python:3.12-slim` or `${BASE}`.
    pub base: String,
    /// `base` with the ARGs declared before the first FROM expanded (their defaults).
    pub resolved_base: String,
    pub platform: Option<String>,
    /// The earlier stage this one starts from (`FROM build`), if any.
    pub parent: Option<usize>,
    /// The instructions after the FROM.
    pub instructions: Vec<Instruction>,
}

/// A Dockerfile instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyword {
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
}

impl Keyword {
    const ALL: [Keyword; 18] = [
        Keyword::Add,
        Keyword::Arg,
        Keyword::Cmd,
        Keyword::Copy,
        Keyword::Entrypoint,
        Keyword::Env,
        Keyword::Expose,
        Keyword::From,
        Keyword::Healthcheck,
        Keyword::Label,
        Keyword::Maintainer,
        Keyword::Onbuild,
        Keyword::Run,
        Keyword::Shell,
        Keyword::Stopsignal,
        Keyword::User,
        Keyword::Volume,
        Keyword::Workdir,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Add => "ADD",
            Keyword::Arg => "ARG",
            Keyword::Cmd => "CMD",
            Keyword::Copy => "COPY",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Env => "ENV",
            Keyword::Expose => "EXPOSE",
            Keyword::From => "FROM",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::Label => "LABEL",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Onbuild => "ONBUILD",
            Keyword::Run => "RUN",
            Keyword::Shell => "SHELL",
            Keyword::Stopsignal => "STOPSIGNAL",
            Keyword::User => "USER",
            Keyword::Volume => "VOLUME",
            Keyword::Workdir => "WORKDIR",
        }
    }

    fn parse(word: &str) -> Option<Keyword> {
        Keyword::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(word))
    }

    /// The flags BuildKit accepts for this instruction; any other is an error.
    fn flag_specs(self) -> &'static [(&'static str, FlagKind)] {
        use FlagKind::{Bool, Repeated, Value};
        match self {
            Keyword::From => &[("platform", Value)],
            Keyword::Run => &[
                ("mount", Repeated),
                ("network", Value),
                ("security", Value),
                ("device", Repeated),
            ],
            Keyword::Copy => &[
                ("from", Value),
                ("chown", Value),
                ("chmod", Value),
                ("link", Bool),
                ("parents", Bool),
                ("exclude", Repeated),
            ],
            Keyword::Add => &[
                ("chown", Value),
                ("chmod", Value),
                ("link", Bool),
                ("keep-git-dir", Bool),
                ("checksum", Value),
                ("exclude", Repeated),
                ("unpack", Bool),
            ],
            Keyword::Healthcheck => &[
                ("interval", Value),
                ("timeout", Value),
                ("start-period", Value),
                ("start-interval", Value),
                ("retries", Value),
            ],
            _ => &[],
        }
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Value,
    Bool,
    Repeated,
}

/// A `--name[=value]` flag written before an instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    /// `None` for a bare boolean flag such as `--link`.
    pub value: Option<String>,
}

/// An instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// JSON (exec) form: `CMD ["python", "app.py"]`.
    Exec(Vec<String>),
    /// Everything else, as written (continuations joined, heredoc bodies not included).
    Shell(String),
    /// ENV, LABEL and ARG: names with their values as written (quotes kept, variables not
    /// expanded); the value is `None` for `ARG NAME`.
    Pairs(Vec<(String, Option<String>)>),
}

/// A heredoc body read after a RUN, COPY or ADD line (`<<EOF` … `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word, quotes removed.
    pub name: String,
    /// `<<-`: leading tabs are stripped from the body and the terminator.
    pub chomp: bool,
    /// Whether variables in the body are expanded (the terminator was not quoted).
    pub expand: bool,
    /// The lines between the instruction and the terminator, each ending in `\n`.
    pub content: String,
    /// The line of the body's first line.
    pub first_line: usize,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line the instruction starts on.
    pub line: usize,
    /// Last line it spans (continuation lines and heredoc bodies included).
    pub end_line: usize,
    pub keyword: Keyword,
    pub flags: Vec<Flag>,
    pub args: Args,
    pub heredocs: Vec<Heredoc>,
    /// The instruction as written, continuation lines joined (comment lines inside dropped).
    pub original: String,
    /// Where each physical line starts in `original`: `(byte offset, line)`.
    segments: Vec<(usize, usize)>,
    /// Byte offset of the arguments in `original`.
    args_start: usize,
    escape: char,
    trigger: Option<Box<Instruction>>,
}

impl Instruction {
    /// The last flag called `name`.
    pub fn flag(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().rev().find(|f| f.name == name)
    }

    /// The value of the last flag called `name`.
    pub fn flag_value(&self, name: &str) -> Option<&str> {
        self.flag(name).and_then(|f| f.value.as_deref())
    }

    /// The values of every flag called `name` (`--mount` may be given several times).
    pub fn flag_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.flags
            .iter()
            .filter(move |f| f.name == name)
            .filter_map(|f| f.value.as_deref())
    }

    /// The arguments as words, quotes removed (variables not expanded): the JSON array's
    /// items, the whitespace-separated words of shell form, or the names of ENV/ARG/LABEL.
    pub fn words(&self) -> Vec<String> {
        match &self.args {
            Args::Exec(items) => items.clone(),
            Args::Shell(_) => self
                .raw_words()
                .iter()
                .map(|w| shell_word(w, self.escape, None))
                .collect(),
            Args::Pairs(pairs) => pairs.iter().map(|(name, _)| name.clone()).collect(),
        }
    }

    /// The instruction ONBUILD registers, if this is an ONBUILD.
    pub fn onbuild_trigger(&self) -> Option<&Instruction> {
        self.trigger.as_deref()
    }

    /// The arguments split on whitespace as Docker does for FROM, EXPOSE, COPY and ADD
    /// (quotes kept).
    fn raw_words(&self) -> Vec<String> {
        match &self.args {
            Args::Exec(items) => items.clone(),
            Args::Shell(text) => split_blank(text).map(str::to_owned).collect(),
            Args::Pairs(pairs) => pairs.iter().map(|(name, _)| name.clone()).collect(),
        }
    }

    fn shell_text(&self) -> &str {
        match &self.args {
            Args::Shell(text) => text,
            _ => "",
        }
    }

    /// The source line holding byte `offset` of `original`.
    fn line_at(&self, offset: usize) -> usize {
        self.segments
            .iter()
            .take_while(|(start, _)| *start <= offset)
            .last()
            .map_or(self.line, |(_, line)| *line)
    }

    fn accepts_heredocs(&self) -> bool {
        match self.keyword {
            Keyword::Run | Keyword::Copy | Keyword::Add => !matches!(self.args, Args::Exec(_)),
            Keyword::Onbuild => self.trigger.as_ref().is_some_and(|t| t.accepts_heredocs()),
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// Parses a Dockerfile the way BuildKit reads it.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut directives = Directives::default();
    let mut instructions = Vec::new();
    let mut next = 0;
    while next < lines.len() {
        let start_line = next + 1;
        let first = lines[next].trim_start();
        next += 1;
        directives
            .consider(first)
            .map_err(|message| ParseError::new(start_line, message))?;
        if is_comment(first) {
            continue;
        }
        let escape = directives.escape;
        let (content, mut complete) = trim_continuation(first, escape);
        if complete && content.is_empty() {
            continue;
        }
        let mut original = content.to_owned();
        let mut segments = vec![(0, start_line)];
        while !complete && next < lines.len() {
            let raw = lines[next];
            next += 1;
            // Comment and blank lines inside a continuation are skipped, not the end of it.
            if is_comment(raw.trim_start()) || raw.trim().is_empty() {
                continue;
            }
            let (content, done) = trim_continuation(raw, escape);
            complete = done;
            segments.push((original.len(), next));
            original.push_str(content);
        }
        let mut instruction = parse_instruction(original, segments, start_line, escape)?;
        if instruction.accepts_heredocs() {
            for (name, chomp, expand) in heredoc_markers(&instruction.original) {
                let first_line = next + 1;
                let mut content = String::new();
                let mut closed = false;
                while next < lines.len() {
                    let raw = lines[next];
                    next += 1;
                    let candidate = if chomp {
                        raw.trim_start_matches('\t')
                    } else {
                        raw
                    };
                    if candidate == name {
                        closed = true;
                        break;
                    }
                    content.push_str(raw);
                    content.push('\n');
                }
                if !closed {
                    return Err(ParseError::new(
                        start_line,
                        format!(
                            "the heredoc `<<{name}` that starts here is never closed: end it \
                             with a line containing only `{name}`"
                        ),
                    ));
                }
                instruction.heredocs.push(Heredoc {
                    name,
                    chomp,
                    expand,
                    content,
                    first_line,
                });
            }
        }
        instruction.end_line = next;
        instructions.push(instruction);
    }
    into_stages(instructions, directives.escape)
}

/// Parser directives (`# escape=`, `# syntax=`) are only recognised before anything else.
struct Directives {
    escape: char,
    done: bool,
    seen: Vec<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Self {
            escape: '\\',
            done: false,
            seen: Vec::new(),
        }
    }
}

impl Directives {
    fn consider(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        if !matches!(name.as_str(), "escape" | "syntax" | "check") {
            // An unknown directive is a comment, and ends the directives.
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&name) {
            return Err(format!("only one `{name}` parser directive can be used"));
        }
        if name == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(format!(
                        "invalid escape character `{other}`: `# escape=` takes `\\` or a backtick"
                    ));
                }
            };
        }
        self.seen.push(name);
        Ok(())
    }
}

/// `# name = value` → (lowercased name, value).
fn directive(line: &str) -> Option<(String, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let name_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let name = &rest[..name_len];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[name_len..].trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then(|| (name.to_ascii_lowercase(), value))
}

fn is_comment(left_trimmed: &str) -> bool {
    left_trimmed.starts_with('#')
}

/// Strips a trailing escape character (and the blanks after it): `(rest, is_end_of_line)`.
/// An escaped escape character (`\\` at the end) does not continue the line.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape)
        && (before.is_empty() || !before.ends_with(escape))
    {
        return (before, false);
    }
    (line, true)
}

/// The blanks Docker splits an instruction's words on.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{b}' | '\u{c}' | '\r')
}

fn split_blank(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_blank).filter(|w| !w.is_empty())
}

fn parse_instruction(
    original: String,
    segments: Vec<(usize, usize)>,
    line: usize,
    escape: char,
) -> Result<Instruction, ParseError> {
    let err = |message: String| ParseError::new(line, message);
    let start = original.len() - original.trim_start().len();
    let end = original.trim_end().len();
    let body = &original[start..end];
    let word_len = body.find(is_blank).unwrap_or(body.len());
    let word = &body[..word_len];
    let after_word = &body[word_len..];
    let rest_start =
        start + word_len + (after_word.len() - after_word.trim_start_matches(is_blank).len());
    let Some(keyword) = Keyword::parse(word) else {
        return Err(err(unknown_instruction(word)));
    };
    let rest = &original[rest_start..end];
    let (flag_words, consumed) = extract_flags(rest);
    let remainder = &rest[consumed..];
    let args_text = remainder.trim();
    let args_start = rest_start + consumed + (remainder.len() - remainder.trim_start().len());
    let flags = parse_flags(keyword, &flag_words).map_err(err)?;
    let missing = || err(format!("{keyword} is missing its arguments"));
    let mut trigger = None;
    let args = match keyword {
        Keyword::Run | Keyword::Cmd | Keyword::Entrypoint => {
            maybe_json(args_text, true).map_err(err)?
        }
        Keyword::Shell => match maybe_json(args_text, true).map_err(err)? {
            Args::Exec(items) if !items.is_empty() => Args::Exec(items),
            _ => {
                return Err(err(
                    "SHELL takes a JSON array, e.g. `SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]`"
                        .into(),
                ));
            }
        },
        Keyword::Copy | Keyword::Add => {
            let args = maybe_json(args_text, false).map_err(err)?;
            let count = match &args {
                Args::Exec(items) => items.len(),
                _ => split_blank(args_text).count(),
            };
            if count < 2 {
                return Err(err(format!(
                    "{keyword} needs at least one source and a destination, e.g. `{keyword} requirements.txt .`"
                )));
            }
            args
        }
        Keyword::Volume => {
            if args_text.is_empty() {
                return Err(missing());
            }
            maybe_json(args_text, false).map_err(err)?
        }
        Keyword::Env | Keyword::Label => {
            Args::Pairs(name_values(args_text, escape, keyword).map_err(err)?)
        }
        Keyword::Arg => {
            let pairs: Vec<_> = parse_words(args_text, escape)
                .into_iter()
                .map(|word| match word.split_once('=') {
                    Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                    None => (word, None),
                })
                .collect();
            if pairs.is_empty() {
                return Err(missing());
            }
            Args::Pairs(pairs)
        }
        Keyword::Healthcheck => {
            healthcheck_args(args_text).map_err(err)?;
            Args::Shell(args_text.to_owned())
        }
        Keyword::Onbuild => {
            if args_text.is_empty() {
                return Err(missing());
            }
            let trigger_word = args_text
                .split(is_blank)
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            match trigger_word.as_str() {
                "ONBUILD" => return Err(err("ONBUILD cannot register another ONBUILD".into())),
                "FROM" | "MAINTAINER" => {
                    return Err(err(format!(
                        "{trigger_word} isn't allowed as an ONBUILD trigger"
                    )));
                }
                _ => {}
            }
            trigger = Some(Box::new(parse_instruction(
                args_text.to_owned(),
                vec![(0, line)],
                line,
                escape,
            )?));
            Args::Shell(args_text.to_owned())
        }
        Keyword::From
        | Keyword::Expose
        | Keyword::User
        | Keyword::Workdir
        | Keyword::Maintainer
        | Keyword::Stopsignal => {
            if args_text.is_empty() {
                return Err(missing());
            }
            Args::Shell(args_text.to_owned())
        }
    };
    Ok(Instruction {
        line,
        end_line: line,
        keyword,
        flags,
        args,
        heredocs: Vec::new(),
        original,
        segments,
        args_start,
        escape,
        trigger,
    })
}

fn unknown_instruction(word: &str) -> String {
    let upper = word.to_ascii_uppercase();
    let closest = Keyword::ALL
        .into_iter()
        .map(|k| (edit_distance(&upper, k.as_str()), k))
        .min_by_key(|(distance, _)| *distance);
    match closest {
        Some((distance, k)) if distance <= 2 && upper.len() > 2 => {
            format!("unknown instruction `{word}` (did you mean `{k}`?)")
        }
        _ => format!("unknown instruction `{word}`"),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The leading `--flag` words of an instruction's arguments (BuildKit's
/// `extractBuilderFlags`), and the byte offset where the rest starts.
fn extract_flags(line: &str) -> (Vec<String>, usize) {
    #[derive(Clone, Copy, PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut chars = line.char_indices();
    while let Some((pos, c)) = chars.next() {
        match phase {
            Phase::Spaces => {
                if c.is_whitespace() {
                    continue;
                }
                if !line[pos..].starts_with("--") {
                    return (words, pos);
                }
                phase = Phase::Word;
                word.push(c);
            }
            Phase::Word => {
                if c.is_whitespace() {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (words, pos);
                    }
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                } else if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                    blank_ok = true;
                } else if c == '\\' {
                    if let Some((_, escaped)) = chars.next() {
                        word.push(escaped);
                    }
                } else {
                    word.push(c);
                }
            }
            Phase::Quote(quote) => {
                if c == quote {
                    phase = Phase::Word;
                } else if c == '\\' {
                    match chars.next() {
                        Some((_, escaped)) => word.push(escaped),
                        None => phase = Phase::Word,
                    }
                } else {
                    word.push(c);
                }
            }
        }
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    (words, line.len())
}

fn parse_flags(keyword: Keyword, words: &[String]) -> Result<Vec<Flag>, String> {
    let specs = keyword.flag_specs();
    let mut flags: Vec<Flag> = Vec::new();
    for word in words {
        let body = word.strip_prefix("--").unwrap_or(word);
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let Some(&(_, kind)) = specs.iter().find(|(n, _)| *n == name) else {
            return Err(if specs.is_empty() {
                format!("{keyword} takes no flags, but has `--{name}`")
            } else {
                let valid: Vec<String> = specs.iter().map(|(n, _)| format!("--{n}")).collect();
                format!(
                    "unknown flag `--{name}` for {keyword} (it takes {})",
                    valid.join(", ")
                )
            });
        };
        match (kind, value) {
            (FlagKind::Value | FlagKind::Repeated, None) => {
                return Err(format!("flag `--{name}` needs a value: `--{name}=<value>`"));
            }
            (FlagKind::Bool, Some(v)) if v != "true" && v != "false" => {
                return Err(format!("flag `--{name}` takes true or false, not `{v}`"));
            }
            _ => {}
        }
        if kind != FlagKind::Repeated && flags.iter().any(|f| f.name == name) {
            return Err(format!("flag `--{name}` is given twice"));
        }
        flags.push(Flag {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        });
    }
    Ok(flags)
}

/// Exec form when the arguments are a JSON array of strings, else shell form — BuildKit's
/// `parseMaybeJSON`. Deliberately stricter than BuildKit in one case: text that was clearly
/// meant as exec form but is not valid JSON (`CMD ['python', 'app.py']`) is an error here,
/// where Docker would silently run it through `/bin/sh` and fail only when the container starts.
fn maybe_json(args: &str, command: bool) -> Result<Args, String> {
    let trimmed = args.trim_start();
    if trimmed.starts_with('[') {
        match serde_json::from_str::<Vec<serde_json::Value>>(trimmed) {
            Ok(values) => {
                return values
                    .into_iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => Ok(s),
                        _ => Err(
                            "in JSON (exec) form every element must be a string in double quotes"
                                .to_owned(),
                        ),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Args::Exec);
            }
            Err(_) if looks_like_exec_form(trimmed) => {
                let example = if command {
                    "[\"python\", \"app.py\"]"
                } else {
                    "[\"src\", \"/app/\"]"
                };
                return Err(format!(
                    "`{}` is not a valid JSON array: exec form needs double quotes and commas, \
                     e.g. `{example}` (Docker would run this text as a shell command instead)",
                    shorten(trimmed)
                ));
            }
            Err(_) => {}
        }
    }
    Ok(Args::Shell(args.to_owned()))
}

/// `[...]` that is not the shell's `[ test ]` or `[[ test ]]`.
fn looks_like_exec_form(text: &str) -> bool {
    let text = text.trim_end();
    if !text.starts_with('[') || !text.ends_with(']') || text.starts_with("[[") {
        return false;
    }
    let glued = text[1..].starts_with(|c: char| !c.is_whitespace());
    let comma_list = text
        .split_whitespace()
        .nth(1)
        .is_some_and(|w| w.ends_with(','));
    glued || comma_list
}

fn healthcheck_args(args: &str) -> Result<(), String> {
    let mut parts = args.splitn(2, char::is_whitespace);
    let kind = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default().trim();
    match kind.to_ascii_uppercase().as_str() {
        "" => Err("HEALTHCHECK needs `CMD <command>` or `NONE`".into()),
        "NONE" if rest.is_empty() => Ok(()),
        "NONE" => Err("HEALTHCHECK NONE takes no arguments".into()),
        "CMD" => match maybe_json(rest, true)? {
            Args::Exec(items) if items.is_empty() => Err("HEALTHCHECK CMD needs a command".into()),
            Args::Shell(text) if text.is_empty() => Err("HEALTHCHECK CMD needs a command".into()),
            _ => Ok(()),
        },
        _ => Err(format!(
            "unknown HEALTHCHECK type `{kind}`: write `HEALTHCHECK CMD <command>` or `HEALTHCHECK NONE`"
        )),
    }
}

/// ENV and LABEL: `NAME=value …`, or the legacy `NAME value with spaces`.
fn name_values(
    args: &str,
    escape: char,
    keyword: Keyword,
) -> Result<Vec<(String, Option<String>)>, String> {
    let words = parse_words(args, escape);
    let Some(first) = words.first() else {
        return Err(format!("{keyword} needs at least one `name=value`"));
    };
    if !first.contains('=') {
        let mut parts = args.splitn(2, is_blank);
        let name = parts.next().unwrap_or_default();
        let value = parts
            .next()
            .unwrap_or_default()
            .trim_start_matches(is_blank);
        if value.is_empty() {
            return Err(format!(
                "{keyword} {name} has no value: write `{keyword} {name}=<value>`"
            ));
        }
        return Ok(vec![(name.to_owned(), Some(value.to_owned()))]);
    }
    words
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some(("", _)) => Err(format!("`{word}` has no name before `=`")),
            Some((name, value)) => Ok((name.to_owned(), Some(value.to_owned()))),
            None => Err(format!("`{word}` is not of the form name=value")),
        })
        .collect()
}

/// Words separated by whitespace, quotes and escapes kept (BuildKit's `parseWords`).
fn parse_words(text: &str, escape: char) -> Vec<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match phase {
            Phase::Spaces | Phase::Word => {
                if c.is_whitespace() {
                    if phase == Phase::Word {
                        if blank_ok || !word.is_empty() {
                            words.push(std::mem::take(&mut word));
                        }
                        blank_ok = false;
                        phase = Phase::Spaces;
                    }
                    continue;
                }
                phase = Phase::Word;
                if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                    blank_ok = true;
                    word.push(c);
                } else if c == escape {
                    if let Some(escaped) = chars.next() {
                        word.push(c);
                        word.push(escaped);
                    }
                } else {
                    word.push(c);
                }
            }
            Phase::Quote(quote) => {
                if c == quote {
                    phase = Phase::Word;
                    word.push(c);
                } else if c == escape && quote != '\'' {
                    match chars.next() {
                        Some(escaped) => {
                            word.push(c);
                            word.push(escaped);
                        }
                        None => phase = Phase::Word,
                    }
                } else {
                    word.push(c);
                }
            }
        }
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// The heredocs a RUN/COPY/ADD line opens: `(terminator, chomp, expand)` for each word of the
/// form `[n]<<[-]WORD` (BuildKit's `heredocsFromLine`).
fn heredoc_markers(line: &str) -> Vec<(String, bool, bool)> {
    raw_shell_words(line)
        .into_iter()
        .filter_map(|word| {
            let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let rest = word[digits..].strip_prefix("<<")?;
            let (chomp, rest) = match rest.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, rest),
            };
            if rest.is_empty() || rest.contains('<') {
                return None;
            }
            let name = shell_word(rest, '\\', None);
            if name.is_empty() {
                return None;
            }
            let expand = !rest.contains(['\'', '"', '\\']);
            Some((name, chomp, expand))
        })
        .collect()
}

/// Whitespace-separated words, quotes and escapes kept as written.
fn raw_shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                word.push(c);
                if c == q {
                    quote = None;
                } else if c == '\\'
                    && q == '"'
                    && let Some(escaped) = chars.next()
                {
                    word.push(escaped);
                }
            }
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            None => {
                word.push(c);
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else if c == '\\'
                    && let Some(escaped) = chars.next()
                {
                    word.push(escaped);
                }
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Looks a variable up: `None` when it is not set.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A word as Docker's shell lexer reads it: quotes removed, escapes applied, and — when
/// `vars` is given — `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`
/// and `${NAME+word}` expanded (unset names expand to nothing).
fn shell_word(word: &str, escape: char, vars: Option<Lookup<'_>>) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c == escape {
            if let Some(&escaped) = chars.get(i) {
                out.push(escaped);
                i += 1;
            }
            continue;
        }
        match c {
            '\'' => {
                while let Some(&n) = chars.get(i) {
                    i += 1;
                    if n == '\'' {
                        break;
                    }
                    out.push(n);
                }
            }
            '"' => {
                while let Some(&n) = chars.get(i) {
                    i += 1;
                    if n == '"' {
                        break;
                    } else if n == escape {
                        match chars.get(i) {
                            Some(&m) if m == '"' || m == '$' || m == escape => {
                                out.push(m);
                                i += 1;
                            }
                            Some(_) => out.push(n),
                            None => {}
                        }
                    } else if n == '$' {
                        match vars {
                            Some(vars) => i = expand_variable(&chars, i, vars, escape, &mut out),
                            None => out.push('$'),
                        }
                    } else {
                        out.push(n);
                    }
                }
            }
            '$' => match vars {
                Some(vars) => i = expand_variable(&chars, i, vars, escape, &mut out),
                None => out.push('$'),
            },
            _ => out.push(c),
        }
    }
    out
}

/// `chars[i..]` follows a `$`: appends its expansion and returns the index after it.
fn expand_variable(
    chars: &[char],
    i: usize,
    vars: Lookup<'_>,
    escape: char,
    out: &mut String,
) -> usize {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match chars.get(i) {
        Some('{') => {
            let mut depth = 1;
            let mut j = i + 1;
            while j < chars.len() {
                match chars[j] {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            if j >= chars.len() {
                out.push('$');
                return i;
            }
            let inner: String = chars[i + 1..j].iter().collect();
            let name_len = inner.find(|c: char| !is_name(c)).unwrap_or(inner.len());
            let (name, operator) = inner.split_at(name_len);
            let value = vars(name);
            let word = |w: &str| shell_word(w, escape, Some(vars));
            let set_and_not_empty = value.as_deref().is_some_and(|v| !v.is_empty());
            let expansion = if let Some(w) = operator.strip_prefix(":-") {
                if set_and_not_empty {
                    value.unwrap_or_default()
                } else {
                    word(w)
                }
            } else if let Some(w) = operator.strip_prefix(":+") {
                if set_and_not_empty {
                    word(w)
                } else {
                    String::new()
                }
            } else if let Some(w) = operator.strip_prefix('-') {
                value.unwrap_or_else(|| word(w))
            } else if let Some(w) = operator.strip_prefix('+') {
                if value.is_some() {
                    word(w)
                } else {
                    String::new()
                }
            } else {
                // `${NAME}`, and the forms this reader does not evaluate (`${NAME:?…}`,
                // `${NAME#…}` …): the plain value.
                value.unwrap_or_default()
            };
            out.push_str(&expansion);
            j + 1
        }
        Some(&c) if c.is_ascii_alphabetic() || c == '_' => {
            let mut j = i;
            while j < chars.len() && is_name(chars[j]) {
                j += 1;
            }
            let name: String = chars[i..j].iter().collect();
            out.push_str(&vars(&name).unwrap_or_default());
            j
        }
        _ => {
            out.push('$');
            i
        }
    }
}

fn into_stages(instructions: Vec<Instruction>, escape: char) -> Result<Dockerfile, ParseError> {
    let mut meta_args = Vec::new();
    let mut global_args: HashMap<String, String> = HashMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in instructions {
        if instruction.keyword == Keyword::From {
            let stage = new_stage(instruction, &stages, &global_args, escape)?;
            stages.push(stage);
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(instruction);
        } else if instruction.keyword == Keyword::Arg {
            if let Args::Pairs(pairs) = &instruction.args {
                for (name, value) in pairs {
                    let value = value.as_deref().map_or_else(String::new, |v| {
                        shell_word(v, escape, Some(&|n: &str| global_args.get(n).cloned()))
                    });
                    global_args.insert(name.clone(), value);
                }
            }
            meta_args.push(instruction);
        } else {
            return Err(ParseError::new(
                instruction.line,
                format!(
                    "{} comes before any FROM: a Dockerfile starts with `FROM <image>` (only ARG may come before it)",
                    code(&instruction.original)
                ),
            ));
        }
    }
    if stages.is_empty() {
        let line = meta_args.last().map_or(1, |a: &Instruction| a.line);
        let message = if meta_args.is_empty() {
            "the Dockerfile has no instructions: it needs at least `FROM <image>`"
        } else {
            "the Dockerfile has no FROM: after the ARGs it needs `FROM <image>`"
        };
        return Err(ParseError::new(line, message));
    }
    Ok(Dockerfile {
        escape,
        meta_args,
        global_args,
        stages,
    })
}

fn new_stage(
    from: Instruction,
    earlier: &[Stage],
    global_args: &HashMap<String, String>,
    escape: char,
) -> Result<Stage, ParseError> {
    let words = from.raw_words();
    let (base, name) = match words.as_slice() {
        [image] => (image.clone(), None),
        [image, as_keyword, name] if as_keyword.eq_ignore_ascii_case("as") => {
            let lower = name.to_ascii_lowercase();
            let valid = lower.starts_with(|c: char| c.is_ascii_lowercase())
                && lower
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(ParseError::new(
                    from.line,
                    format!(
                        "invalid stage name `{name}`: it must start with a letter and contain only \
                         letters, digits, `-`, `_` and `.`"
                    ),
                ));
            }
            (image.clone(), Some(lower))
        }
        _ => {
            return Err(ParseError::new(
                from.line,
                format!(
                    "{} should be `FROM <image>` or `FROM <image> AS <name>`",
                    code(&from.original)
                ),
            ));
        }
    };
    let resolved_base = shell_word(&base, escape, Some(&|n: &str| global_args.get(n).cloned()));
    let lower = resolved_base.to_ascii_lowercase();
    let parent = earlier
        .iter()
        .rev()
        .find(|s| s.name.as_deref() == Some(lower.as_str()))
        .map(|s| s.index);
    Ok(Stage {
        index: earlier.len(),
        name,
        platform: from.flag_value("platform").map(str::to_owned),
        from,
        base,
        resolved_base,
        parent,
        instructions: Vec::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

/// A static rule a lab can require of the learner's Dockerfile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    PinnedBase,
    MultiStage,
    DepsBeforeSource,
    PipNoCache,
    NonRootUser,
    Healthcheck,
    Dockerignore,
}

impl Rule {
    pub const ALL: [Rule; 7] = [
        Rule::PinnedBase,
        Rule::MultiStage,
        Rule::DepsBeforeSource,
        Rule::PipNoCache,
        Rule::NonRootUser,
        Rule::Healthcheck,
        Rule::Dockerignore,
    ];

    /// The name `lab.toml` uses, and the suffix of the failure code.
    pub fn name(self) -> &'static str {
        match self {
            Rule::PinnedBase => "pinned_base",
            Rule::MultiStage => "multi_stage",
            Rule::DepsBeforeSource => "deps_before_source",
            Rule::PipNoCache => "pip_no_cache",
            Rule::NonRootUser => "non_root_user",
            Rule::Healthcheck => "healthcheck",
            Rule::Dockerignore => "dockerignore",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule name that is not one of [`Rule::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Dockerfile rule `{name}` (valid rules: {valid})", valid = rule_names())]
pub struct UnknownRule {
    pub name: String,
}

fn rule_names() -> String {
    Rule::ALL.map(Rule::name).join(", ")
}

impl FromStr for Rule {
    type Err = UnknownRule;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Rule::ALL
            .into_iter()
            .find(|rule| rule.name() == name)
            .ok_or_else(|| UnknownRule {
                name: name.to_owned(),
            })
    }
}

/// One broken rule, worded for the learner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    /// The Dockerfile line at fault, when there is one.
    pub line: Option<usize>,
    /// What is wrong, starting with `line N:` when there is a line.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Every violation of `rules` (each rule once, in the order given). `dockerignore` is the text
/// of `.dockerignore` when it exists; `dockerignore_excludes` are the patterns it must exclude.
pub fn check(
    df: &Dockerfile,
    dockerignore: Option<&str>,
    rules: &[Rule],
    dockerignore_excludes: &[String],
) -> Vec<Violation> {
    let ctx = Context::new(df);
    let mut out = Vec::new();
    let mut done = Vec::new();
    for &rule in rules {
        if done.contains(&rule) {
            continue;
        }
        done.push(rule);
        match rule {
            Rule::PinnedBase => pinned_base(&ctx, &mut out),
            Rule::MultiStage => multi_stage(&ctx, &mut out),
            Rule::DepsBeforeSource => deps_before_source(&ctx, &mut out),
            Rule::PipNoCache => pip_no_cache(&ctx, &mut out),
            Rule::NonRootUser => non_root_user(&ctx, &mut out),
            Rule::Healthcheck => healthcheck(&ctx, &mut out),
            Rule::Dockerignore => dockerignore_rule(dockerignore, dockerignore_excludes, &mut out),
        }
    }
    out
}

/// The EXPOSEd ports of the final stage (and of the earlier stages it is built FROM), in
/// order, without duplicates; ranges (`8000-8002`) are expanded, protocols dropped.
pub fn final_stage_exposes(df: &Dockerfile) -> Vec<u16> {
    let ctx = Context::new(df);
    let mut ports = Vec::new();
    let mut seen = HashSet::new();
    for (instruction, scope) in ctx.lineage_instructions() {
        if instruction.keyword != Keyword::Expose {
            continue;
        }
        for word in instruction.raw_words() {
            let word = scope.expand(&word, df.escape);
            let spec = word.split('/').next().unwrap_or_default();
            let (low, high) = spec.split_once('-').unwrap_or((spec, spec));
            if let (Ok(low), Ok(high)) = (low.parse::<u16>(), high.parse::<u16>()) {
                for port in low..=high {
                    if seen.insert(port) {
                        ports.push(port);
                    }
                }
            }
        }
    }
    ports
}

/// Variables in force at an instruction: ENV (inherited from a parent stage) and the stage's
/// ARGs. ENV wins over an ARG of the same name, as in Docker.
#[derive(Debug, Clone, Default)]
struct Scope {
    env: HashMap<String, String>,
    args: HashMap<String, String>,
}

impl Scope {
    fn get(&self, name: &str) -> Option<String> {
        self.env.get(name).or_else(|| self.args.get(name)).cloned()
    }

    fn expand(&self, word: &str, escape: char) -> String {
        shell_word(word, escape, Some(&|n: &str| self.get(n)))
    }

    fn apply(&mut self, instruction: &Instruction, df: &Dockerfile) {
        let Args::Pairs(pairs) = &instruction.args else {
            return;
        };
        match instruction.keyword {
            Keyword::Env => {
                // Every pair sees the values from before the instruction.
                let values: Vec<(String, String)> = pairs
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.clone(),
                            self.expand(value.as_deref().unwrap_or_default(), df.escape),
                        )
                    })
                    .collect();
                self.env.extend(values);
            }
            Keyword::Arg => {
                for (name, value) in pairs {
                    match value {
                        Some(value) => {
                            let value = self.expand(value, df.escape);
                            self.args.insert(name.clone(), value);
                        }
                        // `ARG NAME` in a stage brings in the global ARG's value, if any.
                        None => match df.global_args.get(name) {
                            Some(global) => {
                                self.args.insert(name.clone(), global.clone());
                            }
                            None => {
                                self.args.remove(name);
                            }
                        },
                    }
                }
            }
            _ => {}
        }
    }
}

struct Context<'a> {
    df: &'a Dockerfile,
    /// `scopes[stage][i]`: the variables before the stage's `i`th instruction.
    scopes: Vec<Vec<Scope>>,
}

impl<'a> Context<'a> {
    fn new(df: &'a Dockerfile) -> Self {
        let mut ends: Vec<Scope> = Vec::new();
        let mut scopes = Vec::new();
        for stage in &df.stages {
            let mut scope = Scope {
                env: stage
                    .parent
                    .and_then(|p| ends.get(p))
                    .map(|s| s.env.clone())
                    .unwrap_or_default(),
                args: HashMap::new(),
            };
            let mut before = Vec::new();
            for instruction in &stage.instructions {
                before.push(scope.clone());
                scope.apply(instruction, df);
            }
            scopes.push(before);
            ends.push(scope);
        }
        Self { df, scopes }
    }

    fn stage_instructions(
        &self,
        stage: &'a Stage,
    ) -> impl Iterator<Item = (&'a Instruction, &Scope)> {
        stage.instructions.iter().zip(&self.scopes[stage.index])
    }

    /// The final stage and the earlier stages it is built FROM, oldest first.
    fn lineage(&self) -> Vec<&'a Stage> {
        let mut chain = vec![self.df.final_stage()];
        while let Some(parent) = chain.last().and_then(|s| s.parent) {
            chain.push(&self.df.stages[parent]);
        }
        chain.reverse();
        chain
    }

    /// The instructions that shape the final image's config, oldest first.
    fn lineage_instructions(&self) -> Vec<(&'a Instruction, &Scope)> {
        self.lineage()
            .into_iter()
            .flat_map(|stage| self.stage_instructions(stage))
            .collect()
    }

    fn last_in_lineage(&self, keyword: Keyword) -> Option<(&'a Instruction, &Scope)> {
        self.lineage_instructions()
            .into_iter()
            .rev()
            .find(|(instruction, _)| instruction.keyword == keyword)
    }

    /// The earlier stage `value` (a name or an index) refers to, for a stage at `before`.
    fn stage_ref(&self, value: &str, before: usize) -> Option<usize> {
        if let Ok(index) = value.parse::<usize>() {
            return (index < before).then_some(index);
        }
        let lower = value.to_ascii_lowercase();
        self.df.stages[..before]
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .map(|s| s.index)
    }
}

/// A short quote of Dockerfile text for a message: whitespace collapsed, about 80 characters.
fn shorten(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= 80 {
        collapsed
    } else {
        let mut short: String = collapsed.chars().take(79).collect();
        short.push('…');
        short
    }
}

fn code(text: &str) -> String {
    format!("`{}`", shorten(text))
}

fn violation(rule: Rule, line: Option<usize>, message: String, hint: String) -> Violation {
    let message = match line {
        Some(line) => format!("line {line}: {message}"),
        None => message,
    };
    Violation {
        rule,
        line,
        message,
        hint,
    }
}

// --- pinned_base -----------------------------------------------------------------------------

/// `name[:tag][@digest]`; a `:` before the last `/` belongs to a registry port.
struct ImageRef<'a> {
    repository: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    fn parse(image: &'a str) -> Self {
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (image, None),
        };
        let name_start = rest.rfind('/').map_or(0, |i| i + 1);
        match rest[name_start..].rfind(':') {
            Some(colon) => ImageRef {
                repository: &rest[..name_start + colon],
                tag: Some(&rest[name_start + colon + 1..]),
                digest,
            },
            None => ImageRef {
                repository: rest,
                tag: None,
                digest,
            },
        }
    }

    fn is_pinned(&self) -> bool {
        self.digest.is_some_and(|d| !d.is_empty())
            || self.tag.is_some_and(|t| !t.is_empty() && t != "latest")
    }
}

fn example_tag(repository: &str) -> &'static str {
    match repository.rsplit('/').next().unwrap_or(repository) {
        "python" => "3.12-slim",
        "node" => "22-slim",
        "golang" => "1.23",
        "rust" => "1.82-slim",
        "alpine" => "3.20",
        "ubuntu" => "24.04",
        "debian" => "bookworm-slim",
        "nginx" => "1.27-alpine",
        "ruby" => "3.3-slim",
        "eclipse-temurin" | "openjdk" => "21-jre",
        _ => "<version>",
    }
}

/// The first variable a FROM image uses (`${BASE}` → `BASE`).
fn first_variable(text: &str) -> Option<&str> {
    let after = &text[text.find('$')? + 1..];
    let after = after.strip_prefix('{').unwrap_or(after);
    let len = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(after.len());
    (len > 0).then(|| &after[..len])
}

fn pinned_base(ctx: &Context, out: &mut Vec<Violation>) {
    for stage in ctx.df.stages() {
        if stage.parent.is_some() || stage.resolved_base == "scratch" {
            continue;
        }
        let image = ImageRef::parse(&stage.resolved_base);
        if image.is_pinned() {
            continue;
        }
        let from = code(&stage.from.original);
        let subject = if stage.base == stage.resolved_base {
            from.clone()
        } else {
            format!("{from} (which resolves to `{}`)", stage.resolved_base)
        };
        let message = if stage.resolved_base.is_empty() {
            format!(
                "{from} has no image unless one is passed with `--build-arg`: the ARG it uses has no default"
            )
        } else if image.tag == Some("latest") {
            format!(
                "{subject} is not pinned — `latest` is whatever was pushed last, so the same \
                 Dockerfile builds a different image next month"
            )
        } else {
            format!(
                "{subject} is not pinned — without a tag Docker pulls `{}:latest`, whatever was \
                 pushed last, so the same Dockerfile builds a different image next month",
                image.repository
            )
        };
        let repository = if image.repository.is_empty() {
            "python"
        } else {
            image.repository
        };
        let example = format!("{repository}:{}", example_tag(repository));
        let hint = match first_variable(&stage.base) {
            Some(arg) => format!(
                "Give the ARG a pinned default, e.g. `ARG {arg}={example}`, or pin a digest \
                 (`{repository}@sha256:…`); bump it on purpose when you want a newer base"
            ),
            None => {
                let alias = stage
                    .name
                    .as_deref()
                    .map(|n| format!(" AS {n}"))
                    .unwrap_or_default();
                format!(
                    "Pin a version tag, e.g. `FROM {example}{alias}`, or a digest \
                     (`FROM {repository}@sha256:…{alias}`); bump it on purpose when you want a newer base"
                )
            }
        };
        out.push(violation(
            Rule::PinnedBase,
            Some(stage.from.line),
            message,
            hint,
        ));
    }
}

// --- multi_stage -----------------------------------------------------------------------------

fn multi_stage(ctx: &Context, out: &mut Vec<Violation>) {
    let last = ctx.df.final_stage();
    let from = code(&last.from.original);
    if ctx.df.stages.len() < 2 {
        out.push(violation(
            Rule::MultiStage,
            Some(last.from.line),
            format!(
                "{from} is the only stage, so everything used to build the app — compilers, \
                 build tools, caches, sources — ships in the image"
            ),
            format!(
                "Build in a first stage (`FROM {} AS build`) and start a second, slim stage that \
                 copies only what the app needs to run, e.g. `COPY --from=build /app /app`",
                last.base
            ),
        ));
        return;
    }
    if last.parent.is_some() {
        return;
    }
    let copies_from_earlier = ctx.stage_instructions(last).any(|(instruction, scope)| {
        instruction.keyword == Keyword::Copy
            && instruction.flag_value("from").is_some_and(|f| {
                ctx.stage_ref(&scope.expand(f, ctx.df.escape), last.index)
                    .is_some()
            })
    });
    if !copies_from_earlier {
        let previous = &ctx.df.stages[last.index - 1];
        let reference = previous
            .name
            .clone()
            .unwrap_or_else(|| previous.index.to_string());
        out.push(violation(
            Rule::MultiStage,
            Some(last.from.line),
            format!(
                "the final stage ({from}) neither starts from an earlier stage nor copies from one \
                 with `COPY --from`, so BuildKit skips the earlier stages and none of their work \
                 reaches the image"
            ),
            format!(
                "Copy the build output into the final stage, e.g. `COPY --from={reference} /app /app`"
            ),
        ));
    }
}

// --- shell commands inside RUN ---------------------------------------------------------------

/// One simple command of a RUN: its words (quotes removed, redirections dropped), its line and
/// its text.
struct Command {
    words: Vec<String>,
    line: usize,
    text: String,
}

/// Splits a shell script into simple commands at `;`, `&&`, `||`, `|`, `&`, newlines and
/// parentheses. Not a shell parser: enough to find `pip install` and friends reliably, and to
/// not find them inside quotes or comments.
fn shell_commands(script: &str, line_at: &dyn Fn(usize) -> usize) -> Vec<Command> {
    #[derive(Default)]
    struct Splitter {
        commands: Vec<(Vec<String>, usize, usize)>,
        words: Vec<String>,
        word: String,
        in_word: bool,
        start: Option<usize>,
        redirect: bool,
    }
    impl Splitter {
        fn begin(&mut self, offset: usize) {
            self.start.get_or_insert(offset);
            self.in_word = true;
        }
        fn end_word(&mut self) {
            if self.in_word {
                let word = std::mem::take(&mut self.word);
                if self.redirect {
                    self.redirect = false;
                } else {
                    self.words.push(word);
                }
                self.in_word = false;
            }
        }
        fn end_command(&mut self, offset: usize) {
            self.end_word();
            self.redirect = false;
            let words = std::mem::take(&mut self.words);
            if let Some(start) = self.start.take()
                && !words.is_empty()
            {
                self.commands.push((words, start, offset));
            }
        }
    }

    let mut s = Splitter::default();
    let mut chars = script.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        match c {
            ' ' | '\t' => s.end_word(),
            '\n' | ';' | '&' | '|' | '(' | ')' => s.end_command(offset),
            '#' if !s.in_word => while chars.next_if(|&(_, n)| n != '\n').is_some() {},
            '\\' => match chars.next() {
                Some((_, '\n')) | None => {}
                Some((_, escaped)) => {
                    s.begin(offset);
                    s.word.push(escaped);
                }
            },
            '\'' => {
                s.begin(offset);
                for (_, n) in chars.by_ref() {
                    if n == '\'' {
                        break;
                    }
                    s.word.push(n);
                }
            }
            '"' => {
                s.begin(offset);
                while let Some((_, n)) = chars.next() {
                    match n {
                        '"' => break,
                        '\\' => match chars
                            .next_if(|&(_, m)| matches!(m, '"' | '\\' | '$' | '`' | '\n'))
                        {
                            Some((_, '\n')) => {}
                            Some((_, m)) => s.word.push(m),
                            None => s.word.push('\\'),
                        },
                        _ => s.word.push(n),
                    }
                }
            }
            '$' if chars.peek().is_some_and(|&(_, n)| n == '(') => {
                // A command substitution stays one word; what it runs is not inspected.
                s.begin(offset);
                s.word.push('$');
                let mut depth = 0usize;
                for (_, n) in chars.by_ref() {
                    s.word.push(n);
                    if n == '(' {
                        depth += 1;
                    } else if n == ')' {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            break;
                        }
                    }
                }
            }
            '`' => {
                s.begin(offset);
                s.word.push('`');
                for (_, n) in chars.by_ref() {
                    s.word.push(n);
                    if n == '`' {
                        break;
                    }
                }
            }
            '<' | '>' => {
                // `2>` — the digits are the file descriptor, not a word.
                if s.in_word && s.word.chars().all(|d| d.is_ascii_digit()) {
                    s.word.clear();
                    s.in_word = false;
                } else {
                    s.end_word();
                }
                while chars
                    .next_if(|&(_, n)| matches!(n, '<' | '>' | '&' | '-' | '|'))
                    .is_some()
                {}
                s.redirect = true;
            }
            _ => {
                s.begin(offset);
                s.word.push(c);
            }
        }
    }
    s.end_command(script.len());
    s.commands
        .into_iter()
        .map(|(words, start, end)| Command {
            words,
            line: line_at(start),
            text: script[start..end].trim().to_owned(),
        })
        .collect()
}

fn basename(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

fn is_shell(program: &str) -> bool {
    matches!(
        basename(program),
        "sh" | "bash" | "dash" | "ash" | "zsh" | "ksh"
    )
}

/// The simple commands a RUN executes: its shell form, the script of `["sh", "-c", "…"]`,
/// and a heredoc that is the script itself (`RUN <<EOF` or `RUN bash <<EOF`).
fn run_commands(run: &Instruction) -> Vec<Command> {
    match &run.args {
        Args::Exec(argv) => {
            if let Some(first) = argv.first()
                && is_shell(first)
                && let Some(c) = argv.iter().position(|a| a == "-c")
                && let Some(script) = argv.get(c + 1)
            {
                return shell_commands(script, &|_| run.line);
            }
            vec![Command {
                words: argv.clone(),
                line: run.line,
                text: argv.join(" "),
            }]
        }
        Args::Shell(text) => {
            let mut commands = shell_commands(text, &|offset| run.line_at(run.args_start + offset));
            let runs_heredoc = match commands.as_slice() {
                [] => true,
                [only] => {
                    only.words.first().is_some_and(|p| is_shell(p))
                        && only.words[1..].iter().all(|w| w.starts_with('-'))
                }
                _ => false,
            };
            if runs_heredoc && let Some(heredoc) = run.heredocs.first() {
                let interpreter = heredoc
                    .content
                    .strip_prefix("#!")
                    .and_then(|l| l.lines().next())
                    .map(str::trim);
                let shell_script = interpreter.is_none_or(|line| {
                    line.split_whitespace()
                        .find(|w| *w != "/usr/bin/env" && !w.starts_with('-'))
                        .is_none_or(is_shell)
                });
                if shell_script {
                    let content = &heredoc.content;
                    commands.extend(shell_commands(content, &|offset| {
                        heredoc.first_line + content[..offset].matches('\n').count()
                    }));
                }
            }
            commands
        }
        Args::Pairs(_) => Vec::new(),
    }
}

fn assignment(word: &str) -> Option<(&str, &str)> {
    let (name, value) = word.split_once('=')?;
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some((name, value))
}

/// Splits `FOO=1 sudo -u app pip install x` into its variable assignments and the program's
/// argv, skipping shell keywords and wrappers that run the rest as a command.
fn command_argv(words: &[String]) -> (Vec<(&str, &str)>, &[String]) {
    let mut assignments = Vec::new();
    let mut i = 0;
    while let Some(word) = words.get(i) {
        if let Some(pair) = assignment(word) {
            assignments.push(pair);
            i += 1;
            continue;
        }
        match word.as_str() {
            "if" | "then" | "else" | "elif" | "do" | "while" | "until" | "!" | "{" | "}"
            | "time" | "exec" | "nohup" | "command" => i += 1,
            "sudo" | "env" | "nice" => {
                i += 1;
                while let Some(option) = words.get(i).filter(|w| w.starts_with('-')) {
                    let takes_value = matches!(option.as_str(), "-u" | "-g" | "-n");
                    i += if takes_value { 2 } else { 1 };
                }
            }
            _ => break,
        }
    }
    (assignments, words.get(i..).unwrap_or_default())
}

/// `pip …`, `pip3 …`, `python -m pip …`: the words naming pip, and pip's arguments.
struct PipCall<'a> {
    program: &'a [String],
    args: &'a [String],
}

fn is_versioned(program: &str, name: &str) -> bool {
    basename(program)
        .strip_prefix(name)
        .is_some_and(|version| version.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

fn pip_call(argv: &[String]) -> Option<PipCall<'_>> {
    let program = argv.first()?;
    if is_versioned(program, "pip") {
        return Some(PipCall {
            program: &argv[..1],
            args: &argv[1..],
        });
    }
    if !is_versioned(program, "python") {
        return None;
    }
    let mut i = 1;
    while let Some(arg) = argv.get(i) {
        if arg == "-m" {
            return (argv.get(i + 1)? == "pip").then(|| PipCall {
                program: &argv[..i + 2],
                args: &argv[i + 2..],
            });
        }
        if arg == "-mpip" {
            return Some(PipCall {
                program: &argv[..i + 1],
                args: &argv[i + 1..],
            });
        }
        if !arg.starts_with('-') {
            return None;
        }
        i += if arg == "-W" || arg == "-X" { 2 } else { 1 };
    }
    None
}

/// pip's subcommand (`install`, `download` …) and its index in the arguments.
fn pip_subcommand(args: &[String]) -> Option<(usize, &str)> {
    const GLOBAL_OPTIONS_WITH_VALUE: &[&str] = &[
        "--python",
        "--log",
        "--log-file",
        "--proxy",
        "--retries",
        "--timeout",
        "--exists-action",
        "--trusted-host",
        "--cert",
        "--client-cert",
        "--cache-dir",
        "--use-feature",
        "--use-deprecated",
        "--keyring-provider",
    ];
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        if !arg.starts_with('-') {
            return Some((i, arg));
        }
        i += if GLOBAL_OPTIONS_WITH_VALUE.contains(&arg.as_str()) {
            2
        } else {
            1
        };
    }
    None
}

// --- deps_before_source ----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Pip,
    Poetry,
    Pipenv,
    Uv,
    Npm,
    Yarn,
    Pnpm,
    Go,
    Cargo,
    Bundler,
}

impl Tool {
    /// Tools that install the same project's dependencies: one installing them before the
    /// source copy lets another build the project after it.
    fn family(self) -> &'static str {
        match self {
            Tool::Pip | Tool::Poetry | Tool::Pipenv | Tool::Uv => "python",
            Tool::Npm | Tool::Yarn | Tool::Pnpm => "node",
            Tool::Go => "go",
            Tool::Cargo => "rust",
            Tool::Bundler => "ruby",
        }
    }

    fn hint(self, manifest: Option<&str>) -> String {
        let run = |command: &str| format!("run `{command}`");
        let (files, install): (Vec<&str>, String) = match self {
            Tool::Pip => {
                let m = manifest.unwrap_or("requirements.txt");
                (vec![m], run(&format!("pip install --no-cache-dir -r {m}")))
            }
            Tool::Poetry => (
                vec!["pyproject.toml", "poetry.lock"],
                run("poetry install --no-root"),
            ),
            Tool::Pipenv => (
                vec!["Pipfile", "Pipfile.lock"],
                run("pipenv install --deploy"),
            ),
            Tool::Uv => (
                vec!["pyproject.toml", "uv.lock"],
                run("uv sync --no-install-project"),
            ),
            Tool::Npm => (vec!["package.json", "package-lock.json"], run("npm ci")),
            Tool::Yarn => (
                vec!["package.json", "yarn.lock"],
                run("yarn install --frozen-lockfile"),
            ),
            Tool::Pnpm => (
                vec!["package.json", "pnpm-lock.yaml"],
                run("pnpm install --frozen-lockfile"),
            ),
            Tool::Go => (vec!["go.mod", "go.sum"], run("go mod download")),
            Tool::Cargo => (
                vec!["Cargo.toml", "Cargo.lock"],
                "fetch the dependencies with `cargo fetch` (or build them with `cargo build \
                 --release` against a stub `src/main.rs`)"
                    .into(),
            ),
            Tool::Bundler => (vec!["Gemfile", "Gemfile.lock"], run("bundle install")),
        };
        let (target, own) = if files.len() == 1 {
            (".", "its")
        } else {
            ("./", "their")
        };
        format!(
            "Copy {} on {own} own (`COPY {} {target}`) and {install} before `COPY . .`, so Docker \
             reuses the dependency layer when only your code changes",
            files.join(" and "),
            files.join(" ")
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InstallKind {
    /// Installs dependencies only: belongs before the source copy.
    Dependencies,
    /// Builds or installs the project itself (`pip install .`, `cargo build`): needs the
    /// source, fine after it once the dependencies were installed before it.
    Project,
}

/// What a command installs, if it is one of the dependency installers.
fn install_of(argv: &[String]) -> Option<(Tool, InstallKind, Option<String>)> {
    use InstallKind::{Dependencies, Project};
    if let Some(pip) = pip_call(argv) {
        let (sub, "install") = pip_subcommand(pip.args)? else {
            return None;
        };
        let (kind, manifest) = pip_install_kind(&pip.args[sub + 1..]);
        return Some((Tool::Pip, kind, manifest));
    }
    let program = basename(argv.first()?);
    let positional: Vec<&str> = argv[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let has = |flag: &str| argv.iter().any(|a| a == flag);
    let first = positional.first().copied();
    match program {
        "uv" => match positional.as_slice() {
            ["pip", "install", ..] => {
                let at = argv
                    .iter()
                    .position(|a| a == "install")
                    .unwrap_or(argv.len() - 1);
                let (kind, manifest) = pip_install_kind(&argv[at + 1..]);
                Some((Tool::Uv, kind, manifest))
            }
            ["sync", ..] if has("--no-install-project") => Some((Tool::Uv, Dependencies, None)),
            ["sync", ..] => Some((Tool::Uv, Project, None)),
            _ => None,
        },
        "poetry" if first == Some("install") => {
            let kind = if has("--no-root") {
                Dependencies
            } else {
                Project
            };
            Some((Tool::Poetry, kind, None))
        }
        "pipenv" if matches!(first, Some("install" | "sync")) => {
            Some((Tool::Pipenv, Dependencies, None))
        }
        "npm" if matches!(first, Some("ci" | "install" | "i" | "add")) => {
            Some((Tool::Npm, Dependencies, None))
        }
        "yarn" if matches!(first, None | Some("install" | "add")) => {
            Some((Tool::Yarn, Dependencies, None))
        }
        "pnpm" if matches!(first, Some("install" | "i" | "add")) => {
            Some((Tool::Pnpm, Dependencies, None))
        }
        "go" if positional.starts_with(&["mod", "download"]) => {
            Some((Tool::Go, Dependencies, None))
        }
        "cargo" => match positional.as_slice() {
            ["fetch", ..] | ["chef", "cook", ..] => Some((Tool::Cargo, Dependencies, None)),
            ["build", ..] => Some((Tool::Cargo, Project, None)),
            ["install", ..] if has("--path") => Some((Tool::Cargo, Project, None)),
            _ => None,
        },
        "bundle" | "bundler" if matches!(first, None | Some("install")) => {
            Some((Tool::Bundler, Dependencies, None))
        }
        _ => None,
    }
}

/// `pip install` of a manifest or named packages installs dependencies; of a local path
/// (`.`, `-e .`, `/wheels/*`) it installs the project.
fn pip_install_kind(args: &[String]) -> (InstallKind, Option<String>) {
    const OPTIONS_WITH_VALUE: &[&str] = &[
        "-c",
        "--constraint",
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "-t",
        "--target",
        "--prefix",
        "--root",
        "--src",
        "--upgrade-strategy",
        "--python-version",
        "--platform",
        "--implementation",
        "--abi",
        "--only-binary",
        "--no-binary",
        "--progress-bar",
        "--trusted-host",
        "--cache-dir",
        "--log",
        "--timeout",
        "--retries",
        "--proxy",
        "-C",
        "--config-settings",
        "--global-option",
        "--report",
    ];
    let mut manifest = None;
    let mut project = false;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if arg == "-r" || arg == "--requirement" {
            manifest = args.get(i).cloned();
            i += 1;
        } else if let Some(m) = arg.strip_prefix("--requirement=").or_else(|| {
            arg.strip_prefix("-r")
                .filter(|m| !m.is_empty() && !arg.starts_with("--"))
        }) {
            manifest = Some(m.to_owned());
        } else if arg == "-e" || arg == "--editable" {
            project = true;
            i += 1;
        } else if arg.starts_with("--editable=") {
            project = true;
        } else if arg.starts_with('-') {
            if OPTIONS_WITH_VALUE.contains(&arg.as_str()) {
                i += 1;
            }
        } else if arg.starts_with('.') || arg.starts_with('/') {
            project = true;
        }
    }
    match (manifest, project) {
        (Some(m), _) => (InstallKind::Dependencies, Some(m)),
        (None, true) => (InstallKind::Project, None),
        (None, false) => (InstallKind::Dependencies, None),
    }
}

/// `COPY . .`, `COPY ./ /app`, `ADD . /app`: the whole build context.
fn copies_whole_source(instruction: &Instruction, scope: &Scope, escape: char) -> bool {
    if !matches!(instruction.keyword, Keyword::Copy | Keyword::Add)
        || instruction.flag("from").is_some()
    {
        return false;
    }
    let words = instruction.raw_words();
    let sources = &words[..words.len().saturating_sub(1)];
    sources.iter().filter(|w| !w.contains("<<")).any(|source| {
        let source = scope.expand(source, escape);
        matches!(source.trim_end_matches('/'), "" | "." | "*" | "./*")
    })
}

fn deps_before_source(ctx: &Context, out: &mut Vec<Violation>) {
    #[derive(Clone, Default)]
    struct State {
        /// The first whole-source copy: (line, instruction).
        source: Option<(usize, String)>,
        /// Families whose dependencies were installed before it.
        installed: Vec<&'static str>,
    }
    let mut ends: Vec<State> = Vec::new();
    for stage in ctx.df.stages() {
        let mut state = stage
            .parent
            .and_then(|p| ends.get(p))
            .cloned()
            .unwrap_or_default();
        for (instruction, scope) in ctx.stage_instructions(stage) {
            if state.source.is_none() && copies_whole_source(instruction, scope, ctx.df.escape) {
                state.source = Some((instruction.line, instruction.original.clone()));
                continue;
            }
            if instruction.keyword != Keyword::Run {
                continue;
            }
            for command in run_commands(instruction) {
                let (_, argv) = command_argv(&command.words);
                let Some((tool, kind, manifest)) = install_of(argv) else {
                    continue;
                };
                let family = tool.family();
                match &state.source {
                    None => {
                        if !state.installed.contains(&family) {
                            state.installed.push(family);
                        }
                    }
                    Some((copy_line, copy)) => {
                        if kind == InstallKind::Project && state.installed.contains(&family) {
                            continue;
                        }
                        out.push(violation(
                            Rule::DepsBeforeSource,
                            Some(command.line),
                            format!(
                                "{} runs after {} (line {copy_line}): every change to your code \
                                 invalidates this layer and re-installs every dependency",
                                code(&command.text),
                                code(copy)
                            ),
                            tool.hint(manifest.as_deref()),
                        ));
                        // One report per RUN is enough to point at it.
                        break;
                    }
                }
            }
        }
        ends.push(state);
    }
}

// --- pip_no_cache ----------------------------------------------------------------------------

/// pip reads `PIP_NO_CACHE_DIR` with `strtobool` and — for historical reasons — disables the
/// cache for any valid value, `0`/`false`/`off` included.
fn pip_env_disables_cache(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "y" | "yes" | "t" | "true" | "on" | "1" | "n" | "no" | "f" | "false" | "off" | "0"
    )
}

/// `--no-cache-dir`, or an unambiguous abbreviation pip's option parser accepts (`--no-cache`).
fn is_no_cache_flag(arg: &str) -> bool {
    arg.len() >= "--no-ca".len() && "--no-cache-dir".starts_with(arg)
}

/// `RUN --mount=type=cache,target=/root/.cache/pip`: the cache lives outside the image.
fn has_pip_cache_mount(run: &Instruction) -> bool {
    run.flag_values("mount").any(|mount| {
        let fields: Vec<(&str, &str)> =
            mount.split(',').filter_map(|f| f.split_once('=')).collect();
        let is_cache = fields.iter().any(|&(k, v)| k == "type" && v == "cache");
        let target = fields
            .iter()
            .find(|(k, _)| matches!(*k, "target" | "dst" | "destination"))
            .map(|&(_, v)| v.trim_end_matches('/'));
        is_cache && target.is_some_and(|t| t.ends_with("/.cache") || t.contains("/.cache/pip"))
    })
}

fn pip_no_cache(ctx: &Context, out: &mut Vec<Violation>) {
    for stage in ctx.df.stages() {
        for (instruction, scope) in ctx.stage_instructions(stage) {
            if instruction.keyword != Keyword::Run || has_pip_cache_mount(instruction) {
                continue;
            }
            let mut exported: HashMap<String, String> = HashMap::new();
            for command in run_commands(instruction) {
                let (assignments, argv) = command_argv(&command.words);
                if argv.first().is_some_and(|p| p == "export") {
                    for (name, value) in argv[1..].iter().filter_map(|w| assignment(w)) {
                        exported.insert(name.to_owned(), value.to_owned());
                    }
                    continue;
                }
                let Some(pip) = pip_call(argv) else {
                    continue;
                };
                let Some((sub, "install")) = pip_subcommand(pip.args) else {
                    continue;
                };
                if pip.args.iter().any(|a| is_no_cache_flag(a)) {
                    continue;
                }
                let env = assignments
                    .iter()
                    .rev()
                    .find(|(name, _)| *name == "PIP_NO_CACHE_DIR")
                    .map(|(_, value)| (*value).to_owned())
                    .or_else(|| exported.get("PIP_NO_CACHE_DIR").cloned())
                    .or_else(|| scope.get("PIP_NO_CACHE_DIR"));
                if env.is_some_and(|v| pip_env_disables_cache(&v)) {
                    continue;
                }
                let at = pip.program.len() + sub + 1;
                let mut fixed: Vec<&str> = argv.iter().map(String::as_str).collect();
                fixed.insert(at.min(fixed.len()), "--no-cache-dir");
                out.push(violation(
                    Rule::PipNoCache,
                    Some(command.line),
                    format!(
                        "{} keeps pip's download cache in the image (no `--no-cache-dir`)",
                        code(&command.text)
                    ),
                    format!(
                        "Use {}: the cache is never used again inside the image, it only makes \
                         it bigger (or set `ENV PIP_NO_CACHE_DIR=1` before the first pip install)",
                        code(&fixed.join(" "))
                    ),
                ));
            }
        }
    }
}

// --- non_root_user, healthcheck --------------------------------------------------------------

fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or_default().trim();
    name.is_empty() || name == "root" || name.parse::<u64>() == Ok(0)
}

fn non_root_user(ctx: &Context, out: &mut Vec<Violation>) {
    let last = ctx.df.final_stage();
    match ctx.last_in_lineage(Keyword::User) {
        None => out.push(violation(
            Rule::NonRootUser,
            Some(last.from.line),
            format!(
                "the final stage ({}) never sets USER, so the app runs as root — whoever breaks \
                 into it is root in the container",
                code(&last.from.original)
            ),
            "Create an unprivileged user and switch to it after the steps that need root, e.g. \
             `RUN useradd --create-home --uid 10001 app` (Alpine: `adduser -D -u 10001 app`), then `USER app`"
                .into(),
        )),
        Some((user, scope)) => {
            let written = user.shell_text();
            let resolved = scope.expand(written, ctx.df.escape);
            if is_root(&resolved) {
                let resolution = if resolved == written {
                    String::new()
                } else {
                    format!(" (which resolves to `{resolved}`)")
                };
                out.push(violation(
                    Rule::NonRootUser,
                    Some(user.line),
                    format!(
                        "{}{resolution} is the last USER of the final stage, so the app runs as root",
                        code(&user.original)
                    ),
                    "Switch to an unprivileged user after the steps that need root, e.g. `USER app` \
                     (create it first with `useradd`), and keep it as the last USER"
                        .into(),
                ));
            }
        }
    }
}

fn healthcheck(ctx: &Context, out: &mut Vec<Violation>) {
    let last = ctx.df.final_stage();
    let port = final_stage_exposes(ctx.df).first().copied().unwrap_or(8000);
    let example = format!(
        "`HEALTHCHECK --interval=30s --timeout=3s CMD curl -fsS http://localhost:{port}/ || exit 1`"
    );
    match ctx.last_in_lineage(Keyword::Healthcheck) {
        None => out.push(violation(
            Rule::Healthcheck,
            Some(last.from.line),
            format!(
                "the final stage ({}) has no HEALTHCHECK, so Docker reports the container as \
                 running even when the app inside has hung",
                code(&last.from.original)
            ),
            format!(
                "Add one near the end, e.g. {example} (slim images have no curl: use a \
                 `python -c` or `wget -q --spider` one-liner instead)"
            ),
        )),
        Some((check, _)) => {
            let kind = check
                .shell_text()
                .split_whitespace()
                .next()
                .unwrap_or_default();
            if kind.eq_ignore_ascii_case("NONE") {
                out.push(violation(
                    Rule::Healthcheck,
                    Some(check.line),
                    format!(
                        "{} turns the health check off (including any the base image had)",
                        code(&check.original)
                    ),
                    format!("Replace it with a real check, e.g. {example}"),
                ));
            }
        }
    }
}

// --- dockerignore ----------------------------------------------------------------------------

/// One pattern line of `.dockerignore`, normalised as Docker does.
struct IgnoreLine {
    line: usize,
    text: String,
    /// `!pattern`: re-includes what earlier lines excluded.
    negated: bool,
    pattern: String,
    regex: Option<Regex>,
}

fn ignore_lines(text: &str) -> Vec<IgnoreLine> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            // Only a `#` in the first column starts a comment.
            if raw.starts_with('#') {
                return None;
            }
            let trimmed = raw.trim();
            let (negated, pattern) = match trimmed.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, trimmed),
            };
            if pattern.is_empty() {
                return None;
            }
            let pattern = normalize_pattern(pattern);
            Some(IgnoreLine {
                line: i + 1,
                text: trimmed.to_owned(),
                negated,
                regex: glob_regex(&pattern),
                pattern,
            })
        })
        .collect()
}

/// `filepath.Clean`, then relative to the context root (no leading `/`).
fn normalize_pattern(pattern: &str) -> String {
    let rooted = pattern.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for segment in pattern.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (false, true) => ".".into(),
        (true, true) => "/".into(),
        _ => joined,
    }
}

/// A `.dockerignore` glob as a regex, translated the way Docker's pattern matcher does:
/// `**` spans directories, `*` and `?` do not cross `/`.
fn glob_regex(pattern: &str) -> Option<Regex> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if in_class {
            match c {
                ']' => {
                    in_class = false;
                    re.push(']');
                }
                '\\' => {
                    if let Some(&escaped) = chars.get(i) {
                        re.push_str(&regex::escape(&escaped.to_string()));
                        i += 1;
                    }
                }
                '[' | '&' | '~' => re.push_str(&regex::escape(&c.to_string())),
                _ => re.push(c),
            }
            continue;
        }
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                re.push_str(if i >= chars.len() { ".*" } else { "(.*/)?" });
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                in_class = true;
                re.push('[');
            }
            '\\' => match chars.get(i) {
                Some(&escaped) => {
                    re.push_str(&regex::escape(&escaped.to_string()));
                    i += 1;
                }
                None => re.push_str("\\\\"),
            },
            _ => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).ok()
}

/// Docker's `MatchesOrParentMatches` for a plain path: the last matching line decides, and a
/// line matching a parent directory matches everything below it.
fn path_excluded<'a>(path: &str, lines: &'a [IgnoreLine]) -> (bool, Option<&'a IgnoreLine>) {
    let components: Vec<&str> = path.split('/').collect();
    let parents: Vec<String> = (1..components.len())
        .map(|n| components[..n].join("/"))
        .collect();
    let mut excluded = false;
    let mut decided_by = None;
    for line in lines {
        // An exclusion cannot change an excluded path, nor an inclusion an included one.
        if line.negated != excluded {
            continue;
        }
        let Some(regex) = &line.regex else {
            continue;
        };
        if regex.is_match(path) || parents.iter().any(|p| regex.is_match(p)) {
            excluded = !line.negated;
            decided_by = Some(line);
        }
    }
    (excluded, decided_by)
}

/// For a required pattern that is itself a glob: a line equal to it, or its `**/` form.
fn pattern_excluded<'a>(pattern: &str, lines: &'a [IgnoreLine]) -> (bool, Option<&'a IgnoreLine>) {
    let anywhere = format!("**/{pattern}");
    let mut excluded = false;
    let mut decided_by = None;
    for line in lines {
        if line.pattern == pattern || line.pattern == anywhere {
            excluded = !line.negated;
            decided_by = Some(line);
        }
    }
    (excluded, decided_by)
}

fn dockerignore_rule(dockerignore: Option<&str>, required: &[String], out: &mut Vec<Violation>) {
    let Some(text) = dockerignore else {
        let list = if required.is_empty() {
            "`.git`, `.venv`, `__pycache__`, `.env`".to_owned()
        } else {
            required
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(violation(
            Rule::Dockerignore,
            None,
            "`.dockerignore` is missing, so `docker build` sends the whole folder as the build \
             context and `COPY . .` copies all of it into the image — .git, virtualenvs and \
             secrets included"
                .into(),
            format!("Create `.dockerignore` next to the Dockerfile, one pattern per line, listing at least {list}"),
        ));
        return;
    };
    let lines = ignore_lines(text);
    for wanted in required {
        let target = normalize_pattern(wanted.trim());
        let target = target.strip_prefix('/').unwrap_or(&target);
        let literal = !target.contains(['*', '?', '[', '\\']);
        let (excluded, decided_by) = if literal {
            path_excluded(target, &lines)
        } else {
            pattern_excluded(target, &lines)
        };
        if excluded {
            continue;
        }
        let found = match decided_by {
            Some(line) if line.negated => violation(
                Rule::Dockerignore,
                None,
                format!(
                    "`.dockerignore` excludes `{wanted}`, but its line {} `{}` brings it back into \
                     the build context",
                    line.line, line.text
                ),
                format!(
                    "Remove that `!` line, or put the `{wanted}` line below it: in .dockerignore \
                     the last matching line wins"
                ),
            ),
            _ => violation(
                Rule::Dockerignore,
                None,
                format!(
                    "`.dockerignore` does not exclude `{wanted}`, so it is sent to the build \
                     context and `COPY . .` puts it in the image"
                ),
                format!("Add a line `{wanted}` to `.dockerignore`"),
            ),
        };
        out.push(found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn df(text: &str) -> Dockerfile {
        match parse(text) {
            Ok(df) => df,
            Err(e) => panic!("parse failed: {e}\n{text}"),
        }
    }

    fn parse_err(text: &str) -> ParseError {
        match parse(text) {
            Ok(df) => panic!("expected a parse error, got {df:#?}"),
            Err(e) => e,
        }
    }

    fn violations(text: &str, rule: Rule) -> Vec<Violation> {
        check(&df(text), Some(""), &[rule], &[])
    }

    fn lines_of(text: &str, rule: Rule) -> Vec<Option<usize>> {
        violations(text, rule).iter().map(|v| v.line).collect()
    }

    fn passes(text: &str, rule: Rule) -> bool {
        let found = violations(text, rule);
        assert!(found.iter().all(|v| v.rule == rule));
        found.is_empty()
    }

    fn all_instructions(df: &Dockerfile) -> Vec<(Keyword, usize)> {
        df.instructions().map(|i| (i.keyword, i.line)).collect()
    }

    // --- parser --------------------------------------------------------------------------

    #[test]
    fn instructions_keep_their_starting_line_across_continuations() {
        let df = df("FROM python:3.12-slim\n\
                     RUN apt-get update && \\\n    apt-get install -y curl \\\n    && rm -rf /var/lib/apt/lists/*\n\
                     \n\
                     CMD [\"python\", \"app.py\"]\n");
        assert_eq!(
            all_instructions(&df),
            vec![(Keyword::From, 1), (Keyword::Run, 2), (Keyword::Cmd, 6)]
        );
        let run = &df.final_stage().instructions[0];
        assert_eq!(run.end_line, 4);
        assert_eq!(
            run.args,
            Args::Shell(
                "apt-get update &&     apt-get install -y curl     && rm -rf /var/lib/apt/lists/*"
                    .into()
            )
        );
    }

    #[test]
    fn comments_and_blank_lines_inside_a_continuation_are_skipped() {
        let df = df(
            "FROM alpine:3.20\nRUN apk add \\\n# the web server\n    nginx \\\n\n    curl\nUSER nobody\n",
        );
        let stage = df.final_stage();
        assert_eq!(
            stage.instructions[0].args,
            Args::Shell("apk add     nginx     curl".into())
        );
        assert_eq!(stage.instructions[1].keyword, Keyword::User);
        assert_eq!(stage.instructions[1].line, 7);
    }

    #[test]
    fn an_escaped_backslash_at_the_end_does_not_continue_the_line() {
        let df = df("FROM alpine:3.20\nRUN echo a\\\\\nUSER nobody\n");
        assert_eq!(df.final_stage().instructions.len(), 2);
        assert_eq!(df.final_stage().instructions[1].line, 3);
    }

    #[test]
    fn escape_directive_switches_to_backtick() {
        let df = df(
            "# escape=`\nFROM mcr.microsoft.com/windows/servercore:ltsc2022\n\
                     COPY testfile.txt c:\\\nRUN dir c:\\ `\n    && echo done\n",
        );
        assert_eq!(df.escape(), '`');
        let stage = df.final_stage();
        // The trailing backslash of COPY is part of the path, not a continuation.
        assert_eq!(stage.instructions[0].words(), vec!["testfile.txt", "c:\\"]);
        assert_eq!(stage.instructions[1].line, 4);
        assert_eq!(stage.instructions[1].end_line, 5);
        assert_eq!(
            stage.instructions[1].args,
            Args::Shell("dir c:\\     && echo done".into())
        );
    }

    #[test]
    fn escape_directive_counts_only_before_anything_else() {
        // After a comment it is a comment too: the backslash stays the escape character, the
        // backtick continues nothing, and `b` is read as an instruction.
        let e = parse_err("# a comment\n# escape=`\nFROM alpine:3.20\nRUN echo a `\nb\n");
        assert_eq!(e.line, 5);
        assert!(e.message.contains("unknown instruction `b`"), "{e}");
        let e = parse_err("# escape=x\nFROM alpine:3.20\n");
        assert_eq!(e.line, 1);
        let e = parse_err("# escape=`\n# escape=\\\nFROM alpine:3.20\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("only one"), "{e}");
    }

    #[test]
    fn instructions_are_case_insensitive() {
        let df = df("from python:3.12 as Build\nrun pip install flask\nFrom build\ncopy . .\n");
        assert_eq!(df.stages()[0].name.as_deref(), Some("build"));
        assert_eq!(df.stages()[0].instructions[0].keyword, Keyword::Run);
        assert_eq!(df.stages()[1].parent, Some(0));
        assert_eq!(df.stages()[1].instructions[0].keyword, Keyword::Copy);
    }

    #[test]
    fn exec_form_and_shell_form() {
        let df = df("FROM python:3.12\n\
                     CMD [\"python\", \"-m\", \"http.server\"]\n\
                     ENTRYPOINT python app.py\n\
                     RUN [ -f /etc/os-release ] && echo yes\n\
                     RUN [ -d /app ]\n\
                     COPY [\"my file.txt\", \"/app/\"]\n");
        let body = &df.final_stage().instructions;
        assert_eq!(
            body[0].args,
            Args::Exec(vec!["python".into(), "-m".into(), "http.server".into()])
        );
        assert_eq!(body[1].args, Args::Shell("python app.py".into()));
        assert_eq!(
            body[2].args,
            Args::Shell("[ -f /etc/os-release ] && echo yes".into())
        );
        assert_eq!(body[3].args, Args::Shell("[ -d /app ]".into()));
        assert_eq!(body[4].words(), vec!["my file.txt", "/app/"]);
    }

    #[test]
    fn malformed_exec_form_is_an_error_with_its_line() {
        let e = parse_err("FROM python:3.12\n\nCMD ['python', 'app.py']\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("not a valid JSON array"), "{e}");
        let e = parse_err("FROM python:3.12\nENTRYPOINT [\"python\", 1]\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("string"), "{e}");
        let e = parse_err("FROM python:3.12\nSHELL /bin/bash -c\n");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn heredoc_bodies_are_skipped_and_kept() {
        let df = df("FROM python:3.12-slim\n\
                     RUN <<EOF\n\
                     pip install flask\n\
                     FROM not-an-instruction\n\
                     EOF\n\
                     COPY <<-\"CONF\" /etc/app.conf\n\
                     \tport = $PORT\n\
                     \tCONF\n\
                     USER app\n");
        let body = &df.final_stage().instructions;
        assert_eq!(df.stages().len(), 1);
        assert_eq!(body.len(), 3);
        assert_eq!(body[0].end_line, 5);
        assert_eq!(
            body[0].heredocs,
            vec![Heredoc {
                name: "EOF".into(),
                chomp: false,
                expand: true,
                content: "pip install flask\nFROM not-an-instruction\n".into(),
                first_line: 3,
            }]
        );
        assert_eq!(body[1].heredocs[0].name, "CONF");
        assert!(body[1].heredocs[0].chomp);
        assert!(!body[1].heredocs[0].expand);
        assert_eq!((body[2].keyword, body[2].line), (Keyword::User, 9));
    }

    #[test]
    fn several_heredocs_on_one_line_are_read_in_order() {
        let df = df("FROM alpine:3.20\nCOPY <<A <<B /dest/\na\nA\nb\nB\nUSER nobody\n");
        let copy = &df.final_stage().instructions[0];
        let names: Vec<_> = copy
            .heredocs
            .iter()
            .map(|h| (h.name.as_str(), h.content.as_str()))
            .collect();
        assert_eq!(names, vec![("A", "a\n"), ("B", "b\n")]);
        assert_eq!(df.final_stage().instructions[1].line, 7);
    }

    #[test]
    fn heredoc_markers_in_quotes_or_exec_form_are_not_heredocs() {
        let df =
            df("FROM alpine:3.20\nRUN echo \"<<EOF\"\nRUN [\"cat\", \"<<EOF\"]\nUSER nobody\n");
        assert_eq!(df.final_stage().instructions.len(), 3);
        assert!(
            df.final_stage()
                .instructions
                .iter()
                .all(|i| i.heredocs.is_empty())
        );
    }

    #[test]
    fn unterminated_heredoc_is_an_error_at_its_instruction() {
        let e = parse_err("FROM alpine:3.20\nRUN echo hi\nRUN <<EOF\necho never closed\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("never closed"), "{e}");
    }

    #[test]
    fn from_with_platform_digest_and_name() {
        let df =
            df("FROM --platform=$BUILDPLATFORM python:3.12@sha256:abc123 AS Build\nRUN true\n");
        let stage = &df.stages()[0];
        assert_eq!(stage.platform.as_deref(), Some("$BUILDPLATFORM"));
        assert_eq!(stage.base, "python:3.12@sha256:abc123");
        assert_eq!(stage.name.as_deref(), Some("build"));
    }

    #[test]
    fn flags_are_parsed_and_checked() {
        let df = df("FROM python:3.12 AS build\nFROM python:3.12-slim\n\
                     COPY --from=build --chown=app:app --link /app /app\n\
                     RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=t true\n");
        let body = &df.final_stage().instructions;
        assert_eq!(body[0].flag_value("from"), Some("build"));
        assert_eq!(body[0].flag_value("chown"), Some("app:app"));
        assert_eq!(body[0].flag("link").map(|f| f.value.clone()), Some(None));
        assert_eq!(body[0].words(), vec!["/app", "/app"]);
        assert_eq!(body[1].flag_values("mount").count(), 2);

        let e = parse_err("FROM python:3.12\nCOPY --form=build /app /app\n");
        assert_eq!(e.line, 2);
        assert!(
            e.message.contains("`--form`") && e.message.contains("--from"),
            "{e}"
        );
        let e = parse_err("FROM python:3.12\nWORKDIR --x /app\n");
        assert!(e.message.contains("takes no flags"), "{e}");
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "FROM python:3.12\nRUNN pip install flask\n",
                2,
                "did you mean `RUN`",
            ),
            ("RUN echo hi\nFROM python:3.12\n", 1, "before any FROM"),
            ("ARG V=3\n", 1, "no FROM"),
            ("# only a comment\n\n", 1, "no instructions"),
            ("FROM python:3.12 AS 1st\n", 1, "invalid stage name"),
            ("FROM python:3.12 build\n", 1, "FROM <image> AS <name>"),
            (
                "FROM python:3.12\nCOPY app.py\n",
                2,
                "source and a destination",
            ),
            (
                "FROM python:3.12\nHEALTHCHECK curl localhost\n",
                2,
                "unknown HEALTHCHECK type",
            ),
            (
                "FROM python:3.12\nHEALTHCHECK NONE now\n",
                2,
                "no arguments",
            ),
            (
                "FROM python:3.12\nONBUILD FROM alpine\n",
                2,
                "ONBUILD trigger",
            ),
            ("FROM python:3.12\nENV A=1 B\n", 2, "name=value"),
            ("FROM python:3.12\nUSER\n", 2, "missing its arguments"),
        ];
        for (text, line, needle) in cases {
            let e = parse_err(text);
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn arg_before_from_resolves_the_base() {
        let df = df("ARG PY=3.12\nARG BASE=python:${PY}-slim\nFROM ${BASE} AS app\n");
        assert_eq!(df.meta_args().len(), 2);
        assert_eq!(df.final_stage().base, "${BASE}");
        assert_eq!(df.final_stage().resolved_base, "python:3.12-slim");
    }

    #[test]
    fn env_arg_and_label_pairs() {
        let df = df(
            "FROM python:3.12\nENV A=1 B=\"two words\"\nENV LEGACY value with spaces\nARG X Y=2\n",
        );
        let body = &df.final_stage().instructions;
        assert_eq!(
            body[0].args,
            Args::Pairs(vec![
                ("A".into(), Some("1".into())),
                ("B".into(), Some("\"two words\"".into()))
            ])
        );
        assert_eq!(
            body[1].args,
            Args::Pairs(vec![("LEGACY".into(), Some("value with spaces".into()))])
        );
        assert_eq!(
            body[2].args,
            Args::Pairs(vec![("X".into(), None), ("Y".into(), Some("2".into()))])
        );
    }

    #[test]
    fn crlf_and_bom_are_tolerated() {
        let df = df("\u{feff}FROM python:3.12\r\nRUN pip install \\\r\n    flask\r\nUSER app\r\n");
        assert_eq!(
            df.final_stage().instructions[0].args,
            Args::Shell("pip install     flask".into())
        );
        assert_eq!(df.final_stage().instructions[1].line, 4);
    }

    #[test]
    fn variables_expand_like_docker() {
        let vars = |n: &str| match n {
            "SET" => Some("v".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let expand = |w: &str| shell_word(w, '\\', Some(&vars));
        assert_eq!(expand("$SET-${SET}"), "v-v");
        assert_eq!(
            expand("${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d}"),
            "d d  d"
        );
        assert_eq!(expand("${SET:+alt}${UNSET:+alt}"), "alt");
        assert_eq!(expand("'$SET' \"$SET\" \\$SET"), "$SET v $SET");
    }

    // --- pinned_base ---------------------------------------------------------------------

    #[test]
    fn pinned_base_requires_a_tag_other_than_latest_or_a_digest() {
        assert_eq!(lines_of("FROM python\n", Rule::PinnedBase), vec![Some(1)]);
        assert_eq!(
            lines_of("FROM python:latest\n", Rule::PinnedBase),
            vec![Some(1)]
        );
        assert!(passes("FROM python:3.12-slim\n", Rule::PinnedBase));
        assert!(passes("FROM python@sha256:0123abcd\n", Rule::PinnedBase));
        assert!(passes(
            "FROM python:latest@sha256:0123abcd\n",
            Rule::PinnedBase
        ));
        assert!(passes("FROM scratch\n", Rule::PinnedBase));
        // A registry port is not a tag.
        assert_eq!(
            lines_of("FROM localhost:5000/app\n", Rule::PinnedBase),
            vec![Some(1)]
        );
        assert!(passes("FROM localhost:5000/app:1.4\n", Rule::PinnedBase));
    }

    #[test]
    fn pinned_base_message_quotes_the_line_and_hint_suggests_a_version() {
        let found = violations(
            "# syntax=docker/dockerfile:1\n\nFROM python:latest AS build\n",
            Rule::PinnedBase,
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .message
                .starts_with("line 3: `FROM python:latest AS build` is not pinned"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].hint.contains("FROM python:3.12-slim AS build"),
            "{}",
            found[0].hint
        );
    }

    #[test]
    fn pinned_base_skips_earlier_stages_and_checks_every_external_one() {
        let text =
            "FROM node:22 AS assets\nFROM python AS build\nFROM build\nFROM Assets AS again\n";
        assert_eq!(lines_of(text, Rule::PinnedBase), vec![Some(2)]);
    }

    #[test]
    fn pinned_base_resolves_arg_defaults() {
        assert!(passes(
            "ARG BASE=python:3.12-slim\nFROM ${BASE}\n",
            Rule::PinnedBase
        ));
        let found = violations("ARG BASE=python\nFROM $BASE\n", Rule::PinnedBase);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.contains("resolves to `python`"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].hint.contains("ARG BASE=python:3.12-slim"),
            "{}",
            found[0].hint
        );
        let found = violations("ARG BASE\nFROM ${BASE}\n", Rule::PinnedBase);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.contains("--build-arg"),
            "{}",
            found[0].message
        );
        // An ARG declared after the FROM does not count.
        assert_eq!(
            lines_of("FROM python:${V}\nARG V=3.12\n", Rule::PinnedBase),
            vec![Some(1)]
        );
    }

    // --- multi_stage ---------------------------------------------------------------------

    #[test]
    fn multi_stage_needs_two_stages_and_a_final_stage_that_uses_an_earlier_one() {
        assert_eq!(
            lines_of("FROM python:3.12\nRUN true\n", Rule::MultiStage),
            vec![Some(1)]
        );
        let unused =
            "FROM python:3.12 AS build\nRUN pip wheel -w /w .\nFROM python:3.12-slim\nCOPY . .\n";
        assert_eq!(lines_of(unused, Rule::MultiStage), vec![Some(3)]);
        assert!(passes(
            "FROM python:3.12 AS build\nFROM python:3.12-slim\nCOPY --from=build /w /w\n",
            Rule::MultiStage
        ));
        assert!(passes(
            "FROM python:3.12 AS base\nFROM base\nRUN true\n",
            Rule::MultiStage
        ));
    }

    #[test]
    fn multi_stage_accepts_stage_index_and_case_insensitive_names_but_not_images() {
        let by_index = "FROM golang:1.23\nRUN go build -o /app\nFROM gcr.io/distroless/static:nonroot\nCOPY --from=0 /app /app\n";
        assert!(passes(by_index, Rule::MultiStage));
        let by_name =
            "FROM golang:1.23 AS Builder\nFROM alpine:3.20\nCOPY --from=BUILDER /app /app\n";
        assert!(passes(by_name, Rule::MultiStage));
        let by_arg = "FROM golang:1.23 AS builder\nFROM alpine:3.20\nARG SRC=builder\nCOPY --from=$SRC /app /app\n";
        assert!(passes(by_arg, Rule::MultiStage));
        let image = "FROM golang:1.23 AS builder\nFROM alpine:3.20\nCOPY --from=nginx:1.27 /etc/nginx /etc/nginx\n";
        assert_eq!(lines_of(image, Rule::MultiStage), vec![Some(2)]);
        // Index 1 is the final stage itself, not an earlier one.
        let itself = "FROM golang:1.23\nFROM alpine:3.20\nCOPY --from=1 /a /b\n";
        assert_eq!(lines_of(itself, Rule::MultiStage), vec![Some(2)]);
    }

    // --- deps_before_source --------------------------------------------------------------

    #[test]
    fn deps_before_source_passes_when_the_manifest_is_installed_first() {
        let good = "FROM python:3.12-slim\nWORKDIR /app\nCOPY requirements.txt .\n\
                    RUN pip install --no-cache-dir -r requirements.txt\nCOPY . .\nCMD [\"python\", \"app.py\"]\n";
        assert!(passes(good, Rule::DepsBeforeSource));
    }

    #[test]
    fn deps_before_source_fails_when_install_follows_the_source_copy() {
        let bad = "FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\nRUN pip install -r requirements/prod.txt\n";
        let found = violations(bad, Rule::DepsBeforeSource);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, Some(4));
        assert!(
            found[0]
                .message
                .contains("`pip install -r requirements/prod.txt` runs after `COPY . .` (line 3)"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].hint.contains("COPY requirements/prod.txt ."),
            "{}",
            found[0].hint
        );
        assert!(
            found[0].hint.contains("before `COPY . .`"),
            "{}",
            found[0].hint
        );
    }

    #[test]
    fn deps_before_source_covers_each_ecosystem_and_source_copy_form() {
        let cases = [
            "FROM node:22\nCOPY . /app\nRUN npm ci\n",
            "FROM node:22\nADD . /app\nRUN yarn\n",
            "FROM golang:1.23\nCOPY ./ ./\nRUN go mod download\n",
            "FROM ruby:3.3\nCOPY --chown=app . .\nRUN bundle install\n",
            "FROM python:3.12\nCOPY . .\nRUN poetry install --no-root\n",
            "FROM python:3.12\nCOPY . .\nRUN python -m pip install flask\n",
            "FROM rust:1.82\nCOPY . .\nRUN cargo build --release\n",
        ];
        for text in cases {
            assert_eq!(
                lines_of(text, Rule::DepsBeforeSource),
                vec![Some(3)],
                "{text}"
            );
        }
        let npm = violations(cases[0], Rule::DepsBeforeSource);
        assert!(
            npm[0].hint.starts_with(
                "Copy package.json and package-lock.json on their own \
                 (`COPY package.json package-lock.json ./`) and run `npm ci` before `COPY . .`"
            ),
            "{}",
            npm[0].hint
        );
    }

    #[test]
    fn deps_before_source_allows_building_the_project_after_its_dependencies() {
        let rust = "FROM rust:1.82 AS build\nWORKDIR /src\nCOPY Cargo.toml Cargo.lock ./\nRUN cargo fetch\n\
                    COPY . .\nRUN cargo build --release\n";
        assert!(passes(rust, Rule::DepsBeforeSource));
        let python = "FROM python:3.12\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n\
                      COPY . .\nRUN pip install --no-deps .\n";
        assert!(passes(python, Rule::DepsBeforeSource));
        // Another dependency install after the source is still late.
        let late = "FROM python:3.12\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n\
                    COPY . .\nRUN pip install -r requirements-dev.txt\n";
        assert_eq!(lines_of(late, Rule::DepsBeforeSource), vec![Some(5)]);
    }

    #[test]
    fn deps_before_source_follows_stages() {
        // The builder stage installs late: reported, even though the final stage is fine.
        let builder = "FROM node:22 AS build\nCOPY . .\nRUN npm ci && npm run build\n\
                       FROM nginx:1.27\nCOPY --from=build /dist /usr/share/nginx/html\n";
        assert_eq!(lines_of(builder, Rule::DepsBeforeSource), vec![Some(3)]);
        // A stage built FROM one that copied the source inherits that copy.
        let inherited =
            "FROM python:3.12 AS base\nCOPY . .\nFROM base\nRUN pip install -r requirements.txt\n";
        assert_eq!(lines_of(inherited, Rule::DepsBeforeSource), vec![Some(4)]);
        // Copying from another stage is not the build context.
        let from_stage = "FROM python:3.12 AS a\nFROM python:3.12\nCOPY --from=a . .\nRUN pip install -r r.txt\n";
        assert!(passes(from_stage, Rule::DepsBeforeSource));
    }

    #[test]
    fn deps_before_source_reads_heredoc_scripts_and_points_at_the_line() {
        let text =
            "FROM python:3.12\nCOPY . .\nRUN <<EOF\nset -e\npip install -r requirements.txt\nEOF\n";
        assert_eq!(lines_of(text, Rule::DepsBeforeSource), vec![Some(5)]);
        // A heredoc fed to Python is not a shell script.
        let python = "FROM python:3.12\nCOPY . .\nRUN python3 <<EOF\nprint('pip install x')\nEOF\n";
        assert!(passes(python, Rule::DepsBeforeSource));
    }

    // --- pip_no_cache --------------------------------------------------------------------

    #[test]
    fn pip_no_cache_reports_each_install_without_the_flag() {
        let text = "FROM python:3.12\n\
                    RUN pip install flask\n\
                    RUN pip3 install --no-cache-dir gunicorn\n\
                    RUN apt-get update && \\\n    python3 -m pip install -U pip && \\\n    pip install --no-cache uvicorn\n\
                    RUN pip --no-cache-dir install rich\n";
        let found = violations(text, Rule::PipNoCache);
        assert_eq!(
            found.iter().map(|v| v.line).collect::<Vec<_>>(),
            vec![Some(2), Some(5)]
        );
        assert!(
            found[0]
                .message
                .starts_with("line 2: `pip install flask` keeps"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].hint.contains("`pip install --no-cache-dir flask`"),
            "{}",
            found[0].hint
        );
        assert!(
            found[1]
                .hint
                .contains("`python3 -m pip install --no-cache-dir -U pip`"),
            "{}",
            found[1].hint
        );
    }

    #[test]
    fn pip_no_cache_ignores_what_is_not_a_pip_install() {
        let text = "FROM python:3.12\nRUN echo \"pip install flask\" # pip install x\n\
                    RUN pip download flask && pip wheel . && pipx install black\n";
        assert!(passes(text, Rule::PipNoCache));
    }

    #[test]
    fn pip_no_cache_honours_the_environment() {
        assert!(passes(
            "FROM python:3.12\nENV PIP_NO_CACHE_DIR=1\nRUN pip install flask\n",
            Rule::PipNoCache
        ));
        // pip disables the cache for any boolean value, `off` and `0` included.
        assert!(passes(
            "FROM python:3.12\nENV PIP_NO_CACHE_DIR off\nRUN pip install flask\n",
            Rule::PipNoCache
        ));
        assert!(passes(
            "FROM python:3.12\nARG PIP_NO_CACHE_DIR=0\nRUN pip install flask\n",
            Rule::PipNoCache
        ));
        assert!(passes(
            "FROM python:3.12\nRUN PIP_NO_CACHE_DIR=1 pip install flask\n",
            Rule::PipNoCache
        ));
        assert!(passes(
            "FROM python:3.12\nRUN export PIP_NO_CACHE_DIR=true && pip install flask\n",
            Rule::PipNoCache
        ));
        assert!(passes(
            "FROM python:3.12 AS base\nENV PIP_NO_CACHE_DIR=1\nFROM base\nRUN pip install flask\n",
            Rule::PipNoCache
        ));
        // Not a value pip accepts; set after the install; set in an unrelated stage.
        assert!(!passes(
            "FROM python:3.12\nENV PIP_NO_CACHE_DIR=please\nRUN pip install flask\n",
            Rule::PipNoCache
        ));
        assert!(!passes(
            "FROM python:3.12\nRUN pip install flask\nENV PIP_NO_CACHE_DIR=1\n",
            Rule::PipNoCache
        ));
        assert!(!passes(
            "FROM python:3.12 AS a\nENV PIP_NO_CACHE_DIR=1\nFROM python:3.12\nRUN pip install flask\n",
            Rule::PipNoCache
        ));
    }

    #[test]
    fn pip_no_cache_accepts_a_cache_mount_and_reads_exec_form_and_heredocs() {
        assert!(passes(
            "FROM python:3.12\nRUN --mount=type=cache,target=/root/.cache/pip pip install flask\n",
            Rule::PipNoCache
        ));
        let text = "FROM python:3.12\nRUN [\"pip\", \"install\", \"flask\"]\n\
                    RUN [\"/bin/sh\", \"-c\", \"pip install rich\"]\nRUN <<EOF\npip install httpx\nEOF\n";
        assert_eq!(
            lines_of(text, Rule::PipNoCache),
            vec![Some(2), Some(3), Some(5)]
        );
    }

    // --- non_root_user -------------------------------------------------------------------

    #[test]
    fn non_root_user_needs_a_last_user_that_is_not_root() {
        assert_eq!(
            lines_of("FROM python:3.12\nCMD python\n", Rule::NonRootUser),
            vec![Some(1)]
        );
        assert!(passes("FROM python:3.12\nUSER app\n", Rule::NonRootUser));
        assert!(passes(
            "FROM python:3.12\nUSER root\nRUN apt-get update\nUSER 10001:10001\n",
            Rule::NonRootUser
        ));
        assert!(passes("FROM python:3.12\nUSER 1000:0\n", Rule::NonRootUser));
        assert_eq!(
            lines_of("FROM python:3.12\nUSER app\nUSER root\n", Rule::NonRootUser),
            vec![Some(3)]
        );
        assert_eq!(
            lines_of("FROM python:3.12\nUSER 0:0\n", Rule::NonRootUser),
            vec![Some(2)]
        );
        assert_eq!(
            lines_of("FROM python:3.12\nUSER root:app\n", Rule::NonRootUser),
            vec![Some(2)]
        );
        let found = violations(
            "FROM python:3.12\nARG RUN_AS=0\nUSER ${RUN_AS}\n",
            Rule::NonRootUser,
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.contains("resolves to `0`"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn non_root_user_looks_only_at_the_final_stage_and_what_it_is_built_from() {
        let builder_only =
            "FROM python:3.12 AS build\nUSER app\nFROM python:3.12-slim\nCOPY --from=build /a /a\n";
        assert_eq!(lines_of(builder_only, Rule::NonRootUser), vec![Some(3)]);
        let inherited = "FROM python:3.12 AS base\nUSER app\nFROM base\nCMD python\n";
        assert!(passes(inherited, Rule::NonRootUser));
    }

    // --- healthcheck ---------------------------------------------------------------------

    #[test]
    fn healthcheck_needs_a_real_check_in_the_final_stage() {
        let found = violations("FROM python:3.12\nEXPOSE 5000\n", Rule::Healthcheck);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, Some(1));
        assert!(
            found[0].hint.contains("localhost:5000"),
            "{}",
            found[0].hint
        );
        assert!(passes(
            "FROM python:3.12\nHEALTHCHECK --interval=30s CMD curl -f http://localhost:8000/ || exit 1\n",
            Rule::Healthcheck
        ));
        assert!(passes(
            "FROM python:3.12\nHEALTHCHECK CMD [\"python\", \"-c\", \"1\"]\n",
            Rule::Healthcheck
        ));
        assert_eq!(
            lines_of(
                "FROM python:3.12\nHEALTHCHECK CMD true\nHEALTHCHECK none\n",
                Rule::Healthcheck
            ),
            vec![Some(3)]
        );
        assert!(passes(
            "FROM python:3.12 AS base\nHEALTHCHECK CMD true\nFROM base\n",
            Rule::Healthcheck
        ));
        assert_eq!(
            lines_of(
                "FROM python:3.12 AS build\nHEALTHCHECK CMD true\nFROM python:3.12\n",
                Rule::Healthcheck
            ),
            vec![Some(3)]
        );
    }

    // --- dockerignore --------------------------------------------------------------------

    fn ignore(text: Option<&str>, required: &[&str]) -> Vec<String> {
        let required: Vec<String> = required.iter().map(|s| (*s).to_owned()).collect();
        check(
            &df("FROM scratch\n"),
            text,
            &[Rule::Dockerignore],
            &required,
        )
        .into_iter()
        .map(|v| {
            assert_eq!(v.line, None);
            v.message
        })
        .collect()
    }

    #[test]
    fn dockerignore_missing_is_one_violation() {
        let found = check(
            &df("FROM scratch\n"),
            None,
            &[Rule::Dockerignore],
            &[".git".into(), ".venv".into()],
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("missing"), "{}", found[0].message);
        assert!(
            found[0].hint.contains("`.git`, `.venv`"),
            "{}",
            found[0].hint
        );
    }

    #[test]
    fn dockerignore_accepts_the_usual_spellings_of_a_pattern() {
        let text = "# build output\n/.git\n.venv/\n**/__pycache__\n./node_modules\n*.pyc\n";
        assert!(
            ignore(
                Some(text),
                &[
                    ".git",
                    ".venv",
                    "__pycache__",
                    "node_modules",
                    "*.pyc",
                    "/.venv/"
                ]
            )
            .is_empty()
        );
        let found = ignore(Some(text), &[".env", "dist", "**/*.log"]);
        assert_eq!(found.len(), 3);
        assert!(found[0].contains("does not exclude `.env`"), "{}", found[0]);
    }

    #[test]
    fn dockerignore_follows_docker_matching() {
        // Globs, parent directories, and `#` only as a first-column comment.
        assert!(ignore(Some("*\n!src\n!requirements.txt\n"), &[".git", ".env"]).is_empty());
        assert!(ignore(Some("node_modules\n"), &["node_modules/.cache"]).is_empty());
        assert!(ignore(Some(".env*\n"), &[".env"]).is_empty());
        assert_eq!(ignore(Some("#.git\n"), &[".git"]).len(), 1);
        // `.git` excluded only inside a subfolder.
        assert_eq!(ignore(Some("src/.git\n"), &[".git"]).len(), 1);
    }

    #[test]
    fn dockerignore_later_negation_re_includes() {
        let found = ignore(Some(".env\n!.env\n"), &[".env"]);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("line 2 `!.env`"), "{}", found[0]);
        assert!(ignore(Some("!.env\n.env\n"), &[".env"]).is_empty());
        assert!(ignore(Some(".env*\n!.env.example\n"), &[".env"]).is_empty());
        assert_eq!(ignore(Some("*.pyc\n!*.pyc\n"), &["*.pyc"]).len(), 1);
    }

    // --- exposes, rule names, whole files ------------------------------------------------

    #[test]
    fn final_stage_exposes_lists_its_ports() {
        let text = "FROM node:22 AS build\nEXPOSE 3000\n\
                    FROM python:3.12 AS base\nEXPOSE 8000/tcp\n\
                    FROM base\nARG METRICS=9100\nEXPOSE 8000 ${METRICS} 7000-7002/udp\n";
        assert_eq!(
            final_stage_exposes(&df(text)),
            vec![8000, 9100, 7000, 7001, 7002]
        );
        assert!(final_stage_exposes(&df("FROM python:3.12\n")).is_empty());
    }

    #[test]
    fn rule_names_round_trip_and_unknown_names_list_the_valid_ones() {
        for rule in Rule::ALL {
            assert_eq!(rule.name().parse::<Rule>(), Ok(rule));
        }
        let e = "pinned-base".parse::<Rule>().unwrap_err();
        let text = e.to_string();
        assert!(text.contains("`pinned-base`"), "{text}");
        assert!(text.contains("pinned_base, multi_stage, deps_before_source, pip_no_cache, non_root_user, healthcheck, dockerignore"), "{text}");
    }

    #[test]
    fn long_instructions_are_shortened_in_messages() {
        let long = format!(
            "FROM python:3.12\nRUN pip install {}\n",
            "package ".repeat(30)
        );
        let found = violations(&long, Rule::PipNoCache);
        let quoted = found[0].message.split('`').nth(1).unwrap_or_default();
        assert!(quoted.ends_with('…'), "{quoted}");
        assert_eq!(quoted.chars().count(), 80);
    }

    const GOOD: &str = r#"# syntax=docker/dockerfile:1
ARG PYTHON=3.12

FROM python:${PYTHON}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.txt .
RUN pip install --no-cache-dir --prefix=/install -r requirements.txt
COPY . .

FROM python:${PYTHON}-slim
RUN useradd --create-home --uid 10001 app
WORKDIR /app
COPY --from=build /install /usr/local
COPY --from=build --chown=app:app /src /app
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8000/health')"
CMD ["gunicorn", "-b", "0.0.0.0:8000", "app:app"]
"#;

    const BAD: &str = r#"FROM python:latest
WORKDIR /app
COPY . .
RUN pip install -r requirements.txt
EXPOSE 8000
CMD python app.py
"#;

    #[test]
    fn a_realistic_good_dockerfile_passes_every_rule() {
        let found = check(
            &df(GOOD),
            Some(".git\n.venv\n__pycache__\n.env\n"),
            &Rule::ALL,
            &[".git".into(), ".venv".into(), ".env".into()],
        );
        assert_eq!(found, vec![]);
        assert_eq!(final_stage_exposes(&df(GOOD)), vec![8000]);
    }

    #[test]
    fn a_realistic_bad_dockerfile_fails_several_rules() {
        let found = check(
            &df(BAD),
            Some(".git\n"),
            &Rule::ALL,
            &[".git".into(), ".venv".into()],
        );
        let summary: Vec<(Rule, Option<usize>)> = found.iter().map(|v| (v.rule, v.line)).collect();
        assert_eq!(
            summary,
            vec![
                (Rule::PinnedBase, Some(1)),
                (Rule::MultiStage, Some(1)),
                (Rule::DepsBeforeSource, Some(4)),
                (Rule::PipNoCache, Some(4)),
                (Rule::NonRootUser, Some(1)),
                (Rule::Healthcheck, Some(1)),
                (Rule::Dockerignore, None),
            ]
        );
        assert!(found.iter().all(|v| !v.hint.is_empty()));
        // Asking for a rule twice reports it once.
        assert_eq!(
            check(&df(BAD), None, &[Rule::PinnedBase, Rule::PinnedBase], &[]).len(),
            1
        );
    }
}
