//! `${env:NAME}` and `${file:PATH}` in configuration values: secrets stay out
//! of the pipeline file, and every value resolved this way is registered with
//! the redactor so it never shows up in output, logs, plans or state.

use std::path::Path;

/// A resolved configuration value.
#[derive(Clone, PartialEq)]
pub struct Resolved {
    pub value: String,
    /// True when the value came from the environment or a file.
    pub from_reference: bool,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.from_reference {
            f.write_str("Resolved([redacted])")
        } else {
            write!(f, "Resolved({:?})", self.value)
        }
    }
}

/// Replaces every `${env:NAME}` and `${file:PATH}` in `raw`; file paths are
/// relative to `base`.
pub fn resolve(raw: &str, base: &Path) -> Result<Resolved, String> {
    let mut out = String::new();
    let mut rest = raw;
    let mut from_reference = false;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unclosed `${` in value".to_string())?;
        let reference = &after[..end];
        out.push_str(&lookup(reference, base)?);
        from_reference = true;
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Resolved {
        value: out,
        from_reference,
    })
}

fn lookup(reference: &str, base: &Path) -> Result<String, String> {
    match reference.split_once(':') {
        Some(("env", "")) => Err("`${env:}` names no environment variable".to_string()),
        Some(("env", name)) => match std::env::var(name) {
            Ok(value) if value.trim().is_empty() => {
                Err(format!("environment variable {name} is set but empty"))
            }
            Ok(value) => Ok(value),
            Err(_) => Err(format!("environment variable {name} is not set")),
        },
        Some(("file", path)) => {
            let full = base.join(path);
            let text = std::fs::read_to_string(&full)
                .map_err(|e| format!("cannot read secret file {}: {e}", full.display()))?;
            let text = text.trim_end_matches(['\n', '\r']);
            match text.trim().is_empty() {
                true => Err(format!("secret file {} is empty", full.display())),
                false => Ok(text.to_string()),
            }
        }
        _ => Err(format!(
            "`${{{reference}}}`: expected ${{env:NAME}} or ${{file:PATH}}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_env_and_file_references() {
        let dir = std::env::temp_dir().join(format!("roster-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("key"), "from-file\n").unwrap();
        let r = resolve("Bearer ${file:key}", &dir).unwrap();
        assert_eq!(r.value, "Bearer from-file");
        assert!(r.from_reference);
        assert!(
            resolve("${env:ROSTER_SURELY_UNSET_VAR}", &dir)
                .unwrap_err()
                .contains("ROSTER_SURELY_UNSET_VAR")
        );
        assert!(resolve("${vault:x}", &dir).is_err());
        std::fs::write(dir.join("blank"), "\n").unwrap();
        let blank = resolve("${file:blank}", &dir).unwrap_err();
        assert!(
            blank.contains("is empty") && blank.contains("blank"),
            "{blank}"
        );
        assert!(resolve("${env:}", &dir).unwrap_err().contains("names no"));
        assert!(!resolve("plain", &dir).unwrap().from_reference);
        assert!(format!("{:?}", resolve("${file:key}", &dir).unwrap()).contains("redacted"));
    }
}
