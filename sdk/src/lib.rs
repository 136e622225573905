//! The guest SDK of strata: migration logic that is code, not SQL, written as plain Rust and
//! compiled to a sandboxed WebAssembly component.
//!
//! A component's only door is the database of the step being applied, through [`sql`], and a
//! message channel, [`log`]. There is no clock, randomness, file or network access, so the
//! same database gives the same result every time.
//!
//! A transform that splits `people.full_name` into two new columns:
//!
//! ```no_run
//! use serde::Deserialize;
//! use strata_sdk::{Result, log, params, sql};
//!
//! #[derive(Deserialize)]
//! struct Person {
//!     id: i64,
//!     full_name: String,
//! }
//!
//! fn run() -> Result<()> {
//!     let people = sql::stream::<Person>("SELECT id, full_name FROM people", params![])?;
//!     let mut w = sql::Writer::new("UPDATE people SET first_name = ?, last_name = ? WHERE id = ?");
//!     for person in people {
//!         let person = person?;
//!         let name = person.full_name.trim();
//!         let (first, last) = name.split_once(char::is_whitespace).unwrap_or((name, ""));
//!         w.push((first, last.trim(), person.id))?;
//!     }
//!     let changed = w.finish()?;
//!     log::info(format!("split {changed} names"));
//!     Ok(())
//! }
//!
//! strata_sdk::transform!(run);
//! # fn main() {}
//! ```
//!
//! # The guest crate
//! A guest is a `cdylib` crate built for `wasm32-unknown-unknown`; `strata build` (or
//! `wit-component`) turns the core module into a component of the right world. Its
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "split-names"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! strata-sdk = { path = "../../sdk" }
//! serde = { version = "1", features = ["derive"] }   # for #[derive(Deserialize)]
//!
//! [profile.release]
//! opt-level = 3
//! codegen-units = 1
//! lto = true
//! debug = false
//! panic = "abort"
//! # Leave `strip` unset: with `debug = false` cargo strips only debuginfo and keeps the name
//! # section, so traps name the function they happened in. `strip = false` would keep the DWARF
//! # of the precompiled std (about 3x the size); `strip = true` would drop the names.
//!
//! # Not a member of any workspace around it.
//! [workspace]
//! ```
//!
//! and it exports exactly one entry point with one of [`transform!`], [`seed!`] or [`check!`].
//!
//! # What the macros add
//! The function you export returns [`Result`]; an [`Error`] becomes the error string the host
//! reports, and fails the step, which is rolled back. A panic is logged at error level (with
//! its message and location) before the component traps.

#![warn(missing_docs)]

mod bindings;
mod de;
mod error;
mod params;
mod value;

pub mod log;
pub mod sql;

#[doc(hidden)]
#[path = "glue.rs"]
pub mod __private;

pub use error::{Error, ErrorKind, Result};
pub use params::{Param, Params};
pub use strata_wire as wire;
pub use value::Value;

/// Builds a `&[Value]` of positional parameters from expressions of any type that converts
/// into a [`Value`] (integers, `f64`, `bool`, `&str`, `String`, `Vec<u8>`, `&[u8]`,
/// `Option<_>`, [`Value`]).
///
/// ```no_run
/// use strata_sdk::{params, sql};
///
/// # fn main() -> strata_sdk::Result<()> {
/// let email: Option<&str> = None;
/// sql::execute(
///     "INSERT INTO people (id, full_name, email) VALUES (?, ?, ?)",
///     params![7, "Zoë Brontë", email],
/// )?;
/// sql::execute("DELETE FROM people WHERE id > 1000", params![])?;
/// # Ok(())
/// # }
/// ```
#[macro_export]
macro_rules! params {
    () => {
        &[] as &[$crate::Value]
    };
    ($($value:expr),+ $(,)?) => {
        &[$($crate::Value::from($value)),+] as &[$crate::Value]
    };
}

/// Exports the entry point of a transform component (world `transform`).
///
/// The argument is a function (or closure) `fn() -> strata_sdk::Result<()>`. It runs after the
/// migration's `do.sql`, inside the step's transaction; an error fails the step.
///
/// ```no_run
/// use strata_sdk::{params, sql};
///
/// fn run() -> strata_sdk::Result<()> {
///     sql::execute("UPDATE people SET email = lower(email)", params![])?;
///     Ok(())
/// }
///
/// strata_sdk::transform!(run);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! transform {
    ($run:expr $(,)?) => {
        const _: () = {
            struct StrataTransform;

            impl $crate::__private::transform::Guest for StrataTransform {
                fn run() -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::run_transform($run)
                }
            }

            $crate::__private::transform::export!(
                StrataTransform with_types_in $crate::__private::transform
            );
        };
    };
}

/// Exports the entry point of a seed component (world `seed`).
///
/// The argument is a function (or closure) `fn(P) -> strata_sdk::Result<()>`, where `P`
/// implements `serde::Deserialize` and is parsed from the JSON of the `"$seed"` entry of the
/// `data.json` beside the component (`{}` when there is none, so give `P`'s fields
/// `#[serde(default)]` where that makes sense). Parameters that do not parse fail the step.
///
/// ```no_run
/// use serde::Deserialize;
/// use strata_sdk::{Result, sql::Writer};
///
/// #[derive(Deserialize)]
/// struct Params {
///     #[serde(default = "ten")]
///     count: i64,
/// }
///
/// fn ten() -> i64 {
///     10
/// }
///
/// fn seed(params: Params) -> Result<()> {
///     let mut w = Writer::new("INSERT INTO counters (n) VALUES (?)");
///     for n in 0..params.count {
///         w.push((n,))?;
///     }
///     w.finish()?;
///     Ok(())
/// }
///
/// strata_sdk::seed!(seed);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! seed {
    ($seed:expr $(,)?) => {
        const _: () = {
            struct StrataSeed;

            impl $crate::__private::seed::Guest for StrataSeed {
                fn seed(
                    params: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::run_seed($seed, params)
                }
            }

            $crate::__private::seed::export!(
                StrataSeed with_types_in $crate::__private::seed
            );
        };
    };
}

/// Exports the entry point of a check component (world `check`).
///
/// The argument is a function (or closure) `fn() -> strata_sdk::Result<Vec<String>>`
/// returning one message per violation; an empty list means the check passed. Any violation,
/// or an error, fails the step.
///
/// ```no_run
/// use strata_sdk::{Result, params, sql};
///
/// fn check() -> Result<Vec<String>> {
///     let mut problems = Vec::new();
///     for row in sql::stream::<(i64, String)>("SELECT id, email FROM people", params![])? {
///         let (id, email) = row?;
///         if !email.contains('@') {
///             problems.push(format!("people {id}: email {email:?} has no @"));
///         }
///     }
///     Ok(problems)
/// }
///
/// strata_sdk::check!(check);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! check {
    ($check:expr $(,)?) => {
        const _: () = {
            struct StrataCheck;

            impl $crate::__private::check::Guest for StrataCheck {
                fn check() -> ::core::result::Result<
                    ::std::vec::Vec<::std::string::String>,
                    ::std::string::String,
                > {
                    $crate::__private::run_check($check)
                }
            }

            $crate::__private::check::export!(
                StrataCheck with_types_in $crate::__private::check
            );
        };
    };
}
