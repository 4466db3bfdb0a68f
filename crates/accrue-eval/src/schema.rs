//! A validator for the evaluation artifact's JSON Schema (`schema/eval-artifact.schema.json`,
//! JSON Schema 2020-12), so that users and CI can check an artifact without a schema library.
//!
//! It implements the subset of the standard the artifact schema uses: `type` (string or list),
//! `enum`, `required`, `properties`, `additionalProperties` (bool or schema), `items`,
//! `minimum`, `oneOf` and local `$ref`s.

use serde_json::Value;

/// The artifact schema.
pub const SCHEMA: &str = include_str!("../schema/eval-artifact.schema.json");

fn validate(schema: &Value, root: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let Some(path) = r.strip_prefix("#/") else {
            errors.push(format!("{at}: non-local $ref {r}"));
            return;
        };
        let target = path.split('/').fold(root, |node, key| &node[key]);
        if target.is_null() {
            errors.push(format!("{at}: dangling $ref {r}"));
            return;
        }
        return validate(target, root, v, at, errors);
    }
    if let Some(one_of) = schema["oneOf"].as_array() {
        let ok = one_of
            .iter()
            .filter(|s| {
                let mut e = Vec::new();
                validate(s, root, v, at, &mut e);
                e.is_empty()
            })
            .count();
        if ok != 1 {
            errors.push(format!("{at}: matches {ok} branches of oneOf"));
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => {
                errors.push(format!("{at}: malformed `type` keyword in the schema"));
                return;
            }
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "number" => v.is_number(),
            "integer" => v.is_u64() || v.is_i64(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            errors.push(format!("{at}: expected {types:?}, got {v}"));
            return;
        }
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        errors.push(format!("{at}: {v} not in {e:?}"));
    }
    if let (Some(min), Some(x)) = (schema["minimum"].as_f64(), v.as_f64())
        && x < min
    {
        errors.push(format!("{at}: {x} < minimum {min}"));
    }
    if let Some(obj) = v.as_object() {
        for req in schema["required"].as_array().into_iter().flatten() {
            let Some(key) = req.as_str() else { continue };
            if !obj.contains_key(key) {
                errors.push(format!("{at}: missing required `{key}`"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, val) in obj {
            let child = format!("{at}/{k}");
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(s, root, val, &child, errors),
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => errors.push(format!("{at}: unexpected `{k}`")),
                    s @ Value::Object(_) => validate(s, root, val, &child, errors),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(items, root, x, &format!("{at}/{i}"), errors);
        }
    }
}

/// Every violation of [`SCHEMA`] by `doc` (empty when it validates).
pub fn schema_errors(doc: &Value) -> Vec<String> {
    let schema: Value = match serde_json::from_str(SCHEMA) {
        Ok(s) => s,
        Err(e) => return vec![format!("the bundled schema is not JSON: {e}")],
    };
    let mut errors = Vec::new();
    validate(&schema, &schema, doc, "", &mut errors);
    errors
}
