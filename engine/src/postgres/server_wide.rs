//! Statements of a migration's SQL that change the whole PostgreSQL server rather than the
//! database the step runs on: roles, databases, tablespaces, the server's configuration.
//!
//! The rehearsal runs a migration on the test database of the same server first, so such a
//! statement would take effect for real before the real run: a `CREATE ROLE` makes the real
//! step fail ("already exists") for ever, a `DROP ROLE` drops the production role while the
//! real step "is rolled back", an `ALTER DATABASE app SET ...` changes the real database from
//! the rehearsal. They are refused in `do.sql`, `undo.sql` and `checks.sql`, by their parse
//! tree, and so are they inside the bodies a statement carries: a `DO` block, and a function or
//! procedure created in `LANGUAGE plpgsql` (read with PostgreSQL's own PL/pgSQL parser) or
//! `LANGUAGE sql` (its body as a string or `BEGIN ATOMIC`), at any depth. SQL that builds them
//! at run time (`EXECUTE` of a string made in a `DO` block or a function) is beyond this check,
//! as any dynamic SQL is beyond a static one, and so are bodies in other languages.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

/// Words one of these statements must hold (`GRANT role TO role` names no kind), or one that
/// carries a body to read (whose strings may spell the others with escapes); a statement
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
    "DO",
    "FUNCTION",
    "PROCEDURE",
];

/// How deep bodies inside bodies are read; a statement nested deeper is refused as unreadable.
const DEPTH: usize = 16;

/// What `sql` (one statement, or a body's statements) changes beyond its database, as a phrase
/// for the refusal, or `None`. A statement the parser cannot read is left to the server.
pub fn changes(sql: &str) -> Option<&'static str> {
    changes_at(sql, 0)
}

fn changes_at(sql: &str, depth: usize) -> Option<&'static str> {
    if depth > DEPTH {
        return Some("what strata reads only to a depth: bodies nested more than 16 deep");
    }
    let upper = sql.to_ascii_uppercase();
    if !upper
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| WORDS.contains(&w))
        && !super::server_wide_calls::may_name(&upper)
    {
        return None;
    }
    let parsed = pg_query::parse(sql).ok()?;
    parsed.protobuf.stmts.iter().find_map(|s| {
        let node = s.stmt.as_ref()?.node.as_ref()?;
        let text = statement_text(sql, s.stmt_location, s.stmt_len);
        in_node(node, text, depth)
    })
}

/// The text of one statement of `sql`, from the parser's byte offsets (the whole of `sql` if
/// they do not fall on its characters).
fn statement_text(sql: &str, location: i32, len: i32) -> &str {
    let start = usize::try_from(location).unwrap_or(0);
    let end = match usize::try_from(len) {
        Ok(0) | Err(_) => sql.len(),
        Ok(n) => start.saturating_add(n).min(sql.len()),
    };
    sql.get(start..end).unwrap_or(sql)
}

/// A statement's node, and the bodies it carries (`text`: the statement itself).
fn in_node(node: &NodeEnum, text: &str, depth: usize) -> Option<&'static str> {
    if let Some(what) = server_wide(node).or_else(|| super::server_wide_calls::reaches(node)) {
        return Some(what);
    }
    match node {
        NodeEnum::DoStmt(d) => {
            let (language, body) = language_and_body(&d.args);
            match language.as_deref().unwrap_or("plpgsql") {
                "plpgsql" if !body.is_empty() => in_plpgsql(text, &body, depth),
                _ => None,
            }
        }
        NodeEnum::CreateFunctionStmt(f) => {
            let (language, body) = language_and_body(&f.options);
            let sql_body = f.sql_body.as_ref().and_then(|b| in_sql_body(b, depth));
            if sql_body.is_some() {
                return sql_body;
            }
            match language.as_deref() {
                Some("plpgsql") if !body.is_empty() => in_plpgsql(text, &body, depth),
                Some("sql") | None => body.iter().find_map(|b| changes_at(b, depth + 1)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The `LANGUAGE` (lower case) and the `AS` strings of a `DO` block's or a function's options.
fn language_and_body(options: &[pg_query::protobuf::Node]) -> (Option<String>, Vec<String>) {
    let mut language = None;
    let mut body = Vec::new();
    for o in options {
        let Some(NodeEnum::DefElem(e)) = o.node.as_ref() else {
            continue;
        };
        let arg = e.arg.as_ref().and_then(|a| a.node.as_ref());
        match (e.defname.as_str(), arg) {
            ("language", Some(NodeEnum::String(s))) => {
                language = Some(s.sval.to_ascii_lowercase());
            }
            ("as", Some(NodeEnum::String(s))) => body.push(s.sval.clone()),
            ("as", Some(NodeEnum::List(l))) => {
                body.extend(l.items.iter().filter_map(|i| match i.node.as_ref() {
                    Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                    _ => None,
                }))
            }
            _ => {}
        }
    }
    (language, body)
}

/// A `BEGIN ATOMIC` (or `RETURN`) body: its statements, in lists of lists.
fn in_sql_body(node: &pg_query::protobuf::Node, depth: usize) -> Option<&'static str> {
    match node.node.as_ref()? {
        NodeEnum::List(l) => l.items.iter().find_map(|i| in_sql_body(i, depth)),
        other => in_node(other, "", depth + 1),
    }
}

/// A PL/pgSQL body (`statement`: the `DO` or `CREATE FUNCTION` that carries it, `body`: its
/// source), read with PostgreSQL's PL/pgSQL parser: every SQL statement and expression in it
/// is judged as a statement of its own. A body that parser cannot read (it resolves no
/// catalog, so `%TYPE` of a table can fail it) is searched for the statements this module
/// refuses, from each keyword that can start one to the next `;`.
fn in_plpgsql(statement: &str, body: &[String], depth: usize) -> Option<&'static str> {
    let parsed = match statement {
        "" => Err(()),
        statement => pg_query::parse_plpgsql(statement).map_err(|_| ()),
    };
    match parsed {
        Ok(tree) => {
            let mut queries = Vec::new();
            collect_queries(&tree, &mut queries);
            queries.iter().find_map(|q| changes_at(q, depth + 1))
        }
        Err(_) => body.iter().find_map(|b| by_keywords(b, depth)),
    }
}

/// Every `query` of a PL/pgSQL parse tree (the SQL of its statements and expressions).
fn collect_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("query", serde_json::Value::String(q)) => out.push(q.clone()),
                    _ => collect_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_queries(v, out)),
        _ => {}
    }
}

/// The statements of a body no parser read, tried from each keyword that can start one this
/// module refuses (or a body that could hold one) to the next `;`.
fn by_keywords(body: &str, depth: usize) -> Option<&'static str> {
    const STARTS: &[&str] = &[
        "CREATE", "ALTER", "DROP", "GRANT", "REVOKE", "REASSIGN", "COMMENT", "SECURITY", "DO",
    ];
    let upper = body.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    (0..bytes.len())
        .filter(|&i| (i == 0 || !word(bytes[i - 1])) && body.is_char_boundary(i))
        .filter(|&i| STARTS.iter().any(|k| upper[i..].starts_with(k)))
        .find_map(|i| {
            let end = body[i..].find(';').map_or(body.len(), |e| i + e);
            changes_at(&body[i..end], depth + 1)
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
            // Inside the bodies a statement carries (attack5 #3).
            "DO $$ BEGIN CREATE ROLE x NOLOGIN; END $$",
            "DO LANGUAGE plpgsql $b$ BEGIN IF true THEN DROP ROLE x; END IF; END $b$",
            "DO $$ BEGIN BEGIN ALTER SYSTEM SET work_mem = '1GB'; EXCEPTION WHEN OTHERS THEN NULL; END; END $$",
            "DO $$ DECLARE r record; BEGIN FOR r IN SELECT 1 LOOP GRANT a TO b; END LOOP; END $$",
            "DO $o$ BEGIN DO $i$ BEGIN CREATE ROLE x; END $i$; END $o$",
            "CREATE PROCEDURE mk() LANGUAGE sql AS 'CREATE ROLE x NOLOGIN'",
            "CREATE FUNCTION mk() RETURNS void LANGUAGE sql AS $$ SELECT 1; CREATE ROLE x $$",
            "CREATE FUNCTION mk() RETURNS void LANGUAGE sql AS E'CREATE \\x52OLE x'",
            "CREATE OR REPLACE FUNCTION mk() RETURNS void LANGUAGE plpgsql AS $$ BEGIN CREATE DATABASE y; END $$",
            "CREATE FUNCTION mk(n int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN n := n + 1; REASSIGN OWNED BY a TO b; RETURN n; END $$",
            "CREATE FUNCTION mk() RETURNS void LANGUAGE plpgsql AS $$ DECLARE v people.name%TYPE; BEGIN CREATE ROLE x; END $$",
            "CREATE FUNCTION mk() RETURNS void LANGUAGE sql AS $f$ DO $$ BEGIN CREATE ROLE x; END $$ $f$",
            "CREATE PROCEDURE mk() LANGUAGE sql BEGIN ATOMIC CREATE ROLE x; END",
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
            "DO $$ BEGIN CREATE TABLE t (id int); RAISE NOTICE 'CREATE ROLE x'; END $$",
            "DO $$ BEGIN EXECUTE 'SELECT 1'; END $$",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END",
            "CREATE FUNCTION f(n int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN n + 1; END $$",
            "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING",
        ] {
            assert!(changes(sql).is_none(), "{sql}");
        }
    }
}
