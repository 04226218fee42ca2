//! The JSON Schema of one rules file, for editors that complete and check
//! TOML against a schema (`rules/schema.json`, printed by
//! `riskgate rules schema`).
//!
//! The parser reads TOML through its own spanned tables rather than serde
//! types, so the schema is built here from the parser's key lists, names
//! and limits. A key the parser stops accepting disappears from the schema.
//! A key it starts accepting fails a test until it is described here.
//! The schema checks one file on its own. Checks across the files of a
//! folder, and of conditions, stay with `riskgate rules check`.

use serde_json::{Map, Value, json};

use super::condition::MAX_CONDITION_BYTES;
use super::raw::{LIST_KEYS, POLICY_KEYS, ROLE_KEYS, RULE_KEYS, SCORING_KEYS, TOP_KEYS};
use super::rule::{ACTION_NAMES, MAX_RULES, MODE_NAMES};
use super::settings::{DEGRADED_POLICIES, LEARNING_POLICIES};
use super::{FACTOR_NAMES, SIGNAL_NAMES};

/// Pattern of rule ids and role names: letters, digits, `_`, `-` and `.`.
const NAME_PATTERN: &str = "^[A-Za-z0-9_.-]{1,64}$";

/// Builds the JSON Schema (draft-07) of a rules file.
pub fn rules_schema() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "riskgate rules file",
        "description": "Weights, thresholds, MFA factors per role, network lists and CEL rules that turn a login's risk into allow, step_up or deny. A folder of files is merged key by key, so no key is required in one file; `riskgate rules check` checks the merged set and the conditions.",
        "type": "object",
        "additionalProperties": false,
        "properties": properties(&TOP_KEYS, top_property),
        "definitions": {
            "factorList": factor_list(),
            "stringList": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
            },
        },
    })
}

/// Builds a `properties` object from a parser key list. Keys without a
/// schema are left out here and caught by the tests.
fn properties(keys: &[&str], schema_of: fn(&str) -> Option<Value>) -> Value {
    let mut properties = Map::new();
    for key in keys {
        if let Some(schema) = schema_of(key) {
            properties.insert((*key).to_owned(), schema);
        }
    }
    Value::Object(properties)
}

fn top_property(key: &str) -> Option<Value> {
    Some(match key {
        "name" => json!({
            "type": "string",
            "description": "Label of the rule set; defaults to the file or folder name.",
        }),
        "scoring" => json!({
            "type": "object",
            "description": "Bias, thresholds and signal weights. `bias`, `step_up_at`, `high_at` and `deny_at` are required in the merged set, with step_up_at < high_at < deny_at.",
            "additionalProperties": false,
            "properties": properties(&SCORING_KEYS, scoring_property),
        }),
        "policy" => json!({
            "type": "object",
            "description": "What degraded and learning requests become.",
            "additionalProperties": false,
            "properties": properties(&POLICY_KEYS, policy_property),
        }),
        "roles" => json!({
            "type": "object",
            "description": "MFA factors per role; `[roles.default]` is required in the merged set and applies to requests with no role or a role without a table.",
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": false,
                "properties": properties(&ROLE_KEYS, role_property),
            },
        }),
        "lists" => json!({
            "type": "object",
            "description": "Trusted, allowed and denied networks, and denied countries.",
            "additionalProperties": false,
            "properties": properties(&LIST_KEYS, list_property),
        }),
        "rule" => json!({
            "type": "array",
            "description": "The rules, each a `[[rule]]` table. Ids are unique across all files of a folder.",
            "maxItems": MAX_RULES,
            "items": rule_schema(),
        }),
        _ => return None,
    })
}

fn scoring_property(key: &str) -> Option<Value> {
    let threshold = |description: &str| json!({"type": "number", "minimum": 0, "maximum": 1, "description": description});
    Some(match key {
        "bias" => json!({
            "type": "number",
            "description": "Log-odds of a login with no evidence, e.g. -4.0 for a risk of 1.8 %.",
        }),
        "step_up_at" => threshold("Risk from which a login steps up."),
        "high_at" => threshold("Risk from which a step-up uses the role's `high` factors."),
        "deny_at" => threshold("Risk from which a login is denied."),
        "weights" => {
            let mut weights = Map::new();
            for signal in SIGNAL_NAMES {
                weights.insert(signal.to_owned(), json!({"type": "number"}));
            }
            json!({
                "type": "object",
                "description": "Log-odds weight per signal at full strength; missing signals weigh 0.",
                "additionalProperties": false,
                "properties": weights,
            })
        }
        _ => return None,
    })
}

fn policy_property(key: &str) -> Option<Value> {
    Some(match key {
        "degraded" => json!({
            "enum": DEGRADED_POLICIES,
            "default": "step_up",
            "description": "What an allow becomes when a signal could not be evaluated. `allow` also needs `dangerous_allow_degraded = true`.",
        }),
        "learning" => json!({
            "enum": LEARNING_POLICIES,
            "default": "step_up",
            "description": "What an allow becomes for a user with too little verified history, unless an enforce rule or the allow list allowed it.",
        }),
        "dangerous_allow_degraded" => json!({
            "type": "boolean",
            "default": false,
            "description": "Must be true for `degraded = \"allow\"`, which lets a request with missing signals skip MFA.",
        }),
        _ => return None,
    })
}

fn role_property(key: &str) -> Option<Value> {
    Some(match key {
        "medium" => json!({
            "$ref": "#/definitions/factorList",
            "description": "Acceptable ways to pass a step-up at medium risk; required.",
        }),
        "high" => json!({
            "$ref": "#/definitions/factorList",
            "description": "Acceptable ways to pass a step-up at high risk; required.",
        }),
        "allow_sms" => json!({
            "type": "boolean",
            "default": false,
            "description": "Whether `sms` may appear in this role's factors.",
        }),
        _ => return None,
    })
}

fn list_property(key: &str) -> Option<Value> {
    let networks = |description: &str| {
        json!({
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": format!("{description} Addresses or CIDR blocks without host bits, such as `10.0.0.0/8`."),
        })
    };
    Some(match key {
        "trusted_networks" => networks(
            "Networks, such as hospital intranets, where a missing geo record does not make a request degraded; conditions read it as `ip.trusted`.",
        ),
        "allow_networks" => {
            networks("A request from here is allowed unless it is denied or degraded.")
        }
        "deny_networks" => networks("A request from here is always denied."),
        "deny_countries" => json!({
            "type": "array",
            "items": {"type": "string", "pattern": "^[A-Z]{2}$"},
            "description": "ISO 3166-1 alpha-2 codes; a request geolocated here is always denied.",
        }),
        _ => return None,
    })
}

fn rule_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "when", "then"],
        "properties": properties(&RULE_KEYS, rule_property),
        "allOf": [
            {
                "if": {"properties": {"then": {"const": "adjust"}}},
                "then": {"required": ["adjust"]},
                "else": {"not": {"required": ["adjust"]}},
            },
            {
                "if": {"properties": {"then": {"const": "step_up"}}},
                "else": {"not": {"required": ["factors"]}},
            },
        ],
    })
}

fn rule_property(key: &str) -> Option<Value> {
    Some(match key {
        "id" => json!({
            "type": "string",
            "pattern": NAME_PATTERN,
            "description": "Unique name, used in decisions and the audit log.",
        }),
        "description" => json!({"type": "string", "description": "Why the rule exists."}),
        "when" => json!({
            "type": "string",
            "minLength": 1,
            // A character is at least one byte, so this never rejects a
            // condition the loader accepts.
            "maxLength": MAX_CONDITION_BYTES,
            "description": format!("CEL condition over `risk`, `role`, `app`, `tenant`, `signals.*`, `geo.*`, `device.*`, `user.*`, `ip.*`, `time.*`, `degraded` and `learning`; the rule matches when it is true. At most {MAX_CONDITION_BYTES} bytes."),
        }),
        "then" => json!({
            "enum": ACTION_NAMES,
            "description": "What a match does: decide (`allow`, `step_up`, `deny`) or add `adjust` to the model's log-odds.",
        }),
        "factors" => json!({
            "$ref": "#/definitions/factorList",
            "description": "With `then = \"step_up\"` only: the ways to pass; defaults to the role's policy.",
        }),
        "adjust" => json!({
            "type": "number",
            "description": "With `then = \"adjust\"`: log-odds added to the model's score; positive raises the risk.",
        }),
        "priority" => json!({
            "type": "integer",
            "default": 0,
            "description": "Higher priorities are evaluated first.",
        }),
        "mode" => json!({
            "enum": MODE_NAMES,
            "default": "enforce",
            "description": "`shadow` evaluates and records the rule but never lets it decide.",
        }),
        "roles" => json!({
            "type": "array",
            "items": {"type": "string", "pattern": NAME_PATTERN},
            "description": "Only for these roles, each with a `[roles.<name>]` table; `default` means requests with no role or a role without a table.",
        }),
        "apps" => json!({
            "$ref": "#/definitions/stringList",
            "description": "Only for requests with one of these `app` values.",
        }),
        "tenants" => json!({
            "$ref": "#/definitions/stringList",
            "description": "Only for requests with one of these `tenant` values.",
        }),
        _ => return None,
    })
}

/// Builds the schema of a non-empty list of factor combinations such as
/// `"webauthn"` or `"platform_biometric+totp"`.
fn factor_list() -> Value {
    let factor = format!("(?:{})", FACTOR_NAMES.join("|"));
    json!({
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "string",
            "pattern": format!("^ *{factor} *(?:\\+ *{factor} *)*$"),
        },
        "description": format!("Each entry is one way to pass; `+` joins factors required together. Factors: {}. `sms` needs `allow_sms = true` on every role the list applies to.", FACTOR_NAMES.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table's name in messages, its parser keys and its schema lookup.
    type Table = (
        &'static str,
        &'static [&'static str],
        fn(&str) -> Option<Value>,
    );

    /// A mistake's name and how it breaks a valid rules file.
    type Mistake = (&'static str, fn(&mut Value));

    #[test]
    fn every_parser_key_described() {
        let tables: [Table; 6] = [
            ("top level", &TOP_KEYS, top_property),
            ("[scoring]", &SCORING_KEYS, scoring_property),
            ("[policy]", &POLICY_KEYS, policy_property),
            ("[roles.*]", &ROLE_KEYS, role_property),
            ("[lists]", &LIST_KEYS, list_property),
            ("[[rule]]", &RULE_KEYS, rule_property),
        ];
        for (table, keys, schema_of) in tables {
            for key in keys {
                assert!(
                    schema_of(key).is_some(),
                    "key `{key}` of {table} has no schema: describe it in schema_json.rs"
                );
            }
        }
    }

    #[test]
    fn rule_properties_follow_parser_keys() {
        let schema = rules_schema();
        let rule = &schema["properties"]["rule"]["items"]["properties"];
        let keys: Vec<&str> = rule
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = RULE_KEYS.to_vec();
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
    }

    /// Reads a shipped rules file as the JSON value an editor validates.
    fn shipped(relative: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../rules")
            .join(relative);
        let text = std::fs::read_to_string(&path).unwrap();
        let value: toml::Value = toml::from_str(&text).unwrap();
        serde_json::to_value(value).unwrap()
    }

    fn errors(instance: &Value) -> Vec<String> {
        let schema = rules_schema();
        let validator = jsonschema::validator_for(&schema).unwrap();
        validator
            .iter_errors(instance)
            .map(|error| format!("{}: {error}", error.instance_path()))
            .collect()
    }

    #[test]
    fn schema_is_valid_draft7() {
        let schema = rules_schema();
        let meta = jsonschema::meta::validator_for(&schema).unwrap();
        let problems: Vec<String> = meta.iter_errors(&schema).map(|e| e.to_string()).collect();
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn shipped_rules_files_match_schema() {
        for file in ["default.toml", "examples/healthcare.toml"] {
            let problems = errors(&shipped(file));
            assert!(problems.is_empty(), "{file}: {problems:?}");
        }
    }

    #[test]
    fn schema_rejects_common_mistakes() {
        let cases: [Mistake; 7] = [
            ("unknown top-level key", |rules| {
                rules["scorng"] = json!({});
            }),
            ("unknown signal weight", |rules| {
                rules["scoring"]["weights"]["new_contry"] = json!(1.0);
            }),
            ("threshold above 1", |rules| {
                rules["scoring"]["deny_at"] = json!(1.5);
            }),
            ("unknown factor", |rules| {
                rules["roles"]["nurse"]["medium"] = json!(["webauthn+sms2"]);
            }),
            ("unknown action", |rules| {
                rules["rule"][0]["then"] = json!("block");
            }),
            ("adjust without then adjust", |rules| {
                rules["rule"][0]["adjust"] = json!(1.0);
            }),
            ("lowercase country", |rules| {
                rules["lists"]["deny_countries"] = json!(["kp"]);
            }),
        ];
        for (name, break_it) in cases {
            let mut rules = shipped("default.toml");
            break_it(&mut rules);
            assert!(!errors(&rules).is_empty(), "{name} was accepted");
        }
    }

    #[test]
    fn adjust_rule_needs_adjust() {
        let mut rules = shipped("default.toml");
        let adjust = rules["rule"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|rule| rule["then"] == "adjust")
            .unwrap();
        adjust.as_object_mut().unwrap().remove("adjust");
        let problems = errors(&rules);
        assert!(
            problems
                .iter()
                .any(|problem| problem.contains("\"adjust\" is a required property")),
            "{problems:?}"
        );
    }
}
