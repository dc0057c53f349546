//! Managing caches with the real binary against real servers: list and usage across listing pages
//! and scopes, has and delete, clear (which needs --yes off a terminal and keeps a shared bucket's
//! other objects), flush by last use, prune evicting the least recently used first (a restore hit
//! refreshes the last-used marker), and what the marker costs a restore in requests.

use std::fs;
use std::time::Duration;

use s3cache_tests::{Machine, Run, S3Server, ServerKind, backdate, boto3, bucket_keys};

fn machine(server: &S3Server) -> Machine {
    let mut machine = Machine::new();
    machine.use_server(server, "team");
    machine
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr: {}", run.stdout, run.stderr))
}

/// Puts objects with boto3 (names relative to the bucket), `size` bytes each.
fn plant(server: &S3Server, names: &[String], size: usize) {
    let script = format!(
        "for name in json.loads({:?}):\n    s3.put_object(Bucket=bucket, Key=name, Body=b'x' * {size})\n",
        serde_json::to_string(names).unwrap()
    );
    boto3(server, &script);
}

fn save(machine: &Machine, key: &str, content: &str) -> Run {
    let dir = machine.workspace().join("deps");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("file"), content).unwrap();
    machine.run(&["save", "--key", key, "--path", "deps"]).success()
}

/// More than one listing page in one scope plus two more scopes: list and usage count them all,
/// a scope and a key prefix narrow the list, and foreign objects are never shown.
fn lists_and_counts_across_pages(kind: ServerKind) {
    let server = S3Server::start(kind);
    let mut names: Vec<String> = (0..1005).map(|i| format!("team/big/key-{i:04}.tar.zst")).collect();
    names.extend(["team/small/a.tar.gz".to_string(), "team/small/b.tar".to_string(), "team/local/mine.tar.zst".to_string()]);
    plant(&server, &names, 10);
    plant(&server, &["team/README.md".to_string(), "team/big/notes.txt".to_string(), "elsewhere/x.tar.zst".to_string()], 7);
    let machine = machine(&server);

    let all = json(&machine.run(&["list", "--all-scopes", "--json"]).success());
    assert_eq!(all["count"], 1008, "{}", all["count"]);
    assert_eq!(all["bytes"], 10080);
    let own = json(&machine.run(&["list", "--json"]).success());
    assert_eq!(own["entries"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect::<Vec<_>>(), vec!["mine"]);
    let small = json(&machine.run(&["--scope", "small", "list", "--json"]).success());
    let formats: Vec<(&str, &str)> =
        small["entries"].as_array().unwrap().iter().map(|e| (e["key"].as_str().unwrap(), e["format"].as_str().unwrap())).collect();
    let mut formats = formats;
    formats.sort();
    assert_eq!(formats, vec![("a", "gzip"), ("b", "tar")]);
    let prefixed = json(&machine.run(&["list", "--all-scopes", "--prefix", "key-100", "--json"]).success());
    assert_eq!(prefixed["count"], 5);

    let mut usage = json(&machine.run(&["usage", "--json"]).success());
    // The leftovers (none here) are interrupts.rs's; s3s-fs cannot list them, moto can.
    assert_eq!(usage["leftovers"], serde_json::json!([]));
    for field in ["leftovers", "leftover_bytes", "leftovers_unlisted", "leftover_age_secs"] {
        usage.as_object_mut().unwrap().remove(field).unwrap_or_else(|| panic!("usage lacks {field}"));
    }
    assert_eq!(
        usage,
        serde_json::json!({
            "scopes": [
                { "scope": "big", "entries": 1005, "bytes": 10050 },
                { "scope": "local", "entries": 1, "bytes": 10 },
                { "scope": "small", "entries": 2, "bytes": 20 },
            ],
            "total": { "entries": 1008, "bytes": 10080 },
        })
    );
    let table = machine.run(&["usage"]).success();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", table.stdout);
    assert!(lines[0].starts_with("SCOPE") && lines[4].starts_with("TOTAL"), "{}", table.stdout);
    assert!(lines[1].split_whitespace().eq(["big", "1005", "9.8", "KiB"]), "{}", lines[1]);
}

/// list/usage on s3s-fs (strict signatures, its own pagination).
#[test]
fn list_and_usage_across_pages_on_s3s_fs() {
    lists_and_counts_across_pages(ServerKind::S3sFs);
}

/// list/usage on moto (a second implementation of ListObjectsV2 pages).
#[test]
fn list_and_usage_across_pages_on_moto() {
    lists_and_counts_across_pages(ServerKind::Moto);
}

/// `has` answers with its exit code; `delete` removes the entry and its marker, and says 1 when
/// there is nothing to delete.
#[test]
fn has_and_delete() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = machine(&server);
    machine.env("S3CACHE_TOUCH_INTERVAL", "0s");
    save(&machine, "deps-1", "one");
    machine.run(&["restore", "--key", "deps-1", "--path", "deps"]).success();
    assert_eq!(bucket_keys(&server), vec!["team/local/deps-1.tar.zst", "team/local/deps-1.tar.zst.used"]);

    assert_eq!(machine.run(&["has", "deps-1"]).success().stdout.lines().count(), 2);
    let missing = machine.run(&["has", "deps-2"]);
    assert_eq!((missing.code, missing.stdout.as_str()), (1, ""), "{}", missing.stderr);
    assert!(missing.stderr.contains("no cache entry for key \"deps-2\""), "{}", missing.stderr);
    assert_eq!(json(&machine.run(&["has", "deps-1", "--json"]).success())["entry"]["scope"], "local");
    // Another scope does not see it.
    assert_eq!(machine.run(&["--scope", "other", "has", "deps-1"]).code, 1);

    let deleted = json(&machine.run(&["delete", "deps-1", "--json"]).success());
    assert_eq!(deleted["deleted_count"], 1, "{deleted}");
    assert_eq!(bucket_keys(&server), Vec::<String>::new());
    let again = machine.run(&["delete", "deps-1"]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(again.stderr.contains("no cache entry for key \"deps-1\" in scope local"), "{}", again.stderr);
}

/// `clear` off a terminal refuses without --yes and deletes nothing; with --yes it deletes every
/// entry and marker, and a shared bucket's other objects (even ones that look almost like ours) stay.
#[test]
fn clear_needs_yes_and_keeps_foreign_objects() {
    let server = S3Server::start(ServerKind::Moto);
    let foreign = ["team/README.md", "team/local/k.tar.zst.bak", "team/local/.tar.zst", "team/no scope/k.tar", "other/local/k.tar.zst"];
    plant(&server, &foreign.map(String::from), 3);
    plant(&server, &["team/local/a.tar.zst".into(), "team/local/a.tar.zst.used".into(), "team/feature-1/b.tar.gz".into()], 5);
    let machine = machine(&server);

    let refused = machine.run(&["clear", "--all-scopes"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.starts_with("error: not clearing: delete 2 entries (10 B) in every scope of s3://cache-bucket/team/? Pass --yes"),
        "{}",
        refused.stderr
    );
    assert_eq!(bucket_keys(&server).len(), 8);

    let own = json(&machine.run(&["clear", "--yes", "--json"]).success());
    assert_eq!(
        own["deleted"].as_array().unwrap().iter().map(|e| e["object"].as_str().unwrap()).collect::<Vec<_>>(),
        vec!["local/a.tar.zst"]
    );
    json(&machine.run(&["clear", "--all-scopes", "--yes", "--json"]).success());
    let mut left = bucket_keys(&server);
    left.sort();
    let mut expected: Vec<String> = foreign.map(String::from).to_vec();
    expected.sort();
    assert_eq!(left, expected);
}

/// `flush` deletes what was not used for longer than the duration; a restore counts as a use.
#[test]
fn flush_deletes_entries_unused_for_longer_than_the_duration() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = machine(&server);
    machine.env("S3CACHE_TOUCH_INTERVAL", "0s");
    save(&machine, "used", "u");
    save(&machine, "unused", "n");
    for key in ["used", "unused"] {
        backdate(&server, &format!("team/local/{key}.tar.zst"), Duration::from_secs(3 * 86_400));
    }
    machine.run(&["restore", "--key", "used", "--path", "deps"]).success();
    let flushed = json(&machine.run(&["flush", "--older-than", "2d", "--json"]).success());
    assert_eq!(flushed["deleted"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect::<Vec<_>>(), vec!["unused"]);
    assert_eq!(bucket_keys(&server), vec!["team/local/used.tar.zst", "team/local/used.tar.zst.used"]);
    let bad = machine.run(&["flush", "--older-than", "soon"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("the duration must be a duration such as 14d, 336h, 90m or 30s (a bare number is days), not \"soon\""),
        "{}",
        bad.stderr
    );
}

/// `prune` evicts the least recently used first: the oldest save goes, unless a restore used it since.
#[test]
fn prune_evicts_the_least_recently_used() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = machine(&server);
    machine.env("S3CACHE_TOUCH_INTERVAL", "0s");
    for (key, days) in [("a", 3), ("b", 2), ("c", 1)] {
        save(&machine, key, &key.repeat(1000));
        backdate(&server, &format!("team/local/{key}.tar.zst"), Duration::from_secs(days * 86_400));
    }
    machine.run(&["restore", "--key", "a", "--path", "deps"]).success();
    let listed = json(&machine.run(&["list", "--json"]).success());
    let size = |key: &str| listed["entries"].as_array().unwrap().iter().find(|e| e["key"] == key).unwrap()["bytes"].as_u64().unwrap();
    let total = size("a") + size("b") + size("c");
    let max = total - size("b");
    let pruned = json(&machine.run(&["prune", "--max-size", &max.to_string(), "--json"]).success());
    assert_eq!(pruned["deleted"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect::<Vec<_>>(), vec!["b"], "{pruned}");
    assert_eq!((pruned["bytes_before"].as_u64(), pruned["bytes_after"].as_u64()), (Some(total), Some(max)));
    // Already small enough: nothing more goes.
    assert_eq!(json(&machine.run(&["prune", "--max-size", "1MiB", "--json"]).success())["deleted_count"], 0);
    let bad = machine.run(&["prune", "--max-size", "lots"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("not \"lots\""), "{}", bad.stderr);
}

/// A restore of an entry whose marker is fresh sends no request for it; a stale one costs one PUT.
#[test]
fn a_fresh_marker_costs_a_restore_no_request() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = machine(&server);
    save(&machine, "k", "content");
    let requests = |machine: &Machine| {
        machine.run(&["restore", "--key", "k", "--path", "deps", "--summary-json", "summary.json"]).success();
        let summary: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(machine.workspace().join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary["outcome"], "hit", "{summary}");
        summary["http_requests"].as_u64().unwrap()
    };
    let fresh = requests(&machine);
    assert_eq!(bucket_keys(&server), vec!["team/local/k.tar.zst"], "a fresh entry got a marker");
    machine.env("S3CACHE_TOUCH_INTERVAL", "0s");
    let stale = requests(&machine);
    assert_eq!(stale, fresh + 1);
    assert_eq!(bucket_keys(&server), vec!["team/local/k.tar.zst", "team/local/k.tar.zst.used"]);
}

/// A JSON shape as docs/managing-caches.md writes it: `{"a", "b": [ENTRY], "c": {"d"}}`.
#[derive(Debug)]
enum Shape {
    /// The keys, each with its value's shape when the docs give one.
    Object(Vec<(String, Option<Shape>)>),
    /// Every element has this shape.
    Array(Box<Shape>),
    /// Another row of the table (`ENTRY`, `LEFTOVER`).
    Named(String),
}

fn parse_shape(text: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Shape {
    let skip = |text: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while text.peek().is_some_and(|c| c.is_whitespace()) {
            text.next();
        }
    };
    skip(text);
    match text.next() {
        Some('{') => {
            let mut keys = Vec::new();
            loop {
                skip(text);
                match text.next() {
                    Some('}') => break,
                    Some(',') => continue,
                    Some('"') => {
                        let key: String = text.by_ref().take_while(|&c| c != '"').collect();
                        skip(text);
                        let value = (text.peek() == Some(&':')).then(|| {
                            text.next();
                            parse_shape(text)
                        });
                        keys.push((key, value));
                    }
                    other => panic!("unexpected {other:?} in a documented object"),
                }
            }
            Shape::Object(keys)
        }
        Some('[') => {
            let element = parse_shape(text);
            skip(text);
            assert_eq!(text.next(), Some(']'), "a documented array has one element shape");
            Shape::Array(Box::new(element))
        }
        Some(c) if c.is_ascii_uppercase() => {
            let mut name = c.to_string();
            while text.peek().is_some_and(|c| c.is_ascii_uppercase()) {
                name.push(text.next().unwrap());
            }
            Shape::Named(name)
        }
        other => panic!("unexpected {other:?} in a documented shape"),
    }
}

/// The `--json` table of docs/managing-caches.md: each row's name and the shape in its first code span.
fn documented_shapes() -> std::collections::BTreeMap<String, Shape> {
    let docs = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/managing-caches.md")).unwrap();
    let table = docs.split("| `--json` of | Document |").nth(1).expect("the --json table");
    let mut shapes = std::collections::BTreeMap::new();
    for row in table.lines().skip(2).take_while(|line| line.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_owned();
        let span = cells[2].split('`').nth(1).expect("a code span");
        shapes.insert(name, parse_shape(&mut span.chars().peekable()));
    }
    shapes
}

/// Fails unless `value` has exactly the keys `shape` documents, at every level shown.
fn assert_shape(value: &serde_json::Value, shape: &Shape, shapes: &std::collections::BTreeMap<String, Shape>, at: &str) {
    match (shape, value) {
        (_, serde_json::Value::Null) => {}
        (Shape::Named(name), value) => assert_shape(value, &shapes[name], shapes, &format!("{at} ({name})")),
        (Shape::Array(element), serde_json::Value::Array(items)) => {
            items.iter().enumerate().for_each(|(i, item)| assert_shape(item, element, shapes, &format!("{at}[{i}]")))
        }
        (Shape::Object(keys), serde_json::Value::Object(object)) => {
            let mut documented: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
            let mut printed: Vec<&str> = object.keys().map(String::as_str).collect();
            documented.sort();
            printed.sort();
            assert_eq!(printed, documented, "the keys of {at} differ from docs/managing-caches.md");
            for (key, shape) in keys {
                if let Some(shape) = shape {
                    assert_shape(&object[key], shape, shapes, &format!("{at}.{key}"));
                }
            }
        }
        (shape, value) => panic!("{at}: documented as {shape:?}, printed {value}"),
    }
}

/// Each verb's `--json` has exactly the keys the table in docs/managing-caches.md documents, and the
/// table has a row for every verb with `--json` (read from the docs, so either side changing fails).
#[test]
fn every_json_document_has_the_documented_keys() {
    let shapes = documented_shapes();
    let verbs: Vec<&str> = shapes.keys().map(String::as_str).filter(|name| name.chars().all(|c| c.is_ascii_lowercase())).collect();
    assert_eq!(verbs, ["clear", "delete", "flush", "has", "list", "prune", "usage"]);
    let machine = Machine::new();
    let check = |verb: &str, args: &[&str]| {
        let run = machine.run(args);
        assert!(run.code == 0 || (verb == "has" && run.code == 1), "{args:?}: {}\n{}", run.code, run.stderr);
        assert_shape(&json(&run), &shapes[verb], &shapes, verb);
    };
    save(&machine, "a", "one");
    save(&machine, "b", "two");
    check("list", &["list", "--json"]);
    check("usage", &["usage", "--json"]);
    check("has", &["has", "a", "--json"]);
    check("has", &["has", "nothing", "--json"]);
    check("delete", &["delete", "a", "--json"]);
    check("delete", &["delete", "a", "--missing-ok", "--json"]);
    check("flush", &["flush", "--older-than", "0s", "--json"]);
    save(&machine, "c", "three");
    check("prune", &["prune", "--max-size", "0", "--json"]);
    save(&machine, "d", "four");
    check("clear", &["clear", "--yes", "--json"]);
    check("clear", &["clear", "--all-scopes", "--yes", "--json"]);
}

/// `delete --json` of a key with no entry prints the document of a delete that deleted something,
/// with nothing in it (exit 1, or 0 with --missing-ok); `clear --json` gives its scope as a value
/// (the scope's name, null for every scope) and the store beside it.
#[test]
fn delete_of_a_missing_key_and_clear_print_values() {
    let machine = Machine::new();
    save(&machine, "a", "one");
    let deleted = json(&machine.run(&["delete", "a", "--json"]).success());
    assert_eq!(deleted["deleted_count"], 1);
    let missing = machine.run(&["--quiet", "delete", "a", "--json"]);
    assert_eq!((missing.code, missing.stderr.as_str()), (1, ""));
    let missing = json(&missing);
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&missing), keys(&deleted));
    assert_eq!(
        missing,
        serde_json::json!({
            "operation": "delete", "deleted": [], "failed": [], "deleted_count": 0, "freed_bytes": 0,
            "leftovers_removed": [], "leftovers_failed": [], "leftovers_unlisted": null, "dry_run": false,
        })
    );
    assert_eq!(json(&machine.run(&["delete", "a", "--missing-ok", "--json"]).success()), missing);

    save(&machine, "b", "two");
    let own = json(&machine.run(&["clear", "--yes", "--json"]).success());
    let store = format!("file://{}", machine.cache_dir().join("store").display());
    assert_eq!(
        (&own["scope"], &own["store"], &own["deleted_count"]),
        (&serde_json::json!("local"), &serde_json::json!(store), &serde_json::json!(1))
    );
    let named = json(&machine.run(&["--scope", "other", "clear", "--yes", "--json"]).success());
    assert_eq!((&named["scope"], &named["store"]), (&serde_json::json!("other"), &serde_json::json!(store)));
    let all = json(&machine.run(&["clear", "--all-scopes", "--yes", "--json"]).success());
    assert_eq!((&all["scope"], &all["store"]), (&serde_json::Value::Null, &serde_json::json!(store)));
}

/// Keys of the incomplete multipart uploads in the bucket.
fn incomplete_uploads(server: &S3Server) -> Vec<String> {
    let listed = boto3(server, "print(json.dumps(sorted(u['Key'] for u in s3.list_multipart_uploads(Bucket=bucket).get('Uploads', []))))");
    serde_json::from_str(&listed).unwrap()
}

fn objects_of(document: &serde_json::Value, field: &str, name: &str) -> Vec<String> {
    let listed = document[field].as_array().unwrap_or_else(|| panic!("no {field} in {document:#}"));
    listed.iter().map(|e| e[name].as_str().unwrap().to_owned()).collect()
}

/// `--dry-run` on `clear`, `flush` and `prune` lists exactly what the real run then deletes (entries
/// and old leftovers), asks nothing, and deletes nothing: every object and the incomplete upload stay.
#[test]
fn dry_run_lists_what_would_go_and_deletes_nothing() {
    let server = S3Server::start(ServerKind::Moto);
    plant(&server, &["team/README.md".into(), "other/local/k.tar.zst".into()], 3);
    plant(&server, &["team/local/a.tar.zst".into(), "team/local/a.tar.zst.used".into(), "team/feature-1/b.tar.gz".into()], 5);
    // An upload a killed save left: moto dates it 2010, older than the default leftover age of a day.
    boto3(
        &server,
        "u = s3.create_multipart_upload(Bucket=bucket, Key='team/local/half.tar.zst')\ns3.upload_part(Bucket=bucket, Key='team/local/half.tar.zst', UploadId=u['UploadId'], PartNumber=1, Body=b'x' * 7)\n",
    );
    let before = bucket_keys(&server);
    assert_eq!(before.len(), 5);
    assert_eq!(incomplete_uploads(&server), ["team/local/half.tar.zst"]);
    let machine = machine(&server);

    // Off a terminal and without --yes: a dry run needs no confirmation.
    let own = json(&machine.run(&["clear", "--dry-run", "--json"]).success());
    assert_eq!(objects_of(&own, "deleted", "object"), ["local/a.tar.zst"], "{own:#}");
    assert_eq!(objects_of(&own, "leftovers_removed", "object"), ["local/half.tar.zst"], "{own:#}");
    assert_eq!((own["dry_run"].as_bool(), own["deleted_count"].as_u64(), own["freed_bytes"].as_u64()), (Some(true), Some(1), Some(5)));

    let all = machine.run(&["clear", "--all-scopes", "--dry-run"]).success();
    let mut rows: Vec<&str> = all.stdout.lines().map(|l| l.split_whitespace().next().unwrap_or("")).collect();
    rows[1..3].sort();
    assert_eq!(rows, ["KEY", "a", "b", "LEFTOVER", "incomplete"], "{}", all.stdout);
    assert!(all.stdout.contains("incomplete upload") && all.stdout.contains("local/half.tar.zst"), "{}", all.stdout);
    assert!(all.stderr.contains("clear --dry-run: would delete 2 entries, 10 B; nothing deleted"), "{}", all.stderr);
    assert!(all.stderr.contains("clear --dry-run: would remove 1 leftover of interrupted saves, 7 B; nothing removed"), "{}", all.stderr);

    let flushed = json(&machine.run(&["flush", "--older-than", "0s", "--dry-run", "--json"]).success());
    let mut flushed_keys = objects_of(&flushed, "deleted", "key");
    flushed_keys.sort();
    assert_eq!(flushed_keys, ["a", "b"], "{flushed:#}");
    assert_eq!((flushed["dry_run"].as_bool(), flushed["older_than_secs"].as_u64()), (Some(true), Some(0)));

    let planned = json(&machine.run(&["prune", "--max-size", "5", "--dry-run", "--json"]).success());
    assert_eq!(planned["dry_run"], true, "{planned:#}");
    assert_eq!((planned["bytes_before"].as_u64(), planned["bytes_after"].as_u64()), (Some(10), Some(5)));
    assert_eq!(planned["deleted_count"], 1, "{planned:#}");
    assert_eq!(objects_of(&planned, "leftovers_removed", "object"), ["local/half.tar.zst"]);

    assert_eq!(bucket_keys(&server), before, "a dry run deleted objects");
    assert_eq!(incomplete_uploads(&server), ["team/local/half.tar.zst"], "a dry run aborted an upload");

    // The real run deletes exactly what the dry run listed, and says nothing about a dry run.
    let pruned = json(&machine.run(&["prune", "--max-size", "5", "--json"]).success());
    assert_eq!(objects_of(&pruned, "deleted", "object"), objects_of(&planned, "deleted", "object"));
    assert_eq!(pruned["dry_run"], false, "{pruned:#}");
    assert_eq!(incomplete_uploads(&server), Vec::<String>::new());
}

/// A store whose bucket does not exist fails with exit 3 and an error that names the bucket, the
/// endpoint and the settings to check (the server's own message names neither).
#[test]
fn a_missing_bucket_is_named() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
    machine.use_server(&server, "");
    machine.env("S3CACHE_STORE", "s3://no-such-bucket-here/team");
    let run = machine.run(&["list"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let authority = server.endpoint().trim_start_matches("http://").trim_end_matches('/').to_owned();
    let expected = format!(
        "NoSuchBucket: there is no bucket \"no-such-bucket-here\" at {authority}; check the store URL (--store) and the endpoint (--endpoint)"
    );
    let error = run.stderr.lines().find(|line| line.starts_with("error: ")).unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(error.ends_with(&expected), "{error}\nexpected the end: {expected}");
}
