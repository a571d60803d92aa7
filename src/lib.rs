//! dpop-gateway: a reverse proxy that enforces OAuth 2.0 DPoP (RFC 9449) in front of HTTP APIs
//! that know nothing about it.
//!
//! The request pipeline (the body of [`pipeline::handle`]):
//!
//! ```text
//! listener (tcp -> rustls ALPN -> hyper-util auto h1/h2, header/size/time limits)
//!   -> pipeline::handle(req)
//!        1 route::find               auth: none => go to 7
//!        2 credentials::extract      one DPoP, one Authorization, scheme  -> 400 invalid_request
//!        3 dpop::ProofVerifier  typ alg jwk sig htm htu iat ath     -> 401 invalid_dpop_proof
//!        4 nonce::check       (pure) when enabled                         -> 401 use_dpop_nonce
//!        5 token::validate           JWT/JWKS, cnf.jkt                    -> 401 invalid_token
//!        6 replay::check_and_insert  last, so only fully valid proofs use an entry -> 401 | 503
//!        7 forward::headers          strip DPoP + hop-by-hop + spoofed identity; set identity
//!        8 forward::send             stream to upstream                   -> 502 | 504
//!      Err(Refusal) -> Refusal::respond   (the only place statuses and WWW-Authenticate are made)
//!      always       -> metrics + one access-log line
//! ```
//!
//! `jose`, `dpop` and `token::jwt` do no I/O and read no clock: time is an argument.

pub mod admin;
pub mod body;
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
