//! The one integration-test binary: the gateway over real sockets, in front of a real upstream,
//! with real TLS. Every refusal test also asserts what the upstream received (nothing).
// reason: the support modules are a library for this binary; `pub` documents their surface.
#![allow(unreachable_pub, missing_docs)]
// reason: a failed unwrap in a test or its support code is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod body_limit;
mod bypass;
mod cli;
mod cors;
mod edge;
mod explain_agrees;
mod explorer;
mod floods;
mod forward_auth;
mod grpc;
mod harness;
mod host;
mod identity;
mod interop;
mod introspection;
mod lifecycle;
mod limits;
mod metadata_paths;
mod ops;
mod paths;
mod per_key;
mod policy;
mod proof_checks;
mod reload;
mod remote_keys;
mod replay;
mod replicas;
mod smuggling;
mod tls;
mod token;
mod transparency;
mod upstreams;
mod websocket;
