//! The control socket: one JSON request line in, one JSON response line out (and for `run` a
//! second one once its command has exited). A malformed request gets an error response; it
//! never takes the daemon down.

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use tokio::{
    io::{unix::AsyncFd, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Interest},
    net::{unix::OwnedWriteHalf, UnixListener, UnixStream},
};

use super::{
    peer::Peer,
    requests::{self, RunUnderWay},
    DaemonState,
};
use crate::protocol::{Reply, Request, Response, MAX_REQUEST_BYTES, PROTOCOL_VERSION};

pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!(
            "another daemon is already serving {}; stop it first",
            path.display()
        );
    }
    // A socket file without a listener is left over from a crash.
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
    // Anyone may connect (status is public); changes are refused by peer uid, with a clear error.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("cannot chmod {}", path.display()))?;
    Ok(listener)
}

/// Each run under way holds two descriptors (its connection and its command's pidfd) for as
/// long as its command runs: the soft limit on open files (1,024 under systemd's defaults) is
/// raised to the hard one, so hundreds of runs at once do not exhaust it. Returns the limit.
pub fn raise_descriptor_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit that we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads one rlimit that we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

pub async fn serve(listener: UnixListener, state: Arc<Mutex<DaemonState>>) -> anyhow::Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or memory, or a connection gone before it was taken: a
                // later accept may succeed, and the control socket must not stop for it.
                tracing::warn!("accept on the control socket: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = handle_connection(stream, state).await {
                tracing::debug!("control connection: {e:#}");
            }
        });
    }
}

async fn handle_connection(
    stream: UnixStream,
    state: Arc<Mutex<DaemonState>>,
) -> anyhow::Result<()> {
    let cred = stream.peer_cred().context("SO_PEERCRED")?;
    let peer = Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
    };
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_BYTES as u64 + 1));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await?;
    // Requests do blocking work (files, /proc, cgroups, the maps): off the async workers, so
    // the audit reader keeps draining meanwhile.
    let answer_state = state.clone();
    let (response, run) =
        tokio::task::spawn_blocking(move || respond(&line, &peer, &answer_state)).await?;
    send(&mut write, &response).await?;
    // After the answer, so the caller does not wait for it; not after a `status`, which
    // compiles nothing (and is what a monitor polls).
    if !matches!(response.result, Reply::Status(_)) {
        tokio::task::spawn_blocking(super::release_free_heap).await?;
    }
    if let Some(run) = run {
        // The run ends when its command exits, whether or not its caller is still there to
        // hear it: the caller's own `run_end` would cost it a second connection.
        let cgroup_id = run.cgroup_id;
        // SAFETY: the pidfd is owned by the `Pidfd` moved in, which closes it only when the
        // `AsyncFd` drops it, and its `as_raw_fd` always gives that one descriptor.
        let command = unsafe { AsyncFd::register_with_interest(run.command, Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context("watching the run's command")?;
        // A pidfd polls readable once its process has exited; nothing is read from it.
        let exited = command.readable().await;
        drop(exited.context("waiting for the run's command to exit")?);
        let ended =
            tokio::task::spawn_blocking(move || requests::end_exited_run(&state, cgroup_id))
                .await?;
        send(&mut write, &Response::new(ended)).await?;
    }
    Ok(())
}

async fn send(write: &mut OwnedWriteHalf, response: &Response) -> anyhow::Result<()> {
    let mut out = serde_json::to_vec(response)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    Ok(())
}

fn respond(
    line: &[u8],
    peer: &Peer,
    state: &Mutex<DaemonState>,
) -> (Response, Option<RunUnderWay>) {
    if line.len() > MAX_REQUEST_BYTES {
        let e = format!("request larger than {MAX_REQUEST_BYTES} bytes");
        return (Response::error(e), None);
    }
    let request: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => return (Response::error(format!("malformed request: {e}")), None),
    };
    if request.version != PROTOCOL_VERSION {
        let e = format!(
            "protocol version {} not supported (daemon speaks {PROTOCOL_VERSION})",
            request.version
        );
        return (Response::error(e), None);
    }
    let (reply, run) = requests::handle(state, request.op, peer);
    (Response::new(reply), run)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_descriptor_limit_is_raised_to_the_hard_one() {
        let raised = super::raise_descriptor_limit().unwrap();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit that we own.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!((limit.rlim_cur, raised), (limit.rlim_max, limit.rlim_max));
    }
}
