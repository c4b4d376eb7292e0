//! DPDK errors: an errno plus DPDK's own text for it, and what we were doing.

use std::ffi::CStr;
use std::fmt;

/// A failed DPDK call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Positive errno (as DPDK reports it in `rte_errno` or as a negative return).
    pub errno: i32,
    /// What failed and why.
    pub msg: String,
}

impl Error {
    /// The driver does not implement the operation (ENOTSUP).
    pub fn is_unsupported(&self) -> bool {
        self.errno == 95
    }

    /// An error from `what` with errno `errno` (sign ignored).
    pub fn from_errno(what: &str, errno: i32) -> Error {
        let errno = errno.abs();
        // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated
        // string for any errno value.
        let text = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(errno)) }
            .to_string_lossy()
            .into_owned();
        Error {
            errno,
            msg: format!("{what}: {text} (errno {errno})"),
        }
    }

    /// An error from `what` using the current `rte_errno`.
    pub fn last(what: &str) -> Error {
        // SAFETY: fg_errno reads the thread-local rte_errno; no preconditions.
        Error::from_errno(what, unsafe { dpdk_sys::fg_errno() })
    }

    /// An error with a message of our own.
    pub fn msg(msg: impl Into<String>) -> Error {
        Error {
            errno: 0,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}
