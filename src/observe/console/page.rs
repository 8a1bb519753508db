//! The console page, made with maud: every string (above all those taken
//! from certificates: subjects, CNs) is escaped by the template, never
//! pasted by `format!`. Tables and cells carry stable ids and classes
//! (`#certs tr.cert td.days`, `#refusals tr.refusal td.reason`…) that
//! monitoring and the tests read.

use chrono::{DateTime, Local, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{RELOAD_PATH, View, chart};

/// Where the page is shown, which decides what it offers.
#[derive(Debug, Clone)]
pub enum Place {
    /// `/` on STATUS_LISTEN: read only
    StatusListener,
    /// the main port for an ADMIN_CN certificate: with the reload button and,
    /// after a press, what the reload did (`Some((took, message))`)
    Admin(Option<(bool, String)>),
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}\
.en{color:#555;font-weight:normal;font-size:.9em}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}\
.expired,.bad{background:#fdd;color:#a00}.warn{background:#fec;color:#850}.ok{color:#060}\
#reload-result{padding:.5em;border:1px solid #888;margin:.5em 0}";

/// `YYYY/MM/DD HH:MM:SS`, local time, as the log lines write it.
fn when(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format(crate::log::TIME_FORMAT)
        .to_string()
}

/// `expired`, `warn` (within CERT_WARN_DAYS) or `ok`: the CSS class of a row.
fn days_class(days: i64, warn_days: i64) -> &'static str {
    if days < 0 {
        "expired"
    } else if days <= warn_days {
        "warn"
    } else {
        "ok"
    }
}

/// A heading in Japanese with its English below.
fn heading(ja: &str, en: &str) -> Markup {
    html! { h2 { (ja) br; span.en { (en) } } }
}

/// The whole page.
pub fn render(view: &View, place: &Place) -> Markup {
    // The page a reload button press answers sits at the POST's address:
    // its refresh goes back to the console, not to that address.
    let refresh = match place {
        Place::Admin(Some(_)) => format!("30; url={}", super::ADMIN_PATH),
        _ => "30".to_string(),
    };
    html! {
        (DOCTYPE)
        html lang="ja" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(refresh);
                title { "weborca-mtls-proxy 運用画面 / console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "weborca-mtls-proxy 運用画面" br; span.en { "Operator console" } }
                p #now { "表示時刻 / as of " (when(view.now)) " · v" (view.version) " · 30 秒ごとに更新 / refreshes every 30 s" }
                @if let Place::Admin(result) = place { (admin(result)) }
                (certs(view))
                (states(view))
                (reload(view))
                (clients(view))
                (refusals(view))
                (heading("要求と拒否（10 分ごと、24 時間）", "Requests and refusals per 10 minutes, last 24 hours"))
                (chart::svg(&view.chart))
            }
        }
    }
}

fn admin(result: &Option<(bool, String)>) -> Markup {
    html! {
        @if let Some((ok, message)) = result {
            div #reload-result .(if *ok { "ok" } else { "bad" }) {
                @if *ok { "再読み込みしました。" br; span.en { "Reloaded." } }
                @else { "再読み込みできませんでした。以前の証明書で動作を続けています。" br; span.en { "The reload was refused; the previous certificates keep serving." } }
                br; span.message { (message) }
            }
        }
        form #reload-form method="post" action=(RELOAD_PATH) {
            button type="submit" { "設定と証明書を再読み込み / Reload config and certificates" }
        }
    }
}

/// Japanese, then the English (or the code a script or test reads, in
/// `span.code`).
fn both(ja: &str, code: &str) -> Markup {
    html! { span.ja { (ja) } " / " span.code { (code) } }
}

/// A certificate row's kind in Japanese.
fn kind_ja(kind: &str) -> &'static str {
    match kind {
        "server" => "サーバー証明書",
        "ca" => "CA 証明書",
        "crl" => "失効リスト",
        _ => "その他",
    }
}

/// A refusal reason in Japanese.
fn reason_ja(reason: &str) -> &'static str {
    match reason {
        "missing" => "証明書なし",
        "expired" => "期限切れ",
        "not-yet-valid" => "有効期間の前",
        "unknown-ca" => "別の CA の証明書",
        "revoked" => "失効済み",
        "not-allowed" => "ALLOW_CN にない CN",
        "not-permitted" => "ACCESS_POLICY で許可なし",
        "crl-stale" => "失効リストの期限切れ",
        "no-key" => "秘密鍵を持たない提示",
        "unsupported-cert" => "使えない形式の証明書",
        _ => "その他",
    }
}

fn certs(view: &View) -> Markup {
    html! {
        (heading("証明書と CRL", "Certificates and CRL"))
        table #certs {
            tr { th { "種類 / kind" } th { "サブジェクト / subject" } th { "シリアル / serial" } th { "期限 / until" } th { "残り日数 / days left" } }
            @for c in &view.certs {
                @let class = c.days_left.map_or("ok", |d| days_class(d, view.warn_days));
                tr.cert.(class) data-kind=(c.kind) {
                    td.kind { (both(kind_ja(c.kind), c.kind)) }
                    td.subject { (c.subject) }
                    td.serial { (c.serial) }
                    td.until { (c.until.map(when).unwrap_or_else(|| "-".into())) }
                    td.days { (c.days_left.map(|d| d.to_string()).unwrap_or_else(|| "-".into())) }
                }
            }
        }
    }
}

fn states(view: &View) -> Markup {
    html! {
        (heading("WebORCA とバックエンド保護", "WebORCA and the backend guard"))
        table #states {
            tr #backend .(if view.backend_ok { "ok" } else { "bad" }) {
                th { "WebORCA" }
                td.state { @if view.backend_ok { "応答あり / answering" } @else { "応答なし / not answering" } }
                td.detail {
                    (view.backend_url)
                    @if let Some(e) = &view.backend_error {
                        // answering now: the error is history, said as such
                        @if view.backend_ok { " — 直近のエラー / last error: " (e) } @else { " — " (e) }
                    }
                }
            }
            @match &view.guard {
                None => tr #guard .warn { th { "保護 / guard" } td.state { (both("不明", "unknown")) } td.detail { "まだ確認していません / not looked at yet" } }
                Some(g) => {
                    @let (ja, state, class) = match g.loaded { Some(true) => ("適用中", "loaded", "ok"), Some(false) => ("未適用", "not-loaded", if g.exposed.is_empty() { "warn" } else { "bad" }), None => ("不明", "unknown", if g.exposed.is_empty() { "warn" } else { "bad" }) };
                    tr #guard .(class) {
                        th { "保護 / guard" }
                        td.state { (both(ja, state)) }
                        td.detail {
                            (g.detail) br;
                            span.exposure {
                                @if g.exposed.is_empty() { "ポート " (g.port) " はループバックのみで待ち受け / port " (g.port) " listens on loopback only" }
                                @else { "ポート " (g.port) " が LAN 側でも待ち受け: " (g.exposed.join(", ")) " / port " (g.port) " listens on a non-loopback address" }
                            }
                            " (" (when(g.at)) ")"
                        }
                    }
                }
            }
        }
    }
}

fn reload(view: &View) -> Markup {
    html! {
        (heading("最後の再読み込み", "Last reload"))
        @match &view.reload {
            None => p #reload .none { "起動後まだ再読み込みしていません / no reload since start" }
            Some(r) => p #reload .(if r.ok { "ok" } else { "bad" }) {
                span.at { (when(r.at)) } " "
                span.result { @if r.ok { (both("成功", "ok")) } @else { (both("失敗", "failed")) } } " "
                span.message { (r.message) }
            }
        }
    }
}

fn clients(view: &View) -> Markup {
    html! {
        (heading("利用されたクライアント証明書", "Client certificates seen"))
        table #clients {
            tr { th { "CN" } th { "シリアル / serial" } th { "残り日数 / days left" } th { "最終利用 / last seen" } th { "アドレス / address" } th { "要求数 / requests" } th { "状態 / state" } }
            @for c in &view.clients {
                @let class = if c.refused.is_some() { "bad" } else { days_class(c.days_left, view.warn_days) };
                tr.client.(class) {
                    td.cn { (c.cn) }
                    td.serial { (c.serial) }
                    td.days { (c.days_left) }
                    td.last-seen { (when(c.last_seen)) }
                    td.address { (c.address) }
                    td.requests { (c.requests) }
                    td.state {
                        @match &c.refused {
                            Some(r) => { "拒否: " (both(reason_ja(r), r)) }
                            None => (both("利用可", "ok")),
                        }
                    }
                }
            }
        }
    }
}

fn refusals(view: &View) -> Markup {
    html! {
        (heading("最近の拒否（最新 100 件）", "Last 100 refusals"))
        table #refusals {
            tr { th { "時刻 / time" } th { "アドレス / address" } th { "理由 / reason" } th { "サブジェクト / subject" } }
            @for r in &view.refusals {
                tr.refusal {
                    td.time { (when(r.at)) }
                    td.address { (r.peer) }
                    td.reason { (both(reason_ja(&r.reason), &r.reason)) }
                    td.subject { (r.subject) }
                }
            }
        }
    }
}
