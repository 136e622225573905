//! The limits of one component call: fuel, linear memory and wall-clock time (`[sandbox]` in
//! strata.toml, narrowed per migration by migration.toml).

use serde::{Deserialize, Serialize};

/// Limits of one component call: fuel (deterministic instruction budget), linear memory and
/// wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub fuel: u64,
    pub memory_mib: u64,
    pub timeout_s: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 100_000_000_000,
            memory_mib: 512,
            timeout_s: 600,
        }
    }
}
