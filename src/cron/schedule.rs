//! When a cron schedule is due, in local time as cron keeps it, through croner (Vixie cron's
//! rules: day of month and day of week are or-ed when both are restricted).

use std::str::FromStr;
use std::time::SystemTime;

use chrono::{DateTime, Local};

/// A parsed schedule; `@reboot` has no times.
pub struct Schedule(Option<croner::Cron>);

/// At most this many due times are listed between two instants (a minutely schedule over a
/// month is 43,200 of them: past some, the count is what matters).
const MAX_DUE: usize = 2000;

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let e = expr.trim();
        if e.eq_ignore_ascii_case("@reboot") {
            return Ok(Schedule(None));
        }
        let e = if e.eq_ignore_ascii_case("@midnight") {
            "@daily"
        } else {
            e
        };
        croner::Cron::from_str(e)
            .map(|c| Schedule(Some(c)))
            .map_err(|err| format!("`{e}`: {err}"))
    }

    /// The first due time after `t`.
    pub fn next_after(&self, t: SystemTime) -> Option<SystemTime> {
        let cron = self.0.as_ref()?;
        let t: DateTime<Local> = t.into();
        cron.find_next_occurrence(&t, false).ok().map(Into::into)
    }

    /// The due times after `from` and up to `to`, oldest first: the latest `MAX_DUE` of them.
    pub fn due_between(&self, from: SystemTime, to: SystemTime) -> Vec<SystemTime> {
        let Some(cron) = self.0.as_ref() else {
            return Vec::new();
        };
        let from: DateTime<Local> = from.into();
        let to: DateTime<Local> = to.into();
        let mut due: std::collections::VecDeque<SystemTime> = std::collections::VecDeque::new();
        for t in cron.iter_after(from).take_while(|t| *t <= to) {
            if due.len() == MAX_DUE {
                due.pop_front();
            }
            due.push_back(t.into());
        }
        due.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn hourly_is_due_every_hour() {
        let s = Schedule::parse("0 * * * *").unwrap();
        let now = SystemTime::now();
        let due = s.due_between(now - Duration::from_secs(3 * 3600), now);
        assert!((2..=3).contains(&due.len()), "{due:?}");
        let next = s.next_after(now).unwrap();
        assert!(next > now && next <= now + Duration::from_secs(3600));
        assert!(
            Schedule::parse("@reboot")
                .unwrap()
                .next_after(now)
                .is_none()
        );
        assert!(
            Schedule::parse("@midnight")
                .unwrap()
                .next_after(now)
                .is_some()
        );
    }
}
