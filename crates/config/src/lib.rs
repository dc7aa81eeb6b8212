//! The monitor's configuration: a TOML file, validated up front, where every error names the
//! file, line, column and field, and every error is reported in one pass.
//!
//! [`load`] reads a file, [`parse`] reads text, [`Config::embedded_default`] is what `vitals
//! serve` runs without `--config`. The result is a plain [`Config`] with `[defaults]` merged
//! into each [`Target`]. docs/CONFIG.md documents every key; examples/vitals.toml uses each.
//!
//! ```
//! let config = vitals_config::parse(
//!     r#"
//!     [[target]]
//!     id = "api"
//!     kind = "http"
//!     url = "http://127.0.0.1:8080/health"
//!     timeout = "40s"
//!     "#,
//!     "vitals.toml",
//! );
//! let errors = config.unwrap_err().to_string();
//! assert_eq!(
//!     errors,
//!     "vitals.toml:6:15: target[0] (\"api\").timeout: 40s is longer than interval 30s (the default); \
//!      a check must finish before the next one starts"
//! );
//! ```
//!
//! How it works: the text is parsed into toml's spanned document, then each table is walked
//! (`fields`) against its key list in `keys`, the one place that knows each key's type and
//! which kinds accept it. Each table is declared there once, with `schema!`, which also makes
//! one typed constant per key: code reads a walked table only through them
//! (`f.get(target::TIMEOUT)` is a `Duration`), so a misspelt key does not compile. Each value
//! is checked alone (`value`, `list`, and `compound` for nested tables), keys are checked
//! against each other (`build`, `inherit`, `kinds`), and targets against each other
//! (`cross`); every problem goes to one list with its span, turned into line and column at
//! the end (`error`).
//!
//! What it is not: it opens no socket, resolves no host name, runs no command and reads no
//! clock. A URL is checked for its form, not for whether anything answers there.

mod alert;
mod build;
mod compound;
mod cross;
mod discovery;
mod error;
mod fields;
mod inherit;
mod keys;
mod kinds;
pub mod lb;
mod list;
mod model;
mod notify;
mod recovery;
mod val;
mod value;

#[cfg(test)]
mod tests;

/// Not API: a window on the typed keys, public only so that the examples here are compiled
/// against the crate and show what does not compile. Nothing outside this crate should use
/// it; it may change at any time.
///
/// A key is a constant that carries its table and the type of its value:
///
/// ```
/// use vitals_config::__keys::{TypedKey, target, ty};
///
/// let timeout: TypedKey<target::Table, ty::Duration> = target::TIMEOUT;
/// assert_eq!(timeout.name(), "timeout");
/// ```
///
/// A misspelt key does not compile:
///
/// ```compile_fail,E0425
/// let timeout = vitals_config::__keys::target::TIMOUT;
/// ```
///
/// Nor can a key be made from a string outside the declarations:
///
/// ```compile_fail,E0624
/// use vitals_config::__keys::{TypedKey, target, ty};
///
/// let timeout = TypedKey::<target::Table, ty::Duration>::new("timout");
/// ```
///
/// Nor does a key of one table pass for another's (the walker's `Fields<S>` takes only
/// `TypedKey<S, _>`):
///
/// ```compile_fail,E0308
/// use vitals_config::__keys::{TypedKey, server, target};
///
/// fn read_target<T>(_: TypedKey<target::Table, T>) {}
/// read_target(server::LISTEN);
/// ```
#[doc(hidden)]
pub mod __keys {
    pub use crate::keys::{TypedKey, server, target, ty};
}

use std::path::Path;

use toml::de::DeTable;

pub use alert::AlertKind;
pub use build::is_postgres_url;
pub use discovery::{
    DEFAULT_DNS_REFRESH, DEFAULT_FILE_REFRESH, Discovery, DiscoverySource, DnsRecord, Found,
    instance_id,
};
pub use error::{ConfigError, ConfigErrors};
pub use model::{
    Cadence, Config, DEFAULT_ACTION_TIMEOUT, DetectorKind, Expect, HeartbeatSpec, HttpSpec,
    Recovery, RecoveryAction, Retention, Server, Target, TargetKind, default_cadence, defaults,
};
pub use notify::{
    Channel, ChannelKind, GroupBy, GroupLabel, Notifications, Rule, SmtpTls, Window, WindowTime,
    covers, notify_defaults,
};

/// Reads and validates the configuration file at `path`. A file that cannot be read is one
/// error naming the path.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let fix = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "; check the path, or run without --config for the built-in defaults"
            }
            std::io::ErrorKind::InvalidData => " (the file must be UTF-8 text)",
            _ => "",
        };
        error::file_error(&file, format!("cannot read the configuration: {e}{fix}"))
    })?;
    let config = parse(&text, &file)?;
    tracing::debug!(file, targets = config.targets.len(), "configuration loaded");
    Ok(config)
}

/// Validates configuration text; `file` names it in messages.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let root = DeTable::parse(text).map_err(|e| syntax_error(file, text, &e))?;
    let mut diag = error::Diag::new(file, text);
    let config = build::config(&mut diag, &root);
    let errors = diag.finish();
    match config {
        Ok(config) if errors.is_empty() => Ok(config),
        _ if !errors.is_empty() => Err(ConfigErrors(errors)),
        // Every refusal records its reason first; this is the net under a bug in that rule.
        _ => Err(error::file_error(
            file,
            "the configuration was refused without a reason; this is a bug in vitals, please report it".into(),
        )),
    }
}

/// A TOML syntax error stops parsing: it is the one error reported, with its position.
fn syntax_error(file: &str, text: &str, e: &toml::de::Error) -> ConfigErrors {
    let diag = error::Diag::new(file, text);
    let span = e.span().unwrap_or(0..0);
    let (line, column) = diag.position(span.start);
    let mut message = format!("invalid TOML: {}", e.message().trim_end());
    // toml says "duplicate key" without naming it.
    let quoted = diag.text(&span);
    if message.ends_with("duplicate key") && !quoted.is_empty() && quoted.len() <= 64 {
        message.push_str(&format!(" `{quoted}`; each key may appear once in a table"));
    }
    ConfigErrors(vec![ConfigError {
        file: file.to_owned(),
        line,
        column,
        field: String::new(),
        message,
    }])
}
