//! SQLite, the whole of one backend: connections and statement scripts (`connection`), the
//! bookkeeping tables (`ledger`), one migration in one transaction (`step`), the schema as a
//! model (`schema`: parse, dump, diff, delta SQL, ownership), the design-time commands' side
//! (`design`), components' host side and the authorizer that guards them (`component`, `guard`),
//! the seam's implementation (`backend`), and what tells a cache that a database changed
//! (`watch`).

pub mod backend;
pub mod backup;
pub(crate) mod clock;
pub(crate) mod component;
pub(crate) mod connection;
pub(crate) mod design;
pub(crate) mod dry_run;
pub mod guard;
pub mod ledger;
pub mod restore;
pub(crate) mod rowid;
pub mod schema;
pub mod step;
pub(crate) mod watch;

pub use connection::{
    Located, Script, ScriptText, foreign_keys, is_busy, open, open_read_only, set_foreign_keys,
};
