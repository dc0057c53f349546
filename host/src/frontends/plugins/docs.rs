//! The setting tables of the CI plugin dialects in docs/ ("migrating from ..."), generated from each
//! dialect's one settings table, so the docs cannot drift from what the code reads. Checked and
//! rewritten with the action files ([`crate::frontends::github::action_files::generated`], `scripts/gen-actions`).

use crate::frontends::plugins::{Convention, Setting, readme_table};
use crate::frontends::plugins::{drone_cache, drone_s3_cache, vela, woodpecker};

/// Each dialect's marker name, the page (from the repository root) that holds its table, and the table.
const DIALECTS: &[(&str, &str, &[Setting], Convention)] = &[
    ("drone-cache", "docs/drone-woodpecker.md", drone_cache::SETTINGS, Convention::Plugin),
    ("drone-s3-cache", "docs/drone-woodpecker.md", drone_s3_cache::SETTINGS, Convention::Plugin),
    ("woodpecker-cache", "docs/drone-woodpecker.md", woodpecker::SETTINGS, Convention::Plugin),
    ("vela-s3-cache", "docs/vela.md", vela::SETTINGS, Convention::Parameter),
];

/// The page that holds drone-cache's template metadata.
const METADATA_PAGE: &str = "docs/drone-woodpecker.md";

/// The page at `path` with the table of every dialect it holds rewritten between its markers.
pub fn readme(path: &str, text: &str) -> Result<String, String> {
    let mut text = text.to_owned();
    for (name, _, table, convention) in DIALECTS.iter().filter(|dialect| dialect.1 == path) {
        let begin = format!("<!-- generated: {name} settings (scripts/gen-actions) -->\n");
        let end = format!("<!-- end of generated {name} settings -->\n");
        let (before, rest) = text.split_once(&begin).ok_or_else(|| format!("{path} lacks the start marker of the {name} settings"))?;
        let (_, after) = rest.split_once(&end).ok_or_else(|| format!("{path} lacks the end marker of the {name} settings"))?;
        text = format!("{before}{begin}{}{end}{after}", readme_table(table, *convention));
    }
    if path != METADATA_PAGE {
        return Ok(text);
    }
    let begin = "<!-- generated: drone-cache template metadata (scripts/gen-actions) -->\n";
    let end = "<!-- end of generated drone-cache template metadata -->\n";
    let (before, rest) =
        text.split_once(begin).ok_or("docs/drone-woodpecker.md lacks the start marker of the drone-cache template metadata")?;
    let (_, after) = rest.split_once(end).ok_or("docs/drone-woodpecker.md lacks the end marker of the drone-cache template metadata")?;
    Ok(format!("{before}{begin}{}{end}{after}", metadata_table()))
}

/// drone-cache's template fields, the variables each is read from, and its default.
fn metadata_table() -> String {
    let mut out = vec!["| field | read from | default |".to_owned(), "|---|---|---|".to_owned()];
    for (field, vars, default) in crate::env_vars::plugins::TEMPLATE_METADATA {
        let vars: Vec<String> = vars.iter().map(|v| format!("`{v}`")).collect();
        let default = if default.is_empty() { "empty".to_owned() } else { format!("`{default}`") };
        out.push(format!("| `{{{{ {field} }}}}` | {} | {default} |", vars.join(", ")));
    }
    out.join("\n") + "\n"
}
