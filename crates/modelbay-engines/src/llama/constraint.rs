//! Grammar-constrained decoding with llguidance: a JSON Schema or a Lark grammar becomes a
//! matcher that masks, at every step, the tokens that cannot continue a valid output.
//!
//! llguidance rather than llama.cpp's GBNF sampler: it is pure Rust (no second C++ build of
//! llama.cpp's `common` library), covers far more of JSON Schema, reports an unsupported
//! feature by name at compile time, and computes a mask in microseconds from a token trie
//! (the GBNF sampler checks candidate tokens one by one).

use std::sync::{Arc, OnceLock};

use llama_cpp_2::{model::LlamaModel, sampling::LlamaSampler};
use llguidance::{api::TopLevelGrammar, Matcher, ParserFactory};

use crate::{generation::OutputConstraint, Error, Result};

/// Compiles grammars for one model. The tokenizer trie behind them is built on first use
/// (it walks the whole vocabulary) and shared by every grammar after that.
pub(super) struct Grammars {
    model: Arc<LlamaModel>,
    factory: OnceLock<std::result::Result<ParserFactory, String>>,
}

impl Grammars {
    pub(super) fn new(model: Arc<LlamaModel>) -> Self {
        Self {
            model,
            factory: OnceLock::new(),
        }
    }

    fn factory(&self) -> Result<&ParserFactory> {
        self.factory
            .get_or_init(|| {
                let env = LlamaSampler::llguidance_tok_env(&self.model);
                let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
                factory.quiet();
                Ok(factory)
            })
            .as_ref()
            .map_err(|e| Error::Generation(format!("constrained decoding is unavailable: {e}")))
    }

    /// A matcher for `constraint`; an invalid grammar or a schema feature llguidance does not
    /// support is the caller's error, named.
    pub(super) fn matcher(&self, constraint: &OutputConstraint) -> Result<Matcher> {
        let grammar = match constraint {
            OutputConstraint::JsonSchema(schema) => {
                TopLevelGrammar::from_json_schema(schema.clone())
            }
            OutputConstraint::Lark(lark) => TopLevelGrammar::from_lark(lark.clone()),
        };
        let matcher = Matcher::new(self.factory()?.create_parser(grammar));
        match matcher.get_error() {
            Some(e) => Err(Error::InvalidRequest(format!(
                "the requested output format cannot be enforced: {e}"
            ))),
            None => Ok(matcher),
        }
    }
}
