//! What a compile reads, watched before it is read, so the daemon can tell later that nothing
//! the compile saw has changed and reuse it (`daemon::compile_cache`).
//!
//! A compile's result depends on every entry it looked up, every directory it listed, every
//! link count and file it read, and the mount table. Each read goes through one of the
//! `before_*` calls below first: while the daemon records a compile (on its own thread), they
//! add an inotify watch on the path and on every directory above it, from `/` down. Watching
//! *before* reading is what makes it sound: a change after the watch fires an event, and a
//! change before it is what the read sees. The mount table is covered by polling the
//! descriptor of `/proc/self/mountinfo` opened before the first read. In a directory the
//! compile only looked names up in, an event about another name is no change: it read nothing
//! there (a new name for a file it counted shows on that file's own watch).
//!
//! A compile is not reusable when the proof does not hold: a path through a symlink the walk
//! did not resolve itself, a filesystem whose changes this host's inotify may not see (a
//! network or FUSE filesystem changed by another client), a host name (DNS answers change
//! unseen), too many entries to watch. Outside a recording every call here is a no-op.

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    ffi::{OsStr, OsString},
    io,
    os::{fd::OwnedFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

/// Most paths one compile may watch; a larger one is compiled every time.
const MAX_WATCHES: usize = 16_384;

/// Filesystems whose every change goes through this host's VFS, so inotify sees it: local
/// disks and memory, by their type in `/proc/self/mountinfo`.
pub const LOCAL_FILESYSTEMS: &[&str] = &["ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs"];

/// Directories: a name made, removed or moved in them, or the directory itself moved, removed
/// or changed (owner, mode). Not written files: only the ones read get `CONTENT`.
const DIRECTORY: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ATTRIB);
/// A file itself: its link count, owner or mode (`ATTRIB`; a hardlink made elsewhere is seen
/// only here, not in its directory's watch), or the file moved or removed.
const OBJECT: WatchFlags = WatchFlags::ATTRIB
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF);
/// A file whose bytes the compile reads (git's link files).
const CONTENT: WatchFlags = OBJECT
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::CLOSE_WRITE);

thread_local! {
    static RECORDING: RefCell<Option<Recording>> = const { RefCell::new(None) };
}

/// The watches of one compile, being made.
struct Recording {
    inotify: OwnedFd,
    mounts: std::fs::File,
    /// (mount point, filesystem type) as the table was when the recording started.
    mount_points: Vec<(PathBuf, String)>,
    trusted: Vec<String>,
    /// Paths the daemon itself rewrites (its state file): their own events are not changes.
    own: Vec<PathBuf>,
    own_wds: HashSet<i32>,
    /// Watch descriptor of each directory watched, for events naming an entry in it.
    dirs: HashMap<i32, PathBuf>,
    /// Paths watched, with the flags they were watched for and their watch.
    watched: HashMap<PathBuf, (WatchFlags, i32)>,
    /// The names looked up in each directory watched.
    looked_up: HashMap<i32, HashSet<OsString>>,
    /// Directories listed: every name in them counts.
    listed: HashSet<i32>,
    /// Paths known not to be symlinks.
    not_symlinks: HashSet<PathBuf>,
    /// Directories watched with every directory above them, and their watch.
    covered: HashMap<PathBuf, i32>,
    /// Files whose bytes were read, with their times as they were before.
    contents: Vec<(PathBuf, Option<Stamp>)>,
    /// Why this compile cannot be reused, once known.
    not_reusable: Option<String>,
}

/// A file's (inode, size, modification and change times): a write through a shared mapping
/// fires no inotify event but moves the times.
type Stamp = (u64, u64, i64, i64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(path).ok()?;
    Some((
        md.ino(),
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec(),
    ))
}

/// What a finished recording proves, until its first event.
#[derive(Debug)]
pub struct Watch {
    inotify: OwnedFd,
    mounts: std::fs::File,
    own: Vec<PathBuf>,
    own_wds: HashSet<i32>,
    dirs: HashMap<i32, PathBuf>,
    looked_up: HashMap<i32, HashSet<OsString>>,
    listed: HashSet<i32>,
    contents: Vec<(PathBuf, Option<Stamp>)>,
    /// How many paths are watched.
    pub paths: usize,
}

/// Runs `compile` with every read it makes watched first. Returns its result and the watch
/// that tells whether it still holds, or why it cannot be reused.
pub fn record<T>(
    trusted: &[String],
    own: &[PathBuf],
    compile: impl FnOnce() -> T,
) -> (T, Result<Watch, String>) {
    let started = start(trusted, own);
    let recording = match started {
        Ok(recording) => recording,
        Err(e) => return (compile(), Err(e)),
    };
    RECORDING.with(|r| *r.borrow_mut() = Some(recording));
    // Taken back out even if the compile panics, so no later compile on this thread records.
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            RECORDING.with(|r| r.borrow_mut().take());
        }
    }
    let stop = Stop;
    let result = compile();
    let recording = RECORDING.with(|r| r.borrow_mut().take());
    drop(stop);
    let watch = match recording {
        None => Err("the recording was lost".to_string()),
        Some(r) => match r.not_reusable {
            Some(why) => Err(why),
            None => Ok(Watch {
                paths: r.watched.len(),
                inotify: r.inotify,
                mounts: r.mounts,
                own: r.own,
                own_wds: r.own_wds,
                dirs: r.dirs,
                looked_up: r.looked_up,
                listed: r.listed,
                contents: r.contents,
            }),
        },
    };
    (result, watch)
}

fn start(trusted: &[String], own: &[PathBuf]) -> Result<Recording, String> {
    use std::io::Read;
    // Opened before anything is read: a mount made from here on marks it.
    let mut mounts = std::fs::File::open("/proc/self/mountinfo")
        .map_err(|e| format!("cannot open /proc/self/mountinfo: {e}"))?;
    let mut table = String::new();
    mounts
        .read_to_string(&mut table)
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mount_points = crate::mounts::entries(&table)
        .map(|m| (m.point, m.fstype))
        .collect();
    crate::identity::remember_mounts(&table);
    let inotify = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
        .map_err(|e| format!("cannot start inotify: {e}"))?;
    Ok(Recording {
        inotify,
        mounts,
        mount_points,
        trusted: trusted.to_vec(),
        own: own.to_vec(),
        own_wds: HashSet::new(),
        dirs: HashMap::new(),
        watched: HashMap::new(),
        not_symlinks: HashSet::new(),
        covered: HashMap::new(),
        looked_up: HashMap::new(),
        listed: HashSet::new(),
        contents: Vec::new(),
        not_reusable: None,
    })
}

/// Before a stat of the entry `path` names, not following a symlink there: its directories.
pub(super) fn before_entry(path: &Path) {
    with_recording(|r| r.directories_above(path));
}

/// Before a stat that follows a symlink at `path` (its identity, owner or kind).
pub(super) fn before_follow(path: &Path) {
    with_recording(|r| {
        r.directories_above(path);
        r.watch(path, OBJECT);
        r.refuse_symlink(path);
    });
}

/// Before `path`'s link count is read (the hardlink scan), not following a symlink.
pub(super) fn before_link_count(path: &Path) {
    with_recording(|r| {
        r.directories_above(path);
        r.watch(path, OBJECT);
    });
}

/// Before the directory `dir` is listed.
pub(super) fn before_listing(dir: &Path) {
    with_recording(|r| {
        r.directories_above(dir);
        if let Some(wd) = r.watch(dir, DIRECTORY | WatchFlags::ONLYDIR) {
            r.listed.insert(wd);
        }
    });
}

/// Before the file `path` is read.
pub(super) fn before_content(path: &Path) {
    with_recording(|r| {
        r.directories_above(path);
        r.watch(path, CONTENT);
        r.contents.push((path.to_path_buf(), stamp(path)));
        r.refuse_symlink(path);
    });
}

/// Something the compile depends on that no watch can see (a host name's addresses).
pub(super) fn not_reusable(why: &str) {
    with_recording(|r| r.refuse(why.to_string()));
}

/// `std::fs::canonicalize`, watched: reusable only when `path` is already canonical (no
/// symlink and no `..` in it), since the directories a symlink leads through are not watched.
pub(super) fn canonicalize(path: &Path) -> io::Result<PathBuf> {
    before_follow(path);
    let real = std::fs::canonicalize(path)?;
    if real != path {
        not_reusable(&format!("{} is reached through a symlink", path.display()));
    }
    Ok(real)
}

fn with_recording(f: impl FnOnce(&mut Recording)) {
    RECORDING.with(|r| {
        if let Some(recording) = r.borrow_mut().as_mut() {
            if recording.not_reusable.is_none() {
                f(recording);
            }
        }
    });
}

impl Recording {
    fn refuse(&mut self, why: String) {
        self.not_reusable.get_or_insert(why);
    }

    /// Every directory from `/` down to `path`'s parent, each with the name looked up in it.
    /// Each is a real directory, not a symlink: the walk resolves symlinks itself and names
    /// only what they lead to.
    fn directories_above(&mut self, path: &Path) {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        // Most reads share their directories: one lookup instead of one per level.
        let wd = match self.covered.get(parent) {
            Some(wd) => Some(*wd),
            None => self.watch_down_to(parent),
        };
        if let Some(wd) = wd {
            self.looked_up
                .entry(wd)
                .or_default()
                .insert(name.to_os_string());
        }
    }

    /// Watches every directory from `/` down to `dir`, noting the name looked up in each;
    /// the watch of `dir` when all of them exist.
    fn watch_down_to(&mut self, dir: &Path) -> Option<i32> {
        let mut dirs: Vec<&Path> = dir.ancestors().collect();
        dirs.reverse();
        let mut above = None;
        for d in dirs {
            if let (Some(wd), Some(name)) = (above, d.file_name()) {
                self.looked_up
                    .entry(wd)
                    .or_default()
                    .insert(name.to_os_string());
            }
            // Missing: the directory above it is watched, so its creation is seen.
            above = Some(self.watch(d, DIRECTORY | WatchFlags::ONLYDIR)?);
        }
        let wd = above?;
        self.covered.insert(dir.to_path_buf(), wd);
        Some(wd)
    }

    /// Watches `path` (never following a symlink there); its watch, or None when it does not
    /// exist or cannot be watched.
    fn watch(&mut self, path: &Path, flags: WatchFlags) -> Option<i32> {
        if self.not_reusable.is_some() {
            return None;
        }
        if let Some((_, wd)) = self.watched.get(path).filter(|(w, _)| w.contains(flags)) {
            return Some(*wd);
        }
        if self.watched.len() >= MAX_WATCHES {
            self.refuse(format!("it reads more than {MAX_WATCHES} entries"));
            return None;
        }
        if !path.is_absolute()
            || path.components().any(|c| {
                matches!(
                    c,
                    std::path::Component::ParentDir | std::path::Component::CurDir
                )
            })
        {
            self.refuse(format!("{} is not a canonical path", path.display()));
            return None;
        }
        let all = flags | WatchFlags::DONT_FOLLOW | WatchFlags::MASK_ADD;
        let wd = match inotify::add_watch(&self.inotify, path, all) {
            Ok(wd) => wd,
            Err(e) if e == rustix::io::Errno::NOENT => return None,
            Err(e) => {
                // ENOTDIR: a symlink or a file where a directory was expected; ENOSPC: the
                // host's limit of watches.
                self.refuse(format!("cannot watch {}: {e}", path.display()));
                return None;
            }
        };
        match self.filesystem(path) {
            Some(fstype) if self.trusted.iter().any(|t| t == fstype) => {}
            fstype => {
                let fstype = fstype.unwrap_or("no known").to_string();
                self.refuse(format!(
                    "{} is on a {fstype} filesystem, whose changes this host may not see",
                    path.display()
                ));
                return None;
            }
        }
        if flags.contains(WatchFlags::ONLYDIR) {
            self.dirs.entry(wd).or_insert_with(|| path.to_path_buf());
            self.not_symlinks.insert(path.to_path_buf());
        }
        if self.own.iter().any(|o| o == path) {
            self.own_wds.insert(wd);
        }
        let watched = self
            .watched
            .entry(path.to_path_buf())
            .or_insert((WatchFlags::empty(), wd));
        watched.0 |= flags;
        Some(wd)
    }

    /// The type of the filesystem `path` (canonical) is on: the deepest mount point above it,
    /// the latest mounted where two share one.
    fn filesystem(&self, path: &Path) -> Option<&str> {
        let mut best: Option<(usize, &str)> = None;
        for (point, fstype) in &self.mount_points {
            let depth = point.components().count();
            if path.starts_with(point) && best.is_none_or(|(d, _)| depth >= d) {
                best = Some((depth, fstype));
            }
        }
        best.map(|(_, fstype)| fstype)
    }

    /// A read that follows `path` reads what a symlink there leads to, whose directories are
    /// not watched.
    fn refuse_symlink(&mut self, path: &Path) {
        if self.not_symlinks.contains(path) {
            return;
        }
        match std::fs::symlink_metadata(path) {
            Ok(md) if md.file_type().is_symlink() => {
                self.refuse(format!("{} is a symlink read through", path.display()))
            }
            _ => {
                self.not_symlinks.insert(path.to_path_buf());
            }
        }
    }
}

impl Watch {
    /// Ok while nothing the compile read has changed; else what did. Reads the events it
    /// finds, so the daemon's own rewrites of its state file are skipped once.
    pub fn unchanged(&mut self) -> Result<(), String> {
        use rustix::event::{poll, PollFd, PollFlags};
        let mut fds = [PollFd::new(&self.mounts, PollFlags::PRI | PollFlags::ERR)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match poll(&mut fds, Some(&zero)) {
            Ok(0) => {}
            Ok(_) => return Err("the mount table changed".into()),
            Err(e) => return Err(format!("cannot poll the mount table: {e}")),
        }
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut events = inotify::Reader::new(&self.inotify, &mut buf);
        loop {
            let event = match events.next() {
                Ok(event) => event,
                Err(e) if e == rustix::io::Errno::AGAIN => break,
                Err(e) => return Err(format!("cannot read inotify events: {e}")),
            };
            if event.events().contains(ReadFlags::QUEUE_OVERFLOW) {
                return Err("too many changes to follow".into());
            }
            let wd = event.wd();
            if self.own_wds.contains(&wd) {
                continue;
            }
            let dir = self.dirs.get(&wd);
            if let (Some(_), Some(name)) = (dir, event.file_name()) {
                // A name the compile never looked up, in a directory it did not list: the
                // compile read nothing there. A new name for a file it counted shows on that
                // file's own watch.
                let name = OsStr::from_bytes(name.to_bytes());
                let read = self.listed.contains(&wd)
                    || self.looked_up.get(&wd).is_some_and(|n| n.contains(name));
                if !read {
                    continue;
                }
            }
            let entry = match (dir, event.file_name()) {
                (Some(dir), Some(name)) => dir.join(OsStr::from_bytes(name.to_bytes())),
                (Some(dir), None) => dir.clone(),
                (None, _) => PathBuf::from("a file it read"),
            };
            if !self.own.contains(&entry) {
                return Err(format!("{} changed", entry.display()));
            }
        }
        for (path, then) in &self.contents {
            if stamp(path) != *then {
                return Err(format!("{} was written", path.display()));
            }
        }
        // The daemon's own files are skipped above: the hardlink scan would find nothing in
        // them as long as each has one name.
        for own in &self.own {
            use std::os::unix::fs::MetadataExt;
            match std::fs::symlink_metadata(own) {
                Ok(md) if !md.file_type().is_file() || md.nlink() != 1 => {
                    return Err(format!("{} has another name or kind", own.display()))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Vec<String> {
        LOCAL_FILESYSTEMS.iter().map(|n| n.to_string()).collect()
    }

    /// Watches a compile-like read of `dir/sub/file` and its listing.
    fn recorded(dir: &Path, own: &[PathBuf]) -> Watch {
        let (_, watch) = record(&local(), own, || {
            before_entry(&dir.join("sub/file"));
            before_listing(&dir.join("sub"));
            before_link_count(&dir.join("sub/file"));
        });
        watch.unwrap()
    }

    /// One test at a time, away from /tmp: every directory above a fixture is watched, and
    /// other tests make theirs in /tmp all the time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn fixture() -> (std::sync::MutexGuard<'static, ()>, tempfile::TempDir) {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let parent = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/watch-tests");
        std::fs::create_dir_all(&parent).unwrap();
        let dir = tempfile::tempdir_in(std::fs::canonicalize(parent).unwrap()).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/file"), "x").unwrap();
        (serial, dir)
    }

    #[test]
    fn a_compile_holds_until_something_it_read_changes() {
        let (_serial, dir) = fixture();
        let mut watch = recorded(dir.path(), &[]);
        assert_eq!(watch.unchanged(), Ok(()));
        std::fs::hard_link(dir.path().join("sub/file"), dir.path().join("other")).unwrap();
        assert!(watch.unchanged().is_err());
    }

    #[test]
    fn a_name_it_never_looked_up_is_no_change_but_one_it_did_is() {
        let (_serial, dir) = fixture();
        let mut watch = recorded(dir.path(), &[]);
        // `dir` was only looked up into (for `sub`), never listed.
        std::fs::write(dir.path().join("unrelated"), "x").unwrap();
        std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
        assert_eq!(watch.unchanged(), Ok(()));
        std::fs::rename(dir.path().join("sub"), dir.path().join("moved")).unwrap();
        let changed = watch.unchanged().unwrap_err();
        assert!(changed.contains("sub"), "{changed}");
    }

    #[test]
    fn a_name_made_in_a_directory_it_listed_is_a_change() {
        let (_serial, dir) = fixture();
        let mut watch = recorded(dir.path(), &[]);
        std::fs::write(dir.path().join("sub/new"), "x").unwrap();
        let changed = watch.unchanged().unwrap_err();
        assert!(changed.contains("sub/new"), "{changed}");
    }

    #[test]
    fn the_daemons_own_rewrites_are_not_changes_but_another_name_for_them_is() {
        let (_serial, dir) = fixture();
        let own = dir.path().join("sub/state.json");
        let tmp = dir.path().join("sub/state.json.tmp");
        std::fs::write(&own, "{}").unwrap();
        let mut watch = recorded(dir.path(), &[own.clone(), tmp.clone()]);
        std::fs::write(&tmp, "{}").unwrap();
        std::fs::rename(&tmp, &own).unwrap();
        assert_eq!(watch.unchanged(), Ok(()));
        std::fs::hard_link(&own, &tmp).unwrap();
        assert!(watch.unchanged().is_err());
    }

    #[test]
    fn a_symlink_read_through_or_a_host_name_is_never_reused() {
        let (_serial, dir) = fixture();
        std::os::unix::fs::symlink(dir.path().join("sub"), dir.path().join("link")).unwrap();
        let (_, watch) = record(&local(), &[], || before_follow(&dir.path().join("link")));
        assert!(watch.unwrap_err().contains("symlink"));
        let (_, watch) = record(&local(), &[], || not_reusable("it names hosts"));
        assert_eq!(watch.err().as_deref(), Some("it names hosts"));
    }

    #[test]
    fn a_file_read_and_then_written_through_a_mapping_is_a_change() {
        let (_serial, dir) = fixture();
        let file = dir.path().join("sub/file");
        let (_, watch) = record(&local(), &[], || before_content(&file));
        let mut watch = watch.unwrap();
        // Stands in for a write through a shared mapping, which fires no event: only the
        // times move.
        let now = std::time::SystemTime::now();
        let times = std::fs::FileTimes::new().set_modified(now);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_times(times)
            .unwrap();
        let mut events = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        // Drop the events the stand-in made (a real mapped write makes none).
        let mut reader = inotify::Reader::new(&watch.inotify, &mut events);
        while reader.next().is_ok() {}
        let changed = watch.unchanged().unwrap_err();
        assert!(changed.contains("was written"), "{changed}");
    }

    #[test]
    fn a_filesystem_not_trusted_is_never_reused() {
        let (_serial, dir) = fixture();
        let (_, watch) = record(&[], &[], || before_entry(&dir.path().join("sub/file")));
        assert!(watch.unwrap_err().contains("filesystem"));
    }

    #[test]
    fn outside_a_recording_nothing_is_watched() {
        let (_serial, dir) = fixture();
        before_listing(dir.path());
        RECORDING.with(|r| assert!(r.borrow().is_none()));
    }
}
