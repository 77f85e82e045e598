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
    let mode = format!("{:?}", p.mode).to_lowercase();
    println!("{}: ok: policy {:?}, {mode} mode", file.display(), p.name);
    // What each key the policy sets amounts to, and which hooks enforce it.
    let used = crate::policy::in_use(&p);
    const EVERY: &str = "(every policy)";
    let width = used
        .iter()
        .map(|(k, _)| k.name.len())
        .fold(EVERY.len(), usize::max);
    for (key, amount) in &used {
        let by = if key.hooks.is_empty() {
            "applied by `run` only (`attach` leaves a running process's environment as it is)"
                .to_string()
        } else {
            key.hooks.join(", ")
        };
        println!("  {:width$}  {amount:>5}  {by}", key.name);
    }
    println!(
        "  {EVERY:width$}  {:>5}  {}",
        "",
        crate::policy::every_policy().collect::<Vec<_>>().join(", ")
    );
    Ok(lints.is_empty())
}
