//! The words of each certificate refusal page (missing, expired, not yet
//! valid, unknown CA, revoked, not allowed, CRL out of date, path not permitted): what happened
//! and what to do, Japanese first, then English. Each page's two texts sit
//! side by side so a change to one is made to the other.

#[allow(unused_imports)]
use super::*;

pub(super) fn missing_ja(r: &CertRefusal<'_>) -> Text {
    let mut note = line().t(
        "証明書の選択画面が出ない場合は、お持ちの証明書の有効期限が切れている（またはまだ有効期間が始まっていない）か、この医療機関の認証局（CA）で発行されたものではない可能性があります。",
    ).t(r.browser.hides_expired_ja());
    if !r.expected_ca.is_empty() {
        note = note
            .t("このサーバーで使えるのは、")
            .append(ca_list(r.expected_ca, "、"))
            .t(" が発行した証明書です。");
    }
    Text {
        title: "証明書が確認できませんでした".into(),
        lead: vec![
            line().t("このパソコンのブラウザから、WebORCA を使うための証明書（クライアント証明書）が送られてこなかったため、接続をお断りしました。"),
            line().t("証明書がまだブラウザに取り込まれていないか、証明書を選ぶ画面で選ばれなかったことが考えられます。"),
        ],
        steps: vec![
            line().t("管理者から証明書の zip ファイル（").c("NNNNNN__JP_orca_（名前）.zip").t(" という名前です）を受け取り、展開（解凍）します。"),
            line().t("展開したフォルダーにある ").c(".pass").t(" ファイルをメモ帳で開き、パスフレーズを確認します。"),
            line().t(r.browser.import_path_ja()).t("を開き、「インポート」から ").c(".p12").t(" ファイルを選んで、パスフレーズを入力します。"),
            r.browser.ca_step_ja(),
            r.browser.restart_ja(),
            line().c("https://（サーバー名）:8000").t(" を開きます。証明書の選択画面が出たら、インポートした証明書を選んで「OK」を押します。"),
        ],
        notes: vec![note.t(format!("有効期限は{}で確認できます。切れている場合は新しい証明書の発行を管理者に依頼してください。", r.browser.manager_ja()))],
    }
}

pub(super) fn missing_en(r: &CertRefusal<'_>) -> Text {
    let b = r.browser;
    let mut note = line().t(format!("If the browser never asks for a certificate, the installed certificate may have expired (or not be valid yet){} or it was not issued by a CA this server accepts: browsers only offer certificates from the CAs the server names in its TLS CertificateRequest. Check the certificate's validity dates in {}.", if b.hides_expired_en().is_empty() { "," } else { b.hides_expired_en() }, b.manager_en()));
    if !r.expected_ca.is_empty() {
        note = note
            .t(" Accepted: ")
            .append(ca_list(r.expected_ca, "; "))
            .t(".");
    }
    Text {
        title: "No client certificate was presented".into(),
        lead: vec![line().t("The browser did not send a client certificate, so the proxy refused the connection before it reached WebORCA. Either no certificate has been imported into this browser yet, or none was chosen when the browser asked.")],
        steps: vec![
            line().t("Get the certificate zip file (").c("NNNNNN__JP_orca_(name).zip").t(") from the administrator and unzip it."),
            line().t("Open the ").c(".pass").t(" file in a text editor to read the passphrase."),
            line().t(b.import_path_en()).t(", click Import, choose the ").c(".p12").t(" file and enter the passphrase."),
            b.ca_step_en(),
            b.restart_en(),
            line().t("Open ").c("https://(server):8000").t(" and choose the certificate when the browser asks."),
        ],
        notes: vec![note],
    }
}

pub(super) fn expired_ja(r: &CertRefusal<'_>) -> Text {
    if let Some((ca, at)) = r.expired_ca {
        return expired_ca_ja(r, ca, at);
    }
    let when = match r.not_after {
        Some(at) => format!("は、{}（日本時間）に有効期限が切れたため", jst(at)),
        None => "は有効期限が切れているため".to_owned(),
    };
    let notes = period_ja(r, "この証明書").into_iter().collect();
    Text {
        title: "証明書の有効期限が切れています".into(),
        lead: vec![
            line()
                .t("お使いの証明書")
                .append(cert_ref_ja(r.subject, None))
                .t(when)
                .t("、WebORCA に接続できません。"),
        ],
        steps: reissue_steps_ja(r.browser, "期限切れの"),
        notes,
    }
}

/// `{whose}の有効期間: … 〜 …（日本時間）`, when both dates are known.
fn period_ja(r: &CertRefusal<'_>, whose: &str) -> Option<Line> {
    let (from, to) = (r.not_before?, r.not_after?);
    Some(line().t(format!(
        "{whose}の有効期間: {} 〜 {}（日本時間）",
        jst(from),
        jst(to)
    )))
}

/// The `expired` page when the certificate itself is within its dates and
/// the intermediate CA that issued it (sent with it) has expired: the user
/// cannot fix that by importing the same file again.
fn expired_ca_ja(r: &CertRefusal<'_>, ca: &str, at: DateTime<Utc>) -> Text {
    let mut notes = vec![
        line()
            .t("お使いの証明書そのものは有効期間内です。管理者の方へ: 中間認証局の証明書 ")
            .c(ca)
            .t(" を更新し、その認証局で証明書を発行し直してください。"),
    ];
    notes.extend(period_ja(r, "お使いの証明書"));
    Text {
        title: "証明書を発行した認証局の有効期限が切れています".into(),
        lead: vec![
            line()
                .t("お使いの証明書")
                .append(cert_ref_ja(r.subject, None))
                .t("を発行した中間認証局の証明書（")
                .c(ca)
                .t(format!(
                    "）が {}（日本時間）に有効期限が切れたため、WebORCA に接続できません。",
                    jst(at)
                )),
        ],
        steps: reissue_steps_ja(r.browser, "期限切れの認証局による"),
        notes,
    }
}

pub(super) fn expired_en(r: &CertRefusal<'_>) -> Text {
    if let Some((ca, at)) = r.expired_ca {
        return expired_ca_en(r, ca, at);
    }
    let when = match r.not_after {
        Some(at) => format!(" expired at {} ({} JST)", iso_utc(at), jst(at)),
        None => " has expired".to_owned(),
    };
    Text {
        title: "The client certificate has expired".into(),
        lead: vec![
            line()
                .t("The certificate")
                .append(cert_ref_en(r.subject, None))
                .t(when)
                .t(", so the connection was refused."),
        ],
        steps: reissue_steps_en(r.browser, "expired"),
        notes: vec![clock_note_en()],
    }
}

fn expired_ca_en(r: &CertRefusal<'_>, ca: &str, at: DateTime<Utc>) -> Text {
    Text {
        title: "The CA that issued the client certificate has expired".into(),
        lead: vec![
            line()
                .t("The certificate")
                .append(cert_ref_en(r.subject, None))
                .t(" is within its own dates, but the intermediate CA certificate ")
                .c(ca)
                .t(format!(
                    " that issued it expired at {} ({} JST), so the connection was refused.",
                    iso_utc(at),
                    jst(at)
                )),
        ],
        steps: reissue_steps_en(r.browser, "old"),
        notes: vec![
            line()
                .t("For the administrator: renew the intermediate CA certificate ")
                .c(ca)
                .t(" and issue the certificate again under it."),
            clock_note_en(),
        ],
    }
}

/// Expiry is judged by the server's clock.
fn clock_note_en() -> Line {
    line()
        .t("Expiry is judged by the proxy server's clock. If the dates look wrong, check the server's time (")
        .c("timedatectl")
        .t(").")
}

pub(super) fn not_yet_valid_ja(r: &CertRefusal<'_>) -> Text {
    let when = match r.not_before {
        Some(at) => format!("は {}（日本時間）から使える証明書のため", jst(at)),
        None => "は有効期間がまだ始まっていないため".to_owned(),
    };
    Text {
        title: "証明書の有効期間がまだ始まっていません".into(),
        lead: vec![
            line()
                .t("お使いの証明書")
                .append(cert_ref_ja(r.subject, None))
                .t(when)
                .t("、まだ WebORCA に接続できません。"),
        ],
        steps: vec![
            line().t("発行されたばかりの証明書の場合は、有効期間の開始時刻を過ぎてから、もう一度ページを開いてください。"),
            line()
                .t("開始時刻を過ぎても同じ画面が出る場合は、管理者に連絡してください。（管理者の方へ: サーバーと、証明書を発行したパソコンの時計が正しいか確認し、必要なら ")
                .c("orca-catool issue_client_cert")
                .t(" で発行し直してください）"),
        ],
        notes: Vec::new(),
    }
}

pub(super) fn not_yet_valid_en(r: &CertRefusal<'_>) -> Text {
    let when = match r.not_before {
        Some(at) => format!(" only becomes valid at {} ({} JST)", iso_utc(at), jst(at)),
        None => " is not valid yet".to_owned(),
    };
    Text {
        title: "The client certificate is not valid yet".into(),
        lead: vec![
            line()
                .t("The certificate")
                .append(cert_ref_en(r.subject, None))
                .t(when)
                .t(", so the connection was refused."),
        ],
        steps: vec![
            line().t("If the certificate was issued just now, wait until its start time and try again."),
            line()
                .t("Otherwise check the clocks: validity is judged by the proxy server's clock, and the start time comes from the clock of the machine that issued the certificate. Fix the wrong one (")
                .c("timedatectl")
                .t("), or issue a new certificate with ")
                .c("orca-catool issue_client_cert")
                .t("."),
        ],
        notes: Vec::new(),
    }
}

/// Whether the refused certificate names an accepted CA as its issuer: then
/// it is not the CA's name that is wrong, but the certificate (one that is not
/// a client's, or of a form not taken) or the CA's key (made again under the
/// same name).
fn issuer_is_accepted(r: &CertRefusal<'_>) -> bool {
    r.issuer
        .is_some_and(|issuer| r.expected_ca.iter().any(|ca| ca == issuer))
}

pub(super) fn unknown_ca_ja(r: &CertRefusal<'_>) -> Text {
    if issuer_is_accepted(r) {
        return Text {
            title: "この証明書ではログインできません".into(),
            lead: vec![
                line()
                    .t("選ばれた証明書")
                    .append(cert_ref_ja(r.subject, None))
                    .t("の発行元は、このサーバーが受け付ける ")
                    .c(r.issuer.unwrap_or_default())
                    .t(" と同じ名前ですが、この証明書ではログインできません。"),
                line().t("クライアント用ではない証明書（サーバー用や CA の証明書など）か、受け付けない形式の証明書か、同じ名前で作り直す前の CA が発行した証明書です。"),
            ],
            steps: vec![
                r.browser.ask_again_ja(),
                line().t("証明書の選択画面で、あなた用に発行されたクライアント証明書を選んでください。"),
                line().t("見つからない場合は、管理者に orca-catool issue_client_cert で証明書を発行してもらい、インポートしてください。"),
            ],
            notes: vec![line().t("管理者の方へ：下の技術情報が理由です。CA を作り直した場合は、プロキシの CA_CRT と利用者の証明書が同じ CA のものか確認してください。")],
        };
    }
    let first = match r.issuer {
        Some(issuer) => line()
            .t("選ばれた証明書")
            .append(cert_ref_ja(r.subject, None))
            .t("は ")
            .c(issuer)
            .t(" が発行したもので、このサーバーでは使えません。"),
        None => line().t(
            "選ばれた証明書は、このサーバーが受け付ける認証局（CA）が発行したものではありません。",
        ),
    };
    let mut choose = line()
        .t("WebORCA を開き、証明書の選択画面で、この医療機関の証明書を選んで「OK」を押します。");
    if !r.expected_ca.is_empty() {
        choose = choose
            .t("発行元が ")
            .append(ca_list(r.expected_ca, "、"))
            .t(" の証明書です。");
    }
    Text {
        title: "この医療機関の証明書ではありません".into(),
        lead: vec![
            first,
            line().t("証明書を選ぶ画面で、別の証明書（ほかのシステム用など）を選んだ可能性があります。"),
        ],
        steps: vec![
            r.browser.ask_again_ja(),
            choose,
            line().t("一覧に該当する証明書がない場合は、管理者から証明書の zip ファイルを受け取り、インポートしてください。"),
        ],
        notes: Vec::new(),
    }
}

pub(super) fn unknown_ca_en(r: &CertRefusal<'_>) -> Text {
    if issuer_is_accepted(r) {
        return Text {
            title: "This certificate cannot be used to sign in".into(),
            lead: vec![line()
                .t("The chosen certificate")
                .append(cert_ref_en(r.subject, None))
                .t(" names ")
                .c(r.issuer.unwrap_or_default())
                .t(", a CA this server accepts, as its issuer, but it cannot be used to sign in: it is not a client certificate (a server or CA certificate, say), it is of a form not accepted, or it comes from a CA made again under the same name.")],
            steps: vec![
                r.browser.ask_again_en(),
                line().t("Choose the client certificate issued to you."),
                line().t("If there is none, ask the administrator for one (orca-catool issue_client_cert) and import it."),
            ],
            notes: vec![line().t("For the administrator: the technical details below give the reason. After a CA was made again, check that CA_CRT and the users' certificates come from the same CA.")],
        };
    }
    let mut lead = line()
        .t("The chosen certificate")
        .append(cert_ref_en(r.subject, None));
    lead = match r.issuer {
        Some(issuer) => lead.t(" was issued by ").c(issuer).t(", which"),
        None => lead.t(" was issued by a CA that"),
    };
    let mut choose = line().t("Open WebORCA and choose the clinic's certificate when asked");
    choose = if r.expected_ca.is_empty() {
        choose.t(".")
    } else {
        choose
            .t(" (issuer: ")
            .append(ca_list(r.expected_ca, "; "))
            .t(").")
    };
    Text {
        title: "The certificate was issued by a CA this server does not accept".into(),
        lead: vec![lead.t(" is not accepted here. Most likely a certificate for another system was chosen in the browser's prompt, or it comes from another CA.")],
        steps: vec![
            r.browser.ask_again_en(),
            choose,
            line().t("If there is no such certificate, get one from the administrator and import it."),
        ],
        notes: vec![line().t("If the issuer shown is in fact the clinic's CA, the proxy's CA_CRT may be out of date (for example after the CA was re-created).")],
    }
}

pub(super) fn revoked_ja(r: &CertRefusal<'_>) -> Text {
    Text {
        title: "この証明書は失効しています".into(),
        lead: vec![
            line()
                .t("お使いの証明書")
                .append(cert_ref_ja(r.subject, r.serial_hex))
                .t("は、管理者によって失効（利用停止）の手続きがされているため、使えません。"),
        ],
        steps: reissue_steps_ja(r.browser, "失効した"),
        notes: vec![line().t("失効の手続きに心当たりがない場合も、管理者にご確認ください。")],
    }
}

pub(super) fn revoked_en(r: &CertRefusal<'_>) -> Text {
    Text {
        title: "This certificate has been revoked".into(),
        lead: vec![
            line()
                .t("The certificate")
                .append(cert_ref_en(r.subject, r.serial_hex))
                .t(" has been revoked by the administrator (it is on the CRL) and can no longer be used."),
        ],
        steps: reissue_steps_en(r.browser, "revoked"),
        notes: Vec::new(),
    }
}

pub(super) fn not_allowed_ja(r: &CertRefusal<'_>) -> Text {
    Text {
        title: "この証明書ではこのサーバーを利用できません".into(),
        lead: vec![
            line()
                .t("証明書")
                .append(cert_ref_ja(r.subject, None))
                .t("は正しく発行された有効なものですが、このサーバーの利用は許可されていません。"),
        ],
        steps: vec![
            line().t("管理者に、この証明書でこのサーバーを使えるようにしてもらうか、このサーバー用の証明書を発行してもらってください。"),
            r.browser.ask_again_ja().t("このサーバー用の証明書を別にお持ちの場合は、証明書の選択画面でその証明書を選んでください。"),
        ],
        notes: Vec::new(),
    }
}

pub(super) fn not_allowed_en(r: &CertRefusal<'_>) -> Text {
    Text {
        title: "This certificate is not allowed on this server".into(),
        lead: vec![
            line()
                .t("The certificate")
                .append(cert_ref_en(r.subject, None))
                .t(" is valid and issued by an accepted CA, but it is not permitted to use this server."),
        ],
        steps: vec![
            line()
                .t("To allow it, add its common name to ")
                .c("ALLOW_CN")
                .t(" in the proxy configuration, or issue a certificate with a permitted name."),
            r.browser.ask_again_en().t(" If the user has another certificate for this server, choose that one when asked."),
        ],
        notes: Vec::new(),
    }
}

pub(super) fn crl_stale_ja() -> Text {
    Text {
        title: "このサーバーの失効リストの期限が切れています".into(),
        lead: vec![line().t(
            "このサーバーが使っている証明書失効リスト（CRL）の更新期限が過ぎているため、安全のためすべての接続をお断りしています。お使いの証明書に問題はありません。",
        )],
        steps: vec![
            line()
                .t("管理者に連絡し、失効リストを新しくしてもらってください。（管理者の方へ: ")
                .c("orca-catool issue_crl")
                .t(" で新しい CRL を作り、")
                .c("CA_CRL")
                .t(" のファイルを置き換えてください）"),
            line().t("新しい失効リストが読み込まれたら、ページを再読み込みしてください。"),
        ],
        notes: Vec::new(),
    }
}

pub(super) fn crl_stale_en() -> Text {
    Text {
        title: "The clinic's revocation list is out of date".into(),
        lead: vec![line().t(
            "The certificate revocation list (CRL) this server uses is past its nextUpdate, so every connection is refused until a current one is loaded. Your certificate is not at fault.",
        )],
        steps: vec![
            line()
                .t("Ask the administrator to renew the CRL: make a new one with ")
                .c("orca-catool issue_crl")
                .t(" and replace the file named by ")
                .c("CA_CRL")
                .t(" (CRL_STALE=refuse is set)."),
            line().t("Reload the page once the new list is in place."),
        ],
        notes: Vec::new(),
    }
}

pub(super) fn not_permitted_ja(r: &CertRefusal<'_>) -> Text {
    let path = r.path.unwrap_or("/");
    Text {
        title: "この証明書ではこのページを利用できません".into(),
        lead: vec![
            line()
                .t("証明書")
                .append(cert_ref_ja(r.subject, None))
                .t("は有効ですが、")
                .c(path)
                .t(" の利用は許可されていません。"),
        ],
        steps: vec![
            line().t("ほかのページは、これまでどおり利用できる場合があります。"),
            line().t("このページが必要な場合は、管理者に、この証明書で利用できるようにしてもらうか、利用できる証明書を発行してもらってください。"),
        ],
        notes: Vec::new(),
    }
}

pub(super) fn not_permitted_en(r: &CertRefusal<'_>) -> Text {
    let path = r.path.unwrap_or("/");
    Text {
        title: "This certificate may not use this path".into(),
        lead: vec![
            line()
                .t("The certificate")
                .append(cert_ref_en(r.subject, None))
                .t(" is valid, but it is not permitted to use ")
                .c(path)
                .t("."),
        ],
        steps: vec![
            line().t("Other paths may still be allowed for it."),
            line()
                .t("To allow it, add a rule for this path and certificate to the file named by ")
                .c("ACCESS_POLICY")
                .t(", then reload the proxy; ")
                .c("weborca-mtls-proxy check --as-cert FILE --path PATH")
                .t(" shows which rule decides."),
        ],
        notes: Vec::new(),
    }
}
