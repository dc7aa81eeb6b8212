//! `--help` as a newcomer reads it: the top level says what vitals is and where to start,
//! and every command says what it does with one example (issue 17, item 7).

#![allow(clippy::unwrap_used)] // test helpers

fn help(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vitals"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_top_level_says_what_vitals_is_and_where_to_start() {
    let top = help(&[]);
    assert!(top.starts_with("Heartbeats and health checks"), "{top}");
    assert!(top.contains("vitals demo"), "{top}");
    assert!(
        !top.contains("wiring"),
        "an implementation note leaked: {top}"
    );
}

#[test]
fn every_command_gives_an_example() {
    for command in ["demo", "probe", "serve", "lb", "check-config", "supervise"] {
        let text = help(&[command]);
        assert!(
            text.contains(&format!("Example: vitals {command}")),
            "{command} --help has no example:\n{text}"
        );
    }
    let serve = help(&["serve"]);
    for default in ["127.0.0.1:7070", "./vitals-data", "no targets"] {
        assert!(
            serve.contains(default),
            "serve --help lacks {default}:\n{serve}"
        );
    }
}
