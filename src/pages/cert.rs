//! The certificate refusal pages: which words each refusal gets (the texts
//! themselves are in `cert_words.rs`), the facts listed under them, and the
//! phrases several pages share (the certificate named, the CA list, the
//! steps to reissue, in the words of the browser that asked: `browser.rs`).

use super::*;

pub(super) fn cert_content(r: &CertRefusal<'_>) -> Content {
    let (ja, en) = match r.kind {
        CertErrorKind::Missing => (missing_ja(r), missing_en(r)),
        CertErrorKind::Expired => (expired_ja(r), expired_en(r)),
        CertErrorKind::NotYetValid => (not_yet_valid_ja(r), not_yet_valid_en(r)),
        CertErrorKind::UnknownCa => (unknown_ca_ja(r), unknown_ca_en(r)),
        CertErrorKind::Revoked => (revoked_ja(r), revoked_en(r)),
        CertErrorKind::NotAllowed => (not_allowed_ja(r), not_allowed_en(r)),
        CertErrorKind::CrlStale => (crl_stale_ja(), crl_stale_en()),
        CertErrorKind::NotPermitted => (not_permitted_ja(r), not_permitted_en(r)),
    };
    Content {
        status: StatusCode::FORBIDDEN,
        cert_error: Some(r.kind.as_str()),
        ja,
        en,
        facts: cert_facts(r),
    }
}

pub(super) fn cert_facts(r: &CertRefusal<'_>) -> Vec<Fact> {
    let mut facts = vec![fact("理由コード", "Reason code", r.kind.as_str())];
    let optional = [
        ("パス", "Path", r.path.map(str::to_owned)),
        ("サブジェクト", "Subject", r.subject.map(str::to_owned)),
        ("発行者", "Issuer", r.issuer.map(str::to_owned)),
        ("シリアル番号", "Serial", r.serial_hex.map(str::to_owned)),
        ("有効期間の開始", "Not before", r.not_before.map(both_times)),
        ("有効期間の終了", "Not after", r.not_after.map(both_times)),
    ];
    for (ja, en, value) in optional {
        facts.extend(value.map(|v| fact(ja, en, v)));
    }
    if let Some((ca, at)) = r.expired_ca {
        let value = format!("{ca} ({})", both_times(at));
        facts.push(fact(
            "期限切れの中間認証局",
            "Expired intermediate CA",
            value,
        ));
    }
    if !r.expected_ca.is_empty() {
        facts.push(Fact {
            ja: "受け付ける認証局",
            en: "Accepted CAs",
            values: r.expected_ca.to_vec(),
        });
    }
    facts.extend(r.detail.map(|d| fact("詳細", "Detail", d)));
    facts
}

/// `（CN=…、シリアル番号 0a1b）` after 「お使いの証明書」, or nothing.
pub(super) fn cert_ref_ja(subject: Option<&str>, serial: Option<&str>) -> Line {
    match (subject, serial) {
        (None, None) => line(),
        (Some(s), None) => line().t("（").c(s).t("）"),
        (None, Some(n)) => line().t("（シリアル番号 ").c(n).t("）"),
        (Some(s), Some(n)) => line().t("（").c(s).t("、シリアル番号 ").c(n).t("）"),
    }
}

/// ` CN=… (serial 0a1b)` after "The certificate", or nothing.
pub(super) fn cert_ref_en(subject: Option<&str>, serial: Option<&str>) -> Line {
    let mut l = line();
    if let Some(s) = subject {
        l = l.t(" ").c(s);
    }
    if let Some(n) = serial {
        l = l.t(" (serial ").c(n).t(")");
    }
    l
}

/// CA subjects as code spans joined by `sep`.
pub(super) fn ca_list(cas: &[String], sep: &str) -> Line {
    let mut l = line();
    for (i, ca) in cas.iter().enumerate() {
        if i > 0 {
            l = l.t(sep);
        }
        l = l.c(ca.as_str());
    }
    l
}

/// The steps for getting a fresh certificate into the browser (expired, revoked).
pub(super) fn reissue_steps_ja(b: Browser, old: &str) -> Vec<Line> {
    vec![
        line()
            .t("管理者に、新しい証明書の発行を依頼してください。（管理者の方へ: ")
            .c("orca-catool issue_client_cert")
            .t(" で発行できます）"),
        line()
            .t("受け取った zip ファイルを展開し、")
            .t(b.import_path_ja())
            .t("→「インポート」から新しい ")
            .c(".p12")
            .t(" ファイルを取り込みます。パスフレーズは ")
            .c(".pass")
            .t(" ファイルに書かれています。"),
        line().t(format!(
            "{old}古い証明書は、同じ画面で削除しておくと選び間違いを防げます。"
        )),
        b.restart_ja()
            .t("WebORCA を開き、証明書の選択画面で新しい証明書を選んで「OK」を押します。"),
    ]
}

pub(super) fn reissue_steps_en(b: Browser, old: &str) -> Vec<Line> {
    vec![
        line()
            .t("Ask the administrator to issue a new certificate (")
            .c("orca-catool issue_client_cert")
            .t(")."),
        line()
            .t("Unzip it. ")
            .t(b.import_path_en())
            .t(", click Import and choose the new ")
            .c(".p12")
            .t(" file; the passphrase is in the ")
            .c(".pass")
            .t(" file."),
        line().t(format!(
            "Remove the {old} certificate there as well, so it cannot be chosen by mistake."
        )),
        b.restart_en()
            .t(" Open WebORCA and choose the new certificate when asked."),
    ]
}
