//! The bookkeeping tables in every migrated database (DESIGN §4).
//!
//! `strata_migration` holds one row per applied migration; `strata_migration_audit` is an
//! append-only log of every action on that database (triggers refuse UPDATE and DELETE);
//! `strata_database` holds the database's identity, which backups carry. This
//! module owns their schema, reads and writes; it decides nothing about what to apply.

use rusqlite::{Connection, OptionalExtension, params};

use crate::core::checksum::Manifest;
use crate::core::ledger::AUDIT_TABLE;
use crate::core::ledger::IDENTITY_TABLE;
use crate::core::ledger::MIGRATION_TABLE;
use crate::core::ledger::now_rfc3339;
use crate::core::ledger::operator;
use crate::core::ledger::{Applied, AuditRow, Entry, Record};
use crate::core::tree::{Migration, MigrationId};

/// The ledger tables. Written for a row per step at the least cost: `strata_migration` is
/// `WITHOUT ROWID` (its key is the table: one page per row, not a table page and an index page),
/// and CHECKs list their values with `OR`, as SQLite builds a temporary b-tree for an `IN` list
/// of three or more constants each time the statement runs. Tables created by earlier versions
/// keep their form; both work.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS strata_migration (
    module         TEXT    NOT NULL,
    stamp          TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    checksum       TEXT    NOT NULL,
    manifest       TEXT    NOT NULL,
    applied_at     TEXT    NOT NULL,
    duration_ms    INTEGER NOT NULL,
    engine_version TEXT    NOT NULL,
    PRIMARY KEY (module, stamp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS strata_migration_audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT    NOT NULL,
    phase       TEXT    NOT NULL,
    module      TEXT,
    stamp       TEXT,
    action      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL
                CHECK (outcome = 'ok' OR outcome = 'failed' OR outcome = 'rolled-back'),
    detail      TEXT,
    rows        INTEGER,
    fuel_used   INTEGER,
    duration_ms INTEGER,
    operator    TEXT    NOT NULL,
    checksum    TEXT
);
CREATE TRIGGER IF NOT EXISTS strata_migration_audit_no_update
    BEFORE UPDATE ON strata_migration_audit
    BEGIN SELECT RAISE(ABORT, 'strata_migration_audit is append-only'); END;
CREATE TRIGGER IF NOT EXISTS strata_migration_audit_no_delete
    BEFORE DELETE ON strata_migration_audit
    BEGIN SELECT RAISE(ABORT, 'strata_migration_audit is append-only'); END;
";

/// Creates the bookkeeping tables if they are missing. Takes the write lock only when it has
/// something to create.
pub fn ensure(conn: &mut Connection) -> rusqlite::Result<()> {
    if exists(conn)? {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    tx.commit()
}

/// [`ensure`] inside the caller's transaction: creates the bookkeeping tables if they are
/// missing, committed or rolled back with the rest of it.
pub fn ensure_within(conn: &Connection) -> rusqlite::Result<()> {
    if !exists(conn)? {
        conn.execute_batch(SCHEMA)?;
    }
    Ok(())
}

/// Bookkeeping a caller wrote inside a transaction that may roll back: the tables, the identity
/// a backup taken inside it recorded, and audit rows such as that backup's. After a rollback
/// they are written again (in the transaction that audits the failure), so the log keeps them
/// and the database keeps the identity its backup carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replay {
    pub database_id: Option<String>,
    pub entries: Vec<Entry>,
}

impl Replay {
    /// Writes it all again, inside the caller's transaction.
    pub fn write(&self, conn: &Connection) -> rusqlite::Result<()> {
        ensure_within(conn)?;
        if let Some(id) = &self.database_id {
            identity_within(conn, Some(id))?;
        }
        append(conn, &self.entries)
    }
}

/// Whether the bookkeeping tables are there.
pub fn exists(conn: &Connection) -> rusqlite::Result<bool> {
    // The names as literals: with SQLite's STAT4 a bound value in a WHERE clause makes the
    // statement be compiled twice.
    let n: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
             AND name IN ('{MIGRATION_TABLE}', '{AUDIT_TABLE}')"
        ),
        [],
        |r| r.get(0),
    )?;
    Ok(n == 2)
}

/// Every applied migration, in global order; empty when the tables do not exist yet.
pub fn applied(conn: &Connection) -> rusqlite::Result<Vec<Applied>> {
    if !exists(conn)? {
        return Ok(Vec::new());
    }
    applied_rows(conn)
}

/// [`applied_rows`] for a reader that only compares: a row's manifest is taken apart only
/// when its checksum is not that of the tree's migration of the same id (the manifest then
/// says which files changed); elsewhere it is `None`, as it is never read.
pub(crate) fn applied_rows_against(
    conn: &Connection,
    migrations: &[Migration],
) -> rusqlite::Result<Vec<Applied>> {
    applied_rows_with(conn, |id, checksum| {
        !migrations
            .iter()
            .any(|m| m.id == *id && m.manifest.checksum_str() == checksum)
    })
}

/// [`applied`] when the tables are known to be there.
pub(crate) fn applied_rows(conn: &Connection) -> rusqlite::Result<Vec<Applied>> {
    applied_rows_with(conn, |_, _| true)
}

/// Every row of the ledger, in global order, its manifest taken apart where `manifest` says
/// so of its id and checksum.
fn applied_rows_with(
    conn: &Connection,
    manifest: impl Fn(&MigrationId, &str) -> bool,
) -> rusqlite::Result<Vec<Applied>> {
    let mut stmt = conn.prepare(
        "SELECT module, stamp, name, checksum, manifest, applied_at, duration_ms, engine_version
         FROM strata_migration ORDER BY stamp, module",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let id = MigrationId {
            module: r.get(0)?,
            stamp: r.get(1)?,
        };
        let checksum: String = r.get(3)?;
        let manifest = if manifest(&id, &checksum) {
            Manifest::from_lines(r.get_ref(4)?.as_str()?)
        } else {
            None
        };
        out.push(Applied {
            id,
            name: r.get(2)?,
            checksum,
            manifest,
            applied_at: r.get(5)?,
            duration_ms: r.get(6)?,
            engine_version: r.get(7)?,
        });
    }
    Ok(out)
}

/// Whether `id` is recorded as applied (read inside the step's transaction, so a concurrent
/// process that applied it first is seen).
pub fn is_applied(conn: &Connection, id: &MigrationId) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM strata_migration WHERE module = ?1 AND stamp = ?2",
        params![id.module, id.stamp],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

/// The applied migrations of one database as one connection last read them: read once, then
/// trusted for as long as `PRAGMA data_version` shows that no other connection committed. Ask it
/// inside the step's write transaction, where nobody else can commit.
#[derive(Debug, Default)]
pub struct Known {
    ids: std::collections::HashSet<MigrationId>,
    data_version: Option<i64>,
    /// How often the ledger was read: the work it does, for tests.
    pub reads: u64,
}

impl Known {
    /// Whether `id` is applied, reading the ledger only if another connection wrote since.
    pub fn is_applied(&mut self, conn: &Connection, id: &MigrationId) -> rusqlite::Result<bool> {
        let version: i64 = conn
            .prepare_cached("PRAGMA main.data_version")?
            .query_row([], |r| r.get(0))?;
        if self.data_version != Some(version) {
            self.ids = conn
                .prepare_cached("SELECT module, stamp FROM strata_migration")?
                .query_map([], |r| {
                    Ok(MigrationId {
                        module: r.get(0)?,
                        stamp: r.get(1)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            self.data_version = Some(version);
            self.reads += 1;
        }
        Ok(self.ids.contains(id))
    }

    /// `id` was committed by this connection.
    pub fn applied(&mut self, id: &MigrationId) {
        self.ids.insert(id.clone());
    }

    /// Read the ledger again next time (after a rollback).
    pub fn invalidate(&mut self) {
        self.data_version = None;
    }
}

/// Records `m` as applied.
pub fn record(conn: &Connection, m: &Migration, duration_ms: u64) -> rusqlite::Result<()> {
    write_records(conn, &[Record::of(m, m.checksum(), duration_ms)])
}

/// Writes rows of `strata_migration`, through one prepared statement.
pub fn write_records(conn: &Connection, records: &[Record]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO strata_migration
             (module, stamp, name, checksum, manifest, applied_at, duration_ms, engine_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for r in records {
        stmt.execute(params![
            r.module,
            r.stamp,
            r.name,
            r.checksum,
            r.manifest,
            r.applied_at,
            r.duration_ms as i64,
            crate::ENGINE_VERSION,
        ])?;
    }
    Ok(())
}

/// Appends entries to the audit log, stamped now and with the operator.
pub fn append(conn: &Connection, entries: &[Entry]) -> rusqlite::Result<()> {
    append_at(conn, &now_rfc3339(), entries)
}

/// [`append`], stamped `at` (RFC 3339): when the entries happened, for entries written later.
pub fn append_at(conn: &Connection, at: &str, entries: &[Entry]) -> rusqlite::Result<()> {
    let who = operator();
    let mut stmt = conn.prepare_cached(
        "INSERT INTO strata_migration_audit
             (at, phase, module, stamp, action, outcome, detail, rows, fuel_used, duration_ms,
              operator, checksum)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for e in entries {
        stmt.execute(params![
            at,
            e.phase,
            e.module,
            e.stamp,
            e.action,
            e.outcome.as_str(),
            e.detail,
            e.rows.map(|n| n as i64),
            e.fuel_used.map(|n| n as i64),
            e.duration_ms.map(|n| n as i64),
            who,
            e.checksum,
        ])?;
    }
    Ok(())
}

/// The newest `limit` audit rows (all if `None`), oldest first.
pub fn audit(conn: &Connection, limit: Option<u64>) -> rusqlite::Result<Vec<AuditRow>> {
    let limit = limit.map_or(-1, |n| n.min(i64::MAX as u64) as i64);
    audit_rows(conn, i64::MAX, limit)
}

/// One page of the audit log, paged in SQL on the id: the newest `size` rows whose id is below
/// `before_id` (no bound when `None`), oldest first, and whether older rows remain.
pub fn audit_page(
    conn: &Connection,
    before_id: Option<i64>,
    size: u64,
) -> rusqlite::Result<(Vec<AuditRow>, bool)> {
    let size = size.min(i64::MAX as u64 - 1) as i64;
    let mut rows = audit_rows(conn, before_id.unwrap_or(i64::MAX), size + 1)?;
    let more = rows.len() as i64 > size;
    if more {
        rows.remove(0);
    }
    Ok((rows, more))
}

/// The newest `limit` rows (all if negative) with an id below `before_id`, oldest first.
fn audit_rows(conn: &Connection, before_id: i64, limit: i64) -> rusqlite::Result<Vec<AuditRow>> {
    if !exists(conn)? {
        return Ok(Vec::new());
    }
    audit_rows_of(conn, before_id, limit)
}

/// The newest row of the audit log, when the tables are known to be there.
pub(crate) fn last_audit_row(conn: &Connection) -> rusqlite::Result<Option<AuditRow>> {
    // No parameters: with SQLite's STAT4 a bound value in the query makes it be compiled
    // twice, and a fleet's status reads this row of every target.
    conn.query_row(
        &format!("SELECT {AUDIT_COLUMNS} FROM strata_migration_audit ORDER BY id DESC LIMIT 1"),
        [],
        audit_row,
    )
    .optional()
}

/// The columns [`audit_row`] reads, in its order.
const AUDIT_COLUMNS: &str = "id, at, phase, module, stamp, action, outcome, detail, rows, \
                             fuel_used, duration_ms, operator, checksum";

/// An audit row from the columns [`AUDIT_COLUMNS`] names.
fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        id: r.get(0)?,
        at: r.get(1)?,
        phase: r.get(2)?,
        module: r.get(3)?,
        stamp: r.get(4)?,
        action: r.get(5)?,
        outcome: r.get(6)?,
        detail: r.get(7)?,
        rows: r.get(8)?,
        fuel_used: r.get(9)?,
        duration_ms: r.get(10)?,
        operator: r.get(11)?,
        checksum: r.get(12)?,
    })
}

/// [`audit_rows`] when the tables are known to be there.
fn audit_rows_of(conn: &Connection, before_id: i64, limit: i64) -> rusqlite::Result<Vec<AuditRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT * FROM (
             SELECT {AUDIT_COLUMNS}
             FROM strata_migration_audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2)
         ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![before_id, limit], audit_row)?;
    rows.collect()
}

const IDENTITY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS strata_database (
    id         TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS strata_database_no_update
    BEFORE UPDATE ON strata_database
    BEGIN SELECT RAISE(ABORT, 'strata_database is fixed'); END;
CREATE TRIGGER IF NOT EXISTS strata_database_no_delete
    BEFORE DELETE ON strata_database
    BEGIN SELECT RAISE(ABORT, 'strata_database is fixed'); END;
";

/// The database's identity; `None` when strata never gave it one. Creates nothing.
pub fn database_id(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [IDENTITY_TABLE],
        |r| r.get(0),
    )?;
    if n == 0 {
        return Ok(None);
    }
    conn.query_row(
        "SELECT id FROM strata_database ORDER BY rowid LIMIT 1",
        [],
        |r| r.get(0),
    )
    .optional()
}

/// The database's identity, created (128 random bits from SQLite's randomness source, as hex)
/// if it has none yet. Takes the write lock only when it has something to create; must not be
/// called inside a transaction.
pub fn ensure_database_id(conn: &Connection) -> rusqlite::Result<String> {
    if let Some(id) = database_id(conn)? {
        return Ok(id);
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let id = identity_within(&tx, None)?;
    tx.commit()?;
    Ok(id)
}

/// The database's identity inside the caller's transaction: created if it has none, as `id`
/// when given (to put back the identity a rolled-back transaction had given it), else random.
pub fn identity_within(conn: &Connection, id: Option<&str>) -> rusqlite::Result<String> {
    if let Some(existing) = database_id(conn)? {
        return Ok(existing);
    }
    conn.execute_batch(IDENTITY_SCHEMA)?;
    conn.execute(
        "INSERT INTO strata_database (id, created_at)
         SELECT coalesce(?2, lower(hex(randomblob(16)))), ?1
         WHERE NOT EXISTS (SELECT 1 FROM strata_database)",
        params![now_rfc3339(), id],
    )?;
    conn.query_row(
        "SELECT id FROM strata_database ORDER BY rowid LIMIT 1",
        [],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ledger::Outcome;

    #[test]
    fn the_audit_log_is_append_only() {
        let mut conn = Connection::open_in_memory().unwrap();
        ensure(&mut conn).unwrap();
        ensure(&mut conn).unwrap();
        let entry = Entry {
            phase: "apply".into(),
            module: Some("a".into()),
            stamp: Some("20240101T000000Z".into()),
            action: "do.sql".into(),
            outcome: Outcome::Ok,
            detail: None,
            rows: Some(3),
            fuel_used: None,
            duration_ms: Some(1),
            checksum: Some("abc".into()),
        };
        append(&conn, &[entry.clone(), entry]).unwrap();
        assert!(
            conn.execute("UPDATE strata_migration_audit SET outcome = 'failed'", [])
                .is_err()
        );
        assert!(
            conn.execute("DELETE FROM strata_migration_audit", [])
                .is_err()
        );
        // Every outcome the engine writes passes the CHECK; any other word does not.
        for outcome in [Outcome::Failed, Outcome::RolledBack] {
            let mut e = Entry::for_run("apply", "do.sql", String::new());
            e.outcome = outcome;
            append(&conn, &[e]).unwrap();
        }
        assert!(
            conn.execute(
                "INSERT INTO strata_migration_audit (at, phase, action, outcome, operator)
                 VALUES ('x', 'apply', 'do.sql', 'fine', 'me')",
                [],
            )
            .is_err()
        );
        let rows = audit(&conn, Some(1)).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, 4);
        assert_eq!(audit(&conn, None).unwrap().len(), 4);
    }

    #[test]
    fn a_comparing_read_takes_apart_only_the_manifests_that_differ() {
        let mut conn = Connection::open_in_memory().unwrap();
        ensure(&mut conn).unwrap();
        let mig = |stamp: &str, sha: char| Migration {
            id: MigrationId {
                module: "app".into(),
                stamp: stamp.into(),
            },
            slug: "s".into(),
            dir: std::path::PathBuf::from(format!("migrations/app/{stamp}-s")),
            manifest: Manifest::from_lines(&format!("{}  do.sql\n", sha.to_string().repeat(64)))
                .unwrap(),
            contents: None,
        };
        let (same, changed) = (mig("20240101T000000Z", 'a'), mig("20240102T000000Z", 'b'));
        record(&conn, &same, 1).unwrap();
        record(&conn, &changed, 1).unwrap();
        // The tree now holds another version of the second migration.
        let tree = [same.clone(), mig("20240102T000000Z", 'c')];
        let rows = applied_rows_against(&conn, &tree).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].manifest, None);
        assert_eq!(rows[1].manifest.as_ref(), Some(&changed.manifest));
        // What the plan makes of them is what it makes of a full read.
        let full = applied_rows(&conn).unwrap();
        let db = std::path::Path::new("t.db");
        let opts = crate::core::plan::PlanOptions::default();
        assert_eq!(
            format!("{:?}", crate::core::plan::plan(db, &tree, &rows, &opts)),
            format!("{:?}", crate::core::plan::plan(db, &tree, &full, &opts))
        );
        assert!(crate::core::plan::plan(db, &tree, &rows, &opts).is_err());
    }

    #[test]
    fn the_last_audit_row_is_the_newest() {
        let mut conn = Connection::open_in_memory().unwrap();
        ensure(&mut conn).unwrap();
        assert_eq!(last_audit_row(&conn).unwrap(), None);
        let entries: Vec<Entry> = (0..3)
            .map(|i| Entry::for_run("apply", "do.sql", format!("entry {i}")))
            .collect();
        append(&conn, &entries).unwrap();
        let last = last_audit_row(&conn).unwrap().unwrap();
        assert_eq!(last.id, 3);
        assert_eq!(last.detail.as_deref(), Some("entry 2"));
        assert_eq!(Some(last), audit(&conn, Some(1)).unwrap().pop());
    }

    #[test]
    fn audit_pages_walk_the_log_newest_first_without_gaps_or_repeats() {
        let mut conn = Connection::open_in_memory().unwrap();
        ensure(&mut conn).unwrap();
        let entries: Vec<Entry> = (0..7)
            .map(|i| Entry::for_run("apply", "do.sql", format!("entry {i}")))
            .collect();
        append(&conn, &entries).unwrap();
        let (page, more) = audit_page(&conn, None, 3).unwrap();
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [5, 6, 7]);
        assert!(more);
        let (page, more) = audit_page(&conn, Some(5), 3).unwrap();
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [2, 3, 4]);
        assert!(more);
        let (page, more) = audit_page(&conn, Some(2), 3).unwrap();
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [1]);
        assert!(!more);
        // A page that ends exactly at the oldest row says nothing older remains.
        let (page, more) = audit_page(&conn, Some(4), 3).unwrap();
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(!more);
        assert_eq!(audit_page(&conn, Some(1), 3).unwrap(), (Vec::new(), false));
    }

    #[test]
    fn a_database_gets_one_fixed_identity() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(database_id(&conn).unwrap(), None);
        let id = ensure_database_id(&conn).unwrap();
        assert_eq!(id.len(), 32, "{id}");
        assert_eq!(ensure_database_id(&conn).unwrap(), id);
        assert_eq!(database_id(&conn).unwrap(), Some(id.clone()));
        assert!(
            conn.execute("UPDATE strata_database SET id = 'x'", [])
                .is_err()
        );
        assert!(conn.execute("DELETE FROM strata_database", []).is_err());
        let other = Connection::open_in_memory().unwrap();
        assert_ne!(ensure_database_id(&other).unwrap(), id);
    }

    #[test]
    fn a_fresh_database_has_nothing_applied_and_no_tables_are_created_by_reading() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(applied(&conn).unwrap().is_empty());
        assert!(audit(&conn, None).unwrap().is_empty());
        assert!(!exists(&conn).unwrap());
    }
}
