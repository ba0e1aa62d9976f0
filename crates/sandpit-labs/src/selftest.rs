//! `sandpit lab test`: the reference solution must pass every step and the starter must fail
//! at least one check, each judged in a fresh sandbox exactly as a learner's would be.

use sandpit_sandbox::{Backend, ProcessLimits, ProcessSpec, Sandbox, SandboxError, SandboxSpec};

use crate::judge::{Outcome, judge_step};
use crate::lab::{Files, Lab};

/// Mode of a file written into a workspace: executable when it starts with `#!` (a lab folder
/// embedded in the binary keeps no modes).
pub fn file_mode(data: &[u8]) -> u32 {
    if data.starts_with(b"#!") {
        0o755
    } else {
        0o644
    }
}

/// Writes `files` into a sandbox's workspace.
pub async fn write_files(sandbox: &dyn Sandbox, files: &Files) -> Result<(), SandboxError> {
    for (path, data) in files {
        sandbox
            .write_file(path, data.clone(), file_mode(data))
            .await?;
    }
    Ok(())
}

/// How long a lab's setup or solution script may run.
const SCRIPT_WALL_MS: u64 = 120_000;

/// Runs a lab-level script (`setup`, `solution_script`) with bash in the workspace, as the
/// learner. `Err(why)` inside `Ok` when it ran but failed (exit status and its last output).
pub async fn run_script(
    sandbox: &dyn Sandbox,
    script: &str,
) -> Result<Result<(), String>, SandboxError> {
    let mut spec = ProcessSpec::new(["/bin/bash", "-c", script]);
    spec.limits = ProcessLimits {
        wall_ms: Some(SCRIPT_WALL_MS),
        cpu_ms: Some(SCRIPT_WALL_MS),
        ..ProcessLimits::default()
    };
    let out = match sandbox.spawn(spec).await {
        Ok(p) => p.output(b"").await?,
        Err(SandboxError::Spawn(why)) => return Ok(Err(format!("could not start: {why}"))),
        Err(e) => return Err(e),
    };
    if out.exit.code == Some(0) {
        return Ok(Ok(()));
    }
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    let output = output.trim();
    let tail: String = {
        let skip = output.chars().count().saturating_sub(400);
        output.chars().skip(skip).collect()
    };
    let how = match (out.exit.code, out.exit.signal, out.exit.limit) {
        (_, _, Some(limit)) => format!("was stopped by its {limit:?} limit"),
        (Some(code), _, _) => format!("exited with code {code}"),
        (None, Some(signal), _) => format!("was killed by signal {signal}"),
        (None, None, None) => "ended without a status".into(),
    };
    Ok(Err(if tail.is_empty() {
        how
    } else {
        format!("{how}: {tail}")
    }))
}

/// Each step's outcome with one set of files.
#[derive(Debug)]
pub struct Judged {
    pub steps: Vec<(String, Outcome)>,
    /// The lab's setup or solution script that failed, and how.
    pub script_failures: Vec<String>,
}

impl Judged {
    pub fn all_passed(&self) -> bool {
        self.steps.iter().all(|(_, o)| o.passed)
    }
}

#[derive(Debug)]
pub struct LabTest {
    pub starter: Judged,
    pub solution: Judged,
}

impl LabTest {
    /// What is wrong with the lab, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.starter.all_passed() {
            problems.push(
                "the starter passes every check: a learner would be done before starting".into(),
            );
        }
        for (files, judged) in [("starter", &self.starter), ("solution", &self.solution)] {
            for f in &judged.script_failures {
                problems.push(format!("with the {files}, {f}"));
            }
        }
        for (step, outcome) in &self.solution.steps {
            for f in &outcome.failures {
                problems.push(format!(
                    "the solution fails step {step}: {} — {}",
                    f.code, f.message
                ));
            }
        }
        problems
    }
}

/// Judges every step of `lab` on its starter, then on its solution, each in a new sandbox
/// made from `spec`.
pub async fn test_lab(
    backend: &dyn Backend,
    lab: &Lab,
    spec: &SandboxSpec,
) -> Result<LabTest, SandboxError> {
    let starter = judge_all(backend, lab, spec, false).await?;
    let solution = judge_all(backend, lab, spec, true).await?;
    Ok(LabTest { starter, solution })
}

/// A new sandbox as a learner's session gets it (starter, then setup), solved when asked
/// (`solution/` written over it, then the solution script), then every step judged.
async fn judge_all(
    backend: &dyn Backend,
    lab: &Lab,
    spec: &SandboxSpec,
    solved: bool,
) -> Result<Judged, SandboxError> {
    let sandbox = backend.create(spec).await?;
    let result = async {
        let mut script_failures = Vec::new();
        write_files(sandbox.as_ref(), &lab.starter).await?;
        if let Some(setup) = &lab.setup
            && let Err(why) = run_script(sandbox.as_ref(), setup).await?
        {
            script_failures.push(format!("the setup script {why}"));
        }
        if solved {
            write_files(sandbox.as_ref(), &lab.solution).await?;
            if let Some(script) = &lab.solution_script
                && let Err(why) = run_script(sandbox.as_ref(), script).await?
            {
                script_failures.push(format!("the solution script {why}"));
            }
        }
        let mut steps = Vec::new();
        for step in &lab.steps {
            steps.push((
                step.id.clone(),
                judge_step(sandbox.as_ref(), step, None).await?,
            ));
        }
        Ok(Judged {
            steps,
            script_failures,
        })
    }
    .await;
    if let Err(e) = sandbox.destroy().await {
        tracing::warn!(error = %e, "destroying a lab test's sandbox");
    }
    result
}
