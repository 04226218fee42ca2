//! `check_path` on broken files: the exact `line:column`, message and hint
//! of each error, all errors reported in one pass, and both renderings.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails on its setup errors"
)]

use std::path::{Path, PathBuf};

use super::*;

/// A valid file of nine lines; tests append to it from line 10 on.
const BASE: &str = "[scoring]
bias = -4.0
step_up_at = 0.35
high_at = 0.7
deny_at = 0.95

[roles.default]
medium = [\"totp\"]
high = [\"webauthn\"]
";

struct Checked {
    _dir: tempfile::TempDir,
    path: PathBuf,
    diagnostics: Vec<Diagnostic>,
}

fn check(text: &str) -> Checked {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, text).unwrap();
    let diagnostics = check_path(&path);
    Checked {
        _dir: dir,
        path,
        diagnostics,
    }
}

/// Appends one rule: `[[rule]]` on line 11, `id` on 12, `when` on 13 with
/// the condition starting at column 9, `then` on 14.
fn with_rule(when: &str, then: &str) -> String {
    format!("{BASE}\n[[rule]]\nid = \"r1\"\nwhen = '{when}'\nthen = \"{then}\"\n")
}

/// Returns each diagnostic as `line:column: message` and its help.
fn summary(checked: &Checked) -> Vec<(String, Option<String>)> {
    checked
        .diagnostics
        .iter()
        .map(|d| {
            let line = d.line.unwrap_or(0);
            let column = d.column.unwrap_or(0);
            (format!("{line}:{column}: {}", d.message()), d.help.clone())
        })
        .collect()
}

/// Asserts that the file has exactly one error, at `expected`
/// (`line:column: message`), with a help that contains `help`.
fn assert_single(text: &str, expected: &str, help: &str) {
    let checked = check(text);
    let found = summary(&checked);
    assert_eq!(found.len(), 1, "expected one error, found {found:#?}");
    assert_eq!(found[0].0, expected);
    let found_help = found[0].1.clone().unwrap_or_default();
    assert!(
        found_help.contains(help),
        "help `{found_help}` does not contain `{help}`"
    );
    for diagnostic in &checked.diagnostics {
        assert_eq!(diagnostic.file, checked.path);
    }
}

#[test]
fn base_file_is_valid() {
    assert!(check(BASE).diagnostics.is_empty());
    assert!(
        check(&with_rule("risk > 0.5", "deny"))
            .diagnostics
            .is_empty()
    );
}

#[test]
fn toml_syntax_error() {
    let text = format!("{BASE}\n[[rule]]\nid = \"r1\nwhen = 'true'\nthen = \"deny\"\n");
    let checked = check(&text);
    let found = summary(&checked);
    // The string that is never closed ends with the line, at column 9.
    assert_eq!(
        found[0].0, "12:9: invalid TOML: invalid basic string, expected `\"`",
        "found {found:#?}"
    );
    assert_eq!(found.len(), 1, "found {found:#?}");
}

#[test]
fn unknown_variable_with_near_name() {
    assert_single(
        &with_rule("signals.new_contry.value > 0.5", "deny"),
        "13:17: unknown variable `signals.new_contry.value`",
        "did you mean `signals.new_country.value`?",
    );
    assert_single(
        &with_rule("devise.known", "deny"),
        "13:9: unknown variable `devise.known`",
        "did you mean `device.known`?",
    );
    assert_single(
        &with_rule("geo.contry == \"FR\"", "deny"),
        "13:13: unknown variable `geo.contry`",
        "did you mean `geo.country`?",
    );
}

#[test]
fn field_of_a_value() {
    assert_single(
        &with_rule("risk.level > 0.5", "deny"),
        "13:14: unknown variable `risk.level`",
        "`risk` is a value and has no fields",
    );
    assert_single(
        &with_rule("rsik > 0.5", "deny"),
        "13:9: unknown variable `rsik`",
        "did you mean `risk`?",
    );
}

#[test]
fn group_used_as_value() {
    assert_single(
        &with_rule("signals.new_device > 0.5", "deny"),
        "13:9: `signals.new_device` is a group of variables, not a value",
        "select one of `evaluable`, `value`",
    );
}

#[test]
fn string_compared_with_number() {
    assert_single(
        &with_rule("role == 1", "deny"),
        "13:9: cannot compare string `role` with int `1`",
        "a string compares only with a string",
    );
    assert_single(
        &with_rule("risk > 0.5 && geo.asn < \"64512\"", "deny"),
        "13:23: cannot compare int `geo.asn` with string `\"64512\"`",
        "a string compares only with a string",
    );
}

#[test]
fn unknown_action() {
    assert_single(
        &with_rule("true", "step-up"),
        "14:8: unknown action `step-up`",
        "did you mean `step_up`?",
    );
}

#[test]
fn duplicate_id() {
    let text = format!(
        "{}\n[[rule]]\nid = \"r1\"\nwhen = 'false'\nthen = \"allow\"\n",
        with_rule("true", "deny")
    );
    let checked = check(&text);
    let expected_help = format!(
        "the first rule with this id is at {}:12:6; ids must be unique across all files",
        checked.path.display()
    );
    assert_eq!(
        summary(&checked),
        vec![(
            "17:6: duplicate rule id `r1`".to_string(),
            Some(expected_help)
        )]
    );
}

#[test]
fn duplicate_id_across_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), with_rule("true", "deny")).unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        "[[rule]]\nid = \"r1\"\nwhen = 'true'\nthen = \"deny\"\n",
    )
    .unwrap();
    let diagnostics = check_path(dir.path());
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].file, dir.path().join("b.toml"));
    assert_eq!(
        diagnostics[0].location(),
        format!("{}:2:6", dir.path().join("b.toml").display())
    );
    assert!(
        diagnostics[0]
            .help
            .as_deref()
            .unwrap_or_default()
            .contains(&format!("{}:12:6", dir.path().join("a.toml").display()))
    );
}

#[test]
fn expression_too_deep() {
    let condition = format!("{}true{}", "(".repeat(30), ")".repeat(30));
    // The 25th bracket, at offset 24 of the condition, is one too many.
    assert_single(
        &with_rule(&condition, "deny"),
        "13:33: condition nests 30 levels deep; the maximum is 24",
        "split the condition",
    );
    let sum = (0..40)
        .map(|_| "user.logins")
        .collect::<Vec<_>>()
        .join(" + ");
    assert_single(
        &with_rule(&format!("{sum} > 0"), "deny"),
        "13:9: condition nests 42 levels deep; the maximum is 24",
        "split the condition",
    );
}

#[test]
fn condition_syntax_errors() {
    assert_single(
        &with_rule("risk > ", "deny"),
        "13:16: invalid condition: unexpected end of condition",
        "needs a value on both sides",
    );
    assert_single(
        &with_rule("role = \"x\"", "deny"),
        "13:14: invalid condition: unexpected character `=`",
        "use `==` to compare values",
    );
    assert_single(
        &with_rule("risk > 0.5 and true", "deny"),
        "13:20: invalid condition: unexpected `and`",
        "conditions are CEL expressions",
    );
    assert_single(
        &with_rule("  ", "deny"),
        "13:9: condition is empty",
        "write a CEL expression",
    );
}

#[test]
fn condition_type_errors() {
    assert_single(
        &with_rule("risk + 1.0", "deny"),
        "13:9: condition must be a bool, found double",
        "compare values",
    );
    assert_single(
        &with_rule("user.logins + 1.5 > 3.0", "deny"),
        "13:9: operator `+` cannot combine int and double",
        "convert one side with `double(...)`",
    );
    assert_single(
        &with_rule("risk > 0.5 && user.logins", "deny"),
        "13:9: operator `&&` cannot combine bool and int",
        "`&&` joins two bools",
    );
    assert_single(
        &with_rule("geo.country in [\"KP\", 3]", "deny"),
        "13:31: `list literal` expects elements of one type (string), found int",
        "",
    );
}

#[test]
fn unsupported_syntax() {
    assert_single(
        &with_rule("[1, 2].exists(x, x > 1)", "deny"),
        "13:9: `list macros (`all`, `exists`, `exists_one`, `map`, `filter`)` is not supported in conditions",
        "list the values with `in`",
    );
    assert_single(
        &with_rule("has(geo.city)", "deny"),
        "13:13: `has()` is not supported in conditions",
        "every variable always has a value",
    );
    assert_single(
        &with_rule("role.matches(\"^adm\")", "deny"),
        "13:9: `matches()` is not supported in conditions",
        "compiled on every evaluation",
    );
    assert_single(
        &with_rule("lower(role) == \"x\"", "deny"),
        "13:9: unknown function `lower`",
        "conditions can call",
    );
    assert_single(
        &with_rule("ip.in_list(app)", "deny"),
        "13:9: `in_list` expects to be called as `ip.in_list(\"<list name>\")`, found `ip.in_list(app)`",
        "quoted, non-empty string",
    );
}

#[test]
fn escapes_map_to_file_columns() {
    // `rsk` follows two escaped quotes: it is at file column 26.
    let text = format!(
        "{BASE}\n[[rule]]\nid = \"r1\"\nwhen = \"role == \\\"x\\\" && rsk > 1.0\"\nthen = \"deny\"\n"
    );
    assert_single(
        &text,
        "13:26: unknown variable `rsk`",
        "did you mean `risk`?",
    );
}

#[test]
fn multi_line_condition_maps_lines() {
    let text = format!(
        "{BASE}\n[[rule]]\nid = \"r1\"\nwhen = '''\nrisk > 0.5 &&\n  devise.known\n'''\nthen = \"deny\"\n"
    );
    assert_single(
        &text,
        "15:3: unknown variable `devise.known`",
        "did you mean `device.known`?",
    );
}

#[test]
fn settings_errors() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[scoring.weights]\nnew_devise = 1.0\n",
            "12:1: unknown signal `new_devise` in `[scoring.weights]`",
            "did you mean `new_device`?",
        ),
        (
            "[policy]\ndegraded = \"allow\"\n",
            "12:12: `degraded = \"allow\"` requires `dangerous_allow_degraded = true`",
            "set `dangerous_allow_degraded = true`",
        ),
        (
            "[policy]\nlearning = \"stepup\"\n",
            "12:12: invalid `learning` policy `stepup`: expected `allow`, `step_up` or `deny`",
            "did you mean `step_up`?",
        ),
        (
            "[policy]\ndegrade = \"deny\"\n",
            "12:1: unknown key `degrade` in `[policy]`",
            "did you mean `degraded`?",
        ),
        (
            "[roles.nurse]\nmedium = [\"webauth\"]\nhigh = [\"totp\"]\n",
            "12:11: unknown factor `webauth`",
            "did you mean `webauthn`?",
        ),
        (
            "[roles.nurse]\nmedium = [\"totp+totp\"]\nhigh = [\"totp\"]\n",
            "12:11: factor `totp` appears more than once in `totp+totp`",
            "",
        ),
        (
            "[roles.nurse]\nmedium = [\"totp\", \"sms\"]\nhigh = [\"totp\"]\n",
            "12:19: factor `sms` is not allowed for role `nurse`",
            "set `allow_sms = true` under `[roles.nurse]`",
        ),
        (
            "[roles.nurse]\nmedium = []\nhigh = [\"totp\"]\n",
            "12:10: factor list `roles.nurse.medium` is empty",
            "at least one way to pass",
        ),
        (
            "[roles.nurse]\nmedium = [\"totp\"]\n",
            "11:8: missing `high` in `[roles.nurse]`",
            "list the factors accepted at high risk",
        ),
        (
            "[lists]\ndeny_networks = [\"10.0.0.1/8\"]\n",
            "12:18: network `10.0.0.1/8` has host bits set",
            "did you mean `10.0.0.0/8`?",
        ),
        (
            "[lists]\ntrusted_networks = [\"hospital\"]\n",
            "12:21: invalid network `hospital`: expected an address or a CIDR block such as `10.0.0.0/8`",
            "",
        ),
        (
            "[lists]\ndeny_countries = [\"kp\"]\n",
            "12:19: invalid country code `kp`: expected two uppercase letters (ISO 3166-1 alpha-2)",
            "did you mean `KP`?",
        ),
        (
            "[lists]\ndeny_countries = \"KP\"\n",
            "12:18: `deny_countries` must be an array of strings, found a string",
            "",
        ),
        (
            "[[rule]]\nid = \"r2\"\nwhen = 'true'\nthen = \"deny\"\nfactors = [\"totp\"]\n",
            "15:11: `factors` is only valid with `then = \"step_up\"`, not `then = \"deny\"`",
            "remove `factors`",
        ),
        (
            "[[rule]]\nid = \"r2\"\nwhen = 'true'\nthen = \"adjust\"\n",
            "14:8: missing `adjust` in rule `r2` with `then = \"adjust\"`",
            "add `adjust = <log-odds delta>`",
        ),
        (
            "[[rule]]\nid = \"r2\"\nwhen = 'true'\nthen = \"deny\"\nroles = [\"physican\"]\n",
            "15:10: unknown role `physican` in the `roles` filter",
            "counts as `default`",
        ),
        (
            "[[rule]]\nid = \"r2\"\nwhen = 'true'\nthen = \"deny\"\nmode = \"shdow\"\n",
            "15:8: unknown mode `shdow`",
            "did you mean `shadow`?",
        ),
        (
            "[[rule]]\nid = \"r2\"\nwhen = 'true'\nthen = \"step_up\"\nfactors = [\"sms\"]\n",
            "15:12: factor `sms` in rule `r2` is not allowed for role `default`",
            "limit the rule with `roles = [...]`",
        ),
        (
            "[[rule]]\nid = \"has space\"\nwhen = 'true'\nthen = \"deny\"\n",
            "12:6: invalid rule id `has space`",
            "use letters, digits",
        ),
        (
            "[[rule]]\nid = \"r2\"\nthen = \"deny\"\n",
            "11:1: missing `when` in `[[rule]]`",
            "",
        ),
        (
            "[[rule]]\nid = \"r2\"\nwhen = 'true'\nthen = \"deny\"\npriority = 1.5\n",
            "15:12: `priority` must be an integer, found a float",
            "",
        ),
        (
            "[rules]\nid = \"r2\"\n",
            "11:2: unknown key `rules` in the rules file",
            "did you mean `rule`?",
        ),
    ];
    for (extra, expected, help) in cases {
        assert_single(&format!("{BASE}\n{extra}"), expected, help);
    }
}

#[test]
fn scoring_errors() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[scoring]\nbias = nan\nstep_up_at = 0.35\nhigh_at = 0.7\ndeny_at = 0.95\n",
            "2:8: `bias` must be a finite number, found `NaN`",
            "",
        ),
        (
            "[scoring]\nbias = -4.0\nstep_up_at = 0.35\nhigh_at = 0.7\ndeny_at = 1.5\n",
            "5:11: threshold `deny_at` = 1.5 is outside [0, 1]",
            "thresholds are risks",
        ),
        (
            "[scoring]\nbias = -4.0\nstep_up_at = 0.35\nhigh_at = 0.3\ndeny_at = 0.95\n",
            "4:11: thresholds out of order: `step_up_at` = 0.35 must be below `high_at` = 0.3",
            "step_up_at < high_at < deny_at",
        ),
        (
            "[scoring]\nbias = -4.0\nstep_up_at = 0.35\nhigh_at = 0.7\n",
            "1:2: missing `deny_at` in `[scoring]`",
            "set `deny_at` under `[scoring]`",
        ),
    ];
    for (scoring, expected, help) in cases {
        let roles = "\n[roles.default]\nmedium = [\"totp\"]\nhigh = [\"webauthn\"]\n";
        assert_single(&format!("{scoring}{roles}"), expected, help);
    }
}

#[test]
fn sms_rule_factors_follow_roles() {
    let sms_everywhere = "[scoring]\nbias = -4.0\nstep_up_at = 0.35\nhigh_at = 0.7\ndeny_at = 0.95\n\n[roles.default]\nmedium = [\"sms\"]\nhigh = [\"webauthn\"]\nallow_sms = true\n\n[roles.clerk]\nmedium = [\"totp\"]\nhigh = [\"webauthn\"]\n";
    let rule = "\n[[rule]]\nid = \"r2\"\nwhen = 'true'\nthen = \"step_up\"\nfactors = [\"sms\"]\n";

    // `clerk` does not allow sms, so an unfiltered rule cannot use it.
    assert_single(
        &format!("{sms_everywhere}{rule}"),
        "20:12: factor `sms` in rule `r2` is not allowed for role `clerk`",
        "`clerk` does not allow it",
    );

    // Limited to `default`, which allows sms, the rule is valid.
    let filtered = format!("{sms_everywhere}{rule}roles = [\"default\"]\n");
    assert!(check(&filtered).diagnostics.is_empty());

    // Every role allows sms: an unfiltered rule is valid too.
    let all = format!("{sms_everywhere}allow_sms = true\n{rule}");
    assert!(check(&all).diagnostics.is_empty());
}

#[test]
fn empty_file_reports_missing_tables() {
    let checked = check("");
    assert_eq!(
        summary(&checked),
        vec![
            (
                "1:1: missing `[scoring]` in the rules file".to_string(),
                Some("add a `[scoring]` table with `bias`, `step_up_at`, `high_at` and `deny_at`".to_string())
            ),
            (
                "1:1: missing role `default`: it sets the factors for requests with no role or an unknown role".to_string(),
                Some("add a `[roles.default]` table with `medium` and `high` factor lists".to_string())
            ),
        ]
    );
}

#[test]
fn missing_default_role() {
    assert_single(
        "[scoring]\nbias = -4.0\nstep_up_at = 0.35\nhigh_at = 0.7\ndeny_at = 0.95\n",
        "1:1: missing role `default`: it sets the factors for requests with no role or an unknown role",
        "add a `[roles.default]` table",
    );
}

#[test]
fn every_error_in_one_pass() {
    let text = "[scoring]
bias = -4.0
step_up_at = 0.5
high_at = 0.4
deny_at = 0.95

[scoring.weights]
new_devise = 1.0

[roles.default]
medium = [\"totp\", \"sms\"]
high = [\"webauthn\"]

[[rule]]
id = \"a\"
when = 'signals.new_contry.value > 0.5'
then = \"deny\"

[[rule]]
id = \"b\"
when = 'role == 1'
then = \"block\"
";
    let checked = check(text);
    let lines: Vec<String> = summary(&checked)
        .into_iter()
        .map(|(line, _)| line)
        .collect();
    assert_eq!(
        lines,
        vec![
            "4:11: thresholds out of order: `step_up_at` = 0.5 must be below `high_at` = 0.4",
            "8:1: unknown signal `new_devise` in `[scoring.weights]`",
            "11:19: factor `sms` is not allowed for role `default`",
            "16:17: unknown variable `signals.new_contry.value`",
            "21:9: cannot compare string `role` with int `1`",
            "22:8: unknown action `block`",
        ]
    );
}

#[test]
fn limits_are_reported() {
    let long = format!("risk > 0.5{}", " && risk > 0.5".repeat(400));
    assert_single(
        &with_rule(&long, "deny"),
        "13:9: condition is 5610 bytes long; the maximum is 4096",
        "split the condition",
    );

    let mut many = String::from(BASE);
    for index in 0..=MAX_RULES {
        many.push_str(&format!(
            "\n[[rule]]\nid = \"r{index}\"\nwhen = 'true'\nthen = \"deny\"\n"
        ));
    }
    let checked = check(&many);
    let found = summary(&checked);
    assert_eq!(found.len(), 1, "{found:#?}");
    // Rule 1001 starts on line 10 + 5 * 1000 + 1.
    assert_eq!(
        found[0].0,
        "5011:1: too many rules: 1001; the maximum is 1000"
    );

    let checked = check(&" ".repeat(MAX_FILE_BYTES as usize + 1));
    let found = summary(&checked);
    assert_eq!(found.len(), 1);
    assert_eq!(
        checked.diagnostics[0].message(),
        format!(
            "rules file `{}` is {} bytes; the maximum is {MAX_FILE_BYTES}",
            checked.path.display(),
            MAX_FILE_BYTES + 1
        )
    );
    assert_eq!(checked.diagnostics[0].line, None);
}

#[test]
fn missing_path_and_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.toml");
    let diagnostics = check_path(&missing);
    assert_eq!(diagnostics.len(), 1);
    assert!(
        diagnostics[0]
            .message()
            .starts_with(&format!("cannot read `{}`:", missing.display()))
    );

    let diagnostics = check_path(dir.path());
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(
        diagnostics[0].message(),
        format!(
            "rules folder `{}` contains no `*.toml` files",
            dir.path().display()
        )
    );
}

#[test]
fn human_rendering_underlines_span() {
    let checked = check(&with_rule("signals.new_contry.value > 0.5", "deny"));
    let rendered = render_human(&checked.diagnostics);
    let expected = format!(
        "{}:13:17: unknown variable `signals.new_contry.value`
13 | when = 'signals.new_contry.value > 0.5'
   |                 ^^^^^^^^^^
help: did you mean `signals.new_country.value`?

1 error
",
        checked.path.display()
    );
    assert_eq!(rendered, expected);
}

#[test]
fn json_rendering_has_fields() {
    let checked = check(&with_rule("role == 1", "step-up"));
    let rendered = render_json(&checked.diagnostics);
    let parsed: serde_json::Value = serde_json::from_str(&rendered).unwrap();
    let entries = parsed.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let first = &entries[0];
    assert_eq!(first["file"], checked.path.display().to_string());
    assert_eq!(first["line"], 13);
    assert_eq!(first["column"], 9);
    assert_eq!(
        first["message"],
        "cannot compare string `role` with int `1`"
    );
    assert!(
        first["help"]
            .as_str()
            .unwrap()
            .contains("a string compares")
    );
    assert_eq!(entries[1]["line"], 14);
    assert_eq!(entries[1]["help"], "did you mean `step_up`?");

    let missing = check_path(Path::new("/nonexistent/riskgate/rules.toml"));
    let rendered: serde_json::Value = serde_json::from_str(&render_json(&missing)).unwrap();
    assert!(rendered[0]["line"].is_null());
    assert!(rendered[0]["column"].is_null());
}
