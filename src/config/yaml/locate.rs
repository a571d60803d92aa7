//! The line and column of a path: serde_yaml walks the text with a seed that follows the path
//! and fails on purpose at its end, and the failure's `location()` is the answer (see the module
//! above for why). Runs only when an error is reported.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Path, Step, Target};

/// Follows `steps`, then stops at the key or the node.
#[derive(Clone, Copy)]
struct Walk<'a> {
    steps: &'a [Step],
    target: Target,
    found: &'a Cell<bool>,
}

/// A mapping key: whether it is `want`; when `stop`, a match fails the walk there.
#[derive(Clone, Copy)]
struct KeyMatch<'a> {
    want: &'a str,
    stop: bool,
    found: &'a Cell<bool>,
}

/// Fails on whatever it is given, so that serde_yaml stamps that node's mark.
struct Stop;

/// The 1-based line and column of `target` of `path` in `text`. A path that is not there (a
/// missing setting) points at the key of its nearest parent that is, and the document itself
/// at 1:1.
pub(crate) fn locate(text: &str, path: &Path, target: Target) -> (usize, usize) {
    let steps = path.steps();
    let mut target = target;
    for len in (1..=steps.len()).rev() {
        if let Some(at) = find(text, &steps[..len], target) {
            return at;
        }
        target = Target::Key;
    }
    (1, 1)
}

/// One walk over `text`; `None` when the path is not there.
fn find(text: &str, steps: &[Step], target: Target) -> Option<(usize, usize)> {
    let found = Cell::new(false);
    let walk = Walk {
        steps,
        target,
        found: &found,
    };
    // Ok means the walk ran out of document; an Err it did not raise itself is not an answer.
    let err = walk
        .deserialize(serde_yaml::Deserializer::from_str(text))
        .err()?;
    if !found.get() {
        return None;
    }
    let at = err.location()?;
    let (line, column) = (at.line(), at.column());
    let item = matches!(steps.last(), Some(Step::Index(_)));
    Some(if item && target == Target::Key {
        (line, item_indicator(text, line, column).unwrap_or(column))
    } else {
        (line, column)
    })
}

/// serde_yaml marks a sequence item where its content starts (`path_prefix` in
/// `- path_prefix: /`); a reader looks for the `-` that introduces it. The column of that `-`,
/// when it is the last thing before the content on the same line.
fn item_indicator(text: &str, line: usize, column: usize) -> Option<usize> {
    let line = text.lines().nth(line.checked_sub(1)?)?;
    let before: String = line.chars().take(column.checked_sub(1)?).collect();
    let dash = before.trim_end_matches(' ');
    let opens_item = dash.strip_suffix('-')?;
    (opens_item.is_empty() || opens_item.ends_with(' ')).then(|| dash.chars().count())
}

// === impl Walk ===

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.steps.is_empty() {
            self.found.set(true);
            return d.deserialize_any(Stop);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the rest of a path")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Step::Key(want), rest)) = self.steps.split_first() else {
            return Ok(());
        };
        let key = KeyMatch {
            want,
            stop: rest.is_empty() && self.target == Target::Key,
            found: self.found,
        };
        while let Some(matched) = map.next_key_seed(key)? {
            if matched {
                return map.next_value_seed(Walk {
                    steps: rest,
                    ..self
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Step::Index(index), rest)) = self.steps.split_first() else {
            return Ok(());
        };
        for _ in 0..*index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Walk {
            steps: rest,
            ..self
        })
        .map(|_| ())
    }

    /// A tagged node: the walk goes on inside it.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        let (IgnoredAny, value) = data.variant()?;
        de::VariantAccess::newtype_variant_seed(value, self)
    }
}

// === impl KeyMatch ===

impl<'de> DeserializeSeed<'de> for KeyMatch<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyMatch<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        if key != self.want {
            return Ok(false);
        }
        if self.stop {
            self.found.set(true);
            return Err(E::custom("found"));
        }
        Ok(true)
    }
}

// === impl Stop ===

impl Visitor<'_> for Stop {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every visit fails with serde's "invalid type" error: that is the point.
        f.write_str("nothing: the walk stops here")
    }
}
