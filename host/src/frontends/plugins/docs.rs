//! README's setting tables of the CI plugin dialects ("migrating from ..."), generated from each
//! dialect's one settings table, so the docs cannot drift from what the code reads. Checked and
//! rewritten with the action files ([`crate::frontends::github::action_files::generated`], `scripts/gen-actions`).

use crate::frontends::plugins::{Convention, Setting, readme_table};
use crate::frontends::plugins::{drone_cache, drone_s3_cache, vela, woodpecker};

/// Each dialect's marker name and table.
const DIALECTS: &[(&str, &[Setting], Convention)] = &[
    ("drone-cache", drone_cache::SETTINGS, Convention::Plugin),
    ("drone-s3-cache", drone_s3_cache::SETTINGS, Convention::Plugin),
    ("woodpecker-cache", woodpecker::SETTINGS, Convention::Plugin),
    ("vela-s3-cache", vela::SETTINGS, Convention::Parameter),
];

/// README with every dialect's table rewritten between its markers.
pub fn readme(text: &str) -> Result<String, String> {
    let mut text = text.to_owned();
    for (name, table, convention) in DIALECTS {
        let begin = format!("<!-- generated: {name} settings (scripts/gen-actions) -->\n");
        let end = format!("<!-- end of generated {name} settings -->\n");
        let (before, rest) = text.split_once(&begin).ok_or_else(|| format!("README.md lacks the start marker of the {name} settings"))?;
        let (_, after) = rest.split_once(&end).ok_or_else(|| format!("README.md lacks the end marker of the {name} settings"))?;
        text = format!("{before}{begin}{}{end}{after}", readme_table(table, *convention));
    }
    let begin = "<!-- generated: drone-cache template metadata (scripts/gen-actions) -->\n";
    let end = "<!-- end of generated drone-cache template metadata -->\n";
    let (before, rest) = text.split_once(begin).ok_or("README.md lacks the start marker of the drone-cache template metadata")?;
    let (_, after) = rest.split_once(end).ok_or("README.md lacks the end marker of the drone-cache template metadata")?;
    Ok(format!("{before}{begin}{}{end}{after}", metadata_table()))
}

/// drone-cache's template fields, the variables each is read from, and its default.
fn metadata_table() -> String {
    let mut out = vec!["| field | read from | default |".to_owned(), "|---|---|---|".to_owned()];
    for (field, vars, default) in crate::config::env_vars::plugins::TEMPLATE_METADATA {
        let vars: Vec<String> = vars.iter().map(|v| format!("`{v}`")).collect();
        let default = if default.is_empty() { "empty".to_owned() } else { format!("`{default}`") };
        out.push(format!("| `{{{{ {field} }}}}` | {} | {default} |", vars.join(", ")));
    }
    out.join("\n") + "\n"
}
