//! Secrets out of the text people read (issue 11, item 10): a URL printed in an outcome's
//! output, an outbox row's `last_error` or a log line loses its userinfo
//! (`https://user:password@host`) and its query (`?token=…`); a webhook's URL, whose path *is*
//! the secret (`https://hooks.slack.com/services/T…/B…/secret`), is shown as its origin only.
//!
//! Plain string work with no URL parser, so that it never fails: text that is not a URL comes
//! back unchanged. What it is not: a scrubber for secrets that are not in URLs (a password in
//! a database error is the driver's business; vitals never puts one there).

/// `url` without its userinfo, query and fragment: `https://u:p@host/health?key=s` reads
/// `https://***@host/health?***`. The path stays: it tells which endpoint failed.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = split_scheme(url) else {
        return url.to_owned();
    };
    let (authority, tail) = split_authority(rest);
    let host = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    let tail = tail.split('#').next().unwrap_or_default();
    let tail = match tail.split_once('?') {
        Some((path, query)) if !query.is_empty() => format!("{path}?***"),
        Some((path, _)) => path.to_owned(),
        None => tail.to_owned(),
    };
    format!("{scheme}://{host}{tail}")
}

/// Only the scheme, host and port of `url`, with `/***` when it had more: for webhook and
/// Slack URLs, whose path or query is the credential.
pub fn url_origin(url: &str) -> String {
    let Some((scheme, rest)) = split_scheme(url) else {
        return "***".to_owned();
    };
    let (authority, tail) = split_authority(rest);
    let host = authority.rsplit('@').next().unwrap_or_default();
    let more = !(tail.is_empty() || tail == "/");
    format!("{scheme}://{host}{}", if more { "/***" } else { "" })
}

/// `text` with every URL in it passed through [`redact_url`]: for error messages that quote a
/// URL themselves ("error sending request for url (https://u:p@host/)").
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find("://") {
        // The scheme: the letters (and + - .) right before "://".
        let start = rest[..found]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let after = &rest[found + 3..];
        let len = after
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | '<' | ','))
            .unwrap_or(after.len());
        let end = found + 3 + len;
        out.push_str(&rest[..start]);
        if start == found {
            // "://" with no scheme before it: not a URL.
            out.push_str(&rest[start..end]);
        } else {
            out.push_str(&redact_url(&rest[start..end]));
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// The authority (up to the first `/`, `?` or `#`) and what follows.
fn split_authority(rest: &str) -> (&str, &str) {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_and_query_are_hidden_and_the_path_kept() {
        let cases = [
            ("http://db:8080/health", "http://db:8080/health"),
            (
                "https://user:s3cret@api.example.com/health?key=abc#x",
                "https://***@api.example.com/health?***",
            ),
            ("http://u@h", "http://***@h"),
            ("http://h/p?", "http://h/p"),
            ("not a url", "not a url"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_webhook_shows_its_origin_only() {
        assert_eq!(
            url_origin("https://hooks.slack.com/services/T000/B000/XXXXSECRET"),
            "https://hooks.slack.com/***"
        );
        assert_eq!(
            url_origin("http://u:p@127.0.0.1:9000/"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            url_origin("http://127.0.0.1:9000?token=1"),
            "http://127.0.0.1:9000/***"
        );
        assert_eq!(url_origin("garbage"), "***");
    }

    #[test]
    fn urls_inside_messages_are_redacted() {
        assert_eq!(
            redact_urls_in(
                "error sending request for url (https://u:pw@h.example/x?sig=1): refused"
            ),
            "error sending request for url (https://***@h.example/x?***): refused"
        );
        assert_eq!(redact_urls_in("no url here"), "no url here");
        assert_eq!(redact_urls_in(":// alone"), ":// alone");
        assert_eq!(
            redact_urls_in("a http://x/?q=1 and ftp://u@y end"),
            "a http://x/?*** and ftp://***@y end"
        );
        assert_eq!(redact_urls_in("é://u@h"), "é://u@h");
        assert_eq!(redact_urls_in("éhttp://u@h"), "éhttp://***@h");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// 2,000 cases: any text, no panic, and no userinfo survives in a URL-shaped input.
        #[test]
        fn redaction_never_panics_and_hides_userinfo(
            text in "\\PC{0,60}",
            user in "[a-z]{1,8}",
            secret in "[A-Za-z0-9]{8,16}",
        ) {
            let _ = redact_url(&text);
            let _ = url_origin(&text);
            let _ = redact_urls_in(&text);
            let url = format!("https://{user}:{secret}@host.example/p?token={secret}");
            let shown = redact_urls_in(&format!("{text} {url}"));
            proptest::prop_assert!(!shown.contains(&format!(":{secret}@")), "{}", shown);
            proptest::prop_assert!(!url_origin(&url).contains(&secret));
        }
    }
}
