//! What an ESP cipher suite is: the suites we implement, their key, IV, ICV and padding
//! sizes, and why a key can be refused. The crypto itself is in `crypto`.

/// Length of the ESP header (SPI and sequence number).
pub const ESP_HEADER_LEN: usize = 8;
/// Largest explicit IV of any suite (AES-CBC).
pub const MAX_IV_LEN: usize = 16;
/// Largest ICV of any suite (HMAC-SHA-512-256).
pub const MAX_ICV_LEN: usize = 32;
/// Length of the salt that ends the KEYMAT of the counter-mode suites.
pub const SALT_LEN: usize = 4;

/// AES key size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AesKeyLen {
    Aes128,
    Aes192,
    Aes256,
}

impl AesKeyLen {
    /// Key length in octets.
    pub const fn bytes(self) -> usize {
        match self {
            AesKeyLen::Aes128 => 16,
            AesKeyLen::Aes192 => 24,
            AesKeyLen::Aes256 => 32,
        }
    }
}

/// Integrity algorithm of the non-AEAD suites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Integ {
    /// HMAC-SHA1-96 (RFC 2404): 20-octet key, 12-octet ICV.
    HmacSha1_96,
    /// HMAC-SHA-256-128 (RFC 4868): 32-octet key, 16-octet ICV.
    HmacSha256_128,
    /// HMAC-SHA-384-192 (RFC 4868): 48-octet key, 24-octet ICV.
    HmacSha384_192,
    /// HMAC-SHA-512-256 (RFC 4868): 64-octet key, 32-octet ICV.
    HmacSha512_256,
}

impl Integ {
    /// Key length in octets.
    pub const fn key_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 20,
            Integ::HmacSha256_128 => 32,
            Integ::HmacSha384_192 => 48,
            Integ::HmacSha512_256 => 64,
        }
    }
    /// ICV length in octets.
    pub const fn icv_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 12,
            Integ::HmacSha256_128 => 16,
            Integ::HmacSha384_192 => 24,
            Integ::HmacSha512_256 => 32,
        }
    }
}

/// An ESP cipher suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-GCM with a 16-octet ICV (RFC 4106).
    AesGcm(AesKeyLen),
    /// ChaCha20-Poly1305 (RFC 7634).
    ChaCha20Poly1305,
    /// AES-GMAC, authentication only (RFC 4543).
    AesGmac(AesKeyLen),
    /// AES-CBC (RFC 3602) with an HMAC.
    AesCbc(AesKeyLen, Integ),
    /// NULL encryption (RFC 2410) with an HMAC.
    Null(Integ),
}

impl Suite {
    /// Length of the encryption KEYMAT: cipher key plus, for the counter-mode suites, the
    /// 4-octet salt at its end. 0 for NULL.
    pub const fn enc_key_len(self) -> usize {
        match self {
            Suite::AesGcm(k) | Suite::AesGmac(k) => k.bytes() + SALT_LEN,
            Suite::ChaCha20Poly1305 => 32 + SALT_LEN,
            Suite::AesCbc(k, _) => k.bytes(),
            Suite::Null(_) => 0,
        }
    }
    /// Length of the integrity key (0 for the combined-mode suites).
    pub const fn auth_key_len(self) -> usize {
        match self {
            Suite::AesCbc(_, i) | Suite::Null(i) => i.key_len(),
            _ => 0,
        }
    }
    /// Length of the explicit IV carried after the ESP header.
    pub const fn iv_len(self) -> usize {
        match self {
            Suite::AesGcm(_) | Suite::AesGmac(_) | Suite::ChaCha20Poly1305 => 8,
            Suite::AesCbc(..) => 16,
            Suite::Null(_) => 0,
        }
    }
    /// Length of the ICV.
    pub const fn icv_len(self) -> usize {
        match self {
            Suite::AesGcm(_) | Suite::AesGmac(_) | Suite::ChaCha20Poly1305 => 16,
            Suite::AesCbc(_, i) | Suite::Null(i) => i.icv_len(),
        }
    }
    /// The payload, padding, pad length and next header together are a multiple of this.
    pub const fn pad_align(self) -> usize {
        match self {
            Suite::AesCbc(..) => 16,
            _ => 4,
        }
    }
    /// True when the payload is encrypted (all but GMAC and NULL).
    pub const fn encrypts(self) -> bool {
        !matches!(self, Suite::AesGmac(_) | Suite::Null(_))
    }
}

/// Why an SA's keys were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The encryption KEYMAT has the wrong length for the suite.
    EncKeyLength { expected: usize, got: usize },
    /// The integrity key has the wrong length for the suite.
    AuthKeyLength { expected: usize, got: usize },
    /// The OS random number generator failed (CBC IV key).
    Rng,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::EncKeyLength { expected, got } => {
                write!(
                    f,
                    "encryption key is {got} octets, the suite needs {expected}"
                )
            }
            KeyError::AuthKeyLength { expected, got } => {
                write!(
                    f,
                    "integrity key is {got} octets, the suite needs {expected}"
                )
            }
            KeyError::Rng => f.write_str("OS random number generator failed"),
        }
    }
}

impl std::error::Error for KeyError {}
