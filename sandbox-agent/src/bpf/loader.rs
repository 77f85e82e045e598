//! Loads the embedded programs with the running kernel's offsets, attaches them, and pins
//! maps and links in bpffs so enforcement outlives the daemon process.

use std::{
    mem::size_of,
    path::{Path, PathBuf},
};

use aya::{
    maps::MapInfo,
    programs::{links::FdLink, links::PinnedLink, FEntry, FExit, Lsm},
    Btf, Ebpf, EbpfLoader,
};
use sandbox_common::{
    AuditRate, AuditRateLimit, CgroupPolicy, CgroupVerdict, InodeKey, NameKey, NetKey, NetRules,
    RuleValue, UserGroups, GLOBAL_AUDIT_RATE_LIMIT, GLOBAL_HOST_NET_NS, GLOBAL_OFFSETS,
    GLOBAL_RENAME_LOCK, MAP_ANY_ATTACHED, MAP_AUDIT_RATE, MAP_AUDIT_SUPPRESSED,
    MAP_CGROUP_GENERATION, MAP_CGROUP_POLICY, MAP_CGROUP_VERDICTS, MAP_CONFINED_TASKS,
    MAP_INODE_RULES, MAP_KEY_OWNERS, MAP_NAME_RULES, MAP_NET_BINARIES, MAP_NET_BINARY_NAMES,
    MAP_NET_RULES, MAP_PTY_MAKERS, MAP_SHARED_MADE, MAP_USER_GROUPS, MAX_INODE_RULES,
    MAX_NAME_RULES,
};

use super::{
    support::SupportError, Tracing, EBPF_OBJECT, PROGRAMS, PROGRAMS_IF_PRESENT, TRACING_PROGRAMS,
};

/// bpffs layout: `<dir>/maps/<MAP>` and `<dir>/links/<hook>`.
#[derive(Clone, Debug)]
pub struct PinLayout {
    pub root: PathBuf,
}

impl PinLayout {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }
    pub fn maps(&self) -> PathBuf {
        self.root.join("maps")
    }
    pub fn links(&self) -> PathBuf {
        self.root.join("links")
    }
}

/// Whether the loaded programs read btrfs subvolume devices (btrfs's BTF was readable when they
/// were loaded): without it a rule on a btrfs path could never match, and is refused.
pub static BTRFS_SUBVOLUMES: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Whether the loaded programs remember allowed verdicts (they were given `rename_lock`).
pub static VERDICT_CACHE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Parses the object and loads every program into the kernel, without attaching. Maps are
/// created (or reused, when already pinned) under `maps_dir`.
pub fn load(maps_dir: &Path, audit_rate: &AuditRateLimit) -> Result<Ebpf, SupportError> {
    super::support::static_checks()?;
    let offsets = crate::kernel_offsets::from_running_kernel()?;
    BTRFS_SUBVOLUMES.store(
        offsets.btrfs_valid != 0,
        std::sync::atomic::Ordering::Relaxed,
    );
    std::fs::create_dir_all(maps_dir).map_err(|e| {
        SupportError::Other(format!(
            "cannot create {} (is bpffs mounted at /sys/fs/bpf?): {e}",
            maps_dir.display()
        ))
    })?;
    check_pinned_layout(maps_dir)?;
    let rename_lock = rename_lock_address();
    VERDICT_CACHE.store(rename_lock != 0, std::sync::atomic::Ordering::Relaxed);
    let mut ebpf = EbpfLoader::new()
        .override_global(GLOBAL_OFFSETS, &offsets, true)
        .override_global(GLOBAL_AUDIT_RATE_LIMIT, audit_rate, true)
        .override_global(GLOBAL_RENAME_LOCK, &rename_lock, true)
        .override_global(GLOBAL_HOST_NET_NS, &host_network_namespace(), true)
        .default_map_pin_directory(maps_dir)
        .load(EBPF_OBJECT)
        .map_err(|e| SupportError::Other(format!("cannot load the eBPF object: {e}")))?;
    let btf = Btf::from_sys_fs()
        .map_err(|e| SupportError::Other(format!("cannot read kernel BTF: {e}")))?;
    let present = PROGRAMS_IF_PRESENT
        .iter()
        .filter(|(hook, _)| crate::kernel_offsets::has_lsm_hook(hook));
    for (hook, name) in PROGRAMS.iter().chain(present) {
        lsm_program(&mut ebpf, name)?
            .load(hook, &btf)
            .map_err(|e| SupportError::ProgramRefused {
                program: name.to_string(),
                detail: error_chain(&e),
            })?;
    }
    for (function, at, name) in TRACING_PROGRAMS {
        let loaded = match at {
            Tracing::Entry => program_as::<FEntry>(&mut ebpf, name)?.load(function, &btf),
            Tracing::Exit => program_as::<FExit>(&mut ebpf, name)?.load(function, &btf),
        };
        loaded.map_err(|e| SupportError::ProgramRefused {
            program: name.to_string(),
            detail: error_chain(&e),
        })?;
    }
    Ok(ebpf)
}

/// The address of the kernel's `rename_lock`, which the programs' verdict cache needs to see
/// renames; 0 (the cache stays off, every decision walks) when /proc/kallsyms hides it.
fn rename_lock_address() -> u64 {
    // Elsewhere the programs' plain loads could see a directory's old parent with a rename's
    // new sequence number: they have no barrier to put between the two.
    if !cfg!(target_arch = "x86_64") {
        tracing::info!("verdict cache off: only x86-64 keeps the programs' loads in order");
        return 0;
    }
    match crate::kallsyms::address_of("rename_lock") {
        Some(address) => address,
        None => {
            tracing::info!(
                "verdict cache off: {} does not show rename_lock (kernel.kptr_restrict?); \
                 every confined open walks its directories",
                crate::kallsyms::KALLSYMS
            );
            0
        }
    }
}

/// The inode number of the host's network namespace, the daemon's own: a confined task binds
/// no reserved port there. 0 (every namespace counts as the host's) when it cannot be read.
fn host_network_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self/ns/net") {
        Ok(ns) => ns.ino(),
        Err(e) => {
            tracing::warn!(
                "cannot read /proc/self/ns/net ({e}): a confined task binds no reserved port \
                 in any network namespace, its own included"
            );
            0
        }
    }
}

/// (map, key size, value size) this build's programs use.
const POLICY_MAP_LAYOUT: [(&str, usize, usize); 16] = [
    (MAP_ANY_ATTACHED, size_of::<u32>(), size_of::<u32>()),
    (MAP_CGROUP_GENERATION, size_of::<u32>(), size_of::<u64>()),
    (
        MAP_CGROUP_VERDICTS,
        size_of::<u64>(),
        size_of::<CgroupVerdict>(),
    ),
    (MAP_AUDIT_RATE, size_of::<u32>(), size_of::<AuditRate>()),
    (MAP_AUDIT_SUPPRESSED, size_of::<u32>(), size_of::<u64>()),
    (
        MAP_CGROUP_POLICY,
        size_of::<u64>(),
        size_of::<CgroupPolicy>(),
    ),
    (
        MAP_INODE_RULES,
        size_of::<InodeKey>(),
        size_of::<RuleValue>(),
    ),
    (MAP_NAME_RULES, size_of::<NameKey>(), size_of::<RuleValue>()),
    // An LPM trie key is the prefix length (u32) and the data.
    (
        MAP_NET_RULES,
        size_of::<u32>() + size_of::<NetKey>(),
        size_of::<NetRules>(),
    ),
    (MAP_NET_BINARIES, size_of::<InodeKey>(), size_of::<u32>()),
    (MAP_NET_BINARY_NAMES, size_of::<NameKey>(), size_of::<u32>()),
    (MAP_CONFINED_TASKS, size_of::<u64>(), size_of::<u64>()),
    (MAP_KEY_OWNERS, size_of::<u64>(), size_of::<u64>()),
    (MAP_PTY_MAKERS, size_of::<u64>(), size_of::<u64>()),
    (MAP_SHARED_MADE, size_of::<u64>(), size_of::<u64>()),
    (MAP_USER_GROUPS, size_of::<u64>(), size_of::<UserGroups>()),
];

/// Rule maps whose capacity changed between versions: a reused smaller pin would refuse rules.
const RULE_MAP_CAPACITY: [(&str, u32); 2] = [
    (MAP_INODE_RULES, MAX_INODE_RULES),
    (MAP_NAME_RULES, MAX_NAME_RULES),
];

/// Refuses policy maps pinned by a build with another layout: reusing them would misread every
/// entry. The pinned programs of that build keep enforcing meanwhile.
fn check_pinned_layout(maps_dir: &Path) -> Result<(), SupportError> {
    for (name, key, value) in POLICY_MAP_LAYOUT {
        let pin = maps_dir.join(name);
        if !pin.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&pin)
            .map_err(|e| SupportError::Other(format!("cannot inspect {}: {e}", pin.display())))?;
        let (k, v) = (info.key_size() as usize, info.value_size() as usize);
        let capacity = RULE_MAP_CAPACITY
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c);
        let difference = if (k, v) != (key, value) {
            Some(format!(
                "key/value {k}/{v} bytes, this build uses {key}/{value}"
            ))
        } else {
            capacity
                .filter(|c| *c != info.max_entries())
                .map(|c| format!("{} entries, this build uses {c}", info.max_entries()))
        };
        if let Some(difference) = difference {
            return Err(SupportError::Other(format!(
                "{} was pinned by a different sandbox-agent version ({difference}); its programs \
                 are still enforcing. To switch versions, stop the old daemon and run \
                 `sandbox-agent daemon --cleanup` (which ends enforcement), then start this one \
                 and attach the policies again",
                pin.display()
            )));
        }
    }
    Ok(())
}

/// Attaches every program and pins its link, replacing (after the new one is attached, so there
/// is no gap) a link pinned by an earlier daemon.
pub fn attach_and_pin(ebpf: &mut Ebpf, links_dir: &Path) -> Result<(), SupportError> {
    std::fs::create_dir_all(links_dir)
        .map_err(|e| SupportError::Other(format!("cannot create {}: {e}", links_dir.display())))?;
    for (hook, name) in PROGRAMS.iter().chain(PROGRAMS_IF_PRESENT) {
        let program = lsm_program(ebpf, name)?;
        if program.fd().is_err() {
            // Not loaded: a hook this kernel does not have (`PROGRAMS_IF_PRESENT`).
            continue;
        }
        let link = program
            .attach()
            .and_then(|id| program.take_link(id))
            .map(FdLink::from);
        pin_link(name, link, &links_dir.join(hook))?;
    }
    for (_, at, name) in TRACING_PROGRAMS {
        let link = match at {
            Tracing::Entry => {
                let program = program_as::<FEntry>(ebpf, name)?;
                program
                    .attach()
                    .and_then(|id| program.take_link(id))
                    .map(FdLink::from)
            }
            Tracing::Exit => {
                let program = program_as::<FExit>(ebpf, name)?;
                program
                    .attach()
                    .and_then(|id| program.take_link(id))
                    .map(FdLink::from)
            }
        };
        pin_link(name, link, &links_dir.join(name))?;
    }
    Ok(())
}

/// Pins the link of program `name` at `pin`, replacing (after the new one is attached, so
/// there is no gap) a link pinned there by an earlier daemon.
fn pin_link(
    name: &str,
    link: Result<FdLink, aya::programs::ProgramError>,
    pin: &Path,
) -> Result<(), SupportError> {
    let link = link.map_err(|e| SupportError::ProgramRefused {
        program: name.to_string(),
        detail: error_chain(&e),
    })?;
    if let Ok(old) = PinnedLink::from_pin(pin) {
        // Both links are attached now; dropping the old one detaches it.
        let _ = old.unpin();
    }
    // The pin keeps the link (and so the program) attached after this process exits.
    link.pin(pin)
        .map_err(|e| SupportError::Other(format!("cannot pin {}: {e}", pin.display())))?;
    Ok(())
}

/// The kernel's id of each loaded program, by hook: where its run count and run time are read.
pub fn program_ids(ebpf: &Ebpf) -> Vec<(&'static str, u32)> {
    let tracing = TRACING_PROGRAMS.iter().map(|(_, _, name)| (name, name));
    PROGRAMS
        .iter()
        .chain(PROGRAMS_IF_PRESENT)
        .map(|(hook, name)| (hook, name))
        .chain(tracing)
        .filter_map(|(hook, name)| Some((*hook, ebpf.program(name)?.info().ok()?.id())))
        .collect()
}

fn lsm_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Lsm, SupportError> {
    program_as::<Lsm>(ebpf, name)
}

/// Program `name` of the object, as the kind `P` the tables say it is.
fn program_as<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, SupportError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| SupportError::Other(format!("program {name} missing from the object")))?
        .try_into()
        .map_err(|e| SupportError::Other(format!("program {name}: {e}")))
}

/// Full error text, including causes (aya's top-level messages omit the errno).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
