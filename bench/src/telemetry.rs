//! A client of DPDK's telemetry socket (v2), to read the ethdev counters of a DPDK program we
//! do not control (ipsec-secgw), the way the reference figures were read (`measure.py` of the
//! recipe). The socket is `SOCK_SEQPACKET`, which std cannot open, hence `socket2`.

use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A connection to one DPDK process's telemetry socket.
pub struct Telemetry {
    sock: Socket,
}

/// Where EAL puts the socket of the process started with `--file-prefix prefix` (as root).
pub fn socket_path(prefix: &str) -> PathBuf {
    PathBuf::from(format!("/var/run/dpdk/{prefix}/dpdk_telemetry.v2"))
}

impl Telemetry {
    /// Connect, retrying until `timeout` (the process may still be initialising).
    pub fn connect(path: &Path, timeout: Duration) -> Result<Telemetry, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match Self::try_connect(path) {
                Ok(t) => return Ok(t),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("telemetry socket {}: {e}", path.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn try_connect(path: &Path) -> std::io::Result<Telemetry> {
        let sock = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        sock.connect(&SockAddr::unix(path)?)?;
        let mut t = Telemetry { sock };
        t.recv()?; // the greeting (version, pid, max output length)
        Ok(t)
    }

    fn recv(&mut self) -> std::io::Result<serde_json::Value> {
        // One message per read (SEQPACKET); replies are bounded by the server's 16 KiB.
        let mut buf = vec![0u8; 1 << 16];
        let n = (&self.sock).read(&mut buf)?;
        serde_json::from_slice(&buf[..n]).map_err(std::io::Error::other)
    }

    /// Run one command (e.g. `/ethdev/stats,1`) and return the value under its name.
    pub fn query(&mut self, cmd: &str) -> Result<serde_json::Value, String> {
        (&self.sock)
            .write_all(cmd.as_bytes())
            .map_err(|e| format!("telemetry {cmd}: {e}"))?;
        let v = self.recv().map_err(|e| format!("telemetry {cmd}: {e}"))?;
        let name = cmd.split(',').next().unwrap_or(cmd);
        Ok(v.get(name).cloned().unwrap_or(serde_json::Value::Null))
    }

    /// One counter of `/ethdev/stats` of `port` (ipackets, opackets, oerrors, ...).
    pub fn port_counter(&mut self, port: u16, name: &str) -> Result<u64, String> {
        let v = self.query(&format!("/ethdev/stats,{port}"))?;
        v.get(name)
            .and_then(|x| x.as_u64())
            .ok_or_else(|| format!("telemetry: no {name} for port {port} in {v}"))
    }
}
