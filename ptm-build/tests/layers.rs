//! ptm-build's modules import one way: no module reaches itself through its imports, and
//! none imports the crate's facade (`lib.rs`). Read from the sources, as a reviewer would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module (`cache`, `manifest::parse`, ...) and the modules its non-test code names
/// through `crate::` or, inside `manifest`, `super::`; `crate` for the facade.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    let mut files = vec![root.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(&root).unwrap().with_extension("");
        let name = relative.to_string_lossy().replace("/mod", "").replace('/', "::");
        let name = if name == "lib" { "crate".to_string() } else { name };
        let text = std::fs::read_to_string(&path).unwrap();
        let code: String = text.split("#[cfg(test)]").next().unwrap().lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        let mut named = BTreeSet::new();
        for (prefix, scope) in [("crate::", ""), ("super::", "manifest::")] {
            if prefix == "super::" && !name.starts_with("manifest::") {
                continue;
            }
            for part in code.split(prefix).skip(1) {
                let word: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                match word.chars().next() {
                    // `crate::Error`: an item of the facade, not a module.
                    Some(c) if c.is_ascii_uppercase() => named.insert(if scope.is_empty() { "crate".to_string() } else { "manifest".to_string() }),
                    Some(_) => named.insert(format!("{scope}{word}")),
                    None => false,
                };
            }
        }
        named.remove(&name);
        modules.insert(name, named);
    }
    modules
}

fn reachable(from: &str, modules: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(module) = todo.pop() {
        for next in modules.get(&module).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

#[test]
fn no_module_imports_itself_back_or_the_facade() {
    let modules = imports();
    assert!(modules.len() > 15 && modules.contains_key("manifest::parse"), "{modules:?}");
    let circles: Vec<&String> = modules.keys().filter(|m| reachable(m, &modules).contains(*m)).collect();
    assert!(circles.is_empty(), "modules that import themselves back: {circles:?}\n{modules:#?}");
    let facade: Vec<&String> = modules.iter().filter(|(m, named)| *m != "crate" && named.contains("crate")).map(|(m, _)| m).collect();
    assert!(facade.is_empty(), "modules that import lib.rs (name the module an item lives in instead): {facade:?}");
}
