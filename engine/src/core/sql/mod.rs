//! SQL text in each dialect, with no database: SQLite's tokenizer and statement splitter
//! (`sqlite`) and PostgreSQL's (`postgres`), quoting, and the lines statements start on. The
//! input checks, the authorizers and lint read SQL through them.

pub mod postgres;
pub mod sqlite;

/// A statement on one line, whitespace collapsed, without its `;`, at most 160 characters (as
/// messages show statements, on either backend).
pub fn one_line(sql: &str) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let flat = flat.trim_end_matches(';').trim_end().to_string();
    if flat.chars().count() > 160 {
        let cut: String = flat.chars().take(157).collect();
        format!("{cut}...")
    } else {
        flat
    }
}
