//! Every reject reason of the verifier, with the precise cases that cause it, and property
//! tests that no input panics and nothing is accepted without the key.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use proptest::prelude::*;
use vitals_core::Status;

use super::super::wire::HmacSha256;
use super::super::*;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const OTHER_KEY: &[u8] = b"fedcba9876543210fedcba9876543210";
const NOW: u64 = 1_767_225_600_000;
const SKEW: Duration = Duration::from_secs(30);

fn verifier() -> Verifier {
    let mut v = Verifier::new(SKEW);
    v.add_source("api", 3, KEY).unwrap();
    v.add_source("worker.eu-1", 4, OTHER_KEY).unwrap();
    v
}

fn beat(id: &str, seq: u64, time_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode(id, seq, time_ms, Status::Pass, key, &mut out).unwrap();
    out
}

/// `body` followed by its correct tag: lets a test build a datagram that is malformed in one
/// precise way yet carries a valid MAC, so only the shape can be what rejects it.
fn signed(body: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(KEY).unwrap();
    mac.update(body);
    let mut out = body.to_vec();
    out.extend_from_slice(&mac.finalize().into_bytes()[..TAG_LEN]);
    out
}

/// A header for id `id` with the given version and flags.
fn header(version: u8, flags: u8, id_len: u8, id: &[u8]) -> Vec<u8> {
    let mut h = b"VH".to_vec();
    h.push(version);
    h.push(flags);
    h.extend_from_slice(&9u64.to_be_bytes());
    h.extend_from_slice(&NOW.to_be_bytes());
    h.push(id_len);
    h.extend_from_slice(id);
    h
}

fn malformed(datagram: &[u8]) -> &'static str {
    match verifier().verify(datagram, NOW) {
        Err(Reject::Malformed(reason)) => reason,
        other => panic!("expected malformed, got {other:?}"),
    }
}

#[test]
fn a_good_datagram_becomes_a_beat_with_every_field() {
    let mut out = Vec::new();
    encode(
        "worker.eu-1",
        42,
        NOW - 500,
        Status::Warn,
        OTHER_KEY,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        verifier().verify(&out, NOW),
        Ok(Beat {
            target: 4,
            status: Status::Warn,
            seq: 42,
            sent_ms: NOW - 500
        })
    );
}

#[test]
fn every_status_survives_the_trip() {
    let mut v = verifier();
    for (seq, status) in [Status::Pass, Status::Warn, Status::Fail]
        .into_iter()
        .enumerate()
    {
        let mut out = Vec::new();
        encode("api", seq as u64, NOW, status, KEY, &mut out).unwrap();
        assert_eq!(v.verify(&out, NOW).unwrap().status, status);
    }
}

#[test]
fn wrong_mac_is_bad_mac() {
    let good = beat("api", 1, NOW, KEY);
    // Made with another source's key.
    assert_eq!(
        verifier().verify(&beat("api", 1, NOW, OTHER_KEY), NOW),
        Err(Reject::BadMac)
    );
    // One bit of the tag flipped, first and last byte.
    for at in [good.len() - TAG_LEN, good.len() - 1] {
        let mut d = good.clone();
        d[at] ^= 1;
        assert_eq!(verifier().verify(&d, NOW), Err(Reject::BadMac), "byte {at}");
    }
    // A covered field changed after signing: sequence, time, status.
    for at in [11, 19, 3] {
        let mut d = good.clone();
        d[at] ^= 1;
        assert_eq!(verifier().verify(&d, NOW), Err(Reject::BadMac), "byte {at}");
    }
    // The id changed to another configured id: the tag is checked with that id's key.
    let mut v = Verifier::new(SKEW);
    v.add_source("apj", 0, OTHER_KEY).unwrap();
    let mut d = good;
    d[HEADER_LEN + 2] = b'j';
    assert_eq!(v.verify(&d, NOW), Err(Reject::BadMac));
}

#[test]
fn truncated_datagrams_are_malformed() {
    let good = beat("api", 1, NOW, KEY);
    let header = "truncated: shorter than the 21-byte header";
    assert_eq!(malformed(&[]), header);
    assert_eq!(malformed(b"V"), header);
    assert_eq!(malformed(&good[..HEADER_LEN - 1]), header);
    let body = "truncated: shorter than the id length plus the 16-byte mac";
    assert_eq!(malformed(&good[..HEADER_LEN]), body);
    assert_eq!(malformed(&good[..good.len() - 1]), body);
}

#[test]
fn oversized_and_trailing_bytes_are_malformed() {
    assert_eq!(
        malformed(&[0u8; MAX_DATAGRAM + 1]),
        "oversized: longer than the 101-byte maximum"
    );
    let mut long = beat(&"a".repeat(MAX_ID_LEN), 1, NOW, KEY);
    assert_eq!(long.len(), MAX_DATAGRAM);
    long.push(0);
    assert_eq!(
        malformed(&long),
        "oversized: longer than the 101-byte maximum"
    );
    let mut trailing = beat("api", 1, NOW, KEY);
    trailing.push(0);
    assert_eq!(malformed(&trailing), "trailing bytes after the mac");
}

#[test]
fn bad_magic_version_and_flags_are_malformed_even_with_a_valid_mac() {
    let mut d = signed(&header(1, 0, 3, b"api"));
    assert_eq!(verifier().verify(&d, NOW).map(|b| b.target), Ok(3));
    d[0] = b'X';
    assert_eq!(
        malformed(&d),
        "bad magic: not a vitals heartbeat (expected the bytes \"VH\")"
    );
    assert_eq!(
        malformed(&signed(&header(2, 0, 3, b"api"))),
        "unsupported version: this receiver speaks version 1"
    );
    assert_eq!(
        malformed(&signed(&header(0, 0, 3, b"api"))),
        "unsupported version: this receiver speaks version 1"
    );
    assert_eq!(
        malformed(&signed(&header(1, 3, 3, b"api"))),
        "bad status: 3 is none of 0 pass, 1 warn, 2 fail"
    );
    for flags in [0b100, 0b1000_0000, 0b1111_1101] {
        assert_eq!(
            malformed(&signed(&header(1, flags, 3, b"api"))),
            "reserved flag bits set: version 1 defines only the two status bits",
            "flags {flags:#b}"
        );
    }
}

#[test]
fn bad_ids_are_malformed() {
    assert_eq!(
        malformed(&signed(&header(1, 0, 0, b""))),
        "empty id: the id length byte is 0"
    );
    // The length byte alone rejects an over-long id, whatever follows it.
    assert_eq!(
        malformed(&header(1, 0, 65, &[b'a'; 60])),
        "id too long: the id length byte is over 64"
    );
    assert_eq!(
        malformed(&header(1, 0, 255, b"api")),
        "id too long: the id length byte is over 64"
    );
    for id in [&b"a b"[..], b"a/b", b"\0ab", b"\xc3\xa9", b"ap\x7f"] {
        let len = id.len() as u8;
        assert_eq!(
            malformed(&signed(&header(1, 0, len, id))),
            "bad id: a character outside A-Z a-z 0-9 _ . -",
            "{id:?}"
        );
    }
}

#[test]
fn unknown_source_is_rejected_before_the_mac() {
    // Well formed, correctly signed with a real key, but the id is not configured.
    assert_eq!(
        verifier().verify(&beat("apx", 1, NOW, KEY), NOW),
        Err(Reject::UnknownSource)
    );
    // Ids are case sensitive.
    assert_eq!(
        verifier().verify(&beat("API", 1, NOW, KEY), NOW),
        Err(Reject::UnknownSource)
    );
    assert_eq!(
        Verifier::default().verify(&beat("api", 1, NOW, KEY), NOW),
        Err(Reject::UnknownSource)
    );
}

#[test]
fn the_same_sequence_number_twice_is_a_replay() {
    let mut v = verifier();
    let d = beat("api", 10, NOW, KEY);
    assert!(v.verify(&d, NOW).is_ok());
    assert_eq!(v.verify(&d, NOW + 1), Err(Reject::Replayed));
    // Same number, fresh time: still a replay (the number, not the bytes, is what counts).
    assert_eq!(
        v.verify(&beat("api", 10, NOW + 5, KEY), NOW + 5),
        Err(Reject::Replayed)
    );
    // Windows are per source: another source may use the same number.
    assert!(
        v.verify(&beat("worker.eu-1", 10, NOW, OTHER_KEY), NOW)
            .is_ok()
    );
}

#[test]
fn a_number_far_below_the_window_is_a_replay_even_if_never_seen() {
    let mut v = verifier();
    assert!(v.verify(&beat("api", 1000, NOW, KEY), NOW).is_ok());
    assert_eq!(
        v.verify(&beat("api", 936, NOW, KEY), NOW),
        Err(Reject::Replayed)
    );
    assert_eq!(
        v.verify(&beat("api", 0, NOW, KEY), NOW),
        Err(Reject::Replayed)
    );
    assert!(
        v.verify(&beat("api", 937, NOW, KEY), NOW).is_ok(),
        "63 below is inside"
    );
}

#[test]
fn reordering_inside_the_window_is_accepted_once() {
    let mut v = verifier();
    for seq in [5, 3, 4, 1, 2, 60, 6] {
        assert!(v.verify(&beat("api", seq, NOW, KEY), NOW).is_ok(), "{seq}");
    }
    for seq in [1, 2, 3, 4, 5, 6, 60] {
        assert_eq!(
            v.verify(&beat("api", seq, NOW, KEY), NOW),
            Err(Reject::Replayed),
            "{seq}"
        );
    }
}

#[test]
fn times_beyond_the_skew_are_stale_both_ways() {
    let skew = 30_000;
    let mut v = verifier();
    assert_eq!(
        v.verify(&beat("api", 1, NOW - skew - 1, KEY), NOW),
        Err(Reject::Stale)
    );
    assert_eq!(
        v.verify(&beat("api", 2, NOW + skew + 1, KEY), NOW),
        Err(Reject::Stale)
    );
    assert_eq!(v.verify(&beat("api", 3, 0, KEY), NOW), Err(Reject::Stale));
    assert_eq!(
        v.verify(&beat("api", 4, u64::MAX, KEY), NOW),
        Err(Reject::Stale)
    );
    // Exactly the skew is still fresh.
    assert!(v.verify(&beat("api", 5, NOW - skew, KEY), NOW).is_ok());
    assert!(v.verify(&beat("api", 6, NOW + skew, KEY), NOW).is_ok());
    // A receiver clock near zero does not underflow.
    assert_eq!(v.verify(&beat("api", 7, NOW, KEY), 0), Err(Reject::Stale));
}

#[test]
fn rejected_datagrams_do_not_move_the_window() {
    let mut v = verifier();
    // Stale, then the same number fresh: accepted, because the stale one changed nothing.
    assert_eq!(
        v.verify(&beat("api", 10, NOW - 60_000, KEY), NOW),
        Err(Reject::Stale)
    );
    assert!(v.verify(&beat("api", 10, NOW, KEY), NOW).is_ok());
    // A forgery with a huge number must not push the real sender out of the window.
    let mut forged = beat("api", u64::MAX, NOW, KEY);
    let last = forged.len() - 1;
    forged[last] ^= 0xff;
    assert_eq!(v.verify(&forged, NOW), Err(Reject::BadMac));
    assert!(v.verify(&beat("api", 11, NOW, KEY), NOW).is_ok());
}

#[test]
fn a_zero_skew_accepts_only_the_same_millisecond() {
    let mut v = Verifier::new(Duration::ZERO);
    v.add_source("api", 0, KEY).unwrap();
    assert!(v.verify(&beat("api", 1, NOW, KEY), NOW).is_ok());
    assert_eq!(
        v.verify(&beat("api", 2, NOW, KEY), NOW + 1),
        Err(Reject::Stale)
    );
}

#[test]
fn add_source_refuses_bad_ids_duplicates_and_short_keys() {
    let mut v = verifier();
    let err = v.add_source("api", 9, KEY).unwrap_err();
    assert_eq!(
        err.to_string(),
        "udp source id \"api\" is configured twice; give each source its own id"
    );
    let err = v.add_source("my api", 9, KEY).unwrap_err();
    assert_eq!(
        err.to_string(),
        "udp source id \"my api\" is invalid: it has a character outside A-Z a-z 0-9 _ . -; ids are 1 to 64 characters of A-Z a-z 0-9 _ . -"
    );
    assert!(matches!(
        v.add_source("", 9, KEY),
        Err(AddSourceError::InvalidId {
            reason: "it is empty",
            ..
        })
    ));
    assert!(matches!(
        v.add_source(&"a".repeat(65), 9, KEY),
        Err(AddSourceError::InvalidId {
            reason: "it is longer than 64 bytes",
            ..
        })
    ));
    let err = v.add_source("db", 9, b"short").unwrap_err();
    assert_eq!(
        err.to_string(),
        "key of udp source \"db\" is 5 bytes; use at least 16 random bytes (32 recommended, e.g. `openssl rand -hex 32`)"
    );
    assert_eq!(v.len(), 2, "refused sources are not added");
}

#[test]
fn reasons_are_the_metric_labels() {
    let all = [
        Reject::Malformed("x"),
        Reject::UnknownSource,
        Reject::BadMac,
        Reject::Replayed,
        Reject::Stale,
    ];
    assert_eq!(all.map(|r| r.reason()), Reject::REASONS);
    assert_eq!(
        Reject::Malformed("trailing bytes after the mac").to_string(),
        "malformed datagram: trailing bytes after the mac"
    );
}

#[test]
fn debug_output_shows_no_key() {
    let shown = format!("{:?}", verifier());
    assert_eq!(shown, "Verifier { max_skew_ms: 30000, sources: 2, .. }");
}

proptest! {
    /// Whatever arrives, nothing panics and nothing is accepted: bytes made without the key
    /// cannot carry a valid tag.
    #[test]
    fn arbitrary_bytes_are_never_accepted(bytes in proptest::collection::vec(any::<u8>(), 0..=120)) {
        let result = verifier().verify(&bytes, NOW);
        prop_assert!(result.is_err(), "accepted {:?}", bytes);
    }

    /// Well-formed headers for a configured id, with any fields and any tag: the shape passes,
    /// the MAC does not.
    #[test]
    fn well_formed_datagrams_without_the_key_are_never_accepted(
        flags in 0u8..3,
        seq in any::<u64>(),
        time in NOW - 30_000..NOW + 30_000,
        tag in any::<[u8; TAG_LEN]>(),
    ) {
        let mut d = header(1, flags, 3, b"api");
        d[4..12].copy_from_slice(&seq.to_be_bytes());
        d[12..20].copy_from_slice(&time.to_be_bytes());
        d.extend_from_slice(&tag);
        prop_assert_eq!(verifier().verify(&d, NOW), Err(Reject::BadMac));
    }

    /// Changing any byte of a valid datagram, in any way, gets it rejected.
    #[test]
    fn any_change_to_a_valid_datagram_is_rejected(
        at in 0usize..HEADER_LEN + 3 + TAG_LEN,
        xor in 1u8..=255,
    ) {
        let mut d = beat("api", 7, NOW, KEY);
        d[at] ^= xor;
        prop_assert!(verifier().verify(&d, NOW).is_err());
    }
}
