//! The `application/health+json` body (IETF draft-inadarei-api-health-check).
//!
//! Plain serde data: building it from a snapshot is the library's job, reading it (the monitor
//! reading a vitals service) is the monitor's. Field names follow the draft exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Status;

/// The media type of the body.
pub const CONTENT_TYPE: &str = "application/health+json";

/// A whole health response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponse {
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Keyed by `component:measurement` (or just the component name); each key holds one or
    /// more entries, as the draft allows.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, Vec<Component>>,
}

/// One entry under `checks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_id: Option<String>,
    /// `datastore`, `component`, `system`, or a URI, per the draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_unit: Option<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected_endpoints: Option<Vec<String>>,
    /// RFC 3339 time of the observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_drafts_example_shape() {
        let body = r#"{
            "status": "warn",
            "version": "1",
            "checks": {
                "database": [{
                    "componentType": "datastore",
                    "observedValue": 12.5,
                    "observedUnit": "ms",
                    "status": "pass",
                    "time": "2026-11-25T09:00:00Z"
                }],
                "cache": [{"componentType": "datastore", "status": "fail", "output": "connection refused"}]
            }
        }"#;
        let health: HealthResponse = serde_json::from_str(body).unwrap();
        assert_eq!(health.status, Status::Warn);
        assert_eq!(
            health.checks["cache"][0].output.as_deref(),
            Some("connection refused")
        );
        let again: HealthResponse =
            serde_json::from_str(&serde_json::to_string(&health).unwrap()).unwrap();
        assert_eq!(again, health);
        let text = serde_json::to_string(&health).unwrap();
        assert!(text.contains("\"observedValue\":12.5"), "{text}");
        assert!(
            !text.contains("serviceId"),
            "absent fields are omitted: {text}"
        );
    }
}
