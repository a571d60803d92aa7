//! dpop-gateway: a reverse proxy that enforces OAuth 2.0 DPoP (RFC 9449) in front of HTTP APIs
//! that know nothing about it.
//!
//! The request path is [`pipeline`]: its module doc is the one diagram of the steps, and
//! [`pipeline::handle`] is the only place they are sequenced.
//!
//! `jose`, `dpop` and `token::jwt` do no I/O and read no clock: time is an argument.

pub(crate) mod admin;
pub mod body;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub(crate) mod cors;
pub(crate) mod credentials;
pub(crate) mod demo;
pub mod dpop;
pub(crate) mod explain;
#[doc(hidden)]
pub mod explorer;
pub(crate) mod forward;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hex;
pub mod jose;
pub mod metrics;
pub(crate) mod nonce;
pub mod pipeline;
pub(crate) mod policy;
#[cfg(test)]
mod proptests;
pub(crate) mod refusal;
pub mod replay;
pub(crate) mod request_uri;
pub(crate) mod resource_metadata;
pub(crate) mod route;
pub mod server;
pub mod state;
pub(crate) mod telemetry;
pub mod token;
pub(crate) mod uri;

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
