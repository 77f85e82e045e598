//! Resolves the struct field offsets the BPF programs need from the running kernel's BTF, so
//! one binary enforces on every kernel (there is no CO-RE relocation for Rust eBPF).

use std::path::Path;

use btf_rs::{Btf, BtfType, Type};
use sandbox_common::{KernelOffsets, COMMAND_DEVICES, CRED_IDS};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error("cannot read kernel BTF {path}: {source} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)")]
    Read {
        path: String,
        #[source]
        source: btf_rs::Error,
    },
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF: struct {strukt} has no field {field}")]
    NoField { strukt: String, field: String },
    #[error("kernel BTF: field {strukt}.{field} is not a struct, cannot descend into it")]
    NotAStruct { strukt: String, field: String },
    #[error("kernel BTF: field {strukt}.{field} is a bitfield")]
    Bitfield { strukt: String, field: String },
    #[error("kernel BTF: field {strukt}.{field} is {bytes} bytes into the struct, past what the programs can address")]
    TooFar {
        strukt: String,
        field: String,
        bytes: u32,
    },
    #[error(
        "kernel BTF: field {strukt}.{field} is not the struct's first field, as the programs need"
    )]
    NotFirst { strukt: String, field: String },
    #[error(
        "kernel BTF: field {strukt}.{field} does not follow the one before it, as the programs need"
    )]
    NotConsecutive { strukt: String, field: String },
    #[error("kernel BTF has no LSM hook {0} (bpf_lsm_{0}) with a readable prototype")]
    NoHook(String),
    #[error("kernel BTF: {0}")]
    Btf(#[from] btf_rs::Error),
}

/// Checks that `field` is `strukt`'s first field: a pointer to it is then a pointer to its
/// `strukt` (a cgroup's `self`).
fn first_field(btf: &Btf, strukt: &str, field: &str) -> Result<(), OffsetError> {
    if field_offset(btf, strukt, &[field])? != 0 {
        return Err(OffsetError::NotFirst {
            strukt: strukt.to_string(),
            field: field.to_string(),
        });
    }
    Ok(())
}

/// Reads the offsets from `/sys/kernel/btf/vmlinux`.
pub fn from_running_kernel() -> Result<KernelOffsets, OffsetError> {
    from_btf_file(Path::new(VMLINUX_BTF))
}

pub fn from_btf_file(path: &Path) -> Result<KernelOffsets, OffsetError> {
    let btf = Btf::from_file(path).map_err(|source| OffsetError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let off = |strukt: &str, fields: &[&str]| -> Result<u16, OffsetError> {
        let bytes = field_offset(&btf, strukt, fields)?;
        u16::try_from(bytes).map_err(|_| OffsetError::TooFar {
            strukt: strukt.to_string(),
            field: fields.join("."),
            bytes,
        })
    };
    Ok(with_command_majors(with_btrfs(KernelOffsets {
        file_dentry: off("file", &["f_path", "dentry"])?,
        file_inode: off("file", &["f_inode"])?,
        inode_ino: off("inode", &["i_ino"])?,
        inode_sb: off("inode", &["i_sb"])?,
        sb_dev: off("super_block", &["s_dev"])?,
        dentry_parent: off("dentry", &["d_parent"])?,
        dentry_inode: off("dentry", &["d_inode"])?,
        dentry_name_len: off("dentry", &["d_name", "len"])?,
        dentry_name_ptr: off("dentry", &["d_name", "name"])?,
        bprm_file: off("linux_binprm", &["file"])?,
        inode_nlink: off("inode", &["i_nlink"])?,
        vma_file: off("vm_area_struct", &["vm_file"])?,
        task_mm: off("task_struct", &["mm"])?,
        mm_exe_file: off("mm_struct", &["exe_file"])?,
        task_tgid: off("task_struct", &["tgid"])?,
        task_cgroups: off("task_struct", &["cgroups"])?,
        css_set_dfl_cgrp: off("css_set", &["dfl_cgrp"])?,
        cgroup_kn: off("cgroup", &["kn"])?,
        kernfs_node_id: off("kernfs_node", &["id"])?,
        sb_magic: off("super_block", &["s_magic"])?,
        dentry_flags: off("dentry", &["d_flags"])?,
        msghdr_name: off("msghdr", &["msg_name"])?,
        msghdr_namelen: off("msghdr", &["msg_namelen"])?,
        socket_sk: off("socket", &["sk"])?,
        unix_sock_dentry: off("unix_sock", &["path", "dentry"])?,
        file_mode: off("file", &["f_mode"])?,
        dentry_sb: off("dentry", &["d_sb"])?,
        path_dentry: off("path", &["dentry"])?,
        inode_mode: off("inode", &["i_mode"])?,
        inode_rdev: off("inode", &["i_rdev"])?,
        unix_sock_peer: off("unix_sock", &["peer"])?,
        sock_family: off("sock", &["__sk_common", "skc_family"])?,
        sock_num: off("sock", &["__sk_common", "skc_num"])?,
        unix_sock_addr: off("unix_sock", &["addr"])?,
        unix_address_len: off("unix_address", &["len"])?,
        unix_address_name: off("unix_address", &["name"])?,
        sock_cgroup: off("sock", &["sk_cgrp_data", "cgroup"])?,
        cgroup_parent: first_field(&btf, "cgroup", "self")
            .and_then(|()| off("cgroup", &["self", "parent"]))?,
        task_real_cred: off("task_struct", &["real_cred"])?,
        file_mnt: off("file", &["f_path", "mnt"])?,
        mount_mnt: off("mount", &["mnt"])?,
        mount_ns: off("mount", &["mnt_ns"])?,
        task_cred: off("task_struct", &["cred"])?,
        pt_regs_syscall_nr: off("pt_regs", &[syscalls::PT_REGS_NR])?,
        keyctl_nr: syscalls::KEYCTL,
        keyctl_compat_nr: syscalls::KEYCTL_COMPAT,
        btrfs_inode_vfs: 0,
        btrfs_inode_root: 0,
        btrfs_root_anon_dev: 0,
        inode_setattr_args: hook_arguments(&btf, "inode_setattr")?,
        iattr_valid: off("iattr", &["ia_valid"])?,
        inode_uid: off("inode", &["i_uid"])?,
        cred_ids: consecutive_ids(&btf).and_then(|()| off("cred", &[CRED_IDS[0]]))?,
        cred_group_info: off("cred", &["group_info"])?,
        group_info_ngroups: off("group_info", &["ngroups"])?,
        group_info_gid: off("group_info", &["gid"])?,
        proc_inode_pid: off("proc_inode", &["pid"])?,
        proc_inode_vfs_inode: off("proc_inode", &["vfs_inode"])?,
        pid_tasks: off("pid", &["tasks"])?,
        task_pid_links: off("task_struct", &["pid_links"])?,
        task_thread_pid: off("task_struct", &["thread_pid"])?,
        task_group_leader: off("task_struct", &["group_leader"])?,
        pid_level: off("pid", &["level"])?,
        pid_numbers: off("pid", &["numbers"])?,
        upid_size: upid_size(&btf)?,
        task_fs: off("task_struct", &["fs"])?,
        fs_struct_umask: off("fs_struct", &["umask"])?,
        inode_default_acl: match off("inode", &["i_default_acl"]) {
            Err(OffsetError::NoField { .. }) => 0,
            other => other?,
        },
        dentry_fsdata: off("dentry", &["d_fsdata"])?,
        socket_type: off("socket", &["type"])?,
        sock_net: off("sock", &["__sk_common", "skc_net", "net"])?,
        net_ns_inum: off("net", &["ns", "inum"])?,
        task_signal: off("task_struct", &["signal"])?,
        signal_tty: off("signal_struct", &["tty"])?,
        tty_session: match off("tty_struct", &["ctrl", "session"]) {
            Err(OffsetError::NoField { .. }) => off("tty_struct", &["session"])?,
            other => other?,
        },
        inode_gid: off("inode", &["i_gid"])?,
        command_majors: [0; 5],
        btrfs_valid: 0,
        valid: 1,
    })))
}

/// The size of `struct upid` (`{ int nr; struct pid_namespace *ns; }`), the stride of
/// `pid.numbers`: the number first, the namespace pointer after it and last.
fn upid_size(btf: &Btf) -> Result<u16, OffsetError> {
    let field = |name: &str| (String::from("upid"), String::from(name));
    if field_offset(btf, "upid", &["nr"])? != 0 {
        let (strukt, field) = field("nr");
        return Err(OffsetError::NotFirst { strukt, field });
    }
    let ns = field_offset(btf, "upid", &["ns"])?;
    if ns != 8 {
        let (strukt, field) = field("ns");
        return Err(OffsetError::NotConsecutive { strukt, field });
    }
    Ok(16)
}

/// Where the architecture keeps the current system call's number, and `keyctl`'s numbers.
mod syscalls {
    #[cfg(target_arch = "x86_64")]
    pub const PT_REGS_NR: &str = "orig_ax";
    #[cfg(target_arch = "x86_64")]
    pub const KEYCTL: u16 = 250;
    /// `__NR_keyctl` of arch/x86/entry/syscalls/syscall_32.tbl.
    #[cfg(target_arch = "x86_64")]
    pub const KEYCTL_COMPAT: u16 = 288;

    #[cfg(target_arch = "aarch64")]
    pub const PT_REGS_NR: &str = "syscallno";
    #[cfg(target_arch = "aarch64")]
    pub const KEYCTL: u16 = 219;
    /// `__NR_keyctl` of arch/arm/tools/syscall.tbl.
    #[cfg(target_arch = "aarch64")]
    pub const KEYCTL_COMPAT: u16 = 311;

    #[cfg(test)]
    #[test]
    fn keyctl_is_the_c_librarys_number() {
        assert_eq!(i64::from(KEYCTL), libc::SYS_keyctl);
    }
}

/// The btrfs module's split BTF, present while the module is loaded (or built in).
pub const BTRFS_BTF: &str = "/sys/kernel/btf/btrfs";

/// The majors of `COMMAND_DEVICES` from `/proc/devices` (0 for a driver not registered).
fn with_command_majors(mut offsets: KernelOffsets) -> KernelOffsets {
    match std::fs::read_to_string("/proc/devices") {
        Ok(text) => {
            for (slot, name) in COMMAND_DEVICES.iter().enumerate() {
                offsets.command_majors[slot] = char_major(&text, name).unwrap_or(0);
            }
        }
        Err(e) => tracing::warn!(
            "cannot read /proc/devices ({e}): bsg, NVMe, TPM and raw HID devices are not told from others"
        ),
    }
    offsets
}

/// The major of the character device `name` in the text of `/proc/devices`.
fn char_major(devices: &str, name: &str) -> Option<u16> {
    devices
        .lines()
        .skip_while(|l| !l.starts_with("Character devices:"))
        .take_while(|l| !l.starts_with("Block devices:"))
        .find_map(|l| {
            let (major, driver) = l.trim().split_once(' ')?;
            (driver == name).then(|| major.parse().ok())?
        })
}

/// Adds the btrfs offsets when btrfs's BTF can be read: the programs then key rules on btrfs by
/// subvolume. Without them the daemon refuses rules on btrfs paths (they could never match).
fn with_btrfs(mut offsets: KernelOffsets) -> KernelOffsets {
    match btrfs_offsets(Path::new(VMLINUX_BTF), Path::new(BTRFS_BTF)) {
        Ok((vfs, root, anon_dev)) => {
            offsets.btrfs_inode_vfs = vfs;
            offsets.btrfs_inode_root = root;
            offsets.btrfs_root_anon_dev = anon_dev;
            offsets.btrfs_valid = 1;
        }
        Err(e) => tracing::debug!("no btrfs offsets: {e}"),
    }
    offsets
}

fn btrfs_offsets(vmlinux: &Path, module: &Path) -> Result<(u16, u16, u16), OffsetError> {
    let read = |source| OffsetError::Read {
        path: module.display().to_string(),
        source,
    };
    let base = Btf::from_file(vmlinux).map_err(|source| OffsetError::Read {
        path: vmlinux.display().to_string(),
        source,
    })?;
    let btf = Btf::from_split_file(module, &base).map_err(read)?;
    let off = |strukt: &str, field: &str| -> Result<u16, OffsetError> {
        let bytes = field_offset(&btf, strukt, &[field])?;
        u16::try_from(bytes).map_err(|_| OffsetError::TooFar {
            strukt: strukt.to_string(),
            field: field.to_string(),
            bytes,
        })
    };
    Ok((
        off("btrfs_inode", "vfs_inode")?,
        off("btrfs_inode", "root")?,
        off("btrfs_root", "anon_dev")?,
    ))
}

/// Checks that the ids of `struct cred` follow each other in the order of `CRED_IDS`, one u32
/// each: the programs read them as one array from the first.
fn consecutive_ids(btf: &Btf) -> Result<(), OffsetError> {
    let first = field_offset(btf, "cred", &[CRED_IDS[0]])?;
    for (i, id) in CRED_IDS.iter().enumerate() {
        if field_offset(btf, "cred", &[id])? != first + 4 * i as u32 {
            return Err(OffsetError::NotConsecutive {
                strukt: "cred".to_string(),
                field: id.to_string(),
            });
        }
    }
    Ok(())
}

/// How many arguments the LSM hook `hook` takes on this kernel (its `bpf_lsm_<hook>`'s
/// parameters).
fn hook_arguments(btf: &Btf, hook: &str) -> Result<u16, OffsetError> {
    let name = format!("bpf_lsm_{hook}");
    let func = btf
        .resolve_types_by_name(&name)
        .unwrap_or_default()
        .into_iter()
        .find_map(|t| match t {
            Type::Func(f) => Some(f),
            _ => None,
        })
        .ok_or_else(|| OffsetError::NoHook(hook.to_string()))?;
    match btf.resolve_chained_type(&func)? {
        Type::FuncProto(proto) => {
            u16::try_from(proto.parameters.len()).map_err(|_| OffsetError::NoHook(hook.to_string()))
        }
        _ => Err(OffsetError::NoHook(hook.to_string())),
    }
}

/// Whether the running kernel has the LSM hook `hook` (BTF names its `bpf_lsm_<hook>`
/// attachment point).
pub fn has_lsm_hook(hook: &str) -> bool {
    Btf::from_file(VMLINUX_BTF)
        .ok()
        .and_then(|btf| btf.resolve_types_by_name(&format!("bpf_lsm_{hook}")).ok())
        .is_some_and(|types| types.iter().any(|t| matches!(t, Type::Func(_))))
}

/// Byte offset of `fields` (a path through nested structs) from the start of `struct strukt`.
/// Members of anonymous structs and unions are found as if they were direct members, the way C
/// sees them.
pub fn field_offset(btf: &Btf, strukt: &str, fields: &[&str]) -> Result<u32, OffsetError> {
    let mut current = find_struct(btf, strukt)?;
    let mut current_name = strukt.to_string();
    let mut bits = 0u32;
    for (i, field) in fields.iter().enumerate() {
        let (member_bits, type_id) =
            find_member(btf, &current, field)?.ok_or_else(|| OffsetError::NoField {
                strukt: current_name.clone(),
                field: field.to_string(),
            })?;
        bits += member_bits;
        if i + 1 < fields.len() {
            current = match resolve_through_modifiers(btf, type_id)? {
                Type::Struct(s) | Type::Union(s) => s,
                _ => {
                    return Err(OffsetError::NotAStruct {
                        strukt: current_name,
                        field: field.to_string(),
                    })
                }
            };
            current_name = format!("{current_name}.{field}");
        }
    }
    if !bits.is_multiple_of(8) {
        return Err(OffsetError::Bitfield {
            strukt: strukt.to_string(),
            field: fields.join("."),
        });
    }
    Ok(bits / 8)
}

fn find_struct(btf: &Btf, name: &str) -> Result<btf_rs::Struct, OffsetError> {
    btf.resolve_types_by_name(name)
        .unwrap_or_default()
        .into_iter()
        .find_map(|t| match t {
            Type::Struct(s) => Some(s),
            _ => None,
        })
        .ok_or_else(|| OffsetError::NoStruct(name.to_string()))
}

/// (bit offset, type id) of a member, searching anonymous members recursively.
fn find_member(
    btf: &Btf,
    strukt: &btf_rs::Struct,
    name: &str,
) -> Result<Option<(u32, u32)>, OffsetError> {
    for member in &strukt.members {
        let member_name = btf.resolve_name(member).unwrap_or_default();
        let Some(type_id) = member.get_type_id() else {
            continue;
        };
        if member_name == name {
            return Ok(Some((member.bit_offset(), type_id)));
        }
        if member_name.is_empty() {
            if let Type::Struct(inner) | Type::Union(inner) =
                resolve_through_modifiers(btf, type_id)?
            {
                if let Some((bits, id)) = find_member(btf, &inner, name)? {
                    return Ok(Some((member.bit_offset() + bits, id)));
                }
            }
        }
    }
    Ok(None)
}

/// Follows typedef/const/volatile/restrict/type-tag links to the underlying type.
fn resolve_through_modifiers(btf: &Btf, mut id: u32) -> Result<Type, OffsetError> {
    for _ in 0..32 {
        let t = btf.resolve_type_by_id(id)?;
        let next = match &t {
            Type::Typedef(x) => x.get_type_id(),
            Type::Const(x) | Type::Volatile(x) | Type::Restrict(x) => x.get_type_id(),
            Type::TypeTag(x) => x.get_type_id(),
            _ => return Ok(t),
        };
        match next {
            Some(n) => id = n,
            None => return Ok(t),
        }
    }
    Ok(btf.resolve_type_by_id(id)?)
}

#[cfg(test)]
mod tests {

    #[test]
    fn character_majors_are_read_from_their_section_of_proc_devices() {
        let devices = "Character devices:\n  1 mem\n 21 sg\n239 nvme-generic\n240 nvme\n\n\
                       Block devices:\n259 blkext\n 21 bsg\n";
        assert_eq!(char_major(devices, "nvme-generic"), Some(239));
        assert_eq!(char_major(devices, "nvme"), Some(240));
        // A block device of the same name is not a character device.
        assert_eq!(char_major(devices, "bsg"), None);
    }
    use super::*;

    /// Whatever kernel runs the unit tests has BTF (the test machines do): the offsets must be
    /// found and plausible.
    #[test]
    fn resolves_offsets_on_the_running_kernel() {
        if !Path::new(VMLINUX_BTF).exists() {
            panic!("{VMLINUX_BTF} missing: unit tests need a kernel with BTF");
        }
        let off = from_running_kernel().unwrap();
        assert_eq!(off.valid, 1);
        // struct qstr { union { struct { u32 hash; u32 len; }; u64 hash_len; }; const char *name; }
        assert_eq!(off.dentry_name_ptr, off.dentry_name_len + 4);
        assert_ne!(off.file_inode, off.file_dentry);
        assert!(off.sb_dev < 4096 && off.inode_sb < 4096);
        // struct unix_address { refcount_t refcnt; int len; struct sockaddr_un name[]; }
        assert_eq!(off.unix_address_name, off.unix_address_len + 4);
        // struct cgroup_subsys_state: the parent comes after the cgroup and subsystem pointers.
        assert!(off.cgroup_parent > 0);
        assert!(
            [2, 3].contains(&off.inode_setattr_args),
            "{}",
            off.inode_setattr_args
        );
    }

    #[test]
    fn unknown_field_is_named() {
        let btf = Btf::from_file(VMLINUX_BTF).unwrap();
        let err = field_offset(&btf, "dentry", &["no_such_field"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("dentry has no field no_such_field"),
            "{err}"
        );
    }
}
