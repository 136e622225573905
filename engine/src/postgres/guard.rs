//! What a component's statement on PostgreSQL may do, judged on its real parse tree
//! (libpg_query, the server's own grammar) before it is sent.
//!
//! The walk is an allow-list at every level and fails closed: a node kind it does not know is
//! refused. It allows one `SELECT`/`VALUES`/`TABLE`, `INSERT`, `UPDATE`, `DELETE` or `MERGE`;
//! every relation must be one the component may use ([`Catalog`]: the manifest's `reads` and
//! `writes`, plus reading the system catalogs), written only if in `writes`; every function it
//! calls must be a side-effect-free built-in of `pg_catalog` ([`ALLOWED_FUNCTIONS`]); operators
//! and types resolve in `pg_catalog` only. Names a component writes unqualified are resolved by
//! strata: each relation gets the schema it had in the session's `search_path` when the
//! component started (the statement is rewritten with it), and the statement then runs under
//! `search_path = pg_catalog, pg_temp`, so an unqualified function, operator or type can only
//! ever be PostgreSQL's own, whatever the migrations defined in `public`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

/// How a component may use a relation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    Read,
    Write,
}

/// The relations and functions a component's statements are judged against, read from the
/// server when the component starts (as the migrating user, before the role switch).
#[derive(Default, Debug)]
pub struct Catalog {
    /// (schema, name) of each relation the component may use.
    pub relations: HashMap<(String, String), Access>,
    /// The schema each unqualified relation name resolved to in the session's `search_path`.
    pub visible: HashMap<String, String>,
    /// The names of all functions in `pg_catalog` (to tell a column from a function called in
    /// field notation, `t.f`).
    pub catalog_functions: HashSet<String>,
    /// The names of the columns of the relations the component may use whose type is (or
    /// holds) a date or time in every such relation that has a column of that name: a cast of
    /// one to a date or time type reads no text.
    pub date_columns: HashSet<String>,
    /// The names of the columns of those relations that are a timestamp (with or without time
    /// zone) or a date in every such relation that has a column of that name: `AT TIME ZONE`
    /// converts one by the zone's rules on its own date, never today's.
    pub timestamp_columns: HashSet<String>,
    /// In a tenant's run (a target of a schema-per-tenant group), the tenant's schema: the
    /// only one of the user's a component may name.
    pub tenant: Option<String>,
    /// (schema, name) of the sequences owned by the relations of `writes` (a serial or
    /// identity column's, or `OWNED BY`): the only ones `nextval` and `currval` may name.
    pub sequences: HashSet<(String, String)>,
}

/// What the statement is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// SELECT, VALUES, TABLE (a cursor may be declared for it).
    Query,
    /// INSERT, UPDATE, DELETE, MERGE.
    RowChange,
}

/// Why a statement is not run.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A capability the component does not have: fails the step.
    Denied(String),
    /// The statement cannot be read, or is not one statement.
    Syntax(String),
}

/// The statement as it will be sent (relations qualified), and what it is.
#[derive(Debug, Clone)]
pub struct Checked {
    pub text: String,
    pub kind: Kind,
    /// Whether a `WITH` of the statement changes rows (such a statement cannot be nested in
    /// another, so strata cannot bound the size of its rows on the server).
    pub modifying_with: bool,
}

/// Checks `sql` against `catalog`; names `config_file` in refusals.
pub fn check(sql: &str, catalog: &Catalog, config_file: &Path) -> Result<Checked, Refusal> {
    // The parser, the tree's decoding and the walk recurse once per level of nesting: they run
    // on a thread with a stack sized for the deepest statement let through.
    let tokens = pg_query::scan(sql)
        .map_err(|e| Refusal::Syntax(format!("{e}")))?
        .tokens
        .len();
    if tokens > MAX_TOKENS {
        return Err(Refusal::Syntax(format!(
            "a statement of {tokens} tokens; a component's statement may have at most \
             {MAX_TOKENS} (pass values as parameters, or split the work)"
        )));
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("strata-pg-check".into())
            .stack_size(CHECK_STACK)
            .spawn_scoped(scope, || check_here(sql, catalog, config_file))
            .map_err(|e| Refusal::Syntax(format!("cannot start the statement check: {e}")))?
            .join()
            .unwrap_or_else(|_| {
                Err(Refusal::Syntax(
                    "the statement check failed on this statement".into(),
                ))
            })
    })
}

/// The most tokens a component's statement may have: its parse tree is at most this deep.
const MAX_TOKENS: usize = 20_000;

/// The stack of the thread that checks a statement (reserved, touched only as deep as used).
const CHECK_STACK: usize = 256 << 20;

fn check_here(sql: &str, catalog: &Catalog, config_file: &Path) -> Result<Checked, Refusal> {
    let parsed = pg_query::parse(sql).map_err(|e| {
        Refusal::Syntax(format!(
            "{e}; a component on PostgreSQL runs one SELECT, INSERT, UPDATE, DELETE or MERGE per \
             call"
        ))
    })?;
    let stmts = &parsed.protobuf.stmts;
    if stmts.len() != 1 {
        return Err(Refusal::Syntax(format!(
            "{} statements in one call; a component runs one statement per call",
            stmts.len()
        )));
    }
    let tree = serde_json::to_value(&stmts[0]).map_err(|e| {
        Refusal::Syntax(format!(
            "strata could not read this statement's parse tree: {e}"
        ))
    })?;
    let node = tree
        .get("stmt")
        .and_then(|s| s.get("node"))
        .and_then(Value::as_object)
        .and_then(|n| n.iter().next())
        .ok_or_else(|| Refusal::Syntax("an empty statement".into()))?;
    let mut w = Walker {
        sql,
        catalog,
        config_file,
        ctes: Vec::new(),
        write: false,
        qualify: Vec::new(),
        modifying_with: false,
        defined: HashSet::new(),
        counted: None,
        relation_names: HashSet::new(),
    };
    defined_names(node.1, &mut w.defined, &mut w.relation_names);
    // By name whatever its schema, so that no spelling slips past (an alias of that name too).
    w.counted = COUNTED_CATALOGS
        .iter()
        .find(|c| w.relation_names.contains(**c))
        .copied();
    let kind = match node.0.as_str() {
        "SelectStmt" => Kind::Query,
        "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => Kind::RowChange,
        other => {
            return Err(Refusal::Denied(format!(
                "a component on PostgreSQL may only read and change rows (SELECT, INSERT, \
                 UPDATE, DELETE, MERGE), not run `{}`: schema changes, session settings, \
                 cursors, prepared statements, COPY, LISTEN/NOTIFY, EXPLAIN, CALL and \
                 transaction control belong in do.sql (or are strata's), and the tables a \
                 component may touch are listed under [sandbox] in {}",
                statement_name(other),
                config_file.display()
            )));
        }
    };
    w.typed(node.0, node.1)?;
    // The statement alone (no `;` after it), its relations qualified.
    let start = usize::try_from(stmts[0].stmt_location).unwrap_or(0);
    let len = usize::try_from(stmts[0].stmt_len).unwrap_or(0);
    let mut end = if len == 0 { sql.len() } else { start + len };
    let mut text = sql.to_string();
    w.qualify.sort_by_key(|q| std::cmp::Reverse(q.0));
    for (at, prefix) in &w.qualify {
        text.insert_str(*at, prefix);
        end += prefix.len();
    }
    let text = text
        .get(start..end)
        .ok_or_else(|| Refusal::Syntax("strata could not find the statement's end".into()))?
        .to_string();
    Ok(Checked {
        text,
        kind,
        modifying_with: w.modifying_with,
    })
}

/// A statement node's kind as SQL names it.
fn statement_name(node: &str) -> String {
    let base = node.strip_suffix("Stmt").unwrap_or(node);
    let mut out = String::new();
    for (i, c) in base.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

struct Walker<'a> {
    sql: &'a str,
    catalog: &'a Catalog,
    config_file: &'a Path,
    /// CTE names in scope, innermost last.
    ctes: Vec<Vec<String>>,
    /// Whether relations met now are written (or locked).
    write: bool,
    /// Where to insert a schema before an unqualified relation name.
    qualify: Vec<(usize, String)>,
    /// Whether a CTE changes rows.
    modifying_with: bool,
    /// Every name the statement gives a column or relation of its own (output names, aliases
    /// and their column lists, CTE names, column definitions): a column reference of such a
    /// name may not be the table's column.
    defined: HashSet<String>,
    /// The catalog the statement names whose counter columns ([`COUNTER_COLUMNS`]) are
    /// refused, if any: then no column of such a name, no `*` and no whole row is read.
    counted: Option<&'static str>,
    /// The names and aliases of the relations (and CTEs) the statement names: a bare column
    /// reference of such a name may be a whole row.
    relation_names: HashSet<String>,
}

/// Node kinds with nothing to check of their own: their children are walked.
const PLAIN: &[&str] = &[
    "ResTarget",
    "ParamRef",
    "AStar",
    "BoolExpr",
    "NullTest",
    "BooleanTest",
    "CaseExpr",
    "CaseWhen",
    "CoalesceExpr",
    "MinMaxExpr",
    "WindowDef",
    "JoinExpr",
    "RangeSubselect",
    "List",
    "String",
    "Integer",
    "Float",
    "Boolean",
    "BitString",
    "AIndices",
    "AArrayExpr",
    "RowExpr",
    "CollateClause",
    "Alias",
    "MergeWhenClause",
    "GroupingSet",
    "NamedArgExpr",
    "MultiAssignRef",
    "SetToDefault",
    "GroupingFunc",
    "OnConflictClause",
    "InferClause",
    "IndexElem",
    "CteSearchClause",
    "CteCycleClause",
    "RangeFunction",
];

/// Fields that hold a message of a known kind directly (not as a `Node`).
fn embedded(parent: &str, field: &str) -> Option<&'static str> {
    Some(match (parent, field) {
        ("SelectStmt", "larg" | "rarg") => "SelectStmt",
        ("InsertStmt", "on_conflict_clause") => "OnConflictClause",
        ("OnConflictClause", "infer") => "InferClause",
        (_, "alias" | "join_using_alias") => "Alias",
        ("CommonTableExpr", "search_clause") => "CteSearchClause",
        ("CommonTableExpr", "cycle_clause") => "CteCycleClause",
        ("TypeCast" | "ColumnDef", "type_name") => "TypeName",
        ("ColumnDef", "coll_clause") => "CollateClause",
        ("FuncCall", "over") => "WindowDef",
        _ => return None,
    })
}

impl Walker<'_> {
    fn denied(&self, what: String) -> Refusal {
        Refusal::Denied(what)
    }

    /// Walks a `Node` (`{"node": {"Kind": {...}}}`); `null` is nothing.
    fn node(&mut self, v: &Value) -> Result<(), Refusal> {
        match v {
            Value::Null => Ok(()),
            Value::Object(o) => match o.get("node") {
                Some(Value::Object(n)) if o.len() == 1 && n.len() == 1 => {
                    let (kind, body) = n.iter().next().expect("one entry");
                    self.typed(kind, body)
                }
                Some(Value::Null) if o.len() == 1 => Ok(()),
                _ => Err(self.unknown("a node strata cannot read")),
            },
            _ => Err(self.unknown("a node strata cannot read")),
        }
    }

    /// Refuses the argument `arg` of a conversion to the type `ty`, which may read the clock
    /// from text, unless it is sure not to be text: a constant or NULL (checked as such), a
    /// parameter (checked against its value when it is bound), a date or time computed by a
    /// function that reads no text (`make_date`, `date_trunc`, `to_timestamp` with a format,
    /// ...), another cast to a date or time type, a column that is a date or time in every
    /// relation the component may use, or such a value plus or minus something. Only constants
    /// pass for other types that may read the clock (rows of the catalog's types).
    fn reads_no_text(&self, arg: &Value, ty: &str) -> Result<(), Refusal> {
        let param = arg.get("node").and_then(|n| n.get("ParamRef")).is_some();
        if is_date_or_time(ty) && (param || self.date_valued(arg)) {
            return Ok(());
        }
        Err(self.denied(format!(
            "a component may not convert a value strata cannot tell is not text to `{ty}`: \
             text read as a date or time can name the clock ('now', 'today', in any spelling \
             or built at run time); convert a date or time column, a literal, or a parameter \
             (its value is checked), or parse the text with to_date(text, 'YYYY-MM-DD') or \
             to_timestamp(text, format), which read only the fields the format names ({})",
            self.config_file.display()
        )))
    }

    /// Whether `v` (a `Node`) is sure to be a date or time value, or a constant (see
    /// [`Walker::reads_no_text`]).
    fn date_valued(&self, v: &Value) -> bool {
        let Some((kind, body)) = node_of(v) else {
            return false;
        };
        match kind {
            "AConst" => true,
            "ParamRef" => false,
            "TypeCast" => cast_to(body, is_date_or_time, false),
            "FuncCall" => {
                let names = name_list(&body["funcname"]);
                in_pg_catalog(&names)
                    && names
                        .last()
                        .is_some_and(|f| DATE_VALUED_FUNCTIONS.contains(f) || is_date_or_time(f))
            }
            "ColumnRef" => self.column_of(body, &self.catalog.date_columns),
            "AExpr" => plus_or_minus(body).is_some_and(|l| self.date_valued(l)),
            _ => false,
        }
    }

    /// Whether a column reference (`body`) is sure to name a column of `columns` (names that
    /// have one type in every relation the component may use): no name the statement defines
    /// stands for it.
    fn column_of(&self, body: &Value, columns: &HashSet<String>) -> bool {
        let last = body["fields"]
            .as_array()
            .and_then(|f| f.last())
            .and_then(string_node)
            .unwrap_or_default();
        !last.is_empty()
            && columns.contains(last)
            && !self.defined.contains(last)
            && !self.defined.contains(DERIVED)
    }

    /// Whether `v` (a `Node`) is sure to be a timestamp, a timestamp with time zone or a date
    /// (never a time of day), for `AT TIME ZONE`: a cast to one, a function that returns one,
    /// a column that is one in every relation the component may use, such a value plus or
    /// minus something; where `loose`, also an untyped literal or a parameter (PostgreSQL
    /// reads either as `timestamptz` there).
    fn timestamp_valued(&self, v: &Value, loose: bool) -> bool {
        let Some((kind, body)) = node_of(v) else {
            return false;
        };
        fn timestamp(t: &str) -> bool {
            matches!(t, "timestamp" | "timestamptz" | "date")
        }
        match kind {
            "AConst" | "ParamRef" => loose,
            "TypeCast" => cast_to(body, timestamp, true),
            "FuncCall" => {
                let names = name_list(&body["funcname"]);
                let Some(&last) = names.last() else {
                    return false;
                };
                if !in_pg_catalog(&names) {
                    return false;
                }
                match last {
                    "timezone" => body["args"]
                        .as_array()
                        .and_then(|a| a.get(1))
                        .is_some_and(|a| self.timestamp_valued(a, loose)),
                    "make_date" | "make_timestamp" | "make_timestamptz" | "to_timestamp"
                    | "to_date" | "date_trunc" | "date_bin" => true,
                    other => timestamp(other),
                }
            }
            "ColumnRef" => self.column_of(body, &self.catalog.timestamp_columns),
            "AExpr" => plus_or_minus(body).is_some_and(|l| self.timestamp_valued(l, false)),
            _ => false,
        }
    }

    /// Refuses, in a statement that names a catalog with [`COUNTER_COLUMNS`], a reference to
    /// such a column among `fields` (a column reference's or an indirection's), a `*`, and
    /// (where `whole`, a column reference) a name of a relation or alias of the statement as
    /// its last name: a whole row (`c`, `row_to_json(c)`).
    fn counter_columns(&self, fields: &[Value], whole: bool) -> Result<(), Refusal> {
        let Some(catalog) = self.counted else {
            return Ok(());
        };
        let star = fields
            .iter()
            .any(|f| f.get("node").and_then(|n| n.get("AStar")).is_some());
        let names: Vec<&str> = fields.iter().filter_map(string_node).collect();
        let what = if let Some(c) = names.iter().find(|n| COUNTER_COLUMNS.contains(n)) {
            format!("the column `{c}`")
        } else if star {
            "`*`".to_string()
        } else if whole
            && let Some(&name) = names.last()
            && self.relation_names.contains(name)
        {
            format!("the whole row `{name}`")
        } else {
            return Ok(());
        };
        Err(self.denied(format!(
            "a component may not read {what} in a statement that reads `pg_catalog.{catalog}`: \
             its columns {} show the server's transaction counters and the sizes and row \
             counts of tables (also tables outside `reads`), which change from run to run. \
             Name the columns you need (relname, relkind, relnamespace, ...); count a listed \
             table's rows with count(*) ({})",
            COUNTER_COLUMNS
                .iter()
                .filter(|c| c.starts_with(if catalog == "pg_class" { "rel" } else { "dat" }))
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            self.config_file.display()
        )))
    }

    /// Refuses, in a statement that names a catalog with [`COUNTER_COLUMNS`], a column alias
    /// list on a table or a join (`pg_class AS c(a, b, ...)`): it would give a counter column
    /// another name.
    fn renamed_columns(&self, body: &Value) -> Result<(), Refusal> {
        let Some(catalog) = self.counted else {
            return Ok(());
        };
        if body["alias"]["colnames"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
        {
            return Err(self.denied(format!(
                "a component may not rename the columns of a table or join (`AS x(a, b, ...)`) \
                 in a statement that reads `pg_catalog.{catalog}`: the new names could stand for \
                 its columns that show the server's counters and the sizes of tables; name the \
                 columns you need in the select list instead ({})",
                self.config_file.display()
            )));
        }
        Ok(())
    }

    fn unknown(&self, what: &str) -> Refusal {
        Refusal::Denied(format!(
            "strata cannot check {what} in a component's statement, so it is refused; a \
             component on PostgreSQL reads and changes rows with plain SELECT, INSERT, UPDATE, \
             DELETE and MERGE (write such logic in the component, or in do.sql)"
        ))
    }

    /// Walks every field of a message of kind `kind`.
    fn fields(&mut self, kind: &str, body: &Value, skip: &[&str]) -> Result<(), Refusal> {
        let Value::Object(fields) = body else {
            return Err(self.unknown(kind));
        };
        for (name, v) in fields {
            if skip.contains(&name.as_str()) {
                continue;
            }
            match v {
                Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
                Value::Array(items) => {
                    for item in items {
                        self.node(item)?;
                    }
                }
                Value::Object(o) if o.contains_key("node") && o.len() == 1 => self.node(v)?,
                Value::Object(_) => match embedded(kind, name) {
                    Some(inner) => self.typed(inner, v)?,
                    None => return Err(self.unknown(&format!("`{kind}.{name}`"))),
                },
            }
        }
        Ok(())
    }

    /// Walks a message of kind `kind`.
    fn typed(&mut self, kind: &str, body: &Value) -> Result<(), Refusal> {
        let save = self.write;
        let r = self.typed_inner(kind, body);
        self.write = save;
        r
    }

    fn typed_inner(&mut self, kind: &str, body: &Value) -> Result<(), Refusal> {
        match kind {
            "AConst" => {
                // An untyped literal takes the type of what it meets: `'tomorrow 10:00'`
                // inserted into a date column, or compared with one, reads the clock. Typed
                // (`'...'::text`) or passed as a parameter, such text is judged by its type.
                if let Some(text) = body["val"]["Sval"]["sval"].as_str()
                    && CLOCK_WORDS.contains(&text.trim().to_ascii_lowercase().as_str())
                {
                    return Err(self.unseen(&format!("the value '{}'", text.trim()), "the clock"));
                }
                if let Some(text) = body["val"]["Sval"]["sval"].as_str()
                    && names_the_clock_as_a_word(text)
                {
                    return Err(self.denied(format!(
                        "a component may not write the untyped literal '{}': it holds {}, which \
                         PostgreSQL reads from the clock wherever the literal meets a date or \
                         time. If it is text, say so ('...'::text) or pass it as a parameter; \
                         a date must come from data, not the clock ({})",
                        text.trim(),
                        clock_word_in(text).unwrap_or("a clock word"),
                        self.config_file.display()
                    )));
                }
                Ok(())
            }
            "SqlvalueFunction" => {
                use pg_query::protobuf::SqlValueFunctionOp as Op;
                let op = match &body["op"] {
                    Value::String(name) => Op::from_str_name(name),
                    v => v
                        .as_i64()
                        .and_then(|n| i32::try_from(n).ok())
                        .and_then(|n| Op::try_from(n).ok()),
                };
                let Some(op) = op else {
                    return Err(self.unknown("a keyword such as CURRENT_USER"));
                };
                // CURRENT_DATE, CURRENT_TIME, CURRENT_TIMESTAMP, LOCALTIME, LOCALTIMESTAMP,
                // each with or without a precision; the user and schema names pass.
                if (Op::SvfopCurrentDate as i32..=Op::SvfopLocaltimestampN as i32)
                    .contains(&(op as i32))
                {
                    let word = op.as_str_name().trim_start_matches("SVFOP_");
                    let word = word.strip_suffix("_N").unwrap_or(word);
                    return Err(self.unseen(&format!("`{word}`"), "the clock"));
                }
                self.fields(kind, body, &[])
            }
            "TypeCast" => {
                // A date or time (or an array or range of them, or a row holding one) read
                // from a constant: '{now}'::timestamp[] and '[today,)'::daterange read the
                // clock too; read from any other text, it may be built to ('NOW' lowered).
                let ty = name_list(&body["type_name"]["names"]);
                if let Some(&last) = ty.last()
                    && may_read_the_clock(last)
                {
                    if let Some(text) =
                        body["arg"]["node"]["AConst"]["val"]["Sval"]["sval"].as_str()
                    {
                        if names_the_clock(text) {
                            return Err(self.unseen(&format!("the value '{text}'"), "the clock"));
                        }
                    } else {
                        // What the argument itself holds is refused first, by name.
                        self.fields(kind, body, &[])?;
                        return self.reads_no_text(&body["arg"], last);
                    }
                } else if let Some(text) =
                    body["arg"]["node"]["AConst"]["val"]["Sval"]["sval"].as_str()
                {
                    // A literal typed as something that never reads the clock ('...'::text)
                    // is what an untyped one naming the clock is told to become; only a
                    // clock word alone is refused, as it is on its way to a date.
                    if CLOCK_WORDS.contains(&text.trim().to_ascii_lowercase().as_str()) {
                        return Err(
                            self.unseen(&format!("the value '{}'", text.trim()), "the clock")
                        );
                    }
                    return self.fields(kind, body, &["arg"]);
                }
                self.fields(kind, body, &[])
            }
            "SelectStmt" => {
                if !body["into_clause"].is_null() {
                    return Err(self.denied(format!(
                        "a component may not run `SELECT ... INTO`, which creates a table: \
                         schema changes belong in do.sql ({})",
                        self.config_file.display()
                    )));
                }
                let locked = body["locking_clause"]
                    .as_array()
                    .is_some_and(|l| !l.is_empty());
                let scoped = self.with(&body["with_clause"])?;
                let from_write = self.write || locked;
                self.write = false;
                self.fields(
                    "SelectStmt",
                    body,
                    &[
                        "with_clause",
                        "from_clause",
                        "locking_clause",
                        "into_clause",
                    ],
                )?;
                self.write = from_write;
                for item in body["from_clause"].as_array().into_iter().flatten() {
                    self.node(item)?;
                }
                self.write = false;
                if scoped {
                    self.ctes.pop();
                }
                Ok(())
            }
            "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => {
                let scoped = self.with(&body["with_clause"])?;
                self.relation(&body["relation"], Access::Write, true)?;
                self.write = false;
                self.fields(kind, body, &["with_clause", "relation"])?;
                if scoped {
                    self.ctes.pop();
                }
                Ok(())
            }
            "RangeVar" => {
                let access = if self.write {
                    Access::Write
                } else {
                    Access::Read
                };
                self.relation(body, access, false)
            }
            "RangeTableSample" => {
                for m in body["method"].as_array().into_iter().flatten() {
                    let name = string_node(m).unwrap_or_default();
                    if !matches!(name, "bernoulli" | "system") {
                        return Err(self.function_refused(name, None));
                    }
                }
                if body["repeatable"].is_null() {
                    return Err(
                        self.unseen("`TABLESAMPLE` without `REPEATABLE (seed)`", "randomness")
                    );
                }
                self.fields(kind, body, &["method"])
            }
            "FuncCall" => {
                let names: Vec<&str> = body["funcname"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(string_node)
                    .collect();
                self.function(&names)?;
                if let [name] | ["pg_catalog", name] = names[..]
                    && matches!(name, "nextval" | "currval")
                {
                    self.sequence_argument(name, body)?;
                }
                // A cast written as a function: date(x), "timestamp"(x).
                if let Some(&last) = names.last()
                    && in_pg_catalog(&names)
                    && is_date_or_time(last)
                    && let Some(args) = body["args"].as_array()
                    && args.len() == 1
                {
                    self.reads_no_text(&args[0], last)?;
                }
                if let Some(&last) = names.last()
                    && RECORD_INPUT.contains(&last)
                {
                    return Err(self.denied(format!(
                        "a component may not call `{last}`: it reads the JSON's text into the \
                         fields of a row type by their types, and text read as a date or time \
                         can name the clock ('now', 'today'); read the JSON with ->> and \
                         convert dates with to_date(text, 'YYYY-MM-DD') or to_timestamp(text, \
                         format), which read only the fields the format names ({})",
                        self.config_file.display()
                    )));
                }
                // A time of day with a time zone takes the zone's offset on the current date.
                if matches!(names[..], ["timezone"] | ["pg_catalog", "timezone"])
                    && let Some([zone, value]) = body["args"].as_array().map(Vec::as_slice)
                    && !fixed_offset_zone(zone)
                    && !self.timestamp_valued(value, true)
                {
                    return Err(self.denied(format!(
                        "a component may not convert a value strata cannot tell is a timestamp \
                         with `AT TIME ZONE` or `timezone()` to a zone that is not a fixed \
                         offset: for a time of day (`timetz`, `time`) PostgreSQL takes the zone's \
                         offset on the current date (daylight saving), which reads the clock. \
                         Convert a timestamp (a timestamp or date column, a value cast to \
                         timestamp or timestamptz, a parameter), or give a fixed offset ('UTC', \
                         '+05:00', INTERVAL '-05:00') ({})",
                        self.config_file.display()
                    )));
                }
                // age(t) is age(current_date, t).
                if matches!(names[..], ["age"] | ["pg_catalog", "age"])
                    && body["args"].as_array().map_or(0, Vec::len) < 2
                {
                    return Err(self.unseen("`age` with one argument", "the clock"));
                }
                self.fields(kind, body, &["funcname"])
            }
            "AExpr" => {
                self.operator(&body["name"])?;
                self.fields(kind, body, &["name"])
            }
            "SubLink" => {
                self.operator(&body["oper_name"])?;
                self.fields(kind, body, &["oper_name"])
            }
            "SortBy" => {
                self.operator(&body["use_op"])?;
                self.fields(kind, body, &["use_op"])
            }
            "TypeName" => {
                let names = name_list(&body["names"]);
                if !in_pg_catalog(&names) {
                    return Err(self.denied(format!(
                        "a component may not use the type `{}`: casts and typed values are \
                         limited to PostgreSQL's built-in types (pg_catalog), whose input runs \
                         no code of the database's; cast to text or a built-in type instead \
                         ({})",
                        names.join("."),
                        self.config_file.display()
                    )));
                }
                if names.last().map(|t| t.trim_start_matches('_')) == Some("regrole") {
                    return Err(self.denied(format!(
                        "a component may not use the type `regrole`: it turns a role's name into \
                         its OID, and the component's role is made for each call, so its OID is \
                         the cluster's OID counter, which differs from run to run; compare role \
                         names as text (`current_user`, `pg_tables.tableowner`) ({})",
                        self.config_file.display()
                    )));
                }
                if names.last() == Some(&"xml") {
                    return Err(self.denied(format!(
                        "a component may not use the type `xml` (XML is parsed by the server; \
                         keep XML as text) ({})",
                        self.config_file.display()
                    )));
                }
                if body["pct_type"].as_bool() == Some(true) || body["setof"].as_bool() == Some(true)
                {
                    return Err(self.unknown("`%TYPE` or `SETOF`"));
                }
                self.fields(kind, body, &["names"])
            }
            "ColumnRef" => {
                let fields = body["fields"].as_array().map_or(&[][..], Vec::as_slice);
                // The system columns that show transaction and command ids: no table may have
                // a column of these names, so the name alone says what is read.
                if let Some(name) = fields.last().and_then(string_node)
                    && ["xmin", "xmax", "cmin", "cmax"].contains(&name)
                {
                    return Err(self.unseen(
                        &format!("the system column `{name}`"),
                        "the server's transaction counter",
                    ));
                }
                // A catalog row's place moves with every catalog write of the database (other
                // sessions' DDL and temporary tables too; `pg_database`'s, the cluster's).
                if fields.last().and_then(string_node) == Some("ctid")
                    && self.relation_names.iter().any(|n| {
                        ["pg_catalog", "information_schema"].iter().any(|s| {
                            self.catalog
                                .relations
                                .contains_key(&(s.to_string(), n.clone()))
                        })
                    })
                {
                    return Err(self.denied(format!(
                        "a component may not read the system column `ctid` in a statement that \
                         reads a system catalog: a catalog row's place moves with every schema \
                         change of the database (other sessions' and their temporary tables' \
                         too), so it shows what other sessions do and differs from run to run. \
                         Name the catalog's columns you need ({})",
                        self.config_file.display()
                    )));
                }
                for f in fields.iter().skip(1) {
                    if let Some(name) = string_node(f) {
                        self.field_name(name)?;
                    }
                }
                self.counter_columns(fields, true)?;
                self.fields(kind, body, &["fields"])
            }
            "AIndirection" => {
                let fields = body["indirection"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice);
                for f in fields {
                    if let Some(name) = string_node(f) {
                        self.field_name(name)?;
                    }
                }
                self.counter_columns(fields, false)?;
                self.fields(kind, body, &[])
            }
            "ColumnDef" => {
                // A column definition list (`jsonb_to_record(j) AS x(d date)`) reads the
                // function's text into each column by its type.
                let ty = name_list(&body["type_name"]["names"]);
                if let Some(&last) = ty.last()
                    && may_read_the_clock(last)
                {
                    return Err(self.denied(format!(
                        "a component may not read a column of type `{last}` from a function's \
                         text (`{}` in a column definition list): text read as a date or time \
                         can name the clock ('now', 'today'); declare it text and convert it \
                         with to_date(text, 'YYYY-MM-DD') or to_timestamp(text, format), which \
                         read only the fields the format names ({})",
                        body["colname"].as_str().unwrap_or_default(),
                        self.config_file.display()
                    )));
                }
                for refused in [
                    "raw_default",
                    "cooked_default",
                    "identity_sequence",
                    "constraints",
                    "fdwoptions",
                ] {
                    let v = &body[refused];
                    if !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)) {
                        return Err(self.unknown("a column definition with options"));
                    }
                }
                self.fields(kind, body, &[])
            }
            "JoinExpr" => {
                self.renamed_columns(body)?;
                self.fields(kind, body, &[])
            }
            "CommonTableExpr" => self.fields(kind, body, &[]),
            "WithClause" => Err(self.unknown("a WITH clause out of place")),
            k if PLAIN.contains(&k) => self.fields(kind, body, &[]),
            other => Err(self.denied(format!(
                "a component's statement may not use `{other}` (strata allows plain row reads \
                 and changes: expressions, joins, subqueries, CTEs, aggregates and window \
                 functions over built-in functions; XML and SQL/JSON constructors, \
                 WHERE CURRENT OF and similar forms are refused); write it with built-in \
                 functions, or do the work in the component or in do.sql ({})",
                self.config_file.display()
            ))),
        }
    }

    /// Walks a `WITH` clause (a `WithClause` message or null): each CTE in the scope PostgreSQL
    /// gives it. Returns whether a scope was pushed (popped by the caller after its statement).
    fn with(&mut self, with: &Value) -> Result<bool, Refusal> {
        let Value::Object(w) = with else {
            return Ok(false);
        };
        let recursive = w.get("recursive").and_then(Value::as_bool) == Some(true);
        let ctes: Vec<&Value> = w
            .get("ctes")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let name = |c: &Value| -> Option<String> {
            c.get("node")?
                .get("CommonTableExpr")?
                .get("ctename")?
                .as_str()
                .map(str::to_string)
        };
        self.ctes.push(Vec::new());
        if recursive {
            let names: Vec<String> = ctes.iter().filter_map(|c| name(c)).collect();
            self.ctes.last_mut().expect("pushed").extend(names);
        }
        for c in ctes {
            if let Some(q) = c
                .get("node")
                .and_then(|n| n.get("CommonTableExpr"))
                .and_then(|n| n.get("ctequery"))
                .and_then(|n| n.get("node"))
                .and_then(Value::as_object)
                && q.keys().any(|k| k != "SelectStmt")
            {
                self.modifying_with = true;
            }
            self.write = false;
            self.node(c)?;
            if !recursive && let Some(n) = name(c) {
                self.ctes.last_mut().expect("pushed").push(n);
            }
        }
        self.write = false;
        Ok(true)
    }

    /// Checks a relation (a `RangeVar` message) used as `access`; `target` for the table a
    /// row change writes, which never names a CTE.
    fn relation(&mut self, rv: &Value, access: Access, target: bool) -> Result<(), Refusal> {
        let Value::Object(rv) = rv else {
            return Err(self.unknown("a statement without its table"));
        };
        let get = |k: &str| rv.get(k).and_then(Value::as_str).unwrap_or("");
        let (catalog, schema, name) = (get("catalogname"), get("schemaname"), get("relname"));
        if !catalog.is_empty() {
            return Err(self.denied(format!(
                "a component may not name another database (`{catalog}.{schema}.{name}`)"
            )));
        }
        if schema.is_empty()
            && !target
            && self
                .ctes
                .iter()
                .any(|scope| scope.iter().any(|c| c == name))
        {
            return self.fields("RangeVar", &Value::Object(rv.clone()), &[]);
        }
        let config = self.config_file.display();
        let list = match access {
            Access::Read => "`reads` (or `writes`)",
            Access::Write => "`writes`",
        };
        let verb = match access {
            Access::Read => "read",
            Access::Write => "write (or lock)",
        };
        let resolved = if schema.is_empty() {
            match self.catalog.visible.get(name) {
                Some(s) => {
                    let at = rv
                        .get("location")
                        .and_then(Value::as_i64)
                        .and_then(|l| usize::try_from(l).ok())
                        .filter(|&at| self.names_relation_at(at, name))
                        .ok_or_else(|| self.unknown("where a table is named"))?;
                    self.qualify
                        .push((at, format!("{}.", crate::core::data::quote_ident(s))));
                    s.clone()
                }
                None => {
                    return Err(self.denied(format!(
                        "a component may not {verb} `{name}`: no such table in the session's \
                         search_path, or not one the component may use; list it under \
                         {list} in [sandbox] of {config}"
                    )));
                }
            }
        } else {
            schema.to_string()
        };
        if resolved == "strata" {
            return Err(self.denied(format!(
                "a component may not {verb} `strata.{name}`: strata's bookkeeping is out of every \
                 component's reach"
            )));
        }
        if let Some(tenant) = &self.catalog.tenant
            && resolved != *tenant
            && !matches!(resolved.as_str(), "pg_catalog" | "information_schema")
        {
            return Err(self.denied(format!(
                "a component may not {verb} `{resolved}.{name}`: this is tenant `{tenant}`'s \
                 run, and a component reaches the tenant's own schema only"
            )));
        }
        if resolved == "pg_catalog" && ROW_VALUE_CATALOGS.contains(&name) {
            return Err(self.denied(format!(
                "a component may not {verb} `pg_catalog.{name}`: it shows values from the rows of \
                 tables (statistics samples, query texts or sequence values), which could be \
                 tables outside `reads`; the system catalogs a component may read show names, \
                 definitions and settings only"
            )));
        }
        if resolved == "pg_catalog" && !READABLE_CATALOGS.contains(&name) {
            return Err(self.denied(format!(
                "a component may not {verb} `pg_catalog.{name}`: a component reads only the \
                 catalogs of names and definitions (pg_class, pg_attribute, pg_type, \
                 pg_namespace, pg_constraint, pg_index, pg_proc, pg_tables, pg_views, \
                 pg_settings, ... and information_schema); the others show the server's \
                 counters, statistics, locks, other sessions, roles or the current time, which \
                 differ from run to run, or rows and row counts of tables outside `reads`. Read \
                 names and definitions from those catalogs, and pass anything else in as data \
                 ({config})"
            )));
        }
        self.renamed_columns(&Value::Object(rv.clone()))?;
        let key = (resolved.clone(), name.to_string());
        match (self.catalog.relations.get(&key), access) {
            (Some(Access::Write), _) | (Some(Access::Read), Access::Read) => {}
            (Some(Access::Read), Access::Write)
                if matches!(resolved.as_str(), "pg_catalog" | "information_schema") =>
            {
                return Err(self.denied(format!(
                    "a component may not {verb} `{resolved}.{name}`: the system catalogs are \
                     read-only to components (session settings such as `pg_settings` are \
                     strata's while a component runs)"
                )));
            }
            _ => {
                return Err(self.denied(format!(
                    "a component may not {verb} `{resolved}.{name}`: it is not listed under \
                     {list} in [sandbox] of {config}; add it there if this migration should \
                     {verb} it"
                )));
            }
        }
        self.fields("RangeVar", &Value::Object(rv.clone()), &[])
    }

    /// Whether the statement's text at byte `at` spells the unqualified relation `name`.
    fn names_relation_at(&self, at: usize, name: &str) -> bool {
        let Some(rest) = self.sql.get(at..) else {
            return false;
        };
        rest.starts_with('"')
            || rest
                .get(..name.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(name))
    }

    /// Checks the argument of `nextval`/`currval` (`name`, the call `body`): a constant naming,
    /// as `regclass` reads it, a sequence owned by a relation of `writes`. The role inherits
    /// what PUBLIC is granted, so a sequence outside the lists granted to PUBLIC would
    /// otherwise be drawn from (and show how many rows its table got). An unqualified name is
    /// qualified in the statement's text, as strata runs it under its own `search_path`.
    fn sequence_argument(&mut self, name: &str, body: &Value) -> Result<(), Refusal> {
        let config = self.config_file.display();
        let refuse = |why: String| {
            Refusal::Denied(format!(
                "a component may call `{name}` only with a constant naming a sequence owned by a \
                 table of `writes` (its serial or identity column's, or OWNED BY it), such as \
                 nextval('schema.table_id_seq'): {why}; the sequences of other tables are \
                 theirs (drawing from one changes it and shows how many rows it numbered). List \
                 the table under `writes` in [sandbox] of {config}, or do this in do.sql"
            ))
        };
        let args = body["args"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let [arg] = args else {
            return Err(refuse("it is not called with one argument".into()));
        };
        let mut arg = arg;
        if let Some(("TypeCast", cast)) = node_of(arg) {
            let ty = name_list(&cast["type_name"]["names"]);
            if !matches!(
                ty[..],
                ["regclass" | "text"] | ["pg_catalog", "regclass" | "text"]
            ) {
                return Err(refuse("its argument is not a constant".into()));
            }
            arg = &cast["arg"];
        }
        let literal = match node_of(arg) {
            Some(("AConst", c)) => c["val"]["Sval"]["sval"]
                .as_str()
                .map(|t| (t, c["location"].as_i64())),
            _ => None,
        };
        let Some((text, location)) = literal else {
            return Err(refuse("its argument is not a constant".into()));
        };
        let Some(parts) = qualified_name(text) else {
            return Err(refuse(format!("`{text}` is not a sequence's name")));
        };
        let (schema, seq) = match &parts[..] {
            [schema, seq] => (schema.clone(), seq.clone()),
            [seq] => {
                let Some(schema) = self.catalog.visible.get(seq).cloned() else {
                    return Err(refuse(format!(
                        "`{text}` names no sequence of the session's search_path"
                    )));
                };
                // Qualify it inside the literal: 'seq' becomes '"schema".seq'.
                let at = location
                    .and_then(|l| usize::try_from(l).ok())
                    .filter(|&at| self.sql.get(at..).is_some_and(|r| r.starts_with('\'')))
                    .ok_or_else(|| {
                        refuse(format!(
                            "qualify `{text}` with its schema in a plain '...' literal"
                        ))
                    })?;
                let prefix = format!("{}.", crate::core::data::quote_ident(&schema));
                self.qualify.push((at + 1, prefix.replace('\'', "''")));
                (schema, seq.clone())
            }
            _ => return Err(refuse(format!("`{text}` names another database"))),
        };
        if self
            .catalog
            .sequences
            .contains(&(schema.clone(), seq.clone()))
        {
            Ok(())
        } else {
            Err(refuse(format!(
                "`{schema}.{seq}` is not a sequence of a table of `writes`"
            )))
        }
    }

    /// Checks a function name (`[name]` or `[schema, name]`).
    fn function(&self, names: &[&str]) -> Result<(), Refusal> {
        if let [name] | ["pg_catalog", name] = names
            && let Some((_, what)) = UNSEEN.iter().find(|(f, _)| f == name)
        {
            return Err(self.unseen(&format!("`{name}`"), what));
        }
        match names {
            [name] | ["pg_catalog", name] if ALLOWED_FUNCTIONS.contains(name) => Ok(()),
            [name] | ["pg_catalog", name] => Err(self.function_refused(name, None)),
            [schema, name] => Err(self.function_refused(name, Some(schema))),
            _ => Err(self.function_refused(&names.join("."), Some(""))),
        }
    }

    /// Why `what` (a function, keyword or value that reads `source`) is refused.
    fn unseen(&self, what: &str, source: &str) -> Refusal {
        Refusal::Denied(unseen_message(what, source, self.config_file))
    }

    fn function_refused(&self, name: &str, schema: Option<&str>) -> Refusal {
        let config = self.config_file.display();
        match schema {
            Some(schema) => Refusal::Denied(format!(
                "a component may not call `{schema}.{name}`: on PostgreSQL a component calls only \
                 side-effect-free built-in functions of pg_catalog; a function of the database's \
                 own may run with its owner's rights (SECURITY DEFINER), change the role or \
                 write anywhere. Do that work in the component, or in do.sql (the tables the \
                 component may use are under [sandbox] in {config})"
            )),
            None => Refusal::Denied(format!(
                "a component may not call `{name}`: on PostgreSQL a component calls only \
                 side-effect-free built-in functions (string, math, date/time, JSON, array, \
                 aggregate and window functions, ...); functions that run SQL given as text \
                 (query_to_xml, ...), change settings or the role (set_config), read or write \
                 files or large objects, take advisory locks, signal other sessions or change \
                 sequences are refused, as is every function of the database's own (which may \
                 run with its owner's rights, SECURITY DEFINER). Do that work in the \
                 component's own code, or in do.sql ({config})"
            )),
        }
    }

    /// Checks an operator name list (`["="]` or `["pg_catalog", "="]`): only `pg_catalog`'s.
    fn operator(&self, names: &Value) -> Result<(), Refusal> {
        let names = name_list(names);
        if !in_pg_catalog(&names) {
            return Err(self.denied(format!(
                "a component may not use the operator `OPERATOR({})`: operators resolve to \
                 functions, and only PostgreSQL's own (pg_catalog) are allowed",
                names.join(".")
            )));
        }
        Ok(())
    }

    /// Checks a name after a dot (`t.name`, `(expr).name`): PostgreSQL reads it as a call of
    /// the function `name` when no column has that name, so it must not be a refused one.
    fn field_name(&self, name: &str) -> Result<(), Refusal> {
        if self.catalog.catalog_functions.contains(name) && !ALLOWED_FUNCTIONS.contains(&name) {
            return Err(self.denied(format!(
                "a component may not write `.{name}` after a table or value: PostgreSQL reads \
                 `x.{name}` as a call of the function `{name}(x)` when there is no such column, \
                 and `{name}` is not a function a component may call. Name the column without \
                 its table, or rename it ({})",
                self.config_file.display()
            )));
        }
        Ok(())
    }
}

/// The string of a `String` node.
/// A name as `regclass` reads it from text (`schema.name`, `"Quoted"."x"`, unquoted parts
/// folded to lower case), its parts; `None` when it is not one.
fn qualified_name(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
            if part.is_empty() {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' || c.is_whitespace() || c == '"' {
                    break;
                }
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
            if part.is_empty() {
                return None;
            }
        }
        parts.push(part);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(parts),
            Some('.') => {}
            Some(_) => return None,
        }
    }
}

fn string_node(v: &Value) -> Option<&str> {
    v.get("node")?.get("String")?.get("sval")?.as_str()
}

/// The relations of `pg_catalog` that show values from tables' rows, refused to components
/// whatever the server's grants: a component's role inherits PUBLIC's privileges, so a table
/// granted to PUBLIC would show its values through these although it is not in `reads`.
/// Statistics keep the most common values and histogram bounds of columns (`pg_stats*`,
/// `pg_statistic*`); query texts and parameters can carry values (`pg_stat_activity`,
/// `pg_prepared_statements`, `pg_cursors`, `pg_prepared_xacts`); `pg_sequences` shows sequences'
/// last values; `pg_largeobject` holds data.
pub const ROW_VALUE_CATALOGS: &[&str] = &[
    "pg_stats",
    "pg_stats_ext",
    "pg_stats_ext_exprs",
    "pg_statistic",
    "pg_statistic_ext_data",
    "pg_stat_activity",
    "pg_stat_statements",
    "pg_prepared_statements",
    "pg_prepared_xacts",
    "pg_cursors",
    "pg_sequences",
    "pg_largeobject",
];

/// The relations of `pg_catalog` a component may read: those that show names, definitions and
/// settings, the same in every run on the same schema. Every other one is refused: statistics
/// and row counts (`pg_stat_*`, `pg_statio_*`, which also count this transaction's rows in
/// tables outside `reads`), locks and sessions (`pg_locks`, `pg_prepared_xacts`, ...), the
/// server's memory and counters (`pg_backend_memory_contexts`, `pg_shmem_allocations`,
/// `pg_stat_wal`), time zones' offsets for the current date (`pg_timezone_names`), roles
/// (`pg_roles`, `pg_auth_members`, `pg_shdepend`: the component's role is made for each call,
/// so its OID is the cluster's OID counter), and any catalog a later PostgreSQL adds.
/// `pg_class` and `pg_database` are read without their [`COUNTER_COLUMNS`].
pub const READABLE_CATALOGS: &[&str] = &[
    "pg_aggregate",
    "pg_am",
    "pg_amop",
    "pg_amproc",
    "pg_attrdef",
    "pg_attribute",
    "pg_cast",
    "pg_class",
    "pg_collation",
    "pg_constraint",
    "pg_conversion",
    "pg_database",
    "pg_default_acl",
    "pg_depend",
    "pg_description",
    "pg_enum",
    "pg_event_trigger",
    "pg_extension",
    "pg_foreign_data_wrapper",
    "pg_foreign_server",
    "pg_foreign_table",
    "pg_index",
    "pg_indexes",
    "pg_inherits",
    "pg_init_privs",
    "pg_language",
    "pg_matviews",
    "pg_namespace",
    "pg_opclass",
    "pg_operator",
    "pg_opfamily",
    "pg_partitioned_table",
    "pg_policies",
    "pg_policy",
    "pg_proc",
    "pg_publication",
    "pg_publication_namespace",
    "pg_publication_rel",
    "pg_publication_tables",
    "pg_range",
    "pg_rewrite",
    "pg_rules",
    "pg_seclabel",
    "pg_seclabels",
    "pg_sequence",
    "pg_settings",
    "pg_shdescription",
    "pg_shseclabel",
    "pg_statistic_ext",
    "pg_tables",
    "pg_tablespace",
    "pg_transform",
    "pg_trigger",
    "pg_ts_config",
    "pg_ts_config_map",
    "pg_ts_dict",
    "pg_ts_parser",
    "pg_ts_template",
    "pg_type",
    "pg_views",
];

/// Columns of readable catalogs that show the server's counters or the sizes of tables, refused
/// in a statement that names the catalog ([`COUNTED_CATALOGS`]): transaction and multixact ids
/// (`relfrozenxid`, `datfrozenxid`, ... and their `age`), the file a table is stored in (a new
/// one from the OID counter at each rewrite), and the estimated rows and pages of a table, which
/// follow its rows and when it was last vacuumed or analyzed (the row counts of tables outside
/// `reads`; count the rows of a listed table with `count(*)`).
pub const COUNTER_COLUMNS: &[&str] = &[
    "relfrozenxid",
    "relminmxid",
    "reltuples",
    "relpages",
    "relallvisible",
    "relfilenode",
    "datfrozenxid",
    "datminmxid",
];

/// The readable catalogs that have [`COUNTER_COLUMNS`].
const COUNTED_CATALOGS: &[&str] = &["pg_class", "pg_database"];

/// Whether the constant zone `zone` (a `Node`) of `AT TIME ZONE` or `timezone()` is a fixed
/// offset from UTC: UTC by one of its names, a numeric offset ('+05:30', 'UTC-3',
/// 'Etc/GMT+5'), or an interval. Every other zone may have daylight saving (abbreviations too:
/// some stand for a zone's offset on the date).
fn fixed_offset_zone(zone: &Value) -> bool {
    let Some((kind, body)) = node_of(zone) else {
        return false;
    };
    match kind {
        "AConst" => body["val"]["Sval"]["sval"]
            .as_str()
            .is_some_and(fixed_offset_name),
        "TypeCast" => {
            let ty = name_list(&body["type_name"]["names"]);
            in_pg_catalog(&ty) && ty.last() == Some(&"interval")
        }
        _ => false,
    }
}

/// Whether `name` names a time zone with a fixed offset from UTC (see [`fixed_offset_zone`]).
fn fixed_offset_name(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("etc/").unwrap_or(&name);
    if matches!(
        name,
        "utc" | "uct" | "gmt" | "z" | "zulu" | "universal" | "greenwich"
    ) {
        return true;
    }
    // An offset: optionally after `UTC` or `GMT`, a sign, then hours and optional minutes and
    // seconds (`+5`, `-03:30`, `UTC+3`, `GMT-0`).
    let offset = ["utc", "gmt"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    let Some(digits) = offset.strip_prefix(['+', '-']) else {
        return false;
    };
    let mut parts = digits.split(':');
    let hours = parts.next().unwrap_or_default();
    (1..=2).contains(&hours.len())
        && hours.bytes().all(|b| b.is_ascii_digit())
        && parts.clone().count() <= 2
        && parts.all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a `TypeCast` (`body`) converts to a type `is` accepts (not an array of it); where
/// `builtin`, only `pg_catalog`'s type of that name.
fn cast_to(body: &Value, is: fn(&str) -> bool, builtin: bool) -> bool {
    let ty = name_list(&body["type_name"]["names"]);
    let arrays = body["type_name"]["array_bounds"]
        .as_array()
        .is_some_and(|b| !b.is_empty());
    (!builtin || in_pg_catalog(&ty)) && ty.last().is_some_and(|t| is(t)) && !arrays
}

/// The left operand of `body` (an `AExpr`) when it is `l + r` or `l - r`.
fn plus_or_minus(body: &Value) -> Option<&Value> {
    let op = name_list(&body["name"]);
    (matches!(op[..], ["+"] | ["-"]) && body["kind"].as_str().is_none_or(|k| k == "AEXPR_OP"))
        .then(|| &body["lexpr"])
}

/// The kind and body of a `Node` (`{"node": {"Kind": {...}}}`).
fn node_of(v: &Value) -> Option<(&str, &Value)> {
    v.get("node")
        .and_then(Value::as_object)
        .and_then(|n| n.iter().next())
        .map(|(k, b)| (k.as_str(), b))
}

/// A qualified name as the tree lists it (`["pg_catalog", "int4"]`, `["="]`).
fn name_list(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(string_node)
        .collect()
}

/// Whether a type or operator name resolves in `pg_catalog`: unqualified (strata runs the
/// statement under `search_path = pg_catalog, pg_temp`) or qualified with `pg_catalog`.
fn in_pg_catalog(names: &[&str]) -> bool {
    names.len() <= 1 || (names.len() == 2 && names[0] == "pg_catalog")
}

/// Built-in functions that read what a component must not see, refused by name: the clock
/// and randomness differ from run to run, so a component calling them could change the same
/// database differently in the rehearsal, in CI's sandbox and in production.
pub const UNSEEN: &[(&str, &str)] = &[
    ("now", "the clock"),
    ("clock_timestamp", "the clock"),
    ("statement_timestamp", "the clock"),
    ("transaction_timestamp", "the clock"),
    ("timeofday", "the clock"),
    ("pg_postmaster_start_time", "the clock"),
    ("pg_conf_load_time", "the clock"),
    ("random", "randomness"),
    ("random_normal", "randomness"),
    ("setseed", "randomness"),
    ("gen_random_uuid", "randomness"),
    ("uuid_generate_v4", "randomness"),
];

/// The special date and time inputs PostgreSQL reads from the clock.
pub const CLOCK_WORDS: &[&str] = &["now", "today", "tomorrow", "yesterday"];

/// Whether `text`, read as a date or time (or an array or range of them), names the clock.
pub fn names_the_clock(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    CLOCK_WORDS.iter().any(|w| text.contains(w))
}

/// The clock word `text` holds as a word of its own (`'tomorrow 10:00'`, `'today utc'`; not
/// `'known'`), if any.
fn clock_word_in(text: &str) -> Option<&'static str> {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .find_map(|w| {
            CLOCK_WORDS
                .iter()
                .find(|c| c.eq_ignore_ascii_case(w))
                .copied()
        })
}

/// Whether `text` holds a clock word as a word of its own.
fn names_the_clock_as_a_word(text: &str) -> bool {
    clock_word_in(text).is_some()
}

/// What [`defined_names`] records when the statement has columns of its own making (a name no
/// column can have: it holds a NUL).
const DERIVED: &str = "\0derived";

/// Functions whose result is a date or time computed without reading text as one.
const DATE_VALUED_FUNCTIONS: &[&str] = &[
    "make_date",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "date_trunc",
    "date_bin",
    "timezone",
    "to_timestamp",
    "to_date",
];

/// Functions that read text (JSON) into the fields of a row type by their types.
const RECORD_INPUT: &[&str] = &[
    "json_populate_record",
    "jsonb_populate_record",
    "json_populate_recordset",
    "jsonb_populate_recordset",
];

/// Built-in types whose text input never reads the clock (nor holds a value that does),
/// besides those of [`ALLOWED_FUNCTIONS`] (casts written as functions, geometry, ...).
const TEXT_SAFE_TYPES: &[&str] = &[
    "bytea",
    "json",
    "jsonb",
    "jsonpath",
    "uuid",
    "oid",
    "inet",
    "bit",
    "varbit",
    "tsvector",
    "tsquery",
    "int4multirange",
    "int8multirange",
    "nummultirange",
    "regclass",
    "regtype",
    "regproc",
    "regprocedure",
    "regoper",
    "regoperator",
    "regnamespace",
    "regrole",
    "regconfig",
    "regdictionary",
    "regcollation",
];

/// Whether text read as the built-in type `name` (or an array of it) may read the clock: a
/// date or time type, its arrays and ranges, and every type not known to be safe (a row type
/// of the catalog holds timestamps).
fn may_read_the_clock(name: &str) -> bool {
    let name = name.trim_start_matches('_');
    is_date_or_time(name) || !(TEXT_SAFE_TYPES.contains(&name) || ALLOWED_FUNCTIONS.contains(&name))
}

/// Collects the names a statement defines for columns and relations of its own (see
/// [`Walker::defined`]), anywhere in its tree, and into `relations` the names and aliases of the
/// relations, subqueries and CTEs it names (see [`Walker::relation_names`]).
fn defined_names(v: &Value, out: &mut HashSet<String>, relations: &mut HashSet<String>) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                for (key, value) in map {
                    if let ("relname" | "aliasname" | "ctename", Value::String(name)) =
                        (key.as_str(), value)
                    {
                        relations.insert(name.clone());
                    }
                    match (key.as_str(), value) {
                        ("aliasname" | "colname" | "ctename", Value::String(name)) => {
                            out.insert(name.clone());
                        }
                        ("colnames" | "aliascolnames", Value::Array(names)) => {
                            out.extend(names.iter().filter_map(string_node).map(str::to_string));
                        }
                        _ => {}
                    }
                }
                // A SELECT's output names (not UPDATE's SET targets or INSERT's columns).
                let outputs = map
                    .get("SelectStmt")
                    .and_then(|s| s.get("target_list"))
                    .and_then(Value::as_array);
                for item in outputs.into_iter().flatten() {
                    if let Some(Value::String(name)) = item
                        .get("node")
                        .and_then(|n| n.get("ResTarget"))
                        .and_then(|r| r.get("name"))
                    {
                        out.insert(name.clone());
                    }
                }
                // Columns that come from a function, a subquery or a CTE are named by them
                // (`value` of jsonb_array_elements_text): no bare name is then sure to be a
                // table's column.
                if [
                    "RangeFunction",
                    "RangeSubselect",
                    "CommonTableExpr",
                    "RangeTableFunc",
                ]
                .iter()
                .any(|k| map.contains_key(*k))
                {
                    out.insert(DERIVED.to_string());
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
}

/// Whether the type named `name` (in pg_catalog) holds dates or times.
fn is_date_or_time(name: &str) -> bool {
    let name = name.trim_start_matches('_');
    matches!(
        name,
        "date"
            | "time"
            | "timetz"
            | "timestamp"
            | "timestamptz"
            | "tsrange"
            | "tstzrange"
            | "daterange"
            | "tsmultirange"
            | "tstzmultirange"
            | "datemultirange"
    )
}

/// Why a component may not use `what`, which reads `source` (the clock, randomness).
pub fn unseen_message(what: &str, source: &str, config: &std::path::Path) -> String {
    format!(
        "a component may not use {what}: it reads {source}, which a component does not see, so \
         that the same database gives the same result in the rehearsal, in CI's sandbox and in \
         production, now and years later. Pass the time or a seed in as data (a row do.sql \
         writes), or do this in do.sql ({})",
        config.display()
    )
}

/// The built-in functions (of `pg_catalog`) a component may call: they compute a value from
/// their arguments and reach nothing else (the clock and randomness are [`UNSEEN`]). Not here, and so refused: what
/// runs SQL given as text (`query_to_xml` and every XML function, `ts_stat`, `ts_rewrite`),
/// changes settings, the role or sequences (`set_config`, `setval`), reads the server's files
/// or large objects (`pg_read_file`, `lo_*`, `pg_ls_*`), takes or releases locks
/// (`pg_advisory_*`), signals or reads other sessions (`pg_terminate_backend`,
/// `pg_cancel_backend`, `pg_stat_*`), reloads or rotates the server's files, assigns or reads
/// transaction ids and snapshots (`txid_*`, `pg_current_xact_id`, ...), notifies listeners
/// (`pg_notify`), or reads the last value of a sequence strata used (`lastval`).
pub const ALLOWED_FUNCTIONS: &[&str] = &[
    // Conditionals and comparison helpers (COALESCE, NULLIF, GREATEST, LEAST are syntax).
    "num_nulls",
    "num_nonnulls",
    "pg_typeof",
    "pg_column_size",
    // Casts written as functions.
    "bool",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "numeric",
    "text",
    "varchar",
    "bpchar",
    "name",
    // A cast to oid, and so `c.oid` (a catalog's key) for a relation that has no such column.
    "oid",
    "char",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "interval",
    "to_char",
    "to_date",
    "to_number",
    "to_timestamp",
    // Math.
    "abs",
    "cbrt",
    "ceil",
    "ceiling",
    "degrees",
    "div",
    "exp",
    "floor",
    "gcd",
    "lcm",
    "ln",
    "log",
    "log10",
    "min_scale",
    "mod",
    "pi",
    "power",
    "pow",
    "radians",
    "round",
    "scale",
    "sign",
    "sqrt",
    "trim_scale",
    "trunc",
    "width_bucket",
    "acos",
    "acosd",
    "asin",
    "asind",
    "atan",
    "atand",
    "atan2",
    "atan2d",
    "cos",
    "cosd",
    "cot",
    "cotd",
    "sin",
    "sind",
    "tan",
    "tand",
    "sinh",
    "cosh",
    "tanh",
    "asinh",
    "acosh",
    "atanh",
    "factorial",
    // Geometry and network addresses (values only).
    "area",
    "center",
    "diameter",
    "height",
    "width",
    "radius",
    "npoints",
    "isclosed",
    "isopen",
    "pclose",
    "popen",
    "point",
    "box",
    "line",
    "lseg",
    "path",
    "polygon",
    "circle",
    "bound_box",
    "slope",
    "host",
    "hostmask",
    "network",
    "netmask",
    "family",
    "abbrev",
    "broadcast",
    "masklen",
    "set_masklen",
    "inet_merge",
    "inet_same_family",
    "cidr",
    "macaddr",
    "macaddr8",
    "money",
    // Strings and bytes.
    "ascii",
    "bit_length",
    "btrim",
    "char_length",
    "character_length",
    "chr",
    "concat",
    "concat_ws",
    "format",
    "initcap",
    "left",
    "length",
    "lower",
    "lpad",
    "ltrim",
    "md5",
    "normalize",
    "is_normalized",
    "octet_length",
    "overlay",
    "position",
    "quote_ident",
    "quote_literal",
    "quote_nullable",
    "regexp_count",
    "regexp_instr",
    "regexp_like",
    "regexp_match",
    "regexp_matches",
    "regexp_replace",
    "regexp_split_to_array",
    "regexp_split_to_table",
    "regexp_substr",
    "repeat",
    "replace",
    "reverse",
    "right",
    "rpad",
    "rtrim",
    "split_part",
    "starts_with",
    "string_to_array",
    "string_to_table",
    "strpos",
    "substr",
    "substring",
    "to_ascii",
    "to_hex",
    "translate",
    "unistr",
    "upper",
    "encode",
    "decode",
    "convert",
    "convert_from",
    "convert_to",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "get_bit",
    "get_byte",
    "set_bit",
    "set_byte",
    "bit_count",
    "like_escape",
    "similar_escape",
    "similar_to_escape",
    "textcat",
    "pg_collation_for",
    // Dates and times.
    "age",
    "date_bin",
    "date_part",
    "date_trunc",
    "extract",
    "isfinite",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "make_date",
    "make_interval",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "timezone",
    "overlaps",
    // Sleeping is bounded by the component's timeout.
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    // JSON.
    "to_json",
    "to_jsonb",
    "array_to_json",
    "row_to_json",
    "json_build_array",
    "json_build_object",
    "json_object",
    "jsonb_build_array",
    "jsonb_build_object",
    "jsonb_object",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "json_array_length",
    "jsonb_array_length",
    "json_each",
    "jsonb_each",
    "json_each_text",
    "jsonb_each_text",
    "json_extract_path",
    "jsonb_extract_path",
    "json_extract_path_text",
    "jsonb_extract_path_text",
    "json_object_keys",
    "jsonb_object_keys",
    "json_populate_record",
    "jsonb_populate_record",
    "json_populate_recordset",
    "jsonb_populate_recordset",
    "json_to_record",
    "jsonb_to_record",
    "json_to_recordset",
    "jsonb_to_recordset",
    "json_array_elements",
    "jsonb_array_elements",
    "json_array_elements_text",
    "jsonb_array_elements_text",
    "json_typeof",
    "jsonb_typeof",
    "json_strip_nulls",
    "jsonb_strip_nulls",
    "jsonb_set",
    "jsonb_set_lax",
    "jsonb_insert",
    "jsonb_pretty",
    "jsonb_path_exists",
    "jsonb_path_match",
    "jsonb_path_query",
    "jsonb_path_query_array",
    "jsonb_path_query_first",
    "jsonb_path_exists_tz",
    "jsonb_path_match_tz",
    "jsonb_path_query_tz",
    "jsonb_path_query_array_tz",
    "jsonb_path_query_first_tz",
    // Arrays.
    "array_append",
    "array_cat",
    "array_dims",
    "array_fill",
    "array_length",
    "array_lower",
    "array_ndims",
    "array_position",
    "array_positions",
    "array_prepend",
    "array_remove",
    "array_replace",
    "array_to_string",
    "array_upper",
    "cardinality",
    "trim_array",
    "unnest",
    "generate_subscripts",
    "generate_series",
    // Ranges.
    "int4range",
    "int8range",
    "numrange",
    "tsrange",
    "tstzrange",
    "daterange",
    "isempty",
    "lower_inc",
    "upper_inc",
    "lower_inf",
    "upper_inf",
    "range_merge",
    // Text search (not ts_stat or ts_rewrite, which run SQL given as text).
    "to_tsvector",
    "to_tsquery",
    "plainto_tsquery",
    "phraseto_tsquery",
    "websearch_to_tsquery",
    "ts_rank",
    "ts_rank_cd",
    "ts_headline",
    "setweight",
    "strip",
    "tsvector_to_array",
    "array_to_tsvector",
    "numnode",
    "querytree",
    // Aggregates.
    "array_agg",
    "avg",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bool_and",
    "bool_or",
    "count",
    "every",
    "max",
    "min",
    "sum",
    "string_agg",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "mode",
    "percentile_cont",
    "percentile_disc",
    "range_agg",
    "range_intersect_agg",
    // Window functions.
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // Session facts that change nothing.
    "current_setting",
    "current_database",
    "current_schema",
    "current_schemas",
    "version",
    "format_type",
    // Sequences: only with a constant naming one owned by a table of `writes` (checked in
    // `sequence_argument`; a serial's default calls nextval itself); setval and lastval
    // (the session's last draw, whatever sequence) are refused.
    "nextval",
    "currval",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        for (schema, name, access) in [
            ("public", "people", Access::Write),
            ("public", "orders", Access::Read),
            ("public", "secrets", Access::Read),
            ("pg_catalog", "pg_class", Access::Read),
            ("pg_catalog", "pg_settings", Access::Read),
            ("pg_catalog", "pg_stats", Access::Read),
            ("pg_catalog", "pg_stats_ext_exprs", Access::Read),
            ("pg_catalog", "pg_stat_activity", Access::Read),
            ("pg_catalog", "pg_sequences", Access::Read),
            ("pg_catalog", "pg_attribute", Access::Read),
            ("pg_catalog", "pg_namespace", Access::Read),
            ("pg_catalog", "pg_type", Access::Read),
            ("pg_catalog", "pg_database", Access::Read),
            ("pg_catalog", "pg_locks", Access::Read),
            ("pg_catalog", "pg_timezone_names", Access::Read),
            ("pg_catalog", "pg_stat_wal", Access::Read),
            ("pg_catalog", "pg_stat_bgwriter", Access::Read),
            ("pg_catalog", "pg_stat_user_tables", Access::Read),
            ("pg_catalog", "pg_stat_xact_user_tables", Access::Read),
            ("pg_catalog", "pg_statio_user_tables", Access::Read),
            ("pg_catalog", "pg_roles", Access::Read),
            ("pg_catalog", "pg_auth_members", Access::Read),
            ("pg_catalog", "pg_backend_memory_contexts", Access::Read),
            ("pg_catalog", "pg_shmem_allocations", Access::Read),
            ("information_schema", "columns", Access::Read),
        ] {
            c.relations.insert((schema.into(), name.into()), access);
            if schema != "information_schema" {
                c.visible.insert(name.into(), schema.into());
            }
        }
        c.relations.remove(&("public".into(), "secrets".into()));
        c.visible.insert("secrets".into(), "public".into());
        c.visible.insert("strata_migration".into(), "strata".into());
        c.sequences
            .insert(("public".into(), "people_id_seq".into()));
        c.visible.insert("people_id_seq".into(), "public".into());
        c.visible.insert("orders_id_seq".into(), "public".into());
        for f in [
            "query_to_xml",
            "set_config",
            "pg_read_file",
            "lower",
            "lo_export",
            "setval",
            "upper",
            "oid",
        ] {
            c.catalog_functions.insert(f.into());
        }
        c.date_columns.insert("born".into());
        c.date_columns.insert("value".into());
        c.date_columns.insert("opens".into());
        c.timestamp_columns.insert("born".into());
        c
    }

    #[test]
    fn catalogs_that_show_counters_sessions_or_the_time_are_refused() {
        let not_listed = "a component reads only the catalogs of names and definitions";
        for sql in [
            "SELECT transactionid::text, pid FROM pg_locks WHERE locktype = 'transactionid'",
            "SELECT utc_offset::text, is_dst FROM pg_timezone_names WHERE name = 'Europe/Berlin'",
            "SELECT wal_records FROM pg_stat_wal",
            "SELECT stats_reset::text FROM pg_catalog.pg_stat_bgwriter",
            "SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'secrets'",
            "SELECT n_tup_ins FROM pg_stat_xact_user_tables WHERE relname = 'secrets'",
            "SELECT heap_blks_read FROM pg_statio_user_tables",
            "SELECT oid::text FROM pg_roles WHERE rolname = current_user",
            "SELECT roleid FROM pg_auth_members",
            "SELECT * FROM pg_backend_memory_contexts",
            "TABLE pg_shmem_allocations",
            "SELECT 1 FROM people WHERE EXISTS (SELECT 1 FROM \"pg_catalog\".\"pg_locks\")",
            "WITH l AS (SELECT * FROM pg_locks) SELECT count(*) FROM l",
            // A catalog strata does not know of (a later PostgreSQL's) is refused too.
            "SELECT * FROM pg_catalog.pg_stat_io",
        ] {
            denied(sql, not_listed);
        }
        for (sql, says) in [
            (
                "SELECT reltuples FROM pg_class WHERE relname = 'secrets'",
                "the column `reltuples`",
            ),
            (
                "SELECT c.relpages FROM pg_class c",
                "columns relfrozenxid, relminmxid, reltuples, relpages, relallvisible, \
                 relfilenode show",
            ),
            (
                "SELECT c.relfrozenxid::text FROM pg_catalog.pg_class c",
                "`relfrozenxid`",
            ),
            (
                "SELECT (c).relallvisible FROM pg_class c",
                "`relallvisible`",
            ),
            ("SELECT relminmxid::text FROM pg_class", "`relminmxid`"),
            ("SELECT relfilenode FROM pg_class", "`relfilenode`"),
            (
                "SELECT datfrozenxid::text, datminmxid::text FROM pg_database",
                "`datfrozenxid`",
            ),
            ("SELECT * FROM pg_class", "`*`"),
            ("TABLE pg_class", "`*`"),
            ("SELECT c.* FROM pg_class c", "`*`"),
            ("SELECT row_to_json(c) FROM pg_class c", "the whole row `c`"),
            (
                "SELECT to_jsonb(pg_class) FROM pg_class",
                "the whole row `pg_class`",
            ),
            (
                "SELECT pg_catalog.pg_class::text FROM pg_catalog.pg_class",
                "the whole row `pg_class`",
            ),
            (
                "SELECT x FROM (SELECT c FROM pg_class c) s(x)",
                "the whole row `c`",
            ),
            (
                "WITH s AS (SELECT * FROM pg_catalog.pg_class) SELECT relname FROM s",
                "`*`",
            ),
            (
                "SELECT c10 FROM pg_class AS c(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10)",
                "may not rename the columns",
            ),
            (
                "SELECT j10 FROM (pg_class CROSS JOIN people) AS j(j1, j2, j3, j4, j5, j6, j7, j8, j9, j10)",
                "may not rename the columns",
            ),
        ] {
            denied(sql, says);
            denied(sql, "reads `pg_catalog.pg_");
        }
        // Names and definitions still read as before.
        for sql in [
            "SELECT relname, relkind, relnamespace FROM pg_class WHERE relname = 'people'",
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname = 'people' AND a.attnum > 0",
            "SELECT count(*) FROM pg_class",
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
            "SELECT typname FROM pg_type t WHERE t.oid = 'int4'::regtype",
            "SELECT datname, encoding FROM pg_database WHERE datname = current_database()",
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'people'",
            "SELECT * FROM information_schema.columns",
            "SELECT * FROM pg_attribute",
            "SELECT name, setting FROM pg_settings",
            "SELECT current_user, session_user",
        ] {
            ok(sql);
        }
    }

    #[test]
    fn the_role_oid_and_time_zones_on_todays_date_are_refused() {
        for sql in [
            "SELECT current_user::regrole::oid",
            "SELECT 'x'::pg_catalog.regrole",
            "SELECT ARRAY[current_user]::regrole[]",
        ] {
            denied(sql, "the type `regrole`");
        }
        let dst = "to a zone that is not a fixed offset";
        for sql in [
            "SELECT (time with time zone '12:00+00' AT TIME ZONE 'America/New_York')::text",
            "SELECT timezone('Europe/Berlin', '12:00+00'::timetz)",
            "SELECT pg_catalog.timezone('EST5EDT', time '12:00')",
            "SELECT opens AT TIME ZONE 'America/New_York' FROM people",
            "SELECT born AT TIME ZONE 'MSK' FROM (SELECT opens AS born FROM people) s",
            "SELECT (opens + interval '1 hour') AT TIME ZONE 'Europe/Paris' FROM people",
            "SELECT '12:00+00'::timetz AT TIME ZONE $1",
            "SELECT name::timetz AT TIME ZONE name FROM people",
        ] {
            denied(sql, dst);
        }
        for sql in [
            // A timestamp converts by the zone's rules on its own date.
            "SELECT timestamp '2024-07-01 12:00' AT TIME ZONE 'America/New_York'",
            "SELECT '2024-07-01 12:00+00'::timestamptz AT TIME ZONE 'Europe/Berlin'",
            "SELECT born AT TIME ZONE 'America/New_York', (born + 1) AT TIME ZONE 'Asia/Tokyo' FROM people",
            "SELECT $1 AT TIME ZONE 'America/New_York', '2024-01-01 10:00' AT TIME ZONE 'Europe/Paris'",
            "SELECT make_timestamp(2024, 1, 1, 0, 0, 0) AT TIME ZONE 'America/New_York'",
            "SELECT (timestamp '2024-01-01' AT TIME ZONE 'UTC') AT TIME ZONE 'Europe/Berlin'",
            // A time of day with a fixed offset.
            "SELECT time with time zone '12:00+00' AT TIME ZONE 'UTC'",
            "SELECT '12:00+00'::timetz AT TIME ZONE '+05:30', opens AT TIME ZONE 'Etc/GMT-3' FROM people",
            "SELECT timezone(INTERVAL '-05:00', '12:00+00'::timetz), timezone('utc-3', '12:00'::timetz)",
        ] {
            ok(sql);
        }
        for (zone, fixed) in [
            ("UTC", true),
            ("Etc/UTC", true),
            (" gmt ", true),
            ("Z", true),
            ("+5", true),
            ("-03:30", true),
            ("UTC+10", true),
            ("GMT-0", true),
            ("+05:30:15", true),
            ("America/New_York", false),
            ("EST5EDT", false),
            ("MSK", false),
            ("+123", false),
            ("+05:3", false),
            ("+", false),
            ("utc+05:30:15:00", false),
            ("", false),
        ] {
            assert_eq!(fixed_offset_name(zone), fixed, "{zone:?}");
        }
    }

    #[test]
    fn text_is_never_read_as_a_date_or_time() {
        let no_text = "strata cannot tell is not text";
        for (sql, says) in [
            ("SELECT CAST(lower('NO' || 'W') AS date)", no_text),
            ("SELECT (lower('N') || 'OW')::text::timestamptz", no_text),
            ("SELECT pg_catalog.date(upper('to' || 'day'))", no_text),
            ("SELECT \"timestamp\"(name) FROM people", no_text),
            ("SELECT ARRAY[lower('NO' || 'W')]::date[]", no_text),
            ("SELECT $1::text::date", no_text),
            ("SELECT name::tstzrange FROM people", no_text),
            ("SELECT (SELECT name FROM people LIMIT 1)::time", no_text),
            // A date column's name given to text: by an alias, a function's column, a CTE.
            (
                "SELECT born::date FROM (SELECT name AS born FROM people) s",
                no_text,
            ),
            ("SELECT born::date FROM people AS p(id, born)", no_text),
            (
                "SELECT value::date FROM jsonb_array_elements_text(jsonb_build_array(lower('NO' || 'W')))",
                no_text,
            ),
            (
                "WITH s(born) AS (SELECT name FROM people) SELECT born::date FROM s",
                no_text,
            ),
            // Rows of the catalog's types hold timestamps.
            (
                "SELECT '(0,x,now,0,x,,)'::pg_stat_archiver",
                "the value '(0,x,now",
            ),
            ("SELECT name::pg_stat_archiver FROM people", no_text),
            (
                "SELECT jsonb_populate_record(NULL::pg_stat_archiver, '{}')",
                "may not call `jsonb_populate_record`",
            ),
            (
                "SELECT * FROM jsonb_to_record('{}') AS x(d date)",
                "a column of type `date`",
            ),
            (
                "SELECT * FROM json_to_recordset('[]') AS x(a int, d timestamptz[])",
                "a column of type `timestamptz`",
            ),
        ] {
            denied(sql, says);
        }
        for sql in [
            "SELECT born::timestamp, (born + 1)::timestamptz, born - 7 FROM people",
            "SELECT $1::date, $2::timestamptz[], date '2024-01-01', '2024-01-01'::timestamptz",
            "SELECT make_date(2024, 1, 1)::timestamp, to_date('2024-01-31', 'YYYY-MM-DD')::timestamptz",
            "SELECT date_trunc('day', born)::date, date(born), born::text FROM people",
            "SELECT name::text, id::int8, '{\"a\": 1}'::jsonb, NULL::date FROM people",
            "SELECT * FROM jsonb_to_record('{}') AS x(a int, b text)",
        ] {
            ok(sql);
        }
    }

    fn check_(sql: &str) -> Result<Checked, Refusal> {
        check(sql, &catalog(), Path::new("m/migration.toml"))
    }

    #[track_caller]
    fn ok(sql: &str) -> String {
        match check_(sql) {
            Ok(c) => c.text,
            Err(e) => panic!("{sql}: {e:?}"),
        }
    }

    #[track_caller]
    fn denied(sql: &str, says: &str) {
        match check_(sql) {
            Err(Refusal::Denied(m)) => assert!(m.contains(says), "{sql}: {m}"),
            other => panic!("{sql}: not denied: {other:?}"),
        }
    }

    #[test]
    fn the_clock_and_randomness_are_refused_in_every_spelling() {
        for (sql, says) in [
            ("SELECT now()", "`now`: it reads the clock"),
            ("SELECT pg_catalog.now()", "`now`"),
            ("SELECT clock_timestamp()", "`clock_timestamp`"),
            ("SELECT statement_timestamp()", "`statement_timestamp`"),
            ("SELECT transaction_timestamp()", "`transaction_timestamp`"),
            ("SELECT timeofday()", "`timeofday`"),
            ("SELECT random()", "`random`: it reads randomness"),
            ("SELECT setseed(0.5)", "`setseed`"),
            ("SELECT gen_random_uuid()", "`gen_random_uuid`"),
            ("SELECT current_date", "`CURRENT_DATE`"),
            ("SELECT CURRENT_TIME", "`CURRENT_TIME`"),
            ("SELECT current_time(2)", "`CURRENT_TIME`"),
            ("SELECT current_timestamp", "`CURRENT_TIMESTAMP`"),
            ("SELECT current_timestamp(0)", "`CURRENT_TIMESTAMP`"),
            ("SELECT localtime", "`LOCALTIME`"),
            ("SELECT localtimestamp", "`LOCALTIMESTAMP`"),
            (
                "SELECT age(timestamp '2020-01-01')",
                "`age` with one argument",
            ),
            ("SELECT 'now'::timestamptz", "the value 'now'"),
            ("SELECT timestamp 'NOW'", "the value 'NOW'"),
            ("SELECT CAST(' today ' AS date)", "the value ' today '"),
            ("SELECT 'tomorrow'::text::date", "the value 'tomorrow'"),
            ("SELECT '{yesterday}'::date[]", "the value '{yesterday}'"),
            ("SELECT '[today,)'::daterange", "the value '[today,)'"),
            (
                "UPDATE people SET name = 'x' WHERE now() > '2027-03-01'",
                "`now`",
            ),
            // Untyped literals take the type of the column they meet.
            (
                "INSERT INTO people(id, name) VALUES (1, 'tomorrow 10:00')",
                "untyped literal 'tomorrow 10:00'",
            ),
            (
                "SELECT 1 FROM people WHERE name < 'TODAY utc'",
                "'TODAY utc'",
            ),
            ("SELECT ARRAY['yesterday allballs']", "yesterday"),
            (
                "SELECT count(*) FROM people TABLESAMPLE BERNOULLI (50)",
                "`TABLESAMPLE` without `REPEATABLE (seed)`",
            ),
            ("SELECT xmin FROM people", "the system column `xmin`"),
            ("SELECT p.\"xmax\"::text FROM people p", "`xmax`"),
            ("SELECT 'now'::text", "the value 'now'"),
        ] {
            denied(sql, says);
        }
        // Text that only contains the letters, typed text, and a repeatable sample pass.
        for sql in [
            "INSERT INTO people(id, name) VALUES (1, 'known snowfall')",
            "INSERT INTO people(id, name) VALUES (1, 'see you tomorrow'::text)",
            "SELECT count(*) FROM people TABLESAMPLE BERNOULLI (50) REPEATABLE (7)",
            "SELECT ctid FROM people",
        ] {
            ok(sql);
        }
        for sql in [
            "SELECT ctid FROM pg_class WHERE relname = 'people'",
            "SELECT c.ctid FROM pg_catalog.pg_class c",
            "SELECT p.name FROM people p JOIN pg_database d ON d.ctid::text = p.name",
            "SELECT (SELECT ctid FROM pg_namespace LIMIT 1) FROM people",
        ] {
            denied(
                sql,
                "the system column `ctid` in a statement that reads a system catalog",
            );
        }
    }

    #[test]
    fn catalogs_that_show_row_values_are_refused_in_every_spelling() {
        for sql in [
            "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'secrets'",
            "SELECT histogram_bounds FROM pg_catalog.pg_stats",
            "SELECT * FROM \"pg_catalog\".\"pg_stats\"",
            "TABLE pg_stats",
            "SELECT (SELECT max(query) FROM pg_stat_activity)",
            "WITH s AS (SELECT * FROM pg_stats_ext_exprs) SELECT * FROM s",
            "INSERT INTO people(id, name) SELECT 1, last_value::text FROM pg_sequences",
            "SELECT 1 FROM people WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_statistic)",
        ] {
            denied(sql, "shows values from the rows of tables");
        }
        ok("SELECT relname FROM pg_class");
    }

    #[test]
    fn plain_reads_and_writes_pass_with_their_tables_qualified() {
        assert_eq!(
            ok("SELECT * FROM people WHERE id = $1"),
            "SELECT * FROM \"public\".people WHERE id = $1"
        );
        assert_eq!(
            ok("UPDATE People SET name = upper(name) WHERE id IN (SELECT id FROM orders)"),
            "UPDATE \"public\".People SET name = upper(name) WHERE id IN (SELECT id FROM \"public\".orders)"
        );
        for sql in [
            "INSERT INTO people (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = excluded.name RETURNING id",
            "DELETE FROM people USING orders o WHERE o.id = people.id",
            "WITH x AS (SELECT id FROM orders) SELECT count(*), string_agg(p.name, ',' ORDER BY p.name) FROM people p JOIN x USING (id)",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT i FROM n",
            "SELECT jsonb_build_object('a', 1) -> 'a', '{\"b\": 2}'::jsonb ? 'b', date '2024-01-01'",
            "SELECT row_number() OVER (PARTITION BY name ORDER BY id) FROM people",
            "SELECT coalesce(nullif(name, ''), 'x'), greatest(1, 2), CASE WHEN id > 1 THEN 'a' END FROM people",
            "SELECT x FROM generate_series(1, 10) AS g(x) WHERE x = ANY (ARRAY[1, 2])",
            "SELECT substring(name from 1 for 2), trim(both ' ' from name), extract(year from date '2024-01-01'), position('a' in name) FROM people",
            "MERGE INTO people p USING orders o ON p.id = o.id WHEN MATCHED THEN UPDATE SET name = 'x' WHEN NOT MATCHED THEN INSERT (id, name) VALUES (o.id, 'y')",
            "SELECT * FROM people FOR UPDATE",
            "TABLE orders",
            "VALUES (1, 'a'), (2, 'b')",
            "SELECT relname FROM pg_catalog.pg_class",
            "SELECT column_name FROM information_schema.columns",
            "SELECT name, setting FROM pg_settings",
            "SELECT p.name, (p.name).length FROM people p",
            "SELECT x.* FROM jsonb_to_recordset('[{\"a\": 1}]') AS x(a int, b text)",
            "SELECT 'x'::pg_catalog.text, CAST(1 AS bigint), date '2024-01-01', 1::numeric(8, 2)",
            "SELECT 1 OPERATOR(pg_catalog.+) 2",
            "UPDATE people SET (name, id) = (SELECT 'a', 1) WHERE id = 1",
            "SELECT current_user, session_user, current_schema",
            "SELECT age(date '2024-01-01', date '2020-01-01'), date '2024-01-01' + 1",
            "SELECT 'snow', 'known'::text, timestamp '2024-01-01 10:00'",
        ] {
            ok(sql);
        }
        // A CTE named like a table is the CTE, and is not qualified.
        assert_eq!(
            ok("WITH secrets AS (SELECT 1 AS v) SELECT v FROM secrets"),
            "WITH secrets AS (SELECT 1 AS v) SELECT v FROM secrets"
        );
        assert_eq!(check_("SELECT 1").unwrap().kind, Kind::Query);
        assert_eq!(check_("DELETE FROM people").unwrap().kind, Kind::RowChange);
    }

    #[test]
    fn functions_that_reach_beyond_their_arguments_are_refused() {
        for (sql, name) in [
            (
                "SELECT query_to_xml('select set_config(''role'',''none'',false)', true, false, '')",
                "`query_to_xml`",
            ),
            (
                "SELECT table_to_xml('secrets', true, false, '')",
                "`table_to_xml`",
            ),
            (
                "SELECT cursor_to_xml('c', 1, true, false, '')",
                "`cursor_to_xml`",
            ),
            (
                "SELECT database_to_xml(true, false, '')",
                "`database_to_xml`",
            ),
            (
                "SELECT query_to_xmlschema('select 1', true, false, '')",
                "`query_to_xmlschema`",
            ),
            ("SELECT set_config('role', 'none', false)", "`set_config`"),
            (
                "SELECT pg_catalog.set_config('role', 'none', false)",
                "`set_config`",
            ),
            (
                "SELECT \"set_config\"('role', 'none', false)",
                "`set_config`",
            ),
            (
                "SELECT U&\"set\\005fconfig\"('role', 'none', false)",
                "`set_config`",
            ),
            ("SELECT pg_read_file('/etc/passwd')", "`pg_read_file`"),
            (
                "SELECT pg_read_binary_file('/etc/passwd')",
                "`pg_read_binary_file`",
            ),
            (
                "SELECT lo_export(lo_from_bytea(0, 'x'), '/tmp/x')",
                "`lo_export`",
            ),
            ("SELECT lo_import('/etc/passwd')", "`lo_import`"),
            (
                "SELECT setval('strata.strata_migration_audit_id_seq', 1)",
                "`setval`",
            ),
            ("SELECT lastval()", "`lastval`"),
            ("SELECT pg_ls_dir('.')", "`pg_ls_dir`"),
            ("SELECT pg_advisory_lock(1)", "`pg_advisory_lock`"),
            ("SELECT pg_terminate_backend(1)", "`pg_terminate_backend`"),
            ("SELECT pg_cancel_backend(1)", "`pg_cancel_backend`"),
            ("SELECT pg_reload_conf()", "`pg_reload_conf`"),
            ("SELECT pg_notify('c', 'x')", "`pg_notify`"),
            ("SELECT txid_current()", "`txid_current`"),
            ("SELECT ts_stat('select v from secrets')", "`ts_stat`"),
            ("SELECT dblink('dbname=x', 'select 1')", "`dblink`"),
            ("SELECT public.dblink_exec('x')", "`public.dblink_exec`"),
            ("SELECT public.evil()", "`public.evil`"),
            ("SELECT other.f(1)", "`other.f`"),
            ("SELECT evil_definer()", "`evil_definer`"),
            (
                "INSERT INTO people (id, name) SELECT 99, query_to_xml('select 1', true, false, '')::text",
                "`query_to_xml`",
            ),
            (
                "SELECT * FROM people WHERE name = (SELECT lo_export(1, '/tmp/x')::text)",
                "`lo_export`",
            ),
            (
                "SELECT max(pg_read_file('x')) OVER () FROM people",
                "`pg_read_file`",
            ),
            (
                "SELECT * FROM people ORDER BY pg_read_file('x')",
                "`pg_read_file`",
            ),
            ("SELECT * FROM pg_read_file('x') AS f(x)", "`pg_read_file`"),
            (
                "SELECT count(*) FILTER (WHERE pg_read_file('x') > '') FROM people",
                "`pg_read_file`",
            ),
            (
                "WITH x AS (SELECT pg_read_file('x')) SELECT * FROM x",
                "`pg_read_file`",
            ),
            ("SELECT * FROM people TABLESAMPLE evil(10)", "`evil`"),
        ] {
            denied(sql, name);
        }
    }

    #[test]
    fn sequences_are_drawn_only_from_the_tables_of_writes() {
        assert!(
            ok("SELECT nextval('public.people_id_seq')")
                .contains("nextval('public.people_id_seq')")
        );
        assert!(
            ok("SELECT nextval('people_id_seq')").contains("nextval('\"public\".people_id_seq')")
        );
        assert!(ok("SELECT currval('PUBLIC.\"people_id_seq\"'::regclass)").contains("currval("));
        for sql in [
            "SELECT nextval('public.orders_id_seq')",
            "SELECT nextval('orders_id_seq')",
            "SELECT currval('orders_id_seq'::regclass)",
            "SELECT nextval('\"public\".\"Orders_id_seq\"')",
            "SELECT nextval('db.public.people_id_seq')",
            "SELECT nextval('public.people_id_seq' || '')",
            "SELECT nextval(c.oid) FROM pg_class c",
            "SELECT nextval('public.people_id_seq'::oid)",
            "SELECT nextval(E'public.orders_id_seq')",
            "SELECT pg_catalog.nextval(name) FROM people",
        ] {
            denied(
                sql,
                "only with a constant naming a sequence owned by a table of `writes`",
            );
        }
        denied("SELECT nextval(E'people_id_seq')", "plain '...' literal");
        denied("SELECT lastval()", "`lastval`");
        denied(
            "SELECT last_value FROM public.orders_id_seq",
            "orders_id_seq",
        );
        denied("SELECT last_value FROM orders_id_seq", "orders_id_seq");
        denied("SELECT last_value FROM people_id_seq", "people_id_seq");
        assert_eq!(
            qualified_name(" a . \"B\"\"c\" "),
            Some(vec!["a".into(), "B\"c".into()])
        );
        assert_eq!(qualified_name("a..b"), None);
        assert_eq!(qualified_name("\"\""), None);
        assert_eq!(qualified_name("a b"), None);
    }

    #[test]
    fn field_notation_cannot_call_a_refused_function() {
        denied(
            "SELECT ('/etc/passwd'::text).pg_read_file",
            "`.pg_read_file`",
        );
        denied(
            "SELECT p.name.pg_read_file FROM people p",
            "`.pg_read_file`",
        );
        denied("SELECT people.set_config FROM people", "`.set_config`");
        ok("SELECT p.name, p.id FROM people p");
        ok("SELECT (p.name).lower FROM people p");
    }

    #[test]
    fn relations_outside_the_manifest_and_catalog_writes_are_refused() {
        denied("SELECT * FROM secrets", "may not read `public.secrets`");
        denied(
            "SELECT * FROM people WHERE id IN (SELECT id FROM secrets)",
            "`public.secrets`",
        );
        denied(
            "WITH s AS (SELECT * FROM secrets) SELECT * FROM s",
            "`public.secrets`",
        );
        denied("SELECT * FROM nowhere", "may not read `nowhere`");
        denied(
            "UPDATE orders SET id = 1",
            "may not write (or lock) `public.orders`",
        );
        denied("DELETE FROM orders", "`writes`");
        denied("INSERT INTO orders VALUES (1)", "`writes`");
        denied(
            "MERGE INTO orders o USING people p ON o.id = p.id WHEN MATCHED THEN DELETE",
            "`public.orders`",
        );
        denied(
            "SELECT * FROM orders FOR UPDATE",
            "may not write (or lock) `public.orders`",
        );
        denied(
            "SELECT * FROM (SELECT * FROM orders) o FOR SHARE",
            "`public.orders`",
        );
        denied(
            "UPDATE pg_settings SET setting = 'pg_catalog' WHERE name = 'search_path'",
            "system catalogs are read-only",
        );
        denied(
            "UPDATE pg_catalog.pg_settings SET setting = 'off' WHERE name = 'synchronous_commit'",
            "read-only",
        );
        denied(
            "DELETE FROM strata.strata_migration",
            "strata's bookkeeping",
        );
        denied("SELECT * FROM strata_migration", "strata's bookkeeping");
        denied("SELECT * FROM other.people", "`other.people`");
        denied("SELECT * FROM otherdb.public.people", "another database");
        // A CTE does not hide the target of a row change.
        denied(
            "WITH orders AS (SELECT 1) DELETE FROM orders",
            "`public.orders`",
        );
        // A later CTE is not in scope of an earlier one (PostgreSQL reads the table).
        denied(
            "WITH a AS (SELECT * FROM secrets), secrets AS (SELECT 1) SELECT * FROM a",
            "`public.secrets`",
        );
    }

    #[test]
    fn statements_other_than_row_reads_and_changes_are_refused() {
        for sql in [
            "CREATE TABLE x (a int)",
            "DROP TABLE people",
            "SET ROLE postgres",
            "SET search_path = pg_catalog",
            "RESET ROLE",
            "SET SESSION AUTHORIZATION DEFAULT",
            "DO $$ BEGIN RESET ROLE; END $$",
            "COMMIT",
            "GRANT ALL ON people TO public",
            "EXPLAIN ANALYZE DELETE FROM people",
            "TRUNCATE people",
            "COPY people TO '/tmp/x'",
            "LOCK TABLE people",
            "LISTEN x",
            "NOTIFY x",
            "PREPARE p AS SELECT 1",
            "EXECUTE p",
            "DECLARE c CURSOR FOR SELECT 1",
            "FETCH 1 FROM c",
            "CALL p()",
            "DISCARD ALL",
            "SHOW search_path",
            "ALTER SYSTEM SET x = 1",
        ] {
            denied(sql, "may only read and change rows");
        }
        denied("SELECT * INTO stolen FROM people", "SELECT ... INTO");
        denied("SELECT xmlelement(name a, 'x')", "XmlExpr");
        denied("DELETE FROM people WHERE CURRENT OF c", "CurrentOfExpr");
        denied("SELECT 'x'::public.mood", "`public.mood`");
        denied("SELECT '<a/>'::xml", "type `xml`");
        denied("SELECT CAST('<a/>' AS pg_catalog.xml)", "type `xml`");
        denied("SELECT 1 OPERATOR(public.+) 2", "OPERATOR(public.+)");
        denied(
            "SELECT * FROM people ORDER BY id USING OPERATOR(public.<)",
            "OPERATOR(public.<)",
        );
        assert!(matches!(
            check_("SELECT 1; SELECT 2"),
            Err(Refusal::Syntax(_))
        ));
        assert!(matches!(check_("SELEC 1"), Err(Refusal::Syntax(_))));
        assert!(matches!(check_(""), Err(Refusal::Syntax(_))));
    }

    #[test]
    fn deeply_nested_statements_do_not_overflow_the_stack() {
        // The deepest trees MAX_TOKENS lets through (each level costs 2 or 3 tokens), and far
        // deeper ones, refused before they are parsed.
        for (depth, parses) in [(9_999, true), (100_000, false)] {
            let sum = format!("SELECT {}1", "1 + ".repeat(depth));
            let nested = format!(
                "SELECT {}1{}",
                "abs(".repeat(depth * 2 / 3),
                ")".repeat(depth * 2 / 3)
            );
            let subqueries = format!(
                "SELECT {}1{}",
                "(SELECT ".repeat(depth * 2 / 3),
                ")".repeat(depth * 2 / 3)
            );
            assert_eq!(check_(&sum).is_ok(), parses);
            for sql in [nested, subqueries] {
                // PostgreSQL's own parser may give up first ("memory exhausted").
                let r = check_(&sql);
                assert!(
                    matches!(&r, Ok(_) | Err(Refusal::Syntax(_))) && (parses || r.is_err()),
                    "{:?}",
                    r.map(|_| ())
                );
            }
        }
    }

    #[test]
    fn any_text_is_refused_or_passed_without_a_panic() {
        for sql in [
            "SELECT '用户' FROM people",
            "SELECT 名字 FROM 用户",
            "SELECT \"é\" FROM people",
            "\u{0}",
            "SELECT $$ unterminated",
            "SELECT 1 /* unterminated",
        ] {
            let _ = check_(sql);
        }
        assert_eq!(
            ok("SELECT 'é' AS \"名\" FROM people"),
            "SELECT 'é' AS \"名\" FROM \"public\".people"
        );
    }
}
