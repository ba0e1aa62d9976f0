//! Validated values: parsed once at the edge, then the type proves the rules hold.

use secrecy::{ExposeSecret, SecretString};

use crate::error::ApiError;

/// 3–32 characters of ASCII letters, digits, `_` and `-`, starting with a letter or digit.
/// Compared case-insensitively by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MIN: usize = 3;
    pub const MAX: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let invalid = |message: &str| ApiError::Validation {
            field: "username",
            message: message.to_owned(),
        };
        let len = raw.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(invalid("must be 3 to 32 characters"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid("may contain only letters, digits, _ and -"));
        }
        if !raw.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(invalid("must start with a letter or a digit"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// 8–128 characters. Length limits keep argon2's work bounded; no composition rules (NIST
/// SP 800-63B advises against them).
pub struct Password(SecretString);

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 128;

    pub fn parse(raw: SecretString) -> Result<Self, ApiError> {
        let len = raw.expose_secret().chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(ApiError::Validation {
                field: "password",
                message: "must be 8 to 128 characters".into(),
            });
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A plausible e-mail address (one `@`, non-empty parts, a dot in the domain, ≤ 254 bytes).
/// Deliverability is not checked; nothing is sent to it yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let invalid = || ApiError::Validation {
            field: "email",
            message: "is not a valid e-mail address".into(),
        };
        let raw = raw.trim();
        if raw.len() > 254 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = raw.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(invalid());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A personal API token's name: 1–64 printable characters.
#[derive(Debug, Clone)]
pub struct TokenName(String);

impl TokenName {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let trimmed = raw.trim();
        let len = trimmed.chars().count();
        if len == 0 || len > 64 || trimmed.chars().any(char::is_control) {
            return Err(ApiError::Validation {
                field: "name",
                message: "must be 1 to 64 printable characters".into(),
            });
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["abc", "Alice_01", "a-b", "9lives", &"x".repeat(32)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "_abc",
            "-abc",
            "a b",
            "ab/c",
            "äbc",
            "abc\0",
            &"x".repeat(33),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        assert!(Password::parse(SecretString::from("ééééééé")).is_err()); // 7 chars, 14 bytes
        assert!(Password::parse(SecretString::from("éééééééé")).is_ok());
        assert!(Password::parse(SecretString::from("x".repeat(129))).is_err());
    }

    #[test]
    fn emails() {
        assert!(Email::parse("a@b.co").is_ok());
        for bad in ["a", "@b.co", "a@b", "a@@b.co", "a b@c.de", "a@.co", "a@co."] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_names() {
        assert_eq!(TokenName::parse("  ci  ").unwrap().into_inner(), "ci");
        assert!(TokenName::parse(" ").is_err());
        assert!(TokenName::parse("a\nb").is_err());
        assert!(TokenName::parse(&"n".repeat(65)).is_err());
    }
}
