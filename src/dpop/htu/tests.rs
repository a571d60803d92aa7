//! Unit tests of `dpop::htu`.

use super::*;
use crate::uri::*;

fn n(uri: &str) -> String {
    normalize(uri).unwrap()
}

#[test]
fn already_normal_uri_is_unchanged() {
    assert_eq!(
        n("https://server.example.com/token"),
        "https://server.example.com/token"
    );
}

#[test]
fn scheme_and_host_are_lower_cased_but_path_is_not() {
    assert_eq!(
        n("HTTPS://Server.EXAMPLE.com/Token"),
        "https://server.example.com/Token"
    );
}

#[test]
fn default_and_empty_ports_are_dropped() {
    assert_eq!(n("https://a.example:443/x"), "https://a.example/x");
    assert_eq!(n("http://a.example:80/x"), "http://a.example/x");
    assert_eq!(n("https://a.example:/x"), "https://a.example/x");
    assert_eq!(n("https://a.example:0443/x"), "https://a.example/x");
    assert_eq!(n("https://a.example:80/x"), "https://a.example:80/x");
    assert_eq!(n("http://a.example:443/x"), "http://a.example:443/x");
    assert_eq!(n("https://a.example:8443/x"), "https://a.example:8443/x");
}

#[test]
fn bad_ports_are_refused() {
    assert_eq!(
        normalize("https://a.example:65536/"),
        Err(UriError::BadPort)
    );
    assert_eq!(normalize("https://a.example:8x/"), Err(UriError::BadPort));
    assert_eq!(normalize("https://a.example:1:2/"), Err(UriError::BadPort));
    assert_eq!(n("https://a.example:65535/"), "https://a.example:65535/");
}

#[test]
fn empty_path_becomes_slash() {
    assert_eq!(n("https://a.example"), "https://a.example/");
    assert_eq!(n("https://a.example?q=1"), "https://a.example/");
}

#[test]
fn query_and_fragment_are_dropped() {
    assert_eq!(n("https://a.example/p?q=1#f"), "https://a.example/p");
    assert_eq!(n("https://a.example/p#f?q"), "https://a.example/p");
    assert_eq!(n("https://a.example/p?"), "https://a.example/p");
}

#[test]
fn percent_encoding_hex_is_upper_cased() {
    assert_eq!(
        n("https://a.example/a%2fb%c3%a9"),
        "https://a.example/a%2Fb%C3%A9"
    );
}

#[test]
fn percent_encoded_unreserved_characters_are_decoded() {
    assert_eq!(
        n("https://a.example/%7Euser/%41%2D%5f%2e"),
        "https://a.example/~user/A-_."
    );
    assert_eq!(n("https://%41.example/"), "https://a.example/");
}

#[test]
fn bad_percent_encoding_is_refused() {
    for uri in [
        "https://a.example/%",
        "https://a.example/%4",
        "https://a.example/%zz",
        "https://a%g1.example/",
    ] {
        assert_eq!(normalize(uri), Err(UriError::BadPercentEncoding), "{uri}");
    }
}

#[test]
fn dot_segments_are_removed() {
    assert_eq!(
        n("https://a.example/a/b/../c/./d"),
        "https://a.example/a/c/d"
    );
    assert_eq!(n("https://a.example/../../x"), "https://a.example/x");
    assert_eq!(n("https://a.example/a/.."), "https://a.example/");
    assert_eq!(n("https://a.example/a/."), "https://a.example/a/");
    assert_eq!(n("https://a.example/a/%2E%2E/b"), "https://a.example/b");
    assert_eq!(n("https://a.example/a/..b/c"), "https://a.example/a/..b/c");
}

#[test]
fn rfc3986_section_5_4_dot_segment_examples() {
    // The path parts of RFC 3986 §5.4 after merging.
    for (input, want) in [
        ("/a/b/c/./../../g", "/a/g"),
        ("/mid/content=5/../6", "/mid/6"),
        ("/b/c/g/", "/b/c/g/"),
        ("/b/c/../../../g", "/g"),
    ] {
        assert_eq!(remove_dot_segments(input), want, "{input}");
    }
}

#[test]
fn ipv6_literals_are_kept() {
    assert_eq!(n("https://[::1]:8443/x"), "https://[::1]:8443/x");
    assert_eq!(n("http://[2001:DB8::1]:80"), "http://[2001:db8::1]/");
    assert_eq!(normalize("https://[::1"), Err(UriError::BadHost));
    assert_eq!(normalize("https://[nothex]/"), Err(UriError::BadHost));
    assert_eq!(normalize("https://[::1]x/"), Err(UriError::BadHost));
    assert_eq!(
        normalize("https://[fe80::1%25eth0]/"),
        Err(UriError::BadHost)
    );
}

#[test]
fn only_absolute_http_uris_are_accepted() {
    assert_eq!(normalize("/token"), Err(UriError::NotAbsolute));
    assert_eq!(
        normalize("server.example.com/token"),
        Err(UriError::NotAbsolute)
    );
    assert_eq!(normalize("https:/a.example/"), Err(UriError::NotAbsolute));
    assert_eq!(normalize("1http://a.example/"), Err(UriError::NotAbsolute));
    assert_eq!(
        normalize("ftp://a.example/"),
        Err(UriError::UnsupportedScheme("ftp".into()))
    );
}

#[test]
fn userinfo_is_refused() {
    assert_eq!(
        normalize("https://user@a.example/"),
        Err(UriError::Userinfo)
    );
    assert_eq!(normalize("https://u:p@a.example/"), Err(UriError::Userinfo));
    // An `@` in the path is not userinfo.
    assert_eq!(n("https://a.example/@me"), "https://a.example/@me");
}

#[test]
fn a_request_authority_is_a_host_and_a_port_and_nothing_else() {
    for ok in [
        "api.example.com",
        "API.example.com:8443",
        "127.0.0.1:80",
        "[::1]:8443",
        "[2001:db8::1]",
        "a.example:",
        "xn--bcher-kva.example",
        "a%41.example",
    ] {
        assert_eq!(check_authority(ok), Ok(()), "{ok}");
    }
    for (bad, why) in [
        ("", UriError::EmptyHost),
        (":80", UriError::EmptyHost),
        ("user@a.example", UriError::Userinfo),
        ("u:p@a.example:80", UriError::Userinfo),
        ("a.example/x", UriError::BadHost),
        ("a.example?x", UriError::BadHost),
        ("a.example, b.example", UriError::InvalidChar(' ')),
        ("a.example,b.example", UriError::BadHost),
        ("a b", UriError::InvalidChar(' ')),
        ("a\tb", UriError::InvalidChar('\t')),
        ("a.example:8x", UriError::BadPort),
        ("a.example:65536", UriError::BadPort),
        ("[::1", UriError::BadHost),
        ("[fe80::1%25eth0]", UriError::BadHost),
        ("a%zz", UriError::BadPercentEncoding),
        ("é.example", UriError::InvalidChar('é')),
    ] {
        assert_eq!(check_authority(bad), Err(why), "{bad:?}");
    }
}

#[test]
fn empty_and_malformed_hosts_are_refused() {
    assert_eq!(normalize("https:///x"), Err(UriError::EmptyHost));
    assert_eq!(normalize("https://:443/x"), Err(UriError::EmptyHost));
    assert_eq!(normalize("https://a[b]/x"), Err(UriError::BadHost));
}

#[test]
fn non_ascii_controls_and_spaces_are_refused() {
    assert_eq!(
        normalize("https://a.example/é"),
        Err(UriError::InvalidChar('é'))
    );
    assert_eq!(
        normalize("https://a.example/\n"),
        Err(UriError::InvalidChar('\n'))
    );
    assert_eq!(
        normalize("https://a.example/a b"),
        Err(UriError::InvalidChar(' '))
    );
    assert_eq!(
        normalize("https://a.example/\u{7f}"),
        Err(UriError::InvalidChar('\u{7f}'))
    );
    assert_eq!(
        normalize("https://a.example/{x}"),
        Err(UriError::InvalidChar('{'))
    );
    assert_eq!(
        normalize("https://a.example/[x]"),
        Err(UriError::InvalidChar('['))
    );
}
