//! Function calls and statements of a migration's SQL whose effect reaches past the database
//! and outlives the step's rollback, beyond the statement kinds [`super::server_wide`] reads:
//! replication slots and origins (`SELECT pg_create_physical_replication_slot('standby')` from
//! the rehearsal makes the real step fail "already exists" for ever; `pg_drop_replication_slot`
//! drops production's standby slot), the server's configuration, logs, WAL and backups
//! (`pg_reload_conf`, `pg_switch_wal`, `pg_promote`, ...), other sessions and the statistics of
//! every database (`pg_terminate_backend`, `pg_stat_reset*`), the server's files
//! (`lo_export`, `COPY ... TO 'file'`/`PROGRAM`, adminpack's `pg_file_*`), other databases
//! through `dblink`, subscriptions (`CREATE SUBSCRIPTION` makes a slot on the publisher) and
//! privileges on parameters (`GRANT ... ON PARAMETER`, a shared catalog). A function is known
//! by its name in any schema (extensions install theirs where they are told). Like every
//! static check, it does not see SQL built at run time.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;
use serde_json::Value;

/// Functions refused in do.sql, undo.sql and checks.sql, with what they reach.
const CALLS: &[(&str, &str)] = &[
    ("pg_create_physical_replication_slot", SLOTS),
    ("pg_create_logical_replication_slot", SLOTS),
    ("pg_drop_replication_slot", SLOTS),
    ("pg_copy_physical_replication_slot", SLOTS),
    ("pg_copy_logical_replication_slot", SLOTS),
    ("pg_replication_slot_advance", SLOTS),
    ("pg_logical_slot_get_changes", SLOTS),
    ("pg_logical_slot_get_binary_changes", SLOTS),
    ("pg_logical_emit_message", SLOTS),
    ("pg_replication_origin_create", SLOTS),
    ("pg_replication_origin_drop", SLOTS),
    ("pg_replication_origin_advance", SLOTS),
    ("pg_replication_origin_session_setup", SLOTS),
    ("pg_reload_conf", SERVER),
    ("pg_rotate_logfile", SERVER),
    ("pg_promote", SERVER),
    ("pg_switch_wal", SERVER),
    ("pg_create_restore_point", SERVER),
    ("pg_backup_start", SERVER),
    ("pg_backup_stop", SERVER),
    ("pg_start_backup", SERVER),
    ("pg_stop_backup", SERVER),
    ("pg_wal_replay_pause", SERVER),
    ("pg_wal_replay_resume", SERVER),
    ("pg_log_backend_memory_contexts", SESSIONS),
    ("pg_terminate_backend", SESSIONS),
    ("pg_cancel_backend", SESSIONS),
    ("pg_stat_reset", SESSIONS),
    ("pg_stat_reset_shared", SESSIONS),
    ("pg_stat_reset_single_table_counters", SESSIONS),
    ("pg_stat_reset_single_function_counters", SESSIONS),
    ("pg_stat_reset_slru", SESSIONS),
    ("pg_stat_reset_replication_slot", SESSIONS),
    ("pg_stat_reset_subscription_stats", SESSIONS),
    ("lo_import", FILES),
    ("lo_export", FILES),
    ("pg_file_write", FILES),
    ("pg_file_sync", FILES),
    ("pg_file_rename", FILES),
    ("pg_file_unlink", FILES),
    ("dblink", OTHER_DATABASES),
    ("dblink_exec", OTHER_DATABASES),
    ("dblink_connect", OTHER_DATABASES),
    ("dblink_connect_u", OTHER_DATABASES),
    ("dblink_send_query", OTHER_DATABASES),
    ("dblink_open", OTHER_DATABASES),
];

const SLOTS: &str = "the server's replication slots or origins (called from a function), which \
     belong to the whole server and outlive a rollback";
const SERVER: &str = "the server's configuration, logs, WAL or backups (called from a function), \
     which a rollback does not undo";
const SESSIONS: &str = "other sessions or the statistics of every database (called from a \
     function), which a rollback does not undo";
const FILES: &str = "the server's files (called from a function), which a rollback does not undo";
const OTHER_DATABASES: &str = "another database through dblink (called from a function), \
     production's too, which the step's rollback does not undo";

/// Words one of these calls or statements must hold; a statement without any is not parsed.
pub fn may_name(upper: &str) -> bool {
    ["PG_", "LO_", "DBLINK", "SUBSCRIPTION", "PARAMETER", "COPY"]
        .iter()
        .any(|w| upper.contains(w))
}

/// What the statement `node` reaches past its database through a call or a statement kind
/// [`super::server_wide`] does not read, as a phrase for the refusal, or `None`.
pub fn reaches(node: &NodeEnum) -> Option<&'static str> {
    match node {
        NodeEnum::CreateSubscriptionStmt(_)
        | NodeEnum::AlterSubscriptionStmt(_)
        | NodeEnum::DropSubscriptionStmt(_) => {
            return Some(
                "a subscription, whose replication slot lives on the publisher's server and \
                 outlives a rollback",
            );
        }
        NodeEnum::GrantStmt(g) if g.objtype == ObjectType::ObjectParameterAcl as i32 => {
            return Some("privileges on a server parameter (a catalog shared by every database)");
        }
        NodeEnum::CopyStmt(c) if !c.filename.is_empty() || c.is_program => {
            return Some("a file or program on the server, which a rollback does not undo");
        }
        _ => {}
    }
    let tree = serde_json::to_value(node).ok()?;
    calls(&tree)
}

/// The first refused function called anywhere in `tree` (a statement's parse tree as JSON).
fn calls(tree: &Value) -> Option<&'static str> {
    match tree {
        Value::Object(o) => {
            if let Some(call) = o.get("FuncCall")
                && let Some(name) = call["funcname"]
                    .as_array()
                    .and_then(|n| n.last())
                    .and_then(|n| n["node"]["String"]["sval"].as_str())
                && let Some((_, what)) = CALLS.iter().find(|(f, _)| f.eq_ignore_ascii_case(name))
            {
                return Some(what);
            }
            o.values().find_map(calls)
        }
        Value::Array(items) => items.iter().find_map(calls),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::server_wide::changes;

    #[test]
    fn calls_and_statements_that_outlive_the_rollback_are_told_apart() {
        for (sql, says) in [
            (
                "SELECT pg_create_physical_replication_slot('standby')",
                "replication slots",
            ),
            (
                "SELECT * FROM pg_catalog.pg_create_logical_replication_slot('s', 'pgoutput')",
                "replication slots",
            ),
            (
                "SELECT pg_drop_replication_slot('standby')",
                "replication slots",
            ),
            (
                "DO $$BEGIN PERFORM pg_create_physical_replication_slot('s'); END$$",
                "replication slots",
            ),
            (
                "DO $$BEGIN END$$; SELECT 1 WHERE pg_reload_conf()",
                "configuration",
            ),
            ("INSERT INTO log SELECT pg_switch_wal()::text", "WAL"),
            (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
                "other sessions",
            ),
            ("SELECT lo_export(16384, '/tmp/x')", "files"),
            (
                "SELECT public.dblink_exec('dbname=app', 'DROP TABLE t')",
                "dblink",
            ),
            (
                "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p",
                "subscription",
            ),
            ("ALTER SUBSCRIPTION s DISABLE", "subscription"),
            ("DROP SUBSCRIPTION s", "subscription"),
            ("GRANT SET ON PARAMETER work_mem TO app", "server parameter"),
            (
                "REVOKE ALTER SYSTEM ON PARAMETER work_mem FROM app",
                "server parameter",
            ),
            ("COPY people TO '/tmp/people.csv'", "file or program"),
            ("COPY people FROM PROGRAM 'id'", "file or program"),
        ] {
            let what = changes(sql).unwrap_or_else(|| panic!("{sql}: not refused"));
            assert!(what.contains(says), "{sql}: {what}");
        }
        for sql in [
            "SELECT pg_catalog.pg_relation_size('people')",
            "SELECT * FROM pg_replication_slots",
            "CREATE TABLE parameter (subscription text)",
            "CREATE PUBLICATION p FOR TABLE people",
            "COPY people FROM STDIN",
            "SELECT 'pg_reload_conf()'",
            "SELECT lo_unlink(16384)",
        ] {
            assert_eq!(changes(sql), None, "{sql}");
        }
    }
}
