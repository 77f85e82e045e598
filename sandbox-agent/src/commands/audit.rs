//! `audit [--follow] [--cgroup PATH] [--json]`: prints the daemon's audit log.

use std::{
    io::{BufRead, BufReader, Seek, SeekFrom},
    path::Path,
    time::Duration,
};

use anyhow::Context as _;

use crate::audit::{format_line, AuditRecord};

pub fn show(socket: &Path, follow: bool, cgroup: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let status = super::status::fetch(socket)?;
    let path = status.audit_log;
    let file = std::fs::File::open(&path)
        .with_context(|| format!("cannot open audit log {}", path.display()))?;
    let cgroup = cgroup
        .map(std::path::absolute)
        .transpose()?
        .map(|p| p.display().to_string());
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            if !follow {
                return Ok(());
            }
            // An incomplete line is being written: re-read it whole next time.
            if n > 0 {
                reader.seek(SeekFrom::Current(-(n as i64)))?;
            }
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let Ok(record) = serde_json::from_str::<AuditRecord>(line.trim_end()) else {
            continue;
        };
        if let Some(c) = &cgroup {
            if record.cgroup.as_deref() != Some(c.as_str()) {
                continue;
            }
        }
        if json {
            print!("{line}");
        } else {
            println!("{}", format_line(&record));
        }
    }
}
