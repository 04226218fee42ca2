//! Maps byte offsets inside a decoded TOML string back to the file. An
//! error at a column of a CEL condition then points at the right character
//! of the rules file, even when the string uses escapes or spans lines.

/// Returns, for every byte offset of the decoded string and for its end,
/// the offset in `raw`, the string token as written in the file with its
/// quotes. Returns `None` when the decoding here does not reproduce
/// `decoded`, so that a caller falls back to the start of the token.
pub(crate) fn decoded_offsets(raw: &str, decoded: &str) -> Option<Vec<usize>> {
    let (offsets, text) = if let Some(body) = raw.strip_prefix("'''") {
        literal(body, 3, true)
    } else if let Some(body) = raw.strip_prefix('\'') {
        literal(body, 1, false)
    } else if let Some(body) = raw.strip_prefix("\"\"\"") {
        basic(body, 3, true)?
    } else if let Some(body) = raw.strip_prefix('"') {
        basic(body, 1, false)?
    } else {
        return None;
    };
    (text == decoded).then_some(offsets)
}

/// Decodes a literal string body: no escapes, and in the multi-line form a
/// newline right after the opening quotes is trimmed.
fn literal(body: &str, base: usize, multi_line: bool) -> (Vec<usize>, String) {
    let quote = if multi_line { "'''" } else { "'" };
    let (mut start, end) = (0, closing_quote(body, quote));
    if multi_line {
        start = leading_newline_len(body);
    }
    let content = &body[start.min(end)..end];
    let mut offsets: Vec<usize> = (0..content.len()).map(|i| base + start + i).collect();
    offsets.push(base + start + content.len());
    (offsets, content.to_string())
}

/// Decodes a basic string body with its escapes, and in the multi-line
/// form the trimmed first newline and line-ending backslashes.
fn basic(body: &str, base: usize, multi_line: bool) -> Option<(Vec<usize>, String)> {
    let quote = if multi_line { "\"\"\"" } else { "\"" };
    let end = closing_quote(body, quote);
    let mut i = if multi_line {
        leading_newline_len(body)
    } else {
        0
    };
    let bytes = body.as_bytes();
    let mut text = String::new();
    let mut offsets = Vec::new();

    while i < end {
        if bytes[i] != b'\\' {
            let ch = body[i..].chars().next()?;
            for k in 0..ch.len_utf8() {
                offsets.push(base + i + k);
            }
            text.push(ch);
            i += ch.len_utf8();
            continue;
        }

        // An escape sequence: every decoded byte maps to the backslash.
        let escape_start = i;
        let next = *bytes.get(i + 1)?;
        let (decoded, length) = match next {
            b'b' => ('\u{8}', 2),
            b't' => ('\t', 2),
            b'n' => ('\n', 2),
            b'f' => ('\u{c}', 2),
            b'r' => ('\r', 2),
            b'e' => ('\u{1b}', 2),
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'x' => (hex_char(body.get(i + 2..i + 4)?)?, 4),
            b'u' => (hex_char(body.get(i + 2..i + 6)?)?, 6),
            b'U' => (hex_char(body.get(i + 2..i + 10)?)?, 10),
            _ if multi_line => {
                // A line-ending backslash drops the newline and all the
                // whitespace that follows it.
                let rest = &body[i + 1..end];
                let skipped = rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
                if !rest[..skipped].contains('\n') {
                    return None;
                }
                i += 1 + skipped;
                continue;
            }
            _ => return None,
        };
        for _ in 0..decoded.len_utf8() {
            offsets.push(base + escape_start);
        }
        text.push(decoded);
        i += length;
    }
    offsets.push(base + end);
    Some((offsets, text))
}

fn hex_char(digits: &str) -> Option<char> {
    u32::from_str_radix(digits, 16)
        .ok()
        .and_then(char::from_u32)
}

fn leading_newline_len(body: &str) -> usize {
    if body.starts_with("\r\n") {
        2
    } else if body.starts_with('\n') {
        1
    } else {
        0
    }
}

/// Finds the closing quotes: the token ends with them, and in a multi-line
/// string up to two quote characters of the content may precede them, so
/// the last occurrence is the closing one.
fn closing_quote(body: &str, quote: &str) -> usize {
    body.rfind(quote).unwrap_or(body.len())
}

#[cfg(test)]
mod tests {
    use super::decoded_offsets;

    fn check(raw: &str, decoded: &str) -> Vec<usize> {
        decoded_offsets(raw, decoded).unwrap_or_else(|| panic!("no mapping for {raw:?}"))
    }

    #[test]
    fn literal_string_maps_one_to_one() {
        let offsets = check("'a > 1'", "a > 1");
        assert_eq!(offsets, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn basic_string_escape_maps_to_backslash() {
        // role == "x": the escaped quotes decode to one byte each.
        let offsets = check(r#""role == \"x\"""#, "role == \"x\"");
        assert_eq!(offsets[8], 9);
        assert_eq!(offsets[9], 11);
        assert_eq!(offsets[10], 12);
    }

    #[test]
    fn multi_line_literal_trims_first_newline() {
        let offsets = check("'''\nrisk > 0.5\n'''", "risk > 0.5\n");
        assert_eq!(offsets[0], 4);
    }

    #[test]
    fn multi_line_basic_line_ending_backslash() {
        let offsets = check("\"\"\"a \\\n   b\"\"\"", "a b");
        assert_eq!(offsets[2], 10);
    }

    #[test]
    fn mismatch_returns_none() {
        assert!(decoded_offsets("'abc'", "abd").is_none());
    }
}
