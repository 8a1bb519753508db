//! The module structure stays one-way: no import cycle among the crate's
//! modules, and each layer uses only the layers below it (README "Layout").
//! Reads every `crate::…` path in src/ (outside unit tests) rather than
//! trusting a list, so a new `use` that points upwards fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first; a module may use its own layer and those before it.
const LAYERS: &[&[&str]] = &[
    &["text", "x509", "policy", "config", "program"],
    &["tls"],
    &["pages", "observe"],
    &["proxy"],
    &["load", "guard"],
    &["reload", "check"],
    &["app", "setup"],
    &["demo"],
];

/// The old top-level paths lib.rs re-exports, and the modules they name.
const ALIASES: &[(&str, &str)] = &[
    ("log", "observe::log"),
    ("metrics", "observe::metrics"),
    ("status", "observe::status"),
    ("body", "proxy::body"),
    ("conn", "proxy::conn"),
    ("plain", "proxy::plain"),
    ("server", "proxy::server"),
    ("ws", "proxy::ws"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("read src").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/proxy/server.rs` → `proxy::server`, `src/tls/mod.rs` → `tls`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without its inline unit tests (tests may reach anywhere).
fn code_of(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// Every `crate::a::b…` path in `code`, as its segments.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let mut segs = Vec::new();
            let mut s = after;
            loop {
                let end = s
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(s.len());
                if end == 0 {
                    break;
                }
                segs.push(s[..end].to_string());
                if s[end..].starts_with("::") {
                    s = &s[end + 2..];
                } else {
                    break;
                }
            }
            // `use crate::{a, b::c}`: each member is a path of its own.
            if s.starts_with('{') && segs.is_empty() {
                let close = s.find('}').unwrap_or(s.len());
                for member in s[1..close].split(',') {
                    let member: Vec<String> = member
                        .trim()
                        .split("::")
                        .map(|p| p.trim().to_string())
                        .filter(|p| !p.is_empty())
                        .collect();
                    if !member.is_empty() {
                        paths.push(member);
                    }
                }
            }
            if !segs.is_empty() {
                paths.push(segs);
            }
            rest = after;
        }
    }
    paths
}

/// The module a path points into: its longest prefix that is a module.
fn target(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    let mut segs: Vec<String> = path.to_vec();
    if let Some((_, real)) = ALIASES
        .iter()
        .find(|(a, _)| Some(*a) == segs.first().map(String::as_str))
    {
        let mut real: Vec<String> = real.split("::").map(str::to_string).collect();
        real.extend(segs.drain(1..));
        segs = real;
    }
    (1..=segs.len())
        .rev()
        .map(|n| segs[..n].join("::"))
        .find(|m| modules.contains(m))
}

fn layer_of(module: &str) -> Option<usize> {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS.iter().position(|l| l.contains(&top))
}

/// module → the modules it uses
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" || module.ends_with("tests") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read source");
        let used: BTreeSet<String> = crate_paths(code_of(&text))
            .iter()
            .filter_map(|p| target(p, &modules))
            .filter(|t| *t != module && t != "lib")
            .collect();
        graph.insert(module, used);
    }
    graph
}

#[test]
fn every_module_is_in_a_layer() {
    for module in graph().keys() {
        assert!(
            layer_of(module).is_some(),
            "src module {module} is in no layer of tests/layers.rs; add it to LAYERS (and to README \"Layout\")"
        );
    }
}

#[test]
fn layers_point_one_way() {
    let mut upward = Vec::new();
    for (module, used) in graph() {
        let Some(mine) = layer_of(&module) else {
            continue;
        };
        for u in used {
            if layer_of(&u).is_some_and(|theirs| theirs > mine) {
                upward.push(format!("{module} uses {u}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "modules using a layer above them: {upward:#?}"
    );
}

#[test]
fn no_module_import_cycle() {
    let graph = graph();
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            cycles.push(cycle.join(" → "));
            return;
        }
        if !done.insert(m.to_string()) {
            return;
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done, cycles);
        }
        path.pop();
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "module import cycles: {cycles:#?}");
}

#[test]
fn the_checker_sees_imports() {
    // A guard that reads nothing would pass forever: it must see known edges.
    let graph = graph();
    assert!(graph["reload"].contains("load"), "{:?}", graph["reload"]);
    assert!(
        graph["proxy::body"].contains("proxy::conn"),
        "{:?}",
        graph["proxy::body"]
    );
    assert!(
        graph["tls::verify"].contains("config"),
        "{:?}",
        graph["tls::verify"]
    );
}
