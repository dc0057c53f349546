//! The signing core against OpenSSH itself: keys and signatures are made by `ssh-keygen` in a
//! temporary directory, and our signatures are checked by `ssh-keygen -Y`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use super::{Refusal, SigningKey, SigningKeyError, TrustedKeys, TrustedKeysError};

const MANIFEST: &[u8] = b"{\"key\":\"deps-abc\",\"sha256\":\"00ff\"}\n";

/// A temporary directory with keys made by `ssh-keygen`.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("a temporary directory") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `ssh-keygen -t TYPE -N PASSPHRASE -f DIR/NAME`; the private key's path.
    fn make(&self, name: &str, kind: &str, passphrase: &str) -> PathBuf {
        let path = self.path(name);
        run(Command::new("ssh-keygen").args(["-q", "-t", kind, "-N", passphrase, "-C", &format!("{name}@ci"), "-f"]).arg(&path));
        path
    }

    fn text(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("the key file")
    }

    /// The `.pub` line of key `name`, without its line break.
    fn public(&self, name: &str) -> String {
        self.text(&format!("{name}.pub")).trim().to_owned()
    }

    /// `ssh-keygen -lf NAME.pub`'s `SHA256:…` fingerprint.
    fn fingerprint(&self, name: &str) -> String {
        let out = run(Command::new("ssh-keygen").arg("-lf").arg(self.path(&format!("{name}.pub"))));
        out.split_whitespace().nth(1).expect("a fingerprint").to_owned()
    }

    /// `ssh-keygen -Y sign -n NAMESPACE -f NAME` over `message`: the armored signature.
    fn ssh_sign(&self, name: &str, namespace: &str, message: &[u8]) -> String {
        let file = self.path("message");
        std::fs::write(&file, message).expect("write the message");
        let _ = std::fs::remove_file(self.path("message.sig"));
        run(Command::new("ssh-keygen").args(["-q", "-Y", "sign", "-n", namespace, "-f"]).arg(self.path(name)).arg(&file));
        std::fs::read_to_string(self.path("message.sig")).expect("the signature")
    }

    /// Runs `ssh-keygen -Y ARGS -s SIGNATURE < message`; whether it accepted.
    fn ssh_check(&self, args: &[&str], message: &[u8], signature: &str) -> bool {
        let sig = self.path("check.sig");
        std::fs::write(&sig, signature).expect("write the signature");
        let mut child = Command::new("ssh-keygen")
            .args(args)
            .arg("-s")
            .arg(&sig)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-keygen runs");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), message).expect("write stdin");
        child.wait().expect("ssh-keygen ends").success()
    }
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("ssh-keygen is installed");
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn now() -> SystemTime {
    SystemTime::now()
}

/// The refusal of a verification expected to fail.
fn refused(result: Result<super::Signer, Refusal>) -> Refusal {
    result.expect_err("the signature is refused")
}

/// Our signature, with the key given as text, passes `ssh-keygen -Y check-novalidate` and
/// `ssh-keygen -Y verify` against an allowed_signers file.
#[test]
fn our_signature_verifies_with_ssh_keygen() {
    let keys = Keys::new();
    keys.make("release", "ed25519", "");
    let key = SigningKey::load(&keys.text("release")).expect("the key loads from its text");
    let signature = key.sign(MANIFEST);
    assert!(signature.starts_with("-----BEGIN SSH SIGNATURE-----"), "{signature}");
    assert!(keys.ssh_check(&["-Y", "check-novalidate", "-n", "s3cache"], MANIFEST, &signature));
    let allowed = keys.path("allowed_signers");
    std::fs::write(&allowed, format!("release@ci namespaces=\"s3cache\" {}\n", keys.public("release"))).expect("write");
    let verify = ["-Y", "verify", "-f", allowed.to_str().expect("utf-8"), "-I", "release@ci", "-n", "s3cache"];
    assert!(keys.ssh_check(&verify, MANIFEST, &signature));
    assert!(!keys.ssh_check(&verify, b"another manifest", &signature), "ssh-keygen checks the bytes");
    assert!(!keys.ssh_check(&["-Y", "check-novalidate", "-n", "git"], MANIFEST, &signature), "the namespace is s3cache");
}

/// A signature made by `ssh-keygen -Y sign -n s3cache` verifies with ours, against a plain `.pub`
/// line and against an allowed_signers line; the signer is named by fingerprint, principals, comment.
#[test]
fn ssh_keygen_signature_verifies_with_ours() {
    let keys = Keys::new();
    keys.make("release", "ed25519", "");
    let signature = keys.ssh_sign("release", "s3cache", MANIFEST);

    let plain = TrustedKeys::parse(&keys.public("release")).expect("a .pub line parses");
    let signer = plain.verify(MANIFEST, &signature, now()).expect("verifies");
    assert_eq!(signer.fingerprint, keys.fingerprint("release"));
    assert_eq!(signer.comment, "release@ci");
    assert!(signer.principals.is_empty());

    let lines = format!("# release keys\n\nrelease@ci,ops@ci {}\n", keys.public("release"));
    let signer = TrustedKeys::parse(&lines).expect("allowed_signers lines parse").verify(MANIFEST, &signature, now()).expect("verifies");
    assert_eq!(signer.principals, ["release@ci", "ops@ci"]);
    assert_eq!(signer.to_string(), format!("{} (release@ci,ops@ci)", keys.fingerprint("release")));
}

/// The key and the trusted keys load from paths as from text, and agree on the fingerprint.
#[test]
fn key_and_trusted_keys_load_from_paths() {
    let keys = Keys::new();
    let private = keys.make("release", "ed25519", "");
    let from_path = SigningKey::load(private.to_str().expect("utf-8")).expect("the key loads from its path");
    let from_text = SigningKey::load(&keys.text("release")).expect("the key loads from its text");
    assert_eq!(from_path.fingerprint(), keys.fingerprint("release"));
    assert_eq!(from_text.fingerprint(), from_path.fingerprint());
    let trusted_file = keys.path("trusted");
    std::fs::write(&trusted_file, format!("# comment\n\n{}\n", keys.public("release"))).expect("write");
    let trusted = TrustedKeys::parse(trusted_file.to_str().expect("utf-8")).expect("the file parses");
    assert!(!trusted.is_empty());
    trusted.verify(MANIFEST, &from_path.sign(MANIFEST), now()).expect("verifies");
}

/// `Debug` shows the fingerprint only, and the mask lines are the key's lines.
#[test]
fn the_key_text_never_shows() {
    let keys = Keys::new();
    keys.make("release", "ed25519", "");
    let text = keys.text("release");
    let key = SigningKey::load(&text).expect("loads");
    assert_eq!(format!("{key:?}"), format!("SigningKey({})", keys.fingerprint("release")));
    let secret: Vec<&str> = text.lines().filter(|line| !line.starts_with("-----")).collect();
    assert_eq!(key.mask_lines(), secret.as_slice());
    // Broken key text: the error names the setting and the reason, not the text.
    let broken = text.replacen(secret[1], &secret[1][..20], 1);
    let error = SigningKey::load(&broken).expect_err("broken text is refused");
    assert_secret_absent(&error.to_string(), &secret);
    assert_secret_absent(&format!("{error:?}"), &secret);
    assert!(error.to_string().starts_with("--signing-key: the key text is not an OpenSSH private key: "), "{error}");
    // Text without its BEGIN line is not echoed as if it were a path.
    let error = SigningKey::load(&secret.join("\n")).expect_err("refused");
    assert!(matches!(error, SigningKeyError::NeitherTextNorPath), "{error}");
    assert_secret_absent(&error.to_string(), &secret);
}

fn assert_secret_absent(output: &str, secret: &[&str]) {
    for line in secret {
        assert!(!output.contains(line), "the key's line {line:?} shows in {output:?}");
    }
}

/// A passphrase-protected key, an rsa key and a missing file are each refused with their reason.
#[test]
fn load_refuses_encrypted_rsa_and_missing_keys() {
    let keys = Keys::new();
    let encrypted = keys.make("locked", "ed25519", "secret");
    let error = SigningKey::load(&keys.text("locked")).expect_err("an encrypted key is refused");
    assert!(matches!(error, SigningKeyError::Encrypted { .. }), "{error}");
    assert!(error.to_string().contains("protected by a passphrase"), "{error}");
    let error = SigningKey::load(encrypted.to_str().expect("utf-8")).expect_err("refused");
    assert_eq!(
        error.to_string(),
        format!(
            "--signing-key: the key file {} is protected by a passphrase; s3cache needs an unencrypted key (remove it from a copy with ssh-keygen -p -N '' -f COPY)",
            encrypted.display()
        )
    );

    let rsa_text = {
        keys.make("rsa", "rsa", "");
        keys.text("rsa")
    };
    let error = SigningKey::load(&rsa_text).expect_err("an rsa key is refused");
    assert_eq!(
        error.to_string(),
        "--signing-key: the key text is an ssh-rsa key; s3cache signs with ed25519 keys only (ssh-keygen -t ed25519)"
    );
    let secret: Vec<&str> = rsa_text.lines().filter(|line| !line.starts_with("-----")).collect();
    assert_secret_absent(&format!("{error} {error:?}"), &secret);

    let missing = keys.path("absent");
    let error = SigningKey::load(missing.to_str().expect("utf-8")).expect_err("refused");
    assert!(error.to_string().starts_with(&format!("--signing-key: cannot read the key file {}: ", missing.display())), "{error}");
}

/// A signature for the namespace `git` by the trusted key is refused as such.
#[test]
fn git_namespace_is_refused() {
    let keys = Keys::new();
    keys.make("release", "ed25519", "");
    let signature = keys.ssh_sign("release", "git", MANIFEST);
    let trusted = TrustedKeys::parse(&keys.public("release")).expect("parses");
    let refusal = refused(trusted.verify(MANIFEST, &signature, now()));
    assert_eq!(refusal, Refusal::WrongNamespace { fingerprint: keys.fingerprint("release"), namespace: "git".into() });
    assert_eq!(refusal.to_string(), format!("signed by {} for the namespace \"git\", not \"s3cache\"", keys.fingerprint("release")));
}

/// A signature by a key that is not trusted names that key.
#[test]
fn another_key_is_refused() {
    let keys = Keys::new();
    keys.make("release", "ed25519", "");
    keys.make("fork", "ed25519", "");
    let signature = SigningKey::load(&keys.text("fork")).expect("loads").sign(MANIFEST);
    let trusted = TrustedKeys::parse(&keys.public("release")).expect("parses");
    let refusal = refused(trusted.verify(MANIFEST, &signature, now()));
    assert_eq!(refusal, Refusal::UntrustedKey { fingerprint: keys.fingerprint("fork") });
    assert_eq!(refusal.fingerprint(), Some(keys.fingerprint("fork").as_str()));
}

/// One byte flipped in the signed bytes, and the signature no longer matches.
#[test]
fn a_flipped_byte_is_refused() {
    let keys = Keys::new();
    keys.make("release", "ed25519", "");
    let signature = SigningKey::load(&keys.text("release")).expect("loads").sign(MANIFEST);
    let mut tampered = MANIFEST.to_vec();
    tampered[10] ^= 1;
    let trusted = TrustedKeys::parse(&keys.public("release")).expect("parses");
    assert_eq!(refused(trusted.verify(&tampered, &signature, now())), Refusal::Mismatch { fingerprint: keys.fingerprint("release") });
    trusted.verify(MANIFEST, &signature, now()).expect("the untouched bytes verify");
}

/// No signature, a malformed one, and a blank `--trusted-keys` each have their refusal.
#[test]
fn unsigned_malformed_and_blank_trust_are_refused() {
    let keys = Keys::new();
    keys.make("release", "ed25519", "");
    let trusted = TrustedKeys::parse(&keys.public("release")).expect("parses");
    assert_eq!(refused(trusted.verify(MANIFEST, "", now())), Refusal::NotSigned);
    let refusal = refused(trusted.verify(MANIFEST, "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n", now()));
    assert!(matches!(refusal, Refusal::Malformed { .. }), "{refusal}");

    let blank = TrustedKeys::parse("  \n").expect("a blank value is a state, not an error");
    assert!(blank.is_empty());
    let signature = SigningKey::load(&keys.text("release")).expect("loads").sign(MANIFEST);
    let refusal = refused(blank.verify(MANIFEST, &signature, now()));
    assert_eq!(refusal.to_string(), "no key is trusted (the trusted keys are empty)");

    let error = TrustedKeys::parse("# only a comment\n\n").expect_err("no key at all");
    assert_eq!(error.to_string(), "--trusted-keys: the value holds no public key");
}

/// `namespaces=` is honoured: a line for `git` only refuses; one listing s3cache (or a matching
/// pattern) accepts; a negated pattern refuses.
#[test]
fn allowed_signers_namespaces_are_honoured() {
    let keys = Keys::new();
    keys.make("release", "ed25519", "");
    let signature = SigningKey::load(&keys.text("release")).expect("loads").sign(MANIFEST);
    let public = keys.public("release");
    let git_only = TrustedKeys::parse(&format!("# keys\nrelease@ci namespaces=\"git\" {public}")).expect("parses");
    let refusal = refused(git_only.verify(MANIFEST, &signature, now()));
    assert_eq!(refusal, Refusal::NamespaceNotAllowed { fingerprint: keys.fingerprint("release"), line: 2, namespaces: "git".into() });
    for accepting in ["git,s3cache", "s3*", "*"] {
        let trusted = TrustedKeys::parse(&format!("release@ci namespaces=\"{accepting}\" {public}")).expect("parses");
        trusted.verify(MANIFEST, &signature, now()).unwrap_or_else(|refusal| panic!("{accepting}: {refusal}"));
    }
    let negated = TrustedKeys::parse(&format!("release@ci namespaces=\"*,!s3cache\" {public}")).expect("parses");
    assert!(matches!(refused(negated.verify(MANIFEST, &signature, now())), Refusal::NamespaceNotAllowed { .. }));
    // A second line for the same key that allows s3cache is enough (rotation, narrower lines).
    let two = TrustedKeys::parse(&format!("a@ci namespaces=\"git\" {public}\nb@ci {public}")).expect("parses");
    assert_eq!(two.verify(MANIFEST, &signature, now()).expect("the second line accepts").principals, ["b@ci"]);
}

/// `valid-after=` and `valid-before=` bound the time at which a line trusts its key.
#[test]
fn validity_window_is_honoured() {
    let keys = Keys::new();
    keys.make("release", "ed25519", "");
    let signature = SigningKey::load(&keys.text("release")).expect("loads").sign(MANIFEST);
    let public = keys.public("release");
    let fingerprint = keys.fingerprint("release");
    let trusted =
        TrustedKeys::parse(&format!("release@ci valid-after=\"20260101\",valid-before=\"20261231235959Z\" {public}")).expect("parses");
    let at = |seconds: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
    // 2026-06-01T00:00:00Z, 2025-12-31T23:59:59Z, 2027-01-01T00:00:00Z.
    trusted.verify(MANIFEST, &signature, at(1_780_272_000)).expect("inside the window");
    assert_eq!(
        refused(trusted.verify(MANIFEST, &signature, at(1_767_225_599))),
        Refusal::NotYetValid { fingerprint: fingerprint.clone(), line: 1, valid_after: "20260101".into() }
    );
    let expired = refused(trusted.verify(MANIFEST, &signature, at(1_798_761_600)));
    assert_eq!(expired, Refusal::Expired { fingerprint: fingerprint.clone(), line: 1, valid_before: "20261231235959Z".into() });
    assert_eq!(expired.to_string(), format!("signed by {fingerprint}, whose --trusted-keys line 1 expired at 20261231235959Z"));
    // The edges are inside, as in ssh-keygen.
    trusted.verify(MANIFEST, &signature, at(1_767_225_600)).expect("at valid-after");
    trusted.verify(MANIFEST, &signature, at(1_798_761_599)).expect("at valid-before");

    let error = TrustedKeys::parse(&format!("release@ci valid-before=\"2026-12-31\" {public}")).expect_err("not a time");
    assert_eq!(
        error.to_string(),
        "--trusted-keys: the value, line 1: valid-before=\"2026-12-31\" is not a time (YYYYMMDD[HHMM[SS]], optionally ending in Z)"
    );
}

/// `cert-authority` and any option s3cache does not know are refused with the line's number.
#[test]
fn cert_authority_and_unknown_options_are_refused() {
    let keys = Keys::new();
    keys.make("release", "ed25519", "");
    let public = keys.public("release");
    let error = TrustedKeys::parse(&format!("\n# CA\n*@ci cert-authority {public}")).expect_err("refused");
    assert!(matches!(error, TrustedKeysError::CertAuthority { line: 3, .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "--trusted-keys: the value, line 3: cert-authority is not supported (s3cache trusts keys, not certificates)"
    );
    let error = TrustedKeys::parse(&format!("release@ci namespaces=\"s3cache\",no-touch-required {public}")).expect_err("refused");
    assert_eq!(
        error.to_string(),
        "--trusted-keys: the value, line 1: the option \"no-touch-required\" is not supported (only namespaces, valid-after and valid-before are)"
    );
    let error = TrustedKeys::parse(&format!("release@ci namespaces=\"s3cache {public}")).expect_err("refused");
    assert!(matches!(error, TrustedKeysError::BadOptions { line: 1, .. }), "{error}");
    let error = TrustedKeys::parse("ssh-ed25519 AAAAnotbase64 release@ci").expect_err("refused");
    assert!(matches!(error, TrustedKeysError::BadKey { line: 1, .. }), "{error}");
}

/// A value that is not lines is a path, and an unreadable one is named.
#[test]
fn a_missing_trusted_keys_file_is_named() {
    let keys = Keys::new();
    let missing: &Path = &keys.path("absent.pub");
    let error = TrustedKeys::parse(missing.to_str().expect("utf-8")).expect_err("refused");
    assert!(error.to_string().starts_with(&format!("--trusted-keys: cannot read the file {}: ", missing.display())), "{error}");
}

/// GitHub's `USER.keys` mixes algorithms: an rsa line parses, and a signature by that rsa key is
/// refused as not ed25519 rather than verified.
#[test]
fn rsa_lines_parse_but_rsa_signatures_are_refused() {
    let keys = Keys::new();
    keys.make("release", "ed25519", "");
    keys.make("laptop", "rsa", "");
    let trusted = TrustedKeys::parse(&format!("{}\n{}\n", keys.public("laptop"), keys.public("release"))).expect("both lines parse");
    let signature = keys.ssh_sign("laptop", "s3cache", MANIFEST);
    let refusal = refused(trusted.verify(MANIFEST, &signature, now()));
    assert!(matches!(&refusal, Refusal::Malformed { reason } if reason.contains("ed25519 signatures only")), "{refusal}");
    trusted.verify(MANIFEST, &keys.ssh_sign("release", "s3cache", MANIFEST), now()).expect("the ed25519 line still verifies");
}
