//! Object names and keys (issue 20): stores nested in one bucket see only their own entries in every
//! admin verb; keys that a path could misread are refused before any request; keys with `/` are
//! encoded, and entries an earlier s3cache saved under slash names are still restored but never
//! counted or deleted.

use std::collections::BTreeMap;
use std::fs;

use s3cache_tests::proxy::FaultProxy;
use s3cache_tests::{Machine, Run, S3Server, ServerKind, boto3};

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr: {}", run.stdout, run.stderr))
}

/// Every object in the bucket with the MD5 of its bytes, by key.
fn bucket_objects(server: &S3Server) -> BTreeMap<String, String> {
    let out = boto3(
        server,
        "import hashlib\np = s3.get_paginator('list_objects_v2')\nkeys = [o['Key'] for page in p.paginate(Bucket=bucket) for o in page.get('Contents', [])]\n\
         print(json.dumps({k: hashlib.md5(s3.get_object(Bucket=bucket, Key=k)['Body'].read()).hexdigest() for k in keys}))",
    );
    serde_json::from_str(&out).unwrap()
}

fn machine(server: &S3Server, prefix: &str) -> Machine {
    let mut machine = Machine::new();
    machine.use_server(server, prefix);
    machine
}

fn save(machine: &Machine, scope: &str, key: &str, content: &str) {
    let dir = machine.workspace().join("deps");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("file"), content).unwrap();
    machine.run(&["--scope", scope, "save", "--key", key, "--path", "deps"]).success();
}

/// `(scope, key)` of every entry `list --all-scopes` shows.
fn listed(machine: &Machine) -> Vec<(String, String)> {
    let all = json(&machine.run(&["list", "--all-scopes", "--json"]).success());
    let mut found: Vec<(String, String)> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["scope"].as_str().unwrap().to_owned(), e["key"].as_str().unwrap().to_owned()))
        .collect();
    found.sort();
    found
}

/// The objects deleted by a removal verb's JSON, sorted.
fn deleted_objects(removal: &serde_json::Value) -> Vec<String> {
    let mut objects: Vec<String> =
        removal["deleted"].as_array().unwrap().iter().map(|e| e["object"].as_str().unwrap().to_owned()).collect();
    objects.sort();
    objects
}

/// Three stores in one bucket, at its root, at `big` and at `team/ci`, each with entries in two
/// scopes (keys with and without `/`; the root even has a scope named `big`): `list`, `usage`,
/// `delete`, `prune`, `flush` and `clear` of each store count and delete exactly its own entries, and
/// every other object stays byte for byte.
fn nested_stores_see_only_their_own_entries(kind: ServerKind) {
    let server = S3Server::start(kind);
    let stores = [("", "root"), ("big", "big"), ("team/ci", "ci")];
    let machines: Vec<Machine> = stores.iter().map(|(prefix, _)| machine(&server, prefix)).collect();
    let mut own: Vec<Vec<(String, String)>> = Vec::new();
    for ((_, name), machine) in stores.iter().zip(&machines) {
        let scopes = if *name == "root" { ["big", "s1"] } else { ["s1", "local"] };
        let mut entries = Vec::new();
        for (scope, key) in [(scopes[0], format!("k-{name}")), (scopes[0], format!("s1/npm-{name}")), (scopes[1], format!("npm/{name}/x"))]
        {
            save(machine, scope, &key, &format!("{name} {scope} {key}"));
            entries.push((scope.to_owned(), key));
        }
        entries.sort();
        own.push(entries);
    }
    let all = bucket_objects(&server);
    assert_eq!(all.len(), 9, "{all:?}");
    assert!(all.contains_key("big/s1,npm-root.tar.zst") && all.contains_key("big/s1/s1,npm-big.tar.zst"), "{all:?}");
    assert!(all.contains_key("team/ci/local/npm,ci,x.tar.zst"), "{all:?}");

    for (index, machine) in machines.iter().enumerate() {
        assert_eq!(listed(machine), own[index], "store {:?}", stores[index].0);
        let usage = json(&machine.run(&["usage", "--json"]).success());
        assert_eq!(usage["total"]["entries"], 3, "store {:?}: {usage}", stores[index].0);
        let mut scopes: Vec<&str> = usage["scopes"].as_array().unwrap().iter().map(|s| s["scope"].as_str().unwrap()).collect();
        scopes.sort();
        let mut expected: Vec<&str> = own[index].iter().map(|(scope, _)| scope.as_str()).collect();
        expected.dedup();
        assert_eq!(scopes, expected, "store {:?}", stores[index].0);
    }

    // What the old names confused: key `s1/k-big` in the root's scope `big` was the nested store's `big/s1/k-big.tar.zst`.
    let missing = machines[0].run(&["--scope", "big", "delete", "s1/k-big"]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(missing.stderr.contains("no cache entry for key \"s1/k-big\" in scope big"), "{}", missing.stderr);
    assert_eq!(bucket_objects(&server), all);

    let objects_of = |prefix: &str, entries: &[(String, String)]| -> Vec<String> {
        let mut names: Vec<String> =
            entries.iter().map(|(scope, key)| format!("{prefix}{scope}/{}.tar.zst", key.replace('/', ","))).collect();
        names.sort();
        names
    };
    let mut left = all.clone();
    let removals: [(&[&str], usize); 3] = [
        (&["prune", "--max-size", "0", "--json"], 0),
        (&["flush", "--older-than", "0s", "--json"], 1),
        (&["clear", "--all-scopes", "--yes", "--json"], 2),
    ];
    for (args, index) in removals {
        let removal = json(&machines[index].run(args).success());
        assert_eq!(deleted_objects(&removal), objects_of("", &own[index]), "{args:?} on store {:?}", stores[index].0);
        let prefix = if stores[index].0.is_empty() { String::new() } else { format!("{}/", stores[index].0) };
        for name in objects_of(&prefix, &own[index]) {
            assert!(left.remove(&name).is_some(), "{name}");
        }
        assert_eq!(bucket_objects(&server), left, "after {args:?} on store {:?}", stores[index].0);
        for other in (0..3).filter(|other| *other > index) {
            assert_eq!(listed(&machines[other]), own[other], "store {:?} after {args:?}", stores[other].0);
        }
    }
    assert!(left.is_empty(), "{left:?}");
}

/// Nested stores on s3s-fs.
#[test]
fn nested_stores_see_only_their_own_entries_on_s3s_fs() {
    nested_stores_see_only_their_own_entries(ServerKind::S3sFs);
}

/// Nested stores on moto.
#[test]
fn nested_stores_see_only_their_own_entries_on_moto() {
    nested_stores_see_only_their_own_entries(ServerKind::Moto);
}

/// Each key a path could misread, and a key whose marker's name would pass S3's 1,024 bytes, is
/// refused with exit 2 and the rule, by save, restore (as key and as restore key), has and delete,
/// and not one request reaches the server.
#[test]
fn invalid_keys_are_refused_before_any_request() {
    let server = S3Server::start(ServerKind::S3sFs);
    let proxy = FaultProxy::start(server.port);
    let prefix = "p".repeat(600);
    let mut machine = machine(&server, &prefix);
    machine.env("AWS_ENDPOINT_URL", proxy.endpoint());
    fs::create_dir_all(machine.workspace().join("deps")).unwrap();
    fs::write(machine.workspace().join("deps/file"), "x").unwrap();
    let dots = "a key must not have \".\" or \"..\" as a segment between slashes";
    let long_key = "k".repeat(420);
    // 601 (prefix and `/`) + 5 (`local`) + 1 + 420 + 8 (`.tar.zst`) + 5 (`.used`).
    let too_long = format!(
        "its object names would be up to 1040 bytes with the store prefix \"{prefix}/\", the scope and the suffix; S3 allows at most 1024"
    );
    // The key, the rule, and whether a restore key (a prefix, whose last segment may be partial) breaks it too.
    let cases: Vec<(&str, String, bool)> = vec![
        ("../etc", dots.into(), true),
        ("a/../b", dots.into(), true),
        ("a/./b", dots.into(), true),
        ("..", dots.into(), false),
        ("a//b", "a key must not contain an empty segment (\"//\")".into(), true),
        ("/a", "a key must not start with \"/\"".into(), true),
        ("npm-v1/", "a key must not end with \"/\" (a restore key may: it is a prefix)".into(), false),
        ("a\u{1}b", "a key must not contain control characters".into(), true),
        (&long_key, too_long, true),
    ];
    for (key, rule, as_restore_key) in &cases {
        let expected = format!("invalid key {key:?}: {rule}");
        let mut runs = vec![
            ("save", machine.run(&["save", "--key", key, "--path", "deps"])),
            ("restore", machine.run(&["restore", "--key", key, "--path", "deps"])),
            ("has", machine.run(&["has", key])),
            ("delete", machine.run(&["delete", key])),
        ];
        if *as_restore_key {
            runs.push(("restore-key", machine.run(&["restore", "--key", "fine", "--restore-key", key, "--path", "deps"])));
        }
        for (verb, run) in runs {
            assert_eq!(run.code, 2, "{verb} {key:?}: {}", run.stderr);
            assert!(run.stderr.contains(&expected), "{verb} {key:?}: {}", run.stderr);
        }
    }
    assert_eq!(proxy.requests(), Vec::<String>::new());
    assert!(fs::read_dir(server.data_dir().join(&server.bucket)).unwrap().next().is_none(), "the bucket is not empty");

    // The same store takes keys that only look alike, and sends requests for them.
    let fine = machine
        .run(&["restore", "--key", "v1..2/a/.cache", "--restore-key", "npm-v1/", "--restore-key", "deps/..", "--path", "deps"])
        .success();
    assert!(fine.stderr.contains("cache miss: no usable cache entry for key \"v1..2/a/.cache\""), "{}", fine.stderr);
    assert!(!proxy.requests().is_empty());
}

/// Copies the object `from` to `to` in the bucket and deletes `from`: how an earlier s3cache's name
/// for the same entry is made (the bytes do not name the key).
fn rename(server: &S3Server, from: &str, to: &str) {
    boto3(
        server,
        &format!(
            "s3.copy_object(Bucket=bucket, Key={to:?}, CopySource={{'Bucket': bucket, 'Key': {from:?}}})\ns3.delete_object(Bucket=bucket, Key={from:?})"
        ),
    );
}

/// A key with `/` is saved under its encoded name and found by restore-key prefixes with or without
/// `/`. An entry at the slash name an earlier s3cache gave it is still restored (exactly and by
/// prefix), found by `has` and kept by a save of its key, but no admin verb lists, counts or
/// deletes it, and restores write it no marker.
#[test]
fn slash_named_entries_are_restored_but_never_counted() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = machine(&server, "team");
    machine.env("S3CACHE_TOUCH_INTERVAL", "0s");
    save(&machine, "local", "npm/linux/1", "old");
    rename(&server, "team/local/npm,linux,1.tar.zst", "team/local/npm/linux/1.tar.zst");
    save(&machine, "local", "npm/mac/1", "new");
    let before = bucket_objects(&server);
    assert_eq!(before.keys().collect::<Vec<_>>(), ["team/local/npm,mac,1.tar.zst", "team/local/npm/linux/1.tar.zst"]);

    let restored = |args: &[&str]| {
        let _ = fs::remove_dir_all(machine.workspace().join("deps"));
        let run = machine.run(&[&["restore"], args, &["--path", "deps"]].concat()).success();
        (run.stderr, fs::read_to_string(machine.workspace().join("deps/file")).unwrap_or_default())
    };
    let (stderr, content) = restored(&["--key", "npm/linux/1"]);
    assert_eq!(content, "old", "{stderr}");
    assert!(stderr.contains("restored npm/linux/1 (exact match)"), "{stderr}");
    for prefix in ["npm/linux/", "npm/l", "np"] {
        let (stderr, content) = restored(&["--key", "npm/linux/2", "--restore-key", prefix]);
        let expected = if prefix == "np" { "new" } else { "old" };
        assert_eq!(content, expected, "{prefix}: {stderr}");
    }
    let (stderr, content) = restored(&["--key", "npm/mac/2", "--restore-key", "npm/mac/"]);
    assert_eq!(content, "new", "{stderr}");
    assert!(stderr.contains("restored npm/mac/1 (fallback for npm/mac/2)"), "{stderr}");
    assert_eq!(machine.run(&["has", "npm/linux/1"]).code, 0);

    let kept = machine.run(&["save", "--key", "npm/linux/1", "--path", "deps"]).success();
    assert!(kept.stderr.contains("cache entry npm/linux/1 already exists"), "{}", kept.stderr);
    assert_eq!(listed(&machine), vec![("local".to_owned(), "npm/mac/1".to_owned())]);
    assert_eq!(json(&machine.run(&["usage", "--json"]).success())["total"]["entries"], 1);
    assert_eq!(machine.run(&["delete", "npm/linux/1"]).code, 1);
    let cleared = json(&machine.run(&["clear", "--all-scopes", "--yes", "--json"]).success());
    assert_eq!(deleted_objects(&cleared), ["local/npm,mac,1.tar.zst"]);
    let left = bucket_objects(&server);
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        ["team/local/npm/linux/1.tar.zst"],
        "a marker was written for the slash-named entry, or it was deleted"
    );
    assert_eq!(left["team/local/npm/linux/1.tar.zst"], before["team/local/npm/linux/1.tar.zst"]);
}
