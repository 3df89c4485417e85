//! Looks for secrets where they must never be: stored bytes, log lines, handler inputs, files a
//! sink wrote.
//!
//! A scan must be able to fail: callers also check that the haystack holds something it must
//! hold (a webhook id in the database, the log canary), so an empty or unreadable haystack never
//! passes for a clean one.

use std::path::{Path, PathBuf};

/// Where a secret was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    /// Which haystack (a file path, "log", "handler input #n").
    pub place: String,
    /// Byte offset in it.
    pub offset: usize,
    /// Which needle (by position in the list given; secrets themselves are never printed).
    pub needle: usize,
}

/// Every occurrence of any of `needles` in `haystack`.
pub fn find(place: &str, haystack: &[u8], needles: &[String]) -> Vec<Leak> {
    let mut leaks = Vec::new();
    for (index, needle) in needles.iter().enumerate() {
        let needle = needle.as_bytes();
        if needle.is_empty() || needle.len() > haystack.len() {
            continue;
        }
        for offset in 0..=haystack.len() - needle.len() {
            if &haystack[offset..offset + needle.len()] == needle {
                leaks.push(Leak {
                    place: place.to_owned(),
                    offset,
                    needle: index,
                });
            }
        }
    }
    leaks
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
}

/// Every file under `dir` (recursively) with its bytes: a database, its WAL and shared memory.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_occurrence_and_names_the_needle_not_the_secret() {
        let needles = vec!["s3cret".to_owned(), "other".to_owned()];
        let leaks = find("log", b"a s3cret and s3cret, no 0ther", &needles);
        assert_eq!(
            leaks,
            vec![
                Leak {
                    place: "log".into(),
                    offset: 2,
                    needle: 0
                },
                Leak {
                    place: "log".into(),
                    offset: 13,
                    needle: 0
                },
            ]
        );
        assert!(find("x", b"", &needles).is_empty());
        assert!(contains(b"xx s3cret", "s3cret"));
        assert!(!contains(b"xx s3cre", "s3cret"));
    }
}
