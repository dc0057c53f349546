//! Command-line behaviour: key templates, restore-key fallbacks, misses and exit codes, bad
//! credentials, and the compiled-guest cache.

use std::fs;

use s3cache_tests::{S3Server, Sandbox, ServerKind};

/// `key` renders templates with file checksums, context variables and allowed env values.
#[test]
fn renders_key_templates() {
    let mut machine = Sandbox::new();
    machine.env("CACHE_FLAVOR", "nightly").env("AWS_ACCESS_KEY_ID", "AKID").env("AWS_SECRET_ACCESS_KEY", "do-not-print-me-1234");
    fs::write(machine.workspace().join("Cargo.lock"), "abc").unwrap();
    let run = machine
        .run(&["key", "--template", "{{ os }}-{{ arch }}-{{ env \"CACHE_FLAVOR\" }}-{{ checksum \"Cargo.lock\" }}-{{ env \"AWS_SECRET_ACCESS_KEY\" }}"])
        .success();
    let expected = format!("{}-{}-nightly-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad-", std::env::consts::OS, std::env::consts::ARCH);
    assert_eq!(run.stdout.trim(), expected);
    assert!(!run.stderr.contains("do-not-print-me"), "{}", run.stderr);
    let bad = machine.run(&["key", "--template", "{{ checksum \"missing.lock\" }}"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("missing.lock"), "{}", bad.stderr);
}

/// A miss exits 0 and says so; `--fail-on-cache-miss` turns it into exit 1; keys are validated.
#[test]
fn misses_are_not_errors_unless_asked() {
    let machine = Sandbox::new();
    let run = machine.run(&["restore", "--key", "nothing-here", "--path", "x"]).success();
    assert!(run.stderr.contains("cache miss"), "{}", run.stderr);
    let run = machine.run(&["restore", "--key", "nothing-here", "--path", "x", "--fail-on-cache-miss"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let run = machine.run(&["save", "--key", "a,b", "--path", "x"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("commas"), "{}", run.stderr);
}

/// Restore keys fall back to the newest entry with the prefix; an existing key is never overwritten.
#[test]
fn falls_back_to_the_newest_restore_key_match() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Sandbox::new();
    machine.use_server(&server, "fallback");
    let dir = machine.workspace().join("out");
    fs::create_dir_all(&dir).unwrap();
    for version in ["1", "2"] {
        fs::write(dir.join("version"), version).unwrap();
        machine.run(&["save", "--key", &format!("deps-{version}"), "--path", "out"]).success();
        std::thread::sleep(std::time::Duration::from_millis(1100)); // S3 times have 1 s resolution
    }
    fs::write(dir.join("version"), "changed").unwrap();
    let run = machine.run(&["save", "--key", "deps-1", "--path", "out"]).success();
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);

    fs::remove_dir_all(&dir).unwrap();
    let run = machine.run(&["restore", "--key", "deps-3", "--restore-key", "nope-", "--restore-key", "deps-", "--path", "out"]).success();
    assert!(run.stderr.contains("restored deps-2 (fallback for deps-3)"), "{}", run.stderr);
    assert_eq!(fs::read_to_string(dir.join("version")).unwrap(), "2");
}

/// Wrong credentials against the strict server: a warning, exit 0, and the secret never printed.
#[test]
fn wrong_credentials_warn_without_leaking_the_secret() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Sandbox::new();
    machine.use_server(&server, "");
    machine.env("AWS_SECRET_ACCESS_KEY", "wrong-secret-canary-7c1e");
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/f"), "x").unwrap();
    for args in [&["save", "--key", "k", "--path", "out"][..], &["restore", "--key", "k", "--path", "out"][..]] {
        let run = machine.run(args).success();
        assert!(run.stderr.contains("warning"), "{}", run.stderr);
        assert!(run.stderr.contains("403"), "{}", run.stderr);
        assert!(!run.stderr.contains("wrong-secret-canary") && !run.stdout.contains("wrong-secret-canary"), "{}", run.stderr);
    }
    let run = machine.run(&["save", "--key", "k", "--path", "out", "--fail-on-error"]);
    assert_eq!(run.code, 1);
}

/// The guest is compiled once per machine and tier: a first run compiles the quick (Winch) copy and
/// caches it; a run with heavy work (16 MiB or more) also compiles the optimized (Cranelift) copy in
/// the background and caches it before exiting; later runs load the optimized copy and recompile
/// nothing.
#[test]
fn caches_the_compiled_guest() {
    let mut machine = Sandbox::new();
    let cache = machine.scratch("own-guest-cache");
    machine.env("S3CACHE_CACHE_DIR", cache.display().to_string());
    let compiled = || -> Vec<(String, std::time::SystemTime)> {
        let mut files: Vec<_> = fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), fs::metadata(&p).unwrap().modified().unwrap()))
            .collect();
        files.sort();
        files
    };
    machine.run(&["key", "--template", "x"]).success();
    let quick = compiled();
    assert_eq!(quick.len(), 1, "{quick:?}");
    assert!(quick[0].0.starts_with("guest-winch-"), "{quick:?}");
    machine.run(&["key", "--template", "x"]).success();
    assert_eq!(compiled(), quick, "the second run must not recompile");

    fs::create_dir_all(machine.workspace().join("big")).unwrap();
    fs::write(machine.workspace().join("big/blob"), s3cache_tests::tree::noise(17 << 20, 3)).unwrap();
    let run = machine.env("S3CACHE_LOG", "s3cache=debug").run(&["save", "--key", "heavy", "--path", "big"]).success();
    assert!(run.stderr.contains("optimized guest ready"), "{}", run.stderr);
    let both = compiled();
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both[0].0.starts_with("guest-cranelift-") && both[1] == quick[0], "{both:?}");
    let run = machine.run(&["key", "--template", "x"]).success();
    assert!(run.stderr.lines().any(|l| l.contains("guest loaded") && l.contains("cranelift")), "{}", run.stderr);
    assert_eq!(compiled(), both, "the optimized copy is loaded, nothing recompiled");
}

/// Every command has `--help`.
#[test]
fn every_command_has_help() {
    let machine = Sandbox::new();
    for command in [&["--help"][..], &["save", "--help"], &["restore", "--help"], &["key", "--help"]] {
        let run = machine.run(command).success();
        assert!(run.stdout.contains("Usage"), "{}", run.stdout);
    }
}

/// `--lookup-only` reports a restorable entry without touching the target, and `--summary-json`
/// writes a machine-readable summary of every save and restore.
#[test]
fn lookup_only_and_json_summaries() {
    let machine = Sandbox::new();
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/f"), "content").unwrap();
    let summary = machine.scratch("summary").join("s.json");
    let summary_arg = summary.display().to_string();
    machine.run(&["save", "--key", "deps-1", "--path", "out", "--summary-json", &summary_arg]).success();
    let saved: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!((saved["operation"].as_str(), saved["outcome"].as_str()), (Some("save"), Some("saved")));
    assert_eq!(saved["sha256"].as_str().map(str::len), Some(64));

    fs::remove_dir_all(machine.workspace().join("out")).unwrap();
    let run = machine.run(&["restore", "--key", "deps-2", "--restore-key", "deps-", "--path", "out", "--lookup-only", "--summary-json", &summary_arg]).success();
    assert!(run.stderr.contains("cache entry deps-1 exists") && run.stderr.contains("lookup only"), "{}", run.stderr);
    assert!(!machine.workspace().join("out").exists(), "lookup-only restored something");
    let looked: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!(looked["outcome"], "lookup-hit");
    assert_eq!(looked["cache_hit"], true);
    assert_eq!(looked["exact"], false);
    assert_eq!(looked["matched_key"], "deps-1");
    assert_eq!(looked["sha256"], saved["sha256"]);

    machine.run(&["restore", "--key", "nope", "--path", "out", "--summary-json", &summary_arg]).success();
    let missed: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!((missed["outcome"].as_str(), missed["cache_hit"].as_bool()), (Some("miss"), Some(false)));
}
