//! Descriptors opened outside the sandbox: the kernel decides `deny_read` and `deny_write` at
//! `file_open`, so a file a process already holds open when its cgroup is confined stays
//! readable (or writable) through that descriptor. `run` closes what its command would inherit
//! (`waiting_child`); `attach` uses this module to find such descriptors in the processes of
//! the cgroup, and refuses (or, forced, warns) naming each one.
//!
//! The decision follows the kernel's inode rules: the descriptor's own file (stat through
//! `/proc/PID/fd/N`, which reaches the open inode even when its name was deleted) and every
//! directory above it, by the path the kernel reports for it (looked up under
//! `/proc/PID/root`, so a process in another mount namespace or chroot is judged on its own
//! view), up to the root. Going up across filesystem boundaries can only find more than the
//! kernel would (its walk stops at each filesystem's root), which here means a refusal the
//! user can force, never a descriptor missed.
//!
//! A file of a kernel filesystem (cgroupfs, sysfs, bpffs...) open for writing is refused under
//! every policy, as the kernel refuses opening one (self-protection): through a descriptor of
//! `cgroup.kill` or `cgroup.procs` a confined task would kill or move tasks outside.
//!
//! Name rules (on a parent directory and a name) are not consulted: they exist for paths that
//! did not exist when the policy was compiled, and for a file replaced by a rename; a file that
//! is open now existed at compile time and has an inode rule of its own, or lies below a
//! directory that does.
//!
//! Not seen: threads that unshared their descriptor table (`/proc/PID/fd` is the thread group
//! leader's), files mapped into memory without a descriptor, and a descriptor opened in the
//! moment between the scan and the attach.

use std::{
    collections::HashMap,
    ffi::OsStr,
    fmt, io,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
};

use sandbox_common::{
    names_bare_repository, names_repository_dir, RuleValue, BARE_REPOSITORY_HEAD, KERNEL_FS_MAGICS,
    MQUEUE_MAGIC, POLICY_OTHER_REPOSITORIES, PROC_SUPER_MAGIC, RULE_ALLOW_WRITE, RULE_DENY_READ,
    RULE_DENY_WRITE, RULE_OWN_REPOSITORY,
};

use crate::policy::CompiledPolicy;

/// How a descriptor is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

impl Access {
    /// From the octal `flags:` of `/proc/PID/fdinfo/N`; None for an `O_PATH` descriptor, which
    /// can neither read nor write (reopening it is an open the kernel decides).
    pub fn from_flags(flags: u32) -> Option<Access> {
        if flags & libc::O_PATH as u32 != 0 {
            return None;
        }
        Some(match flags & libc::O_ACCMODE as u32 {
            x if x == libc::O_WRONLY as u32 => Access::Write,
            x if x == libc::O_RDWR as u32 => Access::ReadWrite,
            _ => Access::Read,
        })
    }

    /// The rule bits that deny this access: `deny_read` denies every open, `deny_write` the
    /// opens for writing.
    fn denied_by(self) -> u32 {
        match self {
            Access::Read => RULE_DENY_READ,
            Access::Write | Access::ReadWrite => RULE_DENY_READ | RULE_DENY_WRITE,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "reading",
            Access::Write => "writing",
            Access::ReadWrite => "reading and writing",
        })
    }
}

/// Why a file is denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The rule, as the policy wrote it (`deny_read ~/.ssh`).
    pub rule: String,
    /// The file or directory the rule is on.
    pub at: PathBuf,
}

/// The decision on one open file: `chain` is the file first, then each directory above it, each
/// with its path (for messages) and its identity (None when it could not be established).
pub fn denial(
    compiled: &CompiledPolicy,
    chain: &[(PathBuf, Option<(u32, u64)>)],
    access: Access,
) -> Option<Denial> {
    // As the kernel's walk: each level's rule first, then, for a write under
    // `other_repositories: deny`, its name: a `.git` (or another tool's repository, or the
    // file's being a bare repository's `HEAD`) denies unless the sandbox's own repository's
    // directory (at or below it, or an `own_repositories` one above) is passed.
    let mut repositories =
        access != Access::Read && compiled.flags & POLICY_OTHER_REPOSITORIES != 0;
    let mut pending = None;
    for (level, (path, id)) in chain.iter().enumerate() {
        let value = id.and_then(|id| compiled.inode_rules.get(&id));
        if let Some(value) = value {
            if let Some(denied) = denied_by_rule(compiled, path, value, access) {
                return Some(denied);
            }
            if value.flags & RULE_OWN_REPOSITORY != 0 {
                repositories = false;
                pending = None;
            }
        }
        let repository = path.file_name().is_some_and(|name| {
            let name = name.as_encoded_bytes();
            names_repository_dir(name)
                || names_bare_repository(name)
                || (level == 0 && name == BARE_REPOSITORY_HEAD)
        });
        if repositories && repository && pending.is_none() {
            pending = Some(path.clone());
        }
    }
    pending.map(|at| Denial {
        rule: "other_repositories: deny".to_string(),
        at,
    })
}

/// The rule of `value` (on `path`) that denies `access`, if any.
fn denied_by_rule(
    compiled: &CompiledPolicy,
    path: &Path,
    value: &RuleValue,
    access: Access,
) -> Option<Denial> {
    let hit = value.flags & access.denied_by();
    if hit == 0 {
        return None;
    }
    let kind = if hit & RULE_DENY_READ != 0 {
        "deny_read"
    } else {
        "deny_write"
    };
    // The entry names the first rule that denied it; another kind's rule may share the
    // inode (deny_write and deny_read on one file), so find the one that applies.
    let rule = compiled
        .rule(value.rule_id)
        .filter(|r| r.kind == kind)
        .or_else(|| {
            compiled
                .rules
                .iter()
                .find(|r| r.kind == kind && Path::new(&r.resolved) == path)
        })
        .map_or_else(
            || format!("{kind} (a rule on {})", path.display()),
            |r| format!("{} {}", r.kind, r.path),
        );
    Some(Denial {
        rule,
        at: path.to_path_buf(),
    })
}

/// One open descriptor of a denied file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub pid: u32,
    pub comm: String,
    pub fd: i32,
    /// The file's path as the kernel reports it in the process's view (` (deleted)` when its
    /// name is gone).
    pub path: PathBuf,
    pub access: Access,
    pub denial: Denial,
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} ({}) fd {} {} (open for {}): {}",
            self.pid,
            self.comm,
            self.fd,
            self.path.display(),
            self.access,
            self.denial.rule
        )
    }
}

/// What a scan of a cgroup found.
#[derive(Debug, Default)]
pub struct Scan {
    pub held: Vec<Held>,
    /// Processes or cgroups whose descriptors could not be read, as warnings.
    pub unchecked: Vec<String>,
}

impl Scan {
    /// The error that refuses an attach to `cgroup` for what was found.
    pub fn refusal(&self, cgroup: &Path, policy: &str) -> String {
        let list: Vec<String> = self.held.iter().map(Held::to_string).collect();
        let (descriptors, reach) = match list.len() {
            1 => ("descriptor", "reaches"),
            _ => ("descriptors", "reach"),
        };
        format!(
            "{n} open {descriptors} in {cgroup} {reach} a file policy {policy:?} denies, and a \
             file opened before a policy is attached stays usable through its descriptor: \
             {list}; close them (or restart those processes) and attach again, or attach with \
             --force to confine the cgroup and leave them open; nothing was attached",
            n = list.len(),
            cgroup = cgroup.display(),
            list = list.join("; ")
        )
    }

    /// Warnings for an attach that went ahead anyway.
    pub fn warnings(&self) -> Vec<String> {
        self.held
            .iter()
            .map(|h| {
                format!("{h}: opened before the policy was attached, it stays usable until closed")
            })
            .chain(self.unchecked.iter().cloned())
            .collect()
    }
}

/// Every open descriptor of a file `compiled` denies, in the processes of `cgroup` and of every
/// cgroup below it.
pub fn scan_cgroup(cgroup: &Path, compiled: &CompiledPolicy) -> Scan {
    let mut scan = Scan::default();
    let mut ids = IdCache::default();
    let mut unreadable = Vec::new();
    let pids = crate::cgroup::processes_below(cgroup, &mut unreadable);
    for (dir, e) in unreadable {
        scan.unchecked.push(format!(
            "cannot list the processes of {}: {e}; their descriptors were not checked",
            dir.display()
        ));
    }
    for pid in pids {
        scan_process(pid, compiled, &mut ids, &mut scan);
    }
    scan
}

/// Adds the denied descriptors of process `pid` to `scan`.
fn scan_process(pid: u32, compiled: &CompiledPolicy, ids: &mut IdCache, scan: &mut Scan) {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let entries = match std::fs::read_dir(proc_dir.join("fd")) {
        Ok(e) => e,
        // Exited meanwhile.
        Err(e) if gone(&e) => return,
        Err(e) => {
            scan.unchecked.push(format!(
                "cannot read the descriptors of pid {pid}: {e}; they were not checked"
            ));
            return;
        }
    };
    let mut fds: Vec<i32> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    let mut comm = None;
    for fd in fds {
        // A descriptor closed meanwhile is no longer a concern.
        let Some((path, access, denial)) = check_descriptor(compiled, &proc_dir, fd, ids) else {
            continue;
        };
        let comm = comm
            .get_or_insert_with(|| {
                std::fs::read_to_string(proc_dir.join("comm"))
                    .map(|c| c.trim_end().to_string())
                    .unwrap_or_else(|_| "?".into())
            })
            .clone();
        scan.held.push(Held {
            pid,
            comm,
            fd,
            path,
            access,
            denial,
        });
    }
}

/// The denial of descriptor `fd` of the process at `proc_dir` (`/proc/PID`), if any: None for a
/// descriptor that is not a file with a path (sockets, pipes, anonymous inodes), an `O_PATH`
/// one, one the policy allows, or one closed meanwhile.
fn check_descriptor(
    compiled: &CompiledPolicy,
    proc_dir: &Path,
    fd: i32,
    ids: &mut IdCache,
) -> Option<(PathBuf, Access, Denial)> {
    let link = proc_dir.join("fd").join(fd.to_string());
    let target = std::fs::read_link(&link).ok()?;
    // `socket:[123]`, `pipe:[456]`, `anon_inode:[eventfd]`: no file a rule can name.
    if !target.as_os_str().as_encoded_bytes().starts_with(b"/") {
        return None;
    }
    let info = std::fs::read_to_string(proc_dir.join("fdinfo").join(fd.to_string())).ok()?;
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())?;
    let access = Access::from_flags(flags)?;
    if access != Access::Read && on_kernel_fs(&link)? {
        let denial = Denial {
            rule: "self-protection (a kernel filesystem's file open for writing)".into(),
            at: target.clone(),
        };
        return Some((target, access, denial));
    }
    let denial = open_file_denial(
        compiled,
        &link,
        &target,
        &proc_dir.join("root"),
        access,
        ids,
    )?;
    Some((target, access, denial))
}

/// Whether the open file `file` is one `allow_write` must list to be written, as the programs
/// decide (`kept_for_later`): a regular file, not a process's procfs file or a message queue.
/// Unknown counts as yes; a descriptor closed meanwhile (or its process gone) as no: it is no
/// longer a concern.
fn kept_for_later(file: &Path) -> bool {
    let regular = match std::fs::metadata(file) {
        Ok(md) => md.is_file(),
        Err(e) => !gone(&e),
    };
    regular
        && match crate::identity::fs_magic(file) {
            Ok(magic) => magic != PROC_SUPER_MAGIC && magic != MQUEUE_MAGIC,
            Err(e) => !gone(&e),
        }
}

/// Whether `e` says a descriptor (or its whole process) is gone: closed, or exited meanwhile
/// (ESRCH for a zombie whose table is gone).
fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// The decision for an open file: `file` reaches it (a `/proc/PID/fd/N` link, or any path to
/// it), `name` is its path as the kernel reports it (` (deleted)` and all) in the view whose
/// root is `root` (`/proc/PID/root`).
fn open_file_denial(
    compiled: &CompiledPolicy,
    file: &Path,
    name: &Path,
    root: &Path,
    access: Access,
    ids: &mut IdCache,
) -> Option<Denial> {
    let mut chain = vec![(name.to_path_buf(), identity(file))];
    let bytes = name.as_os_str().as_encoded_bytes();
    let live = Path::new(OsStr::from_bytes(
        bytes.strip_suffix(b" (deleted)").unwrap_or(bytes),
    ));
    for dir in live.ancestors().skip(1) {
        let under_root = root.join(dir.strip_prefix("/").unwrap_or(dir));
        chain.push((dir.to_path_buf(), ids.get(&under_root)));
    }
    denial(compiled, &chain, access).or_else(|| {
        let unlisted = access != Access::Read
            && compiled.write_allowlist()
            && kept_for_later(file)
            && !chain.iter().any(|(_, id)| {
                id.and_then(|id| compiled.inode_rules.get(&id))
                    .is_some_and(|rule| rule.flags & RULE_ALLOW_WRITE != 0)
            });
        unlisted.then(|| Denial {
            rule: "allow_write (not under any listed path)".into(),
            at: name.to_path_buf(),
        })
    })
}

/// Whether `file` is on one of the kernel's own filesystems: None when it is gone (the
/// descriptor closed or its process exited meanwhile); otherwise unknown counts as yes (the
/// attach is refused, or forced with a warning, rather than a descriptor missed).
fn on_kernel_fs(file: &Path) -> Option<bool> {
    match crate::identity::fs_magic(file) {
        Ok(magic) => Some(KERNEL_FS_MAGICS.contains(&magic)),
        Err(e) if gone(&e) => None,
        Err(_) => Some(true),
    }
}

/// Identities of directories, looked up once per scan.
#[derive(Default)]
struct IdCache(HashMap<PathBuf, Option<(u32, u64)>>);

impl IdCache {
    fn get(&mut self, path: &Path) -> Option<(u32, u64)> {
        *self
            .0
            .entry(path.to_path_buf())
            .or_insert_with(|| identity(path))
    }
}

/// The identity the rules are keyed on, as `policy::compile` computes it; when that cannot be
/// established (a mount only another namespace sees), `stat`'s device in the kernel's
/// encoding.
fn identity(path: &Path) -> Option<(u32, u64)> {
    match crate::identity::file_id(path) {
        Ok(id) => Some((id.dev, id.ino)),
        Err(_) => {
            let md = std::fs::metadata(path).ok()?;
            let dev = md.dev();
            Some((
                (libc::major(dev) << 20) | (libc::minor(dev) & 0xfffff),
                md.ino(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn compiled(text: &str) -> CompiledPolicy {
        let policy = crate::policy::parse("t.yaml", &format!("name: t\n{text}")).unwrap();
        crate::policy::compile(&policy, Path::new("/")).unwrap()
    }

    /// The decision for `file` opened by this process with `access`.
    fn decide(c: &CompiledPolicy, file: &std::fs::File, access: Access) -> Option<Denial> {
        let link = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let name = std::fs::read_link(&link).unwrap();
        open_file_denial(
            c,
            &link,
            &name,
            Path::new("/proc/self/root"),
            access,
            &mut IdCache::default(),
        )
    }

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("secrets/deep")).unwrap();
            std::fs::write(dir.path().join("secrets/deep/key"), "k").unwrap();
            std::fs::write(dir.path().join("notes"), "n").unwrap();
            std::fs::write(dir.path().join("config"), "c").unwrap();
            Self { dir }
        }
        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().canonicalize().unwrap().join(rel)
        }
        fn policy(&self) -> CompiledPolicy {
            compiled(&format!(
                "deny_read: [{:?}]\ndeny_write: [{:?}]\n",
                self.path("secrets").display().to_string(),
                self.path("config").display().to_string()
            ))
        }
        fn open(&self, rel: &str, write: bool) -> std::fs::File {
            std::fs::OpenOptions::new()
                .read(!write)
                .write(write)
                .open(self.path(rel))
                .unwrap()
        }
    }

    #[test]
    fn a_file_below_a_denied_directory_is_denied_by_that_directory_rule() {
        let f = Fixture::new();
        let c = f.policy();
        let held = f.open("secrets/deep/key", false);
        let d = decide(&c, &held, Access::Read).expect("denied");
        assert_eq!(d.at, f.path("secrets"));
        assert_eq!(d.rule, format!("deny_read {}", f.path("secrets").display()));
    }

    #[test]
    fn an_allowed_file_is_not_reported() {
        let f = Fixture::new();
        let c = f.policy();
        assert_eq!(decide(&c, &f.open("notes", false), Access::Read), None);
        assert_eq!(decide(&c, &f.open("notes", true), Access::Write), None);
    }

    #[test]
    fn kernel_filesystems_are_told_from_the_others() {
        assert_eq!(on_kernel_fs(Path::new("/sys/kernel")), Some(true), "sysfs");
        assert_eq!(on_kernel_fs(&Fixture::new().path("notes")), Some(false));
        assert_eq!(
            on_kernel_fs(Path::new("/proc/self/fd/987654")),
            None,
            "a descriptor closed meanwhile"
        );
    }

    #[test]
    fn deny_write_counts_only_for_a_descriptor_open_for_writing() {
        let f = Fixture::new();
        let c = f.policy();
        assert_eq!(decide(&c, &f.open("config", false), Access::Read), None);
        let d = decide(&c, &f.open("config", true), Access::Write).expect("denied");
        assert_eq!(d.rule, format!("deny_write {}", f.path("config").display()));
        assert!(decide(&c, &f.open("config", true), Access::ReadWrite).is_some());
    }

    #[test]
    fn under_other_repositories_deny_a_repository_open_for_writing_is_reported() {
        let f = Fixture::new();
        std::fs::create_dir_all(f.path("other/.git")).unwrap();
        std::fs::write(f.path("other/.git/config"), "[core]").unwrap();
        std::fs::write(f.path("other/README"), "r").unwrap();
        let c = compiled("other_repositories: deny\n");
        let d = decide(&c, &f.open("other/.git/config", true), Access::Write).expect("denied");
        assert_eq!(d.rule, "other_repositories: deny");
        assert_eq!(d.at, f.path("other/.git"));
        assert_eq!(
            decide(&c, &f.open("other/.git/config", false), Access::Read),
            None
        );
        assert_eq!(
            decide(&c, &f.open("other/README", true), Access::Write),
            None
        );
        // Mercurial's, and a bare repository's HEAD (the file itself, not a directory so named).
        std::fs::create_dir_all(f.path("hg/.hg")).unwrap();
        std::fs::write(f.path("hg/.hg/hgrc"), "[hooks]").unwrap();
        let d = decide(&c, &f.open("hg/.hg/hgrc", true), Access::Write).expect("denied");
        assert_eq!(d.at, f.path("hg/.hg"));
        std::fs::create_dir_all(f.path("bare/HEAD")).unwrap();
        std::fs::write(f.path("bare/HEAD/x"), "x").unwrap();
        std::fs::write(f.path("bare/head"), "h").unwrap();
        std::fs::write(f.path("other/HEAD"), "ref: refs/heads/main").unwrap();
        let d = decide(&c, &f.open("other/HEAD", true), Access::Write).expect("denied");
        assert_eq!(d.at, f.path("other/HEAD"));
        std::fs::create_dir_all(f.path("mirror.git/hooks")).unwrap();
        std::fs::write(f.path("mirror.git/hooks/post-receive"), "#!/bin/sh").unwrap();
        let d = decide(
            &c,
            &f.open("mirror.git/hooks/post-receive", true),
            Access::Write,
        )
        .expect("denied");
        assert_eq!(d.at, f.path("mirror.git"));
        assert_eq!(
            decide(&c, &f.open("bare/HEAD/x", true), Access::Write),
            None
        );
        assert_eq!(decide(&c, &f.open("bare/head", true), Access::Write), None);
        // Below a directory the policy gives the sandbox's repositories, it is its own.
        let text = format!(
            "other_repositories: deny\nown_repositories: [{:?}]\n",
            f.path("other").display().to_string()
        );
        let c = compiled(&text);
        assert_eq!(
            decide(&c, &f.open("other/.git/config", true), Access::Write),
            None
        );
    }

    #[test]
    fn a_deleted_file_is_still_judged_by_its_inode_and_its_directories() {
        let f = Fixture::new();
        let c = compiled(&format!(
            "deny_read: [{:?}]\n",
            f.path("secrets/deep/key").display().to_string()
        ));
        let held = f.open("secrets/deep/key", false);
        std::fs::remove_file(f.path("secrets/deep/key")).unwrap();
        let d = decide(&c, &held, Access::Read).expect("the open inode is the denied one");
        assert!(d.at.to_string_lossy().ends_with("key (deleted)"), "{d:?}");
        // A directory rule still reaches a deleted file through its (live) directories.
        let c = f.policy();
        std::fs::write(f.path("secrets/deep/other"), "o").unwrap();
        let held = f.open("secrets/deep/other", false);
        std::fs::remove_file(f.path("secrets/deep/other")).unwrap();
        assert_eq!(
            decide(&c, &held, Access::Read).unwrap().at,
            f.path("secrets")
        );
    }

    #[test]
    fn a_hardlink_outside_the_denied_tree_is_the_same_denied_inode() {
        let f = Fixture::new();
        let c = compiled(&format!(
            "deny_read: [{:?}]\n",
            f.path("secrets/deep/key").display().to_string()
        ));
        std::fs::hard_link(f.path("secrets/deep/key"), f.path("alias")).unwrap();
        assert!(decide(&c, &f.open("alias", false), Access::Read).is_some());
    }

    #[test]
    fn the_rule_that_applies_is_named_when_rules_of_two_kinds_share_an_inode() {
        let f = Fixture::new();
        let key = f.path("secrets/deep/key").display().to_string();
        let c = compiled(&format!("deny_write: [{key:?}]\ndeny_read: [{key:?}]\n"));
        let d = decide(&c, &f.open("secrets/deep/key", false), Access::Read).unwrap();
        assert_eq!(d.rule, format!("deny_read {key}"));
    }

    #[test]
    fn a_descriptor_gone_meanwhile_is_no_file_the_allowlist_must_list() {
        // A process that exits between the read of its descriptor's link and the look at what
        // it reaches (a container's short-lived process holding /dev/null) is no concern.
        assert!(!kept_for_later(Path::new("/proc/self/fd/1000000")));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(kept_for_later(&file));
        assert!(!kept_for_later(Path::new("/dev/null")), "a device");
    }

    #[test]
    fn access_comes_from_the_open_flags_and_o_path_is_skipped() {
        assert_eq!(Access::from_flags(0o100000), Some(Access::Read));
        assert_eq!(Access::from_flags(0o2100001), Some(Access::Write));
        assert_eq!(Access::from_flags(0o100002), Some(Access::ReadWrite));
        assert_eq!(Access::from_flags(0o10000000 | 0o100000), None);
    }

    #[test]
    fn this_process_is_scanned_like_any_other() {
        let f = Fixture::new();
        let c = f.policy();
        let read = f.open("secrets/deep/key", false);
        let written = f.open("config", true);
        let allowed = f.open("notes", false);
        let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut scan = Scan::default();
        scan_process(std::process::id(), &c, &mut IdCache::default(), &mut scan);
        // Other tests run in this process too: look only at our descriptors.
        let ours = |fd: i32| scan.held.iter().find(|h| h.fd == fd);
        let h = ours(read.as_raw_fd()).expect("the denied read descriptor");
        assert_eq!(h.pid, std::process::id());
        assert_eq!(h.path, f.path("secrets/deep/key"));
        assert_eq!(h.access, Access::Read);
        assert!(!h.comm.is_empty());
        let shown = h.to_string();
        assert!(
            shown.starts_with(&format!("pid {} (", std::process::id()))
                && shown.contains(&format!(
                    " fd {} {} (open for reading): deny_read {}",
                    read.as_raw_fd(),
                    f.path("secrets/deep/key").display(),
                    f.path("secrets").display()
                )),
            "{shown}"
        );
        assert_eq!(ours(written.as_raw_fd()).unwrap().access, Access::Write);
        for fd in [allowed.as_raw_fd(), r.as_raw_fd(), w.as_raw_fd()] {
            assert!(ours(fd).is_none(), "fd {fd} reported");
        }
        let refusal = scan.refusal(Path::new("/sys/fs/cgroup/x"), "t");
        assert!(refusal.contains(&shown), "{refusal}");
        assert!(refusal.ends_with("nothing was attached"), "{refusal}");
    }
}
