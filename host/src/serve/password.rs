//! Console passwords: argon2id with a random salt, kept as a PHC string
//! (algorithm, parameters and salt with the hash), so stronger parameters
//! later still verify the old ones.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// The shortest password taken.
pub const MIN_LEN: usize = 12;

pub fn hash(password: &str) -> Result<String, String> {
    if password.chars().count() < MIN_LEN {
        return Err(format!("a password needs at least {MIN_LEN} characters"));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no random numbers from the system: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` is the one `phc` was made from.
pub fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_password_verifies_and_no_other_does() {
        let phc = super::hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains("correct horse"));
        assert!(super::verify(&phc, "correct horse battery"));
        assert!(!super::verify(&phc, "correct horse batterY"));
        assert!(!super::verify("not a hash", "correct horse battery"));
        assert_ne!(phc, super::hash("correct horse battery").unwrap(), "salted");
        assert!(super::hash("short").unwrap_err().contains("12 characters"));
    }
}
