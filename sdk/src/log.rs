//! Messages to the user running the migration, kept with the step's audit trail.
//!
//! ```no_run
//! use strata_sdk::log;
//!
//! log::info("splitting names");
//! log::warn(format!("{} rows have no last name", 3));
//! ```

use crate::bindings::log_api;

/// How important a message is: `Debug`, `Info`, `Warn` or `Error`.
pub use crate::bindings::log_api::Level;

/// Logs `message` at `level`.
pub fn log(level: Level, message: impl AsRef<str>) {
    log_api::log(level, message.as_ref());
}

/// Logs detail for whoever debugs the component.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message);
}

/// Logs progress worth showing.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message);
}

/// Logs something odd that does not fail the step.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message);
}

/// Logs something wrong; usually followed by returning an error.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message);
}
