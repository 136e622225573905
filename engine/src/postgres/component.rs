//! The PostgreSQL side of `strata:migrate/sql`: what a component's calls do inside the step's
//! transaction, and the capabilities the server itself enforces.
//!
//! Capabilities: before the component runs, [`Postgres::enter`] creates a NOLOGIN role for the
//! call (named from the database, [`role_name`]), grants it `SELECT` on the tables of `reads`
//! and `SELECT, INSERT, UPDATE, DELETE` on those of `writes` (with the sequences they own), and
//! `SET LOCAL ROLE`s to it;
//! [`Postgres::leave`] resets the role and drops it. All of it happens in the step's
//! transaction, so nothing outlives the step, and a failed step leaves no role behind. The
//! `strata` schema is never granted. The server checks every table a statement touches,
//! through views, functions and subqueries alike.
//!
//! What the role alone cannot stop is checked on the statement's parse tree before it is sent
//! ([`pg_check`]): one `SELECT`/`VALUES`/`TABLE`, `INSERT`, `UPDATE`, `DELETE` or `MERGE` per
//! call, only the relations of the manifest (and reading the system catalogs), only
//! side-effect-free built-in functions, operators and types of `pg_catalog`; relations are
//! qualified by strata and the statement runs under `search_path = pg_catalog, pg_temp`. Each
//! call also sets the role, the search path and the statement timeout again; when the
//! component ends, every session setting is put back to what it was before it, so the rest of
//! the step runs under strata's settings whatever happened.
//!
//! Results are bounded on the server: each statement returning rows is wrapped ([`sized`]) so
//! that the server computes each row's size and sends a row larger than the budget as NULLs
//! and its size; rows are received one at a time and a cursor fetch stops at the budget,
//! moving the (scrollable) cursor back over the rows it read past.
//!
//! Each call runs inside a savepoint: a statement that fails is undone alone and the
//! transaction stays usable, as a failed statement is on SQLite. Values: integers, floating
//! point, booleans (as 0/1), text and bytea map to WIT values; numeric, dates, times,
//! timestamps, uuid and json come back as text; parameters are bound by the types the server
//! infers for them (text values in PostgreSQL's text format, so the server parses dates,
//! numerics and the like itself).

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};
use postgres::{Client, Statement};
use wasmtime::Result as WResult;
use wasmtime::component::Resource;

use crate::components::bindings::sql;
use crate::components::host::PackedRequest;
use crate::components::host::{
    CursorSlot, Cursors, HostState, MAX_ROWS_PER_CALL, ROW_OVERHEAD, VALUE_OVERHEAD,
};
use crate::components::{Call, Called, ComponentError, Ended, Outcome, Policy, Sandbox};
use crate::postgres::guard::{self, Access, Catalog, Checked, Kind as StatementKind, Refusal};
use crate::postgres::set_based::{self, Arrays};
use crate::postgres::statement_cache::StatementCache;

/// The savepoint each host call runs in.
const SAVEPOINT: &str = "strata_component_call";
/// Rows fetched from a cursor per round trip at most.
const MAX_FETCH: usize = 10_000;

/// A component's database on PostgreSQL: the step's client, inside the step's transaction,
/// switched to the call's role.
pub struct Postgres {
    client: Client,
    /// The call's role, quoted.
    role: String,
    /// migration.toml, named in refusals.
    config_file: PathBuf,
    /// Statements prepared during this call, by their text (the recent ones: a statement
    /// forgotten is closed on the server as it is dropped).
    statements: StatementCache<Statement>,
    /// Named prepared statements of batches (see [`Batch`]), by their text; deallocated when
    /// forgotten or when the call ends.
    prepared: StatementCache<String>,
    /// Statements whose batches run set-based ([`set_based`]), by their text: the name of the
    /// prepared rewritten statement, or `None` where the statement does not qualify.
    set_based: StatementCache<Option<String>>,
    cursors: Cursors<Cursor>,
    opened: u64,
    deadline: Instant,
    /// The step's `statement_timeout`; zero for none.
    statement_timeout: Duration,
    /// Whether the call savepoint exists.
    savepoint: bool,
    /// Why a statement was refused, if one was: the step fails even if the guest carries on.
    denied: Option<String>,
    /// Whether the component's time ran out inside a statement.
    timed_out: bool,
    /// Rows the component's statements changed.
    rows_changed: u64,
    /// What the component's statements are judged against.
    catalog: Catalog,
    /// Statements that passed the check during this call, by their text.
    checked: StatementCache<Checked>,
    /// The session's settings before the component, put back by [`Postgres::leave`].
    settings: Settings,
}

/// What a component call on PostgreSQL came to, once its role is gone.
pub struct Left {
    /// Why a statement was refused, or the role found changed.
    pub denied: Option<String>,
    /// Whether the component's time ran out inside a statement.
    pub timed_out: bool,
    /// Rows the component's statements changed.
    pub rows_changed: u64,
    /// Why leaving the role failed, if it did.
    pub cleanup: Option<String>,
}

/// What [`Postgres::enter`] set up on the client.
pub struct Entered {
    role: String,
    config_file: PathBuf,
    deadline: Instant,
    statement_timeout: Duration,
    catalog: Catalog,
    settings: Settings,
}

/// The session's settings when the component started (name, value), put back when it ends.
type Settings = (Vec<String>, Vec<String>);

/// An open server-side cursor, and the rows fetched but not yet handed to the guest.
struct Cursor {
    name: String,
    columns: Vec<String>,
    exhausted: bool,
    /// Bytes per row seen so far, to size the next fetch.
    average_row: usize,
    /// The largest row (as [`row_size`] counts it) the server sends whole; a larger one
    /// arrives as NULLs and its size.
    row_limit: usize,
    /// Rows handed to the component so far: where the cursor goes back to after a fetch it
    /// read past.
    delivered: u64,
}

/// Why a host call failed, before it becomes a WIT error.
enum Fail {
    Sql(postgres::Error),
    /// Refused by the statement check: a capability, so it fails the step.
    Refused(String),
    /// The statement cannot run as asked (wrong kind for the call, parameter count).
    Syntax(String),
    /// A value that cannot cross between PostgreSQL and the component.
    Value(String),
    /// A result larger than the budget.
    TooLarge(&'static str, usize),
    /// The component's time ran out before the statement started.
    OutOfTime,
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        Fail::Sql(e)
    }
}

/// Whose run a component's call is in: a tenant's (`tenant`, its schema) or the database's own
/// (`None`), and the tenants' schemas strata.toml lists on the database (out of the database's
/// own reach even before their first run).
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub tenant: Option<&'a str>,
    pub fleet_schemas: &'a [String],
}

impl Postgres {
    /// Creates the call's role, grants it what `policy` allows, and switches to it, inside the
    /// step's open transaction on `client`; then the client is the component's until
    /// [`Postgres::leave`]. On failure the step rolls back (the transaction may be aborted).
    pub fn enter(
        client: &mut Client,
        policy: &Policy,
        scope: Scope<'_>,
        timeout: Duration,
        statement_timeout: Duration,
    ) -> Result<Entered, String> {
        let tenant = scope.tenant;
        let role = role_name(client, tenant).map_err(|e| {
            format!(
                "cannot name the component's role: {}",
                crate::postgres::describe_error(&e)
            )
        })?;
        // What to put back afterwards, then the settings the lexer reads pinned before any
        // other statement: strata's own (the grants' names, the catalog's parameters) are read
        // by the server as strata wrote them too.
        let settings = settings(client)
            .and_then(|s| client.batch_execute(HOST_SETTINGS).map(|()| s))
            .map_err(|e| {
                format!(
                    "cannot read or set the session's settings: {}",
                    crate::postgres::describe_error(&e)
                )
            })?;
        let grants = grants(client, policy, &role, scope).map_err(|e| {
            format!(
                "cannot read the tables the component may use: {}",
                crate::postgres::describe_error(&e)
            )
        })?;
        let catalog = catalog(client, policy, scope).map_err(|e| {
            format!(
                "cannot read the tables and settings the component's statements are checked \
                 against: {}",
                crate::postgres::describe_error(&e)
            )
        })?;
        match crate::postgres::reach::outside_the_manifest(
            client,
            policy,
            tenant,
            scope.fleet_schemas,
        ) {
            Ok(None) => {}
            Ok(Some(why)) => return Err(why),
            Err(e) => {
                return Err(format!(
                    "cannot read the foreign keys, rules and inheritance of the tables the \
                     component may use: {}",
                    crate::postgres::describe_error(&e)
                ));
            }
        }
        let deadline = Instant::now() + timeout;
        let setup = format!(
            "CREATE ROLE {role} NOLOGIN; GRANT {role} TO CURRENT_USER; {grants} \
             SET LOCAL ROLE {role}; SET LOCAL statement_timeout = {}; {COMPONENT_SETTINGS}",
            bounded_timeout(deadline, statement_timeout).as_millis()
        );
        if let Err(e) = client.batch_execute(&setup) {
            let mut why = crate::postgres::describe_error(&e);
            if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
                why.push_str(
                    "; components on PostgreSQL run under a role strata creates for each call \
                     (NOLOGIN, granted only the tables of `reads` and `writes`, dropped in the \
                     same transaction): the user strata connects as needs CREATEROLE (`ALTER \
                     ROLE <user> CREATEROLE`)",
                );
            }
            return Err(format!("cannot set up the component's role: {why}"));
        }
        Ok(Entered {
            role,
            config_file: policy.config_file.clone(),
            deadline,
            statement_timeout,
            catalog,
            settings,
        })
    }

    /// The component's database: `client`, on which [`Postgres::enter`] succeeded.
    pub fn new(client: Client, entered: Entered) -> Postgres {
        Postgres {
            client,
            role: entered.role,
            config_file: entered.config_file,
            statements: StatementCache::default(),
            prepared: StatementCache::default(),
            set_based: StatementCache::default(),
            cursors: Cursors::default(),
            opened: 0,
            deadline: entered.deadline,
            statement_timeout: entered.statement_timeout,
            savepoint: false,
            denied: None,
            timed_out: false,
            rows_changed: 0,
            catalog: entered.catalog,
            checked: StatementCache::default(),
            settings: entered.settings,
        }
    }

    /// Closes the component's cursors, leaves its role and drops it, and puts the step's
    /// statement timeout back; gives the client back, with what the call came to.
    pub fn leave(mut self) -> (Client, Left) {
        let mut sql = String::new();
        if self.savepoint {
            let _ = write!(sql, "RELEASE SAVEPOINT {SAVEPOINT}; ");
        }
        for c in self.cursors.iter() {
            let _ = write!(sql, "CLOSE {}; ", c.name);
        }
        for name in self
            .prepared
            .values()
            .chain(self.set_based.values().flatten())
        {
            let _ = write!(sql, "DEALLOCATE {name}; ");
        }
        let _ = write!(
            sql,
            "{}; RESET ROLE; SET LOCAL statement_timeout = {}; DROP OWNED BY {role}; \
             DROP ROLE {role}",
            self.still_the_role(),
            self.statement_timeout.as_millis(),
            role = self.role
        );
        self.statements.clear();
        let mut left = Left {
            denied: self.denied.take(),
            timed_out: self.timed_out,
            rows_changed: self.rows_changed,
            cleanup: None,
        };
        match self.client.simple_query(&sql) {
            Ok(messages) if role_kept(&messages) => {}
            Ok(_) => {
                left.denied.get_or_insert_with(|| ROLE_CHANGED.to_string());
            }
            Err(e) => left.cleanup = Some(crate::postgres::describe_error(&e)),
        }
        // Every setting back to what it was before the component, however it was changed: the
        // rest of the step (data.json, checks, bookkeeping) runs under strata's settings.
        if left.cleanup.is_none()
            && let Err(e) = self.client.query(
                "SELECT pg_catalog.set_config(s.name, c.setting, false) \
                   FROM pg_catalog.pg_settings s \
                   JOIN ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) \
                        AS c(name, setting) \
                     ON c.name = s.name \
                  WHERE s.setting IS DISTINCT FROM c.setting",
                &[&self.settings.0, &self.settings.1],
            )
        {
            left.cleanup = Some(format!(
                "cannot put the session's settings back: {}",
                crate::postgres::describe_error(&e)
            ));
        }
        (self.client, left)
    }

    /// A query whose one row says whether the session still runs as the call's role.
    fn still_the_role(&self) -> String {
        format!(
            "SELECT current_user = {}",
            crate::postgres::dollar_quoted(self.role.trim_matches('"'))
        )
    }

    /// Starts a host call: the previous call's savepoint released, a new one, the role set
    /// again and the statement timeout bounded by the time left.
    fn begin(&mut self) -> Result<(), Fail> {
        if Instant::now() >= self.deadline {
            self.timed_out = true;
            return Err(Fail::OutOfTime);
        }
        let release = if self.savepoint {
            format!("RELEASE SAVEPOINT {SAVEPOINT}; ")
        } else {
            String::new()
        };
        let messages = self.client.simple_query(&format!(
            "{release}SAVEPOINT {SAVEPOINT}; {}; SET LOCAL ROLE {}; \
             SET LOCAL statement_timeout = {}; {COMPONENT_SETTINGS}",
            self.still_the_role(),
            self.role,
            bounded_timeout(self.deadline, self.statement_timeout).as_millis()
        ))?;
        self.savepoint = true;
        if !role_kept(&messages) {
            return Err(Fail::Refused(ROLE_CHANGED.into()));
        }
        Ok(())
    }

    /// Undoes a failed call's statement, keeping the transaction usable.
    fn undo(&mut self) {
        if self.savepoint
            && self
                .client
                .batch_execute(&format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"))
                .is_err()
        {
            // The transaction cannot go on; the step fails on its next statement.
            self.savepoint = false;
        }
    }

    /// The statement `text` prepared, once per component call.
    fn prepare(&mut self, text: &str) -> Result<Statement, Fail> {
        if let Some(s) = self.statements.get(text) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(text)?;
        if text.len() <= CACHED_STATEMENT_BYTES {
            // Those forgotten are closed on the server as they are dropped.
            drop(self.statements.insert(text.to_string(), s.clone()));
        }
        Ok(s)
    }

    /// Deallocates the session's prepared statements `names`, forgotten by a cache.
    fn forget(&mut self, names: impl IntoIterator<Item = String>) -> Result<(), Fail> {
        let mut sql = String::new();
        for name in names {
            let _ = write!(sql, "DEALLOCATE {name}; ");
        }
        if !sql.is_empty() {
            self.client.batch_execute(&sql)?;
        }
        Ok(())
    }

    /// The prepared set-based form of the `UPDATE` `text` (see [`set_based`]), prepared once
    /// per call; `None` when it does not qualify.
    fn set_based(&mut self, text: &str, statement: &Statement) -> Result<Option<String>, Fail> {
        if let Some(known) = self.set_based.get(text) {
            return Ok(known.clone());
        }
        // Until it is prepared, the statement does not qualify: an error below leaves it so (and
        // the caller undoes what the error left in the call's savepoint).
        let forgotten = self.set_based.insert(text.to_string(), None);
        self.forget(forgotten.into_iter().flatten())?;
        let mut name = None;
        // Judged like any statement of the component: it must name nothing the `UPDATE` does
        // not, and the role's grants still bound it on the server.
        if let Some(r) = set_based::rewrite(text, statement.params())
            && let Ok(checked) = guard::check(&r.text, &self.catalog, &self.config_file)
            && self
                .client
                .query_opt(set_based::ELIGIBLE, &[&r.table.0, &r.table.1, &r.assigned])?
                .and_then(|row| row.get::<_, Option<bool>>(0))
                == Some(true)
        {
            let n = statement_name("set");
            let types = param_types(statement, "[]");
            self.client.batch_execute(&format!(
                "PREPARE {n} ({}) AS {}\n",
                types.join(", "),
                checked.text
            ))?;
            name = Some(n);
        }
        if name.is_some() {
            let forgotten = self.set_based.insert(text.to_string(), name.clone());
            self.forget(forgotten.into_iter().flatten())?;
        } else if text.len() > CACHED_STATEMENT_BYTES {
            self.set_based.remove(text);
        }
        Ok(name)
    }

    /// Runs the prepared set-based statement `name` once over the rows in `arrays` (emptied);
    /// returns the rows it changed. Generic plans: the server would otherwise plan each batch
    /// for its real size and may choose to scan the whole table where the key finds each row.
    fn run_set_based(&mut self, name: &str, arrays: &mut Arrays) -> Result<u64, Fail> {
        if arrays.rows == 0 {
            return Ok(0);
        }
        let mode = self
            .settings
            .0
            .iter()
            .position(|n| n == "plan_cache_mode")
            .map_or("auto", |i| self.settings.1[i].as_str());
        let mut sql = format!("SET LOCAL plan_cache_mode = force_generic_plan; EXECUTE {name}(");
        for (i, literal) in arrays.take().iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&crate::postgres::dollar_quoted(literal));
        }
        let _ = write!(
            sql,
            "); SET LOCAL plan_cache_mode = {}",
            crate::postgres::dollar_quoted(mode)
        );
        Ok(self
            .client
            .simple_query(&sql)?
            .iter()
            .map(|m| match m {
                postgres::SimpleQueryMessage::CommandComplete(n) => *n,
                _ => 0,
            })
            .sum())
    }

    /// Runs `statement` with one row of parameters; returns the rows it changed.
    fn execute(&mut self, statement: &Statement, params: &[sql::Value]) -> Result<u64, Fail> {
        let params = bind(statement, params)?;
        Ok(self.client.execute(statement, &params.refs())?)
    }
}

/// The settings the server's lexer reads, as the statement check's parser (libpg_query)
/// assumes them, so that the server reads a statement's text exactly as it was checked
/// whatever the step's `do.sql` set before: with `standard_conforming_strings` off a backslash
/// would end a string literal the check read as going on, and with another `client_encoding`
/// (SJIS, GBK, ...) a byte the check read as part of a character would be a backslash or a
/// quote to the server.
macro_rules! lexer_settings {
    () => {
        "SET LOCAL standard_conforming_strings = on; SET LOCAL client_encoding = 'UTF8'; \
         SET LOCAL backslash_quote = safe_encoding"
    };
}

/// The settings strata's own reads run under when a component is entered, after the step's
/// SQL: the lexer's (`lexer_settings!`), `pg_catalog` first on the session's `search_path` (relations
/// still resolve as the step's SQL sees them, but no operator or function of the user's
/// stands in for PostgreSQL's), and the settings that change how the reads' arrays and
/// comparisons are read. Every name in it is qualified.
const HOST_SETTINGS: &str = concat!(
    lexer_settings!(),
    "; SELECT pg_catalog.set_config('search_path', CASE \
       WHEN pg_catalog.texteq(pg_catalog.current_setting('search_path'), '') THEN 'pg_catalog' \
       ELSE pg_catalog.concat('pg_catalog, ', pg_catalog.current_setting('search_path')) END, \
       true); SET LOCAL array_nulls = on; SET LOCAL transform_null_equals = off"
);

/// The settings a component's statements run under, set again before each call: the
/// `search_path` (unqualified functions, operators and types can only be PostgreSQL's own;
/// strata qualifies every relation a statement names), `array_nulls` (the arrays a set-based
/// batch is sent in write a NULL as the bare word, which `array_nulls = off` would read as
/// the text `NULL`), the ones that decide how values are written as text (`DateStyle`,
/// `IntervalStyle`, `TimeZone`, `extra_float_digits`, `bytea_output`: a component sees the
/// same text on the real database as in the rehearsal on the test database, whatever either's
/// defaults) and the lexer's (`lexer_settings!`).
const COMPONENT_SETTINGS: &str = concat!(
    "SET LOCAL search_path = pg_catalog, pg_temp; SET LOCAL array_nulls = on; \
     SET LOCAL DateStyle = 'ISO, MDY'; SET LOCAL IntervalStyle = postgres; \
     SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 1; \
     SET LOCAL bytea_output = hex; ",
    lexer_settings!()
);

/// The session's settings, to put back after the component: read first, before strata sets
/// any of its own.
fn settings(client: &mut Client) -> Result<Settings, postgres::Error> {
    let mut settings = (Vec::new(), Vec::new());
    for row in client.query(
        "SELECT name, setting FROM pg_catalog.pg_settings \
          WHERE context OPERATOR(pg_catalog.=) ANY \
                (ARRAY['user', 'superuser']::pg_catalog.text[]) \
            AND setting IS NOT NULL",
        &[],
    )? {
        settings.0.push(row.get(0));
        settings.1.push(row.get(1));
    }
    Ok(settings)
}

/// What a component's statements are judged against ([`Catalog`]): read as the migrating user
/// before the role switch.
/// In a tenant's run (`tenant`, its schema) only the tenant's tables are there.
fn catalog(
    client: &mut Client,
    policy: &Policy,
    scope: Scope<'_>,
) -> Result<Catalog, postgres::Error> {
    let tenant = scope.tenant;
    let listed = |s: &Option<std::collections::HashSet<String>>| -> Vec<String> {
        s.as_ref()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    };
    let mut catalog = Catalog {
        tenant: tenant.map(str::to_string),
        ..Catalog::default()
    };
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, pg_catalog.pg_table_is_visible(c.oid),
                CASE WHEN n.nspname IN ('pg_catalog', 'information_schema') THEN 'r'
                     WHEN n.nspname = 'strata' OR n.nspname ~ '^pg_'
                          OR ($5::text IS NULL AND ({book} OR n.nspname = ANY($6::text[])))
                          THEN NULL
                     WHEN n.nspname <> $5::text THEN NULL
                     WHEN $3 OR c.oid IN (SELECT pg_catalog.to_regclass(w)
                                            FROM pg_catalog.unnest($2::text[]) w) THEN 'w'
                     WHEN $4 OR c.oid IN (SELECT pg_catalog.to_regclass(r)
                                            FROM pg_catalog.unnest($1::text[]) r) THEN 'r'
                END
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')",
        book = crate::postgres::ledger::tenants_sql("n.nspname")
    );
    for row in client.query(
        &sql,
        &[
            &listed(&policy.reads),
            &listed(&policy.writes),
            &policy.writes.is_none(),
            &policy.reads.is_none(),
            &tenant,
            &scope.fleet_schemas,
        ],
    )? {
        let (schema, name): (String, String) = (row.get(0), row.get(1));
        if row.get::<_, bool>(2) {
            catalog.visible.insert(name.clone(), schema.clone());
        }
        match row.get::<_, Option<&str>>(3) {
            Some("w") => {
                catalog.relations.insert((schema, name), Access::Write);
            }
            Some(_) => {
                catalog.relations.insert((schema, name), Access::Read);
            }
            None => {}
        }
    }
    // The sequences owned by the relations of `writes` (`OWNED BY`, serial and identity
    // columns), the only ones `nextval` and `currval` may name; and which sequence each
    // unqualified name resolves to.
    let (schemas, names): (Vec<String>, Vec<String>) = catalog
        .relations
        .iter()
        .filter(|(_, a)| **a == Access::Write)
        .map(|(k, _)| k.clone())
        .unzip();
    for row in client.query(
        "SELECT n.nspname::text, s.relname::text, pg_catalog.pg_table_is_visible(s.oid),
                EXISTS (SELECT FROM pg_catalog.pg_depend d
                          JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
                          JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
                         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                           AND d.objid = s.oid
                           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                           AND d.deptype IN ('a', 'i')
                           AND (tn.nspname, t.relname) IN
                               (SELECT * FROM ROWS FROM (pg_catalog.unnest($1::text[]),
                                                         pg_catalog.unnest($2::text[]))))
           FROM pg_catalog.pg_class s
           JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
          WHERE s.relkind = 'S'",
        &[&schemas, &names],
    )? {
        let (schema, name): (String, String) = (row.get(0), row.get(1));
        if row.get::<_, bool>(2) {
            catalog.visible.insert(name.clone(), schema.clone());
        }
        if row.get::<_, bool>(3) {
            catalog.sequences.insert((schema, name));
        }
    }
    catalog.catalog_functions = client
        .query(
            "SELECT DISTINCT proname::text FROM pg_catalog.pg_proc \
              WHERE pronamespace = 'pg_catalog'::pg_catalog.regnamespace",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // The names that are a date or time (or an array, range or domain of them) in every
    // relation the component may use, the catalogs included, that has a column of that name;
    // and those that are a timestamp (with or without time zone) or a date (or a domain over
    // one) in every such relation.
    let (schemas, names): (Vec<String>, Vec<String>) = catalog.relations.keys().cloned().unzip();
    for row in client.query(
        "SELECT a.attname::text,
                pg_catalog.bool_and(t.typcategory = 'D' OR e.typcategory IS NOT DISTINCT FROM 'D'
                                    OR rs.typcategory IS NOT DISTINCT FROM 'D'),
                pg_catalog.bool_and(
                    (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END)
                    IN ('pg_catalog.timestamp'::pg_catalog.regtype,
                        'pg_catalog.timestamptz'::pg_catalog.regtype,
                        'pg_catalog.date'::pg_catalog.regtype))
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
           LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
           LEFT JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid
           LEFT JOIN pg_catalog.pg_type rs ON rs.oid = r.rngsubtype
          WHERE a.attnum > 0 AND NOT a.attisdropped
            AND (n.nspname, c.relname) IN
                (SELECT * FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])))
          GROUP BY a.attname",
        &[&schemas, &names],
    )? {
        let name: String = row.get(0);
        if row.get::<_, bool>(2) {
            catalog.timestamp_columns.insert(name.clone());
        }
        if row.get::<_, bool>(1) {
            catalog.date_columns.insert(name);
        }
    }
    Ok(catalog)
}

/// Why a step fails when the role changed under a component.
const ROLE_CHANGED: &str = "the session no longer ran as the component's role after its \
     statement: a function it called changed the role (SET ROLE, RESET ROLE or set_config in its \
     body), which would give the component the migrating user's rights; the step is rolled back \
     whole. Keep such functions out of the component's reach (REVOKE EXECUTE ... FROM PUBLIC)";

/// Whether the `SELECT current_user = ...` row among `messages` said true.
fn role_kept(messages: &[postgres::SimpleQueryMessage]) -> bool {
    messages
        .iter()
        .any(|m| matches!(m, postgres::SimpleQueryMessage::Row(row) if row.get(0) == Some("t")))
}

/// The call's role name: `strata_component_` and the first 64 bits of the SHA-256 of the
/// database's name (and, in a tenant's run, `/` and the tenant's schema), so that it tells a
/// component nothing it cannot read itself (`current_database()`, `current_schema()`), the
/// same in every run: no clock, pid or counter of the host's. It is unique in the cluster while
/// the step's transaction is open: every strata transaction that writes takes the lock of its
/// database (of its tenant, in a tenant's run) first (see `ledger`), so two runs on one never
/// hold it at once, and runs on the other databases of the server or the other tenants of the
/// database (a fleet in parallel) have roles of their own and never wait for each other's.
fn role_name(client: &mut Client, tenant: Option<&str>) -> Result<String, postgres::Error> {
    let hash: String = client
        .query_one(
            "SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(\
               pg_catalog.current_database() || COALESCE('/' || $1::pg_catalog.text, ''), 'UTF8')), \
               'hex')",
            &[&tenant],
        )?
        .get(0);
    Ok(format!(
        "\"strata_component_{}\"",
        hash.get(..16).unwrap_or(&hash)
    ))
}

/// The statement timeout for the next statement: what is left of the component's time, and at
/// most the step's own timeout. Never zero (zero would mean none).
fn bounded_timeout(deadline: Instant, step: Duration) -> Duration {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    if step.is_zero() { left } else { left.min(step) }
}

/// The GRANT statements that give `role` what `policy` allows: usage of the user's schemas,
/// and the tables (and their sequences) of `reads` and `writes`, or all tables of the user's
/// schemas where a list is absent. Never the `strata` schema; in a tenant's run (`tenant`),
/// nothing outside the tenant's schema.
fn grants(
    client: &mut Client,
    policy: &Policy,
    role: &str,
    scope: Scope<'_>,
) -> Result<String, postgres::Error> {
    let tenant = scope.tenant;
    let listed = |s: &Option<std::collections::HashSet<String>>| -> Vec<String> {
        s.as_ref()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    };
    let sql = format!(
        "SELECT 'schema', pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_namespace n
          WHERE n.nspname NOT IN ('strata', 'information_schema') AND n.nspname !~ '^pg_'
            AND n.nspname = COALESCE($3::text, n.nspname)
            AND ($3::text IS NOT NULL OR NOT ({book} OR n.nspname = ANY($4::text[])))
         UNION ALL
         SELECT l.kind, pg_catalog.format('%I.%I', n.nspname, c.relname)
           FROM (SELECT 'read' AS kind, unnest($1::text[]) AS name
                 UNION ALL SELECT 'write', unnest($2::text[])) l
           JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(l.name)
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname <> 'strata' AND n.nspname = COALESCE($3::text, n.nspname)
            AND ($3::text IS NOT NULL OR NOT ({book} OR n.nspname = ANY($4::text[])))
         UNION ALL
         SELECT 'sequence', pg_catalog.format('%I.%I', n.nspname, s.relname)
           FROM pg_catalog.pg_depend d
           JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
           JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
          WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND d.deptype IN ('a', 'i') AND n.nspname <> 'strata'
            AND n.nspname = COALESCE($3::text, n.nspname)
            AND d.refobjid IN (SELECT pg_catalog.to_regclass(w) FROM unnest($2::text[]) w)",
        book = crate::postgres::ledger::tenants_sql("n.nspname")
    );
    let rows = client.query(
        &sql,
        &[
            &listed(&policy.reads),
            &listed(&policy.writes),
            &tenant,
            &scope.fleet_schemas,
        ],
    )?;
    let of = |kind: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r.get::<_, &str>(0) == kind)
            .map(|r| r.get::<_, String>(1))
            .collect()
    };
    let schemas = of("schema");
    let mut sql = String::new();
    if !schemas.is_empty() {
        let _ = write!(
            sql,
            "GRANT USAGE ON SCHEMA {} TO {role}; ",
            schemas.join(", ")
        );
    }
    const READ: &str = "SELECT";
    const WRITE: &str = "SELECT, INSERT, UPDATE, DELETE";
    const SEQUENCE: &str = "USAGE, SELECT, UPDATE";
    let mut grant_all = |privileges: &str, what: &str| {
        for s in &schemas {
            let _ = write!(
                sql,
                "GRANT {privileges} ON ALL {what} IN SCHEMA {s} TO {role}; "
            );
        }
    };
    if policy.reads.is_none() {
        grant_all(READ, "TABLES");
    }
    if policy.writes.is_none() {
        grant_all(WRITE, "TABLES");
        grant_all(SEQUENCE, "SEQUENCES");
    }
    for (kind, privileges) in [("read", READ), ("write", WRITE), ("sequence", SEQUENCE)] {
        let objects = of(kind);
        if !objects.is_empty() {
            let what = if kind == "sequence" { "SEQUENCE " } else { "" };
            let _ = write!(
                sql,
                "GRANT {privileges} ON {what}{} TO {role}; ",
                objects.join(", ")
            );
        }
    }
    Ok(sql)
}

/// What a statement may be, by the call that runs it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// `execute`, `execute-many`, `execute-packed`, `query`: a query or a row change.
    Any,
    /// `open-cursor`: a query PostgreSQL can declare a cursor for.
    Cursor,
}

/// Refuses a statement that returns rows where a call only changes rows (as SQLite does).
fn rows_statement(statement: &Statement) -> Result<(), Fail> {
    if statement.columns().is_empty() {
        Ok(())
    } else {
        Err(Fail::Syntax(
            "execute ran a statement that returns rows; use query or open-cursor".into(),
        ))
    }
}

/// A component's parameters for one statement, converted by the types the server inferred.
struct Params<'a>(Vec<Param<'a>>);

impl Params<'_> {
    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
    }
}

fn bind<'a>(statement: &Statement, values: &'a [sql::Value]) -> Result<Params<'a>, Fail> {
    let expected = statement.params().len();
    if values.len() != expected {
        return Err(Fail::Syntax(format!(
            "the statement takes {expected} parameter{}, the component passed {}",
            if expected == 1 { "" } else { "s" },
            values.len()
        )));
    }
    // The server parses a text parameter by its type: 'now' or 'today' as a date or time
    // would read the clock.
    for (ty, v) in statement.params().iter().zip(values) {
        if let sql::Value::Text(text) = v
            && holds_dates(ty)
            && guard::names_the_clock(text)
        {
            return Err(Fail::Refused(format!(
                "{} (a parameter of type {ty} given as text)",
                guard::unseen_message(
                    &format!("the value '{}'", text.chars().take(64).collect::<String>()),
                    "the clock",
                    std::path::Path::new("migration.toml"),
                )
            )));
        }
    }
    Ok(Params(values.iter().map(Param).collect()))
}

/// Whether values of `ty` are (or hold) dates or times, which the server reads 'now' into.
fn holds_dates(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Array(inner) | Kind::Range(inner) | Kind::Domain(inner) => holds_dates(inner),
        Kind::Multirange(inner) => holds_dates(inner),
        // A row type's text input reads each field by its type.
        Kind::Composite(fields) => fields.iter().any(|f| holds_dates(f.type_())),
        _ => [
            Type::DATE,
            Type::TIME,
            Type::TIMETZ,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ,
        ]
        .contains(ty),
    }
}

/// One WIT value as a parameter: in binary where the value's kind and the inferred type agree
/// (integers, floating point, booleans, bytea), else in PostgreSQL's text format, which the
/// server parses by the parameter's type (numeric, dates, uuid, json, ...).
#[derive(Debug)]
struct Param<'a>(&'a sql::Value);

type BoxError = Box<dyn StdError + Sync + Send>;

impl Param<'_> {
    fn binary(&self, ty: &Type) -> bool {
        use sql::Value as V;
        matches!(
            (self.0, ty),
            (
                V::Integer(_),
                &Type::INT2
                    | &Type::INT4
                    | &Type::INT8
                    | &Type::OID
                    | &Type::FLOAT4
                    | &Type::FLOAT8
                    | &Type::BOOL
            ) | (V::Real(_), &Type::FLOAT4 | &Type::FLOAT8)
                | (V::Blob(_), _)
        )
    }
}

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        use sql::Value as V;
        if !self.binary(ty) {
            let text = match self.0 {
                V::Null => return Ok(IsNull::Yes),
                V::Integer(i) => i.to_string(),
                V::Real(f) => f.to_string(),
                V::Text(s) => {
                    out.extend_from_slice(s.as_bytes());
                    return Ok(IsNull::No);
                }
                V::Blob(_) => unreachable!("a blob is always bound in binary"),
            };
            out.extend_from_slice(text.as_bytes());
            return Ok(IsNull::No);
        }
        match (self.0, ty) {
            (V::Integer(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (V::Integer(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (V::Integer(i), &Type::OID) => u32::try_from(*i)?.to_sql(ty, out),
            (V::Integer(i), &Type::INT8) => i.to_sql(ty, out),
            (V::Integer(i), &Type::FLOAT4) => (*i as f32).to_sql(ty, out),
            (V::Integer(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (V::Integer(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (V::Real(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (V::Real(f), _) => f.to_sql(ty, out),
            (V::Blob(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            (V::Blob(_), _) => Err(format!("a blob cannot be a parameter of type {ty}").into()),
            _ => unreachable!("only the binary cases reach here"),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, ty: &Type) -> postgres::types::Format {
        if self.binary(ty) {
            postgres::types::Format::Binary
        } else {
            postgres::types::Format::Text
        }
    }

    to_sql_checked!();
}

/// One result value, decoded from PostgreSQL's binary format into a WIT value.
struct Cell(sql::Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        decode(ty, raw).map(Cell)
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Cell(sql::Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn decode(ty: &Type, raw: &[u8]) -> Result<sql::Value, BoxError> {
    use sql::Value as V;
    let text = |raw: &[u8]| -> Result<sql::Value, BoxError> {
        Ok(V::Text(std::str::from_utf8(raw)?.to_string()))
    };
    Ok(match *ty {
        Type::BOOL => V::Integer(i64::from(bool::from_sql(ty, raw)?)),
        Type::INT2 => V::Integer(i16::from_sql(ty, raw)?.into()),
        Type::INT4 => V::Integer(i32::from_sql(ty, raw)?.into()),
        Type::INT8 => V::Integer(i64::from_sql(ty, raw)?),
        Type::OID => V::Integer(u32::from_sql(ty, raw)?.into()),
        Type::FLOAT4 => V::Real(f32::from_sql(ty, raw)?.into()),
        Type::FLOAT8 => V::Real(f64::from_sql(ty, raw)?),
        Type::BYTEA => V::Blob(raw.to_vec()),
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::CHAR
        | Type::JSON
        | Type::XML => text(raw)?,
        Type::JSONB => match raw.split_first() {
            Some((1, json)) => text(json)?,
            _ => return Err("unknown jsonb version".into()),
        },
        Type::UUID => V::Text(uuid_text(raw)?),
        Type::NUMERIC => V::Text(numeric_text(raw)?),
        Type::DATE => V::Text(date_text(i32::from_sql(ty, raw)?)),
        Type::TIMESTAMP => V::Text(timestamp_text(i64::from_sql(ty, raw)?, "")),
        Type::TIMESTAMPTZ => V::Text(timestamp_text(i64::from_sql(ty, raw)?, "+00")),
        Type::TIME => V::Text(time_text(i64::from_sql(ty, raw)?)),
        _ => match ty.kind() {
            Kind::Enum(_) => text(raw)?,
            Kind::Domain(base) => return decode(base, raw),
            _ if ty.name() == "citext" => text(raw)?,
            _ => {
                return Err(format!(
                    "a value of type {} cannot reach a component; cast it in the query, for \
                     example `column::text`",
                    ty.name()
                )
                .into());
            }
        },
    })
}

fn uuid_text(raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() != 16 {
        return Err("a uuid is 16 bytes".into());
    }
    let mut s = String::with_capacity(36);
    for (i, b) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    Ok(s)
}

/// PostgreSQL's binary numeric (base-10000 digits, a weight, a sign and a display scale) as the
/// text PostgreSQL itself prints.
fn numeric_text(raw: &[u8]) -> Result<String, BoxError> {
    let word = |i: usize| -> Result<u16, BoxError> {
        raw.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "a numeric value is cut short".into())
    };
    let ndigits = word(0)? as usize;
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = word(6)? as usize;
    let digits = (0..ndigits)
        .map(|k| word(8 + 2 * k))
        .collect::<Result<Vec<u16>, _>>()?;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let digit = |g: i32| -> u16 {
        usize::try_from(g)
            .ok()
            .and_then(|g| digits.get(g).copied())
            .unwrap_or(0)
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for g in 0..=weight {
            if g == 0 {
                let _ = write!(s, "{}", digit(g));
            } else {
                let _ = write!(s, "{:04}", digit(g));
            }
        }
    }
    if dscale > 0 {
        let mut fraction = String::new();
        let mut g = weight + 1;
        while fraction.len() < dscale {
            let _ = write!(fraction, "{:04}", digit(g));
            g += 1;
        }
        fraction.truncate(dscale);
        s.push('.');
        s.push_str(&fraction);
    }
    Ok(s)
}

fn epoch() -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
        .expect("a valid date")
        .and_hms_opt(0, 0, 0)
        .expect("a valid time")
}

fn date_text(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        d => (epoch().date() + chrono::Duration::days(d.into()))
            .format("%Y-%m-%d")
            .to_string(),
    }
}

/// Microseconds as PostgreSQL prints them after the seconds: nothing, or a dot and up to six
/// digits without trailing zeros.
fn fraction(micros: u32) -> String {
    if micros == 0 {
        return String::new();
    }
    let digits = format!("{micros:06}");
    format!(".{}", digits.trim_end_matches('0'))
}

fn timestamp_text(micros: i64, zone: &str) -> String {
    match micros {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        m => {
            let t = epoch() + chrono::Duration::microseconds(m);
            let sub = (m.rem_euclid(1_000_000)) as u32;
            format!("{}{}{zone}", t.format("%Y-%m-%d %H:%M:%S"), fraction(sub))
        }
    }
}

fn time_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let sub = micros.rem_euclid(1_000_000) as u32;
    format!(
        "{:02}:{:02}:{:02}{}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        fraction(sub)
    )
}

/// A float as the text a batch writes for a parameter of type `ty`: for `real`, the value
/// rounded to `real` first, as a single `execute` binds it (a value below `real`'s range is 0,
/// one above it infinite), so that both paths store the same value.
fn real_text(f: f64, ty: &Type) -> String {
    if *ty == Type::FLOAT4 {
        (f as f32).to_string()
    } else {
        f.to_string()
    }
}

/// One value to write into a batch: borrowed from the component's rows.
#[derive(Clone, Copy)]
enum Lit<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a> From<&'a sql::Value> for Lit<'a> {
    fn from(v: &'a sql::Value) -> Self {
        match v {
            sql::Value::Null => Lit::Null,
            sql::Value::Integer(i) => Lit::Integer(*i),
            sql::Value::Real(f) => Lit::Real(*f),
            sql::Value::Text(t) => Lit::Text(t),
            sql::Value::Blob(b) => Lit::Blob(b),
        }
    }
}

impl<'a> From<strata_wire::ValueRef<'a>> for Lit<'a> {
    fn from(v: strata_wire::ValueRef<'a>) -> Self {
        match v {
            strata_wire::ValueRef::Null => Lit::Null,
            strata_wire::ValueRef::Integer(i) => Lit::Integer(i),
            strata_wire::ValueRef::Real(f) => Lit::Real(f),
            strata_wire::ValueRef::Text(t) => Lit::Text(t),
            strata_wire::ValueRef::Blob(b) => Lit::Blob(b),
        }
    }
}

/// Rows of one statement (`execute-many`, `execute-packed`) sent a few thousand at a time in
/// one round trip. The statement is prepared once per component call as a named prepared
/// statement, its parameters declared with the types the server inferred for them
/// (`PREPARE name (types) AS ...`), and each row is `EXECUTE name(literals)`, the rows of a
/// batch joined into one simple-protocol message: a literal is coerced to its parameter's
/// declared type by that type's input function, as a bound text value is, and the server plans
/// the statement once. Literals are dollar-quoted with a tag the value does not contain, so no
/// value can end its literal; the statement itself passed [`guard::check`] before.
struct Batch {
    /// `EXECUTE name(`.
    execute: String,
    /// The parameters' types.
    types: Vec<Type>,
    sql: String,
    rows: usize,
}

/// A batch is sent once its text reaches this size or this many rows.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_ROWS: usize = 5_000;

impl Batch {
    /// A batch of `statement` (whose text is `text`), preparing it on the session unless this
    /// call did already.
    fn new(db: &mut Postgres, text: &str, statement: &Statement) -> Result<Batch, Fail> {
        let name = match db.prepared.get(text) {
            Some(name) => name.clone(),
            None => {
                let name = statement_name("batch");
                let types = param_types(statement, "");
                let types = if types.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", types.join(", "))
                };
                // On a line of its own: the statement may end in a `--` comment.
                db.client
                    .batch_execute(&format!("PREPARE {name}{types} AS {text}\n"))?;
                let forgotten = db.prepared.insert(text.to_string(), name.clone());
                db.forget(forgotten.into_iter().filter(|n| *n != name))?;
                name
            }
        };
        Ok(Batch {
            execute: format!("EXECUTE {name}("),
            types: statement.params().to_vec(),
            sql: String::new(),
            rows: 0,
        })
    }

    /// Adds one row of parameters.
    fn push<'v>(&mut self, row: impl Fn(usize) -> Lit<'v>) -> Result<(), Fail> {
        self.sql.push_str(&self.execute);
        for (i, ty) in self.types.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            match row(i) {
                Lit::Null => self.sql.push_str("NULL"),
                Lit::Integer(n) if *ty == Type::BOOL => {
                    self.sql.push_str(if n != 0 { "true" } else { "false" });
                }
                Lit::Integer(n) => {
                    let _ = write!(self.sql, "'{n}'");
                }
                Lit::Real(f) => {
                    let _ = write!(self.sql, "'{}'", real_text(f, ty));
                }
                Lit::Text(t) => self.sql.push_str(&crate::postgres::dollar_quoted(t)),
                Lit::Blob(b) if *ty == Type::BYTEA => {
                    self.sql.push_str("'\\x");
                    for byte in b {
                        let _ = write!(self.sql, "{byte:02x}");
                    }
                    self.sql.push('\'');
                }
                Lit::Blob(_) => {
                    return Err(Fail::Value(format!(
                        "a blob cannot be a parameter of type {ty}"
                    )));
                }
            }
        }
        self.sql.push_str(");\n");
        self.rows += 1;
        Ok(())
    }

    fn full(&self) -> bool {
        self.rows >= BATCH_ROWS || self.sql.len() >= BATCH_BYTES
    }

    /// Sends the rows added since the last send; returns the rows they changed.
    fn send(&mut self, client: &mut Client) -> Result<u64, Fail> {
        if self.rows == 0 {
            return Ok(0);
        }
        let messages = client.simple_query(&self.sql)?;
        self.sql.clear();
        self.rows = 0;
        Ok(messages
            .iter()
            .map(|m| match m {
                postgres::SimpleQueryMessage::CommandComplete(n) => *n,
                _ => 0,
            })
            .sum())
    }
}

/// A name for a session's prepared statement, unique in this process.
fn statement_name(kind: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREPARED: AtomicU64 = AtomicU64::new(0);
    format!(
        "strata_component_{kind}_{}",
        PREPARED.fetch_add(1, Ordering::Relaxed)
    )
}

/// The types the server inferred for `statement`'s parameters, as `schema.name` followed by
/// `suffix` (`[]`: arrays of them).
fn param_types(statement: &Statement, suffix: &str) -> Vec<String> {
    statement
        .params()
        .iter()
        .map(|ty| {
            format!(
                "{}.{}{suffix}",
                crate::core::data::quote_ident(ty.schema()),
                crate::core::data::quote_ident(ty.name())
            )
        })
        .collect()
}

/// The largest value a set-based batch carries: the array literal holds it escaped (up to
/// twice its size) and the query message once more, none of it counted against the
/// component's `memory_mib`; a call with a larger value runs row by row, as it did before.
const SET_BASED_VALUE_BYTES: usize = 1 << 20;

/// Adds one parameter value to column `i` of `arrays`, in the text [`Batch`] writes for it as a
/// literal (the element's type parses it the same way).
fn element(arrays: &mut Arrays, i: usize, ty: &Type, value: Lit<'_>) -> Result<(), Fail> {
    if matches!(value, Lit::Text(t) if t.len() > SET_BASED_VALUE_BYTES)
        || matches!(value, Lit::Blob(b) if b.len() > SET_BASED_VALUE_BYTES)
    {
        return Err(Fail::Value(format!(
            "a value over {SET_BASED_VALUE_BYTES} bytes goes row by row"
        )));
    }
    match value {
        Lit::Null => arrays.push(i, None),
        Lit::Integer(n) if *ty == Type::BOOL => {
            arrays.push(i, Some(if n != 0 { "true" } else { "false" }));
        }
        Lit::Integer(n) => arrays.push(i, Some(&n.to_string())),
        Lit::Real(f) => arrays.push(i, Some(&real_text(f, ty))),
        Lit::Text(t) => arrays.push(i, Some(t)),
        Lit::Blob(b) if *ty == Type::BYTEA => {
            let mut hex = String::with_capacity(2 + 2 * b.len());
            hex.push_str("\\x");
            for byte in b {
                let _ = write!(hex, "{byte:02x}");
            }
            arrays.push(i, Some(&hex));
        }
        Lit::Blob(_) => {
            return Err(Fail::Value(format!(
                "a blob cannot be a parameter of type {ty}"
            )));
        }
    }
    Ok(())
}

/// Whether a failure of the set-based statement sends the call down the row-by-row path,
/// which then reports what it finds (an error it meets, or none).
fn retry_row_by_row(fail: &Fail) -> bool {
    matches!(fail, Fail::Sql(_) | Fail::Value(_) | Fail::Syntax(_))
}

/// What a value costs the host, as the SQLite side counts it.
fn value_size(v: &sql::Value) -> usize {
    VALUE_OVERHEAD
        + match v {
            sql::Value::Text(t) => t.len(),
            sql::Value::Blob(b) => b.len(),
            _ => 0,
        }
}

fn row_size(row: &[sql::Value]) -> usize {
    ROW_OVERHEAD + row.iter().map(value_size).sum::<usize>()
}

/// The first `columns` values of `row` (a [`sized`] row has its size after them).
fn decode_row(row: &postgres::Row, columns: usize) -> Result<Vec<sql::Value>, Fail> {
    (0..columns.min(row.len()))
        .map(|i| {
            row.try_get::<_, Cell>(i).map(|c| c.0).map_err(|e| {
                let column = row.columns()[i].name();
                Fail::Value(format!(
                    "column `{column}`: {}",
                    e.source().map_or(e.to_string(), ToString::to_string)
                ))
            })
        })
        .collect()
}

fn encode(e: &mut strata_wire::Encoder, v: &sql::Value) {
    match v {
        sql::Value::Null => e.null(),
        sql::Value::Integer(i) => e.integer(*i),
        sql::Value::Real(f) => e.real(*f),
        sql::Value::Text(t) => e.text(t),
        sql::Value::Blob(b) => e.blob(b),
    }
}

/// A statement's text may take at most this share (1/n) of the bytes a component could still
/// hold (see [`HostState::call`]).
const STATEMENT_COPIES: usize = 8;

/// Statements up to this long are remembered once checked (and prepared), for the rest of the
/// call; longer ones are checked each time, so the caches cannot grow with the texts' size.
const CACHED_STATEMENT_BYTES: usize = 64 << 10;

impl HostState<Postgres> {
    /// Runs one host call with `params` values per row: the statement checked, a savepoint, `f`, and on failure the
    /// statement undone and the error sorted into the WIT cases.
    fn call<T>(
        &mut self,
        sql: &str,
        params: usize,
        use_: Use,
        f: impl FnOnce(&mut Self, Statement, &Checked) -> Result<T, Fail>,
    ) -> Result<T, sql::Error> {
        // Checking and sending a statement holds a few copies of its text on the host (the
        // parse tree and its JSON form, the qualified text, the size-checking wrapper), so a
        // statement may take at most a share of what the component could still hold.
        let limit = self.result_budget() / STATEMENT_COPIES;
        if sql.len() > limit {
            return Err(self.limit_error(format!(
                "this statement's text ({} bytes) is larger than a component's statement may be \
                 now: {limit} bytes, 1/{STATEMENT_COPIES} of the {} bytes left of memory_mib = {} \
                 (checking and sending a statement holds copies of it); pass large values as \
                 parameters, or raise `memory_mib` under [sandbox] in migration.toml",
                sql.len(),
                self.result_budget(),
                self.memory_mib
            )));
        }
        let text = crate::core::sql::postgres::number_placeholders(sql, params)
            .unwrap_or_else(|| sql.to_string());
        let cached = self.db.checked.get(&text).cloned().map(Ok);
        let checked = match cached
            .unwrap_or_else(|| guard::check(&text, &self.db.catalog, &self.db.config_file))
        {
            Ok(c) if use_ == Use::Cursor && c.kind != StatementKind::Query => Err(Fail::Syntax(
                "open-cursor on PostgreSQL takes a query (SELECT, VALUES, TABLE); run row \
                 changes with execute"
                    .into(),
            )),
            Ok(c) => Ok(c),
            Err(Refusal::Denied(why)) => Err(Fail::Refused(why)),
            Err(Refusal::Syntax(why)) => Err(Fail::Syntax(why)),
        };
        if let Ok(c) = &checked
            && text.len() <= CACHED_STATEMENT_BYTES
            && !self.db.checked.contains_key(&text)
        {
            self.db.checked.insert(text.clone(), c.clone());
        }
        match checked {
            Ok(checked) => self.guarded(|s| {
                let statement = s.db.prepare(&checked.text)?;
                f(s, statement, &checked)
            }),
            Err(fail) => Err(self.sort(fail)),
        }
    }

    /// Runs the rows of a batch call set-based through `run` when the statement `text`
    /// qualifies ([`set_based`]): `Some` of the rows changed, or `None` when the call is to run
    /// row by row, with whatever the attempt did undone (the call's savepoint rolled back and
    /// begun again).
    fn try_set_based(
        &mut self,
        text: &str,
        statement: &Statement,
        run: impl FnOnce(&mut Postgres, &str) -> Result<u64, Fail>,
    ) -> Result<Option<u64>, Fail> {
        let tried = match self.db.set_based(text, statement) {
            Ok(None) => return Ok(None),
            Ok(Some(name)) => run(&mut self.db, &name),
            Err(fail) => Err(fail),
        };
        match tried {
            Ok(changed) => Ok(Some(changed)),
            Err(fail) if retry_row_by_row(&fail) => {
                self.db.undo();
                self.db.begin()?;
                Ok(None)
            }
            Err(fail) => Err(fail),
        }
    }

    /// Runs `f` in the call's savepoint; on failure the savepoint is rolled back and the error
    /// sorted into the WIT cases.
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, Fail>,
    ) -> Result<T, sql::Error> {
        let r = self.db.begin().and_then(|()| f(self));
        r.map_err(|fail| {
            self.db.undo();
            self.sort(fail)
        })
    }

    fn sort(&mut self, fail: Fail) -> sql::Error {
        use postgres::error::SqlState;
        let e = match fail {
            Fail::Refused(why) => {
                self.db.denied.get_or_insert_with(|| why.clone());
                sql::Error::Denied(why)
            }
            Fail::Syntax(why) => sql::Error::Syntax(why),
            Fail::Value(why) => sql::Error::Other(why),
            Fail::TooLarge(what, budget) => sql::Error::Limit(self.over_budget(what, budget)),
            Fail::OutOfTime => {
                sql::Error::Limit("the wall-clock timeout ran out during this statement".into())
            }
            Fail::Sql(e) => {
                let message = crate::postgres::describe_error(&e);
                let Some(code) = e.code() else {
                    return self.remember(sql::Error::Other(message));
                };
                if *code == SqlState::INSUFFICIENT_PRIVILEGE {
                    let why = format!(
                        "{message}: a component may only read the tables listed in `reads` and \
                         write those in `writes` under [sandbox] in {}, and never strata's own",
                        self.db.config_file.display()
                    );
                    self.db.denied.get_or_insert_with(|| why.clone());
                    sql::Error::Denied(why)
                } else if *code == SqlState::QUERY_CANCELED
                    && Instant::now() + Duration::from_millis(5) >= self.db.deadline
                {
                    self.db.timed_out = true;
                    sql::Error::Limit("the wall-clock timeout ran out during this statement".into())
                } else if *code == SqlState::QUERY_CANCELED {
                    sql::Error::Limit(format!(
                        "{message}: the statement ran longer than statement_timeout_ms in \
                         strata.toml allows"
                    ))
                } else if code.code().starts_with("23") {
                    sql::Error::Constraint(message)
                } else if code.code().starts_with("42") || code.code().starts_with("22") {
                    sql::Error::Syntax(message)
                } else if code.code().starts_with("53") || code.code().starts_with("54") {
                    sql::Error::Limit(message)
                } else {
                    sql::Error::Other(message)
                }
            }
        };
        self.remember(e)
    }

    /// Reads rows of a query into WIT values, within the budget. The statement runs wrapped
    /// by [`sized`], so that no row larger than the budget is ever received whole.
    fn read_rows(
        &mut self,
        statement: &Statement,
        checked: &Checked,
        params: &[sql::Value],
        what: &'static str,
    ) -> Result<Vec<Vec<sql::Value>>, Fail> {
        use postgres::fallible_iterator::FallibleIterator;
        let budget = self.result_budget();
        let columns = statement.columns().len();
        if columns > 0 && checked.modifying_with {
            return Err(Fail::Syntax(
                "a statement whose WITH changes rows cannot return rows to a component on \
                 PostgreSQL (strata cannot bound their size); return them from the row change \
                 itself (INSERT/UPDATE/DELETE ... RETURNING), or run it with execute"
                    .into(),
            ));
        }
        let wrapped = if columns == 0 {
            statement.clone()
        } else {
            self.db
                .prepare(&sized(&checked.text, statement, checked.kind, budget))?
        };
        let bound = bind(statement, params)?;
        let mut rows = self.db.client.query_raw(&wrapped, bound.refs())?;
        let mut out = Vec::new();
        let mut used = 0usize;
        while let Some(row) = rows.next()? {
            if columns > 0 && sent_size(&row, columns)? > budget {
                return Err(Fail::TooLarge(what, budget));
            }
            let row = decode_row(&row, columns)?;
            used = used.saturating_add(row_size(&row));
            if used > budget {
                return Err(Fail::TooLarge(what, budget));
            }
            out.push(row);
        }
        Ok(out)
    }

    /// Hands up to `max` rows of a cursor to `push`, within the budget. Rows are fetched a
    /// batch at a time and received one at a time: once the budget is full the rest of the
    /// batch is read past (never held) and the cursor moved back over it, so a row that does
    /// not fit waits for the next call. Returns the number of rows.
    fn step_cursor(
        &mut self,
        slot: &Resource<CursorSlot>,
        max: u32,
        mut push: impl FnMut(Vec<sql::Value>),
    ) -> WResult<Result<u32, sql::Error>> {
        use postgres::fallible_iterator::FallibleIterator;
        let index = self.table.get(slot)?.0;
        if let Err(e) = self.no_rows_asked(max) {
            return Ok(Err(e));
        }
        let budget = self.result_budget();
        let max = max.min(MAX_ROWS_PER_CALL) as usize;
        let r = self.guarded(|s| {
            let Some(cursor) = s.db.cursors.get_mut(index) else {
                return Ok(0);
            };
            let columns = cursor.columns.len();
            let mut count = 0usize;
            let mut used = 0usize;
            while count < max && !cursor.exhausted {
                let left = budget.saturating_sub(used);
                let want = left
                    .checked_div(cursor.average_row)
                    .map_or(FIRST_FETCH, |n| n.saturating_mul(2).max(1))
                    .min(max - count)
                    .min(MAX_FETCH);
                let fetch = format!("FETCH FORWARD {want} FROM {}", cursor.name);
                let mut rows =
                    s.db.client
                        .query_raw(fetch.as_str(), std::iter::empty::<&(dyn ToSql + Sync)>())?;
                let (mut received, mut skipped) = (0usize, 0usize);
                while let Some(row) = rows.next()? {
                    received += 1;
                    if skipped > 0 {
                        skipped += 1;
                        continue;
                    }
                    let sent = sent_size(&row, columns)?;
                    if sent > cursor.row_limit.min(budget) || used.saturating_add(sent) > budget {
                        if count == 0 {
                            return Err(Fail::TooLarge("one row of this cursor", budget));
                        }
                        skipped = 1;
                        continue;
                    }
                    let row = decode_row(&row, columns)?;
                    let size = row_size(&row);
                    cursor.average_row = (cursor.average_row + size) / 2 + 1;
                    used += size;
                    push(row);
                    count += 1;
                    cursor.delivered += 1;
                }
                drop(rows);
                if skipped > 0 {
                    // Onto the last row handed out, so the next fetch starts after it.
                    s.db.client.batch_execute(&format!(
                        "MOVE ABSOLUTE {} FROM {}",
                        cursor.delivered, cursor.name
                    ))?;
                    break;
                }
                if received < want {
                    cursor.exhausted = true;
                }
            }
            Ok(count as u32)
        });
        Ok(r)
    }
}

/// The first fetch of a cursor, before its rows' size is known.
const FIRST_FETCH: usize = 64;

/// `text` (a statement of `kind` returning `statement`'s columns) wrapped so that the server
/// computes each row's size and sends a row larger than `budget` (as [`row_size`] counts it)
/// as NULLs: the last column is the row's size as the component would hold it. The statement
/// stays one subquery (or, for a row change, one CTE) evaluated once per row.
fn sized(text: &str, statement: &Statement, kind: StatementKind, budget: usize) -> String {
    let columns = statement.columns();
    let names: Vec<String> = (1..=columns.len()).map(|i| format!("c{i}")).collect();
    let mut size = format!(
        "{}::pg_catalog.int8",
        ROW_OVERHEAD + columns.len() * VALUE_OVERHEAD
    );
    for (c, name) in columns.iter().zip(&names) {
        let ty = c.type_();
        let fixed = matches!(
            *ty,
            Type::BOOL
                | Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::OID
                | Type::FLOAT4
                | Type::FLOAT8
                | Type::DATE
                | Type::TIME
                | Type::TIMESTAMP
                | Type::TIMESTAMPTZ
                | Type::UUID
        );
        if fixed {
            continue;
        }
        let direct = matches!(
            *ty,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::BYTEA | Type::NAME
        );
        let value = if direct {
            format!("r.{name}")
        } else {
            format!("r.{name}::pg_catalog.text")
        };
        let _ = write!(
            size,
            " + COALESCE(pg_catalog.octet_length({value})::pg_catalog.int8, 0)"
        );
    }
    if names.is_empty() {
        // Rows without columns (`SELECT FROM t`): only their count matters.
        return format!("SELECT {size} AS strata_size FROM ({text}\n) AS r0");
    }
    let list = names.join(", ");
    let source = match kind {
        StatementKind::Query => format!("({text}\n) AS r0({list})"),
        StatementKind::RowChange => format!("strata_rows AS r0({list})"),
    };
    let with = match kind {
        StatementKind::Query => String::new(),
        StatementKind::RowChange => format!("WITH strata_rows AS ({text}\n) "),
    };
    let out: Vec<String> = names
        .iter()
        .map(|n| format!("CASE WHEN s.strata_size <= {budget} THEN s.{n} END"))
        .collect();
    format!(
        "{with}SELECT {}, s.strata_size FROM (SELECT r.*, {size} AS strata_size \
         FROM (SELECT * FROM {source} OFFSET 0) r OFFSET 0) s",
        out.join(", ")
    )
}

/// The size of a row as the server computed it (the last column of a [`sized`] row).
fn sent_size(row: &postgres::Row, columns: usize) -> Result<usize, Fail> {
    let size: i64 = row
        .try_get(columns)
        .map_err(|e| Fail::Value(format!("the size of a row: {e}")))?;
    Ok(usize::try_from(size).unwrap_or(usize::MAX))
}

impl sql::Host for HostState<Postgres> {
    fn execute(
        &mut self,
        sql: String,
        params: Vec<sql::Value>,
    ) -> WResult<Result<u64, sql::Error>> {
        let r = self.call(&sql, params.len(), Use::Any, |s, statement, _| {
            rows_statement(&statement)?;
            s.db.execute(&statement, &params)
        });
        Ok(r.map(|n| {
            self.db.rows_changed += n;
            self.count_written(n)
        }))
    }

    fn query(
        &mut self,
        sql: String,
        params: Vec<sql::Value>,
    ) -> WResult<Result<Vec<Vec<sql::Value>>, sql::Error>> {
        Ok(
            self.call(&sql, params.len(), Use::Any, |s, statement, checked| {
                s.read_rows(&statement, checked, &params, "the result of this `query`")
            }),
        )
    }

    fn execute_many(
        &mut self,
        sql: String,
        rows: Vec<Vec<sql::Value>>,
    ) -> WResult<Result<u64, sql::Error>> {
        let width = rows.first().map_or(0, Vec::len);
        let r = self.call(&sql, width, Use::Any, |s, statement, checked| {
            rows_statement(&statement)?;
            // Every row as wide as the statement's parameters (not only as the first row):
            // a narrower one is the component's error, never an index past its end.
            let params = statement.params().len();
            if let Some(row) = rows.iter().find(|r| r.len() != params) {
                return Err(Fail::Syntax(format!(
                    "the statement takes {params} parameters, a row has {} values",
                    row.len()
                )));
            }
            if rows.len() > 1 {
                let set = s.try_set_based(&checked.text, &statement, |db, name| {
                    let mut arrays = Arrays::new(width);
                    let mut changed = 0;
                    for row in &rows {
                        for (i, ty) in statement.params().iter().enumerate() {
                            element(&mut arrays, i, ty, Lit::from(&row[i]))?;
                        }
                        arrays.rows += 1;
                        if arrays.rows >= BATCH_ROWS || arrays.bytes() >= BATCH_BYTES {
                            changed += db.run_set_based(name, &mut arrays)?;
                        }
                    }
                    Ok(changed + db.run_set_based(name, &mut arrays)?)
                })?;
                if let Some(changed) = set {
                    return Ok(changed);
                }
            }
            let mut batch = Batch::new(&mut s.db, &checked.text, &statement)?;
            let mut changed = 0;
            for row in &rows {
                batch.push(|i| Lit::from(&row[i]))?;
                if batch.full() {
                    changed += batch.send(&mut s.db.client)?;
                }
            }
            Ok(changed + batch.send(&mut s.db.client)?)
        });
        Ok(r.map(|n| {
            self.db.rows_changed += n;
            self.count_written(n)
        }))
    }

    fn execute_packed(
        &mut self,
        sql: String,
        rows: sql::PackedRows,
    ) -> WResult<Result<u64, sql::Error>> {
        let r = self.call(
            &sql,
            rows.columns as usize,
            Use::Any,
            |s, statement, checked| {
                let columns = rows.columns as usize;
                if columns != statement.params().len() {
                    return Err(Fail::Syntax(format!(
                        "the statement takes {} parameters, the packed rows have {columns} columns",
                        statement.params().len()
                    )));
                }
                rows_statement(&statement)?;
                if rows.count > 1 {
                    let set = s.try_set_based(&checked.text, &statement, |db, name| {
                        let mut arrays = Arrays::new(columns);
                        let mut d = strata_wire::Values::new(&rows.data);
                        let mut changed = 0;
                        for _ in 0..rows.count {
                            for (i, ty) in statement.params().iter().enumerate() {
                                let v = d
                                    .next_value()
                                    .map_err(|e| Fail::Syntax(e.to_string()))?
                                    .ok_or_else(|| Fail::Syntax("too few values".into()))?;
                                element(&mut arrays, i, ty, Lit::from(v))?;
                            }
                            arrays.rows += 1;
                            if arrays.rows >= BATCH_ROWS || arrays.bytes() >= BATCH_BYTES {
                                changed += db.run_set_based(name, &mut arrays)?;
                            }
                        }
                        if !d.is_done() {
                            return Err(Fail::Syntax("too many values".into()));
                        }
                        Ok(changed + db.run_set_based(name, &mut arrays)?)
                    })?;
                    if let Some(changed) = set {
                        return Ok(changed);
                    }
                }
                let mut batch = Batch::new(&mut s.db, &checked.text, &statement)?;
                let mut d = strata_wire::Values::new(&rows.data);
                let mut changed = 0;
                let mut row: Vec<Lit<'_>> = Vec::with_capacity(columns);
                for _ in 0..rows.count {
                    row.clear();
                    for _ in 0..columns {
                        let v = d
                            .next_value()
                            .map_err(|e| Fail::Syntax(e.to_string()))?
                            .ok_or_else(|| {
                                Fail::Syntax(
                                    "packed rows hold fewer values than columns x count".into(),
                                )
                            })?;
                        row.push(Lit::from(v));
                    }
                    batch.push(|i| row[i])?;
                    if batch.full() {
                        changed += batch.send(&mut s.db.client)?;
                    }
                }
                changed += batch.send(&mut s.db.client)?;
                if !d.is_done() {
                    return Err(Fail::Syntax(
                        "packed rows hold more values than columns x count".into(),
                    ));
                }
                Ok(changed)
            },
        );
        Ok(r.map(|n| {
            self.db.rows_changed += n;
            self.count_written(n)
        }))
    }

    fn open_cursor(
        &mut self,
        sql: String,
        params: Vec<sql::Value>,
    ) -> WResult<Result<Resource<CursorSlot>, sql::Error>> {
        if let Some(why) = self.db.cursors.full() {
            return Ok(Err(self.limit_error(why)));
        }
        let budget = self.result_budget();
        let r = self.call(&sql, params.len(), Use::Cursor, |s, statement, checked| {
            let bound = bind(&statement, &params)?;
            s.db.opened += 1;
            let name = format!("strata_component_cursor_{}", s.db.opened);
            // SCROLL: a fetch that brings more than the budget takes is moved back over.
            let sized = sized(&checked.text, &statement, StatementKind::Query, budget);
            s.db.client.execute(
                &format!("DECLARE {name} SCROLL CURSOR FOR {sized}"),
                &bound.refs(),
            )?;
            Ok(s.db.cursors.insert(Cursor {
                name,
                columns: statement
                    .columns()
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect(),
                exhausted: false,
                average_row: 0,
                row_limit: budget,
                delivered: 0,
            }))
        });
        match r {
            Ok(index) => Ok(Ok(self.table.push(CursorSlot(index))?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

impl sql::HostCursor for HostState<Postgres> {
    fn columns(&mut self, slot: Resource<CursorSlot>) -> WResult<Vec<String>> {
        let index = self.table.get(&slot)?.0;
        Ok(self
            .db
            .cursors
            .get(index)
            .map(|c| c.columns.clone())
            .unwrap_or_default())
    }

    fn next(
        &mut self,
        slot: Resource<CursorSlot>,
        max_rows: u32,
    ) -> WResult<Result<Vec<Vec<sql::Value>>, sql::Error>> {
        let mut out = Vec::new();
        let r = self.step_cursor(&slot, max_rows, |row| out.push(row))?;
        Ok(r.map(|_| out))
    }

    fn next_packed(
        &mut self,
        slot: Resource<CursorSlot>,
        max_rows: u32,
    ) -> WResult<Result<sql::PackedRows, sql::Error>> {
        let asked = PackedRequest::of(max_rows);
        let mut out = asked.encoder();
        let mut columns = 0;
        let r = self.step_cursor(&slot, asked.max_rows, |row| {
            columns = row.len() as u32;
            for v in &row {
                encode(&mut out, v);
            }
        })?;
        Ok(r.and_then(|count| asked.batch(columns, count, out.take())))
    }

    fn drop(&mut self, slot: Resource<CursorSlot>) -> WResult<()> {
        let CursorSlot(index) = self.table.delete(slot)?;
        if let Some(cursor) = self.db.cursors.remove(index) {
            let close = format!("CLOSE {}", cursor.name);
            // A cursor a failed statement already closed is not an error for the guest.
            let _ = self.guarded(|s| s.db.client.batch_execute(&close).map_err(Fail::Sql));
        }
        Ok(())
    }
}

impl Sandbox {
    /// Runs one component on PostgreSQL, inside the step's open transaction on `client`, under
    /// a role of its own (see `sandbox::postgres`); `statement_timeout` is the step's (zero:
    /// none). The client always comes back.
    pub fn call_postgres(
        &self,
        client: ::postgres::Client,
        call: &Call<'_>,
        scope: Scope<'_>,
        statement_timeout: Duration,
    ) -> (::postgres::Client, Called) {
        let loaded = match self.prepare(call) {
            Ok(l) => l,
            Err(failed) => return (client, failed),
        };
        let timeout = Duration::from_secs(call.limits.timeout_s);
        let mut client = client;
        let db = match Postgres::enter(&mut client, &call.policy, scope, timeout, statement_timeout)
        {
            Ok(entered) => Postgres::new(client, entered),
            Err(reason) => {
                let failed = Called {
                    outcome: Outcome::default(),
                    result: Err(ComponentError::Setup { reason }),
                };
                return (client, failed);
            }
        };
        let state = HostState::new(db, call.limits.memory_mib, Arc::clone(&call.progress));
        let (state, result, fuel_left) = self.run_on(state, &loaded, call);
        let HostState {
            db,
            limiter,
            limit,
            logs,
            ..
        } = state;
        let (client, left) = db.leave();
        let called = Ended {
            fuel_left,
            limiter,
            host_limit: limit,
            logs,
            rows_changed: left.rows_changed,
            timed_out_in_sql: left.timed_out,
            denied: left.denied,
            cleanup: left
                .cleanup
                .map(|e| format!("cannot leave the component's role: {e}")),
        }
        .conclude(call, result);
        (client, called)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: &[u16], weight: i16, sign: u16, dscale: u16) -> Vec<u8> {
        let mut raw = Vec::new();
        for w in [ndigits.len() as u16, weight as u16, sign, dscale] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        for d in ndigits {
            raw.extend_from_slice(&d.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numerics_read_as_postgresql_prints_them() {
        // 12345.678 = [1, 2345, 6780], weight 1, scale 3
        assert_eq!(
            numeric_text(&numeric(&[1, 2345, 6780], 1, 0, 3)).unwrap(),
            "12345.678"
        );
        // -0.0012 = [12], weight -1, scale 4
        assert_eq!(
            numeric_text(&numeric(&[12], -1, 0x4000, 4)).unwrap(),
            "-0.0012"
        );
        // 100000000 = [1], weight 2, scale 0
        assert_eq!(numeric_text(&numeric(&[1], 2, 0, 0)).unwrap(), "100000000");
        // 0.00 with no digits, scale 2
        assert_eq!(numeric_text(&numeric(&[], 0, 0, 2)).unwrap(), "0.00");
        assert_eq!(numeric_text(&numeric(&[], 0, 0xC000, 0)).unwrap(), "NaN");
        assert!(numeric_text(&[0, 1]).is_err());
    }

    #[test]
    fn dates_and_times_read_as_postgresql_prints_them() {
        assert_eq!(date_text(0), "2000-01-01");
        assert_eq!(date_text(-1), "1999-12-31");
        assert_eq!(date_text(i32::MAX), "infinity");
        assert_eq!(
            timestamp_text(86_400_000_000 + 1_500_000, ""),
            "2000-01-02 00:00:01.5"
        );
        assert_eq!(timestamp_text(-1, "+00"), "1999-12-31 23:59:59.999999+00");
        assert_eq!(time_text(3_723_000_010), "01:02:03.00001");
        assert_eq!(
            uuid_text(&[0x12; 16]).unwrap(),
            "12121212-1212-1212-1212-121212121212"
        );
    }

    /// A client on the test server inside an open transaction, or `None` (after saying why).
    /// The tests that call this are `#[ignore]`d with the reason (a fresh clone has no server);
    /// run anyway (`.ci/run` includes them) they need `STRATA_TEST_POSTGRES`.
    fn server(test: &str) -> Client {
        let url = std::env::var("STRATA_TEST_POSTGRES").unwrap_or_else(|_| {
            panic!("{test} needs a PostgreSQL server: set STRATA_TEST_POSTGRES (bash .ci/run)")
        });
        let mut client = Client::connect(&url, postgres::NoTls).expect("the test server");
        client.batch_execute("BEGIN").unwrap();
        client
    }

    /// The host state of a component call on `client`, allowed every table.
    fn component_on(mut client: Client) -> HostState<Postgres> {
        let policy = Policy::new(None, None, "m/migration.toml".into());
        let entered = Postgres::enter(
            &mut client,
            &policy,
            Scope {
                tenant: None,
                fleet_schemas: &[],
            },
            Duration::from_secs(60),
            Duration::ZERO,
        )
        .unwrap();
        HostState::new(
            Postgres::new(client, entered),
            64,
            std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        )
    }

    #[test]
    #[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
    fn server_values_reach_the_component_as_postgresql_prints_them() {
        use sql::Host as _;
        use sql::Value as V;
        let mut client = server("server_values");
        // Made inside the transaction, which is rolled back at the end.
        client
            .batch_execute(
                "CREATE TYPE strata_mood AS ENUM ('sad', 'ok');
                 CREATE DOMAIN strata_posint AS int CHECK (VALUE > 0);
                 CREATE TABLE strata_types (
                    b boolean, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric(30, 3),
                    t text, v varchar(9), c char(3), by bytea, d date, ts timestamp,
                    tz timestamptz, tm time, u uuid, j json, jb jsonb, m strata_mood,
                    p strata_posint, iv interval);
                 INSERT INTO strata_types VALUES (true, -2, 40000, 9000000000, 1.5, -0.25,
                    -123456789012345678.905, 'tëxt', 'var', 'ab', '\\x00ff', '1999-12-31',
                    '2024-02-29 13:14:15.25', '2024-02-29 13:14:15+02', '23:59:59.5',
                    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": 1}', '{\"b\": [1, 2]}',
                    'ok', 7, '1 day');
                 INSERT INTO strata_types (n) VALUES (0.000), (100000000);",
            )
            .unwrap();
        let mut s = component_on(client);
        let rows = s
            .query(
                "SELECT b, i2, i4, i8, f4, f8, n, t, v, c, by, d, ts, tz, tm, u, j, jb, m, p \
                 FROM strata_types ORDER BY n NULLS LAST"
                    .into(),
                vec![],
            )
            .unwrap()
            .unwrap();
        let text = |s: &str| V::Text(s.into());
        let same = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        };
        same(
            &rows[0],
            &vec![
                V::Integer(1),
                V::Integer(-2),
                V::Integer(40000),
                V::Integer(9_000_000_000),
                V::Real(1.5),
                V::Real(-0.25),
                text("-123456789012345678.905"),
                text("tëxt"),
                text("var"),
                text("ab "),
                V::Blob(vec![0, 255]),
                text("1999-12-31"),
                text("2024-02-29 13:14:15.25"),
                text("2024-02-29 11:14:15+00"),
                text("23:59:59.5"),
                text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                text("{\"a\": 1}"),
                text("{\"b\": [1, 2]}"),
                text("ok"),
                V::Integer(7),
            ],
        );
        same(&rows[1][6], &text("0.000"));
        same(&rows[2][6], &text("100000000.000"));
        same(&rows[1][0], &V::Null);
        // A type with no WIT form: an error that says how to read it, and the call can go on.
        let r = s
            .query("SELECT iv FROM strata_types LIMIT 1".into(), vec![])
            .unwrap();
        assert!(
            matches!(&r, Err(sql::Error::Other(m)) if m.contains("interval") && m.contains("::text")),
            "{r:?}"
        );
        // Parameters by the types the server infers.
        let r = s
            .query(
                "SELECT $1::numeric + 1, $2::date + 1, $3::int2 * 2, $4::float8 / 2, $5::bool"
                    .into(),
                vec![
                    text("1.25"),
                    text("2024-02-28"),
                    V::Integer(21),
                    V::Integer(3),
                    V::Integer(1),
                ],
            )
            .unwrap()
            .unwrap();
        same(
            &r,
            &vec![vec![
                text("2.25"),
                text("2024-02-29"),
                V::Integer(42),
                V::Real(1.5),
                V::Integer(1),
            ]],
        );
        let (mut client, left) = s.db.leave();
        assert!(
            left.cleanup.is_none() && left.denied.is_none(),
            "{:?} {:?}",
            left.cleanup,
            left.denied
        );
        client.batch_execute("ROLLBACK").unwrap();
    }

    #[test]
    #[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
    fn rows_sent_in_batches_mean_what_they_would_mean_bound() {
        use sql::Host as _;
        use sql::Value as V;
        let mut client = server("batches");
        client
            .batch_execute(
                "CREATE TABLE strata_batch (id int PRIMARY KEY, n numeric(8, 2), d date, b boolean,
                    by bytea, t text, f float8)",
            )
            .unwrap();
        let mut s = component_on(client);
        let text = |s: &str| V::Text(s.into());
        let rows: Vec<Vec<V>> = (0..12_000)
            .map(|i| {
                vec![
                    V::Integer(i),
                    text("12.5"),
                    text("2024-02-29"),
                    V::Integer(i % 2),
                    V::Blob(vec![0, 39, 92, 255]),
                    text("it's $v$ \\ -- not a comment; $1"),
                    V::Real(0.1),
                ]
            })
            .collect();
        let changed = s
            .execute_many(
                "INSERT INTO strata_batch VALUES (?, ?, ?, ?, ?, ?, ?) -- trailing comment".into(),
                rows,
            )
            .unwrap()
            .unwrap();
        assert_eq!(changed, 12_000);
        let (mut client, left) = s.db.leave();
        assert!(left.cleanup.is_none() && left.denied.is_none());
        let row = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE b), min(n)::text, min(d)::text, \
                 min(encode(by, 'hex')), min(t), min(f) FROM strata_batch",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 12_000);
        assert_eq!(row.get::<_, i64>(1), 6_000);
        assert_eq!(row.get::<_, String>(2), "12.50");
        assert_eq!(row.get::<_, String>(3), "2024-02-29");
        assert_eq!(row.get::<_, String>(4), "00275cff");
        assert_eq!(row.get::<_, String>(5), "it's $v$ \\ -- not a comment; $1");
        assert_eq!(row.get::<_, f64>(6), 0.1);
        // A failing row undoes its whole call, and the transaction goes on.
        let mut s = component_on(client);
        let r = s
            .execute_many(
                "INSERT INTO strata_batch (id) VALUES ($1)".into(),
                vec![vec![V::Integer(20_000)], vec![V::Integer(1)]],
            )
            .unwrap();
        assert!(matches!(r, Err(sql::Error::Constraint(_))), "{r:?}");
        let r = s
            .execute_many(
                "INSERT INTO strata_batch (t) VALUES ($1)".into(),
                vec![vec![V::Blob(vec![1])]],
            )
            .unwrap();
        assert!(
            matches!(&r, Err(sql::Error::Other(m)) if m.contains("blob")),
            "{r:?}"
        );
        // Rows narrower (or wider) than the statement's parameters, all of one width: the
        // component's error, not an index past the row's end (found from outside: a panic).
        for rows in [
            vec![vec![V::Integer(30_000)], vec![V::Integer(30_001)]],
            vec![vec![V::Integer(30_000), text("a"), text("b")]],
        ] {
            let r = s
                .execute_many(
                    "INSERT INTO strata_batch (id, t) VALUES ($1, $2)".into(),
                    rows,
                )
                .unwrap();
            assert!(
                matches!(&r, Err(sql::Error::Syntax(m)) if m.contains("takes 2 parameters")),
                "{r:?}"
            );
        }
        let (mut client, left) = s.db.leave();
        assert!(left.cleanup.is_none() && left.denied.is_none());
        let n: i64 = client
            .query_one("SELECT count(*) FROM strata_batch", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 12_000);
        client.batch_execute("ROLLBACK").unwrap();
    }

    /// The same batches, set-based on `strata_set` and row by row on its twin `strata_row`
    /// (whose trigger keeps it off the set-based path), give the same results, rows and errors.
    #[test]
    #[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
    fn set_based_batches_change_what_row_by_row_batches_change() {
        use sql::Host as _;
        use sql::Value as V;
        let mut client = server("set-based batches");
        let mut create = String::from(
            "CREATE FUNCTION strata_row_noop() RETURNS trigger LANGUAGE plpgsql \
             AS $$BEGIN RETURN NEW; END$$;",
        );
        for t in ["strata_set", "strata_row"] {
            let _ = write!(
                create,
                "CREATE TABLE {t} (id int PRIMARY KEY, k text UNIQUE, a text, \
                   n numeric(8, 2) CHECK (n < 1000), d date, b boolean, by bytea, f float8);
                 INSERT INTO {t} (id, k, a) SELECT g, 'k' || g, 'old' FROM generate_series(1, 3000) g;"
            );
        }
        create.push_str(
            "CREATE TRIGGER strata_row_noop BEFORE UPDATE ON strata_row \
             FOR EACH ROW EXECUTE FUNCTION strata_row_noop();",
        );
        client.batch_execute(&create).unwrap();
        let mut s = component_on(client);
        let text = |s: &str| V::Text(s.into());
        let set = |i: i64| {
            vec![
                text(&format!("it's \"{i}\" $v$ \\ {{x,y}} NULL")),
                text("12.5"),
                text("2024-02-29"),
                V::Integer(i % 2),
                V::Blob(vec![0, 34, 39, 92, 255]),
                V::Real(0.1 * i as f64),
                V::Integer(i),
            ]
        };
        let update = "UPDATE TABLE SET a = ?, n = ?, d = ?, b = ?, by = ?, f = ? WHERE id = ?";
        // Every row (and ids that match none), one row twice (the later wins), a row whose
        // CHECK fails (the whole call undone), a value its type refuses.
        let mut twice = vec![set(7), set(8)];
        twice[1][6] = V::Integer(7);
        let mut check = vec![set(20), set(21), set(22)];
        check[1][1] = text("5000");
        let mut refused = vec![set(30), set(31)];
        refused[1][2] = text("not a date");
        let batches: Vec<Vec<Vec<V>>> = vec![(1..=3100).map(set).collect(), twice, check, refused];
        let mut results = Vec::new();
        for table in ["strata_set", "strata_row"] {
            let statement = update.replace("TABLE", table);
            let mut seen = Vec::new();
            for (i, rows) in batches.iter().enumerate() {
                // Packed and unpacked alike.
                let r = if i % 2 == 0 {
                    let mut e = strata_wire::Encoder::new();
                    for v in rows.iter().flatten() {
                        encode(&mut e, v);
                    }
                    let packed = sql::PackedRows {
                        columns: 7,
                        count: rows.len() as u32,
                        data: e.take(),
                    };
                    s.execute_packed(statement.clone(), packed).unwrap()
                } else {
                    s.execute_many(statement.clone(), rows.clone()).unwrap()
                };
                seen.push(format!("{r:?}").replace(table, "TABLE"));
            }
            let placeholders =
                crate::core::sql::postgres::number_placeholders(&statement, 7).unwrap();
            let qualified = s.db.checked.get(&placeholders).unwrap().text.clone();
            seen.push(format!(
                "set-based: {}",
                s.db.set_based.get(&qualified).unwrap().is_some()
            ));
            results.push(seen);
        }
        assert_eq!(results[0][4], "set-based: true");
        assert_eq!(results[1][4], "set-based: false");
        assert_eq!(results[0][..4], results[1][..4]);
        assert_eq!(results[0][0], "Ok(3000)");
        assert_eq!(results[0][1], "Ok(2)");
        assert!(results[0][2].contains("Constraint") && results[0][2].contains("check"));
        assert!(results[0][3].contains("Syntax") && results[0][3].contains("not a date"));
        // An update whose WHERE reads what it sets stays row by row.
        let r = s
            .execute_many(
                "UPDATE strata_set SET a = $1 WHERE a = $2".into(),
                vec![vec![text("x"), text("y")], vec![text("y"), text("x")]],
            )
            .unwrap();
        assert_eq!(r.unwrap(), 0);
        assert!(s.db.set_based.values().filter(|v| v.is_some()).count() == 1);
        let (mut client, left) = s.db.leave();
        assert!(
            left.cleanup.is_none() && left.denied.is_none(),
            "{:?}",
            left.cleanup
        );
        let digest = |c: &mut Client, t: &str| -> String {
            c.query_one(
                &format!(
                    "SELECT md5(string_agg(({t}.*)::text, ',' ORDER BY id)) || count(*) FROM {t}"
                ),
                &[],
            )
            .unwrap()
            .get(0)
        };
        let (a, b) = (
            digest(&mut client, "strata_set"),
            digest(&mut client, "strata_row"),
        );
        assert_eq!(a, b);
        let seven: String = client
            .query_one("SELECT a FROM strata_set WHERE id = 7", &[])
            .unwrap()
            .get(0);
        assert_eq!(seven, "it's \"8\" $v$ \\ {x,y} NULL");
        client.batch_execute("ROLLBACK").unwrap();
    }

    #[test]
    #[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
    fn the_sessions_settings_are_strata_s_again_after_a_component() {
        use sql::Host as _;
        let mut client = server("settings");
        client
            .batch_execute("SET LOCAL search_path = public; SET LOCAL synchronous_commit = on")
            .unwrap();
        let work_mem: String = client
            .query_one("SELECT current_setting('work_mem')", &[])
            .unwrap()
            .get(0);
        let mut s = component_on(client);
        // While the component runs, unqualified names resolve in pg_catalog only.
        let r = s
            .query("SELECT current_setting('search_path')".into(), vec![])
            .unwrap()
            .unwrap();
        assert!(
            matches!(&r[..], [row] if matches!(&row[..], [sql::Value::Text(t)] if t == "pg_catalog, pg_temp")),
            "{r:?}"
        );
        // However settings were changed while it ran (here by the role itself, through no
        // statement a component may send), strata's own statements after it run under the
        // settings from before it.
        s.db.client
            .batch_execute(
                "SET search_path = pg_catalog; SET synchronous_commit = off; \
                 SET DateStyle = 'SQL, DMY'; SELECT set_config('work_mem', '64kB', false)",
            )
            .unwrap();
        let (mut client, left) = s.db.leave();
        assert!(left.cleanup.is_none(), "{:?}", left.cleanup);
        let row = client
            .query_one(
                "SELECT current_setting('search_path'), current_setting('synchronous_commit'), \
                 current_setting('DateStyle'), current_setting('work_mem')",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "public");
        assert_eq!(row.get::<_, String>(1), "on");
        assert_eq!(row.get::<_, String>(2), "ISO, MDY");
        assert_eq!(row.get::<_, String>(3), work_mem);
        client.batch_execute("ROLLBACK").unwrap();
    }

    #[test]
    #[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
    fn rows_over_the_budget_are_refused_without_being_received_whole() {
        use sql::{Host as _, HostCursor as _};
        let client = server("huge_rows");
        let mut s = component_on(client);
        // A row of 100 MB against a budget of 64 MiB: the server sends NULLs and its size.
        let r = s
            .query("SELECT 1, repeat('x', 100000000)".into(), vec![])
            .unwrap();
        assert!(matches!(&r, Err(sql::Error::Limit(_))), "{r:?}");
        // Small rows, then large ones: each `next` stops at the budget, and every row is
        // handed out once, in order.
        let cursor = s
            .open_cursor(
                "SELECT g, CASE WHEN g <= 100 THEN 'x' ELSE repeat('y', 1000000) END \
                 FROM generate_series(1, 300) g"
                    .into(),
                vec![],
            )
            .unwrap()
            .unwrap();
        let mut seen = Vec::new();
        let mut calls = 0;
        loop {
            let batch = s
                .next(Resource::new_borrow(cursor.rep()), 10_000)
                .unwrap()
                .unwrap();
            if batch.is_empty() {
                break;
            }
            calls += 1;
            let bytes: usize = batch.iter().map(|r| row_size(r)).sum();
            assert!(bytes <= 64 << 20, "{bytes}");
            seen.extend(batch.into_iter().map(|r| match r[0] {
                sql::Value::Integer(i) => i,
                _ => panic!("not an integer"),
            }));
        }
        assert_eq!(seen, (1..=300).collect::<Vec<_>>());
        assert!(calls >= 3, "{calls} calls");
        s.drop(cursor).unwrap();
        // A cursor whose row is over the budget: a limit error, not the row.
        let cursor = s
            .open_cursor("SELECT repeat('z', 100000000)".into(), vec![])
            .unwrap()
            .unwrap();
        let r = s.next(Resource::new_borrow(cursor.rep()), 10).unwrap();
        assert!(matches!(&r, Err(sql::Error::Limit(_))), "{r:?}");
        let (mut client, _) = s.db.leave();
        client.batch_execute("ROLLBACK").unwrap();
    }

    #[test]
    #[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
    fn distinct_statements_are_remembered_within_a_bound_on_host_and_server() {
        use crate::postgres::statement_cache::MAX_ENTRIES;
        use sql::Host as _;
        let mut client = server("statement_cache");
        client
            .batch_execute("CREATE TABLE strata_cache_t (i int)")
            .unwrap();
        let mut s = component_on(client);
        let n = 10 * MAX_ENTRIES as i64;
        for i in 0..n {
            let rows = s
                .query(format!("SELECT {i} AS x"), vec![])
                .unwrap()
                .unwrap();
            assert!(
                matches!(&rows[..], [r] if matches!(r[..], [sql::Value::Integer(x)] if x == i))
            );
            let changed = s
                .execute_many(
                    format!("INSERT INTO strata_cache_t VALUES ($1 + {i})"),
                    vec![vec![sql::Value::Integer(0)], vec![sql::Value::Integer(n)]],
                )
                .unwrap()
                .unwrap();
            assert_eq!(changed, 2);
        }
        // A statement forgotten long ago runs again.
        let rows = s.query("SELECT 0 AS x".into(), vec![]).unwrap().unwrap();
        assert!(matches!(&rows[..], [r] if matches!(r[..], [sql::Value::Integer(0)])));
        // Each cache keeps at most MAX_ENTRIES; the server, what the caches keep prepared.
        for kept in [
            s.db.checked.values().count(),
            s.db.statements.values().count(),
            s.db.prepared.values().count(),
        ] {
            assert!(kept <= MAX_ENTRIES, "{kept}");
        }
        let on_server: i64 =
            s.db.client
                .query_one(
                    "SELECT count(*) FROM pg_catalog.pg_prepared_statements",
                    &[],
                )
                .unwrap()
                .get(0);
        assert!(on_server <= 3 * MAX_ENTRIES as i64 + 4, "{on_server}");
        let (mut client, left) = s.db.leave();
        assert!(left.cleanup.is_none() && left.denied.is_none());
        let rows: i64 = client
            .query_one("SELECT count(*) FROM strata_cache_t", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, 2 * n);
        client.batch_execute("ROLLBACK").unwrap();
    }

    #[test]
    #[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
    fn a_cursor_hands_out_every_row_once_in_batches() {
        use sql::{Host as _, HostCursor as _};
        let client = server("cursor_batches");
        let mut s = component_on(client);
        let cursor = s
            .open_cursor("SELECT g FROM generate_series(1, 25000) g".into(), vec![])
            .unwrap()
            .unwrap();
        let mut seen = Vec::new();
        loop {
            let batch = s
                .next(Resource::new_borrow(cursor.rep()), 10_000)
                .unwrap()
                .unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 10_000);
            seen.extend(batch.into_iter().map(|r| match r[0] {
                sql::Value::Integer(i) => i,
                _ => panic!("not an integer"),
            }));
        }
        assert_eq!(seen, (1..=25_000).collect::<Vec<_>>());
        s.drop(cursor).unwrap();
        let (mut client, left) = s.db.leave();
        assert!(left.cleanup.is_none() && left.denied.is_none());
        client.batch_execute("ROLLBACK").unwrap();
    }
}

/// Statements of any Unicode text reach the component guard's check without a panic.
#[cfg(test)]
mod unicode_props {
    use proptest::prelude::*;

    use crate::postgres::guard::{Catalog, check};

    const PIECES: &[&str] = &[
        "SELECT ",
        "INSERT INTO ",
        "people",
        "\"用户\"",
        "(",
        ")",
        ",",
        ";",
        "'",
        "''",
        "\"",
        "$$",
        "$t$",
        "E'\\",
        "U&\"",
        "--",
        "/*",
        "*/",
        "é",
        "e\u{301}",
        "😀",
        "\u{200f}",
        "\u{202e}",
        "\u{feff}",
        "\0",
        "\\ud800",
        "set_config",
        "query_to_xml",
        " ",
        "\n",
        "1",
        "->>",
        "?",
        "$1",
        "::text",
        "FROM ",
        "WHERE ",
        "WITH ",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn the_postgres_guard_never_panics(
            pieces in proptest::collection::vec(
                prop_oneof![
                    3 => proptest::sample::select(PIECES).prop_map(str::to_string),
                    1 => any::<char>().prop_map(|c| c.to_string()),
                ],
                0..40,
            )
        ) {
            let sql: String = pieces.concat();
            let file = std::path::Path::new("m/migration.toml");
            let _ = check(&sql, &Catalog::default(), file);
        }
    }
}
