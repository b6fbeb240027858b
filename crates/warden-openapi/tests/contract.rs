//! The contract as the gateway uses it, on specs with the shapes real APIs have: 3.0 and 3.1,
//! `$ref` across files, `allOf`, several path parameters, readOnly/writeOnly.

use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Value};
use warden_openapi::{check_json_limits, Contract, JsonLimits, Match, Violation};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn shop() -> Contract {
    Contract::load(&fixture("shop-3.1.yaml"), None).unwrap()
}

fn rules(v: &[Violation]) -> Vec<(String, &'static str)> {
    v.iter().map(|v| (v.location.clone(), v.rule)).collect()
}

#[test]
fn operations_are_found_by_method_and_template_under_the_base_path() {
    let c = shop();
    assert_eq!(c.base_path, "/api/v2");
    match c.find(&Method::GET, "/api/v2/accounts/alice/items/7") {
        Match::Found { op, path } => {
            assert_eq!(op.id, "getItem");
            assert_eq!(
                path,
                vec![
                    ("owner".into(), "alice".into()),
                    ("item".into(), "7".into())
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    // The concrete segment wins over the template.
    match c.find(&Method::GET, "/api/v2/accounts/me/items/7") {
        Match::Found { op, .. } => assert_eq!(op.id, "getMyItem"),
        other => panic!("{other:?}"),
    }
    match c.find(&Method::DELETE, "/api/v2/accounts") {
        Match::WrongMethod(allowed) => assert_eq!(allowed.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.find(&Method::GET, "/api/v2/nothing"),
        Match::NotFound
    ));
    assert!(
        matches!(c.find(&Method::GET, "/accounts"), Match::NotFound),
        "outside the base path"
    );
    assert!(matches!(
        c.find(&Method::HEAD, "/api/v2/public/ping"),
        Match::Found { .. }
    ));
}

#[test]
fn parameters_are_typed_and_checked() {
    let c = shop();
    let Match::Found { op, path } = c.find(&Method::GET, "/api/v2/accounts/alice/items/7") else {
        panic!()
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-trace",
        HeaderValue::from_static("8f1f6c1e-59c4-4b8e-9d55-1a3c5e3a7b21"),
    );
    let mut out = Vec::new();
    let typed = op.check_params(
        &path,
        Some("verbose=true&fields=a&fields=c"),
        &headers,
        false,
        &mut out,
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(typed.path["item"], json!(7));
    assert_eq!(typed.query["fields"], json!(["a", "c"]));
    let mut out = Vec::new();
    headers.insert("x-trace", HeaderValue::from_static("not-a-uuid"));
    let Match::Found { path, .. } = c.find(&Method::GET, "/api/v2/accounts/ALICE/items/0") else {
        panic!()
    };
    op.check_params(
        &path,
        Some("verbose=maybe&fields=z&debug=1&verbose=true"),
        &headers,
        false,
        &mut out,
    );
    let got = rules(&out);
    for want in [
        ("path.owner", "pattern"),
        ("path.item", "minimum"),
        ("query.verbose", "repeated"),
        ("query.fields[0]", "enum"),
        ("header.x-trace", "format"),
        ("query.debug", "undeclared-parameter"),
    ] {
        assert!(
            got.contains(&(want.0.to_string(), want.1)),
            "{want:?} not in {got:?}"
        );
    }
    let Match::Found { op, path } = c.find(&Method::GET, "/api/v2/accounts") else {
        panic!()
    };
    let mut out = Vec::new();
    op.check_params(
        &path,
        Some("limit=99999999999"),
        &HeaderMap::new(),
        true,
        &mut out,
    );
    assert_eq!(rules(&out), vec![("query.limit".to_string(), "maximum")]);
}

#[test]
fn request_bodies_are_strict_through_refs_across_files_and_all_of() {
    let c = shop();
    let Match::Found { op, .. } = c.find(&Method::POST, "/api/v2/accounts") else {
        panic!()
    };
    let media = op.media_for("application/json; charset=utf-8").unwrap();
    let check = |mut body: Value| {
        let mut out = Vec::new();
        c.check_body(media, &mut body, &mut out);
        rules(&out)
    };
    let good = json!({"owner": "alice", "name": "Main", "pin": "1234", "tags": ["x"],
                      "address": {"city": "Lyon", "country": "FR"}, "meta": {"anything": 1}, "kind": null});
    assert_eq!(check(good), vec![]);
    // Mass assignment: an undeclared field, and a readOnly one.
    let got = check(json!({"owner": "alice", "name": "Main", "admin": true, "id": 5}));
    assert!(
        got.contains(&("body.admin".into(), "undeclared-property")),
        "{got:?}"
    );
    assert!(got.contains(&("body.id".into(), "read-only")), "{got:?}");
    // Nested, in the other file.
    let got = check(
        json!({"owner": "a", "name": "b", "address": {"city": "X", "country": "France", "zip": "1"}}),
    );
    assert!(
        got.contains(&("body.address.country".into(), "pattern")),
        "{got:?}"
    );
    assert!(
        got.contains(&("body.address.zip".into(), "undeclared-property")),
        "{got:?}"
    );
    let got = check(json!({"owner": "a"}));
    assert_eq!(got, vec![("body.name".to_string(), "required")]);
    assert!(op.media_for("text/plain").is_none());
    assert_eq!(op.accepted_media(), vec!["application/json"]);
}

#[test]
fn responses_lose_undeclared_and_write_only_fields() {
    let c = shop();
    let Match::Found { op, .. } = c.find(&Method::POST, "/api/v2/accounts") else {
        panic!()
    };
    let mut body = json!({"id": 1, "owner": "alice", "name": "Main", "pin": "1234",
        "password_hash": "$2b$...", "address": {"city": "Lyon", "internal_note": "vip"}, "meta": {"free": "form"}});
    let removed = c.filter_response(op, 201, &mut body).unwrap();
    let removed: Vec<_> = removed
        .iter()
        .map(|v| (v.location.as_str(), v.rule))
        .collect();
    assert_eq!(
        removed,
        vec![
            ("body.address.internal_note", "undeclared-property"),
            ("body.password_hash", "undeclared-property"),
            ("body.pin", "write-only")
        ]
    );
    assert_eq!(
        body,
        json!({"id": 1, "owner": "alice", "name": "Main", "address": {"city": "Lyon"}, "meta": {"free": "form"}})
    );
    // `default` covers the error answers.
    let mut problem = json!({"title": "x", "status": 400, "trace": "at line 3"});
    assert_eq!(
        rules(&c.filter_response(op, 400, &mut problem).unwrap()),
        vec![("body.trace".to_string(), "undeclared-property")]
    );
    let Match::Found { op, .. } = c.find(&Method::GET, "/api/v2/accounts") else {
        panic!()
    };
    let mut list = json!([{"id": 1, "owner": "a", "name": "b", "ssn": "x"}]);
    assert_eq!(
        rules(&c.filter_response(op, 200, &mut list).unwrap()),
        vec![("body[0].ssn".to_string(), "undeclared-property")]
    );
}

#[test]
fn the_text_filter_splices_in_text_order() {
    // Found by the property test: an undeclared member before a kept one whose inside also loses
    // a member (the inner edit is recorded first).
    let c = shop();
    let Match::Found { op, .. } = c.find(&Method::POST, "/api/v2/accounts") else {
        panic!()
    };
    let text = r#"{"x":[1],"address":{"id":1,"city":"Lyon","tags":2},"owner":"a","y":3}"#;
    let (found, new) = c
        .filter_response_text(op, 201, text.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(found.len(), 4, "{found:?}");
    assert_eq!(
        new.as_deref(),
        Some(br#"{"address":{"city":"Lyon"},"owner":"a"}"#.as_slice())
    );
}

#[test]
fn the_text_filter_refuses_what_is_not_json_text() {
    let c = shop();
    let Match::Found { op, .. } = c.find(&Method::POST, "/api/v2/accounts") else {
        panic!()
    };
    let filter = |text: &[u8]| c.filter_response_text(op, 201, text).unwrap();
    // Kept as they came: multibyte characters, escapes, quotes past the first eight bytes.
    for ok in [
        r#"{"owner":"Zoë Ångström-Łukasiewicz, 東京都"}"#.as_bytes(),
        br#"{"owner":"a long name with an \"escaped\" quote\\ and \u00e9"}"#,
    ] {
        assert_eq!(
            filter(ok),
            Ok((vec![], None)),
            "{}",
            String::from_utf8_lossy(ok)
        );
    }
    for bad in [
        b"{\"owner\":\"caf\xe9 au lait, long enough\"}".as_slice(), // Latin-1, not UTF-8
        b"{\"owner\":\"\xff\"}",
        b"{\"own\xc3\":1}",                             // a key cut mid-character
        b"{\"owner\":\"a raw\ttab in a long string\"}", // control character
        b"{\"owner\":\"unterminated and longer than eight",
        b"{\"owner\":\"\\\xe9\"}", // escape of a broken byte
    ] {
        assert!(filter(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn security_roles_and_rules_are_read() {
    let c = shop();
    let Match::Found { op, .. } = c.find(&Method::POST, "/api/v2/accounts") else {
        panic!()
    };
    assert!(!op.anonymous());
    assert!(op.permits(&[], &["shop:write".into()]));
    assert!(!op.permits(&[], &["shop:read".into()]));
    assert!(op.owner.as_ref().unwrap().reads_body);
    let Match::Found { op, .. } = c.find(&Method::GET, "/api/v2/accounts") else {
        panic!()
    };
    assert!(!op.permits(&["user".into()], &["shop:read".into()]));
    assert!(op.permits(&["support".into()], &["shop:read".into()]));
    let Match::Found { op, .. } = c.find(&Method::GET, "/api/v2/public/ping") else {
        panic!()
    };
    assert!(op.anonymous());
}

#[test]
fn openapi_3_0_keywords_are_understood() {
    let c = Contract::load(&fixture("legacy-3.0.json"), None).unwrap();
    assert!(c.v30);
    let Match::Found { op, path } = c.find(&Method::PUT, "/notes/0") else {
        panic!()
    };
    let mut out = Vec::new();
    op.check_params(&path, None, &HeaderMap::new(), false, &mut out);
    assert_eq!(
        rules(&out),
        vec![("path.id".to_string(), "exclusiveMinimum")]
    );
    let media = op.media_for("application/json").unwrap();
    let mut out = Vec::new();
    c.check_body(
        media,
        &mut json!({"text": "hi", "due": null, "secret": "s"}),
        &mut out,
    );
    assert!(
        out.is_empty(),
        "nullable and writeOnly in a request are fine: {out:?}"
    );
    c.check_body(
        media,
        &mut json!({"text": "hi", "due": "tomorrow", "extra": 1}),
        &mut out,
    );
    assert_eq!(
        rules(&out),
        vec![
            ("body.due".to_string(), "format"),
            ("body.extra".to_string(), "undeclared-property")
        ]
    );
}

#[test]
fn json_limits_hold_where_the_spec_says_nothing() {
    let limits = JsonLimits {
        max_depth: 4,
        max_array_items: 3,
        max_string_chars: 5,
    };
    let mut out = Vec::new();
    check_json_limits(
        &json!({"a": [1, 2, 3, 4], "b": "toolong", "c": {"d": {"e": {"f": {"g": 1}}}}}),
        &limits,
        &mut out,
    );
    assert_eq!(
        rules(&out),
        vec![
            ("body.a".to_string(), "max-array-items"),
            ("body.b".to_string(), "max-string-length"),
            ("body.c.d.e.f.g".to_string(), "max-depth"),
        ]
    );
}

#[test]
fn a_spec_that_cannot_load_names_the_file_the_pointer_and_the_line() {
    let e = Contract::load(&fixture("broken-ref.yaml"), None).unwrap_err();
    assert!(e.file.ends_with("broken-ref.yaml"), "{e}");
    assert_eq!(
        e.pointer,
        "/paths/~1things/post/requestBody/content/application~1json/schema/$ref"
    );
    assert_eq!(e.line, Some(10), "{e}");
    assert!(e.to_string().contains("#/components/schemas/Thing"), "{e}");
    let dir = std::env::temp_dir().join(format!("warden-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let p = write("missing-file.yaml", "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      responses:\n        '200':\n          description: x\n          content:\n            application/json:\n              schema: {$ref: 'nowhere.yaml#/X'}\n");
    let e = Contract::load(&p, None).unwrap_err();
    assert!(
        e.to_string().contains("nowhere.yaml") && e.to_string().contains("cannot read"),
        "{e}"
    );
    let p = write("bad-rule.yaml", "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a/{id}:\n    get:\n      x-warden:\n        owner: 'path.id == user.id'\n      responses:\n        '200': {description: x}\n");
    let e = Contract::load(&p, None).unwrap_err();
    assert_eq!(e.pointer, "/paths/~1a~1{id}/get/x-warden/owner");
    assert_eq!(e.line, Some(7), "{e}");
    let p = write(
        "swagger.yaml",
        "swagger: '2.0'\ninfo: {title: t, version: '1'}\npaths: {}\n",
    );
    assert!(Contract::load(&p, None)
        .unwrap_err()
        .to_string()
        .contains("3.0 and 3.1"));
    let p = write("bad-pattern.yaml", "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      parameters:\n        - {name: q, in: query, schema: {type: string, pattern: '(?<=a)b'}}\n      responses:\n        '200': {description: x}\n");
    let e = Contract::load(&p, None).unwrap_err();
    assert_eq!(e.pointer, "/paths/~1a/get/parameters/0/schema", "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

proptest::proptest! {
    // More cases than the default: the text filter's splicing once failed only on some seeds.
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

    // Whatever the upstream answers, what leaves holds only declared, readable properties, and a
    // second pass finds nothing more to remove.
    #[test]
    fn filtered_responses_hold_only_declared_fields(value in json_value()) {
        let c = shop();
        let Match::Found { op, .. } = c.find(&Method::POST, "/api/v2/accounts") else { panic!() };
        let mut v = value;
        let _ = c.filter_response(op, 201, &mut v);
        if let Some(obj) = v.as_object() {
            for k in obj.keys() {
                proptest::prop_assert!(["id", "created", "owner", "name", "address", "tags", "meta", "kind"].contains(&k.as_str()), "{k}");
            }
            if let Some(addr) = obj.get("address").and_then(Value::as_object) {
                for k in addr.keys() {
                    proptest::prop_assert!(["street", "city", "country"].contains(&k.as_str()), "{k}");
                }
            }
        }
        proptest::prop_assert!(c.filter_response(op, 201, &mut v).unwrap().is_empty());
    }

    // The text filter (what the gateway runs: no tree, members spliced out) leaves exactly what the
    // tree filter leaves, in compact and in pretty-printed JSON, and reports the same things.
    #[test]
    fn the_text_filter_agrees_with_the_tree_filter(value in json_value(), pretty in proptest::bool::ANY) {
        let c = shop();
        let Match::Found { op, .. } = c.find(&Method::POST, "/api/v2/accounts") else { panic!() };
        let text = if pretty { serde_json::to_string_pretty(&value).unwrap() } else { value.to_string() };
        let (mut found_text, new) = c.filter_response_text(op, 201, text.as_bytes()).unwrap().unwrap();
        let mut tree = value;
        let mut found_tree = c.filter_response(op, 201, &mut tree).unwrap();
        let out: Value = serde_json::from_slice(new.as_deref().unwrap_or(text.as_bytes())).unwrap();
        proptest::prop_assert_eq!(&out, &tree);
        proptest::prop_assert_eq!(new.is_none(), found_tree.is_empty());
        found_text.sort();
        found_tree.sort();
        proptest::prop_assert_eq!(found_text, found_tree);
    }

    // A request body never makes the check panic, and what it reports never carries a value.
    #[test]
    fn request_checks_report_locations_not_values(value in json_value()) {
        let c = shop();
        let Match::Found { op, .. } = c.find(&Method::POST, "/api/v2/accounts") else { panic!() };
        let media = op.media_for("application/json").unwrap();
        let mut v = value;
        let mut out = Vec::new();
        check_json_limits(&v, &JsonLimits::default(), &mut out);
        c.check_body(media, &mut v, &mut out);
        for viol in out {
            proptest::prop_assert!(viol.location.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-$.[]<>".contains(&b)), "{}", viol.location);
        }
    }
}

fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let key = prop_oneof![
        Just("id".to_string()),
        Just("owner".to_string()),
        Just("name".to_string()),
        Just("pin".to_string()),
        Just("address".to_string()),
        Just("city".to_string()),
        Just("meta".to_string()),
        Just("tags".to_string()),
        "[a-z]{1,6}",
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        // Long enough for the filter's eight-bytes-at-a-time string scan.
        ".{9,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
