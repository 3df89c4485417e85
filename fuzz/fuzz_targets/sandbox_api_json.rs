//! The sandbox API's JSON bodies: `PUT /api/config` and `POST /api/events`, parsed, validated
//! and applied (settings computed, webhooks generated) from arbitrary bytes. A bad body must be
//! an `Err` (answered 400), never a panic that takes the sandbox down.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passfort_sender_sim::sandbox::{ConfigUpdate, TriggerRequest};
use passfort_sender_sim::{AccountSettings, Generator, Secret};
use std::time::{Duration, UNIX_EPOCH};

fuzz_target!(|data: &[u8]| {
    if let Ok(update) = ConfigUpdate::parse(data) {
        let current = AccountSettings::new("http://127.0.0.1:9/hooks", Secret::new("s"));
        let _ = update.apply_to(&current);
    }
    if let Ok(request) = TriggerRequest::parse(data) {
        if let Ok(plan) = request.validate() {
            let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            let webhooks = plan.webhooks(&mut Generator::new(7), at);
            for webhook in &webhooks {
                let _ = serde_json::to_string(webhook);
            }
        }
    }
});
