//! Findings 1 and 7 of the outside test of session 8: on PostgreSQL a component read the host's
//! clock and pid in its role's name (`current_user`), the server's counters, locks and row
//! counts through catalogs (`pg_locks`, `pg_stat_*`, `pg_class.reltuples`), the role's OID, and
//! a zone's offset on the current date (`timetz AT TIME ZONE`). Each is refused now, naming the
//! migration; introspection of names and definitions still works.

use crate::components::Op;
use crate::postgres::Pg;
use crate::postgres_components::{PEOPLE_ONLY, assert_refused, project_with};

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_counters_sessions_and_the_date_are_refused_to_a_component() {
    let pg = Pg::new("fix8b_clock");
    for (sql, expect) in [
        (
            "SELECT transactionid::text, pid FROM pg_locks WHERE locktype = 'transactionid'",
            "may not read `pg_catalog.pg_locks`",
        ),
        (
            "SELECT n_tup_ins FROM pg_stat_xact_user_tables WHERE relname = 'secrets'",
            "may not read `pg_catalog.pg_stat_xact_user_tables`",
        ),
        (
            "SELECT utc_offset::text FROM pg_timezone_names WHERE name = 'Europe/Berlin'",
            "may not read `pg_catalog.pg_timezone_names`",
        ),
        (
            "SELECT reltuples FROM pg_class WHERE relname = 'secrets'",
            "may not read the column `reltuples`",
        ),
        (
            "SELECT relname FROM pg_class c WHERE c.relfrozenxid::text <> ''",
            "`relfrozenxid`",
        ),
        ("SELECT * FROM pg_class", "may not read `*`"),
        (
            "SELECT current_user::regrole::oid",
            "may not use the type `regrole`",
        ),
        (
            "SELECT (time with time zone '12:00+00' AT TIME ZONE 'America/New_York')::text",
            "to a zone that is not a fixed offset",
        ),
    ] {
        let p = project_with(&pg, &[Op::Query(sql.into())], PEOPLE_ONLY);
        assert_refused(&pg, &p, &[expect, "migration.toml"]);
    }
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_introspection_and_timestamps_still_work_and_the_role_is_named_from_the_database() {
    let pg = Pg::new("fix8b_introspect");
    let insert = |id: u32, value: &str| {
        Op::Execute(
            format!("INSERT INTO people (id, name) SELECT {id}, {value}"),
            vec![],
        )
    };
    let p = project_with(
        &pg,
        &[
            insert(
                100,
                "string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relname = 'people' AND a.attnum > 0 \
                 AND NOT a.attisdropped",
            ),
            insert(
                101,
                "string_agg(column_name::text || ':' || data_type::text, ',' \
                 ORDER BY ordinal_position) FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = 'people'",
            ),
            insert(102, "current_user"),
            insert(
                103,
                "(timestamp '2024-07-01 12:00' AT TIME ZONE 'America/New_York')::text",
            ),
            insert(
                104,
                "(time with time zone '12:00+00' AT TIME ZONE INTERVAL '-05:00')::text",
            ),
            insert(
                105,
                "count(*)::text FROM pg_class WHERE relname IN ('people', 'secrets')",
            ),
        ],
        PEOPLE_ONLY,
    );
    p.strata(&["migrate", "-q"]).ok();
    let role = pg.rows(
        false,
        "SELECT 'strata_component_' || left(encode(sha256(convert_to(current_database(), \
         'UTF8')), 'hex'), 16)",
    );
    let got = pg.rows(
        false,
        "SELECT id || '=' || name FROM people WHERE id >= 100 ORDER BY id",
    );
    assert_eq!(
        got,
        [
            "100=id,name,nick".to_string(),
            "101=id:integer,name:text,nick:text".to_string(),
            format!("102={}", role[0]),
            "103=2024-07-01 16:00:00+00".to_string(),
            "104=07:00:00-05".to_string(),
            "105=2".to_string(),
        ]
    );
    // The role is gone with the step, as every call's role is.
    assert_eq!(
        pg.rows(
            false,
            &format!(
                "SELECT count(*) FROM pg_roles WHERE rolname = '{}'",
                role[0]
            )
        ),
        ["0"]
    );
}
