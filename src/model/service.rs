//! What the service's own endpoints said, beside the database: plain data, filled by `source::service` and
//! shown by the dashboard and the `snapshot` report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the service says, per profile and overall, as of the latest scrape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    /// Per `profile_id`: what the service's metrics say about it.
    pub profiles: BTreeMap<String, ServiceProfile>,
    /// One per `--health-url`, in order.
    pub health: Vec<Health>,
    /// Endpoints that failed on the latest scrape, each with why (one line).
    pub errors: Vec<String>,
}

/// The service's figures for one profile, summed over its series and endpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceProfile {
    /// Failed acquisitions per second between the last two scrapes (`entry_lock_contention_total`); `None`
    /// until two scrapes have been seen.
    pub contention_per_s: Option<f64>,
    /// Mean acquisition latency between the last two scrapes (`lock_acquisition_latency_seconds` sum/count).
    pub latency_ms: Option<f64>,
    /// Who the service says holds it (`entry_lock_holder_info{owner_token=…} 1`).
    pub holders: Vec<String>,
}

/// One health document (`/internal/health`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub url: String,
    pub lock_contention_count: Option<i64>,
    pub trading_loop_healthy: Option<bool>,
    pub reconciliation_loop_healthy: Option<bool>,
}

impl ServiceView {
    /// The service's figures for a dashboard profile: by its name, or (several databases) by the name after
    /// the `target:` prefix.
    pub fn profile(&self, name: &str) -> Option<&ServiceProfile> {
        self.profiles.get(name).or_else(|| {
            let (_, bare) = name.split_once(super::snapshot::TARGET_SEPARATOR)?;
            self.profiles.get(bare)
        })
    }
}
