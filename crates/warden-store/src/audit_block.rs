//! How entries sit in SQLite: one row per group commit (a block), its entries framed and then
//! LZ4-compressed. Entries of one trail repeat most of their bytes (field names, routes, the
//! consumer), so a block is a tenth of their size or less; SQLite's cost per entry is mostly the
//! bytes it writes (to the WAL, then again at checkpoint), and one row per entry cost the gateway
//! about as much as the rest of the audit path together. The chain is unchanged: every entry keeps
//! its own sequence number and hash, so verification still names the one that was touched.
//!
//! Frame of one entry: sequence number (u64 LE), hash (32 bytes), body length (u32 LE), body.

use crate::StoreError;

/// A block is cut once its frames reach this size; it bounds what reading one block allocates.
pub(crate) const BLOCK_BYTES: usize = 1 << 20;
/// The largest block a reader will unpack: a damaged or forged length cannot make it allocate
/// more than this.
const MAX_RAW: usize = 64 << 20;
const HEAD: usize = 8 + 32 + 4;

/// One entry as stored: its place in the chain, its hash and its canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub seq: u64,
    pub hash: Vec<u8>,
    pub body: Vec<u8>,
}

/// Starts a frame whose body is about to be appended; returns where it starts, for
/// [`close_frame`]. Its sequence number and hash stay zero until [`seal`].
pub(crate) fn open_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEAD]);
    start
}

/// Ends the frame started at `start`: its body is everything after the head.
pub(crate) fn close_frame(out: &mut [u8], start: usize) {
    let len = (out.len() - start - HEAD) as u32;
    out[start + 40..start + HEAD].copy_from_slice(&len.to_le_bytes());
}

/// Numbers and chains the frames of a block being committed: each gets the next sequence
/// number and SHA-256(previous hash ‖ body). `seq` and `prev` are left at the last one's.
pub(crate) fn seal(raw: &mut [u8], seq: &mut u64, prev: &mut [u8; 32]) {
    let mut at = 0;
    while at + HEAD <= raw.len() {
        let len = u32::from_le_bytes(raw[at + 40..at + HEAD].try_into().expect("4 bytes")) as usize;
        let body_at = at + HEAD;
        let hash = crate::audit::chain(prev, &raw[body_at..body_at + len]);
        *seq += 1;
        raw[at..at + 8].copy_from_slice(&seq.to_le_bytes());
        raw[at + 8..at + 40].copy_from_slice(&hash);
        *prev = hash;
        at = body_at + len;
    }
}

/// Appends one entry's frame to a block being built.
pub(crate) fn frame(out: &mut Vec<u8>, seq: u64, hash: &[u8; 32], body: &[u8]) {
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(hash);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
}

pub(crate) fn compress(raw: &[u8]) -> Vec<u8> {
    lz4_flex::compress(raw)
}

/// Unpacks a stored block; `None` when it is not one (damaged, or not written by Warden).
pub(crate) fn unpack(data: &[u8], raw_len: i64) -> Option<Vec<u8>> {
    let len = usize::try_from(raw_len).ok().filter(|n| *n <= MAX_RAW)?;
    let raw = lz4_flex::decompress(data, len).ok()?;
    (raw.len() == len).then_some(raw)
}

/// The entries of an unpacked block, in stored order; `None` at a frame that does not fit.
pub(crate) fn entries(raw: &[u8]) -> impl Iterator<Item = Option<(u64, &[u8], &[u8])>> + '_ {
    let mut rest = raw;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some((head, tail)) = rest.split_at_checked(HEAD) else {
            rest = &[];
            return Some(None);
        };
        let seq = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(head[40..].try_into().expect("4 bytes")) as usize;
        let Some((body, tail)) = tail.split_at_checked(len) else {
            rest = &[];
            return Some(None);
        };
        rest = tail;
        Some(Some((seq, &head[8..40], body)))
    })
}

/// The entries of one stored block (`data` as stored, `raw_len` its unpacked size); `None` when
/// it is damaged. Whatever the bytes, it returns without panicking and allocates at most 64 MiB
/// (the `audit_block` fuzz target holds it to that).
pub fn decode(data: &[u8], raw_len: i64) -> Option<Vec<RawEntry>> {
    let raw = unpack(data, raw_len)?;
    entries(&raw)
        .map(|e| {
            e.map(|(seq, hash, body)| RawEntry {
                seq,
                hash: hash.to_vec(),
                body: body.to_vec(),
            })
        })
        .collect()
}

/// Every entry of the trail in `dir`, as stored, in block order: for forensics, and for tests
/// that tamper with a trail the way someone with write access to the file could.
pub fn read_raw(dir: &std::path::Path) -> Result<Vec<RawEntry>, StoreError> {
    let store = crate::Store::open(dir)?;
    let err = |e| store.err(e);
    let mut stmt = store
        .conn
        .prepare("SELECT first_seq, raw_len, data FROM audit_blocks ORDER BY first_seq")
        .map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(err)? {
        let first: i64 = r.get(0).map_err(err)?;
        let block = decode(
            &r.get::<_, Vec<u8>>(2).map_err(err)?,
            r.get(1).map_err(err)?,
        )
        .ok_or_else(|| StoreError::Invalid(format!("audit block {first} is damaged")))?;
        out.extend(block);
    }
    Ok(out)
}

/// Replaces every stored entry with `entries`, written as given (nothing is re-chained or
/// checked), one block per run of `per_block`. The counterpart of [`read_raw`].
pub fn write_raw(
    dir: &std::path::Path,
    entries: &[RawEntry],
    per_block: usize,
) -> Result<(), StoreError> {
    let mut store = crate::Store::open(dir)?;
    let path = store.path.clone();
    let err = |source| StoreError::Sqlite {
        path: path.clone(),
        source,
    };
    let tx = store.conn.transaction().map_err(err)?;
    tx.execute("DELETE FROM audit_blocks", []).map_err(err)?;
    for chunk in entries.chunks(per_block.max(1)) {
        let mut raw = Vec::new();
        for e in chunk {
            let mut h = [0u8; 32];
            let n = e.hash.len().min(32);
            h[..n].copy_from_slice(&e.hash[..n]);
            frame(&mut raw, e.seq, &h, &e.body);
        }
        let last = chunk.last().expect("chunks are never empty");
        insert(&tx, chunk[0].seq, last.seq, &last.hash, (0, i64::MAX), &raw).map_err(err)?;
    }
    tx.commit().map_err(err)
}

/// Stores one block. `ms`: the earliest and latest `at_ms` in it, which let a query by time skip
/// whole blocks.
pub(crate) fn insert(
    conn: &rusqlite::Connection,
    first: u64,
    last: u64,
    last_hash: &[u8],
    ms: (i64, i64),
    raw: &[u8],
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_blocks(first_seq, last_seq, last_hash, first_ms, last_ms, raw_len, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(rusqlite::params![
        first as i64,
        last as i64,
        last_hash,
        ms.0,
        ms.1,
        raw.len() as i64,
        compress(raw)
    ])
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Whatever is stored (a forged or damaged row), reading it never panics or allocates
        /// past the cap; and what the writer frames reads back as it was.
        #[test]
        fn any_stored_bytes_read_without_panicking(data in proptest::collection::vec(any::<u8>(), 0..512),
                                                   raw_len in any::<i64>()) {
            if let Some(raw) = unpack(&data, raw_len) {
                prop_assert!(raw.len() <= MAX_RAW);
                for _ in entries(&raw) {}
            }
            for _ in entries(&data) {}
        }

        #[test]
        fn framed_entries_round_trip(bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..20)) {
            let mut raw = Vec::new();
            for b in &bodies {
                let start = open_frame(&mut raw);
                raw.extend_from_slice(b);
                close_frame(&mut raw, start);
            }
            let (mut seq, mut prev) = (41, [0u8; 32]);
            seal(&mut raw, &mut seq, &mut prev);
            let back = unpack(&compress(&raw), raw.len() as i64).unwrap();
            let got: Vec<_> = entries(&back).map(|e| e.unwrap()).collect();
            prop_assert_eq!(got.len(), bodies.len());
            let mut h = [0u8; 32];
            for (i, (s, hash, body)) in got.into_iter().enumerate() {
                prop_assert_eq!(s, 42 + i as u64);
                prop_assert_eq!(body, &bodies[i][..]);
                h = crate::audit::chain(&h, body);
                prop_assert_eq!(hash, &h[..]);
            }
            prop_assert_eq!(seq, 41 + bodies.len() as u64);
        }
    }

    #[test]
    fn frames_round_trip_and_damage_is_refused() {
        let mut raw = Vec::new();
        frame(&mut raw, 7, &[1; 32], b"{\"a\":1}");
        frame(&mut raw, 8, &[2; 32], b"");
        let packed = compress(&raw);
        let back = unpack(&packed, raw.len() as i64).unwrap();
        let got: Vec<_> = entries(&back).collect();
        assert_eq!(
            got,
            vec![
                Some((7, &[1u8; 32][..], &b"{\"a\":1}"[..])),
                Some((8, &[2u8; 32][..], &b""[..]))
            ]
        );
        // A wrong length, a forged huge one, garbage, and a frame cut short.
        assert_eq!(unpack(&packed, raw.len() as i64 + 1), None);
        assert_eq!(unpack(&packed, i64::MAX), None);
        assert_eq!(unpack(b"not lz4 at all", 100), None);
        assert_eq!(entries(&raw[..raw.len() - 3]).last(), Some(None));
    }
}
