//! The demo's rig, not the product: a throwaway PostgreSQL cluster (also the tests' and benchmarks'), the
//! contending workload that plays the runbook's incidents, and the minimal HTTP server that stands in for the
//! service's metrics and health endpoints. Nothing in the product's layers imports it; the demo subcommand
//! (`cli` and `cmd::demo`) wires it.

pub mod cluster;
pub mod demo;
pub mod serve;
