//! The words of the backend and protocol pages (WebORCA down or slow, plain
//! http:// on the TLS port), Japanese and English.

use super::*;

pub(super) fn backend_down_ja() -> Text {
    Text {
        title: "WebORCA が応答していません".into(),
        lead: vec![line().t("このページを表示している中継用のサーバーは動いていますが、その先の WebORCA に接続できませんでした。WebORCA が起動中・再起動中か、停止している可能性があります。")],
        steps: vec![
            line().t("1〜2 分ほど待ってから、ページを再読み込み（F5 キー）してください。"),
            line().t("何度試しても同じ画面が出る場合は、管理者またはサポート窓口に連絡し、下の「技術情報」の内容を伝えてください。"),
        ],
        notes: Vec::new(),
    }
}

pub(super) fn backend_down_en(backend: &str, detail: &str) -> Text {
    Text {
        title: "WebORCA is not answering".into(),
        lead: vec![
            line()
                .t("The TLS proxy is running but could not connect to WebORCA at ")
                .c(backend)
                .t(": ")
                .t(detail),
        ],
        steps: vec![
            line()
                .t("Check that WebORCA is running and listening on ")
                .c(backend)
                .t(" (service status, its log, ")
                .c("ss -ltnp")
                .t(")."),
            line().t("If WebORCA was just restarted, wait until it has finished starting; the next request will go through."),
        ],
        notes: Vec::new(),
    }
}

pub(super) fn timeout_ja(secs: u64) -> Text {
    Text {
        title: "WebORCA の応答に時間がかかっています".into(),
        lead: vec![line().t(format!("WebORCA から {secs} 秒以内に応答がなかったため、待つのをやめました。WebORCA が混み合っているか、時間のかかる処理をしている可能性があります。"))],
        steps: vec![
            line().t("直前に登録や更新をしていた場合は、すぐにやり直さず、まずその内容が WebORCA に反映されているか確認してください。処理そのものは終わっていることがあります。"),
            line().t("少し待ってから、もう一度操作してください。"),
            line().t("何度も起きる場合は、管理者またはサポート窓口に連絡し、下の「技術情報」の内容を伝えてください。"),
        ],
        notes: Vec::new(),
    }
}

pub(super) fn timeout_en(backend: &str, secs: u64) -> Text {
    Text {
        title: "WebORCA took too long to answer".into(),
        lead: vec![
            line()
                .t("WebORCA at ")
                .c(backend)
                .t(format!(" did not answer within {secs} s, so the proxy gave up. The request may still have completed on WebORCA's side.")),
        ],
        steps: vec![
            line().t("Before repeating a request that changes data, check whether it has already taken effect."),
            line().t(format!("If this happens often, look at WebORCA's load and logs, or raise the proxy's backend timeout (currently {secs} s).")),
        ],
        notes: Vec::new(),
    }
}

pub(super) fn plain_http_ja() -> Text {
    Text {
        title: "https:// で開いてください".into(),
        lead: vec![line().t("このサーバーは暗号化された接続（https://）専用です。http:// で始まるアドレスで開かれたため、表示できませんでした。")],
        steps: vec![
            line().t("アドレスバーに ").c("https://（サーバー名）:8000").t(" と入力して開き直してください（「http」ではなく「https」です）。"),
            line().t("ブックマークやデスクトップのショートカットから開いた場合は、そのアドレスも https:// に直しておくと、次から同じ画面が出ません。"),
        ],
        notes: Vec::new(),
    }
}

pub(super) fn plain_http_en() -> Text {
    Text {
        title: "This port only speaks HTTPS".into(),
        lead: vec![line().t("A plain HTTP request without a Host header naming one host:port arrived on the TLS port, so the proxy cannot even redirect it.")],
        steps: vec![
            line().t("Use ").c("https://(server):8000").t("."),
            line().t("Fix bookmarks, shortcuts or client settings that still use http://."),
        ],
        notes: Vec::new(),
    }
}
