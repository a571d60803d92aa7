//! Pure extraction of the credentials a request carries: at most one `DPoP` header, at most one
//! `Authorization` header, its scheme (RFC 9449 §7.1 `DPoP`, RFC 6750 §2.1 `Bearer`) and a
//! token of the RFC 6750 `b64token` syntax.

use http::HeaderMap;

use crate::refusal::Refusal;
use crate::token::Scheme;

/// What the request presented.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Credentials<'a> {
    /// `DPoP` or `Bearer`.
    pub scheme: Scheme,
    /// The access token.
    pub token: &'a str,
    /// The `DPoP` header value, if present.
    pub proof: Option<&'a str>,
}

/// Extracts credentials; `Ok(None)` when the request has neither a usable `Authorization` nor a
/// `DPoP` header (the caller answers with a bare challenge).
pub(crate) fn extract(headers: &HeaderMap) -> Result<Option<Credentials<'_>>, Refusal> {
    let proof = single(headers, "dpop", "more than one DPoP header")?
        .map(|v| {
            v.to_str()
                .map_err(|_| Refusal::InvalidRequest("the DPoP header is not visible ASCII"))
        })
        .transpose()?;
    let auth = single(
        headers,
        http::header::AUTHORIZATION.as_str(),
        "more than one Authorization header",
    )?;
    let Some(auth) = auth else {
        // A proof without a token has nothing to bind to: answered like no credentials, with
        // the bare challenge (RFC 6750 §3.1).
        return Ok(None);
    };
    let auth = auth
        .to_str()
        .map_err(|_| Refusal::InvalidRequest("the Authorization header is not visible ASCII"))?;
    let (scheme, token) = match auth.split_once(' ') {
        Some((s, t)) => (s, t.trim_start_matches(' ')),
        None => (auth, ""),
    };
    let scheme = if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else {
        // Another scheme (Basic, …) carries no credentials we understand.
        return Ok(None);
    };
    if !is_b64token(token) {
        return Err(Refusal::InvalidRequest(
            "the access token is empty or not of the b64token syntax",
        ));
    }
    if scheme == Scheme::Dpop && proof.is_none() {
        return Err(Refusal::ProofMissing);
    }
    Ok(Some(Credentials {
        scheme,
        token,
        proof,
    }))
}

fn single<'a>(
    headers: &'a HeaderMap,
    name: &str,
    duplicate: &'static str,
) -> Result<Option<&'a http::HeaderValue>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Refusal::InvalidRequest(duplicate));
    }
    Ok(first)
}

/// RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| B64TOKEN[usize::from(b)])
}

/// The bytes of RFC 6750 §2.1 `b64token` before its `=` padding: ALPHA / DIGIT / `-._~+/`.
/// A table: the check runs over every access token on every request.
static B64TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn dpop_scheme_with_proof() {
        let h = headers(&[("authorization", "DPoP abc.def"), ("dpop", "p.r.f")]);
        let c = extract(&h).unwrap().unwrap();
        assert_eq!(c.scheme, Scheme::Dpop);
        assert_eq!(c.token, "abc.def");
        assert_eq!(c.proof, Some("p.r.f"));
    }

    #[test]
    fn no_credentials_is_none() {
        assert_eq!(extract(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            extract(&headers(&[("authorization", "Basic dXNlcg==")])).unwrap(),
            None
        );
    }

    #[test]
    fn duplicates_are_invalid_requests() {
        let h = headers(&[("authorization", "DPoP a"), ("dpop", "x"), ("dpop", "y")]);
        assert!(matches!(extract(&h), Err(Refusal::InvalidRequest(_))));
        let h = headers(&[("authorization", "DPoP a"), ("authorization", "DPoP b")]);
        assert!(matches!(extract(&h), Err(Refusal::InvalidRequest(_))));
    }

    #[test]
    fn dpop_scheme_without_proof_is_proof_missing() {
        let h = headers(&[("authorization", "DPoP a")]);
        assert!(matches!(extract(&h), Err(Refusal::ProofMissing)));
    }

    #[test]
    fn bad_token_syntax_is_invalid_request() {
        let h = headers(&[("authorization", "Bearer a,b"), ("dpop", "x")]);
        assert!(matches!(extract(&h), Err(Refusal::InvalidRequest(_))));
        let h = headers(&[("authorization", "DPoP"), ("dpop", "x")]);
        assert!(matches!(extract(&h), Err(Refusal::InvalidRequest(_))));
    }

    #[test]
    fn bearer_is_accepted_syntactically() {
        let h = headers(&[("authorization", "bearer tok=")]);
        let c = extract(&h).unwrap().unwrap();
        assert_eq!(c.scheme, Scheme::Bearer);
        assert_eq!(c.proof, None);
    }
}
