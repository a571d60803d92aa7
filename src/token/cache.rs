//! Implementer: moka cache of verified tokens keyed by SHA-256(token); entries never outlive exp.
