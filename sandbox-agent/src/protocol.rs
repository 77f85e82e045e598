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
    },
    Detach {
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
    /// True when this replaced a policy already attached to the cgroup.
    pub replaced: bool,
    /// True when an earlier daemon made this attachment and this one took it over.
    #[serde(default)]
    pub adopted: bool,
    /// Audit records logged for this generation since the daemon started (status only).
    #[serde(default)]
    pub events_logged: u64,
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
    fn unknown_ops_are_rejected() {
        assert!(serde_json::from_str::<Request>(r#"{"version":1,"op":"format_disk"}"#).is_err());
    }

    #[test]
    fn errors_round_trip() {
        let r = Response::error("cgroup /x does not exist");
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), r);
    }
}
