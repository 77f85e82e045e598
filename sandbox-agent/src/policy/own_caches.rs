//! `own_caches`: the package and build caches the developer's later builds take unverified
//! (cargo runs an extracted crate's `build.rs`, Go compiles its module cache and reuses its
//! build cache's objects, pip and uv install the wheels they built, npx runs the packages in
//! `~/.npm/_npx`, pre-commit its hook environments, ccache and sccache return their objects).
//! A confined command that writes one of them leaves code for the developer's next build. For
//! each tool listed, the compile denies changing the developer's caches, and `run` points the
//! tool at caches of the sandbox's own (its environment variable), which only confined
//! commands use.

use std::{
    ffi::{CStr, CString, OsString},
    io,
    os::{
        fd::{FromRawFd, OwnedFd, RawFd},
        unix::ffi::OsStrExt,
    },
    path::{Component, Path, PathBuf},
};

use super::anchors::Anchors;

/// One tool's caches.
pub struct OwnCache {
    /// As listed in `own_caches`.
    pub tool: &'static str,
    /// The variables that move the tool's caches, each with its directory below the sandbox's
    /// own caches (`own_dir`).
    pub env: &'static [(&'static str, &'static str)],
    /// The developer's caches, where the tool keeps them by default.
    pub developers: &'static [&'static str],
    /// The variables that move the developer's caches from there, each with the cache's path
    /// below its value (empty: the value is the cache).
    pub moved_by: &'static [(&'static str, &'static str)],
}

/// Every tool `own_caches` knows.
pub const CACHES: &[OwnCache] = &[
    OwnCache {
        tool: "cargo",
        // CARGO_HOME moves the registry and git caches (and `cargo install`'s bin). Its
        // config.toml is not there: cargo still reads the developer's `~/.cargo/config.toml`
        // for a project below `~` (it reads every `.cargo/config.toml` above the project).
        env: &[("CARGO_HOME", "cargo")],
        developers: &["~/.cargo/registry", "~/.cargo/git"],
        moved_by: &[("CARGO_HOME", "registry"), ("CARGO_HOME", "git")],
    },
    OwnCache {
        tool: "go",
        env: &[("GOMODCACHE", "go/mod"), ("GOCACHE", "go/build")],
        developers: &["~/go/pkg/mod", "~/.cache/go-build"],
        moved_by: &[
            ("GOMODCACHE", ""),
            ("GOPATH", "pkg/mod"),
            ("GOCACHE", ""),
            ("XDG_CACHE_HOME", "go-build"),
        ],
    },
    OwnCache {
        tool: "pip",
        env: &[("PIP_CACHE_DIR", "pip")],
        developers: &["~/.cache/pip"],
        moved_by: &[("PIP_CACHE_DIR", ""), ("XDG_CACHE_HOME", "pip")],
    },
    OwnCache {
        tool: "uv",
        env: &[("UV_CACHE_DIR", "uv")],
        developers: &["~/.cache/uv"],
        moved_by: &[("UV_CACHE_DIR", ""), ("XDG_CACHE_HOME", "uv")],
    },
    OwnCache {
        tool: "npm",
        // npm takes its settings from the environment without regard to case: both spellings,
        // so a runner's NPM_CONFIG_CACHE cannot win over the sandbox's.
        env: &[("npm_config_cache", "npm"), ("NPM_CONFIG_CACHE", "npm")],
        developers: &["~/.npm"],
        moved_by: &[("npm_config_cache", ""), ("NPM_CONFIG_CACHE", "")],
    },
    OwnCache {
        tool: "pre-commit",
        env: &[("PRE_COMMIT_HOME", "pre-commit")],
        developers: &["~/.cache/pre-commit"],
        moved_by: &[("PRE_COMMIT_HOME", ""), ("XDG_CACHE_HOME", "pre-commit")],
    },
    OwnCache {
        tool: "ccache",
        env: &[("CCACHE_DIR", "ccache")],
        developers: &["~/.cache/ccache", "~/.ccache"],
        moved_by: &[("CCACHE_DIR", ""), ("XDG_CACHE_HOME", "ccache")],
    },
    OwnCache {
        tool: "sccache",
        env: &[("SCCACHE_DIR", "sccache")],
        developers: &["~/.cache/sccache"],
        moved_by: &[("SCCACHE_DIR", ""), ("XDG_CACHE_HOME", "sccache")],
    },
];

/// The tool named `name`, if `own_caches` knows it.
pub fn cache(name: &str) -> Option<&'static OwnCache> {
    CACHES.iter().find(|c| c.tool == name)
}

/// The tools `listed` names (validated names), in its order.
fn listed_caches(listed: &[String]) -> impl Iterator<Item = &'static OwnCache> + '_ {
    listed.iter().filter_map(|name| cache(name))
}

/// The names `own_caches` accepts, for error messages.
pub fn known() -> String {
    CACHES.iter().map(|c| c.tool).collect::<Vec<_>>().join(", ")
}

/// Where the sandbox's own caches are, below the home its paths are resolved against: in `~`,
/// which confined commands may write, and in no directory the developer's tools read.
pub fn own_dir(home: &Path) -> PathBuf {
    home.join(".cache/sandbox-agent/own-caches")
}

/// Makes `dir`, one of `environment`'s, as the runner (`run`, unconfined). `~/.cache` is taken
/// as it is (the developer may have made it a symlink); below it no symlink is followed: a
/// confined command of an earlier run could have replaced a directory of its own caches with
/// one, to have the runner make directories where it points.
pub fn make_own(home: &Path, dir: &Path) -> io::Result<()> {
    let base = home.join(".cache");
    let below = dir.strip_prefix(&base).map_err(|_| {
        io::Error::other(format!("{} is not below {}", dir.display(), base.display()))
    })?;
    std::fs::create_dir_all(&base)?;
    let mut at = open_at(
        libc::AT_FDCWD,
        &CString::new(base.as_os_str().as_bytes())?,
        libc::O_DIRECTORY,
    )?;
    for component in below.components() {
        let Component::Normal(name) = component else {
            return Err(io::Error::other(format!(
                "{} is not a plain path",
                dir.display()
            )));
        };
        let name = CString::new(name.as_bytes())?;
        // SAFETY: mkdirat with a live directory descriptor and a NUL-terminated name.
        if unsafe { libc::mkdirat(raw(&at), name.as_ptr(), 0o755) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e);
            }
        }
        at = open_at(raw(&at), &name, libc::O_NOFOLLOW | libc::O_DIRECTORY).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{} is not a directory of the sandbox's own caches (a symlink?): {e}",
                    dir.display()
                ),
            )
        })?;
    }
    Ok(())
}

fn raw(fd: &OwnedFd) -> RawFd {
    std::os::fd::AsRawFd::as_raw_fd(fd)
}

/// `openat(at, path, O_PATH | O_CLOEXEC | flags)`.
fn open_at(at: RawFd, path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: openat with a NUL-terminated path; the result is checked before it is owned.
    let fd = unsafe { libc::openat(at, path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor openat just returned, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The developer's caches of the tools `listed` names (validated names), as rule paths.
pub fn developers(listed: &[String]) -> impl Iterator<Item = &'static str> + '_ {
    listed_caches(listed).flat_map(|c| c.developers.iter().copied())
}

/// The names of the variables that move the caches of the tools `listed` names.
pub fn variables(listed: &[String]) -> Vec<&'static str> {
    listed_caches(listed)
        .flat_map(|c| c.env.iter().map(|(var, _)| *var))
        .collect()
}

/// The developer's caches of the tools `listed` names that the runner's variables (`vars`)
/// moved from their default places: `run` asks the daemon to deny them too. Only absolute
/// values count (a tool takes a relative one from its working directory); GOPATH's first
/// entry holds the module cache.
pub fn moved(listed: &[String], vars: &[(OsString, OsString)], home: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let developers = Anchors::home(home);
    for c in listed_caches(listed) {
        for (var, below) in c.moved_by {
            let Some((_, value)) = vars.iter().find(|(name, _)| name == var) else {
                continue;
            };
            let Some(first) = value.to_str().and_then(|v| v.split(':').next()) else {
                continue;
            };
            let dir = Path::new(first);
            if !dir.is_absolute() {
                continue;
            }
            let cache = if below.is_empty() {
                dir.to_path_buf()
            } else {
                dir.join(below)
            };
            let default = c
                .developers
                .iter()
                .any(|d| developers.expand(d).is_ok_and(|d| d == cache));
            if !default && !out.contains(&cache) {
                out.push(cache);
            }
        }
    }
    out
}

/// The variables `run` sets for the tools `listed` names: each to its directory below
/// `own_dir(home)`.
pub fn environment(listed: &[String], home: &Path) -> Vec<(OsString, PathBuf)> {
    let own = own_dir(home);
    listed_caches(listed)
        .flat_map(|c| c.env.iter())
        .map(|(var, dir)| (OsString::from(var), own.join(dir)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tool_moves_its_caches_out_of_the_developers() {
        let listed: Vec<String> = CACHES.iter().map(|c| c.tool.to_string()).collect();
        let home = Path::new("/home/dev");
        let env = environment(&listed, home);
        for (var, dir) in &env {
            assert!(dir.starts_with(own_dir(home)), "{var:?}");
            for theirs in developers(&listed) {
                let theirs = home.join(theirs.trim_start_matches("~/"));
                assert!(!dir.starts_with(&theirs), "{var:?} is in {theirs:?}");
            }
        }
        let vars: Vec<_> = env.iter().map(|(v, _)| v.to_str().unwrap()).collect();
        assert!(
            vars.contains(&"CARGO_HOME") && vars.contains(&"GOCACHE"),
            "{vars:?}"
        );
        assert_eq!(
            developers(&["go".to_string()]).collect::<Vec<_>>(),
            ["~/go/pkg/mod", "~/.cache/go-build"]
        );
        assert!(cache("maven").is_none());
    }

    #[test]
    fn the_runner_makes_its_own_caches_and_follows_no_symlink_below_the_cache() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path();
        let listed = vec!["go".to_string()];
        for (_, dir) in environment(&listed, home) {
            make_own(home, &dir).unwrap();
            assert!(dir.is_dir());
            make_own(home, &dir).unwrap();
        }
        // An earlier confined command replaced its own caches by a symlink elsewhere.
        let elsewhere = home.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::remove_dir_all(own_dir(home)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, own_dir(home)).unwrap();
        for (_, dir) in environment(&listed, home) {
            let e = make_own(home, &dir).unwrap_err();
            assert!(e.to_string().contains("a symlink?"), "{e}");
        }
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[test]
    fn caches_the_developers_variables_moved_are_found() {
        let vars = |pairs: &[(&str, &str)]| -> Vec<(OsString, OsString)> {
            pairs
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect()
        };
        let home = Path::new("/home/dev");
        let listed: Vec<String> = ["go", "pip", "cargo"].map(String::from).to_vec();
        let found = moved(
            &listed,
            &vars(&[
                ("GOPATH", "/srv/gopath:/other"),
                ("XDG_CACHE_HOME", "/data/cache"),
                ("PIP_CACHE_DIR", "relative/pip"),
                ("CARGO_HOME", "/home/dev/.cargo"),
                ("UV_CACHE_DIR", "/uv"),
            ]),
            home,
        );
        // GOPATH's first entry; XDG_CACHE_HOME for Go's build cache and pip; not a relative
        // value, not the default places, not a tool the policy does not list.
        assert_eq!(
            found,
            [
                PathBuf::from("/srv/gopath/pkg/mod"),
                PathBuf::from("/data/cache/go-build"),
                PathBuf::from("/data/cache/pip"),
            ]
        );
    }
}
