//! What the export macros expand to call: not public API.

use std::sync::Once;

use serde::de::DeserializeOwned;

use crate::{Error, ErrorKind, Result};

pub use crate::bindings::{check, seed, transform};

/// Sends panics through the `log` import before the trap, which the host otherwise sees as a
/// bare `unreachable`. Installed once, by the first call of an exported function.
pub fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload_as_str()
                .unwrap_or("(a panic without a message)");
            let text = match info.location() {
                Some(at) => format!(
                    "the component panicked at {}:{}:{}: {message}",
                    at.file(),
                    at.line(),
                    at.column()
                ),
                None => format!("the component panicked: {message}"),
            };
            crate::log::error(text);
        }));
    });
}

/// The body of the `transform` export.
pub fn run_transform(run: impl FnOnce() -> Result<()>) -> std::result::Result<(), String> {
    install_panic_hook();
    run().map_err(|e| e.to_string())
}

/// The body of the `seed` export: `params` is the JSON text of the seed's parameters.
pub fn run_seed<P: DeserializeOwned>(
    seed: impl FnOnce(P) -> Result<()>,
    params: String,
) -> std::result::Result<(), String> {
    install_panic_hook();
    let params = serde_json::from_str(&params).map_err(|e| {
        Error::new(
            ErrorKind::Decode,
            format!("the seed parameters do not fit the seed function's parameter type: {e}"),
        )
        .to_string()
    })?;
    seed(params).map_err(|e| e.to_string())
}

/// The body of the `check` export.
pub fn run_check(
    check: impl FnOnce() -> Result<Vec<String>>,
) -> std::result::Result<Vec<String>, String> {
    install_panic_hook();
    check().map_err(|e| e.to_string())
}
