//! How admin results look: an aligned table for people (sizes human-readable, times in UTC) or one
//! JSON document for scripts (`--json`: exact bytes, RFC 3339 times).

use std::fmt::Write as _;
use std::io::Write;
use std::time::SystemTime;

use serde::Serialize;

use crate::archive::catalog::Entry;
use crate::engine::admin::{Leftover, Leftovers, Removal, Tally, Usage};
use crate::engine::inspect::Inspection;
use crate::ui::output::{counted, size};

/// An entry as `--json` shows it.
#[derive(Debug, Serialize)]
pub struct EntryJson {
    pub key: String,
    pub scope: String,
    /// `zstd`, `gzip`, `tar`, or `gha` (a protocol entry); absent where names do not show it (the Flat layout).
    pub format: Option<&'static str>,
    pub bytes: u64,
    pub saved_at: String,
    pub last_used: String,
    /// The object's name under the store prefix.
    pub object: String,
}

impl From<&Entry> for EntryJson {
    fn from(entry: &Entry) -> Self {
        EntryJson {
            key: entry.name.key.clone(),
            scope: entry.name.scope.clone(),
            format: (entry.name.format_label() != "-").then(|| entry.name.format_label()),
            bytes: entry.size(),
            saved_at: time(entry.saved()),
            last_used: time(entry.last_used),
            object: entry.object.name.clone(),
        }
    }
}

/// A leftover as `--json` shows it.
#[derive(Debug, Serialize)]
pub struct LeftoverJson {
    /// `upload` or `temp-file`.
    pub kind: crate::engine::admin::LeftoverKind,
    /// The object it was to become, under the store prefix; absent for a temporary file.
    pub object: Option<String>,
    /// The upload id, or the temporary file's name.
    pub id: String,
    /// The bytes it holds, when the store says.
    pub bytes: Option<u64>,
    pub started_at: String,
}

impl From<&Leftover> for LeftoverJson {
    fn from(leftover: &Leftover) -> Self {
        LeftoverJson {
            kind: leftover.kind,
            object: leftover.name.clone(),
            id: leftover.id.clone(),
            bytes: leftover.bytes,
            started_at: time(leftover.started),
        }
    }
}

fn leftover_rows(leftovers: &[Leftover]) -> impl Iterator<Item = Vec<String>> + '_ {
    leftovers.iter().map(|l| {
        let kind = match l.kind {
            crate::engine::admin::LeftoverKind::Upload => "incomplete upload",
            crate::engine::admin::LeftoverKind::TempFile => "temporary file",
        };
        vec![kind.into(), l.name.clone().unwrap_or_else(|| l.id.clone()), l.bytes.map_or("?".into(), size), time(l.started)]
    })
}

const LEFTOVER_HEADER: [&str; 4] = ["LEFTOVER", "OBJECT", "SIZE", "STARTED"];

/// RFC 3339 in UTC, to the second.
pub fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Prints `rows` under `header`, columns aligned. Cells are escaped: keys are user text.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>, reporter: &crate::report::Reporter) {
    let mut out = tabwriter::TabWriter::new(Vec::new()).padding(2);
    let line =
        |cells: Vec<String>| cells.into_iter().map(|c| crate::ui::output::escape(&c).replace('\t', " ")).collect::<Vec<_>>().join("\t");
    let _ = writeln!(out, "{}", line(header.iter().map(|h| h.to_string()).collect()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row));
    }
    let text = out.into_inner().map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default();
    crate::ui::output::print_stdout(&reporter.scrub(&text));
}

/// Prints one JSON document.
pub fn json(value: &impl Serialize) {
    crate::ui::output::print_stdout(&format!("{}\n", serde_json::to_string_pretty(value).expect("admin results serialize")));
}

fn entry_row(entry: &Entry) -> Vec<String> {
    vec![
        entry.name.key.clone(),
        entry.name.scope.clone(),
        entry.name.format_label().into(),
        size(entry.size()),
        time(entry.saved()),
        time(entry.last_used),
    ]
}

const ENTRY_HEADER: [&str; 6] = ["KEY", "SCOPE", "FORMAT", "SIZE", "SAVED", "LAST USED"];

/// `list`.
pub fn entries(entries: &[Entry], as_json: bool, out: &crate::report::Reporter) {
    if as_json {
        let total = Tally::of(entries);
        json(&serde_json::json!({
            "entries": entries.iter().map(EntryJson::from).collect::<Vec<_>>(),
            "count": total.entries,
            "bytes": total.bytes,
        }));
    } else {
        table(&ENTRY_HEADER, entries.iter().map(entry_row), out);
    }
}

/// `usage`: the entries per scope, then the leftovers of killed writes and how old they must be
/// for `prune`, `flush` and `clear` to remove them.
pub fn usage(usage: &Usage, leftover_age: std::time::Duration, as_json: bool, out: &crate::report::Reporter) {
    let leftovers: &Leftovers = &usage.leftovers;
    if as_json {
        let scopes: Vec<_> =
            usage.scopes.iter().map(|(scope, t)| serde_json::json!({ "scope": scope, "entries": t.entries, "bytes": t.bytes })).collect();
        json(&serde_json::json!({
            "scopes": scopes,
            "total": usage.total,
            "leftovers": leftovers.found.iter().map(LeftoverJson::from).collect::<Vec<_>>(),
            "leftover_bytes": leftovers.bytes(),
            "leftovers_unlisted": leftovers.unlisted,
            "leftover_age_secs": leftover_age.as_secs(),
        }));
        return;
    }
    let rows = usage.scopes.iter().map(|(scope, t)| vec![scope.clone(), t.entries.to_string(), size(t.bytes)]);
    let total = std::iter::once(vec!["TOTAL".to_owned(), usage.total.entries.to_string(), size(usage.total.bytes)]);
    table(&["SCOPE", "ENTRIES", "SIZE"], rows.chain(total), out);
    if !leftovers.found.is_empty() {
        table(&LEFTOVER_HEADER, leftover_rows(&leftovers.found), out);
        let age = humantime::format_duration(leftover_age);
        out.notice(&format!(
            "{} of interrupted saves {} {}; prune, flush and clear remove those older than {age} (--leftover-age)",
            counted(leftovers.found.len() as u64, "leftover", "leftovers"),
            if leftovers.found.len() == 1 { "holds" } else { "hold" },
            size(leftovers.bytes())
        ));
    }
    if let Some(why) = &leftovers.unlisted {
        out.notice(&format!("incomplete uploads not listed: {why}"));
    }
}

/// `has`: the entry found, if any.
pub fn found(entry: Option<&Entry>, key: &str, as_json: bool, out: &crate::report::Reporter) {
    match (entry, as_json) {
        (entry, true) => json(&serde_json::json!({ "key": key, "found": entry.is_some(), "entry": entry.map(EntryJson::from) })),
        (Some(entry), false) => table(&ENTRY_HEADER, [entry_row(entry)], out),
        (None, false) => out.notice(&format!("no cache entry for key {key:?}")),
    }
}

/// `inspect`: the entry's manifest exactly as stored and its signature (for `ssh-keygen -Y verify`),
/// who signed it, and with trusted keys whether a restore accepts it.
pub fn inspection(found: Option<&Inspection>, key: &str, as_json: bool, out: &crate::report::Reporter) {
    let Some(found) = found else {
        if as_json {
            json(&serde_json::json!({ "key": key, "found": false }));
        } else {
            out.notice(&format!("no cache entry for key {key:?}"));
        }
        return;
    };
    let created = found
        .manifest
        .as_ref()
        .filter(|m| m.created_ms > 0)
        .map(|m| time(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(m.created_ms)));
    if as_json {
        json(&serde_json::json!({
            "key": key,
            "found": true,
            "entry": EntryJson::from(&found.entry),
            "manifest": found.manifest_text.as_ref().ok(),
            "manifest_error": found.manifest_text.as_ref().err(),
            "created_at": created,
            "signature": found.signature,
            "signed_by": found.signed_by,
            "verified": found.verdict.as_ref().map(Result::is_ok),
            "signer": found.verdict.as_ref().and_then(|v| v.as_ref().ok()),
            "refused": found.verdict.as_ref().and_then(|v| v.as_ref().err()),
        }));
        return;
    }
    let mut text = String::new();
    let _ = writeln!(text, "object:     {}", found.entry.object.name);
    match &found.manifest_text {
        Ok(manifest) => {
            let _ = writeln!(text, "manifest:   {manifest}");
        }
        Err(why) => {
            let _ = writeln!(text, "manifest:   none: {why}");
        }
    }
    if let Some(created) = created {
        let _ = writeln!(text, "created:    {created}");
    }
    let signature = match (&found.signature, &found.signed_by) {
        (None, _) => "none (the entry is not signed)".to_owned(),
        (Some(_), Some(fingerprint)) => format!("by {fingerprint}"),
        (Some(_), None) => "present, but not a readable SSHSIG".to_owned(),
    };
    let _ = writeln!(text, "signature:  {signature}");
    let verdict = match &found.verdict {
        None => "not checked (no --trusted-keys)".to_owned(),
        Some(Ok(signer)) => format!("accepted: signed by {signer}"),
        Some(Err(why)) => why.clone(),
    };
    let _ = writeln!(text, "trust:      {verdict}");
    if let Some(signature) = &found.signature {
        text.push_str(signature);
        if !signature.ends_with('\n') {
            text.push('\n');
        }
    }
    // Line by line: the manifest holds user text (keys, paths), and its control characters are escaped.
    let lines: Vec<String> = text.lines().map(crate::ui::output::escape).collect();
    crate::ui::output::print_stdout(&format!("{}\n", lines.join("\n")));
}

/// `delete`, `clear`, `flush` and `prune`: what was deleted and what could not be. `extra` adds
/// fields to the JSON document (prune's sizes). A dry run's `removal` is what would be deleted: the
/// same table and document, its JSON with `"dry_run": true`, and its lines saying "would".
pub fn removal(verb: &str, removal: &Removal, extra: serde_json::Value, dry_run: bool, as_json: bool, out: &crate::report::Reporter) {
    let freed = Tally::of(&removal.deleted);
    if as_json {
        let failed: Vec<_> =
            removal.failed.iter().map(|(e, why)| serde_json::json!({ "entry": EntryJson::from(e), "reason": why })).collect();
        let leftovers_failed: Vec<_> = removal
            .leftovers_failed
            .iter()
            .map(|(l, why)| serde_json::json!({ "leftover": LeftoverJson::from(l), "reason": why }))
            .collect();
        let mut document = serde_json::json!({
            "operation": verb,
            "deleted": removal.deleted.iter().map(EntryJson::from).collect::<Vec<_>>(),
            "failed": failed,
            "deleted_count": freed.entries,
            "freed_bytes": freed.bytes,
            "leftovers_removed": removal.leftovers_removed.iter().map(LeftoverJson::from).collect::<Vec<_>>(),
            "leftovers_failed": leftovers_failed,
            "leftovers_unlisted": removal.leftovers_unlisted,
        });
        if let (Some(document), serde_json::Value::Object(extra)) = (document.as_object_mut(), extra) {
            document.extend(extra);
            document.insert("dry_run".into(), dry_run.into());
        }
        json(&document);
        return;
    }
    if !removal.deleted.is_empty() {
        table(&ENTRY_HEADER, removal.deleted.iter().map(entry_row), out);
    }
    for (entry, why) in &removal.failed {
        out.error(&format!("could not delete {}: {why}", entry.object.name));
    }
    let entries = counted(freed.entries, "entry", "entries");
    if dry_run {
        out.notice(&format!("{verb} --dry-run: would delete {entries}, {}; nothing deleted", size(freed.bytes)));
    } else {
        out.notice(&format!("{verb}: deleted {entries}, {} freed", size(freed.bytes)));
    }
    if !removal.leftovers_removed.is_empty() {
        table(&LEFTOVER_HEADER, leftover_rows(&removal.leftovers_removed), out);
        let bytes = removal.leftovers_removed.iter().filter_map(|l| l.bytes).sum();
        let leftovers = counted(removal.leftovers_removed.len() as u64, "leftover", "leftovers");
        if dry_run {
            out.notice(&format!("{verb} --dry-run: would remove {leftovers} of interrupted saves, {}; nothing removed", size(bytes)));
        } else {
            out.notice(&format!("{verb}: removed {leftovers} of interrupted saves, {} freed", size(bytes)));
        }
    }
    for (leftover, why) in &removal.leftovers_failed {
        out.error(&format!("could not remove the leftover {}: {why}", leftover.name.as_deref().unwrap_or(&leftover.id)));
    }
}
