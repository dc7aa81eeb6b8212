//! How vitals words errors and durations in the messages people read: an outcome's output
//! ("GET http://db:8080/health: error sending request: connection refused", "timed out after
//! 2s"), an alert's delivery error, a validation problem.
//!
//! One place, so that the same error reads the same in a probe, the monitor and the
//! notifier. What it is not: an error type (probes do not return errors, they return failing
//! reports), nor a logger; callers decide where the text goes.

use std::error::Error;
use std::time::Duration;

/// An error followed by each of its sources, joined by `": "`: `error sending request: client
/// error (Connect): tcp connect error: Connection refused (os error 111)`.
///
/// For errors whose top-level message hides the cause people need (reqwest says "error
/// sending request" and keeps "connection refused" in a source).
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Only the innermost source's message (or the error's own, if that is empty or it has no
/// source).
///
/// For errors that already repeat their source in their own message (tokio-postgres writes
/// "error connecting to server: Connection refused" and also returns "Connection refused" as
/// its source), where [`error_chain`] would say the cause twice.
pub fn error_root(error: &dyn Error) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    let text = current.to_string();
    if text.is_empty() {
        error.to_string()
    } else {
        text
    }
}

/// `1.5s`, `250ms`, `2m`, `800µs`: a duration the way people write it in messages. Whole
/// minutes and seconds lose their zeros; anything else above a second keeps one decimal.
pub fn fmt_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        format!("{}µs", duration.as_micros())
    } else if millis < 1000 {
        format!("{millis}ms")
    } else if millis.is_multiple_of(60_000) {
        format!("{}m", millis / 60_000)
    } else if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    /// An error with an optional source, like the layers a driver wraps around an I/O error.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1
                .as_deref()
                .map(|layer| layer as &(dyn Error + 'static))
        }
    }

    fn layers(messages: &[&'static str]) -> Layer {
        let (first, rest) = messages.split_first().expect("at least one layer");
        Layer(first, (!rest.is_empty()).then(|| Box::new(layers(rest))))
    }

    #[test]
    fn a_chain_names_every_layer_in_order() {
        let error = layers(&[
            "error sending request",
            "tcp connect error",
            "connection refused",
        ]);
        assert_eq!(
            error_chain(&error),
            "error sending request: tcp connect error: connection refused"
        );
        assert_eq!(error_chain(&layers(&["alone"])), "alone");
    }

    #[test]
    fn a_root_is_the_innermost_message_unless_it_is_empty() {
        let error = layers(&["error connecting to server", "connection refused"]);
        assert_eq!(error_root(&error), "connection refused");
        assert_eq!(error_root(&layers(&["alone"])), "alone");
        assert_eq!(error_root(&layers(&["outer", ""])), "outer");
    }

    #[test]
    fn durations_read_the_way_people_write_them() {
        let cases = [
            (Duration::from_micros(800), "800µs"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(90), "90s"),
        ];
        for (duration, text) in cases {
            assert_eq!(fmt_duration(duration), text, "{duration:?}");
        }
    }
}
