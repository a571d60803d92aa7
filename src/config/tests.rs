//! Unit tests of `config`.

use std::collections::HashMap;

use super::*;

/// Whether the router built from `c` requires nonces on `c.routes[i]`.
fn nonce_on(c: &Config, i: usize) -> bool {
    crate::route::Router::new(&c.routes, c.dpop.nonce.enabled)
        .find(&c.routes[i].path_prefix)
        .nonce
}
use crate::jose::Algorithm;

/// The smallest valid configuration: line 1 is `upstream:`, line 3 `access_token:`.
const BASE: &str = "\
upstream:
  url: \"http://127.0.0.1:8080\"
access_token:
  issuer: \"https://as.example.com\"
  audience: \"https://api.example.com\"
  jwks_file: config/demo/jwks.json
";

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_str(yaml, "test.yaml", &HashMap::new())
}

/// `(line, column, message)` of the error `yaml` must produce.
fn error(yaml: &str) -> (usize, usize, String) {
    match parse(yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => {
            assert_eq!(e.origin, "test.yaml");
            (e.line, e.column, e.message)
        }
    }
}

fn assert_error(yaml: &str, line: usize, column: usize, message: &str) {
    let (l, c, m) = error(yaml);
    assert!(m.contains(message), "want {message:?} in {m:?}\n{yaml}");
    assert_eq!((l, c), (line, column), "position of {m:?}\n{yaml}");
}

#[test]
fn shipped_default_config_parses_without_environment() {
    let c = parse(include_str!("../../config/gateway.yaml")).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8443".parse().unwrap());
    assert_eq!(c.admin_listen, "127.0.0.1:9090".parse().unwrap());
    assert!(c.tls.is_none());
    assert_eq!(c.upstream.url, "http://127.0.0.1:8080/");
    assert_eq!(
        c.routes,
        vec![
            RouteConfig {
                path_prefix: "/healthz".into(),
                auth: AuthMode::None,
                ..RouteConfig::default()
            },
            RouteConfig {
                path_prefix: "/".into(),
                auth: AuthMode::Dpop,
                ..RouteConfig::default()
            },
        ]
    );
    assert!(matches!(
        c.replay_cache.backend,
        ReplayBackend::Memory {
            capacity: 1_000_000
        }
    ));
    assert_eq!(c.access_tokens[0].issuer, "https://as.example.com");
    assert_eq!(
        c.access_tokens[0].audience.as_deref(),
        Some("https://api.example.com")
    );
    assert_eq!(
        c.access_tokens[0].keys,
        KeySource::File("config/demo/jwks.json".into())
    );
    assert!(!c.dpop.nonce.enabled);
}

#[test]
fn shipped_demo_jwks_holds_one_es256_key() {
    let jwks: serde_json::Value =
        serde_json::from_str(include_str!("../../config/demo/jwks.json")).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        (
            key["kid"].as_str(),
            key["use"].as_str(),
            key["alg"].as_str()
        ),
        (Some("demo-1"), Some("sig"), Some("ES256"))
    );
    assert!(
        key.get("d").is_none(),
        "the JWKS must hold the public key only"
    );
    let private: serde_json::Value =
        serde_json::from_str(include_str!("../../config/demo/issuer-key.jwk")).unwrap();
    assert_eq!(private["x"], key["x"]);
    assert_eq!(private["kid"], "demo-1");
    assert_eq!(private["alg"], "ES256");
}

#[test]
fn defaults_are_as_documented() {
    let c = parse(BASE).unwrap();
    assert_eq!(c.listen, "0.0.0.0:8443".parse().unwrap());
    assert_eq!(c.admin_listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(c.public_url, None);
    assert!(!c.trust_forwarded_headers);
    assert!(c.resource_metadata);
    assert!(c.cors_allow_origins.is_empty());
    assert_eq!(c.upstream.connect_timeout, Duration::from_secs(2));
    assert_eq!(c.upstream.request_timeout, Duration::from_secs(30));
    assert_eq!(
        c.routes,
        vec![RouteConfig {
            path_prefix: "/".into(),
            auth: AuthMode::Dpop,
            ..RouteConfig::default()
        }]
    );
    assert_eq!(c.dpop.algorithms, Algorithm::ALL.into_iter().collect());
    assert_eq!(c.dpop.proof_max_age, Duration::from_secs(60));
    assert_eq!(c.dpop.clock_skew, Duration::from_secs(5));
    assert!(c.dpop.require_ath);
    assert!(!c.dpop.nonce.enabled && c.dpop.nonce.secrets.is_empty());
    assert_eq!(c.dpop.nonce.lifetime, Duration::from_secs(300));
    assert!(matches!(
        c.replay_cache.backend,
        ReplayBackend::Memory {
            capacity: 1_000_000
        }
    ));
    assert_eq!(c.replay_cache.on_error, OnError::Reject);
    let at = &c.access_tokens[0];
    assert_eq!(at.format, TokenFormat::Jwt);
    let token_algs = [
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::EdDSA,
        Algorithm::Ed25519,
    ];
    assert_eq!(at.algorithms, token_algs.into_iter().collect());
    assert_eq!(at.leeway, Duration::from_secs(30));
    assert!(at.require_typ);
    assert!(at.introspection.is_none());
    assert_eq!(c.forward.authorization, ForwardAuthorization::Bearer);
    let h = &c.forward.identity_headers;
    let names: Vec<_> = [&h.subject, &h.client_id, &h.scope, &h.jkt]
        .iter()
        .map(|h| h.as_ref().map(|n| n.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            Some("x-auth-subject"),
            Some("x-auth-client-id"),
            Some("x-auth-scope"),
            Some("x-dpop-jkt")
        ]
    );
    let l = &c.limits;
    assert_eq!((l.max_proof_bytes, l.max_header_bytes), (8192, 65_536));
    assert_eq!(
        (l.header_read_timeout, l.idle_timeout),
        (Duration::from_secs(10), Duration::from_secs(60))
    );
    assert_eq!((l.max_connections, l.max_concurrent_streams), (10_000, 100));
    assert!(!nonce_on(&c, 0));
}

#[test]
fn discovery_is_used_when_no_key_source_is_set() {
    let c = parse(&BASE.replace("  jwks_file: config/demo/jwks.json\n", "")).unwrap();
    assert_eq!(c.access_tokens[0].keys, KeySource::Discovery);
    let c = parse(&BASE.replace(
        "jwks_file: config/demo/jwks.json",
        "jwks_uri: https://as.example.com/jwks",
    ))
    .unwrap();
    assert_eq!(
        c.access_tokens[0].keys,
        KeySource::Uri("https://as.example.com/jwks".into())
    );
}

#[test]
fn contract_example_is_refused_only_for_what_it_shows_side_by_side() {
    // The example sets both jwks_uri and jwks_file, and upstream.tls beside a plain http://
    // URL, to show every key; each is refused at its line, and with one key source and an
    // https:// URL the rest of it, every key of it, is a valid config.
    let text = include_str!("../../tests/fixtures/config/contract.yaml");
    let vars = env(&[
        ("DPOP_NONCE_SECRET", &"n".repeat(32)),
        ("INTROSPECTION_SECRET", "s"),
    ]);
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let err = Config::from_yaml_str(text, "contract.yaml", &vars).unwrap_err();
    assert!(err.message.contains("only for https:// upstreams"), "{err}");
    assert_eq!(
        err.line,
        line_of(
            text,
            "  tls:                                # https upstreams only"
        )
    );
    let https = text.replace(
        "url: \"http://127.0.0.1:8080\"",
        "url: \"https://127.0.0.1:8080\"",
    );
    let err = Config::from_yaml_str(&https, "contract.yaml", &vars).unwrap_err();
    assert!(
        err.message.contains("set jwks_uri or jwks_file, not both"),
        "{err}"
    );
    assert_eq!(err.line, line_of(&https, "jwks_file:"));
    let one_source: String = https
        .lines()
        .filter(|l| !l.contains("jwks_uri:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let c = Config::from_yaml_str(&one_source, "contract.yaml", &vars).unwrap();
    assert_eq!(c.listen, "0.0.0.0:8443".parse().unwrap());
    assert!(c.tls.is_some() && c.resource_metadata && c.public_url.is_some());
    assert_eq!(c.cors_allow_origins, ["*"]);
    assert_eq!(c.upstreams.len(), 1);
    assert_eq!(c.upstreams[0].name, "billing");
    assert!(c.upstream.tls.is_some() && c.upstreams[0].config.tls.is_some());
    assert_eq!(c.routes.len(), 3);
    let billing = &c.routes[1];
    assert_eq!(billing.path_prefix, "/billing");
    assert_eq!(
        billing.methods,
        Some(vec![http::Method::GET, http::Method::HEAD])
    );
    assert_eq!(billing.nonce, Some(true));
    assert!(billing.strip_prefix && billing.upstream.is_some());
    assert_eq!(
        billing.issuers,
        Some(vec!["https://as.example.com".to_string()])
    );
    assert_eq!(billing.require.scopes, ["billing:read"]);
    assert_eq!(
        billing.require.claims,
        [("tenant".to_string(), "acme".to_string())]
    );
    assert_eq!(c.replay_cache.min_replicas, 0);
    assert_eq!(
        c.forward_auth.as_ref().map(|f| f.listen),
        Some("127.0.0.1:8081".parse().unwrap())
    );
    assert_eq!(
        c.access_tokens[0]
            .clone()
            .introspection
            .map(|i| i.client_id),
        Some("gateway".into())
    );
}

// --- positions of each kind of error ---

#[test]
fn unknown_key_points_at_the_key() {
    assert_error(&format!("lisen: 1\n{BASE}"), 1, 1, "lisen: unknown key");
    assert_error(
        &format!("{BASE}dpop:\n  proof_max_agee: 60s\n"),
        8,
        3,
        "dpop.proof_max_agee: unknown key",
    );
    assert_error(
        &format!("{BASE}routes:\n  - {{ path_prefix: /, auth: dpop, nonse: true }}\n"),
        8,
        35,
        "nonse",
    );
}

#[test]
fn paths_encoded_slashes_defaults_to_reject_and_takes_keep() {
    assert_eq!(
        parse(BASE).unwrap().paths.encoded_slashes,
        EncodedSlashes::Reject
    );
    let keep = parse(&format!("{BASE}paths:\n  encoded_slashes: keep\n")).unwrap();
    assert_eq!(keep.paths.encoded_slashes, EncodedSlashes::Keep);
    assert!(keep
        .to_masked_yaml()
        .contains("paths:\n  encoded_slashes: keep\n"));
    assert_error(
        &format!("{BASE}paths:\n  encoded_slashes: decode\n"),
        8,
        20,
        "paths.encoded_slashes: unknown value \"decode\", expected reject or keep",
    );
    assert_error(
        &format!("{BASE}paths:\n  merge_slashes: true\n"),
        8,
        3,
        "paths.merge_slashes: unknown key",
    );
}

#[test]
fn a_duplicate_key_points_at_the_second_one() {
    assert_error(
        &format!("{BASE}dpop:\n  proof_max_age: 60s\n  require_ath: true\n  proof_max_age: 30s\n"),
        10,
        3,
        "dpop.proof_max_age: duplicate key (first set at line 8, column 3)",
    );
    assert_error(
        &format!("listen: \"127.0.0.1:1\"\n{BASE}listen: \"127.0.0.1:2\"\n"),
        8,
        1,
        "listen: duplicate key (first set at line 1, column 1)",
    );
    assert_error(
        &format!("{BASE}routes:\n  - {{ path_prefix: /, auth: dpop, auth: none }}\n"),
        8,
        35,
        "routes[0].auth: duplicate key",
    );
}

#[test]
fn wrong_type_points_at_the_value() {
    assert_error(
        &format!("{BASE}listen: [1, 2]\n"),
        7,
        9,
        "listen: invalid type: sequence",
    );
    assert_error(&format!("{BASE}dpop: 5\n"), 7, 7, "dpop: invalid type");
    assert_error(
        &format!("{BASE}dpop:\n  nonce:\n    secrets: {{ a: b }}\n"),
        9,
        14,
        "dpop.nonce.secrets: invalid type",
    );
}

#[test]
fn bad_values_point_at_the_value_and_name_the_setting() {
    assert_error(
        &format!("{BASE}dpop:\n  proof_max_age: 5 minutes\n"),
        8,
        18,
        r#"dpop.proof_max_age: invalid duration "5 minutes" (use 500ms, 60s, 5m or 1h)"#,
    );
    assert_error(
        &format!("{BASE}dpop:\n  require_ath: maybe\n"),
        8,
        16,
        "dpop.require_ath: expected true or false",
    );
    assert_error(
        &format!("{BASE}dpop:\n  algorithms: [ES256, HS256]\n"),
        8,
        23,
        "dpop.algorithms[1]: HS256: symmetric",
    );
    assert_error(
        &format!("{BASE}listen: localhost:80\n"),
        7,
        9,
        "listen: invalid socket address",
    );
    assert_error(
        &format!("{BASE}limits:\n  max_header_bytes: 4096\n"),
        8,
        21,
        "limits.max_header_bytes: must be between 8192 and 1048576",
    );
    assert_error(
        &format!("{BASE}replay_cache:\n  capacity: 0\n"),
        8,
        13,
        "replay_cache.capacity: must be at least 1",
    );
    assert_error(
        &format!("{BASE}routes:\n- path_prefix: api\n  auth: dpop\n"),
        8,
        16,
        "routes[0].path_prefix: must start with /",
    );
    assert_error(
        &format!("{BASE}routes:\n- path_prefix: /\n  auth: basic\n"),
        9,
        9,
        "routes[0].auth: unknown value \"basic\"",
    );
    assert_error(
        &format!("{BASE}forward:\n  identity_headers:\n    jkt: \"bad name\"\n"),
        9,
        10,
        "forward.identity_headers.jkt: invalid header name",
    );
}

#[test]
fn bad_urls_point_at_the_value() {
    let ftp = BASE.replace("http://127.0.0.1:8080", "ftp://backend:8443");
    assert_error(
        &ftp,
        2,
        8,
        "upstream.url: expected http(s)://host[:port][/prefix], got \"ftp://backend:8443\"",
    );
    assert_error(
        &BASE.replace("http://127.0.0.1:8080", "127.0.0.1:8080"),
        2,
        8,
        "upstream.url:",
    );
    assert_error(
        &format!("{BASE}public_url: https://api.example.com/v1\n"),
        7,
        13,
        "public_url: expected http(s)://host[:port] without a path",
    );
    assert_error(
        &format!("{BASE}replay_cache:\n  backend: redis\n  redis_url: http://db\n"),
        9,
        14,
        "replay_cache.redis_url: must be a redis://",
    );
}

#[test]
fn unset_variable_points_at_the_scalar_that_names_it() {
    let yaml = BASE.replace("http://127.0.0.1:8080", "http://${UPSTREAM_HOST}:8080");
    assert_error(&yaml, 2, 8, "upstream.url: ${UPSTREAM_HOST} is not set");
    assert_error(
        &format!("{BASE}dpop:\n  clock_skew: ${{SKEW}}\n"),
        8,
        15,
        "dpop.clock_skew: ${SKEW} is not set",
    );
    assert_error(
        &format!("{BASE}listen: \"${{A\"\n"),
        7,
        9,
        "listen: `${` has no closing `}`",
    );
}

#[test]
fn syntax_errors_carry_their_position() {
    let (line, column, message) = error(&format!("{BASE}dpop:\n  a: [1, 2\n"));
    assert!(line >= 8, "{line} {message}");
    let at = format!(" at line {line} column {column}");
    assert!(
        !message.contains(&at),
        "the position is not repeated: {message}"
    );
}

// --- rules between settings ---

#[test]
fn upstream_readiness_is_none_tcp_or_an_http_path() {
    assert_eq!(
        parse(BASE).unwrap().upstream.readiness,
        UpstreamReadiness::None
    );
    let with = |v: &str| {
        BASE.replace(
            "  url: \"http://127.0.0.1:8080\"\n",
            &format!("  url: \"http://127.0.0.1:8080\"\n  readiness: {v}\n"),
        )
    };
    assert_eq!(
        parse(&with("tcp")).unwrap().upstream.readiness,
        UpstreamReadiness::Tcp
    );
    assert_eq!(
        parse(&with("\"http:/healthz?full=1\""))
            .unwrap()
            .upstream
            .readiness,
        UpstreamReadiness::Http {
            path: "/healthz?full=1".into()
        }
    );
    for bad in ["http", "http:healthz", "\"http://app/healthz\"", "ping"] {
        assert_error(
            &with(bad),
            3,
            14,
            "upstream.readiness: expected none, tcp or http:/path",
        );
    }
}

#[test]
fn tls_needs_both_files() {
    let both = format!("{BASE}tls:\n  cert: c.pem\n  key: k.pem\n");
    let tls = parse(&both).unwrap().tls.unwrap();
    assert_eq!((tls.cert, tls.key), ("c.pem".into(), "k.pem".into()));
    assert_error(
        &format!("{BASE}tls:\n  cert: c.pem\n"),
        7,
        1,
        "tls.key: required when tls is set",
    );
}

#[test]
fn redis_backend_needs_a_url() {
    let good = format!("{BASE}replay_cache:\n  backend: redis\n  redis_url: redis://db:6379\n");
    let c = parse(&good).unwrap();
    match c.replay_cache.backend {
        ReplayBackend::Redis {
            url,
            key_prefix,
            timeout,
        } => {
            assert_eq!(url.expose(), "redis://db:6379");
            assert_eq!(key_prefix, "dpop-gateway:jti:");
            assert_eq!(timeout, Duration::from_millis(250));
        }
        other => panic!("{other:?}"),
    }
    assert_error(
        &format!("{BASE}replay_cache:\n  backend: redis\n"),
        8,
        3,
        "replay_cache.redis_url: required when backend is redis",
    );
}

#[test]
fn introspection_format_needs_its_section() {
    let section = "  introspection:\n    endpoint: https://as.example.com/introspect\n    client_id: gw\n    client_secret: s3cret\n";
    let c = parse(&format!("{BASE}  format: introspection\n{section}")).unwrap();
    let i = c.access_tokens[0].clone().introspection.unwrap();
    assert_eq!(
        (
            i.endpoint.as_str(),
            i.client_id.as_str(),
            i.client_secret.expose()
        ),
        ("https://as.example.com/introspect", "gw", "s3cret")
    );
    assert_eq!(i.cache_ttl, Duration::from_secs(60));
    assert_error(
        &format!("{BASE}  format: introspection\n"),
        7,
        3,
        "access_token.introspection: required when format is introspection",
    );
    let partial = format!("{BASE}  introspection:\n    endpoint: https://as.example.com/introspect\n    client_id: gw\n");
    assert_error(
        &partial,
        7,
        3,
        "access_token.introspection.client_secret: required",
    );
}

#[test]
fn nonce_needs_secrets_when_enabled() {
    let secret = "0123456789abcdef0123456789abcdef";
    let c = parse(&format!(
        "{BASE}dpop:\n  nonce:\n    enabled: true\n    secrets: [\"{secret}\"]\n"
    ))
    .unwrap();
    assert_eq!(c.dpop.nonce.secrets, vec![Secret::new(secret)]);
    assert!(nonce_on(&c, 0));
    assert_error(
        &format!("{BASE}dpop:\n  nonce:\n    enabled: true\n"),
        9,
        5,
        "dpop.nonce.enabled: true needs dpop.nonce.secrets",
    );
    assert_error(
        &format!("{BASE}dpop:\n  nonce:\n    secrets: [short]\n"),
        9,
        15,
        "dpop.nonce.secrets[0]: a nonce secret must be at least 32 bytes",
    );
}

#[test]
fn route_nonce_needs_secrets() {
    let secret = "0123456789abcdef0123456789abcdef";
    let routes = "routes:\n  - { path_prefix: /a, auth: dpop }\n  - { path_prefix: /, auth: dpop, nonce: true }\n";
    let c = parse(&format!(
        "{BASE}{routes}dpop:\n  nonce:\n    secrets: [\"{secret}\"]\n"
    ))
    .unwrap();
    assert!(!nonce_on(&c, 0) && nonce_on(&c, 1));
    assert_error(
        &format!("{BASE}{routes}"),
        9,
        35,
        "routes[1].nonce: true needs dpop.nonce.secrets",
    );
}

#[test]
fn plain_http_to_the_authorization_server_needs_the_opt_in() {
    let no_keys = BASE.replace("  jwks_file: config/demo/jwks.json\n", "");
    let uri = no_keys.clone() + "  jwks_uri: http://as.internal/jwks\n";
    let discovery = no_keys.replace("https://as.example.com", "http://as.internal");
    let section = "  introspection:\n    endpoint: HTTP://as.internal/introspect\n    client_id: gw\n    client_secret: s\n";
    let introspection = format!("{BASE}  format: introspection\n{section}");
    for (yaml, line, column, path) in [
        (&uri, 6, 3, "access_token.jwks_uri"),
        (&discovery, 4, 3, "access_token.issuer"),
        (&introspection, 9, 5, "access_token.introspection.endpoint"),
    ] {
        assert_error(yaml, line, column, &format!("{path}: \""));
        let (_, _, message) = error(yaml);
        assert!(message.contains("is plain HTTP"), "{message}");
        assert!(message.contains("allow_insecure_http: true"), "{message}");
        let allowed = format!("{yaml}  allow_insecure_http: true\n");
        let c = parse(&allowed).unwrap_or_else(|e| panic!("{e}\n{allowed}"));
        assert!(c.access_tokens[0].allow_insecure_http);
        // The opt-in survives `check`'s output.
        let again = parse(&c.to_masked_yaml()).unwrap();
        assert!(again.access_tokens[0].allow_insecure_http);
    }
    // https needs nothing, and a jwks_file names no URL at all (its issuer is only compared).
    assert!(!parse(BASE).unwrap().access_tokens[0].allow_insecure_http);
    assert!(parse(&BASE.replace("https://as.example.com", "http://as.internal")).is_ok());
}

#[test]
fn jwks_uri_and_file_are_exclusive() {
    assert_error(
        &format!("{BASE}  jwks_uri: https://as.example.com/jwks\n"),
        6,
        3,
        "set jwks_uri or jwks_file, not both",
    );
}

#[test]
fn algorithm_lists_must_not_be_empty() {
    assert_error(
        &format!("{BASE}dpop:\n  algorithms: []\n"),
        8,
        3,
        "dpop.algorithms: empty",
    );
    assert_error(
        &format!("{BASE}  algorithms: []\n"),
        7,
        3,
        "access_token.algorithms: empty",
    );
    let c = parse(&format!("{BASE}dpop:\n  algorithms: [EdDSA]\n")).unwrap();
    assert_eq!(c.dpop.algorithms.to_names(), "EdDSA");
    // RFC 9864's name is its own entry: listing one does not allow the other.
    let c = parse(&format!(
        "{BASE}  algorithms: [Ed25519]\ndpop:\n  algorithms: [Ed25519, ES256]\n"
    ))
    .unwrap();
    assert_eq!(c.dpop.algorithms.to_names(), "ES256 Ed25519");
    assert!(!c.dpop.algorithms.contains(Algorithm::EdDSA));
    assert_eq!(c.access_tokens[0].algorithms.to_names(), "Ed25519");
}

#[test]
fn required_settings_point_at_their_section() {
    assert_error(
        &BASE.replace("  issuer: \"https://as.example.com\"\n", ""),
        3,
        1,
        "access_token.issuer: required",
    );
    assert_error(
        &BASE.replace("  audience: \"https://api.example.com\"\n", ""),
        3,
        1,
        "access_token.audience: required when format is jwt",
    );
    assert_error(
        &BASE.replace("  url: \"http://127.0.0.1:8080\"\n", ""),
        1,
        1,
        "upstream.url: required",
    );
    assert_error("", 1, 1, "upstream.url: required");
    assert_error(
        &format!("{BASE}routes:\n- path_prefix: /\n"),
        8,
        1,
        "routes[0].auth: required",
    );
    assert_error(&format!("{BASE}routes: []\n"), 7, 1, "routes: empty");
}

#[test]
fn introspection_needs_no_audience() {
    let section = "  introspection:\n    endpoint: https://as/introspect\n    client_id: gw\n    client_secret: s\n";
    let yaml = BASE.replace("  audience: \"https://api.example.com\"\n", "")
        + "  format: introspection\n"
        + section;
    assert_eq!(parse(&yaml).unwrap().access_tokens[0].audience, None);
}

#[test]
fn proof_limit_must_fit_in_the_header_limit() {
    let ok = parse(&format!(
        "{BASE}limits:\n  max_header_bytes: 8192\n  max_proof_bytes: 8192\n"
    ))
    .unwrap();
    assert_eq!(ok.limits.max_proof_bytes, 8192);
    let yaml = format!("{BASE}limits:\n  max_header_bytes: 8192\n  max_proof_bytes: 9000\n");
    assert_error(
        &yaml,
        9,
        3,
        "limits.max_proof_bytes: 9000 must not exceed limits.max_header_bytes (8192)",
    );
    assert_error(
        &format!("{BASE}limits:\n  max_proof_bytes: 100\n"),
        8,
        20,
        "between 512 and",
    );
}

#[test]
fn a_route_hidden_by_an_earlier_prefix_is_an_error() {
    let ok = "routes:\n  - { path_prefix: /healthz, auth: none }\n  - { path_prefix: /health, auth: dpop }\n  - { path_prefix: /, auth: dpop }\n";
    assert_eq!(parse(&format!("{BASE}{ok}")).unwrap().routes.len(), 3);
    let hidden =
        "routes:\n  - { path_prefix: /, auth: dpop }\n  - { path_prefix: /healthz, auth: none }\n";
    assert_error(
        &format!("{BASE}{hidden}"),
        9,
        7,
        "routes[1].path_prefix: \"/healthz\" can never match: routes[0]",
    );
    let same =
        "routes:\n  - { path_prefix: /a, auth: dpop }\n  - { path_prefix: /a/b, auth: none }\n";
    assert_error(&format!("{BASE}{same}"), 9, 7, "routes[1].path_prefix");
}

#[test]
fn identity_headers_can_be_disabled_renamed_but_not_shared() {
    let yaml =
        format!("{BASE}forward:\n  identity_headers:\n    subject: null\n    scope: X-Scope\n");
    let h = parse(&yaml).unwrap().forward.identity_headers;
    assert_eq!(h.subject, None);
    assert_eq!(h.scope.map(|n| n.to_string()).as_deref(), Some("x-scope"));
    assert_eq!(h.jkt.map(|n| n.to_string()).as_deref(), Some("x-dpop-jkt"));
    let shared = format!("{BASE}forward:\n  identity_headers:\n    jkt: X-Auth-Subject\n");
    assert_error(&shared, 9, 5, "forward.identity_headers.jkt: x-auth-subject is already used by forward.identity_headers.subject");
}

// --- substitution ---

#[test]
fn variables_work_for_strings_numbers_durations_and_booleans() {
    let yaml = format!(
            "{BASE}listen: \"${{HOST}}:${{PORT}}\"\ndpop:\n  proof_max_age: ${{AGE}}\n  require_ath: ${{ATH}}\nreplay_cache:\n  capacity: ${{CAP}}\n"
        );
    let vars = env(&[
        ("HOST", "10.0.0.1"),
        ("PORT", "443"),
        ("AGE", "2m"),
        ("ATH", "false"),
        ("CAP", "42"),
    ]);
    let c = Config::from_yaml_str(&yaml, "t", &vars).unwrap();
    assert_eq!(c.listen, "10.0.0.1:443".parse().unwrap());
    assert_eq!(c.dpop.proof_max_age, Duration::from_secs(120));
    assert!(!c.dpop.require_ath);
    assert!(matches!(
        c.replay_cache.backend,
        ReplayBackend::Memory { capacity: 42 }
    ));
}

#[test]
fn a_variable_cannot_inject_yaml_structure() {
    let yaml = BASE.replace("\"https://as.example.com\"", "${ISSUER}");
    let vars = env(&[("ISSUER", "https://as.example.com\n  evil: 1")]);
    let c = Config::from_yaml_str(&yaml, "t", &vars).unwrap();
    assert_eq!(
        c.access_tokens[0].issuer,
        "https://as.example.com\n  evil: 1"
    );
    let vars = env(&[("ISSUER", "x\nlisten: \"6.6.6.6:1\"")]);
    let c = Config::from_yaml_str(&yaml, "t", &vars).unwrap();
    assert_eq!(c.listen, "0.0.0.0:8443".parse().unwrap());
}

#[test]
fn sentinel_and_cluster_backends_need_urls_and_a_master() {
    let sentinel = format!("{BASE}replay_cache:\n  backend: redis_sentinel\n  redis_urls: [\"redis://s1:26379\", \"redis://s2:26379\"]\n  sentinel_master: mymaster\n  min_replicas: 1\n  per_key_limit: 50\n");
    let c = parse(&sentinel).unwrap();
    assert_eq!(c.replay_cache.min_replicas, 1);
    assert_eq!(c.replay_cache.per_key_limit, 50);
    match c.replay_cache.backend {
        ReplayBackend::RedisSentinel { urls, master, .. } => {
            assert_eq!(urls.len(), 2);
            assert_eq!(master, "mymaster");
        }
        other => panic!("{other:?}"),
    }
    let cluster = format!(
        "{BASE}replay_cache:\n  backend: redis_cluster\n  redis_urls: [\"redis://n1:6379\"]\n"
    );
    match parse(&cluster).unwrap().replay_cache.backend {
        ReplayBackend::RedisCluster { urls, .. } => assert_eq!(urls.len(), 1),
        other => panic!("{other:?}"),
    }
    assert_error(
        &format!(
            "{BASE}replay_cache:\n  backend: redis_sentinel\n  redis_urls: [\"redis://s1\"]\n"
        ),
        8,
        3,
        "replay_cache.sentinel_master: required when backend is redis_sentinel",
    );
    assert_error(
        &format!("{BASE}replay_cache:\n  backend: redis_cluster\n"),
        8,
        3,
        "replay_cache.redis_urls: at least one URL is required when backend is redis_cluster",
    );
}

#[test]
fn per_key_limit_zero_is_a_hundred_proofs_a_second_over_the_window() {
    let c = parse(&format!("{BASE}replay_cache:\n  per_key_limit: 0\n")).unwrap();
    // proof_max_age 60s + clock_skew 5s (the defaults in BASE unless it sets them).
    let window = c.dpop.proof_max_age.as_secs() + c.dpop.clock_skew.as_secs();
    assert_eq!(c.replay_cache.per_key_limit, 100 * window);
    let unset = parse(BASE).unwrap();
    assert_eq!(unset.replay_cache.per_key_limit, 100 * window);
}

#[test]
fn double_dollar_writes_a_literal() {
    let yaml = format!("{BASE}replay_cache:\n  backend: redis\n  redis_url: redis://db\n  key_prefix: \"$${{app}}:\"\n");
    match parse(&yaml).unwrap().replay_cache.backend {
        ReplayBackend::Redis { key_prefix, .. } => assert_eq!(key_prefix, "${app}:"),
        other => panic!("{other:?}"),
    }
}

// --- masked output ---

const FULL: &str = "\
listen: \"127.0.0.1:0\"
tls: { cert: /tls/c.pem, key: /tls/k.pem }
public_url: https://api.example.com/
cors:
  allow_origins: [\"https://app.example\"]
upstream:
  url: http://127.0.0.1:8080/api/
routes:
  - { path_prefix: /healthz, auth: none }
  - { path_prefix: /mixed, auth: dpop_or_bearer, nonce: false }
  - { path_prefix: /, auth: dpop }
replay_cache:
  backend: redis
  redis_url: \"redis://user:${REDIS_PASSWORD}@db:6379/0\"
  key_prefix: \"gw$${x}:\"
  timeout: 1500ms
  on_error: allow
access_token:
  format: introspection
  issuer: https://as.example.com
  jwks_uri: https://as.example.com/jwks
  require_typ: false
  introspection:
    endpoint: https://as.example.com/introspect
    client_id: gateway
    client_secret: \"${INTROSPECTION_SECRET}\"
    cache_ttl: 0s
forward:
  authorization: keep
  identity_headers: { subject: null }
limits:
  max_concurrent_streams: 7
";

fn full_env() -> HashMap<String, String> {
    env(&[
        ("REDIS_PASSWORD", "hunter2"),
        ("INTROSPECTION_SECRET", "s3cr3t-value"),
    ])
}

#[test]
fn masked_yaml_hides_every_secret() {
    let c = Config::from_yaml_str(FULL, "t", &full_env()).unwrap();
    let out = c.to_masked_yaml();
    assert!(
        !out.contains("hunter2") && !out.contains("s3cr3t-value"),
        "{out}"
    );
    assert!(out.contains("redis://user:***@db:6379/0"), "{out}");
    assert!(out.contains("client_secret: '***'"), "{out}");
    let secret = "0123456789abcdef0123456789abcdef";
    let c = parse(&format!(
        "{BASE}dpop:\n  nonce:\n    enabled: true\n    secrets: [\"{secret}\"]\n"
    ))
    .unwrap();
    let out = c.to_masked_yaml();
    assert!(!out.contains(secret) && out.contains("- '***'"), "{out}");
}

#[test]
fn masked_yaml_parses_back_to_the_same_configuration() {
    for (yaml, vars) in [
        (FULL, full_env()),
        (BASE, HashMap::new()),
        (include_str!("../../config/gateway.yaml"), HashMap::new()),
    ] {
        let first = Config::from_yaml_str(yaml, "t", &vars)
            .unwrap()
            .to_masked_yaml();
        let again = Config::from_yaml_str(&first, "masked", &HashMap::new())
            .unwrap_or_else(|e| panic!("{e}\n{first}"))
            .to_masked_yaml();
        assert_eq!(first, again);
    }
}

#[test]
fn masked_yaml_shows_resolved_values_in_the_input_layout() {
    let out = Config::from_yaml_str(FULL, "t", &full_env())
        .unwrap()
        .to_masked_yaml();
    for line in [
        "public_url: https://api.example.com\n",
        "  url: http://127.0.0.1:8080/api\n",
        "  key_prefix: 'gw$${x}:'\n",
        "  timeout: 1500ms\n",
        "    cache_ttl: 0s\n",
        "    subject: null\n",
        "    client_id: x-auth-client-id\n",
        "  max_concurrent_streams: 7\n",
        "  proof_max_age: 60s\n",
    ] {
        assert!(out.contains(line), "want {line:?} in\n{out}");
    }
}

#[test]
fn a_masked_nonce_secret_is_refused_when_read_back() {
    let secret = "0123456789abcdef0123456789abcdef";
    let out = parse(&format!(
        "{BASE}dpop:\n  nonce:\n    enabled: true\n    secrets: [\"{secret}\"]\n"
    ))
    .unwrap()
    .to_masked_yaml();
    let err = parse(&out).unwrap_err();
    assert!(
        err.message
            .contains("dpop.nonce.secrets[0]: a nonce secret must be at least 32 bytes"),
        "{err}"
    );
}

// --- load ---

#[test]
fn load_reports_a_read_error_at_1_1() {
    let err = Config::load(Path::new("/nonexistent/dpop-gateway.yaml")).unwrap_err();
    assert_eq!(
        (err.origin.as_str(), err.line, err.column),
        ("/nonexistent/dpop-gateway.yaml", 1, 1)
    );
    assert!(
        err.message.starts_with("cannot read the configuration: "),
        "{err}"
    );
}

#[test]
fn secret_debug_is_masked() {
    assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
}

/// [`BASE`] with `upstreams` and `routes` appended (line 7 starts `upstreams:`).
fn with_upstreams(upstreams: &str, routes: &str) -> String {
    format!("{BASE}upstreams:\n{upstreams}routes:\n{routes}")
}

#[test]
fn named_upstreams_are_kept_in_order_and_routes_name_them() {
    let c = parse(&with_upstreams(
        "  billing: { url: \"https://billing.internal:8443/v1/\", tls: { ca_file: /etc/ca.pem, server_name: billing.internal } }\n  \
         grpc: { url: \"http://10.0.0.9:50051\", protocol: http2 }\n",
        "  - { path_prefix: /billing, auth: dpop, upstream: billing, strip_prefix: true }\n  \
         - { path_prefix: /pkg.Svc, auth: dpop, upstream: grpc }\n  \
         - { path_prefix: /, auth: dpop, upstream: default }\n",
    ))
    .unwrap();
    let names: Vec<&str> = c.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["billing", "grpc"]);
    let billing = &c.upstreams[0].config;
    assert_eq!(billing.url, "https://billing.internal:8443/v1");
    assert_eq!(billing.protocol, UpstreamProtocol::Auto);
    assert_eq!(
        billing.tls,
        Some(UpstreamTls {
            ca_file: Some("/etc/ca.pem".into()),
            server_name: Some("billing.internal".into()),
            client_cert: None,
        })
    );
    assert_eq!(c.upstreams[1].config.protocol, UpstreamProtocol::Http2);
    assert!(c.upstreams[1].config.tls.is_none());
    assert_eq!(
        c.routes
            .iter()
            .map(|r| (r.upstream, r.strip_prefix))
            .collect::<Vec<_>>(),
        [(Some(0), true), (Some(1), false), (None, false)]
    );
    // An https upstream without `tls` gets the defaults (system roots, the URL's host).
    let c = parse(&BASE.replace("http://127.0.0.1:8080", "https://api.internal")).unwrap();
    assert_eq!(c.upstream.tls, Some(UpstreamTls::default()));
    // What `check` prints reads back the same.
    let c = parse(&with_upstreams(
        "  billing: { url: \"https://b:8443\", tls: { client_cert: /c.pem, client_key: /k.pem } }\n",
        "  - { path_prefix: /billing, auth: dpop, upstream: billing, strip_prefix: true }\n",
    ))
    .unwrap();
    let again = parse(&c.to_masked_yaml()).unwrap();
    assert_eq!(again.upstreams[0].config.tls, c.upstreams[0].config.tls);
    assert_eq!(again.routes, c.routes);
}

#[test]
fn a_route_naming_an_unknown_upstream_is_refused_at_its_key() {
    assert_error(
        &with_upstreams(
            "  billing: { url: \"http://b:1\" }\n",
            "  - path_prefix: /x\n    auth: dpop\n    upstream: biling\n",
        ),
        12,
        5,
        "routes[0].upstream: no upstream named \"biling\" (known: default, billing)",
    );
}

#[test]
fn upstream_settings_are_checked_where_they_are_written() {
    // `default` is the name of `upstream`.
    assert_error(
        &with_upstreams(
            "  default: { url: \"http://b:1\" }\n",
            "  - { path_prefix: /, auth: dpop }\n",
        ),
        8,
        3,
        "\"default\" is the name of `upstream`",
    );
    // Names are label-safe.
    assert_error(
        &with_upstreams(
            "  \"a.b\": { url: \"http://b:1\" }\n",
            "  - { path_prefix: /, auth: dpop }\n",
        ),
        8,
        3,
        "an upstream name is 1 to 64 letters",
    );
    // tls only for https.
    assert_error(
        &with_upstreams(
            "  b:\n    url: \"http://b:1\"\n    tls: { ca_file: /ca.pem }\n",
            "  - { path_prefix: /, auth: dpop }\n",
        ),
        10,
        5,
        "upstreams.b.tls: only for https:// upstreams",
    );
    // A client certificate needs its key.
    assert_error(
        &with_upstreams(
            "  b:\n    url: \"https://b:1\"\n    tls:\n      client_cert: /c.pem\n",
            "  - { path_prefix: /, auth: dpop }\n",
        ),
        11,
        7,
        "upstreams.b.tls.client_cert: needs upstreams.b.tls.client_key as well",
    );
    // Unknown protocol spelling.
    assert_error(
        &with_upstreams(
            "  b:\n    url: \"http://b:1\"\n    protocol: h2c\n",
            "  - { path_prefix: /, auth: dpop }\n",
        ),
        10,
        15,
        "upstreams.b.protocol:",
    );
    // There is no way to skip verification.
    assert_error(
        &with_upstreams(
            "  b:\n    url: \"https://b:1\"\n    tls: { insecure_skip_verify: true }\n",
            "  - { path_prefix: /, auth: dpop }\n",
        ),
        10,
        12,
        "insecure_skip_verify",
    );
    // Readiness is the default upstream's.
    assert_error(
        &with_upstreams(
            "  b:\n    url: \"http://b:1\"\n    readiness: tcp\n",
            "  - { path_prefix: /, auth: dpop }\n",
        ),
        10,
        5,
        "upstreams.b.readiness: only the default upstream",
    );
}

#[test]
fn forward_auth_is_loopback_unless_the_operator_opts_in() {
    let c = parse(BASE).unwrap();
    assert!(c.forward_auth.is_none());
    let c = parse(&format!(
        "{BASE}forward_auth:\n  listen: \"127.0.0.1:8081\"\n  path_prefix: /ext_authz/\n"
    ))
    .unwrap();
    let fa = c.forward_auth.unwrap();
    assert_eq!(fa.listen, "127.0.0.1:8081".parse().unwrap());
    assert_eq!(fa.path_prefix.as_deref(), Some("/ext_authz"));
    assert!(!fa.allow_non_loopback);
    for addr in ["0.0.0.0:8081", "10.0.0.5:8081", "[::]:8081"] {
        assert_error(
            &format!("{BASE}forward_auth:\n  listen: \"{addr}\"\n"),
            8,
            3,
            "not a loopback address",
        );
        let c = parse(&format!(
            "{BASE}forward_auth:\n  listen: \"{addr}\"\n  allow_non_loopback: true\n"
        ))
        .unwrap();
        assert!(c.forward_auth.unwrap().allow_non_loopback);
    }
    assert_error(
        &format!("{BASE}forward_auth:\n  path_prefix: /x\n"),
        7,
        1,
        "forward_auth.listen: required",
    );
    let c = parse(&format!("{BASE}forward_auth:\n  listen: \"[::1]:8081\"\n")).unwrap();
    let printed = masked::to_masked_yaml(&c);
    assert!(
        printed.contains("forward_auth:\n  listen: '[::1]:8081'\n  allow_non_loopback: false"),
        "{printed}"
    );
    assert!(parse(&printed).is_ok(), "{printed}");
}

#[test]
fn routes_take_methods_issuers_and_require() {
    let yaml = format!(
        "{BASE}routes:\n  - path_prefix: /api\n    methods: [GET, HEAD]\n    auth: dpop\n    require:\n      scopes: [\"api:read\"]\n  - path_prefix: /api\n    methods: [POST]\n    auth: dpop\n    issuers: [\"https://as.example.com\"]\n    require:\n      scopes: [\"api:write\", admin]\n      claims: {{ tenant: acme, level: 3 }}\n"
    );
    let c = parse(&yaml).unwrap();
    assert_eq!(
        c.routes[0].methods,
        Some(vec![http::Method::GET, http::Method::HEAD])
    );
    assert_eq!(c.routes[0].require.scopes, ["api:read"]);
    assert_eq!(
        c.routes[1].issuers.as_deref(),
        Some(&["https://as.example.com".to_owned()][..])
    );
    assert_eq!(
        c.routes[1].require.claims,
        [
            ("level".into(), "3".into()),
            ("tenant".into(), "acme".into())
        ]
    );
    let masked = c.to_masked_yaml();
    assert!(
        masked.contains("methods:") && masked.contains("tenant: acme"),
        "{masked}"
    );
}

#[test]
fn bad_methods_and_unknown_issuers_point_at_the_value() {
    let route =
        |extra: &str| format!("{BASE}routes:\n  - path_prefix: /api\n    auth: dpop\n{extra}");
    assert_error(
        &route("    methods: [GET, get]\n"),
        10,
        20,
        "routes[0].methods[1]: \"get\": methods are case-sensitive; write \"GET\"",
    );
    assert_error(
        &route("    methods: [\"GE T\"]\n"),
        10,
        15,
        "is not an HTTP method",
    );
    assert_error(
        &route("    methods: []\n"),
        10,
        5,
        "routes[0].methods: empty",
    );
    assert_error(
        &route("    methods: [GET, GET]\n"),
        10,
        20,
        "routes[0].methods[1]: GET is listed twice",
    );
    assert_error(
        &route("    issuers: [\"https://as.example.com\", \"https://other\"]\n"),
        10,
        41,
        "routes[0].issuers[1]: \"https://other\" is not an access_token issuer",
    );
    assert_error(
        &route("    require: { scopes: [\"a b\"] }\n"),
        10,
        25,
        "is not a scope name",
    );
    assert_error(
        &route("    require: { scope: [a] }\n"),
        10,
        16,
        "unknown key",
    );
}

#[test]
fn routes_sharing_a_prefix_may_differ_by_method_but_not_repeat_one() {
    let two = "routes:\n  - { path_prefix: /a/b, auth: none }\n  - { path_prefix: /a, methods: [GET], auth: dpop }\n  - { path_prefix: /a, methods: [POST], auth: dpop }\n";
    assert_eq!(parse(&format!("{BASE}{two}")).unwrap().routes.len(), 3);
    let hidden = "routes:\n  - { path_prefix: /a, methods: [GET, POST], auth: dpop }\n  - { path_prefix: /a, methods: [POST], auth: none }\n";
    assert_error(
        &format!("{BASE}{hidden}"),
        9,
        7,
        "routes[1].path_prefix: \"/a\" can never match",
    );
    let all = "routes:\n  - { path_prefix: /a, auth: dpop }\n  - { path_prefix: /a, methods: [GET], auth: none }\n";
    assert_error(&format!("{BASE}{all}"), 9, 7, "can never match");
    let none = "routes:\n  - { path_prefix: /a, auth: none, require: { scopes: [x] } }\n";
    assert_error(
        &format!("{BASE}{none}"),
        8,
        36,
        "routes[0].require: needs a token",
    );
}

#[test]
fn access_token_may_list_several_issuers_each_once_and_one_introspection() {
    let two = "upstream:\n  url: \"http://127.0.0.1:8080\"\naccess_token:\n  - issuer: \"https://a.example\"\n    audience: api\n    jwks_file: a.json\n  - issuer: \"https://b.example\"\n    audience: api\n    jwks_file: b.json\nroutes:\n  - { path_prefix: /b, auth: dpop, issuers: [\"https://b.example\"] }\n";
    let c = parse(two).unwrap();
    let issuers: Vec<_> = c.access_tokens.iter().map(|a| a.issuer.as_str()).collect();
    assert_eq!(issuers, ["https://a.example", "https://b.example"]);
    assert!(
        c.to_masked_yaml().contains("- format: jwt"),
        "{}",
        c.to_masked_yaml()
    );
    assert_error(
        &two.replace("issuers: [\"https://b.example\"]", "issuers: [\"https://c.example\"]"),
        11,
        46,
        "routes[0].issuers[0]: \"https://c.example\" is not an access_token issuer (configured: \"https://a.example\", \"https://b.example\")",
    );
    assert_error(
        &two.replace(
            "https://b.example\"\n    audience",
            "https://a.example\"\n    audience",
        ),
        7,
        5,
        "access_token[1].issuer: \"https://a.example\" is already access_token[0]'s",
    );
    assert_error(
        &two.replace(
            "    audience: api\n    jwks_file: b.json\n",
            "    jwks_file: b.json\n",
        ),
        7,
        3,
        "access_token[1].audience: required when format is jwt",
    );
    let intro = |iss: &str| {
        format!("  - format: introspection\n    issuer: \"{iss}\"\n    introspection: {{ endpoint: \"https://{iss}/i\", client_id: g, client_secret: s }}\n")
    };
    let yaml = format!(
        "upstream:\n  url: \"http://127.0.0.1:8080\"\naccess_token:\n{}{}",
        intro("x"),
        intro("y")
    );
    assert_error(
        &yaml,
        7,
        5,
        "access_token[1].format: access_token[0] already uses introspection",
    );
}

// --- cors.preflight and max_body_bytes ---

#[test]
fn preflight_answers_need_origins_and_their_settings_need_answers() {
    let c = parse(BASE).unwrap();
    assert_eq!(c.cors.preflight, CorsPreflight::Forward);
    let yaml = format!("{BASE}cors:\n  allow_origins: [\"https://spa.example\"]\n  preflight: answer\n  allow_headers: [X-Request-Id, content-type, X-Request-Id]\n  max_age: 1h\n");
    let c = parse(&yaml).unwrap();
    assert_eq!(c.cors.preflight, CorsPreflight::Answer);
    let names: Vec<&str> = c.cors.allow_headers.iter().map(|h| h.as_str()).collect();
    assert_eq!(names, ["x-request-id", "content-type"]);
    assert_eq!(c.cors.max_age, Duration::from_secs(3600));
    let again = parse(&c.to_masked_yaml()).unwrap();
    assert_eq!(again.cors, c.cors);
    let defaults = parse(&format!(
        "{BASE}cors:\n  allow_origins: [\"*\"]\n  preflight: answer\n"
    ))
    .unwrap();
    assert_eq!(defaults.cors.allow_headers, [http::header::CONTENT_TYPE]);
    assert_eq!(defaults.cors.max_age, Duration::from_secs(600));

    assert_error(
        &format!("{BASE}cors:\n  preflight: answer\n"),
        8,
        3,
        "cors.preflight: answer needs cors.allow_origins",
    );
    assert_error(
        &format!("{BASE}cors:\n  allow_origins: []\n  preflight: answer\n"),
        9,
        3,
        "cors.preflight: answer needs cors.allow_origins",
    );
    assert_error(
        &format!("{BASE}cors:\n  allow_origins: [\"*\"]\n  max_age: 5m\n"),
        9,
        3,
        "cors.max_age: only used when the gateway answers preflights",
    );
    assert_error(
        &format!("{BASE}cors:\n  allow_origins: [\"*\"]\n  preflight: ask\n"),
        9,
        14,
        "unknown value \"ask\", expected forward or answer",
    );
    assert_error(
        &format!("{BASE}cors:\n  allow_origins: [\"*\"]\n  preflight: answer\n  allow_headers: [\"*\"]\n"),
        10,
        19,
        "a wildcard is not accepted",
    );
}

#[test]
fn a_route_body_limit_overrides_the_global_one() {
    let yaml = format!("{BASE}routes:\n  - {{ path_prefix: /upload, auth: dpop, max_body_bytes: 1048576 }}\n  - {{ path_prefix: /, auth: dpop }}\nlimits:\n  max_body_bytes: 65536\n");
    let c = parse(&yaml).unwrap();
    assert_eq!(c.routes[0].max_body_bytes, Some(1_048_576));
    assert_eq!(c.routes[1].max_body_bytes, None);
    assert_eq!(c.limits.max_body_bytes, Some(65_536));
    let router =
        crate::route::Router::new(&c.routes, false).with_body_limit(c.limits.max_body_bytes);
    assert_eq!(router.find("/upload/x").max_body_bytes, Some(1_048_576));
    assert_eq!(router.find("/other").max_body_bytes, Some(65_536));
    let out = c.to_masked_yaml();
    assert!(out.contains("max_body_bytes: 1048576"), "{out}");
    assert!(out.contains("max_body_bytes: 65536"), "{out}");
    assert_eq!(parse(&out).unwrap().routes, c.routes);
    assert!(parse(BASE).unwrap().limits.max_body_bytes.is_none());
    assert_error(
        &format!("{BASE}limits:\n  max_body_bytes: 1MiB\n"),
        8,
        19,
        "limits.max_body_bytes: expected a whole number",
    );
}
