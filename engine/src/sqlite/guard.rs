//! The SQL guard on a step's connection: SQLite's authorizer and progress handler, switched by
//! mode. While the host runs its own statements everything passes; while a script (`do.sql`,
//! `checks.sql`) runs, transaction control and changes to strata's bookkeeping are refused;
//! while a component runs, an allow-list applies (its capability policy, a few read-only SQLite
//! internals) and its deadline interrupts a statement that outlives it.
//!
//! The authorizer sees one action at a time and cannot look at the database, so it is paired
//! with [`Snapshot`]: what the schema and the counters looked like before a component ran, and
//! [`verify`], which checks afterwards what no single callback shows (the new name of a renamed
//! table, `sqlite_sequence` rows, the bodies of created triggers and views).
//!
//! This module decides and records; the only SQL it runs is the reads of [`Snapshot`] and the
//! probes of [`verify`], which are prepared but never stepped.

use crate::components::policy::{Policy, is_strata, own};
use std::collections::{BTreeMap, HashSet};
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

/// Table-valued functions a component may read: they see only their arguments.
const SAFE_TABLE_FUNCTIONS: &[&str] = &["json_each", "json_tree", "jsonb_each", "jsonb_tree"];

/// SQL functions refused to components, with the reason. Every other built-in function is
/// pure computation on its arguments.
const REFUSED_FUNCTIONS: &[(&str, &str)] = &[
    ("load_extension", "it loads native code"),
    ("random", UNSEEN_RANDOMNESS),
    ("randomblob", UNSEEN_RANDOMNESS),
    ("current_timestamp", UNSEEN_CLOCK),
    ("current_date", UNSEEN_CLOCK),
    ("current_time", UNSEEN_CLOCK),
    (
        "fts3_tokenizer",
        "it reads and sets native pointers of the full-text engine",
    ),
];

/// Why a component may not call `random()` or `randomblob()`.
const UNSEEN_RANDOMNESS: &str = "it reads randomness, which a component does not see, so that \
     the same database gives the same result in the rehearsal, in CI's sandbox and in \
     production; pass a seed in as data (a row do.sql writes)";

/// Why a component may not read the clock (`CURRENT_TIMESTAMP`, `date('now')`, ...).
const UNSEEN_CLOCK: &str = "it reads the clock, which a component does not see, so that the \
     same database gives the same result in the rehearsal, in CI's sandbox and in production, \
     now and years later; pass the time in as data (a row do.sql writes)";

/// Why a component may not make the date and time call `what` (see `sqlite::clock`).
pub fn unseen(what: &str) -> String {
    format!(
        "{what} is not available to components: a component sees neither the clock nor the \
         machine's time zone, so that the same database gives the same result in the \
         rehearsal, in CI's sandbox and in production, now and years later; pass the time in \
         as data (a row do.sql writes), or give the functions a time value"
    )
}

/// How many SQLite VM steps pass between deadline checks.
const PROGRESS_STEPS: i32 = 1_000;

/// What the guard enforces right now.
#[derive(Debug, Clone, Default)]
pub enum Mode {
    /// strata's own statements: everything passes.
    #[default]
    Host,
    /// A user script: no BEGIN, COMMIT or ROLLBACK, no changes to strata's tables.
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
    /// Lowercased names of the tables and views in the schema, to tell a read of a real table
    /// from a read of a CTE or subquery (both can arrive without a database name).
    schema_names: HashSet<String>,
    /// Whether a component statement was authorized to change the schema since the names were
    /// last taken.
    schema_changed: bool,
    /// Triggers and views whose creation a component was authorized to do, and triggers a
    /// script was authorized to create (for [`script_triggers`]).
    created: Created,
    /// DROPs and ALTER TABLEs let through, in any mode (for `schema::owner::Tracker`).
    touched: Vec<crate::sqlite::schema::owner::Touch>,
    /// Whether a script or component ran a statement that may change the connection itself
    /// (a PRAGMA, ATTACH or DETACH, a temp object) rather than the database.
    touched_connection: bool,
    /// Whether `sqlite::clock::hide` replaced the date and time functions on the connection,
    /// bound to this guard.
    clock_hidden: bool,
    /// While [`verify`] probes a trigger: the (lowercased) triggers and views whose text the
    /// authorizer saw compiled.
    probing: Option<HashSet<String>>,
    /// The trigger or view whose text held the latest refusal while probing.
    denied_in: Option<String>,
    /// The project's databases, which a script may not attach even read-only.
    own: Option<Arc<crate::core::identity::Reserved>>,
    /// Which of [`REFUSED_FUNCTIONS`] the text of the component statement being prepared names
    /// (as a word, a quoted name or a string): a refused function SQLite authorizes that the
    /// text does not name, outside a view or trigger, comes from the schema (a column default,
    /// a CHECK constraint) and is let through (see [`Guard::set_statement`]).
    named: Vec<&'static str>,
}

/// Triggers and views a component created, to check in [`verify`].
#[derive(Debug, Default, Clone)]
pub struct Created {
    pub triggers: Vec<String>,
    pub views: Vec<String>,
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
            if let (Some(seen), Some(accessor)) = (state.probing.as_mut(), ctx.accessor) {
                seen.insert(accessor.to_ascii_lowercase());
            }
            if !matches!(state.mode, Mode::Host) && touches_connection(&ctx) {
                state.touched_connection = true;
            }
            if let Some(why) = process_wide(&state.mode, &ctx) {
                state.denied = Some(why);
                return Authorization::Deny;
            }
            match decide(&mut state, &ctx) {
                Ok(()) => {
                    if matches!(state.mode, Mode::Script)
                        && let AuthAction::CreateTrigger { trigger_name, .. }
                        | AuthAction::CreateTempTrigger { trigger_name, .. } = ctx.action
                    {
                        state.created.triggers.push(trigger_name.to_string());
                    }
                    if let Some(t) = crate::sqlite::schema::owner::touch(&ctx) {
                        state.touched.push(t);
                    }
                    Authorization::Allow
                }
                Err(why) => {
                    if state.probing.is_some() {
                        state.denied_in = ctx.accessor.map(str::to_string);
                    }
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

    /// The project's databases (`crate::core::identity::Reserved::databases_of`): a script's
    /// `ATTACH` of one of them, in any spelling and even read-only, is refused.
    pub fn set_own_files(&self, own: Arc<crate::core::identity::Reserved>) {
        self.lock().own = Some(own);
    }

    /// Switches the mode and forgets earlier refusals, timeouts and created objects.
    pub fn set_mode(&self, mode: Mode) {
        let mut s = self.lock();
        s.mode = mode;
        s.denied = None;
        s.timed_out = false;
        s.schema_changed = false;
        s.created = Created::default();
        s.named.clear();
    }

    /// Records a refusal found outside the authorizer (by [`verify`] or the host's limits);
    /// an earlier refusal is kept.
    pub fn deny(&self, why: String) {
        let mut s = self.lock();
        if s.denied.is_none() {
            s.denied = Some(why);
        }
    }

    /// Notes which functions refused by name the component statement `sql`, about to be
    /// prepared, names itself. SQLite authorizes the functions of a table's column defaults
    /// and CHECK constraints too when a statement reads or writes the table (`SELECT
    /// created_at`, `UPDATE d SET k = ...` on a table whose `created_at` has `DEFAULT
    /// CURRENT_TIMESTAMP`): those are the reviewed schema's, as on PostgreSQL, and pass; the
    /// same functions written in the statement (in any spelling or case), or in a view or
    /// trigger it reaches, are refused. A text the tokenizer cannot read names them all.
    pub fn set_statement(&self, sql: &str) {
        let lower_has = |word: &str| {
            sql.as_bytes()
                .windows(word.len())
                .any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
        };
        let named = if !REFUSED_FUNCTIONS.iter().any(|(f, _)| lower_has(f)) {
            Vec::new()
        } else {
            match crate::core::sql::sqlite::statements(sql) {
                Ok(statements) => REFUSED_FUNCTIONS
                    .iter()
                    .map(|&(f, _)| f)
                    .filter(|f| {
                        statements
                            .iter()
                            .flatten()
                            .any(|t| t.name().is_some_and(|n| n.eq_ignore_ascii_case(f)))
                    })
                    .collect(),
                Err(_) => REFUSED_FUNCTIONS.iter().map(|&(f, _)| f).collect(),
            }
        };
        self.lock().named = named;
    }

    /// Runs `f` (strata's own reads) in host mode, then gives the guard its mode back as it was.
    pub fn as_host<T>(&self, f: impl FnOnce() -> T) -> T {
        let mode = std::mem::take(&mut self.lock().mode);
        let out = f();
        self.lock().mode = mode;
        out
    }

    /// Whether a component's statements run now.
    pub fn in_component(&self) -> bool {
        matches!(self.lock().mode, Mode::Component { .. })
    }

    /// The reason for the latest refusal, taking it.
    pub fn take_denied(&self) -> Option<String> {
        self.lock().denied.take()
    }

    /// The reason for the latest refusal, leaving it for later.
    pub fn denied(&self) -> Option<String> {
        self.lock().denied.clone()
    }

    /// The DROPs and ALTER TABLEs authorized since the last call, taking them.
    pub fn take_touched(&self) -> Vec<crate::sqlite::schema::owner::Touch> {
        std::mem::take(&mut self.lock().touched)
    }

    /// Whether a script or component may have changed connection-level state (settings,
    /// attached databases, temp objects) since the guard was installed.
    pub fn touched_connection(&self) -> bool {
        self.lock().touched_connection
    }

    /// Whether `sqlite::clock::hide` replaced the connection's date and time functions while
    /// this guard was installed (they stay; see that module).
    pub fn clock_hidden(&self) -> bool {
        self.lock().clock_hidden
    }

    /// Records that `sqlite::clock::hide` replaced the date and time functions.
    pub fn set_clock_hidden(&self) {
        self.lock().clock_hidden = true;
    }

    /// Whether the component's deadline interrupted a statement since the mode was set.
    pub fn timed_out(&self) -> bool {
        self.lock().timed_out
    }

    /// The names of the schema's tables and views, for telling tables from CTEs.
    pub fn set_schema_names(&self, names: HashSet<String>) {
        let mut s = self.lock();
        s.schema_names = names;
        s.schema_changed = false;
    }

    /// Whether a component statement changed the schema since the names were set.
    pub fn schema_changed(&self) -> bool {
        self.lock().schema_changed
    }

    /// Starts (`true`) or ends recording which triggers and views the authorizer sees
    /// compiled; ending returns them.
    fn set_probing(&self, on: bool) -> HashSet<String> {
        let mut s = self.lock();
        if on {
            s.denied_in = None;
        }
        let seen = s.probing.take().unwrap_or_default();
        if on {
            s.probing = Some(HashSet::new());
        }
        seen
    }

    /// The triggers and views the component was authorized to create, taking them.
    pub fn take_created(&self) -> Created {
        std::mem::take(&mut self.lock().created)
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
        // Reading never changes the connection, and `ALTER TABLE … RENAME` in `main` reads
        // and rewrites the temp schema's table itself (its temp triggers and views, if any,
        // were noted when they were created).
        AuthAction::Read { .. } => false,
        AuthAction::Update { table_name, .. }
            if table_name.eq_ignore_ascii_case("sqlite_temp_master")
                || table_name.eq_ignore_ascii_case("sqlite_temp_schema") =>
        {
            false
        }
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

/// PRAGMAs whose setting SQLite ignores inside a transaction (or on a database that already
/// has pages) without an error: in a step they would silently do nothing.
const NO_EFFECT_IN_A_STEP: &[&str] = &["journal_mode", "page_size", "auto_vacuum"];

/// The refusal of a statement that would change process-wide SQLite settings, or set a
/// PRAGMA that cannot take effect inside the step's transaction.
fn process_wide(mode: &Mode, ctx: &AuthContext<'_>) -> Option<String> {
    let (
        Mode::Script | Mode::Component { .. },
        AuthAction::Pragma {
            pragma_name,
            pragma_value: Some(_),
        },
    ) = (mode, ctx.action)
    else {
        return None;
    };
    let named = |list: &[&str]| list.iter().any(|p| p.eq_ignore_ascii_case(pragma_name));
    if named(PROCESS_WIDE_PRAGMAS) {
        Some(format!(
            "PRAGMA {pragma_name} changes SQLite for the whole strata process, not for this \
             migration's database, so later steps would run differently; remove it"
        ))
    } else if named(NO_EFFECT_IN_A_STEP) {
        let vacuum = if pragma_name.eq_ignore_ascii_case("journal_mode") {
            ""
        } else {
            "; VACUUM"
        };
        Some(format!(
            "PRAGMA {pragma_name} cannot change inside the step's transaction (SQLite ignores it \
             there without an error), so it would silently do nothing; set it where the \
             application opens the database, or once by hand (for example `sqlite3 app.db \
             'PRAGMA {pragma_name} = ...{vacuum}'`), and remove it from the migration"
        ))
    } else {
        None
    }
}

/// The refusal of an `ATTACH` of one of the project's databases.
fn own_attachment(filename: &str) -> String {
    format!(
        "ATTACH of '{filename}' opens one of the project's own databases (the real database, \
         the test database, a backup or a fleet's control database), which is refused in \
         migrations even read-only: the rehearsal would copy the real rows into the test \
         database, the sandbox would read production, and the real run would wait on its own \
         lock; a migration works on its own database, and reads other files only"
    )
}

/// The decision for one authorizer callback under the current mode.
fn decide(state: &mut State, ctx: &AuthContext<'_>) -> Result<(), String> {
    match &state.mode {
        Mode::Host => Ok(()),
        Mode::Script => decide_script(ctx, state.own.as_deref()),
        Mode::Component { policy, .. } => {
            let policy = Arc::clone(policy);
            decide_component(&policy, state, ctx)
        }
    }
}

fn decide_script(
    ctx: &AuthContext<'_>,
    own: Option<&crate::core::identity::Reserved>,
) -> Result<(), String> {
    use AuthAction as A;
    let bookkeeping = |name: &str| -> Result<(), String> {
        if is_strata(name) {
            Err(format!(
                "`{name}` is strata's own bookkeeping: strata writes it itself, and a change \
                 here would silently break the ledger; remove this statement (a script may read \
                 strata's tables, never change them)"
            ))
        } else {
            Ok(())
        }
    };
    match ctx.action {
        A::Transaction { .. } => Err("statements that begin, commit or roll back a \
            transaction are not allowed: strata runs each migration in one transaction of its \
            own; remove this statement"
            .into()),
        A::Attach { filename } if own.is_some_and(|o| o.attached_by(filename)) => {
            Err(own_attachment(filename))
        }
        A::Attach { filename } if !crate::core::sql::sqlite::attach_is_contained(filename) => {
            Err(format!(
                "ATTACH of '{filename}' for writing is refused in migrations: what the migration \
                 changes there is outside strata's backup and restore, and the rehearsal on the \
                 test database would change the same file first; attach it read-only \
                 (`ATTACH 'file:{filename}?mode=ro' AS name`) to read from it, and change that \
                 database with its own migrations"
            ))
        }
        A::Unknown {
            code: rusqlite::ffi::SQLITE_ATTACH,
            ..
        } => Err(
            "ATTACH of a file named by an expression is refused in migrations: name it \
             as a string literal opened read-only (`ATTACH 'file:legacy.db?mode=ro' AS legacy`)"
                .into(),
        ),
        A::Pragma {
            pragma_name,
            pragma_value: Some(_),
        } if pragma_name.eq_ignore_ascii_case("writable_schema") => Err(
            "PRAGMA writable_schema is refused in migrations: it lets SQL write the schema table \
             directly, past every check strata makes on triggers and on its own tables, and a \
             mistake there corrupts the database; change a table with the rebuild SQLite \
             documents instead (create the new table, copy the rows, drop the old one, rename \
             the new one)"
                .into(),
        ),
        A::Pragma {
            pragma_name,
            pragma_value: Some(_),
        } if pragma_name.eq_ignore_ascii_case("schema_version") => Err(
            "PRAGMA schema_version = N is refused in migrations: it sets SQLite's schema cookie \
             by hand, which can corrupt the database; remove it (SQLite changes the cookie \
             itself on every schema change)"
                .into(),
        ),
        A::Insert { table_name }
        | A::Update { table_name, .. }
        | A::Delete { table_name }
        | A::CreateTable { table_name }
        | A::CreateTempTable { table_name }
        | A::DropTable { table_name }
        | A::DropTempTable { table_name }
        | A::AlterTable { table_name, .. }
        | A::CreateView {
            view_name: table_name,
        }
        | A::CreateTempView {
            view_name: table_name,
        }
        | A::DropView {
            view_name: table_name,
        }
        | A::DropTempView {
            view_name: table_name,
        }
        | A::CreateVtable { table_name, .. }
        | A::DropVtable { table_name, .. } => bookkeeping(table_name),
        A::CreateIndex {
            index_name,
            table_name,
        }
        | A::CreateTempIndex {
            index_name,
            table_name,
        }
        | A::DropIndex {
            index_name,
            table_name,
        }
        | A::DropTempIndex {
            index_name,
            table_name,
        }
        | A::CreateTrigger {
            trigger_name: index_name,
            table_name,
        }
        | A::CreateTempTrigger {
            trigger_name: index_name,
            table_name,
        }
        | A::DropTrigger {
            trigger_name: index_name,
            table_name,
        }
        | A::DropTempTrigger {
            trigger_name: index_name,
            table_name,
        } => bookkeeping(index_name).and_then(|()| bookkeeping(table_name)),
        _ => Ok(()),
    }
}

/// SQLite's internal tables a component may read: the schema, AUTOINCREMENT counters and
/// planner statistics (DDL reads them too). `sqlite_stat4.sample` holds copies of indexed
/// values of every table, so it is open only when `reads` is (ANALYZE reads it back, so a
/// component with a `reads` list cannot ANALYZE).
fn internal_read(policy: &Policy, table: &str, column: &str) -> Option<Result<(), String>> {
    let t = table.to_ascii_lowercase();
    match t.as_str() {
        "sqlite_master" | "sqlite_schema" | "sqlite_temp_master" | "sqlite_temp_schema"
        | "sqlite_sequence" | "sqlite_stat1" => Some(Ok(())),
        "sqlite_stat4" if column.eq_ignore_ascii_case("sample") && policy.reads.is_some() => {
            Some(Err(format!(
                "reading sqlite_stat4.sample is not allowed: it holds copies of indexed values \
                 of every table, and `reads` under [sandbox] in {} is a list (this includes \
                 ANALYZE, which reads the samples back; run ANALYZE in do.sql instead)",
                policy.config_file.display()
            )))
        }
        "sqlite_stat4" => Some(Ok(())),
        _ => None,
    }
}

/// Whether the name is one of the table-valued functions a component may read.
fn safe_table_function(table: &str) -> bool {
    let t = table.to_ascii_lowercase();
    SAFE_TABLE_FUNCTIONS.contains(&t.as_str())
        || t.strip_prefix("pragma_")
            .is_some_and(|p| READ_ONLY_PRAGMAS.contains(&p))
}

/// The allow-list for a component: every action not matched here is refused.
fn decide_component(
    policy: &Policy,
    state: &mut State,
    ctx: &AuthContext<'_>,
) -> Result<(), String> {
    use AuthAction as A;
    component_database(ctx)?;
    let write = |table: &str| policy.may_write(table);
    match ctx.action {
        A::Read {
            table_name,
            column_name,
        } => component_read(policy, state, ctx, table_name, column_name),
        A::Select | A::Recursive => Ok(()),
        A::Insert { table_name } if table_name.eq_ignore_ascii_case("sqlite_sequence") => Err(
            "adding rows to sqlite_sequence is not allowed: its counters belong to the tables \
             they count"
                .into(),
        ),
        // SQLite itself refuses direct writes to the schema table (writable_schema is refused
        // here, and defensive mode is on); its own DDL writes it through these callbacks. A
        // counter or statistic row of a table outside `writes` is checked after the call.
        A::Insert { table_name } | A::Update { table_name, .. } | A::Delete { table_name }
            if table_name.to_ascii_lowercase().starts_with("sqlite_") =>
        {
            Ok(())
        }
        A::Insert { table_name } | A::Update { table_name, .. } | A::Delete { table_name } => {
            write(table_name)
        }
        A::Analyze { table_name } => write(table_name),
        A::Reindex { index_name } => own(index_name),
        A::Function { function_name } => match REFUSED_FUNCTIONS
            .iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(function_name))
        {
            // The schema's own default or CHECK (see `Guard::set_statement`); native code
            // never passes.
            Some((f, _))
                if ctx.accessor.is_none()
                    && !state.named.contains(f)
                    && !matches!(*f, "load_extension" | "fts3_tokenizer") =>
            {
                Ok(())
            }
            Some((f, why)) => Err(format!("{f} is not available to components: {why}")),
            None => Ok(()),
        },
        // A default or CHECK the component writes is not the reviewed schema's: SQLite
        // authorizes its functions only when a later statement evaluates it, as if the schema
        // had them (see `Guard::set_statement`).
        A::CreateTable { table_name } | A::AlterTable { table_name, .. }
            if !state.named.is_empty() =>
        {
            Err(format!(
                "defining table `{table_name}` with {} is not available to components: a \
                 default or CHECK a component writes would read the clock or randomness for it \
                 later; only the reviewed schema's (do.sql's) may",
                state.named[0]
            ))
        }
        // These only read the schema; their argument names a table or index, never a new
        // setting.
        A::Pragma {
            pragma_name,
            pragma_value,
        } if READ_ONLY_PRAGMAS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(pragma_name)) =>
        {
            match pragma_value {
                Some(v) if is_strata(v.trim_matches(|c| c == '\'' || c == '"')) => own(v),
                _ => Ok(()),
            }
        }
        action => component_schema_change(policy, state, action)
            .unwrap_or_else(|| Err(component_refusal(action))),
    }
}

/// Only `main`; `temp` only for SQLite's own reads and updates of the temp schema table,
/// which ALTER TABLE ... RENAME does. For ALTER TABLE the database is the action's first
/// argument: SQLite passes a dropped column's name in the slot that otherwise holds the
/// database (`ALTER TABLE t DROP COLUMN c` comes as database `c`).
fn component_database(ctx: &AuthContext<'_>) -> Result<(), String> {
    use AuthAction as A;
    let temp_schema_table = |t: &str| {
        t.eq_ignore_ascii_case("sqlite_temp_master") || t.eq_ignore_ascii_case("sqlite_temp_schema")
    };
    let database = match ctx.action {
        A::AlterTable { database_name, .. } => Some(database_name),
        _ => ctx.database_name,
    };
    if let Some(db) = database
        && db != "main"
    {
        let temp_internal = db == "temp"
            && match ctx.action {
                A::Read { table_name, .. } | A::Update { table_name, .. } => {
                    temp_schema_table(table_name)
                }
                _ => false,
            };
        if !temp_internal {
            return Err(format!(
                "database `{db}` is not available to components; only `main` is"
            ));
        }
    }
    Ok(())
}

/// A component reading `column_name` of `table_name`: a table of the database as `reads`
/// allows, SQLite's internal tables, the read-only table functions, a CTE or a subquery.
fn component_read(
    policy: &Policy,
    state: &State,
    ctx: &AuthContext<'_>,
    table_name: &str,
    column_name: &str,
) -> Result<(), String> {
    own(table_name)?;
    if state
        .schema_names
        .contains(&table_name.to_ascii_lowercase())
    {
        return policy.may_read(table_name).map_err(|e| {
            if ctx.database_name.is_none() {
                format!(
                    "{e} (if `{table_name}` is a CTE or subquery name here, rename it: it \
                     shadows a table)"
                )
            } else {
                e
            }
        });
    }
    if let Some(decision) = internal_read(policy, table_name, column_name) {
        return decision;
    }
    if safe_table_function(table_name) {
        return Ok(());
    }
    // No database and no table of that name: a CTE or a subquery.
    if ctx.database_name.is_none() {
        return Ok(());
    }
    Err(format!(
        "reading `{table_name}` is not available to components: it is neither a table \
         of the database nor one of the read-only table functions ({}, pragma_{})",
        SAFE_TABLE_FUNCTIONS.join(", "),
        READ_ONLY_PRAGMAS.join(", pragma_")
    ))
}

/// A component creating, altering or dropping a table, index, trigger or view: allowed on
/// what `writes` allows (a trigger only with `triggers = true`), and noted in `state`.
/// `None` for any other action.
fn component_schema_change(
    policy: &Policy,
    state: &mut State,
    action: AuthAction<'_>,
) -> Option<Result<(), String>> {
    use AuthAction as A;
    let write = |table: &str| policy.may_write(table);
    let changes_schema = |state: &mut State| state.schema_changed = true;
    Some(match action {
        // SQLite refuses `sqlite_` names from users; ANALYZE creates its statistics tables.
        A::CreateTable { table_name } if table_name.to_ascii_lowercase().starts_with("sqlite_") => {
            Ok(())
        }
        A::CreateTable { table_name } => write(table_name).map(|()| {
            state.schema_names.insert(table_name.to_ascii_lowercase());
            changes_schema(state);
        }),
        A::DropTable { table_name } | A::AlterTable { table_name, .. } => {
            write(table_name).map(|()| changes_schema(state))
        }
        A::CreateIndex {
            index_name,
            table_name,
        }
        | A::DropIndex {
            index_name,
            table_name,
        } => own(index_name)
            .and_then(|()| write(table_name))
            .map(|()| changes_schema(state)),
        A::CreateTrigger {
            trigger_name,
            table_name,
        } => {
            if !policy.triggers {
                return Some(Err(format!(
                    "creating trigger `{trigger_name}` is not allowed: a trigger runs later \
                     outside the sandbox, so components may create triggers only when \
                     migration.toml grants it; add `triggers = true` under [sandbox] in {} if \
                     this migration should (each trigger's body is then checked against \
                     `reads` and `writes`), or create the trigger in do.sql",
                    policy.config_file.display()
                )));
            }
            own(trigger_name)
                .and_then(|()| write(table_name))
                .map(|()| {
                    state.created.triggers.push(trigger_name.to_string());
                    changes_schema(state);
                })
        }
        A::DropTrigger {
            trigger_name,
            table_name,
        } => own(trigger_name)
            .and_then(|()| write(table_name))
            .map(|()| changes_schema(state)),
        A::CreateView { view_name } => write(view_name).map(|()| {
            state.schema_names.insert(view_name.to_ascii_lowercase());
            state.created.views.push(view_name.to_string());
            changes_schema(state);
        }),
        A::DropView { view_name } => write(view_name).map(|()| changes_schema(state)),
        _ => return None,
    })
}

/// Why an action no rule allows is refused.
fn component_refusal(action: AuthAction<'_>) -> String {
    use AuthAction as A;
    match action {
        A::Pragma { pragma_name, .. } => format!(
            "PRAGMA {pragma_name} is not available to components; only read-only schema \
             PRAGMAs ({}) are",
            READ_ONLY_PRAGMAS.join(", ")
        ),
        A::Attach { .. } | A::Detach { .. } => {
            "ATTACH and DETACH are not available to components".into()
        }
        A::Transaction { .. } | A::Savepoint { .. } => "transaction statements are not available \
             to components: strata runs the whole step in one transaction"
            .into(),
        A::CreateVtable { .. } | A::DropVtable { .. } => {
            "virtual tables are not available to components".into()
        }
        A::CreateTempTable { .. }
        | A::CreateTempIndex { .. }
        | A::CreateTempTrigger { .. }
        | A::CreateTempView { .. }
        | A::DropTempTable { .. }
        | A::DropTempIndex { .. }
        | A::DropTempTrigger { .. }
        | A::DropTempView { .. } => "temporary objects are not available to components".into(),
        _ => format!("{action:?} is not available to components"),
    }
}

/// Checks the triggers a script (do.sql) created since the last call: a trigger whose text
/// names one of strata's tables is refused. A trigger runs later, whenever the application
/// writes its table, with no guard on the connection; SQLite has no dynamic SQL, so a trigger
/// can change a table only by naming it, and a trigger that names none of strata's can never
/// change them. Temp triggers are read too (they would fire on strata's own later writes).
pub fn script_triggers(conn: &Connection, guard: &Guard) -> Result<(), String> {
    use rusqlite::OptionalExtension;
    let names = std::mem::take(&mut guard.lock().created.triggers);
    for name in names {
        for schema in ["main", "temp"] {
            let sql: Option<Option<String>> = conn
                .query_row(
                    &format!(
                        "SELECT sql FROM {schema}.sqlite_schema \
                          WHERE type = 'trigger' AND name = ?1 COLLATE NOCASE"
                    ),
                    [&name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| format!("cannot read trigger `{name}`: {e}"))?;
            let Some(sql) = sql.flatten() else {
                continue;
            };
            if let Some(named) = strata_name_in(&sql) {
                return Err(format!(
                    "trigger `{name}` names `{named}`, strata's own bookkeeping: it would change \
                     or read strata's tables whenever it fires, long after this step, where no \
                     check sees it; a script may read strata's tables, never change them, and \
                     its triggers may not name them at all"
                ));
            }
        }
    }
    Ok(())
}

/// The first name in `sql` that is one of strata's (`strata_*`, in any quoting and case), or a
/// placeholder when the text cannot be read (refused too: it cannot be checked).
fn strata_name_in(sql: &str) -> Option<String> {
    let Ok(tokens) = crate::core::sql::sqlite::tokenize(sql) else {
        return Some("(a text that cannot be read)".into());
    };
    tokens
        .iter()
        .filter(|t| t.is_name())
        .filter_map(|t| t.name())
        .find(|n| is_strata(n))
}

/// One row of the schema table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Object {
    kind: String,
    name: String,
    table: String,
    sql: Option<String>,
}

/// The schema and the counters before a component ran, to compare with afterwards.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Keyed by lowercased (type, name).
    objects: BTreeMap<(String, String), Object>,
    /// `sqlite_sequence` and `sqlite_stat1` rows: (table, key) -> value, as text.
    counters: BTreeMap<(String, String), String>,
}

impl Snapshot {
    /// Reads the schema and counters of `conn` (needs host mode or component mode: it reads
    /// only what components may read).
    pub fn take(conn: &Connection) -> rusqlite::Result<Snapshot> {
        let mut objects = BTreeMap::new();
        for schema in ["sqlite_master", "sqlite_temp_master"] {
            let mut stmt = conn.prepare(&format!(
                "SELECT type, name, tbl_name, sql FROM {schema} WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            ))?;
            let rows = stmt.query_map([], |r| {
                Ok(Object {
                    kind: r.get(0)?,
                    name: r.get(1)?,
                    table: r.get(2)?,
                    sql: r.get(3)?,
                })
            })?;
            for o in rows {
                let o = o?;
                let prefix = if schema == "sqlite_temp_master" {
                    "temp."
                } else {
                    ""
                };
                objects.insert(
                    (
                        o.kind.clone(),
                        format!("{prefix}{}", o.name.to_ascii_lowercase()),
                    ),
                    o,
                );
            }
        }
        let mut counters = BTreeMap::new();
        let exists = |name: &str| -> rusqlite::Result<bool> {
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )
        };
        let mut read = |sql: &str| -> rusqlite::Result<()> {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                ))
            })?;
            for row in rows {
                let (table, key, value) = row?;
                counters.insert((table, key), value);
            }
            Ok(())
        };
        if exists("sqlite_sequence")? {
            read("SELECT name, 'seq', CAST(seq AS TEXT) FROM sqlite_sequence")?;
        }
        if exists("sqlite_stat1")? {
            read("SELECT tbl, 'stat1:' || coalesce(idx, ''), stat FROM sqlite_stat1")?;
        }
        Ok(Snapshot { objects, counters })
    }

    /// The lowercased names of the tables and views, for [`Guard::set_schema_names`].
    pub fn names(&self) -> HashSet<String> {
        self.objects
            .iter()
            .filter(|((kind, _), _)| kind == "table" || kind == "view")
            .map(|(_, o)| o.name.to_ascii_lowercase())
            .collect()
    }
}

/// Why a component may not run with `policy` on this database (`None` when nothing stops it):
/// each foreign key that links a table of `writes` to a table the component may not read,
/// whichever way it points. A step runs with `foreign_keys` off (actions such as `ON DELETE
/// CASCADE` do not run in it) and checks the keys when its actions are done: whether the step
/// fails then tells whether a key the component wrote is in the other table, or whether a row
/// it deleted or re-keyed is referenced from it. Checked before the component runs and again
/// when it ends (a table or column it added may carry such a key).
pub fn foreign_key_reach(conn: &Connection, policy: &Policy) -> rusqlite::Result<Option<String>> {
    if policy.writes.is_none() {
        return Ok(None);
    }
    let mut stmt = conn.prepare(
        "SELECT m.name, f.id, f.\"table\", group_concat(f.\"from\", ', '), f.on_delete, \
                f.on_update \
           FROM main.sqlite_schema m, pragma_foreign_key_list(m.name, 'main') f \
          WHERE m.type = 'table' \
          GROUP BY m.name, f.id ORDER BY m.name, f.id",
    )?;
    let tables: HashSet<String> = conn
        .prepare("SELECT lower(name) FROM main.sqlite_schema WHERE type = 'table'")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut found = Vec::new();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let child: String = row.get(0)?;
        let parent: String = row.get(2)?;
        let columns: String = row.get::<_, Option<String>>(3)?.unwrap_or_default();
        let actions: Vec<String> = [(4, "ON DELETE"), (5, "ON UPDATE")]
            .into_iter()
            .filter_map(|(i, on)| {
                let a: String = row.get(i).ok()?;
                (a != "NO ACTION").then(|| format!("{on} {a}"))
            })
            .collect();
        let key = if actions.is_empty() {
            format!("`{child}({columns})` REFERENCES `{parent}`")
        } else {
            format!(
                "`{child}({columns})` REFERENCES `{parent}` {}",
                actions.join(" ")
            )
        };
        let hidden = |t: &str| policy.may_read(t).is_err();
        if policy.writable(&child)
            && hidden(&parent)
            && tables.contains(&parent.to_ascii_lowercase())
        {
            found.push(format!(
                "`{child}` (in `writes`): its foreign key {key} links it to `{parent}`, and the \
                 step's foreign-key check would tell the component whether the keys it writes \
                 are in `{parent}`: add \"{parent}\" to `reads`"
            ));
        } else if policy.writable(&parent) && !policy.writable(&child) && hidden(&child) {
            let actions = if actions.is_empty() {
                String::new()
            } else {
                " (its actions do not run in a step: foreign keys are off until the check)"
                    .to_string()
            };
            found.push(format!(
                "`{parent}` (in `writes`): foreign key {key}{actions} points at it from \
                 `{child}`, and the step's foreign-key check would tell the component whether \
                 `{child}` refers to the rows it deletes or re-keys: add \"{child}\" to \
                 `reads`"
            ));
        }
    }
    if found.is_empty() {
        return Ok(None);
    }
    let listed = found.len();
    found.truncate(MAX_REACH_LISTED);
    let more = if listed > MAX_REACH_LISTED {
        format!("\n  ... and {} more", listed - MAX_REACH_LISTED)
    } else {
        String::new()
    };
    Ok(Some(format!(
        "the tables of `writes` are linked by foreign keys to tables the component may not \
         read:\n  {}{more}\nList those tables under [sandbox] in {} (or change the schema), so \
         that what the component can learn is what the manifest says",
        found.join("\n  "),
        policy.config_file.display()
    )))
}

/// How many foreign keys a refusal lists.
const MAX_REACH_LISTED: usize = 20;

/// Checks what a component left behind against `before`: every object it added or removed
/// (including the new name of a renamed table) is in `writes` and not strata's, strata's own
/// objects are unchanged, no counter or statistic row of a table outside `writes` changed, and
/// every trigger and view it created reads and writes only what the policy allows (the
/// trigger's firing statements and the view are prepared, never run, under the component's
/// policy). The guard must be in the component's mode; the first problem is returned.
pub fn verify(
    conn: &Connection,
    guard: &Guard,
    policy: &Policy,
    before: &Snapshot,
    created: &Created,
) -> Result<(), String> {
    let after =
        Snapshot::take(conn).map_err(|e| format!("cannot read the schema after the call: {e}"))?;
    let file = policy.config_file.display();
    for (key, o) in &after.objects {
        let old = before.objects.get(key);
        if old == Some(o) {
            continue;
        }
        if is_strata(&o.name) || is_strata(&o.table) {
            return Err(format!(
                "the component changed or created {} `{}`: strata's bookkeeping is not the \
                 component's to change",
                o.kind, o.name
            ));
        }
        // A changed definition of an existing object follows a rename of a table it refers to.
        if old.is_some_and(|old| old.table.eq_ignore_ascii_case(&o.table)) {
            continue;
        }
        let (subject, what) = match o.kind.as_str() {
            "table" | "view" => (&o.name, o.kind.clone()),
            _ => (&o.table, format!("{} `{}` on", o.kind, o.name)),
        };
        if !policy.writable(subject) {
            return Err(format!(
                "the component created {what} `{subject}` (by CREATE or ALTER TABLE ... RENAME \
                 TO), which is not in `writes` under [sandbox] in {file}; add \"{subject}\" there \
                 if this migration should create it"
            ));
        }
    }
    for (key, o) in &before.objects {
        if !after.objects.contains_key(key) && (is_strata(&o.name) || is_strata(&o.table)) {
            return Err(format!(
                "the component removed {} `{}`: strata's bookkeeping is not the component's to \
                 change",
                o.kind, o.name
            ));
        }
    }
    let keys: HashSet<&(String, String)> = before
        .counters
        .keys()
        .chain(after.counters.keys())
        .collect();
    for key in keys {
        if before.counters.get(key) != after.counters.get(key) && !policy.writable(&key.0) {
            let table = if key.1 == "seq" {
                "sqlite_sequence"
            } else {
                "sqlite_stat1"
            };
            return Err(format!(
                "the component changed the {table} row of `{}`, which is not in `writes` under \
                 [sandbox] in {file}{}",
                key.0,
                if is_strata(&key.0) {
                    " (strata's own bookkeeping)"
                } else {
                    ""
                }
            ));
        }
    }
    // Every trigger the component created, by name, and every trigger that is new however it
    // came to be: each is checked in full, or refused.
    let mut triggers: Vec<&Object> = Vec::new();
    for ((kind, name), o) in &after.objects {
        let named = created
            .triggers
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&o.name));
        if kind == "trigger"
            && (named || !before.objects.contains_key(&(kind.clone(), name.clone())))
        {
            triggers.push(o);
        }
    }
    for o in triggers {
        check_trigger(conn, guard, o).map_err(|e| {
            // The refusal may come from another trigger the probe fired: name that one.
            let culprit = guard
                .lock()
                .denied_in
                .take()
                .filter(|t| !t.eq_ignore_ascii_case(&o.name));
            let whose = match culprit {
                Some(t) => format!("trigger `{t}` (fired with `{}` on `{}`)", o.name, o.table),
                None => format!("trigger `{}` on `{}`", o.name, o.table),
            };
            format!(
                "{whose} is refused: {e}; a component's trigger may read only tables in `reads` \
                 and write only tables in `writes` under [sandbox] in {file}, and is checked in \
                 full when it is created"
            )
        })?;
    }
    for view in &created.views {
        if !after
            .objects
            .contains_key(&("view".to_string(), view.to_ascii_lowercase()))
        {
            continue;
        }
        let probe = format!("SELECT * FROM {}", quote(view));
        probe_under_policy(conn, guard, &probe).map_err(|e| {
            format!(
                "view `{view}` is refused: {e}; a component's view may read only tables in \
                 `reads` under [sandbox] in {file}"
            )
        })?;
    }
    Ok(())
}

/// What fires a trigger, from its CREATE TRIGGER text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Insert,
    Delete,
    /// `UPDATE`, or `UPDATE OF` these columns.
    Update(Vec<String>),
}

/// The event of a trigger from its stored text: `CREATE [TEMP] TRIGGER [IF NOT EXISTS]
/// [schema.]name [BEFORE | AFTER | INSTEAD OF] event ON [schema.]table ...`. `None` when the
/// text does not read that way (the trigger is then refused: it cannot be checked).
fn trigger_event(sql: &str) -> Option<(Event, String)> {
    use crate::core::sql::sqlite::tokenize;
    let tokens = tokenize(sql).ok()?;
    let mut t = tokens.iter().peekable();
    let word = |kw: &str, t: &mut std::iter::Peekable<std::slice::Iter<'_, _>>| {
        t.next_if(|x: &&crate::core::sql::sqlite::Token| x.is(kw))
            .is_some()
    };
    if !word("CREATE", &mut t) {
        return None;
    }
    let _ = word("TEMP", &mut t) || word("TEMPORARY", &mut t);
    if !word("TRIGGER", &mut t) {
        return None;
    }
    if t.peek().is_some_and(|x| x.is("IF")) {
        let mut ahead = t.clone();
        ahead.next();
        if ahead.peek().is_some_and(|x| x.is("NOT")) {
            t.next();
            t.next();
            if !word("EXISTS", &mut t) {
                return None;
            }
        }
    }
    let name =
        |t: &mut std::iter::Peekable<std::slice::Iter<'_, crate::core::sql::sqlite::Token>>| {
            let first = t.next().filter(|x| x.is_name())?.name()?;
            if t.next_if(|x| x.is_punct(".")).is_some() {
                return t.next().filter(|x| x.is_name())?.name();
            }
            Some(first)
        };
    name(&mut t)?;
    if !(word("BEFORE", &mut t) || word("AFTER", &mut t))
        && word("INSTEAD", &mut t)
        && !word("OF", &mut t)
    {
        return None;
    }
    let event = if word("INSERT", &mut t) {
        Event::Insert
    } else if word("DELETE", &mut t) {
        Event::Delete
    } else if word("UPDATE", &mut t) {
        let mut columns = Vec::new();
        if word("OF", &mut t) {
            loop {
                columns.push(t.next().filter(|x| x.is_name())?.name()?);
                if t.next_if(|x| x.is_punct(",")).is_none() {
                    break;
                }
            }
        }
        Event::Update(columns)
    } else {
        return None;
    };
    if !word("ON", &mut t) {
        return None;
    }
    let table = name(&mut t)?;
    Some((event, table))
}

/// Checks one trigger in full: the statement that fires it (its own event on its own table,
/// `UPDATE` setting exactly its `UPDATE OF` columns) is prepared, never run, under the
/// component's policy, which compiles the WHEN clause and every statement of the body; any
/// error refuses it, and so does a trigger the probe did not compile (whatever the reason, it
/// was not checked). `UPDATE OF` a column that cannot be set now is refused: SQLite compiles
/// such a trigger only once the column exists, which a check today cannot see.
fn check_trigger(conn: &Connection, guard: &Guard, o: &Object) -> Result<(), String> {
    let sql = o.sql.as_deref().unwrap_or_default();
    let Some((event, table)) = trigger_event(sql) else {
        return Err("its CREATE TRIGGER text cannot be read, so it cannot be checked".into());
    };
    if !table.eq_ignore_ascii_case(&o.table) {
        return Err(format!(
            "its text names table `{table}` but SQLite has it on `{}`, so it cannot be checked",
            o.table
        ));
    }
    let t = quote(&o.table);
    let probe = match &event {
        Event::Insert => format!("INSERT INTO {t} DEFAULT VALUES"),
        Event::Delete => format!("DELETE FROM {t}"),
        Event::Update(columns) if columns.is_empty() => {
            let first: Option<String> = conn
                .query_row(
                    "SELECT name FROM pragma_table_xinfo(?1) WHERE hidden = 0 ORDER BY cid LIMIT 1",
                    [&o.table],
                    |r| r.get(0),
                )
                .map_err(|e| format!("cannot read the columns of `{}`: {e}", o.table))?;
            let Some(c) = first else {
                return Err(format!("`{}` has no column an UPDATE can set", o.table));
            };
            format!("UPDATE {t} SET {} = {}", quote(&c), quote(&c))
        }
        Event::Update(columns) => {
            // Each column alone: one that cannot be set is named in the refusal.
            for c in columns {
                let one = format!("UPDATE {t} SET {} = 0", quote(c));
                guard.set_probing(true);
                let r = conn.prepare(&one).map(drop);
                guard.set_probing(false);
                if let Err(e) = r
                    && !matches!(
                        e.sqlite_error_code(),
                        Some(rusqlite::ErrorCode::AuthorizationForStatementDenied)
                    )
                {
                    return Err(format!(
                        "it fires on UPDATE OF `{c}`, which cannot be set in `{}` ({e}): SQLite \
                         would compile it only once such a column exists, unchecked; name only \
                         existing columns of `{}`",
                        o.table, o.table
                    ));
                }
                guard.take_denied();
            }
            let set: Vec<String> = columns
                .iter()
                .map(|c| format!("{} = {}", quote(c), quote(c)))
                .collect();
            format!("UPDATE {t} SET {}", set.join(", "))
        }
    };
    guard.set_probing(true);
    let r = conn.prepare(&probe).map(drop);
    let compiled = guard.set_probing(false);
    if let Err(e) = r {
        return Err(match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::AuthorizationForStatementDenied) => {
                guard.take_denied().unwrap_or_else(|| e.to_string())
            }
            _ => format!("it does not compile ({e})"),
        });
    }
    if !compiled.contains(&o.name.to_ascii_lowercase()) {
        return Err(format!(
            "`{probe}` did not compile it, so its body could not be checked"
        ));
    }
    Ok(())
}

/// Prepares (never steps) `sql` and reports why it was refused or does not compile.
fn probe_under_policy(conn: &Connection, guard: &Guard, sql: &str) -> Result<(), String> {
    match conn.prepare(sql) {
        Ok(_) => Ok(()),
        Err(e) => Err(match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::AuthorizationForStatementDenied) => {
                guard.take_denied().unwrap_or_else(|| e.to_string())
            }
            _ => format!("it does not compile ({e})"),
        }),
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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
        guard.set_schema_names(Snapshot::take(&conn).unwrap().names());
        (conn, guard)
    }

    fn count(conn: &Connection, sql: &str) -> rusqlite::Result<i64> {
        conn.query_row(sql, [], |r| r.get(0))
    }

    #[test]
    fn a_count_of_an_undeclared_table_is_refused_and_a_cte_is_not() {
        let (conn, guard) = guarded(Some(&["people"]), Some(&[]));
        let why = refused(&conn, &guard, "SELECT count(*) FROM secrets");
        assert!(why.contains("`secrets`") && why.contains("reads"), "{why}");
        assert!(refused(&conn, &guard, "SELECT 1 FROM people, secrets").contains("`secrets`"));
        // A CTE named like a forbidden table is refused rather than guessed at.
        let why = refused(
            &conn,
            &guard,
            "WITH secrets AS (SELECT 1) SELECT count(*) FROM secrets",
        );
        assert!(why.contains("CTE"), "{why}");
        assert_eq!(
            count(
                &conn,
                "WITH c AS (SELECT 1 UNION ALL SELECT 2) SELECT count(*) FROM c"
            )
            .unwrap(),
            2
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM people").unwrap(), 0);
        assert_eq!(
            count(&conn, "SELECT count(*) FROM (SELECT id FROM people)").unwrap(),
            0
        );
    }

    #[test]
    fn internals_and_table_functions_are_an_allow_list() {
        let (conn, guard) = guarded(None, None);
        conn.execute_batch(
            "CREATE INDEX people_name ON people(name); INSERT INTO people(name) VALUES ('a');
             CREATE TABLE counted(id INTEGER PRIMARY KEY AUTOINCREMENT);",
        )
        .unwrap();
        // Readable internals: the schema, counters, statistics.
        count(&conn, "SELECT count(*) FROM sqlite_master").unwrap();
        count(&conn, "SELECT count(*) FROM pragma_table_info('people')").unwrap();
        count(&conn, "SELECT count(*) FROM json_each('[1, 2]')").unwrap();
        // Everything else is refused, even with `reads` open.
        assert!(refused(&conn, &guard, "SELECT * FROM dbstat").contains("dbstat"));
        assert!(
            refused(
                &conn,
                &guard,
                "SELECT * FROM pragma_table_info('strata_migration')"
            )
            .contains("bookkeeping")
        );
        assert!(refused(&conn, &guard, "SELECT fts3_tokenizer('simple')").contains("fts3"));
        assert!(
            refused(
                &conn,
                &guard,
                "INSERT INTO sqlite_sequence(name, seq) VALUES ('strata_migration', 1)"
            )
            .contains("sqlite_sequence")
        );
        assert!(
            refused(&conn, &guard, "CREATE INDEX strata_x ON people(name)").contains("strata_x")
        );
    }

    #[test]
    fn sqlite_stat4_samples_stay_closed_unless_reads_is_open() {
        let (conn, guard) = guarded(None, None);
        conn.execute_batch(
            "CREATE INDEX people_name ON people(name); INSERT INTO people(name) VALUES ('x');
             ANALYZE people;",
        )
        .unwrap_or_else(|e| panic!("{e}: {:?}", guard.take_denied()));
        count(&conn, "SELECT count(sample) FROM sqlite_stat4").unwrap();
        let people = ["people".to_string()];
        guard.set_mode(Mode::Component {
            policy: Arc::new(Policy::new(Some(&people), Some(&people), PathBuf::new())),
            deadline: Instant::now() + std::time::Duration::from_secs(60),
        });
        guard.set_schema_names(Snapshot::take(&conn).unwrap().names());
        count(&conn, "SELECT count(*) FROM sqlite_stat1").unwrap();
        assert!(refused(&conn, &guard, "ANALYZE people").contains("ANALYZE"));
        assert!(refused(&conn, &guard, "SELECT sample FROM sqlite_stat4").contains("sample"));
    }

    #[test]
    fn json_each_over_a_forbidden_table_is_refused() {
        let (conn, guard) = guarded(Some(&["people"]), Some(&[]));
        let why = refused(
            &conn,
            &guard,
            "SELECT value FROM json_each((SELECT json_group_array(v) FROM secrets))",
        );
        assert!(why.contains("`secrets`"), "{why}");
    }

    #[test]
    fn renaming_and_dropping_declared_tables_works() {
        let (conn, _guard) = guarded(None, Some(&["people", "persons"]));
        conn.execute_batch("ALTER TABLE people RENAME TO persons; DROP TABLE persons;")
            .unwrap();
    }

    #[test]
    fn an_instead_of_trigger_on_a_view_is_probed_for_its_own_event_only() {
        let (conn, guard) = guarded(None, Some(&["people", "v"]));
        guard.set_mode(Mode::Component {
            policy: Arc::new(
                Policy::new(None, Some(&["people".into(), "v".into()]), PathBuf::new())
                    .with_triggers(true),
            ),
            deadline: Instant::now() + std::time::Duration::from_secs(60),
        });
        let before = Snapshot::take(&conn).unwrap();
        guard.set_schema_names(before.names());
        conn.execute_batch(
            "CREATE VIEW v AS SELECT id, name FROM people;
             CREATE TRIGGER v_upd INSTEAD OF UPDATE ON v BEGIN
               UPDATE people SET name = new.name WHERE id = old.id; END;",
        )
        .unwrap();
        let created = guard.take_created();
        let policy = Policy::new(None, Some(&["people".into(), "v".into()]), PathBuf::new());
        verify(&conn, &guard, &policy, &before, &created).unwrap();
        // The same trigger writing outside `writes` is refused.
        conn.execute_batch(
            "CREATE TRIGGER v_upd2 INSTEAD OF UPDATE ON v BEGIN
               UPDATE secrets SET v = new.name; END;",
        )
        .unwrap();
        let created = guard.take_created();
        let why = verify(&conn, &guard, &policy, &before, &created).unwrap_err();
        assert!(why.contains("v_upd2") && why.contains("`secrets`"), "{why}");
    }

    /// Runs `sql` as a component with `triggers = true`, `writes` = `writes` and `reads` =
    /// people, then verifies; the refusal, if any.
    fn trigger_check(writes: &[&str], setup: &str, sql: &str) -> Result<(), String> {
        let (conn, guard) = guarded(None, None);
        guard.set_mode(Mode::Host);
        conn.execute_batch(setup).unwrap();
        let writes: Vec<String> = writes.iter().map(|s| s.to_string()).collect();
        let policy = Policy::new(Some(&["people".to_string()]), Some(&writes), PathBuf::new())
            .with_triggers(true);
        guard.set_mode(Mode::Component {
            policy: Arc::new(policy.clone()),
            deadline: Instant::now() + std::time::Duration::from_secs(60),
        });
        let before = Snapshot::take(&conn).unwrap();
        guard.set_schema_names(before.names());
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{e}: {:?}", guard.take_denied()));
        let created = guard.take_created();
        verify(&conn, &guard, &policy, &before, &created)
    }

    #[test]
    fn a_trigger_on_a_column_that_does_not_exist_yet_is_refused() {
        let why = trigger_check(
            &["people"],
            "",
            "CREATE TRIGGER t AFTER UPDATE OF nick ON people BEGIN \
               INSERT INTO people(id, name) SELECT 1000 + id, v FROM secrets; DELETE FROM secrets; END",
        )
        .unwrap_err();
        assert!(why.contains("`t`") && why.contains("`nick`"), "{why}");
        // Among existing columns too, and quoted or commented any way.
        let why = trigger_check(
            &["people"],
            "",
            "CREATE TRIGGER \"t 2\" /* x */ AFTER UPDATE OF [name], \"nick\" ON people \
             BEGIN DELETE FROM people; END",
        )
        .unwrap_err();
        assert!(why.contains("`nick`"), "{why}");
        // A generated column cannot be set: refused as well.
        let why = trigger_check(
            &["people", "g"],
            "CREATE TABLE g(a INTEGER, b AS (a + 1));",
            "CREATE TRIGGER t AFTER UPDATE OF b ON g BEGIN DELETE FROM g; END",
        )
        .unwrap_err();
        assert!(why.contains("`b`"), "{why}");
    }

    #[test]
    fn an_update_of_trigger_is_probed_setting_exactly_its_columns() {
        // On existing columns, rowid included, a body within the policy passes...
        trigger_check(
            &["people"],
            "",
            "CREATE TRIGGER t AFTER UPDATE OF name ON people BEGIN \
               UPDATE people SET name = upper(new.name) WHERE id = new.id; END;
             CREATE TRIGGER r AFTER UPDATE OF rowid ON people BEGIN SELECT 1; END;",
        )
        .unwrap();
        // ... and one outside it is refused, whichever column it names.
        for of in ["rowid", "_rowid_", "NAME", "id, name"] {
            let why = trigger_check(
                &["people"],
                "",
                &format!(
                    "CREATE TRIGGER t AFTER UPDATE OF {of} ON people BEGIN \
                     DELETE FROM strata_migration; END"
                ),
            )
            .unwrap_err();
            assert!(why.contains("strata_migration"), "{of}: {why}");
        }
    }

    #[test]
    fn a_trigger_body_that_does_not_compile_is_refused_even_on_a_view_error() {
        // Writing a view without an INSTEAD OF trigger does not compile now; once someone adds
        // one, the rest of the body would run unchecked.
        let why = trigger_check(
            &["people", "v"],
            "",
            "CREATE VIEW v AS SELECT id FROM people;
             CREATE TRIGGER t AFTER INSERT ON people BEGIN \
               DELETE FROM strata_migration; INSERT INTO v VALUES (1); END",
        )
        .unwrap_err();
        assert!(why.contains("`t`"), "{why}");
        // A body naming a table that does not exist yet cannot be checked.
        let why = trigger_check(
            &["people", "later"],
            "",
            "CREATE TRIGGER t AFTER DELETE ON people BEGIN INSERT INTO later VALUES (1); END",
        )
        .unwrap_err();
        assert!(why.contains("later"), "{why}");
    }

    #[test]
    fn trigger_texts_are_read_whatever_their_spelling() {
        let cases = [
            (
                "CREATE TRIGGER t AFTER INSERT ON p BEGIN SELECT 1; END",
                Event::Insert,
                "p",
            ),
            (
                "create temp trigger if not exists main.\"é\" instead of delete on main.[v w] begin select 1; end",
                Event::Delete,
                "v w",
            ),
            (
                "CREATE TRIGGER before BEFORE UPDATE OF \"a\"\"b\", `c` ON 用户 BEGIN SELECT 1; END",
                Event::Update(vec!["a\"b".into(), "c".into()]),
                "用户",
            ),
            (
                "CREATE TRIGGER t UPDATE ON p BEGIN SELECT 1; END",
                Event::Update(vec![]),
                "p",
            ),
        ];
        for (sql, event, table) in cases {
            assert_eq!(
                trigger_event(sql),
                Some((event, table.to_string())),
                "{sql}"
            );
        }
        assert_eq!(trigger_event("CREATE TRIGGER t AFTER ON p"), None);
        assert_eq!(trigger_event("CREATE TRIGGER t(é"), None);
    }

    #[test]
    fn triggers_need_the_grant() {
        let (conn, guard) = guarded(None, Some(&["people"]));
        let why = refused(
            &conn,
            &guard,
            "CREATE TRIGGER t AFTER INSERT ON people BEGIN SELECT 1; END",
        );
        assert!(why.contains("triggers = true"), "{why}");
    }

    #[test]
    fn scripts_may_read_but_never_change_strata_tables() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE strata_migration(x); CREATE TABLE t(a);")
            .unwrap();
        let guard = Guard::install(&mut conn).unwrap();
        guard.set_mode(Mode::Script);
        count(&conn, "SELECT count(*) FROM strata_migration").unwrap();
        for sql in [
            "INSERT INTO strata_migration VALUES (1)",
            "DROP TABLE strata_migration",
            "CREATE TRIGGER x AFTER INSERT ON strata_migration BEGIN SELECT 1; END",
            "CREATE INDEX strata_i ON t(a)",
            "ALTER TABLE strata_migration ADD COLUMN y",
        ] {
            assert!(refused(&conn, &guard, sql).contains("bookkeeping"), "{sql}");
        }
    }

    #[test]
    fn scripts_may_attach_only_what_the_backup_does_not_miss() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("legacy.db");
        Connection::open(&legacy)
            .unwrap()
            .execute_batch("CREATE TABLE old(a); INSERT INTO old VALUES (1);")
            .unwrap();
        let mut conn = Connection::open_in_memory().unwrap();
        let guard = Guard::install(&mut conn).unwrap();
        guard.set_mode(Mode::Script);
        let legacy = legacy.display().to_string();
        for sql in [
            format!("ATTACH '{legacy}' AS l"),
            format!("ATTACH DATABASE 'file:{legacy}?mode=rw' AS l"),
            format!("ATTACH 'file:{legacy}?mode=ro&mode=rw' AS l"),
            format!("ATTACH 'file:{legacy}?mod%65=rw' AS l"),
            format!("ATTACH 'file:{legacy}?mode=ro&vfs=unix' AS l"),
            format!("ATTACH 'FILE:{legacy}?mode=ro' AS l"),
            format!("ATTACH 'file:{legacy}#?mode=ro' AS l"),
            format!("ATTACH 'file:{legacy}?x=1#&mode=ro' AS l"),
        ] {
            assert!(refused(&conn, &guard, &sql).contains("ATTACH"), "{sql}");
        }
        assert!(
            refused(&conn, &guard, &format!("ATTACH '{legacy}' || '' AS l")).contains("literal")
        );
        conn.execute_batch(&format!("ATTACH 'file:{legacy}?mode=ro' AS l"))
            .unwrap();
        assert_eq!(count(&conn, "SELECT count(*) FROM l.old").unwrap(), 1);
        assert!(conn.execute_batch("INSERT INTO l.old VALUES (2)").is_err());
        conn.execute_batch(
            "DETACH l; ATTACH ':memory:' AS m; ATTACH '' AS t; CREATE TABLE m.x(a);",
        )
        .unwrap();
    }

    /// attack5 #9: the project's own databases (the real one, the test database, backups,
    /// control databases) may not be attached even read-only, in any spelling: the rehearsal
    /// would copy production rows into the test database, the sandbox would read them, and the
    /// real run would wait on its own lock.
    #[test]
    fn scripts_may_not_attach_the_project_s_own_databases_even_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let (app, other) = (dir.path().join("app.db"), dir.path().join("other.db"));
        for db in [&app, &other] {
            Connection::open(db)
                .unwrap()
                .execute_batch("CREATE TABLE people(a); INSERT INTO people VALUES (1);")
                .unwrap();
        }
        std::fs::hard_link(&app, dir.path().join("link.db")).unwrap();
        std::fs::create_dir(dir.path().join(".strata")).unwrap();
        std::fs::copy(&app, dir.path().join(".strata/backup.db")).unwrap();
        let mut conn = Connection::open_in_memory().unwrap();
        let guard = Guard::install(&mut conn).unwrap();
        guard.set_own_files(Arc::new(crate::core::identity::Reserved::new(
            &[dir.path().join(".strata")],
            std::slice::from_ref(&app),
        )));
        guard.set_mode(Mode::Script);
        let root = dir.path().display().to_string();
        for file in [
            format!("file:{root}/app.db?mode=ro"),
            format!("file:{root}/./app.db?mode=ro&cache=shared"),
            format!("file://localhost{root}/app.db?mode=ro"),
            format!("file://{root}/app.db?mode=ro"),
            format!("file:{root}/link.db?mode=ro"),
            format!("file:{root}/.strata/backup.db?mode=ro"),
            format!("file:{root}/.strata/../app.db?immutable=1&mode=ro"),
            format!("{root}/app.db"),
        ] {
            let why = refused(&conn, &guard, &format!("ATTACH '{file}' AS r"));
            assert!(why.contains("the project's own databases"), "{file}: {why}");
        }
        conn.execute_batch(&format!("ATTACH 'file:{root}/other.db?mode=ro' AS o"))
            .unwrap();
        conn.execute_batch("ATTACH 'file:app.db?mode=memory' AS m; ATTACH ':memory:' AS n")
            .unwrap();
    }

    #[test]
    fn scripts_may_not_write_the_schema_table_by_hand() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE strata_migration(x); CREATE TABLE t(a);")
            .unwrap();
        let guard = Guard::install(&mut conn).unwrap();
        guard.set_mode(Mode::Script);
        for sql in [
            "PRAGMA writable_schema = ON",
            "PRAGMA main.WRITABLE_SCHEMA = 1",
            "PRAGMA writable_schema = RESET",
            "PRAGMA writable_schema('on')",
        ] {
            assert!(
                refused(&conn, &guard, sql).contains("writable_schema"),
                "{sql}"
            );
        }
        assert!(refused(&conn, &guard, "PRAGMA schema_version = 99").contains("cookie"));
        // Without writable_schema SQLite itself keeps the schema table out of reach.
        let planted = conn.execute_batch(
            "INSERT INTO sqlite_master(type, name, tbl_name, rootpage, sql) VALUES ('trigger', \
             'x', 't', 0, 'CREATE TRIGGER x AFTER INSERT ON t BEGIN DELETE FROM strata_migration; END')",
        );
        assert!(planted.is_err());
        // Reading them is fine.
        count(&conn, "SELECT count(*) FROM pragma_writable_schema").unwrap();
        conn.execute_batch("PRAGMA writable_schema").unwrap();
    }

    #[test]
    fn a_script_trigger_that_names_strata_tables_is_refused_in_every_spelling() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE strata_migration(x); CREATE TABLE t(a);")
            .unwrap();
        let guard = Guard::install(&mut conn).unwrap();
        guard.set_mode(Mode::Script);
        for (i, body) in [
            "DELETE FROM strata_migration;",
            "DELETE FROM \"STRATA_MIGRATION\";",
            "DELETE FROM [Strata_Migration];",
            "DELETE FROM `strata_migration` WHERE 1;",
            "DELETE FROM 'strata_migration';",
            "UPDATE t SET a = (SELECT count(*) FROM strata_migration);",
        ]
        .iter()
        .enumerate()
        {
            for temp in ["", "TEMP "] {
                conn.execute_batch(&format!(
                    "CREATE {temp}TRIGGER tr{i} AFTER INSERT ON t BEGIN {body} END"
                ))
                .unwrap();
                let why = script_triggers(&conn, &guard).unwrap_err();
                assert!(why.contains("strata's own bookkeeping"), "{body}: {why}");
                conn.execute_batch(&format!("DROP TRIGGER tr{i}")).unwrap();
            }
        }
        conn.execute_batch("CREATE TRIGGER fine AFTER INSERT ON t BEGIN UPDATE t SET a = 1; END")
            .unwrap();
        script_triggers(&conn, &guard).unwrap();
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

    #[test]
    fn pragmas_a_transaction_ignores_are_refused_in_scripts() {
        let mut conn = Connection::open_in_memory().unwrap();
        let guard = Guard::install(&mut conn).unwrap();
        guard.set_mode(Mode::Script);
        for sql in [
            "PRAGMA journal_mode = WAL",
            "PRAGMA main.page_size = 8192",
            "PRAGMA auto_vacuum = FULL",
        ] {
            let why = refused(&conn, &guard, sql);
            assert!(why.contains("silently do nothing"), "{sql}: {why}");
        }
        // Reading them is fine, and the host may still set them.
        conn.execute_batch("PRAGMA journal_mode; PRAGMA page_size;")
            .unwrap();
        guard.set_mode(Mode::Host);
        conn.execute_batch("PRAGMA auto_vacuum = NONE").unwrap();
    }
}
