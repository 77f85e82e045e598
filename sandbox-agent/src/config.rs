//! The host configuration (`/etc/sandbox-agent/config.yaml`): where the daemon keeps its
//! socket, pins, audit log and attachment table, and which group besides root may steer it.
//! Command-line flags override it; a missing default file means the built-in defaults.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_CONFIG: &str = "/etc/sandbox-agent/config.yaml";
pub const DEFAULT_SOCKET: &str = crate::protocol::DEFAULT_SOCKET;
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf/sandbox-agent";
pub const DEFAULT_AUDIT_LOG: &str = "/var/log/sandbox-agent/audit.log";
pub const DEFAULT_STATE_FILE: &str = "/run/sandbox-agent/state.json";

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub socket: Option<PathBuf>,
    pub bpffs: Option<PathBuf>,
    pub audit_log: Option<PathBuf>,
    pub state_file: Option<PathBuf>,
    /// Members of this group (a name or a numeric gid) may attach and detach like root.
    pub control_group: Option<Group>,
    /// Audit events per second and burst, per attached policy; beyond it events are counted
    /// as suppressed. `per_second: 0` turns the limit off.
    pub audit_rate_limit: Option<RateLimit>,
    /// Rotate the audit log when it would grow past this many bytes.
    pub audit_log_max_bytes: Option<u64>,
    /// Rotated audit logs kept (`audit.log.1` ... `audit.log.N`).
    pub audit_log_keep: Option<u32>,
    /// Seconds between re-resolutions of the host names in attached policies (0: never).
    pub dns_refresh_seconds: Option<u64>,
    /// Serve Prometheus metrics on this address (`127.0.0.1:9464`); no listener when unset.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Turn on the cgroup2 mount's `favordynmods` at start, so that a `run`'s command enters
    /// its cgroup without waiting for an RCU grace period (default true; false leaves the
    /// mount as it is).
    pub cgroup_favordynmods: Option<bool>,
    /// Reuse a compiled policy for a request with the same inputs while nothing the compile
    /// read has changed (default true).
    pub compile_reuse: Option<bool>,
    /// Filesystem types (as `/proc/self/mountinfo` names them) besides the local ones
    /// (`policy::watch::LOCAL_FILESYSTEMS`) on which a compile may be reused: only ones
    /// nothing changes behind this host's back (a read-only network root), since inotify sees
    /// no change made by another client.
    pub compile_reuse_filesystems: Option<Vec<String>>,
    /// The file this was read from, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

pub const DEFAULT_AUDIT_RATE: RateLimit = RateLimit {
    per_second: 1000,
    burst: 5000,
};
pub const DEFAULT_AUDIT_LOG_MAX_BYTES: u64 = 64 << 20;
pub const DEFAULT_AUDIT_LOG_KEEP: u32 = 4;
pub const DEFAULT_DNS_REFRESH_SECONDS: u64 = 60;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Group {
    Gid(u32),
    Name(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Reads `explicit`, or the default file when it exists.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let path = explicit.unwrap_or(Path::new(DEFAULT_CONFIG));
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Config {
                source: Some(path.to_path_buf()),
                ..Self::parse(path, &text)?
            }),
            Err(e) if explicit.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        // An empty file is an empty mapping.
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?
        };
        for (field, value) in [
            ("socket", &config.socket),
            ("bpffs", &config.bpffs),
            ("audit_log", &config.audit_log),
            ("state_file", &config.state_file),
        ] {
            if value.as_ref().is_some_and(|p| !p.is_absolute()) {
                return Err(invalid(format!("{field}: must be an absolute path")));
            }
        }
        if let Some(r) = config.audit_rate_limit {
            if r.per_second > sandbox_common::MAX_AUDIT_RATE {
                return Err(invalid(format!(
                    "audit_rate_limit.per_second: at most {}",
                    sandbox_common::MAX_AUDIT_RATE
                )));
            }
            if r.per_second > 0 && r.burst == 0 {
                return Err(invalid(
                    "audit_rate_limit.burst: must be at least 1 when per_second is set".into(),
                ));
            }
        }
        if config.audit_log_max_bytes.is_some_and(|b| b < 4096) {
            return Err(invalid("audit_log_max_bytes: at least 4096".into()));
        }
        if config.metrics_listen.is_some_and(|a| a.port() == 0) {
            return Err(invalid("metrics_listen: needs a port other than 0".into()));
        }
        if let Some(g) = &config.control_group {
            g.gid()
                .map_err(|m| invalid(format!("control_group: {m}")))?;
        }
        for name in config.compile_reuse_filesystems.iter().flatten() {
            let fstype = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
            if name.is_empty() || !name.chars().all(fstype) {
                return Err(invalid(format!(
                    "compile_reuse_filesystems: {name:?} is not a filesystem type as \
                     /proc/self/mountinfo names one (9p, nfs4, fuse.sshfs)"
                )));
            }
        }
        Ok(config)
    }

    pub fn socket(&self, flag: Option<PathBuf>) -> PathBuf {
        pick(flag, &self.socket, DEFAULT_SOCKET)
    }
    pub fn bpffs(&self, flag: Option<PathBuf>) -> PathBuf {
        pick(flag, &self.bpffs, DEFAULT_BPFFS)
    }
    pub fn audit_log(&self, flag: Option<PathBuf>) -> PathBuf {
        pick(flag, &self.audit_log, DEFAULT_AUDIT_LOG)
    }
    pub fn state_file(&self, flag: Option<PathBuf>) -> PathBuf {
        pick(flag, &self.state_file, DEFAULT_STATE_FILE)
    }
    pub fn audit_rate(&self) -> sandbox_common::AuditRateLimit {
        let r = self.audit_rate_limit.unwrap_or(DEFAULT_AUDIT_RATE);
        sandbox_common::AuditRateLimit {
            per_second: r.per_second,
            burst: r.burst,
        }
    }
    pub fn audit_log_max_bytes(&self) -> u64 {
        self.audit_log_max_bytes
            .unwrap_or(DEFAULT_AUDIT_LOG_MAX_BYTES)
    }
    pub fn audit_log_keep(&self) -> u32 {
        self.audit_log_keep.unwrap_or(DEFAULT_AUDIT_LOG_KEEP)
    }
    pub fn metrics_listen(
        &self,
        flag: Option<std::net::SocketAddr>,
    ) -> Option<std::net::SocketAddr> {
        flag.or(self.metrics_listen)
    }
    pub fn cgroup_favordynmods(&self) -> bool {
        self.cgroup_favordynmods.unwrap_or(true)
    }

    /// The filesystem types on which a compile may be reused; empty when `compile_reuse` is
    /// off.
    pub fn compile_reuse(&self) -> Vec<String> {
        if self.compile_reuse == Some(false) {
            return Vec::new();
        }
        let local = crate::policy::watch::LOCAL_FILESYSTEMS
            .iter()
            .map(|n| n.to_string());
        local
            .chain(self.compile_reuse_filesystems.iter().flatten().cloned())
            .collect()
    }

    /// None: host names are resolved only at attach.
    pub fn dns_refresh(&self) -> Option<std::time::Duration> {
        match self
            .dns_refresh_seconds
            .unwrap_or(DEFAULT_DNS_REFRESH_SECONDS)
        {
            0 => None,
            s => Some(std::time::Duration::from_secs(s)),
        }
    }
}

fn pick(flag: Option<PathBuf>, configured: &Option<PathBuf>, default: &str) -> PathBuf {
    flag.or_else(|| configured.clone())
        .unwrap_or_else(|| PathBuf::from(default))
}

impl Group {
    /// The numeric gid; a name must exist in the group database.
    pub fn gid(&self) -> Result<u32, String> {
        match self {
            Group::Gid(g) => Ok(*g),
            Group::Name(name) => lookup_group(name),
        }
    }
}

fn lookup_group(name: &str) -> Result<u32, String> {
    crate::nss::group_id(name)
        .map_err(|e| format!("cannot look up group {name:?}: {e}"))?
        .ok_or_else(|| format!("no group named {name:?} on this host"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let c = Config::parse(
            Path::new("c.yaml"),
            "socket: /run/x.sock\ncontrol_group: 4242\n",
        )
        .unwrap();
        assert_eq!(c.socket(None), PathBuf::from("/run/x.sock"));
        assert_eq!(c.socket(Some("/s".into())), PathBuf::from("/s"));
        assert_eq!(c.bpffs(None), PathBuf::from(DEFAULT_BPFFS));
        assert_eq!(c.control_group.unwrap().gid(), Ok(4242));
    }

    #[test]
    fn mistakes_name_the_file_and_the_field() {
        let e = Config::parse(Path::new("c.yaml"), "sokcet: /x\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config c.yaml: unknown field `sokcet`"),
            "{e}"
        );
        let e = Config::parse(Path::new("c.yaml"), "audit_log: log.txt\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "config c.yaml: audit_log: must be an absolute path"
        );
        let e = Config::parse(
            Path::new("c.yaml"),
            "audit_rate_limit: {per_second: 5000000, burst: 1}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("at most 1000000"), "{e}");
        let e =
            Config::parse(Path::new("c.yaml"), "control_group: no-such-group-xyz\n").unwrap_err();
        assert!(e.to_string().contains("no group named"), "{e}");
    }

    #[test]
    fn metrics_listen_is_an_address_with_a_port() {
        let c = Config::parse(Path::new("c.yaml"), "metrics_listen: 127.0.0.1:9464\n").unwrap();
        assert_eq!(
            c.metrics_listen(None),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(
            c.metrics_listen(Some("[::1]:1".parse().unwrap())),
            Some("[::1]:1".parse().unwrap())
        );
        let e = Config::parse(Path::new("c.yaml"), "metrics_listen: 127.0.0.1:0\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "config c.yaml: metrics_listen: needs a port other than 0"
        );
        let e = Config::parse(Path::new("c.yaml"), "metrics_listen: localhost\n").unwrap_err();
        assert!(e.to_string().contains("metrics_listen"), "{e}");
    }

    #[test]
    fn favordynmods_is_turned_on_unless_the_config_says_false() {
        assert!(Config::default().cgroup_favordynmods());
        assert!(Config::default()
            .compile_reuse()
            .contains(&"ext4".to_string()));
        let c = Config::parse(Path::new("c.yaml"), "compile_reuse_filesystems: [9p]\n").unwrap();
        assert!(c.compile_reuse().contains(&"9p".to_string()));
        let c = Config::parse(Path::new("c.yaml"), "compile_reuse: false\n").unwrap();
        assert!(c.compile_reuse().is_empty());
        let e = Config::parse(
            Path::new("c.yaml"),
            "compile_reuse_filesystems: [\"a b\"]\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("\"a b\" is not a filesystem type"),
            "{e}"
        );
        let c = Config::parse(Path::new("c.yaml"), "cgroup_favordynmods: false\n").unwrap();
        assert!(!c.cgroup_favordynmods());
        let e = Config::parse(Path::new("c.yaml"), "cgroup_favordynmods: maybe\n").unwrap_err();
        assert!(e.to_string().contains("cgroup_favordynmods"), "{e}");
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let text = include_str!("../packaging/config.yaml");
        let c = Config::parse(Path::new("packaging/config.yaml"), text).unwrap();
        assert_eq!(c.state_file(None), PathBuf::from(DEFAULT_STATE_FILE));
        assert_eq!(c.socket(None), PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn group_names_resolve_and_a_missing_default_file_is_no_config() {
        assert_eq!(Group::Name("root".into()).gid(), Ok(0));
        assert!(Config::load(None).is_ok() || Path::new(DEFAULT_CONFIG).exists());
        assert!(Config::load(Some(Path::new("/nonexistent/c.yaml"))).is_err());
    }
}
