//! Signed entries (`--signing-key`, `--trusted-keys`) end to end: keys made by `ssh-keygen`, saves
//! and restores by the real binary against s3s-fs and moto, the signature checked by `ssh-keygen -Y`,
//! and every way an untrusted writer could plant an entry refused with its own reason, the target
//! untouched, the search going on to the next candidate.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use s3cache::archive::trailer;
use s3cache_tests::tree::write_sample_tree;
use s3cache_tests::{KeyPair, Machine, Run, S3Server, ServerKind, boto3};

const PREFIX: &str = "signed";

fn signing_machine(server: &S3Server) -> (Machine, PathBuf) {
    let mut machine = Machine::new();
    machine.use_server(server, PREFIX);
    let keys = machine.scratch("keys");
    (machine, keys)
}

/// Writes `dep/file` with `content` in the workspace.
fn write_dep(machine: &Machine, content: &str) {
    let dep = machine.workspace().join("dep");
    let _ = fs::remove_dir_all(&dep);
    fs::create_dir_all(&dep).unwrap();
    fs::write(dep.join("file"), content).unwrap();
}

fn save(machine: &Machine, key: &str, content: &str, extra: &[&str]) -> Run {
    write_dep(machine, content);
    let mut args = vec!["save", "--key", key, "--path", "dep"];
    args.extend(extra);
    let run = machine.run(&args).success();
    assert!(run.stderr.contains(&format!("saved {key}: ")), "{}", run.stderr);
    fs::remove_dir_all(machine.workspace().join("dep")).unwrap();
    run
}

fn restore(machine: &Machine, args: &[&str]) -> Run {
    let mut all = vec!["restore", "--path", "dep"];
    all.extend(args);
    machine.run(&all)
}

/// What the restore put in `dep/file`, if anything.
fn restored(machine: &Machine) -> Option<String> {
    fs::read_to_string(machine.workspace().join("dep/file")).ok()
}

/// The one warning line of a run.
#[track_caller]
fn warning(run: &Run) -> String {
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    warnings[0].to_owned()
}

/// An object's bytes, read with boto3.
fn get_object(server: &S3Server, name: &str) -> Vec<u8> {
    let hex = boto3(server, &format!("print(s3.get_object(Bucket=bucket, Key='{name}')['Body'].read().hex())"));
    hex::decode(hex.trim()).unwrap()
}

/// A server-side copy with boto3 (CopyObject), as a writer with bucket credentials can make.
fn copy_object(server: &S3Server, from: &str, to: &str) {
    boto3(server, &format!("s3.copy_object(Bucket=bucket, Key='{to}', CopySource={{'Bucket': bucket, 'Key': '{from}'}})"));
}

/// `ssh-keygen -Y sign` of `message` by `key` for `namespace`: the armored signature.
fn ssh_sign(key: &KeyPair, namespace: &str, message: &[u8], dir: &Path) -> String {
    let file = dir.join(format!("message-{namespace}"));
    fs::write(&file, message).unwrap();
    let status =
        Command::new("ssh-keygen").args(["-q", "-Y", "sign", "-n", namespace, "-f"]).arg(&key.private_path).arg(&file).status().unwrap();
    assert!(status.success());
    fs::read_to_string(dir.join(format!("message-{namespace}.sig"))).unwrap()
}

/// A signed save restores where its key is trusted, given as a `.pub` file or as `allowed_signers`
/// lines, and given as text or as a path; `inspect --json` prints the manifest and signature that
/// `ssh-keygen -Y check-novalidate` and `-Y verify` accept; the private key appears in no output.
#[test]
fn signed_entries_restore_and_verify_with_ssh_keygen() {
    let server = S3Server::start(ServerKind::S3sFs);
    let (mut machine, keys) = signing_machine(&server);
    let key = KeyPair::generate(&keys, "ci-cache");
    let mut outputs = Vec::new();
    // The key as text, in the variable a CI secret fills.
    machine.env("S3CACHE_SIGNING_KEY", key.private.clone());
    outputs.push(save(&machine, "deps-1", "one", &["--verbose"]));
    machine.unset("S3CACHE_SIGNING_KEY");
    // The key as a path.
    outputs.push(save(&machine, "deps-2", "two", &["--signing-key", key.private_arg()]));

    let run = restore(&machine, &["--key", "deps-1", "--trusted-keys", key.public_arg()]).success();
    assert!(
        run.stderr.contains(&format!("cache entry local/deps-1.tar.zst is signed by {} (ci-cache)\n", key.fingerprint)),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("restored deps-1 (exact match)"), "{}", run.stderr);
    assert_eq!(restored(&machine).as_deref(), Some("one"));
    outputs.push(run);

    let allowed = format!("# release signers\nrelease@example.com namespaces=\"s3cache,git\" {}\n", key.public.clone());
    machine.env("S3CACHE_TRUSTED_KEYS", &allowed);
    fs::remove_dir_all(machine.workspace().join("dep")).unwrap();
    let run = restore(&machine, &["--key", "deps-2"]).success();
    assert!(run.stderr.contains(&format!("is signed by {} (release@example.com)\n", key.fingerprint)), "{}", run.stderr);
    assert_eq!(restored(&machine).as_deref(), Some("two"));
    outputs.push(run);

    let run = machine.run(&["inspect", "deps-1", "--json"]).success();
    let inspected: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(inspected["verified"], true);
    assert_eq!(inspected["signed_by"], key.fingerprint.as_str());
    assert_eq!(inspected["signer"], format!("{} (release@example.com)", key.fingerprint));
    let manifest_text = inspected["manifest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_str(manifest_text).unwrap();
    assert_eq!(
        (&manifest["key"], &manifest["scope"], &manifest["store"]),
        (&"deps-1".into(), &"local".into(), &format!("s3://{}/{PREFIX}", server.bucket).into())
    );
    assert!(manifest["created_ms"].as_u64().unwrap() > 1_700_000_000_000, "{manifest}");
    // The manifest is the trailer's bytes exactly.
    let object = get_object(&server, &format!("{PREFIX}/local/deps-1.tar.zst"));
    assert_eq!(trailer::unframe(&object).unwrap().json, manifest_text.as_bytes());
    let (manifest_file, signature_file) = (keys.join("manifest"), keys.join("manifest.sig"));
    fs::write(&manifest_file, manifest_text).unwrap();
    fs::write(&signature_file, inspected["signature"].as_str().unwrap()).unwrap();
    let ssh_keygen = |args: &[&str]| {
        let output = Command::new("ssh-keygen")
            .args(args)
            .arg("-s")
            .arg(&signature_file)
            .stdin(fs::File::open(&manifest_file).unwrap())
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    assert_eq!(
        ssh_keygen(&["-Y", "check-novalidate", "-n", "s3cache"]),
        (Some(0), format!("Good \"s3cache\" signature with ED25519 key {}", key.fingerprint))
    );
    let allowed_file = keys.join("allowed_signers");
    fs::write(&allowed_file, &allowed).unwrap();
    let allowed_path = allowed_file.to_str().unwrap();
    assert_eq!(
        ssh_keygen(&["-Y", "verify", "-f", allowed_path, "-I", "release@example.com", "-n", "s3cache"]),
        (Some(0), format!("Good \"s3cache\" signature for release@example.com with ED25519 key {}", key.fingerprint))
    );
    assert_eq!(ssh_keygen(&["-Y", "verify", "-f", allowed_path, "-I", "release@example.com", "-n", "git"]).0, Some(255));
    outputs.push(run);

    for run in &outputs {
        key.assert_private_key_absent(&run.stdout);
        key.assert_private_key_absent(&run.stderr);
    }
}

/// Each way to plant an entry is refused with its own reason and the signer's fingerprint, the
/// target untouched: unsigned, another key, the trusted key for the namespace `git`, a copy to
/// another key, scope or store, a byte flipped in the manifest. A restore key's search passes over
/// them all and restores the one entry that verifies.
#[test]
fn planted_entries_are_refused_each_with_its_reason() {
    let server = S3Server::start(ServerKind::Moto);
    let (mut machine, keys) = signing_machine(&server);
    let trusted = KeyPair::generate(&keys, "ci-cache");
    let other = KeyPair::generate(&keys, "fork");
    let trusted_key = ["--signing-key", trusted.private_arg()];
    save(&machine, "deps-good", "good", &trusted_key);
    save(&machine, "deps-unsigned", "planted", &[]);
    save(&machine, "deps-other", "planted", &["--signing-key", other.private_arg()]);
    save(&machine, "deps-flipped", "planted", &trusted_key);
    // The trusted key's signature for the namespace git over the same manifest bytes.
    let name = |key: &str| format!("{PREFIX}/local/{key}.tar.zst");
    let git = {
        save(&machine, "deps-git", "planted", &trusted_key);
        let object = get_object(&server, &name("deps-git"));
        let manifest = trailer::decode(&object, object.len() as u64).unwrap();
        let sign = |json: &[u8]| ssh_sign(&trusted, "git", json, &keys);
        let mut planted = object[..manifest.archive_bytes as usize].to_vec();
        planted.extend(trailer::encode_signed(&manifest, Some(&sign)).unwrap());
        planted
    };
    server.put_object(PREFIX, "local/deps-git.tar.zst", &git);
    // One byte of the manifest changed ("members":2 becomes 3); the signature is the original's.
    let mut flipped = get_object(&server, &name("deps-flipped"));
    let at = flipped.windows(11).position(|w| w == b"\"members\":2").expect("the manifest's member count") + 10;
    flipped[at] = b'3';
    server.put_object(PREFIX, "local/deps-flipped.tar.zst", &flipped);
    copy_object(&server, &name("deps-good"), &name("deps-copied"));
    copy_object(&server, &name("deps-good"), &format!("{PREFIX}/other/deps-good.tar.zst"));
    copy_object(&server, &name("deps-good"), &format!("{PREFIX}-mirror/local/deps-good.tar.zst"));
    machine.env("S3CACHE_TRUSTED_KEYS", trusted.public_arg());

    let (t, o) = (&trusted.fingerprint, &other.fingerprint);
    let store = format!("s3://{}/{PREFIX}", server.bucket);
    let refused = [
        ("deps-unsigned", "local", "the entry is not signed".to_owned()),
        ("deps-other", "local", format!("signed by {o}, which is not a trusted key")),
        ("deps-git", "local", format!("signed by {t} for the namespace \"git\", not \"s3cache\"")),
        ("deps-flipped", "local", format!("signed by {t}, but the signature does not match the manifest (altered after signing)")),
        (
            "deps-copied",
            "local",
            format!("signed by {t} (ci-cache) for the key \"deps-good\", not \"deps-copied\" (copied from another key)"),
        ),
        ("deps-good", "other", format!("signed by {t} (ci-cache) for the scope \"local\", not \"other\" (copied from another scope)")),
    ];
    for (key, scope, reason) in &refused {
        let run = restore(&machine, &["--key", key, "--scope", scope]);
        assert_eq!(run.code, 0, "a refused entry is a miss, not a failed build: {}", run.stderr);
        let expected = format!("{scope}/{key}.tar.zst: refused by --trusted-keys: {reason}");
        assert!(run.stderr.contains(&format!("passing over cache entry {expected}\n")), "{key}: {}", run.stderr);
        assert_eq!(
            warning(&run),
            format!("warning: cache not restored: no usable cache entry for key \"{key}\" in scopes {scope}; passed over: {expected}")
        );
        assert_eq!(restored(&machine), None, "{key}: the target is untouched");
    }
    // A copy into another store (prefix) is refused there, unless that store says it is the same.
    let mut mirror = Machine::new();
    mirror.use_server(&server, &format!("{PREFIX}-mirror")).env("S3CACHE_TRUSTED_KEYS", trusted.public_arg());
    let run = mirror.run(&["restore", "--key", "deps-good", "--path", "dep"]);
    let reason = format!(
        "signed by {t} (ci-cache) for the store \"{store}\", not \"{store}-mirror\" (copied from another store, or set --store-namespace)"
    );
    assert!(
        warning(&run).ends_with(&format!("passed over: local/deps-good.tar.zst: refused by --trusted-keys: {reason}")),
        "{}",
        run.stderr
    );
    assert_eq!(restored(&mirror), None);
    mirror.env("S3CACHE_STORE_NAMESPACE", &store);
    mirror.run(&["restore", "--key", "deps-good", "--path", "dep"]).success();
    assert_eq!(restored(&mirror).as_deref(), Some("good"), "a mirror that names the original store");

    // A search over all of them restores the one that verifies.
    let run = restore(&machine, &["--key", "deps-missing", "--restore-key", "deps-"]).success();
    for (key, _, reason) in &refused[..5] {
        assert!(
            run.stderr.contains(&format!("passing over cache entry local/{key}.tar.zst: refused by --trusted-keys: {reason}\n")),
            "{}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("restored deps-good ("), "{}", run.stderr);
    assert_eq!(restored(&machine).as_deref(), Some("good"));
    // Without trusted keys the same store restores what it is asked for: verification is opt-in.
    machine.unset("S3CACHE_TRUSTED_KEYS");
    fs::remove_dir_all(machine.workspace().join("dep")).unwrap();
    restore(&machine, &["--key", "deps-unsigned"]).success();
    assert_eq!(restored(&machine).as_deref(), Some("planted"));
}

/// A valid signature over an archive whose bytes were changed afterwards is refused while it is
/// extracted, before anything is moved into place: by the SHA-256 check on the serial path (a tar
/// entry, whose format checks nothing itself) and by the decoder on the parallel-parts path (an entry
/// of several zstd frames); the search goes on to the next candidate, which restores.
#[test]
fn an_altered_archive_under_a_valid_signature_is_refused_and_the_next_candidate_wins() {
    let server = S3Server::start(ServerKind::S3sFs);
    let (mut machine, keys) = signing_machine(&server);
    let key = KeyPair::generate(&keys, "ci-cache");
    machine.env("S3CACHE_SIGNING_KEY", key.private.clone());
    save(&machine, "deps-older", "older", &[]);
    write_sample_tree(&machine.workspace(), "dep", 20 << 20);
    machine.run(&["save", "--key", "deps-large", "--path", "dep"]).success();
    fs::remove_dir_all(machine.workspace().join("dep")).unwrap();
    save(&machine, "deps-small", "the small entry's file", &["--format", "tar"]);
    machine.unset("S3CACHE_SIGNING_KEY");
    let object_path = |name: &str| server.data_dir().join(&server.bucket).join(format!("{PREFIX}/local/{name}"));
    // The tar's file content, one letter changed.
    let mut small = fs::read(object_path("deps-small.tar")).unwrap();
    let at = small.windows(22).position(|w| w == b"the small entry's file").unwrap();
    small[at] = b'T';
    server.put_object(PREFIX, "local/deps-small.tar", &small);
    // A byte inside the large entry's last zstd frame.
    let mut large = fs::read(object_path("deps-large.tar.zst")).unwrap();
    let manifest = trailer::decode(&large, large.len() as u64).unwrap();
    assert!(manifest.parts.len() > 1, "the large entry decodes in parallel parts: {:?}", manifest.parts);
    large[manifest.archive_bytes as usize - 40] ^= 0x01;
    server.put_object(PREFIX, "local/deps-large.tar.zst", &large);

    machine.env("S3CACHE_TRUSTED_KEYS", key.public.clone());
    for (key, object, reason) in [
        ("deps-small", "deps-small.tar", "archive transfer failed: SHA-256 mismatch: the manifest says "),
        ("deps-large", "deps-large.tar.zst", "corrupt archive: zstd: Data corruption detected"),
    ] {
        let run = restore(&machine, &["--key", key]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stderr.contains(&format!("passing over cache entry local/{object}: {reason}")), "{}", run.stderr);
        assert!(
            warning(&run).starts_with(&format!(
                "warning: cache not restored: no usable cache entry for key \"{key}\" in scopes local; passed over: local/{object}: {reason}"
            )),
            "{}",
            run.stderr
        );
        assert_eq!(restored(&machine), None, "{key}: nothing restored");
        assert_eq!(fs::read_dir(machine.workspace()).unwrap().count(), 0, "{key}: no staging left");
    }
    // Newest signed first: deps-small, then deps-large are altered; deps-older restores.
    let run = restore(&machine, &["--key", "deps-none", "--restore-key", "deps-"]).success();
    let passed: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("passing over cache entry ")).collect();
    assert_eq!(passed.len(), 2, "{}", run.stderr);
    assert!(
        passed[0].starts_with("passing over cache entry local/deps-small.tar: archive transfer failed: SHA-256 mismatch"),
        "{}",
        run.stderr
    );
    assert!(passed[1].starts_with("passing over cache entry local/deps-large.tar.zst: corrupt archive: "), "{}", run.stderr);
    assert!(run.stderr.contains("restored deps-older"), "{}", run.stderr);
    assert_eq!(restored(&machine).as_deref(), Some("older"));
}

/// Candidates are ordered by the signed creation time: an older signed entry copied onto itself (a
/// server-side copy resets LastModified) loses to the newest signed one; without trusted keys the
/// copy, newest by LastModified, would win.
#[test]
fn the_newest_signed_entry_wins_over_a_copy_that_looks_newer() {
    let server = S3Server::start(ServerKind::Moto);
    let (mut machine, keys) = signing_machine(&server);
    let key = KeyPair::generate(&keys, "ci-cache");
    let signing = ["--signing-key", key.private_arg()];
    save(&machine, "deps-a", "older", &signing);
    save(&machine, "deps-b", "newer", &signing);
    // Copy deps-a onto itself until its LastModified is later than deps-b's (a copy is cheap; the
    // clock's second must turn).
    boto3(
        &server,
        &format!(
            "import time\na = '{PREFIX}/local/deps-a.tar.zst'\nb = s3.head_object(Bucket=bucket, Key='{PREFIX}/local/deps-b.tar.zst')['LastModified']\n\
             for _ in range(100):\n    s3.copy_object(Bucket=bucket, Key=a, CopySource={{'Bucket': bucket, 'Key': a}}, MetadataDirective='REPLACE')\n    \
             if s3.head_object(Bucket=bucket, Key=a)['LastModified'] > b: break\n    time.sleep(0.1)\nelse: sys.exit('never newer')"
        ),
    );
    let run = restore(&machine, &["--key", "deps-x", "--restore-key", "deps-"]).success();
    assert!(run.stderr.contains("restored deps-a"), "by LastModified, the copy: {}", run.stderr);
    assert_eq!(restored(&machine).as_deref(), Some("older"));
    fs::remove_dir_all(machine.workspace().join("dep")).unwrap();
    machine.env("S3CACHE_TRUSTED_KEYS", key.public.clone());
    let run = restore(&machine, &["--key", "deps-x", "--restore-key", "deps-"]).success();
    assert!(run.stderr.contains("restored deps-b"), "by signed time: {}", run.stderr);
    assert_eq!(restored(&machine).as_deref(), Some("newer"));
}

/// An unsigned object planted at a key is replaced by a signed save (which then restores), and a
/// signed entry is kept by the next signed save (first writer wins among trusted writers).
#[test]
fn a_signed_save_replaces_a_planted_entry() {
    let server = S3Server::start(ServerKind::S3sFs);
    let (mut machine, keys) = signing_machine(&server);
    let key = KeyPair::generate(&keys, "ci-cache");
    save(&machine, "deps-1", "planted", &[]);
    machine.env("S3CACHE_SIGNING_KEY", key.private_arg());
    let run = save(&machine, "deps-1", "trusted", &[]);
    assert!(
        run.stderr.contains("replacing cache entry local/deps-1.tar.zst, which a restore would refuse: the entry is not signed\n"),
        "{}",
        run.stderr
    );
    write_dep(&machine, "again");
    let run = machine.run(&["save", "--key", "deps-1", "--path", "dep"]).success();
    assert!(!run.stderr.contains("replacing"), "{}", run.stderr);
    assert!(!run.stderr.contains("saved deps-1"), "the first trusted entry stays: {}", run.stderr);
    fs::remove_dir_all(machine.workspace().join("dep")).unwrap();
    machine.unset("S3CACHE_SIGNING_KEY").env("S3CACHE_TRUSTED_KEYS", key.public_arg());
    restore(&machine, &["--key", "deps-1"]).success();
    assert_eq!(restored(&machine).as_deref(), Some("trusted"));
}

/// A trusted-keys variable that is set but empty (a fork's blank secret) refuses every entry with
/// a warning naming it; `lookup-only` checks the signature too.
#[test]
fn empty_trusted_keys_refuse_everything_and_lookups_verify() {
    let server = S3Server::start(ServerKind::S3sFs);
    let (mut machine, keys) = signing_machine(&server);
    let key = KeyPair::generate(&keys, "ci-cache");
    save(&machine, "deps-1", "signed", &["--signing-key", key.private_arg()]);
    save(&machine, "deps-2", "unsigned", &[]);
    machine.env("S3CACHE_TRUSTED_KEYS", "");
    let run = restore(&machine, &["--key", "deps-1"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stderr.starts_with(
            "warning: --trusted-keys (S3CACHE_TRUSTED_KEYS) is set but empty: no key is trusted, so every cache entry is refused\n"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("local/deps-1.tar.zst: refused by --trusted-keys: no key is trusted (the trusted keys are empty)"),
        "{}",
        run.stderr
    );
    assert_eq!(restored(&machine), None);

    machine.env("S3CACHE_TRUSTED_KEYS", key.public.clone());
    let hit = restore(&machine, &["--key", "deps-1", "--lookup-only", "--fail-on-cache-miss"]);
    assert_eq!(hit.code, 0, "{}", hit.stderr);
    let miss = restore(&machine, &["--key", "deps-2", "--lookup-only", "--fail-on-cache-miss"]);
    assert_eq!(miss.code, 1, "{}", miss.stderr);
    assert!(miss.stderr.contains("local/deps-2.tar.zst: refused by --trusted-keys: the entry is not signed"), "{}", miss.stderr);
    assert_eq!(restored(&machine), None, "a lookup restores nothing");
}

/// Keys s3cache cannot sign with are configuration errors (exit 2) that say why, never echoing the key.
#[test]
fn unusable_signing_keys_are_clear_errors() {
    let server = S3Server::start(ServerKind::S3sFs);
    let (machine, keys) = signing_machine(&server);
    let protected = KeyPair::generate_with(&keys, "protected", "ed25519", "a passphrase");
    let rsa = KeyPair::generate_with(&keys, "rsa", "rsa", "");
    write_dep(&machine, "x");
    let path = |k: &KeyPair| k.private_path.display().to_string();
    for (key, expected) in [
        (
            &protected,
            format!(
                "error: --signing-key: the key file {} is protected by a passphrase; s3cache needs an unencrypted key (remove it from a copy with ssh-keygen -p -N '' -f COPY)",
                path(&protected)
            ),
        ),
        (
            &rsa,
            format!(
                "error: --signing-key: the key file {} is an ssh-rsa key; s3cache signs with ed25519 keys only (ssh-keygen -t ed25519)",
                path(&rsa)
            ),
        ),
    ] {
        let run = machine.run(&["save", "--key", "k", "--path", "dep", "--signing-key", &path(key)]);
        assert_eq!((run.code, run.stderr.trim_end()), (2, expected.as_str()));
        // The same key given as text names no file, and shows none of it.
        let run = machine.run(&["save", "--key", "k", "--path", "dep", "--signing-key", &key.private]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.starts_with("error: --signing-key: the key text is "), "{}", run.stderr);
        key.assert_private_key_absent(&run.stderr);
    }
    assert!(boto3(&server, "print(len(s3.list_objects_v2(Bucket=bucket).get('Contents', [])))").trim() == "0", "nothing was saved");
}
