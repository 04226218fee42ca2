//! Compiling `when` conditions into CEL expressions and evaluating them.
//!
//! The cel 0.15 parser and interpreter recurse once per nesting level, and
//! a stack overflow aborts the process: no `catch_unwind` catches it. In a
//! debug build the parser overflows a 2 MiB stack at about 15 nested
//! brackets. Conditions are therefore limited in length and nesting before
//! parsing, and parsed on a thread with a 64 MiB stack. Their parsed depth
//! is limited so that evaluation fits an ordinary 2 MiB thread. In a debug
//! build, twice the depth limit still fits and 64 levels do not (measured
//! with `deepest_conditions_evaluate_on_small_stack`).

use std::panic::{AssertUnwindSafe, catch_unwind};

use cel::common::ast::SourceInfo;
use cel::{Context, Env, IdedExpr, Value};

use super::diagnostic::CheckError;
use super::schema::{self, ConditionError, References};

/// Maximum length of a condition in bytes.
pub const MAX_CONDITION_BYTES: usize = 4096;

/// Maximum nesting of a condition: brackets before parsing, and the depth
/// of the parsed tree.
pub const MAX_CONDITION_DEPTH: usize = 24;

/// A checked, parsed condition.
#[derive(Debug)]
pub(crate) struct Condition {
    expr: IdedExpr,
}

/// A compiled condition and the variables it reads.
pub(crate) struct Compiled {
    pub condition: Condition,
    pub references: References,
}

/// Compiles a condition: limits, CEL parse, depth, then the static check of
/// names and types. Every error carries a byte range of `text`.
pub(crate) fn compile(env: &Env, text: &str) -> Result<Compiled, Vec<ConditionError>> {
    let whole = 0..text.len();
    if text.trim().is_empty() {
        return Err(vec![ConditionError {
            span: whole,
            error: CheckError::EmptyCondition,
            help: Some("write a CEL expression, e.g. `risk > 0.5 && !device.known`".into()),
        }]);
    }
    if text.len() > MAX_CONDITION_BYTES {
        return Err(vec![ConditionError {
            span: 0..0,
            error: CheckError::ConditionTooLong {
                length: text.len(),
                max: MAX_CONDITION_BYTES,
            },
            help: Some("split the condition into several rules".into()),
        }]);
    }
    if let Some((depth, at)) = bracket_depth_exceeding(text, MAX_CONDITION_DEPTH) {
        return Err(vec![too_deep(depth, at..at + 1)]);
    }

    let parsed = catch_unwind(AssertUnwindSafe(|| {
        env.parser()
            .max_recursion_depth(u16::try_from(MAX_CONDITION_DEPTH * 2).unwrap_or(u16::MAX))
            .parse_with_source_info(text)
    }));
    let (expr, info) = match parsed {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(errors)) => {
            let Some(first) = errors.errors.first() else {
                return Err(vec![syntax_error(text, (1, 1), "unknown parse error")]);
            };
            // Later errors of the same condition are nearly always
            // consequences of the first one.
            return Err(vec![syntax_error(text, first.pos, &first.msg)]);
        }
        Err(panic) => {
            return Err(vec![ConditionError {
                span: whole,
                error: CheckError::CompilerPanicked {
                    detail: panic_message(&panic),
                },
                help: Some("rewrite the condition in simpler terms".into()),
            }]);
        }
    };

    let depth = schema::depth(&expr);
    if depth > MAX_CONDITION_DEPTH {
        return Err(vec![too_deep(depth, whole)]);
    }
    let references = check_guarded(&expr, &info, text)?;
    Ok(Compiled {
        condition: Condition { expr },
        references,
    })
}

fn check_guarded(
    expr: &IdedExpr,
    info: &SourceInfo,
    text: &str,
) -> Result<References, Vec<ConditionError>> {
    match catch_unwind(AssertUnwindSafe(|| schema::check(expr, info, text))) {
        Ok(result) => result,
        Err(panic) => Err(vec![ConditionError {
            span: 0..text.len(),
            error: CheckError::CompilerPanicked {
                detail: panic_message(&panic),
            },
            help: None,
        }]),
    }
}

fn too_deep(depth: usize, span: std::ops::Range<usize>) -> ConditionError {
    ConditionError {
        span,
        error: CheckError::ConditionTooDeep {
            depth,
            max: MAX_CONDITION_DEPTH,
        },
        help: Some("split the condition into several rules".into()),
    }
}

/// Returns the depth and byte offset of the first bracket that nests
/// deeper than `max`, skipping string literals.
fn bracket_depth_exceeding(text: &str, max: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'"' | b'\'') => {
                let triple = bytes.get(i..i + 3) == Some(&[quote, quote, quote][..]);
                let raw = i > 0 && matches!(bytes[i - 1], b'r' | b'R');
                i = skip_string(bytes, i, quote, triple, raw);
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    // Report the whole run of brackets, at least this one.
                    return Some((count_depth(bytes, i, depth), i));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Counts how deep the brackets starting at `start` go, for the message.
fn count_depth(bytes: &[u8], start: usize, mut depth: usize) -> usize {
    let mut deepest = depth;
    for &byte in &bytes[start + 1..] {
        match byte {
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Returns the offset just past a string literal that starts at `start`.
fn skip_string(bytes: &[u8], start: usize, quote: u8, triple: bool, raw: bool) -> usize {
    let open = if triple { 3 } else { 1 };
    let mut i = start + open;
    while i < bytes.len() {
        if bytes[i] == b'\\' && !raw {
            i += 2;
            continue;
        }
        if bytes[i] == quote && (!triple || bytes.get(i..i + 3) == Some(&[quote, quote, quote][..]))
        {
            return i + open;
        }
        i += 1;
    }
    bytes.len()
}

/// Turns a cel parse error at a 1-based (line, column in characters) into
/// a condition error with a short message and a hint.
fn syntax_error(text: &str, position: (isize, isize), message: &str) -> ConditionError {
    let offset = offset_of(text, position);
    let message = message.strip_prefix("Syntax error: ").unwrap_or(message);
    let (detail, help) = if message.starts_with("mismatched input '<EOF>'") {
        (
            "unexpected end of condition".to_string(),
            "complete the expression: an operator such as `&&` or `>` needs a value on both sides",
        )
    } else if let Some(token) = quoted_token(message, "token recognition error at: ") {
        let first = token.chars().next().unwrap_or(' ');
        let help = match first {
            '=' => "use `==` to compare values",
            '&' | '|' => "use `&&` and `||` for logical and, or",
            '"' | '\'' => "close the string with the quote that opened it",
            _ => "conditions are CEL expressions, e.g. `risk > 0.5 && !device.known`",
        };
        (format!("unexpected character `{first}`"), help)
    } else if let Some(token) = quoted_token(message, "mismatched input ")
        .or_else(|| quoted_token(message, "extraneous input "))
    {
        (
            format!("unexpected `{token}`"),
            "conditions are CEL expressions, e.g. `risk > 0.5 && !device.known`",
        )
    } else if message.contains("Recursion limit") {
        (
            "condition nests too deeply".to_string(),
            "split the condition into several rules",
        )
    } else {
        (
            message.to_lowercase(),
            "conditions are CEL expressions, e.g. `risk > 0.5 && !device.known`",
        )
    };
    let end = text[offset..]
        .chars()
        .next()
        .map_or(offset, |c| offset + c.len_utf8());
    ConditionError {
        span: offset..end,
        error: CheckError::ConditionSyntax { detail },
        help: Some(help.to_string()),
    }
}

/// Extracts `X` from `<prefix>'X'` or `<prefix>'X' expecting ...`.
fn quoted_token<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('\'')?;
    match rest.find("' ") {
        Some(close) => Some(&rest[..close]),
        None => rest.rfind('\'').map(|close| &rest[..close]),
    }
}

/// Converts a 1-based (line, column in characters) to a byte offset,
/// clamped to the text.
fn offset_of(text: &str, (line, column): (isize, isize)) -> usize {
    let line = usize::try_from(line.max(1)).unwrap_or(1);
    let column = usize::try_from(column.max(1)).unwrap_or(1);
    let mut line_start = 0;
    for _ in 1..line {
        match text[line_start..].find('\n') {
            Some(newline) => line_start += newline + 1,
            None => return text.len(),
        }
    }
    text[line_start..]
        .char_indices()
        .nth(column - 1)
        .map_or(text.len(), |(at, _)| line_start + at)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "unknown panic".to_string()
    }
}

impl Condition {
    /// Evaluates the condition. A result that is not a bool, an evaluation
    /// error or a panic inside the interpreter all return `Err` with a
    /// message for the rule trace.
    pub(crate) fn evaluate(&self, scope: &Context<'_, '_>) -> Result<bool, String> {
        match catch_unwind(AssertUnwindSafe(|| scope.resolve(&self.expr))) {
            Ok(Ok(Value::Bool(matched))) => Ok(matched),
            Ok(Ok(other)) => Err(format!(
                "condition returned {} instead of a bool",
                value_type(&other)
            )),
            Ok(Err(error)) => Err(format!("evaluation failed: {error}")),
            Err(panic) => Err(format!("evaluation panicked: {}", panic_message(&panic))),
        }
    }
}

fn value_type(value: &Value) -> &'static str {
    match value {
        Value::Int(_) => "an int",
        Value::UInt(_) => "a uint",
        Value::Float(_) => "a double",
        Value::String(_) => "a string",
        Value::Null => "null",
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        _ => "a value of another type",
    }
}
