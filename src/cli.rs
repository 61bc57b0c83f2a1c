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
    version,
    about = "Ship and scale services from a monorepo",
    long_about = "Ship and scale services from a monorepo.\n\nDiscover services (directories with a \
                  `pilum.yaml`), run their Rhai recipes in parallel with step barriers and \
                  dependency ordering, and scale Pulumi-managed infrastructure from alerts.",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

// ---------------------------------------------------------------------------------------------
// Global flags
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
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
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // -- scripting ---------------------------------------------------------------------------
    /// Run a Rhai script with the pilum API
    Run(RunArgs),
    /// Print the script API reference, or write `.d.rhai` definitions
    Api(ApiArgs),

    // -- deploy pipeline ---------------------------------------------------------------------
    // (commands added by the deploy pipeline)

    // -- scaler ------------------------------------------------------------------------------
    /// The Pulumi autoscaler: webhook server, config checks, status, offline simulation
    #[command(subcommand)]
    Scale(ScaleCommand),
}

// ---------------------------------------------------------------------------------------------
// Scripting: `pilum run`, `pilum api`
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct RunArgs {
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

    /// Stop the script, and kill any command it runs, after this long (`90s`, `5m`, `1h`, or seconds)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
}

/// `90`, `90s`, `1500ms`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid duration `{s}` (try `30s`, `5m`)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit `{unit}` (use ms, s, m or h)")),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("duration `{s}` must be positive"));
    }
    if secs > 10.0 * 365.0 * 24.0 * 3600.0 {
        return Err(format!("duration `{s}` is longer than ten years"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[derive(Debug, Args)]
pub struct ApiArgs {
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

// ---------------------------------------------------------------------------------------------
// Scaler: `pilum scale …`
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum ScaleCommand {
    /// Run the webhook server
    Serve(ScaleServeArgs),
}

#[derive(Debug, Args)]
pub struct ScaleServeArgs {
    /// Pools file
    #[arg(long, default_value = "pilum-scale.yaml")]
    pub config: PathBuf,
}
