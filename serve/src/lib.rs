//! strata-serve: the strata engine over gRPC (`proto/strata/v1/strata.proto`, package
//! `strata.v1`).
//!
//! [`StrataService`] is a plain tonic service: an application that already serves gRPC mounts
//! it beside its own services, and the `strata serve` command mounts it alone (with health and
//! reflection, see [`server`]). [`client::Client`] is what `strata --remote` uses: it hands back
//! the engine's own report types and events, so the CLI renders a remote run exactly like a
//! local one. Every RPC runs the same library calls as the local CLI, on the server's own tree;
//! nothing a client sends is executed as SQL.
//!
//! Module map: `proto` (the generated messages, server and client), `auth` (bearer tokens,
//! constant-time comparison, the header check before a body is read, counting refused calls), `error` (engine errors to gRPC statuses
//! and back), `convert` (engine events and reports to messages and back), `service` (the
//! `strata.v1.Strata` implementation), `status` (the Status answer, kept while nothing it is
//! made of changed), `server` (listener, TLS, health, reflection, graceful shutdown),
//! `connections` (what `strata serve` holds open: caps per server and per peer prefix, the
//! deadline for a connection's first authenticated call, the idle timeout) and `client`.
//!
//! Mounting it in an application's own tonic server:
//!
//! ```no_run
//! use strata_serve::{StrataService, auth::Token};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let project = strata_engine::Project::discover(None)?;
//! let token = Token::new(&std::env::var("STRATA_TOKEN")?)?;
//! let strata = StrataService::new(project, token);
//! tonic::transport::Server::builder()
//!     // .add_service(my_app::MyServiceServer::new(my_app)) beside it
//!     .add_service(strata.clone().into_server())
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod client;
pub mod connections;
mod convert;
pub mod error;
pub mod server;
pub mod service;
mod status;

pub use client::Client;
pub use error::RemoteError;
pub use service::StrataService;

/// The generated `strata.v1` messages, `strata_server` and `strata_client`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("strata.v1");

    /// The encoded descriptor set of `strata.v1` (and its imports), for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/strata_v1_descriptor.bin"));
}

/// The protobuf package this crate speaks.
pub const API_VERSION: &str = "strata.v1";

/// The project folder as an absolute path (the current folder when the project root is `.`).
pub fn project_dir(project: &strata_engine::Project) -> String {
    let root = if project.root.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        project.root.as_path()
    };
    std::path::absolute(root)
        .map(|p| p.components().collect::<std::path::PathBuf>())
        .unwrap_or_else(|_| root.to_path_buf())
        .display()
        .to_string()
}

/// The version of the WIT package `strata:migrate` the engine's sandbox implements.
pub fn wit_version() -> &'static str {
    const WIT: &str = include_str!("../../sdk/wit/strata.wit");
    WIT.lines()
        .find_map(|l| l.trim().strip_prefix("package strata:migrate@"))
        .map(|v| v.trim_end_matches(';'))
        .unwrap_or("unknown")
}
