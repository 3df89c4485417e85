//! What PassFort sends: event types, the webhook envelope, UUIDv1 ids, and a seeded generator of
//! plausible profile lifecycles.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};
use uuid::Uuid;

/// Declares the event types from one table: the enum, [`EventType::KNOWN`], the wire strings and
/// which are deprecated. Adding an event is one line here (and its `data` in [`Generator`]).
macro_rules! event_types {
    ($($(#[doc = $doc:literal])* $variant:ident = $wire:literal $(($deprecated:ident))?;)+) => {
        /// An `event` string. The set is open: PassFort adds events, so anything unknown is
        /// carried as [`EventType::Other`] instead of being rejected.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($(#[doc = $doc])* $variant,)+
            /// Any other string, sent verbatim: for forward-compatibility tests.
            Other(String),
        }

        impl EventType {
            /// Every event type named in the spec, deprecated ones last.
            pub const KNOWN: [EventType; [$(stringify!($variant)),+].len()] =
                [$(EventType::$variant),+];

            /// The wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Other(raw) => raw,
                }
            }

            /// PassFort lists these as deprecated but may still send them.
            pub fn is_deprecated(&self) -> bool {
                match self {
                    $(Self::$variant => event_types!(@deprecated $($deprecated)?),)+
                    Self::Other(_) => false,
                }
            }
        }
    };
    (@deprecated deprecated) => {
        true
    };
    (@deprecated) => {
        false
    };
}

event_types! {
    /// `PRODUCT_STATUS_CHANGED` (confirmed).
    ProductStatusChanged = "PRODUCT_STATUS_CHANGED";
    /// `CHECK_COMPLETED` (confirmed).
    CheckCompleted = "CHECK_COMPLETED";
    /// `COLLECTED_DATA_CHANGED`, the current collected-data event, which new accounts get
    /// instead of `COLLECTED_DATA_UPDATED` (event confirmed, string inferred; `data` as
    /// `COLLECTED_DATA_UPDATED`'s, inferred).
    CollectedDataChanged = "COLLECTED_DATA_CHANGED";
    /// `MANUAL_ACTION_REQUIRED` (confirmed).
    ManualActionRequired = "MANUAL_ACTION_REQUIRED";
    /// `PRODUCT_BADGE_CHANGED`, the "flag" (inferred).
    ProductBadgeChanged = "PRODUCT_BADGE_CHANGED";
    /// `RISK_LEVEL_CHANGED`, Risk module only (inferred).
    RiskLevelChanged = "RISK_LEVEL_CHANGED";
    /// `TASK_STATE_CHANGED` (inferred).
    TaskStateChanged = "TASK_STATE_CHANGED";
    /// `FORM_STATE_CHANGED` (inferred).
    FormStateChanged = "FORM_STATE_CHANGED";
    /// `TASK_CREATED` (event on newer help pages; string and `data` inferred, no sample).
    TaskCreated = "TASK_CREATED";
    /// `RISK_SCORE_CHANGED` (event on newer help pages; string and `data` inferred, no sample).
    RiskScoreChanged = "RISK_SCORE_CHANGED";
    /// `CUSTOMER_REQUEST_CHANGED`: a user sent a document request to an applicant (event on
    /// newer help pages; string and `data` inferred, no sample).
    CustomerRequestChanged = "CUSTOMER_REQUEST_CHANGED";
    /// `EVENTS_CREATED`: profile events (flags, alerts) were created (event on newer help pages;
    /// string and `data` inferred, no sample).
    EventsCreated = "EVENTS_CREATED";
    /// `EVENTS_UPDATED`: profile events were updated (event on newer help pages; string and
    /// `data` inferred, no sample).
    EventsUpdated = "EVENTS_UPDATED";
    /// `COLLECTED_DATA_UPDATED`, deprecated for accounts created since `COLLECTED_DATA_CHANGED`
    /// exists, still sent to older ones (confirmed).
    CollectedDataUpdated = "COLLECTED_DATA_UPDATED" (deprecated);
    /// `PROFILE_STATUS_CHANGED`, deprecated (inferred).
    ProfileStatusChanged = "PROFILE_STATUS_CHANGED" (deprecated);
    /// `TASK_IS_COMPLETE_CHANGED`, deprecated (inferred).
    TaskIsCompleteChanged = "TASK_IS_COMPLETE_CHANGED" (deprecated);
    /// `COLLECTION_STEPS_COMPLETED`, deprecated (inferred).
    CollectionStepsCompleted = "COLLECTION_STEPS_COMPLETED" (deprecated);
}

impl EventType {
    /// The name PassFort's "Enabled events" list shows: the wire string in sentence case
    /// (`CHECK_COMPLETED` → "Check completed"); an unknown event shows as sent.
    pub fn label(&self) -> String {
        match self {
            Self::Other(raw) => raw.clone(),
            known => {
                let words = known.as_str().replace('_', " ").to_lowercase();
                let mut chars = words.chars();
                match chars.next() {
                    Some(first) => first.to_uppercase().chain(chars).collect(),
                    None => words,
                }
            }
        }
    }

    /// Reads a wire string; never fails, unknown strings become [`EventType::Other`].
    pub fn parse(raw: &str) -> Self {
        Self::KNOWN
            .iter()
            .find(|known| known.as_str() == raw)
            .cloned()
            .unwrap_or_else(|| Self::Other(raw.to_owned()))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Ok(Self::parse(&raw))
    }
}

/// One webhook as queued: the envelope without its secret (the secret is added when a request
/// is built, from the account settings at that moment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// An opaque string (spec §2): by default a version-1 UUID whose embedded time is
    /// `timestamp`, as PassFort's samples look; with [`IdStyle::Opaque`] not a UUID at all.
    pub id: String,
    /// The `event` string.
    pub event: EventType,
    /// Unix seconds.
    pub timestamp: u64,
    /// The event's `data` object.
    pub data: Value,
}

/// The wire form of one webhook, fields in PassFort's order.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    /// See [`Webhook::id`].
    pub id: &'a str,
    /// See [`Webhook::event`].
    pub event: &'a EventType,
    /// The shared secret, repeated in every body.
    pub secret: &'a str,
    /// See [`Webhook::timestamp`].
    pub timestamp: u64,
    /// See [`Webhook::data`].
    pub data: &'a Value,
}

impl Webhook {
    /// The envelope to serialise, carrying `secret`.
    pub fn envelope<'a>(&'a self, secret: &'a str) -> Envelope<'a> {
        Envelope {
            id: &self.id,
            event: &self.event,
            secret,
            timestamp: self.timestamp,
            data: &self.data,
        }
    }

    /// The envelope as a JSON value (for tests and fixtures).
    pub fn to_json(&self, secret: &str) -> Value {
        json!({
            "id": self.id,
            "event": self.event,
            "secret": secret,
            "timestamp": self.timestamp,
            "data": self.data,
        })
    }

    /// The Unix seconds embedded in the id, if it is a time-based UUID (a test's business:
    /// nothing may rely on it, ids are opaque).
    pub fn id_unix_seconds(&self) -> Option<u64> {
        Uuid::parse_str(&self.id)
            .ok()?
            .get_timestamp()
            .map(|ts| ts.to_unix().0)
    }
}

/// Unix seconds of `at` (0 before the epoch).
pub fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Offset between the UUID epoch (1582-10-15) and the Unix epoch, in 100 ns ticks.
const GREGORIAN_OFFSET_TICKS: u64 = 0x01B2_1DD2_1381_4000;
const TICKS_PER_SECOND: u64 = 10_000_000;

/// Mints version-1 UUIDs whose embedded time is a given Unix second, like PassFort's ids.
///
/// Deterministic: the node id and clock sequence come from the seed, and webhooks minted within
/// the same second differ in their sub-second ticks, so ids are unique without reading a real
/// clock.
#[derive(Debug, Clone)]
pub struct IdMinter {
    node: [u8; 6],
    clock_sequence: u16,
    sub_ticks: u64,
}

impl IdMinter {
    /// A minter whose node id and clock sequence derive from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1d_5eed);
        let mut node: [u8; 6] = rng.gen();
        // A random node id must have the multicast bit set (RFC 4122 §4.5).
        node[0] |= 0x01;
        Self {
            node,
            clock_sequence: rng.gen::<u16>() & 0x3fff,
            sub_ticks: 0,
        }
    }

    /// A fresh UUIDv1 whose time is `unix_seconds` (plus a sub-second tick to stay unique).
    pub fn mint(&mut self, unix_seconds: u64) -> Uuid {
        // One running counter for every second: ids stay unique even when times go backwards.
        self.sub_ticks += 1;
        if self.sub_ticks == TICKS_PER_SECOND {
            self.sub_ticks = 0;
            self.clock_sequence = (self.clock_sequence + 1) & 0x3fff;
        }
        let ticks = unix_seconds
            .saturating_mul(TICKS_PER_SECOND)
            .saturating_add(GREGORIAN_OFFSET_TICKS)
            .saturating_add(self.sub_ticks);
        uuid::Builder::from_gregorian_timestamp(ticks, self.clock_sequence, &self.node).into_uuid()
    }
}

/// The people and things one profile's events talk about, so a lifecycle's events agree with
/// each other.
#[derive(Debug, Clone)]
pub struct Profile {
    /// `data.profile_id`.
    pub profile_id: Uuid,
    /// `data.customer_ref`: the integrator's own reference, or none.
    pub customer_ref: Option<String>,
    /// The product application this lifecycle follows.
    pub application_id: Uuid,
    /// The product applied for.
    pub product: Value,
    /// The profile's collected data as it stands.
    pub collected_data: Value,
}

const PRODUCTS: [(&str, &str); 3] = [
    ("kyc_standard", "Standard KYC"),
    ("kyc_enhanced", "Enhanced due diligence"),
    ("kyb_onboarding", "Business onboarding"),
];
const GIVEN_NAMES: [&str; 8] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Dennis",
];
const FAMILY_NAMES: [&str; 8] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Ritchie",
];
const NATIONALITIES: [&str; 5] = ["GBR", "FRA", "DEU", "USA", "ARE"];
const CHECK_TYPES: [&str; 4] = [
    "IDENTITY_CHECK",
    "DOCUMENT_VERIFICATION",
    "PEPS_AND_SANCTIONS_SCREEN",
    "PROOF_OF_ADDRESS",
];
/// Check results from the API enum.
pub const CHECK_RESULTS: [&str; 10] = [
    "Pass", "Refer", "PEP", "Sanction", "Media", "Error", "Partial", "Fail", "2+2", "1+1",
];
/// Product application flags (the "badge") from the API enum.
pub const APPLICATION_FLAGS: [&str; 9] = [
    "AUTOMATING",
    "DECIDED",
    "WAITING_ON_COLLECTION_STEPS",
    "WAITING_ON_CHECKS",
    "REQUIRES_MANUAL_TASK_COMPLETION",
    "READY_FOR_DECISION",
    "REQUIRES_RISK_SCORE",
    "RECALCULATING_RISK",
    "REQUIRES_DATA",
];
/// Product application statuses from the API enum.
pub const APPLICATION_STATUSES: [&str; 5] =
    ["APPLIED", "IN_REVIEW", "APPROVED", "REJECTED", "CANCELLED"];
/// Risk levels from the API enum.
pub const RISK_LEVELS: [&str; 4] = ["LOW", "MEDIUM", "HIGH", "UNDETERMINED"];
/// Task states from the API enum.
pub const TASK_STATES: [&str; 3] = ["INCOMPLETE", "COMPLETED_PASS", "COMPLETED_FAIL"];
/// Profile event types from the API enum (the `events` of `EVENTS_CREATED`/`EVENTS_UPDATED`).
pub const PROFILE_EVENT_TYPES: [&str; 7] = [
    "PEP_FLAG",
    "SANCTION_FLAG",
    "DOCUMENT_EXPIRY",
    "TRANSACTION_ALERT",
    "REVIEW_NEEDED",
    "ADVERSE_MEDIA_FLAG",
    "REFER_FLAG",
];
/// States of a customer (document) request: inferred, no public sample.
const CUSTOMER_REQUEST_STATES: [&str; 3] = ["SENT", "SUBMITTED", "COMPLETED"];
/// Profile statuses from the API enum.
pub const PROFILE_STATUSES: [&str; 3] = ["NORMAL", "SUSPENDED", "BANNED"];
const FORM_STATES: [&str; 3] = ["CREATED", "SUBMITTED", "APPROVED"];
const TASK_TYPES: [&str; 3] = [
    "VERIFY_IDENTITY",
    "REVIEW_SCREENING_RESULTS",
    "VERIFY_SOURCE_OF_FUNDS",
];

/// Which kind of UUID webhook ids are. Version 1 (time-based, embedding `timestamp`) is what
/// the one real-looking sample shows, but it is inferred; version 4 lets a test show that a
/// receiver assumes nothing about ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdStyle {
    /// Time-based: the embedded time is the webhook's `timestamp`.
    #[default]
    V1,
    /// Random (from the generator's seed).
    V4,
    /// Not a UUID at all (`passfort-sim send --id-style opaque`): a prefix and 10 to 40 random
    /// letters, digits, `-`, `_`, `.` or `:`, of varying length and in no order, so a test shows
    /// that a receiver assumes nothing about ids (spec §2).
    Opaque,
}

/// A seeded source of realistic webhooks: same seed, same webhooks (ids included).
#[derive(Debug, Clone)]
pub struct Generator {
    rng: ChaCha8Rng,
    ids: IdMinter,
    id_style: IdStyle,
    apikey: String,
}

impl Generator {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            ids: IdMinter::new(seed),
            id_style: IdStyle::V1,
            apikey: "production key".to_owned(),
        }
    }

    /// Mints ids of `style` from now on.
    pub fn with_id_style(mut self, style: IdStyle) -> Self {
        self.id_style = style;
        self
    }

    fn mint(&mut self, timestamp: u64) -> String {
        match self.id_style {
            IdStyle::V1 => self.ids.mint(timestamp).to_string(),
            IdStyle::V4 => self.uuid4().to_string(),
            IdStyle::Opaque => self.opaque_id(),
        }
    }

    fn opaque_id(&mut self) -> String {
        const PREFIXES: [&str; 4] = ["wh_", "evt:", "pf.", "Q"];
        const ALPHABET: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:";
        let prefix = self.pick(&PREFIXES).to_owned();
        let len = self.rng.gen_range(10..=40);
        let body: String = (0..len)
            .map(|_| char::from(ALPHABET[self.rng.gen_range(0..ALPHABET.len())]))
            .collect();
        prefix + &body
    }

    fn uuid4(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.gen()).into_uuid()
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from.choose(&mut self.rng).copied().unwrap_or_default()
    }

    fn variant(&mut self, alias: &str) -> Value {
        json!({"id": self.uuid4(), "alias": format!("{}_default", alias.to_lowercase()), "name": "Default"})
    }

    /// A new profile with an application for one product.
    pub fn profile(&mut self) -> Profile {
        let (alias, name) = *PRODUCTS.choose(&mut self.rng).unwrap_or(&PRODUCTS[0]);
        let product = json!({"id": self.uuid4(), "alias": alias, "name": name});
        let customer_ref = if self.rng.gen_bool(0.7) {
            Some(format!("CUST-{:06}", self.rng.gen_range(0..1_000_000)))
        } else {
            None
        };
        let collected_data = self.collected_data();
        Profile {
            profile_id: self.uuid4(),
            customer_ref,
            application_id: self.uuid4(),
            product,
            collected_data,
        }
    }

    /// Collected data as first entered: a name and a date of birth.
    fn collected_data(&mut self) -> Value {
        let given = self.pick(&GIVEN_NAMES);
        let family = self.pick(&FAMILY_NAMES);
        let year = self.rng.gen_range(1940..2004);
        let month = self.rng.gen_range(1..=12);
        let day = self.rng.gen_range(1..=28);
        json!({
            "entity_type": "INDIVIDUAL",
            "personal_details": {
                "name": {"given_names": [given], "family_name": family},
                "dob": format!("{year:04}-{month:02}-{day:02}"),
            },
        })
    }

    /// `old` after an update: a nationality added, sometimes a second given name.
    fn updated_collected_data(&mut self, old: &Value) -> Value {
        let mut new = old.clone();
        let nationality = self.pick(&NATIONALITIES);
        let middle = if self.rng.gen_bool(0.3) {
            Some(self.pick(&GIVEN_NAMES))
        } else {
            None
        };
        if let Some(details) = new
            .get_mut("personal_details")
            .and_then(Value::as_object_mut)
        {
            details.insert("nationality".into(), json!(nationality));
            if let (Some(middle), Some(names)) = (
                middle,
                details
                    .get_mut("name")
                    .and_then(|n| n.get_mut("given_names"))
                    .and_then(Value::as_array_mut),
            ) {
                names.push(json!(middle));
            }
        }
        new
    }

    fn base(&self, profile: &Profile) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        map.insert("profile_id".into(), json!(profile.profile_id));
        map.insert("customer_ref".into(), json!(profile.customer_ref));
        map
    }

    fn check(&mut self, result: &str) -> Value {
        let check_type = self.pick(&CHECK_TYPES);
        let decision = match result {
            "Pass" | "2+2" | "1+1" => "PASS",
            "Refer" | "Partial" => "WARN",
            "Error" => "ERROR",
            _ => "FAIL",
        };
        json!({
            "id": self.uuid4(),
            "check_type": check_type,
            "decision": decision,
            "result": result,
            "variant": self.variant(check_type),
        })
    }

    fn user(&mut self) -> Value {
        if self.rng.gen_bool(0.3) {
            // A smart policy, not a person, made the change.
            Value::Null
        } else {
            let given = self.pick(&GIVEN_NAMES);
            let family = self.pick(&FAMILY_NAMES);
            json!({
                "id": self.uuid4(),
                "email": format!("{}.{}@example.com", given.to_lowercase(), family.to_lowercase()),
                "name": format!("{given} {family}"),
            })
        }
    }

    fn task(&mut self, state: &str) -> Value {
        let task_type = self.pick(&TASK_TYPES);
        json!({"id": self.uuid4(), "type": task_type, "state": state, "variant": self.variant(task_type)})
    }

    /// Plausible `data` for `event` about `profile`, picking the event's values at random.
    pub fn data(&mut self, event: &EventType, profile: &Profile) -> Value {
        let value = match event {
            EventType::ProductStatusChanged => {
                let status = self.pick(&APPLICATION_STATUSES);
                return self.product_status(profile, status);
            }
            EventType::CheckCompleted => {
                let result = self.pick(&CHECK_RESULTS);
                return self.check_completed(profile, result);
            }
            EventType::ProductBadgeChanged => {
                let flag = self.pick(&APPLICATION_FLAGS);
                return self.badge(profile, flag);
            }
            EventType::RiskLevelChanged => {
                let level = self.pick(&RISK_LEVELS);
                return self.risk(profile, level);
            }
            EventType::TaskStateChanged => {
                let state = self.pick(&TASK_STATES);
                return self.task_state(profile, state);
            }
            EventType::FormStateChanged => {
                let state = self.pick(&FORM_STATES);
                return self.form_state(profile, state);
            }
            EventType::ProfileStatusChanged => {
                let status = self.pick(&PROFILE_STATUSES);
                json!({"new_status": status})
            }
            EventType::CollectedDataUpdated | EventType::CollectedDataChanged => {
                return self.collected_data_updated(profile)
            }
            EventType::TaskCreated => {
                let task = self.task("INCOMPLETE");
                json!({"task": task})
            }
            EventType::RiskScoreChanged => {
                let category = self.pick(&RISK_LEVELS);
                let score = self.rng.gen_range(0..=100);
                json!({
                    "application_id": profile.application_id,
                    "product": profile.product,
                    "risk": {"score": score, "category": category},
                })
            }
            EventType::CustomerRequestChanged => {
                let state = self.pick(&CUSTOMER_REQUEST_STATES);
                json!({
                    "customer_request": {
                        "id": self.uuid4(),
                        "type": "DOCUMENT_REQUEST",
                        "state": state,
                    },
                })
            }
            EventType::EventsCreated | EventType::EventsUpdated => {
                let count = self.rng.gen_range(1..=3);
                let events: Vec<Value> = (0..count)
                    .map(|_| json!({"id": self.uuid4(), "event_type": self.pick(&PROFILE_EVENT_TYPES)}))
                    .collect();
                json!({"events": events})
            }
            EventType::ManualActionRequired => return self.manual_action(profile),
            EventType::TaskIsCompleteChanged => {
                let task_type = self.pick(&TASK_TYPES);
                let task = json!({"id": self.uuid4(), "type": task_type});
                json!({"task": task, "is_complete": self.rng.gen_bool(0.8)})
            }
            EventType::CollectionStepsCompleted => json!({
                "application_id": profile.application_id,
                "product": profile.product,
            }),
            EventType::Other(_) => json!({}),
        };
        self.with_base(profile, value)
    }

    fn with_base(&self, profile: &Profile, extra: Value) -> Value {
        let mut map = self.base(profile);
        if let Value::Object(extra) = extra {
            map.extend(extra);
        }
        Value::Object(map)
    }

    fn product_status(&mut self, profile: &Profile, status: &str) -> Value {
        let user = self.user();
        let value = json!({
            "application_id": profile.application_id,
            "new_status": status,
            "product": profile.product,
            "apikey": {"name": self.apikey},
            "user": user,
        });
        self.with_base(profile, value)
    }

    fn check_completed(&mut self, profile: &Profile, result: &str) -> Value {
        let check = self.check(result);
        self.with_base(profile, json!({"check": check}))
    }

    fn badge(&mut self, profile: &Profile, flag: &str) -> Value {
        let value = json!({
            "apikey": {"name": self.apikey},
            "application_id": profile.application_id,
            "product": profile.product,
            "new_flag": flag,
        });
        self.with_base(profile, value)
    }

    fn risk(&mut self, profile: &Profile, level: &str) -> Value {
        let value = json!({
            "apikey": {"name": self.apikey},
            "application_id": profile.application_id,
            "product": profile.product,
            "new_risk_level": level,
        });
        self.with_base(profile, value)
    }

    fn task_state(&mut self, profile: &Profile, state: &str) -> Value {
        let task = self.task(state);
        self.with_base(profile, json!({"task": task, "new_state": state}))
    }

    /// `task` (as made by `task()`) moved to `state`.
    fn task_moved(&self, profile: &Profile, task: &Value, state: &str) -> Value {
        let mut task = task.clone();
        task["state"] = json!(state);
        self.with_base(profile, json!({"task": task, "new_state": state}))
    }

    fn form_state(&mut self, profile: &Profile, state: &str) -> Value {
        let form =
            json!({"id": self.uuid4(), "alias": "source_of_funds", "name": "Source of funds"});
        self.with_base(profile, json!({"form": form, "new_state": state}))
    }

    fn collected_data_updated(&mut self, profile: &Profile) -> Value {
        let new_data = self.updated_collected_data(&profile.collected_data);
        let value = json!({
            "old_data": profile.collected_data,
            "new_data": new_data,
            "apikey": {"name": self.apikey},
        });
        self.with_base(profile, value)
    }

    fn manual_action(&mut self, profile: &Profile) -> Value {
        let task = self.task("INCOMPLETE");
        self.manual_action_for(profile, &task)
    }

    fn manual_action_for(&self, profile: &Profile, task: &Value) -> Value {
        let value = json!({
            "actions": [{
                "action_type": "COMPLETE_TASK",
                "due": Value::Null,
                "applications": [{
                    "id": profile.application_id,
                    "product": profile.product,
                    "status": "IN_REVIEW",
                }],
                "task": task,
            }],
        });
        self.with_base(profile, value)
    }

    /// One webhook of `event` about a fresh profile, triggered at `at`.
    pub fn webhook(&mut self, event: EventType, at: SystemTime) -> Webhook {
        let profile = self.profile();
        let data = self.data(&event, &profile);
        self.webhook_with_data(event, at, data)
    }

    /// One webhook carrying the caller's `data` verbatim.
    pub fn webhook_with_data(&mut self, event: EventType, at: SystemTime, data: Value) -> Webhook {
        let timestamp = unix_seconds(at);
        Webhook {
            id: self.mint(timestamp),
            event,
            timestamp,
            data,
        }
    }

    /// One profile's plausible life, in trigger order, as `(seconds after start, event, data)`:
    /// data collected, APPLIED, checks complete, the flag moves, risk is scored, a manual task is
    /// done, IN_REVIEW, then APPROVED or REJECTED; now and then a deprecated event too.
    pub fn lifecycle_events(&mut self) -> Vec<(u64, EventType, Value)> {
        let profile = self.profile();
        let mut out = Vec::new();
        let mut t = 0u64;
        let mut push = |gen: &mut Self, event: EventType, data: Value| {
            t += gen.rng.gen_range(0..=5);
            out.push((t, event, data));
        };
        // New accounts get COLLECTED_DATA_CHANGED; older ones still COLLECTED_DATA_UPDATED.
        let collected = if self.rng.gen_bool(0.8) {
            EventType::CollectedDataChanged
        } else {
            EventType::CollectedDataUpdated
        };
        let d = self.collected_data_updated(&profile);
        push(self, collected, d);
        let d = self.product_status(&profile, "APPLIED");
        push(self, EventType::ProductStatusChanged, d);
        let d = self.badge(&profile, "WAITING_ON_CHECKS");
        push(self, EventType::ProductBadgeChanged, d);
        let checks = self.rng.gen_range(1..=3);
        let mut clean = true;
        for _ in 0..checks {
            let result = if self.rng.gen_bool(0.75) {
                "Pass"
            } else {
                self.pick(&CHECK_RESULTS)
            };
            clean &= matches!(result, "Pass" | "2+2" | "1+1");
            let d = self.check_completed(&profile, result);
            push(self, EventType::CheckCompleted, d);
        }
        if self.rng.gen_bool(0.5) {
            let d = self.badge(&profile, "RECALCULATING_RISK");
            push(self, EventType::ProductBadgeChanged, d);
            let level = if clean {
                "LOW"
            } else {
                self.pick(&RISK_LEVELS)
            };
            let d = self.risk(&profile, level);
            push(self, EventType::RiskLevelChanged, d);
            let d = self.data(&EventType::RiskScoreChanged, &profile);
            push(self, EventType::RiskScoreChanged, d);
        }
        if !clean {
            let d = self.data(&EventType::EventsCreated, &profile);
            push(self, EventType::EventsCreated, d);
            if self.rng.gen_bool(0.5) {
                let d = self.data(&EventType::EventsUpdated, &profile);
                push(self, EventType::EventsUpdated, d);
            }
        }
        let d = self.product_status(&profile, "IN_REVIEW");
        push(self, EventType::ProductStatusChanged, d);
        if !clean || self.rng.gen_bool(0.3) {
            let d = self.badge(&profile, "REQUIRES_MANUAL_TASK_COMPLETION");
            push(self, EventType::ProductBadgeChanged, d);
            let task = self.task("INCOMPLETE");
            let d = self.with_base(&profile, json!({"task": task}));
            push(self, EventType::TaskCreated, d);
            if self.rng.gen_bool(0.3) {
                let d = self.data(&EventType::CustomerRequestChanged, &profile);
                push(self, EventType::CustomerRequestChanged, d);
            }
            let d = self.manual_action_for(&profile, &task);
            push(self, EventType::ManualActionRequired, d);
            if self.rng.gen_bool(0.3) {
                let d = self.form_state(&profile, "SUBMITTED");
                push(self, EventType::FormStateChanged, d);
            }
            let state = if clean || self.rng.gen_bool(0.5) {
                "COMPLETED_PASS"
            } else {
                "COMPLETED_FAIL"
            };
            clean = state == "COMPLETED_PASS";
            let d = self.task_moved(&profile, &task, state);
            push(self, EventType::TaskStateChanged, d);
            if self.rng.gen_bool(0.1) {
                let d = self.data(&EventType::TaskIsCompleteChanged, &profile);
                push(self, EventType::TaskIsCompleteChanged, d);
            }
        }
        if self.rng.gen_bool(0.1) {
            let d = self.data(&EventType::CollectionStepsCompleted, &profile);
            push(self, EventType::CollectionStepsCompleted, d);
        }
        let d = self.badge(&profile, "READY_FOR_DECISION");
        push(self, EventType::ProductBadgeChanged, d);
        let decision = if clean { "APPROVED" } else { "REJECTED" };
        let d = self.product_status(&profile, decision);
        push(self, EventType::ProductStatusChanged, d);
        let d = self.badge(&profile, "DECIDED");
        push(self, EventType::ProductBadgeChanged, d);
        if !clean && self.rng.gen_bool(0.2) {
            let status = self.pick(&["SUSPENDED", "BANNED"]);
            let d = self.with_base(&profile, json!({"new_status": status}));
            push(self, EventType::ProfileStatusChanged, d);
        }
        out
    }

    /// `count` webhooks from overlapping profile lifecycles, in trigger order, the last one
    /// triggered at `end` (so none is in the future of a clock standing at `end`).
    pub fn mix(&mut self, count: usize, end: SystemTime) -> Vec<Webhook> {
        let mut drafts: Vec<(u64, EventType, Value)> = Vec::with_capacity(count);
        let mut start = 0u64;
        while drafts.len() < count {
            for (offset, event, data) in self.lifecycle_events() {
                drafts.push((start + offset, event, data));
            }
            start += self.rng.gen_range(0..=20);
        }
        // Stable: equal times keep each profile's own order.
        drafts.sort_by_key(|(t, _, _)| *t);
        drafts.truncate(count);
        let last = drafts.last().map(|(t, _, _)| *t).unwrap_or(0);
        let end_secs = unix_seconds(end);
        drafts
            .into_iter()
            .map(|(t, event, data)| {
                let timestamp = end_secs.saturating_sub(last - t);
                Webhook {
                    id: self.mint(timestamp),
                    event,
                    timestamp,
                    data,
                }
            })
            .collect()
    }

    /// `count` webhooks of one `event`, all triggered at `at`, each about a fresh profile.
    pub fn many(&mut self, event: &EventType, count: usize, at: SystemTime) -> Vec<Webhook> {
        (0..count)
            .map(|_| self.webhook(event.clone(), at))
            .collect()
    }
}
