//! Errors across the wire: an engine [`Error`] becomes a gRPC status whose code fits, with a
//! `strata.v1.ErrorDetail` (exit code, kind, the full message) in its details; a client turns
//! any status back into a [`RemoteError`] that carries the same exit code and message as the
//! local CLI would give.

use prost::Message;
use strata_engine::core::exit;
use strata_engine::{Error, ErrorKind};
use tonic::{Code, Status};

use crate::convert;
use crate::proto::{ErrorDetail, RpcStatus};

/// The type URL of [`ErrorDetail`] inside a status's details.
pub const DETAIL_TYPE_URL: &str = "type.googleapis.com/strata.v1.ErrorDetail";

/// The gRPC code for an engine error: bad input is INVALID_ARGUMENT, a refusal
/// FAILED_PRECONDITION, a rolled-back step ABORTED, a database server that cannot be reached
/// UNAVAILABLE (also when it went away during a step), the rest INTERNAL.
pub fn code_of(err: &Error) -> Code {
    // No wildcard: a new kind of error does not compile until it has its code.
    match err.kind() {
        ErrorKind::Tree | ErrorKind::Input | ErrorKind::Usage | ErrorKind::NotADatabase => {
            Code::InvalidArgument
        }
        ErrorKind::Refused => Code::FailedPrecondition,
        ErrorKind::Step if err.is_unavailable() => Code::Unavailable,
        ErrorKind::Step => Code::Aborted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Database | ErrorKind::Postgres | ErrorKind::Build | ErrorKind::Io => {
            Code::Internal
        }
    }
}

/// The gRPC status for an engine error.
pub fn to_status(err: &Error) -> Status {
    let mut detail = ErrorDetail {
        exit_code: err.exit_code(),
        kind: err.kind().name().into(),
        // As the CLI prints it: strata's messages already say what their sources said.
        message: err.to_string(),
        ..ErrorDetail::default()
    };
    if let Error::Step(f) = err {
        detail.migration = f.migration.clone();
        detail.action = convert::action(f.action);
        detail.file = f
            .file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
    }
    with_detail(code_of(err), detail)
}

/// The message and its sources, as the CLI prints an error (`anyhow`'s `{:#}`).
pub fn full_message(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A status with `detail` in its details (as a google.rpc.Status).
pub fn with_detail(code: Code, detail: ErrorDetail) -> Status {
    let first_line = detail
        .message
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let rpc = RpcStatus {
        code: code as i32,
        message: first_line.clone(),
        details: vec![prost_types::Any {
            type_url: DETAIL_TYPE_URL.into(),
            value: detail.encode_to_vec(),
        }],
    };
    Status::with_details(code, first_line, rpc.encode_to_vec().into())
}

/// A status for a request the server refuses outside the engine (bad argument, wrong token,
/// shutting down).
pub fn refuse(code: Code, exit_code: i32, kind: &str, message: impl Into<String>) -> Status {
    with_detail(
        code,
        ErrorDetail {
            exit_code,
            kind: kind.into(),
            message: message.into(),
            ..ErrorDetail::default()
        },
    )
}

/// What a remote call ended with, mapped to the local CLI's exit codes and messages.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    /// The exit code the CLI gives: 1, 2, 3 or 4 (see `strata_engine::core::exit`).
    pub exit_code: i32,
    /// The gRPC code, when the server answered.
    pub code: Option<Code>,
    /// The engine's kind of error (`step`, `refused`, ...) or `transport`, `unauthenticated`.
    pub kind: String,
    pub message: String,
}

impl RemoteError {
    /// A failure on this side of the wire (connecting, decoding, a local file).
    pub fn local(exit_code: i32, kind: &str, message: impl Into<String>) -> Self {
        RemoteError {
            exit_code,
            code: None,
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// The error a status stands for: the engine's own when the details carry it, else one
    /// made from the code.
    pub fn from_status(status: &Status, url: &str) -> Self {
        if let Some(d) = detail(status) {
            return RemoteError {
                exit_code: d.exit_code,
                code: Some(status.code()),
                kind: d.kind,
                message: d.message,
            };
        }
        let (exit_code, kind, message) = match status.code() {
            Code::Unauthenticated => (
                exit::REFUSED,
                "unauthenticated",
                format!(
                    "{url} refused the call: {}. Pass the server's token with --token-file FILE \
                     or STRATA_TOKEN",
                    status.message()
                ),
            ),
            Code::Unavailable => (
                exit::UNAVAILABLE,
                "transport",
                format!(
                    "cannot reach the strata server at {url}: {}. Is `strata serve` running \
                     there?",
                    status.message()
                ),
            ),
            Code::DeadlineExceeded => (
                exit::FAILURE,
                "deadline",
                format!(
                    "{url} did not answer in time ({}); raise --timeout",
                    status.message()
                ),
            ),
            Code::ResourceExhausted | Code::OutOfRange => (
                exit::BAD_INPUT,
                "limit",
                format!(
                    "{url}: a message went over the size limit ({}); the server's limit is \
                     `strata serve --max-message-bytes`",
                    status.message()
                ),
            ),
            Code::InvalidArgument => (exit::BAD_INPUT, "usage", status.message().to_string()),
            Code::FailedPrecondition => (exit::REFUSED, "refused", status.message().to_string()),
            Code::Unimplemented => (
                exit::BAD_INPUT,
                "unimplemented",
                format!(
                    "{url} does not serve this call ({}): is it a strata server of the same \
                     version?",
                    status.message()
                ),
            ),
            _ => (
                exit::FAILURE,
                "remote",
                format!("{url}: {}", status.message()),
            ),
        };
        RemoteError {
            exit_code,
            code: Some(status.code()),
            kind: kind.into(),
            message,
        }
    }
}

/// The engine's error detail in a status, if it carries one.
pub fn detail(status: &Status) -> Option<ErrorDetail> {
    let rpc = RpcStatus::decode(status.details()).ok()?;
    rpc.details
        .iter()
        .find(|a| a.type_url == DETAIL_TYPE_URL)
        .and_then(|a| ErrorDetail::decode(a.value.as_slice()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_keep_their_exit_code_and_message_across_the_wire() {
        let err = Error::Usage("no such module `nope`".into());
        let status = to_status(&err);
        assert_eq!(status.code(), Code::InvalidArgument);
        let back = RemoteError::from_status(&status, "http://x");
        assert_eq!(back.exit_code, exit::BAD_INPUT);
        assert_eq!(back.message, err.to_string());

        let refused = Error::Refused(vec![strata_engine::Refusal::Locked {
            db: "app.db".into(),
        }]);
        let status = to_status(&refused);
        assert_eq!(status.code(), Code::FailedPrecondition);
        let back = RemoteError::from_status(&status, "http://x");
        assert_eq!(back.exit_code, exit::REFUSED);
        assert_eq!(back.message, refused.to_string());
        assert!(back.message.contains('\n'), "multi-line messages survive");
    }

    /// An error of `kind`: the match has no wildcard, so a new kind does not compile until it
    /// has an example here (and [`ErrorKind::ALL`] lists every kind by construction).
    fn example(kind: ErrorKind) -> Error {
        use std::path::PathBuf;
        let db = PathBuf::from("postgres://u@h/app");
        let step = |code: Option<strata_engine::DbCode>| {
            Error::from(strata_engine::StepFailure {
                phase: strata_engine::Phase::Apply,
                db: db.clone(),
                migration: "app/20240101T000000Z-a".into(),
                action: strata_engine::Action::DoSql,
                file: Some("migrations/app/20240101T000000Z-a/do.sql".into()),
                statement: Some((1, "SELECT 1".into())),
                index: Some(1),
                message: "boom".into(),
                code,
                applied_before: Vec::new(),
                kept_by_rollback: None,
            })
        };
        // SQLITE_CONSTRAINT_UNIQUE and SQLITE_NOTADB.
        let sqlite = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        match kind {
            ErrorKind::Tree => Error::Tree {
                problems: vec![strata_engine::core::error::TreeProblem {
                    path: "migrations/x".into(),
                    problem: "bad".into(),
                }],
            },
            ErrorKind::Input => Error::Input {
                path: "strata.toml".into(),
                message: "bad".into(),
            },
            ErrorKind::Usage => Error::Usage("no such module".into()),
            ErrorKind::Refused => Error::Refused(vec![strata_engine::Refusal::Locked {
                db: "app.db".into(),
            }]),
            ErrorKind::Step => step(Some(strata_engine::DbCode::SqlState("23505".into()))),
            ErrorKind::Database => Error::Database {
                db: "app.db".into(),
                context: "cannot read".into(),
                source: sqlite(2067),
            },
            ErrorKind::NotADatabase => Error::NotADatabase {
                db: "app.db".into(),
                context: "cannot open".into(),
                source: sqlite(26),
            },
            ErrorKind::Postgres => Error::Postgres {
                db,
                context: "cannot read".into(),
                sqlstate: Some("42501".into()),
                message: "permission denied (42501)".into(),
                source: None,
            },
            ErrorKind::Unavailable => Error::Unavailable {
                db,
                context: "cannot connect".into(),
                sqlstate: None,
                message: "connection refused".into(),
                source: None,
            },
            ErrorKind::Build => Error::Build {
                path: "guest".into(),
                message: "bad".into(),
            },
            ErrorKind::Io => Error::Io {
                path: "x".into(),
                source: std::io::Error::other("bad"),
            },
        }
    }

    #[test]
    fn every_kind_of_error_has_its_status_and_exit_code_across_the_wire() {
        for &kind in ErrorKind::ALL {
            let err = example(kind);
            assert_eq!(err.kind(), kind);
            let (code, exit_code) = match kind {
                ErrorKind::Tree | ErrorKind::Input | ErrorKind::Usage | ErrorKind::NotADatabase => {
                    (Code::InvalidArgument, exit::BAD_INPUT)
                }
                ErrorKind::Refused => (Code::FailedPrecondition, exit::REFUSED),
                ErrorKind::Step => (Code::Aborted, exit::FAILURE),
                ErrorKind::Unavailable => (Code::Unavailable, exit::UNAVAILABLE),
                ErrorKind::Database | ErrorKind::Postgres | ErrorKind::Build | ErrorKind::Io => {
                    (Code::Internal, exit::FAILURE)
                }
            };
            let status = to_status(&err);
            assert_eq!(status.code(), code, "{kind:?}");
            assert_eq!(err.exit_code(), exit_code, "{kind:?}");
            let back = RemoteError::from_status(&status, "http://x");
            assert_eq!(back.exit_code, exit_code, "{kind:?}");
            assert_eq!(back.kind, kind.name(), "{kind:?}");
            assert_eq!(back.message, err.to_string(), "{kind:?}");
        }
        // A step the server cut off (it is shutting down): UNAVAILABLE, and the step's detail.
        let cut = example(ErrorKind::Step);
        let Error::Step(mut f) = cut else {
            unreachable!()
        };
        f.code = Some(strata_engine::DbCode::SqlState("57P01".into()));
        let cut = Error::Step(f);
        let status = to_status(&cut);
        assert_eq!(status.code(), Code::Unavailable);
        let d = detail(&status).unwrap();
        assert_eq!(d.exit_code, exit::UNAVAILABLE);
        assert_eq!(d.migration, "app/20240101T000000Z-a");
    }

    #[test]
    fn bare_statuses_map_by_code() {
        let s = Status::unauthenticated("missing token");
        let e = RemoteError::from_status(&s, "http://h:1");
        assert_eq!(e.exit_code, exit::REFUSED);
        assert!(e.message.contains("--token-file"), "{}", e.message);
        let e = RemoteError::from_status(&Status::unavailable("connection refused"), "u");
        assert_eq!(e.exit_code, exit::UNAVAILABLE);
    }
}
