//! Stateless code execution: the runtime registry, the request model and the executor.

pub mod job;
pub mod model;
pub mod runtimes;
pub mod service;
