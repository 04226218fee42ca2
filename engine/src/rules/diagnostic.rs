//! Check errors with their position in a rules file, and the two renderings
//! that `riskgate rules check` prints: human text in the compiler layout
//! (`file:line:column: message`, the source line with the span underlined,
//! `help: ...`) and JSON for editors and CI.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use unicode_width::UnicodeWidthStr;

use super::source::{Loc, SourceFile};

/// One violation found while loading a rules file. The message is the
/// `Display` text of the variant.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckError {
    // Reading files.
    #[error("cannot read `{path}`: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("rules file `{path}` is {size} bytes; the maximum is {max}")]
    FileTooLarge { path: String, size: u64, max: u64 },
    #[error("rules file `{path}` is not valid UTF-8 (first invalid byte at offset {offset})")]
    NotUtf8 { path: String, offset: usize },
    #[error("rules folder `{path}` contains no `*.toml` files")]
    EmptyFolder { path: String },
    #[error("rules folder `{path}` contains {count} `*.toml` files; the maximum is {max}")]
    TooManyFiles {
        path: String,
        count: usize,
        max: usize,
    },

    // TOML shape.
    #[error("invalid TOML: {message}")]
    TomlSyntax { message: String },
    #[error("unknown key `{key}` in {table}")]
    UnknownKey { key: String, table: String },
    #[error("`{key}` must be {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("missing `{key}` in {table}")]
    MissingKey { key: String, table: String },
    #[error("`{key}` must be a finite number, found `{value}`")]
    NotFinite { key: String, value: String },
    #[error("integer `{value}` of `{key}` is out of range")]
    IntegerOutOfRange { key: String, value: String },

    // Scoring.
    #[error("threshold `{key}` = {value} is outside [0, 1]")]
    ThresholdOutOfRange { key: String, value: f64 },
    #[error(
        "thresholds out of order: `{lower}` = {lower_value} must be below `{upper}` = {upper_value}"
    )]
    ThresholdsOutOfOrder {
        lower: &'static str,
        lower_value: f64,
        upper: &'static str,
        upper_value: f64,
    },
    #[error("unknown signal `{name}` in `[scoring.weights]`")]
    UnknownSignal { name: String },

    // Policy.
    #[error("invalid `{key}` policy `{value}`: expected {expected}")]
    InvalidPolicy {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("`degraded = \"allow\"` requires `dangerous_allow_degraded = true`")]
    DegradedAllowNotEnabled,

    // Roles and factors.
    #[error("invalid role name `{name}`")]
    InvalidRoleName { name: String },
    #[error(
        "missing role `default`: it sets the factors for requests with no role or an unknown role"
    )]
    MissingDefaultRole,
    #[error("unknown factor `{name}`")]
    UnknownFactor { name: String },
    #[error("factor `{name}` appears more than once in `{entry}`")]
    RepeatedFactor { name: String, entry: String },
    #[error("factor list `{key}` is empty")]
    EmptyFactorList { key: String },
    #[error("factor `sms` is not allowed for role `{role}`")]
    SmsNotAllowed { role: String },
    #[error("factor `sms` in rule `{rule}` is not allowed for role `{role}`")]
    SmsNotAllowedInRule { rule: String, role: String },

    // Lists.
    #[error("invalid network `{value}`: expected an address or a CIDR block such as `10.0.0.0/8`")]
    InvalidNetwork { value: String },
    #[error("network `{value}` has host bits set")]
    NetworkHostBits { value: String },
    #[error("invalid country code `{value}`: expected two uppercase letters (ISO 3166-1 alpha-2)")]
    InvalidCountry { value: String },

    // Rules.
    #[error("too many rules: {count}; the maximum is {max}")]
    TooManyRules { count: usize, max: usize },
    #[error("invalid rule id `{id}`")]
    InvalidRuleId { id: String },
    #[error("duplicate rule id `{id}`")]
    DuplicateRuleId { id: String },
    #[error("unknown action `{value}`")]
    UnknownAction { value: String },
    #[error("unknown mode `{value}`")]
    UnknownMode { value: String },
    #[error("`factors` is only valid with `then = \"step_up\"`, not `then = \"{action}\"`")]
    FactorsWithoutStepUp { action: String },
    #[error("`adjust` is only valid with `then = \"adjust\"`, not `then = \"{action}\"`")]
    AdjustWithoutAdjustAction { action: String },
    #[error("missing `adjust` in rule `{rule}` with `then = \"adjust\"`")]
    MissingAdjust { rule: String },
    #[error("unknown role `{role}` in the `roles` filter")]
    UnknownRoleFilter { role: String },
    #[error("empty string in the `{key}` filter")]
    EmptyFilterValue { key: &'static str },

    // Conditions.
    #[error("condition is {length} bytes long; the maximum is {max}")]
    ConditionTooLong { length: usize, max: usize },
    #[error("condition nests {depth} levels deep; the maximum is {max}")]
    ConditionTooDeep { depth: usize, max: usize },
    #[error("condition is empty")]
    EmptyCondition,
    #[error("invalid condition: {detail}")]
    ConditionSyntax { detail: String },
    #[error("unknown variable `{path}`")]
    UnknownVariable { path: String },
    #[error("`{path}` is a group of variables, not a value")]
    NotAValue { path: String },
    #[error("unknown function `{name}`")]
    UnknownFunction { name: String },
    #[error("`{name}` is not supported in conditions")]
    UnsupportedSyntax { name: String },
    #[error("cannot compare {left} `{left_text}` with {right} `{right_text}`")]
    IncomparableTypes {
        left: String,
        left_text: String,
        right: String,
        right_text: String,
    },
    #[error("operator `{operator}` cannot combine {left} and {right}")]
    InvalidOperands {
        operator: &'static str,
        left: String,
        right: String,
    },
    #[error("`{function}` expects {expected}, found {found}")]
    InvalidArgument {
        function: String,
        expected: String,
        found: String,
    },
    #[error("condition must be a bool, found {found}")]
    NotABoolCondition { found: String },
    #[error("the condition compiler failed on this condition: {detail}")]
    CompilerPanicked { detail: String },
}

/// A check error, where it is and what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line, or `None` when the error concerns the file as a whole.
    pub line: Option<usize>,
    /// 1-based column in characters, or `None` with `line`.
    pub column: Option<usize>,
    pub error: CheckError,
    pub help: Option<String>,
    snippet: Option<Snippet>,
    /// Order of the file in the load, then byte offset: the report order.
    sort_key: (usize, usize),
}

/// The source line of a diagnostic and the underlined part, in display
/// columns.
#[derive(Debug, Clone, PartialEq)]
struct Snippet {
    text: String,
    underline_start: usize,
    underline_width: usize,
}

impl Diagnostic {
    /// Creates a diagnostic for a byte range of a rules file.
    pub(crate) fn at(source: &SourceFile, span: Range<usize>, error: CheckError) -> Diagnostic {
        let (line, column) = source.line_column(span.start);
        let line_range = source.line_range(line);
        let text = source.line_text(line);

        // Underline from the start of the span to its end or the end of the
        // line, whichever comes first, and at least one column.
        let start = span.start.clamp(line_range.start, line_range.end) - line_range.start;
        let end = span.end.clamp(line_range.start, line_range.end) - line_range.start;
        let end = floor_boundary(text, end.max(start));
        let start = floor_boundary(text, start);
        let snippet = Snippet {
            text: text.replace('\t', " "),
            underline_start: text[..start].width(),
            underline_width: text[start..end].width().max(1),
        };
        Diagnostic {
            file: source.path.clone(),
            line: Some(line),
            column: Some(column),
            error,
            help: None,
            snippet: Some(snippet),
            sort_key: (source.index, span.start),
        }
    }

    /// Creates a diagnostic about a whole file or folder.
    pub(crate) fn without_position(path: &Path, error: CheckError) -> Diagnostic {
        Diagnostic {
            file: path.to_path_buf(),
            line: None,
            column: None,
            error,
            help: None,
            snippet: None,
            sort_key: (0, 0),
        }
    }

    pub(crate) fn with_optional_help(mut self, help: Option<String>) -> Diagnostic {
        self.help = help;
        self
    }

    /// Returns the message without position or help.
    pub fn message(&self) -> String {
        self.error.to_string()
    }

    /// Returns `file:line:column`, or the file alone for a file-level error.
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}", self.file.display()),
            _ => self.file.display().to_string(),
        }
    }

    pub(crate) fn sort_key(&self) -> (usize, usize) {
        self.sort_key
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.location(), self.error)?;
        if let (Some(snippet), Some(line)) = (&self.snippet, self.line) {
            let gutter = line.to_string();
            let pad = " ".repeat(gutter.len());
            writeln!(f, "{gutter} | {}", snippet.text)?;
            writeln!(
                f,
                "{pad} | {}{}",
                " ".repeat(snippet.underline_start),
                "^".repeat(snippet.underline_width)
            )?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "help: {help}")?;
        }
        Ok(())
    }
}

/// The check errors of a rules file or folder, in file and position order.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_human(&self.0))
    }
}

impl std::error::Error for Diagnostics {}

/// Collects the diagnostics of one load.
pub(crate) struct Reporter<'s> {
    sources: &'s [SourceFile],
    pub diagnostics: Vec<Diagnostic>,
}

impl<'s> Reporter<'s> {
    pub(crate) fn new(sources: &'s [SourceFile]) -> Reporter<'s> {
        Reporter {
            sources,
            diagnostics: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, loc: &Loc, error: CheckError, help: Option<String>) {
        let diagnostic = match self.sources.get(loc.file) {
            Some(source) => Diagnostic::at(source, loc.span.clone(), error),
            None => Diagnostic::without_position(Path::new("<unknown>"), error),
        };
        self.diagnostics.push(diagnostic.with_optional_help(help));
    }

    /// Returns the diagnostics in file order, then position order.
    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.diagnostics.sort_by_key(Diagnostic::sort_key);
        self.diagnostics
    }
}

/// Renders diagnostics as text for a terminal, separated by blank lines and
/// followed by a count.
pub fn render_human(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&diagnostic.to_string());
        out.push('\n');
    }
    match diagnostics.len() {
        0 => {}
        1 => out.push_str("1 error\n"),
        count => out.push_str(&format!("{count} errors\n")),
    }
    out
}

/// Renders diagnostics as a JSON array of
/// `{"file", "line", "column", "message", "help"}` objects. `line`,
/// `column` and `help` are `null` when absent.
pub fn render_json(diagnostics: &[Diagnostic]) -> String {
    #[derive(serde::Serialize)]
    struct Entry<'d> {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
        help: Option<&'d str>,
    }
    let entries: Vec<Entry> = diagnostics
        .iter()
        .map(|diagnostic| Entry {
            file: diagnostic.file.display().to_string(),
            line: diagnostic.line,
            column: diagnostic.column,
            message: diagnostic.message(),
            help: diagnostic.help.as_deref(),
        })
        .collect();
    // Per the serde_json 1 docs of `to_string_pretty`, it fails only on maps
    // with non-string keys or a failing `Serialize` impl: `Entry` has neither.
    serde_json::to_string_pretty(&entries).unwrap_or_else(|_| "[]".to_string())
}

/// Returns the candidate closest to `name` when it is close enough to be a
/// likely typo: a small Damerau-Levenshtein distance, ignoring case.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let name_lower = name.to_lowercase();
    let mut best: Option<(usize, usize, &str)> = None;
    for candidate in candidates {
        let distance = strsim::damerau_levenshtein(&name_lower, &candidate.to_lowercase());
        let longest = name.chars().count().max(candidate.chars().count());
        let limit = 2.max(longest / 4);
        if distance > limit || distance * 2 >= longest {
            continue;
        }
        // Among equally distant names, prefer the one that shares the
        // longest prefix: `rules` is closer to `rule` than to `roles`.
        let shared = common_prefix(&name_lower, &candidate.to_lowercase());
        let better = best.is_none_or(|(best_distance, best_shared, _)| {
            distance < best_distance || (distance == best_distance && shared > best_shared)
        });
        if better {
            best = Some((distance, shared, candidate));
        }
    }
    best.map(|(_, _, candidate)| candidate)
}

/// Returns "did you mean `x`?" for a close candidate, else a list of the
/// valid names.
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> String {
    match closest(name, candidates.clone()) {
        Some(candidate) => format!("did you mean `{candidate}`?"),
        None => format!("expected one of {}", quote_list(candidates)),
    }
}

/// Joins names as "`a`, `b`, `c`".
pub(crate) fn quote_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn common_prefix(left: &str, right: &str) -> usize {
    left.chars()
        .zip(right.chars())
        .take_while(|(l, r)| l == r)
        .count()
}

fn floor_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}
