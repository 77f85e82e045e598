use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sandbox_agent::{commands, config::Config, daemon, policy::Anchors};

/// Confines AI coding agents with BPF LSM policies keyed on inode identity.
#[derive(Parser)]
#[command(name = "sandbox-agent", version)]
struct Cli {
    /// Host configuration [default: /etc/sandbox-agent/config.yaml when it exists]. Flags
    /// override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load and pin the BPF programs, serve the control socket, log audit events.
    Daemon {
        /// Control socket [default: /run/sandbox-agent.sock]
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Where programs, links and maps are pinned [default: /sys/fs/bpf/sandbox-agent]
        #[arg(long)]
        bpffs: Option<PathBuf>,
        /// [default: /var/log/sandbox-agent/audit.log]
        #[arg(long)]
        audit_log: Option<PathBuf>,
        /// The attachment table a restarted daemon reads [default: /run/sandbox-agent/state.json]
        #[arg(long)]
        state_file: Option<PathBuf>,
        /// Serve Prometheus metrics (`GET /metrics`) on this address, e.g. 127.0.0.1:9464;
        /// confined tasks cannot connect to it [default: none, or the config's metrics_listen]
        #[arg(long, value_name = "ADDR:PORT")]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Instead of serving: remove every attachment, pin and the attachment table, which
        /// stops all enforcement. Refused while a daemon is running.
        #[arg(long)]
        cleanup: bool,
    },
    /// Confine a cgroup (and its descendants) with a policy.
    Attach {
        #[command(flatten)]
        target: CgroupTarget,
        #[arg(long)]
        policy: PathBuf,
        /// What `~` means in the policy (default: the invoking user's home).
        #[arg(long)]
        home: Option<PathBuf>,
        /// What `$WORKSPACE` means in the policy (needed only when the policy uses it).
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Attach even when processes in the cgroup hold files the policy denies open (they
        /// keep those descriptors); they are listed as warnings.
        #[arg(long)]
        force: bool,
        /// Control socket [default: /run/sandbox-agent.sock]
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Stop confining a cgroup.
    Detach {
        #[command(flatten)]
        target: CgroupTarget,
        /// Control socket [default: /run/sandbox-agent.sock]
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Run a command confined by a policy, in a transient cgroup; exits with its status.
    Run {
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        home: Option<PathBuf>,
        /// What `$WORKSPACE` means in the policy [default: the current directory]
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Control socket [default: /run/sandbox-agent.sock]
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Let the command inherit descriptor N (repeatable). Every other descriptor above 2
        /// is closed before it starts: one opened outside the sandbox bypasses the policy.
        #[arg(long = "keep-fd", value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
        keep_fd: Vec<i32>,
        /// Name the variables taken out of the environment (never their values) and the denied
        /// paths that do not exist yet.
        #[arg(long, short)]
        verbose: bool,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// What is attached, and event counters.
    Status {
        #[arg(long)]
        json: bool,
        /// Control socket [default: /run/sandbox-agent.sock]
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Print audit events.
    Audit {
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        cgroup: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Control socket [default: /run/sandbox-agent.sock]
        #[arg(long)]
        socket: Option<PathBuf>,
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
    /// Print a tightened policy learned from the audit records of a run under a learning
    /// policy in audit mode (`allow_exec: []`, `network.default: deny`).
    Suggest {
        /// Learn from the audit log (the only source so far).
        #[arg(long, required = true)]
        from_audit: bool,
        /// The learning policy's name, as its records carry it.
        #[arg(long, conflicts_with = "cgroup")]
        policy: Option<String>,
        /// The cgroup the learning run was confined in.
        #[arg(long)]
        cgroup: Option<PathBuf>,
        /// Only records at or after this time: RFC 3339 (2026-12-02T10:00:00Z) or how long ago
        /// (30m).
        #[arg(long)]
        since: Option<String>,
        /// Read this audit log (and its rotated files) instead of asking the daemon where its
        /// log is.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Control socket [default: /run/sandbox-agent.sock]
        #[arg(long)]
        socket: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    // Only the daemon and doctor log (the kernel side, the daemon's work); the other commands
    // print what they have to say, and a `run` does not pay for a logger it never uses.
    if matches!(cli.command, Cmd::Daemon { .. } | Cmd::Doctor { .. }) {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("SANDBOX_AGENT_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_writer(std::io::stderr)
            .init();
    }
    let code = match Config::load(cli.config.as_deref())
        .map_err(anyhow::Error::from)
        .and_then(|config| dispatch(cli.command, &config))
    {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sandbox-agent: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn anchors(home: Option<PathBuf>, workspace: Option<PathBuf>) -> anyhow::Result<Anchors> {
    Ok(Anchors {
        home: match home {
            Some(h) => std::path::absolute(h)?,
            None => commands::attach::default_home()?,
        },
        workspace: workspace.map(std::path::absolute).transpose()?,
    })
}

fn dispatch(cmd: Cmd, config: &Config) -> anyhow::Result<i32> {
    match cmd {
        Cmd::Daemon {
            socket,
            bpffs,
            audit_log,
            state_file,
            metrics_listen,
            cleanup,
        } => {
            let (audit_log, state_file) =
                (config.audit_log(audit_log), config.state_file(state_file));
            let socket = config.socket(socket);
            let protected = daemon::Protected {
                files: [
                    audit_log.parent(),
                    state_file.parent(),
                    config.source.as_deref(),
                ]
                .into_iter()
                .flatten()
                .map(std::path::Path::to_path_buf)
                .collect(),
                sockets: vec![socket.clone()],
            };
            let opts = daemon::DaemonOptions {
                socket,
                bpffs: config.bpffs(bpffs),
                audit_log,
                state_file,
                protected,
                control_gid: config
                    .control_group
                    .as_ref()
                    .map(|g| g.gid())
                    .transpose()
                    .map_err(anyhow::Error::msg)?,
                audit_rate: config.audit_rate(),
                audit_log_max_bytes: config.audit_log_max_bytes(),
                audit_log_keep: config.audit_log_keep(),
                dns_refresh: config.dns_refresh(),
                metrics_listen: config.metrics_listen(metrics_listen),
                cgroup_favordynmods: config.cgroup_favordynmods(),
                compile_reuse: config.compile_reuse(),
            };
            if metrics_listen.is_some_and(|a| a.port() == 0) {
                anyhow::bail!("--metrics-listen needs a port other than 0");
            }
            if cleanup {
                daemon::cleanup(&opts)?;
                return Ok(0);
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(daemon::run(opts))?;
            Ok(0)
        }
        Cmd::Attach {
            target,
            policy,
            home,
            workspace,
            force,
            socket,
        } => {
            let socket = config.socket(socket);
            let cgroup = target.resolve()?;
            let source = commands::attach::read_policy(&policy)?;
            let info = commands::attach::attach(
                &socket,
                &cgroup,
                &source,
                &anchors(home, workspace)?,
                force,
            )?;
            commands::attach::print_attached(&info);
            Ok(0)
        }
        Cmd::Detach { target, socket } => {
            let cgroup = target.resolve()?;
            commands::attach::detach(&config.socket(socket), &cgroup)?;
            println!("detached {}", cgroup.display());
            Ok(0)
        }
        Cmd::Run {
            policy,
            home,
            workspace,
            socket,
            keep_fd,
            verbose,
            command,
        } => commands::run::run(
            &config.socket(socket),
            &policy,
            // A run's workspace is where it is started, unless told otherwise.
            &anchors(
                home,
                Some(workspace.map_or_else(std::env::current_dir, Ok)?),
            )?,
            &commands::run::RunOptions {
                keep_fds: &keep_fd,
                verbose,
            },
            &command,
        ),
        Cmd::Status { json, socket } => {
            let s = commands::status::fetch(&config.socket(socket))?;
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
            commands::audit::show(&config.socket(socket), follow, cgroup.as_deref(), json)?;
            Ok(0)
        }
        Cmd::Policy {
            command: PolicyCmd::Check { file },
        } => Ok(if commands::policy_check::check(&file)? {
            0
        } else {
            1
        }),
        Cmd::Policy {
            command:
                PolicyCmd::Suggest {
                    from_audit: _,
                    policy,
                    cgroup,
                    since,
                    log,
                    socket,
                },
        } => {
            let since = since
                .as_deref()
                .map(commands::policy_suggest::parse_since)
                .transpose()?;
            let selection = commands::policy_suggest::Selection {
                policy,
                cgroup,
                since,
            };
            commands::policy_suggest::suggest(&config.socket(socket), log.as_deref(), &selection)?;
            Ok(0)
        }
        Cmd::Doctor { bpffs_root } => Ok(if commands::doctor::run(&bpffs_root)? {
            0
        } else {
            1
        }),
    }
}

/// Which cgroup `attach` and `detach` act on: a path, or a running container's.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct CgroupTarget {
    #[arg(long)]
    cgroup: Option<PathBuf>,
    /// A running container's ID (or a unique prefix of 12 digits or more), in place of
    /// --cgroup: podman, Docker, containerd and CRI-O cgroups are found
    #[arg(long, value_name = "ID")]
    container: Option<String>,
}

impl CgroupTarget {
    fn resolve(self) -> anyhow::Result<PathBuf> {
        match (self.cgroup, self.container) {
            (Some(cgroup), _) => Ok(cgroup),
            (None, Some(id)) => {
                let root = std::path::Path::new(sandbox_agent::cgroup::CGROUP_ROOT);
                let cgroup = sandbox_agent::container::resolve(root, &id)?;
                eprintln!("container {id}: cgroup {}", cgroup.display());
                Ok(cgroup)
            }
            (None, None) => anyhow::bail!("give --cgroup PATH or --container ID"),
        }
    }
}
