//! `[cluster]`: how this server process appears to the other replicas sharing its database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The URL other replicas reach this one's API at (`http://host:port`, no path). Empty:
    /// `http://` and the bound address, `127.0.0.1` for an unspecified one — right for
    /// replicas on one host; set it (e.g. to the pod's IP) when they run on several.
    pub advertise_url: String,
    /// How often this replica says it is alive.
    pub heartbeat_ms: u64,
    /// A replica silent this long is gone: its sessions are suspended and the next replica
    /// that serves one starts its sandbox again.
    pub dead_after_ms: u64,
    /// Where session workspaces are kept. Empty: `data_dir/workspaces`. Replicas that should
    /// take over each other's sessions after a failure point this at storage they share.
    pub workspaces_dir: PathBuf,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            advertise_url: String::new(),
            heartbeat_ms: 2000,
            dead_after_ms: 10_000,
            workspaces_dir: PathBuf::new(),
        }
    }
}

impl ClusterConfig {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    pub fn dead_after(&self) -> Duration {
        Duration::from_millis(self.dead_after_ms)
    }

    /// The advertised URL, defaulted from the bound address.
    pub fn advertise_url(&self, bound: SocketAddr) -> String {
        if !self.advertise_url.is_empty() {
            return self.advertise_url.trim_end_matches('/').to_owned();
        }
        let ip = if bound.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            bound.ip()
        };
        format!("http://{}", SocketAddr::new(ip, bound.port()))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        if !self.advertise_url.is_empty() {
            let url = url::Url::parse(&self.advertise_url)
                .map_err(|e| invalid("cluster.advertise_url", &e.to_string()))?;
            if url.scheme() != "http" || url.host().is_none() || url.path().len() > 1 {
                return Err(invalid(
                    "cluster.advertise_url",
                    "must be http://host[:port] without a path (replicas talk inside the cluster)",
                ));
            }
        }
        if self.heartbeat_ms < 100 {
            return Err(invalid("cluster.heartbeat_ms", "must be at least 100"));
        }
        if self.dead_after_ms < 3 * self.heartbeat_ms {
            return Err(invalid(
                "cluster.dead_after_ms",
                "must be at least three heartbeats (a replica must miss several before it is gone)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_url_defaults_to_the_bound_address() {
        let c = ClusterConfig::default();
        assert_eq!(
            c.advertise_url("0.0.0.0:8080".parse().unwrap_or_else(|_| unreachable!())),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            c.advertise_url("10.1.2.3:9000".parse().unwrap_or_else(|_| unreachable!())),
            "http://10.1.2.3:9000"
        );
        let set = ClusterConfig {
            advertise_url: "http://10.0.0.7:8080/".into(),
            ..c
        };
        assert_eq!(
            set.advertise_url("0.0.0.0:1".parse().unwrap_or_else(|_| unreachable!())),
            "http://10.0.0.7:8080"
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        for (url, hb, dead) in [
            ("https://a:1", 2000, 10_000),
            ("http://a:1/x", 2000, 10_000),
            ("not a url", 2000, 10_000),
            ("", 50, 10_000),
            ("", 2000, 5000),
        ] {
            let c = ClusterConfig {
                advertise_url: url.into(),
                heartbeat_ms: hb,
                dead_after_ms: dead,
                ..ClusterConfig::default()
            };
            assert!(c.validate().is_err(), "{url} {hb} {dead}");
        }
        assert!(ClusterConfig::default().validate().is_ok());
    }
}
