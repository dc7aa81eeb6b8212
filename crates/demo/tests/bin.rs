//! `vitals-demo` as the README's first command runs it: a real process on loopback that
//! prints its address, answers its probes, and exits cleanly on SIGTERM.

#![allow(clippy::unwrap_used)] // test code

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .unwrap_or_else(|error| panic!("reading {path}: {error}"));
    answer
}

/// The demo process, killed if the test ends before it has stopped it.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn the_demo_binary_serves_its_probes_and_stops_on_sigterm() {
    let mut demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_vitals-demo"))
            .args(["--listen", "127.0.0.1:0", "--drain-delay", "0s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Only the first line is read, and the pipe is closed while the demo still writes the
    // rest of its banner: it must go on serving (it once panicked on the closed pipe).
    let mut banner = String::new();
    BufReader::new(demo.0.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let addr = banner
        .trim()
        .strip_prefix("vitals demo on http://")
        .unwrap_or_else(|| panic!("unexpected banner {banner:?}"))
        .to_owned();
    let livez = get(&addr, "/livez");
    assert!(livez.starts_with("HTTP/1.1 200 OK"), "{livez}");
    let index = get(&addr, "/");
    assert!(index.contains("/demo/database/MODE"), "{index}");
    let killed = Command::new("kill")
        .args(["-TERM", &demo.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = demo.0.wait().unwrap();
    assert!(status.success(), "{status}");
}
