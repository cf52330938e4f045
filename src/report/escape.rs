//! Text made safe for the exports: HTML (text and attribute values), XML 1.0 (which also
//! forbids most control characters) and CSV fields. Every name, argument and byte of output a
//! job gave passes one of these before it reaches a page or a file another program reads.

/// Text for HTML, in an element or a quoted attribute value. Control characters (escape
/// sequences) are shown as `\xNN`, as on a terminal (`report::visible`).
pub fn html(s: &str) -> String {
    markup(&super::visible(s))
}

/// Output text for a `<pre>`: like [`html`], line by line, so that line ends stay.
pub fn html_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        // A CRLF line end is a line end, not a control character to show.
        out.push_str(&html(line.strip_suffix('\r').unwrap_or(line)));
    }
    out
}

/// Text for XML 1.0, in an element or a quoted attribute value: the five markup characters
/// as entities, and what XML cannot hold at all (control characters other than tab, newline
/// and carriage return; U+FFFE, U+FFFF) shown as `\xNN` / `\u{NNNN}`.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            '\u{fffe}' | '\u{ffff}' => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => push_markup(&mut out, c),
        }
    }
    out
}

/// An attribute value for XML: as [`xml`], with line breaks and tabs as character
/// references, which a parser keeps (it would normalize them to spaces).
pub fn xml_attr(s: &str) -> String {
    xml(s)
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote, a line break or spaces at
/// either end; quotes doubled.
pub fn csv(s: &str) -> String {
    let needs_quotes = s.contains([',', '"', '\n', '\r'])
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace);
    if needs_quotes {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    s.chars().for_each(|c| push_markup(&mut out, c));
    out
}

fn push_markup(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_everywhere() {
        assert_eq!(
            html("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(html("\x1b[31mred"), "\\x1b[31mred");
        assert_eq!(html_lines("a<\r\nb\rc"), "a&lt;\nb\\x0dc");
    }

    #[test]
    fn xml_holds_no_character_it_forbids() {
        assert_eq!(xml("a\x00b\x1bc\td\u{fffe}"), "a\\x00b\\x1bc\td\\u{fffe}");
        assert_eq!(xml_attr("a\nb<"), "a&#10;b&lt;");
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        assert_eq!(csv("plain"), "plain");
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv(" x"), "\" x\"");
    }
}
