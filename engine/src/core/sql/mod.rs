//! SQL text in each dialect, with no database: SQLite's tokenizer and statement splitter
//! (`sqlite`) and PostgreSQL's (`postgres`), quoting, and the lines statements start on. The
//! input checks, the authorizers and lint read SQL through them.

pub mod postgres;
pub mod sqlite;
