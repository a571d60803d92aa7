//! The text as a [`Node`] tree, in two serde_yaml passes (see the module above for why two):
//! the kinds of every node in document order, then the nodes with each scalar as written.
//! A key given twice in one mapping, and a key that is not a scalar, are refused at that key.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{locate, Path, Target, YamlError};

/// A YAML node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    /// A scalar as written (quotes removed, escapes applied), and whether YAML reads it as null
    /// (`~`, `null`, nothing).
    Scalar {
        /// The text.
        text: String,
        /// Whether it is null.
        null: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping: each key once, in document order.
    Map(Vec<(String, Node)>),
}

/// What a node is, as the first pass sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    Scalar,
    Seq,
    Map,
}

/// The first pass: kinds in document order (keys not included) and the first refusal.
struct Kinds<'a> {
    kinds: RefCell<Vec<Kind>>,
    refused: RefCell<Option<YamlError>>,
    text: &'a str,
}

/// Records the kind of the node at `path` (and of everything under it).
struct KindSeed<'k, 'a> {
    cx: &'k Kinds<'a>,
    path: Path,
}

/// Reads a mapping's key, refusing a repeat of one in `seen`.
struct KeySeed<'k, 'a, 's> {
    cx: &'k Kinds<'a>,
    parent: &'s Path,
    seen: &'s mut HashSet<String>,
}

/// The second pass: a node of the kind the first pass saw there.
struct NodeSeed<'k> {
    kinds: &'k RefCell<std::vec::IntoIter<Kind>>,
}

/// A scalar's text as written.
struct TextVisitor;

// === impl Node ===

impl Node {
    /// An empty document.
    fn null() -> Node {
        Node::Scalar {
            text: String::new(),
            null: true,
        }
    }

    /// Whether this is a null scalar (an empty document is one).
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Node::Scalar { null: true, .. })
    }
}

/// Reads `text` into a tree.
pub(crate) fn read(text: &str) -> Result<Node, YamlError> {
    let kinds = kinds(text)?;
    // An empty document has no event serde_yaml could read a scalar from.
    if kinds == [Kind::Null] {
        return Ok(Node::null());
    }
    let kinds = RefCell::new(kinds.into_iter());
    NodeSeed { kinds: &kinds }
        .deserialize(serde_yaml::Deserializer::from_str(text))
        .map_err(|e| YamlError::from_serde_yaml(&e))
}

fn kinds(text: &str) -> Result<Vec<Kind>, YamlError> {
    let cx = Kinds {
        kinds: RefCell::new(Vec::new()),
        refused: RefCell::new(None),
        text,
    };
    let seed = KindSeed {
        cx: &cx,
        path: Path::root(),
    };
    match seed.deserialize(serde_yaml::Deserializer::from_str(text)) {
        Ok(()) => Ok(cx.kinds.into_inner()),
        Err(e) => Err(match cx.refused.into_inner() {
            // Raised by us while serde_yaml was reading the key: its mark is the key's.
            Some(refused) => YamlError {
                at: e.location().map(|l| (l.line(), l.column())),
                ..refused
            },
            None => YamlError::from_serde_yaml(&e),
        }),
    }
}

// === impl KindSeed ===

impl<'de> DeserializeSeed<'de> for KindSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KindSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.push(Kind::Scalar)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.push(Kind::Scalar)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.push(Kind::Scalar)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.push(Kind::Scalar)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.push(Kind::Scalar)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.push(Kind::Scalar)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.push(Kind::Scalar)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.push(Kind::Null)
    }

    /// An empty document.
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.push(Kind::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.push(Kind::Seq)?;
        let mut index = 0;
        while seq
            .next_element_seed(KindSeed {
                cx: self.cx,
                path: self.path.index(index),
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.push(Kind::Map)?;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key_seed(KeySeed {
            cx: self.cx,
            parent: &self.path,
            seen: &mut seen,
        })? {
            map.next_value_seed(KindSeed {
                cx: self.cx,
                path: self.path.key(&key),
            })?;
        }
        Ok(())
    }

    /// A tagged node (`!name value`): the tag is ignored, as serde_yaml's `deserialize_str`,
    /// `_seq` and `_map` ignore it in the second pass.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        let (IgnoredAny, value) = data.variant()?;
        de::VariantAccess::newtype_variant_seed(value, self)
    }
}

impl KindSeed<'_, '_> {
    fn push<E: de::Error>(&self, kind: Kind) -> Result<(), E> {
        self.cx.kinds.borrow_mut().push(kind);
        Ok(())
    }
}

// === impl KeySeed ===

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_, '_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_, '_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        self.key(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.key(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.key(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        self.key(v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.key(v.to_owned())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.key("~".to_owned())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(self.refuse(
            self.parent.clone(),
            "a key must be a plain name, not a list".into(),
        ))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(self.refuse(
            self.parent.clone(),
            "a key must be a plain name, not a mapping".into(),
        ))
    }
}

impl KeySeed<'_, '_, '_> {
    fn key<E: de::Error>(self, key: String) -> Result<String, E> {
        if self.seen.contains(&key) {
            let path = self.parent.key(&key);
            let (line, column) = locate(self.cx.text, &path, Target::Key);
            let message = format!(
                "duplicate key (first set at line {line}, column {column}); \
                 a key may appear once per mapping"
            );
            return Err(self.refuse(path, message));
        }
        self.seen.insert(key.clone());
        Ok(key)
    }

    /// Keeps the refusal for [`kinds`] and fails the pass, so that serde_yaml stamps the mark
    /// of the node being read.
    fn refuse<E: de::Error>(&self, path: Path, message: String) -> E {
        *self.cx.refused.borrow_mut() = Some(YamlError {
            path,
            target: Target::Key,
            message,
            at: None,
        });
        E::custom("refused")
    }
}

// === impl NodeSeed ===

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        let kind = self.kinds.borrow_mut().next();
        match kind {
            Some(kind @ (Kind::Null | Kind::Scalar)) => {
                let text = d.deserialize_str(TextVisitor)?;
                Ok(Node::Scalar {
                    text,
                    null: kind == Kind::Null,
                })
            }
            Some(Kind::Seq) => d.deserialize_seq(self),
            Some(Kind::Map) => d.deserialize_map(self),
            // Both passes read the same events; running out means they did not.
            None => Err(de::Error::custom(
                "the document changed between two readings",
            )),
        }
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(NodeSeed { kinds: self.kinds })? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(TextVisitor)? {
            let value = map.next_value_seed(NodeSeed { kinds: self.kinds })?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

// === impl TextVisitor ===

impl<'de> DeserializeSeed<'de> for TextVisitor {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
}
