//! `policy check FILE`: validation without root and without a daemon.

use std::path::Path;

use crate::policy::Policy;

/// Validates `file` and prints its lints; Ok(false) when there are lints.
pub fn check(file: &Path) -> anyhow::Result<bool> {
    let p = Policy::from_file(file)?;
    let text = std::fs::read_to_string(file)?;
    let lints = crate::policy::lint(&file.display().to_string(), &text, &p);
    for l in &lints {
        println!("{l}");
    }
    let allow = match &p.allow_exec {
        Some(list) => format!(", exec allowlist of {}", list.len()),
        None => String::new(),
    };
    let net = &p.network;
    let network = format!(
        "; network: default {:?}, {} allow and {} deny rules, {} binaries, {} unix_deny",
        net.default,
        net.allow.len(),
        net.deny.len(),
        net.binaries.len(),
        net.unix_deny.len()
    )
    .to_lowercase();
    let env = match (p.env.deny.len(), p.env.allow.len()) {
        (0, _) => String::new(),
        (deny, allow) => format!(
            "; env: {deny} deny patterns, {allow} names kept (applied by `run` only: \
             `attach` leaves a running process's environment as it is)"
        ),
    };
    println!(
        "{}: ok: policy {:?}, {:?} mode, {} deny_read, {} deny_exec and {} deny_write rules{allow}{}{network}{env}",
        file.display(),
        p.name,
        p.mode,
        p.deny_read.len(),
        p.deny_exec.len(),
        p.deny_write.len(),
        if p.deny_fileless_exec {
            ", fileless exec denied"
        } else {
            ""
        }
    );
    Ok(lints.is_empty())
}
