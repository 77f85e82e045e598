//! `doctor`: says loudly whether this kernel can enforce, and what to change when it cannot.
//! It probes for real by loading the agent's own LSM program (without attaching it).

use std::path::Path;

use crate::bpf::{loader, support};

pub fn run(bpffs_root: &Path) -> anyhow::Result<bool> {
    let mut ok = true;
    let mut report = |name: &str, result: Result<String, String>| match result {
        Ok(detail) => println!("[ ok ] {name}: {detail}"),
        Err(detail) => {
            ok = false;
            println!("[FAIL] {name}: {detail}");
        }
    };
    report(
        "kernel",
        Ok(std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"))),
    );
    report(
        "active LSMs",
        support::active_lsms()
            .map_err(|e| e.to_string())
            .and_then(|l| {
                if l.iter().any(|x| x == "bpf") {
                    Ok(l.join(","))
                } else {
                    Err(support::SupportError::BpfLsmInactive(l.join(",")).to_string())
                }
            }),
    );
    report(
        "kernel BTF offsets",
        crate::kernel_offsets::from_running_kernel()
            .map(|o| format!("resolved {o:?}"))
            .map_err(|e| e.to_string()),
    );
    // Load into a private pin directory so the probe never touches a running daemon's maps.
    let probe_dir = bpffs_root.join(format!("doctor-{}", std::process::id()));
    let probe = loader::load(&probe_dir.join("maps"), &Default::default())
        .map(|_| "the LSM programs load".to_string())
        .map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&probe_dir);
    report("BPF LSM program load", probe);
    if ok {
        println!("this kernel can enforce sandbox-agent policies");
    } else {
        println!("this kernel cannot enforce sandbox-agent policies: `daemon` will refuse to start and `run` will refuse to start commands");
    }
    Ok(ok)
}
