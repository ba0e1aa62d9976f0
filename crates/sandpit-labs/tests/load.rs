//! Loading and validating lab folders: a good one loads; each kind of mistake is reported
//! with its file and line, all of them at once.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

use sandpit_labs::lab::CheckKind;
use sandpit_labs::load::{FolderFiles, LoadOptions, Problem, load};

const GOOD: &str = r#"slug = "demo"
title = "Demo"
summary = "A demo lab."
difficulty = "beginner"
tags = ["shell"]

[[steps]]
id = "one"
title = "First"
text = "steps/one.md"
hints = ["look around"]

[[steps.checks]]
type = "file_exists"
code = "greeting_missing"
path = "hello.txt"
message = "hello.txt does not exist"
hint = "echo hi > hello.txt"

[[steps.checks]]
type = "command"
code = "greeting_wrong"
script = "grep -q hi hello.txt"
hint = "put hi in it"
timeout_ms = 2000
"#;

fn folder(manifest: &str) -> FolderFiles {
    let mut f = FolderFiles::new();
    f.insert("lab.toml".into(), manifest.as_bytes().to_vec());
    f.insert("steps/one.md".into(), b"# One\nDo it.\n".to_vec());
    f.insert("starter/README.md".into(), b"hi".to_vec());
    f.insert("solution/hello.txt".into(), b"hi\n".to_vec());
    f
}

fn options() -> LoadOptions<'static> {
    LoadOptions {
        environments: &["default"],
        source: "test".into(),
    }
}

fn problems(manifest: &str) -> Vec<Problem> {
    load(&folder(manifest), &options()).unwrap_err()
}

fn has(problems: &[Problem], line: Option<usize>, needle: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.line == line && p.message.contains(needle)),
        "no problem at {line:?} containing {needle:?} in {problems:#?}"
    );
}

#[test]
fn a_good_lab_loads() {
    let lab = load(&folder(GOOD), &options()).unwrap();
    assert_eq!(lab.slug, "demo");
    assert_eq!(lab.environment, "default");
    assert_eq!(lab.steps.len(), 1);
    let step = &lab.steps[0];
    assert_eq!(step.markdown, "# One\nDo it.\n");
    assert_eq!(step.checks.len(), 2);
    assert_eq!(step.checks[1].timeout.as_millis(), 2000);
    match &step.checks[1].kind {
        CheckKind::Command { argv, script, .. } => {
            assert_eq!(argv[0], "/bin/bash");
            assert!(script);
        }
        other => panic!("not a command: {other:?}"),
    }
    let solved = lab.solved_files();
    assert_eq!(solved.len(), 2);
}

#[test]
fn toml_syntax_errors_point_at_their_line() {
    let p = problems(&GOOD.replace("tags = [\"shell\"]", "tags = [\"shell\""));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].line.is_some_and(|l| (5..=7).contains(&l)), "{p:#?}");
}

#[test]
fn an_unknown_check_type_is_reported() {
    let p = problems(&GOOD.replace("type = \"file_exists\"", "type = \"file_exist\""));
    assert!(p[0].message.contains("file_exist"), "{p:#?}");
}

#[test]
fn a_misspelt_check_field_is_reported() {
    let p = problems(&GOOD.replace("path = \"hello.txt\"", "pathh = \"hello.txt\""));
    assert!(p.iter().any(|p| p.message.contains("pathh")), "{p:#?}");
    let p = problems(&GOOD.replace(
        "hint = \"put hi in it\"",
        "hint = \"put hi in it\"\nhint_s = 1",
    ));
    assert!(p.iter().any(|p| p.message.contains("hint_s")), "{p:#?}");
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let bad = GOOD
        .replace("text = \"steps/one.md\"", "text = \"steps/missing.md\"")
        .replace("code = \"greeting_wrong\"", "code = \"greeting_missing\"")
        .replace(
            "script = \"grep -q hi hello.txt\"",
            "script = \"x\"\nargv = [\"true\"]",
        );
    let p = problems(&bad);
    has(&p, Some(10), "no such file \"steps/missing.md\"");
    has(&p, Some(20), "used by another check");
    has(&p, Some(20), "exactly one of argv, script, script_file");
}

#[test]
fn bad_paths_regexes_and_missing_fields_are_reported() {
    let bad = GOOD
        .replace("path = \"hello.txt\"", "path = \"../etc/passwd\"")
        .replace(
            "type = \"command\"\ncode = \"greeting_wrong\"\nscript = \"grep -q hi hello.txt\"\nhint = \"put hi in it\"",
            "type = \"file_matches\"\ncode = \"greeting_wrong\"\npath = \"a\"\npattern = \"(unclosed\"",
        );
    let p = problems(&bad);
    has(&p, Some(13), "../etc/passwd");
    has(&p, Some(20), "bad regular expression");
    has(&p, Some(20), "`message` is required");
    has(&p, Some(20), "`hint` is required");
}

#[test]
fn unknown_environment_and_bad_slug_are_reported() {
    let bad = GOOD
        .replace("slug = \"demo\"", "slug = \"Demo Lab\"")
        .replace(
            "tags = [\"shell\"]",
            "tags = [\"shell\"]\nenvironment = \"gpu\"",
        );
    let p = problems(&bad);
    has(&p, Some(1), "slug \"Demo Lab\"");
    has(&p, Some(6), "environment \"gpu\"");
}

#[test]
fn missing_manifest_solution_and_step_checks_are_reported() {
    let mut f = folder(GOOD);
    f.remove("lab.toml");
    let p = load(&f, &options()).unwrap_err();
    assert_eq!(p[0].file, ".");

    let mut f = folder(GOOD);
    f.remove("solution/hello.txt");
    let p = load(&f, &options()).unwrap_err();
    assert!(p.iter().any(|p| p.file == "solution/"), "{p:#?}");

    let no_checks = GOOD.split("[[steps.checks]]").next().unwrap();
    let p = problems(no_checks);
    has(&p, Some(8), "has no checks");
}

#[test]
fn problems_print_as_file_colon_line() {
    let p = Problem {
        file: "lab.toml".into(),
        line: Some(3),
        message: "oops".into(),
    };
    assert_eq!(p.to_string(), "lab.toml:3: oops");
}

#[test]
fn every_built_in_lab_loads() {
    let (catalog, skipped) = sandpit_labs::Catalog::load(&[], &["default", "docker"]);
    let report: Vec<String> = skipped
        .iter()
        .flat_map(|s| s.problems.iter().map(move |p| format!("{}/{p}", s.source)))
        .collect();
    assert!(
        report.is_empty(),
        "built-in labs with problems:\n{}",
        report.join("\n")
    );
    for slug in ["shell-basics", "python-functions", "http-health"] {
        assert!(catalog.get(slug).is_some(), "{slug} is not built in");
    }
    assert!(
        catalog
            .iter()
            .filter(|l| l.tags.iter().any(|t| t == "docker"))
            .count()
            >= 3
    );
}

#[test]
fn setup_and_solution_scripts_are_read_and_a_script_may_replace_solution_files() {
    let manifest = GOOD.replace(
        "tags = [\"shell\"]\n",
        "tags = [\"shell\"]\nsetup = \"setup.sh\"\nsolution_script = \"solve.sh\"\n",
    );
    let mut f = folder(&manifest);
    f.remove("solution/hello.txt");
    f.insert("setup.sh".into(), b"echo seed > seed.txt\n".to_vec());
    f.insert("solve.sh".into(), b"echo hi > hello.txt\n".to_vec());
    let lab = load(&f, &options()).unwrap();
    assert_eq!(lab.setup.as_deref(), Some("echo seed > seed.txt\n"));
    assert_eq!(
        lab.solution_script.as_deref(),
        Some("echo hi > hello.txt\n")
    );
    assert!(lab.solution.is_empty());

    f.remove("solve.sh");
    let p = load(&f, &options()).unwrap_err();
    has(&p, Some(7), "solution_script: no such file \"solve.sh\"");
}
