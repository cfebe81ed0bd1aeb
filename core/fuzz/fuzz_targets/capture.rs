//! Any bytes as a capture file: the record walk and the decoder (`sniffer_core::fuzzing::one_input`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sniffer_core::fuzzing::one_input(data));
