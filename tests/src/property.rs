//! The six guarantees of issue 4, stated over what a run observed, and the report printed when
//! one of them does not hold.
//!
//! 1. every webhook the simulator considers delivered is handed to the handler exactly once;
//! 2. the handler sees them in the order the simulator queued them;
//! 3. nothing the receiver answered 200 for is ever lost (it is in the store when the answer
//!    leaves, and handed on in the end); a request not answered 200 stores nothing;
//! 4. no stored row, log line or handler input contains the secret (nor a forger's secret);
//! 5. every answer the receiver gave left inside the time limit the simulator enforces;
//! 6. the simulator's status queue ends `Empty`, and the receiver's status shows no backlog.
//!
//! Plus what the properties rest on: forged requests are never answered 200 and never stored,
//! and the handler gets exactly the webhook PassFort sent (minus the secret), typed when its
//! event is known.

use crate::case::Fault;
use crate::leak;
use crate::log_capture::CANARY;
use crate::run::Observed;
use passfort_receiver::status::QueueState as ReceiverQueue;
use passfort_sender_sim::{EventType, QueueState};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// What a passing run covered, for the suite's own coverage checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Webhooks queued and handled.
    pub webhooks: usize,
    /// Attempts of the simulator.
    pub attempts: usize,
    /// Receiver restarts.
    pub restarts: usize,
    /// Answers 200 the simulator never saw (lost, late, crash).
    pub lost_200s: usize,
    /// 503 answers.
    pub unavailable: usize,
    /// Forged requests refused.
    pub forgeries: usize,
    /// Handler failures and panics.
    pub handler_failures: usize,
    /// Attempts the simulator saw refused (receiver down).
    pub refused: usize,
    /// Attempts that got no answer inside the limit.
    pub timed_out: usize,
    /// Requests the receiver got a second copy of (the network delivered them twice).
    pub duplicates: usize,
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// "turn 3", or "after the last turn".
fn turn_text(turn: Option<usize>) -> String {
    match turn {
        Some(turn) => format!("turn {turn}"),
        None => "after the last turn".into(),
    }
}

fn ids_text(ids: &[String]) -> String {
    let shown: Vec<&str> = ids.iter().map(|id| short(id)).collect();
    format!("[{}]", shown.join(" "))
}

/// Checks every property; on a breach, the error is the full report (breaches first, then the
/// attempt log, the receiver's answers, the forgeries and the handler calls).
pub fn check(observed: &Observed) -> Result<Coverage, String> {
    let breaches = breaches(observed);
    if breaches.is_empty() {
        Ok(coverage(observed))
    } else {
        Err(report(observed, &breaches))
    }
}

fn coverage(o: &Observed) -> Coverage {
    Coverage {
        webhooks: o.queued.len(),
        attempts: o.attempts.len(),
        restarts: o.starts.saturating_sub(1),
        lost_200s: o
            .attempts
            .iter()
            .filter(|m| {
                !m.attempt.outcome.is_delivered()
                    && o.exchanges.iter().any(|e| {
                        e.status == 200
                            && m.turn == e.turn
                            && e.ids.first().map(String::as_str)
                                == m.attempt
                                    .webhook_ids
                                    .first()
                                    .map(|id| id.to_string())
                                    .as_deref()
                    })
            })
            .count(),
        unavailable: o.exchanges.iter().filter(|e| e.status == 503).count(),
        forgeries: o.forged.len(),
        handler_failures: o
            .calls
            .iter()
            .filter(|c| c.outcome != crate::handler::CallOutcome::Handled)
            .count(),
        refused: o
            .attempts
            .iter()
            .filter(|m| m.attempt.outcome == passfort_sender_sim::Outcome::Refused)
            .count(),
        timed_out: o
            .attempts
            .iter()
            .filter(|m| m.attempt.outcome == passfort_sender_sim::Outcome::TimedOut)
            .count(),
        duplicates: o.exchanges.iter().filter(|e| e.copy > 0).count(),
    }
}

fn breaches(o: &Observed) -> Vec<String> {
    let mut out: Vec<String> = o.problems.iter().map(|p| format!("run: {p}")).collect();
    let sent: Vec<String> = o.queued.iter().map(|(w, _)| w.id.to_string()).collect();
    let sent_set: HashSet<&str> = sent.iter().map(String::as_str).collect();
    let handled: Vec<String> = o.handled.iter().map(|j| j.webhook.id.clone()).collect();

    // 1. exactly once.
    let mut times: HashMap<&str, usize> = HashMap::new();
    for id in &handled {
        *times.entry(id.as_str()).or_default() += 1;
    }
    for id in &sent {
        match times.get(id.as_str()).copied().unwrap_or(0) {
            1 => {}
            0 => out.push(format!(
                "1 exactly once: {} was delivered to the receiver but never handed to the handler",
                short(id)
            )),
            n => out.push(format!(
                "1 exactly once: {} was handed to the handler {n} times",
                short(id)
            )),
        }
    }
    for id in &handled {
        if !sent_set.contains(id.as_str()) {
            out.push(format!(
                "1 exactly once: the handler was given {}, which PassFort never sent (forged?)",
                short(id)
            ));
        }
    }

    // 2. order.
    let in_order: Vec<&String> = handled
        .iter()
        .filter(|id| sent_set.contains(id.as_str()))
        .collect();
    let position: HashMap<&str, usize> = sent
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for pair in in_order.windows(2) {
        if position[pair[0].as_str()] > position[pair[1].as_str()] {
            out.push(format!(
                "2 order: the handler got {} (queued #{}) before {} (queued #{})",
                short(pair[0]),
                position[pair[0].as_str()],
                short(pair[1]),
                position[pair[1].as_str()]
            ));
            break;
        }
    }
    // No attempt at a webhook while an earlier one is still waiting.
    let mut done: HashSet<&str> = HashSet::new();
    for call in &o.calls {
        if let Some(&p) = position.get(call.id.as_str()) {
            if let Some(waiting) = sent[..p].iter().find(|id| !done.contains(id.as_str())) {
                out.push(format!(
                    "2 order: the handler was called with {} while {} (queued earlier) was not handled yet",
                    short(&call.id),
                    short(waiting)
                ));
                break;
            }
        }
        if call.outcome == crate::handler::CallOutcome::Handled {
            done.insert(call.id.as_str());
        }
    }

    // The handler gets what PassFort sent, minus the secret, typed when known.
    let by_id: HashMap<String, &passfort_sender_sim::Webhook> = o
        .queued
        .iter()
        .map(|(w, _)| (w.id.to_string(), w))
        .collect();
    for job in &o.handled {
        let Some(webhook) = by_id.get(&job.webhook.id) else {
            continue;
        };
        let mut expected = webhook.to_json("");
        if let Some(object) = expected.as_object_mut() {
            object.remove("secret");
        }
        if job.webhook.to_json() != expected {
            out.push(format!(
                "content: the handler got {} with content other than PassFort sent: {} instead of {}",
                short(&job.webhook.id),
                job.webhook.to_json(),
                expected
            ));
        }
        let unknown_expected = matches!(webhook.event, EventType::Other(_));
        if job.event.is_unknown() != unknown_expected || job.event.name() != webhook.event.as_str()
        {
            out.push(format!(
                "content: {} ({}) was typed as {:?}",
                short(&job.webhook.id),
                webhook.event,
                job.event
            ));
        }
    }

    // 3. answered 200 ⇒ on disk when the answer left, and handed on; not 200 ⇒ nothing stored.
    for e in &o.exchanges {
        match (&e.stored_before, &e.stored_after) {
            (Ok(before), Ok(after)) => {
                if e.status == 200 {
                    let missing: Vec<String> = e
                        .ids
                        .iter()
                        .filter(|id| !after.contains(id))
                        .cloned()
                        .collect();
                    if !missing.is_empty() {
                        out.push(format!(
                            "3 durability: {} answered 200 for {} while {} was not in the store",
                            turn_text(e.turn),
                            ids_text(&e.ids),
                            ids_text(&missing)
                        ));
                    }
                } else if before != after {
                    out.push(format!(
                        "3 nothing stored on failure: {} answered {} for {} but the store changed from {} to {} webhooks",
                        turn_text(e.turn),
                        e.status,
                        ids_text(&e.ids),
                        before.len(),
                        after.len()
                    ));
                }
            }
            (b, a) => out.push(format!(
                "run: the store could not be read around {}: {:?} / {:?}",
                turn_text(e.turn),
                b.as_ref().err(),
                a.as_ref().err()
            )),
        }
        if e.status == 200 {
            for id in &e.ids {
                if !handled.contains(id) {
                    out.push(format!(
                        "3 durability: {} was answered 200 ({}) and never handed on",
                        short(id),
                        turn_text(e.turn)
                    ));
                }
            }
        }
    }
    match &o.entries {
        Ok(entries) => {
            let stored: Vec<&str> = entries.iter().map(|e| e.webhook.id.as_str()).collect();
            let expected: Vec<&str> = sent.iter().map(String::as_str).collect();
            if stored != expected {
                out.push(format!(
                    "3 store: the store holds {} webhooks {:?}, PassFort sent {} {:?}",
                    stored.len(),
                    stored.iter().map(|id| short(id)).collect::<Vec<_>>(),
                    expected.len(),
                    expected.iter().map(|id| short(id)).collect::<Vec<_>>()
                ));
            }
        }
        Err(e) => out.push(format!("run: the store could not be read at the end: {e}")),
    }

    // Forgeries: never 200, never stored.
    for f in &o.forged {
        if f.status == 200 {
            out.push(format!(
                "forgery: turn {} {:?} was answered 200",
                f.turn, f.forgery
            ));
        }
        if let (Ok(before), Ok(after)) = (&f.stored_before, &f.stored_after) {
            if before != after {
                out.push(format!(
                    "forgery: turn {} {:?} changed the store ({} → {} webhooks)",
                    f.turn,
                    f.forgery,
                    before.len(),
                    after.len()
                ));
            }
        }
    }

    // 4. secrets.
    let mut needles = vec![o.secret.clone()];
    needles.extend(o.forged_secrets.iter().cloned());
    let name = |i: usize| {
        if i == 0 {
            "the shared secret".to_owned()
        } else {
            format!("forger's secret #{}", i - 1)
        }
    };
    let mut scanned_an_id = sent.is_empty();
    for (path, bytes) in &o.stored_files {
        scanned_an_id |= sent.iter().any(|id| leak::contains(bytes, id));
        for l in leak::find(&path.display().to_string(), bytes, &needles) {
            out.push(format!(
                "4 secret: {} is stored in {} at byte {}",
                name(l.needle),
                l.place,
                l.offset
            ));
        }
    }
    if !scanned_an_id {
        out.push(format!(
            "4 secret: the database files ({}) hold none of the webhook ids, so the scan proves nothing",
            o.stored_files.len()
        ));
    }
    match &o.logs {
        Ok(logs) => {
            if !logs.contains(CANARY) {
                out.push("4 secret: the log capture did not capture its canary".into());
            }
            for l in leak::find("the log", logs.as_bytes(), &needles) {
                let line = logs[..l.offset].lines().count();
                out.push(format!(
                    "4 secret: {} is in log line {line}",
                    name(l.needle)
                ));
            }
        }
        Err(e) => out.push(format!("4 secret: logs were not captured: {e}")),
    }
    for (i, call) in o.calls.iter().enumerate() {
        for l in leak::find("handler input", call.input.as_bytes(), &needles) {
            out.push(format!(
                "4 secret: {} is in handler input #{i} ({})",
                name(l.needle),
                short(&call.id)
            ));
        }
    }

    // 5. inside the limit.
    for e in &o.exchanges {
        if e.latency > o.limit {
            out.push(format!(
                "5 time limit: {} was answered {} after {:?}, past the simulator's {:?}",
                turn_text(e.turn),
                e.status,
                e.latency,
                o.limit
            ));
        }
    }
    for m in &o.attempts {
        let late_by_fault = matches!(m.fault, Fault::AnswerLate | Fault::Hang);
        if !late_by_fault
            && matches!(
                m.attempt.outcome,
                passfort_sender_sim::Outcome::Late | passfort_sender_sim::Outcome::TimedOut
            )
        {
            out.push(format!(
                "5 time limit: attempt #{} ({:?}) ended {:?} without a fault that delays answers",
                m.attempt.seq, m.fault, m.attempt.outcome
            ));
        }
    }

    // 6. both queues empty.
    if o.sim_status.queue != QueueState::Empty {
        out.push(format!(
            "6 status: the simulator's queue ends {:?}, not Empty",
            o.sim_status.queue
        ));
    }
    match &o.receiver_status {
        Ok(report) => {
            if report.queue != ReceiverQueue::Empty
                || report.status.queue_depth != 0
                || report.status.dead_letters != 0
            {
                out.push(format!(
                    "6 status: the receiver ends {:?} with {} waiting and {} dead letters",
                    report.queue, report.status.queue_depth, report.status.dead_letters
                ));
            }
        }
        Err(e) => out.push(format!("6 status: unreadable: {e}")),
    }
    out
}

/// The failure report: breaches, then the logs of the run.
pub fn report(o: &Observed, breaches: &[String]) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "{} guarantee(s) broken:", breaches.len());
    for b in breaches {
        let _ = writeln!(r, "  - {b}");
    }
    let start = o.attempts.first().map(|m| m.attempt.at);
    let _ = writeln!(r, "\nqueued by PassFort (in order):");
    for (i, (w, plan)) in o.queued.iter().enumerate() {
        let _ = writeln!(
            r,
            "  #{i:<3} {} {} handler {:?}",
            short(&w.id.to_string()),
            w.event,
            plan
        );
    }
    let _ = writeln!(r, "\nattempt log of the simulator:");
    for m in &o.attempts {
        let a = &m.attempt;
        let at = start
            .and_then(|s| a.at.duration_since(s).ok())
            .map(|d| format!("+{:.3}s", d.as_secs_f64()))
            .unwrap_or_default();
        let ids: Vec<String> = a.webhook_ids.iter().map(|id| id.to_string()).collect();
        let _ = writeln!(
            r,
            "  #{:<3} {at:>12} {:<20} {:<28} try {} {} → {:?} {} {}",
            a.seq,
            turn_text(m.turn),
            format!("{:?}", m.fault),
            a.try_number,
            ids_text(&ids),
            a.outcome,
            a.status.map(|s| s.to_string()).unwrap_or_default(),
            a.error.clone().unwrap_or_default()
        );
    }
    let _ = writeln!(r, "\nanswers the receiver gave:");
    for e in &o.exchanges {
        let _ = writeln!(
            r,
            "  {:<20} copy {} {:<28} {} {} after {:?}; store {} → {}",
            turn_text(e.turn),
            e.copy,
            format!("{:?}", e.fault),
            ids_text(&e.ids),
            e.status,
            e.latency,
            e.stored_before.as_ref().map(Vec::len).unwrap_or(0),
            e.stored_after.as_ref().map(Vec::len).unwrap_or(0)
        );
    }
    if !o.forged.is_empty() {
        let _ = writeln!(r, "\nforged requests:");
        for f in &o.forged {
            let _ = writeln!(
                r,
                "  turn {} {:?} {} → {}",
                f.turn,
                f.forgery,
                ids_text(&f.ids),
                f.status
            );
        }
    }
    let _ = writeln!(r, "\nhandler calls:");
    for c in &o.calls {
        let _ = writeln!(
            r,
            "  {} attempt {} {:?}",
            short(&c.id),
            c.attempt,
            c.outcome
        );
    }
    let _ = writeln!(
        r,
        "\nreceiver started {} time(s); simulator status: {:?}",
        o.starts, o.sim_status.queue
    );
    r
}
