//! Escaping for HTML text and attribute values (inline SVG included): ids, reasons
//! and file names come from the input and must never become markup.

use std::borrow::Cow;

/// `text` with `&`, `<`, `>`, `"` and `'` replaced by character references, safe in
/// element text and in a quoted attribute value alike.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}
