//! The API server's modules form layers: no module refers, directly or through others,
//! to a module that refers back to it. Handlers sit on writes and reads, writes on
//! admission and storage, storage on the kind table, the kind table on the kinds; a
//! cycle among them (issue 18 found resources ↔ objects ↔ writes ↔ watch) makes every
//! change reach everywhere. The crate root, which holds the server's shared state for
//! the handlers, stands above them all and is left out.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[test]
fn the_api_servers_modules_have_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    assert!(graph.len() > 40, "the modules were not found: {graph:?}");
    assert!(
        graph["writes"].contains("stored"),
        "references were not read"
    );
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "modules that refer to each other, each through the others: {cycles:?}"
    );
}

#[test]
fn references_are_read_from_paths_and_use_groups() {
    let code = "use crate::{a::B, b, c::{d, e}};\nfn f() { crate::g::h(); }";
    assert_eq!(references(code), ["a", "b", "c", "g"]);
}

/// Each top-level module of the crate under `src` and the modules it refers to.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut code = BTreeMap::new();
    collect(src, src, &mut code);
    let modules: BTreeSet<String> = code.keys().cloned().collect();
    code.iter()
        .map(|(module, text)| {
            let used = references(text)
                .into_iter()
                .filter(|name| modules.contains(name) && name != module)
                .collect();
            (module.clone(), used)
        })
        .collect()
}

/// The code of every file under `dir`, by the top-level module it belongs to, without
/// comments and tests.
fn collect(root: &Path, dir: &Path, code: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, code);
            continue;
        }
        let relative = path.strip_prefix(root).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
        let is_rust = path.extension().is_some_and(|e| e == "rs");
        if !is_rust || module == "lib" || only_for_tests(&path) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let without_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
        let lines = without_tests.lines();
        let uncommented = lines.map(|line| line.split("//").next().unwrap_or_default());
        let entry = code.entry(module).or_default();
        for line in uncommented {
            entry.push_str(line);
            entry.push('\n');
        }
    }
}

/// Whether the file at `path` is a module its parent declares under `#[cfg(test)]`.
fn only_for_tests(path: &Path) -> bool {
    let Some(dir) = path.parent() else {
        return false;
    };
    let parent = dir.with_extension("rs");
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    std::fs::read_to_string(parent)
        .is_ok_and(|text| text.contains(&format!("#[cfg(test)]\nmod {stem};")))
}

/// The first names after `crate::` in `code`: of paths (`crate::a::b`) and of each
/// item of a use group (`use crate::{a, b::c}`).
fn references(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => names.extend(group_heads(group)),
            None => names.push(identifier(rest)),
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// The first name of each item of a use group, read from just after its `{`.
fn group_heads(group: &str) -> Vec<String> {
    let (mut heads, mut depth, mut starting) = (Vec::new(), 0, true);
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => starting = true,
            c if starting && depth == 0 && (c.is_alphanumeric() || c == '_') => {
                heads.push(identifier(&group[at..]));
                starting = false;
            }
            _ => {}
        }
    }
    heads
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The groups of modules that reach each other, each group sorted.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut next = vec![from.to_string()];
        while let Some(module) = next.pop() {
            for used in graph.get(&module).into_iter().flatten() {
                if seen.insert(used.clone()) {
                    next.push(used.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    reached
        .iter()
        .filter(|(module, seen)| seen.contains(module.as_str()))
        .map(|(module, seen)| {
            let mut group: Vec<String> = seen
                .iter()
                .filter(|other| reached[other].contains(module.as_str()))
                .cloned()
                .collect();
            group.sort();
            group
        })
        .collect()
}
