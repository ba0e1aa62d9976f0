//! `sandpit lab import killercoda` as an author runs it: a scenario written here in the real
//! format becomes a lab folder that `lab validate` accepts and `lab test` passes in real
//! sandboxes (its setup from the background scripts, its solution from the exec commands).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sandpit-labs/tests/killercoda")
        .join(name)
}

fn sandpit(dir: &TempDir, args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sandpit"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SANDPIT_DATA_DIR", dir.path().join("data"))
        .current_dir(dir.path())
        .args(args)
        .args(paths)
        .output()
        .expect("sandpit runs")
}

fn shown(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_scenario_imports_validates_and_passes_its_test() {
    let dir = TempDir::new().expect("a temp dir");
    let lab = dir.path().join("lab");
    let out = sandpit(
        &dir,
        &["lab", "import", "killercoda"],
        &[&scenario("linux-logs"), Path::new("--out"), &lab],
    );
    let report = shown(&out);
    assert!(out.status.success(), "{report}");
    for line in [
        "imported ",
        "as lab \"linux-logs\"",
        "changed    step1/verify.sh: 3 /root or ~ path(s) rewritten to /workspace",
        "changed    step1/text.md: 3 {{exec}}/{{copy}} marker(s) removed",
        "changed    step2/background.sh: appended to the lab's setup.sh: runs at session start, not when step2 starts",
        "changed    finish.md: the finish text is appended to the last step (step2)",
        "not mapped index.json: time \"10 minutes\"",
        "ok   linux-logs",
    ] {
        assert!(report.contains(line), "no {line:?} in\n{report}");
    }
    assert!(lab.join("lab.toml").is_file());
    assert!(lab.join("starter/count.sh").is_file());
    assert!(lab.join("starter/notes/README.md").is_file());

    let out = sandpit(&dir, &["lab", "validate"], &[&lab]);
    assert!(out.status.success(), "{}", shown(&out));

    let out = sandpit(&dir, &["lab", "test"], &[&lab]);
    let report = shown(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("ok   linux-logs: the starter fails, the solution passes"),
        "{report}"
    );

    // A setup that fails (a background script needing root, say) fails the lab's test, saying
    // how: the learner would get a workspace without its files.
    std::fs::write(lab.join("setup.sh"), "echo needs root >&2\nexit 3\n").expect("edit setup.sh");
    let out = sandpit(&dir, &["lab", "test"], &[&lab]);
    let report = shown(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains(
            "FAIL linux-logs: with the solution, the setup script exited with code 3: needs root"
        ),
        "{report}"
    );

    // Never over an author's folder.
    let out = sandpit(
        &dir,
        &["lab", "import", "killercoda"],
        &[&scenario("linux-logs"), Path::new("--out"), &lab],
    );
    assert!(!out.status.success());
    assert!(shown(&out).contains("is not empty"), "{}", shown(&out));
}

#[test]
fn a_broken_index_is_a_clear_error_and_the_default_folder_is_the_slug() {
    let dir = TempDir::new().expect("a temp dir");
    let out = sandpit(
        &dir,
        &["lab", "import", "killercoda"],
        &[&scenario("broken-index")],
    );
    assert!(!out.status.success());
    let report = shown(&out);
    assert!(
        report.contains("cannot import") && report.contains("index.json:4:"),
        "{report}"
    );
    assert!(!report.contains("panicked"), "{report}");

    let out = sandpit(
        &dir,
        &["lab", "import", "killercoda"],
        &[&scenario("kubernetes-pods")],
    );
    let report = shown(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("not mapped index.json: backend.imageid \"kubernetes-kubeadm-2nodes\""),
        "{report}"
    );
    assert!(dir.path().join("kubernetes-pods/lab.toml").is_file());
}
