//! Operations of the Svix API (as the official SDKs call them) that Hookline deliberately
//! does not serve, each answering `400 {"code": "not_supported", "detail": "<operation> is
//! not supported by Hookline: <why>"}` instead of a bare 404 an SDK reports as a missing
//! resource.
//!
//! [`REFUSED`] is the one list: adding an operation here is a decision, with its reason. The
//! routes are registered behind the same authentication as the rest of the API and, being
//! refusals rather than operations, are not part of the OpenAPI document.

use std::collections::BTreeMap;

use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use crate::error::ApiError;
use crate::state::ApiState;

/// One refused operation: how the SDKs call it, and why Hookline does not serve it.
pub struct Refused {
    pub method: MethodFilter,
    pub path: &'static str,
    /// The SDK's name for it, e.g. `stream.create`.
    pub operation: &'static str,
    pub why: &'static str,
}

const STREAMING: &str = "Hookline delivers webhooks; streams and sinks are a separate Svix product";
const CONNECTORS: &str = "there is no connector catalog; endpoints take a URL";
const INGEST: &str =
    "Hookline sends webhooks and does not receive them (Svix Ingest is a separate product)";
const ENVIRONMENT: &str =
    "there is one environment per deployment; copy apps and endpoints through the API";
const INTEGRATIONS: &str = "integration keys belong to Svix's hosted app portal";
const POLLER: &str = "every message is pushed to endpoints; there are no polling endpoints";
/// Why a destination of another type than `fifoEndpoint` is refused
/// (`routes/destinations.rs` serves that one).
pub const OTHER_DESTINATIONS: &str =
    "the only destinations offered are `fifoEndpoint` ones (an endpoint with ordered delivery); queues, storage and polling are not";
const AUTOCONFIG: &str = "autoconfig subscriptions belong to Svix's hosted platform";
const TRANSFORMATIONS: &str =
    "transformations run customer code and Hookline runs none: deliveries carry the message payload unchanged";

macro_rules! refused {
    ($method:ident $path:literal $operation:literal $why:expr) => {
        Refused {
            method: MethodFilter::$method,
            path: $path,
            operation: $operation,
            why: $why,
        }
    };
}

/// Every refused operation.
pub const REFUSED: &[Refused] = &[
    refused!(GET "/api/v1/stream" "stream.list" STREAMING),
    refused!(POST "/api/v1/stream" "stream.create" STREAMING),
    refused!(GET "/api/v1/stream/{stream_id}" "stream.get" STREAMING),
    refused!(PUT "/api/v1/stream/{stream_id}" "stream.update" STREAMING),
    refused!(PATCH "/api/v1/stream/{stream_id}" "stream.patch" STREAMING),
    refused!(DELETE "/api/v1/stream/{stream_id}" "stream.delete" STREAMING),
    refused!(POST "/api/v1/stream/{stream_id}/events" "stream.events.create" STREAMING),
    refused!(GET "/api/v1/stream/event-type" "stream.eventType.list" STREAMING),
    refused!(POST "/api/v1/stream/event-type" "stream.eventType.create" STREAMING),
    refused!(GET "/api/v1/stream/event-type/{name}" "stream.eventType.get" STREAMING),
    refused!(PUT "/api/v1/stream/event-type/{name}" "stream.eventType.update" STREAMING),
    refused!(PATCH "/api/v1/stream/event-type/{name}" "stream.eventType.patch" STREAMING),
    refused!(DELETE "/api/v1/stream/event-type/{name}" "stream.eventType.delete" STREAMING),
    refused!(GET "/api/v1/stream/{stream_id}/sink" "stream.sink.list" STREAMING),
    refused!(POST "/api/v1/stream/{stream_id}/sink" "stream.sink.create" STREAMING),
    refused!(GET "/api/v1/stream/{stream_id}/sink/{sink_id}" "stream.sink.get" STREAMING),
    refused!(PUT "/api/v1/stream/{stream_id}/sink/{sink_id}" "stream.sink.update" STREAMING),
    refused!(PATCH "/api/v1/stream/{stream_id}/sink/{sink_id}" "stream.sink.patch" STREAMING),
    refused!(DELETE "/api/v1/stream/{stream_id}/sink/{sink_id}" "stream.sink.delete" STREAMING),
    refused!(GET "/api/v1/stream/{stream_id}/sink/{sink_id}/events" "stream.events.get" STREAMING),
    refused!(GET "/api/v1/stream/{stream_id}/sink/{sink_id}/headers" "stream.sink.getHeaders" STREAMING),
    refused!(PATCH "/api/v1/stream/{stream_id}/sink/{sink_id}/headers" "stream.sink.patchHeaders" STREAMING),
    refused!(GET "/api/v1/stream/{stream_id}/sink/{sink_id}/secret" "stream.sink.getSecret" STREAMING),
    refused!(POST "/api/v1/stream/{stream_id}/sink/{sink_id}/secret/rotate" "stream.sink.rotateSecret" STREAMING),
    refused!(GET "/api/v1/stream/{stream_id}/sink/{sink_id}/transformation" "stream.sink.transformationGet" STREAMING),
    refused!(PATCH "/api/v1/stream/{stream_id}/sink/{sink_id}/transformation" "stream.sink.transformationPartialUpdate" STREAMING),
    refused!(POST "/api/v1/auth/stream-portal-access/{stream_id}" "authentication.streamPortalAccess" STREAMING),
    refused!(POST "/api/v1/auth/stream-logout" "authentication.streamLogout" STREAMING),
    refused!(POST "/api/v1/auth/stream/{stream_id}/expire-all" "authentication.streamExpireAll" STREAMING),
    refused!(GET "/api/v1/auth/stream/{stream_id}/sink/{sink_id}/poller/token" "authentication.getStreamPollerToken" STREAMING),
    refused!(POST "/api/v1/auth/stream/{stream_id}/sink/{sink_id}/poller/token/rotate" "authentication.rotateStreamPollerToken" STREAMING),
    refused!(GET "/api/v1/connector" "connector.list" CONNECTORS),
    refused!(POST "/api/v1/connector" "connector.create" CONNECTORS),
    refused!(GET "/api/v1/connector/{connector_id}" "connector.get" CONNECTORS),
    refused!(PUT "/api/v1/connector/{connector_id}" "connector.update" CONNECTORS),
    refused!(PATCH "/api/v1/connector/{connector_id}" "connector.patch" CONNECTORS),
    refused!(DELETE "/api/v1/connector/{connector_id}" "connector.delete" CONNECTORS),
    refused!(GET "/ingest/api/v1/source" "ingest.source.list" INGEST),
    refused!(POST "/ingest/api/v1/source" "ingest.source.create" INGEST),
    refused!(GET "/ingest/api/v1/source/{source_id}" "ingest.source.get" INGEST),
    refused!(PUT "/ingest/api/v1/source/{source_id}" "ingest.source.update" INGEST),
    refused!(DELETE "/ingest/api/v1/source/{source_id}" "ingest.source.delete" INGEST),
    refused!(POST "/ingest/api/v1/source/{source_id}/token/rotate" "ingest.source.rotateToken" INGEST),
    refused!(POST "/ingest/api/v1/source/{source_id}/dashboard" "ingest.dashboard" INGEST),
    refused!(GET "/ingest/api/v1/source/{source_id}/endpoint" "ingest.endpoint.list" INGEST),
    refused!(POST "/ingest/api/v1/source/{source_id}/endpoint" "ingest.endpoint.create" INGEST),
    refused!(GET "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}" "ingest.endpoint.get" INGEST),
    refused!(PUT "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}" "ingest.endpoint.update" INGEST),
    refused!(DELETE "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}" "ingest.endpoint.delete" INGEST),
    refused!(GET "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers" "ingest.endpoint.getHeaders" INGEST),
    refused!(PUT "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers" "ingest.endpoint.updateHeaders" INGEST),
    refused!(GET "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret" "ingest.endpoint.getSecret" INGEST),
    refused!(POST "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret/rotate" "ingest.endpoint.rotateSecret" INGEST),
    refused!(GET "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/transformation" "ingest.endpoint.getTransformation" INGEST),
    refused!(PATCH "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/transformation" "ingest.endpoint.setTransformation" INGEST),
    refused!(POST "/api/v1/environment/export" "environment.export" ENVIRONMENT),
    refused!(POST "/api/v1/environment/import" "environment.import" ENVIRONMENT),
    refused!(GET "/api/v1/app/{app_id}/integration" "integration.list" INTEGRATIONS),
    refused!(POST "/api/v1/app/{app_id}/integration" "integration.create" INTEGRATIONS),
    refused!(GET "/api/v1/app/{app_id}/integration/{integ_id}" "integration.get" INTEGRATIONS),
    refused!(PUT "/api/v1/app/{app_id}/integration/{integ_id}" "integration.update" INTEGRATIONS),
    refused!(DELETE "/api/v1/app/{app_id}/integration/{integ_id}" "integration.delete" INTEGRATIONS),
    refused!(GET "/api/v1/app/{app_id}/integration/{integ_id}/key" "integration.getKey" INTEGRATIONS),
    refused!(POST "/api/v1/app/{app_id}/integration/{integ_id}/key/rotate" "integration.rotateKey" INTEGRATIONS),
    refused!(GET "/api/v1/app/{app_id}/poller/{sink_id}" "messagePoller.poll" POLLER),
    refused!(GET "/api/v1/app/{app_id}/poller/{sink_id}/consumer/{consumer_id}" "messagePoller.consumerPoll" POLLER),
    refused!(POST "/api/v1/app/{app_id}/poller/{sink_id}/consumer/{consumer_id}/seek" "messagePoller.consumerSeek" POLLER),
    refused!(GET "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation" "endpoint.transformationGet" TRANSFORMATIONS),
    refused!(PATCH "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation" "endpoint.patchTransformation" TRANSFORMATIONS),
    refused!(GET "/api/v1/app/{app_id}/destination/{destination_id}/transformation" "destination.getTransformation" TRANSFORMATIONS),
    refused!(PATCH "/api/v1/app/{app_id}/destination/{destination_id}/transformation" "destination.patchTransformation" TRANSFORMATIONS),
    refused!(POST "/api/v1/app/{app_id}/autoconfig" "autoconfigSubscription.create" AUTOCONFIG),
    refused!(DELETE "/api/v1/app/{app_id}/autoconfig/{autoconfig_id}" "autoconfigSubscription.delete" AUTOCONFIG),
    refused!(POST "/api/v1/app/{app_id}/autoconfig/{autoconfig_id}/rotate" "autoconfigSubscription.rotate" AUTOCONFIG),
];

/// A router answering every refused operation; a path's methods share one route.
pub fn routes() -> Router<ApiState> {
    let mut by_path: BTreeMap<&'static str, MethodRouter<ApiState>> = BTreeMap::new();
    for refused in REFUSED {
        let (operation, why) = (refused.operation, refused.why);
        let answer = move || async move { ApiError::NotSupported { operation, why } };
        let route = match by_path.remove(refused.path) {
            Some(route) => route.on(refused.method, answer),
            None => on(refused.method, answer),
        };
        by_path.insert(refused.path, route);
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, route)| {
            router.route(path, route)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for refused in REFUSED {
            assert!(
                seen.insert((format!("{:?}", refused.method), refused.path)),
                "{:?} {} twice",
                refused.method,
                refused.path
            );
            assert!(
                !refused.why.is_empty(),
                "{} has a reason",
                refused.operation
            );
        }
    }
}
