//! Turns the bytes of generated tokens into text that is safe to send: whole UTF-8 characters
//! only (a character may be split across tokens), and nothing that might be the start of a
//! stop text until it is known not to be one.

/// What one token added.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Piece {
    /// Text that can be sent now (may be empty).
    pub text: String,
    /// A stop text was reached: `text` ends just before it and generation must end.
    pub stopped: bool,
}

/// Assembles one sequence's output.
#[derive(Debug, Default)]
pub struct TextAssembler {
    /// Bytes of a character whose remaining bytes have not been generated yet.
    partial: Vec<u8>,
    /// Decoded text held back because it could be the start of a stop text.
    held: String,
    stops: Vec<String>,
}

impl TextAssembler {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            ..Self::default()
        }
    }

    /// Adds one token's bytes.
    pub fn push(&mut self, bytes: &[u8]) -> Piece {
        self.partial.extend_from_slice(bytes);
        self.decode_partial();
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s)).min() {
            let text = self.held[..at].to_owned();
            self.held.clear();
            self.partial.clear();
            return Piece {
                text,
                stopped: true,
            };
        }
        let keep = self
            .stops
            .iter()
            .map(|stop| self.longest_pending_prefix(stop))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let text = self.held[..cut].to_owned();
        self.held.drain(..cut);
        Piece {
            text,
            stopped: false,
        }
    }

    /// Whatever is still held when generation ends for another reason; an unfinished
    /// character becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let mut text = std::mem::take(&mut self.held);
        text.push_str(&String::from_utf8_lossy(&self.partial));
        self.partial.clear();
        text
    }

    /// Moves every complete character from `partial` to `held`; bytes that can never form a
    /// character become U+FFFD.
    fn decode_partial(&mut self) {
        loop {
            match std::str::from_utf8(&self.partial) {
                Ok(text) => {
                    self.held.push_str(text);
                    self.partial.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    let text = std::str::from_utf8(&self.partial[..valid]).unwrap_or_default();
                    self.held.push_str(text);
                    match e.error_len() {
                        // An incomplete character at the end: wait for its next bytes.
                        None => {
                            self.partial.drain(..valid);
                            return;
                        }
                        Some(bad) => {
                            self.held.push(char::REPLACEMENT_CHARACTER);
                            self.partial.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Length of the longest end of `held` that is a proper beginning of `stop`.
    fn longest_pending_prefix(&self, stop: &str) -> usize {
        (1..stop.len())
            .rev()
            .filter(|&k| stop.is_char_boundary(k))
            .find(|&k| self.held.ends_with(&stop[..k]))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stops: &[&str], pieces: &[&[u8]]) -> (Vec<String>, bool, String) {
        let mut assembler = TextAssembler::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        for piece in pieces {
            let step = assembler.push(piece);
            out.push(step.text);
            if step.stopped {
                return (out, true, String::new());
            }
        }
        (out, false, assembler.finish())
    }

    #[test]
    fn a_character_split_across_tokens_is_sent_whole() {
        let euro = "€".as_bytes(); // three bytes
        let (out, stopped, rest) = feed(&[], &[b"a", &euro[..1], &euro[1..2], &euro[2..], b"b"]);
        assert_eq!(out, ["a", "", "", "€", "b"]);
        assert!(!stopped);
        assert_eq!(rest, "");
    }

    #[test]
    fn stop_text_is_cut_and_never_sent_even_across_tokens() {
        let (out, stopped, _) = feed(&["END"], &[b"one E", b"N", b"D two"]);
        assert_eq!(out, ["one ", "", ""]);
        assert!(stopped);
    }

    #[test]
    fn held_text_is_released_when_it_turns_out_not_to_be_a_stop() {
        let (out, stopped, rest) = feed(&["\n\n"], &[b"a\n", b"b", b"c\n"]);
        assert_eq!(out, ["a", "\nb", "c"]);
        assert!(!stopped);
        assert_eq!(rest, "\n");
    }

    #[test]
    fn the_earliest_of_several_stops_wins() {
        let (out, stopped, _) = feed(&["world", "lo"], &[b"hello world"]);
        assert_eq!(out, ["hel"]);
        assert!(stopped);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let (out, _, rest) = feed(&[], &[b"a\xff", b"b", b"\xe2\x82"]);
        assert_eq!(out, ["a\u{fffd}", "b", ""]);
        assert_eq!(rest, "\u{fffd}");
    }

    #[test]
    fn multibyte_stop_texts_keep_character_boundaries() {
        let (out, stopped, _) = feed(&["éé"], &["xé".as_bytes(), "é!".as_bytes()]);
        assert_eq!(out, ["x", ""]);
        assert!(stopped);
    }
}
