//! sandbox-agent userspace: the daemon, the CLI verbs, and what they share.

pub mod audit;
pub mod bpf;
pub mod cgroup;
pub mod client;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod descriptors;
pub mod identity;
pub mod kernel_offsets;
pub mod mounts;
pub mod policy;
pub mod protocol;
pub mod signals;
pub mod waiting_child;
