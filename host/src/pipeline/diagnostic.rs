//! Errors in a pipeline file, located as `file:line:column` with the
//! offending line shown, the way a compiler would.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The source line, for display.
    pub excerpt: String,
}

impl Diagnostic {
    pub fn at(
        file: &Path,
        source: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        let start = span.map(|s| s.start).unwrap_or(0).min(source.len());
        let before = &source[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = source[line_start..start].chars().count() + 1;
        let excerpt = source[line_start..]
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        Diagnostic {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
            excerpt,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if !self.excerpt.trim().is_empty() {
            let gutter = self.line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {:>col$}",
                "",
                self.line,
                self.excerpt,
                "",
                "^",
                col = self.column
            )?;
        }
        Ok(())
    }
}

/// All the problems found in one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The text of `what` at `path`, or why it cannot be read.
    pub fn read(path: &Path, what: &str) -> Result<String, Diagnostics> {
        std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic::at(
                path,
                "",
                None,
                format!("cannot read {what}: {e}"),
            )])
        })
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The known name closest to `typed`, when it is close enough to be a typo
/// (one or two letters wrong, left out, added or swapped).
pub fn did_you_mean<'a>(typed: &str, known: &'a [String]) -> Option<&'a str> {
    let typed = typed.to_ascii_lowercase();
    let most = if typed.chars().count() > 5 { 2 } else { 1 };
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&typed, k), k))
        .filter(|(distance, _)| *distance <= most)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k.as_str())
}
