//! Typed, borrowed views of JSON members for the serde-derived structs of `jose` and `dpop`.
//!
//! The checks need to tell "absent" from "present but the wrong JSON type" (`null` included),
//! so a member is never an `Option<String>`: [`StrMember`], [`NumMember`] and [`ObjMember`] keep
//! all three cases, and [`present`] records a member whose value is never looked at (`crit`, a
//! JWK's private members). Strings borrow from the JSON text unless they contain escapes.
//!
//! Every value is read through `deserialize_any`, never `IgnoredAny`: serde_json's fast skip does
//! not check UTF-8, surrogates, number range or nesting depth, and a text that
//! `serde_json::Value` refuses must be refused here too. Structs using these views ignore their
//! unknown members with `#[serde(flatten)] _rest: IgnoredAny`, which serde reads (and checks)
//! with `deserialize_any` as well; it costs an allocation only when there is an unknown member.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
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

/// Present, with a string value the caller does not want (`NotStr` is `Err`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NotAString;

/// Consumes and checks any JSON value, keeping nothing.
pub(crate) struct Skip;

/// `#[serde(default, deserialize_with = "present")]`: `true` when the member is there, whatever
/// its value (`null` included); the value is still checked as JSON.
pub(crate) fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Skip::deserialize(deserializer).map(|Skip| true)
}

/// The first non-whitespace byte (RFC 8259 §2 whitespace) of a JSON text is `{`. A derived
/// struct also accepts a JSON array (its fields by position); `serde_json::Map` does not.
pub(crate) fn is_object_text(text: &[u8]) -> bool {
    text.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| *b == b'{')
}

// === impl StrMember ===

impl<'a> StrMember<'a> {
    /// The member of a parsed JSON object (a JWKS entry).
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

impl<'de: 'a, 'a> Deserialize<'de> for StrMember<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrVisitor)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = StrMember<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(StrMember::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(StrMember::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(StrMember::Str(Cow::Owned(v)))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(StrMember::NotStr)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(StrMember::NotStr)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(StrMember::NotStr)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(StrMember::NotStr)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(StrMember::NotStr)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(StrMember::NotStr)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Skip::deserialize(d).map(|Skip| StrMember::NotStr)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_seq(seq).map(|Skip| StrMember::NotStr)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_map(map).map(|Skip| StrMember::NotStr)
    }
}

// === impl NumMember ===

impl<'de> Deserialize<'de> for NumMember {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumVisitor)
    }
}

struct NumVisitor;

impl<'de> Visitor<'de> for NumVisitor {
    type Value = NumMember;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(NumMember::Num(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        // serde_json only calls this for negative numbers: floored, they are 0.
        Ok(NumMember::Num(u64::try_from(v).unwrap_or(0)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // `as` saturates: negative -> 0, huge -> u64::MAX.
        Ok(NumMember::Num(v.floor() as u64))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NumMember::NotNum)
    }

    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(NumMember::NotNum)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NumMember::NotNum)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(NumMember::NotNum)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(NumMember::NotNum)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Skip::deserialize(d).map(|Skip| NumMember::NotNum)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_seq(seq).map(|Skip| NumMember::NotNum)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_map(map).map(|Skip| NumMember::NotNum)
    }
}

// === impl ObjMember ===

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjMember<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjVisitor(std::marker::PhantomData))
    }
}

struct ObjVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
    type Value = ObjMember<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(ObjMember::Obj)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(ObjMember::NotObj)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(ObjMember::NotObj)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(ObjMember::NotObj)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(ObjMember::NotObj)
    }

    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(ObjMember::NotObj)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(ObjMember::NotObj)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(ObjMember::NotObj)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(ObjMember::NotObj)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Skip::deserialize(d).map(|Skip| ObjMember::NotObj)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_seq(seq).map(|Skip| ObjMember::NotObj)
    }
}

// === impl Skip ===

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_none<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Skip, D::Error> {
        Skip::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
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
    fn object_text_is_recognised() {
        assert!(is_object_text(b" \r\n\t{}"));
        assert!(!is_object_text(b"[1]"));
        assert!(!is_object_text(b""));
        assert!(!is_object_text(b"  "));
    }
}
