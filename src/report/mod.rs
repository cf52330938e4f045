//! Consumers of events for people and machines, and the renderings of stored records: how the
//! reporter is configured, and the re-exports the rest of the crate uses.
//!
//! - `live`: the [`Reporter`] consuming exec events during a run.
//! - `summary`: the closing summary line.
//! - `render`: the texts both the live reporter and the inspection commands print.
//! - `timeline` lays a run out in time; `timeline_text` draws it on a terminal, `html` as a
//!   page (`orchestrate report`); `junit` and `joblog` export a run (`show --junit`,
//!   `--csv`); `escape` makes text safe for them, `shown` holds the output they show.

mod bars;
mod escape;
mod html;
mod joblog;
mod junit;
mod live;
mod render;
mod shown;
mod summary;
mod tag;
mod term;
pub mod timeline;
mod timeline_text;

pub use crate::record::write_json_record;
pub use html::{PageJob, PageRun, PastRun, write_html};
pub use joblog::write_joblog;
pub use junit::{JunitRun, write_junit};
pub use live::Reporter;
pub use render::{outcome_text, record_detail, status_line, status_text, tail_lines, visible};
pub use shown::{KEPT_BYTES, Shown};
pub use summary::Closing;
pub use timeline::Timeline;
pub use timeline_text::{TextStyle, write_timeline};

/// How job output is shown during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputMode {
    /// No job output, only status lines.
    None,
    /// The tail of stderr of each failed job, or of its stdout (said so) when it has no
    /// stderr (the default).
    #[default]
    Failed,
    /// Each job's stdout and stderr, whole, as each job finishes.
    All,
    /// Each job's stdout and stderr, whole, in job-file order (like Pool.map).
    Ordered,
    /// Live, line by line, each line prefixed with the job name and a tab.
    Stream,
}

/// How the reporter behaves; decided once by the caller (terminal detection included).
#[derive(Clone, Debug)]
pub struct ReportConfig {
    pub output: OutputMode,
    /// Prefix each line of job output with the job's name and a tab (`--tag`), as `stream`
    /// mode always does.
    pub tag: bool,
    pub json: bool,
    pub quiet: bool,
    /// Draw progress bars (only meaningful when stderr is a terminal).
    pub progress: bool,
    pub color: bool,
    /// Prefix status lines with a timestamp (for logs: cron, pipes).
    pub timestamps: bool,
    /// Lines of stderr shown for a failed job in `failed` mode and in quiet mode.
    pub tail_lines: usize,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            output: OutputMode::Failed,
            tag: false,
            json: false,
            quiet: false,
            progress: false,
            color: false,
            timestamps: true,
            tail_lines: 10,
        }
    }
}

impl ReportConfig {
    /// What a log (`--log`) gets: the full report as plain timestamped lines, whatever the
    /// terminal shows.
    pub fn for_log(&self) -> ReportConfig {
        ReportConfig {
            output: if self.json {
                OutputMode::Failed
            } else {
                self.output
            },
            tag: self.tag,
            json: false,
            quiet: false,
            progress: false,
            color: false,
            timestamps: true,
            tail_lines: self.tail_lines,
        }
    }

    /// Whether the executor must forward output lines as events.
    pub fn needs_output_lines(&self) -> bool {
        !self.json && (self.output == OutputMode::Stream || self.progress)
    }
}

/// The widths of the names hooks' and notifications' records take (`build.on_failure`,
/// `run.on_exit`, `notify.webhook`), so that their lines line up with the jobs'.
fn hook_widths(plan: &crate::plan::Plan) -> impl Iterator<Item = usize> + '_ {
    let suffix = ".on_failure".len();
    let jobs = plan
        .job_hooks
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .flat_map(move |(&entry, _)| {
            plan.jobs
                .iter()
                .filter(move |j| j.entry == entry)
                .map(move |j| j.name.chars().count() + suffix)
        });
    let run = (!plan.hooks.is_empty()).then_some("run".len() + suffix);
    let notify = plan.notify.as_ref().map(|_| "notify.webhook".len());
    jobs.chain(run).chain(notify)
}
