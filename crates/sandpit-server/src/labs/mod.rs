//! Labs for learners: the catalog with each caller's progress, starting (or resuming) a lab's
//! session, judging a step in it (attempts and progress go to the store), and hints.

pub mod hints;
pub mod model;

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sandpit_labs::judge::{JudgeEvent, Outcome, judge_step};
use sandpit_labs::{Catalog, Lab, Step};
use sandpit_sandbox::SandboxError;
use sandpit_store::{Attempt, AttemptFilter, NewAttempt, Session, Store};
use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

use crate::error::ApiError;
use crate::llm::Llm;
use crate::sessions::{Sessions, sandbox_error};
use model::*;

pub struct Labs {
    catalog: Arc<Catalog>,
    store: Arc<dyn Store>,
    sessions: Arc<Sessions>,
    llm: Arc<Llm>,
    /// One start at a time per user, so two clicks make one session.
    starting: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    /// Sessions being judged (one judge at a time per session).
    judging: Mutex<HashSet<Uuid>>,
    hint_limiter: DefaultKeyedRateLimiter<Uuid>,
    clock: DefaultClock,
    /// How far down the hint ladder each session + step has been, and when it was last used
    /// (entries idle longer than a session can live are pruned).
    hint_levels: Mutex<HashMap<(Uuid, String), (usize, Instant)>>,
    /// The longest a session can live: ladder positions idle for longer are forgotten.
    max_idle: Duration,
}

/// A live lab session, its lab and one of its steps.
pub struct LabStep {
    pub session: Session,
    pub lab: Arc<Lab>,
    pub step: Step,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn no_lab() -> ApiError {
    ApiError::NotFound("no such lab".into())
}

/// Frees a session's judge slot however the judge ends (also when its task is dropped).
struct JudgeSlot<'a> {
    labs: &'a Labs,
    session: Uuid,
}

impl Drop for JudgeSlot<'_> {
    fn drop(&mut self) {
        lock(&self.labs.judging).remove(&self.session);
    }
}

impl Labs {
    pub fn new(
        catalog: Arc<Catalog>,
        store: Arc<dyn Store>,
        sessions: Arc<Sessions>,
        llm: Arc<Llm>,
        hints_per_minute: u32,
        max_ttl: Duration,
    ) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(hints_per_minute).unwrap_or(NonZeroU32::MIN));
        Self {
            catalog,
            store,
            sessions,
            llm,
            starting: Mutex::new(HashMap::new()),
            judging: Mutex::new(HashSet::new()),
            hint_limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            hint_levels: Mutex::new(HashMap::new()),
            max_idle: max_ttl,
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn lab(&self, slug: &str) -> Result<&Arc<Lab>, ApiError> {
        self.catalog.get(slug).ok_or_else(no_lab)
    }

    /// Every lab with the caller's progress.
    pub async fn list(&self, user_id: Uuid) -> Result<Vec<LabSummary>, ApiError> {
        let progress = self.progress_map(user_id).await?;
        Ok(self
            .catalog
            .iter()
            .map(|lab| LabSummary {
                info: info(lab, progress.get(&lab.slug).cloned()),
                steps: lab.steps.len(),
            })
            .collect())
    }

    pub async fn view(&self, user_id: Uuid, slug: &str) -> Result<LabView, ApiError> {
        let lab = self.lab(slug)?.clone();
        let progress = self.progress_map(user_id).await?.remove(&lab.slug);
        let info = info(&lab, progress);
        let passed: HashSet<&str> = info
            .progress
            .steps_passed
            .iter()
            .map(String::as_str)
            .collect();
        let steps = lab
            .steps
            .iter()
            .map(|s| StepView {
                id: s.id.clone(),
                title: s.title.clone(),
                markdown: s.markdown.clone(),
                checks: s.checks.len(),
                hints: s.hints.len(),
                passed: passed.contains(s.id.as_str()),
            })
            .collect();
        let active_session = self
            .active(user_id, &lab.slug)
            .await?
            .map(|s| self.sessions.view(&s));
        Ok(LabView {
            info,
            ttl_minutes: lab.ttl_minutes,
            steps,
            active_session,
        })
    }

    /// The caller's live session of a lab, if any (the newest).
    pub async fn active(&self, user_id: Uuid, slug: &str) -> Result<Option<Session>, ApiError> {
        let sessions = self
            .store
            .sessions_of(user_id, false)
            .await
            .map_err(ApiError::internal)?;
        let now = Utc::now();
        Ok(sessions
            .into_iter()
            .filter(|s| s.lab.as_deref() == Some(slug) && s.expires_at > now)
            .max_by_key(|s| s.created_at))
    }

    /// The caller's live session of the lab, or a new one with its starter files.
    pub async fn start(&self, user_id: Uuid, slug: &str) -> Result<StartedLab, ApiError> {
        let lab = self.lab(slug)?.clone();
        let gate = lock(&self.starting).entry(user_id).or_default().clone();
        let _one_at_a_time = gate.lock().await;
        let result = match self.active(user_id, slug).await? {
            Some(session) => Ok(StartedLab {
                session: self.sessions.view(&session),
                created: false,
            }),
            None => self
                .sessions
                .create_for_lab(user_id, &lab)
                .await
                .map(|session| StartedLab {
                    session,
                    created: true,
                }),
        };
        drop(_one_at_a_time);
        // Forget the gate unless another start is waiting on it.
        let mut starting = lock(&self.starting);
        if starting
            .get(&user_id)
            .is_some_and(|g| Arc::strong_count(g) == 1)
        {
            starting.remove(&user_id);
        }
        result
    }

    /// A caller's live lab session, its lab, and the step asked for (or the first one the
    /// caller has not passed): what a judge or a hint is about.
    pub async fn session_step(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        step: Option<&str>,
    ) -> Result<LabStep, ApiError> {
        let session = self.sessions.get_live(user_id, session_id).await?;
        let Some(lab) = session
            .lab
            .as_deref()
            .and_then(|s| self.catalog.get(s))
            .cloned()
        else {
            return Err(ApiError::Refused {
                code: "not_a_lab_session",
                message: "this session was not started for a lab (or its lab is no longer offered)"
                    .into(),
            });
        };
        let step = match step {
            Some(id) => lab.step(id).cloned().ok_or_else(|| ApiError::Validation {
                field: "step",
                message: format!(
                    "no step {id:?} in this lab; its steps are {}",
                    lab.steps
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?,
            None => {
                let passed: HashSet<String> = self
                    .store
                    .progress_of(user_id)
                    .await
                    .map_err(ApiError::internal)?
                    .into_iter()
                    .filter(|p| p.lab == lab.slug)
                    .map(|p| p.step)
                    .collect();
                lab.steps
                    .iter()
                    .find(|s| !passed.contains(&s.id))
                    .or(lab.steps.last())
                    .cloned()
                    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("lab without steps")))?
            }
        };
        Ok(LabStep { session, lab, step })
    }

    /// Judges a step of a caller's lab session (from [`Labs::session_step`]) and records the
    /// attempt. Progress events go to `events` while it runs. Only one judge runs per session
    /// at a time (else 409).
    pub async fn judge(
        &self,
        user_id: Uuid,
        target: LabStep,
        events: Option<&UnboundedSender<JudgeEvent>>,
    ) -> Result<AttemptView, ApiError> {
        let LabStep { session, lab, step } = target;
        if !lock(&self.judging).insert(session.id) {
            return Err(ApiError::Refused {
                code: "judge_busy",
                message: "this session is already being judged; wait for that result".into(),
            });
        }
        let _slot = JudgeSlot {
            labs: self,
            session: session.id,
        };
        let sandbox = self.sessions.sandbox_of_session(&session).await?;
        let submitted_at = Utc::now();
        let outcome = match judge_step(sandbox.as_ref(), &step, events).await {
            Ok(o) => o,
            // The sandbox went away mid-judge: the session ended, or its sandbox died (it
            // starts again on the next request).
            Err(SandboxError::Lost) => {
                self.sessions.get_live(user_id, session.id).await?;
                return Err(ApiError::Unavailable {
                    code: "sandbox_lost",
                    message: "the session's sandbox stopped while it was being judged; check again"
                        .into(),
                    retry_after: None,
                });
            }
            Err(e) => return Err(sandbox_error(e)),
        };
        tracing::info!(
            session.id = %session.id, lab = %lab.slug, step = %step.id,
            passed = outcome.passed, failures = outcome.failures.len(),
            duration_ms = outcome.total_ms, "step judged"
        );
        let attempt = self
            .store
            .create_attempt(new_attempt(
                user_id,
                &session,
                &lab,
                &step,
                &outcome,
                submitted_at,
            ))
            .await
            .map_err(ApiError::internal)?;
        Ok(attempt_view(&attempt))
    }

    pub async fn attempts(
        &self,
        user_id: Uuid,
        query: AttemptQuery,
    ) -> Result<Vec<AttemptView>, ApiError> {
        let limit = query.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::Validation {
                field: "limit",
                message: "must be between 1 and 500".into(),
            });
        }
        let attempts = self
            .store
            .attempts_of(
                user_id,
                AttemptFilter {
                    lab: query.lab,
                    session_id: query.session,
                    limit,
                },
            )
            .await
            .map_err(ApiError::internal)?;
        Ok(attempts.iter().map(attempt_view).collect())
    }

    pub async fn attempt(&self, user_id: Uuid, id: Uuid) -> Result<AttemptView, ApiError> {
        match self.store.attempt(id).await.map_err(ApiError::internal)? {
            Some(a) if a.user_id == user_id => Ok(attempt_view(&a)),
            _ => Err(ApiError::NotFound("no such attempt".into())),
        }
    }

    /// The caller's progress in every lab they have attempted (labs no longer offered are
    /// left out).
    pub async fn progress(&self, user_id: Uuid) -> Result<Vec<LabProgressView>, ApiError> {
        let map = self.progress_map(user_id).await?;
        Ok(self
            .catalog
            .iter()
            .filter_map(|lab| map.get(&lab.slug).cloned())
            .collect())
    }

    async fn progress_map(
        &self,
        user_id: Uuid,
    ) -> Result<HashMap<String, LabProgressView>, ApiError> {
        let (passed, counts) = tokio::try_join!(
            self.store.progress_of(user_id),
            self.store.attempt_counts(user_id)
        )
        .map_err(ApiError::internal)?;
        let mut passed_at: HashMap<(String, String), DateTime<Utc>> = HashMap::new();
        for p in passed {
            passed_at.insert((p.lab, p.step), p.passed_at);
        }
        let mut out = HashMap::new();
        for c in counts {
            let Some(lab) = self.catalog.get(&c.lab) else {
                continue;
            };
            let mut view = empty_progress(lab);
            view.attempts = c.attempts;
            view.last_attempt_at = Some(c.last_submitted_at);
            let mut last = None;
            for step in &lab.steps {
                if let Some(at) = passed_at.get(&(lab.slug.clone(), step.id.clone())) {
                    view.steps_passed.push(step.id.clone());
                    last = last.max(Some(*at));
                }
            }
            view.completed = view.steps_passed.len() == lab.steps.len();
            view.completed_at = if view.completed { last } else { None };
            out.insert(c.lab, view);
        }
        Ok(out)
    }

    /// Counts a hint or explain request against the session's budget.
    fn spend_hint(&self, session_id: Uuid) -> Result<(), ApiError> {
        self.hint_limiter
            .check_key(&session_id)
            .map_err(|not_until| ApiError::RateLimited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            })
    }

    /// The last attempt at a step in a session, for its failures.
    async fn last_attempt(
        &self,
        user_id: Uuid,
        session: &Session,
        step: &str,
    ) -> Result<Option<Attempt>, ApiError> {
        let attempts = self
            .store
            .attempts_of(
                user_id,
                AttemptFilter {
                    lab: session.lab.clone(),
                    session_id: Some(session.id),
                    limit: 50,
                },
            )
            .await
            .map_err(ApiError::internal)?;
        Ok(attempts.into_iter().find(|a| a.step == step))
    }

    /// Forgets buckets that are full again, and ladder positions of sessions long gone.
    pub fn prune(&self) {
        self.hint_limiter.retain_recent();
        self.hint_limiter.shrink_to_fit();
        let max_idle = self.max_idle;
        lock(&self.hint_levels).retain(|_, (_, used)| used.elapsed() <= max_idle);
    }
}

fn empty_progress(lab: &Lab) -> LabProgressView {
    LabProgressView {
        lab: lab.slug.clone(),
        title: lab.title.clone(),
        steps_passed: Vec::new(),
        steps_total: lab.steps.len(),
        completed: false,
        completed_at: None,
        attempts: 0,
        last_attempt_at: None,
    }
}

fn info(lab: &Lab, progress: Option<LabProgressView>) -> LabInfo {
    LabInfo {
        slug: lab.slug.clone(),
        title: lab.title.clone(),
        summary: lab.summary.clone(),
        difficulty: lab.difficulty.as_str(),
        tags: lab.tags.clone(),
        environment: lab.environment.clone(),
        progress: progress.unwrap_or_else(|| empty_progress(lab)),
    }
}

fn new_attempt(
    user_id: Uuid,
    session: &Session,
    lab: &Lab,
    step: &Step,
    outcome: &Outcome,
    submitted_at: DateTime<Utc>,
) -> NewAttempt {
    let failures: Vec<FailureView> = outcome
        .failures
        .iter()
        .map(|f| FailureView {
            code: f.code.clone(),
            message: f.message.clone(),
            hint: f.hint.clone(),
        })
        .collect();
    NewAttempt {
        id: Uuid::now_v7(),
        user_id,
        session_id: session.id,
        lab: lab.slug.clone(),
        step: step.id.clone(),
        passed: outcome.passed,
        failures: serde_json::to_value(failures).unwrap_or_default(),
        metrics: serde_json::json!({
            "total_ms": outcome.total_ms,
            "program_ms": outcome.program_ms,
            "overhead_ms": outcome.overhead_ms,
            "checks": outcome.checks,
        }),
        notes: serde_json::to_value(&outcome.notes).unwrap_or_default(),
        submitted_at,
    }
}

fn attempt_view(a: &Attempt) -> AttemptView {
    AttemptView {
        id: a.id,
        lab: a.lab.clone(),
        step: a.step.clone(),
        session_id: a.session_id,
        passed: a.passed,
        failures: serde_json::from_value(a.failures.clone()).unwrap_or_default(),
        metrics: a.metrics.clone(),
        notes: serde_json::from_value(a.notes.clone()).unwrap_or_default(),
        submitted_at: a.submitted_at,
    }
}
