//! The `riskgate rules` commands run as a user runs them: the real binary on
//! real files, checking output and exit codes.

// Helpers outside `#[test]` functions fail the calling test on any setup error, which is
// what a test wants.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::repo_root;
use serde_json::Value;

fn riskgate(args: &[&str], directory: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_riskgate"))
        .args(args)
        .current_dir(directory)
        .env("RUST_LOG", "error")
        .output()
        .expect("riskgate runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A valid rules file of 9 lines; a rule appended after a blank line
/// starts on line 11.
const BASE: &str = r#"[scoring]
bias = -4.0
step_up_at = 0.35
high_at = 0.7
deny_at = 0.95

[roles.default]
medium = ["totp"]
high = ["webauthn"]
"#;

struct Broken {
    file: &'static str,
    rules: &'static str,
    /// `line:column` of the error.
    position: &'static str,
    message: &'static str,
    help: &'static str,
}

const BROKEN: [Broken; 6] = [
    Broken {
        file: "syntax.toml",
        rules: "[[rule]]\nid = \"unterminated\"\nwhen = 'risk > 0.5'\nthen = \"deny\n",
        position: "14:13",
        message: "invalid TOML: invalid basic string, expected `\"`",
        help: "rules files are TOML: see https://toml.io for the syntax",
    },
    Broken {
        file: "unknown-variable.toml",
        rules: "[[rule]]\nid = \"new-country\"\nwhen = 'signals.new_contry.value > 0.5'\nthen = \"step_up\"\n",
        position: "13:17",
        message: "unknown variable `signals.new_contry.value`",
        help: "did you mean `signals.new_country.value`?",
    },
    Broken {
        file: "string-number.toml",
        rules: "[[rule]]\nid = \"country-number\"\nwhen = 'geo.country == 5'\nthen = \"deny\"\n",
        position: "13:9",
        message: "cannot compare string `geo.country` with int `5`",
        help: "a string compares only with a string: quote the value to compare text, or compare a number with a numeric variable",
    },
    Broken {
        file: "unknown-action.toml",
        rules: "[[rule]]\nid = \"block-tor\"\nwhen = 'ip.in_list(\"tor_exit\")'\nthen = \"block\"\n",
        position: "14:8",
        message: "unknown action `block`",
        help: "expected one of `allow`, `step_up`, `deny`, `adjust`",
    },
    Broken {
        file: "duplicate-id.toml",
        rules: "[[rule]]\nid = \"deny-tor\"\nwhen = 'ip.in_list(\"tor_exit\")'\nthen = \"deny\"\n\n[[rule]]\nid = \"deny-tor\"\nwhen = 'ip.in_list(\"tor_node\")'\nthen = \"deny\"\n",
        position: "17:6",
        message: "duplicate rule id `deny-tor`",
        help: "the first rule with this id is at duplicate-id.toml:12:6; ids must be unique across all files",
    },
    Broken {
        file: "too-deep.toml",
        rules: "[[rule]]\nid = \"deep\"\nwhen = '((((((((((((((((((((((((((((((risk > 0.5))))))))))))))))))))))))))))))'\nthen = \"deny\"\n",
        position: "13:33",
        message: "condition nests 30 levels deep; the maximum is 24",
        help: "split the condition into several rules",
    },
];

fn write_broken(directory: &Path, broken: &Broken) {
    std::fs::write(
        directory.join(broken.file),
        format!("{BASE}\n{}", broken.rules),
    )
    .unwrap();
}

#[test]
fn check_reports_each_broken_file() {
    let directory = tempfile::tempdir().unwrap();
    for broken in &BROKEN {
        write_broken(directory.path(), broken);
        let output = riskgate(&["rules", "check", broken.file], directory.path());
        let stderr = text(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();

        assert_eq!(output.status.code(), Some(1), "{}: {stderr}", broken.file);
        assert_eq!(
            lines.first().copied(),
            Some(format!("{}:{}: {}", broken.file, broken.position, broken.message).as_str()),
            "{stderr}"
        );
        let help = format!("help: {}", broken.help);
        assert!(lines.contains(&help.as_str()), "{stderr}");
        assert_eq!(lines.last().copied(), Some("1 error"), "{stderr}");
        assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    }
}

#[test]
fn check_json_reports_each_broken_file() {
    let directory = tempfile::tempdir().unwrap();
    for broken in &BROKEN {
        write_broken(directory.path(), broken);
        let output = riskgate(
            &["rules", "check", broken.file, "--format", "json"],
            directory.path(),
        );
        let stdout = text(&output.stdout);
        let report: Value = serde_json::from_str(&stdout).expect("JSON output");
        let (line, column) = broken.position.split_once(':').unwrap();

        assert_eq!(output.status.code(), Some(1), "{}: {stdout}", broken.file);
        assert_eq!(report.as_array().map(Vec::len), Some(1), "{stdout}");
        let entry = &report[0];
        assert_eq!(entry["file"], broken.file, "{stdout}");
        assert_eq!(entry["line"], line.parse::<u64>().unwrap(), "{stdout}");
        assert_eq!(entry["column"], column.parse::<u64>().unwrap(), "{stdout}");
        assert_eq!(entry["message"], broken.message, "{stdout}");
        assert_eq!(entry["help"], broken.help, "{stdout}");
    }
}

#[test]
fn check_accepts_shipped_rules() {
    for file in ["rules/default.toml", "rules/examples/healthcare.toml"] {
        let output = riskgate(&["rules", "check", file], &repo_root());
        assert_eq!(
            output.status.code(),
            Some(0),
            "{file}: {}",
            text(&output.stderr)
        );
        assert_eq!(text(&output.stdout), format!("{file}: ok\n"));
    }
}

#[test]
fn shipped_case_files_pass() {
    let suites = [
        ("rules/default.toml", "rules/default.cases.toml", 11),
        (
            "rules/examples/healthcare.toml",
            "rules/examples/healthcare.cases.toml",
            15,
        ),
    ];
    for (rules, cases, count) in suites {
        let output = riskgate(
            &[
                "rules",
                "test",
                rules,
                "--cases",
                cases,
                "--config",
                "riskgate.toml",
            ],
            &repo_root(),
        );
        let stdout = text(&output.stdout);
        let lines: Vec<&str> = stdout.lines().collect();

        assert_eq!(
            output.status.code(),
            Some(0),
            "{cases}: {stdout}{}",
            text(&output.stderr)
        );
        assert_eq!(lines.len(), count + 1, "{stdout}");
        assert!(
            lines[..count].iter().all(|line| line.starts_with("ok    ")),
            "{stdout}"
        );
        let summary = lines[count];
        assert!(
            summary.starts_with(&format!("{count} cases against rules sha256:")),
            "{summary}"
        );
        assert!(
            summary.ends_with(&format!(": {count} passed, 0 failed")),
            "{summary}"
        );
    }
}

/// Writes the default rules and a copy of their cases in which `edit`
/// changed one line, and runs the cases.
fn run_edited_cases(from: &str, to: &str) -> (tempfile::TempDir, Output) {
    let directory = tempfile::tempdir().unwrap();
    let cases = std::fs::read_to_string(repo_root().join("rules/default.cases.toml")).unwrap();
    assert!(cases.contains(from), "`{from}` is not in the cases");
    std::fs::write(
        directory.path().join("cases.toml"),
        cases.replacen(from, to, 1),
    )
    .unwrap();
    let rules = repo_root().join("rules/default.toml");
    let config = repo_root().join("riskgate.toml");
    let output = riskgate(
        &[
            "rules",
            "test",
            rules.to_str().unwrap(),
            "--cases",
            "cases.toml",
            "--config",
            config.to_str().unwrap(),
        ],
        directory.path(),
    );
    (directory, output)
}

#[test]
fn wrong_expectation_fails_with_difference() {
    let (_directory, output) = run_edited_cases(
        "decision = \"deny\"\ndecided_by = \"rule:deny-tor-exit\"",
        "decision = \"step_up\"\ndecided_by = \"rule:deny-tor-exit\"",
    );
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let fail = lines
        .iter()
        .position(|line| line.starts_with("FAIL  tor exit denied (cases.toml:"))
        .unwrap_or_else(|| panic!("no FAIL line: {stdout}"));

    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert_eq!(
        lines[fail + 1],
        "        decision: expected step_up, got deny"
    );
    assert!(
        lines[fail + 2].starts_with("        risk "),
        "{}",
        lines[fail + 2]
    );
    assert!(
        lines.last().unwrap().ends_with(": 10 passed, 1 failed"),
        "{stdout}"
    );
}

#[test]
fn unexpected_shadow_rule_fails() {
    let (_directory, output) = run_edited_cases(
        "shadow_rules = [\"shadow-deny-admin-hosting-network\"]\n",
        "",
    );
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "        shadow_rules: expected [], got [`shadow-deny-admin-hosting-network`]\n"
        ),
        "{stdout}"
    );
}

#[test]
fn unknown_case_field_names_position() {
    let (_directory, output) = run_edited_cases(
        "decided_by = \"threshold\"\nfactors = []",
        "decided_by = \"threshold\"\nfactor = []",
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: cases.toml:31:1: unknown field `factor`, expected one of"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
}

#[test]
fn unknown_expected_rule_suggests_name() {
    let (_directory, output) = run_edited_cases(
        "rules = [\"deny-tor-exit\"]",
        "rules = [\"deny-tor-exits\"]",
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(
            "error: cases.toml:91:10: unknown rule `deny-tor-exits` in the expected rules; did you mean `deny-tor-exit`?"
        ),
        "{stderr}"
    );
}

#[test]
fn schema_matches_committed_file() {
    let output = riskgate(&["rules", "schema"], &repo_root());
    let generated = text(&output.stdout);
    let committed = std::fs::read_to_string(repo_root().join("rules/schema.json")).unwrap();

    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        generated == committed,
        "rules/schema.json differs from the generated schema; regenerate it with \
         `cargo run -- rules schema > rules/schema.json` and commit it"
    );
}

#[test]
fn explain_prints_rules_and_signals() {
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().to_str().unwrap();
    let request = serde_json::json!({
        "user_id": "it.admin@example.org",
        "ip": "67.43.156.0",
        "timestamp": "2026-03-02T09:00:00Z",
        "role": "admin",
        "device": {"id": "admin-laptop"},
    })
    .to_string();
    let scored = riskgate(
        &[
            "score",
            "--config",
            "riskgate.toml",
            "--data-dir",
            data,
            &request,
        ],
        &repo_root(),
    );
    assert_eq!(scored.status.code(), Some(0), "{}", text(&scored.stderr));
    let decision: Value = serde_json::from_slice(&scored.stdout).unwrap();
    let id = decision["decision_id"].as_str().unwrap();

    let output = riskgate(
        &[
            "rules",
            "explain",
            id,
            "--config",
            "riskgate.toml",
            "--data-dir",
            data,
        ],
        &repo_root(),
    );
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().map(str::trim_end).collect();

    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        lines[0].starts_with(&format!("decision {id}: step_up, risk ")),
        "{stdout}"
    );
    assert!(
        lines[0].ends_with("decided by rule:step-up-admin-new-device"),
        "{stdout}"
    );
    let expected_rules = [
        "  lower-risk-trusted-known-device    enforce  not matched",
        "  deny-tor-exit                      enforce  not matched",
        "  step-up-impossible-travel          enforce  not matched",
        "  step-up-anonymous-ip               enforce  not matched",
        "  step-up-admin-new-device           enforce  matched, decided",
        "  step-up-repeated-failures          enforce  skipped: a deny list or a rule of higher priority decided first",
        "  shadow-deny-admin-hosting-network  shadow   matched (would deny; recorded only)",
    ];
    let start = lines
        .iter()
        .position(|line| *line == "rules, in evaluation order:")
        .unwrap_or_else(|| panic!("no rules section: {stdout}"));
    assert_eq!(lines[start + 1..start + 8], expected_rules, "{stdout}");
    assert!(
        lines.contains(
            &"  hosting_network    1.00  +1.50  AS35908 is a hosting network: list datacenter, list hosting"
        ),
        "{stdout}"
    );
    assert!(lines.contains(&"outcomes: none reported"), "{stdout}");

    let json = riskgate(
        &[
            "rules",
            "explain",
            id,
            "--json",
            "--config",
            "riskgate.toml",
            "--data-dir",
            data,
        ],
        &repo_root(),
    );
    let record: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(record["id"], id);
    assert_eq!(
        record["record"]["rules"]["trace"].as_array().unwrap().len(),
        7
    );
}

#[test]
fn explain_unknown_decision_fails() {
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().to_str().unwrap();
    let id = "7d0f0c1e-0000-4000-8000-000000000000";
    let output = riskgate(
        &[
            "rules",
            "explain",
            id,
            "--config",
            "riskgate.toml",
            "--data-dir",
            data,
        ],
        &repo_root(),
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: no decision database at `"),
        "{stderr}"
    );
}

#[test]
fn rules_check_flags_unknown_list() {
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(common::repo_root().join("rules/default.toml"))
        .unwrap()
        .replace("ip.in_list(\"tor_exit\")", "ip.in_list(\"tor_exitt\")");
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, rules).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_riskgate"))
        .args(["rules", "check"])
        .arg(&path)
        .arg("--config")
        .arg(common::repo_root().join("riskgate.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`tor_exitt` (did you mean `tor_exit`?)"),
        "{stderr}"
    );
}

#[test]
fn variables_reference_matches_readme() {
    let readme = std::fs::read_to_string(repo_root().join("rules/README.md")).unwrap();
    let start_marker =
        "<!-- variables: generated by `riskgate rules variables`; a test keeps it in sync -->\n";
    let end_marker = "<!-- variables: end -->";
    let start = readme
        .find(start_marker)
        .expect("start marker in rules/README.md")
        + start_marker.len();
    let end = readme
        .find(end_marker)
        .expect("end marker in rules/README.md");
    let output = Command::new(env!("CARGO_BIN_EXE_riskgate"))
        .args(["rules", "variables"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        &readme[start..end],
        String::from_utf8_lossy(&output.stdout),
        "rules/README.md is out of date: paste the output of `riskgate rules variables` between its markers"
    );
}
