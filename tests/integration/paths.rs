//! What a save and a restore say about the paths they were given: every `--path` that matched
//! nothing, nothing to save (an error with `--fail-on-error`), the local files a restore removed, and
//! spellings of one path (`./x`, `x/`, `x`) that find one entry (issue 22).

use std::fs;

use s3cache_tests::{Machine, S3Server, ServerKind};

/// A workspace with `out/f`, saving to a real S3 server.
fn machine_with_out(server: &S3Server) -> Machine {
    let mut machine = Machine::new();
    machine.use_server(server, "ci");
    fs::create_dir_all(machine.workspace().join("out")).unwrap();
    fs::write(machine.workspace().join("out/f"), "content").unwrap();
    machine
}

/// Each `--path` that matched nothing (a literal that does not exist, a glob with no match) gets a
/// warning line naming it, and the save goes on with the others.
#[test]
fn save_names_each_path_that_matched_nothing() {
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = machine_with_out(&server);
    let run = machine.run(&["-q", "save", "--key", "m-1", "--path", "out", "--path", "does-not-exist", "--path", "src/**/*.rs"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (0, "warning: --path does-not-exist matched no files\nwarning: --path src/**/*.rs matched no files\n")
    );
    let run = machine.run(&["restore", "--key", "m-1", "--path", "out", "--path", "does-not-exist", "--path", "src/**/*.rs"]).success();
    assert!(run.stderr.contains("restored m-1 (exact match): "), "{}", run.stderr);
}

/// When no `--path` matched anything there is nothing to save, and the line names them all: a
/// warning and exit 0, or with `--fail-on-error` (and the action's `fail-on-error` input) an error
/// and exit 1.
#[test]
fn nothing_to_save_names_the_paths_and_fails_on_error() {
    let server = S3Server::start(ServerKind::S3sFs);
    let mut machine = machine_with_out(&server);
    let run = machine.run(&["-q", "save", "--key", "n-1", "--path", "does-not-exist", "--path", "other/*.txt"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (0, "warning: nothing to save under n-1: no --path matched a file (does-not-exist, other/*.txt)\n")
    );
    let run = machine.run(&["-q", "save", "--key", "n-1", "--path", "does-not-exist", "--fail-on-error"]);
    assert_eq!((run.code, run.stderr.as_str()), (1, "error: nothing to save under n-1: no --path matched a file (does-not-exist)\n"));
    // A glob whose every match is excluded matched nothing either; the excludes are not named.
    let run = machine.run(&["-q", "save", "--key", "n-1", "--path", "out/*", "--path", "!out/f", "--fail-on-error"]);
    assert_eq!((run.code, run.stderr.as_str()), (1, "error: nothing to save under n-1: no --path matched a file (out/*)\n"));

    machine
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REF", "refs/heads/main")
        .env("GITHUB_EVENT_NAME", "push")
        .env("INPUT_KEY", "n-2")
        .env("INPUT_PATH", "missing\n")
        .env("INPUT_FAIL-ON-ERROR", "true");
    let run = machine.run(&["github-action", "save"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("::error::nothing to save under n-2: no --path matched a file (missing)\n"), "{}", run.stderr);
}

/// A restore that replaces a literal path says how many local files (and symlinks) it removed
/// because the entry lacks them, in the singular for one, and nothing when it removed none.
#[test]
fn restore_says_how_many_local_files_it_removed() {
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = machine_with_out(&server);
    machine.run(&["save", "--key", "r-1", "--path", "out"]).success();
    let out = machine.workspace().join("out");
    fs::create_dir_all(out.join("sub")).unwrap();
    fs::write(out.join("extra"), "mine").unwrap();
    fs::write(out.join("sub/extra"), "mine").unwrap();
    std::os::unix::fs::symlink("f", out.join("link")).unwrap();
    let last_line = |args: &[&str]| {
        let run = machine.run(args).success();
        run.stderr.lines().last().unwrap_or_default().to_owned()
    };
    let line = last_line(&["restore", "--key", "r-1", "--path", "out"]);
    assert!(line.starts_with("restored r-1 (exact match): 2 members, "), "{line}");
    assert!(line.ends_with("/s; removed 3 local files the entry lacks"), "{line}");
    assert_eq!(fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect::<Vec<_>>(), ["f"]);
    fs::write(out.join("extra"), "mine").unwrap();
    let line = last_line(&["restore", "--key", "r-1", "--path", "out"]);
    assert!(line.ends_with("; removed 1 local file the entry lacks"), "{line}");
    let line = last_line(&["restore", "--key", "r-1", "--path", "out"]);
    assert!(line.starts_with("restored r-1 (exact match): ") && !line.contains("removed"), "{line}");
}

/// `restore --help` says that a literal path is replaced by the entry's copy.
#[test]
fn restore_help_says_literal_paths_are_replaced() {
    let run = Machine::new().run(&["restore", "--help"]).success();
    let help = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains(
            "A literal path (not a glob) is replaced by the entry's copy: local files under it that the entry lacks are removed."
        ),
        "{}",
        run.stdout
    );
}

/// An entry saved with the plain spelling `out` is found exactly by `./out`, `out/` and `out//`, and
/// one saved with `./out/` by `out`: the spellings share one version, the plain one's.
#[test]
fn path_spellings_find_one_entry() {
    let server = S3Server::start(ServerKind::S3sFs);
    let machine = machine_with_out(&server);
    machine.run(&["save", "--key", "s-1", "--path", "out"]).success();
    for spelling in ["./out", "out/", "out//", "out/./"] {
        fs::remove_dir_all(machine.workspace().join("out")).unwrap();
        let run = machine.run(&["restore", "--key", "s-1", "--path", spelling]).success();
        assert!(run.stderr.contains("restored s-1 (exact match): "), "{spelling}: {}", run.stderr);
        assert_eq!(fs::read_to_string(machine.workspace().join("out/f")).unwrap(), "content", "{spelling}");
    }
    machine.run(&["save", "--key", "s-2", "--path", "./out/"]).success();
    let run = machine.run(&["restore", "--key", "s-2", "--path", "out", "--fail-on-cache-miss"]).success();
    assert!(run.stderr.contains("restored s-2 (exact match): "), "{}", run.stderr);
}
