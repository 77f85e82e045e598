//! What `~`, `$WORKSPACE` and `$UID` in a rule path mean for one attachment.

use std::path::{Path, PathBuf};

/// Written at the start of a rule path, it means the confined command's workspace.
pub const WORKSPACE: &str = "$WORKSPACE";

/// Written anywhere in a rule path, it means the confined user's uid (the owner of `~`), for
/// per-user paths outside the home such as `/tmp/tmux-$UID`.
pub const UID: &str = "$UID";

/// What the relative anchors of rule paths mean for one attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchors {
    /// `~`
    pub home: PathBuf,
    /// `$WORKSPACE`: the directory the confined command works in, when there is one.
    pub workspace: Option<PathBuf>,
}

impl Anchors {
    pub fn home(home: &Path) -> Self {
        Self {
            home: home.to_path_buf(),
            workspace: None,
        }
    }

    /// The absolute path `entry` names.
    pub fn expand(&self, entry: &str) -> Result<PathBuf, String> {
        if entry.contains(UID) {
            return self.expand(&entry.replace(UID, &self.uid()?.to_string()));
        }
        let Some(rest) = entry.strip_prefix(WORKSPACE) else {
            return Ok(expand_home(entry, &self.home));
        };
        let workspace = self.workspace.as_ref().ok_or_else(|| {
            format!(
                "uses {WORKSPACE} but no workspace was given (attach --workspace DIR; run uses its current directory)"
            )
        })?;
        Ok(workspace.join(rest.trim_start_matches('/')))
    }

    /// `$UID`: the owner of `~`, which is the confined user whenever `~` is their home.
    fn uid(&self) -> Result<u32, String> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.home).map(|m| m.uid()).map_err(|e| {
            format!(
                "uses {UID} (the owner of ~) but {} cannot be read: {e}",
                self.home.display()
            )
        })
    }
}

/// Expands `~` against `home`.
pub fn expand_home(entry: &str, home: &Path) -> PathBuf {
    if entry == "~" {
        home.to_path_buf()
    } else if let Some(rest) = entry.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_expansion() {
        let h = Path::new("/home/u");
        assert_eq!(expand_home("~", h), PathBuf::from("/home/u"));
        assert_eq!(expand_home("~/.ssh", h), PathBuf::from("/home/u/.ssh"));
        assert_eq!(expand_home("/etc", h), PathBuf::from("/etc"));
        let a = Anchors {
            home: h.to_path_buf(),
            workspace: Some(PathBuf::from("/src/app")),
        };
        assert_eq!(
            a.expand("$WORKSPACE/.env"),
            Ok(PathBuf::from("/src/app/.env"))
        );
        assert_eq!(a.expand("$WORKSPACE"), Ok(PathBuf::from("/src/app")));
        assert!(Anchors::home(h)
            .expand("$WORKSPACE/.env")
            .unwrap_err()
            .contains("no workspace"));
    }

    #[test]
    fn uid_is_the_owner_of_the_home() {
        use std::os::unix::fs::MetadataExt;
        let home = tempfile::tempdir().unwrap();
        let owner = std::fs::metadata(home.path()).unwrap().uid();
        let a = Anchors::home(home.path());
        assert_eq!(
            a.expand("/tmp/tmux-$UID"),
            Ok(PathBuf::from(format!("/tmp/tmux-{owner}")))
        );
        let gone = Anchors::home(&home.path().join("missing"));
        let e = gone.expand("/tmp/tmux-$UID").unwrap_err();
        assert!(e.contains("uses $UID (the owner of ~)"), "{e}");
        assert_eq!(gone.expand("/etc/shadow"), Ok(PathBuf::from("/etc/shadow")));
    }
}
