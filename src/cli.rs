//! Command-line definitions (clap derive) and nothing else. `run` turns these into domain
//! configuration before any work starts; raw flags never reach domain code.
//!
//! Organised in sections: global flags, scripting (`run`, `api`), deploy pipeline commands,
//! scaler (`scale …`). Each section's argument structs live together.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "pilum",
    version = env!("PILUM_VERSION"),
    about = "Ship and scale services from a monorepo",
    long_about = "Ship and scale services from a monorepo.\n\nDiscover services (directories with a \
                  `pilum.yaml`), run their Rhai recipes in parallel with step barriers and \
                  dependency ordering, and scale Pulumi-managed infrastructure from alerts.",
    propagate_version = true
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

// ---------------------------------------------------------------------------------------------
// Global flags
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Args, Clone)]
pub(crate) struct GlobalArgs {
    /// Project root (default: the git top level, else the current directory)
    #[arg(short = 'C', long = "dir", global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Print only errors and a one-line summary
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Stream command output (repeat for more detail)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Machine-readable output: JSON (NDJSON for event streams) on stdout, nothing else
    #[arg(long, global = true)]
    pub json: bool,

    /// When to use colour (NO_COLOR is honoured with `auto`)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    // -- scripting ---------------------------------------------------------------------------
    /// Run a Rhai script with the pilum API
    Run(RunArgs),
    /// Print the script API reference, or write `.d.rhai` definitions
    Api(ApiArgs),

    // -- deploy pipeline ---------------------------------------------------------------------
    /// List services (and why each is selected), or recipes with `--recipes`
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Check every service against its recipe; report all problems at once
    #[command(visible_alias = "validate")]
    Check(SelectArgs),
    /// Create a `pilum.yaml` for a service (interactive on a terminal)
    Init(InitArgs),
    /// Run the build phase
    Build(ExecArgs),
    /// Run the build and push phases
    Publish(ExecArgs),
    /// Run the push phase
    Push(ExecArgs),
    /// Run every phase: build, push, deploy, then custom phases
    #[command(visible_alias = "up")]
    Deploy(ExecArgs),
    /// Print what `deploy` would run, running nothing
    #[command(name = "dry-run")]
    DryRun(ExecArgs),
    /// Print the full plan: services, why they are selected, tasks and their order
    Plan(ExecArgs),
    /// Remove local deployment output (`.pilum/deployments`) of the selected services
    Clean(SelectArgs),
    /// Print the dependency graph
    Graph(GraphArgs),
    /// The deploy records, newest first (from the state backend)
    History(HistoryArgs),
    /// List the deploy locks, or release one by force
    Locks(LocksArgs),

    // -- live services -----------------------------------------------------------------------
    /// Show what is live: each service's revision, health and URL, from its provider
    Status(StatusArgs),
    /// Stream the services' logs from their provider
    Logs(LogsArgs),
    /// Put a service's previous revision (or `--to` one) back live
    Rollback(RollbackArgs),
    /// CI integration: what pilum detects and the defaults it applies there
    #[command(subcommand)]
    Ci(CiCommand),
    /// Draw a saved run as an HTML report (its timeline), or list the saved runs
    Report(ReportArgs),
    /// Print shell completions
    #[command(after_long_help = COMPLETIONS_HELP, after_help = COMPLETIONS_HELP)]
    Completions(CompletionsArgs),

    // -- recipe catalogue --------------------------------------------------------------------
    /// Write one Markdown page per recipe, generated from its declaration
    Docs(DocsArgs),

    // -- scaler ------------------------------------------------------------------------------
    /// The Pulumi autoscaler: webhook server, config checks, status, offline simulation
    #[command(subcommand)]
    Scale(ScaleCommand),
}

// ---------------------------------------------------------------------------------------------
// Scripting: `pilum run`, `pilum api`
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The script to run
    pub script: PathBuf,

    /// Arguments passed to the script as `ARGS`
    #[arg(last = true)]
    pub args: Vec<String>,

    /// Print mutating calls (commands, writes, config changes) instead of running them
    #[arg(long)]
    pub dry_run: bool,

    /// Stop the script after this many Rhai operations (runaway loops)
    #[arg(long, value_name = "N")]
    pub max_operations: Option<u64>,

    /// Stop the script, and kill any command it runs, after this long (`90s`, `5m`, `1h`, or seconds; default 1h)
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    /// Write `.d.rhai` definition files for editor support into this directory
    #[arg(long, value_name = "DIR")]
    pub definitions: Option<PathBuf>,

    /// Print the reference as Markdown (as in `docs/api.md`)
    #[arg(long, conflicts_with = "definitions")]
    pub markdown: bool,
}

// ---------------------------------------------------------------------------------------------
// Deploy pipeline
// ---------------------------------------------------------------------------------------------

/// Which services a command works on.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct SelectArgs {
    /// Service names or globs (quote globs: 'api-*'); default: every service
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// Only services whose recipe has this provider (repeatable)
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Vec<String>,

    /// Only steps with one of these tags (comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "TAGS")]
    pub only_tags: Vec<String>,

    /// Skip steps with any of these tags (comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "TAGS")]
    pub exclude_tags: Vec<String>,

    /// Only services changed since `--since` (plus their dependents)
    #[arg(long)]
    pub only_changed: bool,

    /// Base for `--only-changed` (default: PILUM_SINCE, the CI event, the last deploy, the default branch)
    #[arg(long, value_name = "REF", requires = "only_changed")]
    pub since: Option<String>,

    /// Apply `environments.<NAME>` overrides from each pilum.yaml
    #[arg(long = "env", value_name = "NAME")]
    pub environment: Option<String>,

    /// Extra recipe directory (repeatable); overrides built-ins and `recipes/` by name
    #[arg(long, value_name = "DIR")]
    pub recipe_path: Vec<PathBuf>,
}

/// Options of the commands that run steps (`build`, `deploy`, …) and `plan`.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ExecArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// Tasks running at once (default: the number of CPUs)
    #[arg(short = 'j', long = "max-workers", value_name = "N")]
    pub max_workers: Option<usize>,

    /// Extra attempts after a failure for every step, overriding recipes (0 = no retries)
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,

    /// Delay before the first retry; doubles each attempt, with jitter
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::duration::flag)]
    pub retry_delay: std::time::Duration,

    /// Timeout for steps whose recipe declares none (e.g. 90s, 10m)
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub timeout: Option<std::time::Duration>,

    /// After a failure, keep running later phases for services it does not affect
    #[arg(long)]
    pub keep_going: bool,

    /// Version tag (default: the short git SHA, else a timestamp)
    #[arg(long, value_name = "TAG", value_parser = crate::names::flag)]
    pub tag: Option<String>,

    /// Print what would run instead of running it
    #[arg(long)]
    pub dry_run: bool,

    /// Publish (`deploy`, `publish`, `push`) from a work tree with uncommitted changes; the
    /// default tag becomes `<sha>-dirty`
    #[arg(long)]
    pub allow_dirty: bool,

    /// Write the run report to FILE, by its extension: `.html` draws a summary and the
    /// timeline of every task, `.json` is the outcome (each service's status and the URL its
    /// deploy returned). Give it twice for both
    #[arg(long, value_name = "FILE")]
    pub report: Vec<PathBuf>,

    #[command(flatten)]
    pub ci: CiArgs,

    #[command(flatten)]
    pub state: StateArgs,
}

/// The state backend, deploy locks and the build cache (`docs/state.md`).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "State")]
pub(crate) struct StateArgs {
    /// Where state lives: `file` (`.pilum/`, the default) or `redis://[user:pass@]host:port/db`
    /// (`rediss://` for TLS); else PILUM_STATE, else `state:` in `pilum-project.yaml`
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,

    #[command(flatten)]
    pub lock: LockArgs,

    /// Run every step: do not reuse cached builds or skip what is already live
    #[arg(long)]
    pub no_cache: bool,

    /// The same as `--no-cache`
    #[arg(long)]
    pub force: bool,

    /// With `--shard`: every shard sharing ID (e.g. the CI run and attempt) ends each phase
    /// before any starts the next; needs a Redis `--state`
    #[arg(long, value_name = "ID", requires = "shard", value_parser = crate::names::flag)]
    pub barrier: Option<String>,
}

/// CI integration of the commands that run steps and `plan`: shards, GitHub reporting,
/// notifications, approval (`docs/ci.md`).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "CI")]
pub(crate) struct CiArgs {
    /// Only shard I of N: whole dependency components, balanced (`2/4`)
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,

    /// `pilum plan` only: print the CI matrix of the shards (`github`: `{"include": [...]}`)
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub matrix: Option<MatrixFormat>,

    /// How many shards `--matrix` makes (default: one per dependency component, at most 8)
    #[arg(long, value_name = "N", requires = "matrix")]
    pub shards: Option<usize>,

    /// Report a GitHub commit status per service (`pilum/<service>[/<env>]`)
    #[arg(long)]
    pub github_statuses: bool,

    /// Create a GitHub deployment per service and environment
    #[arg(long)]
    pub github_deployments: bool,

    /// Mark the GitHub deployments transient (pull request previews)
    #[arg(long)]
    pub transient_environment: bool,

    /// Send no notifications, whatever `pilum-project.yaml` says
    #[arg(long)]
    pub no_notify: bool,

    /// How long the end of the run waits for notifications and GitHub updates (default 10s)
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub notify_timeout: Option<std::time::Duration>,

    /// Deploy to an environment that requires approval without asking
    #[arg(short = 'y', long)]
    pub yes: bool,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct HistoryArgs {
    /// Only these services (names or quoted globs)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// Only deploys to this environment
    #[arg(long = "env", value_name = "NAME")]
    pub environment: Option<String>,

    /// At most this many records (0: all)
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,

    /// The state backend (as for `deploy`)
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,

    /// Draw the records as an HTML timeline into FILE (per service × environment, filters)
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct LocksArgs {
    #[command(subcommand)]
    pub command: Option<LocksCommand>,

    /// The state backend (as for `deploy`)
    #[arg(long, value_name = "URL", global = true)]
    pub state: Option<String>,
}

#[derive(Debug, Subcommand, Clone)]
pub(crate) enum LocksCommand {
    /// Every held lock and its queue (the default)
    List,
    /// Take a lock from its holder (a run that is gone)
    Release {
        /// `SERVICE/ENVIRONMENT/TARGET`, as `pilum locks` lists it
        key: String,
        /// Required: the holder loses the lock and stops before its next step
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MatrixFormat {
    Github,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// List the recipes (built-in and project) instead of services
    #[arg(long)]
    pub recipes: bool,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct InitArgs {
    /// Directory of the new service (default: the current directory)
    #[arg(value_name = "DIR")]
    pub path: Option<PathBuf>,

    /// Recipe to use (default: ask on a terminal, else `local`)
    #[arg(long, value_name = "NAME")]
    pub recipe: Option<String>,

    /// Service name (default: the directory name)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Set a recipe field, or the top-level `region`/`regions` (`regions=a,b`): `--set key=value`
    /// (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Overwrite an existing pilum.yaml
    #[arg(long)]
    pub force: bool,

    /// Never prompt, even on a terminal
    #[arg(long)]
    pub no_input: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum GraphFormat {
    #[default]
    Tree,
    Dot,
    Mermaid,
    /// A picture of every service in layers, the selected ones highlighted with why
    Svg,
    /// The `svg` picture in an HTML page, with the selected services listed
    Html,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct GraphArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// Output format
    #[arg(long, value_enum, default_value_t = GraphFormat::Tree)]
    pub format: GraphFormat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CiCommand {
    /// Name the CI provider, the event, refs, run URL and actor, and the defaults applied
    Detect,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct ReportArgs {
    /// The saved run to draw (`pilum report --list` shows them; default: the latest)
    #[arg(value_name = "RUN")]
    pub run: Option<String>,

    /// Write the page to FILE instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// List the saved runs, oldest first
    #[arg(long, conflicts_with_all = ["run", "output"])]
    pub list: bool,
}

/// How to install the completion script, for `pilum completions --help`.
const COMPLETIONS_HELP: &str = "\
Install them:
  bash  pilum completions bash > ~/.local/share/bash-completion/completions/pilum
  zsh   pilum completions zsh > ~/.zfunc/_pilum
        (with `fpath+=~/.zfunc; autoload -Uz compinit; compinit` in ~/.zshrc)
  fish  pilum completions fish > ~/.config/fish/completions/pilum.fish
Open a new shell afterwards.";

#[derive(Debug, Args, Clone)]
pub(crate) struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

// ---------------------------------------------------------------------------------------------
// Live services: `pilum status`, `pilum logs`, `pilum rollback` (recipe hooks)
// ---------------------------------------------------------------------------------------------

/// Which deployed targets a hook command works on.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct TargetArgs {
    /// Service names or globs (quote globs: 'api-*'); default: every service
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// Only services whose recipe has this provider (repeatable)
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Vec<String>,

    /// Apply `environments.<NAME>` overrides from each pilum.yaml
    #[arg(long = "env", value_name = "NAME")]
    pub environment: Option<String>,

    /// Only this region of services deployed per region
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Extra recipe directory (repeatable); overrides built-ins and `recipes/` by name
    #[arg(long, value_name = "DIR")]
    pub recipe_path: Vec<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// How long each service's status may take; a provider CLI still running then is killed
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::duration::positive_flag)]
    pub timeout: std::time::Duration,

    /// Status hooks running at once
    #[arg(short = 'j', long = "max-workers", value_name = "N", default_value_t = 8)]
    pub max_workers: usize,

    /// The state backend whose deploy history fills "last deploy" and "drift" (as for `deploy`)
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct LogsArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Logs from this long ago on (e.g. 10m, 1h; default: the provider's)
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub since: Option<std::time::Duration>,

    /// Keep streaming new lines until Ctrl-C
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct RollbackArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// The revision or version to go back to (default: the previous successful deploy in
    /// history, else the provider's previous revision)
    #[arg(long, value_name = "VERSION|REVISION")]
    pub to: Option<String>,

    /// Print what would run instead of running it
    #[arg(long)]
    pub dry_run: bool,

    /// How long each rollback may take, waiting for it included
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = crate::duration::positive_flag)]
    pub timeout: std::time::Duration,

    /// The state backend: its history, its deploy locks and where the rollback is recorded
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,

    #[command(flatten)]
    pub lock: LockArgs,
}

/// How a run that changes what is live waits for its deploy locks (`deploy`, `rollback`).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "State")]
pub(crate) struct LockArgs {
    /// Wait this long for a deploy lock another run holds (in arrival order); default: refuse at once
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub lock_wait: Option<std::time::Duration>,

    /// The lease of a Redis deploy lock, renewed while the run lives (default 15s)
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub lock_ttl: Option<std::time::Duration>,
}

// ---------------------------------------------------------------------------------------------
// Recipe catalogue: `pilum docs`
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
pub(crate) struct DocsArgs {
    /// Directory for the pages (relative to the project root)
    #[arg(long, default_value = "docs/recipes", value_name = "DIR")]
    pub out: PathBuf,

    /// Compare the pages on disk with the recipes instead of writing; exit 1 when they differ
    #[arg(long)]
    pub check: bool,

    /// Document only the built-in recipes, not the project's `recipes/`
    #[arg(long)]
    pub builtin: bool,
}

// ---------------------------------------------------------------------------------------------
// Scaler: `pilum scale …`
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub(crate) enum ScaleCommand {
    /// Run the webhook server
    Serve(Box<ScaleServeArgs>),
    /// Validate a pools file and its strategy scripts
    Check(ScaleCheckArgs),
    /// Show pools: desired, applied, cooldowns, signals (from a running server or the state dir)
    Status(ScaleStatusArgs),
    /// Replay signals from a JSONL file through the strategies offline (no Pulumi calls)
    Simulate(ScaleSimulateArgs),
}

#[derive(Debug, Args, Clone)]
pub(crate) struct ScalePoolsArgs {
    /// Pools file
    #[arg(long, default_value = "pilum-scale.yaml", value_name = "FILE")]
    pub config: PathBuf,

    /// Read the pools from this Pulumi stack output instead of a file
    #[arg(long, value_name = "NAME")]
    pub rules_from_output: Option<String>,

    /// Stack holding `--rules-from-output`
    #[arg(long, value_name = "STACK", requires = "rules_from_output")]
    pub rules_stack: Option<String>,

    /// Pulumi project directory holding `--rules-from-output` (default: current directory)
    #[arg(long, value_name = "DIR", requires = "rules_from_output")]
    pub rules_project: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ScaleServeArgs {
    #[command(flatten)]
    pub pools: ScalePoolsArgs,

    /// Address to listen on (`127.0.0.1:0` picks a free port; see `--ready-file`)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,

    /// Directory for desired-state records, pending signals and the audit log
    #[arg(long, default_value = ".pilum/scale", value_name = "DIR")]
    pub state_dir: PathBuf,

    /// Write the bound address here once listening
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,

    /// Bearer token accepted on mutating routes (repeat or comma-separate for rotation)
    #[arg(
        long = "token",
        env = "PILUM_SCALE_TOKENS",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub tokens: Vec<String>,

    /// Accept requests without a token (local experiments only)
    #[arg(long)]
    pub insecure_no_auth: bool,

    /// Accept SNS messages without verifying their signature (only behind a verifying proxy)
    #[arg(long)]
    pub no_sns_verify: bool,

    /// TEST ONLY: also trust SNS certificate and subscribe URLs on http://127.0.0.1
    #[arg(long, hide = true, env = "PILUM_SCALE_SNS_TEST_TRUST_LOOPBACK")]
    pub sns_test_trust_loopback: bool,

    /// Reject SNS messages older than this
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub sns_max_age: std::time::Duration,

    /// Largest accepted request body in bytes (413 above)
    #[arg(long, default_value_t = 256 * 1024, value_name = "BYTES")]
    pub max_body: usize,

    /// Requests per second per pool (429 with `Retry-After` above; 0 disables)
    #[arg(long, default_value_t = 50.0, value_name = "N")]
    pub rate_limit: f64,

    /// Burst size of the rate limit
    #[arg(long, default_value_t = 200.0, value_name = "N")]
    pub rate_burst: f64,

    /// Signals waiting for the decision loops before requests get 503
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub queue_size: usize,

    /// Time limit for one request, body included
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub request_timeout: std::time::Duration,

    /// Time limit for a request's headers; also closes idle keep-alive connections
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub header_timeout: std::time::Duration,

    /// Connections served at once (more are closed at once)
    #[arg(long, default_value_t = 512, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_connections: u32,

    /// Dry-run previews allowed to wait per stack while one runs (more get 429)
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=1024))]
    pub preview_queue: u32,

    /// TEST ONLY: inject one fault (`decide-panic`, `reload-panic`)
    #[arg(long, hide = true, value_name = "FAULT", value_parser = ["decide-panic", "reload-panic"])]
    pub test_fault: Option<String>,

    /// How long shutdown waits for an in-flight `pulumi up` before interrupting it (SIGINT)
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub shutdown_grace: std::time::Duration,

    /// How often pools re-decide without new signals (active alarms keep acting)
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub tick: std::time::Duration,

    /// How long a decision waits for the rest of a burst
    #[arg(long, default_value = "200ms", value_name = "DURATION", value_parser = crate::duration::flag)]
    pub debounce: std::time::Duration,

    /// Give up retrying a stack lock conflict after this long
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub lock_deadline: std::time::Duration,

    /// First backoff after a failed apply (doubles, jittered)
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub retry_backoff: std::time::Duration,

    /// Largest backoff between apply retries
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub retry_max: std::time::Duration,

    /// Run `pulumi config refresh` for every stack before starting (fresh checkouts)
    #[arg(long)]
    pub refresh_config: bool,

    /// Do not watch the pools file and strategies for changes
    #[arg(long)]
    pub no_watch: bool,

    /// Serve the status page (`GET /`) without a token (read-only; the API stays protected)
    #[arg(long)]
    pub status_page_public: bool,

    /// High availability: share state through this Redis (`redis://` or `rediss://`); every
    /// replica accepts webhooks, the one holding the lease decides and applies
    #[arg(long, value_name = "URL", env = "PILUM_SCALE_HA", hide_env_values = true)]
    pub ha: Option<String>,

    /// This replica's identity in the lease (default `<host>:<pid>`)
    #[arg(long, value_name = "ID", requires = "ha")]
    pub ha_id: Option<String>,

    /// The leader lease's TTL; it is renewed at a third of it
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub ha_lease: std::time::Duration,

    /// ChatOps: how long a pool's events are gathered into one notification batch
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = crate::duration::flag)]
    pub notify_coalesce: std::time::Duration,

    /// ChatOps: at most one notification batch per pool per this long
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = crate::duration::flag)]
    pub notify_interval: std::time::Duration,

    /// Log format
    #[arg(long, value_enum, default_value_t = LogFormat::Human, value_name = "FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ScaleCheckArgs {
    #[command(flatten)]
    pub pools: ScalePoolsArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ScaleStatusArgs {
    /// A running server's base URL, e.g. `http://127.0.0.1:8080`
    #[arg(long, value_name = "URL", conflicts_with = "state_dir")]
    pub server: Option<String>,

    /// Read the records from this state directory instead
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Only this pool
    pub pool: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ScaleSimulateArgs {
    #[command(flatten)]
    pub pools: ScalePoolsArgs,

    /// JSONL file of timed signals
    #[arg(long, value_name = "FILE")]
    pub signals: PathBuf,

    /// Starting value of a pool, `pool=N` (repeatable; default: the pool's `min`)
    #[arg(long = "current", value_name = "POOL=N")]
    pub current: Vec<String>,

    /// How often pools re-decide between events
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = crate::duration::positive_flag)]
    pub tick: std::time::Duration,

    /// Keep replaying ticks until this time (default: one tick after the last event)
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::flag)]
    pub until: Option<std::time::Duration>,

    /// How long a decision waits for the rest of a burst (as `serve --debounce`)
    #[arg(long, default_value = "200ms", value_name = "DURATION", value_parser = crate::duration::flag)]
    pub debounce: std::time::Duration,

    /// Wall-clock time of `at: 0`, RFC 3339; schedules open and close on this virtual clock
    #[arg(long, value_name = "TIME", default_value = "2023-11-14T22:13:20Z")]
    pub start: String,
}
