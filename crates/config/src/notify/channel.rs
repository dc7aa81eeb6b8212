//! `[[channel]]`: which keys each kind takes, what each needs, and unique ids.

use toml::Spanned;
use toml::de::DeValue;

use super::super::error::Diag;
use super::super::fields::{Fields, Scope, join_or, unknown};
use super::super::keys::{TypedKey, Untyped, channel as key};
use super::super::val::{At, Reported};
use super::super::value;
use super::label;
use super::model::{Channel, ChannelKind, SmtpTls, notify_defaults};

type Key = TypedKey<key::Table, Untyped>;

/// Keys each channel kind accepts beyond `id`, `kind`, `timeout` and `max_attempts`.
const CHANNEL_KEYS: [(&str, &[Key]); 4] = [
    (
        "webhook",
        &[
            key::URL.untyped(),
            key::SECRET.untyped(),
            key::HEADERS.untyped(),
        ],
    ),
    ("slack", &[key::URL.untyped()]),
    (
        "email",
        &[
            key::SMTP.untyped(),
            key::TLS.untyped(),
            key::USERNAME.untyped(),
            key::PASSWORD.untyped(),
            key::FROM.untyped(),
            key::TO.untyped(),
        ],
    ),
    ("command", &[key::COMMAND.untyped()]),
];

/// A channel's id as written (for duplicate checks) and the channel, if it is valid.
pub(super) type ReadChannel = (Option<At<String>>, Result<Channel, Reported>);

pub(super) fn channel(
    diag: &mut Diag<'_>,
    index: usize,
    value: &Spanned<DeValue<'_>>,
) -> ReadChannel {
    let path = label("channel", index, value, key::ID);
    let Ok(f) = value::table::<key::Table>(diag, value, Scope::Any, &path) else {
        return (None, Err(Reported));
    };
    let id = f.get(key::ID).ok().flatten();
    if !f.has(key::ID) {
        diag.error(
            &f.span,
            key::ID.field(&path),
            "missing id; every channel needs an id that rules name, like \"ops-webhook\"",
        );
    }
    let built = (|| {
        let kinds: Vec<&str> = CHANNEL_KEYS.iter().map(|(k, _)| *k).collect();
        let Some(kind) = f.get(key::KIND)? else {
            diag.error(
                &f.span,
                key::KIND.field(&path),
                format!("missing kind; set kind = {}", join_or(&kinds)),
            );
            return Err(Reported);
        };
        let Some((_, own)) = CHANNEL_KEYS.iter().find(|(k, _)| *k == kind.value) else {
            diag.error(
                &kind.span,
                key::KIND.field(&path),
                unknown("channel kind", &kind.value, &kinds),
            );
            return Err(Reported);
        };
        let mut misplaced = false;
        for (other, names) in CHANNEL_KEYS {
            for &name in names.iter().filter(|n| !own.contains(n)) {
                if let Some(span) = f.key_span(name).filter(|_| other != kind.value) {
                    // Report each key once, naming the kinds it belongs to.
                    let owners: Vec<&str> = CHANNEL_KEYS
                        .iter()
                        .filter(|(_, n)| n.contains(&name))
                        .map(|(k, _)| *k)
                        .collect();
                    if owners.first() == Some(&other) {
                        diag.error(
                            &span,
                            name.field(&path),
                            format!(
                                "`{}` does not belong to {} {} channel; it is for {} channels",
                                name.name(),
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
        let required: &[Key] = match kind.value.as_str() {
            "webhook" | "slack" => &[key::URL.untyped()],
            "email" => &[key::SMTP.untyped(), key::FROM.untyped(), key::TO.untyped()],
            _ => &[key::COMMAND.untyped()],
        };
        let mut missing = false;
        for &required in required {
            if !f.has(required) {
                diag.error(
                    &f.span,
                    required.field(&path),
                    format!(
                        "missing {}; a {} channel needs it",
                        required.name(),
                        kind.value
                    ),
                );
                missing = true;
            }
        }
        let channel_kind = kind_of(diag, &f, &path, &kind.value)?;
        let timeout = f.get(key::TIMEOUT)?;
        let max_attempts = f.get(key::MAX_ATTEMPTS)?;
        if let Some(at) = timeout.as_ref().filter(|at| at.value.is_zero()) {
            diag.error(
                &at.span,
                key::TIMEOUT.field(&path),
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
            max_attempts: max_attempts.map_or(notify_defaults::MAX_ATTEMPTS, |at| at.value),
        })
    })();
    (id, built)
}

fn kind_of(
    diag: &mut Diag<'_>,
    f: &Fields<key::Table>,
    path: &str,
    kind: &str,
) -> Result<ChannelKind, Reported> {
    let text = |at: Option<At<String>>| at.map(|at| at.value);
    Ok(match kind {
        "webhook" => ChannelKind::Webhook {
            url: text(f.get(key::URL)?).unwrap_or_default(),
            secret: text(f.get(key::SECRET)?),
            headers: f.get(key::HEADERS)?.map_or_else(Vec::new, |at| at.value),
        },
        "slack" => ChannelKind::Slack {
            url: text(f.get(key::URL)?).unwrap_or_default(),
        },
        "email" => {
            let tls = match f.get(key::TLS)? {
                None => SmtpTls::Starttls,
                Some(at) if at.value == "starttls" => SmtpTls::Starttls,
                Some(at) if at.value == "none" => SmtpTls::None,
                Some(at) => {
                    diag.error(
                        &at.span,
                        key::TLS.field(path),
                        format!(
                            "unknown tls {:?}; use \"starttls\" (the default) or \"none\" (a relay on this host only)",
                            at.value
                        ),
                    );
                    return Err(Reported);
                }
            };
            let from = f.get(key::FROM)?;
            let to = f.get(key::TO)?;
            let mut bad = false;
            for at in from.iter().chain(to.iter().flat_map(|to| to.value.iter())) {
                if let Err(error) = check_mailbox(&at.value) {
                    diag.error(
                        &at.span,
                        if Some(at) == from.as_ref() { key::FROM.field(path) } else { key::TO.field(path) },
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
                smtp: text(f.get(key::SMTP)?).unwrap_or_default(),
                tls,
                username: text(f.get(key::USERNAME)?),
                password: text(f.get(key::PASSWORD)?),
                from: from.map(|at| at.value).unwrap_or_default(),
                to: to.map_or_else(Vec::new, |at| {
                    at.value.into_iter().map(|s| s.value).collect()
                }),
            }
        }
        _ => ChannelKind::Command {
            command: f.get(key::COMMAND)?.map_or_else(Vec::new, |at| {
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
