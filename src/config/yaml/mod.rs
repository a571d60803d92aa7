//! The YAML layer under `raw`: text to a [`Node`] tree, a serde `Deserializer` over the tree
//! whose errors name the setting by its [`Path`], and the line and column of any path. serde_yaml
//! reads the YAML; nothing here reads serde_yaml's messages, so rewording one cannot move a
//! position or lose a setting's name. No I/O.
//!
//! Why this shape. serde_yaml 0.9 tells where something is only through `Error::location()`:
//! its events and marks are private, a visitor cannot ask where it is, and a value that
//! deserializes successfully has no position. So positions are taken from errors, and only
//! where there is an error to report:
//! - [`read`] runs serde_yaml twice over the text. The first pass (`deserialize_any`) learns the
//!   kind of every node in document order and refuses a key given twice in one mapping: that
//!   error is raised while the second key is read, so serde_yaml stamps that key's mark on it.
//!   The second pass reads each scalar with `deserialize_str`, which hands over the text as
//!   written: `0x10`, `1.50` or `True` stay as written, so a secret that looks like a number is
//!   never rewritten. (It needs the first pass: `deserialize_str` on a mapping is an error
//!   serde_yaml words itself, and serde offers no way to peek.)
//! - [`NodeDe`] deserializes the raw configuration from the tree. Its error type is ours, so an
//!   unknown key or a wrong type arrives as a path and a message we wrote, not as text to take
//!   apart.
//! - [`locate()`] finds a path's line and column by running serde_yaml once more with a seed that
//!   walks to the path and fails there on purpose; serde_yaml stamps the failing node's mark on
//!   the error and `location()` reads it.
//!
//! A `Spanned<T>` built during deserialization, as `toml` offers, would be the simpler design,
//! but serde_yaml has no hook for it; a second YAML parser that exposes marks could disagree
//! with serde_yaml on what the document says.

mod de;
mod locate;
mod tree;

pub(crate) use de::NodeDe;
pub(crate) use locate::locate;
pub(crate) use tree::{read, Node};

/// Where in the document: keys and sequence indices from the root, written `a.b[1].c`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Path(Vec<Step>);

/// One step of a [`Path`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A mapping's key.
    Key(String),
    /// A sequence's item, from 0.
    Index(usize),
}

/// What of a path an error points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The key that names the setting (for a sequence item: the item, at its `-`): where a
    /// setting is missing, refused or in conflict with another.
    Key,
    /// The value itself: where a value cannot be read.
    Value,
}

/// An error of the YAML layer, before it is given the file's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct YamlError {
    /// The setting (empty for the document).
    pub(crate) path: Path,
    /// What of it the error points at.
    pub(crate) target: Target,
    /// What is wrong, without the path.
    pub(crate) message: String,
    /// The 1-based line and column when serde_yaml gave them with the error; otherwise
    /// [`locate()`] finds them from `path` and `target`.
    pub(crate) at: Option<(usize, usize)>,
}

// === impl Path ===

impl Path {
    /// The document itself.
    pub(crate) fn root() -> Path {
        Path::default()
    }

    /// Reads the notation [`Path`] displays (`routes[1].nonce`): the paths the validation
    /// writes into its own messages.
    pub(crate) fn parse(dotted: &str) -> Path {
        let mut steps = Vec::new();
        for part in dotted.split('.').filter(|p| !p.is_empty()) {
            let (key, indices) = part.split_once('[').unwrap_or((part, ""));
            if !key.is_empty() {
                steps.push(Step::Key(key.to_owned()));
            }
            for index in indices.split('[') {
                if let Ok(i) = index.trim_end_matches(']').parse() {
                    steps.push(Step::Index(i));
                }
            }
        }
        Path(steps)
    }

    /// This path and then `key`.
    pub(crate) fn key(&self, key: &str) -> Path {
        self.with(Step::Key(key.to_owned()))
    }

    /// This path and then item `index`.
    pub(crate) fn index(&self, index: usize) -> Path {
        self.with(Step::Index(index))
    }

    /// The steps from the root.
    pub(crate) fn steps(&self) -> &[Step] {
        &self.0
    }

    /// Whether this is the document itself.
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    fn with(&self, step: Step) -> Path {
        let mut steps = self.0.clone();
        steps.push(step);
        Path(steps)
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(key) if i == 0 => f.write_str(key)?,
                Step::Key(key) => write!(f, ".{key}")?,
                Step::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

// === impl YamlError ===

impl YamlError {
    /// The message as the user reads it: the path first (`dpop.clock_skew: ...`).
    pub(crate) fn full_message(&self) -> String {
        if self.path.is_root() {
            self.message.clone()
        } else {
            format!("{}: {}", self.path, self.message)
        }
    }

    /// An error serde_yaml raised itself (a syntax error, more than one document). Its message
    /// is the one text taken from serde_yaml, as there is nothing else to say what libyaml
    /// found; its position is `location()`, shown in front of the message, so the copy libyaml
    /// writes into the text is dropped when it is there. Were that wording to change, the
    /// message would only say the position twice.
    fn from_serde_yaml(err: &serde_yaml::Error) -> YamlError {
        let at = err.location().map(|l| (l.line(), l.column()));
        let mut message = err.to_string();
        if let Some((line, column)) = at {
            message = message.replacen(&format!(" at line {line} column {column}"), "", 1);
        }
        YamlError {
            path: Path::root(),
            target: Target::Value,
            message,
            at,
        }
    }
}

#[cfg(test)]
mod tests;
