//! OpenAI CLIP tokenizer, token for token against `clip/simple_tokenizer.py`.

mod common;

use accrue_towers::Error;
use accrue_towers::clip::tokenizer::{CONTEXT_LENGTH, ClipTokenizer, EOT, Overflow, SOT};
use common::{fixture, real_files};

fn tokenizer(test: &str) -> Option<ClipTokenizer> {
    let dir = real_files(test, "clip", &["bpe_simple_vocab_16e6.txt.gz"])?;
    Some(ClipTokenizer::from_file(&dir.join("bpe_simple_vocab_16e6.txt.gz")).unwrap())
}

#[test]
fn matches_openai_reference_on_fixture_captions() {
    let Some(tok) = tokenizer("matches_openai_reference_on_fixture_captions") else {
        return;
    };
    let text = std::fs::read_to_string(fixture("clip_tokens/clip_tokens.jsonl")).unwrap();
    let (mut n, mut n_long, mut failures) = (0, 0, Vec::new());
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let caption = v["text"].as_str().unwrap();
        let want: Vec<u32> = v["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let long = v["long"].as_bool().unwrap();
        let got = tok
            .tokenize(caption, CONTEXT_LENGTH, Overflow::Truncate)
            .unwrap();
        let mut want_padded = want.clone();
        want_padded.resize(CONTEXT_LENGTH, 0);
        if got != want_padded {
            failures.push(format!(
                "{caption:?}\n  want {want:?}\n  got  {:?}",
                &got[..want.len().min(77)]
            ));
        }
        if long {
            n_long += 1;
            assert!(matches!(
                tok.tokenize(caption, CONTEXT_LENGTH, Overflow::Error),
                Err(Error::TextTooLong { .. })
            ));
        }
        n += 1;
    }
    println!(
        "CLIP tokenizer: {}/{n} captions identical ({n_long} truncated)",
        n - failures.len()
    );
    assert!(n >= 1000);
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn special_cases() {
    let Some(tok) = tokenizer("special_cases") else {
        return;
    };
    // empty caption: start and end only, as the reference
    let e = tok.tokenize("", CONTEXT_LENGTH, Overflow::Error).unwrap();
    assert_eq!(&e[..3], &[SOT, EOT, 0]);
    assert_eq!(e.len(), 77);
    // "a photo of a cat" is a well-known sequence
    assert_eq!(
        tok.encode("a photo of a cat"),
        vec![320, 1125, 539, 320, 2368]
    );
    // truncation keeps 77 ids and ends with EOT
    let long = "violin ".repeat(100);
    let t = tok
        .tokenize(&long, CONTEXT_LENGTH, Overflow::Truncate)
        .unwrap();
    assert_eq!(t.len(), 77);
    assert_eq!(t[76], EOT);
    assert!(matches!(
        tok.tokenize(&long, CONTEXT_LENGTH, Overflow::Error),
        Err(Error::TextTooLong { n_tokens: 102, .. })
    ));
}
