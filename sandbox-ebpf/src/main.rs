//! Kernel side of sandbox-agent: BPF LSM programs that decide what confined tasks may open,
//! execute and connect to.
#![no_std]
#![no_main]

mod attributes;
mod audit;
mod confinement;
mod exec;
mod file;
mod file_check;
mod guard;
mod hook;
mod host_files;
mod kernel;
mod kernel_fs;
mod keyrings;
mod maps;
mod mode;
mod net;
mod net_rules;
mod other_processes;
mod other_users;
mod policy;
mod privilege;
mod root_files;
mod shared_ports;
mod sticky_dirs;
mod target;
mod task;
mod terminals;
mod verdict;
mod verdict_cache;
mod walk;
mod write;

/// LSM programs call GPL-only helpers (bpf_probe_read_kernel), so the object must say GPL.
#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects any path that could get here,
    // because it would be an unbounded loop.
    loop {}
}
