//! The clinic-shaped page: one HTML page, 60 static assets (24 scripts, 12
//! style sheets, 24 PNG images) whose sizes are spread log-uniformly over
//! 2–200 KiB, and 5 JSON API calls in WebORCA's `/api01rv2/` style.
//!
//! Everything is generated from fixed seeds, so every load of every way
//! fetches the same bytes. The backend process builds it once at start.

use std::collections::HashMap;
use std::io::Write;

use bytes::Bytes;

/// How many static assets the page references.
pub const ASSETS: usize = 60;
/// Smallest and largest asset, in bytes.
const MIN_SIZE: f64 = 2.0 * 1024.0;
const MAX_SIZE: f64 = 200.0 * 1024.0;
/// The API calls the page makes: the first alone (as an app asks for the
/// system's settings before anything else), then the other four at once.
pub const APIS: [&str; 5] = [
    "/api01rv2/system01lstv2?class=02",
    "/api01rv2/patientgetv2?id=00001&format=json",
    "/api01rv2/acceptlstv2?class=01",
    "/api01rv2/appointlstv2?class=01",
    "/api01rv2/medicalgetv2?class=01",
];

/// One answer the backend can give.
pub struct Resource {
    pub content_type: &'static str,
    pub body: Bytes,
}

/// Path → resource for every GET the page makes (the page itself at `/`).
pub fn build() -> HashMap<String, Resource> {
    let mut site = HashMap::new();
    let mut refs = Vec::new();
    for i in 0..ASSETS {
        // log-uniform spread: as many small files as large ones per decade
        let size = (MIN_SIZE * (MAX_SIZE / MIN_SIZE).powf(i as f64 / (ASSETS - 1) as f64)) as usize;
        // the kinds take turns, so each kind has small and large files
        let (path, content_type, body) = match i % 5 {
            0 | 3 => (
                format!("/orca/static/js/m{i:02}.js"),
                "text/javascript",
                js(i, size),
            ),
            2 => (
                format!("/orca/static/css/s{i:02}.css"),
                "text/css",
                css(i, size),
            ),
            _ => (
                format!("/orca/static/img/i{i:02}.png"),
                "image/png",
                png(i, size),
            ),
        };
        refs.push((path.clone(), content_type));
        site.insert(
            path,
            Resource {
                content_type,
                body: Bytes::from(body),
            },
        );
    }
    // a fixed shuffle, so large and small files are requested interleaved
    let order: Vec<usize> = (0..ASSETS).map(|k| (k * 37) % ASSETS).collect();
    let html = page(order.iter().map(|&k| (&refs[k].0, refs[k].1)));
    site.insert(
        "/".to_string(),
        Resource {
            content_type: "text/html; charset=utf-8",
            body: Bytes::from(html),
        },
    );
    site
}

/// The JSON answer to one API call: about 0.3–8 KiB, like a list of patients.
pub fn api_answer(path: &str) -> Bytes {
    let n = 1 + APIS.iter().position(|a| *a == path).unwrap_or(0) * 8;
    let rows: Vec<String> = (0..n)
        .map(|k| {
            format!(
                r#"{{"Patient_ID":"{:05}","WholeName":"日医 太郎{k}","WholeName_inKana":"ニチイ タロウ","BirthDate":"1950-01-{:02}","Sex":"1","Department_Code":"01","Physician_Code":"10001","Acceptance_Time":"09:{:02}:00"}}"#,
                k + 1,
                k % 28 + 1,
                k % 60
            )
        })
        .collect();
    Bytes::from(format!(
        r#"{{"Information_Date":"2026-12-02","Api_Result":"00","Api_Result_Message":"処理終了","Reskey":"bench","List":[{}]}}"#,
        rows.join(",")
    ))
}

/// The HTML: style sheets in the head, scripts deferred (they run in order
/// before DOMContentLoaded), images in the body; the API calls start at
/// DOMContentLoaded, when the app's scripts have run, as a single-page app's
/// do. Completion is the load event AND all five answers: then
/// `window.__pageload` holds the page's own timings and `document.title` is
/// `done`. An error is recorded there too, so the bench does not wait in vain.
fn page<'a>(refs: impl Iterator<Item = (&'a String, &'static str)>) -> String {
    let mut head = String::new();
    let mut body = String::new();
    for (k, (path, kind)) in refs.enumerate() {
        match kind {
            "text/css" => head.push_str(&format!("<link rel=\"stylesheet\" href=\"{path}\">\n")),
            "text/javascript" => {
                head.push_str(&format!("<script defer src=\"{path}\"></script>\n"))
            }
            _ => body.push_str(&format!(
                "<img src=\"{path}\" alt=\"\" width=\"64\" height=\"{}\">\n",
                16 + k % 48
            )),
        }
    }
    let apis: Vec<String> = APIS.iter().map(|a| format!("{a:?}")).collect();
    format!(
        r#"<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>loading</title>
{head}<script>
(() => {{
  const apis = [{apis}];
  const call = (path) => fetch(path, {{
    method: "POST",
    headers: {{"Content-Type": "application/json"}},
    body: JSON.stringify({{"request": {{"Request_Number": "01", "Karte_Uid": "bench"}}}}),
  }}).then((r) => {{ if (!r.ok) throw new Error(path + " answered " + r.status); return r.json(); }});
  const loaded = new Promise((ok) => addEventListener("load", ok));
  const answered = new Promise((ok) => addEventListener("DOMContentLoaded", ok))
    .then(() => call(apis[0]))
    .then((first) => Promise.all(apis.slice(1).map(call)).then((rest) => [first, ...rest]));
  Promise.all([loaded, answered]).then(([, answers]) => {{
    const done = performance.now();
    const nav = performance.getEntriesByType("navigation")[0];
    const res = performance.getEntriesByType("resource");
    const protocols = new Set(res.map((e) => e.nextHopProtocol));
    protocols.add(nav.nextHopProtocol);
    window.__pageload = {{
      done, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventStart,
      resources: res.length, protocols: [...protocols].sort().join(","),
      scripts: window.__scripts | 0,
      ok: answers.length === 5 && answers.every((a) => a.Api_Result === "00"),
    }};
    document.title = "done";
  }}, (e) => {{ window.__pageload = {{ error: String(e) }}; }});
}})();
</script>
</head><body>
<h1>日医標準レセプトソフト</h1>
{body}</body></html>
"#,
        apis = apis.join(", ")
    )
}

/// A small deterministic generator (xorshift64*): fixed content without a crate.
struct Rng(u64);

impl Rng {
    fn new(seed: usize) -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15 ^ (seed as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A script of about `size` bytes that counts itself and holds a string of
/// filler, so it is parsed and run like a bundle, not skipped as a comment.
fn js(seed: usize, size: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = Rng::new(seed);
    let start = format!(
        "/* bench module {seed} */\n(function () {{\n  window.__scripts = (window.__scripts || 0) + 1;\n  var data = \""
    );
    let end = "\";\n  window.__bytes = (window.__bytes || 0) + data.length;\n})();\n";
    let mut out = start.into_bytes();
    while out.len() + end.len() < size {
        out.push(ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize]);
    }
    out.extend_from_slice(end.as_bytes());
    out
}

/// A style sheet of about `size` bytes of distinct rules.
fn css(seed: usize, size: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = format!("/* bench styles {seed} */\nbody {{ font-family: sans-serif; }}\n");
    let mut k = 0;
    while out.len() < size {
        out.push_str(&format!(
            ".s{seed}-{k} {{ margin: {}px; color: #{:06x}; }}\n",
            k % 7,
            rng.next() & 0xFF_FFFF
        ));
        k += 1;
    }
    out.into_bytes()
}

/// A valid 256-pixel-wide RGB PNG of about `size` bytes: noise pixels,
/// deflate-stored (no compression), so the file is as large as asked and
/// the browser still decodes a real image.
fn png(seed: usize, size: usize) -> Vec<u8> {
    const WIDTH: usize = 256;
    let stride = 1 + WIDTH * 3;
    let height = (size.saturating_sub(120) / stride).max(1);
    let mut rng = Rng::new(seed);
    let mut raw = Vec::with_capacity(stride * height);
    for _ in 0..height {
        raw.push(0); // filter: none
        raw.extend((0..WIDTH * 3).map(|_| rng.next() as u8));
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::none());
    z.write_all(&raw).expect("deflate to memory");
    let idat = z.finish().expect("deflate to memory");
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(WIDTH as u32).to_be_bytes());
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter set, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", &ihdr), (b"IDAT", &idat), (b"IEND", &Vec::new())] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    out
}
