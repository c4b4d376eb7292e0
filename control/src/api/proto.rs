//! Management requests and responses. A response carries `data` as JSON: `show` commands
//! return a list of flat objects (one per row, keys in column order), which `ferroctl`
//! prints as an aligned table or, with `--json`, as is.

use crate::config::{RawPolicy, RawRoute, RawSa, RawTunnel, RawVti, RawXconnect};
use serde::{Deserialize, Serialize};

/// One request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    ShowPorts,
    ShowInterfaces,
    ShowRoutes,
    ShowNeighbors,
    ShowStats,
    ShowErrors,
    ShowPool,
    RouteAdd {
        route: RawRoute,
    },
    RouteDel {
        prefix: String,
    },
    /// SAs, optionally filtered by name, SPI, peer (tunnel remote address) or selector (a
    /// policy or VTI name, or an address / prefix its selectors cover).
    ShowIpsecSa {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        spi: Option<u32>,
        #[serde(default)]
        peer: Option<String>,
        #[serde(default)]
        selector: Option<String>,
        #[serde(default)]
        detail: bool,
    },
    ShowIpsecPolicies,
    /// Counters per policy, VTI, default action and mode.
    ShowIpsecStats,
    /// Reinstall SAs from their configuration (exactly one selector).
    ClearIpsecSa {
        #[serde(default)]
        spi: Option<u32>,
        #[serde(default)]
        peer: Option<String>,
        /// A policy or VTI name: the SAs it uses.
        #[serde(default)]
        policy: Option<String>,
        #[serde(default)]
        all: bool,
    },
    /// Add an SA; with `policy` or `vti`, attach it in the same change (the make step of a
    /// rekey: an outbound SA becomes the one in use, an inbound one is admitted too).
    SaAdd {
        sa: RawSa,
        #[serde(default)]
        policy: Option<String>,
        #[serde(default)]
        vti: Option<String>,
    },
    SaDel {
        name: String,
    },
    PolicyAdd {
        policy: RawPolicy,
    },
    PolicyDel {
        name: String,
    },
    VtiAdd {
        vti: RawVti,
    },
    VtiDel {
        name: String,
    },
    TunnelAdd {
        tunnel: RawTunnel,
    },
    TunnelDel {
        name: String,
    },
    /// Tunnels with their counters; one tunnel in detail (drops by reason) when named.
    ShowTunnels {
        #[serde(default)]
        name: Option<String>,
    },
    XconnectAdd {
        xconnect: RawXconnect,
    },
    XconnectDel {
        name: String,
    },
    ShowXconnects,
    /// Liveness check (used by scripts waiting for the daemon).
    Ping,
}

/// One response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Response {
        Response {
            ok: true,
            error: None,
            data,
        }
    }
    pub fn done() -> Response {
        Response {
            ok: true,
            error: None,
            data: serde_json::Value::Null,
        }
    }
    pub fn err(e: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(e.into()),
            data: serde_json::Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_tagged_json() {
        let r = Request::RouteAdd {
            route: RawRoute {
                prefix: "10.0.0.0/8".into(),
                via: Some("192.0.2.2".into()),
                ..Default::default()
            },
        };
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.starts_with("{\"cmd\":\"route-add\""), "{s}");
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        assert!(serde_json::from_str::<Request>("{\"cmd\":\"reboot\"}").is_err());
    }
}
