//! API tokens: 256 random bits shown once when made; only their SHA-256 is
//! kept (a slow hash adds nothing to a secret this long).

use sha2::{Digest, Sha256};

/// Every token starts so, which makes one easy to spot (and to scan for).
pub const PREFIX: &str = "roster_";

pub fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{PREFIX}{}", hex::encode(bytes)))
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_differ_and_hash_stably() {
        let (a, b) = (super::generate().unwrap(), super::generate().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), super::PREFIX.len() + 64);
        assert_eq!(super::hash(&a), super::hash(&a));
        assert_ne!(super::hash(&a), super::hash(&b));
    }
}
