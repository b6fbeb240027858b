//! Reading a spec: YAML or JSON, and every `$ref` into another file bundled into the root document
//! (under `x-warden-bundled`), so that everything afterwards resolves references in one document
//! by JSON pointer alone.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use warden_policy::yaml_lines::{locate_steps, Step};

/// Where bundled targets from other files live in the root document.
pub const BUNDLED: &str = "x-warden-bundled";

/// A spec that cannot be used, pointing at the file, the JSON pointer and (for YAML) the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub file: PathBuf,
    /// JSON pointer of the offending node (`/paths/~1users~1{id}/get`); empty for the whole file.
    pub pointer: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.pointer.is_empty() {
            write!(f, ": at {}", self.pointer)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SpecError {}

/// Escapes one JSON pointer token (RFC 6901).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The node at a JSON pointer (RFC 6901; the `#` of a URI fragment already removed, and the
/// fragment percent-decoded).
pub fn at<'v>(doc: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() {
        return Some(doc);
    }
    doc.pointer(pointer)
}

struct File {
    text: String,
    doc: Value,
}

/// Reads files once each and remembers their text, to put line numbers on errors.
pub struct Loader {
    files: HashMap<PathBuf, File>,
    pub root: PathBuf,
    /// Where each bundled slot came from: (file, pointer in that file).
    origins: Vec<(PathBuf, String)>,
}

impl Loader {
    /// The file and line a pointer into the bundled document came from.
    pub fn origin(&self, pointer: &str) -> (PathBuf, String, Option<usize>) {
        let bundled = pointer
            .strip_prefix(&format!("/{BUNDLED}/"))
            .and_then(|rest| {
                let (n, tail) = rest.split_once('/').unwrap_or((rest, ""));
                let (file, base) = self.origins.get(n.parse::<usize>().ok()?)?;
                let tail = if tail.is_empty() {
                    String::new()
                } else {
                    format!("/{tail}")
                };
                Some((file.clone(), format!("{base}{tail}")))
            });
        let (file, pointer) = bundled.unwrap_or_else(|| (self.root.clone(), pointer.to_string()));
        let line = self
            .files
            .get(&file)
            .and_then(|f| line_of(&f.text, &pointer));
        (file, pointer, line)
    }

    pub fn error(&self, file: &Path, pointer: &str, message: impl Into<String>) -> SpecError {
        let line = self.files.get(file).and_then(|f| line_of(&f.text, pointer));
        SpecError {
            file: file.to_path_buf(),
            pointer: pointer.to_string(),
            line,
            message: message.into(),
        }
    }

    fn read(&mut self, path: &Path) -> Result<&Value, SpecError> {
        if !self.files.contains_key(path) {
            let fail = |message: String| SpecError {
                file: path.to_path_buf(),
                pointer: String::new(),
                line: None,
                message,
            };
            let text =
                std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
            let doc: Value = if text.trim_start().starts_with('{') {
                serde_json::from_str(&text).map_err(|e| SpecError {
                    line: Some(e.line()),
                    ..fail(format!("not valid JSON: {e}"))
                })?
            } else {
                serde_yaml::from_str(&text).map_err(|e| SpecError {
                    line: e.location().map(|l| l.line()),
                    ..fail(format!("not valid YAML: {e}"))
                })?
            };
            self.files.insert(path.to_path_buf(), File { text, doc });
        }
        Ok(&self.files[path].doc)
    }

    /// Loads the root document with every other file's targets bundled into it.
    pub fn load(path: &Path) -> Result<(Loader, Value), SpecError> {
        let root = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut loader = Loader {
            files: HashMap::new(),
            root: root.clone(),
            origins: Vec::new(),
        };
        let mut doc = loader.read(&root)?.clone();
        if !doc.is_object() {
            return Err(loader.error(&root, "", "an OpenAPI document is a mapping at the top"));
        }
        let mut bundle = Bundle::default();
        loader.rewrite(&root, &mut doc, &mut String::new(), &mut bundle)?;
        if !bundle.slots.is_empty() {
            doc[BUNDLED] = Value::Object(bundle.slots);
        }
        // Every local reference must land somewhere.
        let mut missing = None;
        walk_refs(&doc, &mut String::new(), &mut |at_ptr, target| {
            if missing.is_none() {
                match target.strip_prefix('#') {
                    Some(p) if at(&doc, &decode_fragment(p)).is_some() => {}
                    _ => missing = Some((at_ptr.to_string(), target.to_string())),
                }
            }
        });
        if let Some((ptr, target)) = missing {
            return Err(loader.error(
                &root,
                &format!("{ptr}/$ref"),
                format!("`{target}` points at nothing in this document"),
            ));
        }
        Ok((loader, doc))
    }

    /// Rewrites `$ref`s in `node` (which came from `file`): a reference into another file becomes
    /// a reference into the bundle, and that target is bundled (and rewritten in turn).
    fn rewrite(
        &mut self,
        file: &Path,
        node: &mut Value,
        pointer: &mut String,
        bundle: &mut Bundle,
    ) -> Result<(), SpecError> {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let (file_part, fragment) = match target.split_once('#') {
                        Some((f, frag)) => (f, decode_fragment(frag)),
                        None => (target.as_str(), String::new()),
                    };
                    let target_file = if file_part.is_empty() {
                        file.to_path_buf()
                    } else if file_part.contains("://") {
                        return Err(self.error(
                            file,
                            &format!("{pointer}/$ref"),
                            format!("`{target}`: only references to local files are followed, never the network"),
                        ));
                    } else {
                        let base = file.parent().unwrap_or(Path::new("."));
                        normalize(&base.join(file_part))
                    };
                    if target_file != self.root {
                        let key = (target_file.clone(), fragment.clone());
                        let slot = match bundle.assigned.get(&key) {
                            Some(slot) => slot.clone(),
                            None => {
                                let ref_at = format!("{pointer}/$ref");
                                let doc = self.read(&target_file).map_err(|e| SpecError {
                                    message: format!(
                                        "`{target}` (referenced from {} at {ref_at}): {}",
                                        file.display(),
                                        e.message
                                    ),
                                    ..e
                                })?;
                                let Some(found) = at(doc, &fragment).cloned() else {
                                    return Err(self.error(
                                        file,
                                        &ref_at,
                                        format!(
                                            "`{target}` points at nothing in {}",
                                            target_file.display()
                                        ),
                                    ));
                                };
                                let slot = bundle.assigned.len().to_string();
                                bundle.assigned.insert(key, slot.clone());
                                self.origins.push((target_file.clone(), fragment.clone()));
                                let mut found = found;
                                let mut inner = fragment.clone();
                                self.rewrite(&target_file, &mut found, &mut inner, bundle)?;
                                bundle.slots.insert(slot.clone(), found);
                                slot
                            }
                        };
                        map.insert("$ref".into(), Value::String(format!("#/{BUNDLED}/{slot}")));
                    } else if !file_part.is_empty() {
                        map.insert("$ref".into(), Value::String(format!("#{fragment}")));
                    }
                }
                for (k, v) in map.iter_mut() {
                    if k == "$ref" {
                        continue;
                    }
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&escape(k));
                    self.rewrite(file, v, pointer, bundle)?;
                    pointer.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    let len = pointer.len();
                    pointer.push_str(&format!("/{i}"));
                    self.rewrite(file, v, pointer, bundle)?;
                    pointer.truncate(len);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[derive(Default)]
struct Bundle {
    assigned: HashMap<(PathBuf, String), String>,
    slots: Map<String, Value>,
}

/// Calls `f(pointer of the object holding $ref, target)` for every `$ref` string.
pub(crate) fn walk_refs(node: &Value, pointer: &mut String, f: &mut impl FnMut(&str, &str)) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(t)) = map.get("$ref") {
                f(pointer, t);
            }
            for (k, v) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape(k));
                walk_refs(v, pointer, f);
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                walk_refs(v, pointer, f);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

/// A URI fragment's pointer, percent-decoded (`#/paths/~1users~1%7Bid%7D`).
pub fn decode_fragment(fragment: &str) -> String {
    percent_encoding::percent_decode_str(fragment)
        .decode_utf8_lossy()
        .into_owned()
}

/// `a/./b/../c` → `a/c`, without touching the file system (the file may not exist: the error
/// should then name the path as written).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The line of a JSON pointer in a YAML file's text, or of its nearest ancestor that can be found.
fn line_of(text: &str, pointer: &str) -> Option<usize> {
    let tokens: Vec<String> = pointer.split('/').skip(1).map(unescape).collect();
    let mut n = tokens.len();
    loop {
        let steps: Vec<Step<'_>> = tokens[..n]
            .iter()
            .map(|t| match t.parse::<usize>() {
                // An index into a sequence, unless the mapping has such a key ("200").
                Ok(i)
                    if !text.contains(&format!("\"{t}\":"))
                        && !text.contains(&format!("'{t}':"))
                        && !text.contains(&format!("\n{t}:")) =>
                {
                    Step::Index(i)
                }
                _ => Step::Key(t),
            })
            .collect();
        if let Some(line) = locate_steps(text, &steps) {
            return Some(line);
        }
        if n == 0 {
            return None;
        }
        n -= 1;
    }
}
