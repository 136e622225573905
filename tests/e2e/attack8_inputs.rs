//! The eighth outside test's findings on what strata takes in: a column named `rowid` that
//! hid a table's rowid from the random rowid guard, a component file read whole before the
//! compile bound refused it, and the machine's PostgreSQL password offered to hosts the
//! environment does not name.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use crate::components::{Entry, Op, component};
use crate::harness::rows;
use crate::hostile::{assert_refused, project_with};

const HOSTILE_DO: &str = "migrations/app/20240201T000000Z-hostile/do.sql";
const R_ONLY: &str = "[sandbox]\nreads = [\"people\", \"r\"]\nwrites = [\"people\", \"r\"]\n";

#[test]
fn the_random_rowid_guard_reads_the_rowid_whatever_the_columns_are_called() {
    let max = i64::MAX;
    let insert = component(
        Entry::Transform,
        &[Op::Execute(
            "INSERT INTO r(v) VALUES ('drawn')".into(),
            vec![],
        )],
    );
    // A column takes one or two of the rowid's names (any letter case): the rowid is read
    // through the third, and the insert is refused.
    for (columns, set) in [
        ("rowid INTEGER, v TEXT", "_rowid_"),
        ("\"ROWID\" INTEGER, _Rowid_ INTEGER, v TEXT", "oid"),
        ("oid INTEGER, rowid INTEGER, v TEXT", "_rowid_"),
        ("id INTEGER PRIMARY KEY, rowid INTEGER, v TEXT", "id"),
    ] {
        let p = project_with(&insert, R_ONLY);
        p.write(
            HOSTILE_DO,
            &format!(
                "CREATE TABLE r({columns});\nINSERT INTO r({set}, v) VALUES ({max}, 'last');\n"
            ),
        );
        assert_refused(&p, &["inserting into `r`", "random rowid"]);
    }
    // All three names taken: the rowid cannot be read, so the insert is refused, saying how
    // to fix it.
    let p = project_with(&insert, R_ONLY);
    p.write(
        HOSTILE_DO,
        "CREATE TABLE r(rowid INTEGER, _rowid_ INTEGER, OID INTEGER, v TEXT);\n",
    );
    assert_refused(
        &p,
        &[
            "inserting into `r`",
            "`rowid`, `_rowid_` and `oid`",
            "rename one of those columns",
        ],
    );
    // A column named rowid below the largest rowid, an INTEGER PRIMARY KEY and a table
    // WITHOUT ROWID all take the insert.
    for create in [
        "CREATE TABLE r(rowid INTEGER, v TEXT);\nINSERT INTO r(rowid, v) VALUES (9223372036854775807, 'c');",
        "CREATE TABLE r(id INTEGER PRIMARY KEY, rowid INTEGER, v TEXT);",
        "CREATE TABLE r(v TEXT PRIMARY KEY, rowid INTEGER, oid INTEGER, _rowid_ INTEGER) WITHOUT ROWID;",
    ] {
        let p = project_with(&insert, R_ONLY);
        p.write(HOSTILE_DO, &format!("{create}\n"));
        p.strata(&["migrate", "-q"]).ok();
        assert_eq!(
            rows(
                &p.open("app.db"),
                "SELECT count(*) FROM r WHERE v = 'drawn'"
            ),
            ["1"],
            "{create}"
        );
    }
}

#[test]
fn a_component_file_too_large_is_refused_from_its_size_before_it_is_read() {
    let p = project_with(&component(Entry::Transform, &[]), R_ONLY);
    let wasm = p.path("migrations/app/20240201T000000Z-hostile/transform.wasm");
    // Sparse: 300 MiB on no disk, the header of a component and zeros.
    std::fs::write(&wasm, b"\0asm\x0d\0\x01\0").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&wasm)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    std::fs::create_dir_all(p.path("tenants")).unwrap();
    std::fs::write(p.path("tenants/a.db"), b"").unwrap();
    for args in [
        &["migrate"][..],
        &["status"],
        &["plan"],
        &["sandbox"],
        &["fleet", "migrate", "--targets", "tenants/*.db"],
    ] {
        p.strata(args)
            .code(2)
            .stderr_has("transform.wasm")
            .stderr_has("the file is too large: 300 MiB")
            .stderr_has("migration 20240201T000000Z-hostile")
            .stderr_has("at most 256 MiB");
    }
    assert_eq!(
        rows(
            &p.open("app.db"),
            "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'nick'"
        ),
        ["0"],
        "the step did not run"
    );
}

/// A fake PostgreSQL server: asks each client for its password in clear text and keeps it.
#[derive(Clone, Default)]
struct Catcher(Arc<Mutex<Vec<String>>>);

impl Catcher {
    /// Serves every connection `accept` hands over, on a thread of its own.
    fn serve<S: Read + Write + Send + 'static>(
        accept: impl FnMut() -> std::io::Result<S> + Send + 'static,
    ) -> Catcher {
        let caught = Catcher::default();
        let keep = caught.clone();
        let mut accept = accept;
        std::thread::spawn(move || {
            while let Ok(conn) = accept() {
                let _ = keep.one(conn);
            }
        });
        caught
    }

    fn one(&self, mut c: impl Read + Write) -> std::io::Result<()> {
        fn message(c: &mut impl Read, tagged: bool) -> std::io::Result<Vec<u8>> {
            let mut head = vec![0u8; if tagged { 5 } else { 4 }];
            c.read_exact(&mut head)?;
            let at = head.len() - 4;
            let n = u32::from_be_bytes(head[at..].try_into().unwrap()) as usize;
            let mut body = vec![0u8; n.saturating_sub(4)];
            c.read_exact(&mut body)?;
            Ok(body)
        }
        loop {
            let body = message(&mut c, false)?;
            // An SSL or GSS encryption request: not here.
            if body.len() >= 4
                && [80877103, 80877104].contains(&u32::from_be_bytes(body[..4].try_into().unwrap()))
            {
                c.write_all(b"N")?;
                continue;
            }
            break;
        }
        // AuthenticationCleartextPassword.
        c.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])?;
        let password = message(&mut c, true)?;
        let password = String::from_utf8_lossy(&password)
            .trim_end_matches('\0')
            .to_string();
        self.0.lock().unwrap().push(password);
        let err = b"SFATAL\0C28P01\0Mno\0\0";
        let mut reply = vec![b'E'];
        reply.extend_from_slice(&(err.len() as u32 + 4).to_be_bytes());
        reply.extend_from_slice(err);
        c.write_all(&reply)
    }

    fn tcp() -> (Catcher, u16) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        (
            Catcher::serve(move || listener.accept().map(|(c, _)| c)),
            port,
        )
    }

    fn unix(dir: &std::path::Path) -> Catcher {
        let listener = std::os::unix::net::UnixListener::bind(dir.join(".s.PGSQL.5432")).unwrap();
        Catcher::serve(move || listener.accept().map(|(c, _)| c))
    }

    fn caught(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// `strata status` in `p` with `db` in strata.toml and `env` added to the cleaned environment
/// (and no passfile but `passfile`).
fn status(
    p: &crate::harness::Project,
    db: &str,
    passfile: &str,
    env: &[(&str, &str)],
) -> crate::harness::Run {
    p.write("strata.toml", &format!("db = \"{db}\"\n"));
    p.write("pgpass", passfile);
    let mut cmd = crate::harness::strata_command(p.root(), &["status"]);
    cmd.env("PGPASSFILE", p.path("pgpass"))
        .env("PGCONNECT_TIMEOUT", "5");
    for (k, v) in env {
        cmd.env(k, v);
    }
    crate::harness::Run::new(&["status"], cmd.output().unwrap())
}

// `0.0.0.0` reaches this machine's listeners on Linux, yet it is not a loopback name: it stands
// for a server only the checkout names.
#[test]
fn a_passfile_password_goes_only_to_hosts_it_names() {
    let p = crate::harness::Project::empty();
    let (server, port) = Catcher::tcp();
    // Several hosts, the passfile naming the first: nothing is sent to the second, which
    // the environment does not name, and the refusal says why.
    let two = format!("postgres://app@localhost:1,0.0.0.0:{port}/app");
    status(&p, &two, "localhost:*:*:*:for-localhost\n", &[])
        .code(2)
        .stderr_has("names the server 0.0.0.0")
        .stderr_has("a line naming it");
    // A host whose hostaddr only the checkout names: the line for the host's name is not
    // the address's.
    let addressed = format!("postgres://app@localhost:{port}/app?hostaddr=0.0.0.0");
    assert_ne!(
        status(&p, &addressed, "localhost:*:*:*:for-localhost\n", &[]).code,
        0
    );
    // A line for every host goes to no server only the checkout names.
    let one = format!("postgres://app@0.0.0.0:{port}/app");
    status(&p, &one, "*:*:*:*:wildcard\n", &[])
        .code(2)
        .stderr_has("a passfile line for every host `*`");
    assert_eq!(
        server.caught(),
        Vec::<String>::new(),
        "a password reached the server"
    );
    // A line naming every host, the same password: sent (as libpq would).
    let same = format!("localhost:*:*:*:same\n0.0.0.0:{port}:*:*:same\n");
    assert_ne!(status(&p, &two, &same, &[]).code, 0);
    // The wildcard line for a host the environment names: sent.
    assert_ne!(
        status(&p, &one, "*:*:*:*:wildcard\n", &[("PGHOST", "0.0.0.0")]).code,
        0
    );
    let mut caught = server.caught();
    caught.dedup();
    assert_eq!(caught, ["same", "wildcard"]);
    let before = server.caught().len();
    // The operator's own URL gets the passfile as libpq gives it, one password for all hosts.
    let mut cmd = crate::harness::strata_command(p.root(), &["status"]);
    cmd.env("PGPASSFILE", p.path("pgpass"))
        .env("STRATA_DB", &two);
    p.write("pgpass", "localhost:*:*:*:for-localhost\n");
    crate::harness::Run::new(&["status"], cmd.output().unwrap())
        .code(2)
        .stderr_has("different passwords (or some none)");
    assert_eq!(server.caught().len(), before);
}

#[test]
fn the_environments_password_goes_to_a_socket_only_in_a_folder_others_cannot_write() {
    use std::os::unix::fs::PermissionsExt as _;
    let p = crate::harness::Project::empty();
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("pub");
    std::fs::create_dir(&public).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let server = Catcher::unix(&public);
    let url = format!("postgres://app@/app?host={}", public.display());
    let secret = [("PGPASSWORD", "env-secret")];
    status(&p, &url, "", &secret)
        .code(2)
        .stderr_has(format!("names the server {}", public.display()));
    assert_eq!(
        server.caught(),
        Vec::<String>::new(),
        "a password reached the socket"
    );
    // Named by the environment, or in a folder only this user can write: sent.
    let named = [
        ("PGPASSWORD", "env-secret"),
        ("PGHOST", public.to_str().unwrap()),
    ];
    assert_ne!(status(&p, &url, "", &named).code, 0);
    let after_named = server.caught().len();
    assert!(after_named > 0);
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_ne!(status(&p, &url, "", &secret).code, 0);
    let after_private = server.caught().len();
    assert!(after_private > after_named);
    assert!(server.caught().iter().all(|c| c == "env-secret"));
    // A passfile line for `localhost` is not one for a socket folder of the checkout's.
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert_ne!(
        status(&p, &url, "localhost:*:*:*:for-localhost\n", &[]).code,
        0
    );
    assert_eq!(
        server.caught().len(),
        after_private,
        "{:?}",
        server.caught()
    );
}
