//! Findings of the outside test of session 7 on strata's bookkeeping, the PostgreSQL sandbox
//! and host memory (reproductions under `attack/` of the attack branch), each with variants of
//! its family: a migration's SQL cannot break or empty strata's ledger and audit log now or
//! later, a component reads no table values through the catalogs, a component's statement text
//! is held to its memory budget, and a component may drop a column of a table it may write.

use crate::components::{Op, executing};
use crate::harness::{Project, rows};
use crate::hostile::project_with;
use crate::postgres::{Pg, project};

// ---- SQLite: DROP COLUMN on a table in `writes` -----------------------------------------------

#[test]
fn a_component_may_drop_a_column_of_a_table_it_may_write() {
    let p = project_with(
        &executing(&["ALTER TABLE people DROP COLUMN nick"]),
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\"]\n",
    );
    p.strata(&["migrate"]).ok();
    assert_eq!(
        rows(
            &p.open("app.db"),
            "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'nick'"
        ),
        ["0"]
    );
}

#[test]
fn dropping_a_column_outside_writes_is_refused_for_that_reason() {
    // `secrets` is not in `writes`: refused, and the reason names `writes`, not a database.
    let p = project_with(
        &executing(&["ALTER TABLE secrets DROP COLUMN v"]),
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\"]\n",
    );
    let run = p.strata(&["migrate"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("writes") && !run.stderr.contains("database `"),
        "{}",
        run.stderr
    );
    assert_eq!(
        rows(
            &p.open("app.db"),
            "SELECT count(*) FROM pragma_table_info('secrets') WHERE name = 'v'"
        ),
        ["1"]
    );
    // Strata's own tables stay out of reach through DROP COLUMN too.
    let p = project_with(
        &executing(&["ALTER TABLE strata_migration_audit DROP COLUMN detail"]),
        "[sandbox]\nwrites = [\"people\"]\n",
    );
    let run = p.strata(&["migrate"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        rows(
            &p.open("app.db"),
            "SELECT count(*) FROM pragma_table_info('strata_migration_audit') \
             WHERE name = 'detail'"
        ),
        ["1"]
    );
}

// ---- SQLite: a do.sql trigger that changes the ledger later ------------------------------------

#[test]
fn a_do_sql_trigger_cannot_change_the_ledger_later() {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);\n\
         CREATE TRIGGER people_audit AFTER INSERT ON people BEGIN DELETE FROM strata_migration; END;\n",
    );
    // Refusing the migration is right; so is a trigger that cannot reach the ledger.
    let run = p.strata(&["migrate"]);
    if run.code != 0 {
        return;
    }
    let conn = p.open("app.db");
    let before = rows(&conn, "SELECT count(*) FROM strata_migration");
    let _ = conn.execute("INSERT INTO people(name) VALUES ('app user')", []);
    assert_eq!(
        rows(&conn, "SELECT count(*) FROM strata_migration"),
        before,
        "the application's insert emptied the ledger through a trigger do.sql planted"
    );
}

#[test]
fn do_sql_triggers_naming_strata_tables_are_refused_in_every_spelling() {
    for trigger in [
        "CREATE TRIGGER t AFTER INSERT ON people BEGIN DELETE FROM strata_migration; END;",
        "CREATE TRIGGER t AFTER UPDATE OF nick ON people BEGIN DELETE FROM \"Strata_Migration\"; END;",
        "CREATE TRIGGER t BEFORE DELETE ON people BEGIN UPDATE [STRATA_MIGRATION] SET checksum = 'x'; END;",
        "CREATE TEMP TRIGGER t AFTER INSERT ON people BEGIN DELETE FROM strata_migration; END;",
        "CREATE TRIGGER IF NOT EXISTS t AFTER INSERT ON people WHEN 1 BEGIN \
         INSERT INTO `strata_migration_audit`(at, phase, action, outcome, operator) \
         VALUES ('', '', '', 'ok', ''); END;",
        "CREATE VIEW v AS SELECT id FROM people;\n\
         CREATE TRIGGER t INSTEAD OF INSERT ON v BEGIN DELETE FROM 'strata_migration'; END;",
    ] {
        let p = Project::empty();
        p.write(
            "migrations/app/20240101T000000Z-zero/do.sql",
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);\n",
        );
        p.strata(&["migrate", "-q"]).ok();
        p.write("migrations/app/20240102T000000Z-plant/do.sql", trigger);
        let run = p.strata(&["migrate"]);
        assert_eq!(run.code, 1, "{trigger}: not refused\n{}", run.stderr);
        assert!(
            run.stderr.contains("bookkeeping"),
            "{trigger}: {}",
            run.stderr
        );
        let conn = p.open("app.db");
        assert_eq!(
            rows(&conn, "SELECT count(*) FROM sqlite_master WHERE name = 't'"),
            ["0"],
            "{trigger}: the trigger stayed"
        );
        assert_eq!(rows(&conn, "SELECT count(*) FROM strata_migration"), ["1"]);
    }
    // A trigger that leaves strata alone is the application's business.
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, n INTEGER);\n\
         CREATE TRIGGER t AFTER INSERT ON people BEGIN UPDATE people SET n = 1 WHERE id = new.id; END;\n",
    );
    p.strata(&["migrate", "-q"]).ok();
}

// ---- PostgreSQL: strata's audit sequence moved by a migration's SQL ------------------------------

/// Applies a migration whose `file` runs `sql`, then an innocent one, which must apply; returns
/// the run of the first.
fn sequence_moved_by(file: &str, sql: &str) -> crate::harness::Run {
    let pg = Pg::new("audit_sequence");
    let p = project(&pg);
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t (x int);\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    p.write("migrations/app/20240102T000000Z-two/do.sql", "SELECT 1;\n")
        .write(&format!("migrations/app/20240102T000000Z-two/{file}"), sql);
    // Whatever happens to this step (refused, rolled back, or applied when what it moved is
    // harmless), strata's own bookkeeping stays usable: the next, innocent migration applies
    // and is audited.
    let first = p.strata(&["migrate"]);
    if first.code != 0 {
        std::fs::remove_dir_all(p.path("migrations/app/20240102T000000Z-two")).unwrap();
    }
    p.write(
        "migrations/app/20240103T000000Z-three/do.sql",
        "CREATE TABLE t3 (x int);\n",
    );
    p.strata(&["migrate"]).ok();
    p.strata(&["audit"]).ok().stdout_has("20240103T000000Z");
    first
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_do_sql_cannot_break_the_audit_sequence() {
    sequence_moved_by(
        "do.sql",
        "SELECT 1;\nSELECT setval(pg_get_serial_sequence('strata.strata_migration_audit', 'id'), \
         9223372036854775807);\n",
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_checks_sql_cannot_break_the_audit_sequence() {
    sequence_moved_by(
        "checks.sql",
        "SELECT 1 WHERE setval(pg_get_serial_sequence('strata.strata_migration_audit', 'id'), \
         9223372036854775807) IS NULL;\n",
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn no_move_of_the_audit_sequence_breaks_later_runs() {
    let seq = "pg_get_serial_sequence('strata.strata_migration_audit', 'id')";
    for sql in [
        // Back to the start: ids the log already holds would come again.
        format!("SELECT setval({seq}, 1);\n"),
        format!("SELECT setval({seq}, 1, false);\n"),
        format!("SELECT nextval({seq}) FROM generate_series(1, 5);\n"),
        "ALTER SEQUENCE strata.strata_migration_audit_id_seq RESTART WITH 1;\n".into(),
        "ALTER SEQUENCE strata.strata_migration_audit_id_seq MAXVALUE 3;\n".into(),
        // Moved, then the step fails: no rollback undoes the move.
        format!("SELECT setval({seq}, 9223372036854775807);\nSELECT 1/0;\n"),
    ] {
        sequence_moved_by("do.sql", &sql);
    }
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn checks_run_read_only_and_change_no_sequence() {
    let pg = Pg::new("checks_read_only");
    let p = project(&pg);
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t (id serial PRIMARY KEY, x int);\nINSERT INTO t (x) VALUES (1);\n",
    )
    .write(
        "migrations/app/20240101T000000Z-zero/checks.sql",
        "SELECT 1 WHERE nextval('t_id_seq') IS NULL;\n",
    );
    let run = p.strata(&["migrate"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("read-only"), "{}", run.stderr);
    // The failure message is true about sequences, which no rollback restores.
    assert!(run.stderr.contains("sequences"), "{}", run.stderr);
    // A check that only reads passes.
    p.write(
        "migrations/app/20240101T000000Z-zero/checks.sql",
        "SELECT id FROM t WHERE x IS NULL;\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(
        pg.rows(false, "SELECT last_value::text FROM t_id_seq"),
        ["1"]
    );
}

// ---- PostgreSQL: a do.sql object that changes the ledger later -----------------------------------

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_postgres_do_sql_object_cannot_change_the_ledger_later() {
    for plant in [
        // The finding: a SECURITY DEFINER trigger function in public.
        "CREATE FUNCTION public.wipe() RETURNS trigger SECURITY DEFINER LANGUAGE plpgsql AS $$\n\
         BEGIN DELETE FROM strata.strata_migration; RETURN NEW; END $$;\n\
         CREATE TRIGGER wipe AFTER INSERT ON people FOR EACH ROW EXECUTE FUNCTION public.wipe();\n",
        // Quoted and upper case, in a plain function the application calls.
        "CREATE FUNCTION public.wipe() RETURNS void LANGUAGE plpgsql AS $$\n\
         BEGIN DELETE FROM \"strata\" . \"strata_migration\"; END $$;\n",
        // The table's name alone, under a search_path set on the function.
        "CREATE FUNCTION public.wipe() RETURNS void LANGUAGE sql SET search_path = strata \
         AS 'DELETE FROM STRATA_MIGRATION';\n",
        // Unicode-escaped names: no "strata" in the text (found from outside).
        "CREATE FUNCTION public.wipe() RETURNS trigger LANGUAGE plpgsql AS $$\n\
         BEGIN DELETE FROM U&\"\\0073trata\".U&\"\\0073trata_migration\"; RETURN NEW; END $$;\n\
         CREATE TRIGGER wipe AFTER INSERT ON people FOR EACH ROW EXECUTE FUNCTION public.wipe();\n",
        "CREATE FUNCTION public.wipe() RETURNS void LANGUAGE plpgsql AS $$\n\
         BEGIN DELETE FROM u&\"strat!0061_migration\" UESCAPE '!'; END $$ SET search_path = public;\n",
        // strata's schema on the function's own search path, the table named in escapes.
        "CREATE FUNCTION public.wipe() RETURNS void LANGUAGE sql \
         SET search_path = pg_catalog, \"strata\" AS $$ SELECT 1 $$;\n",
        // A rule, a policy or forced row security on strata's own tables.
        "CREATE RULE wipe AS ON INSERT TO strata.strata_migration DO INSTEAD NOTHING;\n",
        "CREATE RULE wipe AS ON UPDATE TO strata.strata_migration DO INSTEAD NOTHING;\n",
        "ALTER TABLE strata.strata_migration ENABLE ROW LEVEL SECURITY;\n\
         ALTER TABLE strata.strata_migration FORCE ROW LEVEL SECURITY;\n",
        // A rule on an application table.
        "CREATE RULE wipe AS ON INSERT TO people DO ALSO DELETE FROM strata.strata_migration;\n",
        // A view the application can delete through.
        "CREATE VIEW public.ledger AS SELECT * FROM strata.strata_migration;\n",
    ] {
        let pg = Pg::new("ledger_writers");
        let p = project(&pg);
        p.write(
            "migrations/app/20240101T000000Z-zero/do.sql",
            "CREATE TABLE people (id int PRIMARY KEY, name text);\n",
        );
        p.strata(&["migrate", "-q"]).ok();
        p.write("migrations/app/20240102T000000Z-plant/do.sql", plant);
        let run = p.strata(&["migrate"]);
        assert_eq!(run.code, 1, "{plant}: not refused\n{}", run.stderr);
        assert!(
            run.stderr.contains("bookkeeping"),
            "{plant}: {}",
            run.stderr
        );
        assert_eq!(
            pg.rows(
                false,
                "SELECT count(*)::text FROM pg_proc WHERE proname = 'wipe' \
                 UNION ALL SELECT count(*)::text FROM pg_rewrite WHERE rulename = 'wipe' \
                 UNION ALL SELECT count(*)::text FROM pg_class WHERE relname = 'ledger'"
            ),
            ["0", "0", "0"],
            "{plant}: the object stayed"
        );
        let mut app = pg.client(false);
        let _ = app.execute("INSERT INTO people VALUES (1, 'app')", &[]);
        assert_eq!(
            pg.rows(false, "SELECT count(*)::text FROM strata.strata_migration"),
            ["1"],
            "{plant}"
        );
    }
    // A view that only reads strata's tables (not writable) is allowed.
    let pg = Pg::new("ledger_readers");
    let p = project(&pg);
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE VIEW public.applied AS SELECT count(*) AS n FROM strata.strata_migration;\n",
    );
    p.strata(&["migrate", "-q"]).ok();
}

// ---- PostgreSQL: rows of an unlisted table through the catalogs ----------------------------------

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_component_cannot_read_an_unlisted_table_through_pg_stats() {
    for sql in [
        "INSERT INTO people(id, name) SELECT 100, most_common_vals::text \
         FROM pg_catalog.pg_stats WHERE tablename = 'secrets' AND attname = 'v'",
        "INSERT INTO people(id, name) SELECT 100, histogram_bounds::text \
         FROM pg_stats WHERE tablename = 'secrets' AND attname = 'id'",
        "INSERT INTO people(id, name) SELECT 100, coalesce(string_agg(query, ','), '') \
         FROM pg_stat_activity",
        "INSERT INTO people(id, name) SELECT 100, (SELECT string_agg(most_common_vals::text, ',') \
         FROM pg_stats_ext)",
        "WITH s AS (SELECT * FROM \"pg_catalog\".\"pg_stats\") \
         INSERT INTO people(id, name) SELECT 100, most_common_vals::text FROM s",
    ] {
        let pg = Pg::new("pg_stats");
        let p = crate::postgres_components::project_with(
            &pg,
            &[Op::Execute(sql.into(), Vec::new())],
            "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\"]\n",
        );
        // An application's reporting grant, and statistics the server gathers anyway.
        p.write(
            &format!("{}/do.sql", crate::postgres_components::HOSTILE),
            "INSERT INTO secrets SELECT i, 's3cr3t' FROM generate_series(2, 50) i;\n\
             GRANT SELECT ON secrets TO PUBLIC;\nANALYZE secrets;\n",
        );
        let run = p.strata(&["migrate"]);
        assert_eq!(run.code, 1, "{sql}: not refused\n{}", run.stderr);
        assert!(
            run.stderr.contains("values from the rows of tables"),
            "{sql}: {}",
            run.stderr
        );
        let leaked = pg.rows(
            false,
            "SELECT coalesce(string_agg(name, ','), '') FROM people",
        );
        assert!(
            !leaked.iter().any(|r| r.contains("s3cr3t")),
            "{sql}: the component copied rows of `secrets` (not in reads) into people: {leaked:?}"
        );
    }
}

// ---- PostgreSQL: the server reads a component's statement as the check read it -------------------

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_component_statement_is_read_by_the_server_as_it_was_checked_whatever_do_sql_set() {
    // Code the check would take for the inside of a string literal, if the server read the
    // text with other lexer settings than the check: the migrating user's role back for the
    // rest of the statement, an unlisted table read, the component's role put back.
    let hidden = "set_config($a$role$a$, $a$none$a$, false) \
                  || query_to_xml($a$select v from public.secrets$a$, true, false, $a$$a$)::text \
                  || set_config($a$role$a$, x.r, false)";
    let from = "FROM (SELECT current_user::text AS r OFFSET 0) x";
    // A backslash that ends the literal for the server when standard strings are off.
    let backslash =
        format!("INSERT INTO people(id, name) SELECT 100, 'x\\', ' || {hidden} || ' -- ' {from}");
    // A backslash that a multi-byte encoding swallows into the character before it:
    // U+00C1 is C3 81 (81 5C is one SJIS character), U+3041 is E3 81 81 (81 5C is one GBK
    // and one BIG5 character).
    let swallowed = |c: char| {
        format!(
            "INSERT INTO people(id, name) SELECT 100, md5(E'{c}\\') || {hidden} || ' || ' -- ')\n{from}"
        )
    };
    for (setup, sql) in [
        ("SET standard_conforming_strings = off;", backslash.clone()),
        (
            "SET LOCAL standard_conforming_strings = off;",
            backslash.clone(),
        ),
        (
            "SELECT set_config('standard_conforming_strings', 'off', false);",
            backslash.clone(),
        ),
        ("SET client_encoding = 'SJIS';", swallowed('\u{c1}')),
        ("SET client_encoding = 'GBK';", swallowed('\u{3041}')),
        ("SET client_encoding = 'BIG5';", swallowed('\u{3041}')),
        (
            "SET standard_conforming_strings = off; SET backslash_quote = on;",
            backslash.clone(),
        ),
    ] {
        let pg = Pg::new("lexer");
        let p = crate::postgres_components::project_with(
            &pg,
            &[Op::Execute(sql.clone(), Vec::new())],
            "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\"]\n",
        );
        p.write(
            &format!("{}/do.sql", crate::postgres_components::HOSTILE),
            &format!("ALTER TABLE people ADD COLUMN nick text;\n{setup}\n"),
        );
        let run = p.strata(&["migrate", "--no-rehearsal"]);
        assert!(
            run.code == 0 || run.code == 1,
            "{setup}: exit {}\n{}",
            run.code,
            run.stderr
        );
        let people = pg.rows(
            false,
            "SELECT coalesce(string_agg(name, ','), '') FROM people",
        );
        assert!(
            !people
                .iter()
                .any(|r| r.contains("s3cr3t") || r.contains("<table")),
            "{setup}: the server ran code the check read as a string: {people:?}\n{}",
            run.stderr
        );
    }
}

// ---- PostgreSQL: host memory for a component's statement text ------------------------------------

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_huge_postgres_statement_is_refused_inside_the_memory_bound() {
    let pg = Pg::new("huge_statement");
    // 48 MB of text with memory_mib = 64: more than a statement may take of what is left.
    let p = crate::postgres_components::project_with(
        &pg,
        &[Op::ExecuteLong {
            head: "SELECT length('".into(),
            fill: b'x',
            len: 48_000_000,
            tail: "')".into(),
        }],
        "[sandbox]\nmemory_mib = 64\nfuel = 100000000000\ntimeout_s = 120\n",
    );
    let m = crate::host_memory::run_measured(&p, &["migrate"]);
    eprintln!("48 MB statement: peak RSS {} MiB", m.max_rss_mib);
    assert_eq!(m.code, 1, "{}", m.stderr);
    assert!(m.stderr.contains("statement's text"), "{}", m.stderr);
    // The guest's copy and the host's lifted copy, plus the engine: far below the ~9 copies
    // the check and the wrappers held before.
    assert!(m.max_rss_mib < 320, "peak RSS {} MiB", m.max_rss_mib);
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_server_error_quoting_a_huge_value_is_kept_bounded() {
    let pg = Pg::new("huge_error");
    // 2 MB fits the statement budget; the server's error quotes the whole value back.
    let p = crate::postgres_components::project_with(
        &pg,
        &[Op::ExecuteLong {
            head: "INSERT INTO people (id, name) VALUES ('".into(),
            fill: b'7',
            len: 2_000_000,
            tail: "x', 'n')".into(),
        }],
        "[sandbox]\nwrites = [\"people\"]\n",
    );
    let run = p.strata(&["migrate"]);
    assert!(run.stderr.len() < 64 << 10, "{} bytes", run.stderr.len());
    let audited = pg.rows(
        false,
        "SELECT coalesce(max(length(detail)), 0)::text FROM strata.strata_migration_audit",
    );
    let longest: usize = audited[0].parse().unwrap();
    assert!(longest < 64 << 10, "an audit detail of {longest} bytes");
}

// ---- strata serve: idle connections without a token ---------------------------------------------

/// The HTTP/2 client preface: all a flooding client sends.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// `n` connections from `source` (another loopback address than the real client's) to `addr`,
/// each sending only the HTTP/2 preface.
fn flood(source: &str, addr: std::net::SocketAddr, n: usize) -> Vec<std::net::TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..n {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
            let Ok(mut stream) = socket.connect(addr).await else {
                continue;
            };
            use tokio::io::AsyncWriteExt;
            let _ = stream.write_all(PREFACE).await;
            let stream = stream.into_std().unwrap();
            stream.set_nonblocking(false).unwrap();
            held.push(stream);
        }
        held
    })
}

/// The sockets `pid` holds open.
pub fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

#[test]
fn idle_connections_without_a_token_cannot_shut_the_server_to_others() {
    const PER_PEER: usize = 16;
    let served = crate::remote::Served::example(
        |p| drop(p.strata(&["migrate", "-q"]).ok()),
        &[
            "--max-connections",
            "48",
            "--max-connections-per-peer",
            &PER_PEER.to_string(),
            "--idle-timeout",
            "2",
        ],
    );
    let addr: std::net::SocketAddr = served
        .srv
        .url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let before = sockets(served.srv.pid());
    // One client without a token opens 400 connections, far more than the caps.
    let mut held = flood("127.0.0.2", addr, 400);
    assert!(held.len() > PER_PEER * 2, "only {} connected", held.len());
    // Everyone else is still served.
    served.remote(&["status"]).ok();
    // The server holds at most the per-peer cap of the flood's connections (plus the call's,
    // now closing).
    let open = sockets(served.srv.pid()) - before;
    assert!(
        open <= PER_PEER + 2,
        "the server holds {open} sockets for one peer's idle connections"
    );
    // A connection that sent only the preface is closed by the server: reading it ends. (The
    // read timeout only keeps a broken server from hanging the test.)
    use std::io::Read;
    let mut closed = 0;
    for s in held.iter_mut() {
        s.set_read_timeout(Some(std::time::Duration::from_secs(120)))
            .unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    closed += 1;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    closed += 1;
                    break;
                }
                Err(e) => panic!("an idle connection stayed open: {e}"),
            }
        }
    }
    assert_eq!(closed, held.len());
    drop(held);
    // Its places came back: the same peer can connect and call again.
    let held = flood("127.0.0.2", addr, PER_PEER);
    assert_eq!(held.len(), PER_PEER);
    served.remote(&["status"]).ok();
}

// ---- PostgreSQL: strata's prepared checks replaced by the step ----------------------------------

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_do_sql_that_replaces_strata_s_prepared_checks_is_rolled_back() {
    // strata prepares its checks once a connection; a step can DEALLOCATE them and PREPARE
    // statements of the same names that answer what the checks answered before it tampered with
    // the ledger. The verification before the commit finds the replacement.
    let pg = Pg::new("forged_checks");
    let p = project(&pg);
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people (id int PRIMARY KEY, name text);\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    p.write(
        "migrations/app/20240102T000000Z-forge/do.sql",
        "DO $d$\n\
         DECLARE s record; sig text;\n\
         BEGIN\n\
           FOR s IN SELECT name, statement FROM pg_prepared_statements\n\
                     WHERE NOT from_sql AND statement NOT LIKE 'SELECT (%'\n\
                       AND statement NOT LIKE '%$1%' LOOP\n\
             EXECUTE s.statement INTO sig;\n\
           END LOOP;\n\
           DELETE FROM strata.strata_migration;\n\
           FOR s IN SELECT name FROM pg_prepared_statements WHERE NOT from_sql LOOP\n\
             EXECUTE format('DEALLOCATE %I', s.name);\n\
             EXECUTE format('PREPARE %I AS SELECT %L::text, %L::text', s.name, sig, '');\n\
           END LOOP;\n\
         END $d$;\n",
    );
    let run = p.strata(&["migrate", "--no-rehearsal"]);
    assert_eq!(run.code, 1, "not refused\n{}", run.stderr);
    assert!(run.stderr.contains("prepared checks"), "{}", run.stderr);
    assert_eq!(
        pg.rows(false, "SELECT count(*)::text FROM strata.strata_migration"),
        ["1"],
        "the ledger lost its row"
    );
}

// ---- PostgreSQL: statements that change the whole server ------------------------------------

/// Roles, databases by name and the server's configuration are the server's, not the
/// database's: the rehearsal on the test database (same server) would do them for real first
/// (a `CREATE ROLE` then fails the real step for ever; a `DROP ROLE` drops production's). They
/// are refused in do.sql and undo.sql, before they run, naming the line.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_migration_may_not_change_roles_or_other_databases_of_the_server() {
    let pg = Pg::new("server_wide");
    let role = format!("{}_role", pg.name);
    let p = project(&pg);
    let m = "migrations/app/20240101T000000Z-roles";
    for (sql, expect) in [
        (
            format!("CREATE TABLE t (a int);\nCREATE ROLE {role};"),
            "roles",
        ),
        (
            format!(
                "CREATE TABLE t (a int);\nALTER DATABASE {} SET work_mem = '1GB';",
                pg.name
            ),
            "a database by its name",
        ),
        (
            "CREATE TABLE t (a int);\nALTER SYSTEM SET work_mem = '1GB';".to_string(),
            "the server's configuration",
        ),
        // Calls and statements whose effect outlives the rollback: a slot made by the
        // rehearsal would fail the real step ("already exists") and every later run.
        (
            format!(
                "CREATE TABLE t (a int);\nSELECT pg_create_physical_replication_slot('{role}');"
            ),
            "replication slots",
        ),
        (
            "CREATE TABLE t (a int);\nSELECT pg_reload_conf();".to_string(),
            "configuration",
        ),
        (
            "CREATE TABLE t (a int);\nGRANT SET ON PARAMETER work_mem TO PUBLIC;".to_string(),
            "server parameter",
        ),
    ] {
        p.write(&format!("{m}/do.sql"), &sql);
        p.strata(&["migrate"])
            .code(1)
            .stderr_has(format!("{m}/do.sql, line 2"))
            .stderr_has(expect)
            .stderr_has("the rehearsal on the test database");
    }
    let mut admin = pg.admin_client();
    let exists = admin
        .query("SELECT count(*) FROM pg_roles WHERE rolname = $1", &[&role])
        .unwrap()[0]
        .get::<_, i64>(0);
    assert_eq!(exists, 0, "the rehearsal created the role");
    let slots = admin
        .query(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
            &[&role],
        )
        .unwrap()[0]
        .get::<_, i64>(0);
    assert_eq!(slots, 0, "the rehearsal made the replication slot");
    let settings = admin
        .query(
            "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase \
             WHERE d.datname = $1",
            &[&pg.name],
        )
        .unwrap()[0]
        .get::<_, i64>(0);
    assert_eq!(
        settings, 0,
        "the rehearsal changed the real database's settings"
    );
    // undo.sql is held to the same rule.
    p.write(&format!("{m}/do.sql"), "CREATE TABLE t (a int);")
        .write(
            &format!("{m}/undo.sql"),
            &format!("DROP TABLE t;\nDROP ROLE IF EXISTS {role};"),
        );
    p.strata(&["migrate", "-q"]).ok();
    p.strata(&["undo"])
        .code(1)
        .stderr_has("line 2")
        .stderr_has("roles");
    assert_eq!(
        pg.rows(false, "SELECT count(*) FROM strata.strata_migration"),
        ["1"]
    );
}

/// attack5 #3: the same statements inside the bodies a statement carries (a `DO` block, a
/// PL/pgSQL function, a SQL function or procedure, as a string or `BEGIN ATOMIC`) are read and
/// refused alike, in do.sql, checks.sql and undo.sql: the rehearsal never makes the role, and
/// lint says so first (SL409).
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn server_wide_statements_inside_bodies_are_refused_too() {
    let pg = Pg::new("server_wide_bodies");
    let role = format!("{}_role", pg.name);
    let p = project(&pg);
    let m = "migrations/app/20240101T000000Z-roles";
    for sql in [
        format!("CREATE TABLE t (a int);\nDO $$ BEGIN CREATE ROLE {role} NOLOGIN; END $$;"),
        format!(
            "CREATE TABLE t (a int);\nCREATE PROCEDURE mk() LANGUAGE sql AS 'CREATE ROLE {role}';\n\
             CALL mk();"
        ),
        format!(
            "CREATE TABLE t (a int);\nCREATE FUNCTION mk() RETURNS void LANGUAGE plpgsql AS $f$\n\
             BEGIN\n  IF true THEN\n    CREATE ROLE {role};\n  END IF;\nEND\n$f$;\nSELECT mk();"
        ),
        format!(
            "CREATE TABLE t (a int);\n\
             DO $o$ BEGIN DO $i$ BEGIN CREATE ROLE {role}; END $i$; END $o$;"
        ),
    ] {
        p.write(&format!("{m}/do.sql"), &sql);
        let linted = p.strata(&["lint"]);
        assert!(
            linted.stdout.contains("SL409") || linted.stderr.contains("SL409"),
            "{}\n{}",
            linted.stdout,
            linted.stderr
        );
        p.strata(&["migrate"])
            .code(1)
            .stderr_has(format!("{m}/do.sql, line 2"))
            .stderr_has("roles")
            .stderr_has("the rehearsal on the test database");
    }
    let roles = || {
        pg.rows(
            false,
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"),
        )
    };
    assert_eq!(roles(), ["0"], "the rehearsal created the role");
    // undo.sql is held to the same rule.
    p.write(&format!("{m}/do.sql"), "CREATE TABLE t (a int);")
        .write(
            &format!("{m}/undo.sql"),
            &format!("DROP TABLE t;\nDO $$ BEGIN CREATE ROLE {role} NOLOGIN; END $$;"),
        );
    p.strata(&["migrate", "-q"]).ok();
    p.strata(&["undo"])
        .code(1)
        .stderr_has("line 2")
        .stderr_has("roles");
    assert_eq!(roles(), ["0"], "the undo's rehearsal created the role");
    assert_eq!(
        pg.rows(false, "SELECT count(*) FROM strata.strata_migration"),
        ["1"]
    );
}
