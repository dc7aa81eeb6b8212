//! Fuzzing the reader from the files people actually write (issue 11): the shipped example
//! configurations of the monitor and the balancer, edited at random — a byte replaced,
//! inserted or deleted, a line dropped or doubled, a value swapped for a hostile one — must
//! give a config or errors with a line inside the file, never a panic.

use proptest::prelude::*;

use crate::lb;

const MONITOR: &str = include_str!("../../../../examples/vitals.toml");
const BALANCER: &str = include_str!("../../../../examples/lb.toml");

/// Values that have broken readers elsewhere: huge and negative numbers, huge durations,
/// NUL and control characters, empty strings, deep nesting.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"500000000000y\"".to_owned()),
        Just("\"8000y\"".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-1".to_owned()),
        Just("1e308".to_owned()),
        Just("nan".to_owned()),
        Just("\"\\u0000\"".to_owned()),
        Just("\"a\\nb\"".to_owned()),
        Just("\"\"".to_owned()),
        Just("[[[[[[[[[[1]]]]]]]]]]".to_owned()),
        Just("{ a = { b = { c = 1 } } }".to_owned()),
        Just("\"0.0.0.0:99999\"".to_owned()),
        Just("\"http://u:p@[::1]:0/\"".to_owned()),
        "[ -~]{0,20}".prop_map(|s| format!("{s:?}")),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, char),
    Insert(usize, char),
    Delete(usize),
    DropLine(usize),
    DoubleLine(usize),
    /// The value of line n (after its `=`) becomes another.
    Value(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let ch = prop_oneof![
        any::<char>(),
        "[\\[\\]{}=\",.#\\n ]".prop_map(|s| s.chars().next().unwrap_or(' '))
    ];
    prop_oneof![
        (any::<usize>(), ch.clone()).prop_map(|(at, c)| Edit::Replace(at, c)),
        (any::<usize>(), ch).prop_map(|(at, c)| Edit::Insert(at, c)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::DropLine),
        any::<usize>().prop_map(Edit::DoubleLine),
        (any::<usize>(), hostile()).prop_map(|(n, v)| Edit::Value(n, v)),
    ]
}

/// `text` with `edits` applied (positions wrap around, on character boundaries).
fn apply(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_owned();
    for edit in edits {
        let chars: Vec<char> = text.chars().collect();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let at = |n: usize, len: usize| if len == 0 { 0 } else { n % len };
        text = match edit {
            Edit::Replace(n, c) if !chars.is_empty() => {
                let mut chars = chars;
                let i = at(*n, chars.len());
                chars[i] = *c;
                chars.into_iter().collect()
            }
            Edit::Insert(n, c) => {
                let mut chars = chars;
                let i = at(*n, chars.len() + 1);
                chars.insert(i, *c);
                chars.into_iter().collect()
            }
            Edit::Delete(n) if !chars.is_empty() => {
                let mut chars = chars;
                chars.remove(at(*n, chars.len()));
                chars.into_iter().collect()
            }
            Edit::DropLine(n) if !lines.is_empty() => {
                lines.remove(at(*n, lines.len()));
                lines.join("\n")
            }
            Edit::DoubleLine(n) if !lines.is_empty() => {
                let i = at(*n, lines.len());
                lines.insert(i, lines[i].clone());
                lines.join("\n")
            }
            Edit::Value(n, value) => {
                let with_values: Vec<usize> = (0..lines.len())
                    .filter(|&i| {
                        lines[i].contains(" = ") && !lines[i].trim_start().starts_with('#')
                    })
                    .collect();
                if let Some(&i) = with_values.get(at(*n, with_values.len().max(1))) {
                    let key = lines[i].split(" = ").next().unwrap_or_default().to_owned();
                    lines[i] = format!("{key} = {value}");
                }
                lines.join("\n")
            }
            _ => text,
        };
    }
    text
}

fn lines_in_range(errors: &crate::ConfigErrors, text: &str) -> Result<(), TestCaseError> {
    let count = text.split('\n').count();
    prop_assert!(!errors.0.is_empty());
    for error in &errors.0 {
        prop_assert!(error.line >= 1 && error.line <= count, "{error} in\n{text}");
        prop_assert!(!error.message.is_empty());
    }
    Ok(())
}

#[test]
fn the_examples_are_valid() {
    crate::parse(MONITOR, "vitals.toml").unwrap_or_else(|e| panic!("{e}"));
    lb::parse(BALANCER, "lb.toml").unwrap_or_else(|e| panic!("{e}"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// 2,000 cases: the monitor's example with 1 to 8 random edits.
    #[test]
    fn the_monitor_example_edited_at_random_never_panics(edits in prop::collection::vec(edit(), 1..8)) {
        let text = apply(MONITOR, &edits);
        if let Err(errors) = crate::parse(&text, "fuzz.toml") {
            lines_in_range(&errors, &text)?;
        }
    }

    /// 2,000 cases: the balancer's example with 1 to 8 random edits.
    #[test]
    fn the_balancer_example_edited_at_random_never_panics(edits in prop::collection::vec(edit(), 1..8)) {
        let text = apply(BALANCER, &edits);
        if let Err(errors) = lb::parse(&text, "fuzz.toml") {
            lines_in_range(&errors, &text)?;
        }
    }
}
