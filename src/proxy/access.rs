//! ACCESS_POLICY on the proxy's path: after the certificate's verdict, the
//! request's path (HTTP/1.1 target and HTTP/2 `:path` alike, without the
//! query) is brought to its normal form and decided by the policy the verdict
//! was taken under. An unsafe spelling gets 400, a refused one the 403
//! `not-permitted` page; neither reaches WebORCA. An allowed request is
//! forwarded with its target exactly as the client sent it.
//!
//! Only that request is refused: the connection stays open, since other
//! paths may be allowed for the same certificate.

#[allow(unused_imports)]
use super::*;

use crate::policy::{self, Policy, Unsafe};

/// What ACCESS_POLICY says about one request.
pub(super) enum Access {
    /// no ACCESS_POLICY: every verified certificate may use every path
    Open,
    /// allowed; the deciding rule (`FILE:LINE`, log-safe)
    Allowed(String),
    /// refused: the answer, and the deciding rule (`-` when none)
    Refused(Response<Either<Incoming, Full<Bytes>>>, String),
}

impl Access {
    /// The rule for the access log, when a policy decided.
    pub(super) fn rule(&self) -> Option<&str> {
        match self {
            Access::Open => None,
            Access::Allowed(rule) | Access::Refused(_, rule) => Some(rule),
        }
    }
}

impl Proxy {
    /// Decides `method` on `raw_path` for `identity` by the policy of `judged`.
    pub(super) fn access(
        &self,
        conn: &ConnInfo,
        judged: &Judged,
        identity: &Identity,
        method: &Method,
        raw_path: &str,
        html: bool,
    ) -> Access {
        let Some(policy) = &judged.policy else {
            return Access::Open;
        };
        let path = match policy::normalize(raw_path) {
            Ok(path) => path,
            Err(why) => {
                tracing::info!(peer = %conn.peer, cn = %log_safe(identity.cn()), path = %log_safe(raw_path), "request refused with 400, not forwarded: {why}");
                return Access::Refused(unsafe_path(why), "-".to_string());
            }
        };
        let decision = policy.decide(&identity.info, method.as_str(), &path);
        let rule = log_safe(decision.rule_name());
        Metrics::count(&self.stats.metrics.policy_rules, &rule);
        if decision.allowed() {
            return Access::Allowed(rule);
        }
        Metrics::count(
            &self.stats.metrics.refusals,
            CertErrorKind::NotPermitted.as_str(),
        );
        tracing::info!(peer = %conn.peer, cn = %log_safe(identity.cn()), serial = %log_safe(&identity.info.serial_hex), rule = %rule, reason = "not-permitted", "ACCESS_POLICY refused {method} {}: {}", log_safe(&path), log_safe(&decision.why()));
        let page = not_permitted(&path, &identity.info.subject_oneline, Some(&rule), html);
        Access::Refused(page, rule)
    }
}

/// Whether an open tunnel's path is still permitted for its certificate by
/// the policy now serving; logs the refusal when not.
pub(super) fn tunnel_permitted(
    conn: &ConnInfo,
    policy: Option<&Policy>,
    identity: &Identity,
    raw_path: &str,
    stats: &Stats,
) -> bool {
    let Some(policy) = policy else {
        return true;
    };
    // The path was judged when the upgrade was asked for, so it has a normal form.
    let Ok(path) = policy::normalize(raw_path) else {
        return false;
    };
    let decision = policy.decide(&identity.info, Method::GET.as_str(), &path);
    let rule = log_safe(decision.rule_name());
    Metrics::count(&stats.metrics.policy_rules, &rule);
    if decision.allowed() {
        return true;
    }
    Metrics::count(
        &stats.metrics.refusals,
        CertErrorKind::NotPermitted.as_str(),
    );
    tracing::info!(peer = %conn.peer, cn = %log_safe(identity.cn()), serial = %log_safe(&identity.info.serial_hex), rule = %rule, reason = "not-permitted", "websocket closed with 1008: ACCESS_POLICY no longer permits {}: {}", log_safe(&path), log_safe(&decision.why()));
    false
}

/// The 400 for a path with no safe single spelling.
fn unsafe_path(why: Unsafe) -> Response<Either<Incoming, Full<Bytes>>> {
    let text = format!(
        "400 Bad Request: パスに使えない表記が含まれているため、お断りしました。\n\
         The request path has {why}; it is refused before any ACCESS_POLICY rule.\n"
    );
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(text))));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
