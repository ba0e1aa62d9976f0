//! Rows as the rest of sandpit sees them. Validation (username rules, password strength)
//! happens at the HTTP edge; the store only enforces uniqueness and referential integrity.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user's role. Ordered: `Learner < Author < Admin`, so "requires author" admits admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Learner,
    Author,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Learner => "learner",
            Role::Author => "author",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "learner" => Ok(Role::Learner),
            "author" => Ok(Role::Author),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    /// PHC string (argon2id); `None` for accounts that only sign in through GitHub.
    pub password_hash: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExternalIdentity {
    pub id: Uuid,
    pub user_id: Uuid,
    /// e.g. `"github"`.
    pub provider: String,
    /// The provider's stable user id (GitHub's numeric id as a string), never the login name.
    pub subject: String,
    /// The provider's login name at the last sign-in.
    pub login: String,
    /// The raw profile the provider returned, kept for later features (avatar, name).
    pub profile: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewIdentity {
    pub id: Uuid,
    pub user_id: Uuid,
    pub provider: String,
    pub subject: String,
    pub login: String,
    pub profile: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// What a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// Created by sign-up / login / GitHub sign-in; carried in the cookie or as a bearer token.
    Session,
    /// A personal API token the user created and named.
    ApiToken,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Session => "session",
            CredentialKind::ApiToken => "api_token",
        }
    }
}

impl std::str::FromStr for CredentialKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "session" => Ok(CredentialKind::Session),
            "api_token" => Ok(CredentialKind::ApiToken),
            other => Err(format!("unknown credential kind {other:?}")),
        }
    }
}

/// A login session or personal API token. The secret value is never stored: only its SHA-256
/// (`token_hash`) and a short non-secret `prefix` that helps a user recognise it in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: CredentialKind,
    /// User-given name for API tokens; for sessions a description such as the user agent.
    pub name: String,
    pub prefix: String,
    pub token_hash: [u8; 32],
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewCredential {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: CredentialKind,
    pub name: String,
    pub prefix: String,
    pub token_hash: [u8; 32],
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Where a [`Session`] is in its life. A session is created live and ends once; it never
/// comes back (a new session is a new row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    Live,
    Ended,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Live => "live",
            SessionStatus::Ended => "ended",
        }
    }
}

impl std::str::FromStr for SessionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "live" => Ok(SessionStatus::Live),
            "ended" => Ok(SessionStatus::Ended),
            other => Err(format!("unknown session status {other:?}")),
        }
    }
}

/// Why a [`Session`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    /// The learner (or an admin) ended it.
    User,
    /// Its TTL ran out and the reaper ended it.
    Expired,
    /// Its sandbox failed (could not start, died).
    Failed,
    /// The server shut down, or found it live at start-up with no sandbox behind it.
    Shutdown,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::User => "user",
            EndReason::Expired => "expired",
            EndReason::Failed => "failed",
            EndReason::Shutdown => "shutdown",
        }
    }
}

impl std::str::FromStr for EndReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(EndReason::User),
            "expired" => Ok(EndReason::Expired),
            "failed" => Ok(EndReason::Failed),
            "shutdown" => Ok(EndReason::Shutdown),
            other => Err(format!("unknown end reason {other:?}")),
        }
    }
}

/// A learner's sandbox and persistent workspace, alive until `expires_at` unless extended or
/// ended earlier. `ended_at` and `end_reason` are set exactly when `status` is
/// [`SessionStatus::Ended`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The runtime environment the sandbox runs (a runtime registry name).
    pub environment: String,
    /// The lab the session was started for; `None` for a free-form playground.
    pub lab: Option<String>,
    pub status: SessionStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<EndReason>,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub environment: String,
    pub lab: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One judge run of a lab step, as the judge reported it. Attempts are history: they are
/// written once and never change.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The session whose workspace was judged; it belongs to `user_id`.
    pub session_id: Uuid,
    /// The lab's slug.
    pub lab: String,
    /// The step's id within the lab.
    pub step: String,
    pub passed: bool,
    /// A JSON array: what the judge found wrong (empty when `passed`).
    pub failures: serde_json::Value,
    /// A JSON object: what the judge measured (durations, counts).
    pub metrics: serde_json::Value,
    /// A JSON array: remarks that are neither failures nor metrics.
    pub notes: serde_json::Value,
    pub submitted_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewAttempt {
    pub id: Uuid,
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub lab: String,
    pub step: String,
    pub passed: bool,
    /// Must be a JSON array; the database refuses anything else.
    pub failures: serde_json::Value,
    /// Must be a JSON object; the database refuses anything else.
    pub metrics: serde_json::Value,
    /// Must be a JSON array; the database refuses anything else.
    pub notes: serde_json::Value,
    pub submitted_at: DateTime<Utc>,
}

/// Which of a user's attempts [`crate::Store::attempts_of`] returns. No `Default`: a zero
/// `limit` means no rows, which is never what a forgotten field should mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFilter {
    /// Only attempts at this lab.
    pub lab: Option<String>,
    /// Only attempts judged in this session.
    pub session_id: Option<Uuid>,
    /// At most this many, capped at [`crate::ATTEMPTS_LIMIT_MAX`].
    pub limit: u32,
}

/// A step a user has passed, and when it first passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepProgress {
    pub lab: String,
    pub step: String,
    pub passed_at: DateTime<Utc>,
}

/// A user's attempts at one lab, summed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabAttempts {
    pub lab: String,
    pub attempts: u64,
    /// How many of `attempts` passed (attempts, not distinct steps).
    pub passed: u64,
    pub last_submitted_at: DateTime<Utc>,
}
