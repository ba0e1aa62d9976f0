//! `sandpit lab test`: the reference solution must pass every step and the starter must fail
//! at least one check, each judged in a fresh sandbox exactly as a learner's would be.

use sandpit_sandbox::{Backend, Sandbox, SandboxError, SandboxSpec};

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

/// Each step's outcome with one set of files.
#[derive(Debug)]
pub struct Judged {
    pub steps: Vec<(String, Outcome)>,
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
    let starter = judge_all(backend, lab, spec, &lab.starter).await?;
    let solution = judge_all(backend, lab, spec, &lab.solved_files()).await?;
    Ok(LabTest { starter, solution })
}

async fn judge_all(
    backend: &dyn Backend,
    lab: &Lab,
    spec: &SandboxSpec,
    files: &Files,
) -> Result<Judged, SandboxError> {
    let sandbox = backend.create(spec).await?;
    let result = async {
        write_files(sandbox.as_ref(), files).await?;
        let mut steps = Vec::new();
        for step in &lab.steps {
            steps.push((
                step.id.clone(),
                judge_step(sandbox.as_ref(), step, None).await?,
            ));
        }
        Ok(Judged { steps })
    }
    .await;
    if let Err(e) = sandbox.destroy().await {
        tracing::warn!(error = %e, "destroying a lab test's sandbox");
    }
    result
}
