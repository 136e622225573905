//! `data.json`: rows to insert, table by table, in the order the file gives them.
//!
//! `{"table": [{"column": value, ...}, ...], ...}`; values are null, integers, reals, text,
//! booleans (stored as 0/1) or `{"base64": "..."}` for blobs. This module parses and validates
//! a file completely before anything is inserted, and inserts through prepared statements.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rusqlite::Connection;
use rusqlite::types::Value;

use crate::error::Error;

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

/// Where an insert failed: the table and the 0-based row index in the file.
#[derive(Debug)]
pub struct InsertError {
    pub table: String,
    pub row: usize,
    pub source: rusqlite::Error,
}

impl DataSet {
    /// Reads and validates `path`; every problem names the file, the table and the row.
    pub fn load(path: &Path) -> Result<DataSet, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        DataSet::parse(path, &text)
    }

    /// Parses and validates the text of the data.json at `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<DataSet, Error> {
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::input(path, format!("not valid JSON: {e}")))?;
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
                        format!("table `{table}`, row {i}: must be an object of column values"),
                    ));
                };
                if cols.is_empty() {
                    return Err(Error::input(
                        path,
                        format!("table `{table}`, row {i}: has no columns"),
                    ));
                }
                let mut values = Vec::with_capacity(cols.len());
                for (col, v) in cols {
                    let value = to_sql_value(v).map_err(|why| {
                        Error::input(
                            path,
                            format!("table `{table}`, row {i}, column `{col}`: {why}"),
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

    /// Inserts every row, in file order; returns the number of rows inserted.
    pub fn insert(&self, conn: &Connection) -> Result<u64, InsertError> {
        let mut count = 0;
        for (table, rows) in &self.tables {
            for (i, row) in rows.iter().enumerate() {
                let err = |source| InsertError {
                    table: table.clone(),
                    row: i,
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

fn insert_sql(table: &str, row: &Row) -> String {
    let cols: Vec<String> = row.iter().map(|(c, _)| quote_ident(c)).collect();
    let marks = vec!["?"; row.len()].join(", ");
    format!(
        "INSERT INTO {} ({}) VALUES ({marks})",
        quote_ident(table),
        cols.join(", ")
    )
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
    fn blobs_come_as_base64_objects() {
        let d = load(r#"{"t": [{"b": {"base64": "AAEC"}}]}"#).unwrap();
        assert_eq!(d.tables[0].1[0][0].1, Value::Blob(vec![0, 1, 2]));
    }

    #[test]
    fn bad_values_name_table_row_and_column() {
        for (text, expect) in [
            (
                r#"{"t": [{"a": 1}, {"b": [1]}]}"#,
                "table `t`, row 1, column `b`",
            ),
            (r#"{"t": [{"b": {"x": 1}}]}"#, "base64"),
            (r#"{"t": [{"b": 18446744073709551615}]}"#, "64-bit"),
            (r#"{"t": {"a": 1}}"#, "must be an array"),
            (r#"[1]"#, "JSON object"),
            (r#"{"t": [1]}"#, "row 0"),
            (r#"{"t": "#, "not valid JSON"),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(expect), "{text}: {err}");
            assert!(err.contains("data.json"), "{err}");
        }
    }

    #[test]
    fn insert_reports_the_failing_row() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE \"odd name\"(id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
        let d = load(r#"{"odd name": [{"id": 1, "v": "a"}, {"id": 2, "v": null}]}"#).unwrap();
        let err = d.insert(&conn).unwrap_err();
        assert_eq!((err.table.as_str(), err.row), ("odd name", 1));
        let ok = load(r#"{"odd name": [{"id": 3, "v": "c"}, {"v": "d", "id": 4}]}"#).unwrap();
        assert_eq!(ok.insert(&conn).unwrap(), 2);
    }
}
