//! The one integration-test binary: the gateway over real sockets, in front of a real upstream,
//! with real TLS. Every refusal test also asserts what the upstream received (nothing).

mod support;

mod cli;
mod harness;
mod proof_checks;
mod replay;
mod tls;
mod token;
mod transparency;
