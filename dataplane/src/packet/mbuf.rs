//! The mbuf adapter: `Packet` for DPDK's `Mbuf`, so the pipeline the tests run on heap
//! packets is the very code the daemon runs on NIC buffers. All arithmetic lives in
//! `dpdk::Mbuf` (plain Rust over the rte_mbuf fields); this file only maps the trait.

use super::Packet;
use dpdk::Mbuf;

impl Packet for Mbuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }
    #[inline(always)]
    fn headroom(&self) -> usize {
        Mbuf::headroom(self)
    }
    #[inline(always)]
    fn tailroom(&self) -> usize {
        Mbuf::tailroom(self)
    }
    #[inline(always)]
    fn prepend(&mut self, n: usize) -> bool {
        Mbuf::prepend(self, n)
    }
    #[inline(always)]
    fn adj(&mut self, n: usize) -> bool {
        Mbuf::adj(self, n)
    }
    #[inline(always)]
    fn append(&mut self, n: usize) -> bool {
        Mbuf::append(self, n)
    }
    #[inline(always)]
    fn trim(&mut self, n: usize) -> bool {
        Mbuf::trim(self, n)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        Mbuf::len(self)
    }
    /// Chained mbufs (jumbo frames on scatter RX) are seen only through their first segment;
    /// the pipeline drops them under their own reason rather than parse a partial packet.
    #[inline(always)]
    fn is_multi_segment(&self) -> bool {
        self.nb_segs() != 1
    }
    #[inline(always)]
    fn rss_hash(&self) -> Option<u32> {
        Mbuf::rss_hash(self)
    }
}
