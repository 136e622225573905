//! The host side of `strata:migrate/sql` and `strata:migrate/log` that every backend shares:
//! the store's data ([`HostState`], generic over the backend's session), the bounds on the host
//! memory a component can make strata use, and the component's log. What the `sql` calls do on
//! a database is the backend's: `sandbox::sqlite` (SQLite, the authorizer and the guard) and
//! `sandbox::postgres` (PostgreSQL, a role the server enforces).
//!
//! Host memory: the component's linear memories together are capped at `memory_mib` by
//! [`Limiter`] (wasmtime's `StoreLimits` plus a total across memories); every result a call
//! hands back (a `query`, a cursor batch) is counted as it is built and may not exceed what the
//! component could still hold (`memory_mib` minus its linear memory), so a result that could
//! never reach the guest is never built. Cursor batches stop early instead (at most
//! [`MAX_ROWS_PER_CALL`] rows); at most [`MAX_OPEN_CURSORS`] cursors are open at once. A limit
//! that trips fails the component's call even if the guest carries on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result as WResult, StoreLimits, StoreLimitsBuilder};

use super::bindings::{log, sql};

/// At most this many rows come back from one `next` or `next-packed` call, whatever
/// `max-rows` asks for (fewer rows is within the contract: the guest asks again).
pub const MAX_ROWS_PER_CALL: u32 = strata_wire::MAX_ROWS_PER_CALL;
/// At most this many cursors are open at once in one component call.
pub const MAX_OPEN_CURSORS: usize = 64;
/// Core instances, tables and linear memories a component may create, and the elements of one
/// table: far above what `wit-component` output needs, far below what would cost real memory.
pub(crate) const MAX_INSTANCES: usize = 64;
pub(crate) const MAX_TABLES: usize = 16;
pub(crate) const MAX_MEMORIES: usize = 4;
pub(crate) const MAX_TABLE_ELEMENTS: usize = 100_000;
/// What a row and a value of a `list<list<value>>` result cost the host besides their bytes.
pub(crate) const ROW_OVERHEAD: usize = 48;
pub(crate) const VALUE_OVERHEAD: usize = 32;

/// The table key of an open cursor: its index among the session's statements.
pub struct CursorSlot(pub(crate) usize);

/// The cursors a component has open in one call, by their [`CursorSlot`]'s index, on every
/// backend (`C` is the backend's cursor): a dropped cursor's slot is reused, and at most
/// [`MAX_OPEN_CURSORS`] are open at once.
pub struct Cursors<C>(Vec<Option<C>>);

impl<C> Default for Cursors<C> {
    fn default() -> Self {
        Cursors(Vec::new())
    }
}

impl<C> Cursors<C> {
    /// Why no other cursor may open now (the limit's message), or `None`.
    pub(crate) fn full(&self) -> Option<String> {
        (self.iter().count() >= MAX_OPEN_CURSORS).then(|| {
            format!("more than {MAX_OPEN_CURSORS} cursors open at once; drop cursors once read")
        })
    }

    /// Keeps `cursor` in a free slot; returns the slot's index.
    pub(crate) fn insert(&mut self, cursor: C) -> usize {
        match self.0.iter().position(Option::is_none) {
            Some(free) => {
                self.0[free] = Some(cursor);
                free
            }
            None => {
                self.0.push(Some(cursor));
                self.0.len() - 1
            }
        }
    }

    pub(crate) fn get(&self, index: usize) -> Option<&C> {
        self.0.get(index).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut C> {
        self.0.get_mut(index).and_then(Option::as_mut)
    }

    /// Takes the cursor out of its slot, which is free again.
    pub(crate) fn remove(&mut self, index: usize) -> Option<C> {
        self.0.get_mut(index).and_then(Option::take)
    }

    /// The open cursors.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &C> {
        self.0.iter().flatten()
    }

    /// How many slots there are, open or free.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.0.len()
    }
}

/// Messages a component logged, kept for the step's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// At most this many log lines are kept per call; the rest are counted.
pub(crate) const MAX_LOG_LINES: usize = 1_000;
/// At most this many bytes of one log message are kept.
pub(crate) const MAX_LOG_BYTES: usize = 4_096;
/// At most this many bytes of a component's error message, or of one check violation, reach
/// the terminal, the audit log (append-only: what goes in stays) and gRPC.
pub(crate) const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// At most this many of a check's violations are kept; the rest are counted.
pub(crate) const MAX_VIOLATIONS: usize = 1_000;

/// The store's data for one component call: the database the component works on (`D`: the
/// backend's session, see `sandbox::sqlite` and `sandbox::postgres`), its cursors' handles, and
/// what every backend counts the same way (memory, logs, progress, the limit that tripped).
pub struct HostState<D> {
    pub db: D,
    pub table: ResourceTable,
    pub limiter: Limiter,
    pub logs: Vec<LogLine>,
    pub dropped_logs: usize,
    /// Rows written so far, readable from another thread for progress display.
    pub progress: Arc<AtomicU64>,
    /// Why a host-side limit stopped the component, if one did.
    pub limit: Option<String>,
    /// `memory_mib`, for messages.
    pub(crate) memory_mib: u64,
}

impl<D> HostState<D> {
    pub fn new(db: D, memory_mib: u64, progress: Arc<AtomicU64>) -> Self {
        HostState {
            db,
            table: ResourceTable::new(),
            limiter: Limiter::new(mib_to_bytes(memory_mib)),
            logs: Vec::new(),
            dropped_logs: 0,
            progress,
            limit: None,
            memory_mib,
        }
    }

    /// A WIT error; a limit error is remembered, so that it fails the call even if the guest
    /// carries on.
    pub(crate) fn remember(&mut self, e: sql::Error) -> sql::Error {
        if let sql::Error::Limit(why) = &e
            && self.limit.is_none()
        {
            self.limit = Some(why.clone());
        }
        e
    }

    /// A limit error, remembered so that it fails the call.
    pub(crate) fn limit_error(&mut self, why: String) -> sql::Error {
        self.remember(sql::Error::Limit(why))
    }

    /// Counts written rows for progress.
    pub(crate) fn count_written(&mut self, n: u64) -> u64 {
        self.progress.fetch_add(n, Ordering::Relaxed);
        n
    }

    /// Bytes a result may still take: what the component could still hold in linear memory.
    pub(crate) fn result_budget(&self) -> usize {
        self.limiter
            .max_total
            .saturating_sub(self.limiter.total)
            .saturating_sub(self.limiter.held)
    }

    /// Refuses a cursor call that asks for no rows: its answer, an empty batch, would mean
    /// "exhausted" (a guest whose count ran into `next-packed`'s layout flag, 2^31, asks
    /// for 0 rows without meaning to).
    pub(crate) fn no_rows_asked(&self, max_rows: u32) -> Result<(), sql::Error> {
        if max_rows != 0 {
            return Ok(());
        }
        Err(sql::Error::Other(format!(
            "a cursor was asked for 0 rows (max-rows 0, or 2^31 = the column-layout flag with \
             a count of 0): ask for 1 to {MAX_ROWS_PER_CALL} rows; an empty batch means the \
             cursor is exhausted, so 0 rows is refused rather than answered with one"
        )))
    }

    pub(crate) fn over_budget(&self, what: &str, budget: usize) -> String {
        format!(
            "{what} is larger than the component's memory budget: {} bytes left of memory_mib \
             = {} ({} bytes of linear memory in use); read large results through open-cursor \
             in smaller batches, or raise `memory_mib` under [sandbox] in migration.toml",
            budget, self.memory_mib, self.limiter.total
        )
    }
}

fn mib_to_bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
}

/// The store limiter: wasmtime's [`StoreLimits`] (instances, tables, memories, table elements,
/// the size of each memory) plus the total of all linear memories, so that several memories
/// cannot multiply `memory_mib`. It remembers a refused growth, so the trap that follows is
/// reported as the memory limit rather than as a crash.
pub struct Limiter {
    limits: StoreLimits,
    max_total: usize,
    /// The linear memory of all the component's memories now.
    pub total: usize,
    /// What the host keeps for the component between its calls (a cursor's column names, a
    /// cached statement's text), counted in the same budget as its linear memory.
    held: usize,
    /// The largest `total` reached.
    pub peak_bytes: usize,
    pub tripped: bool,
}

impl Limiter {
    pub(crate) fn new(max_total: usize) -> Self {
        Limiter {
            limits: StoreLimitsBuilder::new()
                .memory_size(max_total)
                .memories(MAX_MEMORIES)
                .tables(MAX_TABLES)
                .instances(MAX_INSTANCES)
                .table_elements(MAX_TABLE_ELEMENTS)
                .build(),
            max_total,
            total: 0,
            held: 0,
            peak_bytes: 0,
            tripped: false,
        }
    }
}

impl Limiter {
    /// Counts `bytes` the host keeps for the component in its budget; false (nothing counted)
    /// when they do not fit in what its linear memory leaves.
    pub(crate) fn hold(&mut self, bytes: usize) -> bool {
        let after = self.held.saturating_add(bytes);
        if after.saturating_add(self.total) > self.max_total {
            return false;
        }
        self.held = after;
        true
    }

    /// Gives back `bytes` counted by [`Limiter::hold`].
    pub(crate) fn release(&mut self, bytes: usize) {
        self.held = self.held.saturating_sub(bytes);
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> WResult<bool> {
        let total = self.total.saturating_sub(current).saturating_add(desired);
        if total.saturating_add(self.held) > self.max_total {
            self.tripped = true;
            return Ok(false);
        }
        if !self.limits.memory_growing(current, desired, maximum)? {
            return Ok(false);
        }
        self.total = total;
        self.peak_bytes = self.peak_bytes.max(total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> WResult<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> WResult<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> WResult<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// A component's message made safe to print and small enough to keep: at most
/// [`MAX_MESSAGE_BYTES`] of it (cut at a character boundary, the cut counted), with controls
/// escaped as [`escape_controls`] does.
pub fn bounded_message(text: &str) -> String {
    // The bound is on what is kept, after escaping (a control character becomes up to ten
    // bytes); what is not kept is counted in the component's own bytes.
    let mut kept = String::new();
    let mut used = 0;
    for c in text.chars() {
        let piece = escape_controls(c.encode_utf8(&mut [0; 4]));
        if kept.len() + piece.len() > MAX_MESSAGE_BYTES {
            break;
        }
        kept.push_str(&piece);
        used += c.len_utf8();
    }
    if used == text.len() {
        kept
    } else {
        format!("{kept}... ({} more bytes not kept)", text.len() - used)
    }
}

/// A component's text made safe to print: control characters (newlines and escape sequences
/// included) and invisible formatting characters (bidirectional overrides) are written as
/// `\n`, `\u{1b}` and the like, so a component cannot forge or hide terminal output.
pub fn escape_controls(text: &str) -> String {
    escape_hidden(text, |_| false)
}

/// [`escape_controls`] keeping newlines and tabs: for text printed as lines (a message, a
/// table), where a carriage return, an escape sequence or a bidirectional override from
/// outside is written visibly and the lines themselves stay.
pub fn escape_controls_keeping_lines(text: &str) -> String {
    escape_hidden(text, |c| matches!(c, '\n' | '\t'))
}

/// Whether `c` is a control character or an invisible formatting one (zero-width characters,
/// bidirectional embeddings, overrides and isolates, the byte-order mark, the Arabic letter
/// mark): what can forge or hide text on a terminal.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{061c}')
}

fn escape_hidden(text: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_hidden(c) && !keep(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl<D> log::Host for HostState<D> {
    fn log(&mut self, level: log::Level, message: String) -> WResult<()> {
        if self.logs.len() >= MAX_LOG_LINES {
            self.dropped_logs += 1;
            return Ok(());
        }
        let mut message = message;
        if message.len() > MAX_LOG_BYTES {
            let mut cut = MAX_LOG_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("...");
        }
        let message = escape_controls(&message);
        let level = match level {
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warn => "warn",
            log::Level::Error => "error",
        };
        self.logs.push(LogLine { level, message });
        Ok(())
    }
}

/// A `next-packed` call as the guest made it: up to `max_rows` rows, laid out by column when it
/// set `strata_wire::COLUMNS_FLAG` in `max-rows`.
pub(crate) struct PackedRequest {
    pub max_rows: u32,
    by_column: bool,
}

impl PackedRequest {
    pub fn of(max_rows: u32) -> PackedRequest {
        PackedRequest {
            max_rows: max_rows & !strata_wire::COLUMNS_FLAG,
            by_column: max_rows & strata_wire::COLUMNS_FLAG != 0,
        }
    }

    /// An encoder sized for a batch of the rows asked for.
    pub fn encoder(&self) -> strata_wire::Encoder {
        strata_wire::Encoder::with_capacity(64 * self.max_rows.min(10_000) as usize)
    }

    /// The batch of `count` rows of `columns` values encoded row after row in `data`, laid
    /// out as the guest asked.
    pub fn batch(
        &self,
        columns: u32,
        count: u32,
        data: Vec<u8>,
    ) -> Result<sql::PackedRows, sql::Error> {
        let columns = if count == 0 { 0 } else { columns };
        let data = if self.by_column && count > 0 {
            strata_wire::to_columns(&data, columns, count).map_err(|e| {
                sql::Error::Other(format!("the batch cannot be laid out by column: {e}"))
            })?
        } else {
            data
        };
        Ok(sql::PackedRows {
            columns,
            count,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_message_is_kept_to_its_bound_at_a_character_boundary() {
        assert_eq!(bounded_message("short\nline"), "short\\nline");
        let long = "é".repeat(MAX_MESSAGE_BYTES); // two bytes each
        let kept = bounded_message(&long);
        assert!(kept.len() < MAX_MESSAGE_BYTES + 64, "{}", kept.len());
        assert!(kept.ends_with(&format!("... ({} more bytes not kept)", MAX_MESSAGE_BYTES)));
        let odd = format!("a{}", "é".repeat(MAX_MESSAGE_BYTES));
        assert!(bounded_message(&odd).starts_with("aé"));
        // Escaping cannot push it past the bound: a message of control characters.
        let controls = "\u{1}".repeat(MAX_MESSAGE_BYTES * 4);
        let kept = bounded_message(&controls);
        assert!(kept.len() < MAX_MESSAGE_BYTES + 64, "{}", kept.len());
        assert!(
            kept.ends_with("more bytes not kept)"),
            "{}",
            &kept[kept.len() - 40..]
        );
    }

    #[test]
    pub(crate) fn several_memories_share_one_total() {
        let mut l = Limiter::new(64 << 20);
        assert!(l.memory_growing(0, 48 << 20, None).unwrap());
        assert!(!l.memory_growing(0, 48 << 20, None).unwrap());
        assert!(l.tripped);
        assert_eq!(l.peak_bytes, 48 << 20);
    }

    #[test]
    pub(crate) fn control_characters_are_escaped() {
        assert_eq!(
            escape_controls("a\u{1b}[31mb\nc\u{202e}d\té"),
            r"a\u{1b}[31mb\nc\u{202e}d\té"
        );
    }

    #[test]
    fn text_printed_as_lines_keeps_its_lines_and_nothing_else_hidden() {
        assert_eq!(
            escape_controls_keeping_lines("a\u{1b}]0;t\u{7}b\nc\rd\te\u{9b}2J\u{2066}f\u{7f}"),
            "a\\u{1b}]0;t\\u{7}b\nc\\rd\te\\u{9b}2J\\u{2066}f\\u{7f}"
        );
        assert_eq!(escape_controls_keeping_lines("plain é 😀"), "plain é 😀");
    }
}
