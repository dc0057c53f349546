//! The GitHub action's files, generated from [`crate::frontends::github::INPUTS`] and the output lists:
//! `action.yml` (the Docker action), `restore/action.yml` and `save/action.yml` (composites), and the
//! inputs/outputs tables in docs/github-actions.md. The `generated` test fails when a committed file differs from what
//! this module writes; `scripts/gen-actions` rewrites them (`S3CACHE_BLESS=1` on that test).

use crate::frontends::github::{INPUTS, Input, UsedBy};

/// The restore step's outputs, with their descriptions.
pub const RESTORE_OUTPUTS: &[(&str, &str)] = &[
    ("cache-hit", "`true` when the primary key matched exactly, else `false` (never empty)."),
    ("cache-primary-key", "The rendered primary key."),
    ("cache-matched-key", "The key of the entry restored (the primary key or a restore-key match); empty on a miss."),
    ("cache-size", "Size in bytes of the restored entry; 0 on a miss."),
    ("cache-scope", "The scope the entry came from."),
];

/// The save step's outputs.
pub const SAVE_OUTPUTS: &[(&str, &str)] =
    &[("cache-saved", "`true` when this step wrote an entry."), ("cache-primary-key", "The key saved under.")];

const HEADER: &str =
    "# Generated from the input list in host/src/frontends/github.rs by scripts/gen-actions; edit that list, not this file.\n";

/// Which of the three actions a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Docker,
    Restore,
    Save,
}

impl Action {
    fn takes(self, input: &Input) -> bool {
        match self {
            Action::Docker => input.used_by != UsedBy::Composites,
            Action::Restore => matches!(input.used_by, UsedBy::Restore | UsedBy::All | UsedBy::Composites),
            Action::Save => matches!(input.used_by, UsedBy::Save | UsedBy::All | UsedBy::Composites),
        }
    }

    fn doc(self, input: &Input) -> &'static str {
        match (self, input.save_doc) {
            (Action::Save, Some(doc)) => doc,
            _ => input.doc,
        }
    }
}

fn inputs_yaml(action: Action) -> String {
    let mut out = vec!["inputs:".to_owned()];
    for input in INPUTS.iter().filter(|i| action.takes(i)) {
        out.push(format!("  {}:", input.name));
        out.push(format!("    description: \"{}\"", action.doc(input)));
        match input.default {
            None => out.push("    required: true".into()),
            Some(default) => out.extend(["    required: false".to_owned(), format!("    default: '{default}'")]),
        }
    }
    out.join("\n")
}

fn outputs_yaml(outputs: &[(&str, &str)], step: Option<&str>) -> String {
    let mut out = vec!["outputs:".to_owned()];
    for (name, doc) in outputs {
        out.push(format!("  {name}:"));
        out.push(format!("    description: \"{doc}\""));
        if let Some(step) = step {
            out.push(format!("    value: ${{{{ steps.{step}.outputs.{name} }}}}"));
        }
    }
    out.join("\n")
}

fn docker_action() -> String {
    format!(
        r#"{HEADER}name: s3cache
description: "Cache dependencies and build outputs in any S3-compatible store: restore in the main step, save in the post step. Archive handling runs in a WASI sandbox. Linux runners only (a Docker container action); use s3cache/s3cache/restore and /save elsewhere."
author: s3cache
branding:
  icon: archive
  color: blue
{}
{}
runs:
  using: docker
  # Built from ./Dockerfile and published by the release workflow (docs/github-actions.md, "The Docker action's image").
  image: docker://ghcr.io/s3cache/s3cache:v0.1.0
  args: [github-action, restore]
  post-entrypoint: /usr/local/bin/s3cache-post
  # Saves after a successful job. To save even when the job failed, use s3cache/s3cache/save with
  # `if: always()` (docs/github-actions.md, "Saving when the job fails").
  post-if: success()
"#,
        inputs_yaml(Action::Docker),
        outputs_yaml(RESTORE_OUTPUTS, None)
    )
}

fn composite(action: Action, name: &str, description: &str, outputs: &[(&str, &str)], step: &str) -> String {
    let env: Vec<String> = INPUTS
        .iter()
        .filter(|i| action.takes(i) && i.used_by != UsedBy::Composites)
        .map(|i| format!("        {}: ${{{{ inputs.{} }}}}", crate::env_vars::github_input(i.name), i.name))
        .collect();
    format!(
        r#"{HEADER}name: {name}
description: "{description}"
author: s3cache
{}
{}
runs:
  using: composite
  steps:
    - id: binary
      shell: bash
      env:
        INPUT_BINARY: ${{{{ inputs.binary }}}}
      run: '"$GITHUB_ACTION_PATH/../action/find-binary.sh"'
    - id: {step}
      shell: bash
      env:
        S3CACHE_BIN: ${{{{ steps.binary.outputs.path }}}}
{}
      run: '"$S3CACHE_BIN" github-action {step}'
"#,
        inputs_yaml(action),
        outputs_yaml(outputs, Some(step)),
        env.join("\n")
    )
}

/// The docs/github-actions.md tables of inputs and outputs.
fn readme_tables() -> String {
    let mut out = vec!["| input | default | used by | meaning |".to_owned(), "|---|---|---|---|".to_owned()];
    for input in INPUTS {
        let default = match input.default {
            None => "required".to_owned(),
            Some("") => "empty".to_owned(),
            Some(value) => format!("`{value}`"),
        };
        let used_by = match input.used_by {
            UsedBy::All => "all",
            UsedBy::Restore => "action, `restore/`",
            UsedBy::Save => "action (post), `save/`",
            UsedBy::Composites => "`restore/`, `save/`",
        };
        out.push(format!("| `{}` | {default} | {used_by} | {} |", input.name, input.doc));
    }
    out.extend([String::new(), "| output | of | meaning |".to_owned(), "|---|---|---|".to_owned()]);
    for (name, doc) in RESTORE_OUTPUTS {
        out.push(format!("| `{name}` | action, `restore/` | {doc} |"));
    }
    for (name, doc) in SAVE_OUTPUTS {
        out.push(format!("| `{name}` | `save/` | {doc} |"));
    }
    out.join("\n") + "\n"
}

/// Markers around the generated part of docs/github-actions.md.
const README_BEGIN: &str = "<!-- generated: action inputs and outputs (scripts/gen-actions) -->\n";
const README_END: &str = "<!-- end of generated tables -->\n";

/// Each generated file's path (from the repository root) and its text, given the current text of the
/// pages with generated tables (`page` reads one by its path from the repository root).
pub fn generated(page: impl Fn(&str) -> String) -> Result<Vec<(&'static str, String)>, String> {
    let readme = page("docs/github-actions.md");
    let (before, rest) = readme.split_once(README_BEGIN).ok_or("docs/github-actions.md lacks the start marker of the generated tables")?;
    let (_, after) = rest.split_once(README_END).ok_or("docs/github-actions.md lacks the end marker of the generated tables")?;
    Ok(vec![
        ("action.yml", docker_action()),
        (
            "restore/action.yml",
            composite(
                Action::Restore,
                "s3cache restore",
                "Restore a cache from an S3-compatible store (Linux, macOS, Windows). Pair with s3cache/s3cache/save.",
                RESTORE_OUTPUTS,
                "restore",
            ),
        ),
        (
            "save/action.yml",
            composite(
                Action::Save,
                "s3cache save",
                "Save a cache to an S3-compatible store (Linux, macOS, Windows). Use `if: always()` to save even when the job failed.",
                SAVE_OUTPUTS,
                "save",
            ),
        ),
        ("docs/github-actions.md", format!("{before}{README_BEGIN}{}{README_END}{after}", readme_tables())),
        (
            "docs/drone-woodpecker.md",
            crate::frontends::plugins::docs::readme("docs/drone-woodpecker.md", &page("docs/drone-woodpecker.md"))?,
        ),
        ("docs/vela.md", crate::frontends::plugins::docs::readme("docs/vela.md", &page("docs/vela.md"))?),
    ])
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The committed action files and docs/ tables are what the input list generates.
    /// `S3CACHE_BLESS=1` rewrites them instead (scripts/gen-actions).
    #[test]
    fn generated() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root");
        let page = |path: &str| std::fs::read_to_string(root.join(path)).expect(path);
        let bless = std::env::var_os(crate::env_vars::S3CACHE_BLESS).is_some();
        let mut stale = Vec::new();
        for (path, text) in super::generated(page).unwrap() {
            let full = root.join(path);
            if std::fs::read_to_string(&full).ok().as_deref() != Some(text.as_str()) {
                if bless {
                    std::fs::write(&full, &text).expect("write a generated file");
                } else {
                    stale.push(path);
                }
            }
        }
        assert!(stale.is_empty(), "stale: {stale:?}; run scripts/gen-actions and commit the result");
    }

    /// Every section an action file points to (`(docs/github-actions.md, "Section")`) is a heading of that page.
    #[test]
    fn named_readme_sections_exist() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root");
        let page = |path: &str| std::fs::read_to_string(root.join(path)).expect(path);
        let readme = page("docs/github-actions.md");
        let headings: Vec<&str> = readme.lines().filter_map(|l| l.strip_prefix('#')).map(|l| l.trim_start_matches('#').trim()).collect();
        let mut named = Vec::new();
        for (path, text) in super::generated(page).unwrap().into_iter().filter(|(path, _)| path.ends_with(".yml")) {
            for (_, rest) in
                text.match_indices("(docs/github-actions.md, \"").map(|(i, _)| text.split_at(i + "(docs/github-actions.md, \"".len()))
            {
                let section = rest.split_once('"').expect("a closing quote").0;
                assert!(headings.contains(&section), "{path} names the docs/github-actions.md section {section:?}, which that page lacks");
                named.push(section.to_owned());
            }
        }
        assert_eq!(named, ["The Docker action's image", "Saving when the job fails"]);
    }
}
