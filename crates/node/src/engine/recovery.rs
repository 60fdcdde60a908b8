//! Recovery of the payments this node sent that are still in doubt: each is resolved by
//! asking its receiver (which fences when it has no decision), or, when it was never
//! forwarded, by releasing what was reserved.

use kakehashi_proto::pb::{Decision, RelayDecision, RelayStatusRequest};
use kakehashi_protocol::reason::ReasonCode;

use super::sender::decision_name;
use super::{Engine, EngineError, PeerError};
use crate::store::OutboundState;

impl Engine {
    /// Resolves every forwarded payment still in doubt by asking its receiver (which fences
    /// when it has no decision). Returns how many remain in doubt.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let unresolved = self.parts.store.unresolved_outbound()?;
        let mut remaining = 0;
        for (uetr, _) in unresolved {
            let _guard = self.locks.lock(uetr).await;
            // Re-read under the lock: a submission may have finished it meanwhile.
            let Some(record) = self.parts.store.outbound(&uetr)? else {
                continue;
            };
            if record.state.is_final() {
                continue;
            }
            let Some(peer) = self.parts.peers.get(&record.peer).cloned() else {
                tracing::error!(%uetr, peer = %record.peer, "in doubt towards a peer no longer configured");
                remaining += 1;
                continue;
            };
            if record.state == OutboundState::Reserving {
                // Prepare is only sent after `Forwarded` is durable, so the receiver never saw
                // this payment: release the reservation if it was made.
                let decision = RelayDecision {
                    uetr: uetr.to_string(),
                    decision: Decision::Rejected.into(),
                    status_reason_code: ReasonCode::Ab05.as_str().to_owned(),
                    status_reason_detail: format!(
                        "{} stopped before forwarding the payment",
                        self.jurisdiction()
                    ),
                    receipt: None,
                    receiving_jurisdiction: self.jurisdiction().to_owned(),
                };
                self.finish(uetr, record, &peer, decision).await?;
                continue;
            }
            let request = RelayStatusRequest {
                uetr: uetr.to_string(),
                instruction_sha256: hex::decode(&record.instruction_sha256).unwrap_or_default(),
            };
            match peer.transport.status(request).await {
                Ok(answer) => {
                    self.parts
                        .metrics
                        .relay_request("GetStatus", decision_name(answer.decision()));
                    let record = self.finish(uetr, record, &peer, answer).await?;
                    tracing::info!(%uetr, state = ?record.state, "in-doubt payment resolved");
                    if !record.state.is_final() {
                        remaining += 1;
                    }
                }
                Err(PeerError::Failed(status)) => {
                    self.parts.metrics.relay_request("GetStatus", "ERROR");
                    tracing::warn!(%uetr, %status, "status query failed; still in doubt");
                    remaining += 1;
                }
                Err(PeerError::Timeout(_)) => {
                    self.parts.metrics.relay_request("GetStatus", "TIMEOUT");
                    tracing::warn!(%uetr, "status query timed out; still in doubt");
                    remaining += 1;
                }
            }
        }
        self.parts.metrics.set_in_doubt(remaining as u64);
        Ok(remaining)
    }
}
