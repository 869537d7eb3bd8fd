//! Renders a model's own chat template (the Jinja source stored in its GGUF header) the way
//! Hugging Face `transformers` does: trimmed blocks, loop controls, Python string methods,
//! `raise_exception` and `strftime_now`.

use minijinja::{context, Environment, ErrorKind};

use crate::{generation::ChatMessage, Error, Result};

const NAME: &str = "chat";
/// Instructions one rendering may execute: far more than any real template needs, and a bound
/// on a hostile one (a template comes from an uploaded file).
const FUEL: u64 = 5_000_000;

/// A compiled chat template and the special-token texts it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source`; a template that does not parse makes the model unusable for chat.
    pub fn new(source: &str, bos_token: String, eos_token: String) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_function("strftime_now", |format: String| {
            use std::fmt::Write;
            let mut text = String::new();
            write!(text, "{}", chrono::Local::now().format(&format)).map_err(|_| {
                minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: invalid format '{format}'"),
                )
            })?;
            Ok::<_, minijinja::Error>(text)
        });
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|e| {
                Error::InvalidModel(format!("the model's chat template does not compile: {e}"))
            })?;
        Ok(Self {
            env,
            bos_token,
            eos_token,
        })
    }

    /// The prompt for `messages`, ending with the cue for the assistant's turn.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| Error::Generation(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| {
                // The template's own `raise_exception` speaks to the caller (e.g. "roles must
                // alternate"); anything else is the template's fault, still caused by this input.
                let detail = match e.kind() {
                    ErrorKind::InvalidOperation => e.detail().unwrap_or("").to_owned(),
                    _ => e.to_string(),
                };
                Error::InvalidRequest(format!(
                    "the model's chat template rejected these messages: {detail}"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-Instruct's template: it adds a default system prompt when none is given.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn message(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn renders_the_default_system_prompt_and_the_generation_cue() {
        let template = ChatTemplate::new(SMOLLM2, String::new(), "<|im_end|>".into()).unwrap();
        let prompt = template.render(&[message("user", "Hi")]).unwrap();
        assert_eq!(
            prompt,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let prompt = template
            .render(&[message("system", "Be brief."), message("user", "Hi")])
            .unwrap();
        assert!(prompt.starts_with("<|im_start|>system\nBe brief.<|im_end|>\n"));
    }

    #[test]
    fn python_methods_and_raise_exception_work() {
        let source = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}{{ bos_token }}{{ messages[0]['content'].strip().upper() }}";
        let template = ChatTemplate::new(source, "<s>".into(), "</s>".into()).unwrap();
        assert_eq!(
            template.render(&[message("user", "  hi ")]).unwrap(),
            "<s>HI"
        );
        let err = template
            .render(&[message("assistant", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("first message must be from the user"), "{err}");
    }

    #[test]
    fn runaway_templates_and_bad_time_formats_fail_cleanly() {
        let endless =
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}";
        let template = ChatTemplate::new(endless, String::new(), String::new()).unwrap();
        assert!(template.render(&[message("user", "hi")]).is_err());
        let template =
            ChatTemplate::new("{{ strftime_now('%Q') }}", String::new(), String::new()).unwrap();
        assert!(template.render(&[message("user", "hi")]).is_err());
        let template =
            ChatTemplate::new("{{ strftime_now('%Y') }}", String::new(), String::new()).unwrap();
        assert_eq!(template.render(&[message("user", "hi")]).unwrap().len(), 4);
    }

    #[test]
    fn a_broken_template_is_refused_at_load() {
        assert!(ChatTemplate::new("{% for %}", String::new(), String::new()).is_err());
    }
}
