//! Uptime over synthetic transition histories, one `check(history, expected)` per rule.

use super::*;

/// `now` in every case: far enough from BASE that a year fits before it.
const NOW: u64 = 600 * DAY;

/// Records `history` (seconds before NOW, state entered; oldest first) for target "t" and
/// checks both `uptime` and `uptimes` against `[day, week, month, year]`.
#[track_caller]
fn check(history: &[(i64, &str)], expected: [Option<f64>; 4]) {
    let (_dir, store) = temp_store();
    let mut from = "unknown";
    for &(ago, to) in history {
        let when = (NOW as i64 - ago) as u64;
        store
            .record_transition(&transition("t", at(when), from, to))
            .unwrap();
        from = to;
    }
    let got = store.uptime("t", at(NOW)).unwrap();
    let got = [got.day, got.week, got.month, got.year];
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        match (g, e) {
            (Some(g), Some(e)) => assert!(
                (g - e).abs() < 1e-9,
                "window {i}: got {g}, want {e} (all: {got:?})"
            ),
            (g, e) => assert_eq!(*g, e, "window {i} (all: {got:?})"),
        }
    }
    let all = store.uptimes(at(NOW)).unwrap();
    if history.is_empty() {
        assert!(all.is_empty());
    } else {
        let one = all["t"];
        assert_eq!([one.day, one.week, one.month, one.year], got);
    }
}

const H: i64 = HOUR as i64;
const D: i64 = DAY as i64;

#[test]
fn nothing_known_is_none() {
    check(&[], [None; 4]);
}

#[test]
fn healthy_for_more_than_a_year_is_fully_up() {
    check(&[(400 * D, "healthy")], [Some(1.0); 4]);
}

#[test]
fn time_down_is_weighted_by_duration_in_each_window() {
    check(
        &[(400 * D, "healthy"), (12 * H, "down")],
        [
            Some(0.5),
            Some(1.0 - 0.5 / 7.0),
            Some(1.0 - 0.5 / 30.0),
            Some(1.0 - 0.5 / 365.0),
        ],
    );
}

#[test]
fn windows_are_clipped_to_the_first_known_state() {
    // Known for 6 hours only: the other 18 hours of the day are not "down".
    check(&[(6 * H, "healthy")], [Some(1.0); 4]);
    check(
        &[(2 * D, "healthy"), (D, "down"), (D - 6 * H, "healthy")],
        [
            Some(0.75),
            Some(1.0 - 6.0 / 48.0),
            Some(1.0 - 6.0 / 48.0),
            Some(1.0 - 6.0 / 48.0),
        ],
    );
}

#[test]
fn serving_states_are_up_and_the_others_down() {
    // degraded and failing serve; unhealthy, down and recovering do not.
    check(
        &[
            (24 * H, "healthy"),
            (20 * H, "degraded"),
            (16 * H, "failing"),
            (12 * H, "unhealthy"),
            (9 * H, "down"),
            (6 * H, "recovering"),
            (3 * H, "healthy"),
        ],
        [Some(15.0 / 24.0); 4],
    );
}

#[test]
fn maintenance_paused_and_unknown_are_left_out() {
    check(
        &[
            (400 * D, "healthy"),
            (12 * H, "maintenance"),
            (6 * H, "down"),
        ],
        [
            Some(12.0 / 18.0),
            Some(1.0 - 6.0 / (7.0 * 24.0 - 6.0)),
            Some(1.0 - 6.0 / (30.0 * 24.0 - 6.0)),
            Some(1.0 - 6.0 / (365.0 * 24.0 - 6.0)),
        ],
    );
    // Paused for the whole last two days: nothing is known for the day window.
    check(
        &[(400 * D, "healthy"), (2 * D, "paused")],
        [None, Some(1.0), Some(1.0), Some(1.0)],
    );
    // A restart back to unknown is a gap, not an outage.
    check(
        &[(2 * D, "healthy"), (D, "unknown"), (D - 12 * H, "healthy")],
        [Some(1.0); 4],
    );
}

#[test]
fn the_year_window_starts_in_the_state_entered_before_it() {
    // Down since long before the year began, healthy for the last 73 days.
    check(
        &[(500 * D, "healthy"), (450 * D, "down"), (73 * D, "healthy")],
        [Some(1.0), Some(1.0), Some(1.0), Some(73.0 / 365.0)],
    );
}

#[test]
fn transitions_after_now_and_at_window_edges() {
    // A transition stamped after `now` (a clock step) has not happened yet.
    check(&[(10 * H, "healthy"), (-H, "down")], [Some(1.0); 4]);
    // A transition exactly at the day window's start sets its first state.
    check(
        &[(2 * D, "down"), (D, "healthy")],
        [Some(1.0), Some(0.5), Some(0.5), Some(0.5)],
    );
    // Two transitions in one millisecond: the later id wins.
    check(
        &[(2 * D, "healthy"), (D, "down"), (D, "healthy")],
        [Some(1.0); 4],
    );
}

#[test]
fn uptimes_of_many_targets_match_one_by_one() {
    let (_dir, store) = temp_store();
    // A deterministic pseudo-random history per target.
    let mut rng = vitals_core::SplitMix64::new(0x9E37_79B9_7F4A_7C15);
    let mut next = move || rng.next_u64();
    let states = [
        "healthy",
        "failing",
        "unhealthy",
        "down",
        "recovering",
        "maintenance",
    ];
    for target in 0..40 {
        let name = format!("target-{target}");
        let mut when = next() % (400 * DAY);
        let mut from = "unknown";
        for _ in 0..(next() % 30) {
            let to = states[(next() % states.len() as u64) as usize];
            store
                .record_transition(&transition(&name, at(when), from, to))
                .unwrap();
            from = to;
            when += next() % (30 * DAY);
        }
    }
    // One target that never had a transition: absent from the map.
    store.set_flags("silent", &Flags::default()).unwrap();
    let all = store.uptimes(at(NOW)).unwrap();
    assert!(!all.contains_key("silent"));
    for target in 0..40 {
        let name = format!("target-{target}");
        let one = store.uptime(&name, at(NOW)).unwrap();
        match all.get(&name) {
            Some(u) => assert_eq!(*u, one, "{name}"),
            None => assert_eq!(one, Uptime::default(), "{name}"),
        }
    }
}

/// Records `(seconds before NOW, from, to)` rows for target "t"; returns `[day, week]`.
fn day_and_week(rows: &[(i64, &str, &str)]) -> [Option<f64>; 2] {
    let (_dir, store) = temp_store();
    for &(ago, from, to) in rows {
        let when = (NOW as i64 - ago) as u64;
        store
            .record_transition(&transition("t", at(when), from, to))
            .unwrap();
    }
    let one = store.uptime("t", at(NOW)).unwrap();
    let all = store.uptimes(at(NOW)).unwrap()["t"];
    assert_eq!([one.day, one.week], [all.day, all.week]);
    [one.day, one.week]
}

#[test]
fn real_transitions_inside_maintenance_do_not_count() {
    // Healthy a week; maintenance from 12 h ago to 6 h ago, during which it went down (the
    // checks went on); back healthy 5 h ago; then down for the last 3 h.
    let got = day_and_week(&[
        (8 * D, "unknown", "healthy"),
        (12 * H, "healthy", "maintenance"),
        (11 * H, "healthy", "down"),
        (6 * H, "maintenance", "down"),
        (5 * H, "down", "recovering"),
        (4 * H, "recovering", "healthy"),
        (3 * H, "healthy", "down"),
    ]);
    // Day: up 12 h (before) + 1 h (4 h → 3 h ago); down 1 h (6 → 5 h ago) + 1 h recovering
    // + 3 h; maintenance's 6 h left out: 13 / 18.
    assert!((got[0].unwrap() - 13.0 / 18.0).abs() < 1e-9, "{got:?}");
    assert!(got[1].unwrap() > got[0].unwrap());
}

#[test]
fn pause_nested_in_maintenance_ends_only_with_both() {
    let got = day_and_week(&[
        (8 * D, "unknown", "healthy"),
        (10 * H, "healthy", "maintenance"),
        (9 * H, "healthy", "paused"),
        (8 * H, "maintenance", "healthy"),
        (7 * H, "healthy", "down"),
        (6 * H, "paused", "down"),
    ]);
    // Up 14 h before, then 10 h → 6 h ago nothing counts, then down 6 h: 14 / 20.
    assert!((got[0].unwrap() - 14.0 / 20.0).abs() < 1e-9, "{got:?}");
}

/// A state name no version of vitals writes is a corrupt row, never a target counted down
/// (uptime used to map any unknown name to "down").
#[test]
fn a_state_name_vitals_never_writes_is_a_corrupt_row_not_down() {
    let (dir, store) = temp_store();
    store
        .record_transition(&transition("t", at(NOW - DAY), "unknown", "healthy"))
        .unwrap();
    let raw = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    raw.execute(
        "INSERT INTO transitions (target, at, from_state, to_state, reason)
         SELECT target, at + 1000, 'healthy', 'isolated', 'from an old build' FROM transitions",
        [],
    )
    .unwrap();
    for error in [
        store.uptime("t", at(NOW)).unwrap_err(),
        store.uptimes(at(NOW)).unwrap_err(),
    ] {
        assert!(
            matches!(&error, StoreError::Corrupt { what } if what.contains("\"isolated\"")),
            "{error}"
        );
    }
}
