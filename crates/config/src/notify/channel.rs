//! `[[channel]]`: which keys each kind takes, what each needs, and unique ids.

use toml::Spanned;
use toml::de::DeValue;

use super::super::error::Diag;
use super::super::fields::{At, Fields, Reported, Scope, join_or, read_table, unknown};
use super::super::keys;
use super::label;
use super::model::{Channel, ChannelKind, SmtpTls, notify_defaults};

/// Keys each channel kind accepts beyond `id`, `kind` and `timeout`.
const CHANNEL_KEYS: [(&str, &[&str]); 4] = [
    ("webhook", &["url", "secret", "headers"]),
    ("slack", &["url"]),
    (
        "email",
        &["smtp", "tls", "username", "password", "from", "to"],
    ),
    ("command", &["command"]),
];

/// A channel's id as written (for duplicate checks) and the channel, if it is valid.
pub(super) type ReadChannel = (Option<At<String>>, Result<Channel, Reported>);

pub(super) fn channel(
    diag: &mut Diag<'_>,
    index: usize,
    value: &Spanned<DeValue<'_>>,
) -> ReadChannel {
    let path = label("channel", index, value);
    let Ok(f) = read_table(diag, value, keys::CHANNEL, Scope::Any, &path) else {
        return (None, Err(Reported));
    };
    let id = f.str("id").ok().flatten();
    if !f.has("id") {
        diag.error(
            &f.span,
            format!("{path}.id"),
            "missing id; every channel needs an id that rules name, like \"ops-webhook\"",
        );
    }
    let built = (|| {
        let kinds: Vec<&str> = CHANNEL_KEYS.iter().map(|(k, _)| *k).collect();
        let Some(kind) = f.str("kind")? else {
            diag.error(
                &f.span,
                format!("{path}.kind"),
                format!("missing kind; set kind = {}", join_or(&kinds)),
            );
            return Err(Reported);
        };
        let Some((_, own)) = CHANNEL_KEYS.iter().find(|(k, _)| *k == kind.value) else {
            diag.error(
                &kind.span,
                format!("{path}.kind"),
                unknown("channel kind", &kind.value, &kinds),
            );
            return Err(Reported);
        };
        let mut misplaced = false;
        for (other, names) in CHANNEL_KEYS {
            for name in names.iter().filter(|n| !own.contains(n)) {
                if let Some(span) = f.key_span(name).filter(|_| other != kind.value) {
                    // Report each key once, naming the kinds it belongs to.
                    let owners: Vec<&str> = CHANNEL_KEYS
                        .iter()
                        .filter(|(_, n)| n.contains(name))
                        .map(|(k, _)| *k)
                        .collect();
                    if owners.first() == Some(&other) {
                        diag.error(
                            &span,
                            format!("{path}.{name}"),
                            format!(
                                "`{name}` does not belong to {} {} channel; it is for {} channels",
                                if kind.value == "email" { "an" } else { "a" },
                                kind.value,
                                join_or(&owners)
                            ),
                        );
                        misplaced = true;
                    }
                }
            }
        }
        let required: &[&str] = match kind.value.as_str() {
            "webhook" | "slack" => &["url"],
            "email" => &["smtp", "from", "to"],
            _ => &["command"],
        };
        let mut missing = false;
        for key in required {
            if !f.has(key) {
                diag.error(
                    &f.span,
                    format!("{path}.{key}"),
                    format!("missing {key}; a {} channel needs it", kind.value),
                );
                missing = true;
            }
        }
        let channel_kind = kind_of(diag, &f, &path, &kind.value)?;
        let timeout = f.duration("timeout")?;
        if let Some(at) = timeout.as_ref().filter(|at| at.value.is_zero()) {
            diag.error(
                &at.span,
                format!("{path}.timeout"),
                "is zero; every delivery would time out: allow it some time, like \"10s\"",
            );
            return Err(Reported);
        }
        if misplaced || missing {
            return Err(Reported);
        }
        Ok(Channel {
            id: id.clone().ok_or(Reported)?.value,
            kind: channel_kind,
            timeout: timeout.map_or(notify_defaults::TIMEOUT, |at| at.value),
        })
    })();
    (id, built)
}

fn kind_of(
    diag: &mut Diag<'_>,
    f: &Fields,
    path: &str,
    kind: &str,
) -> Result<ChannelKind, Reported> {
    let text = |name: &str| f.str(name).map(|at| at.map(|at| at.value));
    Ok(match kind {
        "webhook" => ChannelKind::Webhook {
            url: text("url")?.unwrap_or_default(),
            secret: text("secret")?,
            headers: f.headers("headers")?.map_or_else(Vec::new, |at| at.value),
        },
        "slack" => ChannelKind::Slack {
            url: text("url")?.unwrap_or_default(),
        },
        "email" => {
            let tls = match f.str("tls")? {
                None => SmtpTls::Starttls,
                Some(at) if at.value == "starttls" => SmtpTls::Starttls,
                Some(at) if at.value == "none" => SmtpTls::None,
                Some(at) => {
                    diag.error(
                        &at.span,
                        format!("{path}.tls"),
                        format!(
                            "unknown tls {:?}; use \"starttls\" (the default) or \"none\" (a relay on this host only)",
                            at.value
                        ),
                    );
                    return Err(Reported);
                }
            };
            let from = f.str("from")?;
            let to = f.list("to")?;
            let mut bad = false;
            for at in from.iter().chain(to.iter().flat_map(|to| to.value.iter())) {
                if let Err(error) = check_mailbox(&at.value) {
                    diag.error(
                        &at.span,
                        format!("{path}.{}", if Some(at) == from.as_ref() { "from" } else { "to" }),
                        format!(
                            "{:?} is not an email address ({error}); write \"ops@example.com\" or \"Ops <ops@example.com>\"",
                            at.value
                        ),
                    );
                    bad = true;
                }
            }
            if bad {
                return Err(Reported);
            }
            ChannelKind::Email {
                smtp: text("smtp")?.unwrap_or_default(),
                tls,
                username: text("username")?,
                password: text("password")?,
                from: from.map(|at| at.value).unwrap_or_default(),
                to: to.map_or_else(Vec::new, |at| {
                    at.value.into_iter().map(|s| s.value).collect()
                }),
            }
        }
        _ => ChannelKind::Command {
            command: f.list("command")?.map_or_else(Vec::new, |at| {
                at.value.into_iter().map(|s| s.value).collect()
            }),
        },
    })
}

pub(super) fn unique(diag: &mut Diag<'_>, channels: &[ReadChannel]) {
    for (index, (id, _)) in channels.iter().enumerate() {
        let Some(id) = id else { continue };
        if let Some((earlier, Some(first))) = channels[..index]
            .iter()
            .map(|(other, _)| other.as_ref())
            .enumerate()
            .find(|(_, other)| other.is_some_and(|o| o.value == id.value))
        {
            let line = diag.line_of(&first.span);
            diag.error(
                &id.span,
                format!("channel[{index}] ({:?}).id", id.value),
                format!(
                    "duplicate channel id {:?}: channel[{earlier}] on line {line} has it already; ids must be unique",
                    id.value
                ),
            );
        }
    }
}

/// Whether `text` is a mailbox ("ops@example.com" or "Ops <ops@example.com>"), as lettre
/// will read it when the monitor sends mail.
#[cfg(feature = "email")]
fn check_mailbox(text: &str) -> Result<(), String> {
    text.parse::<lettre::message::Mailbox>()
        .map(drop)
        .map_err(|error| error.to_string())
}

/// Without the `email` feature (the load balancer, which sends no mail) only the form is
/// checked: one `@` between a local part and a domain, in angle brackets or alone.
#[cfg(not(feature = "email"))]
fn check_mailbox(text: &str) -> Result<(), String> {
    let address = match (text.find('<'), text.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        _ => text.trim(),
    };
    match address.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && (domain.contains('.') || domain == "localhost") =>
        {
            Ok(())
        }
        _ => Err("missing domain or user".to_string()),
    }
}
