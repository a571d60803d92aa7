//! Building blocks for the end-to-end tests. TEMPORARY (infra branch): the real `support/mod.rs`
//! replaces this file and declares these modules next to its own.

pub mod client;
pub mod tls;
pub mod upstream;
