//! The SQL that turns one schema into another, keeping the data: what `strata diff --sql` prints
//! and `strata new --from-diff` writes as `do.sql`.
//!
//! Where SQLite's ALTER TABLE can do it (RENAME TO, RENAME COLUMN, ADD COLUMN, DROP COLUMN, each
//! within SQLite's documented limits) it is used; any other table change is SQLite's documented
//! table rebuild (<https://sqlite.org/lang_altertable.html#otheralter>): create the new table,
//! copy the kept columns (and the rowid), drop the old one, rename the new one, recreate its
//! indexes and triggers, and the views that read it. Views and triggers that mention a table
//! being rebuilt, renamed or losing columns are dropped first and recreated last, from the
//! `context` (the whole live schema), so objects of other modules survive too.
//!
//! Destructive changes (a table or column dropped, a virtual table recreated) carry a warning
//! comment and are listed in [`Delta::destructive`]; the caller decides whether to refuse. The
//! SQL is meant for a strata step, which runs it in one transaction with foreign keys off and
//! runs `PRAGMA foreign_key_check` before it commits. Pure: no database.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::diff::{self, constraints_canon, match_columns, same_column};
use super::dump::{self, column_sql, index_sql, table_sql, table_sql_named, trigger_sql, view_sql};
use super::sql::{self, quote_ident, quote_string};
use super::{ColumnDef, Index, Schema, Table, Trigger, View};
use crate::core::schema::Change::{Added, Changed, Removed};
use crate::core::schema::Delta;
use crate::core::schema::TableChange;

/// How one table gets from `from` to `to`.
enum TablePlan<'s> {
    /// ALTER TABLE statements only.
    Alter {
        a: &'s Table,
        b: &'s Table,
        renames: Vec<(String, String)>,
        drops: Vec<String>,
        adds: Vec<&'s ColumnDef>,
    },
    /// The 12-step rebuild, with the reasons; `b_raw` is `b` as written, for its CREATE.
    Rebuild {
        a: &'s Table,
        b: &'s Table,
        b_raw: &'s Table,
        reasons: Vec<String>,
    },
}

/// Names of the temporary table of a rebuild.
fn rebuild_name(table: &str) -> String {
    format!("_strata_new_{table}")
}

/// The SQL turning `from` into `to`. `context` is the whole live schema `to` is part of: views,
/// triggers and indexes there that depend on a rebuilt table are recreated too.
pub fn delta(from: &Schema, to: &Schema, context: &Schema) -> Delta {
    let d = diff::diff(from, to);
    if d.is_empty() {
        return Delta::default();
    }
    // Decisions are made on the canonical forms (spelling is no change); what is created is
    // written as `to` spells it, so the result reads back exactly as designed.
    let to_raw = to;
    let (from, to) = (&from.canonical(), &to.canonical());
    // RENAME TO carries a table's new name into other tables' foreign keys.
    let from = &diff::with_references_renamed(from, &diff::renamed_tables(from, to));
    let ctx = live(context, to_raw);
    let tables = Tables::plan(&d, from, to, to_raw, &ctx);
    let (affected, rebuilt) = tables.affected();
    let views = Views::plan(&d, &ctx, &affected);
    let triggers = Triggers::plan(&d, &ctx, &affected, &views.gone);
    let indexes = Indexes::plan(&d, &ctx, &rebuilt);

    let mut out = Delta::default();
    let mut w = Writer::default();
    write_drops(&mut w, from, &ctx, &views, &triggers, &indexes);
    tables.write(&mut w, &mut out);
    let mut created: Vec<&&Index> = indexes.create.values().collect();
    created.sort_by_key(|i| (key(&i.table), key(&i.name)));
    for i in created {
        w.stmt(index_sql(i));
    }
    for v in dump::views_in_order(&views.create) {
        w.stmt(view_sql(v));
    }
    for t in triggers.create.values() {
        w.stmt(trigger_sql(t));
    }
    out.sql = w.finish();
    out
}

/// Everything live: `context`, with `to_raw` taking precedence.
fn live(context: &Schema, to_raw: &Schema) -> Schema {
    let mut ctx = context.clone();
    for (k, v) in &to_raw.tables {
        ctx.tables.insert(k.clone(), v.clone());
    }
    for (k, v) in &to_raw.indexes {
        ctx.indexes.insert(k.clone(), v.clone());
    }
    for (k, v) in &to_raw.views {
        ctx.views.insert(k.clone(), v.clone());
    }
    for (k, v) in &to_raw.triggers {
        ctx.triggers.insert(k.clone(), v.clone());
    }
    ctx
}

/// What happens to the tables: dropped, created, renamed, and how each altered one changes.
struct Tables<'s> {
    removed: Vec<&'s Table>,
    added: Vec<&'s Table>,
    renamed: Vec<(&'s str, &'s str)>,
    plans: Vec<TablePlan<'s>>,
}

impl<'s> Tables<'s> {
    fn plan(
        d: &'s crate::core::schema::Diff,
        from: &'s Schema,
        to: &'s Schema,
        to_raw: &'s Schema,
        ctx: &Schema,
    ) -> Tables<'s> {
        let mut tables = Tables {
            removed: Vec::new(),
            added: Vec::new(),
            renamed: Vec::new(),
            plans: Vec::new(),
        };
        for change in &d.tables {
            match change {
                TableChange::Added { table, .. } => tables.added.push(&to_raw.tables[&key(table)]),
                TableChange::Removed { table, .. } => {
                    tables.removed.push(&from.tables[&key(table)])
                }
                TableChange::Renamed { from: a, to: b } => tables.renamed.push((a, b)),
                TableChange::Altered { table, .. } => {
                    let k = key(table);
                    tables.plans.push(plan_table(
                        &from.tables[&k],
                        &to.tables[&k],
                        &to_raw.tables[&k],
                        ctx,
                    ));
                }
            }
        }
        tables
    }

    /// The tables whose dependents (views, triggers) must be dropped first and recreated
    /// last, and the tables rebuilt (whose indexes are created again).
    fn affected(&self) -> (HashSet<String>, HashSet<String>) {
        let mut affected: HashSet<String> = HashSet::new();
        affected.extend(self.removed.iter().map(|t| key(&t.name)));
        affected.extend(self.renamed.iter().flat_map(|(a, b)| [key(a), key(b)]));
        for p in &self.plans {
            match p {
                TablePlan::Rebuild { a, .. } => {
                    affected.insert(key(&a.name));
                }
                TablePlan::Alter {
                    a, renames, drops, ..
                } if !renames.is_empty() || !drops.is_empty() => {
                    affected.insert(key(&a.name));
                }
                TablePlan::Alter { .. } => {}
            }
        }
        let rebuilt: HashSet<String> = self
            .plans
            .iter()
            .filter_map(|p| match p {
                TablePlan::Rebuild { b, .. } => Some(key(&b.name)),
                TablePlan::Alter { .. } => None,
            })
            .collect();
        (affected, rebuilt)
    }

    /// The renames, drops, alterations and rebuilds, then the new tables.
    fn write(&self, w: &mut Writer, out: &mut Delta) {
        for (a, b) in &self.renamed {
            w.stmt(format!(
                "ALTER TABLE {} RENAME TO {}",
                quote_ident(a),
                quote_ident(b)
            ));
        }
        for t in &self.removed {
            let what = format!("drops table {} and every row in it", quote_ident(&t.name));
            w.comment(&format!("DESTRUCTIVE: {what}"));
            out.destructive.push(what);
            w.stmt(format!("DROP TABLE {}", quote_ident(&t.name)));
        }
        for p in &self.plans {
            match p {
                TablePlan::Alter {
                    a,
                    b,
                    renames,
                    drops,
                    adds,
                } => alter(w, out, (a, b), renames, drops, adds),
                TablePlan::Rebuild {
                    a,
                    b,
                    b_raw,
                    reasons,
                } => {
                    rebuild(w, out, (a, b, b_raw), reasons);
                }
            }
        }
        for t in &self.added {
            w.stmt(table_sql(t));
        }
    }
}

/// The ALTER TABLE statements of one table: its column renames, drops and additions.
fn alter(
    w: &mut Writer,
    out: &mut Delta,
    (a, b): (&Table, &Table),
    renames: &[(String, String)],
    drops: &[String],
    adds: &[&ColumnDef],
) {
    for (old, new) in renames {
        w.comment(&format!(
            "{}.{} -> {}: taken as a rename (same place, same definition); if you \
             meant to drop one column and add another, edit this line",
            quote_ident(&a.name),
            quote_ident(old),
            quote_ident(new)
        ));
        w.stmt(format!(
            "ALTER TABLE {} RENAME COLUMN {} TO {}",
            quote_ident(&a.name),
            quote_ident(old),
            quote_ident(new)
        ));
    }
    for c in drops {
        let what = format!(
            "drops column {}.{} and its values",
            quote_ident(&a.name),
            quote_ident(c)
        );
        w.comment(&format!("DESTRUCTIVE: {what}"));
        out.destructive.push(what);
        w.stmt(format!(
            "ALTER TABLE {} DROP COLUMN {}",
            quote_ident(&a.name),
            quote_ident(c)
        ));
    }
    for c in adds {
        w.stmt(format!(
            "ALTER TABLE {} ADD COLUMN {}",
            quote_ident(&b.name),
            column_sql(c)
        ));
    }
}

/// The keys of the objects of `list` that underwent `c`.
fn changed(
    list: &[crate::core::schema::ObjectChange],
    c: crate::core::schema::Change,
) -> BTreeSet<String> {
    list.iter()
        .filter(|o| o.change == c)
        .map(|o| key(&o.name))
        .collect()
}

/// The views that go and come back: removed or changed ones go; so do the ones reading an
/// affected table or a view that goes (transitively), and those come back from the live
/// definition.
struct Views {
    drop: BTreeSet<String>,
    dependent: BTreeSet<String>,
    create: BTreeMap<String, View>,
    /// Every view dropped: `drop` and `dependent`.
    gone: BTreeSet<String>,
}

impl Views {
    fn plan(d: &crate::core::schema::Diff, ctx: &Schema, affected: &HashSet<String>) -> Views {
        let added_views = changed(&d.views, Added);
        let mut drop_views: BTreeSet<String> = changed(&d.views, Removed);
        drop_views.extend(changed(&d.views, Changed));
        let mut dependent_views: BTreeSet<String> = BTreeSet::new();
        loop {
            let before = dependent_views.len();
            for (k, v) in &ctx.views {
                if added_views.contains(k) || dependent_views.contains(k) {
                    continue;
                }
                let names = mentioned(&v.query);
                let hit = names.iter().any(|n| {
                    affected.contains(n) || drop_views.contains(n) || dependent_views.contains(n)
                });
                if hit {
                    dependent_views.insert(k.clone());
                }
            }
            if dependent_views.len() == before {
                break;
            }
        }
        let mut create_views: BTreeMap<String, View> = BTreeMap::new();
        for k in changed(&d.views, Added)
            .iter()
            .chain(changed(&d.views, Changed).iter())
            .chain(dependent_views.iter())
        {
            if let Some(v) = ctx.views.get(k) {
                create_views.insert(k.clone(), v.clone());
            }
        }
        let gone = drop_views.union(&dependent_views).cloned().collect();
        Views {
            drop: drop_views,
            dependent: dependent_views,
            create: create_views,
            gone,
        }
    }
}

/// The triggers that go and come back: as for views, for triggers mentioning an affected
/// table or a view that goes.
struct Triggers<'c> {
    drop: BTreeSet<String>,
    dependent: BTreeSet<String>,
    create: BTreeMap<String, &'c Trigger>,
}

impl<'c> Triggers<'c> {
    fn plan(
        d: &crate::core::schema::Diff,
        ctx: &'c Schema,
        affected: &HashSet<String>,
        gone_views: &BTreeSet<String>,
    ) -> Triggers<'c> {
        let added_triggers = changed(&d.triggers, Added);
        let mut drop_triggers: BTreeSet<String> = changed(&d.triggers, Removed);
        drop_triggers.extend(changed(&d.triggers, Changed));
        let mut dependent_triggers: BTreeSet<String> = BTreeSet::new();
        for (k, t) in &ctx.triggers {
            if added_triggers.contains(k) || drop_triggers.contains(k) {
                continue;
            }
            let mut names = mentioned(&trigger_sql(t));
            names.insert(key(&t.table));
            if names
                .iter()
                .any(|n| affected.contains(n) || gone_views.contains(n))
            {
                dependent_triggers.insert(k.clone());
            }
        }
        let mut create_triggers: BTreeMap<String, &Trigger> = BTreeMap::new();
        for k in changed(&d.triggers, Added)
            .iter()
            .chain(changed(&d.triggers, Changed).iter())
            .chain(dependent_triggers.iter())
        {
            if let Some(t) = ctx.triggers.get(k) {
                create_triggers.insert(k.clone(), t);
            }
        }
        Triggers {
            drop: drop_triggers,
            dependent: dependent_triggers,
            create: create_triggers,
        }
    }
}

/// The indexes that go and come: removed or changed ones go first; new, changed and those of
/// rebuilt tables are created last.
struct Indexes<'c> {
    drop: BTreeSet<String>,
    create: BTreeMap<String, &'c Index>,
}

impl<'c> Indexes<'c> {
    fn plan(
        d: &crate::core::schema::Diff,
        ctx: &'c Schema,
        rebuilt: &HashSet<String>,
    ) -> Indexes<'c> {
        let drop_indexes: BTreeSet<String> = changed(&d.indexes, Removed)
            .union(&changed(&d.indexes, Changed))
            .cloned()
            .collect();
        let mut create_indexes: BTreeMap<String, &Index> = BTreeMap::new();
        for k in changed(&d.indexes, Added)
            .iter()
            .chain(changed(&d.indexes, Changed).iter())
        {
            create_indexes.insert(k.clone(), &ctx.indexes[k]);
        }
        for (k, i) in &ctx.indexes {
            if rebuilt.contains(&key(&i.table)) {
                create_indexes.insert(k.clone(), i);
            }
        }
        Indexes {
            drop: drop_indexes,
            create: create_indexes,
        }
    }
}

/// The triggers, views and indexes that go, before any table changes.
fn write_drops(
    w: &mut Writer,
    from: &Schema,
    ctx: &Schema,
    views: &Views,
    triggers: &Triggers<'_>,
    indexes: &Indexes<'_>,
) {
    for k in &triggers.drop {
        w.stmt(format!(
            "DROP TRIGGER {}",
            quote_ident(&from.triggers[k].name)
        ));
    }
    for k in &triggers.dependent {
        let exists = if from.triggers.contains_key(k) {
            ""
        } else {
            "IF EXISTS "
        };
        w.stmt(format!(
            "DROP TRIGGER {exists}{}",
            quote_ident(&ctx.triggers[k].name)
        ));
    }
    for k in &views.drop {
        w.stmt(format!("DROP VIEW {}", quote_ident(&from.views[k].name)));
    }
    for k in &views.dependent {
        if !views.drop.contains(k) {
            // A view of another module may not exist everywhere this SQL runs.
            let exists = if from.views.contains_key(k) {
                ""
            } else {
                "IF EXISTS "
            };
            w.stmt(format!(
                "DROP VIEW {exists}{}",
                quote_ident(&ctx.views[k].name)
            ));
        }
    }
    for k in &indexes.drop {
        w.stmt(format!("DROP INDEX {}", quote_ident(&from.indexes[k].name)));
    }
}

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

fn mentioned(text: &str) -> HashSet<String> {
    sql::tokenize(text)
        .map(|t| sql::mentioned_names(&t))
        .unwrap_or_default()
}

#[derive(Default)]
struct Writer {
    out: String,
    pending_comments: Vec<String>,
}

impl Writer {
    fn comment(&mut self, text: &str) {
        self.pending_comments.push(text.to_string());
    }

    fn stmt(&mut self, sql: String) {
        let block = sql.starts_with("CREATE") && sql.contains('\n');
        if !self.out.is_empty() && (!self.pending_comments.is_empty() || block) {
            self.out.push('\n');
        }
        for c in self.pending_comments.drain(..) {
            self.out.push_str(&format!("-- {c}\n"));
        }
        self.out.push_str(&sql);
        self.out.push_str(";\n");
    }

    fn finish(mut self) -> String {
        for c in self.pending_comments.drain(..) {
            self.out.push_str(&format!("-- {c}\n"));
        }
        self.out
    }
}

/// Decides between ALTER TABLE statements and a rebuild, on canonical `a` and `b`; `b_raw` is
/// `b` as written, which new columns and a rebuilt table are created from.
fn plan_table<'s>(a: &'s Table, b: &'s Table, b_raw: &'s Table, ctx: &Schema) -> TablePlan<'s> {
    let m = match_columns(a, b);
    let mut reasons = Vec::new();
    if a.virtual_using.is_some() || b.virtual_using.is_some() {
        reasons.push("a virtual table changed".to_string());
    }
    if a.name != b.name {
        reasons.push("the name's letter case changed".into());
    }
    if a.without_rowid != b.without_rowid || a.strict != b.strict {
        reasons.push("WITHOUT ROWID or STRICT changed".into());
    }
    if constraints_canon(a, &m.renames) != constraints_canon(b, &HashMap::new()) {
        reasons.push("table constraints changed".into());
    }
    for (n, &(i, j)) in m.kept.iter().enumerate() {
        if j != n {
            reasons.push("columns moved".into());
            break;
        }
        let (ca, cb) = (&a.columns[i], &b.columns[j]);
        if !same_column(ca, cb, &m.renames) {
            reasons.push(format!("column {} changed", quote_ident(&cb.name)));
        } else if ca.name != cb.name && ca.name.eq_ignore_ascii_case(&cb.name) {
            reasons.push(format!(
                "column {}: its name's letter case changed",
                quote_ident(&cb.name)
            ));
        }
    }
    for &i in &m.removed {
        if let Some(why) = not_droppable(a, &a.columns[i], ctx) {
            reasons.push(format!(
                "column {} cannot be dropped by ALTER TABLE: {why}",
                quote_ident(&a.columns[i].name)
            ));
        }
    }
    for &j in &m.added {
        if j < m.kept.len() {
            continue; // "columns moved" covers it
        }
        if let Some(why) = not_addable(&b.columns[j]) {
            reasons.push(format!(
                "column {} cannot be added by ALTER TABLE: {why}",
                quote_ident(&b.columns[j].name)
            ));
        }
    }
    if m.added.iter().any(|&j| j < m.kept.len()) && !reasons.iter().any(|r| r == "columns moved") {
        reasons.push("a new column is not at the end".into());
    }
    if !reasons.is_empty() {
        return TablePlan::Rebuild {
            a,
            b,
            b_raw,
            reasons,
        };
    }
    let mut renames: Vec<(String, String)> = m
        .kept
        .iter()
        .filter(|&&(i, j)| a.columns[i].name != b.columns[j].name)
        .map(|&(i, j)| (a.columns[i].name.clone(), b.columns[j].name.clone()))
        .collect();
    renames.sort();
    TablePlan::Alter {
        a,
        b,
        renames,
        drops: m
            .removed
            .iter()
            .map(|&i| a.columns[i].name.clone())
            .collect(),
        adds: m.added.iter().map(|&j| &b_raw.columns[j]).collect(),
    }
}

/// Why SQLite's DROP COLUMN would refuse this column, if it would.
fn not_droppable(t: &Table, c: &ColumnDef, ctx: &Schema) -> Option<String> {
    if c.primary_key() {
        return Some("it is the PRIMARY KEY".into());
    }
    if c.unique() {
        return Some("it is UNIQUE".into());
    }
    if c.references().is_some() {
        return Some("it has a foreign key".into());
    }
    if c.generated().is_some() {
        return Some("it is generated".into());
    }
    let name = key(&c.name);
    for k in &t.constraints {
        if mentioned(&dump::constraint_sql(k)).contains(&name) {
            return Some("a table constraint uses it".into());
        }
    }
    for other in &t.columns {
        if std::ptr::eq(other, c) {
            continue;
        }
        let text = column_sql(other);
        let rest = text.split_once(' ').map(|(_, r)| r).unwrap_or("");
        if mentioned(rest).contains(&name) {
            return Some(format!("column {} uses it", quote_ident(&other.name)));
        }
    }
    for i in ctx.indexes.values() {
        if i.table.eq_ignore_ascii_case(&t.name) && mentioned(&index_sql(i)).contains(&name) {
            return Some(format!("index {} uses it", quote_ident(&i.name)));
        }
    }
    None
}

/// Why SQLite's ADD COLUMN would refuse this column, if it would.
fn not_addable(c: &ColumnDef) -> Option<String> {
    if c.primary_key() {
        return Some("it is the PRIMARY KEY".into());
    }
    if c.unique() {
        return Some("it is UNIQUE".into());
    }
    if matches!(c.generated(), Some((_, true))) {
        return Some("it is a STORED generated column".into());
    }
    let default = c.default_value().map(str::to_ascii_uppercase);
    if let Some(d) = &default {
        if d.starts_with('(') {
            return Some("its default is an expression".into());
        }
        if d.starts_with("CURRENT_") {
            return Some("its default is the current time".into());
        }
    }
    let null_default = default.as_deref().is_none_or(|d| d == "NULL");
    if c.not_null() && null_default && c.generated().is_none() {
        return Some("it is NOT NULL without a default".into());
    }
    if c.references().is_some() && !null_default {
        return Some("it has a foreign key and a default".into());
    }
    None
}

/// SQLite's 12-step table rebuild, for one table.
fn rebuild(
    w: &mut Writer,
    out: &mut Delta,
    (a, b, b_raw): (&Table, &Table, &Table),
    reasons: &[String],
) {
    let tmp = rebuild_name(&b.name);
    w.comment(&format!(
        "Rebuild {} (https://sqlite.org/lang_altertable.html#otheralter): {}",
        quote_ident(&b.name),
        reasons.join("; ")
    ));
    if a.virtual_using.is_some() || b.virtual_using.is_some() {
        let what = format!(
            "recreates virtual table {}: its rows are not copied",
            quote_ident(&b.name)
        );
        w.comment(&format!("DESTRUCTIVE: {what}"));
        out.destructive.push(what);
        w.stmt(format!("DROP TABLE {}", quote_ident(&a.name)));
        w.stmt(table_sql(b_raw));
        return;
    }
    let m = match_columns(a, b);
    for &i in &m.removed {
        let what = format!(
            "drops column {}.{} and its values",
            quote_ident(&a.name),
            quote_ident(&a.columns[i].name)
        );
        w.comment(&format!("DESTRUCTIVE: {what}"));
        out.destructive.push(what);
    }
    for (old, new) in &m.renames {
        w.comment(&format!(
            "{}.{} -> {}: taken as a rename (same place, same definition); if you meant to drop \
             one column and add another, edit the copy below",
            quote_ident(&a.name),
            quote_ident(
                &a.columns
                    .iter()
                    .find(|c| key(&c.name) == *old)
                    .map_or(old.clone(), |c| c.name.clone())
            ),
            quote_ident(new)
        ));
    }
    for &j in &m.added {
        let c = &b.columns[j];
        let no_default = c
            .default_value()
            .is_none_or(|d| d.eq_ignore_ascii_case("NULL"));
        if c.not_null() && no_default && c.generated().is_none() {
            let what = format!(
                "new column {}.{} is NOT NULL without a default: copying existing rows fails; \
                 give it a DEFAULT or a value in the SELECT below",
                quote_ident(&b.name),
                quote_ident(&c.name)
            );
            w.comment(&what);
            out.warnings.push(what);
        }
    }
    w.stmt(table_sql_named(b_raw, &tmp));
    let copied: Vec<(usize, usize)> = m
        .kept
        .iter()
        .copied()
        .filter(|&(_, j)| b.columns[j].generated().is_none())
        .collect();
    let mut into: Vec<String> = copied
        .iter()
        .map(|&(_, j)| quote_ident(&b.columns[j].name))
        .collect();
    let mut select: Vec<String> = copied
        .iter()
        .map(|&(i, _)| quote_ident(&a.columns[i].name))
        .collect();
    // Keep the rowid unless an INTEGER PRIMARY KEY copied from the old table carries it.
    let alias_copied = b.rowid_alias().is_some_and(|alias| {
        copied
            .iter()
            .any(|&(_, j)| b.columns[j].name.eq_ignore_ascii_case(&alias.name))
    });
    if a.has_rowid() && b.has_rowid() && !alias_copied {
        let free = ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|r| a.column(r).is_none() && b.column(r).is_none());
        if let Some(r) = free {
            into.insert(0, r.to_string());
            select.insert(0, r.to_string());
        } else {
            let what = format!(
                "{}'s rowids are not kept: its columns take every name of the rowid (rowid, \
                 _rowid_, oid), so the copy below cannot name it; rename one of those columns \
                 first if the rowids matter",
                quote_ident(&a.name)
            );
            w.comment(&what);
            out.warnings.push(what);
        }
    }
    if !into.is_empty() {
        w.stmt(format!(
            "INSERT INTO {} ({})\n  SELECT {} FROM {}",
            quote_ident(&tmp),
            into.join(", "),
            select.join(", "),
            quote_ident(&a.name)
        ));
    }
    if a.autoincrement() && b.autoincrement() {
        // Keep the AUTOINCREMENT counter: ids of deleted rows are never handed out again.
        w.stmt(format!(
            "INSERT INTO sqlite_sequence (name, seq) SELECT {}, 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = {})",
            quote_string(&tmp),
            quote_string(&tmp)
        ));
        w.stmt(format!(
            "UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = {}), 0)) WHERE name = {}",
            quote_string(&a.name),
            quote_string(&tmp)
        ));
    }
    w.stmt(format!("DROP TABLE {}", quote_ident(&a.name)));
    w.stmt(format!(
        "ALTER TABLE {} RENAME TO {}",
        quote_ident(&tmp),
        quote_ident(&b.name)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    /// Applies the delta from `a` to `b` on a database at `a` holding `rows`, and returns the
    /// resulting schema's dump, the delta, and the connection.
    fn run(a: &str, b: &str, rows: &str) -> (String, Delta, Connection) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(a).unwrap();
        conn.execute_batch(rows).unwrap();
        let (sa, sb) = (Schema::parse(a).unwrap(), Schema::parse(b).unwrap());
        let d = delta(&sa, &sb, &sb);
        conn.execute_batch(&format!("BEGIN; {} COMMIT;", d.sql))
            .unwrap_or_else(|e| panic!("{e}\n{}", d.sql));
        let live = Schema::read(&conn).unwrap();
        assert_eq!(live.to_sql(), sb.to_sql(), "delta:\n{}", d.sql);
        (live.to_sql(), d, conn)
    }

    fn q(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<_, rusqlite::types::Value>(0))
            .unwrap()
            .map(|v| format!("{:?}", v.unwrap()))
            .collect()
    }

    #[test]
    fn simple_changes_use_alter_table() {
        let (_, d, conn) = run(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, gone INT, b INT);",
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a2 TEXT, b INT, c TEXT NOT NULL DEFAULT 'x');",
            "INSERT INTO t VALUES (1, 'one', 9, 2);",
        );
        assert_eq!(
            d.sql,
            "\n-- t.a -> a2: taken as a rename (same place, same definition); if you meant to drop one column and add another, edit this line\n\
             ALTER TABLE t RENAME COLUMN a TO a2;\n\
             \n-- DESTRUCTIVE: drops column t.gone and its values\n\
             ALTER TABLE t DROP COLUMN gone;\n\
             ALTER TABLE t ADD COLUMN c TEXT NOT NULL DEFAULT 'x';\n"
                .trim_start()
        );
        assert_eq!(d.destructive.len(), 1);
        assert_eq!(q(&conn, "SELECT a2 || b || c FROM t"), ["Text(\"one2x\")"]);
    }

    #[test]
    fn other_changes_rebuild_the_table_and_keep_rows_rowids_and_dependents() {
        let (_, d, conn) = run(
            "CREATE TABLE t(a TEXT, b INT, CHECK (b > 0)); CREATE INDEX tb ON t(b);
             CREATE VIEW v AS SELECT a FROM t; CREATE VIEW w AS SELECT * FROM v;
             CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;",
            "CREATE TABLE t(b INTEGER NOT NULL, a TEXT, CHECK (b > 1)); CREATE INDEX tb ON t(b);
             CREATE VIEW v AS SELECT a FROM t; CREATE VIEW w AS SELECT * FROM v;
             CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;",
            "INSERT INTO t(rowid, a, b) VALUES (7, 'x', 5), (3, 'y', 6);",
        );
        assert!(d.sql.contains("Rebuild t"), "{}", d.sql);
        assert!(d.destructive.is_empty());
        assert_eq!(
            q(&conn, "SELECT rowid || a || b FROM t ORDER BY rowid"),
            ["Text(\"3y6\")", "Text(\"7x5\")"]
        );
    }

    #[test]
    fn a_rebuild_keeps_rowids_through_a_free_name_and_says_when_none_is() {
        let (_, d, conn) = run(
            "CREATE TABLE t(rowid INT, a TEXT, b INT);",
            "CREATE TABLE t(rowid INT, a TEXT, b INT NOT NULL);",
            "INSERT INTO t(_rowid_, rowid, a, b) VALUES (7, 1, 'x', 5), (3, 2, 'y', 6);",
        );
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        assert_eq!(
            q(&conn, "SELECT _rowid_ || a FROM t ORDER BY _rowid_"),
            ["Text(\"3y\")", "Text(\"7x\")"]
        );
        let (_, d, _) = run(
            "CREATE TABLE t(rowid INT, _rowid_ INT, OID TEXT, b INT);",
            "CREATE TABLE t(rowid INT, _rowid_ INT, OID TEXT, b INT NOT NULL);",
            "",
        );
        assert!(
            d.warnings
                .iter()
                .any(|w| w.contains("t's rowids are not kept")),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn dropped_and_renamed_tables() {
        let (_, d, _) = run(
            "CREATE TABLE a(x INT); CREATE TABLE old(y TEXT); CREATE VIEW v AS SELECT y FROM old;",
            "CREATE TABLE new(y TEXT); CREATE VIEW v AS SELECT y FROM \"new\";",
            "INSERT INTO old VALUES ('kept');",
        );
        assert!(
            d.sql.contains("ALTER TABLE old RENAME TO new;"),
            "{}",
            d.sql
        );
        assert_eq!(d.destructive, ["drops table a and every row in it"]);
    }

    #[test]
    fn a_renamed_table_takes_the_foreign_keys_that_name_it_along() {
        let (_, d, _) = run(
            "CREATE TABLE regions(id INTEGER PRIMARY KEY, name TEXT);
             CREATE TABLE territories(id INTEGER PRIMARY KEY, region INT REFERENCES regions(id));",
            "CREATE TABLE region(id INTEGER PRIMARY KEY, name TEXT);
             CREATE TABLE territories(id INTEGER PRIMARY KEY, region INT REFERENCES region(id));",
            "INSERT INTO regions VALUES (1, 'north'); INSERT INTO territories VALUES (1, 1);",
        );
        assert_eq!(d.sql, "ALTER TABLE regions RENAME TO region;\n");
    }

    #[test]
    fn autoincrement_counters_survive_a_rebuild() {
        let (_, _, conn) = run(
            "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, a);",
            "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, a NOT NULL);",
            "INSERT INTO t(a) VALUES (1), (2), (3); DELETE FROM t WHERE id = 3;",
        );
        assert_eq!(
            q(&conn, "SELECT seq FROM sqlite_sequence WHERE name = 't'"),
            ["Integer(3)"]
        );
    }

    #[test]
    fn no_change_no_sql() {
        let s = Schema::parse("CREATE TABLE t(a)").unwrap();
        assert!(delta(&s, &s, &s).is_empty());
    }
}
