//! The demo's rig, not the product: a throwaway PostgreSQL cluster (also the tests' and benchmarks'), the
//! contending workload that plays the runbook's incidents, and the fake service's counters (served by
//! `cmd::http`). Nothing in the product's layers imports it; the demo subcommand
//! (`cli` and `cmd::demo`) wires it.

pub mod cluster;
pub mod demo;
