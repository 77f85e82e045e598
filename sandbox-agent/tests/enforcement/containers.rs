//! A running podman container confined by its ID (`attach --container`): an image built on the
//! spot from a local root filesystem, storage on tmpfs, no network. With the shipped default
//! policy attached, the secrets in its image are denied inside it, through its overlay root
//! filesystem, and so is a host directory bound into it below its `~` (a mount only its own
//! namespace shows), while its ordinary work goes on; `detach --container` lets them through
//! again.

use std::{
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::harness::*;

const DEFAULT_POLICY: &str = include_str!("../../../policies/default.yaml");

/// podman with its storage on the guest's tmpfs, cgroups made directly (no systemd in the VM).
/// The storage is below /tmp, which the default policy's `allow_write` lists, so the
/// container's root filesystem, mounted there, is listed with it (a host's storage is below
/// /var/lib, which no allow_write of the default policy lists).
fn podman(args: &[&str]) -> Output {
    std::fs::create_dir_all("/tmp/podman/tmp").unwrap();
    Command::new("podman")
        .env("TMPDIR", "/tmp/podman/tmp")
        .args([
            "--tmpdir",
            "/tmp/podman/tmp",
            // /etc/containers is on the host's read-only share in the VM.
            "--network-config-dir",
            "/tmp/podman/networks",
            "--root",
            "/tmp/podman/root",
            "--runroot",
            "/tmp/podman/run",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--storage-driver",
            "overlay",
        ])
        .args(args)
        .output()
        .unwrap()
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert_succeeded(&out, &format!("podman {args:?}"));
    stdout(&out).trim().to_string()
}

fn assert_succeeded(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A root filesystem of a static busybox, a home with a key and a workspace with a `.env`,
/// imported as an image.
fn image(dir: &Path) -> &'static str {
    let root = dir.join("rootfs");
    for d in ["bin", "root/.ssh", "work", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for tool in ["sh", "cat", "echo", "sleep", "ls"] {
        symlink("busybox", root.join("bin").join(tool)).unwrap();
    }
    write(&root.join("root/.ssh/id_ed25519"), "image key\n");
    write(&root.join("work/.env"), "DATABASE_URL=postgres://secret\n");
    write(&root.join("work/main.c"), "int main(void) { return 0; }\n");
    let tar = dir.join("rootfs.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert_succeeded(&out, "tar");
    podman_ok(&[
        "import",
        tar.to_str().unwrap(),
        "localhost/sandbox-agent-test:latest",
    ]);
    "localhost/sandbox-agent-test:latest"
}

/// The container's work, in rounds the test starts by creating `/work/go-<round>`: read its
/// key and its workspace's `.env`, plant an `authorized_keys`, do ordinary work; each step's
/// status goes to `/work/result-<round>`, its errors to `/work/err-<round>`. (`podman exec`
/// cannot be used here: in the VM's chroot a process joining the container's mount namespace
/// lands in the initramfs root, not the container's.)
const WORKLOAD: &str = r#"
for round in before attached detached; do
    while [ ! -e /work/go-$round ]; do sleep 0.05; done
    {
        cat /root/.ssh/id_ed25519 >/dev/null 2>>/work/err-$round; echo "key=$?"
        cat /work/.env >/dev/null 2>>/work/err-$round; echo "env=$?"
        cat /root/.aws/credentials >/dev/null 2>>/work/err-$round; echo "mounted=$?"
        { echo planted >> /root/.ssh/authorized_keys; } 2>>/work/err-$round; echo "plant=$?"
        { echo x > /tmp/t-$round && echo x > /var/tmp/v-$round; } 2>>/work/err-$round; echo "tmp=$?"
        cat /work/main.c >/dev/null && echo built > /work/out-$round && cat /work/out-$round >/dev/null
        echo "work=$?"
    } > /work/result-$round.part
    mv /work/result-$round.part /work/result-$round
done
exec sleep 3600
"#;

/// Starts round `round` of the workload in the container whose root is `merged`; returns each
/// step's exit status and what the steps printed to stderr.
fn round(merged: &Path, round: &str) -> (Vec<(String, i32)>, String) {
    let work = merged.join("work");
    write(&work.join(format!("go-{round}")), "");
    let result = work.join(format!("result-{round}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !result.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the container did not finish round {round}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&result).unwrap();
    let steps: Vec<(String, i32)> = text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect();
    let errors = std::fs::read_to_string(work.join(format!("err-{round}"))).unwrap_or_default();
    assert!(
        !steps.is_empty(),
        "round {round}: {text:?}, errors {errors:?}"
    );
    (steps, errors)
}

fn status(steps: &[(String, i32)], name: &str) -> i32 {
    steps
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {name} in {steps:?}"))
}

fn attach_container(id: &str, policy: &Path, home: &Path, workspace: &Path) -> Output {
    agent()
        .args(["attach", "--container", id, "--policy"])
        .arg(policy)
        .arg("--home")
        .arg(home)
        .arg("--workspace")
        .arg(workspace)
        .output()
        .unwrap()
}

#[test]
fn a_container_attached_by_id_has_its_image_secrets_denied_and_keeps_working() {
    let dir = fixture_dir("container");
    let image = image(&dir);
    // A secret of the host's, bound into the container below its `~` (as `-v ~/.aws:...`):
    // only the container's mount namespace shows it there.
    let host_aws = dir.join("host-aws");
    write(
        &host_aws.join("credentials"),
        "aws_secret_access_key = host\n",
    );
    let volume = format!("{}:/root/.aws:ro", host_aws.display());
    let id = podman_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "-v",
        &volume,
        // A tmpfs only its own mount namespace shows.
        "--tmpfs",
        "/var/tmp",
        image,
        "sh",
        "-c",
        WORKLOAD,
    ]);
    assert_eq!(id.len(), 64, "{id}");
    let short = &id[..12];
    // The container's root as the host sees it: an overlay mount over the image's layer.
    let merged = PathBuf::from(podman_ok(&["mount", &id]));
    assert!(merged.join("root/.ssh/id_ed25519").exists());
    let policy = dir.join("default.yaml");
    write(&policy, DEFAULT_POLICY);

    // Before: the container reads its own secrets.
    let (steps, errors) = round(&merged, "before");
    for step in ["key", "env", "mounted", "plant", "work", "tmp"] {
        assert_eq!(status(&steps, step), 0, "{step} before attach: {errors}");
    }

    // The default policy, with `~` and `$WORKSPACE` the container's own directories.
    let attached = attach_container(short, &policy, &merged.join("root"), &merged.join("work"));
    assert_succeeded(&attached, "attach --container");
    let said = String::from_utf8_lossy(&attached.stderr).to_string();
    assert!(said.contains(&format!("libpod-{id}")), "{said}");

    let (steps, errors) = round(&merged, "attached");
    // Its own /var/tmp (a tmpfs of its namespace) is what `/var/tmp` in the policy means there.
    for step in ["key", "env", "mounted", "plant"] {
        assert_ne!(status(&steps, step), 0, "{step} allowed inside: {steps:?}");
    }
    assert_eq!(status(&steps, "work"), 0, "ordinary work failed: {errors}");
    assert_eq!(
        status(&steps, "tmp"),
        0,
        "its temporary files failed: {errors}"
    );
    assert_eq!(
        errors.matches("Operation not permitted").count(),
        4,
        "{errors}"
    );
    let records = records_for(&merged.join("root/.ssh/id_ed25519"), 1);
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "deny" && r["policy"] == "coding-agent-default"),
        "{records:?}"
    );

    // Detached by the same ID: the container reads its key again.
    let out = agent()
        .args(["detach", "--container", short])
        .output()
        .unwrap();
    assert_succeeded(&out, "detach --container");
    let (steps, errors) = round(&merged, "detached");
    assert_eq!(status(&steps, "key"), 0, "{errors}");
    assert_eq!(status(&steps, "mounted"), 0, "{errors}");
    podman_ok(&["rm", "-f", "-t", "0", &id]);
}

#[test]
fn a_container_id_that_matches_nothing_is_a_clear_error_and_attaches_nothing() {
    let dir = fixture_dir("container-missing");
    let policy = dir.join("default.yaml");
    write(&policy, DEFAULT_POLICY);
    let out = attach_container("0123456789abcdef", &policy, &dir, &dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no container with ID 0123456789abcdef has a cgroup under /sys/fs/cgroup"),
        "{err}"
    );
    let out = attach_container("web", &policy, &dir, &dir);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"web\" is not a container ID"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
