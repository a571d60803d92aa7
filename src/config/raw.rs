//! Implementer: serde mirror of the YAML, #[serde(deny_unknown_fields)], documented defaults.
