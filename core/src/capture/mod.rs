//! Capture stage: where frames come from. `pcap` walks classic pcap savefiles, `pcapng` pcapng
//! files (its Custom Blocks go back to Python raw).

pub mod pcap;
pub mod pcapng;
pub mod window;
