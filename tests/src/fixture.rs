//! The golden fixtures of `tests/fixtures/`: the single written-down wire format, read by the
//! tests of both the receiver's parser and the simulator's generator.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The secret every fixture carries in its body (and that tests send as the bearer).
pub const FIXTURE_SECRET: &str = "fixture-shared-secret";

/// `tests/fixtures/`.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every `*.json` file name in the fixtures directory, sorted.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir().display()))
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// The raw bytes of one fixture.
pub fn bytes(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// One fixture as JSON.
pub fn load(name: &str) -> Value {
    serde_json::from_slice(&bytes(name)).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// The fixture file for an `event` string: `CHECK_COMPLETED` → `check_completed.json`.
pub fn file_for(event: &str) -> String {
    format!("{}.json", event.to_ascii_lowercase())
}

/// Whether `actual` has the shape of `expected`: the same JSON type at every level, the same
/// keys in every object, array elements shaped like the expected ones (element by element
/// when the lengths agree, else like the expected array's first element). A `null` on either side matches anything (PassFort's nullable fields, e.g.
/// `customer_ref` and `user`). Values themselves never matter.
///
/// The error names the first difference by its JSON path.
pub fn same_shape(path: &str, expected: &Value, actual: &Value) -> Result<(), String> {
    match (expected, actual) {
        (Value::Null, _) | (_, Value::Null) => Ok(()),
        (Value::Bool(_), Value::Bool(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_)) => Ok(()),
        // Same length: element by element (arrays may mix types, like the unknown event's
        // `unexpected`); otherwise every element against the fixture's first.
        (Value::Array(expected), Value::Array(actual)) if expected.len() == actual.len() => {
            expected
                .iter()
                .zip(actual)
                .enumerate()
                .try_for_each(|(i, (e, a))| same_shape(&format!("{path}[{i}]"), e, a))
        }
        (Value::Array(expected), Value::Array(actual)) => match expected.first() {
            Some(model) => actual
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| same_shape(&format!("{path}[{i}]"), model, item)),
            None => Ok(()),
        },
        (Value::Object(expected), Value::Object(actual)) => {
            for key in expected.keys() {
                if !actual.contains_key(key) {
                    return Err(format!("{path}.{key}: missing"));
                }
            }
            for key in actual.keys() {
                if !expected.contains_key(key) {
                    return Err(format!("{path}.{key}: not in the fixture"));
                }
            }
            expected
                .iter()
                .try_for_each(|(key, e)| same_shape(&format!("{path}.{key}"), e, &actual[key]))
        }
        (expected, actual) => Err(format!(
            "{path}: expected {}, got {}",
            kind(expected),
            kind(actual)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shape_comparison_accepts_other_values_and_refuses_other_shapes() {
        let fixture = json!({"a": 1, "b": {"c": "x", "d": null}, "e": [{"f": true}]});
        let same =
            json!({"a": 2, "b": {"c": "y", "d": {"z": 1}}, "e": [{"f": false}, {"f": true}]});
        assert_eq!(same_shape("$", &fixture, &same), Ok(()));
        let missing = json!({"a": 2, "b": {"d": null}, "e": []});
        assert_eq!(
            same_shape("$", &fixture, &missing),
            Err("$.b.c: missing".into())
        );
        let extra = json!({"a": 2, "b": {"c": "y", "d": null, "g": 1}, "e": []});
        assert!(same_shape("$", &fixture, &extra).is_err());
        let retyped = json!({"a": "2", "b": {"c": "y", "d": null}, "e": []});
        assert_eq!(
            same_shape("$", &fixture, &retyped),
            Err("$.a: expected a number, got a string".into())
        );
        let bad_item = json!({"a": 2, "b": {"c": "y", "d": null}, "e": [{"f": 1}]});
        assert!(same_shape("$", &fixture, &bad_item).is_err());
    }
}
