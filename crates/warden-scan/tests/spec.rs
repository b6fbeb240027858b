//! The values the scanner sends must be ones the spec accepts (otherwise every probe is refused
//! for the wrong reason), and comparing answers must ignore what changes on every answer.

use proptest::prelude::*;
use serde_json::{json, Value};
use warden_scan::spec::example;

/// Schemas of the kinds request bodies and parameters use.
fn schema() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        (0u64..20, 20u64..80).prop_map(
            |(min, extra)| json!({"type": "string", "minLength": min, "maxLength": min + extra})
        ),
        Just(json!({"type": "string", "format": "email", "maxLength": 254})),
        Just(json!({"type": "string", "format": "date-time"})),
        Just(json!({"type": "string", "format": "uuid"})),
        (-5i64..50).prop_map(|min| json!({"type": "integer", "minimum": min})),
        Just(json!({"type": "number", "minimum": 0.5})),
        Just(json!({"type": "boolean"})),
        prop::collection::vec("[a-z]{1,8}", 1..4)
            .prop_map(|e| json!({"type": "string", "enum": e})),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::btree_map("[a-z]{1,6}", inner.clone(), 1..5).prop_map(|props| {
                let required: Vec<&String> = props.keys().collect();
                json!({"type": "object", "additionalProperties": false, "required": required, "properties": props})
            }),
            inner.prop_map(|items| json!({"type": "array", "items": items, "maxItems": 5})),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn examples_satisfy_their_schema(s in schema()) {
        let value = example(&s, "wardenscan123");
        let validator = jsonschema::options().should_validate_formats(true).build(&s).unwrap();
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        prop_assert!(errors.is_empty(), "{value} against {s}: {errors:?}");
    }

    #[test]
    fn request_ids_and_times_do_not_make_answers_differ(id in "[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", t in 0u64..u64::MAX) {
        let a = json!({"title": "Authentication is required", "request_id": id, "timestamp": t}).to_string();
        let b = json!({"title": "Authentication is required", "request_id": "0000", "timestamp": 1}).to_string();
        prop_assert_eq!(warden_scan::comparable(&a), warden_scan::comparable(&b));
        let text = format!("error {id}: denied");
        prop_assert_eq!(warden_scan::comparable(&text), "error : denied");
    }
}

#[test]
fn different_messages_stay_different() {
    let a = json!({"error": "no such user", "request_id": "x"}).to_string();
    let b = json!({"error": "wrong password", "request_id": "y"}).to_string();
    assert_ne!(warden_scan::comparable(&a), warden_scan::comparable(&b));
}
