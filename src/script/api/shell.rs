//! `shell::` — pure helpers about shell command lines (no process is run). Available to every
//! profile, declarations included: the `shell` recipe's `plan(svc)` decides with
//! [`simple_argv`] which commands run directly and which need `sh -c`.

use rhai::{Array, Dynamic, Module};

use super::func;

/// Builtins and keywords that only a shell can run (GNU make keeps these for the shell too).
const SHELL_ONLY: &[&str] = &[
    ".", ":", "alias", "bg", "break", "case", "cd", "command", "continue", "eval", "exec", "exit",
    "export", "fc", "fg", "for", "getopts", "hash", "if", "jobs", "read", "readonly", "return",
    "set", "shift", "source", "test", "times", "trap", "type", "ulimit", "umask", "unalias",
    "unset", "wait", "while",
];

/// The words of `command` when it is a simple command that needs no shell: only letters,
/// digits, spaces and `-_./=:,+@%` (so no quotes, variables, globs, redirections, pipes or
/// separators), at least one word, not starting with a shell builtin or keyword, and no
/// `NAME=value` assignment first. `None` when it needs a shell.
pub(crate) fn simple_argv(command: &str) -> Option<Vec<&str>> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == ' ' || "-_./=:,+@%".contains(c);
    if !command.chars().all(plain) {
        return None;
    }
    let words: Vec<&str> = command.split(' ').filter(|w| !w.is_empty()).collect();
    let first = *words.first()?;
    if SHELL_ONLY.contains(&first) || first.contains('=') {
        return None;
    }
    Some(words)
}

pub(crate) fn module() -> Module {
    let mut m = Module::new();
    func!(
        &mut m,
        "simple_argv",
        ["command: ?", "?"],
        "The words of `command` when it can run without a shell, else `()`. A simple command \
         has only letters, digits, spaces and `-_./=:,+@%` (no quotes, variables, globs, \
         redirections, pipes or separators), does not start with a shell builtin or keyword \
         (`cd`, `export`, `if`, …) and does not start with a `NAME=value` assignment. Anything \
         but a string is `()`.\n\n```rhai\nlet command = \"true --quiet\";\nlet argv = shell::simple_argv(command);\n\
         if argv != () { exec::run(argv); } else { exec::sh(command); }\n\
         print(shell::simple_argv(\"echo $HOME\") == ());   // true\n```",
        |command: Dynamic| -> Dynamic {
            let Ok(text) = command.into_immutable_string() else { return Dynamic::UNIT };
            match simple_argv(&text) {
                Some(words) => {
                    let argv: Array =
                        words.into_iter().map(|w| Dynamic::from(w.to_string())).collect();
                    argv.into()
                }
                None => Dynamic::UNIT,
            }
        }
    );
    m
}

#[cfg(test)]
mod tests {
    use super::simple_argv;

    #[test]
    fn plain_words_run_directly() {
        assert_eq!(simple_argv("true"), Some(vec!["true"]));
        assert_eq!(simple_argv("  make  -j4 all "), Some(vec!["make", "-j4", "all"]));
        assert_eq!(
            simple_argv("./deploy.sh --to=prod:eu,us +x @a 50%"),
            Some(vec!["./deploy.sh", "--to=prod:eu,us", "+x", "@a", "50%"])
        );
    }

    #[test]
    fn anything_a_shell_must_read_needs_the_shell() {
        for command in [
            "",
            "   ",
            "echo $HOME",
            "a && b",
            "a | b",
            "a > out",
            "echo 'x'",
            "ls *.rs",
            "cd dir",
            "export A=1",
            "A=1 make",
            "if",
            "a;b",
            "tab\there",
            "línea",
        ] {
            assert_eq!(simple_argv(command), None, "{command:?}");
        }
    }
}
