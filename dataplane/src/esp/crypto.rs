//! ESP cipher suites and the per-SA crypto state: key schedules built once at SA creation,
//! then `seal` / `open` of one ESP packet in place, with no allocation.
//!
//! Suites:
//! - AES-GCM-128/192/256 with a 16-octet ICV (RFC 4106): KEYMAT = key || 4-octet salt, nonce =
//!   salt || 8-octet explicit IV, AAD = SPI || seq (32 bits) or SPI || ESN (64 bits).
//! - ChaCha20-Poly1305 (RFC 7634): the same layout with a 32-octet key.
//! - AES-GMAC (RFC 4543, ENCR_NULL_AUTH_AES_GMAC): GCM with an empty plaintext; the whole ESP
//!   packet (SPI, sequence number, IV, payload and trailer) is AAD and travels in the clear.
//! - AES-CBC-128/192/256 (RFC 3602) with HMAC-SHA1-96 (RFC 2404), HMAC-SHA-256-128,
//!   HMAC-SHA-384-192 or HMAC-SHA-512-256 (RFC 4868), encrypt-then-MAC.
//! - NULL encryption (RFC 2410) with one of those HMACs.
//!
//! With ESN the high 32 bits of the sequence number are authenticated but not sent: in the AEAD
//! AAD (RFC 4106 §5, RFC 4543 §3.3) or appended after the trailer for the HMAC (RFC 4303
//! §2.2.1).
//!
//! Explicit IVs: GCM, GMAC and ChaCha20-Poly1305 only need a nonce that never repeats under the
//! key, so the IV is the 64-bit sequence number (RFC 4106 §3.1 suggests exactly this; the SA
//! refuses to send once its sequence space is exhausted, so it never repeats). CBC needs IVs an
//! attacker cannot predict (RFC 3602 §2; a predictable IV enables chosen-plaintext attacks), so
//! the IV is AES-128 under a separate IV key, drawn from the OS RNG once at SA creation, of the
//! sequence number: distinct inputs to a PRP under a secret random key give outputs that are
//! unpredictable to anyone without that key (NIST SP 800-38A Appendix C), without a syscall or
//! RNG state update per packet.
//!
//! Key material: cipher key schedules are zeroized on drop (the `zeroize` feature of `aes`;
//! `chacha20poly1305` wipes its key), salts are held in `Zeroizing`. Two pieces are outside our
//! reach without `unsafe`: the HMAC pre-keyed inner/outer hash states of `hmac` 0.12 and the
//! GHASH key inside `aes-gcm` 0.10 are not wiped (both are derived from, not equal to, the key).

use aes::cipher::{
    block_padding::NoPadding, BlockCipher, BlockDecryptMut, BlockEncrypt, BlockEncryptMut,
    BlockSizeUser, InnerIvInit,
};
use aes::{Aes128, Aes192, Aes256};
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use crate::stats::DropReason;

pub use super::suite::{
    AesKeyLen, Integ, KeyError, Suite, ESP_HEADER_LEN, MAX_ICV_LEN, MAX_IV_LEN, SALT_LEN,
};

type Aes192Gcm = AesGcm<Aes192, U12>;

enum Aead {
    Gcm128(Aes128Gcm),
    Gcm192(Aes192Gcm),
    Gcm256(Aes256Gcm),
    ChaCha(ChaCha20Poly1305),
}

enum Block {
    A128(Aes128),
    A192(Aes192),
    A256(Aes256),
}

enum Hm {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha384(Hmac<Sha384>),
    Sha512(Hmac<Sha512>),
}

// One per SA, built once and never moved on the packet path: the size spread is harmless and
// boxing would add a pointer chase per packet.
#[allow(clippy::large_enum_variant)]
enum Engine {
    /// GCM, GMAC (`gmac`) and ChaCha20-Poly1305.
    Aead {
        aead: Aead,
        salt: Zeroizing<[u8; SALT_LEN]>,
        gmac: bool,
    },
    Cbc {
        cipher: Block,
        iv_key: Aes128,
        mac: Hm,
    },
    Null {
        mac: Hm,
    },
}

/// The crypto state of one SA.
pub struct SaCrypto {
    suite: Suite,
    engine: Engine,
}

impl std::fmt::Debug for SaCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaCrypto")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

fn check_len(expected: usize, got: usize, auth: bool) -> Result<(), KeyError> {
    if expected == got {
        Ok(())
    } else if auth {
        Err(KeyError::AuthKeyLength { expected, got })
    } else {
        Err(KeyError::EncKeyLength { expected, got })
    }
}

fn new_hmac(i: Integ, key: &[u8]) -> Result<Hm, KeyError> {
    let bad = KeyError::AuthKeyLength {
        expected: i.key_len(),
        got: key.len(),
    };
    Ok(match i {
        Integ::HmacSha1_96 => Hm::Sha1(<Hmac<_> as Mac>::new_from_slice(key).map_err(|_| bad)?),
        Integ::HmacSha256_128 => {
            Hm::Sha256(<Hmac<_> as Mac>::new_from_slice(key).map_err(|_| bad)?)
        }
        Integ::HmacSha384_192 => {
            Hm::Sha384(<Hmac<_> as Mac>::new_from_slice(key).map_err(|_| bad)?)
        }
        Integ::HmacSha512_256 => {
            Hm::Sha512(<Hmac<_> as Mac>::new_from_slice(key).map_err(|_| bad)?)
        }
    })
}

impl SaCrypto {
    /// Build the key schedules of `suite` from the encryption KEYMAT (key || salt for the
    /// counter-mode suites) and the integrity key (empty for the combined-mode suites).
    pub fn new(suite: Suite, enc_key: &[u8], auth_key: &[u8]) -> Result<Self, KeyError> {
        check_len(suite.enc_key_len(), enc_key.len(), false)?;
        check_len(suite.auth_key_len(), auth_key.len(), true)?;
        let bad = KeyError::EncKeyLength {
            expected: suite.enc_key_len(),
            got: enc_key.len(),
        };
        let engine = match suite {
            Suite::ChaCha20Poly1305 => {
                let (key, salt) = split_salt(enc_key);
                let aead = Aead::ChaCha(ChaCha20Poly1305::new_from_slice(key).map_err(|_| bad)?);
                Engine::Aead {
                    aead,
                    salt,
                    gmac: false,
                }
            }
            Suite::AesGcm(k) | Suite::AesGmac(k) => {
                let (key, salt) = split_salt(enc_key);
                let aead = match k {
                    AesKeyLen::Aes128 => {
                        Aead::Gcm128(Aes128Gcm::new_from_slice(key).map_err(|_| bad)?)
                    }
                    AesKeyLen::Aes192 => {
                        Aead::Gcm192(Aes192Gcm::new_from_slice(key).map_err(|_| bad)?)
                    }
                    AesKeyLen::Aes256 => {
                        Aead::Gcm256(Aes256Gcm::new_from_slice(key).map_err(|_| bad)?)
                    }
                };
                Engine::Aead {
                    aead,
                    salt,
                    gmac: matches!(suite, Suite::AesGmac(_)),
                }
            }
            Suite::AesCbc(k, i) => {
                let cipher = match k {
                    AesKeyLen::Aes128 => {
                        Block::A128(Aes128::new_from_slice(enc_key).map_err(|_| bad)?)
                    }
                    AesKeyLen::Aes192 => {
                        Block::A192(Aes192::new_from_slice(enc_key).map_err(|_| bad)?)
                    }
                    AesKeyLen::Aes256 => {
                        Block::A256(Aes256::new_from_slice(enc_key).map_err(|_| bad)?)
                    }
                };
                let mut ivk = Zeroizing::new([0u8; 16]);
                OsRng
                    .try_fill_bytes(&mut ivk[..])
                    .map_err(|_| KeyError::Rng)?;
                let iv_key = Aes128::new_from_slice(&ivk[..]).map_err(|_| KeyError::Rng)?;
                Engine::Cbc {
                    cipher,
                    iv_key,
                    mac: new_hmac(i, auth_key)?,
                }
            }
            Suite::Null(i) => Engine::Null {
                mac: new_hmac(i, auth_key)?,
            },
        };
        Ok(SaCrypto { suite, engine })
    }

    /// The suite.
    #[inline]
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The explicit IV of the packet with sequence number `seq` (the first `iv_len()` octets).
    #[inline]
    pub fn iv_for(&self, seq: u64) -> [u8; MAX_IV_LEN] {
        let mut iv = [0u8; MAX_IV_LEN];
        match &self.engine {
            Engine::Aead { .. } => iv[..8].copy_from_slice(&seq.to_be_bytes()),
            Engine::Cbc { iv_key, .. } => {
                iv[..8].copy_from_slice(&seq.to_be_bytes());
                iv_key.encrypt_block((&mut iv).into());
            }
            Engine::Null { .. } => {}
        }
        iv
    }

    /// Protect one ESP packet in place. `buf[esp..]` holds the ESP header, the IV, the
    /// plaintext payload with its trailer, and `icv_len()` octets of room for the ICV at the
    /// end. `esn_high` is the high half of the sequence number when ESN is in use. GMAC with
    /// ESN borrows the 4 octets before `esp` (restored afterwards), so it needs `esp >= 4`.
    pub fn seal(
        &self,
        buf: &mut [u8],
        esp: usize,
        esn_high: Option<u32>,
    ) -> Result<(), DropReason> {
        let (ivl, icvl) = (self.suite.iv_len(), self.suite.icv_len());
        let ct_start = esp + ESP_HEADER_LEN + ivl;
        let Some(ct_end) = buf.len().checked_sub(icvl).filter(|&e| e >= ct_start) else {
            return Err(DropReason::EspMalformed);
        };
        match &self.engine {
            Engine::Aead { aead, salt, gmac } => {
                let nonce = nonce(salt, &buf[esp + ESP_HEADER_LEN..ct_start]);
                let tag = if *gmac {
                    with_gmac_aad(buf, esp, ct_end, esn_high, |aad| {
                        aead.seal(&nonce, aad, &mut [])
                    })?
                } else {
                    let (aad, n) = aead_aad(&buf[esp..], esn_high);
                    aead.seal(&nonce, &aad[..n], &mut buf[ct_start..ct_end])
                };
                let tag = tag.map_err(|_| DropReason::EspMalformed)?;
                buf[ct_end..].copy_from_slice(&tag);
            }
            Engine::Cbc { cipher, mac, .. } => {
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&buf[esp + ESP_HEADER_LEN..ct_start]);
                cipher.encrypt(&iv, &mut buf[ct_start..ct_end])?;
                let (data, icv) = buf.split_at_mut(ct_end);
                mac.sign(&data[esp..], esn_high, icv);
            }
            Engine::Null { mac } => {
                let (data, icv) = buf.split_at_mut(ct_end);
                mac.sign(&data[esp..], esn_high, icv);
            }
        }
        Ok(())
    }

    /// Verify and decrypt one ESP packet in place: the inverse of [`seal`](Self::seal), over
    /// the same layout. The ICV is compared in constant time; on failure nothing is decrypted
    /// and the result is `EspAuthFailed`.
    pub fn open(
        &self,
        buf: &mut [u8],
        esp: usize,
        esn_high: Option<u32>,
    ) -> Result<(), DropReason> {
        let (ivl, icvl) = (self.suite.iv_len(), self.suite.icv_len());
        let ct_start = esp + ESP_HEADER_LEN + ivl;
        let Some(ct_end) = buf.len().checked_sub(icvl).filter(|&e| e >= ct_start) else {
            return Err(DropReason::EspMalformed);
        };
        match &self.engine {
            Engine::Aead { aead, salt, gmac } => {
                let nonce = nonce(salt, &buf[esp + ESP_HEADER_LEN..ct_start]);
                let mut tag = [0u8; 16];
                tag.copy_from_slice(&buf[ct_end..]);
                let r = if *gmac {
                    with_gmac_aad(buf, esp, ct_end, esn_high, |aad| {
                        aead.open(&nonce, aad, &mut [], &tag)
                    })?
                } else {
                    let (aad, n) = aead_aad(&buf[esp..], esn_high);
                    aead.open(&nonce, &aad[..n], &mut buf[ct_start..ct_end], &tag)
                };
                r.map_err(|_| DropReason::EspAuthFailed)
            }
            Engine::Cbc { cipher, mac, .. } => {
                if (ct_end - ct_start) & 15 != 0 {
                    return Err(DropReason::EspMalformed);
                }
                let (data, icv) = buf.split_at(ct_end);
                if !mac.verify(&data[esp..], esn_high, icv) {
                    return Err(DropReason::EspAuthFailed);
                }
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&buf[esp + ESP_HEADER_LEN..ct_start]);
                cipher.decrypt(&iv, &mut buf[ct_start..ct_end])
            }
            Engine::Null { mac } => {
                let (data, icv) = buf.split_at(ct_end);
                if mac.verify(&data[esp..], esn_high, icv) {
                    Ok(())
                } else {
                    Err(DropReason::EspAuthFailed)
                }
            }
        }
    }
}

/// Split a counter-mode KEYMAT (length checked by the caller) into key and salt.
fn split_salt(keymat: &[u8]) -> (&[u8], Zeroizing<[u8; SALT_LEN]>) {
    let (key, s) = keymat.split_at(keymat.len().saturating_sub(SALT_LEN));
    let mut salt = Zeroizing::new([0u8; SALT_LEN]);
    if s.len() == SALT_LEN {
        salt.copy_from_slice(s);
    }
    (key, salt)
}

#[inline]
fn nonce(salt: &[u8; SALT_LEN], iv: &[u8]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..SALT_LEN].copy_from_slice(salt);
    n[SALT_LEN..].copy_from_slice(iv);
    n
}

/// RFC 4106 §5 AAD: SPI || seq, or SPI || ESN high || seq low. `esp` starts at the SPI.
#[inline]
fn aead_aad(esp: &[u8], esn_high: Option<u32>) -> ([u8; 12], usize) {
    let mut aad = [0u8; 12];
    aad[..4].copy_from_slice(&esp[..4]);
    match esn_high {
        Some(h) => {
            aad[4..8].copy_from_slice(&h.to_be_bytes());
            aad[8..12].copy_from_slice(&esp[4..8]);
            (aad, 12)
        }
        None => {
            aad[4..8].copy_from_slice(&esp[4..8]);
            (aad, 8)
        }
    }
}

/// Run `f` over the RFC 4543 AAD: SPI || seq || IV || payload, which is `buf[esp..ct_end]` as
/// it lies; with ESN, SPI || ESN high || seq low || IV || payload, made contiguous by moving the
/// SPI 4 octets down over borrowed bytes and writing the high half in its place, then undoing
/// both.
fn with_gmac_aad<R>(
    buf: &mut [u8],
    esp: usize,
    ct_end: usize,
    esn_high: Option<u32>,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, DropReason> {
    let Some(h) = esn_high else {
        return Ok(f(&buf[esp..ct_end]));
    };
    let Some(lo) = esp.checked_sub(4) else {
        return Err(DropReason::NoHeadroom);
    };
    let mut saved = [0u8; 4];
    saved.copy_from_slice(&buf[lo..esp]);
    buf.copy_within(esp..esp + 4, lo);
    buf[esp..esp + 4].copy_from_slice(&h.to_be_bytes());
    let r = f(&buf[lo..ct_end]);
    buf.copy_within(lo..esp, esp);
    buf[lo..esp].copy_from_slice(&saved);
    Ok(r)
}

fn seal_with<A: AeadInPlace<NonceSize = U12, TagSize = U16>>(
    a: &A,
    nonce: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; 16], aes_gcm::Error> {
    a.encrypt_in_place_detached(&(*nonce).into(), aad, buf)
        .map(Into::into)
}

fn open_with<A: AeadInPlace<NonceSize = U12, TagSize = U16>>(
    a: &A,
    nonce: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; 16],
) -> Result<(), aes_gcm::Error> {
    a.decrypt_in_place_detached(&(*nonce).into(), aad, buf, &(*tag).into())
}

impl Aead {
    #[inline]
    fn seal(&self, n: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Result<[u8; 16], aes_gcm::Error> {
        match self {
            Aead::Gcm128(a) => seal_with(a, n, aad, buf),
            Aead::Gcm192(a) => seal_with(a, n, aad, buf),
            Aead::Gcm256(a) => seal_with(a, n, aad, buf),
            Aead::ChaCha(a) => seal_with(a, n, aad, buf),
        }
    }
    #[inline]
    fn open(
        &self,
        n: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), aes_gcm::Error> {
        match self {
            Aead::Gcm128(a) => open_with(a, n, aad, buf, tag),
            Aead::Gcm192(a) => open_with(a, n, aad, buf, tag),
            Aead::Gcm256(a) => open_with(a, n, aad, buf, tag),
            Aead::ChaCha(a) => open_with(a, n, aad, buf, tag),
        }
    }
}

fn cbc_enc<C>(c: &C, iv: &[u8; 16], buf: &mut [u8]) -> Result<(), DropReason>
where
    C: BlockEncryptMut + BlockCipher + BlockSizeUser<BlockSize = U16> + Clone,
{
    let n = buf.len();
    cbc::Encryptor::<C>::inner_iv_init(c.clone(), &(*iv).into())
        .encrypt_padded_mut::<NoPadding>(buf, n)
        .map(|_| ())
        .map_err(|_| DropReason::EspMalformed)
}

fn cbc_dec<C>(c: &C, iv: &[u8; 16], buf: &mut [u8]) -> Result<(), DropReason>
where
    C: BlockDecryptMut + BlockCipher + BlockSizeUser<BlockSize = U16> + Clone,
{
    cbc::Decryptor::<C>::inner_iv_init(c.clone(), &(*iv).into())
        .decrypt_padded_mut::<NoPadding>(buf)
        .map(|_| ())
        .map_err(|_| DropReason::EspMalformed)
}

impl Block {
    #[inline]
    fn encrypt(&self, iv: &[u8; 16], buf: &mut [u8]) -> Result<(), DropReason> {
        match self {
            Block::A128(c) => cbc_enc(c, iv, buf),
            Block::A192(c) => cbc_enc(c, iv, buf),
            Block::A256(c) => cbc_enc(c, iv, buf),
        }
    }
    #[inline]
    fn decrypt(&self, iv: &[u8; 16], buf: &mut [u8]) -> Result<(), DropReason> {
        match self {
            Block::A128(c) => cbc_dec(c, iv, buf),
            Block::A192(c) => cbc_dec(c, iv, buf),
            Block::A256(c) => cbc_dec(c, iv, buf),
        }
    }
}

fn mac_sign<M: Mac + Clone>(m: &M, data: &[u8], esn_high: Option<u32>, icv: &mut [u8]) {
    let mut m = m.clone();
    m.update(data);
    if let Some(h) = esn_high {
        m.update(&h.to_be_bytes());
    }
    let out = m.finalize().into_bytes();
    let n = icv.len().min(out.len());
    icv[..n].copy_from_slice(&out[..n]);
}

fn mac_verify<M: Mac + Clone>(m: &M, data: &[u8], esn_high: Option<u32>, icv: &[u8]) -> bool {
    let mut m = m.clone();
    m.update(data);
    if let Some(h) = esn_high {
        m.update(&h.to_be_bytes());
    }
    m.verify_truncated_left(icv).is_ok()
}

impl Hm {
    #[inline]
    fn sign(&self, data: &[u8], esn_high: Option<u32>, icv: &mut [u8]) {
        match self {
            Hm::Sha1(m) => mac_sign(m, data, esn_high, icv),
            Hm::Sha256(m) => mac_sign(m, data, esn_high, icv),
            Hm::Sha384(m) => mac_sign(m, data, esn_high, icv),
            Hm::Sha512(m) => mac_sign(m, data, esn_high, icv),
        }
    }
    #[inline]
    fn verify(&self, data: &[u8], esn_high: Option<u32>, icv: &[u8]) -> bool {
        match self {
            Hm::Sha1(m) => mac_verify(m, data, esn_high, icv),
            Hm::Sha256(m) => mac_verify(m, data, esn_high, icv),
            Hm::Sha384(m) => mac_verify(m, data, esn_high, icv),
            Hm::Sha512(m) => mac_verify(m, data, esn_high, icv),
        }
    }
}
