//! Rendering a page's content as HTML (with its CSS) or as plain text.

use super::*;

pub(super) fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

pub(super) fn line_html(l: &Line, out: &mut String) {
    for part in &l.0 {
        match part {
            Inline::Text(t) => escape_html(t, out),
            Inline::Code(c) => {
                out.push_str("<code>");
                escape_html(c, out);
                out.push_str("</code>");
            }
        }
    }
}

pub(super) fn line_text(l: &Line) -> String {
    l.0.iter()
        .map(|part| match part {
            Inline::Text(t) | Inline::Code(t) => t.as_str(),
        })
        .collect()
}

/// Labels that differ between the two language parts.
pub(super) struct Labels {
    eyebrow: &'static str,
    steps: &'static str,
}

pub(super) const JA: Labels = Labels {
    eyebrow: "WebORCA 接続エラー",
    steps: "対処方法",
};
pub(super) const EN: Labels = Labels {
    eyebrow: "In English",
    steps: "What to do",
};

pub(super) fn to_html(content: &Content) -> String {
    let mut out = String::with_capacity(8 * 1024);
    out.push_str("<!doctype html>\n<html lang=\"ja\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<meta name=\"robots\" content=\"noindex\">\n<title>");
    escape_html(&content.ja.title, &mut out);
    out.push_str(" – WebORCA</title>\n<style>");
    out.push_str(CSS);
    out.push_str("</style>\n</head>\n<body>\n<main>\n");
    let code = status_line(content.status);
    text_html(&content.ja, &JA, &code, "ja", &mut out);
    facts_html(content, &mut out);
    text_html(&content.en, &EN, &code, "en", &mut out);
    out.push_str("<p class=\"foot\">weborca-mtls-proxy</p>\n</main>\n</body>\n</html>\n");
    out
}

pub(super) fn text_html(text: &Text, labels: &Labels, code: &str, lang: &str, out: &mut String) {
    let (open, close) = if lang == "ja" {
        ("<h1>", "</h1>")
    } else {
        ("<h2 class=\"title\">", "</h2>")
    };
    out.push_str(&format!(
        "<section class=\"card {lang}\" lang=\"{lang}\">\n<p class=\"eyebrow\">"
    ));
    escape_html(&format!("{} · {code}", labels.eyebrow), out);
    out.push_str(&format!("</p>\n{open}"));
    escape_html(&text.title, out);
    out.push_str(&format!("{close}\n"));
    for l in &text.lead {
        out.push_str("<p>");
        line_html(l, out);
        out.push_str("</p>\n");
    }
    if !text.steps.is_empty() {
        // Japanese part: h1 title, h2 steps; English part sits under h2.
        let level = if lang == "ja" { "h2" } else { "h3" };
        out.push_str(&format!("<{level} class=\"steps\">"));
        escape_html(labels.steps, out);
        out.push_str(&format!("</{level}>\n<ol>\n"));
        for step in &text.steps {
            out.push_str("<li>");
            line_html(step, out);
            out.push_str("</li>\n");
        }
        out.push_str("</ol>\n");
    }
    for note in &text.notes {
        out.push_str("<p class=\"note\">");
        line_html(note, out);
        out.push_str("</p>\n");
    }
    out.push_str("</section>\n");
}

pub(super) fn facts_html(content: &Content, out: &mut String) {
    out.push_str("<section class=\"tech\">\n<h2>技術情報 <span lang=\"en\">/ Technical details</span></h2>\n<dl>\n");
    let status = fact(
        "HTTP ステータス",
        "HTTP status",
        status_line(content.status),
    );
    for f in std::iter::once(&status).chain(&content.facts) {
        out.push_str("<dt>");
        escape_html(f.ja, out);
        out.push_str(" <span lang=\"en\">/ ");
        escape_html(f.en, out);
        out.push_str("</span></dt>\n<dd>");
        for (i, value) in f.values.iter().enumerate() {
            if i > 0 {
                out.push_str("<br>");
            }
            escape_html(value, out);
        }
        out.push_str("</dd>\n");
    }
    out.push_str("</dl>\n</section>\n");
}

pub(super) fn to_text(content: &Content) -> String {
    let mut out = String::with_capacity(4 * 1024);
    text_plain(&content.ja, &JA, &mut out);
    out.push_str("--- 技術情報 / Technical details ---\n");
    let status = fact(
        "HTTP ステータス",
        "HTTP status",
        status_line(content.status),
    );
    for f in std::iter::once(&status).chain(&content.facts) {
        out.push_str(&format!("{} / {}:", f.ja, f.en));
        match f.values.as_slice() {
            [one] => out.push_str(&format!(" {one}\n")),
            many => many
                .iter()
                .for_each(|v| out.push_str(&format!("\n    {v}"))),
        }
        if f.values.len() != 1 {
            out.push('\n');
        }
    }
    out.push_str("\n========================================\n\n");
    text_plain(&content.en, &EN, &mut out);
    out
}

pub(super) fn text_plain(text: &Text, labels: &Labels, out: &mut String) {
    out.push_str(&format!("[WebORCA] {}\n\n", text.title));
    for l in &text.lead {
        out.push_str(&line_text(l));
        out.push_str("\n\n");
    }
    if !text.steps.is_empty() {
        out.push_str(&format!("{}:\n", labels.steps));
        for (i, step) in text.steps.iter().enumerate() {
            out.push_str(&format!("  {}. {}\n", i + 1, line_text(step)));
        }
        out.push('\n');
    }
    for note in &text.notes {
        out.push_str(&format!("* {}\n\n", line_text(note)));
    }
}

/// Calm, readable on a phone and on a reception PC; system fonts only.
pub(super) const CSS: &str = r#"
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#f3f5f7;color:#1f2933;font:16px/1.8 system-ui,-apple-system,"Hiragino Sans","Hiragino Kaku Gothic ProN","Noto Sans JP","Meiryo","Yu Gothic UI",sans-serif}
main{max-width:46rem;margin:0 auto;padding:1.5rem 1rem 2.5rem}
.card[lang=ja]{word-break:auto-phrase}
.card{background:#fff;border:1px solid #dde3e9;border-top:4px solid #d9822b;border-radius:10px;padding:1.25rem 1.5rem 1rem;margin:0 0 1.25rem}
.card.en{border-top-color:#9aa5b1}
.eyebrow{margin:0 0 .25rem;font-size:.8rem;letter-spacing:.04em;color:#616e7c}
h1,.title{margin:0 0 .75rem;line-height:1.45;font-weight:700}
h1{font-size:1.5rem}
.title{font-size:1.25rem}
.steps{margin:1.25rem 0 .25rem;font-size:1.05rem}
p{margin:.5rem 0}
ol{margin:.25rem 0 .75rem;padding-left:1.5rem}
li{margin:.45rem 0;padding-left:.2rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"BIZ UDGothic",monospace;font-size:.9em;background:#f0f4f8;border:1px solid #d9e2ec;border-radius:4px;padding:.05em .35em;overflow-wrap:anywhere}
.note{background:#fff8eb;border:1px solid #f7d9a8;border-radius:8px;padding:.6rem .9rem}
.tech{background:#f8fafc;border:1px solid #dde3e9;border-radius:10px;padding:.9rem 1.25rem;margin:0 0 1.25rem;font-size:.85rem;line-height:1.6}
.tech h2{margin:0 0 .5rem;font-size:.95rem}
.tech dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:0}
.tech dt{color:#52606d}
.tech dd{margin:0;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.foot{text-align:center;font-size:.75rem;color:#9aa5b1}
@media (max-width:560px){main{padding:1rem .6rem 2rem}.card{padding:1rem 1rem .75rem}h1{font-size:1.3rem}.tech dl{grid-template-columns:1fr}.tech dd{margin-bottom:.4rem}}
"#;
