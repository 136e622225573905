//! The design-time commands' SQLite side: a SQLite database's live schema (`crate::sqlite::schema`)
//! with who owns what (`strata_object`, and owners inferred from the applied migrations for
//! databases migrated before strata recorded ownership) and its ledger, as
//! [`super::Live`]; plus the quick list of unowned objects `strata status` shows.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::core::backend::Survey;
use crate::core::backup::RunLock;
use crate::core::config::Project;
use crate::core::design::Live;
use crate::core::error::Error;
use crate::core::ledger::{Applied, Entry};
use crate::core::schema::Delta;
use crate::core::schema::Diff;
use crate::core::schema::{ObjectKind, ObjectRef};
use crate::core::tree::{Migration, Tree};
use crate::sqlite;
use crate::sqlite::ledger;
use crate::sqlite::schema::delta;
use crate::sqlite::schema::diff;
use crate::sqlite::schema::{Schema, SchemaError, owner};

/// [`unowned`] on a SQLite database.
pub(crate) fn unowned(project: &Project, db: &Path) -> Result<Vec<ObjectRef>, Error> {
    let Some(conn) = sqlite::open_read_only(db, project.busy_timeout())? else {
        return Ok(Vec::new());
    };
    let unowned =
        owner::unowned_objects(&conn).map_err(|e| Error::db(db, "cannot read the schema", e))?;
    if unowned.is_empty() {
        return Ok(unowned);
    }
    let tree = Tree::load(&project.migrations_dir())?;
    let own = Ownership::read(&tree, &conn, db)?;
    Ok(unowned
        .into_iter()
        .filter(|o| own.owner_of(o.kind, &o.name).is_none())
        .collect())
}

/// Who owns what in one database: the rows of `strata_object`, plus, for objects no row covers,
/// owners inferred by replaying the applied migrations' `do.sql` (`owner::infer`), for
/// databases migrated before strata recorded ownership.
struct Ownership {
    owners: Vec<owner::Owner>,
    /// The inferred part; `baseline` and `new --from-diff` write it down.
    inferred: Vec<owner::Owner>,
}

impl Ownership {
    fn read(tree: &Tree, conn: &Connection, db: &Path) -> Result<Ownership, Error> {
        let mut owners =
            owner::owners(conn).map_err(|e| Error::db(db, "cannot read strata_object", e))?;
        let unowned =
            owner::unowned_objects(conn).map_err(|e| Error::db(db, "cannot read the schema", e))?;
        let applied =
            ledger::applied(conn).map_err(|e| Error::db(db, "cannot read the ledger", e))?;
        let mut inferred = Vec::new();
        if !unowned.is_empty() && !applied.is_empty() {
            let mut scripts = Vec::new();
            for m in &tree.migrations {
                if applied.iter().any(|a| a.id == m.id) {
                    let path = m.file("do.sql");
                    let sql = crate::core::input::read_project_text(
                        &path,
                        crate::core::input::FILE_BYTES,
                    )?
                    .ok_or_else(|| Error::io(&path, std::io::ErrorKind::NotFound.into()))?;
                    scripts.push((m.id.clone(), sql));
                }
            }
            inferred = owner::infer(&scripts)
                .unwrap_or_default()
                .into_iter()
                .filter(|i| {
                    unowned.iter().any(|o| {
                        o.kind == i.object.kind && o.name.eq_ignore_ascii_case(&i.object.name)
                    })
                })
                .collect();
        }
        owners.extend(inferred.iter().cloned());
        Ok(Ownership { owners, inferred })
    }

    fn owner_of(&self, kind: ObjectKind, name: &str) -> Option<&str> {
        self.owners
            .iter()
            .find(|o| o.object.kind == kind && o.object.name.eq_ignore_ascii_case(name))
            .map(|o| o.module.as_str())
    }

    /// The objects of `schema` that no module owns.
    fn unowned(&self, schema: &Schema) -> Vec<ObjectRef> {
        schema
            .objects()
            .into_iter()
            .filter(|o| self.owner_of(o.kind, &o.name).is_none())
            .collect()
    }
}

/// The sha256 of everything the drift check reads of a database, for [`SqliteLive::survey`]:
/// every row of its catalog (the live schema, strata's tables and what SQLite makes of them),
/// every row of `strata_object` (who owns what; the owners inferred from the applied
/// migrations follow from the catalog, the ledger and the tree) and the applied migrations.
/// Each field is hashed with its length first, so two different reads never hash the same
/// bytes. Rows are taken in their table's order (the catalog's is that of creation): two
/// databases with the same objects made in another order only miss each other's answer. The
/// rows are hashed as SQLite hands them over, never copied: a fleet's status digests every
/// target.
struct Digest(sha2::Sha256);

impl Digest {
    fn new() -> Digest {
        Digest(sha2::Digest::new())
    }

    fn field(&mut self, value: Option<&str>) {
        use sha2::Digest as _;
        match value {
            None => self.0.update([0]),
            Some(v) => {
                self.0.update([1]);
                self.0.update((v.len() as u64).to_le_bytes());
                self.0.update(v.as_bytes());
            }
        }
    }

    /// Every row of `sql` (four columns of text or `NULL`), each after `tag`; `seen` gets each
    /// row's fields.
    fn rows(
        &mut self,
        conn: &Connection,
        sql: &str,
        tag: &[u8],
        mut seen: impl FnMut([Option<&str>; 4]),
    ) -> rusqlite::Result<()> {
        use sha2::Digest as _;
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let mut fields = [None; 4];
            for (i, f) in fields.iter_mut().enumerate() {
                *f = match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => None,
                    v => Some(v.as_str()?),
                };
            }
            self.0.update(tag);
            for v in fields {
                self.field(v);
            }
            seen(fields);
        }
        Ok(())
    }

    fn applied(mut self, applied: &[Applied]) -> [u8; 32] {
        use sha2::Digest as _;
        for a in applied {
            self.0.update(b"a");
            self.field(Some(&a.id.module));
            self.field(Some(&a.id.stamp));
        }
        self.0.finalize().into()
    }
}

fn schema_err(db: &Path, e: SchemaError) -> Error {
    match e {
        SchemaError::Sqlite(e) => Error::db(db, "cannot read the schema", e),
        SchemaError::Parse { what, message } => Error::input(
            db,
            format!(
                "cannot take {what} apart: {message}. This is a gap in strata's reading of \
                 SQLite schemas; please report it with the statement"
            ),
        ),
    }
}

fn open_existing(project: &Project, db: &Path) -> Result<Connection, Error> {
    sqlite::open_read_only(db, project.busy_timeout())?.ok_or_else(|| {
        Error::Usage(format!(
            "there is no database at {}: run `strata migrate` first, or pass --db",
            db.display()
        ))
    })
}

/// The objects of `module` in `full`; with `with_unowned`, also those no module owns.
fn owned_schema(own: &Ownership, full: &Schema, module: &str, with_unowned: bool) -> Schema {
    full.filter(|kind, name| match own.owner_of(kind, name) {
        Some(o) => o == module,
        None => with_unowned,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Records `m` as applied on `db` without running it, audits that, gives `objects` to its
/// module, and writes down the `inferred` owners of other objects.
fn record_adopted(
    conn: &mut Connection,
    db: &Path,
    m: &Migration,
    (objects, inferred, applied): (&[ObjectRef], &[owner::Owner], &[Applied]),
    action: &str,
    detail: &str,
) -> Result<(), Error> {
    ledger::ensure(conn).map_err(|e| Error::db(db, "cannot create the ledger tables", e))?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| Error::db(db, "cannot begin a transaction", e))?;
    // The ledger must still be what was read with the schema (a migrate, restore or undo may
    // have run in between).
    let now: Vec<_> = ledger::applied_rows(&tx)
        .map_err(|e| Error::db(db, "cannot read the ledger", e))?
        .into_iter()
        .map(|a| a.id)
        .collect();
    let read: Vec<_> = applied.iter().map(|a| a.id.clone()).collect();
    crate::core::phase::unchanged_since_planned(db, &read, &[], &now)?;
    let entry = Entry::adopted(m, action, detail);
    let earlier = inferred.iter().try_for_each(|o| {
        let id = crate::core::tree::MigrationId {
            module: o.module.clone(),
            stamp: o.stamp.clone(),
        };
        owner::adopt(&tx, std::slice::from_ref(&o.object), &id)
    });
    earlier
        .and_then(|()| ledger::record(&tx, m, 0))
        .and_then(|()| owner::adopt(&tx, objects, &m.id))
        .and_then(|()| ledger::append(&tx, &[entry]))
        .and_then(|()| tx.commit())
        .map_err(|e| Error::db(db, format!("cannot record {m} as applied"), e))
}

/// A SQLite database read for a design-time command: one connection, its schema, ledger and
/// owners.
pub(crate) struct SqliteLive<'p> {
    project: &'p Project,
    db: PathBuf,
    conn: Connection,
    full: Schema,
    applied: Vec<Applied>,
    own: Ownership,
    /// Held from the backup of `baseline` to its end.
    run: Option<RunLock>,
}

impl<'p> SqliteLive<'p> {
    /// Reads `db`, which must exist; with `writable` on a read-write connection (for
    /// `baseline` and `new --from-diff`).
    pub(crate) fn read(
        project: &'p Project,
        db: &Path,
        tree: &Tree,
        writable: bool,
    ) -> Result<Self, Error> {
        let conn = open_existing(project, db)?;
        let conn = if writable {
            drop(conn);
            sqlite::open(db, project.busy_timeout())?
        } else {
            conn
        };
        let applied =
            ledger::applied(&conn).map_err(|e| Error::db(db, "cannot read the ledger", e))?;
        Self::with(project, db, tree, conn, applied)
    }

    /// For the drift check, with the tree: `None` when there is no database or nothing is
    /// applied to it (it cannot have drifted), found without loading the tree or the schema.
    pub(crate) fn for_drift(
        project: &'p Project,
        db: &Path,
        tree: &Tree,
    ) -> Result<Option<Self>, Error> {
        let Some(conn) = sqlite::open_read_only(db, project.busy_timeout())? else {
            return Ok(None);
        };
        let applied =
            ledger::applied(&conn).map_err(|e| Error::db(db, "cannot read the ledger", e))?;
        if applied.is_empty() {
            return Ok(None);
        }
        Self::with(project, db, tree, conn, applied).map(Some)
    }

    /// [`Inspect::survey`](crate::core::backend::Inspect::survey) on SQLite: one read-only
    /// connection and one read transaction for the ledger, the audit row, the digest and,
    /// when asked for, the live schema.
    pub(crate) fn survey(
        project: &'p Project,
        db: &Path,
        tree: &Tree,
        read_live: &dyn Fn(Option<&[u8; 32]>) -> bool,
    ) -> Result<Survey<Self>, Error> {
        let Some(conn) = sqlite::open_read_only(db, project.busy_timeout())? else {
            return Ok(Survey {
                applied: None,
                last_audit: None,
                digest: None,
                live: None,
            });
        };
        // Deferred: the first read below starts the transaction, and every later read sees
        // the database as of that moment. The catalog, read first for the digest, also tells
        // which of strata's tables are there.
        conn.execute_batch("BEGIN")
            .map_err(|e| Error::db(db, "cannot begin a read", e))?;
        let mut digest = Digest::new();
        let (mut has_ledger, mut has_audit, mut has_objects) = (false, false, false);
        digest
            .rows(
                &conn,
                "SELECT type, name, tbl_name, sql FROM main.sqlite_master",
                b"c",
                |[kind, name, ..]| {
                    if kind == Some("table") {
                        match name {
                            Some(crate::core::ledger::MIGRATION_TABLE) => has_ledger = true,
                            Some(crate::core::ledger::AUDIT_TABLE) => has_audit = true,
                            Some(owner::OBJECT_TABLE) => has_objects = true,
                            _ => {}
                        }
                    }
                },
            )
            .map_err(|e| Error::db(db, "cannot read the schema", e))?;
        let (applied, last_audit) = if has_ledger && has_audit {
            let applied = ledger::applied_rows_against(&conn, &tree.migrations)
                .map_err(|e| Error::db(db, "cannot read the ledger", e))?;
            let last = ledger::last_audit_row(&conn)
                .map_err(|e| Error::db(db, "cannot read the audit log", e))?;
            (applied, last)
        } else {
            (Vec::new(), None)
        };
        if applied.is_empty() {
            return Ok(Survey {
                applied: Some(applied),
                last_audit,
                digest: None,
                live: None,
            });
        }
        if has_objects {
            digest
                .rows(
                    &conn,
                    "SELECT type, name, module, stamp FROM strata_object",
                    b"o",
                    |_| {},
                )
                .map_err(|e| Error::db(db, "cannot read strata_object", e))?;
        }
        let digest = digest.applied(&applied);
        let live = if read_live(Some(&digest)) {
            Some(Self::with(project, db, tree, conn, applied.clone())?)
        } else {
            None
        };
        Ok(Survey {
            applied: Some(applied),
            last_audit,
            digest: Some(digest),
            live,
        })
    }

    fn with(
        project: &'p Project,
        db: &Path,
        tree: &Tree,
        conn: Connection,
        applied: Vec<Applied>,
    ) -> Result<Self, Error> {
        let full = Schema::read(&conn).map_err(|e| schema_err(db, e))?;
        let own = Ownership::read(tree, &conn, db)?;
        Ok(SqliteLive {
            project,
            db: db.to_path_buf(),
            conn,
            full,
            applied,
            own,
            run: None,
        })
    }
}

impl Live for SqliteLive<'_> {
    type Schema = Schema;

    const KINDS: &'static str = "tables, indexes, views or triggers";

    const FROM_DIFF_NOTE: &'static str = "-- Review it before you commit it. strata runs it in one \
         transaction with foreign keys\n-- off and checks them before it commits.\n\n";

    fn db(&self) -> PathBuf {
        self.db.clone()
    }

    fn name(&self) -> String {
        file_name(&self.db)
    }

    fn applied(&self) -> &[Applied] {
        &self.applied
    }

    fn owners(&self) -> Vec<String> {
        self.own.owners.iter().map(|o| o.module.clone()).collect()
    }

    fn unowned(&self) -> Vec<ObjectRef> {
        self.own.unowned(&self.full)
    }

    fn unowned_beyond(&self, before: &Schema) -> Vec<ObjectRef> {
        self.own
            .unowned(&self.full)
            .into_iter()
            .filter(|o| !before.contains(o.kind, &o.name))
            .collect()
    }

    fn module(&self, module: &str, with_unowned: bool) -> Schema {
        owned_schema(&self.own, &self.full, module, with_unowned)
    }

    fn unowned_schema(&self) -> Schema {
        let unowned = self.own.unowned(&self.full);
        self.full.filter(|kind, name| {
            unowned
                .iter()
                .any(|o| o.kind == kind && o.name.eq_ignore_ascii_case(name))
        })
    }

    fn parse(path: &Path, text: &str) -> Result<Schema, Error> {
        Schema::parse(text).map_err(|e| Error::input(path, e.to_string()))
    }

    fn to_sql(schema: &Schema) -> String {
        schema.to_sql()
    }

    fn diff(before: &Schema, after: &Schema) -> Diff {
        diff::diff(before, after)
    }

    fn delta(&self, before: &Schema, after: &Schema) -> Delta {
        delta::delta(before, after, &self.full)
    }

    fn back_up(&mut self, reason: &str, phase: &str) -> Result<PathBuf, Error> {
        // Like every command that changes the ledger: under the run lock held exclusively (no
        // migrate applies a step meanwhile), after a verified backup.
        let (project, db) = (self.project, &self.db);
        self.run = Some(RunLock::exclusive(db, project.busy_timeout())?);
        let backup = crate::sqlite::backup::take(
            &self.conn,
            db,
            &project.backups_dir(),
            project.config.backups_keep,
            reason,
        )?;
        ledger::ensure(&mut self.conn)
            .map_err(|e| Error::db(db, "cannot create the ledger tables", e))?;
        ledger::append(
            &self.conn,
            &[Entry::for_run(
                phase,
                "backup",
                backup.display().to_string(),
            )],
        )
        .map_err(|e| Error::db(db, "cannot audit the backup", e))?;
        Ok(backup)
    }

    fn record_adopted(&mut self, m: &Migration, action: &str, detail: &str) -> Result<(), Error> {
        let unowned = self.own.unowned(&self.full);
        record_adopted(
            &mut self.conn,
            &self.db,
            m,
            (&unowned, &self.own.inferred, &self.applied),
            action,
            detail,
        )
    }
}
