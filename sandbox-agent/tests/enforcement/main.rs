//! Enforcement suite: loads the real BPF programs (through the running daemon) on a real kernel
//! and tries each attack from a confined process. Runs inside the VM (`cargo xtask test`) where
//! the daemon is already running; it fails, never skips, when it cannot enforce.

mod harness;

mod aliases;
mod allow_exec;
mod allow_write;
mod audit_events;
mod bad_input;
mod changes;
mod compile_reuse;
mod confined_root;
mod containers;
mod control;
mod default_policy;
mod deny_exec;
mod deny_read;
mod deny_write;
mod descriptors;
mod escape;
mod exec_loaders;
mod filesystems;
mod git_repos;
mod hardlinks;
mod io_uring;
mod kernel_filesystems;
mod keyrings;
mod large_policy;
mod lifecycle;
mod metrics;
mod mounted_below;
mod network;
mod no_bpf_lsm;
mod other_processes;
mod other_repositories;
mod other_users;
mod persistence;
mod policy_suggest;
mod root_files;
mod root_services;
mod run_command;
mod scope;
mod servers_outside;
mod shared_ports;
mod terminals;
mod the_way;
mod verdict_cache;
mod verifier_headroom;
