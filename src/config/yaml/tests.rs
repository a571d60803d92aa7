use serde::Deserialize;

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

fn key(text: &str, path: &str) -> (usize, usize) {
    locate(text, &Path::parse(path), Target::Key)
}

fn value(text: &str, path: &str) -> (usize, usize) {
    locate(text, &Path::parse(path), Target::Value)
}

// --- locate ---

#[test]
fn locates_keys_in_block_mappings() {
    assert_eq!(key(DOC, "listen"), (2, 1));
    assert_eq!(key(DOC, "tls"), (3, 1));
    assert_eq!(key(DOC, "tls.key"), (6, 3));
    assert_eq!(key(DOC, "dpop.nonce.enabled"), (15, 5));
    assert_eq!(key(DOC, "dpop.algorithms"), (13, 3));
}

#[test]
fn locates_sequence_items_at_their_dash_and_their_keys() {
    assert_eq!(key(DOC, "routes[0]"), (8, 1));
    assert_eq!(key(DOC, "routes[0].auth"), (9, 3));
    assert_eq!(key(DOC, "routes[1]"), (10, 1));
    assert_eq!(key(DOC, "routes[1].path_prefix"), (10, 5));
    assert_eq!(key(DOC, "routes[1].nonce"), (11, 5));
    assert_eq!(key(DOC, "flow[0]"), (17, 3));
    assert_eq!(key(DOC, "flow[0].auth"), (17, 26));
    assert_eq!(key(DOC, "flow[0].path_prefix"), (17, 7));
}

#[test]
fn locates_values() {
    assert_eq!(value(DOC, "listen"), (2, 9));
    assert_eq!(value(DOC, "tls.cert"), (4, 9));
    assert_eq!(value(DOC, "dpop.algorithms"), (13, 15));
    assert_eq!(value(DOC, "dpop.algorithms[0]"), (13, 16));
    assert_eq!(value(DOC, "flow[0].auth"), (17, 34));
}

#[test]
fn a_missing_path_falls_back_to_the_key_of_its_nearest_parent() {
    assert_eq!(key(DOC, "tls.password"), (3, 1));
    assert_eq!(value(DOC, "tls.password"), (3, 1));
    assert_eq!(key(DOC, "routes[5].auth"), (7, 1));
    assert_eq!(key(DOC, "dpop.nonce.secrets"), (14, 3));
    assert_eq!(key(DOC, "listen.deeper"), (2, 1));
    assert_eq!(key(DOC, "nothing.here"), (1, 1));
    assert_eq!(key("", "a"), (1, 1));
    assert_eq!(key(DOC, ""), (1, 1));
}

#[test]
fn a_key_is_not_matched_by_a_longer_key_and_the_first_of_two_is_found() {
    assert_eq!(key("listen_x: 1\nlisten: 2\n", "listen"), (2, 1));
    assert_eq!(key("a: 1\nb: {a: 2}\n", "b.a"), (2, 5));
}

#[test]
fn an_alias_is_located_where_its_anchor_is_written() {
    let doc = "base: &b\n  x: 1\nother: *b\n";
    assert_eq!(key(doc, "other.x"), (2, 3));
}

#[test]
fn paths_read_back_what_they_display() {
    for dotted in [
        "listen",
        "dpop.nonce.secrets[0]",
        "routes[2].auth",
        "a[1][2].b",
    ] {
        assert_eq!(Path::parse(dotted).to_string(), dotted);
    }
    assert_eq!(
        Path::parse("routes[1].nonce").steps(),
        [
            Step::Key("routes".into()),
            Step::Index(1),
            Step::Key("nonce".into())
        ]
    );
    assert!(Path::parse("").is_root());
}

// --- read ---

fn scalar(text: &str) -> Node {
    Node::Scalar {
        text: text.into(),
        null: false,
    }
}

#[test]
fn scalars_are_kept_as_written() {
    let tree = read("a: 0x10\nb: 1.50\nc: True\nd: \"q\"\ne: ~\nf:\ng: [1e3, -0]\n").unwrap();
    let null = |text: &str| Node::Scalar {
        text: text.into(),
        null: true,
    };
    assert_eq!(
        tree,
        Node::Map(vec![
            ("a".into(), scalar("0x10")),
            ("b".into(), scalar("1.50")),
            ("c".into(), scalar("True")),
            ("d".into(), scalar("q")),
            ("e".into(), null("~")),
            ("f".into(), null("")),
            ("g".into(), Node::Seq(vec![scalar("1e3"), scalar("-0")])),
        ])
    );
}

#[test]
fn tags_are_ignored_and_aliases_expanded() {
    let tree = read("a: !x 5\nb: &n {c: 1}\nd: *n\n").unwrap();
    let c = Node::Map(vec![("c".into(), scalar("1"))]);
    assert_eq!(
        tree,
        Node::Map(vec![
            ("a".into(), scalar("5")),
            ("b".into(), c.clone()),
            ("d".into(), c),
        ])
    );
}

#[test]
fn an_empty_document_is_null() {
    assert!(read("").unwrap().is_null());
    assert!(read("# only a comment\n").unwrap().is_null());
}

#[test]
fn a_duplicate_key_is_refused_at_the_second_one() {
    let err = read("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n").unwrap_err();
    assert_eq!(err.path, Path::parse("b.c"));
    assert_eq!(err.at, Some((5, 3)));
    assert!(
        err.message
            .starts_with("duplicate key (first set at line 3, column 3)"),
        "{err:?}"
    );
    let err = read("x: 1\ny: {}\nx: 2\n").unwrap_err();
    assert_eq!(
        (err.full_message().starts_with("x: duplicate key"), err.at),
        (true, Some((3, 1)))
    );
    let err = read("r:\n  - { a: 1, a: 2 }\n").unwrap_err();
    assert_eq!(
        (err.path.to_string(), err.at),
        ("r[0].a".into(), Some((2, 13)))
    );
}

#[test]
fn a_key_that_is_not_a_scalar_is_refused() {
    let err = read("? [a, b]\n: 1\n").unwrap_err();
    assert!(err.message.contains("not a list"), "{err:?}");
    assert_eq!(err.at, Some((1, 3)));
}

#[test]
fn a_syntax_error_carries_its_position_once() {
    let err = read("a: [1, 2\nb: 3\n").unwrap_err();
    let (line, column) = err.at.unwrap();
    assert!(line >= 2, "{err:?}");
    assert!(
        !err.message
            .contains(&format!(" at line {line} column {column}")),
        "{err:?}"
    );
}

// --- NodeDe ---

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    name: Option<String>,
    list: Option<Vec<Inner>>,
    inner: Option<Inner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inner {
    // reason: read by deserialization only; the tests check where errors point.
    #[allow(dead_code)]
    deep: Option<String>,
}

fn de(text: &str) -> Result<Doc, YamlError> {
    let env: std::collections::HashMap<String, String> =
        [("NAME".to_owned(), "from-env".to_owned())].into();
    let tree = read(text)?;
    Doc::deserialize(NodeDe::root(&tree, &env)).map_err(|e| e.into_yaml_error())
}

#[test]
fn strings_are_substituted_and_nulls_are_none() {
    let doc = de("name: \"${NAME}!\"\ninner:\n").unwrap();
    assert_eq!(doc.name.as_deref(), Some("from-env!"));
    assert!(doc.inner.is_none() && doc.list.is_none());
}

#[test]
fn an_unknown_key_names_its_path_and_the_keys_allowed() {
    let err = de("inner:\n  deeep: 1\n").unwrap_err();
    assert_eq!(
        (err.path.to_string(), err.target),
        ("inner.deeep".into(), Target::Key)
    );
    assert_eq!(
        err.full_message(),
        "inner.deeep: unknown key, expected `deep`"
    );
    let err = de("nme: 1\n").unwrap_err();
    assert_eq!(
        err.full_message(),
        "nme: unknown key, expected one of `name`, `list`, `inner`"
    );
}

#[test]
fn a_wrong_type_points_at_the_value() {
    let err = de("inner: [1]\n").unwrap_err();
    assert_eq!(
        (err.path.to_string(), err.target),
        ("inner".into(), Target::Value)
    );
    assert!(err.message.starts_with("invalid type: sequence"), "{err:?}");
    let err = de("inner: s3cret\n").unwrap_err();
    assert_eq!(
        err.full_message(),
        "inner: invalid type: a single value, expected struct Inner"
    );
    let err = de("list: [{deep: a}, 5]\n").unwrap_err();
    assert_eq!(err.path.to_string(), "list[1]");
    let err = de("name: ${UNSET}\n").unwrap_err();
    assert_eq!(err.full_message(), "name: ${UNSET} is not set");
}

#[test]
fn keys_are_never_substituted() {
    let err = de("${NAME}: 1\n").unwrap_err();
    assert!(
        err.full_message().starts_with("${NAME}: unknown key"),
        "{err:?}"
    );
}
