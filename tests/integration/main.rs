//! Integration tests: the real binary against real processes, real files and the real store.

mod as_cron;
mod background;
mod bad_input;
mod conditions;
mod core;
mod corpus;
mod crash;
mod cron_mail;
mod cron_ready;
mod cron_status;
mod flaky_slow;
mod graph;
mod hardening;
mod helpers;
mod hooks;
mod human_output;
mod library;
mod notify;
mod readback;
mod readonly;
mod redesign;
mod scale_out;
mod settings;
mod store;
mod survivors;
mod trust;
