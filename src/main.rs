//! The `weborca-mtls-proxy` command: parses the command line, runs the proxy
//! (or `check` / `demo` / `audit`…) and turns the outcome into an exit code.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use weborca_mtls_proxy::{app, setup};

/// The default config file.
const DEFAULT_CONFIG: &str = "/etc/weborca-mtls-proxy/proxy.conf";

/// Mutual-TLS reverse proxy for WebORCA: demands a client certificate issued by
/// the clinic's CA (orca-catool) and forwards verified requests to WebORCA.
#[derive(Parser)]
#[command(name = "weborca-mtls-proxy", version, about)]
struct Cli {
    /// config file (jma-receipt.conf style)
    #[arg(short, long, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// check the setup against WebORCA's troubleshooting list
    Check {
        /// a host name or address clients use to reach this server (repeatable)
        #[arg(long)]
        host: Vec<String>,
        /// only ACCESS_POLICY: which rule decides for this client certificate (PEM or DER)
        #[arg(long, value_name = "FILE", requires = "path")]
        as_cert: Option<PathBuf>,
        /// with --as-cert: the request path to decide
        #[arg(long, value_name = "P", requires = "as_cert")]
        path: Option<String>,
        /// with --as-cert: the request method
        #[arg(long, value_name = "M", default_value = "GET", requires = "as_cert")]
        method: String,
    },
    /// run a throwaway CA, certificates, a stand-in WebORCA and the proxy, to try it out
    #[cfg(feature = "demo")]
    Demo {
        /// folder for the demo certificates
        #[arg(long, default_value = "demo")]
        dir: PathBuf,
        /// port the proxy listens on
        #[arg(long, default_value_t = 8000)]
        port: u16,
    },
    /// move WebORCA behind the proxy in one step (or back with --rollback)
    Setup(setup::SetupArgs),
    /// put an orca-catool server certificate zip in place and reload
    InstallCert(setup::install::CertArgs),
    /// put a CRL from orca-catool issue_crl in place and reload
    InstallCrl(setup::install_crl::CrlArgs),
    /// the access report for the periodic review: text, CSV or HTML
    Audit(weborca_mtls_proxy::audit::AuditArgs),
    /// the backend guard (nftables)
    Guard {
        #[command(subcommand)]
        action: GuardAction,
    },
}

#[derive(Subcommand)]
enum GuardAction {
    /// print the guard's nftables script (what setup writes to /etc/weborca-mtls-proxy/guard.nft)
    Print {
        /// WebORCA's plain-HTTP port, reachable only from this machine
        /// [default: BACKEND_URL's port in the config, else 8001]
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = run_tool(&cli) {
        return code;
    }
    let log = match weborca_mtls_proxy::log::init(None) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            eprintln!("cannot start logging: {e}");
            return ExitCode::from(1);
        }
    };
    // This thread is the first worker; the server starts the others, each
    // with a runtime of its own (see `server::spawn_worker`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        None => runtime.block_on(app::run(cli.config, log.clone())),
        Some(Command::Check {
            host,
            as_cert,
            path,
            method,
        }) => {
            let lines = match (as_cert, path) {
                (Some(cert), Some(path)) => {
                    weborca_mtls_proxy::check::as_cert(&cli.config, &cert, &path, &method)
                }
                _ => weborca_mtls_proxy::check::run(&cli.config, &host),
            };
            drop(log);
            let all_ok = weborca_mtls_proxy::check::print(&lines);
            return if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
        #[cfg(feature = "demo")]
        Some(Command::Demo { dir, port }) => {
            runtime.block_on(weborca_mtls_proxy::demo::run(dir, port, log.clone()))
        }
        // Done by run_tool above.
        Some(
            Command::Setup(_)
            | Command::InstallCert(_)
            | Command::InstallCrl(_)
            | Command::Audit(_)
            | Command::Guard { .. },
        ) => Ok(()),
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            tracing::error!("{}", f.message());
            ExitCode::from(f.exit_code())
        }
    };
    drop(runtime);
    drop(log); // flushes the log writer
    code
}

/// The commands that change the system or print something (`setup`, `install-*`,
/// `guard`): they run before logging starts and write to stdout/stderr themselves.
fn run_tool(cli: &Cli) -> Option<ExitCode> {
    if let Some(Command::Audit(args)) = &cli.command {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        return Some(
            match weborca_mtls_proxy::audit::run(args, &cli.config, &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    drop(out);
                    eprintln!("{}", e.message);
                    ExitCode::from(e.code)
                }
            },
        );
    }
    let result = match &cli.command {
        Some(Command::Setup(args)) => setup::run(args, &cli.config),
        Some(Command::InstallCert(args)) => setup::install::install_cert(args, &cli.config),
        Some(Command::InstallCrl(args)) => setup::install_crl::install_crl(args, &cli.config),
        Some(Command::Guard {
            action: GuardAction::Print { port },
        }) => guard_port(*port, &cli.config).map(|port| {
            print!("{}", weborca_mtls_proxy::guard::script(port));
        }),
        _ => return None,
    };
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(stop) => {
            eprintln!("{}", stop.message);
            ExitCode::from(stop.code)
        }
    })
}

/// The port `guard print` guards: `--port`, else BACKEND_URL's port in the
/// config (a guard for another port would leave WebORCA's open), else, when
/// the default config does not exist, WebORCA's usual 8001. A config named
/// with `-c` that cannot be read is an error, not a silent 8001.
fn guard_port(port: Option<u16>, config: &std::path::Path) -> Result<u16, setup::Stop> {
    if let Some(port) = port {
        return Ok(port);
    }
    if config == std::path::Path::new(DEFAULT_CONFIG) && !config.exists() {
        return Ok(8001);
    }
    match weborca_mtls_proxy::config::load(config) {
        Ok(loaded) => Ok(loaded.config.backend.port),
        Err(e) => Err(setup::Stop::config(format!(
            "guard print: {e}; or name the port with --port PORT"
        ))),
    }
}
