//! The one rule for showing a URL that may carry a credential: database URLs in logs and
//! errors, the `http:` sink's target, and any later sink with a connection URL. A password
//! never leaves the process through a URL.

/// A URL as logs, errors and messages may show it: without a password, whether in the
/// user part (`postgres://user:secret@host/db` → `postgres://user@host/db`) or in a `password`
/// query parameter, which sqlx also reads (`…/db?password=secret` → `…/db`).
pub fn redact_url(url: &str) -> String {
    let url = without_password_params(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{scheme}://{user}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// `url` without its `password` query parameters (the key compared after percent-decoding and
/// ignoring case, so `p%61ssword=` goes too).
fn without_password_params(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(key, _)| key);
            !percent_decoded(key).eq_ignore_ascii_case(b"password")
        })
        .collect();
    if kept.iter().all(|pair| pair.is_empty()) {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

fn percent_decoded(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_errors() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.internal:5432/hooks"),
            "postgres://app@db.internal:5432/hooks"
        );
        assert_eq!(
            redact_url("postgres://localhost/hooks"),
            "postgres://localhost/hooks"
        );
        assert_eq!(
            redact_url("https://relay:hunter2@example.test/hook"),
            "https://relay@example.test/hook"
        );
    }

    #[test]
    fn logged_urls_have_no_password() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/hooks?sslmode=require"),
            "postgres://app@db:5432/hooks?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://app@db/hooks"),
            "postgres://app@db/hooks"
        );
        assert_eq!(
            redact_url("sqlite://passfort-webhooks.db"),
            "sqlite://passfort-webhooks.db"
        );
    }

    #[test]
    fn password_query_parameters_never_reach_logs_or_errors() {
        for url in [
            "postgres://app@db:5432/hooks?password=s3cret",
            "postgres://app@db/hooks?sslmode=require&password=s3cret",
            "postgres://app@db/hooks?PASSWORD=s3cret&sslmode=require",
            "postgres://app@db/hooks?p%61ssword=s3cret",
            "postgres://db/hooks?user=app&password=s3cret",
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains("s3cret"), "{url} -> {shown}");
            let redacted = redact_url(url);
            assert!(!redacted.contains("s3cret"), "{url} -> {redacted}");
        }
        assert_eq!(
            redact_url("postgres://app@db/hooks?sslmode=require&password=s3cret"),
            "postgres://app@db/hooks?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://app@db/hooks?password=s3cret"),
            "postgres://app@db/hooks"
        );
    }
}
