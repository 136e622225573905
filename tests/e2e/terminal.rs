//! Text strata did not write reaches the terminal escaped (attack6 #2 and #6): a database's
//! message quoting do.sql, a migration folder's name, a server's info, audit rows and errors.
//! Every run forces colours on (`CLICOLOR_FORCE=1`), as on a terminal, where escape sequences
//! would otherwise be passed through: strata's own colours stay, nothing else does.

use crate::harness::{Project, Run, strata_command};
use crate::remote::{Served, TOKEN, write_token};

/// A window title, a screen clear, a carriage return and a right-to-left override.
const HOSTILE: &str = "\u{1b}]0;PWNED-TITLE\u{7}\u{1b}[2Jevil\rgood\u{202e}txt";

/// `strata ARGS` in `p` with colours forced, as on a terminal.
fn on_terminal(p: &Project, args: &[&str]) -> Run {
    let output = strata_command(p.root(), args)
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    Run::new(args, output)
}

/// Nothing of [`HOSTILE`] acts on a terminal: no OSC, no screen clear, no BEL, CR or override;
/// its escaped spelling is shown instead.
fn assert_escaped(what: &str, text: &str) {
    for raw in ["\u{1b}]", "\u{1b}[2J", "\u{7}", "\r", "\u{202e}"] {
        assert!(!text.contains(raw), "{what}: {raw:?} raw in {text:?}");
    }
    assert!(
        text.contains("\\u{1b}]0;PWNED-TITLE\\u{7}\\u{1b}[2Jevil\\rgood\\u{202e}txt"),
        "{what}: not shown escaped: {text:?}"
    );
}

#[test]
fn a_database_message_quoting_do_sql_is_printed_escaped_and_strata_keeps_its_colours() {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-evil/do.sql",
        &format!("SELECT * FROM \"{HOSTILE}\";\n"),
    );
    for command in ["plan", "sandbox", "migrate"] {
        let run = on_terminal(&p, &[command]);
        assert_ne!(run.code, 0, "{command}: {}", run.stderr);
        assert_escaped(command, &run.stderr);
        // strata's own colour for "error:" is still written.
        assert!(
            run.stderr.contains("\u{1b}["),
            "{command}: {:?}",
            run.stderr
        );
    }
}

#[test]
fn a_migration_folder_name_in_a_tree_error_is_printed_escaped() {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-ok/do.sql",
        "CREATE TABLE t (x);\n",
    );
    p.write(
        &format!(
            "migrations/app/20300101T000000Z-{}/do.sql",
            HOSTILE.replace('/', "")
        ),
        "CREATE TABLE u (x);\n",
    );
    for command in ["status", "plan", "migrate"] {
        let run = on_terminal(&p, &[command]);
        assert_eq!(run.code, 2, "{command}: {}", run.stderr);
        assert_escaped(command, &run.stderr);
    }
}

#[test]
fn a_servers_strings_in_audit_and_errors_are_printed_escaped() {
    // The server's audit log holds a failed step whose message quotes the hostile text.
    let s = Served::example(
        |p| {
            p.write(
                "migrations/people/20991231T000000Z-evil/do.sql",
                &format!("SELECT * FROM \"{HOSTILE}\";\n"),
            );
        },
        &[],
    );
    write_token(&s.client, "token", TOKEN);
    let remote = |args: &[&str]| {
        let mut all = vec!["--remote", &s.srv.url, "--token-file", "token"];
        all.extend_from_slice(args);
        on_terminal(&s.client, &all)
    };
    let run = remote(&["migrate", "--no-rehearsal"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert_escaped("migrate", &run.stderr);
    let run = remote(&["audit"]).ok();
    assert_escaped("audit", &run.stdout);
    // As JSON the same value, with the characters as JSON escapes.
    let run = remote(&["audit", "--json"]).ok();
    assert!(
        !run.stdout.contains(['\u{7}', '\r', '\u{202e}', '\u{1b}']),
        "{}",
        run.stdout
    );
    let detail = run.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"].as_str())
        .any(|d| d.contains(HOSTILE));
    assert!(detail, "{}", run.stdout);
}
