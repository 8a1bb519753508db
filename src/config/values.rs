//! The value forms of the config keys (booleans, durations, ports, URLs…);
//! each parser returns what would be valid (the text after "expected") on error.

#[allow(unused_imports)]
use super::*;

/// `on`/`off`, and the spellings other tools use for them.
pub(super) fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err("on or off (also yes/no, true/false, 1/0)".to_string()),
    }
}

/// `30` (seconds), `30s`, `5m`, `1h`, `500ms`; above zero and at most [`MAX_DURATION`].
pub(super) fn parse_duration(value: &str) -> Result<Duration, String> {
    const FORM: &str = "seconds like 30, 30s, 5m or 500ms";
    let too_long = || format!("at most 24h ({} seconds)", MAX_DURATION.as_secs());
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at_checked(digits_end).unwrap_or((value, ""));
    if number.is_empty() {
        return Err(FORM.to_string());
    }
    let millis_per_unit: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "s" => 1000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{FORM} (units: ms, s, m, h)")),
    };
    let number: u64 = number.parse().map_err(|_| too_long())?;
    if number == 0 {
        return Err(format!(
            "a duration above zero, like 30s ({FORM}); 0 would remove the limit, which is \
             not allowed"
        ));
    }
    let millis = number.checked_mul(millis_per_unit).ok_or_else(too_long)?;
    let duration = Duration::from_millis(millis);
    if duration > MAX_DURATION {
        return Err(too_long());
    }
    Ok(duration)
}

/// A plain decimal number in `min..=max`; no sign, no spaces, no separators.
pub(super) fn parse_in_range(value: &str, min: u64, max: u64) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
}

pub(super) fn parse_cert_warn_days(value: &str) -> Result<u32, String> {
    parse_in_range(value, 0, MAX_CERT_WARN_DAYS.into())
        .and_then(|days| u32::try_from(days).ok())
        .ok_or_else(|| {
            format!(
                "a number of days from 0 to {MAX_CERT_WARN_DAYS}, like 30 (0 warns only about \
                 expired certificates)"
            )
        })
}

pub(super) fn parse_max_connections(value: &str) -> Result<usize, String> {
    let max = u64::try_from(MAX_MAX_CONNECTIONS).unwrap_or(u64::MAX);
    parse_in_range(value, 1, max)
        .and_then(|count| usize::try_from(count).ok())
        .ok_or_else(|| {
            format!("a number of connections from 1 to {MAX_MAX_CONNECTIONS}, like 2048")
        })
}

/// `auto` (`None`: one per CPU core) or a number of threads.
pub(super) fn parse_workers(value: &str) -> Result<Option<usize>, String> {
    if value.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    let max = u64::try_from(MAX_WORKERS).unwrap_or(u64::MAX);
    parse_in_range(value, 1, max)
        .and_then(|count| usize::try_from(count).ok())
        .map(Some)
        .ok_or_else(|| {
            format!(
                "auto (one per CPU core) or a number of threads from 1 to {MAX_WORKERS}, like 2"
            )
        })
}

pub(super) fn parse_client_cert_errors(value: &str) -> Result<ClientCertErrors, String> {
    match value.to_ascii_lowercase().as_str() {
        "page" => Ok(ClientCertErrors::Page),
        "handshake" => Ok(ClientCertErrors::Handshake),
        _ => Err(
            "page (a 403 page that explains the problem) or handshake (refuse in the \
                  TLS handshake, like WebORCA)"
                .to_string(),
        ),
    }
}

pub(super) fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    match value.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("text (WebORCA-style lines) or json (one JSON object per line)".to_string()),
    }
}

pub(super) fn parse_crl_stale(value: &str) -> Result<CrlStale, String> {
    match value.to_ascii_lowercase().as_str() {
        "warn" => Ok(CrlStale::Warn),
        "refuse" => Ok(CrlStale::Refuse),
        _ => Err(
            "warn (log that CA_CRL is out of date and keep using it) or refuse (refuse \
                  every client until a current CRL is loaded)"
                .to_string(),
        ),
    }
}

/// A comma-separated list, entries trimmed; `None` if any entry is empty, since `a,,b`
/// or a trailing comma is more likely a slip than a wish.
pub(super) fn parse_list(value: &str) -> Option<Vec<String>> {
    let mut items: Vec<String> = Vec::new();
    for item in value.split(',').map(str::trim) {
        if item.is_empty() {
            return None;
        }
        if !items.iter().any(|seen| seen == item) {
            items.push(item.to_string());
        }
    }
    Some(items)
}

pub(super) fn parse_allow_cn(value: &str) -> Result<Vec<String>, String> {
    parse_list(value).ok_or_else(|| {
        "certificate common names separated by commas, like user1,user2, with no empty entry"
            .to_string()
    })
}

pub(super) fn parse_listen(value: &str) -> Result<Vec<SocketAddr>, String> {
    const FORM: &str = "socket addresses like [::]:8000, 0.0.0.0:8000 or 127.0.0.1:18000, \
                        comma separated";
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for part in value.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("{FORM}, with no empty entry"));
        }
        let addr = parse_socket_addr(part).map_err(|why| format!("{FORM}; {why}"))?;
        // Port 0 twice is two ephemeral ports (tests do that); anything else would fail to bind.
        if addr.port() != 0 && addrs.contains(&addr) {
            return Err(format!("{FORM}, each once; {addr} is listed twice"));
        }
        addrs.push(addr);
    }
    Ok(addrs)
}

/// An IP address and port; the error says what is wrong with `value`.
pub(super) fn parse_socket_addr(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let shown = quoted(value);
    Err(if value.bytes().all(|b| b.is_ascii_digit()) {
        format!("{shown} is a port alone, write [::]:{value} or 0.0.0.0:{value}")
    } else if value.matches(':').count() > 1 && !value.starts_with('[') {
        format!("{shown}: an IPv6 address needs brackets, like [::1]:8000")
    } else if value.contains(|c: char| c.is_ascii_alphabetic()) && !value.contains('[') {
        format!("{shown}: host names are not resolved, give an IP address")
    } else {
        format!("{shown} is not an IP address and port")
    })
}

/// The form every `BACKEND_URL` error starts from.
pub(super) const BACKEND_FORM: &str = "an http:// URL like http://127.0.0.1:8001";

/// `http://host[:port][/]`: the backend is a place to connect to, nothing more, since
/// requests keep their own path and WebORCA's own login stays in them.
pub(super) fn parse_backend_url(value: &str) -> Result<BackendUrl, String> {
    let Some(rest) = strip_prefix_ignore_case(value, "http://") else {
        return Err(if strip_prefix_ignore_case(value, "https://").is_some() {
            format!(
                "{BACKEND_FORM}: https to the backend is not supported; run WebORCA in plain \
                 HTTP on a loopback port behind this proxy"
            )
        } else {
            format!("{BACKEND_FORM} (http://, a host and an optional port)")
        });
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at_checked(end).unwrap_or((rest, ""));
    check_url_tail(tail)?;
    if authority.contains('@') {
        return Err(format!("{BACKEND_FORM}, without user:password@"));
    }
    let (host, port) = split_host_port(authority)?;
    Ok(BackendUrl {
        url: value.strip_suffix('/').unwrap_or(value).to_string(),
        authority: format!("{host}:{port}"),
        host,
        port,
    })
}

pub(super) fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        value.get(prefix.len()..)
    } else {
        None
    }
}

/// Only a lone `/` may follow the authority.
pub(super) fn check_url_tail(tail: &str) -> Result<(), String> {
    if tail.is_empty() || tail == "/" {
        return Ok(());
    }
    let after_slash = tail.strip_prefix('/').unwrap_or(tail);
    Err(if after_slash.starts_with('?') {
        format!("{BACKEND_FORM}, without a query (?...)")
    } else if after_slash.starts_with('#') {
        format!("{BACKEND_FORM}, without a fragment (#...)")
    } else {
        format!(
            "{BACKEND_FORM}, without a path: requests keep their own path (/api01rv2/...), \
             so only http://, host and port are given"
        )
    })
}

/// Splits `host[:port]` or `[v6][:port]`; the host keeps IPv6 brackets.
pub(super) fn split_host_port(authority: &str) -> Result<(String, u16), String> {
    if let Some(inner) = authority.strip_prefix('[') {
        let Some((ip, after)) = inner.split_once(']') else {
            return Err(format!(
                "{BACKEND_FORM}; the IPv6 address lacks its closing ]"
            ));
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!(
                "{BACKEND_FORM}; [{}] is not an IPv6 address",
                printable(ip)
            ));
        }
        let port = match after {
            "" => DEFAULT_HTTP_PORT,
            _ => match after.strip_prefix(':') {
                Some(port) => parse_port(port)?,
                None => return Err(format!("{BACKEND_FORM}; only :port may follow [{ip}]")),
            },
        };
        return Ok((format!("[{ip}]"), port));
    }
    let (host, port) = match authority.split_once(':') {
        None => (authority, DEFAULT_HTTP_PORT),
        Some((_, port)) if port.contains(':') => {
            return Err(format!(
                "{BACKEND_FORM}; an IPv6 address needs brackets, like http://[::1]:8001"
            ));
        }
        Some((host, port)) => (host, parse_port(port)?),
    };
    check_host(host)?;
    Ok((host.to_string(), port))
}

pub(super) fn parse_port(port: &str) -> Result<u16, String> {
    parse_in_range(port, 1, u16::MAX.into())
        .and_then(|port| u16::try_from(port).ok())
        .ok_or_else(|| format!("{BACKEND_FORM}; the port is a number from 1 to 65535"))
}

/// A DNS name or IPv4 address: letters, digits, `-`, `.` and `_` (seen in internal names).
pub(super) fn check_host(host: &str) -> Result<(), String> {
    const MAX_HOST_LEN: usize = 253;
    if host.is_empty() {
        return Err(format!("{BACKEND_FORM}; the host is missing"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    let looks_ipv4 = host.chars().all(|c| c.is_ascii_digit() || c == '.');
    if host.len() > MAX_HOST_LEN
        || !host.chars().all(allowed)
        || (looks_ipv4 && host.parse::<Ipv4Addr>().is_err())
    {
        return Err(format!(
            "{BACKEND_FORM}; {} is not a host name or IP address",
            quoted(host)
        ));
    }
    Ok(())
}
