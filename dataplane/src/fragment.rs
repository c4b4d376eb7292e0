//! IPv4 fragmentation (RFC 791) of a packet about to enter a tunnel whose MTU it exceeds with
//! DF clear.
//!
//! The packet itself becomes the first fragment (trimmed in place); the others are written
//! into buffers from the worker's pool — the one place the dataplane takes new buffers, and
//! only for oversize DF-clear packets. Non-first fragments carry only the options whose
//! "copied" flag is set (RFC 791 §3.1). Nothing here allocates heap memory or panics: a
//! missing buffer fails the whole packet (`NoBuffer`), leaving it untouched.

use crate::packet::Packet;
use crate::stats::DropReason;
use crate::wire::ipv4::{self, Ipv4Packet, FLAG_DF, FLAG_MF};
use crate::wire::put16;

/// Largest IPv4 header (IHL 15).
const MAX_HEADER: usize = 60;

/// The header of a non-first fragment: the base header and the copied options, padded to a
/// multiple of four. Returns its length.
fn later_header(h: &[u8], out: &mut [u8; MAX_HEADER]) -> usize {
    out[..ipv4::MIN_HEADER_LEN].copy_from_slice(&h[..ipv4::MIN_HEADER_LEN]);
    let mut n = ipv4::MIN_HEADER_LEN;
    let mut i = ipv4::MIN_HEADER_LEN;
    while i < h.len() {
        let ty = h[i];
        let len = match ty {
            0 => break, // end of option list
            1 => 1,     // no-operation
            _ => match h.get(i + 1) {
                Some(&l) if l >= 2 && i + l as usize <= h.len() => l as usize,
                _ => break, // malformed: stop copying (IP input has accepted the header)
            },
        };
        if ty & 0x80 != 0 {
            out[n..n + len].copy_from_slice(&h[i..i + len]);
            n += len;
        }
        i += len;
    }
    while n & 3 != 0 {
        out[n] = 0;
        n += 1;
    }
    n
}

/// Fragment the IPv4 packet at the start of `p` so that no fragment exceeds `mtu` bytes.
///
/// `alloc` gives empty buffers; `emit` receives the second and later fragments in order
/// (`p` keeps the first). `room` is how many fragments `emit` can take: a packet needing
/// more fails with `NoBuffer` before anything is done. DF set is `FragmentNeeded` (the
/// caller sends the ICMP error instead), and so is an MTU too small to carry 8 bytes of
/// payload after the header. On an error `p` is unchanged, but fragments already emitted
/// stay emitted: the caller, which owns where they went, takes them back.
pub fn fragment4<P: Packet>(
    p: &mut P,
    mtu: usize,
    room: usize,
    mut alloc: impl FnMut() -> Option<P>,
    mut emit: impl FnMut(P),
) -> Result<(), DropReason> {
    let (hl, total, frag_word) = {
        let ip = Ipv4Packet::new_checked(p.data())?;
        (ip.header_len(), ip.total_len() as usize, ip.frag_word())
    };
    if frag_word & FLAG_DF != 0 {
        return Err(DropReason::FragmentNeeded);
    }
    if total <= mtu || total > p.len() {
        return Ok(());
    }
    let mut later = [0u8; MAX_HEADER];
    let later_hl = later_header(&p.data()[..hl], &mut later);
    // Payload per fragment: a multiple of 8 that fits with the larger of the two headers.
    let step = mtu.saturating_sub(hl.max(later_hl)) & !7;
    if step == 0 {
        return Err(DropReason::FragmentNeeded);
    }
    let payload = total - hl;
    let count = payload.div_ceil(step);
    if count - 1 > room {
        return Err(DropReason::NoBuffer);
    }
    // The packet may itself be a fragment: offsets continue from its own, and the last
    // piece keeps its MF bit.
    let piece = Piece {
        header: &later[..later_hl],
        step,
        payload,
        hl,
        base_off: ((frag_word & ipv4::FRAG_OFFSET_MASK) as usize) * 8,
        last_mf: frag_word & FLAG_MF,
        keep_flags: frag_word & !(FLAG_MF | ipv4::FRAG_OFFSET_MASK),
    };
    for k in 1..count {
        emit(piece.build(p.data(), k, &mut alloc)?);
    }
    // The original becomes the first fragment.
    let first_len = hl + step;
    if !p.trim(p.len() - first_len) {
        return Err(DropReason::NoBuffer);
    }
    let mut ip = Ipv4Packet::new_unchecked(p.data_mut());
    ip.set_total_len(first_len as u16);
    ip.set_frag_word(piece.keep_flags | FLAG_MF | ((piece.base_off / 8) as u16));
    ip.fill_checksum();
    Ok(())
}

/// How one packet is cut.
struct Piece<'a> {
    /// Header of the later fragments.
    header: &'a [u8],
    /// Payload bytes per fragment.
    step: usize,
    /// Payload bytes of the whole packet.
    payload: usize,
    /// The original header length.
    hl: usize,
    /// Fragment offset of the original (bytes).
    base_off: usize,
    /// MF of the original (for its last piece).
    last_mf: u16,
    /// Flag bits other than MF to keep (the reserved bit).
    keep_flags: u16,
}

impl Piece<'_> {
    /// Fragment `k` (k ≥ 1) of the packet `d` in a new buffer.
    fn build<P: Packet>(
        &self,
        d: &[u8],
        k: usize,
        alloc: &mut impl FnMut() -> Option<P>,
    ) -> Result<P, DropReason> {
        let &Piece {
            header,
            step,
            payload,
            hl,
            base_off,
            last_mf,
            keep_flags,
        } = self;
        let start = k * step;
        let len = step.min(payload - start);
        let last = start + len == payload;
        let mut q = alloc().ok_or(DropReason::NoBuffer)?;
        let n = header.len() + len;
        if q.tailroom() < n || !q.append(n) {
            return Err(DropReason::NoBuffer);
        }
        let b = q.data_mut();
        b[..header.len()].copy_from_slice(header);
        b[header.len()..n].copy_from_slice(&d[hl + start..hl + start + len]);
        b[0] = 0x40 | (header.len() / 4) as u8;
        put16(b, 2, n as u16);
        let mf = if last { last_mf } else { FLAG_MF };
        put16(b, 6, keep_flags | mf | (((base_off + start) / 8) as u16));
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapPacket;

    fn packet(len: usize, options: &[u8], flags: u16) -> Vec<u8> {
        let hl = 20 + options.len();
        let mut v = vec![0u8; len];
        v[0] = 0x40 | (hl / 4) as u8;
        put16(&mut v, 2, len as u16);
        put16(&mut v, 4, 0x1234);
        put16(&mut v, 6, flags);
        v[8] = 64;
        v[9] = 17;
        v[12..16].copy_from_slice(&[10, 0, 0, 1]);
        v[16..20].copy_from_slice(&[10, 0, 0, 2]);
        v[20..hl].copy_from_slice(options);
        for (i, b) in v[hl..].iter_mut().enumerate() {
            *b = i as u8;
        }
        Ipv4Packet::new_unchecked(&mut v[..]).fill_checksum();
        v
    }

    fn split(v: &[u8], mtu: usize) -> Result<Vec<Vec<u8>>, DropReason> {
        let mut p = HeapPacket::from_frame(v);
        let mut rest = Vec::new();
        fragment4(
            &mut p,
            mtu,
            16,
            || Some(HeapPacket::with_room(&[], 128, 2048)),
            |q| rest.push(q.to_vec()),
        )?;
        let mut all = vec![p.to_vec()];
        all.extend(rest);
        Ok(all)
    }

    /// Reassemble and check every fragment's header.
    fn reassemble(frags: &[Vec<u8>], mtu: usize) -> (Vec<u8>, u16) {
        let mut payload = Vec::new();
        let mut last_flags = 0;
        for f in frags {
            let ip = Ipv4Packet::new_checked(&f[..]).unwrap();
            assert!(ip.verify_checksum());
            assert!(f.len() <= mtu);
            assert_eq!(ip.total_len() as usize, f.len());
            assert_eq!(ip.ident(), 0x1234);
            assert_eq!(ip.frag_offset(), payload.len());
            payload.extend_from_slice(ip.payload());
            last_flags = ip.frag_word() & !ipv4::FRAG_OFFSET_MASK;
        }
        (payload, last_flags)
    }

    #[test]
    fn splits_on_eight_byte_boundaries_and_reassembles() {
        let v = packet(1500, &[], 0);
        let f = split(&v, 576).unwrap();
        assert_eq!(f.len(), 3);
        for x in &f[..2] {
            assert_ne!(
                Ipv4Packet::new_checked(&x[..]).unwrap().frag_word() & FLAG_MF,
                0
            );
            assert_eq!((x.len() - 20) % 8, 0);
        }
        let (payload, last) = reassemble(&f, 576);
        assert_eq!(payload, v[20..]);
        assert_eq!(last & FLAG_MF, 0);
    }

    #[test]
    fn only_copied_options_go_into_later_fragments() {
        // Record route (7, not copied) padded with NOP; security-like option 0x82 (copied).
        let opts = [1, 7, 7, 4, 0, 0, 0, 0, 0x82, 4, 0xaa, 0xbb];
        let v = packet(1000, &opts, 0);
        let f = split(&v, 400).unwrap();
        assert_eq!(Ipv4Packet::new_checked(&f[0][..]).unwrap().header_len(), 32);
        for x in &f[1..] {
            let ip = Ipv4Packet::new_checked(&x[..]).unwrap();
            assert_eq!(ip.header_len(), 24);
            assert_eq!(&x[20..24], &[0x82, 4, 0xaa, 0xbb]);
        }
        let mut payload = Vec::new();
        for x in &f {
            payload.extend_from_slice(Ipv4Packet::new_checked(&x[..]).unwrap().payload());
        }
        assert_eq!(payload, v[32..]);
    }

    #[test]
    fn a_fragment_is_refragmented_keeping_offset_and_mf() {
        let v = packet(1000, &[], FLAG_MF | 100);
        let f = split(&v, 500).unwrap();
        let first = Ipv4Packet::new_checked(&f[0][..]).unwrap();
        assert_eq!(first.frag_offset(), 800);
        let last = Ipv4Packet::new_checked(&f[f.len() - 1][..]).unwrap();
        assert_ne!(last.frag_word() & FLAG_MF, 0, "the original's MF survives");
    }

    #[test]
    fn df_tiny_mtu_no_room_and_no_buffer_refuse() {
        let v = packet(1500, &[], FLAG_DF);
        assert_eq!(split(&v, 576), Err(DropReason::FragmentNeeded));
        let v = packet(1500, &[], 0);
        assert_eq!(split(&v, 27), Err(DropReason::FragmentNeeded));
        let mut p = HeapPacket::from_frame(&v);
        let r = fragment4(&mut p, 100, 3, || Some(HeapPacket::from_frame(&[])), |_| {});
        assert_eq!(r, Err(DropReason::NoBuffer));
        assert_eq!(p.to_vec(), v, "untouched");
        let r = fragment4(&mut p, 576, 8, || None::<HeapPacket>, |_| {});
        assert_eq!(r, Err(DropReason::NoBuffer));
        assert_eq!(p.to_vec(), v, "untouched");
        // Small enough: nothing to do.
        assert_eq!(split(&v, 1500).unwrap().len(), 1);
    }
}
