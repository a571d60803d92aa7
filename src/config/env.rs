//! `${NAME}` substitution behind a lookup trait: the process environment in production, a
//! `HashMap` in tests.
//!
//! Syntax, inside any scalar value: `${NAME}` (NAME is `[A-Za-z_][A-Za-z0-9_]*`) is replaced by
//! the variable's value; an unset variable is an error, never an empty string. `$${` writes a
//! literal `${`; any other `$` is literal. Substitution happens once, inside the already parsed
//! scalar (by the YAML layer's deserializer, `yaml::NodeDe`), so a value cannot add YAML
//! structure and is not itself searched for `${`. No I/O except [`ProcessEnv`].

use std::collections::HashMap;

/// Where `${NAME}` values come from.
pub trait EnvLookup {
    /// The value of `name`, or `None` when unset (an error, never an empty string).
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

/// Why `${...}` could not be substituted. `Display` is the message after the setting's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SubstError {
    /// `${NAME}` names an unset variable.
    Unset {
        /// The variable.
        name: String,
    },
    /// `${` without its `}`.
    Unterminated,
    /// `${...}` whose content is not a variable name.
    BadName {
        /// What was between the braces.
        name: String,
    },
}

/// One part of a scalar: literal text or a variable reference.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Literal(&'a str),
    Var(&'a str),
}

// === impl ProcessEnv ===

impl EnvLookup for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvLookup for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

// === impl SubstError ===

impl std::fmt::Display for SubstError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubstError::Unset { name } => write!(f, "${{{name}}} is not set"),
            SubstError::Unterminated => f.write_str("`${` has no closing `}` (write `$${` for a literal `${`)"),
            SubstError::BadName { name } => write!(
                f,
                "`${{{name}}}` is not a variable name (letters, digits and _; write `$${{` for a literal `${{`)"
            ),
        }
    }
}

/// Splits `text` into literals and variable references.
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, SubstError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let (before, from_dollar) = rest.split_at(at);
        if let Some(after) = from_dollar.strip_prefix("$${") {
            out.push(Piece::Literal(before));
            out.push(Piece::Literal("${"));
            rest = after;
        } else if let Some(after) = from_dollar.strip_prefix("${") {
            let end = after.find('}').ok_or(SubstError::Unterminated)?;
            let name = &after[..end];
            if !is_name(name) {
                return Err(SubstError::BadName {
                    name: name.to_owned(),
                });
            }
            out.push(Piece::Literal(before));
            out.push(Piece::Var(name));
            rest = &after[end + 1..];
        } else {
            out.push(Piece::Literal(&rest[..=at]));
            rest = &from_dollar[1..];
        }
    }
    out.push(Piece::Literal(rest));
    Ok(out)
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` with every `${NAME}` replaced by its value from `env`, and `$${` by `${`.
pub(crate) fn substitute(text: &str, env: &dyn EnvLookup) -> Result<String, SubstError> {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text)? {
        match piece {
            Piece::Literal(s) => out.push_str(s),
            Piece::Var(name) => {
                let value = env.get(name).ok_or_else(|| SubstError::Unset {
                    name: name.to_owned(),
                })?;
                out.push_str(&value);
            }
        }
    }
    Ok(out)
}

/// `text` written so that [`substitute`] gives it back: `${` becomes `$${`.
pub(crate) fn escape(text: &str) -> String {
    text.replace("${", "$${")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn variables_are_replaced() {
        let e = env(&[("HOST", "db"), ("PORT", "6379")]);
        assert_eq!(
            substitute("redis://${HOST}:${PORT}/0", &e).unwrap(),
            "redis://db:6379/0"
        );
        assert_eq!(substitute("${HOST}", &e).unwrap(), "db");
    }

    #[test]
    fn unset_variable_is_an_error_not_an_empty_string() {
        assert_eq!(
            substitute("x${NOPE}", &env(&[])),
            Err(SubstError::Unset {
                name: "NOPE".into()
            })
        );
        assert_eq!(
            SubstError::Unset {
                name: "NOPE".into()
            }
            .to_string(),
            "${NOPE} is not set"
        );
        assert_eq!(substitute("x${SET}", &env(&[("SET", "")])).unwrap(), "x");
    }

    #[test]
    fn double_dollar_escapes_a_literal() {
        let e = env(&[("A", "1")]);
        assert_eq!(substitute("$${A} is ${A}", &e).unwrap(), "${A} is 1");
        assert_eq!(substitute("cost $5 and $$", &e).unwrap(), "cost $5 and $$");
        assert_eq!(substitute(&escape("a${b}"), &e).unwrap(), "a${b}");
    }

    #[test]
    fn substituted_values_are_not_substituted_again() {
        let e = env(&[("A", "${B}"), ("B", "no")]);
        assert_eq!(substitute("${A}", &e).unwrap(), "${B}");
    }

    #[test]
    fn malformed_references_are_errors() {
        assert_eq!(substitute("${A", &env(&[])), Err(SubstError::Unterminated));
        assert_eq!(
            substitute("${A-B}", &env(&[])),
            Err(SubstError::BadName { name: "A-B".into() })
        );
        assert_eq!(
            substitute("${}", &env(&[])),
            Err(SubstError::BadName {
                name: String::new()
            })
        );
        assert_eq!(
            substitute("${1A}", &env(&[])),
            Err(SubstError::BadName { name: "1A".into() })
        );
    }
}
