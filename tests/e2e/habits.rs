//! The CLI fits users' habits: help with examples and exit codes, shell completions, options
//! from the environment, colour that honours NO_COLOR, `plan --sql`, an aligned audit table,
//! `--to` by stamp prefix, and `plan` refusing the flags only `migrate` takes.

use crate::harness::{Project, Run, strata_command};

const COMMANDS: &[&str] = &[
    "init",
    "new",
    "build",
    "status",
    "plan",
    "migrate",
    "sandbox",
    "restore",
    "dump",
    "diff",
    "baseline",
    "repair",
    "audit",
    "completions",
    "serve",
    "info",
    "lint",
    "undo",
    "fleet",
];

/// The commands `help` lists, as (name, subcommands).
fn listed(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_help_shows_examples_and_exit_codes() {
    let p = Project::empty();
    // Every command strata lists is here (a new one cannot go without its examples).
    let top = listed(&p.strata(&["--help"]).ok().stdout);
    let mut missing: Vec<&String> = top
        .iter()
        .filter(|c| !COMMANDS.contains(&c.as_str()))
        .collect();
    missing.sort();
    assert!(missing.is_empty(), "not checked here: {missing:?}");
    let mut all: Vec<Vec<String>> = COMMANDS.iter().map(|c| vec![c.to_string()]).collect();
    // The one command with subcommands: each of them too.
    let help = p.strata(&["fleet", "--help"]).ok().stdout;
    let subs = listed(&help);
    assert!(subs.len() >= 3, "{help}");
    all.extend(subs.into_iter().map(|s| vec!["fleet".to_string(), s]));
    for cmd in all {
        let mut args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        args.push("--help");
        // lint says what its 0 and 1 mean; every other command the same words.
        let zero = if args[0] == "lint" {
            "Exit codes: 0 no finding"
        } else {
            "Exit codes: 0 done; 1 "
        };
        p.strata(&args)
            .ok()
            .stdout_has("Examples:\n  strata ")
            .stdout_has(zero)
            .stdout_has("3 refused for safety");
    }
    p.strata(&["--help"]).ok().stdout_has("Examples:");
    p.strata(&["completions", "bash"])
        .ok()
        .stdout_has("_strata()");
    p.strata(&["completions", "zsh"])
        .ok()
        .stdout_has("#compdef strata");
}

fn with_env(p: &Project, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = strata_command(p.root(), args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::new(args, cmd.output().unwrap())
}

#[test]
fn global_options_come_from_the_environment_and_colour_honours_no_color() {
    let p = Project::example();
    with_env(
        &p,
        &[("STRATA_DB", "env.db")],
        &["migrate", "--no-rehearsal", "-q"],
    )
    .ok();
    assert!(p.path("env.db").is_file() && !p.path("app.db").exists());
    with_env(
        &p,
        &[("STRATA_DB", "env.db"), ("STRATA_JSON", "true")],
        &["status"],
    )
    .ok()
    .stdout_has("\"databases\"");
    let elsewhere = Project::empty();
    let dir = p.root().to_str().unwrap();
    with_env(&elsewhere, &[("STRATA_PROJECT", dir)], &["plan"])
        .ok()
        .stdout_has("10 step(s)");
    // Colour where asked for (CLICOLOR_FORCE stands in for a terminal); never with NO_COLOR.
    let coloured = with_env(&p, &[("CLICOLOR_FORCE", "1")], &["new", "nope", "x"]).code(2);
    assert!(coloured.stderr.contains("\u{1b}["), "{}", coloured.stderr);
    let plain = with_env(
        &p,
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
        &["new", "nope", "x"],
    )
    .code(2);
    assert!(!plain.stderr.contains('\u{1b}'), "{}", plain.stderr);
    assert!(plain.stderr.starts_with("error: there is no module `nope`"));
    // Not a terminal, no request: no colour either.
    assert!(!p.strata(&["new", "nope", "x"]).stderr.contains('\u{1b}'));
}

#[test]
fn plan_sql_prints_what_each_step_runs_and_plan_rejects_migrate_only_flags() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    let dir = "migrations/app/20240101T000000Z-zero";
    p.write(
        &format!("{dir}/do.sql"),
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);",
    );
    p.write(
        &format!("{dir}/proj-data/data.json"),
        r#"{"t": [{"id": 1, "v": "it's"}]}"#,
    );
    p.write(
        &format!("{dir}/checks.sql"),
        "SELECT id FROM t WHERE v IS NULL;",
    );
    let run = p.strata(&["plan", "--sql"]).ok();
    let expected = "BEGIN IMMEDIATE;\n-- do.sql\nCREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);\n\
                    -- proj-data/data.json: 1 row(s)\nINSERT INTO \"t\" (\"id\", \"v\") VALUES (1, 'it''s');\n\
                    -- checks.sql: each query's rows are violations\nSELECT id FROM t WHERE v IS NULL;\n";
    assert!(run.stdout.contains(expected), "{}", run.stdout);
    assert!(!p.path("app.db").exists());
    for flag in ["--write-snapshots", "--rehearse-on-copy"] {
        p.strata(&["plan", flag]).code(2).stderr_has(flag);
    }
}

#[test]
fn audit_is_an_aligned_table_and_to_takes_a_stamp_prefix() {
    let p = Project::example();
    p.strata(&["migrate", "--to", "20240318", "-q"]).ok();
    p.strata(&["plan", "--to", "2024041"])
        .ok()
        .stdout_has("people/20240415T120000Z-drop-full-name");
    p.strata(&["plan", "--to", "202404"])
        .code(2)
        .stderr_has("2 migration stamps start with `202404`")
        .stderr_has("20240402T130000Z, 20240415T120000Z");
    p.strata(&["plan", "--to", "20240402"])
        .ok()
        .stdout_has("billing/20240402T130000Z-due-dates")
        .stdout_has("2 step(s)");
    p.strata(&["plan", "--to", "1999"])
        .code(2)
        .stderr_has("no migration's stamp");
    let audit = p.strata(&["audit", "--limit", "3"]).ok().stdout;
    let lines: Vec<&str> = audit.lines().filter(|l| !l.starts_with(' ')).collect();
    assert!(lines[0].starts_with("ID  AT"), "{audit}");
    let col = |l: &str, word: &str| l.find(word);
    let phase_at = col(lines[0], "PHASE").unwrap();
    for l in &lines[1..] {
        assert_eq!(col(l, "apply"), Some(phase_at), "{audit}");
    }
}

#[test]
fn on_off_variables_read_1_and_0_and_a_bad_value_names_the_variable() {
    let p = Project::example();
    let json = with_env(&p, &[("STRATA_JSON", "1")], &["status"]).ok();
    json.json();
    let plain = with_env(&p, &[("STRATA_JSON", "0")], &["status"]).ok();
    assert!(
        !plain.stdout.trim_start().starts_with('{'),
        "{}",
        plain.stdout
    );
    with_env(&p, &[("STRATA_QUIET", "yes")], &["plan"]).ok();
    with_env(&p, &[("STRATA_VERBOSE", "maybe")], &["status"])
        .code(2)
        .stderr_has("STRATA_VERBOSE=\"maybe\"")
        .stderr_has("use 1 or 0");
}

#[test]
fn a_syntax_error_shows_its_statement_once_and_no_more_of_the_script() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    let dir = p.strata(&["new", "app", "zero", "--new-module"]).ok();
    let dir = dir.stdout.trim().to_string();
    p.write(
        &format!("{dir}/do.sql"),
        "CREATE TABLE a(x);\nCREAT TABLE b(y);\nCREATE TABLE c(z);\n",
    );
    let run = p
        .strata(&["migrate"])
        .code(1)
        .stderr_has("line 2")
        .stderr_has("statement: CREAT TABLE b(y)")
        .stderr_has("syntax error");
    assert_eq!(
        run.stderr.matches("CREAT TABLE b").count(),
        1,
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains('\0'), "{:?}", run.stderr);
    assert!(!run.stderr.contains("CREATE TABLE c"), "{}", run.stderr);
    let stored = crate::harness::rows(
        &p.open(".strata/test.db"),
        "SELECT count(*) FROM strata_migration_audit WHERE instr(detail, char(0)) > 0 \
         OR detail LIKE '%CREATE TABLE c%'",
    );
    assert_eq!(stored, ["0"]);
}

#[test]
fn sandbox_announces_its_database_once() {
    let p = Project::example();
    let run = p.strata(&["sandbox", "-v"]).ok();
    assert_eq!(
        run.stderr.matches("sandbox on ").count(),
        1,
        "{}",
        run.stderr
    );
    run.stderr_has("10 pending");
}
