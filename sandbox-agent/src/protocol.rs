//! The control protocol between the CLI and the daemon: one JSON object per line over a Unix
//! socket, one request and one response per connection. Every message carries a version.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
pub const DEFAULT_SOCKET: &str = "/run/sandbox-agent.sock";
/// Requests larger than this are refused (a policy is a few KiB).
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub op: Op,
}

/// What a run denies on top of its policy, from the runner's environment (only ever more
/// denial): the Unix sockets its removed variables named (an ssh-agent's), and the developer's
/// caches that their variables moved from their default places (`own_caches`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunDenials {
    pub sockets: Vec<PathBuf>,
    pub caches: Vec<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Status,
    Attach {
        cgroup: PathBuf,
        /// Name of the policy file, for error messages.
        policy_file: String,
        /// The policy text: the daemon parses it again (it is the trusted side).
        policy_yaml: String,
        /// What `~` means in the policy.
        home: PathBuf,
        /// What `$WORKSPACE` means in the policy, if anything.
        #[serde(default)]
        workspace: Option<PathBuf>,
        /// Attach even when processes in the cgroup hold open descriptors of files the policy
        /// denies (listed as warnings); without it such an attach is refused and nothing changes.
        #[serde(default)]
        force: bool,
    },
    Detach {
        cgroup: PathBuf,
    },
    /// Confine the caller's own child `pid` (forked and waiting, not yet executing anything):
    /// the daemon creates a transient cgroup, attaches the policy to it and moves `pid` into it.
    /// Answered with `Attached`; the caller then lets the child run. The connection stays
    /// open: once the child has exited, the daemon kills what is left in the cgroup, detaches
    /// and removes it, and answers a second time on it (`Detached`, or an error), so a run
    /// costs one connection. A caller whose connection closes with no second answer (the
    /// daemon restarted meanwhile) ends the run with `RunEnd`.
    Run {
        policy_file: String,
        policy_yaml: String,
        home: PathBuf,
        #[serde(default)]
        workspace: Option<PathBuf>,
        pid: u32,
        /// Unix sockets named by the variables the policy took out of the command's environment
        /// (an ssh-agent's): denied to this run on top of the policy (only ever more denial).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deny_sockets: Vec<PathBuf>,
        /// The developer's caches that their variables moved from where `own_caches` looks
        /// (`XDG_CACHE_HOME`, `GOPATH`...): denied to this run the same way.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deny_caches: Vec<PathBuf>,
        /// The caller waits on this connection for the end: the daemon ends the run when its
        /// command exits and answers a second time. False from a client older than that (no
        /// field), which ends the run itself with `run_end`: the daemon leaves it that to do,
        /// rather than race it. An older daemon ignores the field and answers once.
        #[serde(default)]
        ends_on_exit: bool,
    },
    /// End a `Run` whose connection is gone: kill what is left in its cgroup, detach, remove
    /// the cgroup. Allowed for root and for the user who made the run.
    RunEnd {
        cgroup: PathBuf,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    #[serde(flatten)]
    pub result: Reply,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Reply {
    Error { message: String },
    Attached(AttachInfo),
    Detached { cgroup: PathBuf },
    Status(StatusInfo),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachInfo {
    pub cgroup: PathBuf,
    pub cgroup_id: u64,
    pub policy: String,
    pub policy_id: u32,
    pub mode: String,
    pub rules: usize,
    pub map_entries: usize,
    pub warnings: Vec<String>,
    /// Denied paths that do not exist yet: each is denied once created. Expected of a default
    /// policy on most hosts, so shown on request rather than as a warning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_yet_created: Vec<PathBuf>,
    /// True when this replaced a policy already attached to the cgroup.
    pub replaced: bool,
    /// True when an earlier daemon made this attachment and this one took it over.
    #[serde(default)]
    pub adopted: bool,
    /// Audit records logged for this generation since the daemon started (status only).
    #[serde(default)]
    pub events_logged: u64,
    /// Who made this attachment with `run` (None: made with `attach`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_by: Option<RunOwner>,
    /// The daemon reused the compile of an earlier request: nothing it read had changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compile_reused: bool,
}

/// The `run` client that owns a transient cgroup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOwner {
    pub uid: u32,
    pub pid: i32,
    /// The client's start time (clock ticks after boot, /proc/<pid>/stat), which tells a live
    /// client from a later process that reuses its pid.
    pub start_time: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub daemon_pid: u32,
    pub kernel: String,
    pub bpffs: PathBuf,
    pub audit_log: PathBuf,
    pub attachments: Vec<AttachInfo>,
    pub events_logged: u64,
    #[serde(default)]
    pub events_suppressed: u64,
    pub events_dropped: u64,
    /// Pins removed from bpffs that the daemon put back.
    #[serde(default)]
    pub pins_restored: u64,
    /// Whether the programs remember allowed verdicts (off on hosts other than x86-64 and when
    /// /proc/kallsyms hides `rename_lock`: every confined open then walks its directories).
    #[serde(default)]
    pub verdict_cache: bool,
}

impl Request {
    pub fn new(op: Op) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            op,
        }
    }
}

impl Response {
    pub fn new(result: Reply) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            result,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Reply::Error {
            message: message.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_one_json_line() {
        let r = Request::new(Op::Detach {
            cgroup: "/sys/fs/cgroup/a".into(),
        });
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"version":1,"op":"detach","cgroup":"/sys/fs/cgroup/a"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
    }

    #[test]
    fn attach_requests_without_force_parse_as_not_forced() {
        let line = r#"{"version":1,"op":"attach","cgroup":"/sys/fs/cgroup/a","policy_file":"p","policy_yaml":"","home":"/h"}"#;
        let Op::Attach { force, .. } = serde_json::from_str::<Request>(line).unwrap().op else {
            panic!("not an attach");
        };
        assert!(!force);
        let forced = Request::new(Op::Attach {
            cgroup: "/sys/fs/cgroup/a".into(),
            policy_file: "p".into(),
            policy_yaml: String::new(),
            home: "/h".into(),
            workspace: None,
            force: true,
        });
        let line = serde_json::to_string(&forced).unwrap();
        assert!(line.contains(r#""force":true"#), "{line}");
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), forced);
    }

    #[test]
    fn unknown_ops_are_rejected() {
        assert!(serde_json::from_str::<Request>(r#"{"version":1,"op":"format_disk"}"#).is_err());
    }

    /// A request as a client older than `ends_on_exit` sends it: that client ends the run
    /// itself, so the daemon must not.
    #[test]
    fn run_requests_parse_with_and_without_a_workspace() {
        let line = r#"{"version":1,"op":"run","policy_file":"p.yaml","policy_yaml":"name: p\n","home":"/home/a","pid":4242}"#;
        let r: Request = serde_json::from_str(line).unwrap();
        assert_eq!(
            r.op,
            Op::Run {
                policy_file: "p.yaml".into(),
                policy_yaml: "name: p\n".into(),
                home: "/home/a".into(),
                workspace: None,
                pid: 4242,
                deny_sockets: vec![],
                deny_caches: vec![],
                ends_on_exit: false,
            }
        );
        let with_ws = Request::new(Op::Run {
            policy_file: "p.yaml".into(),
            policy_yaml: "name: p\n".into(),
            home: "/home/a".into(),
            workspace: Some("/src".into()),
            pid: 7,
            deny_sockets: vec!["/tmp/ssh-x/agent.1".into()],
            deny_caches: vec!["/data/cache/pip".into()],
            ends_on_exit: true,
        });
        let line = serde_json::to_string(&with_ws).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), with_ws);
    }

    #[test]
    fn run_requests_without_a_valid_pid_are_rejected() {
        let base = r#""version":1,"op":"run","policy_file":"p","policy_yaml":"","home":"/h""#;
        for bad in [
            format!("{{{base}}}"),
            format!(r#"{{{base},"pid":-1}}"#),
            format!(r#"{{{base},"pid":"12"}}"#),
            format!(r#"{{{base},"pid":4294967296}}"#),
            format!(r#"{{{base},"pid":1.5}}"#),
        ] {
            assert!(serde_json::from_str::<Request>(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn run_end_requests_name_a_cgroup() {
        let line = r#"{"version":1,"op":"run_end","cgroup":"/sys/fs/cgroup/sandbox-agent/run-9"}"#;
        assert_eq!(
            serde_json::from_str::<Request>(line).unwrap().op,
            Op::RunEnd {
                cgroup: "/sys/fs/cgroup/sandbox-agent/run-9".into()
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"version":1,"op":"run_end"}"#).is_err());
    }

    #[test]
    fn status_of_a_run_names_its_owner_and_older_answers_still_parse() {
        let mut info = AttachInfo {
            cgroup: "/sys/fs/cgroup/sandbox-agent/run-9".into(),
            cgroup_id: 1,
            policy: "p".into(),
            policy_id: 2,
            mode: "enforce".into(),
            rules: 0,
            map_entries: 0,
            warnings: vec![],
            not_yet_created: vec![],
            replaced: false,
            adopted: false,
            events_logged: 0,
            run_by: None,
            compile_reused: false,
        };
        let line = serde_json::to_string(&info).unwrap();
        assert!(!line.contains("run_by"), "{line}");
        assert_eq!(serde_json::from_str::<AttachInfo>(&line).unwrap(), info);
        info.run_by = Some(RunOwner {
            uid: 1000,
            pid: 9,
            start_time: 123,
        });
        let line = serde_json::to_string(&info).unwrap();
        assert_eq!(serde_json::from_str::<AttachInfo>(&line).unwrap(), info);
    }

    #[test]
    fn errors_round_trip() {
        let r = Response::error("cgroup /x does not exist");
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), r);
    }
}
