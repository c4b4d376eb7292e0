//! The management socket thread. It creates the socket root-only (directory 0700, socket
//! 0600), reads one JSON request per line, hands it to the control loop over a bounded
//! channel and writes back the answer. Parsing errors are answered here; nothing the client
//! sends can reach the control loop except a well-formed `Request`.

use super::proto::{Request, Response};
use crossbeam::channel::{bounded, Receiver, Sender};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

/// A request waiting for the control loop, with where to send the answer.
pub struct Pending {
    pub req: Request,
    pub reply: Sender<Response>,
}

/// Bind the socket (replacing a stale one) and start the accept thread.
pub fn start(path: &str) -> Result<Receiver<Pending>, String> {
    let p = Path::new(path);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("system.socket: cannot create {}: {e}", dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    if p.exists() {
        if UnixStream::connect(p).is_ok() {
            return Err(format!(
                "system.socket: {path} is in use by a running ferrogate"
            ));
        }
        std::fs::remove_file(p)
            .map_err(|e| format!("system.socket: cannot remove stale {path}: {e}"))?;
    }
    // The directory is ours and 0700, so nobody else can reach the socket in the moment
    // between bind and chmod (with the usual umask it is not writable by others then either).
    let bound = UnixListener::bind(p);
    let l = bound.map_err(|e| format!("system.socket: cannot bind {path}: {e}"))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("system.socket: chmod {path}: {e}"))?;
    let (tx, rx) = bounded::<Pending>(64);
    std::thread::Builder::new()
        .name("ferro-api".into())
        .spawn(move || {
            for conn in l.incoming().flatten() {
                let tx = tx.clone();
                let _ = std::thread::Builder::new()
                    .name("ferro-api-conn".into())
                    .spawn(move || serve(conn, tx));
            }
        })
        .map_err(|e| format!("cannot start the API thread: {e}"))?;
    Ok(rx)
}

fn serve(conn: UnixStream, tx: Sender<Pending>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut w) = conn.try_clone() else { return };
    let r = BufReader::new(conn);
    for line in r.lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        let resp = match serde_json::from_str::<Request>(&line) {
            Err(e) => Response::err(format!("bad request: {e}")),
            Ok(req) => {
                let (rtx, rrx) = bounded(1);
                if tx.send(Pending { req, reply: rtx }).is_err() {
                    Response::err("ferrogate is shutting down")
                } else {
                    rrx.recv_timeout(Duration::from_secs(30))
                        .unwrap_or_else(|_| Response::err("ferrogate did not answer within 30 s"))
                }
            }
        };
        let mut out = serde_json::to_string(&resp).unwrap_or_else(|_| "{\"ok\":false}".into());
        out.push('\n');
        if w.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}
