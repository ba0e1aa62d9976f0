//! `sandpit lab validate|test DIR…`: what an author runs before learners see a lab.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use sandpit_labs::catalog::{built_in_folders, lab_folders};
use sandpit_labs::judge::CheckStatus;
use sandpit_labs::load::{self, LoadOptions, Problem};
use sandpit_labs::selftest::{Judged, test_lab};
use sandpit_labs::{Lab, catalog::BUILT_IN};
use sandpit_sandbox::{SandboxSpec, WorkspaceSpec};
use sandpit_server::Config;
use sandpit_server::sessions::{DEFAULT_ENVIRONMENT, sandbox_limits};

/// Loads every lab below `dirs` (and the built-in ones when asked), printing each problem as
/// `path/file:line: message`. Returns the labs that loaded and whether any problem was found.
fn load_all(dirs: &[PathBuf], built_in: bool) -> (Vec<Lab>, bool) {
    let environments = [DEFAULT_ENVIRONMENT];
    let mut folders: Vec<(String, Result<load::FolderFiles, Vec<Problem>>)> = Vec::new();
    if built_in {
        for (name, files) in built_in_folders() {
            folders.push((format!("{BUILT_IN}/{name}"), Ok(files)));
        }
    }
    let mut failed = false;
    for dir in dirs {
        match lab_folders(dir) {
            Ok(found) => {
                for folder in found {
                    let files = load::read_dir(&folder);
                    folders.push((folder.display().to_string(), files));
                }
            }
            Err(p) => {
                failed = true;
                println!("{}", located(&dir.display().to_string(), &p));
            }
        }
    }
    let mut labs = Vec::new();
    let mut slugs: HashMap<String, String> = HashMap::new();
    for (source, files) in folders {
        let loaded = files.and_then(|files| {
            load::load(
                &files,
                &LoadOptions {
                    environments: &environments,
                    source: source.clone(),
                },
            )
        });
        match loaded {
            Ok(lab) => {
                if let Some(other) = slugs.insert(lab.slug.clone(), source.clone()) {
                    failed = true;
                    println!(
                        "{source}/lab.toml: slug {:?} is also used by {other}",
                        lab.slug
                    );
                    continue;
                }
                labs.push(lab);
            }
            Err(problems) => {
                failed = true;
                for p in &problems {
                    println!("{}", located(&source, p));
                }
            }
        }
    }
    (labs, failed)
}

fn located(source: &str, p: &Problem) -> String {
    let file = if p.file == "." {
        source.to_owned()
    } else {
        Path::new(source).join(&p.file).display().to_string()
    };
    match p.line {
        Some(line) => format!("{file}:{line}: {}", p.message),
        None => format!("{file}: {}", p.message),
    }
}

pub fn validate(dirs: &[PathBuf], built_in: bool) -> anyhow::Result<()> {
    if dirs.is_empty() && !built_in {
        bail!("name lab folders to validate (or --built-in)");
    }
    let (labs, failed) = load_all(dirs, built_in);
    for lab in &labs {
        let checks: usize = lab.steps.iter().map(|s| s.checks.len()).sum();
        println!(
            "ok   {} ({}): {} steps, {checks} checks",
            lab.slug,
            lab.source,
            lab.steps.len()
        );
    }
    if failed {
        bail!("some labs have problems (listed above)");
    }
    Ok(())
}

pub async fn test(config: Config, dirs: &[PathBuf], built_in: bool) -> anyhow::Result<()> {
    if dirs.is_empty() && !built_in {
        bail!("name lab folders to test (or --built-in)");
    }
    let (labs, mut failed) = load_all(dirs, built_in);
    let sandboxes = sandpit_server::sandbox::Sandboxes::start(&config.sandbox).await;
    let backend = match sandboxes.backend() {
        Ok(b) => b.clone(),
        Err(why) => bail!("sandboxes cannot start here, so labs cannot be tested: {why}"),
    };
    for lab in &labs {
        let spec = SandboxSpec {
            workspace: WorkspaceSpec::Ephemeral,
            ..SandboxSpec::new(sandbox_limits(&config.sessions, Some(&lab.limits)))
        };
        let result = test_lab(backend.as_ref(), lab, &spec).await?;
        print_judged(lab, "starter", &result.starter);
        print_judged(lab, "solution", &result.solution);
        let problems = result.problems();
        if problems.is_empty() {
            println!(
                "ok   {}: the starter fails, the solution passes\n",
                lab.slug
            );
        } else {
            failed = true;
            for p in problems {
                println!("FAIL {}: {p}", lab.slug);
            }
            println!();
        }
    }
    if let Err(e) = backend.shutdown().await {
        tracing::warn!(error = %e, "shutting the sandbox backend down");
    }
    if failed {
        bail!("some labs failed their test (listed above)");
    }
    Ok(())
}

fn print_judged(lab: &Lab, files: &str, judged: &Judged) {
    for (step, outcome) in &judged.steps {
        let statuses: Vec<String> = outcome
            .checks
            .iter()
            .map(|c| {
                let mark = match c.status {
                    CheckStatus::Passed => "pass",
                    CheckStatus::Failed => "FAIL",
                    CheckStatus::TimedOut => "TIMEOUT",
                    CheckStatus::Skipped => "skip",
                };
                format!("{}={mark}", c.code)
            })
            .collect();
        println!(
            "     {} {files:<8} {step:<20} {:>7.1} ms  {}",
            lab.slug,
            outcome.total_ms,
            statuses.join(" ")
        );
    }
}
