//! HTTP requests of the webhook and the ping, through ureq: a 10 s limit per attempt, three
//! attempts with backoff (1 s, then 2 s), an answer other than 2xx counted as a failure.

use std::time::{Duration, Instant, SystemTime};

/// How long one attempt may take, from connecting to the end of the answer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The pauses before the second and the third attempt.
pub const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// How a request went, over all its attempts.
#[derive(Debug, Clone)]
pub struct Sent {
    /// What was asked: `POST http://…`.
    pub what: String,
    pub attempts: u32,
    /// Why each failed attempt failed, oldest first.
    pub failures: Vec<String>,
    pub ok: bool,
    pub started: SystemTime,
    pub took: Duration,
}

/// A request to send: method, URL, and a body with its content type.
pub struct Request<'a> {
    pub method: &'static str,
    pub url: String,
    pub body: Option<(&'static str, &'a str)>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(ATTEMPT_TIMEOUT))
        // A 500 is an answer to try again, not an error with no status.
        .http_status_as_error(false)
        .user_agent(concat!("orchestrate/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// One attempt: the status of a 2xx answer, else why not.
fn attempt(agent: &ureq::Agent, r: &Request<'_>) -> Result<u16, String> {
    let answer = match (r.method, r.body) {
        ("POST", Some((kind, body))) => agent
            .post(&r.url)
            .header("Content-Type", kind)
            .send(body.as_bytes()),
        ("POST", None) => agent.post(&r.url).send_empty(),
        _ => agent.get(&r.url).call(),
    };
    match answer {
        Ok(resp) if resp.status().is_success() => Ok(resp.status().as_u16()),
        Ok(resp) => Err(format!(
            "the server answered HTTP {}",
            resp.status().as_u16()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends `r`, trying again after a failure while attempts are left.
pub fn send(r: &Request<'_>) -> Sent {
    let agent = agent();
    let started = SystemTime::now();
    let t0 = Instant::now();
    let mut sent = Sent {
        what: format!("{} {}", r.method, r.url),
        attempts: 0,
        failures: Vec::new(),
        ok: false,
        started,
        took: Duration::ZERO,
    };
    for pause in std::iter::once(None).chain(BACKOFF.iter().map(Some)) {
        if let Some(p) = pause {
            std::thread::sleep(*p);
        }
        sent.attempts += 1;
        match attempt(&agent, r) {
            Ok(_) => {
                sent.ok = true;
                break;
            }
            Err(why) => sent.failures.push(why),
        }
    }
    sent.took = t0.elapsed();
    sent
}

/// `url` with `/suffix` (healthchecks' `/start`, `/fail`), without doubling a slash.
pub fn join(url: &str, suffix: &str) -> String {
    format!("{}/{suffix}", url.trim_end_matches('/'))
}
