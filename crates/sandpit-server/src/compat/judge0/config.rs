//! `[judge0]`: the Judge0-compatible API's own settings (its limits are the runs API's).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Judge0Config {
    /// Hosts a submission's `callback_url` may name (exact names, as in the URL). Empty: every
    /// callback is refused, so the server never calls an address a caller chose.
    pub callback_hosts: Vec<String>,
    /// Submissions in one batch.
    pub max_batch_size: usize,
    /// Largest unpacked `additional_files`, in KiB.
    pub max_extract_kb: u64,
}

impl Default for Judge0Config {
    fn default() -> Self {
        Self {
            callback_hosts: Vec::new(),
            max_batch_size: 20,
            max_extract_kb: 10240,
        }
    }
}
