//! The JWS algorithms the gateway verifies (RFC 7518 §3, RFC 8037, RFC 9864) and their
//! allow-list. Only asymmetric algorithms exist here: `none` and `HS*` cannot even be named.
//!
//! `EdDSA` (RFC 8037 §3.1, polymorphic: the key's curve picks the scheme) and `Ed25519`
//! (RFC 9864 §2.2, fully specified) are two names for the same verification here, since the
//! only EdDSA curve supported is Ed25519; they stay distinct names in an allow-list because
//! clients send one or the other.

/// An asymmetric JWS algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256 (RFC 7518 §3.4).
    ES256,
    /// ECDSA P-384 with SHA-384 (RFC 7518 §3.4).
    ES384,
    /// EdDSA (RFC 8037 §3.1), with an Ed25519 key: the only EdDSA curve supported.
    EdDSA,
    /// Ed25519 by its fully-specified name (RFC 9864 §2.2); same keys and signatures as
    /// `EdDSA` with an Ed25519 key.
    Ed25519,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3); keys of at least 2048 bits.
    RS256,
    /// RSASSA-PSS with SHA-256 (RFC 7518 §3.5); keys of at least 2048 bits.
    PS256,
}

/// A set of allowed algorithms (a bit set; copying it is free).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlgorithmSet(u8);

// === impl Algorithm ===

impl Algorithm {
    /// Every algorithm, in the order used for `algs="…"`.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::Ed25519,
        Algorithm::RS256,
        Algorithm::PS256,
    ];

    /// Every name, in [`Self::ALL`] order, for messages that list the choices.
    pub const NAMES: &'static str = "ES256, ES384, EdDSA, Ed25519, RS256, PS256";

    /// The algorithm named `name` in a JWS `alg` header, if it is one we support.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The JWS name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl AlgorithmSet ===

impl AlgorithmSet {
    /// The empty set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Adds `alg`.
    pub fn insert(&mut self, alg: Algorithm) {
        self.0 |= alg.bit();
    }

    /// Whether `alg` is allowed.
    pub fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }

    /// Whether no algorithm is allowed.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The allowed algorithms, in [`Algorithm::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |a| self.contains(*a))
    }

    /// Space-separated names, as in `WWW-Authenticate: DPoP algs="ES256 EdDSA"` (RFC 9449 §7.1).
    pub fn to_names(self) -> String {
        self.iter()
            .map(Algorithm::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        let mut set = Self::empty();
        for a in iter {
            set.insert(a);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_list_every_algorithm_in_order() {
        let names: Vec<&str> = Algorithm::ALL.into_iter().map(Algorithm::as_str).collect();
        assert_eq!(names.join(", "), Algorithm::NAMES);
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.as_str()), Some(alg));
        }
        // Names are case-sensitive (RFC 7515 §4.1.1).
        assert_eq!(Algorithm::from_name("ed25519"), None);
        assert_eq!(Algorithm::from_name("EDDSA"), None);
    }

    #[test]
    fn eddsa_and_ed25519_are_distinct_in_a_set() {
        let set: AlgorithmSet = [Algorithm::Ed25519].into_iter().collect();
        assert!(set.contains(Algorithm::Ed25519));
        assert!(!set.contains(Algorithm::EdDSA));
        let all: AlgorithmSet = Algorithm::ALL.into_iter().collect();
        assert_eq!(all.to_names(), "ES256 ES384 EdDSA Ed25519 RS256 PS256");
    }
}
