//! Secret redaction: every secret resolved from a pipeline is registered here,
//! and every string that leaves the host through a connector (logs, guest
//! output, errors, vendor messages) or into plans and state passes through
//! [`Redactor::redact`].

use std::borrow::Cow;
use std::io::Write as _;
use std::sync::{Arc, RwLock};

pub const MASK: &str = "[redacted]";

/// Secrets shorter than this are not masked: masking "1" would mangle text.
const MIN_SECRET_LEN: usize = 4;

#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    /// The process-wide redactor: what the CLI registers secrets with and its
    /// log writer masks with.
    pub fn global() -> &'static Redactor {
        static GLOBAL: std::sync::OnceLock<Redactor> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(Redactor::default)
    }

    pub fn add(&self, secret: &str) {
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        let mut secrets = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        let mut variants = vec![
            secret.to_string(),
            url_encoded(secret),
            json_escaped(secret),
            hex::encode(secret),
            hex::encode_upper(secret),
        ];
        variants.extend(base64_forms(secret.as_bytes()));
        for v in variants {
            if !secrets.contains(&v) {
                secrets.push(v);
            }
        }
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let secrets = self.secrets.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Cow::Borrowed(text);
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), MASK));
            }
        }
        out
    }

    pub fn redact_owned(&self, text: String) -> String {
        match self.redact(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(s) => s,
        }
    }
}

/// A log writer that masks secrets in every event before it reaches stderr,
/// whatever crate emitted it (wasmtime's own debug logs echo guest output).
/// The formatter writes an event in many small pieces, so the writer keeps
/// them and masks the whole event when it is dropped.
pub struct RedactingStderr {
    redactor: Redactor,
    buffer: Vec<u8>,
}

impl RedactingStderr {
    pub fn new(redactor: Redactor) -> Self {
        RedactingStderr {
            redactor,
            buffer: Vec::new(),
        }
    }
}

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingStderr {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buffer);
        let _ = std::io::stderr().write_all(self.redactor.redact(&text).as_bytes());
    }
}

/// The secret as it appears inside a JSON string.
fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted.trim_matches('"').to_string()
}

/// What base64 (standard and URL-safe) of any text holding the secret
/// contains whatever comes before or after it: for each of the three
/// alignments, the characters made of the secret's bits only. So
/// `Basic base64(secret)` is masked, and so is most of `base64(user:secret)`
/// (the edges, touched by the neighbouring bytes, may remain).
fn base64_forms(secret: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut forms = Vec::new();
    for k in 0..3usize {
        let mut bytes = vec![0u8; k];
        bytes.extend_from_slice(secret);
        let first = (8 * k).div_ceil(6);
        let end = (8 * (k + secret.len())) / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let text = engine.encode(&bytes);
            if let Some(core) = text.get(first..end.min(text.len()))
                && core.len() >= 6
            {
                forms.push(core.to_string());
            }
        }
    }
    forms
}

fn url_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_plain_and_url_encoded_forms() {
        let r = Redactor::default();
        r.add("s3cr3t+/=");
        assert_eq!(
            r.redact("key=s3cr3t+/= and s3cr3t%2B%2F%3D"),
            "key=[redacted] and [redacted]"
        );
        r.add("ab");
        assert_eq!(r.redact("abc"), "abc");
    }

    #[test]
    fn masks_hex_json_and_base64_forms_wherever_the_secret_sits() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let secret = "hostile-SECRET-42abc\"";
        let r = Redactor::default();
        r.add(secret);
        let mut shown = vec![
            hex::encode(secret),
            hex::encode_upper(secret),
            serde_json::to_string(secret).unwrap(),
        ];
        for prefix in ["", "u", "us", "user:", "client-id:"] {
            for suffix in ["", "x", "@example.com"] {
                let text = format!("{prefix}{secret}{suffix}");
                shown.push(STANDARD.encode(&text));
                shown.push(URL_SAFE.encode(&text));
            }
        }
        for form in shown {
            let masked = r.redact(&form);
            assert!(masked.contains(MASK), "{form} → {masked}");
            // What is left around the mask is at most the edges.
            let left = masked.replace(MASK, "");
            assert!(left.len() <= form.len() / 2 + 12, "{form} → {masked}");
        }
    }
}
