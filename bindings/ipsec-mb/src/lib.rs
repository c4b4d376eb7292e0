//! AES-GCM from Intel's Multi-Buffer Crypto for IPsec library (intel-ipsec-mb, the library
//! DPDK's `crypto_aesni_gcm` / `crypto_ipsec_mb` PMDs and so ipsec-secgw run on), behind one
//! safe type, [`GcmKey`]: expand a key once, then seal or open one buffer in place.
//!
//! Why it is here: on ESP-sized packets its VAES/AVX-512 GCM costs a fraction of what ring's
//! does per call (the fixed cost per packet — J0, the AAD, the length block, the tag — is what
//! dominates a 64-byte packet): measured on this project's 2-core machine, 17.7 M seals/s of a
//! 40-octet payload against ring's 5.7 M (README, "Build notes"). The library's direct API is
//! macros over an `IMB_MGR` of function pointers, so a C shim (`shim.c`) wraps the four calls
//! we make and Rust never depends on that struct's layout.
//!
//! GMAC (RFC 4543) is GCM with an empty plaintext and the whole packet as AAD, so the same key
//! serves it.

use std::fmt;

mod ffi {
    extern "C" {
        pub fn fg_imb_arch() -> i32;
        pub fn fg_imb_gcm_key_size() -> usize;
        pub fn fg_imb_gcm_pre(key_len: u32, key: *const u8, kd: *mut u8) -> i32;
        #[allow(clippy::too_many_arguments)]
        pub fn fg_imb_gcm(
            key_len: u32,
            dec: i32,
            kd: *const u8,
            buf: *mut u8,
            len: u64,
            iv: *const u8,
            aad: *const u8,
            aad_len: u64,
            tag: *mut u8,
        );
    }
}

/// Room for the library's `struct gcm_key_data` (1008 octets in 1.3: 15 round keys and the
/// GHASH key powers); [`GcmKey::new`] refuses to run against a library whose struct is larger.
const KEY_DATA_LEN: usize = 1024;

/// 64-octet alignment: the AVX-512 code loads the hash key powers as whole cache lines.
#[repr(C, align(64))]
struct KeyData([u8; KEY_DATA_LEN]);

/// The instruction set the library picked for this CPU, or `None` if it could not be set up
/// (then callers use another backend).
pub fn arch() -> Option<Arch> {
    // SAFETY: fg_imb_arch takes no arguments; it sets the library up once (pthread_once) and
    // returns an int.
    let a = unsafe { ffi::fg_imb_arch() };
    match a {
        1 => Some(Arch::NoAesni),
        2 => Some(Arch::Sse),
        3 => Some(Arch::Avx),
        4 => Some(Arch::Avx2),
        5 => Some(Arch::Avx512),
        _ => None,
    }
}

/// The code path intel-ipsec-mb chose (`IMB_ARCH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    NoAesni,
    Sse,
    Avx,
    Avx2,
    Avx512,
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::NoAesni => "no-aesni",
            Arch::Sse => "sse",
            Arch::Avx => "avx",
            Arch::Avx2 => "avx2",
            Arch::Avx512 => "avx512",
        })
    }
}

/// An expanded AES-128/192/256-GCM key. Immutable once built, so one key may be used from
/// many threads at once (each call keeps its context on its own stack). Wiped on drop.
pub struct GcmKey {
    data: Box<KeyData>,
    key_len: u32,
}

impl fmt::Debug for GcmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcmKey")
            .field("bits", &(self.key_len * 8))
            .finish_non_exhaustive()
    }
}

impl GcmKey {
    /// Expand `key` (16, 24 or 32 octets). `None` for another length, or when the library is
    /// unusable on this machine.
    pub fn new(key: &[u8]) -> Option<Self> {
        let key_len = match key.len() {
            16 | 24 | 32 => key.len() as u32,
            _ => return None,
        };
        arch()?;
        // SAFETY: no arguments; returns sizeof(struct gcm_key_data).
        if unsafe { ffi::fg_imb_gcm_key_size() } > KEY_DATA_LEN {
            return None;
        }
        let mut data = Box::new(KeyData([0; KEY_DATA_LEN]));
        // SAFETY: `key` holds key_len readable octets; `data` is KEY_DATA_LEN >= sizeof(struct
        // gcm_key_data) writable octets, 64-aligned; the call writes only inside it.
        let rc = unsafe { ffi::fg_imb_gcm_pre(key_len, key.as_ptr(), data.0.as_mut_ptr()) };
        (rc == 0).then_some(GcmKey { data, key_len })
    }

    /// The key length in octets.
    pub fn key_len(&self) -> usize {
        self.key_len as usize
    }

    #[inline]
    fn run(&self, dec: bool, iv: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &mut [u8; 16]) {
        // SAFETY: the key data was expanded by fg_imb_gcm_pre for key_len (so the library is
        // set up); buf is len writable octets (in place: source = destination, which the
        // library supports), iv 12 and aad aad_len readable octets, tag 16 writable octets.
        // The library keeps no pointer after the call.
        unsafe {
            ffi::fg_imb_gcm(
                self.key_len,
                i32::from(dec),
                self.data.0.as_ptr(),
                buf.as_mut_ptr(),
                buf.len() as u64,
                iv.as_ptr(),
                aad.as_ptr(),
                aad.len() as u64,
                tag.as_mut_ptr(),
            )
        };
    }

    /// Encrypt `buf` in place under `iv` (salt || explicit IV), authenticating `aad` too, and
    /// write the 16-octet tag to `tag` (in ESP: straight into the ICV field).
    #[inline]
    pub fn seal(&self, iv: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &mut [u8; 16]) {
        self.run(false, iv, aad, buf, tag)
    }

    /// Check `tag` and decrypt `buf` in place. The library decrypts while it hashes the
    /// ciphertext, so on a wrong tag (compared in constant time) the keystream is applied
    /// once more: `buf` is back to the ciphertext it was, and `false` is returned. No plaintext
    /// of an unauthenticated packet is left behind.
    #[inline]
    pub fn open(&self, iv: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8; 16]) -> bool {
        let mut got = [0u8; 16];
        self.run(true, iv, aad, buf, &mut got);
        if tags_equal(&got, tag) {
            return true;
        }
        self.run(false, iv, aad, buf, &mut got);
        false
    }
}

/// Compare two tags in time independent of where they differ.
#[inline]
fn tags_equal(a: &[u8; 16], b: &[u8; 16]) -> bool {
    let x = u128::from_ne_bytes(*a) ^ u128::from_ne_bytes(*b);
    // black_box keeps the compiler from turning the whole-value compare into an early-exit
    // byte loop.
    std::hint::black_box(x) == 0
}

impl Drop for GcmKey {
    fn drop(&mut self) {
        for b in self.data.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned &mut u8; a volatile write is not elided although
            // the memory is freed right after.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // NIST GCM spec (McGrew & Viega), test case 4: AES-128, 60-octet plaintext, 20-octet AAD.
    #[test]
    fn gcm_spec_test_case_4() {
        let key = GcmKey::new(&hex("feffe9928665731c6d6a8f9467308308")).expect("library");
        let iv: [u8; 12] = hex("cafebabefacedbaddecaf888").try_into().unwrap();
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let pt = hex(concat!(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72",
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
        ));
        let ct = hex(concat!(
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e",
            "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
        ));
        let want_tag: [u8; 16] = hex("5bc94fbc3221a5db94fae95ae7121a47").try_into().unwrap();
        let mut buf = pt.clone();
        let mut tag = [0u8; 16];
        key.seal(&iv, &aad, &mut buf, &mut tag);
        assert_eq!(tag, want_tag);
        assert_eq!(buf, ct);
        assert!(key.open(&iv, &aad, &mut buf, &want_tag));
        assert_eq!(buf, pt);
    }

    #[test]
    fn a_wrong_tag_leaves_the_ciphertext_as_it_was() {
        let key = GcmKey::new(&[7u8; 32]).expect("library");
        let iv = [1u8; 12];
        let mut buf = vec![0x5a; 100];
        let mut tag = [0u8; 16];
        key.seal(&iv, b"aad", &mut buf, &mut tag);
        let ct = buf.clone();
        tag[15] ^= 1;
        assert!(!key.open(&iv, b"aad", &mut buf, &tag));
        assert_eq!(buf, ct);
    }

    #[test]
    fn only_aes_key_lengths_are_accepted() {
        for n in [0, 15, 17, 20, 33] {
            assert!(GcmKey::new(&vec![0; n]).is_none(), "{n}");
        }
        for n in [16, 24, 32] {
            assert_eq!(GcmKey::new(&vec![0; n]).expect("library").key_len(), n);
        }
    }
}
