//! The listeners.

pub mod tls;
