//! Text cleaning of OpenAI CLIP's tokenizer (`basic_clean` + `whitespace_clean`):
//! `ftfy.fix_text`, HTML-unescape twice, collapse whitespace, strip.
//!
//! `ftfy.fix_text` (6.x, default settings) is reproduced for the fixes that apply to
//! well-formed Unicode: HTML entities (only when the text has no `<`), terminal escapes,
//! C1 controls as Windows-1252, Latin ligatures, full/half-width forms, curly quotes, line
//! breaks, control characters and NFC. Its heuristic **mojibake repair** (e.g. `"cafÃ©"` →
//! `"café"`) is not reproduced: such text is tokenised as written.

use unicode_normalization::UnicodeNormalization;

use super::html_entities::{INVALID_CHARREFS, INVALID_CODEPOINTS, NAMED};

/// `basic_clean` followed by `whitespace_clean` (lower-casing is left to the caller).
pub fn clean(text: &str) -> String {
    let t = fix_text(text);
    let t = html_unescape(&html_unescape(&t));
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The subset of `ftfy.fix_text` described in the module docs.
pub fn fix_text(text: &str) -> String {
    let mut t = if text.contains('<') {
        text.to_string()
    } else {
        ftfy_unescape(text)
    };
    t = remove_terminal_escapes(&t);
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        let cp = c as u32;
        // C1 controls decoded as Windows-1252
        if (0x80..=0x9f).contains(&cp)
            && let Some(d) = cp1252(cp as u8)
        {
            out.push(d);
            continue;
        }
        match c {
            'Ĳ' => out.push_str("IJ"),
            'ĳ' => out.push_str("ij"),
            'ŉ' => out.push_str("ʼn"),
            'Ǳ' => out.push_str("DZ"),
            'ǲ' => out.push_str("Dz"),
            'ǳ' => out.push_str("dz"),
            'Ǆ' => out.push_str("DŽ"),
            'ǅ' => out.push_str("Dž"),
            'ǆ' => out.push_str("dž"),
            'Ǉ' => out.push_str("LJ"),
            'ǈ' => out.push_str("Lj"),
            'ǉ' => out.push_str("lj"),
            'Ǌ' => out.push_str("NJ"),
            'ǋ' => out.push_str("Nj"),
            'ǌ' => out.push_str("nj"),
            'ﬀ' => out.push_str("ff"),
            'ﬁ' => out.push_str("fi"),
            'ﬂ' => out.push_str("fl"),
            'ﬃ' => out.push_str("ffi"),
            'ﬄ' => out.push_str("ffl"),
            'ﬅ' => out.push_str("ſt"),
            'ﬆ' => out.push_str("st"),
            '\u{3000}' => out.push(' '),
            c if (0xFF01..0xFFF0).contains(&cp) => out.extend(std::iter::once(c).nfkc()),
            _ => out.push(c),
        }
    }
    // uncurl quotes (after ligatures, so ŉ's ʼ is straightened too)
    let t: String = out
        .chars()
        .map(|c| match c {
            '\u{02bc}' | '\u{2018}'..='\u{201b}' => '\'',
            '\u{201c}'..='\u{201f}' => '"',
            c => c,
        })
        .collect();
    // line breaks
    let t = t
        .replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n");
    // control characters
    let t: String = t.chars().filter(|&c| !is_ftfy_control(c)).collect();
    t.nfc().collect()
}

fn is_ftfy_control(c: char) -> bool {
    let cp = c as u32;
    matches!(cp, 0x00..=0x08 | 0x0b | 0x0e..=0x1f | 0x7f | 0x206a..=0x206f | 0xfeff | 0xfff9..=0xfffc)
}

fn cp1252(b: u8) -> Option<char> {
    const HIGH: [u16; 32] = [
        0x20ac, 0, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039,
        0x0152, 0, 0x017d, 0, 0, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc,
        0x2122, 0x0161, 0x203a, 0x0153, 0, 0x017e, 0x0178,
    ];
    match HIGH[(b - 0x80) as usize] {
        0 => None,
        cp => char::from_u32(cp as u32),
    }
}

fn remove_terminal_escapes(text: &str) -> String {
    // \x1b\[((?:\d|;)*)([a-zA-Z])
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0x1b && i + 1 < b.len() && b[i + 1] == b'[' {
            let mut j = i + 2;
            while j < b.len() && (b[j].is_ascii_digit() || b[j] == b';') {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_alphabetic() {
                i = j + 1;
                continue;
            }
        }
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    out
}

fn lookup(name: &str) -> Option<&'static str> {
    NAMED
        .binary_search_by(|(k, _)| (*k).cmp(name))
        .ok()
        .map(|i| NAMED[i].1)
}

/// ftfy's `unescape_html`: `&#?[0-9A-Za-z]{1,24};` references that are known (named ones
/// also in all caps for single letters/symbols), others left alone.
fn ftfy_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        let tail = &rest[p + 1..];
        let (hash, body_start) = if tail.starts_with('#') {
            (true, 1)
        } else {
            (false, 0)
        };
        let body: String = tail[body_start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .take(25)
            .collect();
        let after = body_start + body.len();
        if !body.is_empty() && body.len() <= 24 && tail[after..].starts_with(';') {
            let entity = &rest[p..p + 1 + after + 1];
            let rep = if hash {
                Some(html_unescape(entity))
            } else if let Some(v) = lookup(&format!("{body};")) {
                Some(v.to_string())
            } else {
                let lower = body.to_lowercase();
                if body.chars().all(|c| c.is_ascii_uppercase()) {
                    lookup(&format!("{lower};"))
                        .filter(|v| v.chars().count() == 1)
                        .map(|v| v.to_uppercase())
                } else {
                    None
                }
            };
            match rep {
                Some(r) if r != entity => {
                    out.push_str(&r);
                    rest = &rest[p + 1 + after + 1..];
                    continue;
                }
                _ => {}
            }
        }
        out.push('&');
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Python's `html.unescape`.
pub fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        let tail = &rest[p + 1..];
        if let Some((rep, used)) = charref(tail) {
            out.push_str(&rep);
            rest = &tail[used..];
        } else {
            out.push('&');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// One reference after `&`: `(replacement, bytes consumed)`, or `None` if the regex
/// `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)` does not match.
fn charref(tail: &str) -> Option<(String, usize)> {
    let b = tail.as_bytes();
    if b.first() == Some(&b'#') {
        let (hex, start) = match b.get(1) {
            Some(b'x' | b'X') => (true, 2),
            _ => (false, 1),
        };
        let digits = tail[start..]
            .bytes()
            .take_while(|c| {
                if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            })
            .count();
        if digits == 0 {
            return None;
        }
        let mut used = start + digits;
        if b.get(used) == Some(&b';') {
            used += 1;
        }
        let num = u64::from_str_radix(&tail[start..start + digits], if hex { 16 } else { 10 })
            .unwrap_or(u64::MAX);
        let rep = if let Some((_, r)) = INVALID_CHARREFS.iter().find(|(k, _)| *k as u64 == num) {
            r.to_string()
        } else if (0xD800..=0xDFFF).contains(&num) || num > 0x10FFFF {
            "\u{fffd}".to_string()
        } else if INVALID_CODEPOINTS.contains(&(num as u32)) {
            String::new()
        } else {
            char::from_u32(num as u32)
                .map(String::from)
                .unwrap_or_default()
        };
        return Some((rep, used));
    }
    // named: [^\t\n\f <&#;]{1,32};?
    let mut end = 0;
    for (n, (i, c)) in tail.char_indices().enumerate() {
        if n >= 32 || matches!(c, '\t' | '\n' | '\x0c' | ' ' | '<' | '&' | '#' | ';') {
            break;
        }
        end = i + c.len_utf8();
    }
    if end == 0 {
        return None;
    }
    let with_semi = tail[end..].starts_with(';');
    let s = if with_semi {
        &tail[..end + 1]
    } else {
        &tail[..end]
    };
    if let Some(v) = lookup(s) {
        return Some((v.to_string(), s.len()));
    }
    // longest legacy prefix (`x` from len(s)-1 down to 2)
    let idx: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(2).collect();
    for &x in idx.iter().rev() {
        if let Some(v) = lookup(&s[..x]) {
            return Some((format!("{v}{}", &s[x..]), s.len()));
        }
    }
    Some((format!("&{s}"), s.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_unescape_follows_python() {
        // expected values from Python 3.11 html.unescape
        assert_eq!(
            html_unescape("&amp;amp; &lt;3 &#39; &#x263A;"),
            "&amp; <3 ' \u{263a}"
        );
        assert_eq!(
            html_unescape("&ampfoo &notit; &#128; &#0;"),
            "&foo ¬it; € \u{fffd}"
        );
        assert_eq!(html_unescape("no refs & here"), "no refs & here");
    }

    #[test]
    fn clean_applies_ftfy_fixes_and_whitespace() {
        assert_eq!(
            clean("  “quoted”  ﬁne\tｆｕｌｌ\n\n"),
            "\"quoted\" fine full"
        );
        assert_eq!(clean("&amp;amp;amp;"), "&");
        assert_eq!(clean("<b>&amp;amp;amp;</b>"), "<b>&amp;</b>");
    }
}
