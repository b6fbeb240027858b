//! Where a node sits in block-style YAML text, for errors that point at a line: config fields
//! (`routes[1].upstream`) and OpenAPI JSON pointers (`/paths/~1users/get`). serde's YAML value
//! keeps no positions, so the path is walked again over the text.

/// One step down into a YAML node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Finds the 1-based line of a field path such as `routes[1].upstream` in block-style YAML.
///
/// Good enough for the cross-field errors it serves: it follows indentation, mapping keys and `- `
/// sequence items, and gives up (returns `None`, so the error simply has no line) on anything else.
pub fn locate(text: &str, field: &str) -> Option<usize> {
    let mut steps = Vec::new();
    for part in field.split('.') {
        match part.split_once('[') {
            Some((key, rest)) => {
                if !key.is_empty() {
                    steps.push(Step::Key(key));
                }
                steps.push(Step::Index(rest.trim_end_matches(']').parse().ok()?));
            }
            None => steps.push(Step::Key(part)),
        }
    }
    locate_steps(text, &steps)
}

/// The 1-based line of the node `steps` lead to; `None` when the walk loses its way.
///
/// Good enough for errors: it follows indentation, mapping keys (bare or quoted) and `- ` sequence
/// items, and gives up on anything else (flow collections, anchors).
pub fn locate_steps(text: &str, steps: &[Step<'_>]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    // The node we are inside: its lines [from, to) and, after a sequence item, its keys' indentation.
    let (mut from, mut to, mut item_indent) = (0usize, lines.len(), None::<usize>);
    let mut found = None;
    for &step in steps {
        let mut hit = None;
        let mut index = 0usize;
        let mut child_indent = item_indent;
        for (n, raw) in lines.iter().enumerate().take(to).skip(from) {
            let mut body = raw.trim_start();
            let mut ind = raw.len() - body.len();
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            // The first key of a sequence item shares its line with the `- `.
            if n == from && item_indent.is_some() {
                body = body.strip_prefix("- ").unwrap_or(body);
                ind += 2;
            }
            let ci = *child_indent.get_or_insert(ind);
            if ind < ci {
                break;
            }
            if ind != ci {
                continue;
            }
            match step {
                Step::Key(k) => {
                    let rest =
                        [("", ""), ("\"", "\""), ("'", "'")]
                            .iter()
                            .find_map(|(open, close)| {
                                body.strip_prefix(open)?
                                    .strip_prefix(k)?
                                    .strip_prefix(close)
                            });
                    if rest.is_some_and(|r| r.starts_with(':')) {
                        hit = Some((n, None));
                        break;
                    }
                }
                Step::Index(want) => {
                    if body.starts_with("- ") || body == "-" {
                        if index == want {
                            hit = Some((n, Some(ind + 2)));
                            break;
                        }
                        index += 1;
                    }
                }
            }
        }
        let (line, next_item_indent) = hit?;
        found = Some(line + 1);
        // The node spans until the next line at or left of its own indentation.
        let own = lines[line].len() - lines[line].trim_start().len();
        to = lines
            .iter()
            .enumerate()
            .skip(line + 1)
            .find(|(_, l)| {
                let b = l.trim_start();
                !b.is_empty() && !b.starts_with('#') && l.len() - b.len() <= own
            })
            .map_or(lines.len(), |(i, _)| i);
        from = if next_item_indent.is_some() {
            line
        } else {
            line + 1
        };
        item_indent = next_item_indent;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_follows_nesting() {
        let text = "a:\n  b:\n    - x: 1\n    - x: 2\n      y: 3\nc: 4\n";
        assert_eq!(locate(text, "a.b[1].y"), Some(5));
        assert_eq!(locate(text, "a.b[0].x"), Some(3));
        assert_eq!(locate(text, "c"), Some(6));
        assert_eq!(locate(text, "a.b[2]"), None);
    }

    #[test]
    fn quoted_keys_are_found() {
        let text = "paths:\n  /users/{id}:\n    get:\n      responses:\n        \"200\":\n          description: x\n";
        let steps = [
            Step::Key("paths"),
            Step::Key("/users/{id}"),
            Step::Key("get"),
            Step::Key("responses"),
            Step::Key("200"),
            Step::Key("description"),
        ];
        assert_eq!(locate_steps(text, &steps), Some(6));
    }
}
