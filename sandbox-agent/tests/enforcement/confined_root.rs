//! A confined root is not root: it cannot remove the enforcer's pins, write sysctls or sysfs,
//! load a kernel module by any route, use the capabilities that reach past its sandbox, open a
//! raw disk or kernel memory, push keystrokes into a terminal outside, or talk to the daemon.
//! Each route fails with EPERM, leaves an audit record naming the hook (and the capability),
//! and changes nothing on the host; the same command works outside; ordinary root work goes on.

use std::{
    os::fd::{FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use sandbox_agent::cgroup::spawn_in_cgroup;

use crate::harness::*;

/// A cgroup confined by a deny_read policy on `<home>/secret` plus `extra` policy lines, with
/// the policy applied to root (the tests run as root).
fn confined_root(name: &str, extra: &str) -> (Cgroup, PathBuf) {
    confined_root_working_for(name, extra, 0)
}

/// Like `confined_root`, for the sandbox's user `uid` (the owner of its `~`).
fn confined_root_working_for(name: &str, extra: &str, uid: u32) -> (Cgroup, PathBuf) {
    let home = fixture_dir(name);
    if uid != 0 {
        give_to(uid, &home);
    }
    let secret = home.join("secret");
    write(&secret, "s");
    let policy = policy_file(
        &home,
        name,
        &format!(
            "deny_read:\n  - {:?}\n{extra}",
            secret.display().to_string()
        ),
    );
    let cg = Cgroup::new(name);
    attach(&cg, &policy, &home);
    (cg, home)
}

/// Runs a shell script inside `cg`; stdout and stderr together.
fn sh(cg: &Cgroup, script: &str) -> String {
    let out = cg.run(&["sh", "-c", script]);
    format!("{}{}", stdout(&out), stderr(&out))
}

fn self_protection(r: &serde_json::Value) -> bool {
    r["action"] == "deny"
        && r["rule"]
            .as_str()
            .is_some_and(|s| s.starts_with("self-protection"))
}

fn capability_record(cg: &Cgroup, cap: &str) {
    record_of(cg, "capable", |r| {
        self_protection(r)
            && r["target"]["kind"] == "capability"
            && r["target"]["capability"] == cap
    });
}

/// Asserts the script printed `<step>=<non-zero status>` (dash exits 2 on a failed redirection,
/// bash 1, ip 2).
fn assert_failed(text: &str, step: &str) {
    let status = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{step}=")))
        .unwrap_or_else(|| panic!("{step} did not report: {text}"));
    assert_ne!(status, "0", "{step} succeeded: {text}");
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(tree(&path));
        }
        out.push(path);
    }
    out.sort();
    out
}

fn status() -> serde_json::Value {
    let out = agent().args(["status", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

const PINS: &str = "/sys/fs/bpf/sandbox-agent";

#[test]
fn the_enforcers_pins_cannot_be_touched_from_inside_and_come_back_when_removed_outside() {
    let (cg, home) = confined_root("root-pins", "");
    let pins = Path::new(PINS);
    let before = tree(pins);
    assert!(!before.is_empty());
    let text = sh(
        &cg,
        &format!(
            "rm -rf {PINS}; echo rm=$?; mv {PINS}/links/file_open /sys/fs/bpf/moved; echo mv=$?; \
             touch /sys/fs/bpf/planted; echo touch=$?; mkdir /sys/fs/bpf/made; echo mkdir=$?"
        ),
    );
    for step in ["rm", "mv", "touch", "mkdir"] {
        assert_failed(&text, step);
    }
    assert!(text.contains("Operation not permitted"), "{text}");
    assert_eq!(tree(pins), before, "bpffs changed under a confined root");
    for planted in [
        "/sys/fs/bpf/moved",
        "/sys/fs/bpf/planted",
        "/sys/fs/bpf/made",
    ] {
        assert!(!Path::new(planted).exists(), "{planted}");
    }
    record_of(&cg, "path_mkdir", self_protection);
    assert_eq!(cg.open(&home.join("secret")), Err(EPERM), "still enforced");

    // Root outside removes a pin by mistake: the daemon's own reference keeps the program
    // attached, and the daemon pins it again.
    let restored = status()["pins_restored"].as_u64().unwrap();
    let pin = pins.join("links/file_open");
    std::fs::remove_file(&pin).unwrap();
    assert_eq!(
        cg.open(&home.join("secret")),
        Err(EPERM),
        "unpinned: still attached"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !pin.exists() {
        assert!(
            Instant::now() < deadline,
            "the daemon did not pin {} again",
            pin.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(status()["pins_restored"].as_u64().unwrap() > restored);
    assert_eq!(cg.open(&home.join("secret")), Err(EPERM));
}

#[test]
fn sysctls_sysfs_and_the_sysrq_trigger_cannot_be_written_from_inside() {
    let (cg, _home) = confined_root("root-sysctl", "");
    let knobs = [
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/kernel/modprobe",
        "/proc/sys/net/ipv4/ip_forward",
        "/sys/class/net/lo/mtu",
    ];
    let before: Vec<String> = knobs.iter().map(|k| read(k)).collect();
    let text = sh(
        &cg,
        "printf '|/tmp/evil %p' > /proc/sys/kernel/core_pattern; echo core=$?; \
         printf /tmp/evil > /proc/sys/kernel/modprobe; echo modprobe=$?; \
         echo 1 > /proc/sys/net/ipv4/ip_forward; echo forward=$?; \
         echo h > /proc/sysrq-trigger; echo sysrq=$?; \
         echo 1280 > /sys/class/net/lo/mtu; echo mtu=$?; \
         echo renamed > /proc/self/comm; echo comm=$?; \
         grep -q Name /proc/self/status; echo status=$?",
    );
    for step in ["core", "modprobe", "forward", "sysrq", "mtu"] {
        assert_failed(&text, step);
    }
    assert!(
        text.contains("comm=0"),
        "a process's own /proc files stay writable: {text}"
    );
    assert!(text.contains("status=0"), "{text}");
    let after: Vec<String> = knobs.iter().map(|k| read(k)).collect();
    assert_eq!(before, after, "a kernel knob changed");
    record_of(&cg, "file_open", |r| {
        self_protection(r)
            && r["target"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("core_pattern"))
    });
    record_of(&cg, "file_open", |r| {
        self_protection(r)
            && r["target"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/mtu"))
    });

    // Outside the sandbox, root writes them as usual (the same value back).
    std::fs::write(knobs[2], &before[2]).unwrap();
}

/// finit_module(2) of argv[1]: OK:<ret> or ERR:<errno>.
const FINIT_MODULE: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY)
ret = libc.syscall(313, fd, b"", 0)
print("OK:%d" % ret if ret >= 0 else "ERR:%d" % ctypes.get_errno(), end="")
"#;

/// init_module(2) of a buffer that is no module.
const INIT_MODULE: &str = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
image = ctypes.create_string_buffer(b"\x7fELF" + b"\0" * 60)
ret = libc.syscall(175, image, 64, b"")
print("OK:%d" % ret if ret >= 0 else "ERR:%d" % ctypes.get_errno(), end="")
"#;

/// A socket of a family no module provides yet (AppleTalk): the kernel asks for its module.
const REQUEST_MODULE: &str = r#"
import socket
try:
    socket.socket(5, socket.SOCK_DGRAM)
    print("OK:created", end="")
except OSError as e:
    print("ERR:%d" % e.errno, end="")
"#;

#[test]
fn no_kernel_module_loads_by_any_route() {
    let (cg, home) = confined_root("root-modules", "");
    let image = home.join("module.ko");
    write(&image, "not a kernel module");
    let image = image.to_str().unwrap();
    let modules = read("/proc/modules");

    assert_eq!(cg.probe(FINIT_MODULE, &[image]), Err(EPERM));
    capability_record(&cg, "SYS_MODULE");
    assert_eq!(cg.probe(INIT_MODULE, &[]), Err(EPERM));
    assert!(cg.probe(REQUEST_MODULE, &[]).is_err());
    record_of(&cg, "kernel_module_request", self_protection);

    // Even a policy that gives CAP_SYS_MODULE back loads nothing: the loading hooks refuse.
    let (given, _) = confined_root("root-modules-cap", "capabilities:\n  allow: [SYS_MODULE]\n");
    assert_eq!(given.probe(FINIT_MODULE, &[image]), Err(EPERM));
    let loading_a_module = |r: &serde_json::Value| {
        self_protection(r)
            && r["target"]["kind"] == "kernel_load"
            && r["target"]["kernel_load"] == "module"
    };
    record_of(&given, "kernel_read_file", loading_a_module);
    assert_eq!(given.probe(INIT_MODULE, &[]), Err(EPERM));
    record_of(&given, "kernel_load_data", loading_a_module);
    assert_eq!(read("/proc/modules"), modules, "a module was loaded");

    // Outside, the kernel reads the file and rejects it as no module, not as forbidden.
    assert!(
        !matches!(probe(None, FINIT_MODULE, &[image]), Err(EPERM) | Ok(_)),
        "finit_module outside should fail on the file's content"
    );
}

#[test]
fn capabilities_that_reach_past_the_sandbox_are_refused_and_ordinary_root_work_goes_on() {
    let (cg, home) = confined_root("root-caps", "");
    let mtu = read("/sys/class/net/lo/mtu");
    let hostname = read("/proc/sys/kernel/hostname");
    let text = sh(
        &cg,
        &format!(
            "ip link set lo mtu 1280; echo ip=$?; hostname confined-host; echo hostname=$?; \
             mknod {home}/disk b 7 0; echo mknod=$?",
            home = home.display()
        ),
    );
    for step in ["ip", "hostname", "mknod"] {
        assert_failed(&text, step);
    }
    assert_eq!(read("/sys/class/net/lo/mtu"), mtu, "the MTU changed");
    assert_eq!(read("/proc/sys/kernel/hostname"), hostname);
    assert!(!home.join("disk").exists());
    for cap in ["NET_ADMIN", "SYS_ADMIN", "MKNOD"] {
        capability_record(&cg, cap);
    }

    // Ordinary root work for the sandbox's user: chown to them in the workspace, a compile.
    // (A low port is its own in a network namespace of its own only: `shared_ports`.)
    let (for_user, home) = confined_root_working_for("root-caps-work", "", USER_UID);
    let text = sh(
        &for_user,
        &format!(
            "cd {home} && touch owned && chown 1000:1000 owned && echo chown=$?; \
             printf 'int main(void){{return 7;}}\\n' > t.c && cc -o t t.c && ./t; echo cc=$?",
            home = home.display()
        ),
    );
    for step in ["chown=0", "cc=7"] {
        assert!(text.contains(step), "{step}: {text}");
    }
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(home.join("owned")).unwrap().uid(), 1000);

    // A policy gives back what a workload needs; outside, root has it anyway.
    let (given, _) = confined_root("root-caps-given", "capabilities:\n  allow: [NET_ADMIN]\n");
    let set_mtu = format!("ip link set lo mtu {}; echo ip=$?", mtu.trim());
    assert!(sh(&given, &set_mtu).contains("ip=0"));
    let outside = Command::new("sh").args(["-c", &set_mtu]).output().unwrap();
    assert!(stdout(&outside).contains("ip=0"), "{}", stderr(&outside));

    // A name that is no capability is refused with the line that names it.
    let bad = policy_file(
        &home,
        "bad-caps",
        "capabilities:\n  allow:\n    - SYS_ADMIM\n",
    );
    let out = try_attach(&Cgroup::new("root-caps-bad").path, &bad, Some(&home));
    assert_refused(&out, "bad-caps.yaml:4: capabilities.allow[0]");
}

#[test]
fn raw_disks_kernel_memory_and_device_nodes_made_anywhere_cannot_be_opened() {
    let (cg, home) = confined_root("root-devices", "");
    // Nodes made outside, under any name: a loop disk, /dev/mem's device number, and the
    // character devices that pass commands to a disk or the TPM (SCSI generic's fixed major,
    // the first TPM's misc minor; bsg's, NVMe's and the TPM's, handed out at boot, where this
    // kernel registered them; the TPM's resource manager `tpmrm0` is the TPM major's minor
    // 65536). The VM has no TPM: the driver is there, the chip is not. And what carries what
    // the host's people type and see: a virtual console, a serial port, the console, the
    // console's screen memory, the framebuffer, an input event device, raw HID (a major handed
    // out when its driver loads: a module these kernels have not loaded here), and the devices
    // that make a keyboard from user space.
    let disk = home.join("disk");
    let mem = home.join("mem");
    let port = home.join("port");
    let sg = home.join("sg0");
    let devices = std::fs::read_to_string("/proc/devices").unwrap();
    let booted: Vec<(PathBuf, String, &str)> = [
        ("bsg", "0"),
        ("nvme", "0"),
        ("nvme-generic", "0"),
        ("tpm", "1"),
        ("tpm", "65536"),
        ("hidraw", "0"),
    ]
    .iter()
    .filter_map(|&(name, minor)| {
        let major = devices
            .lines()
            .take_while(|l| !l.starts_with("Block devices:"))
            .find_map(|l| l.trim().strip_suffix(&format!(" {name}")))?;
        Some((
            home.join(format!("{name}-{minor}")),
            major.to_string(),
            minor,
        ))
    })
    .collect();
    assert!(
        booted.iter().any(|(node, ..)| node.ends_with("tpm-65536")),
        "the kernel registers the TPM major: {devices}"
    );
    let tpm0 = home.join("tpm0");
    let (event0, uinput) = (home.join("event0"), home.join("uinput"));
    // (A serial port's and the console's opens wait for the line when they are let through:
    // they come after nodes whose open does not, so a broken rule fails at once.)
    let mut nodes = vec![
        (uinput.clone(), "c", "10".to_string(), "223"),
        (home.join("uhid"), "c", "10".to_string(), "239"),
        (event0.clone(), "c", "13".to_string(), "64"),
        (home.join("vcs"), "c", "7".to_string(), "0"),
        (home.join("fb0"), "c", "29".to_string(), "0"),
        (home.join("tty1"), "c", "4".to_string(), "1"),
        (home.join("ttyS0"), "c", "4".to_string(), "64"),
        (home.join("console"), "c", "5".to_string(), "1"),
        (disk.clone(), "b", "7".to_string(), "0"),
        (mem.clone(), "c", "1".to_string(), "1"),
        (port.clone(), "c", "1".to_string(), "4"),
        (sg.clone(), "c", "21".to_string(), "0"),
        (tpm0.clone(), "c", "10".to_string(), "224"),
    ];
    nodes.extend(
        booted
            .iter()
            .map(|(n, major, minor)| (n.clone(), "c", major.clone(), *minor)),
    );
    for (node, kind, major, minor) in &nodes {
        let made = Command::new("mknod")
            .arg(node)
            .args([kind, major.as_str(), minor])
            .status()
            .unwrap();
        assert!(made.success());
    }
    for path in nodes
        .iter()
        .map(|(node, ..)| node.as_path())
        .chain([Path::new("/dev/mem"), Path::new("/proc/kcore")])
    {
        assert_eq!(cg.open(path), Err(EPERM), "{}", path.display());
    }
    record_of(&cg, "file_open", |r| {
        self_protection(r)
            && r["target"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/kcore"))
    });
    // Ordinary devices stay usable, and so does a terminal of the sandbox's own making.
    let text = sh(
        &cg,
        "head -c 4 /dev/urandom > /dev/null; echo urandom=$?; echo x > /dev/null; echo null=$?; \
         python3 -c 'import os; os.openpty()'; echo pty=$?",
    );
    for step in ["urandom=0", "null=0", "pty=0"] {
        assert!(text.contains(step), "{step}: {text}");
    }
    // Outside, the same node reaches the driver: ENXIO, or, once another test has attached
    // the loop device, an open one (opened only: reading a whole disk image is not the point).
    for node in [&disk, &sg, &tpm0, &event0, &uinput] {
        assert_ne!(
            probe(None, OPEN_ONLY, &[node.to_str().unwrap()]),
            Err(EPERM),
            "{}",
            node.display()
        );
    }
}

/// open(2) of argv[1] for reading, without reading it.
const OPEN_ONLY: &str = r#"
import os, sys
try:
    os.close(os.open(sys.argv[1], os.O_RDONLY))
    print("OK:opened", end="")
except OSError as e:
    print("ERR:%d" % e.errno, end="")
"#;

/// ioctl(0, argv[1]) with one byte: TIOCSTI pushes it into the terminal's input.
const TERMINAL_IOCTL: &str = r#"
import fcntl, sys
try:
    fcntl.ioctl(0, int(sys.argv[1]), b"x")
    print("OK:done", end="")
except OSError as e:
    print("ERR:%d" % e.errno, end="")
"#;

/// A pseudo-terminal pair, as a terminal emulator or sshd makes for a shell.
fn pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: out-pointers to two ints; no name, termios or size.
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(ret, 0);
    // Raw mode, so that one pushed byte is readable at once (canonical mode waits for a line).
    // SAFETY: termios is plain data, filled by tcgetattr before use.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave, &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(slave, libc::TCSANOW, &t), 0);
    }
    // SAFETY: openpty returned two fresh descriptors we own.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Bytes waiting in the terminal's input queue.
fn queued(slave: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    assert_eq!(
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::FIONREAD, &mut n) },
        0
    );
    n
}

/// Runs `command` with the terminal as stdin, inside `cg` or outside, and waits for it.
fn on_terminal(cg: Option<&Cgroup>, slave: &OwnedFd, mut command: Command) -> Output {
    command
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = match cg {
        Some(cg) => spawn_in_cgroup(&mut command, &cg.path).unwrap(),
        None => command.spawn().unwrap(),
    };
    child.wait_with_output().unwrap()
}

/// Runs the ioctl probe with the terminal as stdin, inside `cg` or outside.
fn ioctl_on_terminal(cg: Option<&Cgroup>, slave: &OwnedFd, cmd: u32) -> String {
    let mut command = Command::new("python3");
    command.args(["-c", TERMINAL_IOCTL, &cmd.to_string()]);
    stdout(&on_terminal(cg, slave, command))
}

#[test]
fn no_keystrokes_are_pushed_into_a_terminal_outside() {
    let (cg, _home) = confined_root("root-tty", "");
    let (_master, slave) = pty();
    let tiocsti = libc::TIOCSTI as u32;
    assert_eq!(ioctl_on_terminal(Some(&cg), &slave, tiocsti), "ERR:1");
    assert_eq!(queued(&slave), 0, "a keystroke was queued on the terminal");
    record_of(&cg, "file_ioctl", |r| {
        self_protection(r) && r["target"]["ioctl"] == "TIOCSTI"
    });
    assert_eq!(
        ioctl_on_terminal(Some(&cg), &slave, 0x541C),
        "ERR:1",
        "TIOCLINUX"
    );

    // The terminal still works for the confined command: its size, its modes.
    let mut stty = Command::new("stty");
    stty.arg("size")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = spawn_in_cgroup(&mut stty, &cg.path)
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "stty: {}", stderr(&out));

    // Outside, root can push input: the ioctl is what the sandbox takes away.
    assert_eq!(ioctl_on_terminal(None, &slave, tiocsti), "OK:done");
    assert_eq!(queued(&slave), 1);
}

/// A 32-bit program (built on the spot with binutils' `as --32` and `ld -m elf_i386`) that
/// calls ioctl(0, TIOCSTI, "x") through the i386 system call table and exits with the errno (0
/// on success). Its ioctls arrive through the kernel's compat entry point: `file_ioctl_compat`
/// from 6.8 on, `file_ioctl` before.
const TIOCSTI_32: &str = "
    .section .data
ch: .byte 'x'
    .section .text
    .globl _start
_start:
    mov $54, %eax
    xor %ebx, %ebx
    mov $0x5412, %ecx
    mov $ch, %edx
    int $0x80
    neg %eax
    mov %eax, %ebx
    mov $1, %eax
    int $0x80
";

/// Runs `program` with the terminal as stdin, inside `cg` or outside; its exit status.
fn exit_on_terminal(cg: Option<&Cgroup>, slave: &OwnedFd, program: &Path) -> i32 {
    on_terminal(cg, slave, Command::new(program))
        .status
        .code()
        .unwrap()
}

#[test]
fn no_keystrokes_are_pushed_by_a_32_bit_program_either() {
    let (cg, home) = confined_root("root-tty32", "");
    let source = home.join("tiocsti32.s");
    write(&source, TIOCSTI_32);
    let (object, program) = (home.join("tiocsti32.o"), home.join("tiocsti32"));
    let built = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "as --32 -o {o} {s} && ld -m elf_i386 -o {p} {o}",
            o = object.display(),
            s = source.display(),
            p = program.display()
        ))
        .output()
        .unwrap();
    assert!(built.status.success(), "build: {}", stderr(&built));
    let (_master, slave) = pty();

    assert_eq!(exit_on_terminal(Some(&cg), &slave, &program), libc::EPERM);
    assert_eq!(queued(&slave), 0, "a keystroke was queued on the terminal");
    let hook = if sandbox_agent::kernel_offsets::has_lsm_hook("file_ioctl_compat") {
        "file_ioctl_compat"
    } else {
        "file_ioctl"
    };
    record_of(&cg, hook, self_protection);

    // Outside, the same program pushes its byte: the 32-bit route is open there.
    assert_eq!(exit_on_terminal(None, &slave, &program), 0);
    assert_eq!(queued(&slave), 1);
}

/// Connects to the daemon's socket, then moves itself into the cgroup argv[1] (as a process
/// handed a connection made outside would be) and sends a request on it.
const SEND_ON_OUTSIDE_CONNECTION: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("/run/sandbox-agent.sock")
with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as f:
    f.write(str(os.getpid()))
try:
    s.sendall(b'{"version":1,"op":{"status":null}}\n')
    print("OK:sent", end="")
except OSError as e:
    print("ERR:%d" % e.errno, end="")
"#;

#[test]
fn the_daemon_cannot_be_reached_from_inside_not_even_over_a_connection_made_outside() {
    let (cg, _home) = confined_root("root-control", "");
    let agent_bin = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v sandbox-agent"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let out = cg.run(&[agent_bin.trim(), "status"]);
    assert_refused(&out, "policy cannot be changed from inside a sandbox");
    record_of(&cg, "unix_stream_connect", |r| r["action"] == "deny");

    let cgroup = cg.path.to_str().unwrap();
    assert_eq!(
        probe(None, SEND_ON_OUTSIDE_CONNECTION, &[cgroup]),
        Err(EPERM)
    );
    record_of(&cg, "socket_sendmsg", |r| r["action"] == "deny");
}
