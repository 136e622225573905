//! The bindings of `wit/strata.wit`, generated once here for the three worlds.
//!
//! The `transform` world generates the `sql` and `log` imports; `seed` and `check` reuse them
//! through `with`, so `Value`, `Cursor` and the import functions are one set of types whatever
//! the world. With `pub_export_macro` each world's `export!` macro is usable from the user's
//! crate, and the custom section describing the world's exports is emitted there, by the macro
//! (only the imports are described in this crate), so a guest that uses one world does not
//! claim the exports of the other two.

/// Bindings of the `transform` world, and of the `sql` and `log` interfaces.
#[allow(missing_docs)]
pub mod transform {
    wit_bindgen::generate!({
        path: "wit",
        world: "transform",
        pub_export_macro: true,
        default_bindings_module: "strata_sdk::__private::transform",
        additional_derives: [Clone, PartialEq],
    });
}

/// Bindings of the `seed` world.
#[allow(missing_docs)]
pub mod seed {
    wit_bindgen::generate!({
        path: "wit",
        world: "seed",
        pub_export_macro: true,
        default_bindings_module: "strata_sdk::__private::seed",
        with: {
            "strata:migrate/sql@0.1.0": super::transform::strata::migrate::sql,
            "strata:migrate/log@0.1.0": super::transform::strata::migrate::log,
        },
    });
}

/// Bindings of the `check` world.
#[allow(missing_docs)]
pub mod check {
    wit_bindgen::generate!({
        path: "wit",
        world: "check",
        pub_export_macro: true,
        default_bindings_module: "strata_sdk::__private::check",
        with: {
            "strata:migrate/sql@0.1.0": super::transform::strata::migrate::sql,
            "strata:migrate/log@0.1.0": super::transform::strata::migrate::log,
        },
    });
}

pub(crate) use transform::strata::migrate::log as log_api;
pub(crate) use transform::strata::migrate::sql as sql_api;
