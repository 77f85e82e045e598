use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sandbox_agent::{commands, daemon, protocol::DEFAULT_SOCKET};

const DEFAULT_BPFFS: &str = "/sys/fs/bpf/sandbox-agent";
const DEFAULT_AUDIT_LOG: &str = "/var/log/sandbox-agent/audit.log";

/// Confines AI coding agents with BPF LSM policies keyed on inode identity.
#[derive(Parser)]
#[command(name = "sandbox-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load and pin the BPF programs, serve the control socket, log audit events.
    Daemon {
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        #[arg(long, default_value = DEFAULT_BPFFS)]
        bpffs: PathBuf,
        #[arg(long, default_value = DEFAULT_AUDIT_LOG)]
        audit_log: PathBuf,
    },
    /// Confine a cgroup (and its descendants) with a policy.
    Attach {
        #[arg(long)]
        cgroup: PathBuf,
        #[arg(long)]
        policy: PathBuf,
        /// What `~` means in the policy (default: the invoking user's home).
        #[arg(long)]
        home: Option<PathBuf>,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Stop confining a cgroup.
    Detach {
        #[arg(long)]
        cgroup: PathBuf,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Run a command confined by a policy, in a transient cgroup; exits with its status.
    Run {
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        home: Option<PathBuf>,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// What is attached, and event counters.
    Status {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Print audit events.
    Audit {
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        cgroup: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Policy file tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCmd,
    },
    /// Check that this kernel can enforce, and say what is missing.
    Doctor {
        #[arg(long, default_value = "/sys/fs/bpf")]
        bpffs_root: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Validate a policy file (no root needed).
    Check { file: PathBuf },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SANDBOX_AGENT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match dispatch(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sandbox-agent: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn home_or_default(home: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match home {
        Some(h) => Ok(std::path::absolute(h)?),
        None => commands::attach::default_home(),
    }
}

fn dispatch(cmd: Cmd) -> anyhow::Result<i32> {
    match cmd {
        Cmd::Daemon {
            socket,
            bpffs,
            audit_log,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(daemon::run(daemon::DaemonOptions {
                socket,
                bpffs,
                audit_log,
            }))?;
            Ok(0)
        }
        Cmd::Attach {
            cgroup,
            policy,
            home,
            socket,
        } => {
            let info =
                commands::attach::attach(&socket, &cgroup, &policy, &home_or_default(home)?)?;
            commands::attach::print_attached(&info);
            Ok(0)
        }
        Cmd::Detach { cgroup, socket } => {
            commands::attach::detach(&socket, &cgroup)?;
            println!("detached {}", cgroup.display());
            Ok(0)
        }
        Cmd::Run {
            policy,
            home,
            socket,
            command,
        } => commands::run::run(&socket, &policy, &home_or_default(home)?, &command),
        Cmd::Status { json, socket } => {
            let s = commands::status::fetch(&socket)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                commands::status::print(&s);
            }
            Ok(0)
        }
        Cmd::Audit {
            follow,
            cgroup,
            json,
            socket,
        } => {
            commands::audit::show(&socket, follow, cgroup.as_deref(), json)?;
            Ok(0)
        }
        Cmd::Policy {
            command: PolicyCmd::Check { file },
        } => {
            commands::policy_check::check(&file)?;
            Ok(0)
        }
        Cmd::Doctor { bpffs_root } => Ok(if commands::doctor::run(&bpffs_root)? {
            0
        } else {
            1
        }),
    }
}
