//! One error variant per RFC 9449 §4.3 check, carrying what was compared. `Display` says what
//! failed and never contains a token or a whole proof.

/// Why a proof was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProofError {
    /// Implementer: one variant per check (TooLarge, Malformed, Typ, AlgNotAllowed, Jwk,
    /// Signature, HtmMismatch{expected,got}, HtuMismatch{expected,got}, IatTooOld{iat,now,max_age},
    /// IatInFuture{iat,now,skew}, JtiMissing, AthMissing, AthMismatch, ...), each with a `///`
    /// naming the RFC section.
    Todo,
}

/// The check that failed: a closed set, used as a metric label and in `explain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProofCheck {
    /// Over `limits.max_proof_bytes`.
    Size,
    /// Not a compact JWS / not JSON / a required claim has the wrong type.
    Syntax,
    /// `typ` is not `dpop+jwt`.
    Typ,
    /// `alg` not allowed.
    Alg,
    /// `jwk` missing, private or unusable.
    Jwk,
    /// Signature invalid.
    Signature,
    /// `htm` mismatch.
    Htm,
    /// `htu` mismatch.
    Htu,
    /// `iat` missing, too old or in the future.
    Iat,
    /// `jti` missing or too long.
    Jti,
    /// `ath` missing or mismatch.
    Ath,
}

impl ProofCheck {
    /// Every check, for metric pre-registration.
    pub const ALL: [ProofCheck; 11] = [
        ProofCheck::Size,
        ProofCheck::Syntax,
        ProofCheck::Typ,
        ProofCheck::Alg,
        ProofCheck::Jwk,
        ProofCheck::Signature,
        ProofCheck::Htm,
        ProofCheck::Htu,
        ProofCheck::Iat,
        ProofCheck::Jti,
        ProofCheck::Ath,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ProofCheck::Size => "size",
            ProofCheck::Syntax => "syntax",
            ProofCheck::Typ => "typ",
            ProofCheck::Alg => "alg",
            ProofCheck::Jwk => "jwk",
            ProofCheck::Signature => "signature",
            ProofCheck::Htm => "htm",
            ProofCheck::Htu => "htu",
            ProofCheck::Iat => "iat",
            ProofCheck::Jti => "jti",
            ProofCheck::Ath => "ath",
        }
    }
}

impl ProofError {
    /// Which check failed.
    pub fn check(&self) -> ProofCheck {
        todo!()
    }
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        todo!("{}", f.width().unwrap_or(0))
    }
}

impl std::error::Error for ProofError {}
