//! libpq's conventions for what a URL leaves out: the connection service file (`service=` in
//! the URL or `PGSERVICE`), then the `PG*` environment variables, then libpq's defaults. A value
//! the URL gives always wins, as in libpq (`conninfo_add_defaults`: URL, service, environment,
//! built-in default).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The settings of one service in a `pg_service.conf`, by key (`host`, `port`, `dbname`, ...).
pub type Service = BTreeMap<String, String>;

/// The service named by the URL (`service=`) or `PGSERVICE`, read from the user's file
/// (`PGSERVICEFILE`, else `~/.pg_service.conf`) and, when it is not there, the system's
/// (`PGSYSCONFDIR/pg_service.conf`, else `/etc/postgresql-common/pg_service.conf`, where
/// Debian's libpq looks). A service that is named but found nowhere is an error, as in libpq.
pub fn service(named: Option<&str>) -> Result<Option<Service>, String> {
    let Some(name) = named
        .map(str::to_string)
        .or_else(|| std::env::var("PGSERVICE").ok().filter(|s| !s.is_empty()))
    else {
        return Ok(None);
    };
    let user_file = std::env::var_os("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pg_service.conf")));
    let system_file = std::env::var_os("PGSYSCONFDIR")
        .map(|d| Path::new(&d).join("pg_service.conf"))
        .unwrap_or_else(|| PathBuf::from("/etc/postgresql-common/pg_service.conf"));
    for file in user_file.into_iter().chain([system_file]) {
        // Read only as a regular file within the cap: a service file that is `/dev/zero` or a
        // FIFO is refused, never read.
        let text =
            match crate::core::input::read_project_text(&file, crate::core::input::CONFIG_BYTES) {
                Ok(Some(text)) => text,
                Ok(None) => continue,
                Err(e) => return Err(format!("the service file {e}")),
            };
        if let Some(found) = section(&text, &name) {
            return Ok(Some(found));
        }
    }
    Err(format!(
        "the PostgreSQL service {name:?} is not defined in the service file (PGSERVICEFILE, \
         ~/.pg_service.conf or PGSYSCONFDIR/pg_service.conf): add a [{name}] section or fix the \
         name"
    ))
}

/// The `key=value` lines of `[name]` in a service file's text (`#` starts a comment line).
fn section(text: &str, name: &str) -> Option<Service> {
    let mut found: Option<Service> = None;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if found.is_some() && inside {
                break;
            }
            inside = header.trim() == name;
            if inside {
                found = Some(Service::new());
            }
            continue;
        }
        if inside && let Some((key, value)) = line.split_once('=') {
            found
                .as_mut()?
                .insert(key.trim().to_string(), value.trim().to_string());
        }
    }
    found
}

/// A setting for what the URL left out: the service's value for `key`, else the variable's.
pub fn fallback(service: Option<&Service>, key: &str, variable: &str) -> Option<String> {
    service
        .and_then(|s| s.get(key).cloned())
        .or_else(|| std::env::var(variable).ok())
        .filter(|v| !v.is_empty())
}

/// `url` with `:port` after each host of its authority that has none (a URL without hosts is
/// returned as it is: the hosts come later, with the port).
pub fn with_default_port(url: &str, port: u16) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let hosts_start = authority.rfind('@').map_or(0, |i| i + 1);
    let hosts = &authority[hosts_start..];
    if hosts.is_empty() {
        return url.to_string();
    }
    let filled: Vec<String> = hosts
        .split(',')
        .map(|chunk| {
            let has_port = match chunk.strip_prefix('[') {
                Some(v6) => v6.contains("]:"),
                None => chunk.contains(':'),
            };
            if has_port || chunk.is_empty() {
                chunk.to_string()
            } else {
                format!("{chunk}:{port}")
            }
        })
        .collect();
    format!(
        "{}{}{}{}",
        &url[..scheme_end],
        &authority[..hosts_start],
        filled.join(","),
        &rest[authority_end..]
    )
}

/// The folders where libpq looks for a local server's Unix socket by default (Debian's, then
/// upstream's): a socket there is where libpq itself would connect.
pub const DEFAULT_SOCKET_DIRS: [&str; 3] = ["/var/run/postgresql", "/run/postgresql", "/tmp"];

/// libpq's default host when neither the URL, the service nor `PGHOST` names one: the Unix
/// socket folder where a local server listens on `port` (Debian's `/var/run/postgresql`, then
/// upstream's `/tmp`), else `localhost`.
pub fn default_host(port: u16) -> String {
    for dir in DEFAULT_SOCKET_DIRS {
        if Path::new(dir).join(format!(".s.PGSQL.{port}")).exists() {
            return dir.to_string();
        }
    }
    "localhost".to_string()
}

/// libpq's `sslmode` values as the client strata uses knows them: `verify-ca` and
/// `verify-full` are `require` with the server's certificate verified (strata always verifies
/// it when it encrypts), `allow` is `prefer`.
pub fn ssl_mode(value: &str) -> Result<&'static str, String> {
    match value {
        "disable" => Ok("disable"),
        "allow" | "prefer" => Ok("prefer"),
        "require" | "verify-ca" | "verify-full" => Ok("require"),
        other => Err(format!(
            "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, \
             verify-full"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_section_is_read_up_to_the_next_one() {
        let text = "# services\n[other]\nhost=x\n\n[shop]\nhost = db.internal\nport=6432\n\
                    dbname=shop\n# a note\n[third]\nhost=y\n";
        let shop = section(text, "shop").unwrap();
        assert_eq!(shop.get("host").map(String::as_str), Some("db.internal"));
        assert_eq!(shop.get("port").map(String::as_str), Some("6432"));
        assert_eq!(shop.get("dbname").map(String::as_str), Some("shop"));
        assert_eq!(shop.len(), 3);
        assert!(section(text, "none").is_none());
    }

    #[test]
    fn a_default_port_goes_after_each_host_without_one() {
        assert_eq!(
            with_default_port("postgres://u:p@h/db?x=1", 6432),
            "postgres://u:p@h:6432/db?x=1"
        );
        assert_eq!(
            with_default_port("postgres://a:5433,b,[::1],[::2]:7/db", 6432),
            "postgres://a:5433,b:6432,[::1]:6432,[::2]:7/db"
        );
        assert_eq!(with_default_port("postgres:///db", 6432), "postgres:///db");
        assert_eq!(with_default_port("postgres://h", 1), "postgres://h:1");
        assert_eq!(
            with_default_port("postgres://用户@主机/数据", 1),
            "postgres://用户@主机:1/数据"
        );
    }

    #[test]
    fn ssl_modes_map_to_what_the_client_knows() {
        assert_eq!(ssl_mode("verify-full"), Ok("require"));
        assert_eq!(ssl_mode("allow"), Ok("prefer"));
        assert!(ssl_mode("always").unwrap_err().contains("verify-full"));
    }
}
