//! The mapping rules on small scenarios built in memory.

use super::markdown::{page, rewrite_home};
use super::{ImportError, Imported, Mapping, Note, import};
use crate::lab::Lab;
use crate::load::{FolderFiles, LoadOptions, load};

fn scenario(index: &str, files: &[(&str, &str)]) -> FolderFiles {
    let mut f = FolderFiles::new();
    f.insert("index.json".into(), index.as_bytes().to_vec());
    for (path, text) in files {
        f.insert((*path).into(), text.as_bytes().to_vec());
    }
    f
}

fn imported(index: &str, files: &[(&str, &str)]) -> Imported {
    import(&scenario(index, files), "My Scenario").expect("the scenario imports")
}

fn text(imported: &Imported, path: &str) -> String {
    let data = imported.files.get(path).expect("the file was written");
    String::from_utf8(data.clone()).expect("UTF-8")
}

fn noted(imported: &Imported, file: &str, mapping: Mapping, needle: &str) -> Note {
    imported
        .report
        .notes
        .iter()
        .find(|n| n.file == file && n.mapping == mapping && n.message.contains(needle))
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no {mapping:?} note for {file} containing {needle:?} in {:#?}",
                imported.report.notes
            )
        })
}

/// The imported folder as the loader reads it: a valid lab.
fn loads(i: &Imported) -> Lab {
    let options = LoadOptions {
        environments: &["default"],
        source: "test".into(),
    };
    load(&i.files, &options)
        .unwrap_or_else(|p| panic!("the lab loads: {p:#?}\n{}", text(i, "lab.toml")))
}

const ONE_STEP: &str = r#"{"title": "T", "description": "D", "difficulty": "advanced",
  "details": {"steps": [{"title": "S", "text": "s.md", "verify": "v.sh"}]}}"#;

#[test]
fn exec_and_copy_markers_become_plain_code_and_exec_commands_the_solution() {
    let p = page(
        "Run `ls -la`{{exec}} and `echo hi`{{ execute interrupt }}, copy `vim x`{{copy}}.\n\n\
         ```bash\nnot run\n```\n\n```\nmkdir a\ncd a\n```{{exec}}\n",
    );
    assert_eq!(p.exec, ["ls -la", "echo hi", "mkdir a\ncd a"]);
    assert_eq!(p.actions, 4);
    assert!(!p.markdown.contains("{{"), "{}", p.markdown);
    assert!(p.markdown.contains("`vim x`"));
    assert!(p.markdown.contains("```\nmkdir a\ncd a\n```\n"));
    let p = page("Open {{TRAFFIC_HOST1_80}}");
    assert_eq!(p.placeholders, ["{{TRAFFIC_HOST1_80}}"]);
}

#[test]
fn root_and_tilde_paths_become_the_workspace_but_lookalikes_stay() {
    let (out, n) = rewrite_home("cd /root; cat ~/a \"/root/b\" ~ x=/root/c");
    assert_eq!(
        out,
        "cd /workspace; cat /workspace/a \"/workspace/b\" /workspace x=/workspace/c"
    );
    assert_eq!(n, 5);
    let same = "/mnt/root /rootfs ~user ~~strike~~ a~/b é/root";
    assert_eq!(rewrite_home(same), (same.to_owned(), 0));
}

#[test]
fn a_scenario_becomes_a_lab_the_loader_accepts() {
    let i = imported(
        r#"{"title": "Files", "description": "Make files.",
          "details": {
            "intro": {"text": "intro.md", "background": "bg.sh"},
            "steps": [
              {"title": "One", "text": "1/text.md", "verify": "1/verify.sh"},
              {"title": "Two", "text": "2/text.md", "verify": "2/verify.sh", "background": "2/bg.sh"}
            ],
            "finish": {"text": "finish.md"}
          }}"#,
        &[
            ("intro.md", "# Hello\n"),
            ("bg.sh", "touch /root/seed\n"),
            ("1/text.md", "`touch /root/a`{{exec}}\n"),
            ("1/verify.sh", "test -f /root/a\n"),
            ("2/text.md", "`cp ~/a ~/b`{{exec}}\n"),
            ("2/verify.sh", "test -f ~/b\n"),
            ("2/bg.sh", "echo two > /root/two\n"),
            ("finish.md", "# Bye\n"),
        ],
    );
    assert_eq!(i.slug, "my-scenario");
    for (file, mapping, needle) in [
        (".", Mapping::Changed, "\"my-scenario\""),
        ("index.json", Mapping::Changed, "no difficulty"),
        ("finish.md", Mapping::Changed, "appended to the last step"),
        ("bg.sh", Mapping::Changed, "setup.sh"),
        ("2/bg.sh", Mapping::Changed, "not when step2 starts"),
        ("1/verify.sh", Mapping::Changed, "1 /root or ~ path(s)"),
        (
            "1/text.md",
            Mapping::Changed,
            "1 {{exec}}/{{copy}} marker(s)",
        ),
    ] {
        noted(&i, file, mapping, needle);
    }

    let step1 = text(&i, "steps/01-step1.md");
    assert!(
        step1.starts_with("# Hello"),
        "the intro comes first: {step1}"
    );
    assert!(step1.contains("`touch /workspace/a`"));
    assert!(text(&i, "steps/02-step2.md").ends_with("# Bye\n"));
    assert_eq!(text(&i, "checks/step1-verify.sh"), "test -f /workspace/a\n");
    let setup = text(&i, "setup.sh");
    let seed = setup
        .find("touch /workspace/seed")
        .expect("intro background");
    let two = setup
        .find("echo two > /workspace/two")
        .expect("step background");
    assert!(seed < two, "in order: {setup}");
    let solution = text(&i, "solution.sh");
    let a = solution.find("touch /workspace/a").expect("step 1");
    assert!(
        solution[a..].contains("cp /workspace/a /workspace/b"),
        "{solution}"
    );

    let lab = loads(&i);
    assert_eq!(lab.title, "Files");
    assert_eq!(lab.summary, "Make files.");
    assert_eq!(lab.steps.len(), 2);
    assert_eq!(lab.steps[1].checks[0].code, "step2-verify");
    assert!(lab.setup.is_some() && lab.solution_script.is_some());
    assert!(lab.solution.is_empty());
}

#[test]
fn difficulty_words_map_to_the_three_levels() {
    for (word, level) in [
        ("beginner", "beginner"),
        ("easy", "beginner"),
        ("Intermediate", "intermediate"),
        ("advanced", "advanced"),
        ("hard", "advanced"),
        ("legendary", "beginner"),
    ] {
        let index = ONE_STEP.replace("advanced", word);
        let i = imported(&index, &[("s.md", "x"), ("v.sh", "true")]);
        assert!(
            text(&i, "lab.toml").contains(&format!("difficulty = \"{level}\"")),
            "{word}"
        );
    }
    let i = imported(
        &ONE_STEP.replace("advanced", "legendary"),
        &[("s.md", "x"), ("v.sh", "true")],
    );
    noted(&i, "index.json", Mapping::Changed, "\"legendary\"");
}

#[test]
fn what_cannot_be_mapped_is_reported_with_its_file() {
    let i = imported(
        r#"{"title": "K8s", "description": "D", "time": "5 minutes",
          "backend": {"imageid": "kubernetes-kubeadm-1node"}, "interface": {"layout": "ide"},
          "details": {
            "intro": {"text": "intro.md", "foreground": "fg.sh"},
            "steps": [{"text": "gone.md", "verify": "gone.sh", "foreground": "1/fg.sh"}],
            "assets": {"host01": [{"file": "tool", "target": "/usr/local/bin"},
                                  {"file": "run.txt", "target": "/root", "chmod": "+x"},
                                  {"file": "none*", "target": "~"}],
                       "host02": [{"file": "x", "target": "/root"}]}
          }}"#,
        &[
            ("intro.md", "hi {{TRAFFIC_HOST1_80}}"),
            ("assets/tool", "x"),
            ("assets/run.txt", "no shebang"),
        ],
    );
    for (file, mapping, needle) in [
        ("index.json", Mapping::NotMapped, "kubernetes-kubeadm-1node"),
        ("index.json", Mapping::NotMapped, "time \"5 minutes\""),
        ("index.json", Mapping::NotMapped, "interface"),
        ("index.json", Mapping::NotMapped, "details.assets.host02"),
        ("fg.sh", Mapping::NotMapped, "foreground"),
        ("1/fg.sh", Mapping::NotMapped, "foreground"),
        ("gone.md", Mapping::NotMapped, "no such file"),
        ("gone.sh", Mapping::NotMapped, "no such file"),
        ("gone.sh", Mapping::Changed, "always passes"),
        ("intro.md", Mapping::NotMapped, "{{TRAFFIC_HOST1_80}}"),
        ("assets/tool", Mapping::NotMapped, "outside /root"),
        ("assets/run.txt", Mapping::NotMapped, "chmod \"+x\""),
        ("assets/none*", Mapping::NotMapped, "no file of assets/"),
        (
            "gone.md",
            Mapping::Changed,
            "step1 has no {{exec}} commands",
        ),
    ] {
        noted(&i, file, mapping, needle);
    }
    assert!(i.files.contains_key("starter/run.txt"));
    assert!(!i.files.contains_key("starter/tool"));
    let shown = i.report.notes[0].to_string();
    assert!(shown.contains(": "), "{shown}");
    loads(&i);
}

#[test]
fn a_broken_index_is_an_error_naming_the_file_and_line() {
    let e = import(&scenario("{\n  \"title\": 3\n}", &[]), "x").expect_err("wrong type");
    assert!(matches!(e, ImportError::BadIndex { line: 2, .. }), "{e:?}");
    assert!(e.to_string().starts_with("index.json:2:"), "{e}");
    let e = import(&scenario("{\"title\": \"x\",", &[]), "x").expect_err("not JSON");
    assert!(e.to_string().starts_with("index.json:1:"), "{e}");
    let e = import(&scenario(r#"{"title": "x"}"#, &[]), "x").expect_err("no steps");
    assert!(matches!(e, ImportError::NoSteps), "{e:?}");
    let e = import(&FolderFiles::new(), "x").expect_err("no index");
    assert!(matches!(e, ImportError::NoIndex), "{e:?}");
    let mut bad = scenario("", &[]);
    bad.insert("index.json".into(), vec![0xff, 0xfe]);
    assert!(matches!(import(&bad, "x"), Err(ImportError::NotUtf8)));
}

#[test]
fn slugs_come_from_the_folder_then_the_title() {
    let files = [("s.md", "x"), ("v.sh", "true")];
    let i = import(&scenario(ONE_STEP, &files), "lab-1").expect("imports");
    assert_eq!(i.slug, "lab-1");
    assert!(i.report.notes.iter().all(|n| n.file != "."), "no slug note");
    let i = import(&scenario(ONE_STEP, &files), "___").expect("imports");
    assert_eq!(i.slug, "t");
    let long = "a".repeat(100);
    let i = import(&scenario(ONE_STEP, &files), &long).expect("imports");
    assert_eq!(i.slug.len(), 63);
}
