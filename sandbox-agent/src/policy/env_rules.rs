//! The `env` section: which variables `run` takes out of the confined command's environment.
//!
//! The kernel programs cannot see an environment, and a running process's cannot be changed, so
//! these rules act once, when `run` starts the command. What they protect stays protected
//! afterwards because a confined task cannot read the environment of a process outside its
//! sandbox (`/proc/PID/environ` needs the ptrace access the programs refuse).

use std::ffi::OsString;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvRules {
    /// Name patterns removed from the environment: shell-style globs (`*`, `?`, `[...]`),
    /// matched without regard to case, so `*token*` also takes `GitHub_Token`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Exact names kept even when a deny pattern matches them (the agent's own model key).
    #[serde(default)]
    pub allow: Vec<String>,
}

/// Glob options for names: case-insensitive, and `/` is an ordinary character.
const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: false,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

impl EnvRules {
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty()
    }

    /// The deny pattern that removes `name`, unless `allow` keeps it.
    pub fn removes(&self, name: &str) -> Option<&str> {
        if self.allow.iter().any(|a| a == name) {
            return None;
        }
        self.deny
            .iter()
            .find(|p| glob::Pattern::new(p).is_ok_and(|g| g.matches_with(name, MATCH)))
            .map(String::as_str)
    }

    /// Splits `vars` into the environment to give the command and the variables taken out
    /// (name, value). A name that is not UTF-8 is matched on its lossy form, so it cannot slip
    /// past a pattern.
    #[allow(clippy::type_complexity)]
    pub fn filter(
        &self,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> (Vec<(OsString, OsString)>, Vec<(String, OsString)>) {
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        for (name, value) in vars {
            let shown = name.to_string_lossy().into_owned();
            if self.removes(&shown).is_some() {
                removed.push((shown, value));
            } else {
                kept.push((name, value));
            }
        }
        (kept, removed)
    }
}

/// The Unix sockets that variables taken out of the environment name (`SSH_AUTH_SOCK`): the
/// command must not find and use them either. A value counts when it is an absolute path to an
/// existing socket.
pub fn sockets_named(removed: &[(String, OsString)]) -> Vec<std::path::PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    removed
        .iter()
        .map(|(_, value)| std::path::PathBuf::from(value))
        .filter(|p| p.is_absolute())
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket()))
        .collect()
}

/// Why a deny pattern is not usable, if it is not.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("empty pattern".into());
    }
    if pattern.contains('=') || pattern.contains('\0') {
        return Err(format!(
            "{pattern:?}: a variable name cannot contain '=' or NUL"
        ));
    }
    glob::Pattern::new(pattern)
        .map(|_| ())
        .map_err(|e| format!("{pattern:?} is not a valid pattern: {e}"))
}

/// Why an allowed name is not a variable name, if it is not.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(['=', '\0']) || name.contains(['*', '?', '[']) {
        return Err(format!(
            "{name:?}: write a variable's exact name (no '=', NUL or pattern characters)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(deny: &[&str], allow: &[&str]) -> EnvRules {
        EnvRules {
            deny: deny.iter().map(|s| s.to_string()).collect(),
            allow: allow.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn vars(names: &[&str]) -> Vec<(OsString, OsString)> {
        names
            .iter()
            .map(|n| (OsString::from(n), OsString::from("secret-value")))
            .collect()
    }

    #[test]
    fn patterns_match_whatever_the_case_and_allow_keeps_exact_names() {
        let r = rules(&["*TOKEN*", "AWS_*", "*_API_KEY"], &["ANTHROPIC_API_KEY"]);
        assert_eq!(r.removes("GITHUB_TOKEN"), Some("*TOKEN*"));
        assert_eq!(r.removes("github_token"), Some("*TOKEN*"));
        assert_eq!(r.removes("AWS_SECRET_ACCESS_KEY"), Some("AWS_*"));
        assert_eq!(r.removes("OPENAI_API_KEY"), Some("*_API_KEY"));
        assert_eq!(r.removes("ANTHROPIC_API_KEY"), None, "named in allow");
        assert_eq!(
            r.removes("anthropic_api_key"),
            Some("*_API_KEY"),
            "allow is exact"
        );
        assert_eq!(r.removes("PATH"), None);
        assert_eq!(r.removes("HOME"), None);
    }

    #[test]
    fn filter_lists_removed_names_never_values() {
        let r = rules(&["*SECRET*"], &[]);
        let (kept, removed) = r.filter(vars(&["PATH", "MY_SECRET", "HOME"]));
        let kept: Vec<_> = kept.into_iter().map(|(k, _)| k).collect();
        assert_eq!(kept, [OsString::from("PATH"), OsString::from("HOME")]);
        let names: Vec<&str> = removed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["MY_SECRET"]);
    }

    #[test]
    fn only_values_that_are_existing_sockets_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let _l = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        let removed = [
            ("SSH_AUTH_SOCK".to_string(), socket.clone().into_os_string()),
            ("A_SECRET".to_string(), file.into_os_string()),
            ("B_TOKEN".to_string(), OsString::from("relative.sock")),
            ("C_TOKEN".to_string(), OsString::from("ghp_x")),
        ];
        assert_eq!(sockets_named(&removed), [socket]);
    }

    #[test]
    fn a_name_that_is_not_utf8_is_still_matched() {
        use std::os::unix::ffi::OsStringExt;
        let r = rules(&["*TOKEN*"], &[]);
        let name = OsString::from_vec(b"X\xffTOKEN".to_vec());
        let (kept, removed) = r.filter([(name, OsString::from("v"))]);
        assert!(kept.is_empty());
        assert_eq!(removed.len(), 1);
    }

    #[test]
    fn bad_patterns_and_names_are_refused() {
        assert!(check_pattern("").is_err());
        assert!(check_pattern("A=B").is_err());
        assert!(check_pattern("[AB").is_err());
        assert!(check_pattern("*_TOKEN").is_ok());
        assert!(check_name("GITHUB_TOKEN").is_ok());
        assert!(check_name("GITHUB_*").is_err());
        assert!(check_name("").is_err());
    }

    /// The shipped policy takes out what runners carry and keeps what a working day needs.
    #[test]
    fn the_default_policy_removes_runner_credentials_and_keeps_the_working_environment() {
        let text = include_str!("../../../policies/default.yaml");
        let env = crate::policy::parse("default.yaml", text).unwrap().env;
        let removed = [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AZURE_CLIENT_SECRET",
            "ARM_CLIENT_SECRET",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "CLOUDSDK_AUTH_ACCESS_TOKEN",
            "GITHUB_TOKEN",
            "GH_TOKEN",
            "GITLAB_TOKEN",
            "CI_JOB_TOKEN",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "NPM_TOKEN",
            "NODE_AUTH_TOKEN",
            "NPM_CONFIG__AUTH",
            "TWINE_PASSWORD",
            "PYPI_API_TOKEN",
            "CARGO_REGISTRY_TOKEN",
            "CARGO_REGISTRIES_MINE_TOKEN",
            "DOCKER_PASSWORD",
            "DOCKER_AUTH_CONFIG",
            "DATABASE_URL",
            "TEST_DATABASE_URL",
            "PGPASSWORD",
            "MYSQL_PWD",
            "REDIS_URL",
            "MONGODB_URI",
            "SENTRY_DSN",
            "SLACK_WEBHOOK_URL",
            "STRIPE_SECRET_KEY",
            "HF_TOKEN",
            "VAULT_TOKEN",
            "SSH_AUTH_SOCK",
            "github_token",
        ];
        for name in removed {
            assert!(env.removes(name).is_some(), "{name} passes through");
        }
        let kept = [
            "PATH",
            "HOME",
            "USER",
            "SHELL",
            "LANG",
            "TERM",
            "PWD",
            "OLDPWD",
            "TMPDIR",
            "XDG_RUNTIME_DIR",
            "GIT_AUTHOR_NAME",
            "GIT_AUTHOR_EMAIL",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "VIRTUAL_ENV",
            "NODE_OPTIONS",
            "LD_LIBRARY_PATH",
            "CI",
            "GITHUB_WORKSPACE",
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
        ];
        for name in kept {
            assert_eq!(env.removes(name), None, "{name} is taken out");
        }
    }
}
