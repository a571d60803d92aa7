//! The `dpop-gateway` binary: all of it is in the library; see `cli.rs`.

fn main() -> std::process::ExitCode {
    dpop_gateway::cli::main()
}
