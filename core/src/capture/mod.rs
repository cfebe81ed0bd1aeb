//! Capture stage: where frames come from. `pcap` walks classic pcap savefiles.

pub mod pcap;
