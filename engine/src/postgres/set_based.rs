//! Batches of one `UPDATE` sent as one set-based statement: the rows of an `execute-packed` or
//! `execute-many` call become arrays, and the statement runs once over them as a `MERGE` whose
//! source is `unnest` of those arrays, where the row-by-row path runs the `UPDATE` once per row.
//!
//! Only an `UPDATE` whose result cannot depend on the order of the rows is rewritten, so that
//! running it once over all of them changes exactly what running it row after row would:
//!
//! - no `WITH`, `FROM`, `RETURNING`, subquery or `WHERE CURRENT OF`; a `WHERE` of `column =
//!   $n` comparisons joined by `AND`, each an ordinary column of the table (no whole-row
//!   reference, no system column) that the `SET` list does not assign: whether a row matches a
//!   parameter row then cannot change while the batch runs; a `SET` list of parameters and
//!   constants, so no function (`nextval`, `random`) sees the rows in another order;
//! - each row of the table changed by at most one parameter row: `MERGE` fails ("cannot affect
//!   row a second time") where two would meet one row, and the host then runs the call row by
//!   row (the statement undone first, in the call's savepoint);
//! - a plain table ([`ELIGIBLE`]): no inheritance children or partitions, no rules, row-level
//!   security or generated columns, no triggers but foreign keys to other tables and from
//!   other tables to columns the `SET` list leaves alone, and no unique or exclusion index on
//!   an assigned column (whose checks could pass in one order of the rows and fail in another);
//! - parameters of plain, enum, domain or range types (arrays of them are what `unnest` reads).
//!
//! Any error of the set-based statement (a constraint, a value its type refuses, the cardinality
//! above) makes the host undo it and run the call row by row, so what a component is told of
//! a failure is what the row-by-row path tells it. The rewritten statement is checked by
//! [`crate::postgres::guard::check`] like any statement of a component and runs under the
//! call's role: it names the component's table and PostgreSQL's `unnest`, nothing else.

use pg_query::NodeEnum;
use pg_query::protobuf::{self, Node};
use postgres::types::{Kind, Type};
use serde_json::Value;

/// The alias of the parameter rows in the rewritten statement, and the prefix of their columns.
const SOURCE: &str = "strata_batch";

/// Statements longer than this are not rewritten (the walk below recurses per level).
const MAX_TOKENS: usize = 400;

/// An `UPDATE` rewritten to run once over arrays of its parameters.
#[derive(Debug, Clone)]
pub struct Rewritten {
    /// `MERGE INTO t USING unnest($1::type[], ...) ... WHEN MATCHED THEN UPDATE SET ...`.
    pub text: String,
    /// The table, as the statement names it (schema, name).
    pub table: (String, String),
    /// The columns the `SET` list assigns.
    pub assigned: Vec<String>,
}

/// `text` (an `UPDATE` that passed the guard, relations qualified) rewritten over arrays of
/// its parameters, whose types the server inferred as `params`; `None` when it does not qualify.
pub fn rewrite(text: &str, params: &[Type]) -> Option<Rewritten> {
    if params.is_empty()
        || !params.iter().all(|t| {
            matches!(
                t.kind(),
                Kind::Simple | Kind::Enum(_) | Kind::Domain(_) | Kind::Range(_)
            ) && t.name() != "unknown"
        })
    {
        return None;
    }
    if pg_query::scan(text).ok()?.tokens.len() > MAX_TOKENS {
        return None;
    }
    let update = parse_update(text)?;
    let tree = serde_json::to_value(&update).ok()?;
    if update.with_clause.is_some()
        || !update.from_clause.is_empty()
        || !update.returning_list.is_empty()
        || contains_key(&tree, "SubLink")
        || contains_key(&tree, "CurrentOfExpr")
    {
        return None;
    }
    let relation = update.relation.as_ref()?;
    if relation.schemaname.is_empty()
        || relation.relname == SOURCE
        || relation
            .alias
            .as_ref()
            .is_some_and(|a| a.aliasname == SOURCE)
    {
        return None;
    }
    let mut assigned = Vec::new();
    for target in &update.target_list {
        let Some(NodeEnum::ResTarget(t)) = &target.node else {
            return None;
        };
        if !t.indirection.is_empty() || t.name.is_empty() {
            return None;
        }
        assigned.push(t.name.clone());
    }
    // The shapes whose result the order of the rows cannot change, and nothing else: a WHERE
    // of `column = $n` joined by AND (plain columns of the table: no whole-row reference such as
    // `(t).name` or `to_jsonb(t)`, no system column such as `ctid`, which the batch's own new
    // row versions would answer), and a SET list of parameters and constants (no function,
    // such as `nextval`, that would see the rows in another order).
    if !key_match(update.where_clause.as_deref()?)
        || !update.target_list.iter().all(|t| {
            matches!(&t.node, Some(NodeEnum::ResTarget(t)) if t.val.as_deref().is_some_and(plain_value))
        })
    {
        return None;
    }
    // Every column the WHERE reads, by its last name part; none may be assigned.
    let condition = serde_json::to_value(update.where_clause.as_deref()?).ok()?;
    let mut read = Vec::new();
    if !column_names(&condition, &mut read) || read.iter().any(|c| assigned.contains(c)) {
        return None;
    }
    // Each `$n` becomes the column n of the parameter rows; the text is parsed again so that
    // the tree carries them, and the statement is rebuilt around it.
    let mut places = Vec::new();
    param_places(&tree, &mut places);
    places.sort_unstable_by_key(|p| std::cmp::Reverse(p.0));
    let mut replaced = text.to_string();
    for (at, number) in places {
        let token = format!("${number}");
        if number == 0 || number > params.len() || replaced.get(at..at + token.len())? != token {
            return None;
        }
        replaced.replace_range(
            at..at + token.len(),
            &format!("{SOURCE}.{SOURCE}_p{number}"),
        );
    }
    let update = parse_update(&replaced)?;
    let source = source(params)?;
    let when = Node {
        node: Some(NodeEnum::MergeWhenClause(Box::new(
            protobuf::MergeWhenClause {
                match_kind: protobuf::MergeMatchKind::MergeWhenMatched as i32,
                command_type: protobuf::CmdType::CmdUpdate as i32,
                r#override: protobuf::OverridingKind::OverridingNotSet as i32,
                condition: None,
                target_list: update.target_list,
                values: Vec::new(),
            },
        ))),
    };
    let merge = protobuf::MergeStmt {
        relation: update.relation,
        source_relation: Some(Box::new(source)),
        join_condition: update.where_clause,
        merge_when_clauses: vec![when],
        returning_list: Vec::new(),
        with_clause: None,
    };
    let result = protobuf::ParseResult {
        version: pg_query::parse("SELECT").ok()?.protobuf.version,
        stmts: vec![protobuf::RawStmt {
            stmt: Some(Box::new(Node {
                node: Some(NodeEnum::MergeStmt(Box::new(merge))),
            })),
            stmt_location: 0,
            stmt_len: 0,
        }],
    };
    let text = pg_query::deparse(&result).ok()?;
    Some(Rewritten {
        text,
        table: (relation.schemaname.clone(), relation.relname.clone()),
        assigned,
    })
}

/// Whether `n` is `column = $n` comparisons joined by AND (either side of each `=`).
fn key_match(n: &Node) -> bool {
    match n.node.as_ref() {
        Some(NodeEnum::BoolExpr(b)) => {
            b.boolop == protobuf::BoolExprType::AndExpr as i32 && b.args.iter().all(key_match)
        }
        Some(NodeEnum::AExpr(e)) => {
            let equals = e.kind == protobuf::AExprKind::AexprOp as i32
                && matches!(e.name.as_slice(), [op] if matches!(&op.node, Some(NodeEnum::String(s)) if s.sval == "="));
            let (Some(l), Some(r)) = (e.lexpr.as_deref(), e.rexpr.as_deref()) else {
                return false;
            };
            equals && ((plain_column(l) && param(r)) || (param(l) && plain_column(r)))
        }
        _ => false,
    }
}

/// The columns no plain `column = $n` may read: PostgreSQL's system columns (`oid` too, for
/// tables of older versions).
const SYSTEM_COLUMNS: [&str; 7] = ["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid"];

/// Whether `n` names one ordinary column (`c`, `t.c` or `s.t.c`).
fn plain_column(n: &Node) -> bool {
    let Some(NodeEnum::ColumnRef(c)) = n.node.as_ref() else {
        return false;
    };
    let names: Option<Vec<&str>> = c
        .fields
        .iter()
        .map(|f| match &f.node {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect();
    matches!(names.as_deref(), Some([.., last]) if !SYSTEM_COLUMNS.contains(last)
        && c.fields.len() <= 3)
}

/// Whether `n` is a parameter, perhaps cast.
fn param(n: &Node) -> bool {
    match n.node.as_ref() {
        Some(NodeEnum::ParamRef(_)) => true,
        Some(NodeEnum::TypeCast(c)) => c.arg.as_deref().is_some_and(param),
        _ => false,
    }
}

/// Whether `n` is a parameter or a constant, perhaps cast.
fn plain_value(n: &Node) -> bool {
    match n.node.as_ref() {
        Some(NodeEnum::ParamRef(_) | NodeEnum::AConst(_)) => true,
        Some(NodeEnum::TypeCast(c)) => c.arg.as_deref().is_some_and(plain_value),
        _ => false,
    }
}

/// The one `UPDATE` of `text`.
fn parse_update(text: &str) -> Option<protobuf::UpdateStmt> {
    let parsed = pg_query::parse(text).ok()?;
    let [stmt] = parsed.protobuf.stmts.as_slice() else {
        return None;
    };
    match stmt.stmt.as_ref()?.node.as_ref()? {
        NodeEnum::UpdateStmt(u) => Some((**u).clone()),
        _ => None,
    }
}

/// `ROWS FROM (unnest($1::type1[]), ...) AS strata_batch(strata_batch_p1, ...)`, as a FROM
/// item (the arrays side by side, the shorter ones padded with NULLs; they are all as long).
fn source(params: &[Type]) -> Option<Node> {
    let arrays: Vec<String> = params
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            format!(
                "pg_catalog.unnest(${}::{}.{}[])",
                i + 1,
                crate::core::data::quote_ident(ty.schema()),
                crate::core::data::quote_ident(ty.name())
            )
        })
        .collect();
    let columns: Vec<String> = (1..=params.len())
        .map(|i| format!("{SOURCE}_p{i}"))
        .collect();
    let select = format!(
        "SELECT FROM ROWS FROM ({}) AS {SOURCE}({})",
        arrays.join(", "),
        columns.join(", ")
    );
    let parsed = pg_query::parse(&select).ok()?;
    let stmt = parsed.protobuf.stmts.first()?.stmt.as_ref()?;
    match stmt.node.as_ref()? {
        NodeEnum::SelectStmt(s) => s.from_clause.first().cloned(),
        _ => None,
    }
}

/// Whether a node of kind `key` is anywhere in `v`.
fn contains_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(o) => o.iter().any(|(k, v)| k == key || contains_key(v, key)),
        Value::Array(a) => a.iter().any(|v| contains_key(v, key)),
        _ => false,
    }
}

/// Collects the column each `ColumnRef` in `v` names (its last part); false when one is
/// `*` or not a plain name.
fn column_names(v: &Value, out: &mut Vec<String>) -> bool {
    match v {
        Value::Object(o) => o.iter().all(|(k, v)| {
            if k == "ColumnRef" {
                let last = v
                    .get("fields")
                    .and_then(Value::as_array)
                    .and_then(|f| f.last())
                    .and_then(|f| f.pointer("/node/String/sval"))
                    .and_then(Value::as_str);
                match last {
                    Some(name) => {
                        out.push(name.to_string());
                        true
                    }
                    None => false,
                }
            } else {
                column_names(v, out)
            }
        }),
        Value::Array(a) => a.iter().all(|v| column_names(v, out)),
        _ => true,
    }
}

/// Where each `$n` of the statement is (byte offset, n).
fn param_places(v: &Value, out: &mut Vec<(usize, usize)>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                if k == "ParamRef" {
                    let at = v.get("location").and_then(Value::as_u64);
                    let n = v.get("number").and_then(Value::as_u64);
                    if let (Some(at), Some(n)) = (at, n) {
                        out.push((at as usize, n as usize));
                    }
                } else {
                    param_places(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| param_places(v, out)),
        _ => {}
    }
}

/// Whether the table may take the set-based statement (see the module's notes): `$1` schema,
/// `$2` name, `$3` the assigned columns. One row, one boolean; no row when there is no such
/// table.
pub const ELIGIBLE: &str = "\
SELECT c.relkind = 'r' AND NOT c.relhassubclass AND NOT c.relhasrules AND NOT c.relrowsecurity
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                      AND a.attgenerated <> '')
   AND NOT EXISTS (
         SELECT 1 FROM pg_catalog.pg_trigger t
          WHERE t.tgrelid = c.oid
            AND NOT (t.tgisinternal AND EXISTS (
                  SELECT 1 FROM pg_catalog.pg_constraint k
                   WHERE k.oid = t.tgconstraint AND k.contype = 'f'
                     AND k.conrelid <> k.confrelid
                     AND (k.conrelid = c.oid
                          OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                                          WHERE a.attrelid = c.oid
                                            AND a.attnum = ANY (k.confkey)
                                            AND a.attname = ANY ($3::pg_catalog.text[]))))))
   AND NOT EXISTS (
         SELECT 1 FROM pg_catalog.pg_index i
          WHERE i.indrelid = c.oid AND (i.indisunique OR i.indisexclusion)
            AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL
                 OR EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                             WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
                               AND a.attname = ANY ($3::pg_catalog.text[]))))
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND c.relname = $2";

/// The rows of one call as arrays in PostgreSQL's text form, one per parameter.
pub struct Arrays {
    pub columns: Vec<String>,
    pub rows: usize,
}

impl Arrays {
    pub fn new(width: usize) -> Arrays {
        Arrays {
            columns: vec![String::from("{"); width],
            rows: 0,
        }
    }

    pub fn bytes(&self) -> usize {
        self.columns.iter().map(String::len).sum()
    }

    /// Adds one element, `None` for NULL, to column `i`.
    pub fn push(&mut self, i: usize, element: Option<&str>) {
        let a = &mut self.columns[i];
        if a.len() > 1 {
            a.push(',');
        }
        match element {
            None => a.push_str("NULL"),
            Some(e) => {
                a.push('"');
                for c in e.chars() {
                    if c == '"' || c == '\\' {
                        a.push('\\');
                    }
                    a.push(c);
                }
                a.push('"');
            }
        }
    }

    /// The arrays' literals, closed; empties them for the next rows.
    pub fn take(&mut self) -> Vec<String> {
        self.rows = 0;
        self.columns
            .iter_mut()
            .map(|a| {
                let mut done = std::mem::replace(a, String::from("{"));
                done.push('}');
                done
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(n: usize) -> Vec<Type> {
        vec![Type::TEXT; n]
    }

    #[test]
    fn a_keyed_update_becomes_a_merge_over_unnest() {
        let r = rewrite(
            "UPDATE \"public\".people SET first_name = $1, last_name = $2 WHERE id = $3",
            &[Type::TEXT, Type::TEXT, Type::INT8],
        )
        .expect("rewritten");
        assert_eq!(r.table, ("public".into(), "people".into()));
        assert_eq!(r.assigned, ["first_name", "last_name"]);
        assert!(
            r.text.starts_with("MERGE INTO public.people USING"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains(
                "USING ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]) , \
                 pg_catalog.unnest($2::pg_catalog.text[]) , pg_catalog.unnest($3::bigint[]) ) \
                 strata_batch(strata_batch_p1, strata_batch_p2, strata_batch_p3)"
            ),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("ON id = strata_batch.strata_batch_p3"),
            "{}",
            r.text
        );
        assert!(
            r.text
                .contains("WHEN MATCHED THEN UPDATE SET first_name = strata_batch.strata_batch_p1"),
            "{}",
            r.text
        );
    }

    #[test]
    fn order_dependent_updates_stay_row_by_row() {
        for text in [
            // The WHERE reads a column the SET assigns: a row can match after an earlier one.
            "UPDATE s.t SET status = $1 WHERE status = $2",
            // Subqueries, FROM, RETURNING, WITH.
            "UPDATE s.t SET a = (SELECT max(b) FROM s.t) WHERE id = $1",
            "UPDATE s.t SET a = $1 FROM s.u WHERE t.id = u.id AND u.k = $2",
            "UPDATE s.t SET a = $1 WHERE id = $2 RETURNING a",
            "WITH x AS (SELECT 1) UPDATE s.t SET a = $1 WHERE id = $2",
            // Every row, a star, an array element, no parameters.
            "UPDATE s.t SET a[1] = $1 WHERE id = $2",
            "UPDATE s.t SET a = 1 WHERE id = 2",
            // Found from outside: the WHERE reads assigned columns through the whole row, or
            // reads a system column the batch's new row versions answer; the SET calls a
            // function that sees the rows in the table's order.
            "UPDATE s.t a SET name = $1 WHERE (a).name = $2",
            "UPDATE s.t b SET name = $1 WHERE to_jsonb(b)->>'name' = $2",
            "UPDATE s.t SET name = $1 WHERE ctid = $2::tid",
            "UPDATE s.t SET name = $1 WHERE t.xmin = $2",
            "UPDATE s.t SET id = nextval('s.seq'), name = $1 WHERE k = $2",
            "UPDATE s.t SET name = $1 || random()::text WHERE k = $2",
            // Anything but `column = $n` joined by AND.
            "UPDATE s.t SET name = $1 WHERE id = $2 OR k = $3",
            "UPDATE s.t SET name = $1 WHERE id > $2",
            "UPDATE s.t SET name = $1 WHERE id = $2 + 1",
            "UPDATE s.t SET name = $1 WHERE lower(k) = $2",
            "UPDATE s.t SET name = $1 WHERE NOT id = $2",
            // Other statements.
            "INSERT INTO s.t (a) VALUES ($1)",
            "DELETE FROM s.t WHERE id = $1",
            "SELECT $1",
        ] {
            let n = text.matches('$').count();
            assert!(rewrite(text, &types(n)).is_none(), "{text}");
        }
        // Array parameters would be flattened by unnest.
        assert!(
            rewrite(
                "UPDATE s.t SET a = $1 WHERE id = $2",
                &[Type::INT4_ARRAY, Type::INT8]
            )
            .is_none()
        );
        // Unqualified (the guard qualifies every relation first).
        assert!(rewrite("UPDATE t SET a = $1 WHERE id = $2", &types(2)).is_none());
    }

    #[test]
    fn keyed_shapes_are_rewritten() {
        for text in [
            "UPDATE s.t SET a = $1, b = $2::text, c = 'x', d = NULL WHERE id = $3",
            "UPDATE s.t SET a = $1 WHERE $2 = id AND t.k = $3::int",
            "UPDATE s.t SET a = $1 WHERE s.t.id = $2",
        ] {
            let n = text.matches('$').count();
            assert!(rewrite(text, &types(n)).is_some(), "{text}");
        }
    }

    #[test]
    fn array_literals_quote_every_element() {
        let mut a = Arrays::new(2);
        a.push(0, Some("a\"b\\c,{}"));
        a.push(1, None);
        a.push(0, Some(""));
        a.push(1, Some("NULL"));
        assert_eq!(a.take(), ["{\"a\\\"b\\\\c,{}\",\"\"}", "{NULL,\"NULL\"}"]);
        assert_eq!(a.take(), ["{}", "{}"]);
    }
}
