//! Errors across the wire: an engine [`Error`] becomes a gRPC status whose code fits, with a
//! `strata.v1.ErrorDetail` (exit code, kind, the full message) in its details; a client turns
//! any status back into a [`RemoteError`] that carries the same exit code and message as the
//! local CLI would give.

use prost::Message;
use strata_engine::Error;
use strata_engine::core::exit;
use tonic::{Code, Status};

use crate::convert;
use crate::proto::{ErrorDetail, RpcStatus};

/// The type URL of [`ErrorDetail`] inside a status's details.
pub const DETAIL_TYPE_URL: &str = "type.googleapis.com/strata.v1.ErrorDetail";

/// The gRPC status for an engine error.
pub fn to_status(err: &Error) -> Status {
    let (code, kind) = match err {
        Error::Tree { .. } => (Code::InvalidArgument, "tree"),
        Error::Input { .. } => (Code::InvalidArgument, "input"),
        Error::Usage(_) => (Code::InvalidArgument, "usage"),
        Error::Refused(_) => (Code::FailedPrecondition, "refused"),
        Error::Step(_) => (Code::Aborted, "step"),
        Error::Database { .. } => (Code::Internal, "database"),
        Error::Build { .. } => (Code::Internal, "build"),
        Error::Io { .. } => (Code::Internal, "io"),
        _ => (Code::Internal, "internal"),
    };
    let mut detail = ErrorDetail {
        exit_code: err.exit_code(),
        kind: kind.into(),
        message: full_message(err),
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
    with_detail(code, detail)
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
    /// The exit code the CLI gives: 1, 2 or 3.
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
                exit::FAILURE,
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

    #[test]
    fn bare_statuses_map_by_code() {
        let s = Status::unauthenticated("missing token");
        let e = RemoteError::from_status(&s, "http://h:1");
        assert_eq!(e.exit_code, exit::REFUSED);
        assert!(e.message.contains("--token-file"), "{}", e.message);
        let e = RemoteError::from_status(&Status::unavailable("connection refused"), "u");
        assert_eq!(e.exit_code, exit::FAILURE);
    }
}
