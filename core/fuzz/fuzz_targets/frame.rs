//! Any bytes as one frame of a supported link type (`sniffer_core::fuzzing::one_frame`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sniffer_core::fuzzing::one_frame(data));
