//! The CLI side of the control protocol.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
};

use anyhow::{bail, Context as _};

use crate::protocol::{Op, Reply, Request, Response, PROTOCOL_VERSION};

/// Sends one request and returns the daemon's reply; a daemon-side error becomes an `Err`.
pub fn call(socket: &Path, op: Op) -> anyhow::Result<Reply> {
    let mut stream = match UnixStream::connect(socket) {
        Ok(stream) => stream,
        // Every policy denies the control socket: the kernel refused a confined caller.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => bail!(
            "the kernel refused the connection to {}: this process runs confined by a \
             sandbox-agent policy, and policy cannot be changed from inside a sandbox",
            socket.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot reach the sandbox-agent daemon at {} (start it with `sandbox-agent daemon`)",
                    socket.display()
                )
            })
        }
    };
    let mut line = serde_json::to_vec(&Request::new(op))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .context("sending request to the daemon")?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .context("reading the daemon's answer")?;
    if answer.is_empty() {
        bail!("the daemon closed the connection without answering");
    }
    let response: Response =
        serde_json::from_str(&answer).context("the daemon's answer is not valid")?;
    if response.version != PROTOCOL_VERSION {
        bail!(
            "daemon speaks protocol {}, this CLI speaks {PROTOCOL_VERSION}",
            response.version
        );
    }
    match response.result {
        Reply::Error { message } => bail!("{message}"),
        reply => Ok(reply),
    }
}
