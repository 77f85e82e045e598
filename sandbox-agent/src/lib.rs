//! sandbox-agent userspace: the daemon, the CLI verbs, and what they share. Public: what the
//! binary (`main.rs`) and the enforcement suite use; everything else stays inside the crate.

pub mod cgroup;
pub mod commands;
pub mod config;
pub mod container;
pub mod daemon;
pub mod kernel_offsets;
pub mod policy;

mod audit;
mod bpf;
mod cgroup_mount;
mod client;
mod descriptors;
mod identity;
mod kallsyms;
mod mounts;
mod nss;
mod protocol;
mod signals;
mod waiting_child;
