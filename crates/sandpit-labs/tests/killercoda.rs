//! Killercoda scenarios written here in the real format (tests/killercoda/): imported into
//! labs the loader accepts, and served from `labs.dirs` like lab folders.

use std::path::{Path, PathBuf};

use sandpit_labs::Catalog;
use sandpit_labs::killercoda::{self, Mapping};
use sandpit_labs::load::{LoadOptions, load, read_dir};

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/killercoda")
}

fn imported(name: &str) -> killercoda::Imported {
    let files = read_dir(&scenarios().join(name)).expect("the scenario folder reads");
    killercoda::import(&files, name).expect("the scenario imports")
}

#[test]
fn the_kubernetes_scenario_imports_and_says_what_it_could_not_map() {
    let i = imported("kubernetes-pods");
    for (file, mapping, needle) in [
        (
            "index.json",
            Mapping::NotMapped,
            "kubernetes-kubeadm-2nodes",
        ),
        (
            "index.json",
            Mapping::NotMapped,
            "checks that need that environment will fail",
        ),
        ("index.json", Mapping::Changed, "description is empty"),
        ("intro-foreground.sh", Mapping::NotMapped, "foreground"),
        ("step1/foreground.sh", Mapping::NotMapped, "foreground"),
        ("step2/text.md", Mapping::NotMapped, "no such file"),
        ("step2/verify.sh", Mapping::NotMapped, "no such file"),
        ("index.json", Mapping::Changed, "step3 has no verify script"),
        ("finish.md", Mapping::NotMapped, "no such file"),
        ("intro.md", Mapping::NotMapped, "{{TRAFFIC_HOST1_30080}}"),
        (
            "assets/kubectl-aliases",
            Mapping::NotMapped,
            "outside /root",
        ),
        ("index.json", Mapping::NotMapped, "details.assets.host02"),
        ("step3/text.md", Mapping::Changed, "no {{exec}} commands"),
    ] {
        assert!(
            i.report
                .notes
                .iter()
                .any(|n| n.file == file && n.mapping == mapping && n.message.contains(needle)),
            "no {mapping:?} note for {file} with {needle:?}: {:#?}",
            i.report.notes
        );
    }

    let lab = load(
        &i.files,
        &LoadOptions {
            environments: &["default"],
            source: "kubernetes-pods".into(),
        },
    )
    .unwrap_or_else(|p| panic!("a valid lab all the same: {p:#?}"));
    assert_eq!(lab.steps.len(), 3);
    assert_eq!(lab.difficulty.as_str(), "advanced");
}

#[test]
fn labs_dirs_may_name_scenario_folders() {
    // The folder of scenarios, as a folder of labs: each scenario is converted and served;
    // the broken one is skipped with a clear problem, never a panic.
    let (catalog, skipped) = Catalog::load_from(false, &[scenarios()], &["default"]);
    let logs = catalog
        .get("linux-logs")
        .expect("the shell scenario is served");
    assert_eq!(logs.title, "Linux logs: keep the errors, archive the rest");
    assert_eq!(logs.steps.len(), 2);
    assert!(
        logs.setup
            .as_deref()
            .is_some_and(|s| s.contains("/workspace/logs"))
    );
    assert!(
        logs.starter.keys().any(|p| p.as_str() == "count.sh"),
        "assets for /root are starter files"
    );
    assert!(catalog.get("kubernetes-pods").is_some());
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert!(skipped[0].source.ends_with("broken-index"));
    let problem = skipped[0].problems[0].to_string();
    assert!(
        problem.starts_with("index.json: index.json:4:"),
        "{problem}"
    );
    assert!(problem.contains("expected `,`"), "{problem}");

    // A scenario folder named on its own is one lab.
    let (catalog, skipped) =
        Catalog::load_from(false, &[scenarios().join("linux-logs")], &["default"]);
    assert!(skipped.is_empty(), "{skipped:#?}");
    assert_eq!(catalog.len(), 1);
}
