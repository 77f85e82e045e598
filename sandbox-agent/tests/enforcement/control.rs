//! The control plane under stress: policy reloads never open a window, bad clients cannot hurt
//! the daemon, and only root may change policy.

use std::{
    io::{Read, Write},
    os::unix::{net::UnixStream, process::CommandExt},
};

use crate::harness::*;

const SOCKET: &str = "/run/sandbox-agent.sock";

#[test]
fn a_hundred_reloads_never_let_a_read_through_and_the_last_policy_wins() {
    let home = fixture_dir("reload");
    let secret = home.join("secret");
    let other = home.join("other");
    write(&secret, "s");
    write(&other, "o");
    let both = deny_read_policy(&home, &[&secret, &other]);
    let only_secret = policy_file(
        &home,
        "only-secret",
        &format!("deny_read:\n  - {:?}\n", secret.display().to_string()),
    );
    let cg = Cgroup::new("reload");
    attach(&cg, &both, &home);
    let stop = home.join("stop");
    let reader = cg.start_reader(&secret, &stop);

    for i in 0..100 {
        let policy = if i % 2 == 0 { &only_secret } else { &both };
        attach(&cg, policy, &home);
    }
    let (leaked, tries) = stop_reader(reader, &stop);

    assert_eq!(leaked, 0, "the secret was readable during a reload");
    assert!(tries > 0);
    // The 100th attach (i = 99) was `both`; one more makes `other` readable.
    assert_eq!(cg.open(&other), Err(EPERM));
    attach(&cg, &only_secret, &home);
    assert_eq!(cg.open(&other), Ok("o".into()));
    assert_eq!(cg.open(&secret), Err(EPERM));
}

/// Sends raw bytes on the control socket and returns the reply (possibly empty).
fn raw_request(bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(SOCKET).unwrap();
    // The daemon may answer (and close) before reading everything of an oversized request.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
}

#[test]
fn garbage_on_the_control_socket_gets_an_error_and_the_daemon_keeps_serving() {
    assert!(raw_request(b"\x00\xffnot json at all\n").contains("malformed request"));
    assert!(raw_request(b"{\"version\":1,\"op\":\"launch_missiles\"}\n").contains("error"));
    assert!(raw_request(b"{\"version\":99,\"op\":\"status\"}\n").contains("protocol version 99"));
    assert!(raw_request(b"{\"version\":1,\"op\":\"run\",\"pid\":-1}\n").contains("malformed"));
    assert!(raw_request(b"{\"version\":1,\"op\":\"run_end\"}\n").contains("malformed"));
    assert!(raw_request(&vec![b'x'; 5 << 20]).contains("larger than"));
    drop(UnixStream::connect(SOCKET).unwrap());

    let status = agent().arg("status").output().unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
}

#[test]
fn an_ordinary_user_gets_a_permission_error_and_nothing_changes() {
    let home = fixture_dir("nonroot");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = Cgroup::new("nonroot");
    let policy = deny_read_policy(&home, &[&secret]);

    let out = agent()
        .args(["attach", "--cgroup"])
        .arg(&cg.path)
        .arg("--policy")
        .arg(&policy)
        .arg("--home")
        .arg(&home)
        .uid(1000)
        .gid(1000)
        .output()
        .unwrap();
    assert_refused(&out, "permission denied: only root");
    assert_eq!(cg.open(&secret), Ok("s".into()), "nothing was attached");
}

/// Sends one request line on the control socket as `uid`:`gid` (a python3 client, so the
/// daemon sees that user's credentials) and returns the reply line.
fn request_as(uid: u32, gid: u32, request: &serde_json::Value) -> String {
    const CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
print(s.makefile().readline(), end="")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", CLIENT, SOCKET, &request.to_string()])
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

fn cgroup_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()
}

fn run_cgroups() -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup/sandbox-agent")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_member_cannot_have_a_process_that_is_not_its_own_child_confined() {
    let home = fixture_dir("run-other-pid");
    let policy = "name: grab\ndeny_read:\n  - ~/.ssh\n";
    // Victims: a root process, and a process of the member's own uid that it did not start.
    let mut root_victim = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let mut user_victim = std::process::Command::new("sleep")
        .arg("60")
        .uid(USER_UID)
        .gid(CONTROL_GID)
        .spawn()
        .unwrap();
    let before = run_cgroups();

    for victim in [&root_victim, &user_victim] {
        let pid = victim.id();
        let was = cgroup_of(pid);
        let reply = request_as(
            USER_UID,
            CONTROL_GID,
            &serde_json::json!({
                "version": 1,
                "op": "run",
                "policy_file": "grab.yaml",
                "policy_yaml": policy,
                "home": home,
                "pid": pid,
            }),
        );
        assert!(
            reply.contains("permission denied: process")
                && reply.contains("is not a child of the caller"),
            "{reply}"
        );
        assert_eq!(cgroup_of(pid), was, "process {pid} was moved");
    }
    assert_eq!(run_cgroups(), before, "a transient cgroup was left behind");
    for victim in [&mut root_victim, &mut user_victim] {
        assert!(victim.try_wait().unwrap().is_none(), "a victim died");
        victim.kill().unwrap();
        victim.wait().unwrap();
    }
}

#[test]
fn only_its_owner_or_root_may_end_a_run() {
    use std::io::{BufRead, BufReader};
    let home = fixture_dir("run-end-owner");
    let policy = policy_file(&home, "run-end-owner", "deny_read:\n  - ~/.ssh\n");
    // A run of root's, still going.
    let mut run = agent_run_command(&[], &policy, &home, &["sh", "-c", "echo ready; sleep 60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(run.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let cgroup = run_cgroup(run.id());

    let end = serde_json::json!({"version": 1, "op": "run_end", "cgroup": cgroup});
    let reply = request_as(USER_UID, CONTROL_GID, &end);
    assert!(
        reply.contains("permission denied: the run in") && reply.contains("belongs to uid 0"),
        "{reply}"
    );
    assert!(attached(&cgroup), "the run was ended by someone else");
    // An attachment made with attach is not a run: run_end refuses it, even for root.
    let cg = Cgroup::new("not-a-run");
    attach(&cg, &policy, &home);
    let reply = request_as(
        0,
        0,
        &serde_json::json!({"version": 1, "op": "run_end", "cgroup": cg.path}),
    );
    assert!(reply.contains("was not made by run; use detach"), "{reply}");
    detach(&cg);

    // Root may end it: the command is killed, the cgroup removed.
    let reply = request_as(0, 0, &end);
    assert!(reply.contains("detached"), "{reply}");
    assert!(!cgroup.exists());
    assert!(!attached(&cgroup));
    // The supervisor sees its command killed, and the end of its run failing: it says so.
    let out = run.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "run reports the failed clean-up"
    );
    assert!(
        stderr(&out).contains("the run was ended or detached by someone else"),
        "{}",
        stderr(&out)
    );
}

/// Entries of generation `policy_id` in each rule map (read from the daemon's pins).
fn entries_of(policy_id: u32) -> [usize; 3] {
    use aya::maps::{lpm_trie::LpmTrie, HashMap, Map, MapData};
    use sandbox_common::{InodeKey, NameKey, NetKey, NetRules, RuleValue};
    let map = |name: &str| {
        let data = MapData::from_pin(format!("/sys/fs/bpf/sandbox-agent/maps/{name}")).unwrap();
        Map::from_map_data(data).unwrap()
    };
    let inodes: HashMap<MapData, InodeKey, RuleValue> = map("INODE_RULES").try_into().unwrap();
    let names: HashMap<MapData, NameKey, RuleValue> = map("NAME_RULES").try_into().unwrap();
    let net: LpmTrie<MapData, NetKey, NetRules> = map("NET_RULES").try_into().unwrap();
    [
        inodes
            .keys()
            .flatten()
            .filter(|k| k.policy_id == policy_id)
            .count(),
        names
            .keys()
            .flatten()
            .filter(|k| k.policy_id == policy_id)
            .count(),
        net.keys()
            .flatten()
            .filter(|k| k.data().policy_id == policy_id)
            .count(),
    ]
}

fn policy_id_of(cgroup: &std::path::Path) -> u32 {
    let a = attachment(cgroup).expect("attached");
    a["policy_id"].as_u64().unwrap() as u32
}

/// Replacing or detaching a policy removes its own map entries (and only those, by their keys,
/// not by reading every map): nothing of an old generation is left behind.
#[test]
fn replace_and_detach_leave_nothing_of_the_old_generation_in_the_maps() {
    let home = fixture_dir("map-cleanup");
    std::fs::create_dir_all(home.join("keys")).unwrap();
    write(&home.join("notes"), "n");
    let policy = policy_file(
        &home,
        "map-cleanup",
        "deny_read: [~/keys, ~/later/secret]\ndeny_write: [~/notes]\n\
         network:\n  deny: [10.1.2.3]\n",
    );
    let cg = Cgroup::new("map-cleanup");
    attach(&cg, &policy, &home);
    let first = policy_id_of(&cg.path);
    let [inodes, names, net] = entries_of(first);
    assert!(
        inodes > 0 && names > 0 && net > 0,
        "{:?}",
        [inodes, names, net]
    );
    assert!(links_out_watched(ino(&home.join("keys"))));
    assert_ne!(
        any_attached_flag(),
        0,
        "hooks would leave before looking the task up"
    );

    attach(&cg, &policy, &home);
    let second = policy_id_of(&cg.path);
    assert_ne!(first, second);
    assert_eq!(entries_of(first), [0, 0, 0], "the replaced generation");
    assert_eq!(entries_of(second), [inodes, names, net]);

    detach(&cg);
    assert_eq!(entries_of(second), [0, 0, 0], "the detached generation");
    // The directory's entry for links out of it (shared by every policy) went with its last
    // user.
    assert!(!links_out_watched(ino(&home.join("keys"))));
}

/// Whether the `POLICY_ID_ANY` entry that watches links out of directory `ino` exists.
fn links_out_watched(dir_ino: u64) -> bool {
    use aya::maps::{HashMap, Map, MapData};
    use sandbox_common::{InodeKey, RuleValue, POLICY_ID_ANY};
    let data = MapData::from_pin("/sys/fs/bpf/sandbox-agent/maps/INODE_RULES").unwrap();
    let inodes: HashMap<MapData, InodeKey, RuleValue> =
        Map::from_map_data(data).unwrap().try_into().unwrap();
    inodes
        .keys()
        .flatten()
        .any(|k| k.policy_id == POLICY_ID_ANY && k.ino == dir_ino)
}

/// `ANY_ATTACHED[0]`: 0 lets every hook leave before it looks a task up.
fn any_attached_flag() -> u32 {
    use aya::maps::{Array, Map, MapData};
    let data = MapData::from_pin("/sys/fs/bpf/sandbox-agent/maps/ANY_ATTACHED").unwrap();
    let flag: Array<MapData, u32> = Map::from_map_data(data).unwrap().try_into().unwrap();
    flag.get(&0, 0).unwrap()
}

/// (generation, attachment) the programs cached for `cgroup`, and the current generation.
fn cached_verdict(cgroup: &std::path::Path) -> (Option<(u64, u64)>, u64) {
    use aya::maps::{Array, HashMap, Map, MapData};
    use sandbox_common::CgroupVerdict;
    let id = sandbox_agent::cgroup::cgroup_id(cgroup).unwrap();
    let data = MapData::from_pin("/sys/fs/bpf/sandbox-agent/maps/CGROUP_VERDICTS").unwrap();
    // An LRU hash reads like a hash.
    let verdicts: HashMap<MapData, u64, CgroupVerdict> =
        Map::from_map_data(data).unwrap().try_into().unwrap();
    let data = MapData::from_pin("/sys/fs/bpf/sandbox-agent/maps/CGROUP_GENERATION").unwrap();
    let generation: Array<MapData, u64> = Map::from_map_data(data).unwrap().try_into().unwrap();
    (
        verdicts
            .get(&id, 0)
            .ok()
            .map(|v| (v.generation, v.attachment)),
        generation.get(&0, 0).unwrap(),
    )
}

#[test]
fn a_cgroup_decided_unconfined_is_confined_the_moment_it_or_its_parent_is_attached() {
    let home = fixture_dir("verdict-cache");
    let secret = home.join("secret");
    write(&secret, "s");
    let policy = deny_read_policy(&home, &[&secret]);
    // Something attached elsewhere, or every hook would leave before looking at cgroups.
    let _elsewhere = confined("verdict-elsewhere", &home, &[&secret]);
    let parent = Cgroup::new("verdict-parent");
    let work = parent.child("work");

    // Decided unconfined, and the verdict cached for this generation.
    assert_eq!(work.open(&secret), Ok("s".into()));
    let (verdict, now) = cached_verdict(&work.path);
    assert_eq!(verdict, Some((now, 0)), "the cgroup's verdict is cached");

    attach(&parent, &policy, &home);
    assert_eq!(
        work.open(&secret),
        Err(EPERM),
        "the parent's policy applies at once"
    );
    detach(&parent);
    assert_eq!(work.open(&secret), Ok("s".into()), "and not after detach");

    attach(&work, &policy, &home);
    assert_eq!(
        work.open(&secret),
        Err(EPERM),
        "its own policy applies at once"
    );
    let (verdict, now) = cached_verdict(&work.path);
    let work_id = sandbox_agent::cgroup::cgroup_id(&work.path).unwrap();
    assert_eq!(verdict, Some((now, work_id)));
    detach(&work);
    assert_eq!(work.open(&secret), Ok("s".into()));
}
