//! `core.hooksPath` as git reads it, for `$GIT_HOOKS`: the hooks directory of a repository is
//! wherever its config says (husky points it at `.husky/_` in the work tree, other projects at
//! a tracked `.githooks`), and git runs what is there at the developer's next commit.
//!
//! Only what finding that one key needs: sections and keys without regard to case, quoted
//! values, comments, and `include.path` / `includeIf.*.path` (every conditional include is
//! read: a hooks directory named under a condition may be the one in use, and denying one
//! more directory costs less than missing it).

use std::path::{Path, PathBuf};

/// Deepest chain of includes followed (git stops at 10 as well).
const MAX_INCLUDE_DEPTH: usize = 10;

/// The config files every repository of the user whose home is `home` reads, in git's order:
/// the system's, then the user's (XDG location, then `~/.gitconfig`).
pub fn shared_files(home: &Path) -> [PathBuf; 3] {
    [
        PathBuf::from("/etc/gitconfig"),
        home.join(".config/git/config"),
        home.join(".gitconfig"),
    ]
}

/// The last `core.hooksPath` the config files `files` (in git's order: system, global,
/// repository) set, with the file that set it.
pub fn hooks_path(files: &[PathBuf], home: &Path) -> Option<(String, PathBuf)> {
    let mut found = None;
    for file in files {
        read_file(file, home, 0, &mut found);
    }
    found
}

fn read_file(file: &Path, home: &Path, depth: usize, found: &mut Option<(String, PathBuf)>) {
    if depth > MAX_INCLUDE_DEPTH {
        return;
    }
    super::watch::before_content(file);
    // A config git cannot read it skips too; so may we.
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('[') {
            let Some((header, after)) = rest.split_once(']') else {
                continue;
            };
            section = header
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            // `[core] hooksPath = x` on the header's line.
            read_entry(after.trim(), &section, file, home, depth, found);
            continue;
        }
        read_entry(line, &section, file, home, depth, found);
    }
}

fn read_entry(
    line: &str,
    section: &str,
    file: &Path,
    home: &Path,
    depth: usize,
    found: &mut Option<(String, PathBuf)>,
) {
    let Some((key, value)) = line.split_once('=') else {
        return;
    };
    let key = key.trim().to_ascii_lowercase();
    let value = unquote(value);
    match (section, key.as_str()) {
        ("core", "hookspath") => *found = Some((value, file.to_path_buf())),
        ("include" | "includeif", "path") => {
            let included = expand(&value, home, file.parent().unwrap_or(Path::new("/")));
            read_file(&included, home, depth + 1, found);
        }
        _ => {}
    }
}

/// A value without its comment and with its quotes and escapes resolved.
fn unquote(raw: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = raw.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '#' | ';' if !quoted => break,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            },
            c => out.push(c),
        }
    }
    out.trim_end().to_string()
}

/// A path value of a config file: `~/` is `home`, a relative path is relative to `base`.
pub fn expand(value: &str, home: &Path, base: &Path) -> PathBuf {
    if value == "~" {
        home.to_path_buf()
    } else if let Some(rest) = value.strip_prefix("~/") {
        home.join(rest)
    } else {
        base.join(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_hooks_path_wins_through_includes_case_and_quotes() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        let global = dir.join("gitconfig");
        std::fs::write(
            &global,
            "[user]\n\tname = d\n[CORE]\n\tHooksPath = ~/.githooks ; global hooks\n",
        )
        .unwrap();
        let repo = dir.join("config");
        std::fs::write(
            &repo,
            "[core]\n\tbare = false\n[include]\n\tpath = extra.inc\n",
        )
        .unwrap();
        std::fs::write(dir.join("extra.inc"), "[core] hooksPath = \".husky/_\"\n").unwrap();
        let home = Path::new("/home/d");
        let (value, from) = hooks_path(&[global.clone(), repo], home).unwrap();
        assert_eq!((value.as_str(), from), (".husky/_", dir.join("extra.inc")));
        let (value, _) = hooks_path(&[global, dir.join("missing")], home).unwrap();
        assert_eq!(expand(&value, home, dir), home.join(".githooks"));
        assert_eq!(hooks_path(&[dir.join("missing")], home), None);
    }

    #[test]
    fn an_include_loop_ends() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("config");
        std::fs::write(&file, "[include]\npath = config\n[core]\nhooksPath = /h\n").unwrap();
        let (value, _) = hooks_path(&[file], Path::new("/home/d")).unwrap();
        assert_eq!(value, "/h");
    }
}
