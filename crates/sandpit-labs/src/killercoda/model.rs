//! `index.json` of a Killercoda scenario, as its authors write it. Only what the import
//! reads; unknown fields are kept out of the way (`interface`, `backend` extras …).

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Index {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub difficulty: Option<String>,
    pub time: Option<String>,
    #[serde(default)]
    pub details: Details,
    pub backend: Option<Backend>,
    pub interface: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Details {
    pub intro: Option<Page>,
    #[serde(default)]
    pub steps: Vec<Page>,
    pub finish: Option<Page>,
    /// Files of `assets/` copied onto a host: host name → what goes where.
    #[serde(default)]
    pub assets: std::collections::BTreeMap<String, Vec<Asset>>,
}

/// The intro, a step or the finish: its text and scripts, paths relative to the scenario.
#[derive(Debug, Default, Deserialize)]
pub struct Page {
    pub title: Option<String>,
    pub text: Option<String>,
    pub verify: Option<String>,
    pub background: Option<String>,
    pub foreground: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Asset {
    /// A path under `assets/`, or a pattern with `*`.
    pub file: String,
    /// A directory on the host.
    pub target: String,
    pub chmod: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Backend {
    #[serde(default)]
    pub imageid: String,
}
