//! `sandbox-agent oci-hook`: an OCI runtime hook (podman, CRI-O, containerd with NRI-less
//! hooks) that attaches a policy to a container before its process runs anything. Installed for
//! the `createRuntime` stage, it reads the container's state from stdin, finds the container's
//! cgroup from its init process, and attaches the policy its annotations name:
//!
//! - `sandbox-agent.policy`: the policy file, a path on the host (required);
//! - `sandbox-agent.home`, `sandbox-agent.workspace`: `~` and `$WORKSPACE`, as paths inside the
//!   container, taken through its root filesystem (the bundle's `root.path`).
//!
//! Any failure exits non-zero, and the runtime then refuses to start the container: a container
//! that asked for a policy never runs without it. Every start of the container (a restart too)
//! runs the hook again, so every new cgroup is attached before its first instruction.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::Deserialize;

use crate::policy::Anchors;

pub const POLICY_ANNOTATION: &str = "sandbox-agent.policy";
pub const HOME_ANNOTATION: &str = "sandbox-agent.home";
pub const WORKSPACE_ANNOTATION: &str = "sandbox-agent.workspace";

/// The state a runtime passes to a hook (OCI runtime spec, "State").
#[derive(Debug, Deserialize)]
pub struct State {
    pub id: String,
    pub pid: Option<i32>,
    pub bundle: PathBuf,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// The part of the bundle's `config.json` the hook reads.
#[derive(Debug, Deserialize)]
struct BundleConfig {
    root: Root,
}

#[derive(Debug, Deserialize)]
struct Root {
    path: PathBuf,
}

/// What to attach for one container: the cgroup of its init process, the policy, the anchors.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub cgroup: PathBuf,
    pub policy: PathBuf,
    pub anchors: Anchors,
}

/// The plan for `state`; None when the container names no policy (the hook has nothing to do).
pub fn plan(state: &State) -> anyhow::Result<Option<Plan>> {
    let Some(policy) = state.annotations.get(POLICY_ANNOTATION) else {
        return Ok(None);
    };
    let policy = PathBuf::from(policy);
    if !policy.is_absolute() {
        bail!(
            "{POLICY_ANNOTATION}={}: must be an absolute path on the host",
            policy.display()
        );
    }
    let Some(pid) = state.pid.filter(|p| *p > 0) else {
        bail!("container {}: the runtime passed no process id", state.id);
    };
    let config = state.bundle.join("config.json");
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let bundle: BundleConfig = serde_json::from_str(&text)
        .with_context(|| format!("{}: no root.path", config.display()))?;
    let rootfs = state.bundle.join(&bundle.root.path);
    let inside = |name: &str| -> anyhow::Result<Option<PathBuf>> {
        let Some(path) = state.annotations.get(name) else {
            return Ok(None);
        };
        let Ok(relative) = Path::new(path).strip_prefix("/") else {
            bail!("{name}={path}: must be an absolute path inside the container");
        };
        Ok(Some(rootfs.join(relative)))
    };
    let home = inside(HOME_ANNOTATION)?.unwrap_or_else(|| rootfs.join("root"));
    let workspace = inside(WORKSPACE_ANNOTATION)?;
    let cgroup = crate::cgroup::cgroup_of_pid(pid).with_context(|| {
        format!(
            "container {}: cannot read the cgroup of pid {pid}",
            state.id
        )
    })?;
    Ok(Some(Plan {
        cgroup,
        policy,
        anchors: Anchors { home, workspace },
    }))
}

/// Reads the state from stdin and attaches; the runtime shows what this prints on failure.
pub fn run(socket: &Path) -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .context("cannot read the container state from stdin")?;
    let state: State =
        serde_json::from_str(&text).context("stdin is not an OCI container state")?;
    let Some(plan) = plan(&state)? else {
        return Ok(());
    };
    let source = super::attach::read_policy(&plan.policy)?;
    let info = super::attach::attach(socket, &plan.cgroup, &source, &plan.anchors, false)
        .with_context(|| format!("container {}: policy not attached", state.id))?;
    eprintln!(
        "sandbox-agent: container {}: policy {:?} attached to {}",
        state.id,
        info.policy,
        info.cgroup.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(bundle: &Path, annotations: &[(&str, &str)]) -> State {
        State {
            id: "c1".into(),
            pid: Some(std::process::id() as i32),
            bundle: bundle.to_path_buf(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn annotations_name_the_policy_and_container_paths_through_its_root() {
        let bundle = tempfile::tempdir().unwrap();
        std::fs::write(
            bundle.path().join("config.json"),
            r#"{"ociVersion": "1.0.2", "root": {"path": "/var/lib/c/merged"}}"#,
        )
        .unwrap();
        let s = state(
            bundle.path(),
            &[
                (POLICY_ANNOTATION, "/etc/sandbox-agent/agent.yaml"),
                (WORKSPACE_ANNOTATION, "/work"),
            ],
        );
        let plan = plan(&s).unwrap().unwrap();
        assert_eq!(plan.policy, PathBuf::from("/etc/sandbox-agent/agent.yaml"));
        assert_eq!(plan.anchors.home, PathBuf::from("/var/lib/c/merged/root"));
        assert_eq!(
            plan.anchors.workspace,
            Some(PathBuf::from("/var/lib/c/merged/work"))
        );
        assert_eq!(
            plan.cgroup,
            crate::cgroup::cgroup_of_pid(std::process::id() as i32).unwrap()
        );
    }

    #[test]
    fn no_policy_annotation_is_nothing_to_do_and_mistakes_are_errors() {
        let bundle = tempfile::tempdir().unwrap();
        assert_eq!(plan(&state(bundle.path(), &[])).unwrap(), None);
        let e = plan(&state(bundle.path(), &[(POLICY_ANNOTATION, "agent.yaml")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("must be an absolute path on the host"),
            "{e}"
        );
        let e = plan(&state(bundle.path(), &[(POLICY_ANNOTATION, "/p.yaml")])).unwrap_err();
        assert!(e.to_string().contains("config.json"), "{e:#}");
    }
}
