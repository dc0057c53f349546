//! README's setting tables of the CI plugin dialects ("migrating from ..."), generated from each
//! dialect's one settings table, so the docs cannot drift from what the code reads. Checked and
//! rewritten with the action files ([`super::action_files::generated`], `scripts/gen-actions`).

use super::plugin::{Convention, Setting, readme_table};
use super::{drone_cache, drone_s3_cache, vela, woodpecker};

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
    Ok(text)
}
