//! The SQL guard on a step's connection: SQLite's authorizer and progress handler, switched by
//! mode. While the host runs its own statements everything passes; while a script (`do.sql`,
//! `checks.sql`) runs, transaction control is refused; while a component runs, its capability
//! policy applies and its deadline interrupts a statement that outlives it.
//!
//! This module decides and records; it never runs SQL itself.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// PRAGMAs a component may run: they only read the schema.
const READ_ONLY_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "collation_list",
    "function_list",
];

/// How many SQLite VM steps pass between deadline checks.
const PROGRESS_STEPS: i32 = 1_000;

/// What a component may touch, from its migration.toml.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Lowercased table names it may read; `None` means all but strata's own.
    pub reads: Option<HashSet<String>>,
    /// Lowercased table names it may write, create, alter or drop; `None` means all but
    /// strata's own. A writable table is also readable.
    pub writes: Option<HashSet<String>>,
    /// The migration.toml to point at in refusals.
    pub config_file: PathBuf,
}

impl Policy {
    /// A policy from migration.toml's lists.
    pub fn new(reads: Option<&[String]>, writes: Option<&[String]>, config_file: PathBuf) -> Self {
        let set = |l: &[String]| l.iter().map(|t| t.to_ascii_lowercase()).collect();
        Policy {
            reads: reads.map(set),
            writes: writes.map(set),
            config_file,
        }
    }

    fn may_read(&self, table: &str) -> Result<(), String> {
        let t = table.to_ascii_lowercase();
        if t.starts_with("sqlite_") {
            return Ok(());
        }
        let listed = |s: &Option<HashSet<String>>| s.as_ref().is_some_and(|s| s.contains(&t));
        if self.reads.is_none() || listed(&self.reads) || listed(&self.writes) {
            return Ok(());
        }
        Err(format!(
            "reading table `{table}` is not allowed: it is not in `reads` under [sandbox] in {}; \
             add \"{table}\" there if this migration should read it",
            self.config_file.display()
        ))
    }

    fn may_write(&self, table: &str) -> Result<(), String> {
        let t = table.to_ascii_lowercase();
        if t.starts_with("sqlite_") {
            // SQLite's own bookkeeping that DDL updates; direct writes need writable_schema,
            // which is refused.
            return Ok(());
        }
        match &self.writes {
            None => Ok(()),
            Some(w) if w.contains(&t) => Ok(()),
            Some(_) => Err(format!(
                "writing table `{table}` is not allowed: it is not in `writes` under [sandbox] in \
                 {}; add \"{table}\" there if this migration should change it",
                self.config_file.display()
            )),
        }
    }
}

/// What the guard enforces right now.
#[derive(Debug, Clone, Default)]
pub enum Mode {
    /// strata's own statements: everything passes.
    #[default]
    Host,
    /// A user script: no BEGIN, COMMIT or ROLLBACK.
    Script,
    /// A component: its policy and deadline.
    Component {
        policy: Arc<Policy>,
        deadline: Instant,
    },
}

#[derive(Debug, Default)]
struct State {
    mode: Mode,
    /// Why the last statement was refused, for the error message.
    denied: Option<String>,
    /// Whether a component's deadline interrupted a statement.
    timed_out: bool,
    /// Whether a script or component ran a statement that may change the connection itself
    /// (a PRAGMA, ATTACH or DETACH, a temp object) rather than the database.
    touched_connection: bool,
}

/// A handle on the guard installed on one connection.
#[derive(Debug, Clone, Default)]
pub struct Guard(Arc<Mutex<State>>);

impl Guard {
    /// Installs the authorizer and progress handler on `conn`, in host mode.
    pub fn install(conn: &mut Connection) -> rusqlite::Result<Guard> {
        let guard = Guard::default();
        let g = guard.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            let mut state = g.lock();
            if !matches!(state.mode, Mode::Host) && touches_connection(&ctx) {
                state.touched_connection = true;
            }
            if let Some(why) = process_wide(&state.mode, &ctx) {
                state.denied = Some(why);
                return Authorization::Deny;
            }
            match decide(&state.mode, &ctx) {
                Ok(()) => Authorization::Allow,
                Err(why) => {
                    state.denied = Some(why);
                    Authorization::Deny
                }
            }
        }))?;
        let g = guard.clone();
        conn.progress_handler(
            PROGRESS_STEPS,
            Some(move || {
                let mut state = g.lock();
                if let Mode::Component { deadline, .. } = state.mode
                    && Instant::now() >= deadline
                {
                    state.timed_out = true;
                    return true;
                }
                false
            }),
        )?;
        Ok(guard)
    }

    /// Removes the authorizer and progress handler from `conn`.
    pub fn uninstall(conn: &mut Connection) -> rusqlite::Result<()> {
        conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>)?;
        conn.progress_handler(0, None::<fn() -> bool>)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Switches the mode and forgets earlier refusals and timeouts.
    pub fn set_mode(&self, mode: Mode) {
        let mut s = self.lock();
        s.mode = mode;
        s.denied = None;
        s.timed_out = false;
    }

    /// The reason for the latest refusal, taking it.
    pub fn take_denied(&self) -> Option<String> {
        self.lock().denied.take()
    }

    /// The reason for the latest refusal, leaving it for later.
    pub fn denied(&self) -> Option<String> {
        self.lock().denied.clone()
    }

    /// Whether a script or component may have changed connection-level state (settings,
    /// attached databases, temp objects) since the guard was installed.
    pub fn touched_connection(&self) -> bool {
        self.lock().touched_connection
    }

    /// Whether the component's deadline interrupted a statement since the mode was set.
    pub fn timed_out(&self) -> bool {
        self.lock().timed_out
    }
}

/// Whether a statement may change the connection rather than the database: every PRAGMA given a
/// value (a PRAGMA without one only reports) other than the schema queries, ATTACH, DETACH, and
/// anything done in a schema other than `main` (temp objects, attached databases).
fn touches_connection(ctx: &AuthContext<'_>) -> bool {
    match ctx.action {
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            pragma_value.is_some()
                && !READ_ONLY_PRAGMAS
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(pragma_name))
        }
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => true,
        AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. } => true,
        _ => ctx.database_name.is_some_and(|db| db != "main"),
    }
}

/// PRAGMAs that set something for the whole process, not for the step's connection: no step
/// may change what later steps (and other connections) run under.
const PROCESS_WIDE_PRAGMAS: &[&str] = &[
    "soft_heap_limit",
    "hard_heap_limit",
    "temp_store_directory",
    "data_store_directory",
];

/// The refusal of a statement that would change process-wide SQLite settings.
fn process_wide(mode: &Mode, ctx: &AuthContext<'_>) -> Option<String> {
    match (mode, ctx.action) {
        (Mode::Host, _) => None,
        (
            _,
            AuthAction::Pragma {
                pragma_name,
                pragma_value: Some(_),
            },
        ) if PROCESS_WIDE_PRAGMAS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(pragma_name)) =>
        {
            Some(format!(
                "PRAGMA {pragma_name} changes SQLite for the whole strata process, not for this \
                 migration's database, so later steps would run differently; remove it"
            ))
        }
        _ => None,
    }
}

/// The decision for one authorizer callback under `mode`.
fn decide(mode: &Mode, ctx: &AuthContext<'_>) -> Result<(), String> {
    match mode {
        Mode::Host => Ok(()),
        Mode::Script => match ctx.action {
            AuthAction::Transaction { .. } => Err("statements that begin, commit or roll back a \
                transaction are not allowed: strata runs each migration in one transaction of its \
                own; remove this statement"
                .into()),
            _ => Ok(()),
        },
        Mode::Component { policy, .. } => decide_component(policy, ctx),
    }
}

fn decide_component(policy: &Policy, ctx: &AuthContext<'_>) -> Result<(), String> {
    use AuthAction as A;
    if let Some(db) = ctx.database_name
        && db != "main"
    {
        return Err(format!(
            "database `{db}` is not available to components; only `main` is"
        ));
    }
    let own = |table: &str| -> Result<(), String> {
        if table.to_ascii_lowercase().starts_with("strata_") {
            Err(format!(
                "table `{table}` is strata's own bookkeeping; components may not touch it"
            ))
        } else {
            Ok(())
        }
    };
    let write = |table: &str| own(table).and_then(|()| policy.may_write(table));
    match ctx.action {
        // CTE names come as reads without a database.
        A::Read { table_name, .. } if ctx.database_name.is_none() => own(table_name),
        A::Read { table_name, .. } => own(table_name).and_then(|()| policy.may_read(table_name)),
        A::Select | A::Recursive => Ok(()),
        A::Insert { table_name } | A::Update { table_name, .. } | A::Delete { table_name } => {
            write(table_name)
        }
        A::CreateTable { table_name } | A::DropTable { table_name } => write(table_name),
        A::AlterTable { table_name, .. } | A::Analyze { table_name } => write(table_name),
        A::CreateIndex { table_name, .. } | A::DropIndex { table_name, .. } => write(table_name),
        A::CreateTrigger { table_name, .. } | A::DropTrigger { table_name, .. } => {
            write(table_name)
        }
        A::CreateView { view_name } | A::DropView { view_name } => write(view_name),
        A::Reindex { index_name } => own(index_name),
        A::Function { function_name } if function_name.eq_ignore_ascii_case("load_extension") => {
            Err("load_extension is not available to components".into())
        }
        A::Function { .. } => Ok(()),
        // These only read; their argument names a table or index, never a new setting.
        A::Pragma { pragma_name, .. }
            if READ_ONLY_PRAGMAS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(pragma_name)) =>
        {
            Ok(())
        }
        A::Pragma { pragma_name, .. } => Err(format!(
            "PRAGMA {pragma_name} is not available to components; only read-only schema \
             PRAGMAs ({}) are",
            READ_ONLY_PRAGMAS.join(", ")
        )),
        A::Attach { .. } | A::Detach { .. } => {
            Err("ATTACH and DETACH are not available to components".into())
        }
        A::Transaction { .. } | A::Savepoint { .. } => {
            Err("transaction statements are not available to \
            components: strata runs the whole step in one transaction"
                .into())
        }
        A::CreateVtable { .. } | A::DropVtable { .. } => {
            Err("virtual tables are not available to components".into())
        }
        A::CreateTempTable { .. }
        | A::CreateTempIndex { .. }
        | A::CreateTempTrigger { .. }
        | A::CreateTempView { .. }
        | A::DropTempTable { .. }
        | A::DropTempIndex { .. }
        | A::DropTempTrigger { .. }
        | A::DropTempView { .. } => Err("temporary objects are not available to components".into()),
        _ => Err(format!("{:?} is not available to components", ctx.action)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded(reads: Option<&[&str]>, writes: Option<&[&str]>) -> (Connection, Guard) {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT);
             CREATE TABLE secrets(id INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE strata_migration(x);",
        )
        .unwrap();
        let guard = Guard::install(&mut conn).unwrap();
        let list =
            |l: Option<&[&str]>| l.map(|l| l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let (r, w) = (list(reads), list(writes));
        let policy = Policy::new(
            r.as_deref(),
            w.as_deref(),
            PathBuf::from("m/migration.toml"),
        );
        guard.set_mode(Mode::Component {
            policy: Arc::new(policy),
            deadline: Instant::now() + std::time::Duration::from_secs(60),
        });
        (conn, guard)
    }

    fn refused(conn: &Connection, guard: &Guard, sql: &str) -> String {
        let r = conn.execute_batch(sql);
        assert!(r.is_err(), "{sql} should be refused");
        guard
            .take_denied()
            .unwrap_or_else(|| panic!("{sql}: no reason recorded: {r:?}"))
    }

    #[test]
    fn declared_tables_pass_and_others_are_refused_with_the_file_named() {
        let (conn, guard) = guarded(Some(&["people"]), Some(&["people"]));
        conn.execute_batch("INSERT INTO people(name) VALUES ('a'); SELECT * FROM people;")
            .unwrap();
        let why = refused(&conn, &guard, "SELECT * FROM secrets");
        assert!(
            why.contains("`secrets`") && why.contains("m/migration.toml") && why.contains("reads"),
            "{why}"
        );
        let why = refused(&conn, &guard, "UPDATE secrets SET v = 'x'");
        assert!(why.contains("writes") || why.contains("reads"), "{why}");
    }

    #[test]
    fn writes_alone_also_grant_reads() {
        let (conn, _guard) = guarded(Some(&[]), Some(&["people"]));
        conn.execute_batch("UPDATE people SET name = upper(name) WHERE id > 0")
            .unwrap();
    }

    #[test]
    fn strata_tables_attach_pragmas_and_transactions_are_refused() {
        let (conn, guard) = guarded(None, None);
        assert!(refused(&conn, &guard, "SELECT * FROM strata_migration").contains("bookkeeping"));
        assert!(refused(&conn, &guard, "DELETE FROM strata_migration").contains("bookkeeping"));
        assert!(refused(&conn, &guard, "ATTACH ':memory:' AS other").contains("ATTACH"));
        assert!(refused(&conn, &guard, "PRAGMA writable_schema = ON").contains("writable_schema"));
        assert!(refused(&conn, &guard, "PRAGMA foreign_keys = ON").contains("foreign_keys"));
        assert!(refused(&conn, &guard, "COMMIT").contains("transaction"));
        assert!(refused(&conn, &guard, "SAVEPOINT s").contains("transaction"));
        assert!(refused(&conn, &guard, "CREATE TEMP TABLE t(a)").contains("temp"));
        assert!(refused(&conn, &guard, "SELECT load_extension('x')").contains("load_extension"));
        conn.query_row(
            "SELECT count(*) FROM pragma_table_info('people')",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or_else(|e| panic!("{e}: {:?}", guard.take_denied()));
    }

    #[test]
    fn recursive_ctes_pass() {
        let (conn, _guard) = guarded(Some(&["people"]), Some(&[]));
        let n: i64 = conn
            .query_row(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT count(*) FROM n",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 10);
    }

    #[test]
    fn ddl_on_undeclared_tables_is_refused() {
        let (conn, guard) = guarded(None, Some(&["people"]));
        conn.execute_batch(
            "ALTER TABLE people ADD COLUMN extra TEXT; CREATE INDEX people_name ON people(name);",
        )
        .unwrap();
        assert!(refused(&conn, &guard, "DROP TABLE secrets").contains("`secrets`"));
        assert!(refused(&conn, &guard, "CREATE TABLE fresh(a)").contains("`fresh`"));
    }

    #[test]
    fn a_passed_deadline_interrupts_a_statement() {
        let (conn, guard) = guarded(None, None);
        guard.set_mode(Mode::Component {
            policy: Arc::new(Policy::new(None, None, PathBuf::new())),
            deadline: Instant::now(),
        });
        let r = conn.query_row(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
            [],
            |r| r.get::<_, i64>(0),
        );
        assert!(r.is_err());
        assert!(guard.timed_out());
    }

    #[test]
    fn host_mode_allows_everything_and_script_mode_only_refuses_transactions() {
        let mut conn = Connection::open_in_memory().unwrap();
        let guard = Guard::install(&mut conn).unwrap();
        conn.execute_batch("BEGIN; CREATE TABLE strata_x(a); COMMIT;")
            .unwrap();
        guard.set_mode(Mode::Script);
        conn.execute_batch("PRAGMA user_version = 3; CREATE TABLE t(a);")
            .unwrap();
        assert!(refused(&conn, &guard, "BEGIN").contains("one transaction of its own"));
    }

    #[test]
    fn scripts_that_change_the_connection_are_noticed() {
        let script = |sql: &str| -> Guard {
            let mut conn = Connection::open_in_memory().unwrap();
            conn.execute_batch("CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT);")
                .unwrap();
            let guard = Guard::install(&mut conn).unwrap();
            guard.set_mode(Mode::Script);
            conn.execute_batch(sql).unwrap();
            guard
        };
        for quiet in [
            "INSERT INTO people(name) VALUES ('a'); CREATE TABLE t(x); DROP TABLE t;",
            "SELECT * FROM pragma_table_info('people'); PRAGMA table_info(people);",
            "PRAGMA foreign_keys; PRAGMA legacy_alter_table;",
        ] {
            assert!(!script(quiet).touched_connection(), "{quiet}");
        }
        for loud in [
            "PRAGMA legacy_alter_table = ON;",
            "PRAGMA case_sensitive_like = 1;",
            "PRAGMA foreign_keys = OFF;",
            "CREATE TEMP TABLE scratch(x);",
            "CREATE TABLE temp.scratch(x);",
            "CREATE TEMP VIEW v AS SELECT 1;",
            "ATTACH ':memory:' AS other;",
        ] {
            assert!(script(loud).touched_connection(), "{loud}");
        }
        // strata's own statements do not count.
        let mut conn = Connection::open_in_memory().unwrap();
        let guard = Guard::install(&mut conn).unwrap();
        conn.execute_batch("PRAGMA cache_size = 100;").unwrap();
        assert!(!guard.touched_connection());
    }

    #[test]
    fn process_wide_pragmas_are_refused_in_scripts() {
        let mut conn = Connection::open_in_memory().unwrap();
        let guard = Guard::install(&mut conn).unwrap();
        guard.set_mode(Mode::Script);
        for sql in [
            "PRAGMA soft_heap_limit = 1000",
            "PRAGMA hard_heap_limit = 1000",
            "PRAGMA temp_store_directory = '/tmp'",
        ] {
            let why = refused(&conn, &guard, sql);
            assert!(why.contains("whole strata process"), "{why}");
        }
        // Reading them is fine.
        conn.execute_batch("PRAGMA soft_heap_limit;").unwrap();
    }
}
