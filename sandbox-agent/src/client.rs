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
    call_held(socket, op).map(|(reply, _)| reply)
}

/// Like `call`, and keeps the connection for the daemon's later answers (a `run`'s end).
pub fn call_held(socket: &Path, op: Op) -> anyhow::Result<(Reply, Held)> {
    let mut stream = connect(socket)?;
    let mut line = serde_json::to_vec(&Request::new(op))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .context("sending request to the daemon")?;
    let mut held = Held {
        reader: BufReader::new(stream),
    };
    let reply = held
        .next_reply()?
        .context("the daemon closed the connection without answering")?;
    Ok((reply, held))
}

fn connect(socket: &Path) -> anyhow::Result<UnixStream> {
    match UnixStream::connect(socket) {
        Ok(stream) => Ok(stream),
        // Every policy denies the control socket: the kernel refused a confined caller.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => bail!(
            "the kernel refused the connection to {}: this process runs confined by a \
             sandbox-agent policy, and policy cannot be changed from inside a sandbox",
            socket.display()
        ),
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot reach the sandbox-agent daemon at {} (start it with `sandbox-agent daemon`)",
                socket.display()
            )
        }),
    }
}

/// A connection the daemon answers on again.
pub struct Held {
    reader: BufReader<UnixStream>,
}

impl Held {
    /// The daemon's next answer; `None` when the connection closed (or broke: the daemon was
    /// killed) before it came. A daemon-side error becomes an `Err`.
    pub fn next_reply(&mut self) -> anyhow::Result<Option<Reply>> {
        let mut answer = String::new();
        match self.reader.read_line(&mut answer) {
            Ok(0) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
            Err(e) => return Err(e).context("reading the daemon's answer"),
            Ok(_) => {}
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
            reply => Ok(Some(reply)),
        }
    }
}
