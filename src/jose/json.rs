//! Typed, borrowed views of JSON members for the serde-derived structs of `jose`, `dpop` and
//! `token`: one rule for every JOSE JSON text the gateway reads (proof headers and claims,
//! access-token headers and claims, JWKS entries).
//!
//! The checks need to tell "absent" from "present but the wrong JSON type" (`null` included),
//! so a member is never an `Option<String>`: [`StrMember`], [`NumMember`], [`ObjMember`] and
//! [`StrsMember`] keep all the cases, and [`present`] records a member whose value is never
//! looked at (`crit`, a JWK's private members). Strings borrow from the JSON text unless they
//! contain escapes. A member the view reads that appears twice is an error ([`parse_object`]:
//! [`ObjectError::Duplicate`]), never "the last one wins" as in a `serde_json::Map`.
//!
//! Every value is read through `deserialize_any`, never `IgnoredAny`: serde_json's fast skip does
//! not check UTF-8, surrogates, number range or nesting depth, and a text that
//! `serde_json::Value` refuses must be refused here too. Structs using these views ignore their
//! unknown members with `#[serde(flatten)] _rest: IgnoredAny`, which serde reads (and checks)
//! with `deserialize_any` as well; it costs an allocation only when there is an unknown member.
//!
//! One visitor reads every view: a view says, through [`Shape`], what it makes of the JSON
//! types it takes; every other type is consumed, checked and recorded as "another type".

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;
use serde_json::Value;

/// A member that must be a JSON string when present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum StrMember<'a> {
    /// Not in the object.
    #[default]
    Absent,
    /// A string (borrowed unless it had escapes).
    Str(Cow<'a, str>),
    /// Present, not a string (`null` included).
    NotStr,
}

/// A member that must be a JSON number when present, read as whole seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum NumMember {
    /// Not in the object.
    #[default]
    Absent,
    /// A number, floored to a `u64`: a negative number is 0, one past `u64::MAX` saturates
    /// (what `serde_json::Number::as_u64`, else `as_f64().floor() as u64`, gives).
    Num(u64),
    /// Present, not a number (`null` included).
    NotNum,
}

/// A member that must be a JSON object when present, read as `T`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum ObjMember<T> {
    /// Not in the object.
    #[default]
    Absent,
    /// An object.
    Obj(T),
    /// Present, not an object (`null` included).
    NotObj,
}

/// A member that may be a string or an array (`aud`, RFC 7519 §4.1.3; `scp`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum StrsMember<'a> {
    /// Not in the object.
    #[default]
    Absent,
    /// A string.
    Str(Cow<'a, str>),
    /// An array; each element is a string or another type.
    Array(Vec<StrMember<'a>>),
    /// Present, neither a string nor an array (`null` included).
    Other,
}

/// Present, with a string value the caller does not want (`NotStr` is `Err`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NotAString;

/// Consumes and checks any JSON value, keeping nothing.
pub(crate) struct Skip;

/// Why a JSON text did not give a view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ObjectError {
    /// Not JSON, or not an object.
    NotJson,
    /// A member the view reads appears twice.
    Duplicate,
}

/// What a view makes of each JSON type. Every method defaults to "present, another type"
/// ([`Self::OTHER`]) after consuming and checking the value; a view overrides the types it
/// takes. [`MemberVisitor`] calls these for every view.
pub(crate) trait Shape<'de>: Sized {
    /// Present, of a type this view does not take (`null` included).
    const OTHER: Self;

    /// A string without escapes, borrowed from the JSON text.
    fn borrowed_str(_: &'de str) -> Self {
        Self::OTHER
    }

    /// A string that had escapes.
    fn owned_str(_: &str) -> Self {
        Self::OTHER
    }

    /// A number, floored to a `u64` (see [`NumMember::Num`]).
    fn number(_: u64) -> Self {
        Self::OTHER
    }

    /// An object.
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Self::OTHER)
    }

    /// An array.
    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Self::OTHER)
    }
}

/// The one visitor: dispatches each JSON type to the view's [`Shape`] method.
struct MemberVisitor<T>(PhantomData<T>);

/// `#[serde(default, deserialize_with = "present")]`: `true` when the member is there, whatever
/// its value (`null` included); the value is still checked as JSON.
pub(crate) fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Skip::deserialize(deserializer).map(|Skip| true)
}

/// Parses a JSON text that must be an object into the view `T`. A derived struct also accepts a
/// JSON array (its fields by position); that is refused here first.
pub(crate) fn parse_object<'a, T: Deserialize<'a>>(text: &'a [u8]) -> Result<T, ObjectError> {
    if !is_object_text(text) {
        return Err(ObjectError::NotJson);
    }
    serde_json::from_slice(text).map_err(|e| match e.classify() {
        // An object at the top and members that take any JSON value leave one data error:
        // serde's duplicate_field (syntax, depth and number range are Syntax or Eof).
        Category::Data => ObjectError::Duplicate,
        _ => ObjectError::NotJson,
    })
}

/// The first non-whitespace byte (RFC 8259 §2 whitespace) of a JSON text is `{`.
fn is_object_text(text: &[u8]) -> bool {
    text.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| *b == b'{')
}

fn deserialize_shape<'de, T: Shape<'de>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(MemberVisitor(PhantomData))
}

// === impl StrMember ===

impl<'a> StrMember<'a> {
    /// The member of a parsed JSON object (a JWK given as a `serde_json::Map`).
    pub(crate) fn from_value(value: Option<&'a Value>) -> Self {
        match value {
            None => StrMember::Absent,
            Some(Value::String(s)) => StrMember::Str(Cow::Borrowed(s)),
            Some(_) => StrMember::NotStr,
        }
    }

    /// `None` when absent, the string when a string.
    pub(crate) fn get(&self) -> Result<Option<&str>, NotAString> {
        match self {
            StrMember::Absent => Ok(None),
            StrMember::Str(s) => Ok(Some(s)),
            StrMember::NotStr => Err(NotAString),
        }
    }
}

impl<'de> Shape<'de> for StrMember<'de> {
    const OTHER: Self = StrMember::NotStr;

    fn borrowed_str(v: &'de str) -> Self {
        StrMember::Str(Cow::Borrowed(v))
    }

    fn owned_str(v: &str) -> Self {
        StrMember::Str(Cow::Owned(v.to_owned()))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for StrMember<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_shape::<StrMember<'de>, D>(deserializer)
    }
}

// === impl NumMember ===

impl Shape<'_> for NumMember {
    const OTHER: Self = NumMember::NotNum;

    fn number(v: u64) -> Self {
        NumMember::Num(v)
    }
}

impl<'de> Deserialize<'de> for NumMember {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_shape(deserializer)
    }
}

// === impl ObjMember ===

impl<'de, T: Deserialize<'de>> Shape<'de> for ObjMember<T> {
    const OTHER: Self = ObjMember::NotObj;

    fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(ObjMember::Obj)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjMember<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_shape(deserializer)
    }
}

// === impl StrsMember ===

impl<'de> Shape<'de> for StrsMember<'de> {
    const OTHER: Self = StrsMember::Other;

    fn borrowed_str(v: &'de str) -> Self {
        StrsMember::Str(Cow::Borrowed(v))
    }

    fn owned_str(v: &str) -> Self {
        StrsMember::Str(Cow::Owned(v.to_owned()))
    }

    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(item) = seq.next_element::<StrMember<'de>>()? {
            items.push(item);
        }
        Ok(StrsMember::Array(items))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for StrsMember<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_shape::<StrsMember<'de>, D>(deserializer)
    }
}

// === impl Skip ===

impl Shape<'_> for Skip {
    // The defaults consume every value, recursively.
    const OTHER: Self = Skip;
}

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_shape(deserializer)
    }
}

// === impl MemberVisitor ===

impl<'de, T: Shape<'de>> Visitor<'de> for MemberVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<T, E> {
        Ok(T::borrowed_str(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::owned_str(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok(T::number(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        // serde_json only calls this for negative numbers: floored, they are 0.
        Ok(T::number(u64::try_from(v).unwrap_or(0)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // `as` saturates: negative -> 0, huge -> u64::MAX.
        Ok(T::number(v.floor() as u64))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<T, E> {
        Ok(T::OTHER)
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::OTHER)
    }

    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok(T::OTHER)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        Skip::deserialize(d).map(|Skip| T::OTHER)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::array(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::object(map)
    }
}

#[cfg(test)]
mod tests;
