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
