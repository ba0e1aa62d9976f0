//! `sandpit lab validate|test DIR…`: what an author runs before learners see a lab.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use sandpit_labs::judge::CheckStatus;
use sandpit_labs::killercoda;
use sandpit_labs::selftest::{Judged, test_lab};
use sandpit_labs::{Catalog, Lab, Problem};
use sandpit_sandbox::{SandboxSpec, WorkspaceSpec};
use sandpit_server::Config;
use sandpit_server::docker::{Docker, DockerSettings, ENVIRONMENT as DOCKER, Status};
use sandpit_server::sessions::{ENVIRONMENTS, sandbox_limits};

/// Loads every lab below `dirs` (and the built-in ones when asked) as the server would,
/// printing each problem as `path/file:line: message`. Returns the labs that loaded and whether
/// any problem was found.
fn load_all(dirs: &[PathBuf], built_in: bool) -> (Vec<Arc<Lab>>, bool) {
    let (catalog, skipped) = Catalog::load_from(built_in, dirs, ENVIRONMENTS);
    for lab in &skipped {
        for p in &lab.problems {
            println!("{}", located(&lab.source, p));
        }
    }
    (catalog.iter().cloned().collect(), !skipped.is_empty())
}

/// A problem with its file given from the lab's source (`built-in/x/lab.toml:3: …`).
fn located(source: &str, p: &Problem) -> String {
    let file = if p.file == "." {
        source.to_owned()
    } else {
        Path::new(source).join(&p.file).display().to_string()
    };
    Problem { file, ..p.clone() }.to_string()
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

/// `sandpit lab import killercoda DIR`: the scenario as a lab folder in `out` (default
/// `./<slug>`), what could not be mapped, then the folder validated as `lab validate` does.
pub fn import_killercoda(dir: &Path, out: Option<&Path>) -> anyhow::Result<()> {
    let files = sandpit_labs::load::read_dir(dir).map_err(|problems| {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| located(&dir.display().to_string(), p))
            .collect();
        anyhow::anyhow!("cannot read the scenario:\n{}", lines.join("\n"))
    })?;
    let name = std::fs::canonicalize(dir)
        .with_context(|| format!("cannot find the scenario folder {}", dir.display()))?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let imported = killercoda::import(&files, &name)
        .with_context(|| format!("cannot import {} as a Killercoda scenario", dir.display()))?;
    let out = out.map_or_else(|| PathBuf::from(&imported.slug), Path::to_path_buf);
    if std::fs::read_dir(&out).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(
            "{} is not empty: name another folder with --out",
            out.display()
        );
    }
    for (rel, data) in &imported.files {
        let path = out.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot make {}", parent.display()))?;
        }
        std::fs::write(&path, data).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "imported {} as lab {:?} into {}: {} file(s), {} note(s)",
        dir.display(),
        imported.slug,
        out.display(),
        imported.files.len(),
        imported.report.notes.len()
    );
    for note in &imported.report.notes {
        println!("  {note}");
    }
    println!();
    validate(&[out], false)
}

pub async fn test(config: Config, dirs: &[PathBuf], built_in: bool) -> anyhow::Result<()> {
    if dirs.is_empty() && !built_in {
        bail!("name lab folders to test (or --built-in)");
    }
    let (labs, mut failed) = load_all(dirs, built_in);
    let sandboxes = sandpit_server::sandbox::Sandboxes::start(
        &config.sandbox,
        sandpit_server::sandbox::KubeSettings {
            table: &config.kubernetes,
            // A process of its own: its pods are its own, and it leaves nobody else's.
            instance_id: format!("lab-test-{}", std::process::id()),
            live_owners: None,
            live_workspaces: Vec::new(),
            warm_spec: sandpit_sandbox::SandboxSpec::new(sandpit_sandbox::SandboxLimits::default()),
        },
    )
    .await;
    let backend = match sandboxes.backend() {
        Ok(b) => b.clone(),
        Err(why) => bail!("sandboxes cannot start here, so labs cannot be tested: {why}"),
    };
    let docker = Docker::new(DockerSettings::from_config(
        &config.docker,
        &config.data_dir,
    ));
    if labs.iter().any(|l| l.environment == DOCKER) {
        docker.check(&sandboxes).await;
    }
    for lab in &labs {
        let mut spec = SandboxSpec {
            workspace: WorkspaceSpec::Ephemeral,
            ..SandboxSpec::new(sandbox_limits(&config.sessions, Some(&lab.limits)))
        };
        if lab.environment == DOCKER {
            // Judged as learners are: with the engine, never with its checks skipped.
            if let Status::Unavailable(why) = docker.status() {
                failed = true;
                println!(
                    "FAIL {}: the docker environment is unavailable: {why}\n",
                    lab.slug
                );
                continue;
            }
            spec = docker.spec(spec);
        }
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
