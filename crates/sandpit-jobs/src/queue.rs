//! The queue as the rest of the server uses it: enqueue, cancel, and wake-ups when a job of
//! this process changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use sandpit_store::{CancelOutcome, Job, JobStore, NewJob, Result};
use tokio::sync::{Notify, broadcast, watch};
use uuid::Uuid;

/// Tells readers in this process which job just got an event.
#[derive(Clone)]
pub(crate) struct Changes(broadcast::Sender<Uuid>);

impl Changes {
    pub(crate) fn changed(&self, id: Uuid) {
        // No subscriber is fine: nobody is watching.
        let _ = self.0.send(id);
    }
}

/// Handle to the job queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    pub(crate) store: Arc<dyn JobStore>,
    /// Wakes this process's workers: a job was enqueued, or a slot freed.
    pub(crate) wake: Arc<Notify>,
    pub(crate) changes: Changes,
    /// Jobs running in this process, so a cancel stops them at once.
    pub(crate) running: Arc<Mutex<HashMap<Uuid, watch::Sender<bool>>>>,
}

impl Queue {
    pub fn new(store: Arc<dyn JobStore>) -> Self {
        Self {
            store,
            wake: Arc::new(Notify::new()),
            changes: Changes(broadcast::channel(1024).0),
            running: Arc::default(),
        }
    }

    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// Stores a job; a worker of this process picks it up at once if a slot is free.
    pub async fn enqueue(&self, new: NewJob) -> Result<Job> {
        let job = self.store.enqueue_job(new).await?;
        self.wake.notify_one();
        self.changes.changed(job.id);
        Ok(job)
    }

    /// Cancels a queued job, or stops a running one (at once when it runs here; at its next
    /// lease renewal when another process runs it). `None`: no such job.
    pub async fn cancel(&self, id: Uuid) -> Result<Option<CancelOutcome>> {
        let outcome = self.store.cancel_job(id, Utc::now()).await?;
        if outcome.is_some() {
            if let Some(stop) = self.running_job(id) {
                let _ = stop.send(true);
            }
            self.changes.changed(id);
        }
        Ok(outcome)
    }

    /// Ids of jobs that changed in this process, as they change. A lagging receiver should
    /// re-read what it follows.
    pub fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.changes.0.subscribe()
    }

    fn running_job(&self, id: Uuid) -> Option<watch::Sender<bool>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned()
    }
}
