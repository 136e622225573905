//! Safety rails: a guest crate without its component, components older than their sources,
//! `strata repair`, drift seen by `plan` and `status`, and exit codes CI can use.

use sha2::{Digest, Sha256};

use crate::harness::{Project, rows};

/// A project with one migration applied (and its snapshot written).
fn applied_project() -> Project {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
    );
    p.strata(&["migrate", "-q", "--write-snapshots"]).ok();
    p
}

const CRATE: &str = "[package]\nname = \"t\"\nversion = \"0.1.0\"\nedition = \"2024\"\n";

#[test]
fn a_guest_crate_without_its_component_is_refused() {
    let p = applied_project();
    let dir = "migrations/app/20240201T000000Z-fill";
    p.write(&format!("{dir}/do.sql"), "");
    p.write(&format!("{dir}/transform/Cargo.toml"), CRATE);
    let before = std::fs::read(p.path("app.db")).unwrap();
    for cmd in ["migrate", "plan", "sandbox"] {
        p.strata(&[cmd])
            .code(2)
            .stderr_has(format!("{dir}/transform.wasm: is missing"))
            .stderr_has("strata build app/20240201T000000Z-fill");
    }
    assert_eq!(std::fs::read(p.path("app.db")).unwrap(), before);
    // The same through a [build] path.
    std::fs::remove_dir_all(p.path(&format!("{dir}/transform"))).unwrap();
    p.write("guests/fill/Cargo.toml", CRATE);
    p.write(
        &format!("{dir}/migration.toml"),
        "[build]\ncheck = \"../../../guests/fill\"\n",
    );
    p.strata(&["migrate"])
        .code(2)
        .stderr_has(format!("{dir}/check.wasm: is missing"));
}

#[test]
fn a_component_older_than_its_sources_warns_and_fails_the_sandbox() {
    let p = applied_project();
    let dir = "migrations/app/20240201T000000Z-fill";
    let wasm = crate::hostile::transform(None, "");
    p.write(&format!("{dir}/do.sql"), "");
    p.write(&format!("{dir}/transform/Cargo.toml"), CRATE);
    std::fs::write(p.path(&format!("{dir}/transform.wasm")), &wasm).unwrap();
    let sha = |b: &[u8]| {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    p.write(
        &format!("{dir}/transform.wasm.built-from"),
        &format!(
            "source = \"transform\"\nsources_sha256 = \"{}\"\nwasm_sha256 = \"{}\"\n",
            sha(b"other sources"),
            sha(&wasm)
        ),
    );
    p.strata(&["plan"])
        .ok()
        .stderr_has("transform.wasm is older than its sources");
    p.strata(&["sandbox"])
        .code(2)
        .stderr_has("transform.wasm is older than its sources");
    p.strata(&["migrate"])
        .ok()
        .stderr_has("warning: ")
        .stderr_has("is older than its sources");
}

#[test]
fn repair_re_pins_a_deliberately_changed_migration_with_yes_and_audits_it() {
    let p = applied_project();
    let zero = "migrations/app/20240101T000000Z-zero";
    p.write(
        &format!("{zero}/do.sql"),
        "-- notes hold free text\nCREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
    );
    p.write(&format!("{zero}/checks.sql"), "SELECT 1 WHERE 0;");
    let run = p
        .strata(&["migrate"])
        .code(3)
        .stderr_has("do.sql differs; ")
        .stderr_has("checks.sql was added")
        .stderr_has("strata repair app/20240101T000000Z-zero --yes");
    assert!(
        !run.stderr.contains("git checkout -- <file>) and"),
        "{}",
        run.stderr
    );
    // Without --yes: what would change (a preview that succeeds), and nothing changes.
    p.strata(&["repair", "app/20240101T000000Z-zero"])
        .ok()
        .stdout_has("would re-pin app/20240101T000000Z-zero")
        .stderr_has("--yes");
    p.strata(&["migrate"]).code(3);
    p.strata(&["repair", "app/20240101T000000Z-zero", "--yes"])
        .ok()
        .stdout_has("re-pinned app/20240101T000000Z-zero on")
        .stdout_has(".strata/test.db")
        .stdout_has("app.db");
    p.strata(&["migrate"]).ok();
    let audit = rows(
        &p.open("app.db"),
        "SELECT phase, action, module, stamp, operator <> '' FROM strata_migration_audit \
         WHERE action = 'repair'",
    );
    assert_eq!(audit, ["repair|repair|app|20240101T000000Z|1"]);
    // Nothing left to repair, and an unknown name, are errors.
    p.strata(&["repair", "app/20240101T000000Z-zero", "--yes"])
        .code(2)
        .stderr_has("nothing to repair");
    p.strata(&["repair", "app/nope"])
        .code(2)
        .stderr_has("no migration `app/nope`");
}

#[test]
fn plan_refuses_drift_like_migrate_and_status_shows_it() {
    let p = applied_project();
    p.open("app.db")
        .execute_batch("ALTER TABLE notes ADD COLUMN extra TEXT")
        .unwrap();
    p.strata(&["migrate"]).code(3).stderr_has("has drifted");
    p.strata(&["plan"]).code(3).stderr_has("has drifted");
    p.strata(&["plan", "--allow-drift"]).ok();
    p.strata(&["status"])
        .ok()
        .stdout_has("module `app` DRIFTED")
        .stdout_has("extra");
    // CI: status --check exits 3 exactly when migrate would refuse; diff --exit-code 1.
    p.strata(&["status", "--check"])
        .code(3)
        .stdout_has("DRIFTED")
        .stderr_has("has drifted");
    p.strata(&["diff", "--exit-code"])
        .code(1)
        .stdout_has("extra");
    p.strata(&["diff"]).ok();
    p.open("app.db")
        .execute_batch("ALTER TABLE notes DROP COLUMN extra")
        .unwrap();
    p.strata(&["status", "--check"]).ok();
    p.strata(&["diff", "--exit-code"]).ok();
    p.strata(&["diff", "--sql", "--exit-code"]).ok();
}
