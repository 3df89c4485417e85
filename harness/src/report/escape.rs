//! Markup escaping for the HTML page and the JUnit XML: one set of rules, valid in both.
//!
//! Characters XML 1.0 cannot carry at all (control characters other than tab, newline and
//! carriage return) are dropped; HTML does not want them either.

/// Escapes an attribute value (or any text that may sit in one): quotes are escaped, and
/// newlines kept as `&#10;` so that a multi-line reason survives attribute normalisation.
pub(super) fn attribute(text: &str) -> String {
    escape(text, true)
}

/// Escapes element content; newlines stay newlines so CI systems show readable output.
pub(super) fn content(text: &str) -> String {
    escape(text, false)
}

fn escape(text: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            // `&#39;`, not `&apos;`: HTML 4 readers do not know `&apos;`, XML knows both.
            '\'' if attribute => out.push_str("&#39;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            attribute(r#""oops" & <more> 'x'"#),
            "&quot;oops&quot; &amp; &lt;more&gt; &#39;x&#39;"
        );
        assert_eq!(content(r#""a" <b>"#), "\"a\" &lt;b&gt;");
    }

    #[test]
    fn control_characters_are_dropped_and_newlines_survive() {
        assert_eq!(attribute("a\u{1}b"), "ab");
        assert_eq!(attribute("a\nb"), "a&#10;b");
        assert_eq!(content("a\n<b>\u{7}"), "a\n&lt;b&gt;");
        assert_eq!(content("a\tb\r\n"), "a\tb\r\n");
    }
}
