//! A denied file, and every file below a denied directory, cannot be opened: not by python3,
//! not by cat, not by a shell redirection.

use crate::harness::*;

#[test]
fn denied_file_cannot_be_opened_by_python_cat_or_shell_redirection() {
    let home = fixture_dir("denied-file");
    let secret = home.join("secret.txt");
    write(&secret, "top secret");
    let cg = confined("denied-file", &home, &[&secret]);

    assert_eq!(cg.open(&secret), Err(EPERM));
    let s = secret.to_str().unwrap();
    assert_eperm(&cg.run(&["cat", s]), "cat");
    assert_eperm(
        &cg.run(&["sh", "-c", &format!("read line < {s}")]),
        "sh redirection",
    );
}

#[test]
fn file_inside_a_denied_directory_is_denied_at_any_depth() {
    let home = fixture_dir("denied-dir");
    let ssh = home.join(".ssh");
    write(&ssh.join("id_ed25519"), "key");
    write(&ssh.join("deep/er/still/config"), "cfg");
    let cg = confined("denied-dir", &home, &[&ssh]);

    assert_eq!(cg.open(&ssh.join("id_ed25519")), Err(EPERM));
    assert_eq!(cg.open(&ssh.join("deep/er/still/config")), Err(EPERM));
    // Listing the directory is an open of it, denied too.
    assert_eperm(&cg.run(&["ls", ssh.to_str().unwrap()]), "ls of denied dir");
}

#[test]
fn sibling_files_stay_readable() {
    let home = fixture_dir("siblings");
    write(&home.join(".ssh/id_ed25519"), "key");
    write(&home.join("notes.txt"), "hello");
    write(
        &home.join(".sshx/other"),
        "not denied: only the name differs",
    );
    let cg = confined("siblings", &home, &[&home.join(".ssh")]);

    assert_eq!(cg.open(&home.join("notes.txt")), Ok("hello".into()));
    assert_eq!(
        cg.open(&home.join(".sshx/other")),
        Ok("not denied: only the name differs".into())
    );
}

#[test]
fn tilde_in_a_policy_means_the_given_home() {
    let home = fixture_dir("tilde");
    write(&home.join(".aws/credentials"), "aws");
    let cg = Cgroup::new("tilde");
    let policy = policy_file(&home, "tilde", "deny_read:\n  - ~/.aws\n");
    attach(&cg, &policy, &home);

    assert_eq!(cg.open(&home.join(".aws/credentials")), Err(EPERM));
}
