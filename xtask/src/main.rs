//! `cargo xtask`: toolchain bootstrap, test kernels, VM harness, test runner and demo.
//!
//! Every command runs the part of `setup` it needs first, so a fresh machine needs no manual step.

mod apt;
mod bench;
mod cmd;
mod demo;
mod elf;
mod initramfs;
mod kernels;
mod marker;
mod modules;
mod paths;
mod project;
mod setup;
mod test;
mod vm;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::kernels::KernelVersion;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, VM and test orchestration for sandbox-agent",
    after_help = "Environment:
  SANDBOX_AGENT_CACHE=DIR        downloads, kernels, initramfs (default ~/.cache/sandbox-agent)
  SANDBOX_AGENT_SKIP_BUILD=1     use the existing target/<host triple>/release/sandbox-agent (vm, demo)
  SANDBOX_AGENT_VM_NO_DAEMON=1   boot the VM without starting the daemon (vm)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what is missing: apt packages, rust-src, bpf-linker and both test kernels.
    Setup,
    /// Build sandbox-agent and boot a test kernel with the daemon running; run CMD or a shell.
    Vm {
        /// Which test kernel to boot.
        #[arg(long, value_enum, default_value = "6.12")]
        kernel: KernelVersion,
        /// Kill the VM and fail after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 1800)]
        timeout: u64,
        /// Command to run in the guest (in /tmp); without it, an interactive shell.
        #[arg(last = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Run the unit tests, then the enforcement suite inside a VM on each test kernel.
    Test {
        /// Run the enforcement suite on this kernel only.
        #[arg(long, value_enum)]
        kernel: Option<KernelVersion>,
        /// Kill a VM and fail after this many seconds (or after 10 minutes without output).
        #[arg(long, value_name = "SECS", default_value_t = 3000)]
        timeout: u64,
        /// Extra arguments for the enforcement test binary (e.g. a name filter).
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
    /// Benchmark in the VM: overhead against the kernel alone, Landlock and bubblewrap, as
    /// ratios measured in one run; JSON in target/bench/.
    Bench {
        /// Which test kernel to boot.
        #[arg(long, value_enum, default_value = "6.12")]
        kernel: KernelVersion,
        /// Kill the VM and fail after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 3600)]
        timeout: u64,
        /// One part of the benchmark (`hooks`: the per-hook breakdown, how many programs run
        /// per operation and what each costs, from the kernel's own BPF statistics).
        #[arg(long, value_enum, default_value = "all")]
        part: bench::Part,
        /// Same as `--part hooks`.
        #[arg(long, conflicts_with = "part")]
        hooks: bool,
        /// Measure on this machine instead of the VM (root, a kernel that enforces, and no
        /// sandbox-agent running, pinned or configured here).
        #[arg(long)]
        on_host: bool,
    },
    /// Runs inside the VM for `bench` (not for direct use).
    #[command(hide = true)]
    BenchGuest {
        #[command(subcommand)]
        what: BenchGuest,
    },
    /// Show enforcement on fake secrets: natively if the host kernel can, else in a VM.
    Demo {
        /// Kill the VM and fail after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 1800)]
        timeout: u64,
    },
}

#[derive(Subcommand)]
enum BenchGuest {
    /// Every measurement, then the table and the JSON line.
    Run {
        #[arg(long)]
        agent: std::path::PathBuf,
        #[arg(long)]
        repo: std::path::PathBuf,
        #[arg(long, value_enum)]
        part: bench::Part,
    },
    /// Time one workload in this process; prints ns/op.
    Measure {
        workload: String,
        arg: String,
        iters: u32,
        /// Restrict file reads with Landlock to the paths listed in this file first.
        #[arg(long)]
        landlock: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::run_all().map(|()| 0),
        Command::Vm {
            kernel,
            timeout,
            command,
        } => vm::command(kernel, Duration::from_secs(timeout), command),
        Command::Test {
            kernel,
            timeout,
            args,
        } => test::command(kernel, Duration::from_secs(timeout), args),
        Command::Demo { timeout } => demo::command(Duration::from_secs(timeout)),
        Command::Bench {
            kernel,
            timeout,
            part,
            hooks,
            on_host,
        } => {
            let part = if hooks { bench::Part::Hooks } else { part };
            if on_host {
                bench::on_host(part)
            } else {
                bench::command(kernel, Duration::from_secs(timeout), part)
            }
        }
        Command::BenchGuest { what } => match what {
            BenchGuest::Run { agent, repo, part } => {
                bench::run_in_guest(&agent, &repo, part).map(|()| 0)
            }
            BenchGuest::Measure {
                workload,
                arg,
                iters,
                landlock,
            } => bench::measure_command(&workload, &arg, iters, landlock.as_deref()).map(|()| 0),
        },
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
