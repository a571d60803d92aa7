use super::*;
use crate::dpop::ProofCheck;

fn view() -> View {
    View {
        at: 1000,
        method: "GET".into(),
        path: "/x".into(),
        open: None,
        scheme: Some("DPoP"),
        route_nonce: false,
        proof_bytes: Some(500),
        proof: Some(Decoded {
            header: serde_json::json!({"typ": "dpop+jwt", "alg": "ES256"}),
            claims: serde_json::json!({"htm": "POST", "htu": "https://a/x", "iat": 958, "jti": "j"}),
        }),
        token: None,
        jkt: Some("abc".into()),
        htu: Some("https://a/x".into()),
        ath_expected: Some("hash".into()),
        token_jkt: Some("abc".into()),
        limits: Limits {
            max_age: 60,
            clock_skew: 5,
            max_proof_bytes: 8192,
            require_ath: true,
        },
    }
}

/// A recorded request: its proof and token as sent (the signatures are dropped).
fn pending(path: &str, key: u8) -> Pending {
    let proof = format!(
        "{}.{}.c2lnbmF0dXJl",
        B64.encode(br#"{"typ":"dpop+jwt","alg":"ES256"}"#),
        B64.encode(br#"{"htm":"GET","htu":"https://a/x","iat":958,"jti":"j"}"#)
    );
    let token = format!(
        "{}.{}.dG9rZW5zaWc",
        B64.encode(br#"{"alg":"ES256"}"#),
        B64.encode(br#"{"sub":"s","cnf":{"jkt":"abc"}}"#)
    );
    Pending {
        at: 1000,
        method: Method::GET,
        path: path.into(),
        route: "/".into(),
        open: None,
        description: None,
        scheme: Some("DPoP"),
        route_nonce: false,
        proof_bytes: Some(proof.len()),
        proof: Segments::of(&proof),
        token: Segments::of(&token),
        signed_by: Some(Thumbprint::from_bytes([key; 32])),
        htu: Some("https://a/x".into()),
        ath_expected: Some([7; 32]),
        ath_as_claimed: false,
        limits: Limits {
            max_age: 60,
            clock_skew: 5,
            max_proof_bytes: 8192,
            require_ath: true,
        },
    }
}

fn statuses(checks: &[Check]) -> Vec<(&'static str, &'static str)> {
    checks.iter().map(|c| (c.name, c.status)).collect()
}

#[test]
fn the_gateways_reason_is_the_one_failed_check_and_later_ones_are_not_reached() {
    let p = view();
    let checks = p.checks(
        Some(Reason::Proof(ProofCheck::Htm)),
        StatusCode::UNAUTHORIZED,
    );
    let s = statuses(&checks);
    let at = s.iter().position(|c| c.0 == "htm").unwrap();
    assert_eq!(s[at].1, "fail");
    assert!(s[..at].iter().all(|c| c.1 == "pass"), "{s:?}");
    assert!(s[at + 1..].iter().all(|c| c.1 == "not_reached"), "{s:?}");
    let htm = &checks[at];
    assert_eq!(htm.expected.as_deref(), Some("GET"));
    assert_eq!(htm.actual.as_deref(), Some("POST"));
    let iat = checks.iter().find(|c| c.name == "iat").unwrap();
    assert_eq!(iat.actual.as_deref(), Some("958 (age 42 s)"));
    assert!(iat
        .expected
        .as_deref()
        .unwrap()
        .starts_with("between 940 and 1005"));
}

#[test]
fn every_reason_names_a_listed_check() {
    let p = view();
    for reason in Reason::all() {
        for bearer in [false, true] {
            let name = failed_check(reason, bearer);
            let checks = p.checks(Some(reason), StatusCode::UNAUTHORIZED);
            assert!(
                checks.iter().any(|c| c.name == name),
                "{reason:?} names {name}, not in the list"
            );
            assert_eq!(
                checks.iter().filter(|c| c.status == "fail").count(),
                1,
                "{reason:?}"
            );
        }
    }
}

#[test]
fn forwarded_passes_all_and_skips_what_does_not_apply() {
    let p = view();
    let checks = p.checks(None, StatusCode::OK);
    for c in &checks {
        let want = if c.name == "nonce" { "skipped" } else { "pass" };
        assert_eq!(c.status, want, "{}", c.name);
    }
    let nonce = checks.iter().find(|c| c.name == "nonce").unwrap();
    assert_eq!(
        nonce.expected.as_deref(),
        Some("the route does not require a nonce")
    );
    let upstream = checks.iter().find(|c| c.name == "upstream").unwrap();
    assert_eq!(upstream.actual.as_deref(), Some("status 200"));
}

#[test]
fn a_bearer_request_skips_the_proof_and_fails_at_the_credentials() {
    let mut p = view();
    p.scheme = Some("Bearer");
    let checks = p.checks(
        Some(Reason::Token(TokenCheck::Binding)),
        StatusCode::UNAUTHORIZED,
    );
    let s = statuses(&checks);
    assert_eq!(s[0], ("request", "pass"));
    assert_eq!(s[1], ("method", "pass"));
    assert_eq!(s[2], ("credentials", "fail"));
    assert!(s[3..].iter().all(|c| c.1 == "not_reached"), "{s:?}");
}

#[test]
fn open_routes_list_no_checks() {
    let mut p = view();
    p.open = Some("auth: none route: forwarded without checks");
    assert!(p.checks(None, StatusCode::OK).is_empty());
}

#[test]
fn the_ring_keeps_the_last_n_newest_first() {
    let x = Explorer::new(3);
    for i in 0..5 {
        pending(&format!("/{i}"), 1).finish(
            &x,
            ("forwarded", "none"),
            None,
            StatusCode::OK,
            Duration::from_micros(7),
            None,
        );
    }
    let kept = x.decisions(&Filter::default());
    let paths: Vec<&str> = kept.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/4", "/3", "/2"]);
    assert_eq!(kept[0].id, 5);
    assert_eq!(kept[0].duration_us, 7);
    assert_eq!(Explorer::new(0).capacity, 1);
}

#[test]
fn filters_parse_and_match() {
    let f = Filter::parse("outcome=refused&reason=ht%6D&jkt=a%2Bb&after=2&x=1&reason2");
    assert_eq!(
        f,
        Filter {
            outcome: Some("refused".into()),
            reason: Some("htm".into()),
            jkt: Some("a+b".into()),
            after: Some(2),
        }
    );
    assert_eq!(Filter::parse("outcome=&jkt="), Filter::default());
    assert_eq!(percent_decode("a+b%2"), "a b%2");
    assert_eq!(percent_decode("%zz%41"), "%zzA");

    let x = Explorer::new(10);
    let record = |outcome, reason| {
        let key = if reason == "htm" { 1 } else { 2 };
        pending("/x", key).finish(
            &x,
            (outcome, reason),
            None,
            StatusCode::OK,
            Duration::ZERO,
            None,
        );
    };
    record("forwarded", "none");
    record("invalid_dpop_proof", "htm");
    record("local", "none");
    let count = |q: &str| x.decisions(&Filter::parse(q)).len();
    assert_eq!(count(""), 3);
    assert_eq!(count("outcome=refused"), 1);
    assert_eq!(count("outcome=forwarded"), 1);
    assert_eq!(count("reason=htm"), 1);
    let k2 = Thumbprint::from_bytes([2; 32]).to_string();
    assert_eq!(count(&format!("jkt={k2}")), 2);
    assert_eq!(count("after=1"), 2);
}

#[test]
fn decoded_parts_are_bounded_and_lose_the_signature() {
    let long = "x".repeat(10_000);
    let many: Map<String, Value> = (0..100)
        .map(|i| (format!("k{i}"), Value::from(i)))
        .collect();
    let deep = serde_json::json!({"a": {"b": {"c": {"d": {"e": 1}}}}});
    let claims = serde_json::json!({"long": long, "many": many, "deep": deep});
    let jws = format!(
        "{}.{}.c2lnbmF0dXJl",
        B64.encode(br#"{"alg":"ES256"}"#),
        B64.encode(claims.to_string())
    );
    let d = decode_jws(&jws).unwrap();
    assert_eq!(d.header["alg"], "ES256");
    let s = d.claims["long"].as_str().unwrap();
    assert_eq!(s.chars().count(), MAX_STRING + 1);
    assert_eq!(d.claims["many"].as_object().unwrap().len(), MAX_ITEMS);
    assert_eq!(d.claims["deep"]["a"]["b"]["c"], "{1 members}");
    let text = serde_json::to_string(&d).unwrap();
    assert!(!text.contains("c2lnbmF0dXJl"));
    // Opaque tokens and garbage decode to nothing.
    assert!(decode_jws("opaque-token").is_none());
    assert!(decode_jws("a.b.c.d").is_none());
    assert!(decode_jws("!!.??.x").is_none());
}

#[test]
fn off_answers_404_and_on_serves_the_page_with_its_policy() {
    let uri: http::Uri = "/explorer".parse().unwrap();
    assert_eq!(
        Explorer::respond(None, &uri).status(),
        StatusCode::NOT_FOUND
    );
    let x = Explorer::new(2);
    let resp = Explorer::respond(Some(&x), &uri);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-security-policy"], CSP);
    let other: http::Uri = "/explorer/nope".parse().unwrap();
    assert_eq!(
        Explorer::respond(Some(&x), &other).status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn a_recorded_decision_is_decoded_when_read_and_keeps_no_signature() {
    let x = Explorer::new(4);
    pending("/x", 3).finish(
        &x,
        ("forwarded", "none"),
        None,
        StatusCode::OK,
        Duration::from_micros(9),
        Some(Duration::from_micros(4)),
    );
    let kept = x.decisions(&Filter::default());
    let r = &kept[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/x"));
    assert_eq!(
        r.jkt.as_deref(),
        Some(Thumbprint::from_bytes([3; 32]).to_string().as_str())
    );
    assert!(r.jkt_verified);
    let proof = r.proof.as_ref().unwrap();
    assert_eq!(proof.header["typ"], "dpop+jwt");
    assert_eq!(proof.claims["htu"], "https://a/x");
    assert_eq!(r.token.as_ref().unwrap().claims["sub"], "s");
    let check = |name: &str| r.checks.iter().find(|c| c.name == name).unwrap();
    assert_eq!(check("binding").expected.as_deref(), Some("cnf.jkt abc"));
    assert_eq!(
        check("ath").expected.as_deref(),
        Some(B64.encode([7; 32]).as_str())
    );
    assert_eq!(check("htm").actual.as_deref(), Some("GET"));
    let text = serde_json::to_string(&kept).unwrap();
    assert!(!text.contains("c2lnbmF0dXJl") && !text.contains("dG9rZW5zaWc"));
}

#[test]
fn what_a_decision_keeps_is_bounded_in_bytes() {
    let jws = |claims: &Value| {
        format!(
            "{}.{}.c2ln",
            B64.encode(br#"{"alg":"ES256"}"#),
            B64.encode(claims.to_string())
        )
    };
    let size = |s: &Segments| match s {
        Segments::Json { bytes, .. } => bytes.len(),
        Segments::TooLarge(_) => 0,
    };
    // Long strings: trimmed when recorded, shown as before.
    let long = jws(&serde_json::json!({"sub": "x".repeat(100_000)}));
    let kept = Segments::of(&long).unwrap();
    assert!(size(&kept) <= MAX_KEPT_JWS);
    let d = kept.decode().unwrap();
    assert_eq!(
        d.claims["sub"].as_str().unwrap().chars().count(),
        MAX_STRING + 1
    );
    // Still too large trimmed (32 members of 200 characters at each of 4 levels): not kept.
    let wide: Value = (0..32)
        .map(|i| {
            let inner: Map<String, Value> = (0..32)
                .map(|j| (format!("{j}"), Value::from("y".repeat(300))))
                .collect();
            (format!("{i}"), Value::Object(inner))
        })
        .collect::<Map<String, Value>>()
        .into();
    let wide = Segments::of(&jws(&wide)).unwrap();
    assert!(matches!(wide, Segments::TooLarge(_)));
    assert!(wide.decode().unwrap().header.is_string());
    // The path and the computed htu are capped too.
    let path = format!("/{}", "p".repeat(100_000));
    assert!(capped(&path).len() <= MAX_KEPT_STR + 3);
    assert_eq!(
        bounded_str(&capped(&path)),
        bounded_str(&path),
        "shown as the whole would be"
    );
    // Opaque tokens and garbage are not kept.
    assert!(Segments::of("opaque").is_none());
    assert!(Segments::of("!!.??.x").is_none());
}
