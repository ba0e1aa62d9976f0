//! Password hashing with argon2id, always off the async runtime (each hash takes tens of
//! milliseconds of CPU on purpose).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};

use crate::error::ApiError;

/// Hashes a password into a PHC string (`$argon2id$v=19$…`) with the crate's recommended
/// parameters (OWASP's minimum: m = 19 MiB, t = 2, p = 1).
pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(anyhow::anyhow!("argon2 hash: {e}")))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Checks a password against a stored PHC string. A malformed stored hash counts as a mismatch
/// (and is logged), so it can never let someone in.
pub async fn verify(password: String, phc: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || match PasswordHash::new(&phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "stored password hash is malformed");
            false
        }
    })
    .await
    .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_mismatch() {
        let phc = hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), phc.clone()).await.unwrap());
        assert!(!verify("wrong horse".into(), phc).await.unwrap());
        assert!(!verify("x".into(), "not a hash".into()).await.unwrap());
    }
}
