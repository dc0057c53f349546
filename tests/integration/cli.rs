//! Command-line behaviour: key templates, restore-key fallbacks, misses and exit codes, bad
//! credentials, and the compiled-guest cache.

use std::fs;

use s3cache_tests::{Machine, S3Server, ServerKind};

/// `key` renders templates with file checksums, context variables and allowed env values.
#[test]
fn renders_key_templates() {
    let mut machine = Machine::new();
    machine.env("CACHE_FLAVOR", "nightly").env("AWS_ACCESS_KEY_ID", "AKID").env("AWS_SECRET_ACCESS_KEY", "do-not-print-me-1234");
    fs::write(machine.workspace().join("Cargo.lock"), "abc").unwrap();
    let run = machine
        .run(&[
            "key",
            "--template",
            "{{ os }}-{{ arch }}-{{ env \"CACHE_FLAVOR\" }}-{{ checksum \"Cargo.lock\" }}-{{ env \"AWS_SECRET_ACCESS_KEY\" }}",
        ])
        .success();
    let expected = format!(
        "{}-{}-nightly-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad-",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    assert_eq!(run.stdout.trim(), expected);
    assert!(!run.stderr.contains("do-not-print-me"), "{}", run.stderr);
    let bad = machine.run(&["key", "--template", "{{ checksum \"missing.lock\" }}"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("missing.lock"), "{}", bad.stderr);
}

/// A key copied from a workflow (`${{ hashFiles('...') }}`, which only GitHub's runner expands) is
/// refused with the same key in s3cache's spelling, for `key` and for `save`.
#[test]
fn github_expression_syntax_gets_our_spelling() {
    let machine = Machine::new();
    let github = "npm-${{ runner.os }}-${{ hashFiles('package-lock.json') }}";
    let hint = r#"
  hint: `${{ ... }}` is GitHub's expression syntax, which only the runner expands; in s3cache write npm-{{ os }}-{{ hashFiles "package-lock.json" }}"#;
    for args in [vec!["key", "--template", github], vec!["save", "--key", github, "--path", "."]] {
        let run = machine.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        // `save` may print its store first; the error is the line that starts so.
        assert!(run.stderr.lines().any(|line| line.starts_with("error: invalid key template: ")), "{args:?}: {}", run.stderr);
        assert!(run.stderr.trim_end().ends_with(hint), "{args:?}: {}", run.stderr);
    }
}

/// A template that does not parse is refused with what is wrong in words, then the template's line
/// with a caret under where parsing stopped, as lines (no `\n`, no handlebars internals), exit 2.
#[test]
fn template_syntax_errors_point_at_the_position() {
    let machine = Machine::new();
    for (template, expected) in [
        (
            "npm-{{ os ",
            "error: invalid key template: unclosed expression: the template ends before its `}}`\n  1:11 | npm-{{ os \n       |           ^\n",
        ),
        (
            "npm-{{ hashFiles \"a.lock }}",
            "error: invalid key template: unclosed string: no closing `\"` after this one\n  1:18 | npm-{{ hashFiles \"a.lock }}\n       |                  ^\n",
        ),
        ("v1-{{ os }-x", "error: invalid key template: unexpected `}`\n  1:10 | v1-{{ os }-x\n       |          ^\n"),
    ] {
        let run = machine.run(&["key", "--template", template]);
        assert_eq!((run.code, run.stdout.as_str(), run.stderr.as_str()), (2, "", expected), "{template}");
    }
}

/// A misspelt helper or variable is refused with the nearest name and every name there is.
#[test]
fn unknown_names_get_the_nearest_one() {
    let machine = Machine::new();
    for (template, expected) in [
        (
            "npm-{{ hashFile \"package-lock.json\" }}",
            "error: invalid key template: unknown helper `hashFile`; did you mean `hashFiles`? (the helpers are checksum, hashFiles, globHashFiles, md5sum, env)\n  1:5 | npm-{{ hashFile \"package-lock.json\" }}\n      |     ^\n",
        ),
        (
            "{{ ars }}",
            "error: invalid key template: unknown variable `ars`; did you mean `arch`? (the variables are os, arch, branch, epoch)\n  1:1 | {{ ars }}\n      | ^\n",
        ),
        (
            "k-{{ github.sha }}",
            "error: invalid key template: unknown variable `github.sha`; the variables are os, arch, branch, epoch\n  1:3 | k-{{ github.sha }}\n      |   ^\n",
        ),
    ] {
        let run = machine.run(&["key", "--template", template]);
        assert_eq!((run.code, run.stdout.as_str(), run.stderr.as_str()), (2, "", expected), "{template}");
    }
}

/// A file-hashing helper whose patterns match no file renders empty, as before, and says so, naming
/// every pattern; one that matches says nothing.
#[test]
fn hash_files_matching_nothing_warns() {
    let machine = Machine::new();
    fs::write(machine.workspace().join("go.sum"), "abc").unwrap();
    let run = machine.run(&["key", "--template", "npm-{{ hashFiles \"**/package-lock.json\" \"!vendor/**\" }}"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "npm-\n", "warning: hashFiles \"**/package-lock.json\" \"!vendor/**\" matched no files; it renders as empty\n")
    );
    let run = machine.run(&["key", "--template", "go-{{ globHashFiles \"*.mod\" }}"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "go-\n", "warning: globHashFiles \"*.mod\" matched no files; it renders as empty\n")
    );
    let run = machine.run(&["key", "--template", "go-{{ hashFiles \"go.sum\" }}-{{ globHashFiles \"*.sum\" }}"]).success();
    assert_eq!(run.stderr, "");
}

/// `key --help` lists every helper and variable, one line each; `--key`'s long help names them.
#[test]
fn key_help_lists_helpers_and_variables() {
    let machine = Machine::new();
    let help = machine.run(&["key", "--help"]).success().stdout;
    let reference = r#"
Helpers:
  checksum "FILE"          SHA-256 of the file, hex
  hashFiles "GLOB"...      GitHub's hashFiles of the files matched ("!GLOB" excludes); empty if none
  globHashFiles "GLOB"...  drone-cache's hashFiles: Go globs, pattern by pattern; empty if none
  md5sum "FILE"            drone-cache's checksum: MD5 of the file, hex; empty if unreadable
  env "NAME"               the variable's value; empty if unset or if the name may hold a secret

Variables:
  os                       the operating system: linux, macos, windows
  arch                     the processor: x86_64, aarch64
  branch                   the branch: S3CACHE_BRANCH, else the CI's (GITHUB_HEAD_REF, ...)
  epoch                    seconds since 1970
"#;
    // The reference, then the examples.
    assert!(help.contains(&format!("{reference}\nExamples:\n  # Print the key")), "{help}");
    for command in ["save", "restore"] {
        let help = machine.run(&[command, "--help"]).success().stdout;
        let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words.contains("A template may use the helpers checksum, hashFiles, globHashFiles, md5sum, env and the variables os, arch, branch, epoch; `s3cache key --help` says what each renders."),
            "{help}"
        );
    }
}

/// `key` opens no store and looks for no credentials: with a store nothing answers at and a
/// credential setup that any store-using command refuses, it prints the key and nothing else.
/// `-v` writes its diagnostics without colour codes when stderr is not a terminal (a CI log, a file).
#[test]
fn verbose_log_in_a_pipe_has_no_colour_codes() {
    let machine = Machine::new();
    let run = machine.run(&["-v", "key", "--template", "k-{{ os }}"]).success();
    assert!(run.stderr.contains(" DEBUG guest loaded tier="), "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "colour codes in a piped log: {:?}", run.stderr);
}

#[test]
fn key_needs_no_store_or_credentials() {
    let mut machine = Machine::new();
    machine
        .env("S3CACHE_STORE", "s3://unreachable-bucket/ci")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "AKIDHALFSET")
        .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/none")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token");
    fs::write(machine.workspace().join("Cargo.lock"), "abc").unwrap();
    let run = machine.run(&["key", "--template", "deps-{{ checksum \"Cargo.lock\" }}"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "deps-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n", "")
    );
    // The same environment is refused by a command that needs the store.
    let list = machine.run(&["list"]);
    assert_eq!(
        (list.code, list.stderr.as_str()),
        (2, "error: credentials from environment: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not\n")
    );
}

/// `--quiet` (or `S3CACHE_QUIET=true`) prints warnings and errors only: no notices, no store
/// announcement, no progress bar.
#[test]
fn quiet_prints_only_warnings_and_errors() {
    let mut machine = Machine::new();
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/f"), "content").unwrap();
    let loud = machine.run(&["save", "--key", "q-1", "--path", "out"]).success();
    assert!(loud.stderr.contains("(local default;") && loud.stderr.contains("saved q-1: "), "{}", loud.stderr);
    let run = machine.run(&["--quiet", "restore", "--key", "q-1", "--path", "out"]).success();
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""));
    let run = machine.run(&["save", "-q", "--key", "q-2", "--path", "nothing-here"]).success();
    assert_eq!(run.stderr, "warning: nothing to save under q-2: no --path matched a file (nothing-here)\n");
    machine.env("S3CACHE_QUIET", "true");
    let run = machine.run(&["restore", "--key", "q-3", "--path", "out"]).success();
    assert_eq!(run.stderr, "", "a miss is a notice");
    let run = machine.run(&["save", "--key", "a,b", "--path", "out"]);
    assert_eq!((run.code, run.stderr.as_str()), (2, "error: invalid key \"a,b\": a key must not contain commas\n"));
    let run = machine.run_on_terminal(&["restore", "--key", "q-1", "--path", "out"]).success();
    assert_eq!(run.stdout, "", "nothing on a terminal either");
}

/// The progress bar is drawn only on a terminal (with `TERM` set, not `dumb`), and never with
/// `--no-progress` (or `S3CACHE_NO_PROGRESS=true`); the notices stay.
#[test]
fn progress_bar_only_on_a_terminal() {
    let mut machine = Machine::new();
    machine.env("TERM", "xterm");
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    // 3 MiB that zstd cannot shrink, so that the transfer lasts long enough to be drawn.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fs::write(machine.workspace().join("out/f"), noise).unwrap();
    let bar = "restoring "; // the bar's label (the notice says "restored")
    let piped = machine.run(&["save", "--key", "p-1", "--path", "out"]).success();
    assert!(!piped.stderr.contains("saving"), "{}", piped.stderr);
    let run = machine.run_on_terminal(&["restore", "--key", "p-1", "--path", "out"]).success();
    assert!(run.stdout.contains(bar) && run.stdout.contains("restored p-1 (exact match)"), "{}", run.stdout);
    let run = machine.run_on_terminal(&["--no-progress", "restore", "--key", "p-1", "--path", "out"]).success();
    assert!(!run.stdout.contains("restoring") && run.stdout.contains("restored p-1 (exact match)"), "{}", run.stdout);
    machine.env("TERM", "dumb");
    let run = machine.run_on_terminal(&["restore", "--key", "p-1", "--path", "out"]).success();
    assert!(!run.stdout.contains("restoring") && run.stdout.contains("restored p-1 (exact match)"), "{}", run.stdout);
    machine.env("TERM", "xterm").env("S3CACHE_NO_PROGRESS", "true");
    let run = machine.run_on_terminal(&["restore", "--key", "p-1", "--path", "out"]).success();
    assert!(!run.stdout.contains("restoring") && run.stdout.contains("restored p-1 (exact match)"), "{}", run.stdout);
    let run = machine.run(&["restore", "--key", "p-1", "--path", "out"]).success();
    assert!(!run.stderr.contains("restoring"), "{}", run.stderr);
}

/// `-v` turns on s3cache's debug diagnostics; a valid `S3CACHE_LOG` wins over it, an invalid one
/// does not.
#[test]
fn verbose_loses_to_s3cache_log() {
    let mut machine = Machine::new();
    let debug_scopes = |run: &s3cache_tests::Run| run.stderr.lines().any(|l| l.contains("DEBUG") && l.contains("scopes"));
    let run = machine.run(&["restore", "--key", "v-1", "--path", "out"]).success();
    assert!(!debug_scopes(&run), "{}", run.stderr);
    let run = machine.run(&["-v", "restore", "--key", "v-1", "--path", "out"]).success();
    assert!(debug_scopes(&run), "{}", run.stderr);
    machine.env("S3CACHE_LOG", "error");
    let run = machine.run(&["-v", "restore", "--key", "v-1", "--path", "out"]).success();
    assert!(
        !debug_scopes(&run) && run.stderr.contains("cache miss: no usable cache entry for key \"v-1\" in scopes local"),
        "{}",
        run.stderr
    );
    machine.env("S3CACHE_LOG", "s3cache=[");
    let run = machine.run(&["-v", "restore", "--key", "v-1", "--path", "out"]).success();
    assert!(debug_scopes(&run), "{}", run.stderr);
}

/// A miss exits 0 and says so; `--fail-on-cache-miss` turns it into exit 1; keys are validated.
#[test]
fn misses_are_not_errors_unless_asked() {
    let machine = Machine::new();
    let run = machine.run(&["restore", "--key", "nothing-here", "--path", "x"]).success();
    assert!(run.stderr.contains("cache miss"), "{}", run.stderr);
    assert!(run.stderr.contains("\ncache miss: no usable cache entry for key \"nothing-here\" in scopes local"), "{}", run.stderr);
    // Failing the command makes it an error, printed even with --quiet.
    let run = machine.run(&["--quiet", "restore", "--key", "nothing-here", "--path", "x", "--fail-on-cache-miss"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("error: cache miss: no usable cache entry for key \"nothing-here\" in scopes local"), "{}", run.stderr);
    let run = machine.run(&["save", "--key", "a,b", "--path", "x"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("commas"), "{}", run.stderr);
}

/// Restore keys fall back to the newest entry with the prefix; an existing key is never overwritten.
#[test]
fn falls_back_to_the_newest_restore_key_match() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
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
    assert!(
        run.stderr.contains("cache entry deps-1 already exists; not saving (entries are immutable; --overwrite replaces one)"),
        "{}",
        run.stderr
    );

    fs::remove_dir_all(&dir).unwrap();
    let run = machine
        .run(&["restore", "--key", "deps-3", "--restore-key", "nope-", "--restore-key", "deps-", "--path", "out", "--summary-json", "-"])
        .success();
    assert!(run.stderr.contains("restored deps-2 (fallback for deps-3)"), "{}", run.stderr);
    // As actions/cache's cache-hit, cache_hit is for the primary key only: a fallback is a hit that is not one.
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (&summary["outcome"], &summary["cache_hit"], &summary["exact"], &summary["matched_key"]),
        (&"hit".into(), &false.into(), &false.into(), &"deps-2".into())
    );
    assert_eq!(fs::read_to_string(dir.join("version")).unwrap(), "2");
}

/// Wrong credentials against the strict server: a warning, exit 0, and the secret never printed.
#[test]
fn wrong_credentials_warn_without_leaking_the_secret() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = Machine::new();
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
    // The failure that --fail-on-error turns into exit 1 is an error; tolerated, the same line is a warning.
    let tolerated = machine.run(&["save", "--key", "k", "--path", "out"]).success();
    let run = machine.run(&["save", "--key", "k", "--path", "out", "--fail-on-error"]);
    assert_eq!(run.code, 1);
    let line = |run: &s3cache_tests::Run, label: &str| {
        let prefix = format!("{label}: cache k not saved: ");
        run.stderr.lines().find_map(|l| l.strip_prefix(&prefix)).map(str::to_owned).unwrap_or_else(|| panic!("{prefix}: {}", run.stderr))
    };
    assert_eq!(line(&run, "error"), line(&tolerated, "warning"));
    assert!(!run.stderr.contains("warning: cache k not saved"), "{}", run.stderr);
}

/// The guest is compiled once per machine and tier: a first run compiles the quick (Winch) copy and
/// caches it; a run with heavy work (16 MiB or more) also compiles the optimized (Cranelift) copy in
/// the background and caches it before exiting; later runs load the optimized copy and recompile
/// nothing.
#[test]
fn caches_the_compiled_guest() {
    let mut machine = Machine::new();
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

/// Every command the top-level help lists has its own `--help`, which names the command in its
/// usage line; the list itself is the one expected, so a command added or dropped is noticed here.
#[test]
fn every_command_has_help() {
    let machine = Machine::new();
    let top = machine.run(&["--help"]).success();
    let listed: Vec<&str> = top
        .stdout
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   ")) // a description's continuation lines are indented further
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let expected = [
        "save",
        "restore",
        "key",
        "list",
        "usage",
        "has",
        "delete",
        "inspect",
        "clear",
        "flush",
        "prune",
        "serve",
        "semaphore",
        "github-action",
        "completions",
        "man",
        "plugin",
        "help",
    ];
    assert_eq!(listed, expected, "{}", top.stdout);
    for command in listed.iter().filter(|c| **c != "help") {
        let run = machine.run(&[command, "--help"]);
        assert_eq!(run.code, 0, "{command} --help: {}", run.stderr);
        let usage = if *command == "semaphore" { "Usage:\n  cache [command]" } else { &format!("Usage: s3cache {command}") };
        assert!(run.stdout.contains(usage), "{command} --help has no {usage:?} line:\n{}", run.stdout);
    }
}

/// The headings of a help text, in order, each with the long flags under it.
fn help_sections(help: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in help.lines() {
        if let Some(heading) = line.strip_suffix(':').filter(|h| !h.starts_with(' ') && !h.is_empty()) {
            sections.push((heading.to_owned(), Vec::new()));
        } else if let (Some(section), Some(at)) = (sections.last_mut().filter(|(h, _)| h != "Examples"), line.find("--"))
            && (line[..at].trim_start().is_empty() || line[..at].trim_end().ends_with(','))
        {
            let flag: String = line[at + 2..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            section.1.push(flag);
        }
    }
    sections
}

/// The top-level help fits one screen: the commands, three shared flags, and examples. A command's
/// help lists its own flags first, then the shared ones that apply to it under their headings, and
/// hides those that do not apply (which still parse).
#[test]
fn help_shows_each_command_what_applies_to_it() {
    let machine = Machine::new();
    let top = machine.run(&["--help"]).success().stdout;
    assert!(top.lines().count() <= 70, "{} lines:\n{top}", top.lines().count());
    let headings: Vec<String> = help_sections(&top).into_iter().map(|(h, _)| h).collect();
    assert_eq!(headings, ["Commands", "Options", "Output", "Store", "Examples"], "{top}");
    let top_flags: Vec<String> = help_sections(&top).into_iter().flat_map(|(_, f)| f).collect();
    assert_eq!(top_flags, ["help", "version", "verbose", "quiet", "store"], "{top}");
    assert!(top.contains("  s3cache prune --max-size 10GiB --dry-run\n"), "{top}");
    // A long example goes on after a `\`, its flags with their values, so that it pastes into a shell.
    assert!(top.contains(" --restore-key deps- \\\n      --path target --path ~/.cargo/registry\n"), "{top}");

    let save = machine.run(&["save", "--help"]).success().stdout;
    let sections = help_sections(&save);
    let names: Vec<&str> = sections.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(
        names,
        [
            "Options",
            "Output",
            "Store",
            "Scopes (branch isolation)",
            "Transfer",
            "Publishing (new objects)",
            "Limits (the sandbox)",
            "Signed entries",
            "Examples"
        ],
        "{save}"
    );
    assert_eq!(sections[0].1[..3], ["key".to_owned(), "path".into(), "format".into()], "own flags first: {save}");
    assert!(sections[5].1.contains(&"acl".to_owned()), "{save}");
    assert_eq!(sections[7].1, ["signing-key", "trusted-keys", "store-namespace"], "{save}");

    let restore = machine.run(&["restore", "--help"]).success().stdout;
    let flags: Vec<String> = help_sections(&restore).into_iter().flat_map(|(_, f)| f).collect();
    for inapplicable in ["acl", "tag", "allow-untrusted-save", "leftover-age", "compression-level", "signing-key"] {
        assert!(!flags.contains(&inapplicable.to_owned()), "restore --help shows --{inapplicable}:\n{restore}");
    }
    for applicable in
        ["restore-key", "store", "scope", "max-unpacked-mb", "touch-interval", "stall-timeout-secs", "trusted-keys", "store-namespace"]
    {
        assert!(flags.contains(&applicable.to_owned()), "restore --help lacks --{applicable}:\n{restore}");
    }
    let list = machine.run(&["list", "--help"]).success().stdout;
    let flags: Vec<String> = help_sections(&list).into_iter().flat_map(|(_, f)| f).collect();
    assert!(!flags.contains(&"max-unpacked-mb".to_owned()) && flags.contains(&"all-scopes".to_owned()), "{list}");
    // Hidden from help, still accepted.
    machine.run(&["restore", "--acl", "private", "--key", "nothing", "--path", "x"]).success();
}

/// `completions` and `man` print to stdout before anything is configured: no store notice, no
/// guest; `--version` prints the version.
#[test]
fn completions_man_and_version() {
    let mut machine = Machine::new();
    machine.env("S3CACHE_STORE", "s3://unreachable-bucket/x").env("AWS_ACCESS_KEY_ID", "AKIDHALFSET");
    let bash = machine.run(&["completions", "bash"]).success();
    assert!(bash.stdout.starts_with("_s3cache() {") && bash.stdout.contains("complete -F _s3cache"), "{}", bash.stdout);
    assert_eq!(bash.stderr, "");
    let man = machine.run(&["man", "restore"]).success();
    assert!(man.stdout.contains(".TH s3cache-restore 1") && man.stdout.contains("\\-\\-restore\\-key"), "{}", man.stdout);
    assert_eq!(man.stderr, "");
    let bad = machine.run(&["completions", "tcsh"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("invalid value 'tcsh'"), "{}", bad.stderr);
    let version = machine.run(&["--version"]).success();
    assert_eq!(version.stdout, format!("s3cache {}\n", env!("CARGO_PKG_VERSION")));
    assert!(
        !machine.cache_dir().read_dir().unwrap().any(|e| e.unwrap().path().extension().is_some_and(|x| x == "cwasm")),
        "the guest was loaded"
    );
}

/// `--lookup-only` reports a restorable entry without touching the target, and `--summary-json`
/// writes a machine-readable summary of every save and restore.
#[test]
fn lookup_only_and_json_summaries() {
    let machine = Machine::new();
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/f"), "content").unwrap();
    let summary = machine.scratch("summary").join("s.json");
    let summary_arg = summary.display().to_string();
    machine.run(&["save", "--key", "deps-1", "--path", "out", "--summary-json", &summary_arg]).success();
    let saved: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!((saved["operation"].as_str(), saved["outcome"].as_str()), (Some("save"), Some("saved")));
    assert_eq!(saved["sha256"].as_str().map(str::len), Some(64));

    fs::remove_dir_all(machine.workspace().join("out")).unwrap();
    let run = machine
        .run(&["restore", "--key", "deps-2", "--restore-key", "deps-", "--path", "out", "--lookup-only", "--summary-json", &summary_arg])
        .success();
    assert!(run.stderr.contains("cache entry deps-1 exists") && run.stderr.contains("lookup only"), "{}", run.stderr);
    assert!(!machine.workspace().join("out").exists(), "lookup-only restored something");
    let looked: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!(looked["outcome"], "lookup-hit");
    // As actions/cache's cache-hit: true only for the exact key; this is a restore-key match.
    assert_eq!(looked["cache_hit"], false);
    assert_eq!(looked["exact"], false);
    assert_eq!(looked["matched_key"], "deps-1");
    assert_eq!(looked["sha256"], saved["sha256"]);

    machine.run(&["restore", "--key", "nope", "--path", "out", "--summary-json", &summary_arg]).success();
    let missed: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!((missed["outcome"].as_str(), missed["cache_hit"].as_bool()), (Some("miss"), Some(false)));
}

/// Runs `s3cache --quiet ARGS` (no store announcement) with stdout a pipe whose reader is gone before it starts (`| head -1` that
/// has read its line): the exit code and stderr.
fn run_into_a_closed_pipe(machine: &Machine, args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = std::process::Command::new(s3cache_tests::binary());
    command.arg("--quiet").args(args).current_dir(machine.workspace()).env_clear().stdout(writer).stderr(std::process::Stdio::piped());
    for (name, value) in machine.machine_env() {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A closed stdout ends every stdout output quietly: exit 0 (1 for `has` of a missing key, its
/// usual status), nothing on stderr, no panic.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let machine = Machine::new();
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/f"), "content").unwrap();
    machine.run(&["save", "--key", "p-1", "--path", "out"]).success();
    for (args, code) in [
        (&["list"][..], 0),
        (&["list", "--json"], 0),
        (&["usage"], 0),
        (&["usage", "--json"], 0),
        (&["has", "p-1"], 0),
        (&["has", "p-1", "--json"], 0),
        (&["has", "p-2", "--json"], 1),
        (&["delete", "p-2", "--missing-ok", "--json"], 0),
        (&["flush", "--older-than", "30d", "--json"], 0),
        (&["prune", "--max-size", "1GB", "--json"], 0),
        (&["key", "--template", "k-{{ os }}"], 0),
        (&["completions", "bash"], 0),
        (&["restore", "--key", "p-1", "--path", "out", "--summary-json", "-"], 0),
        (&["save", "--key", "p-1", "--path", "out", "--summary-json", "-"], 0),
        (&["delete", "p-1", "--json"], 0),
        (&["clear", "--yes", "--json"], 0),
    ] {
        assert_eq!(run_into_a_closed_pipe(&machine, args), (code, String::new()), "{args:?}");
    }
}

/// `--summary-json -` writes the summary to stdout (nothing else goes there), with the throughput
/// rounded to two decimals.
#[test]
fn summary_json_dash_writes_to_stdout() {
    let machine = Machine::new();
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/f"), "content".repeat(1000)).unwrap();
    let save = machine.run(&["-q", "save", "--key", "s-1", "--path", "out", "--summary-json", "-"]).success();
    let summary: serde_json::Value = serde_json::from_str(&save.stdout).unwrap_or_else(|e| panic!("{e}: {}", save.stdout));
    assert_eq!((&summary["operation"], &summary["outcome"], &summary["key"]), (&"save".into(), &"saved".into(), &"s-1".into()));
    let throughput = summary["throughput_mb_s"].as_f64().unwrap();
    assert_eq!((throughput * 100.0).round() / 100.0, throughput, "{throughput}");
    let restore = machine.run(&["-q", "restore", "--key", "s-1", "--path", "out", "--summary-json", "-"]).success();
    let summary: serde_json::Value = serde_json::from_str(&restore.stdout).unwrap_or_else(|e| panic!("{e}: {}", restore.stdout));
    assert_eq!((&summary["operation"], &summary["outcome"]), (&"restore".into(), &"hit".into()));
    assert!(!std::path::Path::new(&machine.workspace().join("-")).exists());
}

/// The last line of a save and of a restore: members (singular for one), the tar stream's size and
/// the stored size in IEC units, the time and the throughput.
#[test]
fn final_lines_show_sizes_and_throughput_in_iec_units() {
    let machine = Machine::new();
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/f"), s3cache_tests::tree::noise(3 << 20, 1)).unwrap();
    let shape = |line: &str, start: &str| {
        let rest = line.strip_prefix(start).unwrap_or_else(|| panic!("{line:?} does not start with {start:?}"));
        // "3.0 MiB (3.0 MiB stored) in 0.12 s, 25.0 MiB/s"
        let words: Vec<&str> = rest.split(' ').collect();
        assert_eq!(words.len(), 10, "{line}");
        assert_eq!((words[1], words[3], words[4], words[5], words[7]), ("MiB", "MiB", "stored)", "in", "s,"), "{line}");
        assert!(words[0].parse::<f64>().unwrap() >= 3.0 && words[6].parse::<f64>().is_ok(), "{line}");
        assert!(words[9].ends_with("iB/s") || words[9] == "B/s", "{line}");
    };
    let saved = machine.run(&["save", "--key", "u-1", "--path", "out/f"]).success();
    shape(saved.stderr.lines().last().unwrap(), "saved u-1: 1 member, ");
    let restored = machine.run(&["restore", "--key", "u-1", "--path", "out/f"]).success();
    shape(restored.stderr.lines().last().unwrap(), "restored u-1 (exact match): 1 member, ");
    assert!(!saved.stderr.contains(" MB") && !restored.stderr.contains(" MB"), "{}{}", saved.stderr, restored.stderr);
}
