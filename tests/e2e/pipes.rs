//! A closed pipe ends a command quietly: `strata audit | head -c 10` and
//! `strata migrate 2>&1 | true` must not panic (exit 101 with a backtrace).

use std::process::Stdio;

use crate::harness::{Project, Run, rows, strata_command};

/// Runs `strata ARGS` with stdout (and, with `stderr_too`, stderr) writing into a pipe whose
/// reading end is already closed.
fn with_closed_pipe(p: &Project, args: &[&str], stderr_too: bool) -> Run {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = strata_command(p.root(), args);
    cmd.stdout(Stdio::from(writer.try_clone().unwrap()));
    if stderr_too {
        cmd.stderr(Stdio::from(writer));
    } else {
        cmd.stderr(Stdio::piped());
    }
    Run::new(args, cmd.output().unwrap())
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let p = Project::example();
    p.strata(&["migrate", "--no-rehearsal"]).ok();
    let run = with_closed_pipe(&p, &["audit"], false);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run.code(0);

    // Both streams closed: the migration still runs to its end and exits with its own code.
    let p = Project::example();
    with_closed_pipe(&p, &["migrate", "-v"], true).code(0);
    let applied = rows(&p.open("app.db"), "SELECT count(*) FROM strata_migration");
    assert_eq!(applied, ["10"]);
}
