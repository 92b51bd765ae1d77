//! events.k8s.io/v1 Events: the same objects as core v1 Events in a newer shape, kept
//! with them under `/registry/events/` in the core shape — as kube-apiserver keeps one
//! internal Event for both — so `kubectl get events` lists what a kube-rs `Recorder` or
//! client-go's `events` package records, and the other way round.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::events::v1 as events;
use serde_json::Value;

use crate::kinds::Schema;

/// A stored (core) Event in the events.k8s.io/v1 shape.
pub(crate) fn from_core(stored: Value) -> Value {
    let Ok(event) = serde_json::from_value::<core::Event>(stored.clone()) else {
        return stored;
    };
    let series = event.series.map(|s| events::EventSeries {
        count: s.count.unwrap_or_default(),
        last_observed_time: s.last_observed_time.unwrap_or_else(|| {
            k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Default::default())
        }),
    });
    let shaped = events::Event {
        action: event.action,
        deprecated_count: event.count,
        deprecated_first_timestamp: event.first_timestamp,
        deprecated_last_timestamp: event.last_timestamp,
        deprecated_source: event.source,
        event_time: event.event_time,
        metadata: event.metadata,
        note: event.message,
        reason: event.reason,
        regarding: Some(event.involved_object),
        related: event.related,
        reporting_controller: event.reporting_component,
        reporting_instance: event.reporting_instance,
        series,
        type_: event.type_,
    };
    serde_json::to_value(&shaped).unwrap_or(stored)
}

/// An events.k8s.io/v1 Event in the core shape it is stored in.
pub(crate) fn to_core(given: Value) -> Value {
    let Ok(event) = serde_json::from_value::<events::Event>(given.clone()) else {
        return given;
    };
    let series = event.series.map(|s| core::EventSeries {
        count: Some(s.count),
        last_observed_time: Some(s.last_observed_time),
    });
    let stored = core::Event {
        action: event.action,
        count: event.deprecated_count,
        event_time: event.event_time,
        first_timestamp: event.deprecated_first_timestamp,
        involved_object: event.regarding.unwrap_or_default(),
        last_timestamp: event.deprecated_last_timestamp,
        message: event.note,
        metadata: event.metadata,
        reason: event.reason,
        related: event.related,
        reporting_component: event.reporting_controller,
        reporting_instance: event.reporting_instance,
        series,
        source: event.deprecated_source,
        type_: event.type_,
    };
    serde_json::to_value(&stored).unwrap_or(given)
}

/// The longest action, reason and reporting instance kube-apiserver takes.
const MAX_NAME: usize = 128;

/// The longest note kube-apiserver takes.
const MAX_NOTE: usize = 1024;

impl Schema for events::Event {
    /// What kube-apiserver requires of an Event written in this version: who reported
    /// what, when.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.event_time.is_none() {
            problems.push("eventTime: Required value".to_string());
        }
        let named = [
            ("reportingController", &self.reporting_controller, 253),
            ("reportingInstance", &self.reporting_instance, MAX_NAME),
            ("action", &self.action, MAX_NAME),
            ("reason", &self.reason, MAX_NAME),
        ];
        for (field, value, longest) in named {
            match value.as_deref() {
                None | Some("") => problems.push(format!("{field}: Required value")),
                Some(text) if text.len() > longest => problems.push(format!(
                    "{field}: Too long: may not be more than {longest} bytes"
                )),
                Some(_) => {}
            }
        }
        if self.note.as_ref().is_some_and(|n| n.len() > MAX_NOTE) {
            problems.push(format!(
                "note: Too long: may not be more than {MAX_NOTE} bytes"
            ));
        }
        match self.type_.as_deref() {
            Some("Normal" | "Warning") => {}
            Some(other) => problems.push(format!(
                "type: Unsupported value: \"{other}\": supported values: \"Normal\", \"Warning\""
            )),
            None => problems.push("type: Required value".to_string()),
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_event_keeps_every_field_through_the_core_shape() {
        let given = json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "eventTime": "2026-12-04T04:00:00.000000Z",
            "series": {"count": 3, "lastObservedTime": "2026-12-04T04:01:00.000000Z"},
            "reportingController": "example.com/operator",
            "reportingInstance": "operator-0",
            "action": "Reconcile",
            "reason": "Scaled",
            "regarding": {"kind": "Deployment", "name": "web", "namespace": "default"},
            "note": "scaled to 3",
            "type": "Normal",
        });
        let stored = to_core(given.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "web");
        assert_eq!(stored["message"], "scaled to 3");
        assert_eq!(stored["reportingComponent"], "example.com/operator");
        assert_eq!(from_core(stored), given);
    }

    #[test]
    fn an_event_without_its_reporter_is_refused_naming_the_fields() {
        let problems = events::Event::default().problems();
        assert!(problems.contains(&"eventTime: Required value".to_string()));
        assert!(problems.contains(&"reportingController: Required value".to_string()));
        assert!(problems.contains(&"type: Required value".to_string()));
    }
}
