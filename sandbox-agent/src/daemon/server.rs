//! The control socket: one JSON request line in, one JSON response line out. A malformed
//! request gets an error response; it never takes the daemon down.

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};

use super::{peer::Peer, DaemonState};
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

pub async fn serve(listener: UnixListener, state: Arc<Mutex<DaemonState>>) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .context("accept on control socket")?;
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
    let response = tokio::task::spawn_blocking(move || respond(&line, &peer, &state)).await?;
    let mut out = serde_json::to_vec(&response)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    // After the answer, so the caller does not wait for it; not after a `status`, which
    // compiles nothing (and is what a monitor polls).
    if !matches!(response.result, Reply::Status(_)) {
        tokio::task::spawn_blocking(super::release_free_heap).await?;
    }
    Ok(())
}

fn respond(line: &[u8], peer: &Peer, state: &Mutex<DaemonState>) -> Response {
    if line.len() > MAX_REQUEST_BYTES {
        return Response::error(format!("request larger than {MAX_REQUEST_BYTES} bytes"));
    }
    let request: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => return Response::error(format!("malformed request: {e}")),
    };
    if request.version != PROTOCOL_VERSION {
        return Response::error(format!(
            "protocol version {} not supported (daemon speaks {PROTOCOL_VERSION})",
            request.version
        ));
    }
    Response::new(super::requests::handle(state, request.op, peer))
}
