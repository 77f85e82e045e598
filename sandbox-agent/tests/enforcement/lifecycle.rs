//! Paths stay denied across the filesystem changing under them: created after attach, or
//! replaced by a rename (a new inode under the same name).

use crate::harness::*;

#[test]
fn denied_file_created_after_attach_is_denied() {
    let home = fixture_dir("later-file");
    let secret = home.join(".netrc");
    let cg = confined("later-file", &home, &[&secret]);
    write(&secret, "machine example password x");

    assert_eq!(cg.open(&secret), Err(EPERM));
}

#[test]
fn denied_directory_created_after_attach_is_denied_with_its_contents() {
    let home = fixture_dir("later-dir");
    let aws = home.join(".aws");
    let cg = confined("later-dir", &home, &[&aws]);
    write(&aws.join("credentials"), "aws");
    write(&aws.join("sso/cache/token.json"), "{}");

    assert_eq!(cg.open(&aws.join("credentials")), Err(EPERM));
    assert_eq!(cg.open(&aws.join("sso/cache/token.json")), Err(EPERM));
}

#[test]
fn denied_file_replaced_by_rename_is_still_denied() {
    let home = fixture_dir("rename");
    let secret = home.join("secret");
    write(&secret, "old");
    let cg = confined("rename", &home, &[&secret]);
    let old_ino = ino(&secret);
    let staged = home.join("staged");
    write(&staged, "new");
    std::fs::rename(&staged, &secret).unwrap();
    assert_ne!(
        ino(&secret),
        old_ino,
        "rename must have put a new inode in place"
    );

    assert_eq!(cg.open(&secret), Err(EPERM));
}

#[test]
fn file_deleted_and_recreated_is_still_denied() {
    let home = fixture_dir("recreate");
    let secret = home.join("secret");
    write(&secret, "old");
    let cg = confined("recreate", &home, &[&secret]);
    std::fs::remove_file(&secret).unwrap();
    write(&secret, "new");

    assert_eq!(cg.open(&secret), Err(EPERM));
}

#[test]
fn denied_path_below_missing_directories_is_denied_once_created_and_its_siblings_are_not() {
    let home = fixture_dir("chain");
    let cg = Cgroup::new("chain");
    let policy = policy_file(&home, "chain", "deny_read:\n  - ~/.config/gcloud\n");
    attach(&cg, &policy, &home);
    write(&home.join(".config/gcloud/credentials.db"), "gcloud");
    write(&home.join(".config/git/config"), "[user]");

    assert_eq!(
        cg.open(&home.join(".config/gcloud/credentials.db")),
        Err(EPERM)
    );
    assert_eq!(
        cg.open(&home.join(".config/git/config")),
        Ok("[user]".into())
    );
    let ls = cg.run(&["ls", home.join(".config").to_str().unwrap()]);
    assert!(
        ls.status.success(),
        "~/.config itself must stay readable: {}",
        stderr(&ls)
    );
}

#[test]
fn a_path_deeper_than_the_walk_limit_fails_closed() {
    let home = fixture_dir("deep");
    let mut deep = home.clone();
    for i in 0..sandbox_common::MAX_WALK_DEPTH {
        deep.push(format!("d{i}"));
    }
    let file = deep.join("file");
    write(&file, "deep");
    let cg = confined("deep", &home, &[&home.join("unrelated")]);

    assert_eq!(cg.open(&file), Err(EPERM));
    assert_eq!(open_unconfined(&file), Ok("deep".into()));
}
