//! Hostile components written in WAT by a small builder: a transform or seed whose entry point
//! runs a fixed list of host calls (`execute` with parameters, `query`, a cursor read in
//! batches, `log`), ignores what they return, and returns ok. Whatever the sandbox refuses
//! must therefore fail the step on the host's side, not by the guest's choice.

/// A parameter of `execute`.
#[derive(Debug, Clone)]
pub enum P {
    Int(i64),
    Text(String),
    Real(f64),
    Null,
}

/// One host call.
#[derive(Debug, Clone)]
pub enum Op {
    /// `sql.execute(sql, params)`.
    Execute(String, Vec<P>),
    /// `sql.execute-many(sql, rows)`.
    ExecuteMany(String, Vec<Vec<P>>),
    /// `sql.query(sql, [])`.
    Query(String),
    /// `sql.open-cursor(sql, [])`, then `next(max)` `calls` times.
    Cursor { sql: String, max: u32, calls: u32 },
    /// `log.log(warn, message)`.
    Log(String),
    /// `sql.execute(head + fill repeated len times + tail, [])`, the text built at run time in
    /// memory the guest grows for it (a statement far larger than the data segment).
    ExecuteLong {
        head: String,
        fill: u8,
        len: u32,
        tail: String,
    },
    /// Returns `err(message)`, the message `fill` repeated `len` times, built at run time.
    FailLong { fill: u8, len: u32 },
}

/// Which entry point the component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Transform,
    Seed,
    /// A check component (`check.wasm`), which reports no violation.
    Check,
}

/// Where strings and parameter lists start in the guest's memory; the heap starts at 64 KiB.
const DATA_START: usize = 2048;
const HEAP_START: usize = 65536;
const RET: usize = 64;

struct Data {
    bytes: Vec<u8>,
}

impl Data {
    fn align(&mut self, to: usize) {
        while !(DATA_START + self.bytes.len()).is_multiple_of(to) {
            self.bytes.push(0);
        }
    }

    fn string(&mut self, s: &str) -> (usize, usize) {
        let at = DATA_START + self.bytes.len();
        self.bytes.extend_from_slice(s.as_bytes());
        (at, s.len())
    }

    /// A `list<value>`: 16 bytes per value (tag at 0, payload at 8).
    fn params(&mut self, params: &[P]) -> (usize, usize) {
        let texts: Vec<(usize, usize)> = params
            .iter()
            .map(|p| match p {
                P::Text(t) => self.string(t),
                _ => (0, 0),
            })
            .collect();
        self.align(8);
        let at = DATA_START + self.bytes.len();
        for (p, (ptr, len)) in params.iter().zip(texts) {
            let mut v = [0u8; 16];
            match p {
                P::Null => v[0] = 0,
                P::Int(i) => {
                    v[0] = 1;
                    v[8..16].copy_from_slice(&i.to_le_bytes());
                }
                P::Real(f) => {
                    v[0] = 2;
                    v[8..16].copy_from_slice(&f.to_le_bytes());
                }
                P::Text(_) => {
                    v[0] = 3;
                    v[8..12].copy_from_slice(&(ptr as u32).to_le_bytes());
                    v[12..16].copy_from_slice(&(len as u32).to_le_bytes());
                }
            }
            self.bytes.extend_from_slice(&v);
        }
        (at, params.len())
    }

    /// A `list<list<value>>`: a (pointer, length) pair per row.
    fn rows(&mut self, rows: &[Vec<P>]) -> (usize, usize) {
        let lists: Vec<(usize, usize)> = rows.iter().map(|r| self.params(r)).collect();
        self.align(8);
        let at = DATA_START + self.bytes.len();
        for (ptr, len) in lists {
            self.bytes.extend_from_slice(&(ptr as u32).to_le_bytes());
            self.bytes.extend_from_slice(&(len as u32).to_le_bytes());
        }
        (at, rows.len())
    }

    fn wat(&self) -> String {
        self.bytes.iter().map(|b| format!("\\{b:02x}")).collect()
    }
}

/// The component's bytes.
pub fn component(entry: Entry, ops: &[Op]) -> Vec<u8> {
    let mut data = Data { bytes: Vec::new() };
    let mut code = String::new();
    for op in ops {
        match op {
            Op::Execute(sql, params) => {
                let (sp, sl) = data.string(sql);
                let (pp, pn) = data.params(params);
                code.push_str(&format!(
                    "(call $execute (i32.const {sp}) (i32.const {sl}) (i32.const {pp}) (i32.const {pn}) (i32.const {RET}))\n"
                ));
            }
            Op::ExecuteMany(sql, rows) => {
                let (sp, sl) = data.string(sql);
                let (rp, rn) = data.rows(rows);
                code.push_str(&format!(
                    "(call $execute_many (i32.const {sp}) (i32.const {sl}) (i32.const {rp}) (i32.const {rn}) (i32.const {RET}))\n"
                ));
            }
            Op::Query(sql) => {
                let (sp, sl) = data.string(sql);
                code.push_str(&format!(
                    "(call $query (i32.const {sp}) (i32.const {sl}) (i32.const 0) (i32.const 0) (i32.const {RET}))\n"
                ));
            }
            Op::Cursor { sql, max, calls } => {
                let (sp, sl) = data.string(sql);
                code.push_str(&format!(
                    "(call $open (i32.const {sp}) (i32.const {sl}) (i32.const 0) (i32.const 0) (i32.const {RET}))
                     (if (i32.eqz (i32.load8_u (i32.const {RET}))) (then
                       (local.set $cursor (i32.load (i32.const {ret4})))
                       (local.set $i (i32.const 0))
                       (block $done (loop $more
                         (br_if $done (i32.ge_u (local.get $i) (i32.const {calls})))
                         (call $next (local.get $cursor) (i32.const {max}) (i32.const {RET}))
                         (local.set $i (i32.add (local.get $i) (i32.const 1)))
                         (br $more)))))\n",
                    ret4 = RET + 4
                ));
            }
            Op::ExecuteLong {
                head,
                fill,
                len,
                tail,
            } => {
                let (hp, hl) = data.string(head);
                let (tp, tl) = data.string(tail);
                let total = hl + *len as usize + tl;
                let pages = total.div_ceil(65536);
                code.push_str(&format!(
                    "(local.set $buf (i32.mul (memory.grow (i32.const {pages})) (i32.const 65536)))
                     (memory.copy (local.get $buf) (i32.const {hp}) (i32.const {hl}))
                     (memory.fill (i32.add (local.get $buf) (i32.const {hl})) (i32.const {fill}) (i32.const {len}))
                     (memory.copy (i32.add (local.get $buf) (i32.const {at})) (i32.const {tp}) (i32.const {tl}))
                     (call $execute (local.get $buf) (i32.const {total}) (i32.const 0) (i32.const 0) (i32.const {RET}))\n",
                    at = hl + *len as usize,
                ));
            }
            Op::FailLong { fill, len } => {
                let pages = (*len as usize).div_ceil(65536);
                code.push_str(&format!(
                    "(local.set $buf (i32.mul (memory.grow (i32.const {pages})) (i32.const 65536)))
                     (memory.fill (local.get $buf) (i32.const {fill}) (i32.const {len}))
                     (i32.store8 (i32.const 1024) (i32.const 1))
                     (i32.store (i32.const 1028) (local.get $buf))
                     (i32.store (i32.const 1032) (i32.const {len}))
                     (return (i32.const 1024))\n"
                ));
            }
            Op::Log(message) => {
                let (mp, ml) = data.string(message);
                code.push_str(&format!(
                    "(call $log (i32.const 2) (i32.const {mp}) (i32.const {ml}))\n"
                ));
            }
        }
    }
    assert!(
        DATA_START + data.bytes.len() < HEAP_START,
        "test data too large"
    );
    let (core_params, lift) = match entry {
        Entry::Transform => (
            "",
            r#"(func (export "run") (result (result (error string)))
    (canon lift (core func $main "entry") (memory (core memory $libc "memory"))))"#,
        ),
        Entry::Check => (
            "",
            r#"(func (export "check") (result (result (list string) (error string)))
    (canon lift (core func $main "entry") (memory (core memory $libc "memory"))))"#,
        ),
        Entry::Seed => (
            "(param i32 i32)",
            r#"(func (export "seed") (param "params" string) (result (result (error string)))
    (canon lift (core func $main "entry") (memory (core memory $libc "memory")) (realloc (core func $libc "realloc"))))"#,
        ),
    };
    let wat = format!(
        r#"(component
  (import "strata:migrate/sql@0.1.0" (instance $sql
    (type $value (variant (case "null") (case "integer" s64) (case "real" f64) (case "text" string) (case "blob" (list u8))))
    (export "value" (type $value' (eq $value)))
    (type $error (variant (case "syntax" string) (case "constraint" string) (case "denied" string) (case "limit" string) (case "other" string)))
    (export "error" (type $error' (eq $error)))
    (export "cursor" (type $cursor (sub resource)))
    (export "execute" (func (param "sql" string) (param "params" (list $value')) (result (result u64 (error $error')))))
    (export "execute-many" (func (param "sql" string) (param "rows" (list (list $value'))) (result (result u64 (error $error')))))
    (export "query" (func (param "sql" string) (param "params" (list $value')) (result (result (list (list $value')) (error $error')))))
    (export "open-cursor" (func (param "sql" string) (param "params" (list $value')) (result (result (own $cursor) (error $error')))))
    (export "[method]cursor.next" (func (param "self" (borrow $cursor)) (param "max-rows" u32) (result (result (list (list $value')) (error $error')))))
  ))
  (import "strata:migrate/log@0.1.0" (instance $log
    (type $level (enum "debug" "info" "warn" "error"))
    (export "level" (type $level' (eq $level)))
    (export "log" (func (param "level" $level') (param "message" string)))
  ))
  (core module $libc
    (memory (export "memory") 2)
    (global $heap (mut i32) (i32.const {HEAP_START}))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32) (local $end i32) (local $have i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
      (local.set $end (i32.add (local.get $p) (local.get 3)))
      (local.set $have (i32.mul (memory.size) (i32.const 65536)))
      (if (i32.gt_u (local.get $end) (local.get $have))
        (then (if (i32.eq (memory.grow (i32.div_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535)) (i32.const 65536))) (i32.const -1))
          (then unreachable))))
      (global.set $heap (local.get $end))
      (local.get $p)))
  (core instance $libc (instantiate $libc))
  (core func $execute (canon lower (func $sql "execute") (memory (core memory $libc "memory")) (realloc (core func $libc "realloc"))))
  (core func $execute_many (canon lower (func $sql "execute-many") (memory (core memory $libc "memory")) (realloc (core func $libc "realloc"))))
  (core func $query (canon lower (func $sql "query") (memory (core memory $libc "memory")) (realloc (core func $libc "realloc"))))
  (core func $open (canon lower (func $sql "open-cursor") (memory (core memory $libc "memory")) (realloc (core func $libc "realloc"))))
  (core func $next (canon lower (func $sql "[method]cursor.next") (memory (core memory $libc "memory")) (realloc (core func $libc "realloc"))))
  (core func $log (canon lower (func $log "log") (memory (core memory $libc "memory"))))
  (core module $main
    (import "libc" "memory" (memory 2))
    (import "host" "execute" (func $execute (param i32 i32 i32 i32 i32)))
    (import "host" "execute-many" (func $execute_many (param i32 i32 i32 i32 i32)))
    (import "host" "query" (func $query (param i32 i32 i32 i32 i32)))
    (import "host" "open" (func $open (param i32 i32 i32 i32 i32)))
    (import "host" "next" (func $next (param i32 i32 i32)))
    (import "host" "log" (func $log (param i32 i32 i32)))
    (data (i32.const {DATA_START}) "{data}")
    (func (export "entry") {core_params} (result i32)
      (local $cursor i32) (local $i i32) (local $buf i32)
      {code}
      (i32.store8 (i32.const 1024) (i32.const 0))
      (i32.const 1024)))
  (core instance $main (instantiate $main
    (with "libc" (instance $libc))
    (with "host" (instance
      (export "execute" (func $execute))
      (export "execute-many" (func $execute_many))
      (export "query" (func $query))
      (export "open" (func $open))
      (export "next" (func $next))
      (export "log" (func $log))))))
  {lift}
)"#,
        data = data.wat(),
    );
    wat::parse_str(&wat).unwrap_or_else(|e| panic!("bad test WAT: {e}\n{wat}"))
}

/// A transform running `statements` through `execute`, without parameters.
pub fn executing(statements: &[&str]) -> Vec<u8> {
    let ops: Vec<Op> = statements
        .iter()
        .map(|s| Op::Execute(s.to_string(), Vec::new()))
        .collect();
    component(Entry::Transform, &ops)
}
