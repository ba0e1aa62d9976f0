//! sandpit's durable job queue (no HTTP): a [`Queue`] in front of the store's [`JobStore`],
//! and [`Workers`] that lease jobs from it and run them with [`Handler`]s.
//!
//! - **Durable**: jobs live in the store (SQLite or PostgreSQL), so they survive a restart and
//!   any server process sharing the store can take them or answer for them.
//! - **Leased**: a worker holds a job by a lease it renews while the job runs
//!   ([`Config::lease`]); a job whose worker died is reclaimed when its lease expires and runs
//!   again. A worker that lost its lease (it stalled past it) is stopped and records nothing,
//!   so a result is never recorded twice.
//! - **Retried**: a retryable failure (a timeout, a provider that did not answer) is queued
//!   again with exponential backoff and jitter ([`backoff`]) until `max_attempts`.
//! - **Cancellable**: cancelling a queued job ends it; a running one is stopped — at once in
//!   the process that runs it, at the next lease renewal in any other.
//! - **Observable**: each change is an event in the store; [`Queue::subscribe`] wakes readers
//!   in this process as soon as one is written (others poll).
//!
//! Written here, not taken from a crate: the candidates (apalis, sqlxmq, fang) either serve
//! one engine, bring their own schema and runtime, or do not report progress and events; the
//! queue itself is the store's dozen statements plus this loop.

pub mod backoff;
mod handler;
mod queue;
mod workers;

pub use handler::{Failure, Handler, JobContext};
pub use queue::Queue;
pub use workers::{Config, Workers};
