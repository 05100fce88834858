//! Verification (does the diff do what the task asked?) and code review (is the diff good?):
//! one model call each, with the task and the full diff, answered as JSON findings.
//!
//! Nothing here knows sessions or LSP: [`run`] takes a provider, the task and the diff and
//! returns findings or a failure; the session manager records the run as an item.

use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::provider::{ChatMessage, ChatRequest, ChatRole, ModelProvider};
use crate::vocab::{Finding, FindingSource, Severity, TokenUsage};

/// At most this many findings are kept, the most severe first.
pub const MAX_FINDINGS: usize = 20;

/// The categories a verification reports in.
pub const VERIFICATION_CATEGORIES: &[&str] = &[
    "missing feature",
    "incomplete implementation",
    "incorrect behavior",
    "missing edge case",
    "missing test",
    "missing error handling",
    "other",
];

/// The categories a review reports in.
pub const REVIEW_CATEGORIES: &[&str] = &[
    "bug",
    "performance",
    "security",
    "code quality",
    "maintainability",
    "testing",
    "documentation",
    "other",
];

/// What a run came to when it did not produce findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The model's reply could not be read as findings, twice; or the model failed.
    Failed(String),
    Canceled,
    TimedOut,
}

/// A run's findings and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub usage: TokenUsage,
}

fn categories(kind: FindingSource) -> &'static [&'static str] {
    match kind {
        FindingSource::Review => REVIEW_CATEGORIES,
        FindingSource::Verification => VERIFICATION_CATEGORIES,
    }
}

/// The conversation that asks for findings.
pub fn request(kind: FindingSource, model: &str, task: &str, diff: &str) -> ChatRequest {
    let (job, question) = match kind {
        FindingSource::Verification => (
            "You verify a coding agent's work.",
            "Does the diff do what the task asked? Report what is missing, incomplete or wrong.",
        ),
        FindingSource::Review => (
            "You review a coding agent's change like a careful senior engineer.",
            "Is the diff good? Report bugs, performance, security and quality problems.",
        ),
    };
    let system = format!(
        "{job} {question}\nAnswer with JSON only, no prose, in this shape:\n\
         {{\"findings\": [{{\"file\": \"path/in/repo\", \"startLine\": 1, \"endLine\": 1, \
         \"severity\": \"critical|high|medium|low\", \"category\": \"{}\", \
         \"title\": \"one line\", \"body\": \"why, and how to fix it\"}}]}}\n\
         Lines are those of the new version of the file. Use `\"file\": null` for a finding \
         about no file in particular. At most {MAX_FINDINGS} findings, the most important \
         first. No findings: {{\"findings\": []}}.",
        categories(kind).join("|")
    );
    let user = format!("The task:\n{task}\n\nThe diff:\n{diff}");
    ChatRequest {
        model: model.to_owned(),
        messages: vec![
            ChatMessage::new(ChatRole::System, system),
            ChatMessage::new(ChatRole::User, user),
        ],
        tools: Vec::new(),
        temperature: Some(0.0),
        max_tokens: None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFinding {
    #[serde(default)]
    file: Option<String>,
    #[serde(default, alias = "start_line", alias = "line")]
    start_line: Option<u32>,
    #[serde(default, alias = "end_line")]
    end_line: Option<u32>,
    severity: String,
    #[serde(default)]
    category: Option<String>,
    title: String,
    #[serde(default, alias = "description")]
    body: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawReply {
    Wrapped { findings: Vec<RawFinding> },
    Bare(Vec<RawFinding>),
}

/// Reads a model's reply as findings: JSON (in a code fence or not), an object with
/// `findings` or a bare list. Unknown categories become "other"; severities must be one of
/// the four. Sorted most severe first, at most [`MAX_FINDINGS`], numbered `r1`, `r2`… for
/// a review and `v1`, `v2`… for a verification.
pub fn parse(kind: FindingSource, reply: &str) -> Result<Vec<Finding>, String> {
    let json = extract_json(reply).ok_or("the reply holds no JSON object or list")?;
    let raw: RawReply = serde_json::from_str(json).map_err(|error| error.to_string())?;
    let raw = match raw {
        RawReply::Wrapped { findings } | RawReply::Bare(findings) => findings,
    };
    let mut findings = Vec::new();
    for (index, finding) in raw.into_iter().enumerate() {
        let severity = match finding.severity.to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "medium" => Severity::Medium,
            "low" => Severity::Low,
            other => return Err(format!("finding {index}: unknown severity {other:?}")),
        };
        let category = finding
            .category
            .map(|category| category.to_ascii_lowercase())
            .filter(|category| categories(kind).contains(&category.as_str()))
            .unwrap_or_else(|| "other".to_owned());
        if finding.title.trim().is_empty() {
            return Err(format!("finding {index} has no title"));
        }
        let start_line = finding.start_line.unwrap_or(0);
        findings.push(Finding {
            id: String::new(),
            file: finding.file.filter(|file| !file.trim().is_empty()),
            start_line,
            end_line: finding.end_line.unwrap_or(start_line).max(start_line),
            severity,
            category,
            title: finding.title.trim().to_owned(),
            body: finding.body.trim().to_owned(),
        });
    }
    // Stable: among equals, the model's order.
    findings.sort_by_key(|finding| finding.severity);
    findings.truncate(MAX_FINDINGS);
    // Ids are unique in the session: a review's never meet a verification's.
    let prefix = match kind {
        FindingSource::Review => 'r',
        FindingSource::Verification => 'v',
    };
    for (index, finding) in findings.iter_mut().enumerate() {
        finding.id = format!("{prefix}{}", index + 1);
    }
    Ok(findings)
}

/// The JSON in a reply: a fenced block's content, else from the first `{` or `[` to the
/// last matching `}` or `]`.
fn extract_json(reply: &str) -> Option<&str> {
    if let Some(start) = reply.find("```") {
        let after_fence = &reply[start + 3..];
        let body_start = after_fence.find('\n').map_or(0, |newline| newline + 1);
        if let Some(end) = after_fence[body_start..].find("```") {
            return Some(after_fence[body_start..body_start + end].trim());
        }
    }
    let start = reply.find(['{', '['])?;
    let closing = if reply[start..].starts_with('{') {
        '}'
    } else {
        ']'
    };
    let end = reply.rfind(closing)?;
    (end > start).then(|| &reply[start..=end])
}

/// Runs one verification or review: asks, and if the reply cannot be read asks once more
/// (saying what was wrong); then gives up with a generic message.
pub async fn run(
    provider: &dyn ModelProvider,
    mut request: ChatRequest,
    kind: FindingSource,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Outcome, Failure> {
    let work = async {
        let mut usage = TokenUsage::default();
        for attempt in 0..2 {
            let reply = ask(provider, &request, &mut usage).await?;
            match parse(kind, &reply) {
                Ok(findings) => return Ok(Outcome { findings, usage }),
                Err(error) => {
                    tracing::info!("{kind:?} reply {attempt} could not be read: {error}");
                    request
                        .messages
                        .push(ChatMessage::new(ChatRole::Assistant, reply));
                    request.messages.push(ChatMessage::new(
                        ChatRole::User,
                        format!(
                            "That reply could not be read ({error}). Answer again with the JSON object only."
                        ),
                    ));
                }
            }
        }
        Err(Failure::Failed(
            "the model's answer could not be read as findings".to_owned(),
        ))
    };
    tokio::select! {
        () = cancel.cancelled() => Err(Failure::Canceled),
        outcome = tokio::time::timeout(timeout, work) => outcome.unwrap_or(Err(Failure::TimedOut)),
    }
}

/// One model call; its text.
async fn ask(
    provider: &dyn ModelProvider,
    request: &ChatRequest,
    usage: &mut TokenUsage,
) -> Result<String, Failure> {
    let (text, more) = crate::provider::complete_text(provider, request)
        .await
        .map_err(|error| Failure::Failed(error.to_string()))?;
    usage.add(&more);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_read_from_fenced_or_bare_json_and_sorted() {
        let reply = "Here you go:\n```json\n{\"findings\": [\
            {\"file\": \"a.rs\", \"startLine\": 3, \"endLine\": 4, \"severity\": \"low\", \"category\": \"Performance\", \"title\": \"slow\", \"body\": \"b\"},\
            {\"file\": null, \"startLine\": 1, \"severity\": \"critical\", \"category\": \"made up\", \"title\": \"broken\"}\
        ]}\n```\nThanks";
        let findings = parse(FindingSource::Review, reply).expect("findings");
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[0].title, "broken");
        assert_eq!(findings[0].id, "r1");
        assert_eq!(
            findings[0].category, "other",
            "unknown categories are other"
        );
        assert_eq!(findings[0].file, None);
        assert_eq!(findings[1].category, "performance");
        assert_eq!((findings[1].start_line, findings[1].end_line), (3, 4));

        let bare = parse(
            FindingSource::Verification,
            "[{\"file\": \"x\", \"line\": 2, \"severity\": \"HIGH\", \"category\": \"missing test\", \"title\": \"t\"}]",
        )
        .expect("bare list");
        assert_eq!(bare[0].category, "missing test");
        assert_eq!(bare[0].end_line, 2);
        assert_eq!(
            parse(FindingSource::Review, "{\"findings\": []}"),
            Ok(Vec::new())
        );
    }

    #[test]
    fn unreadable_replies_say_why() {
        assert!(parse(FindingSource::Review, "looks fine to me").is_err());
        let error = parse(
            FindingSource::Review,
            "{\"findings\": [{\"severity\": \"dire\", \"title\": \"x\"}]}",
        )
        .expect_err("bad severity");
        assert!(error.contains("dire"), "{error}");
    }

    #[test]
    fn at_most_twenty_findings_are_kept_most_severe_first() {
        let many: Vec<String> = (0..30)
            .map(|n| {
                let severity = if n == 29 { "critical" } else { "low" };
                format!("{{\"severity\": \"{severity}\", \"title\": \"n{n}\"}}")
            })
            .collect();
        let findings =
            parse(FindingSource::Review, &format!("[{}]", many.join(","))).expect("findings");
        assert_eq!(findings.len(), MAX_FINDINGS);
        assert_eq!(findings[0].title, "n29");
    }
}
