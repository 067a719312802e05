//! Configuration errors located at file, line and dotted key.

use std::fmt;
use std::path::PathBuf;

/// One problem in a configuration file.
///
/// Displays as `corp.toml:14: partner[0].tls: expected one of "required", "optional",
/// "not-supported", got "yes"` (the line is left out when unknown, the key when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file (as given by the caller).
    pub file: PathBuf,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// Dotted key path such as `partner[2].tls`; empty when the problem is not at a key.
    pub key: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration file, in file order where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The problems.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// How many problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is none (never the case for a returned error).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_line_key_message() {
        let e = ConfigError {
            file: "corp.toml".into(),
            line: Some(14),
            column: Some(7),
            key: "partner[0].tls".into(),
            message: r#"expected one of "required", "optional", "not-supported", got "yes""#.into(),
        };
        assert_eq!(
            e.to_string(),
            r#"corp.toml:14: partner[0].tls: expected one of "required", "optional", "not-supported", got "yes""#
        );
        let e = ConfigError {
            line: None,
            key: String::new(),
            message: "cannot read".into(),
            ..e
        };
        assert_eq!(e.to_string(), "corp.toml: cannot read");
    }
}
