//! Where a step of a service is written in its `pilum.yaml`, for problems that belong to the
//! step rather than to one field: a failing step, a per-region step on a service without
//! regions. The first of these that the file has: the step's own key in the recipe's section
//! (`shell.build`), its entry in the section's `steps:` list (`- name: migrate`), the section
//! itself (`build:` for `local`), the `recipe:` or `provider:` key, the first line.

use crate::diagnostic::{Diagnostic, Problem, key_position};
use crate::recipe::Recipe;
use crate::service::config::Service;

/// The 1-based line and column of step `step` of `s` (which runs `recipe`) in its `pilum.yaml`.
pub(crate) fn step(s: &Service, recipe: &Recipe, step: &str) -> (usize, usize) {
    step_in(&s.config, &s.text, recipe, step)
}

/// [`step`] from a service's configuration and the text of its file.
pub(crate) fn step_in(
    config: &serde_yaml::Mapping,
    text: &str,
    recipe: &Recipe,
    step: &str,
) -> (usize, usize) {
    let section = recipe.decl.section.as_str();
    if let Some(fields) = config.get(section).and_then(|v| v.as_mapping()) {
        if fields.contains_key(step) {
            return key_position(text, &[section, step]);
        }
        let listed = fields.get("steps").and_then(|v| v.as_sequence()).is_some_and(|list| {
            list.iter().any(|e| e.get("name").and_then(|n| n.as_str()) == Some(step))
        });
        if listed {
            let (line, _) = key_position(text, &[section, "steps"]);
            if let Some(at) = entry(text, line, step) {
                return at;
            }
        }
        return key_position(text, &[section]);
    }
    for key in ["recipe", "provider"] {
        if config.contains_key(key) {
            return key_position(text, &[key]);
        }
    }
    key_position(text, &["name"])
}

/// `problem`, about step `step` of `s`, at the step.
pub(crate) fn step_diag(s: &Service, recipe: &Recipe, name: &str, problem: Problem) -> Diagnostic {
    let (line, col) = step(s, recipe, name);
    Diagnostic::of(&s.file, problem).at(&s.text, line, col)
}

/// The `name: <step>` of a block-style list entry below the `steps:` key on line `steps_line`,
/// within that key's block.
fn entry(text: &str, steps_line: usize, step: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let base = indent(lines.get(steps_line.checked_sub(1)?)?);
    for (i, line) in lines.iter().enumerate().skip(steps_line) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // A list may sit at the key's own indentation (`steps:\n- name: …`).
        if indent(line) < base || (indent(line) == base && !trimmed.starts_with('-')) {
            break;
        }
        let body = trimmed.strip_prefix('-').map_or(trimmed, str::trim_start);
        let Some(value) = body.strip_prefix("name:") else { continue };
        let value = value.split(" #").next().unwrap_or("").trim().trim_matches(['"', '\'']);
        if value == step {
            return Some((i + 1, line.len() - body.len() + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_by_name_within_their_block() {
        let text = "shell:\n  steps:\n    - name: a\n      run: x\n    - run: y\n      name: 'b'\nother:\n  - name: c\n";
        assert_eq!(entry(text, 2, "a"), Some((3, 7)));
        assert_eq!(entry(text, 2, "b"), Some((6, 7)));
        assert_eq!(entry(text, 2, "c"), None, "outside the block");
        let flush = "steps:\n- name: a\n";
        assert_eq!(entry(flush, 1, "a"), Some((2, 3)));
    }
}
