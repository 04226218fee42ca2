//! The variables a condition can read, with their CEL types, and a static
//! checker that resolves every name of a parsed condition and infers types.
//! Typos and type errors thus fail the load instead of making rules that
//! silently never match.
//!
//! The checker accepts a subset of CEL: no list macros (`all`, `exists`,
//! `map`, ...), no `has()`, no map or message literals and no `matches`.
//! Without iteration, evaluation time grows linearly with the size of the
//! condition, and none of the variables is a list to iterate over anyway.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::sync::LazyLock;

use cel::IdedExpr;
use cel::common::ast::{CallExpr, Expr, LiteralValue, SourceInfo};

use super::SIGNAL_NAMES;
use super::diagnostic::{CheckError, closest, quote_list};

/// A CEL type as the checker tracks it. `Dyn` is a type that is not known,
/// such as the elements of an empty list, and is accepted everywhere. The
/// checker also returns it after an error, so that one mistake is reported
/// once.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Null,
    List(Box<Ty>),
    Dyn,
}

impl Ty {
    fn is_numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    fn is(&self, other: &Ty) -> bool {
        *self == Ty::Dyn || *other == Ty::Dyn || self == other
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Uint => f.write_str("uint"),
            Ty::Double => f.write_str("double"),
            Ty::String => f.write_str("string"),
            Ty::Null => f.write_str("null"),
            Ty::List(element) => write!(f, "list({element})"),
            Ty::Dyn => f.write_str("dyn"),
        }
    }
}

/// Top-level variable names, in the order the rules reference lists them.
pub(crate) const ROOTS: [&str; 12] = [
    "risk", "role", "app", "tenant", "signals", "geo", "device", "user", "ip", "time", "degraded",
    "learning",
];

/// Variables other than `signals.*`, by full path, with their meaning for the reference page.
const FIXED_VARIABLES: &[(&str, Ty, &str)] = &[
    (
        "risk",
        Ty::Double,
        "adjust rules read the model's risk; decision rules read the risk after adjust rules",
    ),
    (
        "role",
        Ty::String,
        "the role as the CRM sent it, `\"\"` when absent (filters use the role with a table, or `default`)",
    ),
    (
        "app",
        Ty::String,
        "the calling application, `\"\"` when absent",
    ),
    ("tenant", Ty::String, "the tenant, `\"\"` when absent"),
    (
        "geo.country",
        Ty::String,
        "ISO 3166-1 alpha-2 code, `\"\"` when unknown",
    ),
    ("geo.city", Ty::String, "`\"\"` when unknown"),
    (
        "geo.asn",
        Ty::Int,
        "autonomous system number, `0` when unknown",
    ),
    (
        "geo.anonymous",
        Ty::Bool,
        "anonymiser according to the geo-IP databases",
    ),
    (
        "device.known",
        Ty::Bool,
        "whether the device is in the user's profile",
    ),
    (
        "device.seen_count",
        Ty::Int,
        "verified logins from this device",
    ),
    ("user.logins", Ty::Int, "verified logins of the user"),
    (
        "user.days_since_last",
        Ty::Double,
        "days since the last verified login, `-1.0` when there was none",
    ),
    (
        "user.failures_15m",
        Ty::Int,
        "failed logins in the last 15 minutes",
    ),
    (
        "ip.trusted",
        Ty::Bool,
        "whether the address is in `trusted_networks`",
    ),
    (
        "time.hour_local",
        Ty::Int,
        "hour in the user's time zone, 0 to 23, `-1` when unknown",
    ),
    (
        "degraded",
        Ty::Bool,
        "a signal the decision needs could not be evaluated",
    ),
    (
        "learning",
        Ty::Bool,
        "the user has too little verified history, or recently reported a login as not theirs",
    ),
];

/// Renders the variable table of the rules reference (`rules/README.md`) from the schema
/// that the checker uses, so the page cannot drift from what conditions may read.
pub fn variables_reference() -> String {
    let mut rows = vec![
        "| variable | type | meaning |".to_owned(),
        "| --- | --- | --- |".to_owned(),
    ];
    let row = |path: &str, ty: &str, meaning: &str| format!("| `{path}` | {ty} | {meaning} |");
    for (path, ty, meaning) in &FIXED_VARIABLES[..4] {
        rows.push(row(path, &ty.to_string(), meaning));
    }
    rows.push(row(
        "signals.<name>.value",
        &Ty::Double.to_string(),
        "from 0 to 1; `0.0` when not evaluable",
    ));
    rows.push(row(
        "signals.<name>.evaluable",
        &Ty::Bool.to_string(),
        "whether the signal could be computed",
    ));
    for (path, ty, meaning) in &FIXED_VARIABLES[4..13] {
        rows.push(row(path, &ty.to_string(), meaning));
    }
    rows.push(row(
        "ip.in_list(\"name\")",
        &Ty::Bool.to_string(),
        "whether the engine's IP list `name` (for example `tor_exit`) contains the address; `riskgate rules check` and the server reject a name that no configured list has",
    ));
    for (path, ty, meaning) in &FIXED_VARIABLES[13..] {
        rows.push(row(path, &ty.to_string(), meaning));
    }
    rows.push(String::new());
    rows.push(format!(
        "Signal names: {}.",
        SIGNAL_NAMES.map(|name| format!("`{name}`")).join(", ")
    ));
    rows.join("\n") + "\n"
}

/// Every readable variable by full path, `signals.<name>.value` and
/// `signals.<name>.evaluable` included.
static VARIABLES: LazyLock<BTreeMap<String, Ty>> = LazyLock::new(|| {
    let mut variables: BTreeMap<String, Ty> = FIXED_VARIABLES
        .iter()
        .map(|(path, ty, _)| (path.to_string(), ty.clone()))
        .collect();
    for signal in SIGNAL_NAMES {
        variables.insert(format!("signals.{signal}.value"), Ty::Double);
        variables.insert(format!("signals.{signal}.evaluable"), Ty::Bool);
    }
    variables
});

/// Functions a condition may call, for "did you mean" hints.
const FUNCTIONS: [&str; 10] = [
    "size",
    "startsWith",
    "endsWith",
    "contains",
    "int",
    "uint",
    "double",
    "string",
    "in_list",
    "matches",
];

/// An error inside a condition; the span is a byte range of the condition
/// text.
#[derive(Debug)]
pub(crate) struct ConditionError {
    pub span: Range<usize>,
    pub error: CheckError,
    pub help: Option<String>,
}

/// The variables and IP lists that a checked condition reads.
#[derive(Debug, Default)]
pub(crate) struct References {
    /// Top-level variables read.
    pub roots: BTreeSet<&'static str>,
    /// Names passed to `ip.in_list(...)`.
    pub ip_lists: BTreeSet<String>,
    /// Signals read through `signals.<name>`.
    pub signals: BTreeSet<&'static str>,
}

/// Checks a parsed condition: every name resolves and every operator gets
/// operands of types it accepts, and the condition is a bool.
pub(crate) fn check(
    expr: &IdedExpr,
    info: &SourceInfo,
    source: &str,
) -> Result<References, Vec<ConditionError>> {
    let mut checker = Checker {
        source,
        info,
        errors: Vec::new(),
        references: References::default(),
    };
    let ty = checker.check(expr);
    if !ty.is(&Ty::Bool) {
        let span = checker.span(expr);
        checker.error(
            span,
            CheckError::NotABoolCondition {
                found: ty.to_string(),
            },
            Some(
                "a condition decides whether the rule matches: compare values, e.g. `risk > 0.5`"
                    .into(),
            ),
        );
    }
    if checker.errors.is_empty() {
        Ok(checker.references)
    } else {
        Err(checker.errors)
    }
}

/// Returns the number of nested nodes on the longest path of the tree,
/// without recursion, so that it is safe on trees of any depth.
pub(crate) fn depth(expr: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(expr, 1usize)];
    while let Some((node, level)) = stack.pop() {
        deepest = deepest.max(level);
        for child in children(node) {
            stack.push((child, level + 1));
        }
    }
    deepest
}

fn children(node: &IdedExpr) -> Vec<&IdedExpr> {
    match &node.expr {
        Expr::Call(call) => call
            .target
            .iter()
            .map(AsRef::as_ref)
            .chain(&call.args)
            .collect(),
        Expr::Select(select) => vec![&select.operand],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
                cel::common::ast::EntryExpr::StructField(field) => vec![&field.value],
            })
            .collect(),
        Expr::Struct(structure) => structure
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
                cel::common::ast::EntryExpr::StructField(field) => vec![&field.value],
            })
            .collect(),
        Expr::Comprehension(comprehension) => vec![
            &comprehension.iter_range,
            &comprehension.accu_init,
            &comprehension.loop_cond,
            &comprehension.loop_step,
            &comprehension.result,
        ],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

struct Checker<'a> {
    source: &'a str,
    info: &'a SourceInfo,
    errors: Vec<ConditionError>,
    references: References,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, error: CheckError, help: Option<String>) {
        self.errors.push(ConditionError { span, error, help });
    }

    fn check(&mut self, expr: &IdedExpr) -> Ty {
        match &expr.expr {
            Expr::Literal(literal) => self.literal(expr, literal),
            Expr::Ident(_) => self.variable(expr),
            Expr::Select(select) if select.test => {
                self.unsupported(
                    expr,
                    "has()",
                    "every variable always has a value; `signals.<name>.evaluable` says whether a signal could be computed",
                );
                Ty::Dyn
            }
            Expr::Select(_) => self.variable(expr),
            Expr::Call(call) => self.call(expr, call),
            Expr::List(list) => self.list(&list.elements),
            Expr::Comprehension(_) => {
                self.unsupported(
                    expr,
                    "list macros (`all`, `exists`, `exists_one`, `map`, `filter`)",
                    "list the values with `in`, e.g. `geo.country in [\"KP\", \"IR\"]`, or join tests with `||`",
                );
                Ty::Dyn
            }
            Expr::Map(_) => {
                self.unsupported(expr, "map literals", "no variable is a map");
                Ty::Dyn
            }
            Expr::Struct(_) => {
                self.unsupported(expr, "message literals", "no variable is a message");
                Ty::Dyn
            }
            Expr::Unspecified => Ty::Dyn,
        }
    }

    fn unsupported(&mut self, expr: &IdedExpr, name: &str, help: &str) {
        let span = self.span(expr);
        self.error(
            span,
            CheckError::UnsupportedSyntax {
                name: name.to_string(),
            },
            Some(help.to_string()),
        );
    }

    fn literal(&mut self, expr: &IdedExpr, literal: &LiteralValue) -> Ty {
        match literal {
            LiteralValue::Boolean(_) => Ty::Bool,
            LiteralValue::Int(_) => Ty::Int,
            LiteralValue::UInt(_) => Ty::Uint,
            LiteralValue::Double(_) => Ty::Double,
            LiteralValue::String(_) => Ty::String,
            LiteralValue::Null => Ty::Null,
            LiteralValue::Bytes(_) => {
                self.unsupported(expr, "bytes literals", "no variable holds bytes");
                Ty::Dyn
            }
        }
    }

    /// Resolves an identifier or a chain of field selections on one.
    fn variable(&mut self, expr: &IdedExpr) -> Ty {
        let Some(segments) = self.path_segments(expr) else {
            self.unsupported(
                expr,
                "field selection on a computed value",
                "select fields of variables only, e.g. `geo.country`",
            );
            return Ty::Dyn;
        };
        let path = segments
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".");

        if let Some(ty) = VARIABLES.get(&path) {
            if let Some(root) = ROOTS.iter().find(|root| **root == segments[0].0) {
                self.references.roots.insert(root);
            }
            if segments[0].0 == "signals"
                && let Some(signal) = SIGNAL_NAMES.iter().find(|name| **name == segments[1].0)
            {
                self.references.signals.insert(signal);
            }
            return ty.clone();
        }

        if is_group(&path) {
            let members = group_members(&path);
            let help = format!(
                "select one of {}",
                quote_list(members.iter().map(|member| member.as_str()))
            );
            let span = self.span(expr);
            self.error(span, CheckError::NotAValue { path }, Some(help));
            return Ty::Dyn;
        }

        // Find the first segment that leads nowhere and suggest the closest
        // name at that level, keeping the rest of the path when it then
        // names a variable.
        let mut prefix = String::new();
        for (index, (segment, span)) in segments.iter().enumerate() {
            let candidate = join_path(&prefix, segment);
            if VARIABLES.contains_key(&candidate) || is_group(&candidate) {
                prefix = candidate;
                continue;
            }
            let siblings = group_members(&prefix);
            let help = closest(segment, siblings.iter().map(|s| s.as_str())).map(|near| {
                let rest: Vec<&str> = segments[index + 1..]
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect();
                let mut fixed = join_path(&prefix, near);
                if !rest.is_empty() {
                    let with_rest = format!("{fixed}.{}", rest.join("."));
                    if VARIABLES.contains_key(&with_rest) {
                        fixed = with_rest;
                    }
                }
                format!("did you mean `{fixed}`?")
            });
            let help = help.unwrap_or_else(|| {
                if siblings.is_empty() {
                    // A field selected on a value, such as `risk.x`.
                    format!("`{prefix}` is a value and has no fields")
                } else {
                    format!(
                        "expected one of {}",
                        quote_list(siblings.iter().map(|s| s.as_str()))
                    )
                }
            });
            self.error(
                span.clone(),
                CheckError::UnknownVariable { path },
                Some(help),
            );
            return Ty::Dyn;
        }
        // Unreachable: a path whose every segment resolves is a variable or
        // a group, both handled above.
        Ty::Dyn
    }

    /// Returns the names of an identifier and its field selections, root
    /// first, each with its span, or `None` when the chain does not start
    /// at an identifier.
    fn path_segments(&self, expr: &IdedExpr) -> Option<Vec<(String, Range<usize>)>> {
        let mut segments = Vec::new();
        let mut node = expr;
        loop {
            match &node.expr {
                Expr::Ident(name) => {
                    segments.push((name.clone(), self.own_span(node)));
                    segments.reverse();
                    return Some(segments);
                }
                Expr::Select(select) if !select.test => {
                    segments.push((select.field.clone(), self.field_span(node, &select.field)));
                    node = &select.operand;
                }
                _ => return None,
            }
        }
    }

    fn list(&mut self, elements: &[IdedExpr]) -> Ty {
        let mut element_ty: Option<Ty> = None;
        for element in elements {
            let ty = self.check(element);
            element_ty = match element_ty {
                None => Some(ty),
                Some(previous) if previous.is(&ty) => {
                    Some(if previous == Ty::Dyn { ty } else { previous })
                }
                Some(previous) if previous.is_numeric() && ty.is_numeric() => Some(Ty::Double),
                Some(previous) => {
                    let span = self.span(element);
                    self.error(
                        span,
                        CheckError::InvalidArgument {
                            function: "list literal".into(),
                            expected: format!("elements of one type ({previous})"),
                            found: ty.to_string(),
                        },
                        None,
                    );
                    Some(Ty::Dyn)
                }
            };
        }
        Ty::List(Box::new(element_ty.unwrap_or(Ty::Dyn)))
    }

    fn call(&mut self, expr: &IdedExpr, call: &CallExpr) -> Ty {
        use cel::common::ast::operators as op;
        let name = call.func_name.as_str();
        match name {
            op::LOGICAL_AND | op::LOGICAL_OR => self.logical(expr, call),
            op::LOGICAL_NOT => {
                self.expect_args(expr, call, "!", &[Ty::Bool]);
                Ty::Bool
            }
            op::NEGATE => self.negate(expr, call),
            op::EQUALS | op::NOT_EQUALS => self.comparison(expr, call, true),
            op::LESS | op::LESS_EQUALS | op::GREATER | op::GREATER_EQUALS => {
                self.comparison(expr, call, false)
            }
            op::ADD | op::SUBSTRACT | op::MULTIPLY | op::DIVIDE | op::MODULO => {
                self.arithmetic(expr, call)
            }
            op::CONDITIONAL => self.conditional(expr, call),
            op::IN => self.membership(expr, call),
            op::INDEX => self.index(expr, call),
            "size" => {
                let ty = self.single_operand(expr, call, "size");
                if !matches!(ty, Ty::String | Ty::List(_) | Ty::Dyn) {
                    self.wrong_argument(expr, "size", "a string or a list", &ty);
                }
                Ty::Int
            }
            "startsWith" | "endsWith" | "contains" => {
                if call.target.is_none() {
                    self.wrong_argument(
                        expr,
                        name,
                        "to be called on a string, e.g. `geo.city.startsWith(\"San\")`",
                        &Ty::Dyn,
                    );
                }
                self.expect_args(expr, call, name, &[Ty::String, Ty::String]);
                Ty::Bool
            }
            "int" | "uint" | "double" | "string" => self.conversion(expr, call, name),
            "in_list" => self.in_list(expr, call),
            "matches" => {
                self.unsupported(
                    expr,
                    "matches()",
                    "the regular expression would be compiled on every evaluation: use `startsWith`, `endsWith`, `contains` or `in [...]`",
                );
                Ty::Bool
            }
            _ => {
                for argument in call.target.iter().map(AsRef::as_ref).chain(&call.args) {
                    self.check(argument);
                }
                let span = self.call_name_span(expr, call);
                let help = closest(name, FUNCTIONS).map(|near| format!("did you mean `{near}`?"));
                let help = help.or_else(|| {
                    Some(format!(
                        "conditions can call {}",
                        quote_list(FUNCTIONS.iter().copied().filter(|f| *f != "matches"))
                    ))
                });
                self.error(
                    span,
                    CheckError::UnknownFunction {
                        name: name.to_string(),
                    },
                    help,
                );
                Ty::Dyn
            }
        }
    }

    /// Returns the operands of a call: the target first, then the arguments.
    fn operands<'e>(&self, call: &'e CallExpr) -> Vec<&'e IdedExpr> {
        call.target
            .iter()
            .map(AsRef::as_ref)
            .chain(&call.args)
            .collect()
    }

    fn expect_args(&mut self, expr: &IdedExpr, call: &CallExpr, function: &str, types: &[Ty]) {
        let operands = self.operands(call);
        if operands.len() != types.len() {
            let span = self.span(expr);
            self.error(
                span,
                CheckError::InvalidArgument {
                    function: function.to_string(),
                    expected: format!("{} argument(s)", types.len()),
                    found: operands.len().to_string(),
                },
                None,
            );
            return;
        }
        for (operand, expected) in operands.into_iter().zip(types) {
            let ty = self.check(operand);
            if !ty.is(expected) {
                let span = self.span(operand);
                self.error(
                    span,
                    CheckError::InvalidArgument {
                        function: function.to_string(),
                        expected: expected.to_string(),
                        found: format!("{ty} `{}`", self.text(operand)),
                    },
                    None,
                );
            }
        }
    }

    fn wrong_argument(&mut self, expr: &IdedExpr, function: &str, expected: &str, found: &Ty) {
        let span = self.span(expr);
        self.error(
            span,
            CheckError::InvalidArgument {
                function: function.to_string(),
                expected: expected.to_string(),
                found: found.to_string(),
            },
            None,
        );
    }

    fn single_operand(&mut self, expr: &IdedExpr, call: &CallExpr, function: &str) -> Ty {
        let operands = self.operands(call);
        if operands.len() != 1 {
            for operand in operands {
                self.check(operand);
            }
            self.wrong_argument(expr, function, "one argument", &Ty::Dyn);
            return Ty::Dyn;
        }
        self.check(operands[0])
    }

    fn logical(&mut self, expr: &IdedExpr, call: &CallExpr) -> Ty {
        let operator = if call.func_name == cel::common::ast::operators::LOGICAL_AND {
            "&&"
        } else {
            "||"
        };
        let types: Vec<Ty> = call.args.iter().map(|arg| self.check(arg)).collect();
        if let Some(bad) = types.iter().find(|ty| !ty.is(&Ty::Bool)) {
            let left = types.first().cloned().unwrap_or(Ty::Dyn);
            let right = types.get(1).cloned().unwrap_or(Ty::Dyn);
            let span = self.span(expr);
            let bad = bad.to_string();
            self.error(
                span,
                CheckError::InvalidOperands {
                    operator,
                    left: left.to_string(),
                    right: right.to_string(),
                },
                Some(format!("`{operator}` joins two bools; compare the {bad} with a value first, e.g. `x > 0.5`")),
            );
        }
        Ty::Bool
    }

    fn negate(&mut self, expr: &IdedExpr, call: &CallExpr) -> Ty {
        let ty = self.single_operand(expr, call, "-");
        if ty.is_numeric() || ty == Ty::Dyn {
            ty
        } else {
            self.wrong_argument(expr, "-", "a number", &ty);
            Ty::Dyn
        }
    }

    fn comparison(&mut self, expr: &IdedExpr, call: &CallExpr, equality: bool) -> Ty {
        let [left, right] = call.args.as_slice() else {
            return Ty::Bool;
        };
        let left_ty = self.check(left);
        let right_ty = self.check(right);
        let comparable = if equality {
            comparable(&left_ty, &right_ty)
        } else {
            ordered(&left_ty, &right_ty)
        };
        if !comparable {
            let help = if left_ty.is_numeric() != right_ty.is_numeric()
                && (left_ty == Ty::String || right_ty == Ty::String)
            {
                "a string compares only with a string: quote the value to compare text, or compare a number with a numeric variable"
            } else if left_ty == Ty::Null || right_ty == Ty::Null {
                "no variable is ever null: absent values are \"\", 0 or -1 as documented for each variable"
            } else if equality {
                "both sides must have the same type; int, uint and double compare with each other"
            } else {
                "order compares two numbers or two strings"
            };
            let span = self.span(expr);
            self.error(
                span,
                CheckError::IncomparableTypes {
                    left: left_ty.to_string(),
                    left_text: self.text(left),
                    right: right_ty.to_string(),
                    right_text: self.text(right),
                },
                Some(help.to_string()),
            );
        }
        Ty::Bool
    }

    fn arithmetic(&mut self, expr: &IdedExpr, call: &CallExpr) -> Ty {
        use cel::common::ast::operators as op;
        let operator = match call.func_name.as_str() {
            op::ADD => "+",
            op::SUBSTRACT => "-",
            op::MULTIPLY => "*",
            op::DIVIDE => "/",
            _ => "%",
        };
        let [left, right] = call.args.as_slice() else {
            return Ty::Dyn;
        };
        let left_ty = self.check(left);
        let right_ty = self.check(right);

        // Both operands must have one type that the operator accepts.
        let ty = if left_ty == Ty::Dyn {
            &right_ty
        } else {
            &left_ty
        };
        let accepted = match operator {
            "+" => ty.is_numeric() || matches!(ty, Ty::String | Ty::List(_) | Ty::Dyn),
            "%" => matches!(ty, Ty::Int | Ty::Uint | Ty::Dyn),
            _ => ty.is_numeric() || *ty == Ty::Dyn,
        };
        if accepted && left_ty.is(&right_ty) {
            return ty.clone();
        }

        let help = if left_ty.is_numeric() && right_ty.is_numeric() {
            "CEL does not mix int, uint and double in arithmetic: convert one side with `double(...)` or `int(...)`, or write `1.0` for a double".to_string()
        } else if operator == "+" {
            "`+` adds two numbers of one type, or joins two strings or two lists".to_string()
        } else {
            format!("`{operator}` needs two numbers of one type")
        };
        let span = self.span(expr);
        self.error(
            span,
            CheckError::InvalidOperands {
                operator,
                left: left_ty.to_string(),
                right: right_ty.to_string(),
            },
            Some(help),
        );
        Ty::Dyn
    }

    fn conditional(&mut self, expr: &IdedExpr, call: &CallExpr) -> Ty {
        let [condition, then, otherwise] = call.args.as_slice() else {
            return Ty::Dyn;
        };
        let condition_ty = self.check(condition);
        if !condition_ty.is(&Ty::Bool) {
            let span = self.span(condition);
            self.error(
                span,
                CheckError::InvalidArgument {
                    function: "?:".into(),
                    expected: "a bool before `?`".into(),
                    found: condition_ty.to_string(),
                },
                None,
            );
        }
        let then_ty = self.check(then);
        let otherwise_ty = self.check(otherwise);
        if then_ty.is(&otherwise_ty) {
            return if then_ty == Ty::Dyn {
                otherwise_ty
            } else {
                then_ty
            };
        }
        if then_ty.is_numeric() && otherwise_ty.is_numeric() {
            return Ty::Double;
        }
        let span = self.span(expr);
        self.error(
            span,
            CheckError::InvalidOperands {
                operator: "?:",
                left: then_ty.to_string(),
                right: otherwise_ty.to_string(),
            },
            Some("both branches of `?:` must have the same type".into()),
        );
        Ty::Dyn
    }

    fn membership(&mut self, expr: &IdedExpr, call: &CallExpr) -> Ty {
        let [element, collection] = call.args.as_slice() else {
            return Ty::Bool;
        };
        let element_ty = self.check(element);
        let collection_ty = self.check(collection);
        match &collection_ty {
            Ty::List(inner) if comparable(&element_ty, inner) => {}
            Ty::Dyn => {}
            _ => {
                let span = self.span(expr);
                self.error(
                    span,
                    CheckError::InvalidOperands {
                        operator: "in",
                        left: element_ty.to_string(),
                        right: collection_ty.to_string(),
                    },
                    Some("`x in [...]` tests a value against a list of values of its type, e.g. `geo.country in [\"KP\", \"IR\"]`".into()),
                );
            }
        }
        Ty::Bool
    }

    fn index(&mut self, expr: &IdedExpr, call: &CallExpr) -> Ty {
        let [collection, position] = call.args.as_slice() else {
            return Ty::Dyn;
        };
        let collection_ty = self.check(collection);
        let position_ty = self.check(position);
        match collection_ty {
            Ty::List(inner) if position_ty.is(&Ty::Int) => *inner,
            Ty::Dyn => Ty::Dyn,
            other => {
                let span = self.span(expr);
                self.error(
                    span,
                    CheckError::InvalidOperands {
                        operator: "[]",
                        left: other.to_string(),
                        right: position_ty.to_string(),
                    },
                    Some("only lists can be indexed, with an int".into()),
                );
                Ty::Dyn
            }
        }
    }

    fn conversion(&mut self, expr: &IdedExpr, call: &CallExpr, name: &str) -> Ty {
        let ty = self.single_operand(expr, call, name);
        let (result, accepted) = match name {
            "int" => (Ty::Int, ty.is_numeric() || ty == Ty::String),
            "uint" => (Ty::Uint, ty.is_numeric() || ty == Ty::String),
            "double" => (Ty::Double, ty.is_numeric() || ty == Ty::String),
            _ => (
                Ty::String,
                ty.is_numeric() || matches!(ty, Ty::String | Ty::Bool),
            ),
        };
        if !accepted && ty != Ty::Dyn {
            self.wrong_argument(expr, name, "a number or a string", &ty);
        }
        result
    }

    /// Checks `ip.in_list("name")`: called on `ip`, with one string literal
    /// so that the list names are known when the rules load.
    fn in_list(&mut self, expr: &IdedExpr, call: &CallExpr) -> Ty {
        let on_ip = matches!(
            call.target.as_deref(),
            Some(IdedExpr { expr: Expr::Ident(name), .. }) if name == "ip"
        );
        let name = match call.args.as_slice() {
            [
                IdedExpr {
                    expr: Expr::Literal(LiteralValue::String(name)),
                    ..
                },
            ] => Some(name.inner().to_string()),
            _ => None,
        };
        match (on_ip, name) {
            (true, Some(name)) if !name.is_empty() => {
                self.references.roots.insert("ip");
                self.references.ip_lists.insert(name);
            }
            _ => {
                let span = self.span(expr);
                self.error(
                    span,
                    CheckError::InvalidArgument {
                        function: "in_list".into(),
                        expected: "to be called as `ip.in_list(\"<list name>\")`".into(),
                        found: format!("`{}`", self.text(expr)),
                    },
                    Some("the list name must be a quoted, non-empty string, e.g. `ip.in_list(\"tor_exit\")`".into()),
                );
            }
        }
        Ty::Bool
    }

    /// Returns the span of a node's own token.
    fn own_span(&self, expr: &IdedExpr) -> Range<usize> {
        match self.info.offset_for(expr.id) {
            Some((start, stop)) => {
                let start = start as usize;
                let end = (stop as usize + 1).max(start);
                start.min(self.source.len())..end.min(self.source.len())
            }
            None => 0..self.source.len(),
        }
    }

    /// Returns the span of the field name of a selection, whose own token
    /// is the dot before it.
    fn field_span(&self, expr: &IdedExpr, field: &str) -> Range<usize> {
        let dot = self.own_span(expr);
        let after = dot.end;
        match self.source.get(after..).and_then(|rest| rest.find(field)) {
            Some(at) => after + at..after + at + field.len(),
            None => dot,
        }
    }

    /// Returns the span of the name of a called function.
    fn call_name_span(&self, expr: &IdedExpr, call: &CallExpr) -> Range<usize> {
        let paren = self.own_span(expr);
        let name = call.func_name.as_str();
        let before = self.source.get(..paren.start).unwrap_or("");
        let trimmed = before.trim_end();
        if trimmed.ends_with(name) {
            let start = trimmed.len() - name.len();
            start..trimmed.len()
        } else {
            paren
        }
    }

    /// Returns the span of a whole expression: its own token and all of its
    /// children, with a called function's name and closing bracket.
    fn span(&self, expr: &IdedExpr) -> Range<usize> {
        let mut range = self.own_span(expr);
        match &expr.expr {
            Expr::Select(select) => {
                let operand = self.span(&select.operand);
                let field = self.field_span(expr, &select.field);
                range = operand.start.min(field.start)..field.end.max(operand.end);
            }
            Expr::Call(call) => {
                for operand in self.operands(call) {
                    let child = self.span(operand);
                    range = range.start.min(child.start)..range.end.max(child.end);
                }
                let is_function = call
                    .func_name
                    .starts_with(|c: char| c.is_ascii_alphabetic());
                if is_function {
                    if call.target.is_none() {
                        let name = self.call_name_span(expr, call);
                        range.start = range.start.min(name.start);
                    }
                    range.end = self.extend_to(range.end, ')');
                } else if call.func_name == cel::common::ast::operators::INDEX {
                    range.end = self.extend_to(range.end, ']');
                }
            }
            Expr::Comprehension(comprehension) => {
                // A list macro: from its target to the closing bracket of
                // the call, whose own token is the opening one.
                let target = self.span(&comprehension.iter_range);
                range.start = range.start.min(target.start);
                range.end = self.matching_close(range.end.saturating_sub(1));
            }
            Expr::List(list) => {
                for element in &list.elements {
                    let child = self.span(element);
                    range = range.start.min(child.start)..range.end.max(child.end);
                }
                range.end = self.extend_to(range.end, ']');
            }
            _ => {}
        }
        range
    }

    /// Returns the offset after the bracket that closes the one at `open`,
    /// or after `open` when it is not an opening bracket or never closed.
    fn matching_close(&self, open: usize) -> usize {
        let bytes = self.source.as_bytes();
        if !matches!(bytes.get(open), Some(b'(' | b'[' | b'{')) {
            return open + 1;
        }
        let mut depth = 0usize;
        for (offset, byte) in bytes.iter().enumerate().skip(open) {
            match byte {
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return offset + 1;
                    }
                }
                _ => {}
            }
        }
        open + 1
    }

    /// Moves `end` past whitespace and one `closing` character, if it
    /// follows.
    fn extend_to(&self, end: usize, closing: char) -> usize {
        let rest = self.source.get(end..).unwrap_or("");
        let trimmed = rest.trim_start();
        if trimmed.starts_with(closing) {
            end + (rest.len() - trimmed.len()) + closing.len_utf8()
        } else {
            end
        }
    }

    fn text(&self, expr: &IdedExpr) -> String {
        let span = self.span(expr);
        self.source.get(span).unwrap_or("").to_string()
    }
}

/// Checks whether `==` between the two types can ever be true: same type,
/// two numbers, or lists of comparable elements.
fn comparable(left: &Ty, right: &Ty) -> bool {
    match (left, right) {
        (Ty::Dyn, _) | (_, Ty::Dyn) => true,
        (Ty::List(left), Ty::List(right)) => comparable(left, right),
        _ => left == right || (left.is_numeric() && right.is_numeric()),
    }
}

/// Checks whether `<` and the other orderings accept the two types.
fn ordered(left: &Ty, right: &Ty) -> bool {
    match (left, right) {
        (Ty::Dyn, _) | (_, Ty::Dyn) => true,
        (Ty::String, Ty::String) | (Ty::Bool, Ty::Bool) => true,
        _ => left.is_numeric() && right.is_numeric(),
    }
}

fn join_path(prefix: &str, segment: &str) -> String {
    if prefix.is_empty() {
        segment.to_string()
    } else {
        format!("{prefix}.{segment}")
    }
}

/// Checks whether `path` is a group of variables such as `signals`.
fn is_group(path: &str) -> bool {
    let prefix = format!("{path}.");
    VARIABLES
        .range(prefix.clone()..)
        .next()
        .is_some_and(|(key, _)| key.starts_with(&prefix))
}

/// Returns the names one level below `prefix` (the top-level names for an
/// empty prefix), in alphabetical order.
fn group_members(prefix: &str) -> Vec<String> {
    let mut members = BTreeSet::new();
    for key in VARIABLES.keys() {
        let rest = if prefix.is_empty() {
            Some(key.as_str())
        } else {
            key.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('.'))
        };
        if let Some(rest) = rest {
            let member = rest.split('.').next().unwrap_or(rest);
            members.insert(member.to_string());
        }
    }
    members.into_iter().collect()
}
