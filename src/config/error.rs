//! Configuration errors, rendered `file:line:column: message` (1-based), and where they point.
//!
//! Two sources of positions:
//! - serde_yaml: syntax errors, unknown keys (the key), wrong types and every single-value rule
//!   (the value: the validating newtypes in `raw` fail inside serde_yaml's own `deserialize_str`,
//!   which stamps the scalar's mark). Its message already starts with the dotted path.
//! - [`locate`], for rules that compare several settings (checked after deserializing, when
//!   serde_yaml has forgotten positions): a small walker over block-style YAML that finds the key
//!   of a dotted path such as `routes[2].nonce` by indentation (and inside a one-line flow
//!   mapping such as `- { path_prefix: /, auth: dpop }`); when the key is absent (a missing
//!   setting, or one written through an anchor) it falls back to the nearest parent it found, and
//!   to 1:1 for the document itself. No I/O.

/// A configuration error with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<inline>`).
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, naming the setting.
    pub message: String,
}

/// One step of a dotted path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// A content line: 0-based number, column of its first character, text from there.
#[derive(Clone, Copy, Debug)]
struct Line<'a> {
    no: usize,
    indent: usize,
    text: &'a str,
}

/// Where a node's value lives: nothing, an inline flow collection, or block lines.
#[derive(Clone, Debug)]
enum Node<'a> {
    Scalar,
    Flow(Line<'a>),
    Block(Vec<Line<'a>>),
}

// === impl ConfigError ===

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.origin, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error at the key of `path` in `text` (see [`locate`]).
    pub(crate) fn at_path(
        origin: &str,
        text: &str,
        path: &str,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = locate(text, path);
        ConfigError {
            origin: origin.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    /// A serde_yaml error, at the position it carries, with serde's wording for unknown keys
    /// rewritten to name the key by its dotted path.
    pub(crate) fn from_yaml(origin: &str, err: &serde_yaml::Error) -> Self {
        let mut message = err.to_string();
        let (line, column) = match err.location() {
            Some(loc) => {
                let at = format!(" at line {} column {}", loc.line(), loc.column());
                message = message.replacen(&at, "", 1);
                (loc.line(), loc.column())
            }
            None => (1, 1),
        };
        ConfigError {
            origin: origin.to_owned(),
            line,
            column,
            message: unknown_key(&message),
        }
    }
}

/// serde says `dpop: unknown field `x`, expected ...` (the path of the mapping); we say
/// `dpop.x: unknown key, expected ...`.
fn unknown_key(message: &str) -> String {
    const MARK: &str = "unknown field `";
    let Some(at) = message.find(MARK) else {
        return message.to_owned();
    };
    let parent = message[..at].strip_suffix(": ").unwrap_or("");
    let rest = &message[at + MARK.len()..];
    let Some(end) = rest.find('`') else {
        return message.to_owned();
    };
    let (key, tail) = (&rest[..end], &rest[end + 1..]);
    let dot = if parent.is_empty() { "" } else { "." };
    format!("{parent}{dot}{key}: unknown key{tail}")
}

/// The 1-based line and column of the key of `path` (`a.b`, `routes[1].auth`) in block-style
/// YAML `text`; the nearest located parent when it is absent; 1:1 when nothing is.
pub(crate) fn locate(text: &str, path: &str) -> (usize, usize) {
    let lines = content_lines(text);
    let mut found = (1, 1);
    let Some(first) = lines.first() else {
        return found;
    };
    let mut node = Node::Block(block_after(&lines, 0, first.indent, true));
    for step in steps(path) {
        let next = match (&node, step) {
            (Node::Block(block), Step::Key(key)) => block_key(block, key),
            (Node::Block(block), Step::Index(i)) => block_item(block, i),
            (Node::Flow(line), Step::Key(key)) => {
                flow_key(line, key).map(|pos| (pos, Node::Scalar))
            }
            _ => None,
        };
        let Some(((line, column), child)) = next else {
            break;
        };
        found = (line + 1, column + 1);
        node = child;
    }
    found
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, indices) = part
            .split_once('[')
            .map_or((part, ""), |(k, rest)| (k, rest));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        for index in indices.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse() {
                out.push(Step::Index(i));
            }
        }
    }
    out
}

/// Lines with content: no blanks, comments or document markers.
fn content_lines(text: &str) -> Vec<Line<'_>> {
    text.lines()
        .enumerate()
        .filter_map(|(no, raw)| {
            let trimmed = raw.trim_start_matches(' ');
            let skip = trimmed.is_empty()
                || trimmed.starts_with('#')
                || trimmed.starts_with("---")
                || trimmed.starts_with("...")
                || trimmed.starts_with('%');
            (!skip).then(|| Line {
                no,
                indent: raw.len() - trimmed.len(),
                text: trimmed.trim_end(),
            })
        })
        .collect()
}

/// The lines after `lines[start - 1]` (or from `start` when `include_start`) that belong to a
/// node whose key sits at column `indent`: deeper lines, and `- ` items at the same column (YAML
/// lets a mapping's sequence value start at the key's own column).
fn block_after<'a>(
    lines: &[Line<'a>],
    start: usize,
    indent: usize,
    include_start: bool,
) -> Vec<Line<'a>> {
    let from = if include_start { start } else { start + 1 };
    lines
        .get(from..)
        .unwrap_or_default()
        .iter()
        .take_while(|l| {
            l.indent > indent || (l.indent == indent && (include_start || is_item(l.text)))
        })
        .copied()
        .collect()
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// The key `key` among the entries of a block mapping, and its value.
fn block_key<'a>(block: &[Line<'a>], key: &str) -> Option<((usize, usize), Node<'a>)> {
    let first = block.first()?;
    if first.text.starts_with('{') {
        return flow_key(first, key).map(|pos| (pos, Node::Scalar));
    }
    let at = block
        .iter()
        .position(|l| l.indent == first.indent && value_after_key(l.text, key).is_some())?;
    let line = block[at];
    let value = value_after_key(line.text, key)?;
    let node = if value.starts_with('{') || value.starts_with('[') {
        let offset = line.text.len() - value.len();
        Node::Flow(Line {
            no: line.no,
            indent: line.indent + offset,
            text: value,
        })
    } else if value.is_empty() {
        Node::Block(block_after(block, at, line.indent, false))
    } else {
        Node::Scalar
    };
    Some(((line.no, line.indent), node))
}

/// What follows `key:` on a line that starts with that key (plain or quoted), comments removed.
fn value_after_key<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let rest = [key.to_owned(), format!("\"{key}\""), format!("'{key}'")]
        .iter()
        .find_map(|k| text.strip_prefix(k.as_str()))?;
    let rest = rest.trim_start().strip_prefix(':')?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let rest = rest.trim();
    Some(if rest.starts_with('#') { "" } else { rest })
}

/// The `index`-th item of a block sequence, as a block whose first line is the item's content.
fn block_item<'a>(block: &[Line<'a>], index: usize) -> Option<((usize, usize), Node<'a>)> {
    let dash = block.first()?.indent;
    let at = block
        .iter()
        .enumerate()
        .filter(|(_, l)| l.indent == dash && is_item(l.text))
        .nth(index)?
        .0;
    let line = block[at];
    let content = line.text[1..].trim_start();
    let mut item = Vec::new();
    if !content.is_empty() {
        let indent = line.indent + (line.text.len() - content.len());
        item.push(Line {
            no: line.no,
            indent,
            text: content,
        });
    }
    item.extend(block[at + 1..].iter().take_while(|l| l.indent > dash));
    Some(((line.no, line.indent), Node::Block(item)))
}

/// The position of `key` inside a one-line flow mapping `{ a: 1, key: 2 }`.
fn flow_key(line: &Line<'_>, key: &str) -> Option<(usize, usize)> {
    let text = line.text;
    let mut search = 0;
    while let Some(found) = text[search..].find(key) {
        let start = search + found;
        let before = text[..start].trim_end_matches([' ', '"', '\'']);
        let after = text[start + key.len()..]
            .trim_start_matches(['"', '\''])
            .trim_start();
        if (before.ends_with('{') || before.ends_with(',')) && after.starts_with(':') {
            let column = line.indent + text[..start].chars().count();
            let quoted = text[..start].ends_with(['"', '\'']);
            return Some((line.no, if quoted { column - 1 } else { column }));
        }
        search = start + key.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
listen: \"127.0.0.1:8443\"
tls:
  cert: a.pem   # the chain

  key: b.pem
routes:
- path_prefix: /healthz
  auth: none
-   path_prefix: /
    nonce: true
dpop:
  algorithms: [ES256]
  nonce:
    enabled: true
flow:
  - { path_prefix: \"/x\", \"auth\": dpop }
";

    #[test]
    fn locates_keys_by_indentation() {
        assert_eq!(locate(DOC, "listen"), (2, 1));
        assert_eq!(locate(DOC, "tls"), (3, 1));
        assert_eq!(locate(DOC, "tls.key"), (6, 3));
        assert_eq!(locate(DOC, "dpop.nonce.enabled"), (15, 5));
        assert_eq!(locate(DOC, "dpop.algorithms"), (13, 3));
    }

    #[test]
    fn locates_sequence_items_and_their_keys() {
        assert_eq!(locate(DOC, "routes[0]"), (8, 1));
        assert_eq!(locate(DOC, "routes[0].auth"), (9, 3));
        assert_eq!(locate(DOC, "routes[1].path_prefix"), (10, 5));
        assert_eq!(locate(DOC, "routes[1].nonce"), (11, 5));
        assert_eq!(locate(DOC, "flow[0].auth"), (17, 26));
        assert_eq!(locate(DOC, "flow[0].path_prefix"), (17, 7));
    }

    #[test]
    fn falls_back_to_the_nearest_parent() {
        assert_eq!(locate(DOC, "tls.password"), (3, 1));
        assert_eq!(locate(DOC, "routes[5].auth"), (7, 1));
        assert_eq!(locate(DOC, "dpop.nonce.secrets"), (14, 3));
        assert_eq!(locate(DOC, "nothing.here"), (1, 1));
        assert_eq!(locate("", "a"), (1, 1));
    }

    #[test]
    fn a_key_is_not_matched_by_a_longer_key() {
        let doc = "listen_x: 1\nlisten: 2\n";
        assert_eq!(locate(doc, "listen"), (2, 1));
    }

    #[test]
    fn unknown_field_is_reworded_with_its_path() {
        assert_eq!(
            unknown_key("dpop: unknown field `foo`, expected `a` or `b`"),
            "dpop.foo: unknown key, expected `a` or `b`"
        );
        assert_eq!(
            unknown_key("unknown field `lisen`, expected one of `x`"),
            "lisen: unknown key, expected one of `x`"
        );
        assert_eq!(unknown_key("listen: bad"), "listen: bad");
    }

    #[test]
    fn display_is_file_line_column_message() {
        let e = ConfigError {
            origin: "g.yaml".into(),
            line: 3,
            column: 7,
            message: "m".into(),
        };
        assert_eq!(e.to_string(), "g.yaml:3:7: m");
    }
}
