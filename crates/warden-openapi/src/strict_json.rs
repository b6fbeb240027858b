//! JSON for requests, read strictly: an object that names a key twice is refused. Parsers
//! disagree on which of the two counts (serde_json keeps the last, many keep the first), so
//! `{"role": "user", "role": "admin"}` could pass the gateway's checks as one thing and reach the
//! API as another.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a request body is not acceptable JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonProblem {
    Syntax,
    DuplicateKey,
}

const DUPLICATE: &str = "warden: duplicate key";

/// The extremes of a parsed body, counted as it was read, so the limits every body is held to
/// need no second walk when none is near (see [`crate::check_json_limits`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Extremes {
    /// The most keys and indexes above any value (the root is at 0).
    pub depth: usize,
    /// The longest array's items.
    pub array_items: usize,
    /// The longest string value's bytes (at least its characters; keys not counted).
    pub string_bytes: usize,
}

/// Parses `bytes` as JSON, refusing duplicate keys at any depth.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonProblem> {
    parse_counted(bytes).map(|(v, _)| v)
}

/// [`parse`], counting the body's [`Extremes`] on the way.
pub fn parse_counted(bytes: &[u8]) -> Result<(Value, Extremes), JsonProblem> {
    // One UTF-8 check of the whole body: from a `&str`, serde_json checks no string again
    // (from bytes it checks each one, which costs more on a body of short strings).
    let text = std::str::from_utf8(bytes).map_err(|_| JsonProblem::Syntax)?;
    let mut extremes = Extremes::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = Strict {
        extremes: &mut extremes,
        depth: 0,
    };
    let parsed = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok((v, extremes)),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(JsonProblem::DuplicateKey),
        Err(_) => Err(JsonProblem::Syntax),
    }
}

/// Reads one value at `depth`, as serde_json's own `Value` would be read, but refusing
/// duplicate keys and counting extremes.
struct Strict<'s> {
    extremes: &'s mut Extremes,
    depth: usize,
}

impl Strict<'_> {
    fn below(&mut self) -> Strict<'_> {
        Strict {
            extremes: self.extremes,
            depth: self.depth + 1,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.extremes.depth = self.extremes.depth.max(self.depth);
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        self.extremes.string_bytes = self.extremes.string_bytes.max(v.len());
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        self.extremes.string_bytes = self.extremes.string_bytes.max(v.len());
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.below())? {
            out.push(v);
        }
        self.extremes.array_items = self.extremes.array_items.max(out.len());
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            // One lookup: the slot is found before the value is read, and filled after.
            match out.entry(k) {
                serde_json::map::Entry::Occupied(_) => {
                    return Err(de::Error::custom(DUPLICATE));
                }
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(self.below())?);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check_json_limits, JsonLimits};
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i32>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 48, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The counted extremes are exactly where the limits walk starts to object: at them
        /// nothing is refused, one below any of them something is.
        #[test]
        fn extremes_match_the_limits_walk(v in json()) {
            let (parsed, x) = parse_counted(v.to_string().as_bytes()).unwrap();
            prop_assert_eq!(&parsed, &v);
            let at = JsonLimits {
                max_depth: x.depth,
                max_array_items: x.array_items,
                max_string_chars: x.string_bytes,
            };
            let mut out = Vec::new();
            check_json_limits(&v, &at, &mut out);
            prop_assert!(out.is_empty(), "{:?}", out);
            for (i, rule) in ["max-depth", "max-array-items", "max-string-length"].iter().enumerate() {
                let mut below = at;
                let limit = match i {
                    0 => &mut below.max_depth,
                    1 => &mut below.max_array_items,
                    _ => &mut below.max_string_chars,
                };
                if *limit == 0 {
                    continue;
                }
                *limit -= 1;
                let mut out = Vec::new();
                check_json_limits(&v, &below, &mut out);
                // Strings are limited in characters and counted in bytes: past ASCII, one
                // below the bytes may still hold every string.
                let ascii = v.to_string().is_ascii();
                if *rule != "max-string-length" || ascii {
                    prop_assert!(out.iter().any(|o| o.rule == *rule), "{} {:?}", rule, out);
                }
            }
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_and_the_rest_reads_as_serde_json_does() {
        assert_eq!(
            parse(br#"{"role":"user","role":"admin"}"#),
            Err(JsonProblem::DuplicateKey)
        );
        assert_eq!(
            parse(br#"[{"a":{"b":1,"b":2}}]"#),
            Err(JsonProblem::DuplicateKey)
        );
        assert_eq!(parse(br#"{"a":"#), Err(JsonProblem::Syntax));
        assert_eq!(parse(b"{\"a\":\"caf\xe9\"}"), Err(JsonProblem::Syntax));
        for text in [
            r#"{"a":[1,-2,3.5,1e3,true,null,"x\u00e9"],"b":{}}"#,
            "18446744073709551615",
            "-9223372036854775808",
        ] {
            assert_eq!(
                parse(text.as_bytes()).unwrap(),
                serde_json::from_str::<Value>(text).unwrap(),
                "{text}"
            );
        }
    }
}
