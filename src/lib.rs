//! dpop-gateway: a reverse proxy that enforces OAuth 2.0 DPoP (RFC 9449) in front of HTTP APIs
//! that know nothing about it.

pub mod body;
pub mod clock;
pub mod config;
pub mod dpop;
pub mod forward;
pub mod jose;
pub mod replay;
pub mod server;
pub mod token;
