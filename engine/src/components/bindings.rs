//! Host bindings, generated once per world from the WIT package in `sdk/wit` (the same files the
//! guest SDK generates from). The three worlds import the same `sql` and `log` interfaces, so
//! `seed` and `check` reuse the types generated for `transform`.

pub mod transform {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "transform",
        with: { "strata:migrate/sql.cursor": crate::components::host::CursorSlot },
        imports: { default: trappable },
    });
}

pub mod seed {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "seed",
        with: {
            "strata:migrate/sql": super::transform::strata::migrate::sql,
            "strata:migrate/log": super::transform::strata::migrate::log,
        },
        imports: { default: trappable },
    });
}

pub mod check {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "check",
        with: {
            "strata:migrate/sql": super::transform::strata::migrate::sql,
            "strata:migrate/log": super::transform::strata::migrate::log,
        },
        imports: { default: trappable },
    });
}

pub use transform::strata::migrate::{log, sql};
