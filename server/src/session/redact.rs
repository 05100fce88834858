//! Secrets never reach the event log, exports or clients: every event's text is redacted
//! before it is written. A secret is the value of a provider's `api_key_env` variable, of a
//! variable named in `[secrets] env`, or text matching a built-in or `[secrets] patterns`
//! regular expression.

use regex::Regex;
use serde_json::Value;

use super::Event;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Well-known API key shapes: OpenAI, Anthropic, GitHub, AWS access key ids, Slack.
const BUILT_IN_PATTERNS: &[&str] = &[
    r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}",
    r"gh[pousr]_[A-Za-z0-9]{30,}",
    r"AKIA[0-9A-Z]{16}",
    r"xox[abposr]-[A-Za-z0-9\-]{10,}",
];

#[derive(Debug, Default)]
pub struct Redactor {
    literals: Vec<String>,
    patterns: Option<Regex>,
}

impl Redactor {
    /// From the secret values themselves and extra patterns. Values shorter than 8 characters
    /// are ignored: they would blank out ordinary words.
    pub fn new(
        values: impl IntoIterator<Item = String>,
        patterns: &[String],
    ) -> Result<Redactor, String> {
        let mut literals: Vec<String> = values
            .into_iter()
            .filter(|value| value.len() >= 8)
            .collect();
        literals.sort_by_key(|value| std::cmp::Reverse(value.len()));
        literals.dedup();
        let all: Vec<&str> = BUILT_IN_PATTERNS
            .iter()
            .copied()
            .chain(patterns.iter().map(String::as_str))
            .collect();
        let combined = all
            .iter()
            .map(|pattern| format!("(?:{pattern})"))
            .collect::<Vec<_>>()
            .join("|");
        let patterns = Regex::new(&combined)
            .map_err(|error| format!("invalid pattern in [secrets] patterns: {error}"))?;
        Ok(Redactor {
            literals,
            patterns: Some(patterns),
        })
    }

    /// The built-in patterns alone, compiled once and shared: what a session uses until its
    /// configuration is known (every session rebuilt at start-up, say).
    pub fn built_in() -> std::sync::Arc<Redactor> {
        static BUILT_IN: std::sync::OnceLock<std::sync::Arc<Redactor>> = std::sync::OnceLock::new();
        BUILT_IN
            .get_or_init(|| std::sync::Arc::new(Redactor::new(Vec::new(), &[]).unwrap_or_default()))
            .clone()
    }

    /// A redactor from the environment variables `names` and the given patterns.
    pub fn from_environment(names: &[String], patterns: &[String]) -> Result<Redactor, String> {
        let values = names
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .collect::<Vec<_>>();
        Redactor::new(values, patterns)
    }

    /// The text with every secret replaced; borrowed when there was none.
    pub fn redact_text<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let mut text = std::borrow::Cow::Borrowed(text);
        for literal in &self.literals {
            if text.contains(literal.as_str()) {
                text = std::borrow::Cow::Owned(text.replace(literal.as_str(), REDACTED));
            }
        }
        if let Some(patterns) = &self.patterns
            && patterns.is_match(&text)
        {
            text = std::borrow::Cow::Owned(patterns.replace_all(&text, REDACTED).into_owned());
        }
        text
    }

    /// The event with every string in it redacted.
    pub fn redact(&self, event: Event) -> Event {
        // Most events hold no secret: check the cheap way first.
        let Ok(mut value) = serde_json::to_value(&event) else {
            return event;
        };
        if !self.redact_value(&mut value) {
            return event;
        }
        serde_json::from_value(value).unwrap_or(event)
    }

    fn redact_value(&self, value: &mut Value) -> bool {
        match value {
            Value::String(text) => match self.redact_text(text) {
                std::borrow::Cow::Borrowed(_) => false,
                std::borrow::Cow::Owned(redacted) => {
                    *text = redacted;
                    true
                }
            },
            // Every element must be visited: no short-circuit.
            Value::Array(items) => {
                let mut changed = false;
                for item in items {
                    changed |= self.redact_value(item);
                }
                changed
            }
            Value::Object(fields) => {
                let mut changed = false;
                for field in fields.values_mut() {
                    changed |= self.redact_value(field);
                }
                changed
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_patterns_are_replaced() {
        let redactor = Redactor::new(
            ["hunter2-very-secret".to_owned(), "short".to_owned()],
            &["corp-[0-9]{6}".to_owned()],
        )
        .expect("redactor");
        assert_eq!(
            redactor.redact_text(
                "a hunter2-very-secret b sk-abcdefghijklmnopqrstuvwx corp-123456 short"
            ),
            "a [redacted] b [redacted] [redacted] short"
        );
        assert!(matches!(
            redactor.redact_text("nothing here"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(Redactor::new([], &["(".to_owned()]).is_err());
    }
}
