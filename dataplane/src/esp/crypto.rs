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
//! Backends ([`Backend`]): AES-GCM of every key size and GMAC run on intel-ipsec-mb (the
//! `ipsec-mb` binding: VAES/AVX-512 GCM, 2.5-3x ring's speed on ESP-sized packets here, README
//! "Build notes"); ChaCha20-Poly1305 on `ring` (its vectorised ChaCha20/Poly1305 beats
//! ipsec-mb's direct API at these sizes); CBC, the HMACs and NULL on RustCrypto. Where
//! ipsec-mb cannot be set up (`Backend::Portable`), AES-128/256-GCM run on ring and
//! AES-192-GCM and GMAC on `aes-gcm`. All compare the ICV in constant time. ipsec-mb and ring
//! decrypt while they compute the tag; on a wrong tag ipsec-mb's binding restores the
//! ciphertext and ring zeroes the payload; RustCrypto verifies first. Either way a packet that
//! fails is dropped whole.
//!
//! Key material: salts are held in `Zeroizing`; RustCrypto's AES key schedules are zeroized on
//! drop (the `zeroize` feature of `aes`), ipsec-mb's expanded keys by its binding. ring has no zeroize: its key (AES schedule and GHASH
//! table, or the ChaCha20 key) is overwritten in place on drop with the key of an all-zero key
//! (see [`RingKey`]). Outside our reach without `unsafe`: the HMAC pre-keyed inner/outer hash
//! states of `hmac` 0.12 and the GHASH key inside `aes-gcm` 0.10 (GMAC, AES-192-GCM) are not
//! wiped (both are derived from, not equal to, the key).

use aes::cipher::{
    block_padding::NoPadding, BlockCipher, BlockDecryptMut, BlockEncrypt, BlockEncryptMut,
    BlockSizeUser, InnerIvInit,
};
use aes::{Aes128, Aes192, Aes256};
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use hmac::{Hmac, Mac};
use ring::aead::{
    Aad, Algorithm, LessSafeKey, Nonce, Tag, UnboundKey, AES_128_GCM, AES_256_GCM,
    CHACHA20_POLY1305,
};
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use crate::stats::DropReason;

pub use super::suite::{
    AesKeyLen, Integ, KeyError, Suite, ESP_HEADER_LEN, MAX_ICV_LEN, MAX_IV_LEN, SALT_LEN,
};

type Aes192Gcm = AesGcm<Aes192, U12>;

enum Aead {
    /// AES-GCM and GMAC, every key size, on intel-ipsec-mb.
    Imb(ipsec_mb::GcmKey),
    /// ChaCha20-Poly1305, and AES-128/256-GCM where intel-ipsec-mb is unusable.
    Ring(RingKey),
    /// GMAC (any key size) and AES-192-GCM, which ring does not offer.
    Gcm128(Aes128Gcm),
    Gcm192(Aes192Gcm),
    Gcm256(Aes256Gcm),
}

/// A ring AEAD key that is overwritten when dropped. ring neither zeroizes nor exposes its key
/// state, and `unsafe` stays out of this crate, so on drop the key is replaced *in place* by
/// the key of an all-zero key of the same algorithm: assignment writes the new state over the
/// old one in the SA's own (heap) memory, which is what would otherwise keep the schedule after
/// the SA is freed. `black_box` keeps the compiler from dropping the store as dead. Copies made
/// while the key was moved into place (before the SA was boxed) are not reached, as for every
/// other key type here.
struct RingKey(LessSafeKey);

impl RingKey {
    fn new(alg: &'static Algorithm, key: &[u8]) -> Option<Self> {
        UnboundKey::new(alg, key)
            .ok()
            .map(|k| RingKey(LessSafeKey::new(k)))
    }
}

impl Drop for RingKey {
    fn drop(&mut self) {
        let alg = self.0.algorithm();
        let zero = [0u8; 32];
        if let Some(z) = zero
            .get(..alg.key_len())
            .and_then(|k| UnboundKey::new(alg, k).ok())
        {
            self.0 = LessSafeKey::new(z);
            std::hint::black_box(&self.0);
        }
    }
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

/// What runs AES-GCM and GMAC on this machine (`Backend::Fastest`), for the start-up log.
pub fn gcm_backend() -> String {
    match ipsec_mb::arch() {
        Some(a) => format!("intel-ipsec-mb ({a})"),
        None => "ring / RustCrypto (intel-ipsec-mb could not be set up)".into(),
    }
}

/// Which implementation runs the AES-GCM and GMAC suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// intel-ipsec-mb when it can be set up on this CPU, else `Portable`.
    Fastest,
    /// ring for AES-128/256-GCM, RustCrypto for AES-192-GCM and GMAC.
    Portable,
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
    /// counter-mode suites) and the integrity key (empty for the combined-mode suites), on the
    /// fastest backend this machine has.
    pub fn new(suite: Suite, enc_key: &[u8], auth_key: &[u8]) -> Result<Self, KeyError> {
        Self::with_backend(suite, enc_key, auth_key, Backend::Fastest)
    }

    /// [`new`](Self::new) with a choice of backend: `Portable` is what runs where
    /// intel-ipsec-mb cannot be set up (tests cross-check the two; `ferrobench aead` measures
    /// both).
    pub fn with_backend(
        suite: Suite,
        enc_key: &[u8],
        auth_key: &[u8],
        backend: Backend,
    ) -> Result<Self, KeyError> {
        check_len(suite.enc_key_len(), enc_key.len(), false)?;
        check_len(suite.auth_key_len(), auth_key.len(), true)?;
        let bad = KeyError::EncKeyLength {
            expected: suite.enc_key_len(),
            got: enc_key.len(),
        };
        let engine = match suite {
            Suite::ChaCha20Poly1305 => {
                let (key, salt) = split_salt(enc_key);
                let aead = Aead::Ring(RingKey::new(&CHACHA20_POLY1305, key).ok_or(bad)?);
                Engine::Aead {
                    aead,
                    salt,
                    gmac: false,
                }
            }
            Suite::AesGcm(k) | Suite::AesGmac(k) => {
                let (key, salt) = split_salt(enc_key);
                let gmac = matches!(suite, Suite::AesGmac(_));
                let aead = match (k, gmac) {
                    _ if backend == Backend::Fastest && ipsec_mb::arch().is_some() => {
                        Aead::Imb(ipsec_mb::GcmKey::new(key).ok_or(bad)?)
                    }
                    (AesKeyLen::Aes128, false) => {
                        Aead::Ring(RingKey::new(&AES_128_GCM, key).ok_or(bad)?)
                    }
                    (AesKeyLen::Aes256, false) => {
                        Aead::Ring(RingKey::new(&AES_256_GCM, key).ok_or(bad)?)
                    }
                    (AesKeyLen::Aes128, true) => {
                        Aead::Gcm128(Aes128Gcm::new_from_slice(key).map_err(|_| bad)?)
                    }
                    (AesKeyLen::Aes192, _) => {
                        Aead::Gcm192(Aes192Gcm::new_from_slice(key).map_err(|_| bad)?)
                    }
                    (AesKeyLen::Aes256, true) => {
                        Aead::Gcm256(Aes256Gcm::new_from_slice(key).map_err(|_| bad)?)
                    }
                };
                Engine::Aead { aead, salt, gmac }
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

    /// Write the explicit IV of the packet with sequence number `seq` into `out` (its first
    /// `iv_len()` octets): straight into the packet, because building it in a 16-octet local
    /// and copying that out stalled on store forwarding (an 8-octet store read back as 16).
    #[inline]
    pub fn write_iv(&self, seq: u64, out: &mut [u8]) {
        match &self.engine {
            Engine::Aead { .. } => {
                if let Some(o) = out.get_mut(..8) {
                    o.copy_from_slice(&seq.to_be_bytes());
                }
            }
            Engine::Cbc { iv_key, .. } => {
                let mut iv = [0u8; MAX_IV_LEN];
                iv[..8].copy_from_slice(&seq.to_be_bytes());
                iv_key.encrypt_block((&mut iv).into());
                let n = out.len().min(MAX_IV_LEN);
                out[..n].copy_from_slice(&iv[..n]);
            }
            Engine::Null { .. } => {}
        }
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
                // The backend writes the tag straight into the ICV field: returning it by
                // value cost a store-forwarding stall per packet.
                let (data, icv) = buf.split_at_mut(ct_end);
                let icv = <&mut [u8; 16]>::try_from(icv).map_err(|_| DropReason::EspMalformed)?;
                let sealed = if *gmac {
                    with_gmac_aad(data, esp, ct_end, esn_high, |aad| {
                        aead.seal(&nonce, aad, &mut [], icv)
                    })?
                } else {
                    with_aead_aad(data, esp, ct_start, ct_end, esn_high, |aad, pt| {
                        aead.seal(&nonce, aad, pt, icv)
                    })
                };
                if !sealed {
                    return Err(DropReason::EspMalformed);
                }
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
                let ok = if *gmac {
                    with_gmac_aad(buf, esp, ct_end, esn_high, |aad| {
                        aead.open(&nonce, aad, &mut [], &tag)
                    })?
                } else {
                    with_aead_aad(buf, esp, ct_start, ct_end, esn_high, |aad, ct| {
                        aead.open(&nonce, aad, ct, &tag)
                    })
                };
                if ok {
                    Ok(())
                } else {
                    Err(DropReason::EspAuthFailed)
                }
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

/// Run `f` over the RFC 4106 §5 AAD and the payload `buf[ct_start..ct_end]`. Without ESN
/// the AAD is SPI || seq exactly as it lies at `buf[esp..esp + 8]`, borrowed in place (no
/// copy); with ESN it is SPI || ESN high || seq low, built on the stack. The caller checked
/// `esp + 8 <= ct_start <= ct_end <= buf.len()`.
#[inline(always)]
fn with_aead_aad<R>(
    buf: &mut [u8],
    esp: usize,
    ct_start: usize,
    ct_end: usize,
    esn_high: Option<u32>,
    f: impl FnOnce(&[u8], &mut [u8]) -> R,
) -> R {
    let (head, body) = buf.split_at_mut(ct_start);
    let payload = &mut body[..ct_end - ct_start];
    match esn_high {
        None => f(&head[esp..esp + ESP_HEADER_LEN], payload),
        Some(h) => {
            let mut aad = [0u8; 12];
            aad[..4].copy_from_slice(&head[esp..esp + 4]);
            aad[4..8].copy_from_slice(&h.to_be_bytes());
            aad[8..12].copy_from_slice(&head[esp + 4..esp + 8]);
            f(&aad, payload)
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
) -> Option<[u8; 16]> {
    a.encrypt_in_place_detached(&(*nonce).into(), aad, buf)
        .ok()
        .map(Into::into)
}

fn open_with<A: AeadInPlace<NonceSize = U12, TagSize = U16>>(
    a: &A,
    nonce: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; 16],
) -> bool {
    a.decrypt_in_place_detached(&(*nonce).into(), aad, buf, &(*tag).into())
        .is_ok()
}

impl Aead {
    /// Encrypt `buf` in place and write the tag to `tag`; false if the backend refused
    /// (lengths beyond what the mode allows, which no IP packet reaches).
    #[inline]
    fn seal(&self, n: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &mut [u8; 16]) -> bool {
        let t = match self {
            Aead::Imb(k) => {
                k.seal(n, aad, buf, tag);
                return true;
            }
            Aead::Ring(k) => k
                .0
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*n), Aad::from(aad), buf)
                .ok()
                .and_then(|t| <[u8; 16]>::try_from(t.as_ref()).ok()),
            Aead::Gcm128(a) => seal_with(a, n, aad, buf),
            Aead::Gcm192(a) => seal_with(a, n, aad, buf),
            Aead::Gcm256(a) => seal_with(a, n, aad, buf),
        };
        t.map(|t| *tag = t).is_some()
    }
    /// Verify `tag` (in constant time) and decrypt `buf` in place; false on a bad tag.
    #[inline]
    fn open(&self, n: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8; 16]) -> bool {
        match self {
            Aead::Imb(k) => k.open(n, aad, buf, tag),
            Aead::Ring(k) => {
                k.0.open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*n),
                    Aad::from(aad),
                    Tag::from(*tag),
                    buf,
                    0..,
                )
                .is_ok()
            }
            Aead::Gcm128(a) => open_with(a, n, aad, buf, tag),
            Aead::Gcm192(a) => open_with(a, n, aad, buf, tag),
            Aead::Gcm256(a) => open_with(a, n, aad, buf, tag),
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

#[cfg(test)]
mod tests {
    //! The backends against RustCrypto: the published vectors pin a few packets; this checks
    //! that intel-ipsec-mb and ring (AES-GCM of every key size, GMAC) agree with the `aes-gcm`
    //! crate on arbitrary keys, payloads and sequence numbers, with and without ESN, both
    //! ways, and that each opens what the other sealed.
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn reference<A: AeadInPlace<NonceSize = U12, TagSize = U16> + KeyInit>(
        key: &[u8],
        salt: &[u8],
        esp: &[u8],
        esn_high: Option<u32>,
        gmac: bool,
    ) -> Vec<u8> {
        let a = A::new_from_slice(key).unwrap();
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(salt);
        nonce[4..].copy_from_slice(&esp[8..16]);
        let end = esp.len() - 16;
        let mut aad = esp[..4].to_vec();
        if let Some(h) = esn_high {
            aad.extend_from_slice(&h.to_be_bytes());
        }
        aad.extend_from_slice(&esp[4..if gmac { end } else { 8 }]);
        let mut out = esp.to_vec();
        let pt = if gmac { &mut [][..] } else { &mut out[16..end] };
        let tag = a
            .encrypt_in_place_detached(&nonce.into(), &aad, pt)
            .unwrap();
        out[end..].copy_from_slice(&tag);
        out
    }

    fn both_backends() -> impl Strategy<Value = Backend> {
        prop_oneof![Just(Backend::Fastest), Just(Backend::Portable)]
    }

    proptest! {
        #[test]
        fn gcm_and_gmac_agree_with_rustcrypto_on_every_backend(
            keymat in vec(any::<u8>(), 36),
            size in 0usize..3,
            gmac in any::<bool>(),
            backend in both_backends(),
            header in any::<[u8; 16]>(),
            payload in vec(any::<u8>(), 0..300),
            esn_high in any::<Option<u32>>(),
            front in 4usize..24,
        ) {
            let (k, len) = [
                (16, AesKeyLen::Aes128),
                (24, AesKeyLen::Aes192),
                (32, AesKeyLen::Aes256),
            ][size];
            let suite = if gmac { Suite::AesGmac(len) } else { Suite::AesGcm(len) };
            let keymat = &keymat[..k + SALT_LEN];
            let c = SaCrypto::with_backend(suite, keymat, &[], backend).unwrap();
            let other = match backend {
                Backend::Fastest => Backend::Portable,
                Backend::Portable => Backend::Fastest,
            };
            let o = SaCrypto::with_backend(suite, keymat, &[], other).unwrap();
            let mut esp = header.to_vec();
            esp.extend_from_slice(&payload);
            esp.extend_from_slice(&[0u8; 16]);
            let (key, salt) = keymat.split_at(k);
            let want = match size {
                0 => reference::<Aes128Gcm>(key, salt, &esp, esn_high, gmac),
                1 => reference::<Aes192Gcm>(key, salt, &esp, esn_high, gmac),
                _ => reference::<Aes256Gcm>(key, salt, &esp, esn_high, gmac),
            };
            // Some bytes in front of the ESP header, as in a real packet (GMAC with ESN
            // borrows four of them).
            let mut buf = vec![0xeeu8; front];
            buf.extend_from_slice(&esp);
            c.seal(&mut buf, front, esn_high).unwrap();
            prop_assert_eq!(&buf[front..], &want[..]);
            prop_assert!(buf[..front].iter().all(|&b| b == 0xee));
            let mut copy = buf.clone();
            c.open(&mut buf, front, esn_high).unwrap();
            prop_assert_eq!(&buf[front..front + 16 + payload.len()], &esp[..16 + payload.len()]);
            o.open(&mut copy, front, esn_high).unwrap();
            prop_assert_eq!(&copy, &buf);
            // A different high half of the sequence number is a different AAD. A failed open
            // on intel-ipsec-mb leaves the packet as it came (ring zeroes the payload).
            if let Some(h) = esn_high {
                let mut bad = vec![0xeeu8; front];
                bad.extend_from_slice(&want);
                prop_assert_eq!(
                    c.open(&mut bad, front, Some(h.wrapping_add(1))),
                    Err(DropReason::EspAuthFailed)
                );
                if backend == Backend::Fastest {
                    prop_assert_eq!(&bad[front..], &want[..]);
                }
            }
        }
    }
}
