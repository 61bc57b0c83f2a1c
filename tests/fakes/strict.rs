//! The strict fake CLI: `strict_fake <contract-dir> <tool> <argv…>` checks one command line
//! against the tool's contract (`<contract-dir>/<tool>.yaml`) and exits 0 when the real tool
//! would accept it. Otherwise it prints the real tool's kind of message (the contract's
//! `messages`) on stderr and exits with the contract's code: an unknown subcommand or flag, a
//! flag without its value, a malformed value (a region, an image URI, a suffix), a missing
//! required flag or argument, two flags that exclude each other, or a broken cross-flag rule
//! (a name too long).
//!
//! Every fake CLI of the recipe tests runs it before printing its canned output, so a recipe
//! that builds a command line the real tool would refuse fails its test. It is a test helper
//! (an example target, so `cargo test` and `cargo nextest` build it), std + serde_yaml + regex
//! only, and starts in about a millisecond. The contract format is
//! `tests/fakes/contracts/README.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use serde_yaml::{Mapping, Value};

/// Why a command line is refused: the message kind (a key of `messages`) and its fields.
struct Refused {
    kind: &'static str,
    fields: Vec<(&'static str, String)>,
}

fn refuse(kind: &'static str, fields: &[(&'static str, &str)]) -> Refused {
    Refused { kind, fields: fields.iter().map(|(k, v)| (*k, (*v).to_string())).collect() }
}

const DEFAULTS: &[(&str, &str)] = &[
    ("unknown_command", "{tool}: unknown command `{word}`"),
    ("unknown_flag", "{command}: unknown flag: {flag}"),
    ("missing_value", "{command}: flag needs an argument: {flag}"),
    ("bad_value", "{command}: invalid value `{value}` for {flag}: expected {expected}"),
    ("bad_choice", "{command}: invalid value `{value}` for {flag} (choose from {choices})"),
    ("missing_flag", "{command}: required flag {flag} not set"),
    ("missing_arg", "{command}: missing argument {arg}"),
    ("extra_arg", "{command}: unexpected argument `{arg}`"),
    ("exclusive", "{command}: {flag} cannot be used with {other}"),
    ("rule", "{command}: {detail}"),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, tool, argv @ ..] = args.as_slice() else {
        eprintln!("usage: strict_fake <contract-dir> <tool> [argv...]");
        return ExitCode::from(64);
    };
    let path = std::path::Path::new(dir).join(format!("{tool}.yaml"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("strict fake: no contract for `{tool}` ({}: {e})", path.display());
            return ExitCode::from(98);
        }
    };
    let mut contract: Value = match serde_yaml::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("strict fake: {} is not valid YAML: {e}", path.display());
            return ExitCode::from(98);
        }
    };
    if let Err(e) = contract.apply_merge() {
        eprintln!("strict fake: {}: {e}", path.display());
        return ExitCode::from(98);
    }
    let contract = match Contract::new(&contract) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strict fake: {}: {e}", path.display());
            return ExitCode::from(98);
        }
    };
    let mut key = String::new();
    let result = contract.find_command(argv).and_then(|(k, rest)| {
        key = k.clone();
        let cmd = contract.command(&k).map_err(|e| refuse("rule", &[("detail", &e)]))?;
        let (seen, positionals) = cmd.parse(&rest)?;
        cmd.check_positionals(&positionals)?;
        cmd.check_rules(&seen)
    });
    let Err(r) = result else { return ExitCode::SUCCESS };
    let mut fields: BTreeMap<&str, String> = BTreeMap::new();
    fields.insert("tool", tool.clone());
    fields.insert("command", format!("{tool} {key}").trim().to_string());
    fields.insert(
        "dotted",
        std::iter::once(tool.as_str()).chain(key.split_whitespace()).collect::<Vec<_>>().join("."),
    );
    for (k, v) in &r.fields {
        fields.insert(k, v.clone());
    }
    if let Some(known) = fields.get("known").cloned() {
        let dotted =
            std::iter::once(tool.as_str()).chain(known.split_whitespace()).collect::<Vec<_>>();
        fields.insert("dotted", dotted.join("."));
    }
    let template = contract
        .str_at(&["messages", r.kind])
        .or_else(|| DEFAULTS.iter().find(|(k, _)| *k == r.kind).map(|(_, t)| (*t).to_string()))
        .unwrap_or_default();
    let mut message = template;
    for (k, v) in &fields {
        message = message.replace(&format!("{{{k}}}"), v);
    }
    eprintln!("{}", message.trim_end());
    let code = contract
        .root
        .get("exits")
        .and_then(|e| e.get(r.kind))
        .or_else(|| contract.root.get("exit"))
        .and_then(Value::as_u64)
        .unwrap_or(2);
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

struct Contract<'a> {
    root: &'a Value,
    commands: &'a Mapping,
}

impl<'a> Contract<'a> {
    fn new(root: &'a Value) -> Result<Self, String> {
        let commands = root.get("commands").and_then(Value::as_mapping).ok_or("no `commands`")?;
        Ok(Self { root, commands })
    }

    fn str_at(&self, path: &[&str]) -> Option<String> {
        let mut v = self.root;
        for p in path {
            v = v.get(*p)?;
        }
        v.as_str().map(str::to_string)
    }

    fn keys(&self) -> Vec<String> {
        self.commands.keys().filter_map(|k| k.as_str().map(str::to_string)).collect()
    }

    fn global_flag(&self, name: &str) -> Option<&'a Value> {
        self.root.get("global")?.get("flags")?.get(name)
    }

    /// The longest command key matching the leading words of argv (global flags may come
    /// first, and a key may be literal tokens such as `-m build`); returns the key and argv
    /// without the command words.
    fn find_command(&self, argv: &[String]) -> Result<(String, Vec<String>), Refused> {
        let mut keys = self.keys();
        keys.sort_by_key(|k| std::cmp::Reverse(k.split_whitespace().count()));
        for key in &keys {
            let words: Vec<&str> = key.split_whitespace().collect();
            if !words.is_empty()
                && argv.len() >= words.len()
                && argv.iter().zip(&words).all(|(a, w)| a == w)
            {
                return Ok((key.clone(), argv[words.len()..].to_vec()));
            }
        }
        let mut at = Vec::new();
        let mut i = 0;
        while i < argv.len() && at.len() < 4 {
            let tok = &argv[i];
            if tok.starts_with('-') && tok.len() > 1 {
                let name = tok.split('=').next().unwrap_or(tok);
                let Some(spec) = self.global_flag(name) else { break };
                if !tok.contains('=') && Spec::takes_value_raw(spec) {
                    i += 1;
                }
                i += 1;
                continue;
            }
            at.push(i);
            i += 1;
        }
        let words: Vec<&str> = at.iter().map(|&j| argv[j].as_str()).collect();
        for n in (1..=words.len()).rev() {
            let key = words[..n].join(" ");
            if keys.contains(&key) {
                let drop: BTreeSet<usize> = at[..n].iter().copied().collect();
                let rest = argv
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| !drop.contains(j))
                    .map(|(_, t)| t.clone())
                    .collect();
                return Ok((key, rest));
            }
        }
        if keys.iter().any(String::is_empty) {
            return Ok((String::new(), argv.to_vec()));
        }
        let mut known = 0;
        while known < words.len()
            && keys.iter().any(|k| {
                let kw: Vec<&str> = k.split_whitespace().collect();
                kw.len() > known && kw[..=known] == words[..=known]
            })
        {
            known += 1;
        }
        let word = words.get(known).copied().or(argv.first().map(String::as_str)).unwrap_or("");
        Err(refuse("unknown_command", &[("word", word), ("known", &words[..known].join(" "))]))
    }

    fn command(&self, key: &str) -> Result<Command<'a>, String> {
        let table = self.commands.get(key).ok_or_else(|| format!("no command `{key}`"))?;
        let shapes = self.root.get("shapes").and_then(Value::as_mapping);
        let mut flags = BTreeMap::new();
        let mut aliases = BTreeMap::new();
        let mut prefixes = Vec::new();
        for scope in [self.root.get("global"), Some(table)].into_iter().flatten() {
            if let Some(m) = scope.get("flags").and_then(Value::as_mapping) {
                for (k, v) in m {
                    let name = k.as_str().ok_or("a flag name is not a string")?;
                    flags.insert(name.to_string(), Spec::new(v)?);
                }
            }
            if let Some(m) = scope.get("aliases").and_then(Value::as_mapping) {
                for (k, v) in m {
                    if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
                        aliases.insert(k.to_string(), v.to_string());
                    }
                }
            }
            if let Some(s) = scope.get("prefixes").and_then(Value::as_sequence) {
                prefixes.extend(s.iter().filter_map(Value::as_str).map(str::to_string));
            }
        }
        Ok(Command { table, shapes, flags, aliases, prefixes })
    }
}

/// A flag's value: none (`switch`), an optional `=true|false` (`bool-switch`), or one value
/// (or with `+`/`*` several, up to the next flag) of a pattern or from a list of choices.
struct Spec {
    kind: Kind,
    nargs: Option<char>,
    choices: Option<Vec<String>>,
    /// The shape name, compiled only when a value is checked (most flags of a command are
    /// never given).
    shape: Option<String>,
}

#[derive(PartialEq)]
enum Kind {
    Switch,
    BoolSwitch,
    Value,
}

impl Spec {
    fn takes_value_raw(v: &Value) -> bool {
        !matches!(v.as_str(), Some("switch" | "bool-switch"))
    }

    fn new(v: &Value) -> Result<Self, String> {
        if let Some(seq) = v.as_sequence() {
            let choices = seq
                .iter()
                .map(|c| match c {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other).unwrap_or_default().trim().to_string(),
                })
                .collect();
            return Ok(Self {
                kind: Kind::Value,
                nargs: None,
                choices: Some(choices),
                shape: None,
            });
        }
        let raw = v.as_str().ok_or("a flag's spec must be a string or a list")?;
        let (nargs, raw) = match raw.chars().next() {
            Some(c @ ('+' | '*')) => (Some(c), &raw[1..]),
            _ => (None, raw),
        };
        let kind = match raw {
            "switch" => Kind::Switch,
            "bool-switch" => Kind::BoolSwitch,
            _ => Kind::Value,
        };
        let shape = match raw {
            "switch" | "bool-switch" | "value" => None,
            _ => Some(raw.to_string()),
        };
        Ok(Self { kind, nargs, choices: None, shape })
    }

    fn check(&self, flag: &str, value: &str, shapes: Option<&Mapping>) -> Result<(), Refused> {
        if let Some(c) = &self.choices
            && !c.iter().any(|x| x == value)
        {
            let list = c.iter().map(|x| format!("'{x}'")).collect::<Vec<_>>().join(", ");
            return Err(refuse(
                "bad_choice",
                &[("flag", flag), ("value", value), ("choices", &list)],
            ));
        }
        if let Some(name) = &self.shape {
            let (re, means) = shape(name, shapes).map_err(|e| refuse("rule", &[("detail", &e)]))?;
            if !re.is_match(value) {
                return Err(refuse(
                    "bad_value",
                    &[("flag", flag), ("value", value), ("expected", &means)],
                ));
            }
        }
        Ok(())
    }
}

/// A named shape (`int`, `float`, `bool`, `text`, or one of the contract's `shapes`) as an
/// anchored regex and what it means.
fn shape(name: &str, shapes: Option<&Mapping>) -> Result<(regex::Regex, String), String> {
    let (re, means) = match name {
        "int" => ("-?[0-9]+".to_string(), "an integer".to_string()),
        "float" => (r"-?[0-9]+(\.[0-9]+)?".to_string(), "a number".to_string()),
        "bool" => ("true|false".to_string(), "`true` or `false`".to_string()),
        "text" => (".+".to_string(), "a non-empty value".to_string()),
        _ => {
            let s = shapes
                .and_then(|m| m.get(name))
                .ok_or_else(|| format!("unknown shape `{name}`"))?;
            match s {
                Value::String(re) => (re.clone(), name.to_string()),
                other => (
                    other
                        .get("re")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("shape `{name}` has no `re`"))?
                        .to_string(),
                    other.get("means").and_then(Value::as_str).unwrap_or(name).to_string(),
                ),
            }
        }
    };
    let re =
        regex::Regex::new(&format!("^(?s:{re})$")).map_err(|e| format!("shape `{name}`: {e}"))?;
    Ok((re, means))
}

struct Command<'a> {
    table: &'a Value,
    shapes: Option<&'a Mapping>,
    flags: BTreeMap<String, Spec>,
    aliases: BTreeMap<String, String>,
    prefixes: Vec<String>,
}

type Seen = BTreeMap<String, Vec<String>>;

impl Command<'_> {
    fn strings(&self, key: &str) -> Vec<String> {
        self.table
            .get(key)
            .and_then(Value::as_sequence)
            .map(|s| s.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    }

    fn parse(&self, argv: &[String]) -> Result<(Seen, Vec<String>), Refused> {
        let mut seen = Seen::new();
        let mut positionals = Vec::new();
        let is_flag = |t: &str| t.starts_with('-') && t.len() > 1 && t.parse::<f64>().is_err();
        let mut i = 0;
        while i < argv.len() {
            let tok = &argv[i];
            i += 1;
            if tok == "--" {
                positionals.extend(argv[i..].iter().cloned());
                break;
            }
            if !is_flag(tok) {
                positionals.push(tok.clone());
                continue;
            }
            if self.prefixes.iter().any(|p| tok.starts_with(p.as_str())) {
                continue;
            }
            let (name, inline) = match tok.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (tok.clone(), None),
            };
            let name = self.aliases.get(&name).cloned().unwrap_or(name);
            let Some(spec) = self.flags.get(&name) else {
                return Err(refuse(
                    "unknown_flag",
                    &[("flag", tok.split('=').next().unwrap_or(tok))],
                ));
            };
            let mut values = Vec::new();
            match spec.kind {
                Kind::Switch => {
                    if let Some(v) = inline {
                        return Err(refuse(
                            "bad_value",
                            &[
                                ("flag", &name),
                                ("value", &v),
                                ("expected", "no value (it is a switch)"),
                            ],
                        ));
                    }
                }
                Kind::BoolSwitch => {
                    if let Some(v) = inline
                        && v != "true"
                        && v != "false"
                    {
                        return Err(refuse(
                            "bad_value",
                            &[("flag", &name), ("value", &v), ("expected", "`true` or `false`")],
                        ));
                    }
                }
                Kind::Value if spec.nargs.is_some() => {
                    values.extend(inline);
                    while i < argv.len() && !is_flag(&argv[i]) {
                        values.push(argv[i].clone());
                        i += 1;
                    }
                    if spec.nargs == Some('+') && values.is_empty() {
                        return Err(refuse("missing_value", &[("flag", &name)]));
                    }
                }
                Kind::Value => match inline {
                    Some(v) => values.push(v),
                    None if i < argv.len() => {
                        values.push(argv[i].clone());
                        i += 1;
                    }
                    None => return Err(refuse("missing_value", &[("flag", &name)])),
                },
            }
            for v in &values {
                spec.check(&name, v, self.shapes)?;
            }
            let entry = seen.entry(name).or_default();
            if values.is_empty() {
                entry.push(String::new());
            }
            entry.extend(values);
        }
        Ok((seen, positionals))
    }

    fn check_positionals(&self, positionals: &[String]) -> Result<(), Refused> {
        let mut i = 0;
        for spec in self.strings("args") {
            let (body, q) = match spec.chars().last() {
                Some(c @ ('?' | '*' | '+')) => (&spec[..spec.len() - 1], Some(c)),
                _ => (spec.as_str(), None),
            };
            let (name, shape_name) = body.split_once(':').unwrap_or((body, ""));
            let take: &[String] = match q {
                None | Some('?') => match positionals.get(i) {
                    Some(_) => &positionals[i..=i],
                    None if q.is_none() => return Err(refuse("missing_arg", &[("arg", name)])),
                    None => &[],
                },
                _ => {
                    if q == Some('+') && positionals.len() <= i {
                        return Err(refuse("missing_arg", &[("arg", name)]));
                    }
                    &positionals[i..]
                }
            };
            i += take.len();
            if !shape_name.is_empty() {
                let (re, means) = shape(shape_name, self.shapes)
                    .map_err(|e| refuse("rule", &[("detail", &e)]))?;
                for v in take {
                    if !re.is_match(v) {
                        return Err(refuse(
                            "bad_value",
                            &[("flag", name), ("value", v), ("expected", &means)],
                        ));
                    }
                }
            }
        }
        match positionals.get(i) {
            Some(extra) => Err(refuse("extra_arg", &[("arg", extra)])),
            None => Ok(()),
        }
    }

    fn check_rules(&self, seen: &Seen) -> Result<(), Refused> {
        for flag in self.strings("required") {
            let options: Vec<&str> = flag.split('|').collect();
            if !options.iter().any(|o| seen.contains_key(*o)) {
                return Err(refuse("missing_flag", &[("flag", options[0])]));
            }
        }
        let Some(rules) = self.table.get("rules").and_then(Value::as_sequence) else {
            return Ok(());
        };
        let list = |r: &Value, k: &str| -> Vec<String> {
            r.get(k)
                .and_then(Value::as_sequence)
                .map(|s| s.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        for rule in rules {
            let exclusive = list(rule, "exclusive");
            let present: Vec<&String> =
                exclusive.iter().filter(|f| seen.contains_key(*f)).collect();
            if present.len() > 1 {
                return Err(refuse("exclusive", &[("flag", present[1]), ("other", present[0])]));
            }
            if let Some(max) = rule.get("max_len").and_then(Value::as_u64) {
                let of = list(rule, "of");
                let parts: Vec<&str> = of
                    .iter()
                    .filter_map(|f| seen.get(f).and_then(|v| v.last()).map(String::as_str))
                    .collect();
                if parts.len() == of.len() {
                    let plus = rule.get("plus").and_then(Value::as_u64).unwrap_or(0);
                    let total = parts.iter().map(|p| p.chars().count() as u64).sum::<u64>() + plus;
                    if total > max {
                        let mut detail = rule
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("too long")
                            .to_string();
                        for (n, p) in parts.iter().enumerate() {
                            detail = detail.replace(&format!("{{{n}}}"), p);
                        }
                        detail = detail.replace("{total}", &total.to_string());
                        return Err(refuse("rule", &[("detail", &detail)]));
                    }
                }
            }
            if let Some(flag) = rule.get("requires").and_then(Value::as_str) {
                let with = list(rule, "with");
                if seen.contains_key(flag) && !with.iter().any(|w| seen.contains_key(w)) {
                    return Err(refuse(
                        "missing_flag",
                        &[("flag", with.first().map_or("", String::as_str))],
                    ));
                }
            }
        }
        Ok(())
    }
}
