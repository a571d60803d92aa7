//! A serde `Deserializer` over a [`Node`] tree. Scalars reach `deserialize_str` as written,
//! with `${NAME}` substituted (values only, never keys), so every setting, numbers and booleans
//! included, accepts a variable and is parsed by one function. Errors are [`DeError`]: the path
//! of the node that failed, whether the key or the value is at fault, and a message we wrote.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::forward_to_deserialize_any;

use super::{Node, Path, Target, YamlError};
use crate::config::env::{self, EnvLookup};

/// Deserializes the node at `path`.
pub(crate) struct NodeDe<'a> {
    node: &'a Node,
    path: Path,
    env: &'a dyn EnvLookup,
}

/// Why a node could not be deserialized.
#[derive(Debug)]
pub(crate) struct DeError {
    /// Where; set by the innermost node the error passes through.
    at: Option<(Path, Target)>,
    message: String,
}

/// A mapping's entries.
struct MapDe<'a> {
    entries: std::slice::Iter<'a, (String, Node)>,
    value: Option<(&'a str, &'a Node)>,
    path: Path,
    env: &'a dyn EnvLookup,
}

/// A sequence's items.
struct SeqDe<'a> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
    path: Path,
    env: &'a dyn EnvLookup,
}

/// A key: handed over as written (no substitution).
struct KeyDe<'a>(&'a str);

/// A scalar where a mapping or a list belongs, not echoed: it may be a secret.
const SCALAR: Unexpected<'static> = Unexpected::Other("a single value");

// === impl NodeDe ===

impl<'a> NodeDe<'a> {
    /// The whole document, `${NAME}` values from `env`.
    pub(crate) fn root(node: &'a Node, env: &'a dyn EnvLookup) -> Self {
        NodeDe {
            node,
            path: Path::root(),
            env,
        }
    }

    fn at<T>(&self, result: Result<T, DeError>) -> Result<T, DeError> {
        result.map_err(|e| e.at(&self.path, Target::Value))
    }

    fn map<'de, V: Visitor<'de>>(
        &self,
        entries: &'a [(String, Node)],
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_map(MapDe {
            entries: entries.iter(),
            value: None,
            path: self.path.clone(),
            env: self.env,
        })
    }

    fn seq<'de, V: Visitor<'de>>(&self, items: &'a [Node], v: V) -> Result<V::Value, DeError> {
        v.visit_seq(SeqDe {
            items: items.iter(),
            index: 0,
            path: self.path.clone(),
            env: self.env,
        })
    }
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.node {
            Node::Scalar { null: true, .. } => visitor.visit_unit(),
            Node::Scalar { text, .. } => visitor.visit_str(text),
            Node::Seq(items) => self.seq(items, visitor),
            Node::Map(entries) => self.map(entries, visitor),
        };
        self.at(result)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let Node::Scalar { text, .. } = self.node else {
            return self.deserialize_any(visitor);
        };
        let result = env::substitute(text, self.env)
            .map_err(de::Error::custom)
            .and_then(|text| visitor.visit_str(&text));
        self.at(result)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            let result = visitor.visit_none();
            return self.at(result);
        }
        visitor.visit_some(self)
    }

    /// As serde_yaml does, an empty value reads as an empty mapping. Only a mapping is one:
    /// a derived struct's visitor would also take a sequence, field by field.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.node {
            Node::Map(entries) => self.map(entries, visitor),
            Node::Scalar { null: true, .. } => self.map(&[], visitor),
            Node::Seq(_) => Err(de::Error::invalid_type(Unexpected::Seq, &visitor)),
            Node::Scalar { .. } => Err(de::Error::invalid_type(SCALAR, &visitor)),
        };
        self.at(result)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    /// As serde_yaml does, an empty value reads as an empty sequence.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.node {
            Node::Seq(items) => self.seq(items, visitor),
            Node::Scalar { null: true, .. } => self.seq(&[], visitor),
            Node::Map(_) => Err(de::Error::invalid_type(Unexpected::Map, &visitor)),
            Node::Scalar { .. } => Err(de::Error::invalid_type(SCALAR, &visitor)),
        };
        self.at(result)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
        unit_struct tuple tuple_struct enum identifier ignored_any
    }
}

// === impl MapDe, SeqDe, KeyDe ===

impl<'de> MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some((key, value));
        // An unknown key is refused here, by the derived field visitor: the key is at fault.
        seed.deserialize(KeyDe(key))
            .map(Some)
            .map_err(|e| e.at(&self.path.key(key), Target::Key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, node)) = self.value.take() else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        seed.deserialize(NodeDe {
            node,
            path: self.path.key(key),
            env: self.env,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

impl<'de> SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = self.path.index(self.index);
        self.index += 1;
        seed.deserialize(NodeDe {
            node,
            path,
            env: self.env,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

impl<'de> Deserializer<'de> for KeyDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.0)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

// === impl DeError ===

impl DeError {
    /// Sets where, unless a node further in has already.
    fn at(mut self, path: &Path, target: Target) -> Self {
        if self.at.is_none() {
            self.at = Some((path.clone(), target));
        }
        self
    }

    /// As an error of the YAML layer; [`super::locate()`] will find its position.
    pub(crate) fn into_yaml_error(self) -> YamlError {
        let (path, target) = self.at.unwrap_or((Path::root(), Target::Value));
        YamlError {
            path,
            target,
            message: self.message,
            at: None,
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            at: None,
            message: msg.to_string(),
        }
    }

    /// `unknown key, expected one of ...`: the path (which ends with the key) comes first.
    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        let names: Vec<String> = expected.iter().map(|n| format!("`{n}`")).collect();
        let expected = match names.as_slice() {
            [] => "there are no keys here".to_owned(),
            [one] => format!("expected {one}"),
            [a, b] => format!("expected {a} or {b}"),
            _ => format!("expected one of {}", names.join(", ")),
        };
        de::Error::custom(format_args!("unknown key, {expected}"))
    }
}
