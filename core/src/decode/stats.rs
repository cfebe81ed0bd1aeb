//! The decoder's counters, under the Python stats keys (`sniffer/decode/decoder.py` lists
//! them): fixed reasons in an array (no allocation per packet), the numbered ones
//! (`unsupported_linktype:N`, `unsupported_ethertype:0xNNNN`) in small maps.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

macro_rules! reasons {
    ($($v:ident = $n:literal),* $(,)?) => {
        /// A named counter of the decode stage.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Reason { $($v),* }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$v),*];

            /// The Python stats key.
            pub fn name(self) -> &'static str {
                match self { $(Reason::$v => $n),* }
            }
        }
    };
}

reasons! {
    TruncatedLinkHeader = "truncated_link_header",
    NonIp = "non_ip",
    TooManyEncapsulations = "too_many_encapsulations",
    // link layers (sniffer/decode/l2): Zeek's weird names
    TruncatedSnapLlcHeader = "truncated_snap_llc_header",
    TruncatedSnapHeader = "truncated_snap_header",
    TruncatedLlcHeader = "truncated_llc_header",
    TruncatedEthernetFrame = "truncated_ethernet_frame",
    TruncatedLinkHeaderCfp = "truncated_link_header_cfp",
    TruncatedVlanHeader = "truncated_VLAN_header",
    UndefinedEtherType = "undefined_ether_type",
    UndefinedVlanProtocol = "undefined_vlan_protocol",
    TruncatedPbbHeader = "truncated_PBB_header",
    TruncatedVntagHeader = "truncated_vntag_header",
    FddiAnalyzerFailed = "FDDI_analyzer_failed",
    Truncated80211LlcHeader = "truncated_802_11_llc_header",
    Truncated80211Header = "truncated_802_11_header",
    Truncated80211AmsduHeader = "truncated_802_11_amsdu_header",
    Truncated80211AmsduPacket = "truncated_802_11_amsdu_packet",
    Invalid80211AmsduInnerPacket = "invalid_802_11_amsdu_inner_packet",
    TruncatedRadiotapHeader = "truncated_radiotap_header",
    TruncatedNflogHeader = "truncated_nflog_header",
    UnknownNflogVersion = "unknown_nflog_version",
    NflogNoPcapPayload = "nflog_no_pcap_payload",
    NflogBadTlvLen = "nflog_bad_tlv_len",
    TruncatedPppoeHeader = "truncated_pppoe_header",
    TruncatedPppHeader = "truncated_ppp_header",
    TruncatedPppHdlcHeader = "truncated_ppp_hdlc_header",
    TruncatedPppSerialHeader = "truncated_ppp_serial_header",
    // IP
    TruncatedIp = "truncated_IP",
    UnknownIpVersion = "unknown_ip_version",
    IpHdrLenZero = "ip_hdr_len_zero",
    TruncatedIpLen = "truncated_IP_len",
    InvalidIpHeaderSize = "invalid_IP_header_size",
    InternallyTruncatedHeader = "internally_truncated_header",
    Ipv4MinHeaderSize = "IPv4_min_header_size",
    BadIpChecksum = "bad_IP_checksum",
    Ipv6NoNext = "ipv6_no_next",
    Ipv6Esp = "ipv6_esp",
    Ipv6Mobility = "ipv6_mobility",
    IncompletelyCapturedFragment = "incompletely_captured_fragment",
    Ipv6NestedFragment = "ipv6_nested_fragment",
    // fragments (frag.rs); the first two are not drops
    IpFragments = "ip_fragments",
    FragmentsReassembled = "fragments_reassembled",
    FragmentTimeout = "fragment_timeout",
    FragmentIncomplete = "fragment_incomplete",
    FragmentEvicted = "fragment_evicted",
    FragmentTooLarge = "fragment_too_large",
    FragmentSizeInconsistency = "fragment_size_inconsistency",
    FragmentOverlap = "fragment_overlap",
    FragmentInconsistency = "fragment_inconsistency",
}

const COUNT: usize = Reason::ALL.len();

/// The counts by reason; `iter()` gives the nonzero ones by their Python names.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Counters {
    /// When set, every count made is also logged here, by name, once per call (a weird.log is
    /// written: sniffer.stats.LoggedStats reports each `+=` of the Python decoder).
    #[serde(skip)]
    pub log: Option<Vec<Cow<'static, str>>>,
    #[serde(with = "crate::state::reason_counts")]
    counts: [u64; COUNT],
    linktypes: BTreeMap<u32, u64>,
    ethertypes: BTreeMap<u16, u64>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            log: None,
            counts: [0; COUNT],
            linktypes: BTreeMap::new(),
            ethertypes: BTreeMap::new(),
        }
    }
}

impl Counters {
    pub fn add(&mut self, r: Reason, n: u64) {
        if let Some(c) = self.counts.get_mut(r as usize) {
            *c = c.saturating_add(n);
        }
        if let Some(log) = &mut self.log {
            log.push(Cow::Borrowed(r.name()));
        }
    }

    pub fn inc(&mut self, r: Reason) {
        self.add(r, 1);
    }

    pub fn get(&self, r: Reason) -> u64 {
        self.counts.get(r as usize).copied().unwrap_or(0)
    }

    /// `unsupported_linktype:N`
    pub fn unsupported_linktype(&mut self, linktype: u32) {
        *self.linktypes.entry(linktype).or_insert(0) += 1;
        if let Some(log) = &mut self.log {
            log.push(Cow::Owned(format!("unsupported_linktype:{linktype}")));
        }
    }

    /// `unsupported_ethertype:0xNNNN`
    pub fn unsupported_ethertype(&mut self, ethertype: u16) {
        *self.ethertypes.entry(ethertype).or_insert(0) += 1;
        if let Some(log) = &mut self.log {
            log.push(Cow::Owned(format!(
                "unsupported_ethertype:0x{ethertype:04x}"
            )));
        }
    }

    /// The nonzero counters as (Python stats key, count).
    pub fn iter(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let fixed = Reason::ALL
            .iter()
            .map(|r| (r.name().to_string(), self.get(*r)));
        let lt = self
            .linktypes
            .iter()
            .map(|(k, v)| (format!("unsupported_linktype:{k}"), *v));
        let et = self
            .ethertypes
            .iter()
            .map(|(k, v)| (format!("unsupported_ethertype:0x{k:04x}"), *v));
        fixed.chain(lt).chain(et).filter(|(_, v)| *v != 0)
    }
}
