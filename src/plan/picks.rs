//! Which jobs of a lazy fan-out a narrowed run keeps (`--only`, `--skip`, `--resume`,
//! `rerun`): one bit per job of the fan, so that choosing among 10^7 jobs costs 1.25 MB and
//! makes none of them.

use super::{Fan, FanSource};

/// The jobs of a fan that run, by their number `k` in the fan; past the bits, `beyond` says
/// (a stream's length is not known when it is chosen from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picks {
    bits: Vec<u64>,
    beyond: bool,
}

impl Picks {
    /// Every job.
    pub fn all() -> Picks {
        Picks {
            bits: Vec::new(),
            beyond: true,
        }
    }

    /// No job.
    pub fn none() -> Picks {
        Picks {
            bits: Vec::new(),
            beyond: false,
        }
    }

    pub fn keeps(&self, k: usize) -> bool {
        match self.bits.get(k / 64) {
            Some(w) => w >> (k % 64) & 1 == 1,
            None => self.beyond,
        }
    }

    pub fn set(&mut self, k: usize, keep: bool) {
        if self.keeps(k) == keep {
            return;
        }
        let fill = if self.beyond { u64::MAX } else { 0 };
        if self.bits.len() <= k / 64 {
            self.bits.resize(k / 64 + 1, fill);
        }
        self.bits[k / 64] ^= 1 << (k % 64);
    }

    /// The first job kept at `k` or after, before `end` if the fan's length is known.
    pub fn next_from(&self, k: usize, end: Option<usize>) -> Option<usize> {
        let end = end.unwrap_or(usize::MAX);
        let mut w = k / 64;
        let mut word = self.bits.get(w).map(|b| b & (u64::MAX << (k % 64)));
        loop {
            match word {
                None => return (self.beyond && k.max(w * 64) < end).then(|| k.max(w * 64)),
                Some(0) => {}
                Some(b) => {
                    let at = w * 64 + b.trailing_zeros() as usize;
                    return (at < end).then_some(at);
                }
            }
            w += 1;
            if w * 64 >= end {
                return None;
            }
            word = self.bits.get(w).copied();
        }
    }

    /// How many of jobs `0..n` are kept.
    pub fn count(&self, n: usize) -> usize {
        let full = n / 64;
        let words = self.bits.iter().take(full);
        let mut c: usize = words.map(|w| w.count_ones() as usize).sum();
        if full > self.bits.len() {
            c += if self.beyond {
                (full - self.bits.len()) * 64
            } else {
                0
            };
        }
        c + (full * 64..n).filter(|&k| self.keeps(k)).count()
    }

    /// Whether job `k` or any after it is kept (a stream's: read or not).
    pub fn any_from(&self, k: usize) -> bool {
        self.next_from(k, None).is_some()
    }

    /// The jobs both keep.
    pub fn and(&self, other: &Picks) -> Picks {
        let fill = |p: &Picks| if p.beyond { u64::MAX } else { 0 };
        let n = self.bits.len().max(other.bits.len());
        let word = |p: &Picks, w: usize| p.bits.get(w).copied().unwrap_or(fill(p));
        Picks {
            bits: (0..n).map(|w| word(self, w) & word(other, w)).collect(),
            beyond: self.beyond && other.beyond,
        }
    }

    /// Every job that this keeps, the others not.
    pub fn inverted(&self) -> Picks {
        Picks {
            bits: self.bits.iter().map(|w| !w).collect(),
            beyond: !self.beyond,
        }
    }
}

impl Fan {
    /// Whether job `k` of the fan runs in this plan.
    pub fn kept(&self, k: usize) -> bool {
        self.count.is_none_or(|n| k < n) && self.picks.as_ref().is_none_or(|p| p.keeps(k))
    }

    /// The first job of the fan at `k` or after that runs in this plan.
    pub fn next_kept(&self, k: usize) -> Option<usize> {
        match &self.picks {
            Some(p) => p.next_from(k, self.count),
            None => self.count.is_none_or(|n| k < n).then_some(k),
        }
    }

    /// How many of its jobs run in this plan; `None` for a stream.
    pub fn len(&self) -> Option<usize> {
        let n = self.count?;
        Some(self.picks.as_ref().map_or(n, |p| p.count(n)))
    }

    /// Whether no job of the fan runs in this plan.
    pub fn is_empty(&self) -> bool {
        self.next_kept(0).is_none()
    }

    /// The number `k` of the fan's job named `name`, if it names one (`base[item]` for a
    /// range, `base[k]` for a file).
    pub fn k_of(&self, name: &str) -> Option<usize> {
        let inner = name
            .strip_prefix(self.base.as_str())?
            .strip_prefix('[')?
            .strip_suffix(']')?;
        let v: i64 = inner.parse().ok()?;
        if v.to_string() != inner {
            return None;
        }
        let k = match self.source {
            FanSource::Range { start, step } => {
                let off = v.checked_sub(start)?;
                if off % step != 0 || off / step < 0 {
                    return None;
                }
                usize::try_from(off / step).ok()?
            }
            FanSource::File(_) => usize::try_from(v).ok()?,
        };
        self.count.is_none_or(|n| k < n).then_some(k)
    }

    /// The jobs of the fan that run in this plan, as picks (its length aside).
    pub(super) fn picks_or_all(&self) -> Picks {
        self.picks.as_deref().cloned().unwrap_or_else(Picks::all)
    }

    /// This fan with job `k` kept or not.
    pub(super) fn pick(&mut self, k: usize, keep: bool) {
        let p = self
            .picks
            .get_or_insert_with(|| std::sync::Arc::new(Picks::all()));
        std::sync::Arc::make_mut(p).set(k, keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_find_the_next_kept_job_and_count_them() {
        let mut p = Picks::all();
        p.set(3, false);
        p.set(130, false);
        assert!(!p.keeps(3) && p.keeps(4) && p.keeps(10_000));
        assert_eq!(p.next_from(3, None), Some(4));
        assert_eq!(p.next_from(130, Some(131)), None);
        assert_eq!(p.next_from(130, None), Some(131));
        assert_eq!(p.count(200), 198);
        let mut q = Picks::none();
        q.set(5, true);
        q.set(700, true);
        assert_eq!(q.next_from(0, None), Some(5));
        assert_eq!(q.next_from(6, None), Some(700));
        assert_eq!(q.next_from(701, None), None);
        assert_eq!(q.count(1000), 2);
        assert_eq!(q.inverted().count(1000), 998);
        assert_eq!(p.and(&q).count(1000), 2);
        assert_eq!(q.inverted().and(&p).count(1000), 996);
    }
}
