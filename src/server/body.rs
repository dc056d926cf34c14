//! Review bodies: read into one buffer while their bytes are held against a budget shared by
//! every connection and stream, so that stalled or slow senders cannot grow memory.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::OwnedSemaphorePermit;

use super::AppState;

/// The API server never sends more than 3 MiB (its own request limit).
pub const BODY_LIMIT: usize = 3 * 1024 * 1024;

/// Bytes that unfinished review bodies may hold at once, over all connections and streams.
/// A body is charged its declared length (a chunked one the full [`BODY_LIMIT`], since its
/// cost is known only once read) before any of it is read; past the budget a request gets 503
/// at once. Pods are a few kB: this is thousands of ordinary reviews, or 8 maximal ones.
pub const BODY_BUDGET: usize = 8 * BODY_LIMIT;

/// A review's body, read into one buffer while its bytes are held against the budget.
pub(super) struct ReviewBody {
    pub(super) bytes: Vec<u8>,
    _held: OwnedSemaphorePermit,
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    (status, message).into_response()
}

impl ReviewBody {
    /// Charges the budget, then reads the body frame by frame into one buffer (so a body sent
    /// in tiny chunks costs its bytes, not a list of chunks).
    pub(super) async fn read(
        app: &AppState,
        handler: &'static str,
        headers: &header::HeaderMap,
        body: axum::body::Body,
    ) -> Result<ReviewBody, Response> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|d| d > BODY_LIMIT as u64) {
            app.metrics.refused(handler, "too_large");
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is over 3 MiB, more than the API server ever sends\n",
            ));
        }
        let cost = declared.map_or(BODY_LIMIT, |d| d as usize).max(1);
        let Ok(held) = app
            .body_budget
            .clone()
            .try_acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
        else {
            app.metrics.refused(handler, "busy");
            tracing::warn!(
                handler,
                bytes = cost,
                budget = BODY_BUDGET,
                "refused a review: unfinished request bodies already hold the byte budget (503)"
            );
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many unfinished request bodies; retry\n",
            ));
        };
        let mut bytes = Vec::with_capacity(declared.map_or(0, |d| d as usize));
        let mut frames = body.into_data_stream();
        while let Some(frame) = frames.next().await {
            let Ok(frame) = frame else {
                app.metrics.refused(handler, "unreadable");
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read\n",
                ));
            };
            if bytes.len() + frame.len() > cost {
                app.metrics.refused(handler, "too_large");
                return Err(refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the body is longer than declared or over 3 MiB\n",
                ));
            }
            bytes.extend_from_slice(&frame);
        }
        Ok(ReviewBody { bytes, _held: held })
    }
}
