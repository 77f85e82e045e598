//! `audit [--follow] [--cgroup PATH] [--json]`: prints the daemon's audit log, rotated files
//! first (oldest to newest); `--follow` keeps reading, across rotations, until interrupted.

use std::{
    fs::File,
    io::{BufRead, BufReader, Seek, SeekFrom},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;

use crate::audit::{format_line, rotated, AuditRecord};

pub fn show(socket: &Path, follow: bool, cgroup: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let status = super::status::fetch(socket)?;
    let path = status.audit_log;
    let filter = Filter {
        cgroup: cgroup
            .map(std::path::absolute)
            .transpose()?
            .map(|p| p.display().to_string()),
        json,
    };
    for old in rotated_files(&path) {
        if let Ok(f) = File::open(&old) {
            print_lines(&mut BufReader::new(f), &filter, false, &path)?;
        }
    }
    let file =
        File::open(&path).with_context(|| format!("cannot open audit log {}", path.display()))?;
    print_lines(&mut BufReader::new(file), &filter, follow, &path)
}

/// `log.N` ... `log.1` that exist, oldest first.
pub fn rotated_files(log: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..1000)
        .map(|n| rotated(log, n))
        .take_while(|p| p.exists())
        .collect();
    out.reverse();
    out
}

struct Filter {
    cgroup: Option<String>,
    json: bool,
}

/// Prints the whole lines of `reader`; with `follow`, waits for more, and moves on to a new
/// file at `path` once the daemon rotated the one being read.
fn print_lines(
    reader: &mut BufReader<File>,
    filter: &Filter,
    follow: bool,
    path: &Path,
) -> anyhow::Result<()> {
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
            } else if rotated_away(reader.get_ref(), path) {
                if let Ok(next) = File::open(path) {
                    *reader = BufReader::new(next);
                    continue;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let Ok(record) = serde_json::from_str::<AuditRecord>(line.trim_end()) else {
            continue;
        };
        if let Some(c) = &filter.cgroup {
            if record.cgroup.as_deref() != Some(c.as_str()) {
                continue;
            }
        }
        if filter.json {
            print!("{line}");
        } else {
            println!("{}", format_line(&record));
        }
    }
}

/// Whether `path` now names another file than the open one (the log was rotated).
fn rotated_away(open: &File, path: &Path) -> bool {
    match (open.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) != (b.dev(), b.ino()),
        _ => false,
    }
}
