//! What `strata plan` (and `strata lint`) finds without touching a database: each pending
//! `do.sql` statement checked against the schema the steps before it build, and the tables and
//! columns of each `data.json` checked against the schema after its step.
//!
//! SQLite: a throwaway in-memory database, started from the real database's schema (only its
//! `CREATE` statements, no rows; an empty one when the real database does not exist yet, when
//! every migration is pending), gets each pending `do.sql` statement prepared and run in order,
//! so SQLite's own parser and name resolution judge it. PostgreSQL: each statement must parse
//! with PostgreSQL's own parser (libpg_query, compiled in: a syntax error is exit 2 naming file
//! and line), names are left to the rehearsal, and `data.json` is checked against the tables
//! the chain's SQL creates (as sqlparser reads it; a statement PostgreSQL reads and sqlparser
//! cannot is a warning: the tables it makes are not known). A component (transform or seed) may change the schema in
//! ways no file says, so the steps after one are not checked (a warning says so).

use std::collections::HashSet;
use std::path::Path;

use super::{Model, lint_file};
use crate::backends;
use crate::core::config::Project;
use crate::core::data::DataSet;
use crate::core::dry_run::{Checked, DryRun};
use crate::core::error::Error;
use crate::core::input::Dialect;
use crate::core::step::Prepared;
use crate::core::tree::{Migration, Tree};

/// Checks the migrations pending on the real database; `Err(Error::Input)` (exit 2) names the
/// file and line of the first problem. Returns warnings about what could not be checked.
pub fn check_pending(project: &Project) -> Result<Vec<String>, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    let applied = crate::commands::migrate::read_applied(project, &project.db)?;
    let done: HashSet<_> = applied.iter().map(|a| &a.id).collect();
    let pending: Vec<&Migration> = tree
        .migrations
        .iter()
        .filter(|m| !done.contains(&m.id))
        .collect();
    match backends::dry_run(project)? {
        Some(copy) => check_on_copy(&pending, copy, &project.db.shown()),
        None => check_postgres(&tree, &pending),
    }
}

fn check_on_copy(
    pending: &[&Migration],
    copy: Result<Box<dyn DryRun>, String>,
    db: &Path,
) -> Result<Vec<String>, Error> {
    let mut warnings = Vec::new();
    let mut copy = match copy {
        Ok(copy) => copy,
        Err(why) => {
            warnings.push(format!(
                "plan did not check the pending SQL against the schema: the schema of {} could \
                 not be copied into a throwaway database ({why}); the rehearsal will check it",
                db.display()
            ));
            return Ok(warnings);
        }
    };
    for (i, m) in pending.iter().enumerate() {
        let p = Prepared::load_for(m, Dialect::Sqlite)?;
        let do_path = m.file("do.sql");
        if let Checked::StoppedAt(why) = copy.run_script(&do_path, &p.do_sql)? {
            warnings.push(format!(
                "plan checked the SQL up to {why}; the rest is checked by the rehearsal only"
            ));
            break;
        }
        let component = p.transform.is_some() || p.test_seed.is_some() || p.proj_seed.is_some();
        if p.transform.is_none() {
            for data in [&p.test_data, &p.proj_data].into_iter().flatten() {
                check_data(data, |t| Some(copy.columns(t)))?;
            }
        }
        if component && i + 1 < pending.len() {
            warnings.push(format!(
                "plan checked the SQL up to {}: it runs a component, which may change the \
                 schema in ways no file says, so the steps after it are checked by the \
                 rehearsal only",
                m.label()
            ));
            break;
        }
    }
    Ok(warnings)
}

/// Refuses a table or column of `data` that `columns` does not know, naming the line in the
/// file. `columns` gives a table's columns, `Some(None)` when there is no such table, and
/// `None` when it cannot tell (the table is skipped).
fn check_data(
    data: &DataSet,
    mut columns: impl FnMut(&str) -> Option<Option<Vec<String>>>,
) -> Result<(), Error> {
    let text = crate::core::input::read_project_text(&data.path, crate::core::input::FILE_BYTES)
        .ok()
        .flatten()
        .unwrap_or_default();
    for (table, rows) in &data.tables {
        let table_at = key_offset(&text, table, 0);
        let line = |at: Option<usize>| at.map_or(1, |a| text[..a].matches('\n').count() + 1);
        let Some(cols) = columns(table) else {
            continue;
        };
        let Some(cols) = cols else {
            return Err(Error::input(
                &data.path,
                format!(
                    "line {}: table `{table}` does not exist after this migration's do.sql \
                     (checked without a database); create it in do.sql or fix the name",
                    line(table_at)
                ),
            ));
        };
        let mut seen = HashSet::new();
        for row in rows {
            for (col, _) in row {
                if !seen.insert(col.as_str()) {
                    continue;
                }
                if !cols.contains(&col.to_lowercase()) {
                    let at = key_offset(&text, col, table_at.unwrap_or(0));
                    let near = cols
                        .iter()
                        .filter(|c| strsim::levenshtein(c, &col.to_lowercase()) <= 2)
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .next()
                        .unwrap_or_default();
                    return Err(Error::input(
                        &data.path,
                        format!(
                            "line {}: table `{table}` has no column `{col}` after this \
                             migration's do.sql{near}; its columns are {}",
                            line(at),
                            cols.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Where `"key":` first appears in `text` at or after `from`.
fn key_offset(text: &str, key: &str, from: usize) -> Option<usize> {
    let quoted = serde_json::to_string(key).ok()?;
    let mut at = from;
    while let Some(i) = text.get(at..)?.find(&quoted) {
        let start = at + i;
        let after = text[start + quoted.len()..].trim_start();
        if after.starts_with(':') {
            return Some(start);
        }
        at = start + quoted.len();
    }
    None
}

fn check_postgres(tree: &Tree, pending: &[&Migration]) -> Result<Vec<String>, Error> {
    let mut warnings = Vec::new();
    let wanted: HashSet<_> = pending.iter().map(|m| &m.id).collect();
    let mut model = Model::default();
    // Whether the model is the whole schema: every statement so far parsed, and no component.
    let mut complete = true;
    for m in &tree.migrations {
        let do_path = m.file("do.sql");
        if !wanted.contains(&m.id) {
            if let Ok(Some(text)) =
                crate::core::input::read_project_text(&do_path, crate::core::input::FILE_BYTES)
            {
                let mut sink = Vec::new();
                complete &= lint_file(
                    Dialect::Postgres,
                    "",
                    &do_path,
                    &text,
                    &mut model,
                    &mut sink,
                ) == 0;
            }
            complete &= m.held("transform.wasm") != Some(true);
            continue;
        }
        let p = Prepared::load_for(m, Dialect::Postgres)?;
        let mut found = Vec::new();
        let unparsed = lint_file(
            Dialect::Postgres,
            &m.label(),
            &do_path,
            &p.do_sql,
            &mut model,
            &mut found,
        );
        if let Some(f) = found.iter().find(|f| f.code == super::SYNTAX) {
            return Err(Error::input(
                &f.file,
                format!(
                    "line {}: {}, in `{}` (checked without a database, nothing was touched); fix \
                     the statement",
                    f.line,
                    f.message
                        .strip_prefix("PostgreSQL's parser rejects it: ")
                        .unwrap_or(&f.message),
                    f.statement
                ),
            ));
        }
        for f in found.iter().filter(|f| f.code == super::NOT_LINTED) {
            warnings.push(format!(
                "{}: line {}: PostgreSQL's parser reads `{}`, the linter's cannot: what it \
                 changes is checked by the rehearsal only",
                f.file.display(),
                f.line,
                f.statement
            ));
        }
        complete &= unparsed == 0 && p.transform.is_none();
        if p.transform.is_none() {
            for data in [&p.test_data, &p.proj_data].into_iter().flatten() {
                check_data(data, |t| match model.has_table(&t.to_lowercase()) {
                    Some(cols) => Some(Some(cols)),
                    None if complete => Some(None),
                    None => None,
                })?;
            }
        }
        complete &= p.test_seed.is_none() && p.proj_seed.is_none();
    }
    Ok(warnings)
}
