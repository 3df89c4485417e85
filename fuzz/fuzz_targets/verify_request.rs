//! Request verification and parsing: `Batch::verify` (bearer, body shape, every body secret,
//! ids and events) and the typed reading of every verified webhook, on arbitrary bytes.
//!
//! Input: the first byte picks the `Authorization` header (odd: the right bearer, so the body
//! checks are reached; even: the bytes up to the first newline, fuzzed); the rest is the body.
//! Beyond "never panics", what verification promises is checked on every accepted request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passfort_receiver::{Batch, SecretSet};

const SECRET: &str = "fuzz-secret-0123456789";

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let Ok(secrets) = SecretSet::single(SECRET) else {
        return;
    };
    let right = format!("Bearer {SECRET}");
    let (authorization, body): (Vec<u8>, &[u8]) = if choice % 2 == 1 {
        (right.clone().into_bytes(), rest)
    } else {
        match rest.iter().position(|b| *b == b'\n') {
            Some(end) => (rest[..end].to_vec(), &rest[end + 1..]),
            None => (rest.to_vec(), &[][..]),
        }
    };
    let Ok(batch) = Batch::verify(&secrets, Some(&authorization), body) else {
        return;
    };
    // Accepted: the body really was JSON, and every element carried the right secret.
    let value: serde_json::Value =
        serde_json::from_slice(body).expect("an accepted body is JSON");
    let elements = match &value {
        serde_json::Value::Array(items) => items.clone(),
        one => vec![one.clone()],
    };
    assert_eq!(elements.len(), batch.len());
    for (element, webhook) in elements.iter().zip(batch.webhooks()) {
        assert_eq!(element["secret"].as_str(), Some(SECRET));
        assert_eq!(element["id"].as_str(), Some(webhook.id.as_str()));
        // The secret is stripped from what is stored and handed on.
        let stored = webhook.to_json();
        assert!(stored.get("secret").is_none(), "secret kept: {stored}");
        let line = webhook.to_json_string();
        assert!(!line.contains('\n'), "a jsonl line with a newline: {line:?}");
        let back: serde_json::Value = serde_json::from_str(&line).expect("stored form parses");
        assert_eq!(back, stored);
        // The typed reading never fails.
        let _ = webhook.event();
    }
    // The same body with any other bearer is refused.
    assert!(Batch::verify(&secrets, Some(b"Bearer not-the-secret"), body).is_err());
    assert!(Batch::verify(&secrets, None, body).is_err());
});
