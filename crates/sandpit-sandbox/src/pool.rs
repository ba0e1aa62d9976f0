//! A warm pool: sandboxes created ahead of time so a run does not pay for namespaces, mounts and
//! cgroups. A returned sandbox is reset (every process killed, workspace, `/tmp` and `/dev/shm`
//! replaced, new IPC namespace) before anyone else gets it; one that fails to reset is destroyed.
//!
//! When none is ready but one is being reset, [`Pool::acquire`] waits for it: a reset costs about
//! a millisecond, a new sandbox several, and creating one per busy moment would churn the pool
//! (create, use once, destroy because the pool is full again).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::backend::{Backend, Sandbox};
use crate::error::SandboxError;
use crate::spec::SandboxSpec;

pub struct Pool {
    backend: Arc<dyn Backend>,
    spec: SandboxSpec,
    target: usize,
    idle: Mutex<Vec<Box<dyn Sandbox>>>,
    wake: Arc<Notify>,
    closed: std::sync::atomic::AtomicBool,
    /// Released sandboxes still being reset, and the signal that one finished.
    returning: AtomicUsize,
    returned: Notify,
    /// Sandboxes created because none was ready or returning (a sign `target` is too small).
    created_on_demand: AtomicUsize,
}

impl Pool {
    /// Starts a pool that keeps `target` sandboxes of `spec` ready (0: no pre-creation).
    pub fn new(backend: Arc<dyn Backend>, spec: SandboxSpec, target: usize) -> Arc<Self> {
        let pool = Arc::new(Self {
            backend,
            spec,
            target,
            idle: Mutex::new(Vec::new()),
            wake: Arc::new(Notify::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
            returning: AtomicUsize::new(0),
            returned: Notify::new(),
            created_on_demand: AtomicUsize::new(0),
        });
        if target > 0 {
            let weak = Arc::downgrade(&pool);
            let wake = pool.wake.clone();
            tokio::spawn(async move {
                loop {
                    let notified = wake.notified();
                    match weak.upgrade() {
                        Some(pool) if !pool.is_closed() => pool.fill().await,
                        _ => return,
                    }
                    notified.await;
                }
            });
        }
        pool
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Box<dyn Sandbox>>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates sandboxes until `target` are idle.
    async fn fill(&self) {
        while !self.is_closed() && self.idle().len() < self.target {
            match self.backend.create(&self.spec).await {
                Ok(sandbox) => self.idle().push(sandbox),
                Err(e) => {
                    tracing::warn!(error = %e, "warm pool: creating a sandbox failed");
                    return;
                }
            }
        }
    }

    /// Number of ready sandboxes.
    pub fn ready(&self) -> usize {
        self.idle().len()
    }

    /// How many sandboxes [`acquire`](Self::acquire) had to create itself.
    pub fn created_on_demand(&self) -> usize {
        self.created_on_demand.load(Ordering::Relaxed)
    }

    /// A ready sandbox; else one that is being reset, once it is back; else a new one.
    pub async fn acquire(self: &Arc<Self>) -> Result<Lease, SandboxError> {
        let sandbox = loop {
            // Registered before looking, so a return between the look and the wait is seen.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(sandbox) = self.idle().pop() {
                break sandbox;
            }
            if self.returning.load(Ordering::SeqCst) == 0 || self.is_closed() {
                self.created_on_demand.fetch_add(1, Ordering::Relaxed);
                break self.backend.create(&self.spec).await?;
            }
            returned.await;
        };
        self.wake.notify_one();
        Ok(Lease {
            sandbox: Some(sandbox),
            pool: self.clone(),
        })
    }

    /// Destroys every idle sandbox and stops refilling.
    pub async fn shutdown(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
        let idle = std::mem::take(&mut *self.idle());
        for sandbox in idle {
            if let Err(e) = sandbox.destroy().await {
                tracing::warn!(error = %e, "warm pool: destroying a sandbox failed");
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Lets the refill task notice the pool is gone.
        self.wake.notify_one();
    }
}

/// A sandbox on loan from the pool. Give it back with [`Lease::release`]; if it is dropped
/// instead, it is destroyed.
pub struct Lease {
    sandbox: Option<Box<dyn Sandbox>>,
    pool: Arc<Pool>,
}

impl Lease {
    pub fn sandbox(&self) -> &dyn Sandbox {
        match &self.sandbox {
            Some(sandbox) => sandbox.as_ref(),
            None => unreachable!("the sandbox is only taken by release or drop"),
        }
    }

    /// Resets the sandbox and returns it to the pool (or destroys it when the pool is full,
    /// closed, or the reset fails). The pool counts it as returning from this call on, before
    /// the future is first polled, so it may be spawned.
    pub fn release(mut self) -> impl Future<Output = ()> + Send + 'static {
        let sandbox = self.sandbox.take();
        let pool = self.pool.clone();
        if sandbox.is_some() {
            pool.returning.fetch_add(1, Ordering::SeqCst);
        }
        async move {
            let Some(sandbox) = sandbox else {
                return;
            };
            let keep = !pool.is_closed() && pool.idle().len() < pool.target;
            let mut kept = false;
            if keep {
                match sandbox.reset().await {
                    Ok(()) if !pool.is_closed() => {
                        pool.idle().push(sandbox);
                        kept = true;
                    }
                    Ok(()) => destroy(sandbox).await,
                    Err(e) => {
                        tracing::warn!(sandbox = sandbox.id(), error = %e, "reset failed; destroying");
                        destroy(sandbox).await;
                    }
                }
            } else {
                destroy(sandbox).await;
            }
            pool.returning.fetch_sub(1, Ordering::SeqCst);
            pool.returned.notify_waiters();
            if !kept {
                pool.wake.notify_one();
            }
        }
    }
}

async fn destroy(sandbox: Box<dyn Sandbox>) {
    if let Err(e) = sandbox.destroy().await {
        tracing::warn!(error = %e, "destroying a released sandbox failed");
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(sandbox) = self.sandbox.take() {
            // Not released (e.g. the request was cancelled): never reuse it.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = sandbox.destroy().await;
                });
            }
            self.pool.wake.notify_one();
        }
    }
}
