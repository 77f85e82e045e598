//! The audit log: JSON lines, appended whole, rotated between records.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use super::AuditRecord;

/// Append-only JSON-lines audit log. Records are written as whole lines, a batch with a single
/// `write`, so a crash never leaves half a record behind a complete one. Past `max_bytes` the file
/// is rotated (`log` -> `log.1` -> ... -> `log.<keep>`, the oldest dropped) between two records,
/// so no record is ever split across files.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    keep: u32,
    /// The lines of a batch, kept between batches so a flood does not grow a new buffer for each.
    lines: Vec<u8>,
}

impl AuditLog {
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
            keep,
            lines: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, record: &AuditRecord) -> std::io::Result<()> {
        self.append_all([record])
    }

    /// Appends `records` with one `write` (one per file when a rotation falls among them).
    pub fn append_all<'r, 'a: 'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r AuditRecord<'a>>,
    ) -> std::io::Result<()> {
        for record in records {
            self.push(record)?;
        }
        self.flush()
    }

    /// Adds `record` to the lines the next `flush` writes: a drain of the ring buffer costs one
    /// system call, not one per record. When the line would take the file past its size, the
    /// lines before it are written first and the file is rotated.
    pub fn push(&mut self, record: &AuditRecord) -> std::io::Result<()> {
        let start = self.lines.len();
        if let Err(e) = serde_json::to_writer(&mut self.lines, record) {
            self.lines.truncate(start);
            return Err(e.into());
        }
        self.lines.push(b'\n');
        let written_before = self.size + start as u64;
        let line = (self.lines.len() - start) as u64;
        if written_before > 0 && written_before + line > self.max_bytes {
            // The lines before this one still fit: they end the current file.
            let ended = self.file.write_all(&self.lines[..start]);
            self.lines.drain(..start);
            ended?;
            self.rotate()?;
        }
        Ok(())
    }

    /// Writes the lines `push` gathered, with one `write`.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(&self.lines);
        if written.is_ok() {
            self.size += self.lines.len() as u64;
        }
        // Kept, not handed back: a flood does not grow a new buffer for each batch.
        self.lines.clear();
        written
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        for n in (1..self.keep).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// The `n`-th rotated file of `log` (`log.n`).
pub fn rotated(log: &Path, n: u32) -> PathBuf {
    let mut name = log.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{
        decode,
        tests::{event, NO_CONTEXT, T},
        Context,
    };

    #[test]
    fn log_lines_are_whole_json_objects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.log");
        let mut log = AuditLog::open(&path, 1 << 20, 2).unwrap();
        let ctx = Context::default();
        let e = event();
        let r = decode(&e, T, &ctx);
        log.append(&r).unwrap();
        log.append(&r).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(serde_json::from_str::<AuditRecord>(lines[1]).unwrap(), r);
    }

    #[test]
    fn rotation_keeps_whole_lines_and_drops_only_the_oldest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let e = event();
        let r = decode(&e, T, &NO_CONTEXT);
        let line_len = serde_json::to_vec(&r).unwrap().len() as u64 + 1;
        // Three lines per file, two rotated files kept.
        let mut log = AuditLog::open(&path, 3 * line_len, 2).unwrap();
        for _ in 0..10 {
            log.append(&r).unwrap();
        }
        let count = |p: &Path| {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.ends_with('\n'));
            for l in text.lines() {
                serde_json::from_str::<AuditRecord>(l).unwrap();
            }
            text.lines().count()
        };
        assert_eq!(count(&path), 1);
        assert_eq!(count(&rotated(&path, 1)), 3);
        assert_eq!(count(&rotated(&path, 2)), 3);
        assert!(!rotated(&path, 3).exists());
        // A reopened log continues the current file.
        let mut log = AuditLog::open(&path, 3 * line_len, 2).unwrap();
        log.append(&r).unwrap();
        assert_eq!(count(&path), 2);

        // One batch of ten rotates between the same records as ten appends.
        let batched = dir.path().join("batched.log");
        let mut log = AuditLog::open(&batched, 3 * line_len, 2).unwrap();
        log.append_all(&[r.clone(), r.clone(), r.clone(), r.clone(), r.clone()])
            .unwrap();
        log.append_all(&vec![r.clone(); 5]).unwrap();
        assert_eq!(count(&batched), 1);
        assert_eq!(count(&rotated(&batched, 1)), 3);
        assert_eq!(count(&rotated(&batched, 2)), 3);
        assert!(!rotated(&batched, 3).exists());
    }
}
