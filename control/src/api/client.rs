//! Blocking client for the management socket, with errors an operator can act on.

use super::proto::{Request, Response};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Send one request and wait for its response.
pub fn call(socket: &str, req: &Request) -> Result<Response, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
            format!("ferrogate is not running (no management socket at {socket})")
        }
        ErrorKind::PermissionDenied => format!(
            "permission denied on {socket}: the management socket is root-only (run ferroctl as root)"
        ),
        _ => format!("cannot connect to {socket}: {e}"),
    })?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    line.push('\n');
    s.write_all(line.as_bytes())
        .map_err(|e| format!("sending to {socket}: {e}"))?;
    let mut r = BufReader::new(s);
    let mut resp = String::new();
    r.read_line(&mut resp)
        .map_err(|e| format!("reading from {socket}: {e}"))?;
    if resp.is_empty() {
        return Err(format!(
            "ferrogate closed the connection on {socket} without answering"
        ));
    }
    serde_json::from_str(&resp).map_err(|e| format!("bad response from ferrogate: {e}"))
}
