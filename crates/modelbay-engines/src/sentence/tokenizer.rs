//! The model's own `tokenizer.json` through the `tokenizers` crate, set up the way
//! sentence-transformers uses it: special tokens added, truncated to the model's sequence
//! length, never padded (batches are padded by the encoder, to the longest input).

use std::path::Path;

use tokenizers::{Encoding, Token, Tokenizer, TruncationParams};

use crate::{embedding::EmbeddingToken, Error, Result};

pub(crate) struct TextTokenizer {
    inner: Tokenizer,
    vocabulary: usize,
}

impl TextTokenizer {
    pub(crate) fn load(path: &Path, max_tokens: usize) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| Error::InvalidModel(format!("tokenizer.json cannot be loaded: {e}")))?;
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| Error::InvalidModel(format!("tokenizer.json: {e}")))?;
        let vocabulary = inner.get_vocab_size(true);
        Ok(Self { inner, vocabulary })
    }

    pub(crate) fn vocabulary_size(&self) -> usize {
        self.vocabulary
    }

    pub(crate) fn tokenize(&self, text: &str) -> Result<Vec<EmbeddingToken>> {
        let encoding = self
            .inner
            .encode_fast(text, true)
            .map_err(|e| Error::InvalidRequest(format!("the text cannot be tokenized: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Ids tokenized by the caller (without special tokens): the same truncation and special
    /// tokens as [`Self::tokenize`] gives text.
    pub(crate) fn tokenize_ids(&self, ids: &[EmbeddingToken]) -> Result<Vec<EmbeddingToken>> {
        let tokens = ids
            .iter()
            .map(|&id| {
                let value = self.inner.id_to_token(id).ok_or_else(|| {
                    Error::InvalidRequest(format!(
                        "token id {id} is not in the model's vocabulary of {} tokens",
                        self.vocabulary
                    ))
                })?;
                Ok(Token::new(id, value, (0, 0)))
            })
            .collect::<Result<Vec<_>>>()?;
        let encoding = self
            .inner
            .post_process(Encoding::from_tokens(tokens, 0), None, true)
            .map_err(|e| Error::InvalidRequest(format!("the tokens cannot be processed: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }
}
