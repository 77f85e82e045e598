//! What an audit record is about: one variant per kind of target, so no event field carries a
//! tgid for one hook and a bpf command for another.

use sandbox_common::TargetKind;

/// A file by canonical identity (kernel dev_t, inode), and its dentry (null when unknown),
/// whose path the record carries.
#[derive(Clone, Copy)]
pub struct FileId {
    pub dev: u32,
    pub ino: u64,
    pub dentry: *const u8,
}

impl Default for FileId {
    fn default() -> Self {
        Self {
            dev: 0,
            ino: 0,
            dentry: core::ptr::null(),
        }
    }
}

#[derive(Clone, Copy)]
pub enum Target {
    /// Nothing beyond the hook, or a file that could not be read.
    None,
    File(FileId),
    /// A connect's or send's destination, which the event carries in `net`.
    Destination,
    /// Another process, by tgid.
    Task(u32),
    Capability(u32),
    BpfCommand(u32),
    Ioctl(u32),
    /// A `kernel_load_data_id` or `kernel_read_file_id`.
    KernelLoad(u32),
    /// `sandbox_common::socket_value` of the socket being created.
    Socket(u64),
    /// A key access (`enum key_need_perm`).
    Key(u32),
    /// An abstract Unix socket: its `struct unix_address`, whose name the record carries.
    AbstractSocket(*const u8),
}

impl Target {
    /// A file target; `None` when nothing of the file could be read. (No test of the dentry
    /// pointer here: the compiler would merge it with the numbers into arithmetic on a kernel
    /// pointer, which the verifier refuses.)
    #[inline(always)]
    pub fn file(id: FileId) -> Target {
        if id.dev == 0 && id.ino == 0 {
            Target::None
        } else {
            Target::File(id)
        }
    }

    /// The event's `target_kind`, its file fields and its `value`.
    #[inline(always)]
    pub fn parts(&self) -> (TargetKind, FileId, u64) {
        let none = FileId::default();
        match *self {
            Target::None => (TargetKind::None, none, 0),
            Target::File(id) => (TargetKind::File, id, 0),
            Target::Destination => (TargetKind::Destination, none, 0),
            Target::Task(tgid) => (TargetKind::Task, none, tgid.into()),
            Target::Capability(cap) => (TargetKind::Capability, none, cap.into()),
            Target::BpfCommand(cmd) => (TargetKind::BpfCommand, none, cmd.into()),
            Target::Ioctl(cmd) => (TargetKind::Ioctl, none, cmd.into()),
            Target::KernelLoad(id) => (TargetKind::KernelLoad, none, id.into()),
            Target::Socket(value) => (TargetKind::Socket, none, value),
            Target::Key(need) => (TargetKind::Key, none, need.into()),
            // The name's length is read with the name (`audit::fill_abstract_name`).
            Target::AbstractSocket(_) => (TargetKind::AbstractSocket, none, 0),
        }
    }
}
