//! Template errors a person can read: what went wrong in words (an unclosed expression, an unexpected
//! character, a misspelt helper or variable with the nearest name and the full list), then the line of
//! the template with a caret under the position where parsing or rendering stopped.
//!
//! The message's own line breaks are its only ones: everything taken from elsewhere (the template, file
//! names in a helper's error) has its control characters escaped, so the host can print the lines as
//! lines without anything in them being read as a terminal escape or a CI workflow command.

use handlebars::{RenderError, RenderErrorReason};

/// How close a name must be to a known one to be suggested: [`strsim::jaro`] of at least this, the
/// threshold clap uses for its "a similar argument exists" tips.
const SUGGESTION_SIMILARITY: f64 = 0.7;

/// The helpers and variables a template can use, in the order messages list them.
#[derive(Debug)]
pub(super) struct Names<'a> {
    pub(super) helpers: Vec<&'a str>,
    pub(super) variables: Vec<&'a str>,
}

/// `err`, met while rendering `template`, as the lines of the message: the reason, then (when the
/// error has a position) the template's line and a caret under the position ([`excerpt`]).
pub(super) fn describe(err: &RenderError, template: &str, names: &Names<'_>) -> String {
    let (reason, position) = match err.reason() {
        RenderErrorReason::TemplateError(parse) => {
            (parse.pos().map_or_else(|| parse.reason().to_string(), |at| syntax(template, at)), parse.pos())
        }
        RenderErrorReason::HelperNotFound(name) => (unknown_helper(name, names), position(err)),
        RenderErrorReason::MissingVariable(name) => (unknown_variable(name.as_deref().unwrap_or_default(), names), position(err)),
        RenderErrorReason::Other(message) => (message.clone(), position(err)),
        other => (other.to_string(), position(err)),
    };
    let mut text = printable(&reason);
    if let Some(at) = position {
        text.push_str(&excerpt(template, at));
    }
    text
}

fn position(err: &RenderError) -> Option<(usize, usize)> {
    err.line_no.zip(err.column_no)
}

/// What the parser found at `(line, column)` (1-based; the column counts characters), in words.
fn syntax(template: &str, (line, column): (usize, usize)) -> String {
    let offset = byte_offset(template, line, column);
    let expression = &template[template[..offset].rfind("{{").unwrap_or(0)..offset];
    match template[offset..].chars().next() {
        None if expression.matches('"').count() % 2 == 1 => "unclosed string: the template ends before its closing `\"`".into(),
        None => "unclosed expression: the template ends before its `}}`".into(),
        Some('"') if !template[offset + 1..].contains('"') => "unclosed string: no closing `\"` after this one".into(),
        Some(found) => format!("unexpected `{found}`"),
    }
}

/// The byte offset of a 1-based (line, column-in-characters) position; the end of the template when
/// it lies beyond it.
fn byte_offset(template: &str, line: usize, column: usize) -> usize {
    let line_start: usize = template.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    let rest = &template[line_start.min(template.len())..];
    line_start + rest.char_indices().nth(column.saturating_sub(1)).map_or(rest.len(), |(at, _)| at)
}

/// The template's line `line`, after its position in a gutter, and a caret under column `column` on
/// the next line: `  1:8 | npm-{{ os ` over `      |        ^`.
fn excerpt(template: &str, (line, column): (usize, usize)) -> String {
    let text = template.lines().nth(line.saturating_sub(1)).unwrap_or_default();
    let before: String = text.chars().take(column.saturating_sub(1)).collect();
    let gutter = format!("{line}:{column}");
    format!(
        "\n  {gutter} | {}\n  {:gutter_width$} | {:indent$}^",
        printable(text),
        "",
        "",
        gutter_width = gutter.len(),
        indent = printable(&before).chars().count()
    )
}

fn unknown_helper(name: &str, names: &Names<'_>) -> String {
    if names.variables.contains(&name) {
        return format!("`{name}` is a variable and takes no arguments: write {{{{ {name} }}}}");
    }
    let list = names.helpers.join(", ");
    match nearest(name, &names.helpers) {
        Some(near) => format!("unknown helper `{name}`; did you mean `{near}`? (the helpers are {list})"),
        None => format!("unknown helper `{name}`; the helpers are {list}"),
    }
}

/// A name that is neither a variable nor, used without arguments, a helper (`{{ hashFile }}`).
fn unknown_variable(name: &str, names: &Names<'_>) -> String {
    let list = names.variables.join(", ");
    let known: Vec<&str> = names.variables.iter().chain(&names.helpers).copied().collect();
    match nearest(name, &known) {
        Some(near) => format!("unknown variable `{name}`; did you mean `{near}`? (the variables are {list})"),
        None => format!("unknown variable `{name}`; the variables are {list}"),
    }
}

/// The known name most like `name`, if any is like enough; a dotted name (`runner.os`) is also
/// compared by its last part.
fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let last = name.rsplit('.').next().unwrap_or(name);
    let similarity = |candidate: &str| strsim::jaro(name, candidate).max(strsim::jaro(last, candidate));
    known
        .iter()
        .map(|candidate| (similarity(candidate), *candidate))
        .filter(|(score, _)| *score >= SUGGESTION_SIMILARITY)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// `text` with its control characters (line breaks included) escaped: `\n`, `\u{1b}`.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names<'static> {
        Names { helpers: vec!["checksum", "hashFiles", "globHashFiles", "md5sum", "env"], variables: vec!["os", "arch", "branch", "epoch"] }
    }

    /// Misspelt names get the nearest known one; far ones get the list; a dotted name is compared by
    /// its last part too.
    #[test]
    fn suggests_the_nearest_name() {
        assert_eq!(
            unknown_helper("hashFile", &names()),
            "unknown helper `hashFile`; did you mean `hashFiles`? (the helpers are checksum, hashFiles, globHashFiles, md5sum, env)"
        );
        assert_eq!(
            unknown_helper("frobnicate", &names()),
            "unknown helper `frobnicate`; the helpers are checksum, hashFiles, globHashFiles, md5sum, env"
        );
        assert_eq!(unknown_helper("os", &names()), "`os` is a variable and takes no arguments: write {{ os }}");
        assert_eq!(
            unknown_variable("ars", &names()),
            "unknown variable `ars`; did you mean `arch`? (the variables are os, arch, branch, epoch)"
        );
        assert_eq!(
            unknown_variable("runner.os", &names()),
            "unknown variable `runner.os`; did you mean `os`? (the variables are os, arch, branch, epoch)"
        );
        assert_eq!(
            unknown_variable("hashFile", &names()),
            "unknown variable `hashFile`; did you mean `hashFiles`? (the variables are os, arch, branch, epoch)"
        );
        assert_eq!(unknown_variable("github.sha", &names()), "unknown variable `github.sha`; the variables are os, arch, branch, epoch");
    }

    /// The caret sits under the column, also after characters that print wider once escaped; a
    /// template of several lines shows the line of the position.
    #[test]
    fn caret_under_the_position() {
        assert_eq!(excerpt("npm-{{ os ", (1, 11)), "\n  1:11 | npm-{{ os \n       |           ^");
        assert_eq!(excerpt("a\tb{{ x", (1, 4)), "\n  1:4 | a\\tb{{ x\n      |     ^");
        assert_eq!(excerpt("a-\n{{ é( }}", (2, 6)), "\n  2:6 | {{ é( }}\n      |      ^");
    }

    /// Syntax errors say what is missing at the end, or what was found.
    #[test]
    fn syntax_errors_in_words() {
        assert_eq!(syntax("npm-{{ os ", (1, 11)), "unclosed expression: the template ends before its `}}`");
        assert_eq!(syntax("{{ hashFiles \"x }}", (1, 19)), "unclosed string: the template ends before its closing `\"`");
        assert_eq!(syntax("{{ é( }}", (1, 7)), "unexpected `}`");
        assert_eq!(syntax("{{ hashFiles \"x }}", (1, 14)), "unclosed string: no closing `\"` after this one");
        assert_eq!(byte_offset("ab\ncd", 2, 2), 4);
        assert_eq!(byte_offset("ab", 5, 9), 2);
    }

    /// Line breaks and escapes in what the message quotes are shown, not obeyed.
    #[test]
    fn quoted_text_is_printable() {
        assert_eq!(printable("a\n::warning::b\u{1b}[31m"), "a\\n::warning::b\\u{1b}[31m");
    }
}
