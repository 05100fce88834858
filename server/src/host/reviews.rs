//! Findings, reviews and verifications: read or record findings, run or cancel a review, and
//! act on one finding (ask the session to fix it, dismiss it).

use super::{HostError, HostMethod};
use crate::api::{self, methods};
use crate::session::SessionManager;

impl HostMethod for methods::Findings {
    async fn run(
        manager: SessionManager,
        params: api::FindingsParams,
    ) -> Result<api::FindingsResult, HostError> {
        let Some(findings) = params.findings else {
            let open = manager
                .session_findings(&params.id)?
                .into_iter()
                .map(|(source, finding)| api::SourcedFinding { finding, source })
                .collect();
            return Ok(api::FindingsResult::Open { findings: open });
        };
        let item_id = manager
            .record_findings(&params.id, params.source, params.status, findings)
            .await?;
        Ok(api::FindingsResult::Recorded(api::ItemResult { item_id }))
    }
}

impl HostMethod for methods::Review {
    async fn run(
        manager: SessionManager,
        params: api::ReviewParams,
    ) -> Result<api::ItemResult, HostError> {
        let item_id = manager.start_review(&params.id, params.kind).await?;
        Ok(api::ItemResult { item_id })
    }
}

impl HostMethod for methods::CancelReview {
    async fn run(
        manager: SessionManager,
        params: api::ReviewParams,
    ) -> Result<api::CancelledResult, HostError> {
        manager.cancel_review(&params.id, params.kind).await?;
        Ok(api::CancelledResult { cancelled: true })
    }
}

impl HostMethod for methods::FixFinding {
    async fn run(
        manager: SessionManager,
        params: api::FindingParams,
    ) -> Result<api::QueuedResult, HostError> {
        let sent = manager.fix_finding(&params.id, &params.finding_id).await?;
        Ok(sent.into())
    }
}

impl HostMethod for methods::DismissFinding {
    async fn run(
        manager: SessionManager,
        params: api::FindingParams,
    ) -> Result<api::DismissResult, HostError> {
        manager
            .dismiss_finding(&params.id, &params.finding_id)
            .await?;
        Ok(api::DismissResult { dismissed: true })
    }
}
