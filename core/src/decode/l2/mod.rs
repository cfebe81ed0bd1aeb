//! The rarer link layers and shims, one module per family as `sniffer/decode/l2/` (Zeek's
//! packet analyzers): the same header checks, the same weird names.

pub mod ethernet;
pub mod fddi;
pub mod ieee802_11;
pub mod mpls;
pub mod nflog;
pub mod ppp;
