//! The serde mirror of the YAML: every section `#[serde(deny_unknown_fields)]`, every setting
//! optional here (defaults and required settings are decided in `validate`, which can name them).
//! Every setting is a [`Scalar<T>`] of a type in `scalars.rs`, which holds the rules that
//! involve one value; rules that compare values live in `validate`. No I/O.

use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::env::EnvLookup;
use super::scalars::*;
use super::yaml::{self, NodeDe, YamlError};
use super::{
    AuthMode, CorsPreflight, EncodedSlashes, ForwardAuthorization, OnError, PublicUrl, TokenFormat,
    UpstreamProtocol, UpstreamReadiness,
};
use crate::jose::Algorithm;

/// The whole document.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "the gateway configuration (a mapping of settings)"
)]
pub(crate) struct RawConfig {
    pub(crate) listen: Option<Scalar<Addr>>,
    pub(crate) tls: Option<RawTls>,
    pub(crate) admin_listen: Option<Scalar<Addr>>,
    pub(crate) shutdown_timeout: Option<Scalar<Dur<true>>>,
    pub(crate) public_url: Option<Scalar<PublicUrl>>,
    pub(crate) trust_forwarded_headers: Option<Scalar<Flag>>,
    pub(crate) resource_metadata: Option<RawResourceMetadata>,
    pub(crate) cors: Option<RawCors>,
    pub(crate) upstream: Option<RawUpstream>,
    pub(crate) upstreams: Option<RawUpstreams>,
    pub(crate) routes: Option<Vec<RawRoute>>,
    pub(crate) dpop: Option<RawDpop>,
    pub(crate) replay_cache: Option<RawReplayCache>,
    pub(crate) access_token: Option<OneOrMany<RawAccessToken>>,
    pub(crate) forward: Option<RawForward>,
    pub(crate) limits: Option<RawLimits>,
    pub(crate) paths: Option<RawPaths>,
    pub(crate) forward_auth: Option<RawForwardAuth>,
    pub(crate) explorer: Option<RawExplorer>,
}

/// `forward_auth`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with listen, path_prefix, allow_non_loopback"
)]
pub(crate) struct RawForwardAuth {
    pub(crate) listen: Option<Scalar<Addr>>,
    pub(crate) path_prefix: Option<Scalar<PathPrefix>>,
    pub(crate) allow_non_loopback: Option<Scalar<Flag>>,
}

/// `explorer`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with enabled, decisions")]
pub(crate) struct RawExplorer {
    pub(crate) enabled: Option<Scalar<Flag>>,
    pub(crate) decisions: Option<Scalar<Int<1, 10_000>>>,
}

/// `tls`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with cert and key")]
pub(crate) struct RawTls {
    pub(crate) cert: Option<Scalar<FilePath>>,
    pub(crate) key: Option<Scalar<FilePath>>,
}

/// `resource_metadata`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with enabled")]
pub(crate) struct RawResourceMetadata {
    pub(crate) enabled: Option<Scalar<Flag>>,
}

/// `cors`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with allow_origins, preflight, allow_headers, max_age"
)]
pub(crate) struct RawCors {
    pub(crate) allow_origins: Option<Vec<Scalar<Origin>>>,
    pub(crate) preflight: Option<Scalar<CorsPreflight>>,
    pub(crate) allow_headers: Option<Vec<Scalar<FieldName>>>,
    pub(crate) max_age: Option<Scalar<Dur<true>>>,
}

/// `upstream`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with url, protocol, connect_timeout, request_timeout, readiness, tls"
)]
pub(crate) struct RawUpstream {
    pub(crate) url: Option<Scalar<UpstreamUrl>>,
    pub(crate) protocol: Option<Scalar<UpstreamProtocol>>,
    pub(crate) connect_timeout: Option<Scalar<Dur<false>>>,
    pub(crate) request_timeout: Option<Scalar<Dur<false>>>,
    pub(crate) readiness: Option<Scalar<UpstreamReadiness>>,
    pub(crate) tls: Option<RawUpstreamTls>,
}

/// `upstream.tls`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with ca_file, server_name, client_cert, client_key"
)]
pub(crate) struct RawUpstreamTls {
    pub(crate) ca_file: Option<Scalar<FilePath>>,
    pub(crate) server_name: Option<Scalar<ServerName>>,
    pub(crate) client_cert: Option<Scalar<FilePath>>,
    pub(crate) client_key: Option<Scalar<FilePath>>,
}

/// `upstreams`: named upstreams, in the order written.
#[derive(Debug, Default)]
pub(crate) struct RawUpstreams(pub(crate) Vec<(String, RawUpstream)>);

/// One entry of `routes`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a route: a mapping with path_prefix, auth and optionally methods, nonce, issuers, require, upstream, strip_prefix, max_body_bytes"
)]
pub(crate) struct RawRoute {
    pub(crate) path_prefix: Option<Scalar<PathPrefix>>,
    pub(crate) methods: Option<Vec<Scalar<MethodName>>>,
    pub(crate) auth: Option<Scalar<AuthMode>>,
    pub(crate) nonce: Option<Scalar<Flag>>,
    pub(crate) issuers: Option<Vec<Scalar<Text>>>,
    pub(crate) require: Option<RawRequire>,
    pub(crate) upstream: Option<Scalar<UpstreamName>>,
    pub(crate) strip_prefix: Option<Scalar<Flag>>,
    pub(crate) max_body_bytes: Option<Scalar<Int<0, { u64::MAX }>>>,
}

/// `routes[].require`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with scopes and claims")]
pub(crate) struct RawRequire {
    pub(crate) scopes: Option<Vec<Scalar<ScopeName>>>,
    pub(crate) claims: Option<std::collections::BTreeMap<String, Scalar<Text>>>,
}

/// `dpop`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of DPoP settings")]
pub(crate) struct RawDpop {
    pub(crate) algorithms: Option<Vec<Scalar<Algorithm>>>,
    pub(crate) proof_max_age: Option<Scalar<Dur<false>>>,
    pub(crate) clock_skew: Option<Scalar<Dur<true>>>,
    pub(crate) require_ath: Option<Scalar<Flag>>,
    pub(crate) nonce: Option<RawNonce>,
}

/// `dpop.nonce`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with enabled, secrets, lifetime"
)]
pub(crate) struct RawNonce {
    pub(crate) enabled: Option<Scalar<Flag>>,
    pub(crate) secrets: Option<Vec<Scalar<NonceSecret>>>,
    pub(crate) lifetime: Option<Scalar<Dur<false>>>,
}

/// `replay_cache`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of replay cache settings")]
pub(crate) struct RawReplayCache {
    pub(crate) backend: Option<Scalar<BackendKind>>,
    pub(crate) capacity: Option<Scalar<Int<1, { u64::MAX }>>>,
    pub(crate) per_key_limit: Option<Scalar<Int<0, { u64::MAX }>>>,
    pub(crate) redis_url: Option<Scalar<RedisUrl>>,
    pub(crate) redis_urls: Option<Vec<Scalar<RedisUrl>>>,
    pub(crate) sentinel_master: Option<Scalar<Text>>,
    pub(crate) min_replicas: Option<Scalar<Int<0, 1000>>>,
    pub(crate) key_prefix: Option<Scalar<Text>>,
    pub(crate) timeout: Option<Scalar<Dur<false>>>,
    pub(crate) on_error: Option<Scalar<OnError>>,
}

/// A setting written as one mapping or as a list of them (`access_token`).
#[derive(Debug)]
pub(crate) enum OneOrMany<T> {
    /// One mapping.
    One(T),
    /// A list (`access_token[i]` in messages).
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping of access token settings, or a list of them")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// `access_token`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of access token settings")]
pub(crate) struct RawAccessToken {
    pub(crate) format: Option<Scalar<TokenFormat>>,
    pub(crate) issuer: Option<Scalar<Text>>,
    pub(crate) audience: Option<Scalar<Text>>,
    pub(crate) jwks_uri: Option<Scalar<HttpUrl>>,
    pub(crate) jwks_file: Option<Scalar<FilePath>>,
    pub(crate) algorithms: Option<Vec<Scalar<Algorithm>>>,
    pub(crate) leeway: Option<Scalar<Dur<true>>>,
    pub(crate) require_typ: Option<Scalar<Flag>>,
    pub(crate) introspection: Option<RawIntrospection>,
    pub(crate) ca_file: Option<Scalar<FilePath>>,
    pub(crate) allow_insecure_http: Option<Scalar<Flag>>,
}

/// `access_token.introspection`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with endpoint, client_id, client_secret, cache_ttl"
)]
pub(crate) struct RawIntrospection {
    pub(crate) endpoint: Option<Scalar<HttpUrl>>,
    pub(crate) client_id: Option<Scalar<Text>>,
    pub(crate) client_secret: Option<Scalar<SecretText>>,
    pub(crate) cache_ttl: Option<Scalar<Dur<true>>>,
}

/// `forward`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with authorization and identity_headers"
)]
pub(crate) struct RawForward {
    pub(crate) authorization: Option<Scalar<ForwardAuthorization>>,
    pub(crate) identity_headers: Option<RawIdentityHeaders>,
}

/// `forward.identity_headers`: absent keeps the default name, `null` disables the header.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with subject, client_id, scope, jkt, issuer"
)]
pub(crate) struct RawIdentityHeaders {
    #[serde(default, deserialize_with = "present")]
    pub(crate) subject: Option<Option<Scalar<Header>>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) client_id: Option<Option<Scalar<Header>>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) scope: Option<Option<Scalar<Header>>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) jkt: Option<Option<Scalar<Header>>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) issuer: Option<Option<Scalar<Header>>>,
}

/// `limits`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of limits")]
pub(crate) struct RawLimits {
    pub(crate) max_proof_bytes: Option<Scalar<Int<MIN_PROOF_BYTES, MAX_HEADER_BYTES>>>,
    pub(crate) max_header_bytes: Option<Scalar<Int<MIN_HEADER_BYTES, MAX_HEADER_BYTES>>>,
    pub(crate) header_read_timeout: Option<Scalar<Dur<false>>>,
    pub(crate) idle_timeout: Option<Scalar<Dur<false>>>,
    pub(crate) max_connections: Option<Scalar<Int<1, { u64::MAX }>>>,
    pub(crate) max_concurrent_streams: Option<Scalar<Int<1, { u32::MAX as u64 }>>>,
    pub(crate) max_body_bytes: Option<Scalar<Int<0, { u64::MAX }>>>,
}

/// `paths`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with encoded_slashes")]
pub(crate) struct RawPaths {
    pub(crate) encoded_slashes: Option<Scalar<EncodedSlashes>>,
}

/// `limits.max_proof_bytes` at least: a compact ES256 proof with its JWK is about 400 bytes.
pub(crate) const MIN_PROOF_BYTES: u64 = 512;
/// `limits.max_header_bytes` at least: hyper's smallest read buffer.
pub(crate) const MIN_HEADER_BYTES: u64 = 8192;
/// `limits.max_header_bytes` at most (1 MiB).
pub(crate) const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Reads `text` into [`RawConfig`], with `${NAME}` values from `env`.
pub(crate) fn parse(text: &str, env: &dyn EnvLookup) -> Result<RawConfig, YamlError> {
    let tree = yaml::read(text)?;
    if tree.is_null() {
        return Ok(RawConfig::default());
    }
    RawConfig::deserialize(NodeDe::root(&tree, env)).map_err(|e| e.into_yaml_error())
}

/// For `Option<Option<T>>` fields: a present key (even `null`) is `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

impl<'de> Deserialize<'de> for RawUpstreams {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawUpstreams;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping of upstream names to upstreams (each shaped like upstream)")
            }

            fn visit_map<A: de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawUpstreams, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<Scalar<UpstreamKey>>()? {
                    let name = name.0 .0;
                    let upstream: RawUpstream = map.next_value()?;
                    out.push((name, upstream));
                }
                Ok(RawUpstreams(out))
            }
        }
        d.deserialize_map(V)
    }
}
