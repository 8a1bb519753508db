//! The request WebORCA sees: the backend's URI, the Host (HTTP/2's
//! :authority, or for HTTP/1.0 the connection's default), hop-by-hop and
//! client-sent identity headers removed, `X-Forwarded-*` and the identity
//! headers set.

#[allow(unused_imports)]
use super::*;

/// The Host for HTTP/1.0 requests that name none: the SNI name the client
/// asked for, or else the local address it connected to (`[v6]:port`).
pub fn default_host(sni: Option<&str>, local: Option<std::net::SocketAddr>) -> Option<HeaderValue> {
    let text = match (sni, local) {
        (Some(name), _) => match local {
            Some(addr) => format!("{name}:{}", addr.port()),
            None => name.to_string(),
        },
        (None, Some(addr)) => {
            let ip = addr.ip().to_canonical();
            std::net::SocketAddr::new(ip, addr.port()).to_string()
        }
        (None, None) => return None,
    };
    let value = HeaderValue::from_str(&text).ok()?;
    valid_host(&value)?;
    Some(value)
}

/// The `X-Forwarded-*` names, made once rather than parsed per request.
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

impl Proxy {
    /// Builds the request WebORCA sees.
    pub(super) fn outbound(
        &self,
        conn: &Arc<ConnInfo>,
        identity: &Identity,
        req: Request<Incoming>,
        upgrade: bool,
        bodiless: bool,
    ) -> Result<Request<OutBody>, StatusCode> {
        let (mut parts, body) = req.into_parts();
        // The client's path and query as they are (shared, not parsed
        // again), in origin form: the pool knows where WebORCA is.
        let uri = Uri::from(
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        );
        // HTTP/2 carries the host in :authority; WebORCA needs a Host header.
        // HTTP/1.0 may send none at all (RFC 9112 §3.2 asks it only of 1.1).
        let host = match parts.headers.get(header::HOST) {
            Some(h) => h.clone(),
            None => parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .or_else(|| {
                    (parts.version < Version::HTTP_11)
                        .then(|| conn.default_host.clone())
                        .flatten()
                })
                .ok_or(StatusCode::BAD_REQUEST)?,
        };
        let headers = &mut parts.headers;
        if parts.version == Version::HTTP_2 {
            join_cookies(headers);
        }
        // Room for what is added below at once, rather than growing the
        // map (and moving its entries) once or twice on the way.
        headers.reserve(
            4 + if self.forward_identity {
                identity.headers.len()
            } else {
                0
            },
        );
        strip_hop_by_hop(headers);
        // `Expect: 100-continue` has been answered here (hyper sends the 100
        // as the body is first read); WebORCA would only wait for, or answer
        // early, a body that is coming anyway.
        let spoofed: Vec<HeaderName> = headers
            .keys()
            .filter(|n| is_ours(n) || *n == header::EXPECT)
            .cloned()
            .collect();
        for name in spoofed {
            headers.remove(name);
        }
        if upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        headers.insert(header::HOST, host.clone());
        headers.insert(X_FORWARDED_HOST, host);
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        if let Some(v) = &conn.forwarded_for {
            headers.insert(X_FORWARDED_FOR, v.clone());
        }
        if self.forward_identity {
            for (name, value) in &identity.headers {
                headers.insert(name.clone(), value.clone());
            }
        }
        parts.uri = uri;
        // HTTP/2 streams share the connection's flow-control window: one
        // stream's upload waiting for a backend slot can hold it, and the
        // client then cannot send another's, through no fault of its own.
        // So only an HTTP/1.1 upload is cut for the client's stall.
        let stall_cut = parts.version != Version::HTTP_2;
        parts.version = Version::HTTP_11;
        let body = if bodiless {
            Either::Right(Empty::new())
        } else {
            let gated = gated::Gated::new(body, self.watch(conn), stall_cut);
            parts.extensions.insert(gated.upload());
            Either::Left(gated)
        };
        Ok(Request::from_parts(parts, body))
    }
}
