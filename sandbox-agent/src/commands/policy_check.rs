//! `policy check FILE`: validation without root and without a daemon.

use std::path::Path;

use crate::policy::Policy;

pub fn check(file: &Path) -> anyhow::Result<()> {
    let p = Policy::from_file(file)?;
    let allow = match &p.allow_exec {
        Some(list) => format!(", exec allowlist of {}", list.len()),
        None => String::new(),
    };
    println!(
        "{}: ok: policy {:?}, {:?} mode, {} deny_read and {} deny_exec rules{allow}{}",
        file.display(),
        p.name,
        p.mode,
        p.deny_read.len(),
        p.deny_exec.len(),
        if p.deny_fileless_exec {
            ", fileless exec denied"
        } else {
            ""
        }
    );
    Ok(())
}
