//! A file allowed (and so remembered by the verdict cache) and then made denied from outside,
//! by every change that can do it, is denied at its next open or exec: a rename of the file or
//! of a directory above it, a second name and the loss of the first, a new policy.

use std::path::{Path, PathBuf};

use crate::harness::*;

/// A home with `public/` (allowed), `creds/` (denied to read) and `tools-denied/` (denied to
/// execute), confined by one policy.
fn home_with_denied_dirs(name: &str) -> (PathBuf, Cgroup) {
    let home = fixture_dir(name);
    for dir in ["public", "creds", "tools-denied"] {
        std::fs::create_dir_all(home.join(dir)).unwrap();
    }
    write(&home.join("creds/key"), "k");
    let policy = policy_file(
        &home,
        "cache",
        &format!(
            "deny_read:\n  - {:?}\ndeny_exec:\n  - {:?}\n",
            home.join("creds").display().to_string(),
            home.join("tools-denied").display().to_string()
        ),
    );
    let cg = Cgroup::new(name);
    attach(&cg, &policy, &home);
    (home, cg)
}

/// Opened twice from inside: the first open is decided by the walk and remembered, the second
/// by the cache.
fn read_twice(cg: &Cgroup, path: &Path) {
    for _ in 0..2 {
        assert!(cg.open(path).is_ok(), "{} must be readable", path.display());
    }
}

#[test]
fn a_remembered_file_renamed_into_a_denied_directory_is_denied() {
    let (home, cg) = home_with_denied_dirs("cache-rename-file");
    let file = home.join("public/notes");
    write(&file, "n");
    read_twice(&cg, &file);

    let moved = home.join("creds/notes");
    std::fs::rename(&file, &moved).unwrap();

    assert_eq!(cg.open(&moved), Err(EPERM));
}

#[test]
fn files_below_a_directory_renamed_into_a_denied_one_are_denied() {
    let (home, cg) = home_with_denied_dirs("cache-rename-dir");
    let file = home.join("public/project/src/main.rs");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    write(&file, "fn main() {}");
    read_twice(&cg, &file);

    std::fs::rename(home.join("public/project"), home.join("creds/project")).unwrap();

    assert_eq!(cg.open(&home.join("creds/project/src/main.rs")), Err(EPERM));
}

#[test]
fn a_remembered_file_given_a_denied_name_and_stripped_of_its_allowed_one_is_denied() {
    let (home, cg) = home_with_denied_dirs("cache-relink");
    let file = home.join("public/draft");
    write(&file, "d");
    read_twice(&cg, &file);

    let denied_name = home.join("creds/draft");
    std::fs::hard_link(&file, &denied_name).unwrap();
    std::fs::remove_file(&file).unwrap();

    assert_eq!(cg.open(&denied_name), Err(EPERM));
}

#[test]
fn a_remembered_file_is_denied_once_a_policy_denying_it_is_attached() {
    let (home, cg) = home_with_denied_dirs("cache-reattach");
    let file = home.join("public/plan");
    write(&file, "p");
    read_twice(&cg, &file);

    attach(&cg, &deny_read_policy(&home, &[&file]), &home);

    assert_eq!(cg.open(&file), Err(EPERM));
}

#[test]
fn a_remembered_program_moved_into_a_denied_directory_cannot_be_run() {
    let (home, cg) = home_with_denied_dirs("cache-exec");
    let program = tool(&home.join("public"), "true");
    for _ in 0..2 {
        assert_eq!(cg.exec(&program), Ok(0));
    }

    let moved = home.join("tools-denied/true");
    std::fs::rename(&program, &moved).unwrap();

    assert_eq!(cg.exec(&moved), Err(EPERM));
}

/// The tests above prove something only while the cache is in use: the daemon says it is.
#[test]
fn the_daemon_runs_with_the_verdict_cache_on() {
    let out = agent().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["verdict_cache"], true, "{}", stdout(&out));
}

/// The cache keys on dentries, which every filesystem has: on ext4, xfs and btrfs, files that
/// root and a user inside have read (and so are remembered) are denied to both once their
/// directory is moved into a denied one.
#[test]
fn on_ext4_xfs_and_btrfs_remembered_files_moved_under_a_denied_directory_are_denied() {
    use crate::filesystems::{as_whom, dir_on, file, mounted, step};
    for kind in ["ext4", "xfs", "btrfs"] {
        let dir = dir_on(mounted(kind), "cache");
        for sub in ["public/sub", "creds"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        file(&dir.join("public/sub/by-root"), "r");
        file(&dir.join("public/sub/by-user"), "u");
        let policy = policy_file(
            &dir,
            &format!("cache-{kind}"),
            &format!(
                "deny_read:\n  - {:?}\n",
                dir.join("creds").display().to_string()
            ),
        );
        let cg = Cgroup::new(&format!("cache-{kind}"));
        attach(&cg, &policy, &dir);
        // Each file twice: the first read walks and is remembered, the second is the cache's.
        let read = |user: bool, path: &Path| {
            let script = format!(
                "cat {0} >/dev/null; cat {0} >/dev/null; echo read=$?",
                path.display()
            );
            as_whom(&cg, user, &script)
        };
        for (user, name) in [(false, "by-root"), (true, "by-user")] {
            let out = read(user, &dir.join("public/sub").join(name));
            assert_eq!(step(&out, "read"), 0, "{kind} {name}: {out}");
        }

        std::fs::rename(dir.join("public/sub"), dir.join("creds/sub")).unwrap();

        for (user, name) in [(false, "by-root"), (true, "by-user")] {
            let out = read(user, &dir.join("creds/sub").join(name));
            assert!(
                step(&out, "read") != 0 && out.contains("Operation not permitted"),
                "{kind} {name}: {out}"
            );
        }
    }
}

/// For each `file new...` group: unlinks the file and removes its directory (which frees the
/// file's dentry), then creates the new files, all pinned to one CPU, whose slab hands the freed
/// dentry's memory to the next dentry allocated.
const REUSE_DENTRIES: &str = r#"
import json, os, sys
os.sched_setaffinity(0, {0})
for group in json.loads(sys.argv[1]):
    os.unlink(group[0])
    os.rmdir(os.path.dirname(group[0]))
    for p in group[1:]:
        with open(p, "w") as f:
            f.write("secret\n")
print("OK:", end="")
"#;

/// Opens each path twice; prints the errno of the second open of each (0: opened).
const OPEN_EACH_TWICE: &str = r#"
import json, os, sys
result = []
for p in sys.argv[1:]:
    for _ in range(2):
        try:
            os.close(os.open(p, os.O_RDONLY))
            e = 0
        except OSError as err:
            e = err.errno
    result.append(e)
print("OK:" + json.dumps(result), end="")
"#;

fn open_each_twice(cg: &Cgroup, paths: &[PathBuf]) -> Vec<i32> {
    let args: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
    serde_json::from_str(&cg.probe(OPEN_EACH_TWICE, &args).unwrap()).unwrap()
}

/// Remembered dentries freed and their memory given to new files in a denied directory: the
/// new files are denied (`d_instantiate` forgets what was remembered at that address). Slab
/// reuse is likely, not certain, so it is tried for twenty dentries; with the forgetting broken,
/// one of them finds the old allow.
#[test]
fn new_denied_files_in_the_memory_of_remembered_dentries_are_denied() {
    let (home, cg) = home_with_denied_dirs("cache-reuse");
    let rounds: Vec<(PathBuf, Vec<PathBuf>)> = (0..20)
        .map(|round| {
            let file = home.join(format!("public/r{round}/f"));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            write(&file, "f");
            let created = (0..2)
                .map(|i| home.join(format!("creds/new-{round}-{i}")))
                .collect();
            (file, created)
        })
        .collect();
    let files: Vec<PathBuf> = rounds.iter().map(|(f, _)| f.clone()).collect();
    assert!(open_each_twice(&cg, &files).iter().all(|&e| e == 0));

    let groups: Vec<Vec<&Path>> = rounds
        .iter()
        .map(|(f, created)| {
            std::iter::once(f.as_path())
                .chain(created.iter().map(PathBuf::as_path))
                .collect()
        })
        .collect();
    probe(
        None,
        REUSE_DENTRIES,
        &[&serde_json::to_string(&groups).unwrap()],
    )
    .unwrap();

    let created: Vec<PathBuf> = rounds.into_iter().flat_map(|(_, c)| c).collect();
    let errnos = open_each_twice(&cg, &created);
    assert!(errnos.iter().all(|&e| e == EPERM), "{errnos:?}");
}
