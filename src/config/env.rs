//! `${NAME}` substitution behind a lookup trait: the process environment in production, a
//! `HashMap` in tests.

use std::collections::HashMap;

/// Where `${NAME}` values come from.
pub trait EnvLookup {
    /// The value of `name`, or `None` when unset (an error, never an empty string).
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

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
