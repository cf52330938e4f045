//! The other side of `wrap`'s script: the control lines taken out of a remote client's
//! stderr, and the client's own messages told apart from the job's stderr.
//!
//! The stream has three parts. Before the start line everything is the client's (srun's
//! allocation errors and queue messages, ssh's warnings, a login's chatter): it is kept for the
//! record, never passed on as the job's stderr. Between the start and the exit line the stream
//! is the job's, except, on Slurm, slurmstepd's banner for our step (`*** STEP 9.0 ... CANCELLED
//! ... ***`) and srun's messages about stopping it. After the exit line, srun's lines are
//! srun's. Lines of the client become notes (or the error, when the job never started).

/// Most bytes kept of what the client wrote before the job started (its own error messages).
const EARLY_MAX: usize = 4096;
/// The end of a partial line held back to see whether it becomes a control line (from a
/// marker, or a line that may be srun's) grows no longer than this.
const HOLD_MAX: usize = 1024;

/// srun's lines, inside the job's part of the stream, that are about stopping the step or
/// losing it (its node failed under it).
const SRUN_STOPPING: [&str; 5] = [
    "srun: forcing job termination",
    "srun: Job step aborted",
    "srun: Force Terminated",
    "srun: error: Timed out waiting for job step",
    "srun: error: Node failure on ",
];

/// What the wrapper reported.
#[derive(Debug, Default, Clone)]
pub struct Control {
    /// The wrapper's pid, which leads the job's process group on the remote side.
    pub pgid: Option<u32>,
    pub slurm_job_id: Option<String>,
    /// The step of `slurm_job_id` the job runs as (a step of the run's allocation is
    /// cancelled alone, never the allocation).
    pub slurm_step: Option<String>,
    pub node: Option<String>,
    /// The job's exact exit status.
    pub exit: Option<i32>,
    /// What the client wrote on stderr before the job started (its own messages).
    pub early: Vec<u8>,
    pub started: bool,
    /// The Slurm job id srun said is waiting in the queue (`srun: job N queued ...`).
    pub queued: Option<String>,
    /// The client's lines once the job started (slurmstepd's banner, srun's stop messages).
    pub late: Vec<String>,
}

impl Control {
    /// The client's early lines, without the queue messages `queued` and the pending note
    /// already tell, and srun's word on the task's end, which the status tells (srun may
    /// write it before it has passed on the task's last output, so it is found anywhere).
    fn early_lines(&self) -> Vec<&str> {
        let text = std::str::from_utf8(&self.early).unwrap_or_default();
        text.lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty() && queue_message(l).is_none() && !task_end(l) && !step_wait(l)
            })
            .collect()
    }

    /// The client's early stderr as one line, for an error message.
    pub fn early_text(&self) -> String {
        let lines: Vec<&str> = self
            .early_lines()
            .into_iter()
            .map(|l| l.strip_prefix("srun: error: ").unwrap_or(l))
            .collect();
        lines.join("; ")
    }

    /// srun said the job's node failed under it (`srun: error: Node failure on n2`).
    pub fn node_failed(&self) -> bool {
        self.late
            .iter()
            .any(|l| l.starts_with("srun: error: Node failure on "))
    }

    /// What the client said, for the notes of a job that started.
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self.early_lines().into_iter().map(str::to_string).collect();
        for l in &self.late {
            if !notes.contains(l) {
                notes.push(l.clone());
            }
        }
        notes
    }
}

/// `srun: error: NODE: task N: Exited with exit code 3` (or `Killed`, ...).
fn task_end(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("srun: error: ") else {
        return false;
    };
    rest.split_once(": task ").is_some_and(|(node, task)| {
        !node.contains(' ')
            && task
                .split_once(": ")
                .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
    })
}

/// srun waiting for CPUs of an allocation to come free for a step (`srun: Job 5 step creation
/// temporarily disabled, retrying (Requested nodes are busy)`, then `srun: Step created for job
/// 5`): the wait of a job that has not started, not the job's or an error.
fn step_wait(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("srun: ") else {
        return false;
    };
    rest.starts_with("Step created for job ")
        || (rest.starts_with("Job ") && rest.contains(" step creation "))
}

/// The job id of `srun: job N queued and waiting for resources` (or `... has been allocated`).
fn queue_message(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("srun: job ")?;
    let (id, what) = rest.split_once(' ')?;
    (what.starts_with("queued") || what.starts_with("has been allocated")).then_some(id)
}

/// Removes control lines and the client's messages from a stderr byte stream, also across
/// chunk boundaries.
pub struct ControlFilter {
    marker: Vec<u8>,
    carry: Vec<u8>,
    at_line_start: bool,
    pub control: Control,
}

impl ControlFilter {
    pub fn new(marker: &str) -> Self {
        ControlFilter {
            marker: marker.as_bytes().to_vec(),
            carry: Vec::new(),
            at_line_start: true,
            control: Control::default(),
        }
    }

    /// The bytes of `chunk` that belong to the job's stderr.
    pub fn feed(&mut self, chunk: &[u8], last: bool) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(buf.len());
        let mut p = 0;
        while p < buf.len() {
            let rest = &buf[p..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    self.piece(&rest[..=nl], &mut out);
                    p += nl + 1;
                }
                None => {
                    match self.hold_from(rest).filter(|_| !last) {
                        Some(at) => {
                            if at > 0 {
                                self.piece(&rest[..at], &mut out);
                            }
                            self.carry = rest[at..].to_vec();
                        }
                        None => self.piece(rest, &mut out),
                    }
                    p = buf.len();
                }
            }
        }
        out
    }

    /// Where the end of a partial line may still turn into something that is not the job's
    /// output, if it may: from a marker, whole or begun (what is before it is the job's, however
    /// long the line), or the whole line when it may be srun's or slurmstepd's.
    fn hold_from(&self, rest: &[u8]) -> Option<usize> {
        if let Some(at) = marker_from(rest, &self.marker) {
            return Some(at);
        }
        let client = self.slurm_started()
            && self.at_line_start
            && ["srun: ".as_bytes(), b"slurmstepd"].iter().any(|w| {
                let n = w.len().min(rest.len());
                rest[..n] == w[..n]
            });
        (client && rest.len() <= HOLD_MAX).then_some(0)
    }

    /// A line (with its newline) or the partial line at the end of the stream.
    fn piece(&mut self, seg: &[u8], out: &mut Vec<u8>) {
        let line_start = self.at_line_start;
        self.at_line_start = seg.ends_with(b"\n");
        if let Some(i) = find(seg, &self.marker)
            && seg.ends_with(b"\n")
        {
            self.text(&seg[..i], line_start, out);
            let body = String::from_utf8_lossy(&seg[i + self.marker.len()..seg.len() - 1]);
            self.control_line(&body);
            return;
        }
        self.text(seg, line_start, out);
    }

    /// Text that is no control line: the client's, or the job's.
    fn text(&mut self, seg: &[u8], line_start: bool, out: &mut Vec<u8>) {
        if seg.is_empty() {
            return;
        }
        let c = &mut self.control;
        if !c.started {
            if c.queued.is_none() && line_start {
                let line = String::from_utf8_lossy(seg);
                c.queued = queue_message(line.trim_end()).map(str::to_string);
            }
            let room = EARLY_MAX.saturating_sub(c.early.len());
            c.early.extend_from_slice(&seg[..seg.len().min(room)]);
            return;
        }
        if line_start && seg.ends_with(b"\n") && self.slurm_started() {
            let line = String::from_utf8_lossy(&seg[..seg.len() - 1])
                .trim()
                .to_string();
            if let Some(note) = self.client_line(&line) {
                if !note.is_empty() {
                    self.control.late.push(note);
                }
                return;
            }
        }
        out.extend_from_slice(seg);
    }

    fn slurm_started(&self) -> bool {
        self.control.started && self.control.slurm_job_id.is_some()
    }

    /// srun's or slurmstepd's line about our step, as a note ("" for one the record's status
    /// already tells), or None for the job's own output.
    fn client_line(&self, line: &str) -> Option<String> {
        let c = &self.control;
        let id = c.slurm_job_id.as_deref()?;
        if line.starts_with("slurmstepd") {
            let banner = line.find("*** ")?;
            let ours = [format!("*** STEP {id}."), format!("*** JOB {id} ")];
            return ours
                .iter()
                .any(|o| line[banner..].starts_with(o.as_str()))
                .then(|| format!("slurmstepd: {}", &line[banner..]));
        }
        if !line.starts_with("srun: ") {
            return None;
        }
        if task_end(line) {
            return Some(String::new());
        }
        (c.exit.is_some() || SRUN_STOPPING.iter().any(|s| line.starts_with(s)))
            .then(|| line.to_string())
    }

    fn control_line(&mut self, body: &str) {
        let words: Vec<&str> = body.split_whitespace().collect();
        let c = &mut self.control;
        match words.as_slice() {
            ["start", pid, job, node, rest @ ..] => {
                c.started = true;
                c.pgid = pid.parse().ok();
                c.slurm_job_id = (*job != "-").then(|| job.to_string());
                c.node = Some(node.to_string());
                c.slurm_step = rest.first().filter(|s| **s != "-").map(|s| s.to_string());
            }
            ["exit", code] => c.exit = code.parse().ok(),
            _ => {}
        }
    }
}

/// Where one job's part of a Slurm worker's stream stands (`remote::worker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameState {
    /// Before the job's opening line: the bytes are the worker's or a job before it.
    Before,
    In,
    /// After the job's `end` line.
    Done,
}

/// One job's part of a stream a worker step shares between the jobs it runs, one after the
/// other: from the job's opening line (stdout: `MARKER begin`, which is dropped; stderr: the
/// wrapper's start line, which is the job's, for its `ControlFilter`) to `MARKER end`, which
/// the worker writes on both streams once the job and its wrapper ended. The job's last line
/// may lack a newline: the end line is found glued to it, as `ControlFilter` finds its lines.
pub struct Frame {
    marker: Vec<u8>,
    /// The opening line's word: `begin` (dropped) or `start` (kept).
    opens: &'static str,
    carry: Vec<u8>,
    pub state: FrameState,
}

impl Frame {
    /// The job's stdout: between `MARKER begin` and `MARKER end`.
    pub fn stdout(marker: &str) -> Frame {
        Frame::new(marker, "begin")
    }

    /// The job's stderr: from the wrapper's `MARKER start` line to `MARKER end`.
    pub fn stderr(marker: &str) -> Frame {
        Frame::new(marker, "start")
    }

    fn new(marker: &str, opens: &'static str) -> Frame {
        Frame {
            marker: marker.as_bytes().to_vec(),
            opens,
            carry: Vec::new(),
            state: FrameState::Before,
        }
    }

    /// Splits `chunk` into what is outside the job's part (before it, or after its end) and
    /// what is the job's. A partial line that may still become a marker line is held back.
    pub fn feed(&mut self, chunk: &[u8], last: bool) -> (Vec<u8>, Vec<u8>) {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let (mut outside, mut job) = (Vec::new(), Vec::new());
        let mut p = 0;
        while p < buf.len() {
            if self.state == FrameState::Done {
                outside.extend_from_slice(&buf[p..]);
                break;
            }
            let rest = &buf[p..];
            let (seg, whole) = match rest.iter().position(|&b| b == b'\n') {
                Some(nl) => (&rest[..=nl], true),
                None => (rest, false),
            };
            if !whole
                && !last
                && let Some(at) = marker_from(seg, &self.marker)
            {
                // What is before a marker that may still come whole is already known.
                match self.state {
                    FrameState::In => job.extend_from_slice(&seg[..at]),
                    _ => outside.extend_from_slice(&seg[..at]),
                }
                self.carry = seg[at..].to_vec();
                break;
            }
            p += seg.len();
            match whole.then(|| find(seg, &self.marker)).flatten() {
                Some(i) => {
                    let mut words = seg[i + self.marker.len()..].split(|b| b.is_ascii_whitespace());
                    let word = words.find(|w| !w.is_empty()).unwrap_or_default();
                    match (self.state, word) {
                        (FrameState::Before, w) if w == self.opens.as_bytes() => {
                            outside.extend_from_slice(&seg[..i]);
                            self.state = FrameState::In;
                            if self.opens == "start" {
                                job.extend_from_slice(&seg[i..]);
                            }
                        }
                        (FrameState::In, b"end") => {
                            job.extend_from_slice(&seg[..i]);
                            self.state = FrameState::Done;
                        }
                        (FrameState::In, _) => job.extend_from_slice(seg),
                        _ => outside.extend_from_slice(seg),
                    }
                }
                None if self.state == FrameState::In => job.extend_from_slice(seg),
                None => outside.extend_from_slice(seg),
            }
        }
        (outside, job)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where in a partial line a marker line may begin: at the marker, or at a begun marker at
/// its end; none when that part is longer than a control line can be (`HOLD_MAX`), so that
/// what a job writes without a newline is never held without end.
fn marker_from(seg: &[u8], marker: &[u8]) -> Option<usize> {
    let at = find(seg, marker).unwrap_or_else(|| seg.len() - partial_prefix(seg, marker));
    (at < seg.len() && seg.len() - at <= HOLD_MAX).then_some(at)
}

/// Length of the longest end of `hay` that begins `needle`: it may continue in the next chunk.
fn partial_prefix(hay: &[u8], needle: &[u8]) -> usize {
    let max = hay.len().min(needle.len() - 1);
    (1..=max)
        .rev()
        .find(|&k| hay[hay.len() - k..] == needle[..k])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, Control) {
        let mut f = ControlFilter::new("__ORCH_x");
        let mut out = Vec::new();
        for c in chunks {
            out.extend(f.feed(c, false));
        }
        out.extend(f.feed(&[], true));
        (out, f.control)
    }

    #[test]
    fn strips_control_lines_split_across_chunks() {
        let (out, c) = run(&[
            b"srun: warn\n__OR",
            b"CH_x start 42 7 n1\nerr1\nlast without newline__ORCH",
            b"_x exit 255\n",
        ]);
        assert_eq!(out, b"err1\nlast without newline");
        assert_eq!(c.pgid, Some(42));
        assert_eq!(c.slurm_job_id.as_deref(), Some("7"));
        assert_eq!(c.node.as_deref(), Some("n1"));
        assert_eq!(c.exit, Some(255));
        assert_eq!(c.early, b"srun: warn\n");
        assert_eq!(c.notes(), ["srun: warn"]);
    }

    #[test]
    fn a_lookalike_is_output() {
        let (out, c) = run(&[b"__ORCH_x start 1 - h\n__ORC", b"H not the marker\n__ORCH"]);
        assert_eq!(out, b"__ORCH not the marker\n__ORCH");
        assert!(c.started && c.exit.is_none());
    }

    #[test]
    fn sruns_and_slurmstepds_lines_are_notes_not_stderr() {
        let (out, c) = run(&[
            b"srun: job 9 queued and waiting for resources\nsrun: job 9 has been allocated resources\n",
            b"srun: error: n2: task 0: Exited with exit code 3\n",
            b"__ORCH_x start 5 9 n2\njob says\nsrun: from the job\nsrun: forcing job termination\nsl",
            b"urmstepd-n2: error: *** STEP 9.0 ON n2 CANCELLED AT 2026-12-01T16:57:01 ***\n",
            b"slurmstepd: error: *** STEP 10.0 ON n2 CANCELLED AT x ***\nsrun: error: n2: task 0: Killed\n",
        ]);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "job says\nsrun: from the job\nslurmstepd: error: *** STEP 10.0 ON n2 CANCELLED AT x ***\n"
        );
        assert_eq!(c.queued.as_deref(), Some("9"));
        assert_eq!(
            c.notes(),
            [
                "srun: forcing job termination",
                "slurmstepd: *** STEP 9.0 ON n2 CANCELLED AT 2026-12-01T16:57:01 ***"
            ]
        );
    }

    #[test]
    fn after_the_exit_line_sruns_lines_are_sruns() {
        let (out, c) = run(&[
            b"__ORCH_x start 5 9 n2\nerr\n__ORCH_x exit 3\nsrun: error: n2: task 0: Exited with exit code 3\n",
            b"srun: something else\n",
        ]);
        assert_eq!(out, b"err\n");
        assert_eq!(c.exit, Some(3));
        assert_eq!(c.notes(), ["srun: something else"]);
    }

    #[test]
    fn a_workers_stream_is_cut_into_the_jobs_parts() {
        let mut f = Frame::stdout("__ORCH_x");
        let (o, j) = f.feed(b"left over\n__ORCH_x begin\nout1\npart", false);
        assert_eq!(
            (o.as_slice(), j.as_slice()),
            (&b"left over\n"[..], &b"out1\npart"[..])
        );
        let (o, j) = f.feed(b"ial__ORC", false);
        assert_eq!(
            (o.len(), j.as_slice()),
            (0, &b"ial"[..]),
            "the begun marker held: it may become the end line"
        );
        let (o, j) = f.feed(b"H_x end\nnext job's\n", false);
        assert_eq!((o.as_slice(), j.len()), (&b"next job's\n"[..], 0));
        assert_eq!(f.state, FrameState::Done);
        let mut f = Frame::stderr("__ORCH_x");
        let (o, j) = f.feed(
            b"srun: hi\n__ORCH_x start 1 2 n1 3\nerr__ORCH_x exit 3\n__ORCH_x end\n",
            false,
        );
        assert_eq!(o, b"srun: hi\n");
        assert_eq!(j, b"__ORCH_x start 1 2 n1 3\nerr__ORCH_x exit 3\n");
        assert_eq!(f.state, FrameState::Done);
    }

    #[test]
    fn a_marker_split_after_a_long_line_without_newline_is_still_found() {
        let long = vec![b'x'; 5000];
        let mut f = Frame::stdout("__ORCH_x");
        let mut job = f.feed(b"__ORCH_x begin\n", false).1;
        job.extend(f.feed(&[&long[..], b"__ORC"].concat(), false).1);
        job.extend(f.feed(b"H_x end\n", false).1);
        assert_eq!(f.state, FrameState::Done);
        assert_eq!(job, long);
        // The exit line on stderr, the same way.
        let (out, c) = run(&[
            b"__ORCH_x start 1 - h\n",
            &[&long[..], b"__OR"].concat(),
            b"CH_x exit 3\n",
        ]);
        assert_eq!(out, long);
        assert_eq!(c.exit, Some(3));
        // A job's own long line that only looks begun is all its output, held no longer.
        let (out, c) = run(&[
            b"__ORCH_x start 1 - h\n",
            &[b"__ORCH_x", &long[..]].concat(),
        ]);
        assert_eq!(out, [b"__ORCH_x", &long[..]].concat());
        assert!(c.exit.is_none());
    }

    #[test]
    fn ssh_output_after_the_start_is_all_the_jobs() {
        let (out, c) = run(&[
            b"Warning: added\n__ORCH_x start 5 - h\nsrun: x\n",
            b"slurmstepd",
        ]);
        assert_eq!(out, b"srun: x\nslurmstepd");
        assert_eq!(c.early_text(), "Warning: added");
    }
}
