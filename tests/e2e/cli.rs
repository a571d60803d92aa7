//! The built binary, as an operator runs it: `check` on good and bad configs, `keygen`, and a
//! `keygen` + `proof` pair accepted by a running `run`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::temp_dir;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dpop-gateway"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env_remove("DPOP_GATEWAY_CONFIG");
    c
}

/// Runs `cmd` and asserts it succeeded (stderr in the message otherwise).
fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn check_file(text: &str) -> (Output, String) {
    let dir = temp_dir("cli-check");
    let path = dir.join("gateway.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = bin().args(["check", "-c"]).arg(&path).output().unwrap();
    (out, path.display().to_string())
}

#[test]
fn shipped_config_passes_check() {
    let out = run_ok(bin().args(["check", "-c", "config/gateway.yaml"]));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("listen:"), "{printed}");
}

const GOOD: &str = r#"listen: "127.0.0.1:8443"
upstream:
  url: "http://127.0.0.1:8080"
access_token:
  issuer: "https://as.example.com"
  audience: "https://api.example.com"
  jwks_file: config/demo/jwks.json
"#;

#[test]
fn check_reports_file_line_column_for_each_kind_of_error() {
    let cases: &[(&str, &str, &str)] = &[
        // (text, expected "line:column", a word of the message)
        (
            &GOOD.replace(
                "listen: \"127.0.0.1:8443\"",
                "listen: \"127.0.0.1:8443\"\nlisen: 1",
            ),
            ":2:1:",
            "lisen",
        ),
        (
            &format!("{GOOD}dpop:\n  proof_max_age: 5 minutes\n"),
            ":9:18:",
            "proof_max_age",
        ),
        (
            &format!("{GOOD}dpop:\n  require_ath: maybe\n"),
            ":9:16:",
            "require_ath",
        ),
        (
            &GOOD.replace("http://127.0.0.1:8080", "${UNSET_FOR_TEST_12345}"),
            ":3:8:",
            "UNSET_FOR_TEST_12345",
        ),
        (
            &format!("{GOOD}dpop:\n  algorithms: [HS256]\n"),
            ":9:",
            "HS256",
        ),
    ];
    for (text, position, word) in cases {
        let (out, path) = check_file(text);
        assert_eq!(out.status.code(), Some(1), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(&path), "names the file: {err}");
        assert!(err.contains(position), "want {position} in {err}");
        assert!(err.contains(word), "want {word} in {err}");
    }
}

#[test]
fn check_refuses_plain_http_to_the_authorization_server_without_the_opt_in() {
    // GOOD's jwks_file replaced by a plain-HTTP jwks_uri (line 7, column 3).
    let http = GOOD.replace(
        "  jwks_file: config/demo/jwks.json",
        "  jwks_uri: \"http://as.internal:8080/jwks\"",
    );
    let (out, path) = check_file(&http);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("{path}:7:3: access_token.jwks_uri: ")),
        "{err}"
    );
    assert!(
        err.contains("plain HTTP") && err.contains("allow_insecure_http: true"),
        "{err}"
    );
    // Discovery from a plain-HTTP issuer: at the issuer (line 5).
    let discovery = GOOD
        .replace("  jwks_file: config/demo/jwks.json\n", "")
        .replace("https://as.example.com", "http://as.internal");
    let (out, path) = check_file(&discovery);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("{path}:5:3: access_token.issuer: ")),
        "{err}"
    );
    // With the opt-in, the same configs pass and `check` shows it.
    for text in [http, discovery] {
        let (out, _) = check_file(&format!("{text}  allow_insecure_http: true\n"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(printed.contains("allow_insecure_http: true"), "{printed}");
    }
}

/// `check` on `text`; asserts it fails at `line:column` naming `key` and `want` in the message.
fn assert_check_fails_at(text: &str, line: usize, column: usize, key: &str, want: &str) {
    let (out, path) = check_file(text);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}\n{text}");
    assert!(
        err.starts_with(&format!("{path}:{line}:{column}: {key}: ")),
        "want {path}:{line}:{column}: {key}: in {err}\n{text}"
    );
    assert!(err.contains(want), "want {want:?} in {err}");
}

#[test]
fn check_reads_the_files_the_config_names_and_reports_each_at_its_key() {
    let dir = temp_dir("cli-check-files");
    let pki = crate::support::tls::TestPki::new();
    let other = crate::support::tls::TestPki::new();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a pem file\n").unwrap();
    let missing = dir.join("missing.pem");
    let not_json = dir.join("jwks.txt");
    std::fs::write(&not_json, "{ this is not json").unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    // Line 7 is jwks_file, 8 ca_file, 9 tls, 10 its cert, 11 its key.
    let config = |jwks: &Path, cert: &Path, key: &Path, ca_file: &Path| {
        let at = GOOD.replace("config/demo/jwks.json", &format!("\"{}\"", jwks.display()));
        format!(
            "{at}  ca_file: \"{}\"\ntls:\n  cert: \"{}\"\n  key: \"{}\"\n",
            ca_file.display(),
            cert.display(),
            key.display()
        )
    };
    let jwks = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/jwks.json");
    let (cert, key) = (&pki.cert_path, &pki.key_path);

    let good = config(&jwks, cert, key, &ca);
    let (out, _) = check_file(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_check_fails_at(
        &config(&missing, cert, key, &ca),
        7,
        3,
        "access_token.jwks_file",
        "missing.pem: cannot read",
    );
    assert_check_fails_at(
        &config(&not_json, cert, key, &ca),
        7,
        3,
        "access_token.jwks_file",
        "jwks.txt: not a usable JWKS",
    );
    assert_check_fails_at(
        &config(&garbage, cert, key, &ca),
        7,
        3,
        "access_token.jwks_file",
        "garbage.pem",
    );
    assert_check_fails_at(
        &config(&jwks, cert, key, &garbage),
        8,
        3,
        "access_token.ca_file",
        "garbage.pem: no PEM certificate",
    );
    assert_check_fails_at(
        &config(&jwks, cert, key, &missing),
        8,
        3,
        "access_token.ca_file",
        "missing.pem",
    );
    assert_check_fails_at(
        &config(&jwks, &missing, key, &ca),
        10,
        3,
        "tls.cert",
        "missing.pem: cannot read",
    );
    assert_check_fails_at(
        &config(&jwks, &garbage, key, &ca),
        10,
        3,
        "tls.cert",
        "no CERTIFICATE block",
    );
    assert_check_fails_at(
        &config(&jwks, cert, &missing, &ca),
        11,
        3,
        "tls.key",
        "missing.pem: cannot read",
    );
    assert_check_fails_at(
        &config(&jwks, cert, &garbage, &ca),
        11,
        3,
        "tls.key",
        "no private key found",
    );
    // A key that parses but belongs to another certificate.
    assert_check_fails_at(
        &config(&jwks, cert, &other.key_path, &ca),
        11,
        3,
        "tls.key",
        "certificate and key refused",
    );
}

/// Runs the binary with `args`; asserts exit 64 and returns stderr.
fn usage_error(args: &[&std::ffi::OsStr]) -> String {
    let out = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "nothing printed on stdout");
    for raw in [
        "MissingMember",
        "NotAString",
        "Json(",
        "Public(",
        "UnsupportedAlg",
    ] {
        assert!(!err.contains(raw), "a raw Rust error: {err}");
    }
    err
}

#[test]
fn proof_and_token_say_what_is_wrong_with_a_key_file() {
    let dir = temp_dir("cli-bad-keys");
    let out = run_ok(bin().args(["keygen"]));
    let private: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut public = private.clone();
    public.as_object_mut().unwrap().remove("d");
    let public = write("public.jwk", &public.to_string());
    let mut no_alg = private.clone();
    no_alg.as_object_mut().unwrap().remove("alg");
    let no_alg = write("no-alg.jwk", &no_alg.to_string());
    let not_json = write("notes.txt", "-----BEGIN PRIVATE KEY-----\n");
    let missing = dir.join("missing.jwk");
    let proof = |key: &Path| {
        let args: Vec<&std::ffi::OsStr> = vec![
            "proof".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            "--method".as_ref(),
            "GET".as_ref(),
            "--url".as_ref(),
            "https://api.example.com/".as_ref(),
        ];
        usage_error(&args)
    };

    let err = proof(&public);
    let want = format!(
        "dpop-gateway proof: key file {}: a private JWK needs member \"d\"",
        public.display()
    );
    assert!(err.starts_with(&want), "{err}");
    assert!(err.contains("public key"), "{err}");
    let err = proof(&no_alg);
    assert!(
        err.contains(&format!(
            "key file {}: a private JWK needs member \"alg\"",
            no_alg.display()
        )) && err.contains("ES256"),
        "{err}"
    );
    let err = proof(&not_json);
    assert!(
        err.contains(&format!("key file {}: not a JWK", not_json.display())),
        "{err}"
    );
    let err = proof(&missing);
    assert!(
        err.contains(&format!("key file {}: cannot read", missing.display())),
        "{err}"
    );

    // `token`: the issuer key and the key to bind to.
    let err = usage_error(&[
        "token".as_ref(),
        "--issuer-key".as_ref(),
        public.as_os_str(),
    ]);
    assert!(
        err.starts_with(&format!(
            "dpop-gateway token: issuer key file {}: a private JWK needs member \"d\"",
            public.display()
        )),
        "{err}"
    );
    let issuer = write("issuer.jwk", &private.to_string());
    let err = usage_error(&[
        "token".as_ref(),
        "--issuer-key".as_ref(),
        issuer.as_os_str(),
        "--bind".as_ref(),
        not_json.as_os_str(),
    ]);
    assert!(
        err.starts_with(&format!(
            "dpop-gateway token: --bind file {}: not a JWK",
            not_json.display()
        )),
        "{err}"
    );
    // A public key is fine to bind to.
    run_ok(
        bin()
            .args(["token", "--issuer-key"])
            .arg(&issuer)
            .arg("--bind")
            .arg(&public),
    );
}

#[test]
fn check_shows_paths_encoded_slashes_and_refuses_other_values() {
    let (out, _) = check_file(GOOD);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("paths:\n  encoded_slashes: reject\n"),
        "{printed}"
    );
    let (out, _) = check_file(&format!("{GOOD}paths:\n  encoded_slashes: keep\n"));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("  encoded_slashes: keep\n"), "{printed}");
    for bad in ["encoded_slashes: decode", "merge_slashes: true"] {
        let (out, path) = check_file(&format!("{GOOD}paths:\n  {bad}\n"));
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(&format!("{path}:9:")), "{bad}: {err}");
    }
}

#[test]
fn check_masks_secrets() {
    let text = format!(
        "{GOOD}replay_cache:\n  backend: redis\n  redis_url: \"redis://user:hunter2@127.0.0.1:6379\"\n"
    );
    let (out, _) = check_file(&text);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("***"), "{printed}");
}

#[test]
fn keygen_prints_a_private_jwk_for_every_algorithm() {
    for alg in ["ES256", "ES384", "EdDSA"] {
        let out = bin().args(["keygen", "--alg", alg]).output().unwrap();
        assert!(out.status.success());
        let jwk: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(jwk["alg"], alg);
        assert!(jwk["d"].is_string());
    }
    let out = bin().args(["keygen", "--alg", "HS256"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn proof_command_prints_a_proof_for_the_url() {
    let dir = temp_dir("cli-proof");
    let out = bin().args(["keygen"]).output().unwrap();
    let key_path = dir.join("client.jwk");
    std::fs::write(&key_path, &out.stdout).unwrap();
    let out = run_ok(bin().args(["proof", "--key"]).arg(&key_path).args([
        "--method",
        "GET",
        "--url",
        "https://api.example.com/x?q=1",
        "--token",
        "abc",
    ]));
    let proof = String::from_utf8(out.stdout).unwrap();
    let payload = proof.trim().split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["htm"], "GET");
    assert_eq!(claims["htu"], "https://api.example.com/x");
    assert!(claims["ath"].is_string());
}

#[test]
fn demo_walks_through_forwarded_replayed_and_stolen_token_requests() {
    let out = run_ok(bin().arg("demo"));
    let text = String::from_utf8_lossy(&out.stdout);
    let statuses: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-> "))
        .collect();
    assert_eq!(
        statuses,
        ["401", "200", "401", "401", "401", "401", "401", "401", "200"],
        "{text}"
    );
    for taught in [
        "hashed JSON     {\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":",
        "\"cnf\":{\"jkt\":",
        "signing input",
        "base64url(SHA-256(access token))",
        "x-auth-subject: alice",
        "(no dpop header)",
        "already used",
        "the gateway compared (binding): expected cnf.jkt",
        "the gateway compared (htm): expected GET / got POST",
        "the gateway compared (htu)",
        "the gateway compared (iat)",
        "error=\"use_dpop_nonce\"",
        "DPoP-Nonce: ",
    ] {
        assert!(text.contains(taught), "{taught}: {text}");
    }
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    assert!(
        !text.contains("\"dpop:"),
        "the upstream never sees the proof: {text}"
    );
}

#[test]
fn demo_json_is_one_document_with_every_step() {
    let out = run_ok(bin().args(["demo", "--json"]));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 13);
    let thumbprint = steps[1]["data"]["jkt"].as_str().unwrap();
    assert_eq!(steps[2]["data"]["token_claims"]["cnf"]["jkt"], thumbprint);
    let compared: Vec<&str> = steps
        .iter()
        .filter_map(|s| s["data"]["compared"]["check"].as_str())
        .collect();
    assert_eq!(
        compared,
        ["replay", "binding", "htm", "htu", "iat", "nonce"]
    );
    assert_eq!(steps[12]["data"]["response"]["status"], 200);
}

#[test]
fn demo_keep_running_prints_curl_commands_that_work() {
    use std::io::{BufRead, BufReader};
    let mut child = bin()
        .args(["demo", "--keep-running"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut curl = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let l = line.trim();
        if l.starts_with("curl -i ") || (!curl.is_empty() && !curl.ends_with('"')) {
            curl.push_str(l.trim_end_matches('\\'));
        }
        if l.starts_with("Press Ctrl-C") {
            break;
        }
    }
    assert!(curl.contains("proof --key"), "{curl}");
    let answer = Command::new("bash").args(["-c", &curl]).output().unwrap();
    let text = String::from_utf8_lossy(&answer.stdout);
    assert!(text.starts_with("HTTP/1.1 200"), "{curl}\n{text}");
    assert!(text.contains("x-auth-subject: alice"), "{text}");
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}

#[test]
fn explain_passes_a_good_request_and_names_the_one_failing_check() {
    let dir = temp_dir("cli-explain");
    let key_path = dir.join("client.jwk");
    let out = bin().args(["keygen"]).output().unwrap();
    std::fs::write(&key_path, &out.stdout).unwrap();
    let out = run_ok(
        bin()
            .args([
                "token",
                "--issuer-key",
                "config/demo/issuer-key.jwk",
                "--bind",
            ])
            .arg(&key_path),
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let url = "http://127.0.0.1:8443/accounts";
    let out = bin()
        .args(["proof", "--key"])
        .arg(&key_path)
        .args(["--method", "GET", "--url", url, "--token", &token])
        .output()
        .unwrap();
    let proof = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let explain = |method: &str| {
        bin()
            .args([
                "explain",
                "-c",
                "config/gateway.yaml",
                "--proof",
                &proof,
                "--token",
                &token,
            ])
            .args(["--method", method, "--url", url])
            .output()
            .unwrap()
    };
    let ok = explain("GET");
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for check in [
        "signature",
        "htm",
        "htu",
        "iat",
        "ath",
        "token",
        "binding",
        "identity",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("PASS") && l.contains(check)),
            "{check}: {text}"
        );
    }
    assert!(text.contains("SKIP  replay"), "{text}");
    let bad = explain("POST");
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{text}");
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{text}");
    assert!(
        failed[0].contains("htm") && failed[0].contains("POST"),
        "{text}"
    );
}

#[test]
fn explain_names_a_route_policy_or_method_that_refuses() {
    let dir = temp_dir("cli-explain-policy");
    let key_path = dir.join("client.jwk");
    let out = bin().args(["keygen"]).output().unwrap();
    std::fs::write(&key_path, &out.stdout).unwrap();
    // The demo token's scope is `read`.
    let out = run_ok(
        bin()
            .args([
                "token",
                "--issuer-key",
                "config/demo/issuer-key.jwk",
                "--bind",
            ])
            .arg(&key_path),
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let shipped = std::fs::read_to_string("config/gateway.yaml").unwrap();
    let config = shipped.replace(
        "  - { path_prefix: \"/\", auth: dpop }\n",
        "  - { path_prefix: \"/accounts\", methods: [GET], auth: dpop, require: { scopes: [read, write] } }\n  - { path_prefix: \"/\", auth: dpop }\n",
    );
    assert_ne!(config, shipped, "the routes were replaced");
    let config_path = dir.join("gateway.yaml");
    std::fs::write(&config_path, config).unwrap();
    let explain = |method: &str| {
        let url = "http://127.0.0.1:8443/accounts";
        let out = bin()
            .args(["proof", "--key"])
            .arg(&key_path)
            .args(["--method", method, "--url", url, "--token", &token])
            .output()
            .unwrap();
        let proof = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let out = bin()
            .args(["explain", "-c"])
            .arg(&config_path)
            .args(["--proof", &proof, "--token", &token])
            .args(["--method", method, "--url", url])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = explain("GET");
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{text}");
    assert!(
        failed[0].contains("policy") && failed[0].contains("'write'"),
        "{text}"
    );
    assert!(
        text.contains("403") && text.contains("insufficient_scope"),
        "{text}"
    );
    let text = explain("DELETE");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("method") && l.contains("GET")),
        "{text}"
    );
    assert!(text.contains("405"), "{text}");
}
