//! Which browser a certificate page's steps are written for, told from the
//! User-Agent, and the phrases that differ between them: where a `.p12` and
//! `ca.crt` are imported, how the browser is quit, and how it is made to ask
//! for a certificate again. WebORCA's own guide is written for Chrome, so
//! Chrome's steps are the default for every browser not told apart here.

use http::HeaderValue;

use super::{Line, line};

/// The browser a certificate page's steps are written for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Browser {
    /// Chrome and Chromium, and any browser not told apart below
    #[default]
    Chrome,
    /// Microsoft Edge (Chromium, with its own menus)
    Edge,
    /// Firefox (its own certificate store and menus)
    Firefox,
}

impl Browser {
    /// The browser that sent `user_agent`. Edge says `Edg/` (after `Chrome/`);
    /// Firefox says `Firefox/` (on iOS it is WebKit and says `FxiOS/`).
    pub fn of(user_agent: Option<&HeaderValue>) -> Browser {
        let ua = user_agent.map_or(&[][..], HeaderValue::as_bytes);
        let has = |needle: &[u8]| ua.windows(needle.len()).any(|w| w == needle);
        if has(b"Firefox/") {
            Browser::Firefox
        } else if has(b"Edg/") {
            Browser::Edge
        } else {
            Browser::Chrome
        }
    }

    /// The screen a client certificate is imported on (and its dates seen).
    pub(super) fn import_path_ja(self) -> &'static str {
        match self {
            Browser::Chrome => {
                "Chrome の「設定」→「プライバシーとセキュリティ」→「セキュリティ」→「デバイス証明書の管理」"
            }
            Browser::Edge => {
                "Edge の「設定」→「プライバシー、検索、サービス」→「セキュリティ」→「証明書の管理」"
            }
            Browser::Firefox => {
                "Firefox の「設定」→「プライバシーとセキュリティ」→「証明書」の「証明書を表示...」→「あなたの証明書」タブ"
            }
        }
    }

    pub(super) fn import_path_en(self) -> &'static str {
        match self {
            Browser::Chrome => {
                "In Chrome, open Settings → Privacy and security → Security → Manage device certificates"
            }
            Browser::Edge => {
                "In Edge, open Settings → Privacy, search, and services → Security → Manage certificates"
            }
            Browser::Firefox => {
                "In Firefox, open Settings → Privacy & Security → Certificates → View Certificates… → Your Certificates"
            }
        }
    }

    /// That screen's name, where a certificate's dates can be looked at.
    pub(super) fn manager_ja(self) -> &'static str {
        match self {
            Browser::Chrome => "「デバイス証明書の管理」",
            Browser::Edge => "「証明書の管理」",
            Browser::Firefox => "証明書マネージャーの「あなたの証明書」タブ",
        }
    }

    pub(super) fn manager_en(self) -> &'static str {
        match self {
            Browser::Chrome => "Chrome's certificate manager",
            Browser::Edge => "Edge's certificate manager",
            Browser::Firefox => "Firefox's Certificate Manager (Your Certificates)",
        }
    }

    /// Importing `ca.crt`, once the `.p12` is in.
    pub(super) fn ca_step_ja(self) -> Line {
        match self {
            Browser::Chrome | Browser::Edge => {
                line().t("同じ手順で ").c("ca.crt").t(" もインポートします。")
            }
            Browser::Firefox => line()
                .t("同じ画面の「認証局証明書」タブで「インポート...」から ")
                .c("ca.crt")
                .t(" を選び、「この認証局によるウェブサイトの識別を信頼する」にチェックを入れます。"),
        }
    }

    pub(super) fn ca_step_en(self) -> Line {
        match self {
            Browser::Chrome | Browser::Edge => line().t("Import ").c("ca.crt").t(" the same way."),
            Browser::Firefox => line()
                .t("On the Authorities tab, click Import…, choose ")
                .c("ca.crt")
                .t(" and tick \"Trust this CA to identify websites\"."),
        }
    }

    /// Quitting the browser completely and starting it again.
    pub(super) fn restart_ja(self) -> Line {
        let restart = line().t(match self {
            Browser::Chrome => {
                "Chrome を完全に終了して（右上の「⋮」メニュー →「終了」）、もう一度起動します。"
            }
            Browser::Edge => {
                "Edge を完全に終了して（右上の「…」メニュー →「Microsoft Edge を閉じる」）、もう一度起動します。"
            }
            Browser::Firefox => {
                "Firefox を完全に終了して（右上の「≡」メニュー →「終了」）、もう一度起動します。"
            }
        });
        self.with_forget_ja(restart)
    }

    pub(super) fn restart_en(self) -> Line {
        let restart = line().t(match self {
            Browser::Chrome => "Quit Chrome completely (⋮ menu → Exit) and start it again.",
            Browser::Edge => {
                "Quit Edge completely (… menu → Close Microsoft Edge) and start it again."
            }
            Browser::Firefox => "Quit Firefox completely (≡ menu → Exit) and start it again.",
        });
        self.with_forget_en(restart)
    }

    /// Firefox keeps a decision remembered "permanently" across restarts:
    /// it is deleted first, so that the restart makes Firefox ask again.
    fn with_forget_ja(self, restart: Line) -> Line {
        match self {
            Browser::Firefox => line()
                .t("証明書を選ぶときに「今後も同様に処理する」で「次回からは確認しない」を選んでいた場合は、先に証明書マネージャーの「認証の決定」タブでこのサーバーの項目を削除します。")
                .append(restart),
            Browser::Chrome | Browser::Edge => restart,
        }
    }

    fn with_forget_en(self, restart: Line) -> Line {
        match self {
            Browser::Firefox => line()
                .t("If \"Permanently\" was chosen under \"Remember this decision\" when the certificate was chosen, first delete this server's entry on the Certificate Manager's Authentication Decisions tab. ")
                .append(restart),
            Browser::Chrome | Browser::Edge => restart,
        }
    }

    /// Making the browser ask which certificate to send again: Chrome and
    /// Edge keep the one chosen until they restart (Edge's startup boost
    /// keeps it running after its window is closed), Firefox a decision
    /// remembered "permanently" until it is deleted ([`Browser::restart_ja`]
    /// says so for Firefox).
    pub(super) fn ask_again_ja(self) -> Line {
        match self {
            Browser::Chrome => self
                .restart_ja()
                .t("Chrome は一度選んだ証明書を覚えているため、再起動しないと選択画面が出ません。"),
            Browser::Edge => self.restart_ja().t("Edge は一度選んだ証明書を覚えているため、再起動しないと選択画面が出ません。それでも出ない場合は、「設定」→「システムとパフォーマンス」で「スタートアップ ブースト」をオフにしてから、もう一度終了します。"),
            Browser::Firefox => self.restart_ja(),
        }
    }

    pub(super) fn ask_again_en(self) -> Line {
        match self {
            Browser::Chrome => self
                .restart_en()
                .t(" Chrome remembers the chosen certificate until it restarts."),
            Browser::Edge => self.restart_en().t(" Edge remembers the chosen certificate until it restarts; if it still does not ask, turn off Startup boost (Settings → System and performance) and quit it again."),
            Browser::Firefox => self.restart_en(),
        }
    }

    /// Why no certificate may be offered at all, said of this browser.
    pub(super) fn hides_expired_ja(self) -> &'static str {
        match self {
            Browser::Chrome => "Chrome は有効期限切れの証明書を選択画面に出しません。",
            Browser::Edge => "Edge は有効期限切れの証明書を選択画面に出しません。",
            // Firefox's dialog is not said to hide them
            Browser::Firefox => "",
        }
    }

    pub(super) fn hides_expired_en(self) -> &'static str {
        match self {
            Browser::Chrome => " — Chrome does not offer expired certificates at all —",
            Browser::Edge => " — Edge does not offer expired certificates at all —",
            Browser::Firefox => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_told_apart_by_their_user_agent() {
        let of = |ua: &str| Browser::of(Some(&HeaderValue::from_str(ua).unwrap()));
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";
        assert_eq!(of(chrome), Browser::Chrome);
        assert_eq!(of(edge), Browser::Edge);
        assert_eq!(of(firefox), Browser::Firefox);
        assert_eq!(of("curl/8.5.0"), Browser::Chrome);
        assert_eq!(Browser::of(None), Browser::Chrome);
    }
}
