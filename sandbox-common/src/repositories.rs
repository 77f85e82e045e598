//! The names by which version control tools find a repository, for `other_repositories: deny`.
//! One list for the kernel's walk (which compares 4-byte words) and the daemon's check of
//! descriptors open before `attach` (which compares names).

/// Directories that make the directory holding them a repository, whose hooks and config the
/// tool runs in the developer's next command there: git's, Mercurial's (`.hg/hgrc` hooks run at
/// any command, `pre-status` included), Jujutsu's and Sapling's. Compared without regard to
/// case: on a case-insensitive directory the tool's lookup finds `.GIT` for `.git`.
pub const REPOSITORY_DIRS: [&[u8]; 4] = [b".git", b".hg", b".jj", b".sl"];

/// The file that makes a directory a bare git repository (beside `objects/` and `refs/`): git
/// run in a directory that holds one takes it for a repository, with no `.git` to refuse.
/// Compared exactly, as git opens it (a program built as `head` is not refused).
pub const BARE_REPOSITORY_HEAD: &[u8] = b"HEAD";

/// The end of a bare repository's name by git's convention (`project.git`, what
/// `git clone --bare` and `--mirror` make, where the developer's pushes run its hooks): a
/// directory whose longer name ends so is taken for a repository. Compared without regard to
/// case.
pub const BARE_REPOSITORY_SUFFIX: &[u8] = b".git";

/// Setting each byte's 0x20 bit lowers ASCII letters and leaves `.` as it is.
pub const FOLD_CASE: u32 = 0x2020_2020;

/// The first four bytes of `name` as the kernel's walk reads them from a dentry name (NUL
/// terminated, so a shorter name ends in zeros), little-endian.
pub const fn name_word(name: &[u8]) -> u32 {
    let mut bytes = [0u8; 4];
    let mut i = 0;
    while i < name.len() && i < 4 {
        bytes[i] = name[i];
        i += 1;
    }
    u32::from_le_bytes(bytes)
}

/// `REPOSITORY_DIRS` as the walk compares them: case folded, one word each. Every name is at
/// most four bytes long, so its word with the length says all of it.
pub const REPOSITORY_DIR_WORDS: [(u32, u32); 4] = {
    let mut words = [(0, 0); 4];
    let mut i = 0;
    while i < REPOSITORY_DIRS.len() {
        let name = REPOSITORY_DIRS[i];
        assert!(name.len() <= 4);
        words[i] = (name.len() as u32, name_word(name) | FOLD_CASE);
        i += 1;
    }
    words
};

/// `BARE_REPOSITORY_SUFFIX` as the walk compares a longer name's last four bytes.
pub const BARE_REPOSITORY_SUFFIX_WORD: u32 = name_word(BARE_REPOSITORY_SUFFIX) | FOLD_CASE;
const _: () = assert!(BARE_REPOSITORY_SUFFIX.len() == 4);

/// `BARE_REPOSITORY_HEAD` as the walk compares it.
pub const BARE_REPOSITORY_HEAD_WORD: u32 = name_word(BARE_REPOSITORY_HEAD);
const _: () = assert!(BARE_REPOSITORY_HEAD.len() == 4);

/// Whether a directory of this name makes the one holding it a repository.
pub fn names_repository_dir(name: &[u8]) -> bool {
    REPOSITORY_DIRS
        .iter()
        .any(|dir| name.eq_ignore_ascii_case(dir))
}

/// Whether a directory of this name is a bare repository by git's convention.
pub fn names_bare_repository(name: &[u8]) -> bool {
    let suffix = BARE_REPOSITORY_SUFFIX.len();
    name.len() > suffix && name[name.len() - suffix..].eq_ignore_ascii_case(BARE_REPOSITORY_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The walk's folded words find what the daemon's comparison finds, and nothing it does not
    /// among names that differ by case or by one byte.
    #[test]
    fn the_walks_words_and_the_daemons_names_agree() {
        let word_match = |name: &[u8]| {
            let word = name_word(name) | FOLD_CASE;
            REPOSITORY_DIR_WORDS
                .iter()
                .any(|&(len, w)| len == name.len() as u32 && w == word)
        };
        // A longer name: its last four bytes, folded.
        let tail_match = |name: &[u8]| {
            name.len() > 4
                && name_word(&name[name.len() - 4..]) | FOLD_CASE == BARE_REPOSITORY_SUFFIX_WORD
        };
        let names: [(&[u8], bool, bool); 17] = [
            // (name, a repository's directory, a bare repository by its name)
            (b".git", true, false),
            (b".GIT", true, false),
            (b".Git", true, false),
            (b".hg", true, false),
            (b".HG", true, false),
            (b".jj", true, false),
            (b".Sl", true, false),
            (b"git", false, false),
            (b".gi", false, false),
            (b".gitx", false, false),
            (b"xhg", false, false),
            (b".jk", false, false),
            (b"HEAD", false, false),
            (b"x.git", false, true),
            (b"project.GIT", false, true),
            (b"x.gitx", false, false),
            (b"xgit", false, false),
        ];
        for (name, dir, bare) in names {
            assert_eq!(names_repository_dir(name), dir, "{name:?}");
            assert_eq!(word_match(name), dir, "{name:?}");
            assert_eq!(names_bare_repository(name), bare, "{name:?}");
            assert_eq!(tail_match(name), bare, "{name:?}");
        }
        assert_eq!(BARE_REPOSITORY_HEAD_WORD.to_le_bytes(), *b"HEAD");
    }
}
