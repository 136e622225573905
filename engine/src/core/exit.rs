//! The process exit codes of the `strata` binary, in one place (DESIGN §6).
//!
//! Scripts and CI rely on these numbers; never reuse one for a different meaning.

/// Everything asked for was done.
pub const OK: i32 = 0;
/// A step or a check failed; the failed step was rolled back.
pub const FAILURE: i32 = 1;
/// Bad input or usage: a malformed tree, config or data file, or a wrong argument.
pub const BAD_INPUT: i32 = 2;
/// Refused for safety before anything was touched: a changed applied migration, an out-of-order
/// or missing migration, or a database lock that did not come free in time.
pub const REFUSED: i32 = 3;
/// A database server (or the strata server of `--remote`) could not be reached, or it is
/// shutting down: nothing is wrong with the input, and running again once it answers may
/// succeed. A step cut off by it was rolled back.
pub const UNAVAILABLE: i32 = 4;
