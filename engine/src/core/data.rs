//! `data.json`: rows to insert, table by table, in the order the file gives them.
//!
//! `{"table": [{"column": value, ...}, ...], ...}`; values are null, integers, reals, text,
//! booleans (stored as 0/1) or `{"base64": "..."}` for blobs. This module parses and validates
//! a file completely before anything is inserted, and inserts through prepared statements.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rusqlite::Connection;
use rusqlite::types::Value;

use crate::core::error::Error;

/// One row: column names and values, in file order.
pub type Row = Vec<(String, Value)>;

/// The key of data.json that holds the parameters of the seed component beside it.
pub const SEED_KEY: &str = "$seed";

/// A parsed data.json file.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSet {
    pub path: PathBuf,
    pub tables: Vec<(String, Vec<Row>)>,
    /// The JSON text of the `"$seed"` entry: parameters for the seed.wasm beside the file.
    pub seed_params: Option<String>,
}

/// Where an insert failed: the table and the row's number in the file's list for that table,
/// counted from 1 as people count.
#[derive(Debug)]
pub struct InsertError {
    pub table: String,
    pub row: usize,
    pub source: rusqlite::Error,
}

impl DataSet {
    /// Reads and validates `path`; every problem names the file, the table and the row.
    pub fn load(path: &Path) -> Result<DataSet, Error> {
        let bytes = crate::core::input::read_project_file(path, crate::core::input::FILE_BYTES)?
            .ok_or_else(|| Error::input(path, "is gone: it was there when the tree was read"))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::input(
                path,
                format!(
                    "is not UTF-8 text (the first bad byte is at offset {}); save it as UTF-8",
                    e.utf8_error().valid_up_to()
                ),
            )
        })?;
        DataSet::parse(path, &text)
    }

    /// Parses and validates the text of the data.json at `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<DataSet, Error> {
        // A byte order mark is how some editors say "UTF-8"; it is not part of the JSON.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let Strict(json) = serde_json::from_str(text)
            .map_err(|e| Error::input(path, format!("not valid JSON: {e}")))?;
        check_integers(text).map_err(|why| Error::input(path, why))?;
        let serde_json::Value::Object(tables) = json else {
            return Err(Error::input(
                path,
                "must be a JSON object mapping table names to arrays of rows, \
                 like {\"users\": [{\"id\": 1, \"email\": \"a@example.com\"}]}",
            ));
        };
        let mut out = Vec::with_capacity(tables.len());
        let mut seed_params = None;
        for (table, rows) in tables {
            if table == SEED_KEY {
                seed_params = Some(rows.to_string());
                continue;
            }
            if table.starts_with('$') {
                return Err(Error::input(
                    path,
                    format!(
                        "`{table}` is not a key strata knows: table names do not start with `$`, and the only special key is \"{SEED_KEY}\" (the seed's parameters)"
                    ),
                ));
            }
            let serde_json::Value::Array(rows) = rows else {
                return Err(Error::input(
                    path,
                    format!("table `{table}`: must be an array of row objects"),
                ));
            };
            let mut parsed = Vec::with_capacity(rows.len());
            for (i, row) in rows.into_iter().enumerate() {
                let serde_json::Value::Object(cols) = row else {
                    return Err(Error::input(
                        path,
                        format!(
                            "table `{table}`, row {}: must be an object of column values",
                            i + 1
                        ),
                    ));
                };
                if cols.is_empty() {
                    return Err(Error::input(
                        path,
                        format!("table `{table}`, row {}: has no columns", i + 1),
                    ));
                }
                let mut values = Vec::with_capacity(cols.len());
                for (col, v) in cols {
                    let value = to_sql_value(v).map_err(|why| {
                        Error::input(
                            path,
                            format!("table `{table}`, row {}, column `{col}`: {why}", i + 1),
                        )
                    })?;
                    values.push((col, value));
                }
                parsed.push(values);
            }
            out.push((table, parsed));
        }
        Ok(DataSet {
            path: path.to_path_buf(),
            tables: out,
            seed_params,
        })
    }

    /// How many rows the file holds.
    pub fn row_count(&self) -> usize {
        self.tables.iter().map(|(_, rows)| rows.len()).sum()
    }

    /// The rows as the INSERT statements they amount to, values written as SQL literals.
    pub fn to_sql(&self) -> String {
        let mut out = String::new();
        for (table, rows) in &self.tables {
            for row in rows {
                let cols: Vec<String> = row.iter().map(|(c, _)| quote_ident(c)).collect();
                let values: Vec<String> = row.iter().map(|(_, v)| literal(v)).collect();
                out.push_str(&format!(
                    "INSERT INTO {} ({}) VALUES ({});\n",
                    quote_ident(table),
                    cols.join(", "),
                    values.join(", ")
                ));
            }
        }
        out
    }

    /// Inserts every row, in file order; returns the number of rows inserted.
    pub fn insert(&self, conn: &Connection) -> Result<u64, InsertError> {
        let mut count = 0;
        for (table, rows) in &self.tables {
            for (i, row) in rows.iter().enumerate() {
                let err = |source| InsertError {
                    table: table.clone(),
                    row: i + 1,
                    source,
                };
                let mut stmt = conn.prepare_cached(&insert_sql(table, row)).map_err(err)?;
                stmt.execute(rusqlite::params_from_iter(row.iter().map(|(_, v)| v)))
                    .map_err(err)?;
                count += 1;
            }
        }
        Ok(count)
    }
}

/// A JSON value parsed like `serde_json::Value`, except that an object with a key twice is an
/// error: in data.json the last one would silently win, dropping a table's rows or a value.
struct Strict(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(out.into())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key `{key}` appears twice in one object (the second would silently \
                     replace the first); merge the two"
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(out.into())
    }
}

/// Refuses integer literals beyond SQLite's 64-bit signed range, which JSON parsers would turn
/// into inexact reals: found by reading the text, where the literal is still exact.
fn check_integers(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_string = true;
        } else if c == b'-' || c.is_ascii_digit() {
            let start = i;
            while i < b.len() && matches!(b[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                i += 1;
            }
            let literal = &text[start..i];
            let integral = literal.bytes().any(|c| c.is_ascii_digit())
                && !literal.contains(['.', 'e', 'E', '+'])
                && literal
                    .trim_start_matches('-')
                    .bytes()
                    .all(|c| c.is_ascii_digit());
            if integral && literal.parse::<i64>().is_err() {
                let line = text[..start].matches('\n').count() + 1;
                return Err(format!(
                    "line {line}: the integer {literal} does not fit SQLite's 64-bit signed \
                     integer ({} to {}); write it as a string to store it as text",
                    i64::MIN,
                    i64::MAX
                ));
            }
            continue;
        }
        i += 1;
    }
    Ok(())
}

fn insert_sql(table: &str, row: &Row) -> String {
    let cols: Vec<String> = row.iter().map(|(c, _)| quote_ident(c)).collect();
    let marks = vec!["?"; row.len()].join(", ");
    format!(
        "INSERT INTO {} ({}) VALUES ({marks})",
        quote_ident(table),
        cols.join(", ")
    )
}

/// A value as a SQLite literal.
fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => format!("{r:?}"),
        Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        Value::Blob(b) => format!(
            "X'{}'",
            b.iter().map(|x| format!("{x:02X}")).collect::<String>()
        ),
    }
}

/// Quotes an identifier for SQLite: `"name"`, with inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn to_sql_value(v: serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Integer(b.into()),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Integer(i)
            } else if n.is_u64() {
                return Err(format!("{n} does not fit SQLite's 64-bit signed integer"));
            } else {
                Value::Real(
                    n.as_f64()
                        .ok_or_else(|| format!("{n} is not a number SQLite can store"))?,
                )
            }
        }
        J::String(s) => Value::Text(s),
        J::Object(map) => match map.get("base64") {
            Some(J::String(b64)) if map.len() == 1 => Value::Blob(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| format!("invalid base64: {e}"))?,
            ),
            _ => return Err("an object value must be {\"base64\": \"...\"} (a blob)".into()),
        },
        J::Array(_) => {
            return Err("arrays are not SQLite values; store JSON as a string instead".into());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<DataSet, Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.json");
        std::fs::write(&path, text).unwrap();
        DataSet::load(&path)
    }

    #[test]
    fn tables_and_columns_keep_file_order() {
        let d = load(r#"{"z": [{"b": 1, "a": "x"}], "a": [{"n": null, "f": 1.5, "t": true}]}"#)
            .unwrap();
        assert_eq!(d.tables[0].0, "z");
        assert_eq!(d.tables[1].0, "a");
        assert_eq!(
            d.tables[0].1[0],
            vec![
                ("b".into(), Value::Integer(1)),
                ("a".into(), Value::Text("x".into()))
            ]
        );
        assert_eq!(
            d.tables[1].1[0],
            vec![
                ("n".into(), Value::Null),
                ("f".into(), Value::Real(1.5)),
                ("t".into(), Value::Integer(1))
            ]
        );
    }

    #[test]
    fn the_seed_key_holds_parameters_not_rows() {
        let d = load(r#"{"$seed": {"count": 3}, "t": [{"a": 1}]}"#).unwrap();
        assert_eq!(d.seed_params.as_deref(), Some(r#"{"count":3}"#));
        assert_eq!(d.tables.len(), 1);
        let err = load(r#"{"$sed": {}}"#).unwrap_err().to_string();
        assert!(err.contains("$sed"), "{err}");
    }

    #[test]
    fn rows_become_insert_statements_with_literals() {
        let d =
            load(r#"{"t": [{"a": 1, "b": "it's", "c": null, "d": 1.5, "e": {"base64": "AAH/"}}]}"#)
                .unwrap();
        assert_eq!(
            d.to_sql(),
            "INSERT INTO \"t\" (\"a\", \"b\", \"c\", \"d\", \"e\") VALUES (1, 'it''s', NULL, 1.5, X'0001FF');\n"
        );
        assert_eq!(d.row_count(), 1);
    }

    #[test]
    fn blobs_come_as_base64_objects() {
        let d = load(r#"{"t": [{"b": {"base64": "AAEC"}}]}"#).unwrap();
        assert_eq!(d.tables[0].1[0][0].1, Value::Blob(vec![0, 1, 2]));
    }

    #[test]
    fn bad_values_name_table_row_and_column() {
        for (text, expect) in [
            (
                r#"{"t": [{"a": 1}, {"b": [1]}]}"#,
                "table `t`, row 2, column `b`",
            ),
            (r#"{"t": [{"b": {"x": 1}}]}"#, "base64"),
            (r#"{"t": [{"b": 18446744073709551615}]}"#, "64-bit"),
            (r#"{"t": {"a": 1}}"#, "must be an array"),
            (r#"[1]"#, "JSON object"),
            (r#"{"t": [1]}"#, "row 1"),
            (r#"{"t": "#, "not valid JSON"),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(expect), "{text}: {err}");
            assert!(err.contains("data.json"), "{err}");
        }
    }

    #[test]
    fn duplicate_keys_big_integers_bad_bytes_are_refused_and_a_bom_is_not() {
        for (text, expect) in [
            (r#"{"t": [{"a": 1}], "t": [{"a": 2}]}"#, "`t` appears twice"),
            (r#"{"t": [{"a": 1, "a": 2}]}"#, "`a` appears twice"),
            (
                r#"{"t": [{"a": 9223372036854775808}]}"#,
                "9223372036854775808 does not fit",
            ),
            (
                "{\"t\": [\n{\"a\": -99999999999999999999999}]}",
                "line 2: the integer -99999999999999999999999",
            ),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(expect), "{text}: {err}");
            assert!(err.contains("data.json"), "{err}");
        }
        // Text that only looks like a big integer, and the extremes, are fine.
        let d = load(r#"{"t": [{"a": "99999999999999999999", "b": -9223372036854775808, "c": 1e30, "d": "\\\"1"}]}"#)
            .unwrap();
        assert_eq!(d.tables[0].1[0][1].1, Value::Integer(i64::MIN));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.json");
        std::fs::write(&path, b"{\"t\": [{\"a\": \"\xff\"}]}").unwrap();
        let err = DataSet::load(&path).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        assert_eq!(err.exit_code(), crate::core::exit::BAD_INPUT);
        std::fs::write(&path, "\u{feff}{\"t\": [{\"a\": 1}]}").unwrap();
        assert_eq!(DataSet::load(&path).unwrap().tables[0].0, "t");
    }

    #[test]
    fn insert_reports_the_failing_row() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE \"odd name\"(id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
        let d = load(r#"{"odd name": [{"id": 1, "v": "a"}, {"id": 2, "v": null}]}"#).unwrap();
        let err = d.insert(&conn).unwrap_err();
        assert_eq!((err.table.as_str(), err.row), ("odd name", 2));
        let ok = load(r#"{"odd name": [{"id": 3, "v": "c"}, {"v": "d", "id": 4}]}"#).unwrap();
        assert_eq!(ok.insert(&conn).unwrap(), 2);
    }
}
