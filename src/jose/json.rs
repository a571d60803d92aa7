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
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct View<'a> {
        #[serde(default, borrow)]
        s: StrMember<'a>,
        #[serde(default)]
        n: NumMember,
        #[serde(default, deserialize_with = "present")]
        p: bool,
        #[serde(default, borrow)]
        l: StrsMember<'a>,
        #[serde(default)]
        o: ObjMember<Inner>,
        #[serde(flatten)]
        _rest: de::IgnoredAny,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        n: NumMember,
        #[serde(flatten)]
        _rest: de::IgnoredAny,
    }

    fn view(text: &str) -> Result<View<'_>, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn absent_string_and_other_are_three_cases() {
        assert_eq!(view("{}").unwrap().s, StrMember::Absent);
        assert!(matches!(
            view(r#"{"s":"plain"}"#).unwrap().s,
            StrMember::Str(Cow::Borrowed("plain"))
        ));
        assert!(matches!(
            view(r#"{"s":"t\u0061b"}"#).unwrap().s,
            StrMember::Str(Cow::Owned(s)) if s == "tab"
        ));
        for other in [
            "null",
            "1",
            "-1",
            "1.5",
            "true",
            "[1,[2]]",
            r#"{"a":{"b":1}}"#,
        ] {
            let text = format!(r#"{{"s":{other},"n":{other}}}"#);
            let v = view(&text).unwrap();
            assert_eq!(v.s, StrMember::NotStr, "{other}");
            assert_eq!(StrMember::NotStr.get(), Err(NotAString));
            if !matches!(other, "1" | "-1" | "1.5") {
                assert_eq!(v.n, NumMember::NotNum, "{other}");
            }
        }
    }

    #[test]
    fn numbers_floor_like_serde_json_value() {
        for (text, want) in [
            ("0", 0),
            ("17", 17),
            ("-1", 0),
            ("5.9", 5),
            ("-0.5", 0),
            ("1e300", u64::MAX),
            ("18446744073709551616", u64::MAX),
        ] {
            let text_n = format!(r#"{{"n":{text}}}"#);
            let v = view(&text_n).unwrap();
            let value: Value = serde_json::from_str(text).unwrap();
            let n = value
                .as_u64()
                .unwrap_or_else(|| value.as_f64().map_or(0, |f| f.floor() as u64));
            assert_eq!(v.n, NumMember::Num(want), "{text}");
            assert_eq!(n, want, "{text}");
        }
        assert_eq!(view(r#"{"n":"1"}"#).unwrap().n, NumMember::NotNum);
    }

    #[test]
    fn presence_counts_null() {
        assert!(!view("{}").unwrap().p);
        assert!(view(r#"{"p":null}"#).unwrap().p);
        assert!(view(r#"{"p":{"x":[1]}}"#).unwrap().p);
    }

    #[test]
    fn refused_wherever_serde_json_value_refuses() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let cases = [
            // In an unknown member, in a member we read, in a presence-only member.
            format!(r#"{{"u":{deep}}}"#),
            format!(r#"{{"s":{deep}}}"#),
            format!(r#"{{"p":{deep}}}"#),
            r#"{"u":"\ud800"}"#.to_owned(),
            r#"{"s":["\ud800"]}"#.to_owned(),
            r#"{"p":"\ud800"}"#.to_owned(),
            r#"{"u":1e400}"#.to_owned(),
            r#"{"n":{"a":1e400}}"#.to_owned(),
        ];
        for text in &cases {
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
            assert!(view(text).is_err(), "{text}");
        }
        // Invalid UTF-8 in an unknown member's string.
        let bytes = b"{\"u\":\"\xff\"}";
        assert!(serde_json::from_slice::<Value>(bytes).is_err());
        assert!(serde_json::from_slice::<View<'_>>(bytes).is_err());
        // What Value accepts, the views accept.
        let ok = r#"{"u":{"deep":[[[1]]],"s":"\u00e9"},"s":"x","n":1,"p":[]}"#;
        assert!(view(ok).is_ok());
    }

    #[test]
    fn duplicates_of_read_members_are_data_errors() {
        for text in [
            r#"{"s":"a","s":"b"}"#,
            r#"{"n":1,"n":1}"#,
            r#"{"p":1,"p":1}"#,
        ] {
            let err = view(text).unwrap_err();
            assert_eq!(err.classify(), serde_json::error::Category::Data, "{text}");
        }
        // Unknown members may repeat, as in a serde_json::Map (the last one wins there).
        assert!(view(r#"{"u":1,"u":2}"#).is_ok());
    }

    #[test]
    fn string_or_array_keeps_each_element() {
        assert_eq!(view("{}").unwrap().l, StrsMember::Absent);
        assert!(matches!(
            view(r#"{"l":"a"}"#).unwrap().l,
            StrsMember::Str(Cow::Borrowed("a"))
        ));
        assert_eq!(
            view(r#"{"l":["a",1,null,"b\u0063"]}"#).unwrap().l,
            StrsMember::Array(vec![
                StrMember::Str("a".into()),
                StrMember::NotStr,
                StrMember::NotStr,
                StrMember::Str("bc".into()),
            ])
        );
        for other in ["null", "1", "true", r#"{"a":"b"}"#] {
            let text = format!(r#"{{"l":{other}}}"#);
            assert_eq!(view(&text).unwrap().l, StrsMember::Other, "{other}");
        }
    }

    #[test]
    fn nested_objects_are_views_too() {
        assert_eq!(
            view(r#"{"o":{"n":3,"x":[1]}}"#).unwrap().o,
            ObjMember::Obj(Inner {
                n: NumMember::Num(3),
                _rest: de::IgnoredAny
            })
        );
        assert_eq!(view(r#"{"o":[1]}"#).unwrap().o, ObjMember::NotObj);
        assert_eq!(view(r#"{"o":null}"#).unwrap().o, ObjMember::NotObj);
        // A duplicate inside the nested view is a duplicate of the whole text.
        assert_eq!(
            parse_object::<View<'_>>(br#"{"o":{"n":1,"n":2}}"#).unwrap_err(),
            ObjectError::Duplicate
        );
    }

    #[test]
    fn parse_object_tells_duplicates_from_non_objects() {
        assert!(parse_object::<View<'_>>(br#" {"s":"a"}"#).is_ok());
        for text in [&br#"{"s":"a","s":"b"}"#[..], br#"{"l":[],"l":"x"}"#] {
            assert_eq!(
                parse_object::<View<'_>>(text).unwrap_err(),
                ObjectError::Duplicate
            );
        }
        // A derived struct would take an array by position; an object is required.
        for text in [&b"[\"a\"]"[..], b"\"s\"", b"", b"{", b"{\"s\":\"\xff\"}"] {
            assert_eq!(
                parse_object::<View<'_>>(text).unwrap_err(),
                ObjectError::NotJson
            );
        }
    }

    #[test]
    fn object_text_is_recognised() {
        assert!(is_object_text(b" \r\n\t{}"));
        assert!(!is_object_text(b"[1]"));
        assert!(!is_object_text(b""));
        assert!(!is_object_text(b"  "));
    }
}
