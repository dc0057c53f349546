//! The layering of host/src, checked (docs/how-it-works.md, "Source layout"): within every folder,
//! no two modules use each other, directly or through others. A module's folder counts as one node
//! for its siblings, so that the top-level folders form layers that only point down; a module may use
//! its own parent (the trait or type its folder shares), which is not a circle.
//!
//! The uses are read from the sources: every `crate::` and `super::` path outside comments and
//! `mod tests`, resolved to the longest module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`store::s3::client`) → the source text that counts.
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("host/src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(&root).expect("below host/src").with_extension("");
            let mut segments: Vec<String> = relative.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if segments.last().is_some_and(|s| s == "mod") {
                segments.pop();
            }
            if segments == ["lib"] || segments == ["main"] || path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
            let code: Vec<&str> = code.lines().filter(|line| !line.trim_start().starts_with("//")).collect();
            modules.insert(segments.join("::"), code.join("\n"));
        }
    }
    modules
}

/// The paths after each `anchor` in `code`: `a::b::C`, and each item of `{a::b, c}`.
fn paths_after<'a>(code: &'a str, anchor: &str) -> Vec<&'a str> {
    let is_path = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut paths = Vec::new();
    for (at, _) in code.match_indices(anchor) {
        if code[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[at + anchor.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            paths.extend(group.split(',').map(|item| item.trim().trim_end_matches(|c: char| !is_path(c))));
        } else {
            paths.push(&rest[..rest.find(|c: char| !is_path(c)).unwrap_or(rest.len())]);
        }
    }
    paths
}

/// The longest known module that `path` (segments below the crate root) names.
fn resolve(modules: &BTreeMap<String, String>, path: &[&str]) -> Option<String> {
    (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|name| modules.contains_key(name))
}

/// Which module uses which, by module path.
fn uses(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, code) in modules {
        let own: Vec<&str> = name.split("::").collect();
        // `super` of `a::b` is `a`, whether `b` is a file or a folder's mod.rs.
        let parent = &own[..own.len() - 1];
        let absolute = paths_after(code, "crate::").into_iter().map(|p| p.split("::").filter(|s| !s.is_empty()).collect::<Vec<_>>());
        let relative = paths_after(code, "super::")
            .into_iter()
            .map(|p| parent.iter().copied().chain(p.split("::").filter(|s| !s.is_empty())).collect::<Vec<_>>());
        for path in absolute.chain(relative) {
            if let Some(target) = resolve(modules, &path).filter(|target| target != name) {
                edges.entry(name.clone()).or_default().insert(target);
            }
        }
    }
    edges
}

/// A circle among the children of `parent` (each child standing for its whole subtree), if any.
fn circle_below(parent: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let depth = if parent.is_empty() { 0 } else { parent.split("::").count() };
    let child = |module: &str| -> Option<String> {
        let segments: Vec<&str> = module.split("::").collect();
        let inside = parent.is_empty() || module.starts_with(&format!("{parent}::"));
        (inside && segments.len() > depth).then(|| segments[..=depth].join("::"))
    };
    let mut siblings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in edges {
        let Some(a) = child(from) else { continue };
        for b in targets.iter().filter_map(|t| child(t)).filter(|b| *b != a) {
            siblings.entry(a.clone()).or_default().insert(b);
        }
    }
    // Depth-first search; a node met again while on the current path closes a circle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            return Some(path[start..].iter().cloned().chain([node.to_owned()]).collect());
        }
        if !done.insert(node.to_owned()) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    siblings.keys().find_map(|start| visit(start, &siblings, &mut Vec::new(), &mut done))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No folder of host/src has modules that use each other, at any depth.
    #[test]
    fn no_import_circles() {
        let modules = modules();
        assert!(modules.contains_key("store::s3::client") && modules.contains_key("engine"), "found: {:?}", modules.keys());
        let edges = uses(&modules);
        assert!(
            edges["config"].contains("engine") && edges["store::s3::signing"].contains("store::s3::key_pair"),
            "uses not read: {edges:?}"
        );
        let mut parents: BTreeSet<String> = BTreeSet::from([String::new()]);
        for name in modules.keys() {
            let segments: Vec<&str> = name.split("::").collect();
            parents.extend((1..segments.len()).map(|n| segments[..n].join("::")));
        }
        let circles: Vec<String> = parents.iter().filter_map(|p| circle_below(p, &edges)).map(|c| c.join(" -> ")).collect();
        assert!(circles.is_empty(), "import circles in host/src:\n{}", circles.join("\n"));
    }

    /// A circle is found, and named, when two siblings use each other through a third.
    #[test]
    fn finds_a_circle_through_a_third_module() {
        let edges: BTreeMap<String, BTreeSet<String>> =
            [("a::x", "b"), ("b", "c::y"), ("c::z", "a"), ("a::x", "a")].into_iter().fold(BTreeMap::new(), |mut edges, (from, to)| {
                edges.entry(from.to_owned()).or_default().insert(to.to_owned());
                edges
            });
        assert_eq!(circle_below("", &edges), Some(vec!["a".to_owned(), "b".to_owned(), "c".to_owned(), "a".to_owned()]));
        assert_eq!(circle_below("a", &edges), None, "a child using its parent is not a circle");
    }
}
