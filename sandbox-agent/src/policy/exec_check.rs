//! Whether a compiled policy lets a program start: the same inode walk the kernel does on
//! execve, done up front so `run` can refuse a command that could never exec instead of starting
//! a process that fails in a confusing way.

use std::path::{Path, PathBuf};

use object::{read::elf::FileHeader, read::elf::ProgramHeader, Endianness};
use sandbox_common::{RULE_ALLOW_EXEC, RULE_DENY_EXEC};

use super::CompiledPolicy;
use crate::identity::file_id;

/// Deepest chain of interpreters followed (a script whose interpreter is a script...).
const MAX_INTERPRETERS: usize = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExecRefusal {
    #[error("{path} is denied by {rule}")]
    Denied { path: PathBuf, rule: String },
    #[error("{path} is not under any allow_exec path")]
    NotAllowed { path: PathBuf },
    #[error("cannot inspect {path}: {message}")]
    Unreadable { path: PathBuf, message: String },
}

/// Checks `program`, then the interpreter it needs (ELF `PT_INTERP` or a `#!` line), and so on.
pub fn check_program(policy: &CompiledPolicy, program: &Path) -> Result<(), ExecRefusal> {
    let mut next = Some(program.to_path_buf());
    for _ in 0..MAX_INTERPRETERS {
        let Some(path) = next.take() else {
            return Ok(());
        };
        check_file(policy, &path)?;
        next = interpreter(&path).map_err(|message| ExecRefusal::Unreadable {
            path: path.clone(),
            message,
        })?;
    }
    Ok(())
}

/// The kernel's decision for executing `path`: the nearest deny_exec on the way up wins, and an
/// allowlist needs an allow_exec rule somewhere on the way up (within the file's filesystem,
/// like the kernel's `d_parent` walk).
fn check_file(policy: &CompiledPolicy, path: &Path) -> Result<(), ExecRefusal> {
    let unreadable = |message: String| ExecRefusal::Unreadable {
        path: path.to_path_buf(),
        message,
    };
    let canonical = std::fs::canonicalize(path).map_err(|e| unreadable(e.to_string()))?;
    let sb = file_id(&canonical)
        .map_err(|e| unreadable(e.to_string()))?
        .sb_dev;
    let mut listed = false;
    for dir in canonical.ancestors() {
        let id = file_id(dir).map_err(|e| unreadable(format!("{}: {e}", dir.display())))?;
        if id.sb_dev != sb {
            break;
        }
        let Some(rule) = policy.inode_rules.get(&(id.dev, id.ino)) else {
            continue;
        };
        if rule.flags & RULE_DENY_EXEC != 0 {
            let rule = policy
                .rule(rule.rule_id)
                .map(|r| format!("{} {}", r.kind, r.path))
                .unwrap_or_else(|| "deny_exec".into());
            return Err(ExecRefusal::Denied {
                path: canonical,
                rule,
            });
        }
        listed |= rule.flags & RULE_ALLOW_EXEC != 0;
    }
    if policy.exec_allowlist() && !listed {
        return Err(ExecRefusal::NotAllowed { path: canonical });
    }
    Ok(())
}

/// The program the kernel loads to run `path`, if any.
fn interpreter(path: &Path) -> Result<Option<PathBuf>, String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    if let Some(line) = data.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        return Ok(line.split_whitespace().next().map(PathBuf::from));
    }
    let Ok(header) = object::elf::FileHeader64::<Endianness>::parse(&*data) else {
        // Not an ELF64 file: the kernel decides (and refuses what it cannot run).
        return Ok(None);
    };
    let endian = header.endian().map_err(|e| e.to_string())?;
    let headers = header
        .program_headers(endian, &*data)
        .map_err(|e| e.to_string())?;
    for ph in headers {
        if let Some(interp) = ph.interpreter(endian, &*data).map_err(|e| e.to_string())? {
            return Ok(Some(PathBuf::from(
                String::from_utf8_lossy(interp).into_owned(),
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{compile, parse};

    fn compiled(yaml: &str, home: &Path) -> CompiledPolicy {
        compile(&parse("p.yaml", yaml).unwrap(), home).unwrap()
    }

    #[test]
    fn a_program_under_an_allowed_directory_may_start_and_a_copy_may_not() {
        let home = tempfile::tempdir().unwrap();
        let bin = home.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("tool"), "#!/bin/sh\n").unwrap();
        std::fs::copy(bin.join("tool"), home.path().join("copy")).unwrap();
        let p = compiled("name: a\nallow_exec: [~/bin, /bin, /usr]\n", home.path());
        assert_eq!(check_program(&p, &bin.join("tool")), Ok(()));
        assert!(matches!(
            check_program(&p, &home.path().join("copy")),
            Err(ExecRefusal::NotAllowed { .. })
        ));
    }

    #[test]
    fn an_interpreter_outside_the_allowlist_is_named() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("script"), "#!/bin/sh\necho hi\n").unwrap();
        let p = compiled("name: a\nallow_exec: [~/]\n", home.path());
        let err = check_program(&p, &home.path().join("script")).unwrap_err();
        assert!(
            matches!(&err, ExecRefusal::NotAllowed { path } if path.ends_with("dash") || path.ends_with("sh")),
            "{err}"
        );
    }

    #[test]
    fn deny_exec_wins_inside_an_allowed_directory() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("tool"), "x").unwrap();
        let p = compiled(
            "name: a\nallow_exec: [~/]\ndeny_exec: [~/tool]\n",
            home.path(),
        );
        let err = check_program(&p, &home.path().join("tool")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is denied by deny_exec ~/tool",
                std::fs::canonicalize(home.path().join("tool"))
                    .unwrap()
                    .display()
            )
        );
    }

    #[test]
    fn without_an_allowlist_only_deny_exec_refuses() {
        let home = tempfile::tempdir().unwrap();
        let p = compiled("name: a\ndeny_read: [~/.ssh]\n", home.path());
        assert_eq!(check_program(&p, Path::new("/bin/sh")), Ok(()));
    }
}
