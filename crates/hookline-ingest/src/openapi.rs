//! Hookline's own OpenAPI document, generated from the handlers' annotations.
//!
//! The router in `lib.rs` registers each handler through `utoipa_axum::routes!`, which adds
//! its documented path in the same step, so a route cannot exist undocumented or the other way
//! round.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

use crate::error::FieldError;
use crate::routes::common::Ordering;

/// Every error but validation: `{"code": "...", "detail": "..."}`.
#[derive(ToSchema)]
pub struct HttpErrorOut {
    pub code: String,
    pub detail: String,
}

/// A validation error: `{"code": "validation", "detail": [{loc, msg, type}]}`.
#[derive(ToSchema)]
pub struct HttpValidationErrorOut {
    pub code: String,
    pub detail: Vec<FieldError>,
}

/// The errors any authenticated route may answer.
#[derive(IntoResponses)]
pub enum ErrorResponses {
    #[response(status = 400, description = "Malformed request")]
    BadRequest(#[to_schema] HttpErrorOut),
    #[response(
        status = 401,
        description = "Missing, unknown, expired or revoked token"
    )]
    Unauthorized(HttpErrorOut),
    #[response(
        status = 403,
        description = "The token's scope does not cover this route"
    )]
    Forbidden(HttpErrorOut),
    #[response(status = 404, description = "Not found (or another tenant's)")]
    NotFound(HttpErrorOut),
    #[response(
        status = 409,
        description = "Conflict (uid or name taken, limit reached)"
    )]
    Conflict(HttpErrorOut),
    #[response(status = 413, description = "Request body too large")]
    PayloadTooLarge(HttpErrorOut),
    #[response(status = 422, description = "Invalid field; `loc` names it")]
    Validation(#[to_schema] HttpValidationErrorOut),
    #[response(
        status = 503,
        description = "RabbitMQ or Redis unavailable; nothing was accepted"
    )]
    Unavailable(HttpErrorOut),
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document's fixed parts; paths are added by the router.
#[derive(OpenApi)]
#[openapi(
    info(title = "Hookline API", description = "Svix v1 compatible webhook delivery API"),
    modifiers(&BearerAuth),
    components(schemas(HttpErrorOut, HttpValidationErrorOut, FieldError, Ordering))
)]
pub struct ApiDoc;
