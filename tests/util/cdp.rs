//! Headless Chromium driven over the DevTools protocol (a WebSocket to the
//! browser, one flattened session per page): navigate, read the DOM, click,
//! take screenshots. Enough for the console tests; every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Child;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Longest wait for one answer or event.
const WAIT: Duration = Duration::from_secs(30);

/// A running Chromium and one page in it.
pub struct Chromium {
    _child: Child,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
}

impl Chromium {
    /// Starts Chromium with `home` as HOME (its NSS database with the
    /// certificates), `policy` as its managed policy (chromium.rs) and a
    /// fresh profile, and opens a blank page.
    pub async fn start(home: &Path, policy: &str) -> Chromium {
        let profile = home.join("cdp-profile");
        let mut child = super::chromium::command(policy)
            .env("HOME", home)
            .args([
                "--window-size=1200,1400",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium (unshare)");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(WAIT, async {
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_string();
                }
                seen.push(line);
            }
            panic!("Chromium ended without a DevTools address: {seen:#?}");
        })
        .await
        .expect("Chromium printed no DevTools address within 30 s");
        // keep reading stderr so Chromium never blocks on a full pipe
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("DevTools WebSocket");
        let mut c = Chromium {
            _child: child,
            ws,
            session: String::new(),
            next_id: 1,
        };
        let target = c
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = c
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        c.session = attached["sessionId"].as_str().unwrap().to_string();
        c.page_call("Page.enable", json!({})).await;
        c
    }

    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .expect("DevTools send");
        loop {
            let v = self.next_message(method).await;
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    async fn next_message(&mut self, waiting_for: &str) -> Value {
        let msg = tokio::time::timeout(WAIT, self.ws.next())
            .await
            .unwrap_or_else(|_| panic!("no DevTools answer for {waiting_for} within 30 s"))
            .expect("DevTools closed")
            .expect("DevTools read");
        match msg {
            Message::Text(t) => serde_json::from_str(t.as_str()).expect("DevTools JSON"),
            _ => Value::Null,
        }
    }

    async fn page_call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.call(Some(&session), method, params).await
    }

    /// Waits for the page's load event.
    async fn loaded(&mut self) {
        loop {
            let v = self.next_message("Page.loadEventFired").await;
            if v["method"] == "Page.loadEventFired" {
                return;
            }
        }
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn open(&mut self, url: &str) {
        let r = self.page_call("Page.navigate", json!({"url": url})).await;
        assert!(r.get("errorText").is_none(), "{url}: {r}");
        self.loaded().await;
    }

    /// The value of a JavaScript expression in the page (the test's own
    /// probe; the console itself runs no script).
    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .page_call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Clicks the centre of the element `css` as a mouse would, and waits
    /// for the page it leads to.
    pub async fn click(&mut self, css: &str) {
        let js = format!(
            "(() => {{ const r = document.querySelector({css:?}).getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        );
        let at = self.eval(&js).await;
        let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.page_call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
        self.loaded().await;
    }

    /// Saves a full-page PNG to `path`.
    pub async fn screenshot(&mut self, path: &Path) -> PathBuf {
        self.screenshot_scaled(path, 1.0).await
    }

    /// Saves a full-page PNG to `path`, scaled by `scale` (a small copy for the README).
    pub async fn screenshot_scaled(&mut self, path: &Path, scale: f64) -> PathBuf {
        let size = self
            .eval("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            .await;
        let clip = json!({
            "x": 0, "y": 0, "scale": scale,
            "width": size[0].as_f64().unwrap(), "height": size[1].as_f64().unwrap(),
        });
        let r = self
            .page_call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true, "clip": clip}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
        path.to_path_buf()
    }
}
