//! What the demo prints once the proxy listens: the curl commands and the
//! Chrome import steps of WebORCA's guide, in Japanese and English.

use super::*;

// ---------------------------------------------------------------------------------------
// What to try, printed once the proxy listens.
// ---------------------------------------------------------------------------------------

/// A path or argument as a shell word: quoted only when it has to be.
pub(super) fn sh(word: &str) -> String {
    let plain = word
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%=".contains(&b));
    if plain && !word.is_empty() {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

pub(super) fn shp(path: &Path) -> String {
    sh(&path.display().to_string())
}

/// The three curl commands: PEM, .p12, and none (the 403 page).
pub(super) fn curl_steps(files: &DemoFiles, url: &str) -> String {
    let ca = shp(&files.ca_crt);
    let p12 = sh(&format!(
        "{}:{}",
        files.user_p12.display(),
        files.passphrase
    ));
    format!(
        "1. curl — PEM の証明書と鍵 / PEM certificate and key:\n   \
         curl --cacert {ca} --cert {crt} --key {key} {url}\n\n\
         2. curl — .p12 とパスフレーズ / the .p12 and its passphrase:\n   \
         curl --cacert {ca} --cert {p12} --cert-type P12 {url}\n\n\
         3. curl — 証明書なし: 403 のページ / no certificate: the 403 page:\n   \
         curl --cacert {ca} {url}\n\n",
        crt = shp(&files.user_crt),
        key = shp(&files.user_pem),
    )
}

/// The Chrome steps of WebORCA's guide, in Japanese and in English.
pub(super) fn chrome_steps(files: &DemoFiles, url: &str) -> String {
    let (p12, ca, pass) = (
        files.user_p12.display(),
        files.ca_crt.display(),
        &files.passphrase,
    );
    format!(
        "4. Google Chrome:\n   \
         右上のメニュー →「設定」→「プライバシーとセキュリティ」→「セキュリティ」→「デバイス証明書の管理」\n   \
         →「インポート」で {p12} を選び、パスフレーズ {pass} を入力します。\n   \
         同じ手順で {ca} もインポートします (パスワードは求められません。\n   \
         Windows では「信頼されたルート証明機関」、Linux では「認証局」に入れます)。\n   \
         {url} を開き、証明書の選択画面で user1 を選んで「OK」を押します。\n   \
         試し終えたら、インポートした user1 とデモ用 CA の証明書を削除してください。\n\n   \
         Menu at the top right → Settings → Privacy and security → Security → Manage device certificates\n   \
         → Import: choose {p12} and enter the passphrase {pass}.\n   \
         Import {ca} the same way (no password is asked; on Windows into\n   \
         \u{201c}Trusted Root Certification Authorities\u{201d}, on Linux under \u{201c}Authorities\u{201d}).\n   \
         Open {url}, choose user1 when asked for a certificate, and press OK.\n   \
         When done, remove the imported user1 and demo CA certificates.\n\n"
    )
}

/// Everything printed to stdout once the proxy listens on `port`.
pub(super) fn instructions(files: &DemoFiles, port: u16, stand_in: SocketAddr) -> String {
    let url = format!("https://localhost:{port}/");
    let rule = "=".repeat(76);
    format!(
        "\n{rule}\n weborca-mtls-proxy デモ / demo   {url}\n{rule}\n\
         フォルダ / folder: {dir}\n  \
         {CA_CRT}, {SERVER_STEM}.crt/.pem, {USER_STEM}.crt/.pem/.p12/.pass, {CONF}\n  \
         (orca-catool と同じファイル名 / orca-catool's file names)\n\
         WebORCA の代わり / stand-in for WebORCA: http://{stand_in}\n\
         user1 の .p12 のパスフレーズ / passphrase of user1's .p12: {pass}\n\n\
         {curl}{chrome}\
         5. WebSocket (push-exchanger): wss://localhost:{port}/ws — エコー / echo\n\n\
         Ctrl-C で終了します / Press Ctrl-C to stop.\n{rule}\n",
        dir = files.dir.display(),
        pass = files.passphrase,
        curl = curl_steps(files, &url),
        chrome = chrome_steps(files, &url),
    )
}
