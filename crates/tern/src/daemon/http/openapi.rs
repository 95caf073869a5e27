//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the HTTP API, kept
//! beside the code as `openapi.json`; a test checks that every route the
//! API serves ([`super::ROUTES`]) is in it.

use axum::http::header;
use axum::response::IntoResponse;

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /v1/openapi.json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document_and_only_those() {
        let document: serde_json::Value = serde_json::from_str(DOCUMENT).expect("JSON");
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().expect("paths");
        for (method, path) in super::super::ROUTES {
            let operation = &paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is not in the document"))[method];
            assert!(
                operation.is_object(),
                "{method} {path} is not in the document"
            );
            assert!(
                operation["responses"].is_object(),
                "{method} {path} documents no responses"
            );
        }
        let documented: usize = paths
            .values()
            .map(|p| p.as_object().map_or(0, |o| o.len()))
            .sum();
        assert_eq!(
            documented,
            super::super::ROUTES.len(),
            "a documented route the API lacks"
        );
        // Every $ref names something the document has.
        for reference in DOCUMENT.split("\"$ref\": \"").skip(1) {
            let pointer = reference
                .split('"')
                .next()
                .and_then(|r| r.strip_prefix('#'))
                .expect("a local reference");
            assert!(
                document
                    .pointer(pointer)
                    .is_some_and(serde_json::Value::is_object),
                "{pointer} is referenced but not defined"
            );
        }
    }
}
