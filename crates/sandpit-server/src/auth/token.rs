//! Bearer credentials: 256 random bits, base64url, behind a kind prefix
//! (`sps_` sign-in session, `spt_` personal API token). Only the SHA-256 of a value is stored;
//! a plain hash suffices because the values are random, not chosen by people.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sandpit_store::CredentialKind;
use sha2::{Digest, Sha256};

const SECRET_BYTES: usize = 32;
/// base64url length of 32 bytes without padding.
const SECRET_CHARS: usize = 43;
const PREFIX_LEN: usize = 4;

/// A freshly minted credential: `value` is shown to its owner once and then forgotten.
pub struct Minted {
    pub value: String,
    pub hash: [u8; 32],
    /// The first characters, safe to list so people can tell tokens apart.
    pub display_prefix: String,
}

fn kind_prefix(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::Session => "sps_",
        CredentialKind::ApiToken => "spt_",
    }
}

pub fn mint(kind: CredentialKind) -> Minted {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let value = format!("{}{}", kind_prefix(kind), URL_SAFE_NO_PAD.encode(bytes));
    Minted {
        hash: digest(&value),
        display_prefix: value[..PREFIX_LEN + 8].to_owned(),
        value,
    }
}

/// The hash to look a presented value up by, or `None` when it cannot be one of ours
/// (wrong shape: answered 401 without touching the database).
pub fn parse(value: &str) -> Option<[u8; 32]> {
    let well_formed = value.len() == PREFIX_LEN + SECRET_CHARS
        && (value.starts_with("sps_") || value.starts_with("spt_"))
        && value[PREFIX_LEN..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| digest(value))
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_values_parse_to_their_hash() {
        let t = mint(CredentialKind::ApiToken);
        assert!(t.value.starts_with("spt_"));
        assert_eq!(t.value.len(), 47);
        assert_eq!(parse(&t.value), Some(t.hash));
        assert!(t.value.starts_with(&t.display_prefix));
        assert_ne!(mint(CredentialKind::Session).hash, t.hash);
    }

    #[test]
    fn malformed_values_are_rejected_without_lookup() {
        let good = mint(CredentialKind::Session).value;
        assert!(parse(&good[..46]).is_none());
        assert!(parse(&format!("xxx_{}", &good[4..])).is_none());
        assert!(parse(&format!("{}!", &good[..46])).is_none());
        assert!(parse("").is_none());
    }
}
