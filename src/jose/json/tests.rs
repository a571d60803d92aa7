//! Unit tests of `jose::json`.

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
