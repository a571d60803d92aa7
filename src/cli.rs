//! The command line (README.md "Command line"): `run`, `check`, `keygen`, `proof`, `explain`, `demo`, `token`. Exit codes: 0 success,
//! 64 usage or configuration error, 1 start or runtime failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::jose::sign::{self, PrivateJwk, ProofClaims};
use crate::jose::Algorithm;
use crate::server::Running;

/// Exit code for a usage or configuration error (sysexits EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

#[derive(Parser, Debug)]
#[command(
    name = "dpop-gateway",
    version,
    about = "Enforces OAuth 2.0 DPoP (RFC 9449) in front of HTTP APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway.
    Run {
        /// Config file (default: $DPOP_GATEWAY_CONFIG, then config/gateway.yaml).
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
    /// Validate a config and print it resolved, secrets masked.
    Check {
        /// Config file (default: $DPOP_GATEWAY_CONFIG, then config/gateway.yaml).
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
    /// Print a new private JWK (for testing clients).
    Keygen {
        /// ES256, ES384, EdDSA, Ed25519, RS256 or PS256 (EdDSA and Ed25519 make the same kind of
        /// key; its `alg`, and so the proofs' `alg`, is the name given).
        #[arg(long, default_value = "ES256")]
        alg: String,
    },
    /// Print a fresh DPoP proof signed with a private JWK.
    Proof {
        /// A file holding a private JWK (as printed by `keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The HTTP method.
        #[arg(long)]
        method: String,
        /// The target URL.
        #[arg(long)]
        url: String,
        /// The access token (adds `ath`).
        #[arg(long)]
        token: Option<String>,
        /// A server nonce (from `DPoP-Nonce`).
        #[arg(long)]
        nonce: Option<String>,
    },
    /// Run every check on a captured proof (and token) and print each with pass/fail.
    Explain {
        /// Config file (default: $DPOP_GATEWAY_CONFIG, then config/gateway.yaml).
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// The `DPoP` header value.
        #[arg(long)]
        proof: String,
        /// The access token.
        #[arg(long)]
        token: Option<String>,
        /// The request method.
        #[arg(long)]
        method: String,
        /// The URL the client called.
        #[arg(long)]
        url: String,
        /// Check as of this time (seconds since the epoch) instead of now.
        #[arg(long)]
        at: Option<u64>,
    },
    /// A self-contained walkthrough on loopback: gateway, echo upstream, local issuer.
    Demo {
        /// Print the walkthrough as one JSON document.
        #[arg(long)]
        json: bool,
        /// Keep the demo running afterwards, with curl commands to try (Ctrl-C stops it).
        #[arg(long)]
        keep_running: bool,
    },
    /// Print a signed JWT access token (RFC 9068) for local testing, e.g. with the demo issuer key.
    Token {
        /// The issuer's private JWK (its `kid`, if any, goes in the header).
        #[arg(long)]
        issuer_key: PathBuf,
        /// Bind the token to this client's private or public JWK (sets `cnf.jkt`).
        #[arg(long)]
        bind: Option<PathBuf>,
        /// `iss`.
        #[arg(long, default_value = "https://as.example.com")]
        iss: String,
        /// `aud`.
        #[arg(long, default_value = "https://api.example.com")]
        aud: String,
        /// `sub`.
        #[arg(long, default_value = "demo-user")]
        sub: String,
        /// `scope`.
        #[arg(long, default_value = "read")]
        scope: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Run { config } => run(config),
        Command::Check { config } => check(config),
        Command::Keygen { alg } => keygen(&alg),
        Command::Proof {
            key,
            method,
            url,
            token,
            nonce,
        } => proof(&key, method, url, token, nonce),
        Command::Demo { json, keep_running } => demo(crate::demo::Options { json, keep_running }),
        Command::Explain {
            config,
            proof,
            token,
            method,
            url,
            at,
        } => {
            let input = crate::explain::Input {
                proof,
                token,
                method,
                url,
                at: at.map_or_else(|| SystemClock.now(), crate::clock::UnixTime),
            };
            explain(config, &input)
        }
        Command::Token {
            issuer_key,
            bind,
            iss,
            aud,
            sub,
            scope,
            ttl,
        } => {
            let claims = TokenClaims {
                iss,
                aud,
                sub,
                scope,
                ttl,
            };
            token(&issuer_key, bind.as_deref(), &claims)
        }
    }
}

fn config_path(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| std::env::var_os("DPOP_GATEWAY_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("config/gateway.yaml"))
}

fn load(arg: Option<PathBuf>) -> Result<Config, ExitCode> {
    Config::load(&config_path(arg)).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_USAGE)
    })
}

fn check(arg: Option<PathBuf>) -> ExitCode {
    // The files the config names are read and parsed too, as `run` would.
    match crate::check::check(&config_path(arg)) {
        Ok(config) => {
            print!("{}", config.to_masked_yaml());
            ExitCode::SUCCESS
        }
        // The contract: `check` exits 1 on an invalid config.
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// The runtime for `run`: one worker per CPU the process may use (affinity and cgroup quota,
/// as `available_parallelism` reads them). With one CPU — the usual sidecar — a current-thread
/// runtime, as linkerd2-proxy does: the same single thread, without the work-stealing
/// scheduler's cross-thread bookkeeping (20% less CPU per proxied request in the load benchmark).
fn runtime_builder() -> (tokio::runtime::Builder, &'static str) {
    match std::thread::available_parallelism() {
        Ok(n) if n.get() == 1 => (
            tokio::runtime::Builder::new_current_thread(),
            "current-thread (1 CPU)",
        ),
        _ => (
            tokio::runtime::Builder::new_multi_thread(),
            "multi-thread (a worker per CPU)",
        ),
    }
}

fn run(arg: Option<PathBuf>) -> ExitCode {
    let path = config_path(arg.clone());
    let config = match load(arg) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let _log_guard = crate::telemetry::init();
    let (mut builder, flavor) = runtime_builder();
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dpop-gateway: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(runtime = flavor, "starting");
    runtime.block_on(async move {
        // Before anything that takes time: until a handler is installed, SIGHUP's default
        // action ends the process (exit 129) and SIGTERM's skips the drain.
        let mut signals = Signals::install();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let running = match Running::start_reloadable(config, path, clock).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("dpop-gateway: {e}");
                return ExitCode::from(1);
            }
        };
        if let Some(reloader) = running.reloader() {
            signals.reload_on_hangup(reloader.clone());
        }
        signals.shutdown_requested().await;
        tracing::info!("shutting down: not ready, draining in-flight requests");
        running.shutdown().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

fn explain(config: Option<PathBuf>, input: &crate::explain::Input) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dpop-gateway explain: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    match runtime.block_on(crate::explain::run(&config, input)) {
        Ok(explanation) => {
            print!("{}", crate::explain::render(&explanation));
            if explanation.failed() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("dpop-gateway explain: {e}");
            ExitCode::from(1)
        }
    }
}

fn demo(options: crate::demo::Options) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dpop-gateway demo: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(crate::demo::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dpop-gateway demo: {e}");
            ExitCode::from(1)
        }
    }
}

/// The signals `run` handles: SIGTERM and SIGINT begin the drain; SIGHUP reloads the config
/// file (its default action would end the process mid-request: it is handled from the start,
/// and one received while starting is answered once the gateway runs).
struct Signals {
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers.
    #[cfg(unix)]
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let handle = |kind: SignalKind, name: &str| {
            signal(kind)
                .map_err(|e| tracing::warn!(error = %e, signal = name, "cannot handle the signal"))
                .ok()
        };
        Signals {
            hup: handle(SignalKind::hangup(), "SIGHUP"),
            term: handle(SignalKind::terminate(), "SIGTERM"),
            int: handle(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Answers each SIGHUP with a reload, one at a time, for as long as the runtime lives.
    #[cfg(unix)]
    fn reload_on_hangup(&mut self, reloader: crate::server::Reloader) {
        if let Some(mut hup) = self.hup.take() {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP received: reloading the configuration");
                    let _ = reloader.reload("SIGHUP").await;
                }
            });
        }
    }

    #[cfg(not(unix))]
    fn reload_on_hangup(&mut self, _reloader: crate::server::Reloader) {}

    #[cfg(not(unix))]
    fn install() -> Signals {
        Signals {}
    }

    /// Resolves at the first SIGTERM or SIGINT.
    #[cfg(unix)]
    async fn shutdown_requested(self) {
        async fn recv(s: Option<tokio::signal::unix::Signal>) {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = recv(self.term) => {}
            () = recv(self.int) => {}
        }
    }

    #[cfg(not(unix))]
    async fn shutdown_requested(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn keygen(alg: &str) -> ExitCode {
    let Some(alg) = Algorithm::from_name(alg) else {
        eprintln!(
            "dpop-gateway keygen: unknown --alg {alg:?} ({})",
            Algorithm::NAMES
        );
        return ExitCode::from(EXIT_USAGE);
    };
    match PrivateJwk::generate(alg) {
        Ok(key) => {
            println!("{}", key.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dpop-gateway keygen: {e}");
            ExitCode::from(1)
        }
    }
}

fn proof(
    key: &std::path::Path,
    method: String,
    url: String,
    token: Option<String>,
    nonce: Option<String>,
) -> ExitCode {
    let key = match read_private_key(key, "key file") {
        Ok((k, _)) => k,
        Err(why) => {
            eprintln!("dpop-gateway proof: {why}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // htu carries no query or fragment (RFC 9449 §4.2).
    let htu = url.split(['?', '#']).next().unwrap_or(&url).to_owned();
    let claims = ProofClaims {
        htm: method,
        htu,
        iat: SystemClock.now().as_secs(),
        jti: sign::random_jti(),
        access_token: token,
        nonce,
    };
    match key.mint_proof(&claims) {
        Ok(p) => {
            println!("{p}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dpop-gateway proof: {e}");
            ExitCode::from(1)
        }
    }
}

/// The claims `dpop-gateway token` puts in a test access token.
struct TokenClaims {
    iss: String,
    aud: String,
    sub: String,
    scope: String,
    ttl: u64,
}

/// The private JWK in the file at `path` (`what` names it in messages: `key file`, `issuer
/// key file`) and its JSON, or a message saying what is wrong with it.
fn read_private_key(
    path: &std::path::Path,
    what: &str,
) -> Result<(PrivateJwk, serde_json::Value), String> {
    let at = || format!("{what} {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", at()))?;
    let key = PrivateJwk::from_json(&text).map_err(|e| format!("{}: {e}", at()))?;
    // A valid private JWK is a JSON object: this cannot fail once `from_json` succeeded.
    let json = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", at()))?;
    Ok((key, json))
}

/// The RFC 7638 thumbprint of the private or public JWK in the file at `path` (`--bind`).
fn bound_thumbprint(path: &std::path::Path) -> Result<crate::jose::Thumbprint, String> {
    let at = || format!("--bind file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", at()))?;
    if let Ok(k) = PrivateJwk::from_json(&text) {
        return Ok(k.thumbprint());
    }
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a JWK: one JSON object expected ({e})", at()))?;
    // The public members only: a private JWK that did not load is still bound by its public key.
    let public: serde_json::Map<String, serde_json::Value> = map
        .into_iter()
        .filter(|(k, _)| matches!(k.as_str(), "kty" | "crv" | "x" | "y" | "n" | "e"))
        .collect();
    crate::jose::PublicJwk::from_json(&public)
        .map(|k| k.thumbprint())
        .map_err(|e| format!("{}: not a usable JWK: {e}", at()))
}

fn token(
    issuer_key: &std::path::Path,
    bind: Option<&std::path::Path>,
    c: &TokenClaims,
) -> ExitCode {
    let (key, json) = match read_private_key(issuer_key, "issuer key file") {
        Ok(k) => k,
        Err(why) => {
            eprintln!("dpop-gateway token: {why}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let now = SystemClock.now().as_secs();
    let mut claims = serde_json::json!({
        "iss": c.iss,
        "aud": c.aud,
        "sub": c.sub,
        "scope": c.scope,
        "client_id": "dpop-gateway-cli",
        "iat": now,
        "exp": now + c.ttl,
        "jti": sign::random_jti(),
    });
    if let Some(bind) = bind {
        let jkt = match bound_thumbprint(bind) {
            Ok(t) => t,
            Err(why) => {
                eprintln!("dpop-gateway token: {why}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        claims["cnf"] = serde_json::json!({ "jkt": jkt.to_string() });
    }
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), serde_json::json!("at+jwt"));
    if let Some(kid) = json.get("kid") {
        header.insert("kid".into(), kid.clone());
    }
    match key.sign_jws(header, &claims) {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dpop-gateway token: {e}");
            ExitCode::from(1)
        }
    }
}
