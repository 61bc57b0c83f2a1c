//! Pointing at problems in files: [`Diagnostic`] (one problem in a project file — `pilum.yaml`,
//! a recipe, a pools file — with path, line, column, `help:`, "did you mean" and the source line
//! with a caret), and [`Problem`], the data of every problem the configuration loaders report,
//! with all their wording in one `Display` and one [`Problem::help`].
//!
//! One layout for everything (see [`Diagnostic`]'s `Display`):
//!
//! ```text
//! service `web` depends on unknown service `apii`
//!   --> services/web/pilum.yaml:3:13
//!    |
//!  3 | depends_on: [apii]
//!    |              ^
//! help: use the `name:` of another service in this project (`pilum list` shows them)
//! did you mean `api`?
//! ```
//!
//! "Did you mean" is found by [`closest`] (optimal string alignment distance from `strsim`) and
//! spelled by [`did_you_mean`]; positions in YAML come from [`crate::yaml::position`] (wrapped
//! here as [`key_position`] for key-only paths), positions in recipe text from [`find_position`].
//! Loading and checking collect every diagnostic before failing, so `pilum check` reports all
//! problems at once.

use std::fmt;
use std::path::PathBuf;

/// What went wrong, as data. Every message and every default `help:` of the configuration
/// loaders is written here, in [`fmt::Display`] and [`Problem::help`]. Variants are grouped by
/// loader: `pilum.yaml`, the graph and selection, `--only-changed`, recipe declarations, the
/// recipe catalogue, a service's recipe fields, the project settings, the pools file and its
/// strategies. Text that comes from elsewhere (serde, Rhai, a script) is carried by a variant
/// that says what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    Unreadable {
        path: String,
        error: String,
    },
    TooDeep {
        limit: usize,
    },
    Syntax(crate::yaml::SyntaxError),
    /// Any other error `serde_yaml` reports (duplicate keys, bad escapes, …).
    Yaml(String),
    NotAMapping {
        file: &'static str,
    },
    NameMissing,
    NameEmpty,
    /// A field that must be a string (`what` is `field `name``, `` `environments.prod` ``…).
    NotAString {
        field: String,
    },
    NotAStringList {
        field: String,
    },
    NotAMappingField {
        field: String,
        example: &'static str,
    },
    /// A name that ends up in paths failed [`crate::names::check`]. `value` is what the user
    /// wrote (a `${VAR}` template rather than its value).
    BadName {
        what: &'static str,
        value: String,
        error: crate::names::NameError,
    },
    BadEnvName {
        key: String,
        why: EnvNameError,
    },
    EnvValue {
        key: String,
    },
    BadSecretName {
        value: String,
        why: EnvNameError,
    },
    UnsetVariable {
        var: String,
    },
    UnknownKey {
        key: String,
        file: String,
        section: String,
        recipe: String,
    },
    /// A key in the project root marker file (`file`), which holds no settings yet.
    UnknownProjectKey {
        key: String,
        file: &'static str,
    },
    DuplicateService {
        name: String,
        first: String,
        second: String,
    },
    UnknownDependency {
        service: String,
        dependency: String,
    },
    SelfDependency {
        service: String,
    },
    Cycle {
        names: Vec<String>,
    },
    /// A named service's dependencies that the selection leaves out (a note).
    LeftOut {
        service: String,
        missing: Vec<String>,
    },
    BadPattern {
        pattern: String,
        error: String,
    },
    NoServiceMatches {
        pattern: String,
    },
    UnknownService {
        name: String,
    },
    /// `--only-changed` outside a git work tree.
    NotARepo {
        dir: String,
    },
    NoBase,
    NoCommit,
    /// A base commit git does not know; `source` says where it came from.
    UnknownBase {
        reference: String,
        source: String,
        shallow: bool,
    },
    BaseIsHead {
        reference: String,
        source: String,
    },
    Git {
        args: String,
        stderr: String,
    },

    // -- recipe declarations (what `recipe()` and `plan(svc)` return)
    DeclarationMissing {
        key: String,
    },
    DeclarationNotString {
        key: String,
        ty: String,
    },
    /// `fields` or `steps` is not an array.
    DeclarationNotList {
        key: &'static str,
        ty: String,
    },
    /// An entry of `fields` or `steps` (`what`) is not a map.
    DeclarationItemNotMap {
        what: &'static str,
        ty: String,
    },
    UnknownFieldType {
        field: String,
        ty: String,
    },
    DefaultType {
        field: String,
        default: String,
        ty: &'static str,
    },
    DuplicateStep {
        step: String,
    },
    StepTimeout {
        step: String,
        error: crate::duration::DurationError,
    },
    StepRetries {
        step: String,
        value: String,
    },
    StepDir {
        step: String,
        value: String,
    },

    // -- the recipe catalogue
    /// A recipe file or directory (`what`) that cannot be read.
    UnreadableRecipe {
        what: &'static str,
        path: String,
        error: String,
    },
    RecipeDoesNotCompile {
        recipe: String,
        error: String,
    },
    NoRecipeFunction {
        recipe: String,
    },
    RecipeNotAMap {
        recipe: String,
        ty: String,
    },
    RecipeNameMismatch {
        file: String,
        declared: String,
    },
    ReservedStepFunction {
        step: String,
        run: String,
    },
    MissingStepFunction {
        step: String,
        run: String,
    },
    /// `recipe()`, `plan()` or `check_fields()` (`func`) threw; `error` is the script error's
    /// first line.
    DeclarationFailed {
        recipe: String,
        func: String,
        error: String,
    },

    // -- a service's recipe (`commands::pipeline`, `recipe::validate`)
    /// The catalogue found no single recipe for the service; `why` is the catalogue's reason.
    UnresolvedRecipe {
        service: String,
        why: String,
    },
    /// The recipe's section (`section`) of `pilum.yaml` is not a mapping.
    SectionNotAMapping {
        section: String,
        recipe: String,
    },
    /// A recipe field (`field` is `section.name`) of the wrong type.
    FieldType {
        field: String,
        ty: &'static str,
        got: String,
    },
    FieldNotAllowed {
        field: String,
        value: String,
    },
    MissingField {
        field: String,
        recipe: String,
    },
    UnknownField {
        field: String,
        recipe: String,
    },
    UndefinedStepFunction {
        step: String,
        service: String,
        run: String,
    },
    PerRegionWithoutRegions {
        step: String,
        recipe: String,
        service: String,
    },
    CheckFieldsNotAnArray {
        recipe: String,
        ty: String,
    },
    /// A problem `fn check_fields(fields)` returned: `message` is the recipe's own wording.
    FieldRule {
        field: String,
        message: String,
    },
    /// A `secrets:` entry of the service that is not set.
    SecretNotSet {
        name: String,
        service: String,
    },
    /// A `secret: true` recipe field (`field` is `section.name`) naming a variable not set.
    RecipeSecretNotSet {
        var: String,
        service: String,
        field: String,
        recipe: String,
    },
    /// `--env` names an environment no selected service defines (a warning).
    UnusedEnvironment {
        env: String,
    },
    /// A note from finding what `--only-changed` compares with (a warning, its own wording).
    ChangeNote {
        note: String,
    },

    // -- the project settings (`pilum-project.yaml`)
    /// serde refused the settings file; `error` is serde's message without its position.
    BadSettings {
        file: &'static str,
        error: String,
        keys: &'static [&'static str],
    },
    /// A `notify:` entry's problem; `error` is the notifier configuration's own wording (this
    /// module sits below `notify`, so it cannot hold its type).
    NotifyEntry {
        error: String,
    },
    /// A notifier script that does not compile; `error` is the notifier loader's report.
    NotifierScript {
        error: String,
    },

    // -- `pilum scale`: where the rules come from, the pools file, schedules, strategies
    PoolsUnreadable {
        error: String,
    },
    PoolsTooDeep {
        limit: usize,
    },
    RulesStackMissing,
    NoRuntime {
        error: String,
    },
    /// `pulumi stack output` failed; `error` is the CLI's report.
    StackOutput {
        output: String,
        error: String,
    },
    /// A stack output string that is not JSON; `error` is serde's message.
    OutputNotJson {
        error: String,
    },
    /// Rules that cannot become YAML; `error` is serde's message.
    RulesNotYaml {
        error: String,
    },
    /// A problem inside pool `pool` of the pools file.
    InPool {
        pool: String,
        problem: Box<Problem>,
    },
    /// A map of the pools file (`item`) with a key that is not text.
    PoolsKeyNotText {
        item: PoolsItem,
    },
    /// A key of `item` that its schema (`known`, from the serde derive) does not have.
    PoolsUnknownField {
        item: PoolsItem,
        field: String,
        known: &'static [&'static str],
    },
    PoolsMissingField {
        item: PoolsItem,
        field: String,
    },
    /// A value serde refused; `error` is serde's message. `field` names the pool field when
    /// it was checked alone.
    PoolsBadValue {
        item: PoolsItem,
        field: Option<String>,
        error: String,
    },
    PoolsNotAMap {
        item: PoolsItem,
    },
    NoPools,
    PoolNameNotText,
    /// Two pools (or a pool's `keys`) scale the same config key of the same stack.
    SharedKey {
        first: String,
        second: String,
        key: String,
        stack: String,
    },
    MinAboveMax {
        pool: String,
        min: i64,
        max: i64,
    },
    /// A pool's number (`min`, `max`, `max_step`) outside what the scaler accepts.
    OutOfRange {
        pool: String,
        field: &'static str,
        value: i64,
        min: i64,
        max: i64,
    },
    NoTargets {
        pool: String,
    },
    /// A target of a pool or of one of its `keys` (`item`) that is not a URN.
    NotAUrn {
        item: PoolsItem,
        target: String,
    },
    /// `stack` or `key` (`field`) is empty.
    EmptyPoolField {
        pool: String,
        field: &'static str,
    },
    NotATopicArn {
        arn: String,
    },
    /// An alarm's directive or `on_ok` (`item`) that is incomplete or out of bounds; `error` is
    /// the directive check's wording (`pool::Directive::validate`, shared with the webhooks).
    BadDirective {
        item: PoolsItem,
        error: String,
    },
    DuplicateSchedule {
        pool: String,
        schedule: String,
    },
    ScheduleOutsideBounds {
        schedule: String,
        value: i64,
        min: i64,
        max: i64,
    },
    FallbackOutsideBounds {
        value: i64,
        min: i64,
        max: i64,
    },
    /// A duration of `section` (`drift.every`, `fallback.after`) that is zero.
    NeedsPositive {
        section: &'static str,
        field: &'static str,
    },
    AdoptNeedsProperty,
    /// A `strategy` that is neither a built-in (`builtins`) nor a `.rhai` path.
    UnknownStrategy {
        strategy: String,
        builtins: Vec<&'static str>,
    },
    /// A `keys` entry that is empty or the pool's own `key`.
    KeysEntryIsOwnKey {
        key: String,
    },
    KeyNeedsOneSource {
        key: String,
    },
    KeyBounds {
        key: String,
        min: i64,
        max: i64,
        limit: i64,
    },
    /// A `keys` expression Rhai does not compile; `error` is Rhai's message.
    KeyExprDoesNotCompile {
        key: String,
        error: String,
    },
    /// A pools file `notify:` entry's problem; `error` is the notifier configuration's wording.
    ScaleNotifier {
        notifier: String,
        error: String,
    },
    /// A deploy event in a pools file `notify:` entry; `scale_events` are the ones it can use.
    ScaleNotifierDeployEvent {
        notifier: String,
        event: String,
        scale_events: Vec<&'static str>,
    },
    ScheduleNoName,
    /// A cron expression (`field` is `start` or `end`) that does not parse; `error` is the
    /// cron parser's message.
    ScheduleBadCron {
        schedule: String,
        field: &'static str,
        text: String,
        error: String,
    },
    ScheduleNeverMatches {
        schedule: String,
        field: &'static str,
        text: String,
    },
    ScheduleEmptyWindow {
        schedule: String,
    },
    UnknownTimezone {
        schedule: String,
        timezone: String,
    },
    /// A strategy file that cannot be read.
    StrategyUnreadable {
        error: String,
    },
    /// A strategy that Rhai does not compile; `error` is Rhai's message.
    StrategyDoesNotCompile {
        error: String,
    },
    StrategyNoDecide,
    /// `fn inputs()` threw; `error` is the script error.
    StrategyInputsFailed {
        error: String,
    },
    StrategyInputsNotAnArray,
    StrategyInputNotAName {
        ty: String,
    },
    StrategyUnknownInput {
        name: String,
    },
}

/// What a problem of the pools file is about: the noun its message starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PoolsItem {
    /// The whole file.
    File,
    /// A top-level key: `pools`, `sns_topics`, `notify`.
    Section(&'static str),
    Pool(String),
    Alarm {
        pool: String,
        alarm: String,
    },
    OnOk {
        pool: String,
    },
    /// The `number`th (1-based) entry of a pool's `schedules`.
    Schedule {
        pool: String,
        number: usize,
    },
    /// An entry of a pool's `keys`.
    Key {
        pool: String,
        key: String,
    },
}

impl fmt::Display for PoolsItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File => f.write_str("the pools file"),
            Self::Section(key) => write!(f, "`{key}`"),
            Self::Pool(pool) => write!(f, "pool `{pool}`"),
            Self::Alarm { pool, alarm } => write!(f, "pool `{pool}` alarm `{alarm}`"),
            Self::OnOk { pool } => write!(f, "pool `{pool}` `on_ok`"),
            Self::Schedule { pool, number } => write!(f, "pool `{pool}` schedule {number}"),
            Self::Key { pool, key } => write!(f, "pool `{pool}` key `{key}`"),
        }
    }
}

/// A complete schedule, for the pools file's `help:` lines.
const SCHEDULE_EXAMPLE: &str = "{ name: office-hours, start: \"0 8 * * 1-5\", end: \"0 18 * * 1-5\", timezone: Europe/Paris, value: 10 }";

/// `help:` for a pool field (`field`) of the wrong type.
fn pool_field_help(field: &str) -> &'static str {
    match field {
        "cooldown_up" | "cooldown_down" => {
            "use a duration such as `30s`, `5m` or `1h30m` (at most 366 days)"
        }
        "min" | "max" | "max_step" => "use a whole number",
        "targets" | "topics" => "use a list of text values",
        "alarms" => "map alarm names to `{ action: up|down|set, step: n, value: n }`",
        "on_ok" => "e.g. `{ action: down, step: 1 }`",
        "schedules" => "use a list of `{ name, start, end, timezone, value }` windows",
        "fallback" => "e.g. `fallback: { after: 10m, value: 4 }`",
        "drift" => {
            "e.g. `drift: { every: 10m, policy: report }` (policies: report, refresh, restore, adopt)"
        }
        "keys" => {
            "map config keys to `{ expr: \"value * 10\", min: 1, max: 100 }` or `{ from: name, min: 0, max: 10 }`"
        }
        "params" => "use a map of parameters",
        _ => "see docs/scaling.md for the pools file format",
    }
}

/// Why an `env:` key or a `secrets:` entry is not a usable environment variable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvNameError {
    Empty,
    HasEquals,
    HasNul,
    NotAString,
}

impl fmt::Display for EnvNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "is empty",
            Self::HasEquals => "contains `=`",
            Self::HasNul => "contains a NUL character",
            Self::NotAString => "is not a string",
        })
    }
}

/// Whether `name` can be an environment variable's name: not empty, no `=`, no NUL (what
/// `execve` and every shell need; anything else, `.` and `-` included, is accepted as POSIX
/// does for names passed through the environment).
pub(crate) fn check_env_name(name: &str) -> Result<(), EnvNameError> {
    if name.is_empty() {
        Err(EnvNameError::Empty)
    } else if name.contains('=') {
        Err(EnvNameError::HasEquals)
    } else if name.contains('\0') {
        Err(EnvNameError::HasNul)
    } else {
        Ok(())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable { path, error } => write!(f, "cannot read `{path}`: {error}"),
            Self::TooDeep { limit } => {
                write!(f, "invalid YAML: nesting deeper than {limit} levels")
            }
            Self::Syntax(e) => write!(f, "invalid YAML: {e}"),
            Self::Yaml(e) => write!(f, "invalid YAML: {e}"),
            Self::NotAMapping { file } => write!(f, "`{file}` must be a mapping of keys to values"),
            Self::NameMissing => write!(f, "missing required field `name`"),
            Self::NameEmpty => write!(f, "field `name` is empty"),
            Self::NotAString { field } => write!(f, "{field} must be a string"),
            Self::NotAStringList { field } => {
                write!(f, "field `{field}` must be a string or a list of strings")
            }
            Self::NotAMappingField { field, .. } => write!(f, "`{field}` must be a mapping"),
            Self::BadName { what, value, error } => write!(f, "{what} `{value}` {error}"),
            Self::BadEnvName { key, why } => {
                write!(f, "environment variable name `{}` in `env` {why}", key.escape_debug())
            }
            Self::EnvValue { key } => write!(f, "`env.{key}` must be a string, number or bool"),
            Self::BadSecretName { value, why } => {
                write!(f, "`secrets` entry `{}` {why}", value.escape_debug())
            }
            Self::UnsetVariable { var } => write!(f, "environment variable `{var}` is not set"),
            Self::UnknownKey { key, file, .. } => write!(f, "unknown key `{key}` in `{file}`"),
            Self::UnknownProjectKey { key, file } => write!(f, "unknown key `{key}` in `{file}`"),
            Self::DuplicateService { name, first, second } => {
                write!(f, "duplicate service name `{name}`: used by `{first}` and `{second}`")
            }
            Self::UnknownDependency { service, dependency } => {
                write!(f, "service `{service}` depends on unknown service `{dependency}`")
            }
            Self::SelfDependency { service } => write!(f, "service `{service}` depends on itself"),
            Self::Cycle { names } => write!(f, "dependency cycle: {}", names.join(" → ")),
            Self::BadPattern { pattern, error } => {
                write!(f, "invalid pattern `{pattern}`: {error}")
            }
            Self::NoServiceMatches { pattern } => write!(f, "no service matches `{pattern}`"),
            Self::UnknownService { name } => write!(f, "unknown service `{name}`"),
            Self::NotARepo { dir } => {
                write!(f, "`--only-changed` needs a git repository, and `{dir}` is not inside one")
            }
            Self::NoBase => write!(
                f,
                "cannot find a base to compare against: no `--since`, `PILUM_SINCE`, CI event, deploy history, `origin/HEAD`, `main` or `master`"
            ),
            Self::NoCommit => write!(
                f,
                "`--only-changed` needs a commit to compare with, and this repository has none yet"
            ),
            Self::UnknownBase { reference, source, shallow: true } => write!(
                f,
                "cannot compare with `{reference}` (from {source}): this is a shallow clone without that commit"
            ),
            Self::UnknownBase { reference, source, shallow: false } => write!(
                f,
                "cannot compare with `{reference}` (from {source}): no such commit or no common history with `HEAD`"
            ),
            Self::BaseIsHead { reference, source } => write!(
                f,
                "the base `{reference}` (from {source}) is `HEAD` itself, so nothing could count as changed; refusing to deploy nothing"
            ),
            Self::Git { args, stderr } => write!(f, "`git {args}` failed: {}", stderr.trim()),
            Self::DeclarationMissing { key } => write!(f, "recipe declaration is missing `{key}`"),
            Self::DeclarationNotString { key, ty } => {
                write!(f, "`{key}` must be a string, not {ty}")
            }
            Self::DeclarationNotList { key, ty } => {
                write!(f, "`{key}` must be an array of maps, not {ty}")
            }
            Self::DeclarationItemNotMap { what, ty } => {
                write!(f, "each {what} must be a map, not {ty}")
            }
            Self::UnknownFieldType { field, ty } => {
                write!(f, "field `{field}` has unknown type `{ty}`")
            }
            Self::DefaultType { field, default, ty } => {
                write!(f, "default of field `{field}` is {default}, but the field is {ty}")
            }
            Self::DuplicateStep { step } => write!(f, "two steps are named `{step}`"),
            Self::StepTimeout { step, error } => {
                use crate::duration::DurationError as E;
                // The value itself is in the snippet; `1e300` spelled out in digits is not.
                write!(f, "the timeout of step `{step}` ")?;
                match error {
                    E::TooLong { .. } => write!(f, "is longer than the maximum of 366 days"),
                    E::Negative { .. } => write!(f, "is negative"),
                    E::Zero { .. } => write!(f, "must be greater than zero"),
                    other => write!(f, "is not a duration: {other}"),
                }
            }
            Self::StepRetries { step, value } => {
                write!(f, "step `{step}` has invalid `retries` `{value}`")
            }
            Self::StepDir { step, value } => write!(f, "step `{step}` has unknown `dir` `{value}`"),
            Self::UnreadableRecipe { what, path, error } => {
                write!(f, "cannot read {what} `{path}`: {error}")
            }
            Self::RecipeDoesNotCompile { recipe, error } => {
                write!(f, "recipe `{recipe}` does not compile: {error}")
            }
            Self::NoRecipeFunction { recipe } => {
                write!(f, "recipe `{recipe}` has no `fn recipe()`")
            }
            Self::RecipeNotAMap { recipe, ty } => {
                write!(f, "`recipe()` in `{recipe}` must return a map, not {ty}")
            }
            Self::RecipeNameMismatch { file, declared } => {
                write!(f, "recipe file `{file}` declares the name `{declared}`")
            }
            Self::ReservedStepFunction { step, run } => {
                write!(f, "step `{step}` runs `{run}`, a name reserved for the `{run}` hook")
            }
            Self::MissingStepFunction { step, run } => {
                write!(f, "step `{step}` runs `{run}`, but the recipe has no `fn {run}(ctx)`")
            }
            Self::DeclarationFailed { recipe, func, error } => {
                write!(f, "recipe `{recipe}`: `{func}()` failed: {error}")
            }
            Self::UnresolvedRecipe { service, why } => write!(f, "service `{service}`: {why}"),
            Self::SectionNotAMapping { section, recipe } => {
                write!(f, "`{section}` must be a mapping of the `{recipe}` recipe's fields")
            }
            Self::FieldType { field, ty, got } => {
                let article = if ty.starts_with(['a', 'i']) { "an" } else { "a" };
                write!(f, "field `{field}` must be {article} {ty}, not {got}")
            }
            Self::FieldNotAllowed { field, value } => {
                write!(f, "field `{field}` is `{value}`, which is not allowed")
            }
            Self::MissingField { field, recipe } => {
                write!(f, "missing required field `{field}` for recipe `{recipe}`")
            }
            Self::UnknownField { field, recipe } => {
                write!(f, "unknown field `{field}` for recipe `{recipe}`")
            }
            Self::UndefinedStepFunction { step, service, run } => {
                write!(
                    f,
                    "step `{step}` of `{service}` runs `{run}`, which the recipe does not define"
                )
            }
            Self::PerRegionWithoutRegions { step, recipe, service } => write!(
                f,
                "step `{step}` of recipe `{recipe}` runs once per region, but `{service}` has no `region`/`regions`"
            ),
            Self::CheckFieldsNotAnArray { recipe, ty } => write!(
                f,
                "recipe `{recipe}`: `check_fields()` must return an array of problems, not {ty}"
            ),
            Self::FieldRule { field, message } => write!(f, "field `{field}` {message}"),
            Self::SecretNotSet { name, service } => {
                write!(f, "secret `{name}` of service `{service}` is not set")
            }
            Self::RecipeSecretNotSet { var, service, field, recipe } => write!(
                f,
                "secret `{var}` of service `{service}` is not set (`{field}` of recipe `{recipe}`)"
            ),
            Self::UnusedEnvironment { env } => {
                write!(
                    f,
                    "no selected service defines environment `{env}`; `--env {env}` changes nothing"
                )
            }
            Self::ChangeNote { note } => f.write_str(note),
            Self::BadSettings { file, error, .. } => write!(f, "invalid `{file}`: {error}"),
            Self::NotifyEntry { error } => f.write_str(error),
            Self::NotifierScript { error } => f.write_str(error),
            Self::PoolsUnreadable { error } => write!(f, "cannot read pools file: {error}"),
            Self::PoolsTooDeep { limit } => {
                write!(f, "the pools file is nested too deeply: nesting deeper than {limit} levels")
            }
            Self::RulesStackMissing => {
                write!(f, "`--rules-from-output` needs `--rules-stack <stack>`")
            }
            Self::NoRuntime { error } => write!(f, "cannot start the async runtime: {error}"),
            Self::StackOutput { output, error } => {
                write!(f, "cannot read stack output `{output}`: {error}")
            }
            Self::OutputNotJson { error } => write!(f, "output is not JSON: {error}"),
            Self::RulesNotYaml { error } => write!(f, "invalid rules: {error}"),
            Self::InPool { pool, problem } => write!(f, "pool `{pool}`: {problem}"),
            Self::PoolsKeyNotText { item } => write!(f, "{item} has a key that is not text"),
            Self::PoolsUnknownField { item, field, .. } => {
                write!(f, "{item} has an unknown field `{field}`")
            }
            Self::PoolsMissingField { item, field } => {
                write!(f, "{item} is missing field `{field}`")
            }
            Self::PoolsBadValue { item, field: Some(field), error } => {
                write!(f, "{item} field `{field}`: {error}")
            }
            Self::PoolsBadValue { item, field: None, error } => write!(f, "{item}: {error}"),
            Self::PoolsNotAMap { item } => write!(f, "{item} is not a map"),
            Self::NoPools => write!(f, "no pools defined"),
            Self::PoolNameNotText => write!(f, "a pool name is not text"),
            Self::SharedKey { first, second, key, stack } => {
                write!(f, "pools `{first}` and `{second}` both scale `{key}` on stack `{stack}`")
            }
            Self::MinAboveMax { pool, min, max } => {
                write!(f, "pool `{pool}` has `min` ({min}) greater than `max` ({max})")
            }
            Self::OutOfRange { pool, field, value, min, max } => {
                write!(f, "pool `{pool}` has `{field}` {value}, outside [{min}, {max}]")
            }
            Self::NoTargets { pool } => write!(f, "pool `{pool}` has no `targets`"),
            Self::NotAUrn { item, target } => {
                write!(f, "{item} target `{target}` is not a Pulumi URN")
            }
            Self::EmptyPoolField { pool, field } => {
                write!(f, "pool `{pool}` has an empty `{field}`")
            }
            Self::NotATopicArn { arn } => write!(f, "`{arn}` is not an SNS topic ARN"),
            Self::BadDirective { item, error } => write!(f, "{item}: {error}"),
            Self::DuplicateSchedule { pool, schedule } => {
                write!(f, "pool `{pool}` has two schedules named `{schedule}`")
            }
            Self::ScheduleOutsideBounds { schedule, value, min, max } => write!(
                f,
                "schedule `{schedule}` has `value` {value} outside the pool's bounds [{min}, {max}]"
            ),
            Self::FallbackOutsideBounds { value, min, max } => {
                write!(f, "`fallback` has `value` {value} outside the pool's bounds [{min}, {max}]")
            }
            Self::NeedsPositive { section, field } => {
                write!(f, "`{section}` needs a positive `{field}`")
            }
            Self::AdoptNeedsProperty => write!(f, "`drift` policy `adopt` needs `property`"),
            Self::UnknownStrategy { strategy, .. } => write!(f, "unknown strategy `{strategy}`"),
            Self::KeysEntryIsOwnKey { key } => {
                write!(f, "`keys` entry `{key}` is the pool's own `key` or empty")
            }
            Self::KeyNeedsOneSource { key } => {
                write!(f, "key `{key}` needs exactly one of `expr` and `from`")
            }
            Self::KeyBounds { key, min, max, .. } => {
                write!(f, "key `{key}` has bounds [{min}, {max}]")
            }
            Self::KeyExprDoesNotCompile { key, error } => {
                write!(f, "key `{key}` expression does not compile: {error}")
            }
            Self::ScaleNotifier { notifier, error } => write!(f, "notifier `{notifier}`: {error}"),
            Self::ScaleNotifierDeployEvent { notifier, event, .. } => write!(
                f,
                "notifier `{notifier}`: `{event}` is a deploy event, which the scaler never sends"
            ),
            Self::ScheduleNoName => write!(f, "a schedule has an empty `name`"),
            Self::ScheduleBadCron { schedule, field, text, error } => write!(
                f,
                "schedule `{schedule}` has an invalid `{field}` cron expression `{text}`: {error}"
            ),
            Self::ScheduleNeverMatches { schedule, field, text } => {
                write!(
                    f,
                    "schedule `{schedule}`: `{field}` expression `{text}` never matches a date"
                )
            }
            Self::ScheduleEmptyWindow { schedule } => {
                write!(f, "schedule `{schedule}` has the same `start` and `end`")
            }
            Self::UnknownTimezone { schedule, timezone } => {
                write!(f, "schedule `{schedule}` has an unknown time zone `{timezone}`")
            }
            Self::StrategyUnreadable { error } => write!(f, "cannot read strategy: {error}"),
            Self::StrategyDoesNotCompile { error } => {
                write!(f, "strategy does not compile: {error}")
            }
            Self::StrategyNoDecide => {
                write!(f, "strategy does not compile: no `fn decide(ctx)` found")
            }
            Self::StrategyInputsFailed { error } => {
                write!(f, "strategy `fn inputs()` failed: {error}")
            }
            Self::StrategyInputsNotAnArray => {
                write!(f, "strategy `fn inputs()` must return an array of input names")
            }
            Self::StrategyInputNotAName { ty } => {
                write!(f, "strategy `fn inputs()` must return names, got a `{ty}`")
            }
            Self::StrategyUnknownInput { name } => {
                write!(f, "strategy `fn inputs()` returned an unknown input `{name}`")
            }
            Self::LeftOut { service, missing } => {
                let list: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
                let (they, are, them) =
                    if missing.len() == 1 { ("it", "is", "it") } else { ("they", "are", "them") };
                write!(
                    f,
                    "`{service}` depends on {}, which {are} not selected: {they} will not run, and `{service}` will not wait for {them}",
                    list.join(", ")
                )
            }
        }
    }
}

impl Problem {
    /// The default `help:` line: what to do about it.
    pub(crate) fn help(&self) -> Option<String> {
        Some(match self {
            Self::Unreadable { .. } => return None,
            Self::TooDeep { .. } => {
                "flatten the file; deeper nesting is refused before parsing (see docs/pipeline.md)"
                    .into()
            }
            Self::Syntax(_) | Self::Yaml(_) => {
                "fix the syntax; `pilum check` validates every `pilum.yaml`".into()
            }
            Self::NotAMapping { .. } => "start with `name: <service name>`".into(),
            Self::NameMissing => "add `name: <service name>` at the top of the file".into(),
            Self::NameEmpty => "give the service a name: `name: api`".into(),
            Self::NotAString { .. } => "quote the value: `key: \"value\"`".into(),
            Self::NotAStringList { field } => format!("e.g. `{field}: [a, b]`"),
            Self::NotAMappingField { example, .. } => format!("e.g. `{example}`"),
            Self::BadName { .. } => crate::names::RULE.to_string(),
            Self::BadEnvName { .. } => {
                "environment variable names are not empty and contain no `=`: `env: { LOG_LEVEL: debug }`"
                    .into()
            }
            Self::EnvValue { key } => format!("quote it: `{key}: \"...\"`"),
            Self::BadSecretName { .. } => {
                "list the names of environment variables that hold secrets: `secrets: [API_TOKEN]`"
                    .into()
            }
            Self::UnsetVariable { var } => {
                format!("export `{var}`, or give a default: `${{{var}:-value}}`")
            }
            Self::UnknownKey { section, recipe, .. } => format!(
                "pilum reads the keys listed in docs/pipeline.md; the `{recipe}` recipe reads `{section}:`"
            ),
            Self::UnknownProjectKey { file, .. } => {
                format!(
                    "`{file}` marks the project root and holds project settings: `notify`, `notify_timeout`, `github` and `environments` (docs/ci.md)"
                )
            }
            Self::DuplicateService { .. } => "service names must be unique; rename one of them".into(),
            Self::UnknownDependency { .. } => {
                "use the `name:` of another service in this project (`pilum list` shows them)".into()
            }
            Self::SelfDependency { .. } => "remove the service's own name from `depends_on`".into(),
            Self::Cycle { .. } => "remove one of these `depends_on` entries to break the cycle".into(),
            Self::BadPattern { .. } => "globs use `*`, `?` and `[...]`; quote them in the shell".into(),
            Self::NoServiceMatches { .. } | Self::UnknownService { .. } => {
                "`pilum list` shows every service".into()
            }
            Self::NotARepo { .. } => {
                "run it in a git checkout, or select services by name instead".into()
            }
            Self::NoBase => "pass one with `--since <ref>`".into(),
            Self::NoCommit => "commit first, or select services by name".into(),
            Self::UnknownBase { shallow: true, .. } => {
                "fetch full history (`git fetch --unshallow`, or `fetch-depth: 0` in actions/checkout)"
                    .into()
            }
            Self::UnknownBase { shallow: false, .. } => {
                "pass an existing branch, tag or commit with `--since`".into()
            }
            Self::BaseIsHead { .. } => {
                "on the default branch, pass the previous deploy's commit with `--since` (or `PILUM_SINCE`), or select services by name"
                    .into()
            }
            Self::Git { .. } => return None,
            Self::DeclarationMissing { .. } => "add it to the map `recipe()` returns".into(),
            Self::DeclarationNotString { .. } => "e.g. `name: \"fly\"`".into(),
            Self::DeclarationNotList { key: "fields", .. } => {
                "e.g. `fields: [#{ name: \"app\", type: \"string\" }]`".into()
            }
            Self::DeclarationNotList { .. } => {
                "e.g. `steps: [#{ name: \"build\", tags: [\"build\"] }]`".into()
            }
            Self::DeclarationItemNotMap { what: "field", .. } => {
                "e.g. `#{ name: \"app\", type: \"string\" }`".into()
            }
            Self::DeclarationItemNotMap { .. } => "e.g. `#{ name: \"build\", tags: [\"build\"] }`".into(),
            Self::UnknownFieldType { .. } => "use string, int, float, bool, array, map or any".into(),
            Self::DefaultType { .. } => "make the default match the type".into(),
            Self::DuplicateStep { .. } => "step names must be unique within a recipe".into(),
            Self::StepTimeout { .. } => {
                "use a positive duration like \"30s\", \"10m\", \"1h30m\" (at most 366 days)".into()
            }
            Self::StepRetries { .. } => {
                "use a whole number of extra attempts, e.g. `retries: 2`".into()
            }
            Self::StepDir { .. } => "use \"service\" or \"root\"".into(),
            Self::UnreadableRecipe { .. } => return None,
            Self::RecipeDoesNotCompile { .. } => {
                "fix the script; `pilum check` reports every recipe problem".into()
            }
            Self::NoRecipeFunction { .. } => "declare the recipe: `fn recipe() { #{ name: \"...\", steps: [...] } }` (see docs/recipes.md)".into(),
            Self::RecipeNotAMap { .. } => "return a map literal `#{ name: ..., steps: [...] }`".into(),
            Self::RecipeNameMismatch { declared, .. } => format!(
                "the file name and the declared name must match: rename the file to `{declared}.rhai`"
            ),
            Self::ReservedStepFunction { run, .. } => {
                format!("name the step's function something else, e.g. `run: \"{run}_step\"`")
            }
            Self::MissingStepFunction { run, .. } => {
                format!("define `fn {run}(ctx) {{ ... }}` or set the step's `run:`")
            }
            Self::DeclarationFailed { func, .. } if func == "check_fields" => {
                "`check_fields(fields)` may only look at the fields and return problems".into()
            }
            Self::DeclarationFailed { .. } => {
                "`recipe()` and `plan()` may only build data: no commands, files or network".into()
            }
            Self::LeftOut { service, .. } => format!(
                "select `{service}...` to include what it depends on (and `...{service}` for what depends on it)"
            ),
            Self::UnresolvedRecipe { .. } => "`pilum list --recipes` shows the available recipes; add your own in `recipes/<name>.rhai`".into(),
            Self::UndefinedStepFunction { .. } => "use a function the recipe defines".into(),
            Self::PerRegionWithoutRegions { .. } => {
                "add `regions: [..]` (or `region:`) to the service".into()
            }
            Self::CheckFieldsNotAnArray { .. } => {
                "return `[]` when the fields are fine, else `[#{ field: \"repo\", message: \"…\" }]`".into()
            }
            Self::SecretNotSet { name, .. } => format!(
                "export `{name}` (in CI, from the secret store); `pilum plan` and `--dry-run` do not need it"
            ),
            Self::UnusedEnvironment { .. } => {
                "add `environments:` with that name to a service's `pilum.yaml`".into()
            }
            Self::BadSettings { keys, .. } => format!(
                "the project settings are {}; `docs/ci.md` describes them",
                keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            ),
            Self::PoolsUnreadable { .. } => {
                "pass the pools file with `--config <file>` (default `pilum-scale.yaml`)".into()
            }
            Self::PoolsTooDeep { .. } => "a pools file needs a few levels; flatten this value".into(),
            Self::RulesStackMissing => {
                "name the stack that exports the rules, e.g. `--rules-stack prod`".into()
            }
            Self::InPool { problem, .. } => return problem.help(),
            Self::PoolsKeyNotText { .. } => "keys are names".into(),
            Self::PoolsUnknownField { field, known, .. } => format!(
                "remove `{field}` or use one of: {}",
                known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            ),
            Self::PoolsMissingField { item: PoolsItem::Schedule { .. }, field } => {
                format!("add `{field}` to the schedule, e.g. `{SCHEDULE_EXAMPLE}`")
            }
            Self::PoolsMissingField { field, .. } => match field.as_str() {
                "min" | "max" => "every pool needs both `min` and `max` bounds".into(),
                "targets" => "list the URNs `pulumi up --target` should update".into(),
                f => format!("add `{f}` to the pool"),
            },
            Self::PoolsBadValue { item, field, .. } => match (item, field) {
                (PoolsItem::Pool(_), Some(f)) => pool_field_help(f).into(),
                (PoolsItem::Pool(_), None) => "every pool needs `project`, `stack`, `key`, `targets` and both `min` and `max` bounds".into(),
                (PoolsItem::Alarm { .. }, _) => "e.g. `{ action: up, step: 2 }`".into(),
                (PoolsItem::Schedule { .. }, _) => format!(
                    "add `name`, `start`, `end` and `value` to the schedule, e.g. `{SCHEDULE_EXAMPLE}`"
                ),
                (PoolsItem::Section("sns_topics"), _) => "use a list of SNS topic ARNs".into(),
                (PoolsItem::Section("notify"), _) => {
                    "a list of `{ notifier: slack, url_env: SLACK_URL, events: [scale_failed] }`"
                        .into()
                }
                _ => "see docs/scaling.md for the pools file format".into(),
            },
            Self::PoolsNotAMap { item: PoolsItem::File } => {
                "start with `pools:`; see docs/scaling.md".into()
            }
            Self::PoolsNotAMap { item: PoolsItem::Pool(_) } => {
                "give the pool its fields, e.g. `min: 1`".into()
            }
            Self::PoolsNotAMap { .. } => {
                "map pool names to pools, e.g. `pools: { workers: { … } }`".into()
            }
            Self::NoPools => "add at least one pool under `pools:`; see docs/scaling.md".into(),
            Self::PoolNameNotText => "name pools with text keys".into(),
            Self::SharedKey { .. } => {
                "each config key belongs to one pool; they would undo each other's changes".into()
            }
            Self::MinAboveMax { .. } => "swap the bounds or lower `min`".into(),
            Self::OutOfRange { field: "max_step", min, max, .. } => {
                format!("use a step between {min} and {max}, or remove it")
            }
            Self::OutOfRange { field, min, max, .. } => {
                format!("use a `{field}` between {min} and {max}")
            }
            Self::NoTargets { .. } => {
                "list the URNs `pulumi up --target` should update (see `pulumi stack --show-urns`)"
                    .into()
            }
            Self::NotAUrn { .. } => "URNs start with `urn:pulumi:`".into(),
            Self::EmptyPoolField { field: "stack", .. } => {
                "name the Pulumi stack, e.g. `prod`".into()
            }
            Self::EmptyPoolField { .. } => "name the Pulumi config key, e.g. `infra:workers`".into(),
            Self::NotATopicArn { .. } => {
                "use `arn:aws:sns:<region>:<account>:<topic>`, e.g. `arn:aws:sns:us-east-1:123456789012:scaling-alarms`"
                    .into()
            }
            Self::BadDirective { item: PoolsItem::OnOk { .. }, .. } => {
                "e.g. `{ action: down, step: 1 }`".into()
            }
            Self::BadDirective { .. } => "e.g. `{ action: up, step: 2 }`".into(),
            Self::DuplicateSchedule { .. } => {
                "give every schedule of a pool its own `name`".into()
            }
            Self::ScheduleOutsideBounds { .. } | Self::FallbackOutsideBounds { .. } => {
                "use a value between the pool's `min` and `max`".into()
            }
            Self::NeedsPositive { section: "drift", .. } => {
                "e.g. `drift: { every: 10m, policy: report }`".into()
            }
            Self::NeedsPositive { .. } => "e.g. `fallback: { after: 10m, value: 4 }`".into(),
            Self::AdoptNeedsProperty => {
                "name the output holding the scaled value, e.g. `property: desiredCapacity`".into()
            }
            Self::UnknownStrategy { builtins, .. } => format!(
                "use {} or a path to a `.rhai` file",
                builtins.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            ),
            Self::KeysEntryIsOwnKey { .. } => "list the other config keys this pool drives".into(),
            Self::KeyNeedsOneSource { .. } => {
                "e.g. `{ expr: \"value * 10 + 20\", min: 50, max: 500 }` or `{ from: queue, min: 0, max: 10 }`"
                    .into()
            }
            Self::KeyBounds { limit, .. } => format!("use 0 <= min <= max <= {limit}"),
            Self::KeyExprDoesNotCompile { .. } => {
                "an expression of `value` and `params`, e.g. `value * 10 + 20`".into()
            }
            Self::ScaleNotifier { .. } => "see docs/scaling.md (ChatOps)".into(),
            Self::ScaleNotifierDeployEvent { scale_events, .. } => {
                format!("use the scaler's events: {}", scale_events.join(", "))
            }
            Self::ScheduleNoName => {
                "name every schedule; the name shows in signals, audit and logs".into()
            }
            Self::ScheduleBadCron { .. } | Self::ScheduleNeverMatches { .. } => {
                "use 5 fields: minute hour day-of-month month day-of-week, e.g. `0 8 * * 1-5`".into()
            }
            Self::ScheduleEmptyWindow { .. } => {
                "the window would never open; give `end` a later time".into()
            }
            Self::UnknownTimezone { .. } => {
                "use an IANA time zone name such as `Europe/Paris` or `UTC`".into()
            }
            Self::StrategyUnreadable { .. } => {
                "check the pool's `strategy` path (relative to the pools file)".into()
            }
            Self::StrategyDoesNotCompile { .. } | Self::StrategyNoDecide => {
                "fix the script; the strategy must define `fn decide(ctx)`".into()
            }
            Self::StrategyInputsFailed { .. }
            | Self::StrategyInputsNotAnArray
            | Self::StrategyInputNotAName { .. }
            | Self::StrategyUnknownInput { .. } => {
                "return an array of `\"alarms\"`, `\"delta\"`, `\"count\"`, `\"schedules\"`, e.g. `fn inputs() { [\"alarms\", \"schedules\"] }`".into()
            }
            Self::NoRuntime { .. }
            | Self::StackOutput { .. }
            | Self::OutputNotJson { .. }
            | Self::RulesNotYaml { .. } => return None,
            // Helps that need what the problem does not carry (a field's description, the
            // recipe's field list) are given where the problem is found.
            Self::SectionNotAMapping { .. }
            | Self::FieldType { .. }
            | Self::FieldNotAllowed { .. }
            | Self::MissingField { .. }
            | Self::UnknownField { .. }
            | Self::FieldRule { .. }
            | Self::RecipeSecretNotSet { .. }
            | Self::ChangeNote { .. }
            | Self::NotifyEntry { .. }
            | Self::NotifierScript { .. } => return None,
        })
    }
}

/// "Did you mean …?", spelled one way everywhere.
pub(crate) fn did_you_mean(candidate: &str) -> String {
    format!("did you mean `{candidate}`?")
}

/// One located problem. Rendered (see the module doc) as the message, `--> file:line:col`, the
/// source line with a caret, `help:` and "did you mean".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diagnostic {
    /// The file, relative to the project root when it is inside it.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no single line (e.g. a cycle across files).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What went wrong, as data.
    pub problem: Problem,
    /// The problem's text (its `Display`).
    pub message: String,
    pub help: Option<String>,
    /// The "did you mean" candidate, when there is a likely one.
    pub did_you_mean: Option<String>,
    /// The offending source line, shown with a caret under `col`.
    pub source: Option<String>,
}

impl Diagnostic {
    /// A diagnostic for `problem`, with its default `help:`.
    pub(crate) fn of(file: impl Into<PathBuf>, problem: Problem) -> Self {
        Self {
            file: file.into(),
            line: 0,
            col: 0,
            message: problem.to_string(),
            help: problem.help(),
            problem,
            did_you_mean: None,
            source: None,
        }
    }

    /// Point at `line`/`col` in `text` (the file's contents), keeping the source line.
    pub(crate) fn at(mut self, text: &str, line: usize, col: usize) -> Self {
        self.line = line;
        self.col = col.max(1);
        self.source = line.checked_sub(1).and_then(|l| text.lines().nth(l)).map(str::to_string);
        self
    }

    /// The same problem, inside pool `pool` of a pools file: location, snippet and "did you
    /// mean" kept, message and help those of [`Problem::InPool`].
    pub(crate) fn in_pool(self, pool: &str) -> Self {
        let problem = Problem::InPool { pool: pool.to_string(), problem: Box::new(self.problem) };
        Self { message: problem.to_string(), help: problem.help(), problem, ..self }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Offer `candidate` as "did you mean" (nothing when `None`).
    pub(crate) fn suggest(mut self, candidate: Option<&str>) -> Self {
        self.did_you_mean = candidate.map(str::to_string);
        self
    }

    /// `file:line:col` (or just the file when there is no line).
    pub(crate) fn location(&self) -> String {
        if self.line == 0 {
            self.file.display().to_string()
        } else {
            format!("{}:{}:{}", self.file.display(), self.line, self.col)
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.file.display().to_string(),
            "line": self.line,
            "col": self.col,
            "message": self.message,
            "help": self.help,
            "did_you_mean": self.did_you_mean,
        })
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if !self.file.as_os_str().is_empty() {
            write!(f, "\n  --> {}", self.location())?;
        }
        if let Some(src) = &self.source {
            // Indented one column more than a script error's, under the `  --> ` line.
            write!(f, "\n{}", caret_block(self.line, src, self.col, " "))?;
        }
        if let Some(help) = &self.help {
            write!(f, "\nhelp: {help}")?;
        }
        if let Some(c) = &self.did_you_mean {
            write!(f, "\n{}", did_you_mean(c))?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// Several diagnostics rendered one after another, separated by blank lines.
pub(crate) fn render_all(diags: &[Diagnostic]) -> String {
    let mut s = String::new();
    for (i, d) in diags.iter().enumerate() {
        if i > 0 {
            s.push_str("\nerror: ");
        }
        s.push_str(&d.to_string());
        s.push('\n');
    }
    if diags.len() > 1 {
        s.push_str(&format!("\n{} problems found", diags.len()));
    }
    s.trim_end().to_string()
}

/// The closest candidate to `name`, if it is close enough to be a likely typo: at most one edit
/// per three characters of the longer word, and always one (so `dri` finds `dir`). Edits are
/// counted by optimal string alignment, where swapping two adjacent characters (`lcoal`,
/// `dokcer`, the commonest typo) counts one.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let len = name.chars().count();
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(name, c), c))
        .filter(|(d, c)| *d <= (len.max(c.chars().count()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Line `line` of `source` under a numbered gutter with a caret under `column` (both 1-based):
///
/// ```text
///   |
/// 2 |     let x = ;
///   |             ^
/// ```
///
/// `None` when the text has no such line.
pub(crate) fn snippet(source: &str, line: usize, column: usize) -> Option<String> {
    let text = source.lines().nth(line.checked_sub(1)?)?;
    Some(caret_block(line, text, column, ""))
}

/// The three lines of [`snippet`] for the line `text` numbered `line`, each after `indent`.
fn caret_block(line: usize, text: &str, column: usize, indent: &str) -> String {
    let num = line.to_string();
    let pad = " ".repeat(num.len());
    // Tabs stay tabs so the caret lines up under the same glyphs; past the end, spaces.
    let mut chars = text.chars();
    let lead: String =
        (1..column).map(|_| if chars.next() == Some('\t') { '\t' } else { ' ' }).collect();
    format!("{indent}{pad} |\n{indent}{num} | {text}\n{indent}{pad} | {lead}^")
}

/// The 1-based line and column of the key at `path` (e.g. `["cloud_run", "region"]`) in a YAML
/// text. Falls back to the closest parent key that exists, then `1:1`. Paths with sequence
/// indices use [`crate::yaml::position`], which this wraps.
pub(crate) fn key_position(text: &str, path: &[&str]) -> (usize, usize) {
    let segs: Vec<crate::yaml::Seg> = path.iter().map(|k| crate::yaml::Seg::Key(k)).collect();
    crate::yaml::position(text, &segs)
}

/// The 1-based line and column of the first occurrence of `needle` in `text`.
pub(crate) fn find_position(text: &str, needle: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_position_follows_nesting() {
        let text = "name: api\nregion: x\ncloud_run:\n  region: y\n  memory: 1\n";
        assert_eq!(key_position(text, &["region"]), (2, 1));
        assert_eq!(key_position(text, &["cloud_run", "region"]), (4, 3));
        assert_eq!(key_position(text, &["cloud_run", "memory"]), (5, 3));
        assert_eq!(key_position(text, &["cloud_run", "nope"]), (3, 1));
    }

    #[test]
    fn closest_finds_typos_only() {
        assert_eq!(closest("lcoal", ["local", "shell"]), Some("local"));
        assert_eq!(closest("kubernetes", ["local", "shell"]), None);
        assert_eq!(closest("dokcer", ["docker", "retry"]), Some("docker"));
        assert_eq!(closest("zzz", ["docker", "retry"]), None);
        assert_eq!(closest("dri", ["env", "dir"]), Some("dir"));
        // Two edits in a short word is a different word, not a typo.
        assert_eq!(closest("db", ["ui"]), None);
        assert_eq!(closest("cooldwon_up", ["cooldown_down", "cooldown_up"]), Some("cooldown_up"));
    }

    #[test]
    fn snippet_numbers_the_line_and_points_at_the_column() {
        let text = "a: 1\n\tb: x\n";
        assert_eq!(snippet(text, 1, 4).as_deref(), Some("  |\n1 | a: 1\n  |    ^"));
        // The tab before the column is kept, so the caret lines up in a terminal.
        assert_eq!(snippet(text, 2, 5).as_deref(), Some("  |\n2 | \tb: x\n  | \t   ^"));
        assert_eq!(snippet("x", 1, 4).as_deref(), Some("  |\n1 | x\n  |    ^"));
        assert_eq!(snippet(text, 3, 1), None);
        assert_eq!(snippet(text, 0, 1), None);
    }

    #[test]
    fn renders_snippet_with_caret() {
        let d = Diagnostic::of("a/pilum.yaml", Problem::NameMissing)
            .at("nam: x\n", 1, 1)
            .help("add `name: <service>`");
        let s = d.to_string();
        assert!(s.contains("--> a/pilum.yaml:1:1"), "{s}");
        assert!(s.contains("1 | nam: x"), "{s}");
        assert!(s.contains("help: add"), "{s}");
        assert!(s.ends_with(" 1 | nam: x\n   | ^\nhelp: add `name: <service>`"), "{s}");
    }
}
