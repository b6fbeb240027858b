//! JSON for requests, read strictly: an object that names a key twice is refused. Parsers
//! disagree on which of the two counts (serde_json keeps the last, many keep the first), so
//! `{"role": "user", "role": "admin"}` could pass the gateway's checks as one thing and reach the
//! API as another.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a request body is not acceptable JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonProblem {
    Syntax,
    DuplicateKey,
}

const DUPLICATE: &str = "warden: duplicate key";

/// Parses `bytes` as JSON, refusing duplicate keys at any depth.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonProblem> {
    // One UTF-8 check of the whole body: from a `&str`, serde_json checks no string again
    // (from bytes it checks each one, which costs more on a body of short strings).
    let text = std::str::from_utf8(bytes).map_err(|_| JsonProblem::Syntax)?;
    match serde_json::from_str::<Strict>(text) {
        Ok(Strict(v)) => Ok(v),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(JsonProblem::DuplicateKey),
        Err(_) => Err(JsonProblem::Syntax),
    }
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
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
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            // One lookup: the slot is found before the value is read, and filled after.
            match out.entry(k) {
                serde_json::map::Entry::Occupied(_) => {
                    return Err(de::Error::custom(DUPLICATE));
                }
                serde_json::map::Entry::Vacant(slot) => {
                    let Strict(v) = map.next_value()?;
                    slot.insert(v);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
