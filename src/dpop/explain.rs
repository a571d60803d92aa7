//! Every proof check run one by one, for `dpop-gateway explain`: where [`super::verify`] stops
//! at the first failure, this reports each check as passed, failed (with what was compared) or
//! skipped (when an earlier failure left it nothing to look at). Pure, like the rest of `dpop`.

use crate::clock::UnixTime;
use crate::jose::jws::{CompactJws, JwsError};

use super::{
    check_ath, check_header, check_htm, check_htu, check_iat, check_jti, parse_claims,
    parse_header, ProofCheck, ProofError, ProofPolicy, ProofRequest,
};

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Finding {
    /// Passed; what was seen.
    Pass(String),
    /// Failed; what was compared.
    Fail(String),
    /// Not run; why.
    Skipped(String),
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Report {
    /// The check's name (the metric reason label).
    pub check: &'static str,
    /// What happened.
    pub finding: Finding,
}

/// Runs every proof check on `proof` and reports each.
pub(crate) fn explain(
    proof: &str,
    request: &ProofRequest<'_>,
    policy: &ProofPolicy,
    now: UnixTime,
) -> Vec<Report> {
    let mut out = Vec::new();
    let mut push = |check: ProofCheck, finding: Finding| {
        out.push(Report {
            check: check.as_str(),
            finding,
        })
    };
    let skipped = |why: &str| Finding::Skipped(why.to_owned());
    let fail = |e: &ProofError| Finding::Fail(e.to_string());

    let jws = match CompactJws::parse(proof, policy.max_proof_bytes) {
        Ok(j) => {
            push(
                ProofCheck::Size,
                Finding::Pass(format!("{} bytes", proof.len())),
            );
            j
        }
        Err(JwsError::TooLarge { len, max }) => {
            push(ProofCheck::Size, fail(&ProofError::TooLarge { len, max }));
            return out;
        }
        Err(e) => {
            push(
                ProofCheck::Size,
                Finding::Pass(format!("{} bytes", proof.len())),
            );
            push(ProofCheck::Syntax, fail(&ProofError::Malformed(e)));
            return out;
        }
    };
    let header = match parse_header(&jws.header) {
        Ok(h) => h,
        Err(e) => {
            push(ProofCheck::Syntax, fail(&e));
            return out;
        }
    };
    // As `verify`: a header naming critical extensions is refused before the other checks.
    if header.crit {
        push(ProofCheck::Syntax, fail(&ProofError::CritUnsupported));
        return out;
    }
    let claims = parse_claims(&jws.payload);
    match &claims {
        Ok(_) => push(
            ProofCheck::Syntax,
            Finding::Pass("compact JWS, JSON header and claims".into()),
        ),
        Err(e) => push(ProofCheck::Syntax, fail(e)),
    }

    // typ, alg, jwk: one function; the first failure names its check, the others before it passed.
    let header_checks = [ProofCheck::Typ, ProofCheck::Alg, ProofCheck::Jwk];
    let key = match check_header(&header, policy.algorithms) {
        Ok((alg, jwk)) => {
            push(ProofCheck::Typ, Finding::Pass("dpop+jwt".into()));
            push(ProofCheck::Alg, Finding::Pass(alg.to_string()));
            push(
                ProofCheck::Jwk,
                Finding::Pass(format!("thumbprint {}", jwk.thumbprint())),
            );
            Some((alg, jwk))
        }
        Err(e) => {
            let failed = e.check();
            let mut seen = false;
            for c in header_checks {
                if c == failed {
                    push(c, fail(&e));
                    seen = true;
                } else if seen {
                    push(c, skipped("an earlier header check failed"));
                } else {
                    push(c, Finding::Pass("ok".into()));
                }
            }
            None
        }
    };
    match &key {
        Some((alg, jwk)) => match jwk.verify(*alg, jws.signing_input, &jws.signature) {
            Ok(()) => push(
                ProofCheck::Signature,
                Finding::Pass(format!("valid {alg} signature")),
            ),
            Err(_) => push(ProofCheck::Signature, fail(&ProofError::Signature)),
        },
        None => push(ProofCheck::Signature, skipped("no usable key")),
    }

    let Ok(claims) = claims else {
        for c in [
            ProofCheck::Jti,
            ProofCheck::Htm,
            ProofCheck::Htu,
            ProofCheck::Iat,
            ProofCheck::Ath,
        ] {
            push(c, skipped("the claims could not be read"));
        }
        return out;
    };
    match check_jti(&claims) {
        Ok(jti) => push(
            ProofCheck::Jti,
            Finding::Pass(format!("{} bytes", jti.len())),
        ),
        Err(e) => push(ProofCheck::Jti, fail(&e)),
    }
    match check_htm(&claims, request.method) {
        Ok(()) => push(ProofCheck::Htm, Finding::Pass(request.method.to_owned())),
        Err(e) => push(ProofCheck::Htm, fail(&e)),
    }
    match check_htu(&claims, request.htu) {
        Ok(()) => push(ProofCheck::Htu, Finding::Pass(request.htu.to_owned())),
        Err(e) => push(ProofCheck::Htu, fail(&e)),
    }
    match check_iat(&claims, policy, now) {
        Ok(iat) => push(
            ProofCheck::Iat,
            Finding::Pass(format!("iat {} at now {}", iat.as_secs(), now.as_secs())),
        ),
        Err(e) => push(ProofCheck::Iat, fail(&e)),
    }
    match request.access_token {
        Some(token) => match check_ath(&claims, token, policy.require_ath) {
            Ok(()) => push(ProofCheck::Ath, Finding::Pass("matches the token".into())),
            Err(e) => push(ProofCheck::Ath, fail(&e)),
        },
        None => push(ProofCheck::Ath, skipped("no --token given")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::sign::{PrivateJwk, ProofClaims};
    use crate::jose::{Algorithm, AlgorithmSet};

    fn policy() -> ProofPolicy {
        ProofPolicy {
            algorithms: AlgorithmSet::from_iter(Algorithm::ALL),
            max_age: 60,
            clock_skew: 5,
            max_proof_bytes: 8192,
            require_ath: true,
        }
    }

    #[test]
    fn every_check_is_reported_and_only_the_violated_one_fails() {
        let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
        let proof = key
            .mint_proof(&ProofClaims {
                htm: "GET".into(),
                htu: "https://api.example.com/x".into(),
                iat: 1000,
                jti: "j".into(),
                access_token: Some("tok".into()),
                nonce: None,
            })
            .unwrap();
        let request = ProofRequest {
            method: "POST",
            htu: "https://api.example.com/x",
            access_token: Some("tok"),
        };
        let report = explain(&proof, &request, &policy(), UnixTime(1010));
        let names: Vec<_> = report.iter().map(|r| r.check).collect();
        assert_eq!(
            names,
            [
                "size",
                "syntax",
                "typ",
                "alg",
                "jwk",
                "signature",
                "jti",
                "htm",
                "htu",
                "iat",
                "ath"
            ]
        );
        for r in &report {
            let failed = matches!(r.finding, Finding::Fail(_));
            assert_eq!(failed, r.check == "htm", "{r:?}");
        }
    }

    /// A key, its public JWK and a GET request, for proofs signed over hand-written JSON.
    fn raw_setup() -> (PrivateJwk, serde_json::Value, ProofRequest<'static>) {
        let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
        let jwk = serde_json::Value::Object(key.public_jwk());
        let request = ProofRequest {
            method: "GET",
            htu: "https://api.example.com/x",
            access_token: None,
        };
        (key, jwk, request)
    }

    #[test]
    fn repeated_members_fail_syntax() {
        let (key, jwk, request) = raw_setup();
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#);
        let claims =
            r#"{"jti":"a","jti":"b","htm":"GET","htu":"https://api.example.com/x","iat":1000}"#;
        let proof = key
            .sign_jws_text(header.as_bytes(), claims.as_bytes())
            .unwrap();
        let report = explain(&proof, &request, &policy(), UnixTime(1000));
        let syntax = report.iter().find(|r| r.check == "syntax").unwrap();
        assert_eq!(
            syntax.finding,
            Finding::Fail(ProofError::ClaimsDuplicateMember.to_string())
        );
        // The header and the signature are still reported; the claims checks are skipped.
        let finding = |check: &str| &report.iter().find(|r| r.check == check).unwrap().finding;
        assert!(matches!(finding("signature"), Finding::Pass(_)));
        assert!(matches!(finding("jti"), Finding::Skipped(_)));

        let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":{jwk}}}"#);
        let proof = key
            .sign_jws_text(header.as_bytes(), claims.as_bytes())
            .unwrap();
        let report = explain(&proof, &request, &policy(), UnixTime(1000));
        assert_eq!(report.len(), 2);
        assert_eq!(
            report[1].finding,
            Finding::Fail(ProofError::HeaderDuplicateMember.to_string())
        );
    }

    #[test]
    fn crit_fails_like_verify_does() {
        let (key, jwk, request) = raw_setup();
        let claims = r#"{"jti":"a","htm":"GET","htu":"https://api.example.com/x","iat":1000}"#;
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","crit":["x"],"jwk":{jwk}}}"#);
        let proof = key
            .sign_jws_text(header.as_bytes(), claims.as_bytes())
            .unwrap();
        assert_eq!(
            crate::dpop::verify(&proof, &request, &policy(), UnixTime(1000)).unwrap_err(),
            ProofError::CritUnsupported
        );
        let report = explain(&proof, &request, &policy(), UnixTime(1000));
        assert_eq!(report.len(), 2);
        assert_eq!(
            report[1].finding,
            Finding::Fail(ProofError::CritUnsupported.to_string())
        );
        // Without crit the same proof passes every check.
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#);
        let proof = key
            .sign_jws_text(header.as_bytes(), claims.as_bytes())
            .unwrap();
        let report = explain(&proof, &request, &policy(), UnixTime(1000));
        assert!(report
            .iter()
            .all(|r| !matches!(r.finding, Finding::Fail(_))));
    }

    #[test]
    fn garbage_stops_after_syntax() {
        let request = ProofRequest {
            method: "GET",
            htu: "https://a/x",
            access_token: None,
        };
        let report = explain("not-a-jws", &request, &policy(), UnixTime(0));
        assert_eq!(report.len(), 2);
        assert!(matches!(report[1].finding, Finding::Fail(_)));
    }
}
