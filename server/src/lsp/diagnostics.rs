//! Review and verification findings, published as diagnostics on the files and lines they
//! name. Every client gets them: they are standard LSP.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::json;
use tokio::sync::Notify;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::{
    Diagnostic, DiagnosticSeverity, NumberOrString, Position, Range, Uri,
};

use crate::front::Sessions;
use crate::session::{Event, FindingSource, Item, Severity};

/// Publishes the findings of every session now, and again whenever they change or `refresh`
/// is notified (a session was deleted).
pub fn start(client: Client, manager: Sessions, refresh: Arc<Notify>) {
    let mut events = manager.subscribe();
    tokio::spawn(async move {
        let mut published: HashSet<Uri> = HashSet::new();
        publish(&client, &manager, &mut published).await;
        loop {
            tokio::select! {
                received = events.next() => match received {
                    Some(announced) => {
                        let changes_findings = match &announced.record.event {
                            Event::Item { item, .. } => {
                                matches!(item, Item::Review { .. } | Item::Verification { .. })
                            }
                            Event::Resolved { outcome, .. } => *outcome == crate::vocab::Resolution::Dismissed,
                            _ => false,
                        };
                        if !changes_findings {
                            continue;
                        }
                    }
                    None => break,
                },
                () = refresh.notified() => {}
            }
            publish(&client, &manager, &mut published).await;
        }
    });
}

async fn publish(client: &Client, manager: &Sessions, published: &mut HashSet<Uri>) {
    let mut by_file: HashMap<Uri, Vec<Diagnostic>> = HashMap::new();
    for session in manager.open_findings() {
        for (source, finding) in session.findings {
            let Some(file) = &finding.file else {
                continue; // shown in the session's transcript document instead
            };
            let Some(uri) = Uri::from_file_path(session.repo.join(file)) else {
                continue;
            };
            let first_line = finding.start_line.max(1) - 1;
            let last_line = finding.end_line.max(finding.start_line).max(1);
            let message = if finding.body.is_empty() {
                format!("{}: {}", session.name, finding.title)
            } else {
                format!("{}: {}\n\n{}", session.name, finding.title, finding.body)
            };
            by_file.entry(uri).or_default().push(Diagnostic {
                // Whole lines: to the start of the line after the last one.
                range: Range::new(Position::new(first_line, 0), Position::new(last_line, 0)),
                severity: Some(match finding.severity {
                    Severity::Critical | Severity::High => DiagnosticSeverity::ERROR,
                    Severity::Medium => DiagnosticSeverity::WARNING,
                    Severity::Low => DiagnosticSeverity::INFORMATION,
                }),
                code: Some(NumberOrString::String(finding.category.clone())),
                source: Some(
                    match source {
                        FindingSource::Review => "tether review",
                        FindingSource::Verification => "tether verification",
                    }
                    .to_owned(),
                ),
                message,
                data: Some(json!({"sessionId": session.session_id, "findingId": finding.id})),
                ..Default::default()
            });
        }
    }
    // Files whose findings all went away get an empty list, which clears them.
    for uri in published.drain() {
        by_file.entry(uri).or_default();
    }
    for (uri, diagnostics) in by_file {
        if !diagnostics.is_empty() {
            published.insert(uri.clone());
        }
        client.publish_diagnostics(uri, diagnostics, None).await;
    }
}
