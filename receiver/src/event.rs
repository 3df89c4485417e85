//! The typed reading of a webhook's `event` and `data`.
//!
//! PassFort's set of events is open (its help pages list newer ones than any public sample) and
//! most `data` shapes are undocumented. So the typed reading is lenient by design: every field
//! is optional, fields this library does not name are kept in `other`, and a webhook whose
//! `event` is unknown, or whose `data` does not fit the expected shape (a field of the wrong JSON
//! type, `data` not an object), becomes [`Event::Unknown`] carrying the raw JSON. Reading never
//! fails, because answering anything but 200 to an authentic webhook stalls the account's whole
//! queue at PassFort for up to a day at a time.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The one list of the events this library reads into typed variants: each line is the
/// variant's doc, the `event` string PassFort sends, and the variant holding its `data` type.
/// [`Event`], [`KNOWN_EVENTS`], [`Event::from_parts`] and [`Event::name`] are all derived from
/// it, so a new event type is one line here plus its `data` type: a struct where the shape is
/// known, a line in `raw_data!` (the `data` kept as sent) where it is not.
macro_rules! events {
    ($( $(#[doc = $doc:literal])* $name:literal => $variant:ident, )*) => {
        /// A PassFort event, typed where the event and its `data` shape are known.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum Event {
            $( $(#[doc = $doc])* $variant($variant), )*
            /// An event this library does not know, or a known one whose `data` has an
            /// unexpected shape.
            Unknown {
                /// The `event` string as sent.
                event: String,
                /// `data` as sent.
                raw: Value,
            },
        }

        /// The `event` strings this library reads into typed variants.
        pub const KNOWN_EVENTS: &[&str] = &[$($name),*];

        impl Event {
            /// Reads `event` and `data`; never fails.
            pub fn from_parts(event: &str, data: &Value) -> Self {
                let known = match event {
                    $( $name => $variant::deserialize(data).ok().map(Event::$variant), )*
                    _ => None,
                };
                known.unwrap_or_else(|| Event::Unknown {
                    event: event.to_owned(),
                    raw: data.clone(),
                })
            }

            /// The `event` string this variant stands for.
            pub fn name(&self) -> &str {
                match self {
                    $( Event::$variant(_) => $name, )*
                    Event::Unknown { event, .. } => event,
                }
            }
        }
    };
}

events! {
    /// `PRODUCT_STATUS_CHANGED`: a product application moved to a new status.
    "PRODUCT_STATUS_CHANGED" => ProductStatusChanged,
    /// `CHECK_COMPLETED`: a check returned (also how a check error is reported).
    "CHECK_COMPLETED" => CheckCompleted,
    /// `COLLECTED_DATA_UPDATED`: a profile's collected data changed.
    "COLLECTED_DATA_UPDATED" => CollectedDataUpdated,
    /// `MANUAL_ACTION_REQUIRED`: an application needs a person to act.
    "MANUAL_ACTION_REQUIRED" => ManualActionRequired,
    /// `PRODUCT_BADGE_CHANGED`: the application processing state (the "flag") changed.
    "PRODUCT_BADGE_CHANGED" => ProductBadgeChanged,
    /// `RISK_LEVEL_CHANGED`: the application's risk level changed (Risk module only).
    "RISK_LEVEL_CHANGED" => RiskLevelChanged,
    /// `TASK_STATE_CHANGED`: a task went between incomplete and passed/failed.
    "TASK_STATE_CHANGED" => TaskStateChanged,
    /// `FORM_STATE_CHANGED`: a custom form's state changed.
    "FORM_STATE_CHANGED" => FormStateChanged,
    /// `PROFILE_STATUS_CHANGED` (deprecated by PassFort, still delivered by old configurations).
    "PROFILE_STATUS_CHANGED" => ProfileStatusChanged,
    /// `TASK_IS_COMPLETE_CHANGED` (deprecated).
    "TASK_IS_COMPLETE_CHANGED" => TaskIsCompleteChanged,
    /// `COLLECTION_STEPS_COMPLETED` (deprecated).
    "COLLECTION_STEPS_COMPLETED" => CollectionStepsCompleted,
    /// `COLLECTED_DATA_CHANGED`: the current collected-data event (new accounts get it instead
    /// of `COLLECTED_DATA_UPDATED`); string inferred, `data` taken to be the same shape.
    "COLLECTED_DATA_CHANGED" => CollectedDataChanged,
    /// `TASK_CREATED` (string inferred, no public sample: `data` kept raw).
    "TASK_CREATED" => TaskCreated,
    /// `RISK_SCORE_CHANGED` (string inferred, no public sample: `data` kept raw).
    "RISK_SCORE_CHANGED" => RiskScoreChanged,
    /// `CUSTOMER_REQUEST_CHANGED`: a document request sent to an applicant changed (string
    /// inferred, no public sample: `data` kept raw).
    "CUSTOMER_REQUEST_CHANGED" => CustomerRequestChanged,
    /// `EVENTS_CREATED`: profile events (flags, alerts) were created (string inferred, no
    /// public sample: `data` kept raw).
    "EVENTS_CREATED" => EventsCreated,
    /// `EVENTS_UPDATED`: profile events were updated (string inferred, no public sample:
    /// `data` kept raw).
    "EVENTS_UPDATED" => EventsUpdated,
}

impl Event {
    /// Whether this is [`Event::Unknown`].
    pub fn is_unknown(&self) -> bool {
        matches!(self, Event::Unknown { .. })
    }
}

/// `data` of `COLLECTED_DATA_CHANGED`: inferred to be `COLLECTED_DATA_UPDATED`'s (spec §2).
pub type CollectedDataChanged = CollectedDataUpdated;

/// Declares events known by name whose `data` has no public sample: each holds `data` exactly
/// as sent, never rejected for its shape.
macro_rules! raw_data {
    ($($(#[doc = $doc:literal])* $name:ident;)+) => {
        $(
            $(#[doc = $doc])*
            #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
            #[serde(transparent)]
            pub struct $name(pub Value);
        )+
    };
}

raw_data! {
    /// `data` of `TASK_CREATED`, as sent.
    TaskCreated;
    /// `data` of `RISK_SCORE_CHANGED`, as sent.
    RiskScoreChanged;
    /// `data` of `CUSTOMER_REQUEST_CHANGED`, as sent.
    CustomerRequestChanged;
    /// `data` of `EVENTS_CREATED`, as sent.
    EventsCreated;
    /// `data` of `EVENTS_UPDATED`, as sent.
    EventsUpdated;
}

/// `{id, alias, name}` of a product (or of a check variant): PassFort names things this way.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Named {
    /// PassFort's id.
    pub id: Option<String>,
    /// The stable machine name, e.g. `identity_check`.
    pub alias: Option<String>,
    /// The human name.
    pub name: Option<String>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The API key that caused the change (`data.apikey`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ApiKey {
    /// The key's name as configured in PassFort.
    pub name: Option<String>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The person who made a change (`data.user`); `null` when a smart policy made it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct User {
    /// PassFort's user id.
    pub id: Option<String>,
    /// The user's e-mail.
    pub email: Option<String>,
    /// The user's name.
    pub name: Option<String>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `PRODUCT_STATUS_CHANGED` data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProductStatusChanged {
    /// The product application that changed.
    pub application_id: Option<String>,
    /// `APPLIED`, `IN_REVIEW`, `APPROVED`, `REJECTED`, `CANCELLED`, or a newer one.
    pub new_status: Option<String>,
    /// The product applied for.
    pub product: Option<Named>,
    /// The profile (UUID).
    pub profile_id: Option<String>,
    /// The integrator's own reference for the profile.
    pub customer_ref: Option<String>,
    /// The API key involved.
    pub apikey: Option<ApiKey>,
    /// Who made the change; `None` when a smart policy did.
    pub user: Option<User>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The check inside `CHECK_COMPLETED`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Check {
    /// The check's id.
    pub id: Option<String>,
    /// E.g. `PEPS_AND_SANCTIONS_SCREEN`.
    pub check_type: Option<String>,
    /// E.g. `PASS`, `FAIL`, `ERROR`.
    pub decision: Option<String>,
    /// E.g. `Pass`, `Refer`, `Error`.
    pub result: Option<String>,
    /// The check variant used.
    pub variant: Option<Named>,
    /// Fields not named here (e.g. `state`, `errors`).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `CHECK_COMPLETED` data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CheckCompleted {
    /// The check and its outcome.
    pub check: Option<Check>,
    /// The profile (UUID).
    pub profile_id: Option<String>,
    /// The integrator's own reference for the profile.
    pub customer_ref: Option<String>,
    /// The API key involved.
    pub apikey: Option<ApiKey>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `COLLECTED_DATA_UPDATED` data. The collected data objects can be large and are kept as JSON.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CollectedDataUpdated {
    /// The collected data before the change.
    pub old_data: Option<Value>,
    /// The collected data after the change.
    pub new_data: Option<Value>,
    /// The profile (UUID).
    pub profile_id: Option<String>,
    /// The integrator's own reference for the profile.
    pub customer_ref: Option<String>,
    /// The API key involved.
    pub apikey: Option<ApiKey>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One application named by a manual action.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ActionApplication {
    /// The application's id.
    pub id: Option<String>,
    /// The product.
    pub product: Option<Named>,
    /// Its status.
    pub status: Option<String>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A task (in a manual action, or the task whose state changed).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Task {
    /// The task's id.
    pub id: Option<String>,
    /// `INCOMPLETE`, `COMPLETED_PASS`, `COMPLETED_FAIL`.
    pub state: Option<String>,
    /// The task type.
    #[serde(rename = "type")]
    pub task_type: Option<String>,
    /// The task variant.
    pub variant: Option<Named>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One action in `MANUAL_ACTION_REQUIRED`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ManualAction {
    /// What kind of action is needed.
    pub action_type: Option<String>,
    /// When it is due (as sent).
    pub due: Option<Value>,
    /// The applications waiting on it.
    #[serde(default)]
    pub applications: Vec<ActionApplication>,
    /// The task to complete.
    pub task: Option<Task>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `MANUAL_ACTION_REQUIRED` data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ManualActionRequired {
    /// The actions required.
    #[serde(default)]
    pub actions: Vec<ManualAction>,
    /// The profile (UUID).
    pub profile_id: Option<String>,
    /// The integrator's own reference for the profile.
    pub customer_ref: Option<String>,
    /// The API key involved.
    pub apikey: Option<ApiKey>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `PRODUCT_BADGE_CHANGED` data (shape inferred: no public sample).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProductBadgeChanged {
    /// The product application whose flag changed.
    pub application_id: Option<String>,
    /// The product.
    pub product: Option<Named>,
    /// The new flag, e.g. `READY_FOR_DECISION`, `AUTOMATING`, `WAITING_ON_CHECKS`.
    pub new_flag: Option<String>,
    /// The profile (UUID).
    pub profile_id: Option<String>,
    /// The integrator's own reference for the profile.
    pub customer_ref: Option<String>,
    /// The API key involved.
    pub apikey: Option<ApiKey>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `RISK_LEVEL_CHANGED` data (shape inferred).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RiskLevelChanged {
    /// The product application.
    pub application_id: Option<String>,
    /// The product.
    pub product: Option<Named>,
    /// `LOW`, `MEDIUM`, `HIGH`, `UNDETERMINED`.
    pub new_risk_level: Option<String>,
    /// The profile (UUID).
    pub profile_id: Option<String>,
    /// The integrator's own reference for the profile.
    pub customer_ref: Option<String>,
    /// The API key involved.
    pub apikey: Option<ApiKey>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `TASK_STATE_CHANGED` data (shape inferred).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskStateChanged {
    /// The task.
    pub task: Option<Task>,
    /// `INCOMPLETE`, `COMPLETED_PASS`, `COMPLETED_FAIL`.
    pub new_state: Option<String>,
    /// The profile (UUID).
    pub profile_id: Option<String>,
    /// The integrator's own reference for the profile.
    pub customer_ref: Option<String>,
    /// The API key involved.
    pub apikey: Option<ApiKey>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `FORM_STATE_CHANGED` data (shape inferred).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FormStateChanged {
    /// The form.
    pub form: Option<Named>,
    /// The form's new state, e.g. `SUBMITTED`.
    pub new_state: Option<String>,
    /// The profile (UUID).
    pub profile_id: Option<String>,
    /// The integrator's own reference for the profile.
    pub customer_ref: Option<String>,
    /// The API key involved.
    pub apikey: Option<ApiKey>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `PROFILE_STATUS_CHANGED` data (deprecated event, shape inferred).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProfileStatusChanged {
    /// `NORMAL`, `SUSPENDED`, `BANNED`.
    pub new_status: Option<String>,
    /// The profile (UUID).
    pub profile_id: Option<String>,
    /// The integrator's own reference for the profile.
    pub customer_ref: Option<String>,
    /// The API key involved.
    pub apikey: Option<ApiKey>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `TASK_IS_COMPLETE_CHANGED` data (deprecated event, shape inferred).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskIsCompleteChanged {
    /// The task.
    pub task: Option<Task>,
    /// Whether the task is now complete.
    pub is_complete: Option<bool>,
    /// The profile (UUID).
    pub profile_id: Option<String>,
    /// The integrator's own reference for the profile.
    pub customer_ref: Option<String>,
    /// The API key involved.
    pub apikey: Option<ApiKey>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `COLLECTION_STEPS_COMPLETED` data (deprecated event, shape inferred).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CollectionStepsCompleted {
    /// The product application.
    pub application_id: Option<String>,
    /// The product.
    pub product: Option<Named>,
    /// The profile (UUID).
    pub profile_id: Option<String>,
    /// The integrator's own reference for the profile.
    pub customer_ref: Option<String>,
    /// The API key involved.
    pub apikey: Option<ApiKey>,
    /// Fields not named here.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_check_completed() {
        let event = Event::from_parts(
            "CHECK_COMPLETED",
            &json!({"profile_id": "p", "customer_ref": null,
                    "check": {"id": "c", "check_type": "IDENTITY_CHECK", "decision": "PASS",
                              "result": "Pass", "variant": {"alias": "x"}, "state": "COMPLETE"}}),
        );
        let Event::CheckCompleted(data) = event else {
            panic!("not typed: {event:?}")
        };
        let check = data.check.unwrap();
        assert_eq!(check.decision.as_deref(), Some("PASS"));
        assert_eq!(check.other["state"], json!("COMPLETE"));
        assert_eq!(data.customer_ref, None);
    }

    #[test]
    fn an_unknown_event_keeps_its_raw_data() {
        // A name no PassFort page gives (TASK_CREATED, used here before, is now a known event).
        let raw = json!({"anything": [1, 2]});
        assert_eq!(
            Event::from_parts("APPLICANT_PORTAL_VISITED", &raw),
            Event::Unknown {
                event: "APPLICANT_PORTAL_VISITED".into(),
                raw
            }
        );
        assert!(!Event::from_parts("TASK_CREATED", &json!({"anything": [1, 2]})).is_unknown());
    }

    #[test]
    fn an_unexpected_data_shape_is_unknown_not_an_error() {
        let odd = json!({"profile_id": 42});
        let event = Event::from_parts("PRODUCT_STATUS_CHANGED", &odd);
        assert!(event.is_unknown());
        assert_eq!(event.name(), "PRODUCT_STATUS_CHANGED");
        assert!(Event::from_parts("CHECK_COMPLETED", &json!("text")).is_unknown());
    }

    #[test]
    fn every_known_name_round_trips() {
        for &name in KNOWN_EVENTS {
            let event = Event::from_parts(name, &json!({}));
            assert!(!event.is_unknown(), "{name}");
            assert_eq!(event.name(), name);
        }
    }
}
