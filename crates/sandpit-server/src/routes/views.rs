//! JSON shapes shared by several resources.

use chrono::{DateTime, Utc};
use sandpit_store::{Credential, Role, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// What a user may do: `learner` (default), `author` (writes labs), `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    Learner,
    Author,
    Admin,
}

impl From<Role> for RoleName {
    fn from(role: Role) -> Self {
        match role {
            Role::Learner => RoleName::Learner,
            Role::Author => RoleName::Author,
            Role::Admin => RoleName::Admin,
        }
    }
}

impl From<RoleName> for Role {
    fn from(role: RoleName) -> Self {
        match role {
            RoleName::Learner => Role::Learner,
            RoleName::Author => Role::Author,
            RoleName::Admin => Role::Admin,
        }
    }
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub role: RoleName,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            role: user.role.into(),
            created_at: user.created_at,
        }
    }
}

/// A personal API token without its secret value.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: Uuid,
    pub name: String,
    /// The token's first characters, to tell tokens apart.
    #[schema(example = "spt_Ab3dE9xY")]
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<Credential> for TokenView {
    fn from(c: Credential) -> Self {
        Self {
            id: c.id,
            name: c.name,
            prefix: c.prefix,
            created_at: c.created_at,
            expires_at: c.expires_at,
            last_used_at: c.last_used_at,
        }
    }
}
