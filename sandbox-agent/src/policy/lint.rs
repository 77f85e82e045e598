//! Warnings about policies that validate but are probably wrong: rules so broad the confined
//! command could not run, and rules that contradict each other. `policy check` reports them with
//! file and line; `attach` prints them and attaches anyway (the policy says what it says).

use std::path::{Component, Path, PathBuf};

use super::{
    schema::{field_line, item_line},
    Policy, PolicyError,
};

/// System trees every program needs: denying them stops the command itself.
const SYSTEM_TREES: &[&str] = &[
    "/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/dev", "/proc",
];

pub fn lint(file: &str, text: &str, policy: &Policy) -> Vec<PolicyError> {
    let mut out = Vec::new();
    let mut warn = |key: &str, i: Option<usize>, entry: &str, message: String| {
        let (field, line) = match i {
            Some(i) => (format!("{key}[{i}]"), item_line(text, key, entry)),
            None => (key.to_string(), field_line(text, key).unwrap_or(0)),
        };
        out.push(PolicyError {
            file: file.to_string(),
            line,
            field,
            message: format!("warning: {message}"),
        });
    };
    for key in ["deny_read", "deny_exec"] {
        let list = if key == "deny_read" {
            &policy.deny_read
        } else {
            &policy.deny_exec
        };
        for (i, entry) in list.iter().enumerate() {
            let path = lexical(entry);
            if SYSTEM_TREES.iter().any(|t| path == Path::new(t)) {
                warn(
                    key,
                    Some(i),
                    entry,
                    format!("{entry:?} is a system tree every program needs: the confined command could not run"),
                );
            } else if key == "deny_read" && entry.trim_end_matches('/') == "~" {
                warn(
                    key,
                    Some(i),
                    entry,
                    "the whole home directory: shells and tools read their configuration there"
                        .into(),
                );
            }
        }
    }
    if let Some(allow) = &policy.allow_exec {
        if allow.is_empty() {
            warn(
                "allow_exec",
                None,
                "",
                "empty: nothing may be executed, not even the confined command".into(),
            );
        } else if !allow
            .iter()
            .any(|a| Path::new("/usr/lib").starts_with(lexical(a)))
        {
            warn(
                "allow_exec",
                None,
                "",
                "does not cover /usr/lib: the dynamic loader and shared libraries of dynamically linked programs cannot be mapped".into(),
            );
        }
        for (i, entry) in allow.iter().enumerate() {
            let path = lexical(entry);
            if let Some(denied) = policy
                .deny_exec
                .iter()
                .find(|d| path.starts_with(lexical(d)))
            {
                warn(
                    "allow_exec",
                    Some(i),
                    entry,
                    format!("inside deny_exec {denied:?}, which wins: this entry allows nothing"),
                );
            }
        }
    }
    out
}

/// The path with `.` and `..` resolved lexically and no trailing slash (`~` kept as written).
fn lexical(entry: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(entry).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse;

    fn lints(yaml: &str) -> Vec<String> {
        let p = parse("p.yaml", yaml).unwrap();
        lint("p.yaml", yaml, &p)
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn a_sane_policy_has_no_warnings() {
        assert_eq!(
            lints("name: a\ndeny_read: [~/.ssh, /etc/shadow]\nallow_exec: [/usr]\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn system_trees_and_the_whole_home_are_flagged_with_their_line() {
        let w = lints("name: a\ndeny_read:\n  - ~/.ssh\n  - /usr/\n  - ~\ndeny_exec:\n  - /\n");
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].starts_with("p.yaml:4: deny_read[1]: warning: \"/usr/\" is a system tree"));
        assert!(w[1].starts_with("p.yaml:5: deny_read[2]: warning: the whole home"));
        assert!(w[2].starts_with("p.yaml:7: deny_exec[0]: warning:"));
    }

    #[test]
    fn contradictions_and_unusable_allowlists_are_flagged() {
        let w =
            lints("name: a\ndeny_exec: [/opt/tools]\nallow_exec:\n  - /usr\n  - /opt/tools/bin\n");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("allow_exec[1]: warning: inside deny_exec \"/opt/tools\""));
        let w = lints("name: a\nallow_exec: []\n");
        assert!(w[0].contains("allow_exec: warning: empty"), "{w:?}");
        let w = lints("name: a\nallow_exec: [/opt/agent]\n");
        assert!(w[0].contains("does not cover /usr/lib"), "{w:?}");
    }
}
