//! `policy check FILE`: validation without root and without a daemon.

use std::path::Path;

use crate::policy::Policy;

pub fn check(file: &Path) -> anyhow::Result<()> {
    let p = Policy::from_file(file)?;
    println!(
        "{}: ok: policy {:?}, {:?} mode, {} deny_read and {} deny_exec rules",
        file.display(),
        p.name,
        p.mode,
        p.deny_read.len(),
        p.deny_exec.len()
    );
    Ok(())
}
