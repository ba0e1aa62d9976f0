//! Creating accounts, shared by sign-up, GitHub sign-in and `sandpit user create`.

use chrono::Utc;
use sandpit_store::{NewUser, Role, Store, StoreError, User};
use secrecy::SecretString;
use uuid::Uuid;

use crate::auth::password;
use crate::domain::{Email, Password, Username};
use crate::error::{ApiError, ApiResult};

/// Inserts a user, turning a taken username into 409.
pub async fn insert_user(
    store: &dyn Store,
    username: Username,
    email: Option<Email>,
    password_hash: Option<String>,
    role: Role,
) -> ApiResult<User> {
    store
        .create_user(NewUser {
            id: Uuid::now_v7(),
            username: username.into_inner(),
            email: email.map(Email::into_inner),
            password_hash,
            role,
            created_at: Utc::now(),
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::Conflict("username is taken".into()),
            other => other.into(),
        })
}

/// Validates raw input, hashes the password, and inserts a user with a password.
pub async fn register(
    store: &dyn Store,
    username: &str,
    email: Option<&str>,
    password: SecretString,
    role: Role,
) -> ApiResult<User> {
    let username = Username::parse(username)?;
    let password = Password::parse(password)?;
    let email = email
        .filter(|e| !e.trim().is_empty())
        .map(Email::parse)
        .transpose()?;
    let hash = password::hash(password.expose().to_owned()).await?;
    insert_user(store, username, email, Some(hash), role).await
}
