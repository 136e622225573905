//! Statements of a migration's SQL that change the whole PostgreSQL server rather than the
//! database the step runs on: roles, databases, tablespaces, the server's configuration.
//!
//! The rehearsal runs a migration on the test database of the same server first, so such a
//! statement would take effect for real before the real run: a `CREATE ROLE` makes the real
//! step fail ("already exists") for ever, a `DROP ROLE` drops the production role while the
//! real step "is rolled back", an `ALTER DATABASE app SET ...` changes the real database from
//! the rehearsal. They are refused in `do.sql`, `undo.sql` and `checks.sql`, by their parse
//! tree. SQL that builds them at run time (`EXECUTE` in a `DO` block or a function) is beyond
//! this check, as any dynamic SQL is beyond a static one.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

/// Words one of these statements must hold (`GRANT role TO role` names no kind); a statement
/// without any is not parsed.
const WORDS: &[&str] = &[
    "ROLE",
    "USER",
    "GROUP",
    "DATABASE",
    "TABLESPACE",
    "SYSTEM",
    "GRANT",
    "REVOKE",
    "OWNED",
];

/// What `sql` (one statement) changes beyond its database, as a phrase for the refusal, or
/// `None`. A statement the parser cannot read is left to the server.
pub fn changes(sql: &str) -> Option<&'static str> {
    let upper = sql.to_ascii_uppercase();
    if !WORDS.iter().any(|w| upper.contains(w)) && !super::server_wide_calls::may_name(&upper) {
        return None;
    }
    let parsed = pg_query::parse(sql).ok()?;
    parsed.protobuf.stmts.iter().find_map(|s| {
        let node = s.stmt.as_ref()?.node.as_ref()?;
        server_wide(node).or_else(|| super::server_wide_calls::reaches(node))
    })
}

fn server_wide(node: &NodeEnum) -> Option<&'static str> {
    let shared = |objtype: i32| {
        [
            ObjectType::ObjectRole,
            ObjectType::ObjectDatabase,
            ObjectType::ObjectTablespace,
        ]
        .iter()
        .any(|t| *t as i32 == objtype)
    };
    match node {
        NodeEnum::CreateRoleStmt(_)
        | NodeEnum::AlterRoleStmt(_)
        | NodeEnum::AlterRoleSetStmt(_)
        | NodeEnum::DropRoleStmt(_)
        | NodeEnum::GrantRoleStmt(_) => Some("roles, which belong to the whole server"),
        NodeEnum::CreatedbStmt(_)
        | NodeEnum::AlterDatabaseStmt(_)
        | NodeEnum::AlterDatabaseSetStmt(_)
        | NodeEnum::AlterDatabaseRefreshCollStmt(_)
        | NodeEnum::DropdbStmt(_) => Some("a database by its name, the same from the rehearsal"),
        NodeEnum::CreateTableSpaceStmt(_)
        | NodeEnum::DropTableSpaceStmt(_)
        | NodeEnum::AlterTableSpaceOptionsStmt(_) => {
            Some("tablespaces, which belong to the whole server")
        }
        NodeEnum::AlterSystemStmt(_) => Some("the server's configuration"),
        NodeEnum::ReassignOwnedStmt(_) | NodeEnum::DropOwnedStmt(_) => {
            Some("what a role owns, databases and tablespaces included")
        }
        NodeEnum::GrantStmt(g) if shared(g.objtype) => {
            Some("privileges on a database or tablespace by its name")
        }
        NodeEnum::CommentStmt(c) if shared(c.objtype) => Some("a role, database or tablespace"),
        NodeEnum::SecLabelStmt(c) if shared(c.objtype) => Some("a role, database or tablespace"),
        NodeEnum::RenameStmt(r) if shared(r.rename_type) => Some("a role, database or tablespace"),
        NodeEnum::AlterOwnerStmt(o) if shared(o.object_type) => {
            Some("a database or tablespace by its name")
        }
        _ => None,
    }
}

/// The refusal of a statement that changes `what`.
pub fn refusal(what: &str) -> String {
    format!(
        "this statement changes {what}: the rehearsal on the test database (on the same server) \
         would do it for real before the real run, and the real run would then fail or undo \
         production's; do it outside strata (by hand or with your provisioning), once per \
         server, and keep the migrations to what lives in the database"
    )
}

#[cfg(test)]
mod tests {
    use super::changes;

    #[test]
    fn what_belongs_to_the_server_is_told_from_what_belongs_to_the_database() {
        for sql in [
            "CREATE ROLE reporting LOGIN",
            "create user app_ro password 'x'",
            "ALTER ROLE app SET search_path = app, public",
            "DROP ROLE IF EXISTS reporting",
            "DROP USER old",
            "GRANT reporting TO app",
            "REVOKE reporting FROM app",
            "CREATE DATABASE other",
            "ALTER DATABASE app SET search_path = evil, pg_catalog",
            "ALTER DATABASE app OWNER TO someone",
            "DROP DATABASE app",
            "CREATE TABLESPACE fast LOCATION '/ssd'",
            "ALTER SYSTEM SET work_mem = '1GB'",
            "GRANT CONNECT ON DATABASE app TO reporting",
            "COMMENT ON ROLE app IS 'x'",
            "ALTER ROLE app RENAME TO app2",
            "ALTER GROUP g ADD USER u",
            "REASSIGN OWNED BY old_app TO app",
            "DROP OWNED BY old_app",
        ] {
            assert!(changes(sql).is_some(), "{sql}");
        }
        for sql in [
            "CREATE TABLE role (id int)",
            "GRANT SELECT ON people TO reporting",
            "ALTER TABLE people OWNER TO app",
            "COMMENT ON TABLE people IS 'the database''s users'",
            "CREATE TABLE users (id int, system text)",
            "SELECT 'CREATE ROLE x'",
            "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO reporting",
            "this is not sql about a ROLE",
        ] {
            assert!(changes(sql).is_none(), "{sql}");
        }
    }
}
