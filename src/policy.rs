//! Route policies: what a verified, bound token must say on a route (`routes[].issuers`,
//! `routes[].require`). Pure: no I/O, no clock; the pipeline runs [`check`] on every request,
//! whether the token came from a cache or not.
//!
//! - `issuers`: the token's issuer is one of them (else 401 `invalid_token`: a token from
//!   another issuer is not a token for this resource);
//! - `require.scopes`: each is one of the token's scopes, the space-separated `scope`
//!   (RFC 9068 §2.2.3, RFC 8693 §4.2) or, when that is absent, the `scp` array some servers
//!   send; compared exactly (scopes are case-sensitive, RFC 6749 §3.3);
//! - `require.claims`: the claim equals the value (a string; a number or boolean written as
//!   its JSON text, `42`, `true`), or is an array with such a member.
//!
//! A scope or claim failure is 403 `insufficient_scope` (RFC 6750 §3.1).

use serde_json::Value;

use crate::jose::clip;
use crate::route::Route;
use crate::token::TokenInfo;

/// Why a route's policy refused a valid token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// The token's issuer is not among the route's `issuers`.
    Issuer {
        /// The token's `iss`.
        got: Option<String>,
    },
    /// A scope the route requires is not in the token.
    Scope {
        /// The first missing scope.
        missing: String,
        /// Every scope the route requires, space-separated (the challenge's `scope`).
        required: String,
    },
    /// A claim the route requires is absent or has another value.
    Claim {
        /// The claim's name.
        name: String,
        /// The route's required scopes, space-separated, when it requires any.
        required: Option<String>,
    },
}

/// Checks `route`'s issuers, scopes and claims against `info`, in that order.
pub(crate) fn check(route: &Route, info: &TokenInfo) -> Result<(), PolicyError> {
    if let Some(issuers) = &route.issuers {
        if !info.iss.as_ref().is_some_and(|i| issuers.contains(i)) {
            return Err(PolicyError::Issuer {
                got: info.iss.clone(),
            });
        }
    }
    let require = &route.require;
    let required = || require.scopes.join(" ");
    let granted = info.scope.as_deref().unwrap_or("");
    if let Some(missing) = require
        .scopes
        .iter()
        .find(|s| !granted.split(' ').any(|g| g == s.as_str()))
    {
        return Err(PolicyError::Scope {
            missing: missing.clone(),
            required: required(),
        });
    }
    for (name, want) in &require.claims {
        let got = info.claims.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        if !got.is_some_and(|v| claim_matches(v, want)) {
            return Err(PolicyError::Claim {
                name: name.clone(),
                required: (!require.scopes.is_empty()).then(required),
            });
        }
    }
    Ok(())
}

/// Equality for a string, number or boolean (by its JSON text); membership for an array.
fn claim_matches(value: &Value, want: &str) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|v| scalar_matches(v, want)),
        v => scalar_matches(v, want),
    }
}

fn scalar_matches(value: &Value, want: &str) -> bool {
    match value {
        Value::String(s) => s == want,
        Value::Number(n) => n.to_string() == want,
        Value::Bool(b) => (if *b { "true" } else { "false" }) == want,
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

// === impl PolicyError ===

impl PolicyError {
    /// The `scope` challenge parameter: the route's required scopes, when it has any.
    pub fn required_scopes(&self) -> Option<&str> {
        match self {
            PolicyError::Issuer { .. } => None,
            PolicyError::Scope { required, .. } => Some(required),
            PolicyError::Claim { required, .. } => required.as_deref(),
        }
    }
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::Issuer { got: Some(iss) } => write!(
                f,
                "tokens of issuer '{}' are not accepted on this route",
                clip(iss)
            ),
            PolicyError::Issuer { got: None } => {
                f.write_str("tokens without an issuer are not accepted on this route")
            }
            PolicyError::Scope { missing, .. } => {
                write!(f, "the access token lacks scope '{}'", clip(missing))
            }
            PolicyError::Claim { name, .. } => write!(
                f,
                "the access token's claim '{}' does not have the value this route requires",
                clip(name)
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthMode, Require, RouteConfig};
    use crate::route::Router;
    use serde_json::json;

    fn route(scopes: &[&str], claims: &[(&str, &str)], issuers: Option<&[&str]>) -> Route {
        let rc = RouteConfig {
            path_prefix: "/".into(),
            auth: AuthMode::Dpop,
            issuers: issuers.map(|i| i.iter().map(|s| (*s).to_owned()).collect()),
            require: Require {
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                claims: claims
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            },
            ..RouteConfig::default()
        };
        Router::new(&[rc], false).find("/").clone()
    }

    fn token(scope: Option<&str>, claims: &[(&str, Value)]) -> TokenInfo {
        TokenInfo {
            scope: scope.map(str::to_owned),
            iss: Some("https://as".into()),
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            ..TokenInfo::default()
        }
    }

    #[test]
    fn every_required_scope_must_be_granted_exactly() {
        let r = route(&["read", "write"], &[], None);
        assert_eq!(check(&r, &token(Some("write  read other"), &[])), Ok(()));
        let e = check(&r, &token(Some("read Write readwrite"), &[])).unwrap_err();
        assert_eq!(
            e,
            PolicyError::Scope {
                missing: "write".into(),
                required: "read write".into()
            }
        );
        assert_eq!(e.required_scopes(), Some("read write"));
        assert!(check(&r, &token(None, &[])).is_err());
        assert_eq!(check(&route(&[], &[], None), &token(None, &[])), Ok(()));
    }

    #[test]
    fn a_claim_is_equal_or_a_member() {
        let r = route(&[], &[("tenant", "acme"), ("level", "3")], None);
        let ok = [("tenant", json!("acme")), ("level", json!(3))];
        assert_eq!(check(&r, &token(None, &ok)), Ok(()));
        let arr = [("tenant", json!(["x", "acme"])), ("level", json!(["3"]))];
        assert_eq!(check(&r, &token(None, &arr)), Ok(()));
        for bad in [
            [("tenant", json!("acme2")), ("level", json!(3))],
            [("tenant", json!({"acme": true})), ("level", json!(3))],
            [("tenant", json!("acme")), ("level", json!("03"))],
            [("tenant", json!(null)), ("level", json!(3))],
        ] {
            assert!(
                matches!(
                    check(&r, &token(None, &bad)),
                    Err(PolicyError::Claim { .. })
                ),
                "{bad:?}"
            );
        }
        let missing = check(&r, &token(None, &[("level", json!(3))])).unwrap_err();
        assert_eq!(
            missing,
            PolicyError::Claim {
                name: "tenant".into(),
                required: None
            }
        );
    }

    #[test]
    fn a_route_limits_issuers() {
        let r = route(&[], &[], Some(&["https://other"]));
        assert_eq!(
            check(&r, &token(None, &[])),
            Err(PolicyError::Issuer {
                got: Some("https://as".into())
            })
        );
        let r = route(&[], &[], Some(&["https://other", "https://as"]));
        assert_eq!(check(&r, &token(None, &[])), Ok(()));
    }

    #[test]
    fn booleans_compare_by_their_json_text() {
        let r = route(&[], &[("admin", "true")], None);
        assert_eq!(check(&r, &token(None, &[("admin", json!(true))])), Ok(()));
        assert!(check(&r, &token(None, &[("admin", json!(false))])).is_err());
    }
}
