//! OAuth 2.0 Protected Resource Metadata (RFC 9728): the document the gateway serves at
//! `/.well-known/oauth-protected-resource[/<path>]`, and the URL of that document for the
//! `resource_metadata` parameter of 401 challenges (§5.1). Pure: no I/O.
//!
//! One document per resource path (§3.1): `authorization_servers` lists the issuers accepted
//! there, the `issuers` of the routes of the path's prefix when every one of them names some,
//! else every configured issuer. A 401 on such a route names its prefix's document; others
//! name the root's.

use serde_json::{json, Value};

use crate::config::{AuthMode, Config};

/// The well-known path (RFC 9728 §3).
pub(crate) const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// What the metadata says, built once from the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResourceMetadata {
    authorization_servers: Vec<String>,
    dpop_algorithms: Vec<String>,
    bound_tokens_required: bool,
}

// === impl ResourceMetadata ===

impl ResourceMetadata {
    /// From the config: `access_token.issuer`, `dpop.algorithms`, and whether any route is
    /// `dpop_or_bearer`.
    pub(crate) fn from_config(config: &Config) -> ResourceMetadata {
        ResourceMetadata {
            authorization_servers: config
                .access_tokens
                .iter()
                .map(|a| a.issuer.clone())
                .collect(),
            dpop_algorithms: config
                .dpop
                .algorithms
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            bound_tokens_required: !config
                .routes
                .iter()
                .any(|r| r.auth == AuthMode::DpopOrBearer),
        }
    }

    /// The JSON document for `resource` (RFC 9728 §2; §3.3: `resource` must be the URL the
    /// metadata was asked for, less the well-known segment), whose routes accept `issuers`
    /// (`None`: every configured issuer).
    pub(crate) fn document(&self, resource: &str, issuers: Option<&[&str]>) -> String {
        let servers: Vec<&str> = match issuers {
            Some(only) => only.to_vec(),
            None => self
                .authorization_servers
                .iter()
                .map(String::as_str)
                .collect(),
        };
        let doc: Value = json!({
            "resource": resource,
            "authorization_servers": servers,
            "bearer_methods_supported": ["header"],
            "dpop_signing_alg_values_supported": self.dpop_algorithms,
            "dpop_bound_access_tokens_required": self.bound_tokens_required,
        });
        doc.to_string()
    }
}

/// Whether `path` asks for the metadata: `Some("")` for the well-known path itself,
/// `Some("/api")` for `/.well-known/oauth-protected-resource/api` (the resource's path), `None`
/// for any other path.
pub(crate) fn well_known_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(WELL_KNOWN_PATH)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The metadata URL of `resource` (RFC 9728 §3.1: the well-known segment goes between the
/// host and the resource's path; a terminating `/` of the path is dropped), for the
/// `resource_metadata="…"` challenge parameter.
pub(crate) fn metadata_url(resource: &str) -> String {
    let (scheme, rest) = resource.split_once("://").unwrap_or(("https", resource));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let path = path.trim_end_matches('/');
    format!("{scheme}://{authority}{WELL_KNOWN_PATH}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(routes: &str) -> Config {
        let yaml = format!(
            r#"
upstream:
  url: "http://127.0.0.1:8080"
routes:{routes}
dpop:
  algorithms: [ES256, EdDSA]
access_token:
  issuer: "https://as.example.com"
  audience: "https://api.example.com"
  jwks_file: config/demo/jwks.json
"#
        );
        Config::from_yaml_str(&yaml, "<test>", &HashMap::new()).unwrap()
    }

    fn doc(routes: &str, resource: &str) -> Value {
        serde_json::from_str(
            &ResourceMetadata::from_config(&config(routes)).document(resource, None),
        )
        .unwrap()
    }

    #[test]
    fn document_names_the_resource_issuer_and_dpop_algorithms() {
        let d = doc(
            "\n  - { path_prefix: /, auth: dpop }",
            "https://api.example.com",
        );
        assert_eq!(
            d,
            json!({
                "resource": "https://api.example.com",
                "authorization_servers": ["https://as.example.com"],
                "bearer_methods_supported": ["header"],
                "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
                "dpop_bound_access_tokens_required": true,
            })
        );
    }

    #[test]
    fn a_path_whose_routes_name_issuers_lists_only_those() {
        let rm = ResourceMetadata::from_config(&config("\n  - { path_prefix: /, auth: dpop }"));
        let d: Value = serde_json::from_str(&rm.document(
            "https://api.example.com/partners",
            Some(&["https://p.example"]),
        ))
        .unwrap();
        assert_eq!(d["resource"], "https://api.example.com/partners");
        assert_eq!(d["authorization_servers"], json!(["https://p.example"]));
    }

    #[test]
    fn a_dpop_or_bearer_route_means_bound_tokens_are_not_required() {
        let d = doc(
            "\n  - { path_prefix: /legacy, auth: dpop_or_bearer }\n  - { path_prefix: /, auth: dpop }",
            "https://api.example.com",
        );
        assert_eq!(d["dpop_bound_access_tokens_required"], json!(false));
    }

    #[test]
    fn well_known_path_matches_the_document_and_its_path_suffixes_only() {
        assert_eq!(well_known_path(WELL_KNOWN_PATH), Some(""));
        assert_eq!(
            well_known_path("/.well-known/oauth-protected-resource/api/v1"),
            Some("/api/v1")
        );
        assert_eq!(
            well_known_path("/.well-known/oauth-protected-resourceX"),
            None
        );
        assert_eq!(
            well_known_path("/api/.well-known/oauth-protected-resource"),
            None
        );
        assert_eq!(well_known_path("/.well-known/openid-configuration"), None);
    }

    #[test]
    fn metadata_url_inserts_the_well_known_segment_before_the_path() {
        assert_eq!(
            metadata_url("https://api.example.com"),
            "https://api.example.com/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            metadata_url("https://api.example.com/"),
            "https://api.example.com/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:8443/api/v1"),
            "http://127.0.0.1:8443/.well-known/oauth-protected-resource/api/v1"
        );
    }
}
