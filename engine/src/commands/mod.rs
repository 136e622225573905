//! The commands, written once over the backend seam (`crate::core::backend`): `migrate` (the
//! two phases, sandbox mode, status, plan), `design` (dump, diff, new --from-diff, baseline,
//! drift), `repair`, `undo`, `lint`, `scaffold` (init, new), `build` (compiling guest crates to
//! components) and the SDK copy it needs (`sdk_copy`). A command never names a backend: it opens
//! its database through `crate::backends`.

pub mod build;
pub mod design;
pub mod fleet;
pub mod lint;
pub mod migrate;
pub mod repair;
pub mod restore;
pub mod scaffold;
pub mod sdk_copy;
pub mod undo;
