//! ACCESS_POLICY on the proxy's path: after the certificate's verdict, the
//! request's path (HTTP/1.1 target and HTTP/2 `:path` alike, without the
//! query) is brought to its normal form and decided by the policy the verdict
//! was taken under. An unsafe spelling gets 400, a refused one the 403
//! `not-permitted` page; neither reaches WebORCA. An allowed request is
//! forwarded with the path that was decided: its target as the client sent it
//! when that is already the normal form, else the normal form (and the query
//! as sent). WebORCA's router (Echo) routes on the path as it arrives and
//! does not resolve `..` or `//`, so forwarding another spelling than the one
//! decided would let it serve a path whose rule was never asked — as Envoy's
//! `normalize_path` does, the decided form is what goes upstream.
//!
//! Only that request is refused: the connection stays open, since other
//! paths may be allowed for the same certificate.

#[allow(unused_imports)]
use super::*;

use crate::policy::{self, Policy, Unsafe};
use std::sync::atomic::{AtomicU64, Ordering};

/// What ACCESS_POLICY says about one request.
pub(super) enum Access {
    /// no ACCESS_POLICY: every verified certificate may use every path
    Open,
    /// allowed; the deciding rule (`FILE:LINE`, log-safe), and the normal
    /// form of the path when the client spelled it otherwise
    Allowed(String, Option<String>),
    /// refused: the answer, and the deciding rule (`-` when none)
    Refused(Response<Either<Incoming, Full<Bytes>>>, String),
}

impl Access {
    /// Takes out the deciding rule (for the access log and the count), when
    /// a policy decided; what is left behind has an empty one.
    pub(super) fn take_rule(&mut self) -> Option<String> {
        match self {
            Access::Open => None,
            Access::Allowed(rule, _) | Access::Refused(_, rule) => Some(std::mem::take(rule)),
        }
    }
}

/// The rule that decided a request, counted once when the request is done
/// with: answered, or given up by the client while it waited (a dropped
/// `handle`). `-` (refused as unsafe before any rule was asked) is not counted.
pub(super) struct Decided<'s> {
    stats: &'s Stats,
    pub(super) rule: Option<String>,
}

impl<'s> Decided<'s> {
    pub(super) fn new(stats: &'s Stats) -> Self {
        Decided { stats, rule: None }
    }
}

impl Drop for Decided<'_> {
    fn drop(&mut self) {
        if let Some(rule) = self.rule.as_deref().filter(|r| *r != "-") {
            Metrics::count(&self.stats.metrics.policy_rules, rule);
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
                tracing::info!(name: "request-refused", peer = %conn.peer, cn = %log_safe(identity.cn()), path = %log_safe(raw_path), "request refused with 400, not forwarded: {why}");
                return Access::Refused(unsafe_path(why), "-".to_string());
            }
        };
        let decision = policy.decide(&identity.info, method.as_str(), &path);
        // counted by the caller, once the request's last decision is known
        let rule = log_safe(decision.rule_name());
        if decision.allowed() {
            let respelled = (path != raw_path).then_some(path);
            return Access::Allowed(rule, respelled);
        }
        self.stats.refused(
            conn.peer,
            CertErrorKind::NotPermitted.as_str(),
            &identity.info.subject_oneline,
        );
        tracing::info!(name: "refused", peer = %conn.peer, cn = %log_safe(identity.cn()), serial = %log_safe(&identity.info.serial_hex), rule = %rule, reason = "not-permitted", "ACCESS_POLICY refused {method} {}: {}", log_safe(&path), log_safe(&decision.why()));
        let page = not_permitted(&path, &identity.info.subject_oneline, Some(&rule), html);
        Access::Refused(page, rule)
    }
}

/// How ACCESS_POLICY stands on an open tunnel's path.
enum TunnelPath<'p> {
    /// permitted: by a rule, or by having no policy
    Permitted,
    /// no safe normal form (the upgrade was decided on one, so only a policy
    /// changed under it can get here)
    Unsafe,
    /// refused: the normal path and the decision
    Refused(String, policy::Decision<'p>),
}

fn tunnel_path<'p>(
    policy: Option<&'p Policy>,
    identity: &Identity,
    raw_path: &str,
) -> TunnelPath<'p> {
    let Some(policy) = policy else {
        return TunnelPath::Permitted;
    };
    let Ok(path) = policy::normalize(raw_path) else {
        return TunnelPath::Unsafe;
    };
    let decision = policy.decide(&identity.info, Method::GET.as_str(), &path);
    if decision.allowed() {
        TunnelPath::Permitted
    } else {
        TunnelPath::Refused(path, decision)
    }
}

/// Whether an open tunnel may carry the client's next bytes: its certificate
/// is accepted now and the policy now serving permits its `path`. Logs
/// nothing: [`tunnel_permitted`], woken by the same reload, does.
/// `permitted_in` is the judgement generation the path was last permitted
/// in (`u64::MAX`: none): the policy is part of the generation, so within
/// one the path is not normalised and decided again on every read.
pub(super) fn tunnel_may_carry(conn: &ConnInfo, path: &str, permitted_in: &AtomicU64) -> bool {
    let judged = conn.judgement.now();
    let Ok(identity) = &judged.verdict else {
        return false;
    };
    if permitted_in.load(Ordering::Relaxed) == judged.generation {
        return true;
    }
    let permitted = matches!(
        tunnel_path(judged.policy.as_deref(), identity, path),
        TunnelPath::Permitted
    );
    if permitted {
        permitted_in.store(judged.generation, Ordering::Relaxed);
    }
    permitted
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
    let (path, decision) = match tunnel_path(policy, identity, raw_path) {
        // an open tunnel looked at again is not a request decided: not counted
        TunnelPath::Permitted => return true,
        TunnelPath::Unsafe => return false,
        TunnelPath::Refused(path, decision) => (path, decision),
    };
    let rule = log_safe(decision.rule_name());
    Metrics::count(&stats.metrics.policy_rules, &rule);
    stats.refused(
        conn.peer,
        CertErrorKind::NotPermitted.as_str(),
        &identity.info.subject_oneline,
    );
    tracing::info!(name: "refused", peer = %conn.peer, cn = %log_safe(identity.cn()), serial = %log_safe(&identity.info.serial_hex), rule = %rule, reason = "not-permitted", "websocket closed with 1008: ACCESS_POLICY no longer permits {}: {}", log_safe(&path), log_safe(&decision.why()));
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
