//! Splitting a reasoning model's `<think>…</think>` block from its answer as the text streams:
//! what is inside goes to `reasoning_content`, what follows to `content`. A tag split across
//! pieces is held back until it is whole, as stop texts are.

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Where a choice's text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing but blank space yet: the text may still open a block.
    Start,
    Reasoning,
    /// Just after the block: the blank lines before the answer are dropped.
    AfterReasoning,
    Content,
}

/// A piece of text split into its reasoning and its answer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Split {
    pub reasoning: String,
    pub content: String,
}

/// One choice's splitter.
#[derive(Debug, Clone)]
pub struct ReasoningSplitter {
    state: State,
    held: String,
}

/// Whether a prompt rendered as `markup` (its template's last text) leaves a `<think>` block
/// open, so that the output starts inside it (DeepSeek-R1's template, Qwen3's with thinking).
pub fn prompt_opens_reasoning(markup: &str) -> bool {
    match (markup.rfind(OPEN), markup.rfind(CLOSE)) {
        (Some(open), Some(close)) => open > close,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Whether a chat template writes reasoning blocks at all.
pub fn template_reasons(template: &str) -> bool {
    template.contains(OPEN) && template.contains(CLOSE)
}

/// The length of the longest end of `text` that is the start of `tag` (a tag that may be
/// completed by the next piece).
fn partial_tag(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && tag.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

impl ReasoningSplitter {
    /// `open`: the prompt left a block open, so the output starts as reasoning.
    pub fn new(open: bool) -> Self {
        Self {
            state: if open { State::Reasoning } else { State::Start },
            held: String::new(),
        }
    }

    /// Splits the next piece of text; what may be part of a tag is kept for later.
    pub fn push(&mut self, text: &str) -> Split {
        self.held.push_str(text);
        let mut out = Split::default();
        loop {
            match self.state {
                State::Start => {
                    let trimmed = self.held.trim_start();
                    if let Some(rest) = trimmed.strip_prefix(OPEN) {
                        self.held = rest.to_owned();
                        self.state = State::Reasoning;
                    } else if trimmed.is_empty() || OPEN.starts_with(trimmed) {
                        return out;
                    } else {
                        self.state = State::Content;
                    }
                }
                State::Reasoning => {
                    if let Some(at) = self.held.find(CLOSE) {
                        out.reasoning.push_str(&self.held[..at]);
                        self.held.drain(..at + CLOSE.len());
                        self.state = State::AfterReasoning;
                        continue;
                    }
                    let keep = partial_tag(&self.held, CLOSE);
                    let send = self.held.len() - keep;
                    out.reasoning.push_str(&self.held[..send]);
                    self.held.drain(..send);
                    return out;
                }
                State::AfterReasoning => {
                    // The answer starts after the blank lines that follow the block.
                    self.held = self.held.trim_start().to_owned();
                    if self.held.is_empty() {
                        return out;
                    }
                    self.state = State::Content;
                }
                State::Content => {
                    out.content.push_str(&std::mem::take(&mut self.held));
                    return out;
                }
            }
        }
    }

    /// At the end of the choice: whatever was held back, where it belongs.
    pub fn finish(&mut self) -> Split {
        let held = std::mem::take(&mut self.held);
        match self.state {
            State::Reasoning => Split {
                reasoning: held,
                content: String::new(),
            },
            State::Start | State::AfterReasoning | State::Content => Split {
                reasoning: String::new(),
                content: held,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` one by one and returns the reasoning and content in all.
    fn run(open: bool, pieces: &[&str]) -> (String, String) {
        let mut splitter = ReasoningSplitter::new(open);
        let mut all = Split::default();
        for piece in pieces {
            let split = splitter.push(piece);
            all.reasoning += &split.reasoning;
            all.content += &split.content;
        }
        let split = splitter.finish();
        (
            all.reasoning + &split.reasoning,
            all.content + &split.content,
        )
    }

    #[test]
    fn a_block_the_model_opens_is_reasoning_and_the_rest_is_content() {
        let whole = run(
            false,
            &["<think>\nLet me see.\n</think>\n\nThe answer is 4."],
        );
        assert_eq!(whole, ("\nLet me see.\n".into(), "The answer is 4.".into()));
        // The same text cut at every byte gives the same split.
        let text = "  <think>ab</think>\n\ncd";
        for cut in 1..text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(
                run(false, &[a, b]),
                ("ab".into(), "cd".into()),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_block_the_prompt_opened_starts_as_reasoning() {
        assert_eq!(
            run(true, &["thinking", " more</th", "ink>answer"]),
            ("thinking more".into(), "answer".into())
        );
        // Never closed: all reasoning, including a partial tag at the end.
        assert_eq!(
            run(true, &["still going </thi"]),
            ("still going </thi".into(), String::new())
        );
    }

    #[test]
    fn text_without_a_block_is_all_content() {
        assert_eq!(
            run(false, &["Hello", " <think> is a tag"]),
            (String::new(), "Hello <think> is a tag".into())
        );
        assert_eq!(
            run(false, &["<thi", "s is not one"]),
            (String::new(), "<this is not one".into())
        );
        assert_eq!(run(false, &["  "]), (String::new(), "  ".into()));
        // Multi-byte characters next to a partial tag are never cut.
        assert_eq!(run(true, &["é</", "x"]), ("é</x".into(), String::new()));
    }

    #[test]
    fn where_the_prompt_leaves_a_block_open() {
        assert!(prompt_opens_reasoning("<|im_start|>assistant\n<think>\n"));
        assert!(!prompt_opens_reasoning(
            "<|im_start|>assistant\n<think>\n\n</think>\n\n"
        ));
        assert!(!prompt_opens_reasoning("<|im_start|>assistant\n"));
        assert!(template_reasons("{{ '<think>' }}…{{ '</think>' }}"));
        assert!(!template_reasons("<|im_start|>"));
    }
}
