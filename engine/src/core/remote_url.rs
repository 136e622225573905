//! A `strata serve` endpoint's URL, parsed once for everything that reaches one (`--remote`,
//! a fleet's remotes): whether the transport will speak TLS, and whether its host is loopback,
//! which together decide whether a token may be sent (in clear text only to loopback, or with
//! the operator's explicit `--allow-insecure`).

/// Whether `host`, as written, is this machine's loopback: `localhost` (any letter case) or a
/// loopback address (`127.0.0.0/8`, `::1`, `::ffff:127.0.0.1`; `[...]` brackets allowed). A
/// name that merely resolves to one (`db.localhost`, an `/etc/hosts` entry) is not: where a
/// token or a password may go without the operator naming the host, only what needs no name
/// lookup counts. The one notion of loopback for what strata sends (a `--remote` token, the
/// PostgreSQL password of the environment).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback(),
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        })
}

/// A parsed endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    /// The URL the client connects to: the scheme written lowercase (`http` for a bare
    /// `HOST:PORT`), the rest as given.
    pub url: String,
    /// Whether the connection is TLS (`https`); anything else strata accepts is clear text.
    pub tls: bool,
    /// The host and port (`[::1]:7433`), without user, path or query.
    pub authority: String,
    /// Whether the host is loopback: `localhost` or a loopback address (a name that merely
    /// resolves to one is not).
    pub loopback: bool,
}

impl RemoteUrl {
    /// Parses `url`: `https://HOST:PORT` (TLS), `http://HOST:PORT` or a bare `HOST:PORT`
    /// (clear text); any other scheme (`grpc://`, `h2c://`) is refused, since the client
    /// would speak clear text to it whatever it looks like.
    pub fn parse(url: &str) -> Result<RemoteUrl, String> {
        let url = url.trim();
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("http".to_string(), url),
        };
        let tls = match scheme.as_str() {
            "https" => true,
            "http" => false,
            _ => {
                return Err(format!(
                    "the scheme `{}://` is not one strata speaks: write https://HOST:PORT (TLS) \
                     or http://HOST:PORT (clear text, loopback only unless --allow-insecure)",
                    crate::components::host::escape_controls(&scheme)
                ));
            }
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() {
            return Err("the URL names no host: write https://HOST:PORT".to_string());
        }
        let host_port = authority.rsplit('@').next().unwrap_or_default();
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host_port.rsplit_once(':').map_or(host_port, |(h, _)| h),
        };
        let loopback = is_loopback_host(host);
        Ok(RemoteUrl {
            url: format!("{scheme}://{rest}"),
            tls,
            authority: authority.to_string(),
            loopback,
        })
    }

    /// Whether a token sent here would cross the network in clear text.
    pub fn clear_text_off_loopback(&self) -> bool {
        !self.tls && !self.loopback
    }
}

#[cfg(test)]
mod tests {
    use super::{RemoteUrl, is_loopback_host};

    #[test]
    fn loopback_is_what_needs_no_name_lookup() {
        for host in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.9.8.7",
            "::1",
            "[::1]",
            "0:0:0:0:0:0:0:1",
            "::ffff:127.0.0.1",
            "[::ffff:127.0.0.2]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "db.localhost",
            "localhost.",
            "localhost.example",
            "192.0.2.2",
            "::ffff:192.0.2.2",
            "0.0.0.0",
            "::",
            "",
            "/tmp",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_transport_decides_not_the_spelling() {
        for (url, tls, loopback) in [
            ("https://db.example:7433", true, false),
            ("HTTPS://db.example:7433", true, false),
            ("http://127.0.0.1:7433", false, true),
            ("HtTp://[::1]:7433/x", false, true),
            ("localhost:7433", false, true),
            ("192.0.2.2:7433", false, false),
            ("http://192.0.2.2:7433", false, false),
            ("http://127.0.0.1@192.0.2.2:7433", false, false),
        ] {
            let parsed = RemoteUrl::parse(url).unwrap();
            assert_eq!((parsed.tls, parsed.loopback), (tls, loopback), "{url}");
        }
        assert_eq!(
            RemoteUrl::parse("192.0.2.2:7433").unwrap().url,
            "http://192.0.2.2:7433"
        );
        for url in [
            "grpc://192.0.2.2:7433",
            "h2c://127.0.0.1:1",
            "ftp://x",
            "http://",
        ] {
            assert!(RemoteUrl::parse(url).is_err(), "{url}");
        }
    }
}
