//! What a component may touch, from its migration.toml: the tables it may read and write, and
//! whether it may create triggers. Each backend enforces it its own way (SQLite's authorizer,
//! a PostgreSQL role and the statement check); strata's own names are never reachable.

use std::collections::HashSet;
use std::path::PathBuf;

/// What a component may touch, from its migration.toml.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Lowercased table names it may read; `None` means all but strata's own.
    pub reads: Option<HashSet<String>>,
    /// Lowercased table names it may write, create, alter or drop; `None` means all but
    /// strata's own (only when migration.toml lists neither `reads` nor `writes`). A writable
    /// table is also readable.
    pub writes: Option<HashSet<String>>,
    /// Whether it may create triggers (`triggers = true`); each one's body is then authorized
    /// against `reads` and `writes` before the component's call ends.
    pub triggers: bool,
    /// The migration.toml to point at in refusals.
    pub config_file: PathBuf,
}

impl Policy {
    /// A policy from migration.toml's lists; no triggers. `reads` without `writes` grants no
    /// writes (a reviewer reads a read-only component); `writes` without `reads` reads every
    /// table; neither: every table, read and written.
    pub fn new(reads: Option<&[String]>, writes: Option<&[String]>, config_file: PathBuf) -> Self {
        let set = |l: &[String]| l.iter().map(|t| t.to_ascii_lowercase()).collect();
        let writes = match (reads, writes) {
            (Some(_), None) => Some(HashSet::new()),
            (_, w) => w.map(set),
        };
        Policy {
            reads: reads.map(set),
            writes,
            triggers: false,
            config_file,
        }
    }

    /// The same policy, read-only (a check component's): what it could write it may read,
    /// and it writes nothing and creates no triggers.
    pub fn read_only(mut self) -> Self {
        if let (Some(reads), Some(writes)) = (&mut self.reads, &self.writes) {
            reads.extend(writes.iter().cloned());
        }
        self.writes = Some(HashSet::new());
        self.triggers = false;
        self
    }

    /// The same policy, allowing trigger creation when `allowed` (`triggers = true`).
    pub fn with_triggers(mut self, allowed: bool) -> Self {
        self.triggers = allowed;
        self
    }

    /// Whether the table (or view) may be read: never strata's own.
    pub(crate) fn may_read(&self, table: &str) -> Result<(), String> {
        own(table)?;
        let t = table.to_ascii_lowercase();
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

    /// Whether the table (or view) may be written, created, altered or dropped.
    pub(crate) fn may_write(&self, table: &str) -> Result<(), String> {
        own(table)?;
        if self.writable(table) {
            return Ok(());
        }
        if self.writes.as_ref().is_some_and(HashSet::is_empty) {
            return Err(format!(
                "writing table `{table}` is not allowed: this component writes nothing (a check \
                 component never writes; a migration.toml whose [sandbox] lists `reads` without \
                 `writes` grants no writes) in {}; add \"{table}\" to `writes` there if this \
                 migration's transform or seed should change it",
                self.config_file.display()
            ));
        }
        Err(format!(
            "writing table `{table}` is not allowed: it is not in `writes` under [sandbox] in \
             {}; add \"{table}\" there if this migration should change it",
            self.config_file.display()
        ))
    }

    /// Whether `writes` covers the name (strata's own never are).
    pub(crate) fn writable(&self, table: &str) -> bool {
        !is_strata(table)
            && self
                .writes
                .as_ref()
                .is_none_or(|w| w.contains(&table.to_ascii_lowercase()))
    }
}

/// Refuses strata's own names.
pub(crate) fn own(name: &str) -> Result<(), String> {
    if is_strata(name) {
        Err(format!(
            "`{name}` is strata's own bookkeeping; components may not touch it"
        ))
    } else {
        Ok(())
    }
}

/// Whether a name is in strata's own namespace.
pub(crate) fn is_strata(name: &str) -> bool {
    // As bytes: the seventh byte of a name may sit inside a character.
    name.as_bytes()
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"strata_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_lists_grant_what_a_reviewer_reads() {
        let (people, cfg) = (names(&["People"]), PathBuf::from("m/migration.toml"));
        // `reads` alone: no writes.
        let p = Policy::new(Some(&people), None, cfg.clone());
        assert!(p.may_read("people").is_ok() && p.may_read("acct").is_err());
        let refused = p.may_write("people").unwrap_err();
        assert!(refused.contains("writes nothing"), "{refused}");
        // `writes` alone: every table read, only `writes` written.
        let p = Policy::new(None, Some(&people), cfg.clone());
        assert!(p.may_read("acct").is_ok() && p.may_write("people").is_ok());
        assert!(p.may_write("acct").is_err());
        // Neither: every table but strata's own.
        let p = Policy::new(None, None, cfg.clone());
        assert!(p.may_write("acct").is_ok() && p.may_write("strata_migration").is_err());
    }

    #[test]
    fn a_check_reads_what_the_manifest_grants_and_writes_nothing() {
        let cfg = PathBuf::from("m/migration.toml");
        let p = Policy::new(Some(&names(&["a"])), Some(&names(&["b"])), cfg.clone())
            .with_triggers(true)
            .read_only();
        assert!(p.may_read("a").is_ok() && p.may_read("b").is_ok() && p.may_read("c").is_err());
        assert!(p.may_write("a").is_err() && p.may_write("b").is_err());
        assert!(!p.triggers);
        let p = Policy::new(None, None, cfg).read_only();
        assert!(p.may_read("c").is_ok() && p.may_write("c").is_err());
    }
}
