//! allow_write: an allowlist of what a confined process may change. Outside the listed trees
//! nothing changes, whoever the task runs as: a confined root cannot replace the host's
//! programs, configuration or package scripts (`system/` below stands for /usr, /etc and
//! /var/lib/dpkg), and a name inside a listed tree that leads outside (a symlink, a path
//! through /proc, a hardlink made before the attach) changes nothing either. What is mounted
//! below a listed tree is listed with it.

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    changes::*,
    filesystems::{dir_on, file, mounted},
    harness::*,
    mounted_below::mount,
};

/// A host in miniature below `base`: `work/` (listed), `system/` (not listed), each file
/// changeable by everyone, so a refusal is the policy's and not the file mode's.
struct Host {
    work: PathBuf,
    system: PathBuf,
}

impl Host {
    fn new(base: &Path) -> Host {
        let host = Host {
            work: base.join("work"),
            system: base.join("system"),
        };
        for who in ["root", "user"] {
            for dir in [host.work.join(who), host.system.join(who).join("dir")] {
                std::fs::create_dir_all(&dir).unwrap();
            }
            file(&host.system.join(who).join("conf"), "the host's own\n");
            file(&host.system.join(who).join("tool"), "#!/bin/sh\n");
            file(&host.work.join(who).join("file"), "the agent's\n");
            file(&host.work.join(who).join("other"), "the agent's\n");
        }
        file(&host.work.join(".bashrc"), "the developer's\n");
        give_to(USER_UID, base);
        host
    }
}

/// Every route that changes something at `dir` (a file `conf`, a file `tool`, a directory
/// `dir`), and the routes between `dir` and the listed tree `to`.
fn every_change(dir: &Path, to: &Path) -> Vec<(&'static str, &'static str, Vec<PathBuf>)> {
    let p = |name: &str| dir.join(name);
    let q = |name: &str| to.join(name);
    vec![
        ("append", "append", vec![p("conf")]),
        ("open_rw", "open_rw", vec![p("conf")]),
        ("open_trunc", "open_trunc", vec![p("conf")]),
        ("truncate", "truncate", vec![p("conf")]),
        ("create", "create", vec![p("new")]),
        ("mkdir", "mkdir", vec![p("newdir")]),
        ("mkfifo", "mkfifo", vec![p("fifo")]),
        ("symlink", "symlink", vec![q("file"), p("link")]),
        ("chmod_open", "chmod_open", vec![p("tool")]),
        ("acl", "acl", vec![p("conf")]),
        ("utimes", "utimes", vec![p("conf")]),
        ("chattr", "chattr", vec![p("conf")]),
        // A name for it in the listed tree, or for a listed file here.
        ("link_in", "link", vec![p("conf"), q("conf-link")]),
        ("link_out", "link", vec![q("file"), p("file-link")]),
        ("rename_in", "rename", vec![p("tool"), q("tool")]),
        ("rename_out", "rename", vec![q("other"), p("other")]),
        ("exchange", "exchange", vec![q("file"), p("conf")]),
        ("unlink", "unlink", vec![p("conf")]),
        ("rmdir", "rmdir", vec![p("dir")]),
    ]
}

fn tried(cg: &Cgroup, user: bool, tries: &[(&str, &str, Vec<PathBuf>)]) -> BTreeMap<String, i32> {
    let tries: Vec<(&str, &str, Vec<&Path>)> = tries
        .iter()
        .map(|(n, op, ps)| (*n, *op, ps.iter().map(PathBuf::as_path).collect()))
        .collect();
    let tries: Vec<(&str, &str, &[&Path])> = tries
        .iter()
        .map(|(n, op, ps)| (*n, *op, ps.as_slice()))
        .collect();
    if user {
        try_changes_as_user(cg, &tries)
    } else {
        try_changes(Some(cg), &tries)
    }
}

#[test]
fn outside_the_listed_trees_nothing_changes_for_a_confined_root_or_user() {
    let base = fixture_dir("allow-write");
    let host = Host::new(&base);
    let policy = policy_file(
        &base,
        "allow-write",
        "allow_write:\n  - ~/work\ndeny_write:\n  - ~/work/.bashrc\n",
    );
    let cg = Cgroup::new("allow-write");
    attach(&cg, &policy, &base);

    for (who, user) in [("root", false), ("user", true)] {
        let system = host.system.join(who);
        let work = host.work.join(who);
        let outside = tried(&cg, user, &every_change(&system, &work));
        assert_only_allowed(&outside, &[]);
        assert_eq!(
            std::fs::read_to_string(system.join("conf")).unwrap(),
            "the host's own\n",
            "{who}"
        );
        assert_eq!(
            file_state(&system.join("tool")),
            "100666 1000 none none none"
        );

        // The same changes inside the listed tree all happen.
        let inside_dir = work.join("inside");
        std::fs::create_dir_all(inside_dir.join("dir")).unwrap();
        file(&inside_dir.join("conf"), "c\n");
        file(&inside_dir.join("tool"), "t\n");
        let mirror = work.join("mirror");
        std::fs::create_dir_all(&mirror).unwrap();
        file(&mirror.join("file"), "f\n");
        file(&mirror.join("other"), "o\n");
        give_to(USER_UID, &work);
        let inside = tried(&cg, user, &every_change(&inside_dir, &mirror));
        let every: Vec<&str> = inside.keys().map(String::as_str).collect();
        assert_only_allowed(&inside, &every);

        // deny_write still wins inside a listed tree; devices, pipes and the task's own
        // procfs files are no files that outlast it.
        let script = format!(
            "echo x >> {bashrc}; echo bashrc=$?; echo x > /dev/null; echo null=$?; \
             echo renamed > /proc/self/comm; echo comm=$?",
            bashrc = host.work.join(".bashrc").display()
        );
        let out = crate::filesystems::as_whom(&cg, user, &script);
        assert_ne!(crate::filesystems::step(&out, "bashrc"), 0, "{who}: {out}");
        assert_eq!(crate::filesystems::step(&out, "null"), 0, "{who}: {out}");
        assert_eq!(crate::filesystems::step(&out, "comm"), 0, "{who}: {out}");
    }

    let record = record_of(&cg, "file_open", |r| {
        r["rule"]
            .as_str()
            .is_some_and(|rule| rule.starts_with("allow_write (not under any listed path)"))
    });
    assert_eq!(record["action"], "deny", "{record}");

    // Outside the sandbox the host changes as before; detached, so does the sandbox.
    let conf = host.system.join("root/conf");
    assert_eq!(
        try_changes(None, &[("append", "append", &[conf.as_path()])])["append"],
        0
    );
    detach(&cg);
    assert_eq!(
        try_changes(Some(&cg), &[("append", "append", &[conf.as_path()])])["append"],
        0
    );
}

/// Every name by which `target` may be reached from inside the listed tree (and the one name
/// it has outside), each tried for a change of the file itself.
const THROUGH_NAMES: &str = r#"
set -u
try() { name=$1; shift; "$@" 2>/dev/null; echo "$name=$?"; }
w=$1
try symlink sh -c "echo x >> $w/symlink"
try proc_root sh -c "echo x >> /proc/self/root$w/symlink"
try dot_dot sh -c "echo x >> $w/../system/root/tool"
try bind_listed sh -c "echo x >> $w/shared/f"
try bind_own_path sh -c "echo x >> $w/../shared/f"
try hardlink sh -c "echo x >> $w/hardlink"
try hardlink_truncate truncate -s 0 "$w/hardlink"
try hardlink_chmod chmod 4777 "$w/hardlink"
try both_inside sh -c "echo x >> $w/twin-a"
try whole_fs sh -c "echo x >> $w/scratch/twin-a"
try mounted_below sh -c "echo x > $w/mnt/new-$(id -u)"
try ext4_hardlink sh -c "echo x >> $2/work/hardlink"
try ext4_file sh -c "echo x >> $2/work/file"
try hardlink_unlink rm -f "$w/hardlink"
"#;

#[test]
fn no_other_name_of_a_file_outside_makes_it_changeable() {
    let base = fixture_dir("allow-write-names");
    let host = Host::new(&base);
    let conf = host.system.join("root/conf");
    let w = &host.work;
    // Made before the attach, by the administrator: the ways in from the listed tree.
    let tool = host.system.join("root/tool");
    std::os::unix::fs::symlink(&tool, w.join("symlink")).unwrap();
    std::fs::hard_link(&conf, w.join("hardlink")).unwrap();
    // A directory bound below the listed tree is listed with it, under its every name: what
    // it holds is changeable through the bind anyway.
    std::fs::create_dir_all(base.join("shared")).unwrap();
    file(&base.join("shared/f"), "shared\n");
    std::fs::create_dir_all(w.join("shared")).unwrap();
    mount(&["--bind"], &base.join("shared"), &w.join("shared"));
    // Two names, both inside: the walk cannot tell, so the file stays as it is.
    file(&w.join("twin-a"), "t\n");
    std::fs::hard_link(w.join("twin-a"), w.join("twin-b")).unwrap();
    // A whole filesystem listed: its files' other names are all inside it.
    std::fs::create_dir_all(w.join("scratch")).unwrap();
    mount(&["-t", "tmpfs"], Path::new("tmpfs"), &w.join("scratch"));
    file(&w.join("scratch/twin-a"), "t\n");
    std::fs::hard_link(w.join("scratch/twin-a"), w.join("scratch/twin-b")).unwrap();
    // What is mounted below a listed directory is listed with it.
    std::fs::create_dir_all(w.join("mnt")).unwrap();
    mount(&["-t", "tmpfs"], Path::new("tmpfs"), &w.join("mnt"));
    // The same on ext4: a listed directory and a file outside it, hardlinked in.
    let ext4 = dir_on(mounted("ext4"), "allow-write");
    for dir in ["work", "system"] {
        std::fs::create_dir_all(ext4.join(dir)).unwrap();
    }
    file(&ext4.join("system/conf"), "the host's own\n");
    file(&ext4.join("work/file"), "the agent's\n");
    std::fs::hard_link(ext4.join("system/conf"), ext4.join("work/hardlink")).unwrap();
    for dir in [w.join("scratch"), w.join("mnt"), ext4.clone()] {
        give_to(USER_UID, &dir);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }

    let policy = policy_file(
        &base,
        "allow-write-names",
        &format!(
            "allow_write:\n  - ~/work\n  - ~/work/scratch\n  - {}/work\n",
            ext4.display()
        ),
    );
    let cg = Cgroup::new("allow-write-names");
    attach(&cg, &policy, &base);
    for (who, user) in [("root", false), ("user", true)] {
        let script = format!("set -- {} {}\n{THROUGH_NAMES}", w.display(), ext4.display());
        let out = crate::filesystems::as_whom(&cg, user, &script);
        let step = |name| crate::filesystems::step(&out, name);
        for refused in [
            "symlink",
            "proc_root",
            "dot_dot",
            "hardlink",
            "hardlink_truncate",
            "hardlink_chmod",
            "both_inside",
            "ext4_hardlink",
        ] {
            assert_ne!(step(refused), 0, "{who}: {refused} changed the file\n{out}");
        }
        for allowed in [
            "bind_listed",
            "bind_own_path",
            "whole_fs",
            "mounted_below",
            "ext4_file",
            "hardlink_unlink",
        ] {
            assert_eq!(step(allowed), 0, "{who}: {allowed} was refused\n{out}");
        }
        // Taking a name away inside the listed tree is allowed: make it again for the user.
        if !user {
            std::fs::hard_link(&conf, w.join("hardlink")).unwrap();
        }
    }
    for outside in [&conf, &ext4.join("system/conf")] {
        assert_eq!(
            std::fs::read_to_string(outside).unwrap(),
            "the host's own\n",
            "{}",
            outside.display()
        );
    }
    assert_eq!(file_state(&conf), "100666 1000 none none none");
    assert_eq!(std::fs::read_to_string(&tool).unwrap(), "#!/bin/sh\n");

    let record = record_of(&cg, "file_open", |r| {
        r["rule"]
            .as_str()
            .is_some_and(|rule| rule.contains("the file has other names"))
    });
    assert_eq!(record["action"], "deny", "{record}");

    detach(&cg);
    for point in ["shared", "scratch", "mnt"] {
        let _ = Command::new("umount").arg(w.join(point)).status();
    }
}

/// An overlay mounted in a listed tree (a container's root filesystem in the workspace) whose
/// layers lie outside every listed tree: overlayfs opens and creates its layers' files itself,
/// once the overlay's own path was decided. The layers stay unlisted under their own paths.
/// (The image file is copied up before the attach: a copy-up asks for `SYS_ADMIN` with the
/// mounter's credentials, which the capability rule refuses to every confined task; see the
/// README's known limits.)
#[test]
fn an_overlay_in_a_listed_tree_is_written_through_while_its_layers_are_not() {
    let base = fixture_dir("allow-write-overlay");
    let layers = base.join("layers");
    for dir in ["lower", "upper", "work"] {
        std::fs::create_dir_all(layers.join(dir)).unwrap();
        std::fs::set_permissions(layers.join(dir), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    file(&layers.join("lower/image-file"), "from the image\n");
    let merged = base.join("work/merged");
    std::fs::create_dir_all(&merged).unwrap();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        layers.join("lower").display(),
        layers.join("upper").display(),
        layers.join("work").display()
    );
    mount(
        &["-t", "overlay", "-o", &options],
        Path::new("overlay"),
        &merged,
    );
    std::fs::write(merged.join("image-file"), "from the image\n").unwrap();
    assert!(layers.join("upper/image-file").exists(), "copied up");
    let policy = policy_file(&base, "allow-write-overlay", "allow_write:\n  - ~/work\n");
    let cg = Cgroup::new("allow-write-overlay");
    attach(&cg, &policy, &base);

    for (who, user) in [("root", false), ("user", true)] {
        let script = format!(
            "try() {{ name=$1; shift; \"$@\" 2>/dev/null; echo \"$name=$?\"; }}\n\
             try changed sh -c 'echo {who} >> {m}/image-file'\n\
             try created sh -c 'echo {who} > {m}/new-{who}'\n\
             try touched touch {m}/image-file\n\
             try upper_layer sh -c 'echo {who} >> {l}/upper/image-file'\n\
             try upper_touched touch {l}/upper/image-file\n\
             try lower_layer sh -c 'echo {who} >> {l}/lower/image-file'\n",
            m = merged.display(),
            l = layers.display()
        );
        let out = crate::filesystems::as_whom(&cg, user, &script);
        let step = |name| crate::filesystems::step(&out, name);
        assert_eq!(step("changed"), 0, "{who}: {out}");
        assert_eq!(step("created"), 0, "{who}: {out}");
        // overlayfs sets the layer file's times itself, with its mounter's credentials.
        assert_eq!(step("touched"), 0, "{who}: {out}");
        assert_ne!(step("upper_layer"), 0, "{who}: {out}");
        assert_ne!(step("upper_touched"), 0, "{who}: {out}");
        assert_ne!(step("lower_layer"), 0, "{who}: {out}");
    }
    assert_eq!(
        std::fs::read_to_string(merged.join("image-file")).unwrap(),
        "from the image\nroot\nuser\n"
    );
    assert_eq!(
        std::fs::read_to_string(layers.join("lower/image-file")).unwrap(),
        "from the image\n"
    );
    detach(&cg);
    let _ = Command::new("umount").arg(&merged).status();
}
