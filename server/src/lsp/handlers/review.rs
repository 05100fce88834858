//! Findings, reviews and verifications: read or record findings, run or cancel a review, and
//! act on one finding (ask the session to fix it, dismiss it).

use tower_lsp_server::jsonrpc;

use super::super::dispatch::Handler;
use super::super::{Backend, session_error};
use crate::api::{self, methods};

impl Handler for methods::Findings {
    async fn handle(
        backend: Backend,
        params: api::FindingsParams,
    ) -> jsonrpc::Result<api::FindingsResult> {
        let manager = &backend.manager;
        let Some(findings) = params.findings else {
            let open = manager
                .session_findings(&params.id)
                .map_err(session_error)?
                .into_iter()
                .map(|(source, finding)| api::SourcedFinding { finding, source })
                .collect();
            return Ok(api::FindingsResult::Open { findings: open });
        };
        let item_id = manager
            .record_findings(&params.id, params.source, params.status, findings)
            .await
            .map_err(session_error)?;
        Ok(api::FindingsResult::Recorded(api::ItemResult { item_id }))
    }
}

impl Handler for methods::Review {
    async fn handle(
        backend: Backend,
        params: api::ReviewParams,
    ) -> jsonrpc::Result<api::ItemResult> {
        let item_id = backend
            .manager
            .start_review(&params.id, params.kind)
            .await
            .map_err(session_error)?;
        Ok(api::ItemResult { item_id })
    }
}

impl Handler for methods::CancelReview {
    async fn handle(
        backend: Backend,
        params: api::ReviewParams,
    ) -> jsonrpc::Result<api::CancelledResult> {
        backend
            .manager
            .cancel_review(&params.id, params.kind)
            .await
            .map_err(session_error)?;
        Ok(api::CancelledResult { cancelled: true })
    }
}

impl Handler for methods::FixFinding {
    async fn handle(
        backend: Backend,
        params: api::FindingParams,
    ) -> jsonrpc::Result<api::QueuedResult> {
        let queued = backend
            .manager
            .fix_finding(&params.id, &params.finding_id)
            .await
            .map_err(session_error)?;
        Ok(api::QueuedResult { queued })
    }
}

impl Handler for methods::DismissFinding {
    async fn handle(
        backend: Backend,
        params: api::FindingParams,
    ) -> jsonrpc::Result<api::DismissResult> {
        backend
            .manager
            .dismiss_finding(&params.id, &params.finding_id)
            .await
            .map_err(session_error)?;
        Ok(api::DismissResult { dismissed: true })
    }
}
