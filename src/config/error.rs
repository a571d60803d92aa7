//! Configuration errors, rendered `file:line:column: message` (1-based). Positions come from
//! the YAML layer (`yaml`): serde_yaml's `location()` for what it finds while reading, and
//! `yaml::locate` for a path named by a later stage. No I/O.

use super::yaml::{self, Path, Target, YamlError};

/// A configuration error with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<inline>`).
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, naming the setting.
    pub message: String,
}

// === impl ConfigError ===

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.origin, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error at the key of `path` (`routes[1].nonce`) in `text`, or at its nearest parent
    /// when the key is absent.
    pub(crate) fn at_path(
        origin: &str,
        text: &str,
        path: &str,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = yaml::locate(text, &Path::parse(path), Target::Key);
        ConfigError {
            origin: origin.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error found while reading `text`, its message prefixed with the setting's path.
    pub(crate) fn from_yaml(origin: &str, text: &str, err: &YamlError) -> Self {
        let (line, column) = err
            .at
            .unwrap_or_else(|| yaml::locate(text, &err.path, err.target));
        ConfigError {
            origin: origin.to_owned(),
            line,
            column,
            message: err.full_message(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_file_line_column_message() {
        let e = ConfigError {
            origin: "g.yaml".into(),
            line: 3,
            column: 7,
            message: "m".into(),
        };
        assert_eq!(e.to_string(), "g.yaml:3:7: m");
    }
}
