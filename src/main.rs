//! The `riskgate` command: the scoring service and its tools.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use riskgate_engine::config::Config;
use riskgate_engine::engine::Engine;
use riskgate_engine::replay::{self, HttpTarget, ReplayOptions, ScoreTarget};
use riskgate_engine::rules;
use riskgate_engine::simulate::{self, OutputFormat, SimulateOptions};

#[cfg(feature = "train")]
mod evaluate;
#[cfg(feature = "train")]
mod train;
use riskgate_models::keystroke::{self, Detector};

/// mimalloc instead of the system allocator: scoring and replays allocate many small strings
/// and maps, which glibc's allocator serves markedly slower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "riskgate",
    version,
    about = "Risk-based adaptive authentication engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP scoring service.
    Serve {
        #[command(flatten)]
        service: ServiceArgs,
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port); overrides
        /// `listen` in the configuration.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Score one login in-process and print the decision as JSON.
    Score {
        #[command(flatten)]
        service: ServiceArgs,
        /// The request body as JSON, or `-` to read it from standard input.
        request: String,
    },
    /// Stream a login CSV through the engine in timestamp order and summarise the decisions.
    Replay(ReplayArgs),
    /// Generate a labelled login history (CSV in the riskgate layout, or Parquet) whose
    /// addresses come from the configured geo-IP databases.
    Simulate(SimulateArgs),
    /// Fit the logistic risk combiner on a labelled login history (needs `--features train`).
    #[cfg(feature = "train")]
    Train {
        /// Login history: CSV or Parquet, in the riskgate layout or the RBA dataset's.
        #[arg(long)]
        input: PathBuf,
        /// Column layout of the input.
        #[arg(long, value_enum, default_value = "riskgate")]
        format: LayoutArg,
        /// Path of the model artifact (JSON) to write.
        #[arg(long)]
        out: PathBuf,
        /// Configuration whose geo databases, lists and rules the replay uses.
        #[arg(long, default_value = "riskgate.toml")]
        config: PathBuf,
    },
    /// Compare a trained model artifact with the rules file's hand-set weights on a labelled
    /// login history: ROC AUC and re-authentication figures per attack kind (needs
    /// `--features train`).
    #[cfg(feature = "train")]
    Evaluate(EvaluateArgs),
    /// Check and test rules files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Keystroke dynamics tools.
    Keystroke {
        #[command(subcommand)]
        command: KeystrokeCommand,
    },
}

#[derive(Subcommand)]
enum KeystrokeCommand {
    /// Measure detectors' equal-error rates on a CSV in the CMU keystroke layout
    /// (subject, sessionIndex, rep, then H./DD./UD. timings in seconds).
    Evaluate {
        file: PathBuf,
        /// A detector name (robust-manhattan, manhattan-scaled, nn-mahalanobis,
        /// outlier-count, mahalanobis, manhattan, euclidean) or `all`.
        #[arg(long, default_value = "all")]
        detector: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ServiceArgs {
    /// Configuration file.
    #[arg(long, default_value = "riskgate.toml")]
    config: PathBuf,
    /// Directory of the SQLite history and decision records; overrides `data_dir` in the
    /// configuration.
    #[arg(long, env = "RISKGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    /// Login CSV in the riskgate layout or the RBA dataset layout.
    file: PathBuf,
    /// Base URL of a running service, e.g. http://127.0.0.1:8080.
    #[arg(
        long,
        conflicts_with = "in_process",
        required_unless_present = "in_process"
    )]
    url: Option<String>,
    /// Score in this process instead of calling a service; history goes to a fresh temporary
    /// directory unless --data-dir is given.
    #[arg(long)]
    in_process: bool,
    /// API key sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "RISKGATE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Configuration file, for --in-process.
    #[arg(long, default_value = "riskgate.toml")]
    config: PathBuf,
    /// History directory, for --in-process.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// CSV layout; detected from the header when absent.
    #[arg(long, value_enum)]
    layout: Option<LayoutArg>,
    /// Replay at most this many rows.
    #[arg(long)]
    limit: Option<usize>,
    /// Write each decision as a JSON line to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SimulateArgs {
    /// Number of users (staff accounts) to simulate.
    #[arg(long)]
    users: usize,
    /// Length of the period in days.
    #[arg(long)]
    days: u32,
    /// Random seed; the same seed and options give the same file.
    #[arg(long)]
    seed: u64,
    /// Output file: `.csv`, or `.parquet` in builds with `--features train`.
    #[arg(long)]
    out: PathBuf,
    /// Configuration file whose geo-IP databases and IP lists provide the addresses.
    #[arg(long, default_value = "riskgate.toml")]
    config: PathBuf,
    /// First day of the period (YYYY-MM-DD), which starts at 00:00 UTC.
    #[arg(long, default_value = "2026-01-05")]
    start: chrono::NaiveDate,
    /// Keystroke timings in the CMU layout; users type as its subjects.
    #[arg(long, default_value = "data/keystroke/IIITBh-Big.csv")]
    keystrokes: PathBuf,
}

#[cfg(feature = "train")]
#[derive(Args)]
struct EvaluateArgs {
    /// Model artifact (JSON) written by `riskgate train`.
    #[arg(long)]
    model: PathBuf,
    /// Labelled login history: CSV or Parquet, in the riskgate layout or the RBA dataset's.
    #[arg(long)]
    input: PathBuf,
    /// Column layout of the input.
    #[arg(long, value_enum, default_value = "riskgate")]
    format: LayoutArg,
    /// Configuration whose geo databases, lists and rules the replay uses. The rules file's
    /// weights are the baseline.
    #[arg(long, default_value = "riskgate.toml")]
    config: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Folder to write the SVG plots into; created when missing.
    #[arg(long)]
    plots: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    Riskgate,
    Rba,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Check a rules file or folder and report every error.
    Check {
        /// Rules file or folder.
        path: PathBuf,
        #[arg(long, value_enum, default_value = "human")]
        format: FormatArg,
        /// Service configuration whose IP lists `ip.in_list` may name; `riskgate.toml` in
        /// the current directory when it exists.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the reference table of the variables a condition can read, as Markdown.
    Variables,
    /// Run the rule tests of a case file against a rules file or folder.
    Test {
        /// Rules file or folder.
        path: PathBuf,
        /// Case file: `[[case]]` tables with history, attempt and expected outcome.
        #[arg(long)]
        cases: PathBuf,
        /// Configuration whose geo-IP databases, IP lists and signal settings the cases use.
        #[arg(long, default_value = "riskgate.toml")]
        config: PathBuf,
    },
    /// Explain a recorded decision: each rule's outcome and each signal's contribution.
    Explain {
        /// Decision id, as returned by `POST /v1/score`.
        id: String,
        #[command(flatten)]
        service: ServiceArgs,
        /// Print the stored record and its outcomes as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of a rules file, the content of `rules/schema.json`.
    Schema,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Human,
    Json,
}

fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn load_config(service: &ServiceArgs) -> Result<Config> {
    let mut config = Config::load(&service.config)?;
    if let Some(dir) = &service.data_dir {
        config.data_dir = absolute(dir)?;
    }
    Ok(config)
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .context("cannot read the current directory")?
            .join(path))
    }
}

fn serve(service: &ServiceArgs, listen: Option<SocketAddr>) -> Result<()> {
    let config = load_config(service)?;
    let address = listen.unwrap_or(config.listen);
    let engine = Arc::new(Engine::open(&config)?);
    let listener =
        TcpListener::bind(address).with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(
        address = %bound,
        data_dir = %config.data_dir().display(),
        rules_version = %engine.rules_version(),
        model_version = %engine.model_version(),
        "riskgate started"
    );
    // Kept until the server stops: dropping them ends the watches.
    let _rules_watcher = match riskgate_engine::reload::watch_rules(engine.clone()) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::error!(%error, "rules are not watched; reload them with SIGHUP or POST /admin/reload");
            None
        }
    };
    let _model_watcher = match riskgate_engine::reload::watch_model(engine.clone()) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::error!(%error, "the model file is not watched; reload it with SIGHUP or POST /admin/reload");
            None
        }
    };
    // Tests and scripts read this line to find a port chosen by the system.
    println!("listening on http://{bound}");
    actix_web::rt::System::new().block_on(async move {
        #[cfg(unix)]
        riskgate_engine::server::reload_on_sighup(engine.clone());
        let server = riskgate_engine::server::build(engine, &config, listener)?;
        server.await
    })?;
    tracing::info!("riskgate stopped");
    Ok(())
}

fn score(service: &ServiceArgs, request: &str) -> Result<()> {
    let config = load_config(service)?;
    let engine = Engine::open(&config)?;
    let body = if request == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the request from standard input")?;
        text
    } else {
        request.to_owned()
    };
    match engine.score_bytes(body.as_bytes()) {
        Ok(response) => {
            println!("{}", serde_json::to_string_pretty(&response)?);
            Ok(())
        }
        Err(error) => bail!("request rejected: {error}"),
    }
}

fn rejected(error: riskgate_engine::error::ApiError) -> replay::ReplayError {
    replay::ReplayError::Rejected {
        status: error.status,
        code: Some(error.code.to_owned()),
        message: error.message,
        field: error.field,
    }
}

/// Calls the engine directly, for `replay --in-process`.
struct InProcess {
    engine: Engine,
}

impl ScoreTarget for InProcess {
    fn score(
        &mut self,
        request: &serde_json::Value,
    ) -> Result<serde_json::Value, replay::ReplayError> {
        self.engine.score_value(request).map_err(rejected)
    }

    fn event(
        &mut self,
        request: &serde_json::Value,
    ) -> Result<serde_json::Value, replay::ReplayError> {
        self.engine.event_value(request).map_err(rejected)
    }
}

fn run_replay(args: &ReplayArgs) -> Result<()> {
    let options = ReplayOptions {
        layout: args.layout.map(|layout| match layout {
            LayoutArg::Riskgate => replay::Layout::Riskgate,
            LayoutArg::Rba => replay::Layout::Rba,
        }),
        limit: args.limit,
        out: args.out.clone(),
    };
    let mut _temporary = None;
    let summary = if let Some(url) = &args.url {
        let mut target = HttpTarget::new(url, args.api_key.as_deref())?;
        replay::replay(&args.file, &mut target, &options)?
    } else {
        let mut config = Config::load(&args.config)?;
        config.data_dir = match &args.data_dir {
            Some(dir) => absolute(dir)?,
            None => {
                let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
                let path = dir.path().to_path_buf();
                _temporary = Some(dir);
                path
            }
        };
        let mut target = InProcess {
            engine: Engine::open(&config)?,
        };
        replay::replay(&args.file, &mut target, &options)?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{summary}");
    }
    Ok(())
}

fn run_simulate(args: &SimulateArgs) -> Result<()> {
    // A wrong extension fails before the generation starts.
    OutputFormat::from_path(&args.out)?;
    let config = Config::load(&args.config)?;
    let options = SimulateOptions {
        users: args.users,
        days: args.days,
        seed: args.seed,
        start: args.start,
        keystrokes: args.keystrokes.clone(),
    };
    let simulation = simulate::simulate(&config, &options)?;
    simulation.write(&args.out)?;
    println!("wrote {}", args.out.display());
    print!("{}", simulation.summary());
    Ok(())
}

fn rules_check(path: &Path, format: FormatArg, config: Option<&Path>) -> Result<ExitCode> {
    let diagnostics = rules::check_path(path);
    let list_errors = if diagnostics.is_empty() {
        check_list_names(path, config)?
    } else {
        Vec::new()
    };
    match format {
        FormatArg::Human => {
            if !diagnostics.is_empty() {
                eprint!("{}", rules::render_human(&diagnostics));
            }
            for message in &list_errors {
                eprintln!("{}: {message}", path.display());
            }
            if diagnostics.is_empty() && list_errors.is_empty() {
                println!("{}: ok", path.display());
            }
        }
        FormatArg::Json => {
            let mut entries: Vec<serde_json::Value> =
                serde_json::from_str(&rules::render_json(&diagnostics))?;
            for message in &list_errors {
                entries.push(serde_json::json!({
                    "file": path.display().to_string(),
                    "line": null,
                    "column": null,
                    "message": message,
                    "help": "name a list from [iplists] of the configuration",
                }));
            }
            println!("{}", serde_json::Value::Array(entries));
        }
    }
    Ok(if diagnostics.is_empty() && list_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Checks the `ip.in_list` names of a valid rules file against the IP lists of `config`, or
/// of `riskgate.toml` in the current directory when no configuration is named.
fn check_list_names(path: &Path, config: Option<&Path>) -> Result<Vec<String>> {
    let config_path = match config {
        Some(config) => config.to_path_buf(),
        None => {
            let default = PathBuf::from("riskgate.toml");
            if !default.exists() {
                return Ok(Vec::new());
            }
            default
        }
    };
    let config = Config::load(&config_path)?;
    let lists = riskgate_engine::iplists::IpLists::open(&config.iplists, &config.base_dir)?;
    let rule_set = rules::RuleSet::load(path)?;
    let unknown = riskgate_engine::engine::unknown_list_names(&rule_set, &lists.names());
    Ok(unknown
        .into_iter()
        .map(|name| {
            format!(
                "ip.in_list names {name}, which is not an IP list of `{}`",
                config_path.display()
            )
        })
        .collect())
}

fn rules_test(path: &Path, cases: &Path, config: &Path) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let file = rules::cases::CaseFile::load(cases)?;
    let runner = rules::cases::CaseRunner::new(&config, path)?;
    let report = runner.run_file(&file)?;
    print!("{report}");
    Ok(if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn rules_explain(id: &str, service: &ServiceArgs, json: bool) -> Result<ExitCode> {
    let config = load_config(service)?;
    let stored = rules::explain::read_decision(&config.data_dir(), id, config.keystroke)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stored)?);
    } else {
        print!("{}", rules::explain::render(&stored)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn rules_schema() -> Result<ExitCode> {
    let schema = rules::schema_json::rules_schema();
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "train")]
fn train_format(layout: LayoutArg) -> riskgate_models::train::Format {
    match layout {
        LayoutArg::Riskgate => riskgate_models::train::Format::Riskgate,
        LayoutArg::Rba => riskgate_models::train::Format::Rba,
    }
}

#[cfg(feature = "train")]
fn run_evaluate(args: &EvaluateArgs) -> Result<()> {
    let evaluation = evaluate::run(&evaluate::EvaluateArgs {
        model: &args.model,
        input: &args.input,
        format: train_format(args.format),
        config: &args.config,
        plots: args.plots.as_deref(),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation.report)?);
    } else {
        print!("{}", evaluation.report);
    }
    // Standard output stays pure JSON with --json, so the plot paths go to standard error.
    for path in &evaluation.plots {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn keystroke_evaluate(file: &Path, detector: &str, json: bool) -> Result<()> {
    let detectors = if detector == "all" {
        Detector::ALL.to_vec()
    } else {
        vec![detector.parse::<Detector>()?]
    };
    let report = keystroke::evaluate_file(file, &detectors)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

/// Joins an error and its causes with `: `, leaving out a cause whose text the message
/// already contains, since many library errors repeat their source in their own text.
fn error_chain(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.command {
        Command::Serve { .. } => "info",
        _ => "warn",
    };
    init_logging(level);
    let result = match &cli.command {
        Command::Serve { service, listen } => serve(service, *listen).map(|()| ExitCode::SUCCESS),
        Command::Score { service, request } => score(service, request).map(|()| ExitCode::SUCCESS),
        Command::Replay(args) => run_replay(args).map(|()| ExitCode::SUCCESS),
        Command::Simulate(args) => run_simulate(args).map(|()| ExitCode::SUCCESS),
        #[cfg(feature = "train")]
        Command::Train {
            input,
            format,
            out,
            config,
        } => train::run(&train::TrainArgs {
            input,
            format: train_format(*format),
            out,
            config,
        })
        .map(|path| {
            println!("wrote {}", path.display());
            ExitCode::SUCCESS
        }),
        #[cfg(feature = "train")]
        Command::Evaluate(args) => run_evaluate(args).map(|()| ExitCode::SUCCESS),
        Command::Rules { command } => match command {
            RulesCommand::Check {
                path,
                format,
                config,
            } => rules_check(path, *format, config.as_deref()),
            RulesCommand::Variables => {
                print!("{}", rules::variables_reference());
                Ok(ExitCode::SUCCESS)
            }
            RulesCommand::Test {
                path,
                cases,
                config,
            } => rules_test(path, cases, config),
            RulesCommand::Explain { id, service, json } => rules_explain(id, service, *json),
            RulesCommand::Schema => rules_schema(),
        },
        Command::Keystroke { command } => match command {
            KeystrokeCommand::Evaluate {
                file,
                detector,
                json,
            } => keystroke_evaluate(file, detector, *json).map(|()| ExitCode::SUCCESS),
        },
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}
