//! dpop-gateway: a reverse proxy that enforces OAuth 2.0 DPoP (RFC 9449) in front of HTTP APIs
//! that know nothing about it.
//!
//! The request path is [`pipeline`]: its module doc is the one diagram of the steps, and
//! [`pipeline::handle`] is the only place they are sequenced.
//!
//! `jose`, `dpop` and `token::jwt` do no I/O and read no clock: time is an argument.

pub mod admin;
pub mod body;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod demo;
pub mod dpop;
pub mod explain;
pub mod forward;
mod hex;
pub mod jose;
pub mod metrics;
pub mod nonce;
pub mod pipeline;
pub mod refusal;
pub mod replay;
pub mod request_uri;
pub mod resource_metadata;
pub mod route;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod token;

/// An error and its sources, `: `-joined: hyper's and the connectors' top-level messages
/// ("client error (Connect)", "tcp connect error") say little without their causes.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
