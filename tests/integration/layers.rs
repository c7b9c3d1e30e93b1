//! The layering guard (issue 10): imports point one way, from the top of the house to the
//! bottom, and never loop. It reads every `src/**/*.rs` as text, follows each `crate::`,
//! `super::` and `self::` path (and the re-exports of the modules it passes through) to the
//! file that defines what it names, and reports every import that points up the layers,
//! every loop between modules, and every clock, environment or network call in the core.
//! Test code (`#[cfg(test)]`) is left out: a test may build its fixtures from anywhere.
//!
//! Bottom to top: `domain` < `ports` < `wire` < `config` < the adapters `store`,
//! `sources`, `chat`, `reports`, `language`, `translators` (which never import each
//! other) < `runtime` < `app`, `lib.rs`, `main.rs`. Loops are looked for between top-level
//! modules, between the sub-modules of an adapter (`chat::slack`, `sources::x`), and
//! between the files of `domain`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules by layer, bottom first. A module in none of them is reported, so a
/// new one gets a place on purpose.
const LAYERS: &[&[&str]] = &[
    &["domain"],
    &["ports"],
    &["wire"],
    &["config"],
    &[
        "store",
        "sources",
        "chat",
        "reports",
        "language",
        "translators",
    ],
    &["runtime"],
    &["app", "<lib.rs>", "<main.rs>"],
];

/// The layer whose modules translate and must not know each other.
const ADAPTERS: usize = 4;

/// What the core must never name: it gets time, configuration and the network as
/// arguments.
const IMPURE_IN_DOMAIN: &[&[&str]] = &[
    &["Utc", "now"],
    &["SystemTime"],
    &["Instant", "now"],
    &["std", "env"],
    &["tokio"],
    &["reqwest"],
    &["std", "fs"],
];

#[test]
fn imports_point_one_way_and_never_loop() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&src, &src, &mut files);
    assert!(files.len() > 10, "read the sources under {}", src.display());
    let violations = check(&files);
    assert!(
        violations.is_empty(),
        "{} layering violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn the_guard_names_an_upward_import_a_loop_and_a_clock_in_the_core() {
    let tree = [
        ("lib.rs", "pub mod domain; pub mod chat; pub mod runtime; pub mod gadgets;"),
        ("gadgets.rs", ""),
        (
            "domain/mod.rs",
            "mod model; pub mod sla;\npub use model::*;\n#[cfg(test)]\nmod tests {\n    use crate::runtime::Desk;\n}\n",
        ),
        (
            "domain/model.rs",
            "pub struct Ticket;\npub fn due() -> super::sla::Marks { todo!() }\n",
        ),
        (
            "domain/sla.rs",
            "use super::Ticket;\npub struct Marks;\n// crate::runtime in a comment is no import\nfn late() -> bool { let _ = \"crate::chat\"; chrono::Utc::now(); true }\n",
        ),
        (
            "chat/mod.rs",
            "pub mod slack;\n#[cfg(test)]\nmod fixtures;\npub fn card(t: &crate::domain::Ticket) {}\n",
        ),
        ("chat/fixtures.rs", "use crate::runtime::Desk;\n"),
        (
            "chat/slack.rs",
            "use crate::{domain::Ticket, runtime::{self, Desk as D}};\nuse super::card;\n",
        ),
        (
            "runtime/mod.rs",
            "pub struct Desk;\nfn post() { crate::chat::slack::post(); }\n",
        ),
    ];
    assert_eq!(
        check(&fake_tree(&tree)),
        [
            "domain names `Utc::now` at src/domain/sla.rs:4: time, configuration and I/O come in as arguments",
            "import loop between chat::slack, runtime:\n    chat::slack → runtime at src/chat/slack.rs:1 (crate::runtime) and 1 more\n    runtime → chat::slack at src/runtime/mod.rs:2 (crate::chat::slack::post)",
            "import loop between domain::model, domain::sla:\n    domain::model → domain::sla at src/domain/model.rs:2 (super::sla::Marks)\n    domain::sla → domain::model at src/domain/sla.rs:1 (super::Ticket)",
            "src/chat/slack.rs:1 chat → runtime (crate::runtime): runtime is above chat",
            "src/chat/slack.rs:1 chat → runtime (crate::runtime::Desk): runtime is above chat",
            "top-level module `gadgets` (src/gadgets.rs) is in no layer: give it one in LAYERS",
        ]
    );
}

#[test]
fn a_tree_that_keeps_the_layers_passes() {
    let tree = [
        (
            "lib.rs",
            "pub mod domain; pub mod ports; pub mod chat; pub mod sources; pub mod runtime;",
        ),
        ("domain/mod.rs", "pub mod model;\npub use model::Ticket;\n"),
        ("domain/model.rs", "pub struct Ticket;\n"),
        (
            "ports/mod.rs",
            "pub trait Surface { fn post(&self, t: &crate::domain::Ticket); }\n",
        ),
        ("chat/mod.rs", "pub mod markup;\npub mod slack;\n"),
        ("chat/markup.rs", "pub fn escape() {}\n"),
        (
            "chat/slack.rs",
            "use super::markup::escape;\nimpl crate::ports::Surface for S {}\n",
        ),
        (
            "sources/mod.rs",
            "pub mod x;\nuse crate::ports::Surface;\npub fn poll() { x::fetch(); }\n",
        ),
        (
            "sources/x.rs",
            "use crate::domain::Ticket;\nmod wire {\n    use super::Ticket;\n}\n",
        ),
        (
            "runtime/mod.rs",
            "use crate::{chat::slack, sources::x, domain::*};\n",
        ),
    ];
    assert_eq!(check(&fake_tree(&tree)), Vec::<String>::new());
}

fn fake_tree(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(path, text)| (path.to_string(), text.to_string()))
        .collect()
}

/// Every `.rs` file under `dir`, as (path relative to `src`, text).
fn read_tree(src: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            read_tree(src, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let relative = path.strip_prefix(src).expect("under src");
            out.push((relative.to_string_lossy().replace('\\', "/"), text));
        }
    }
}

/// Every violation in a tree of sources given as (path under `src/`, text), sorted.
fn check(files: &[(String, String)]) -> Vec<String> {
    let tree = Tree::parse(files);
    let mut violations = BTreeSet::new();
    let mut graph: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();

    for (module, file) in &tree.modules {
        if let [top] = module.as_slice() {
            if layer_of(top).is_none() {
                violations.insert(format!(
                    "top-level module `{top}` (src/{}) is in no layer: give it one in LAYERS",
                    file.path
                ));
            }
        }
    }

    for (module, file) in &tree.modules {
        if file.test_only {
            continue;
        }
        let from = node_of(module);
        for import in &file.imports {
            let Some(target) = tree.resolve(module, &import.path, 0) else {
                continue;
            };
            let to = node_of(&target);
            if to == from {
                continue;
            }
            let at = format!("src/{}:{}", file.path, import.line);
            let written = import.path.join("::");
            let (a, b) = (top_of(&from), top_of(&to));
            if let (Some(la), Some(lb)) = (layer_of(a), layer_of(b)) {
                if lb > la {
                    violations.insert(format!("{at} {a} → {b} ({written}): {b} is above {a}"));
                } else if la == ADAPTERS && lb == ADAPTERS && a != b {
                    violations.insert(format!(
                        "{at} {a} → {b} ({written}): adapters do not import each other"
                    ));
                }
            }
            graph
                .entry(from.clone())
                .or_default()
                .entry(to)
                .or_default()
                .push(format!("{at} ({written})"));
        }
        if module.first().map(String::as_str) == Some("domain") {
            for (words, line) in &file.impure {
                violations.insert(format!(
                    "domain names `{words}` at src/{}:{line}: time, configuration and I/O come in as arguments",
                    file.path
                ));
            }
        }
    }

    for group in loops(&graph) {
        let mut text = format!(
            "import loop between {}:",
            group.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        for from in &group {
            for (to, places) in &graph[from] {
                if group.contains(to) {
                    text.push_str(&format!("\n    {from} → {to} at {}", places[0]));
                    if places.len() > 1 {
                        text.push_str(&format!(" and {} more", places.len() - 1));
                    }
                }
            }
        }
        violations.insert(text);
    }
    violations.into_iter().collect()
}

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&top))
}

fn top_of(node: &str) -> &str {
    node.split("::").next().unwrap_or(node)
}

/// The unit a module counts as in the loop check: a top-level module, or one level deeper
/// inside an adapter or the core.
fn node_of(module: &[String]) -> String {
    match module {
        [] => "<lib.rs>".into(),
        [top, sub, ..] if top == "domain" || layer_of(top) == Some(ADAPTERS) => {
            format!("{top}::{sub}")
        }
        [top, ..] => top.clone(),
    }
}

/// The groups of nodes that reach each other (strongly connected, more than one node),
/// by Tarjan's algorithm.
fn loops(graph: &BTreeMap<String, BTreeMap<String, Vec<String>>>) -> Vec<BTreeSet<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeMap<String, Vec<String>>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            for next in self.graph.get(node).into_iter().flat_map(|e| e.keys()) {
                if !self.index.contains_key(next.as_str()) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next.as_str()]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next.as_str()) {
                    let low = self.low[node].min(self.index[next.as_str()]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut group = BTreeSet::new();
                while let Some(top) = self.stack.pop() {
                    group.insert(top.to_string());
                    if top == node {
                        break;
                    }
                }
                if group.len() > 1 {
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found
}

/// A path as written in one file, and the line it starts on.
struct Import {
    path: Vec<String>,
    line: usize,
}

/// What one file declares and names, test code left out.
struct File {
    path: String,
    /// Declared `#[cfg(test)] mod name;` by its parent.
    test_only: bool,
    imports: Vec<Import>,
    /// `use` paths by the name they bring in (`*` for a glob), for resolving through
    /// re-exports: a module's imports are visible to its children and, if `pub`, beyond.
    uses: Vec<(String, Vec<String>)>,
    /// Names of the items the file defines (structs, functions, modules…).
    defines: BTreeSet<String>,
    impure: Vec<(String, usize)>,
}

struct Tree {
    /// Module path (`["chat", "slack"]`; `[]` is lib.rs, `["<main.rs>"]` the binary).
    modules: BTreeMap<Vec<String>, File>,
}

impl Tree {
    fn parse(files: &[(String, String)]) -> Tree {
        let mut modules = BTreeMap::new();
        let mut test_modules = BTreeSet::new();
        for (path, text) in files {
            let module = module_of(path);
            let tokens = tokens(&strip(text));
            let (tokens, test_children) = without_test_code(tokens);
            for child in test_children {
                let mut m = module.clone();
                m.push(child);
                test_modules.insert(m);
            }
            modules.insert(module, File::read(path, &tokens));
        }
        for m in test_modules {
            if let Some(file) = modules.get_mut(&m) {
                file.test_only = true;
            }
        }
        Tree { modules }
    }

    fn is_module(&self, m: &[String]) -> bool {
        self.modules.contains_key(m)
    }

    /// The module a path written in `from` ends up in, following re-exports; `None` for
    /// paths into other crates or into local items that are not modules.
    fn resolve(&self, from: &[String], path: &[String], depth: usize) -> Option<Vec<String>> {
        let first = path.first()?.as_str();
        if from.first().is_some_and(|m| m == "<main.rs>") {
            // The binary's `crate::` is its own; it reaches the library as `mentionbridge`.
            return (first == "mentionbridge").then(|| self.walk(Vec::new(), &path[1..], depth));
        }
        let (mut at, mut rest) = match first {
            "crate" => (Vec::new(), &path[1..]),
            "self" | "super" => (from.to_vec(), path),
            child => {
                let mut m = from.to_vec();
                m.push(child.to_string());
                if !self.is_module(&m) {
                    return None;
                }
                (m, &path[1..])
            }
        };
        while let Some(first) = rest.first() {
            match first.as_str() {
                "self" => {}
                "super" => {
                    at.pop()?;
                }
                _ => break,
            }
            rest = &rest[1..];
        }
        Some(self.walk(at, rest, depth))
    }

    /// Down from module `at` along `rest`, through child modules and the imports of the
    /// modules passed, to the module that defines the item named.
    fn walk(&self, mut at: Vec<String>, rest: &[String], depth: usize) -> Vec<String> {
        for (i, segment) in rest.iter().enumerate() {
            let mut child = at.clone();
            child.push(segment.clone());
            if self.is_module(&child) {
                at = child;
                continue;
            }
            // Re-exports that point back at themselves stop here.
            if depth < 16 {
                if let Some(found) = self.through_uses(&at, segment, depth + 1) {
                    return self.walk(found, &rest[i + 1..], depth + 1);
                }
            }
            break;
        }
        at
    }

    /// Where `name`, imported (not defined) by module `at`, comes from.
    fn through_uses(&self, at: &[String], name: &str, depth: usize) -> Option<Vec<String>> {
        let file = self.modules.get(at)?;
        if let Some((_, path)) = file.uses.iter().find(|(n, _)| n == name) {
            return self.resolve(at, path, depth);
        }
        if file.defines.contains(name) {
            return None;
        }
        let name = [name.to_string()];
        file.uses
            .iter()
            .filter(|(n, _)| n == "*")
            .filter_map(|(_, path)| self.resolve(at, path, depth))
            .find(|m| {
                self.modules.get(m).is_some_and(|f| {
                    f.defines.contains(&name[0]) || f.uses.iter().any(|(n, _)| *n == name[0])
                })
            })
            .map(|m| self.walk(m, &name, depth))
    }
}

fn module_of(path: &str) -> Vec<String> {
    let path = path.strip_suffix(".rs").unwrap_or(path);
    let mut parts: Vec<String> = path.split('/').map(str::to_string).collect();
    match parts.last().map(String::as_str) {
        Some("mod") => {
            parts.pop();
        }
        Some("lib") if parts.len() == 1 => parts.clear(),
        Some("main") if parts.len() == 1 => parts = vec!["<main.rs>".into()],
        _ => {}
    }
    parts
}

impl File {
    fn read(path: &str, tokens: &[Token]) -> File {
        let mut file = File {
            path: path.to_string(),
            test_only: false,
            imports: Vec::new(),
            uses: Vec::new(),
            defines: BTreeSet::new(),
            impure: Vec::new(),
        };
        // Brace depths at which the inline modules (`mod name { … }`) around a token
        // opened: their `super` is still this file.
        let mut inline: Vec<usize> = Vec::new();
        let mut depth = 0;
        let mut i = 0;
        while i < tokens.len() {
            let t = &tokens[i];
            match t.text.as_str() {
                "{" => depth += 1,
                "}" => {
                    depth -= 1;
                    if inline.last() == Some(&depth) {
                        inline.pop();
                    }
                }
                "mod" if tokens.get(i + 2).is_some_and(|t| t.text == "{") => inline.push(depth),
                _ => {}
            }
            if t.text == "use" {
                let mut leaves = Vec::new();
                i += 1;
                use_tree(tokens, &mut i, Vec::new(), &mut leaves);
                while tokens.get(i).is_some_and(|t| t.text != ";") {
                    i += 1;
                }
                for (name, path) in leaves {
                    let path = file.note(path, inline.len(), t.line);
                    if inline.is_empty() {
                        file.uses.push((name, path));
                    }
                }
                continue;
            }
            if DEFINING.contains(&t.text.as_str()) {
                if let Some(name) = tokens.get(i + 1).filter(|n| n.is_ident()) {
                    file.defines.insert(name.text.clone());
                }
            }
            if t.is_ident() && (i == 0 || tokens[i - 1].text != "::") {
                file.note(path_at(tokens, i), inline.len(), t.line);
            }
            i += 1;
        }
        file
    }

    /// A path named on `line` inside `inline` inline modules: an import if it has more
    /// than one segment, impure if the core must not name it. Returns the path as seen
    /// from the file's own module.
    fn note(&mut self, mut path: Vec<String>, inline: usize, line: usize) -> Vec<String> {
        for segment in path.iter_mut().take(inline) {
            if segment != "super" {
                break;
            }
            *segment = "self".into();
        }
        for words in IMPURE_IN_DOMAIN {
            if path.windows(words.len()).any(|w| w == *words) {
                self.impure.push((words.join("::"), line));
            }
        }
        if path.len() > 1 {
            self.imports.push(Import {
                path: path.clone(),
                line,
            });
        }
        path
    }
}

const DEFINING: &[&str] = &[
    "struct", "enum", "fn", "trait", "type", "const", "static", "union", "mod",
];

/// `a::b::c` starting at token `i`.
fn path_at(tokens: &[Token], mut i: usize) -> Vec<String> {
    let mut path = vec![tokens[i].text.clone()];
    while tokens.get(i + 1).is_some_and(|t| t.text == "::")
        && tokens.get(i + 2).is_some_and(Token::is_ident)
    {
        i += 2;
        path.push(tokens[i].text.clone());
    }
    path
}

/// One `use` tree from token `*i`, as (the name it brings in or `*`, full path); leaves
/// `*i` just after the tree.
fn use_tree(
    tokens: &[Token],
    i: &mut usize,
    mut prefix: Vec<String>,
    out: &mut Vec<(String, Vec<String>)>,
) {
    while tokens.get(*i).is_some_and(|t| t.text == "::") {
        *i += 1;
    }
    let Some(t) = tokens.get(*i) else {
        return;
    };
    *i += 1;
    match t.text.as_str() {
        "{" => {
            while let Some(t) = tokens.get(*i) {
                match t.text.as_str() {
                    "}" => {
                        *i += 1;
                        return;
                    }
                    "," => *i += 1,
                    ";" => return,
                    _ => use_tree(tokens, i, prefix.clone(), out),
                }
            }
        }
        "*" => out.push(("*".into(), prefix)),
        _ if t.is_ident() => {
            prefix.push(t.text.clone());
            if tokens.get(*i).is_some_and(|t| t.text == "::") {
                return use_tree(tokens, i, prefix, out);
            }
            let mut name = t.text.clone();
            if name == "self" {
                prefix.pop();
                name = prefix.last().cloned().unwrap_or_default();
            }
            if tokens.get(*i).is_some_and(|t| t.text == "as") {
                name = tokens
                    .get(*i + 1)
                    .map(|t| t.text.clone())
                    .unwrap_or_default();
                *i += 2;
            }
            out.push((name, prefix));
        }
        _ => {}
    }
}

#[derive(Clone)]
struct Token {
    text: String,
    line: usize,
}

impl Token {
    fn is_ident(&self) -> bool {
        self.text
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
    }
}

/// The text with comments and the insides of string and char literals blanked, line
/// breaks kept so line numbers stay true.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                    out.push_str("  ");
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    out.push_str("  ");
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && (i == 0 || !ident(chars[i - 1]) || chars[i - 1] == 'b')
            && matches!(next, Some('"') | Some('#'))
            && raw_string_end(&chars, i + 1).is_some()
        {
            let end = raw_string_end(&chars, i + 1).unwrap_or(chars.len());
            for &c in &chars[i..end] {
                blank(&mut out, c);
            }
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{1F600}'.
            out.push(' ');
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            out.push_str("   ");
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Where a raw string whose `#`s or opening quote start at `i` ends, if it is one.
fn raw_string_end(chars: &[char], mut i: usize) -> Option<usize> {
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    if chars.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    Some(chars.len())
}

fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        } else if c.is_alphabetic() || c == '_' {
            let mut word = c.to_string();
            while let Some(&n) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                word.push(n);
                chars.next();
            }
            out.push(Token { text: word, line });
        } else if c.is_ascii_digit() {
            while chars
                .peek()
                .is_some_and(|n| n.is_alphanumeric() || *n == '_')
            {
                chars.next();
            }
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.push(Token {
                text: "::".into(),
                line,
            });
        } else if c == '\'' {
            // A lifetime or label: never part of a path.
            while chars
                .peek()
                .is_some_and(|n| n.is_alphanumeric() || *n == '_')
            {
                chars.next();
            }
        } else if !c.is_whitespace() {
            out.push(Token {
                text: c.to_string(),
                line,
            });
        }
    }
    out
}

/// The tokens without `#[cfg(test)]` items, and the names of the file modules declared
/// test-only (`#[cfg(test)] mod testkit;`).
fn without_test_code(tokens: Vec<Token>) -> (Vec<Token>, Vec<String>) {
    const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];
    let mut kept = Vec::with_capacity(tokens.len());
    let mut test_modules = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let is_cfg_test = tokens.len() >= i + CFG_TEST.len()
            && CFG_TEST
                .iter()
                .zip(&tokens[i..])
                .all(|(want, t)| t.text == *want);
        if !is_cfg_test {
            kept.push(tokens[i].clone());
            i += 1;
            continue;
        }
        i += CFG_TEST.len();
        // Further attributes on the same item.
        while tokens.get(i).is_some_and(|t| t.text == "#") {
            i = past_group(&tokens, i + 1);
        }
        let start = i;
        let mut depth = 0usize;
        while i < tokens.len() {
            match tokens[i].text.as_str() {
                "(" | "[" => depth += 1,
                ")" | "]" => depth = depth.saturating_sub(1),
                "{" if depth == 0 => {
                    i = past_group(&tokens, i);
                    break;
                }
                ";" if depth == 0 => {
                    let words: Vec<&str> =
                        tokens[start..i].iter().map(|t| t.text.as_str()).collect();
                    if let Some(pos) = words.iter().position(|w| *w == "mod") {
                        if let Some(name) = words.get(pos + 1) {
                            test_modules.push(name.to_string());
                        }
                    }
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
    (kept, test_modules)
}

/// The index just past the bracketed group opening at `i` (`[…]`, `{…}` or `(…)`).
fn past_group(tokens: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < tokens.len() {
        match tokens[i].text.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}
