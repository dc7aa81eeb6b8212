//! The byte layout of a UDP heartbeat: [`encode`] for senders and a zero-copy parser for the
//! receiver. `docs/PROTOCOL.md` is the normative description; this file is its implementation.
//!
//! Not here: which ids exist, keys, replay and time checks. Those need state and live in the
//! verifier; the parser only answers "is this shaped like a version-1 heartbeat, and which
//! bytes are the id, the signed part and the tag".

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use vitals_core::Status;

/// The first two bytes of every heartbeat: `b"VH"`.
pub const MAGIC: [u8; 2] = *b"VH";
/// The only version this receiver speaks.
pub const VERSION: u8 = 1;
/// Bytes before the id: magic (2), version (1), flags (1), sequence (8), time (8), id length (1).
pub const HEADER_LEN: usize = 21;
/// The longest id, in bytes.
pub const MAX_ID_LEN: usize = 64;
/// Bytes of HMAC-SHA256 kept at the end of a datagram (the left half of the 32-byte MAC).
pub const TAG_LEN: usize = 16;
/// The shortest key accepted, in bytes. A key shorter than the 128-bit tag would be the
/// weakest link; 32 random bytes (the hash's output size) are recommended.
pub const MIN_KEY_LEN: usize = 16;
/// The largest valid datagram: a 64-byte id. Anything longer is malformed.
pub const MAX_DATAGRAM: usize = HEADER_LEN + MAX_ID_LEN + TAG_LEN;
/// The smallest valid datagram: a 1-byte id.
pub const MIN_DATAGRAM: usize = HEADER_LEN + 1 + TAG_LEN;

/// Low two bits of the flags byte: the sender's status.
const STATUS_MASK: u8 = 0b0000_0011;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Why [`encode`] refused to build a datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The id breaks the id rules.
    #[error(
        "heartbeat id {id:?} is invalid: {reason}; ids are 1 to 64 characters of A-Z a-z 0-9 _ . -"
    )]
    InvalidId {
        /// The id as given.
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The key is too short to be worth a 128-bit tag.
    #[error(
        "heartbeat key is {len} bytes; use at least 16 random bytes (32 recommended, e.g. `openssl rand -hex 32`)"
    )]
    KeyTooShort {
        /// Its length in bytes.
        len: usize,
    },
}

/// Builds one heartbeat datagram into `out` (cleared first, so a sender can reuse one buffer).
///
/// `seq` must grow with every datagram, across restarts of the sender too: the receiver drops
/// a sequence number it has seen, or one more than 63 below the highest it has seen. Starting
/// from the clock in nanoseconds and adding one per datagram satisfies that without storing
/// anything. `time_ms` is the sender's wall clock in Unix milliseconds.
pub fn encode(
    id: &str,
    seq: u64,
    time_ms: u64,
    status: Status,
    key: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    check_id(id.as_bytes()).map_err(|reason| EncodeError::InvalidId {
        id: id.to_owned(),
        reason,
    })?;
    let mut mac = keyed_mac(key).ok_or(EncodeError::KeyTooShort { len: key.len() })?;
    out.clear();
    out.reserve(HEADER_LEN + id.len() + TAG_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(status_bits(status));
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&time_ms.to_be_bytes());
    // check_id bounded the length to 64, so it fits a byte.
    out.push(id.len() as u8);
    out.extend_from_slice(id.as_bytes());
    mac.update(out);
    let full = mac.finalize().into_bytes();
    out.extend_from_slice(&full[..TAG_LEN]);
    Ok(())
}

/// An HMAC-SHA256 state initialized with `key`, or `None` if the key is shorter than
/// [`MIN_KEY_LEN`]. The verifier keeps this state per source and clones it per datagram, which
/// saves hashing the key (two of the five SHA-256 blocks a heartbeat costs) every time.
pub(crate) fn keyed_mac(key: &[u8]) -> Option<HmacSha256> {
    if key.len() < MIN_KEY_LEN {
        return None;
    }
    // HMAC takes keys of any length, so this never fails; `ok()` keeps it panic-free anyway.
    <HmacSha256 as KeyInit>::new_from_slice(key).ok()
}

/// Checks the id rules: 1..=64 bytes of `[A-Za-z0-9_.-]`. The reason is a fragment for a
/// longer message.
pub(crate) fn check_id(id: &[u8]) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("it is empty");
    }
    if id.len() > MAX_ID_LEN {
        return Err("it is longer than 64 bytes");
    }
    if !id.iter().all(|&b| is_id_byte(b)) {
        return Err("it has a character outside A-Z a-z 0-9 _ . -");
    }
    Ok(())
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

fn status_bits(status: Status) -> u8 {
    match status {
        Status::Pass => 0,
        Status::Warn => 1,
        Status::Fail => 2,
    }
}

/// A datagram that has the shape of a version-1 heartbeat. Nothing in it is authenticated
/// yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub status: Status,
    pub seq: u64,
    pub sent_ms: u64,
    pub id: &'a [u8],
    /// Everything the MAC covers: the header and the id.
    pub signed: &'a [u8],
    pub tag: &'a [u8; TAG_LEN],
}

/// Parses a datagram without copying or allocating. The error is the precise reason, phrased
/// to follow "malformed datagram: ".
pub(crate) fn parse(datagram: &[u8]) -> Result<Frame<'_>, &'static str> {
    const TRUNCATED_HEADER: &str = "truncated: shorter than the 21-byte header";
    if datagram.len() > MAX_DATAGRAM {
        return Err("oversized: longer than the 101-byte maximum");
    }
    let (magic, rest) = datagram.split_first_chunk::<2>().ok_or(TRUNCATED_HEADER)?;
    if *magic != MAGIC {
        return Err("bad magic: not a vitals heartbeat (expected the bytes \"VH\")");
    }
    let (&[version, flags], rest) = rest.split_first_chunk::<2>().ok_or(TRUNCATED_HEADER)?;
    if version != VERSION {
        return Err("unsupported version: this receiver speaks version 1");
    }
    if flags & !STATUS_MASK != 0 {
        return Err("reserved flag bits set: version 1 defines only the two status bits");
    }
    let status = match flags & STATUS_MASK {
        0 => Status::Pass,
        1 => Status::Warn,
        2 => Status::Fail,
        _ => return Err("bad status: 3 is none of 0 pass, 1 warn, 2 fail"),
    };
    let (seq, rest) = rest.split_first_chunk::<8>().ok_or(TRUNCATED_HEADER)?;
    let (sent, rest) = rest.split_first_chunk::<8>().ok_or(TRUNCATED_HEADER)?;
    let (&id_len, rest) = rest.split_first().ok_or(TRUNCATED_HEADER)?;
    let id_len = usize::from(id_len);
    if id_len == 0 {
        return Err("empty id: the id length byte is 0");
    }
    if id_len > MAX_ID_LEN {
        return Err("id too long: the id length byte is over 64");
    }
    if rest.len() < id_len + TAG_LEN {
        return Err("truncated: shorter than the id length plus the 16-byte mac");
    }
    if rest.len() > id_len + TAG_LEN {
        return Err("trailing bytes after the mac");
    }
    let (signed, tag) = datagram
        .split_last_chunk::<TAG_LEN>()
        .ok_or(TRUNCATED_HEADER)?;
    let id = rest.get(..id_len).ok_or(TRUNCATED_HEADER)?;
    if !id.iter().all(|&b| is_id_byte(b)) {
        return Err("bad id: a character outside A-Z a-z 0-9 _ . -");
    }
    Ok(Frame {
        status,
        seq: u64::from_be_bytes(*seq),
        sent_ms: u64::from_be_bytes(*sent),
        id,
        signed,
        tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn datagram(id: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode(id, 7, 1_000, Status::Fail, KEY, &mut out).unwrap();
        out
    }

    #[test]
    fn encode_then_parse_round_trips_every_field() {
        let d = datagram("api-1");
        assert_eq!(d.len(), HEADER_LEN + 5 + TAG_LEN);
        let f = parse(&d).unwrap();
        assert_eq!(f.status, Status::Fail);
        assert_eq!((f.seq, f.sent_ms), (7, 1_000));
        assert_eq!(f.id, b"api-1");
        assert_eq!(f.signed, &d[..d.len() - TAG_LEN]);
        assert_eq!(&f.tag[..], &d[d.len() - TAG_LEN..]);
    }

    #[test]
    fn size_limits_follow_the_id_limits() {
        assert_eq!(datagram("a").len(), MIN_DATAGRAM);
        assert_eq!(datagram(&"a".repeat(64)).len(), MAX_DATAGRAM);
        assert_eq!(MAX_DATAGRAM, 101);
    }

    #[test]
    fn encode_refuses_bad_ids_and_short_keys() {
        let mut out = Vec::new();
        for (id, reason) in [
            ("", "it is empty"),
            (&*"a".repeat(65), "it is longer than 64 bytes"),
            ("a b", "it has a character outside A-Z a-z 0-9 _ . -"),
            ("é", "it has a character outside A-Z a-z 0-9 _ . -"),
        ] {
            let err = encode(id, 1, 1, Status::Pass, KEY, &mut out).unwrap_err();
            assert_eq!(
                err,
                EncodeError::InvalidId {
                    id: id.to_owned(),
                    reason
                }
            );
        }
        let err = encode("a", 1, 1, Status::Pass, &KEY[..15], &mut out).unwrap_err();
        assert_eq!(err, EncodeError::KeyTooShort { len: 15 });
        assert_eq!(
            err.to_string(),
            "heartbeat key is 15 bytes; use at least 16 random bytes (32 recommended, e.g. `openssl rand -hex 32`)"
        );
    }

    #[test]
    fn encode_clears_the_buffer_it_reuses() {
        let mut out = vec![0xff; 300];
        encode("a", 1, 1, Status::Pass, KEY, &mut out).unwrap();
        assert_eq!(out, datagram_with("a", 1, 1));
    }

    fn datagram_with(id: &str, seq: u64, t: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(id, seq, t, Status::Pass, KEY, &mut out).unwrap();
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(10_000))]

        /// 10,000 cases: any bytes, of any length up to twice the largest datagram, parse
        /// to a frame or a reason, never a panic; a frame's parts always fit the datagram.
        #[test]
        fn any_bytes_parse_or_are_refused_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=2 * MAX_DATAGRAM),
        ) {
            if let Ok(frame) = parse(&bytes) {
                proptest::prop_assert!(check_id(frame.id).is_ok() || frame.id.len() <= MAX_ID_LEN);
                proptest::prop_assert_eq!(frame.signed.len() + TAG_LEN, bytes.len());
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// 2,000 cases: what `encode` builds, `parse` reads back field by field; a valid
        /// datagram with its id length byte or any one byte changed never panics the parser.
        #[test]
        fn encode_and_parse_agree_and_edits_never_panic(
            id in "[A-Za-z0-9_.-]{1,64}",
            seq in proptest::prelude::any::<u64>(),
            time in proptest::prelude::any::<u64>(),
            status in 0u8..3,
            at in 0usize..MAX_DATAGRAM,
            byte in proptest::prelude::any::<u8>(),
        ) {
            let status = [Status::Pass, Status::Warn, Status::Fail][usize::from(status)];
            let mut out = Vec::new();
            encode(&id, seq, time, status, KEY, &mut out).unwrap();
            let frame = parse(&out).unwrap();
            proptest::prop_assert_eq!((frame.status, frame.seq, frame.sent_ms), (status, seq, time));
            proptest::prop_assert_eq!(frame.id, id.as_bytes());
            let mut edited = out.clone();
            let at = at % edited.len();
            edited[at] = byte;
            let _ = parse(&edited);
            edited[HEADER_LEN - 1] = byte;
            let _ = parse(&edited);
            edited.truncate(at);
            let _ = parse(&edited);
        }
    }
}
