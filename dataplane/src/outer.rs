//! What an encapsulation (tunnel or ESP tunnel mode) puts in the outer IP header: TTL, DSCP,
//! ECN (RFC 6040 normal mode) and DF, per tunnel or SA, and how ECN is folded back into the
//! inner header on decapsulation.

use crate::stats::DropReason;

/// ECN codepoints (the low two bits of TOS / traffic class).
pub mod ecn {
    pub const NOT_ECT: u8 = 0b00;
    pub const ECT1: u8 = 0b01;
    pub const ECT0: u8 = 0b10;
    pub const CE: u8 = 0b11;
    pub const MASK: u8 = 0b11;
}

/// How the outer DSCP is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TosPolicy {
    /// Copy the inner DSCP (F5's "Preserve").
    #[default]
    Preserve,
    /// Use this DSCP (the upper six bits of the value; the ECN bits come from RFC 6040).
    Fixed(u8),
}

/// How the outer IPv4 DF bit is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DfPolicy {
    /// Copy the inner IPv4 DF bit; an IPv6 or non-IP inner packet sets DF (IPv6 is never
    /// fragmented in the path, so neither is its carrier).
    #[default]
    Propagate,
    Set,
    Clear,
}

/// Outer-header policy of one tunnel or SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OuterPolicy {
    /// Outer TTL / hop limit (never 0; default 64).
    pub ttl: u8,
    pub tos: TosPolicy,
    pub df: DfPolicy,
}

impl Default for OuterPolicy {
    fn default() -> Self {
        OuterPolicy {
            ttl: 64,
            tos: TosPolicy::Preserve,
            df: DfPolicy::Propagate,
        }
    }
}

impl OuterPolicy {
    /// Outer TOS / traffic class for an inner packet with `inner_tos` (0 for non-IP inner).
    /// RFC 6040 §4.1 normal mode: the outer ECN field is a copy of the inner one.
    #[inline]
    pub fn outer_tos(&self, inner_tos: u8) -> u8 {
        let dscp = match self.tos {
            TosPolicy::Preserve => inner_tos & !ecn::MASK,
            TosPolicy::Fixed(v) => v & !ecn::MASK,
        };
        dscp | (inner_tos & ecn::MASK)
    }

    /// Outer DF for an inner packet: `inner_df` is `Some(df)` for IPv4 inner, `None` otherwise.
    #[inline]
    pub fn outer_df(&self, inner_df: Option<bool>) -> bool {
        match self.df {
            DfPolicy::Set => true,
            DfPolicy::Clear => false,
            DfPolicy::Propagate => inner_df.unwrap_or(true),
        }
    }
}

/// RFC 6040 §4.2: the inner TOS after decapsulation, given the arriving inner and outer TOS.
/// Returns an error for the one combination that must be dropped (outer CE over a Not-ECT
/// inner packet: the congestion mark cannot be passed on).
#[inline]
pub fn ecn_decap(inner_tos: u8, outer_tos: u8) -> Result<u8, DropReason> {
    let (i, o) = (inner_tos & ecn::MASK, outer_tos & ecn::MASK);
    let new = match (i, o) {
        (ecn::NOT_ECT, ecn::CE) => return Err(DropReason::EcnCeOnNotEct),
        (ecn::NOT_ECT, _) => ecn::NOT_ECT,
        (_, ecn::CE) => ecn::CE,
        (ecn::ECT0, ecn::ECT1) => ecn::ECT1,
        (i, _) => i,
    };
    Ok((inner_tos & !ecn::MASK) | new)
}

#[cfg(test)]
mod tests {
    use super::ecn::*;
    use super::*;

    #[test]
    fn rfc6040_decap_table() {
        // Rows: inner Not-ECT, ECT(0), ECT(1), CE; columns: outer Not-ECT, ECT(0), ECT(1), CE.
        let outers = [NOT_ECT, ECT0, ECT1, CE];
        let table: [(u8, [Option<u8>; 4]); 4] = [
            (NOT_ECT, [Some(NOT_ECT), Some(NOT_ECT), Some(NOT_ECT), None]),
            (ECT0, [Some(ECT0), Some(ECT0), Some(ECT1), Some(CE)]),
            (ECT1, [Some(ECT1), Some(ECT1), Some(ECT1), Some(CE)]),
            (CE, [Some(CE), Some(CE), Some(CE), Some(CE)]),
        ];
        for (inner, row) in table {
            for (o, want) in outers.iter().zip(row) {
                let got = ecn_decap(0xb8 | inner, *o).ok();
                assert_eq!(got, want.map(|w| 0xb8 | w), "inner {inner} outer {o}");
            }
        }
    }

    #[test]
    fn encap_tos_and_df() {
        let p = OuterPolicy::default();
        assert_eq!(p.outer_tos(0xb8 | CE), 0xb8 | CE);
        let f = OuterPolicy {
            tos: TosPolicy::Fixed(0x20),
            ..p
        };
        assert_eq!(f.outer_tos(0xb8 | ECT0), 0x20 | ECT0);
        assert!(p.outer_df(None) && p.outer_df(Some(true)) && !p.outer_df(Some(false)));
        let c = OuterPolicy {
            df: DfPolicy::Clear,
            ..p
        };
        assert!(!c.outer_df(Some(true)));
        let s = OuterPolicy {
            df: DfPolicy::Set,
            ..p
        };
        assert!(s.outer_df(Some(false)));
    }
}
