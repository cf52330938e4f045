//! Integration tests: the real binary against real processes, real files and the real store.

mod background;
mod bad_input;
mod core;
mod corpus;
mod crash;
mod cron_ready;
mod graph;
mod hardening;
mod helpers;
mod hooks;
mod human_output;
mod library;
mod notify;
mod redesign;
mod scale_out;
mod settings;
mod store;
mod survivors;
mod trust;
