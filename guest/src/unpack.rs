//! Extracting a cache archive into staging directories, refusing anything hostile.
//!
//! The caller says how the tar stream is compressed ([`Compression`]); nothing is sniffed. zstd frames
//! are decoded with a bounded window, gzip members (any number, as `gzip -dc` reads them) with
//! `flate2`'s `MultiGzDecoder`, bare tar through a read buffer. Every format then gets the same checks:
//! the decompressed size is capped (`max-total-bytes`, against bombs), the tar is parsed strictly, it must
//! end with its end-of-archive blocks, and only zero padding may follow them until the compressed
//! stream ends cleanly, so a truncated, damaged or foreign stream is `corrupt-stream`, never a partial
//! restore.
//!
//! The `tar` crate only parses here; its own `unpack` cannot run under WASI (no chmod, no symlinks) and
//! trusts too much. Our loop checks every member against `s3cache-policy` before a byte is written:
//! the name must be a safe relative path under one of the restored roots and selected by its patterns;
//! no member may sit below a symlink from the same archive; a hard link must name a regular file
//! extracted earlier under the same root; duplicates, devices and unknown types are refused. Files
//! are created with `create_new`, so nothing is ever written through an existing path; the bytes go through a [`StagingWriter`] (the host's writer thread in the component,
//! so decoding and writing overlap). Symlinks, modes and mtimes are returned as fixups for the host, which re-validates
//! and applies them. The first violation stops extraction; the host then discards the staging dirs.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, Read};

use s3cache_policy::{
    MemberPath, PathRules, Selector, Violation, sanitize_mode, validate_member_path, validate_relative, validate_symlink_target,
};
use tar::{Archive, EntryType};

use crate::GuestError;
use crate::bindings::{Compression, Fixup, MemberKind, Root, Timestamp, UnpackLimits, UnpackReport};
use crate::files::StagingWriter;

/// The marker a source puts inside an `io::Error` when the host's stream failed, as opposed to the
/// bytes being bad. It keeps "the download failed" apart from "the archive is corrupt".
#[derive(Debug)]
pub struct SourceFailed(pub String);

impl std::fmt::Display for SourceFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceFailed {}

/// The root a member lands in: among the roots whose prefix it is under (named the same way, plain
/// or absolute), the one with the deepest prefix that selects it. Several roots share a prefix only
/// when another tool named members relative to each path's parent (vela-s3-cache); their include
/// patterns then tell them apart.
fn route(roots: &[RestoreRoot<'_>], absolute: bool, path: &MemberPath) -> Result<usize, Violation> {
    let under: Vec<(usize, &RestoreRoot<'_>)> =
        roots.iter().enumerate().filter(|(_, r)| r.absolute == absolute && path.starts_with(&r.prefix)).collect();
    if under.is_empty() {
        return Err(Violation::OutsideRoots);
    }
    under
        .iter()
        .filter(|(_, r)| r.selector.selects(&path.strip_prefix(&r.prefix).expect("prefix checked")))
        .max_by_key(|(i, r)| (r.prefix.depth(), std::cmp::Reverse(*i)))
        .map(|(i, _)| *i)
        .ok_or(Violation::NotSelected)
}

struct RestoreRoot<'a> {
    root: &'a Root,
    /// Whether its members are named by absolute path (its prefix started with `/`).
    absolute: bool,
    prefix: MemberPath,
    selector: Selector,
    /// Directories known to exist in staging, so each is created once.
    directories: HashSet<String>,
}

/// The tar ends with two zero blocks. The parser consumes the first when it stops, so at least this
/// many zero bytes (the second) must follow.
const SECOND_ZERO_BLOCK: u64 = 512;

/// Extracts the tar, compressed as `compression`, read from `source` under the roots' staging
/// directories.
pub fn unpack(
    roots: &[Root],
    compression: Compression,
    limits: &UnpackLimits,
    source: impl Read,
    writer: &mut dyn StagingWriter,
    buffer_size: usize,
) -> Result<UnpackReport, GuestError> {
    let mut restore_roots = roots
        .iter()
        .map(|root| {
            let (absolute, prefix) = split_absolute(&root.member_prefix);
            let prefix = validate_relative(prefix).map_err(|v| GuestError::Other(format!("root prefix {:?}: {v}", root.member_prefix)))?;
            let selector = Selector::new(&root.include_globs, &root.exclude_globs)?;
            Ok(RestoreRoot { root, absolute, prefix, selector, directories: HashSet::from([String::new()]) })
        })
        .collect::<Result<Vec<_>, GuestError>>()?;

    let layer = layer_name(compression);
    let mut archive = Archive::new(decoder(compression, limits, source, buffer_size)?);
    let rules = PathRules { max_bytes: limits.max_path_bytes as usize, max_depth: limits.max_depth as usize };

    let mut report = UnpackReport { members: 0, bytes: 0, fixups: Vec::new() };
    // Every member so far by archive name, and what it is: duplicates, members below a symlink and
    // hard link targets (earlier regular files) are all answered from it.
    let mut seen: HashMap<String, MemberKind> = HashMap::new();
    let mut symlinks = LengthFilter::default();
    let mut buffer = vec![0u8; buffer_size.max(64 * 1024)];

    let entries = archive.entries().map_err(|e| classify(e, "tar"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| classify(e, "tar"))?;
        report.members += 1;
        if report.members > limits.max_members {
            return Err(GuestError::LimitExceeded(format!("more than {} members", limits.max_members)));
        }
        // The name is read once: for a pax or GNU long name, each `path_bytes` call parses them again.
        let name_bytes = entry.path_bytes().into_owned();
        let utf8 = std::str::from_utf8(&name_bytes).is_ok();
        let raw_name = match String::from_utf8(name_bytes) {
            Ok(name) => name,
            Err(invalid) => String::from_utf8_lossy(invalid.as_bytes()).into_owned(),
        };
        let entry_type = entry.header().entry_type();
        if entry_type.is_pax_global_extensions() {
            continue;
        }
        let kind = match entry_type {
            EntryType::Regular | EntryType::Continuous => MemberKind::File,
            EntryType::Directory => MemberKind::Directory,
            EntryType::Symlink => MemberKind::Symlink,
            EntryType::Link => MemberKind::Hardlink,
            other => return Err(GuestError::rejected(&raw_name, format!("unsupported entry type {other:?}"))),
        };
        if !utf8 {
            return Err(GuestError::rejected(&raw_name, "name is not UTF-8"));
        }
        // An absolute name (`tar -P`) may only land in a root that names its members that way.
        let (absolute, name) = split_absolute(&raw_name);
        if absolute && !restore_roots.iter().any(|r| r.absolute) {
            return Err(GuestError::rejected(&raw_name, Violation::Absolute));
        }
        let path = validate_member_path(name, rules).map_err(|v| GuestError::rejected(&raw_name, v))?;
        let joined = path.as_joined();
        if ancestors(&joined).any(|a| symlinks.may_hold(a) && seen.get(a) == Some(&MemberKind::Symlink)) {
            return Err(GuestError::rejected(&raw_name, "below a symlink"));
        }
        let name_length = joined.len();
        match seen.entry(joined) {
            Entry::Occupied(_) => return Err(GuestError::rejected(&raw_name, "duplicate member")),
            Entry::Vacant(slot) => slot.insert(kind),
        };
        let index = route(&restore_roots, absolute, &path).map_err(|v| GuestError::rejected(&raw_name, v))?;
        let root = &mut restore_roots[index];
        let relative = path.strip_prefix(&root.prefix).expect("prefix checked");
        if relative.is_empty() && kind != MemberKind::Directory {
            return Err(GuestError::rejected(&raw_name, "a restored root must be a directory"));
        }

        let mtime = check_headers(&mut entry, raw_name.as_bytes()).map_err(|reason| GuestError::rejected(&raw_name, reason))?;
        let mode = sanitize_mode(entry.header().mode().map_err(|e| classify(e, "tar"))?, kind == MemberKind::Directory);
        let link_target = match kind {
            MemberKind::File => {
                let size = entry.size();
                report.bytes += size;
                if report.bytes > limits.max_total_bytes {
                    return Err(GuestError::LimitExceeded(format!("more than {} bytes of content", limits.max_total_bytes)));
                }
                if let Some((parent, _)) = relative.rsplit_once('/') {
                    ensure_directory(root, parent, writer)?;
                }
                writer.create(&root.root.guest_dir, &relative, mode, mtime)?;
                copy_entry(&mut entry, writer, size, &mut buffer)?;
                // The writer applies the file's mode and mtime itself: no fixup.
                continue;
            }
            MemberKind::Directory => {
                ensure_directory(root, &relative, writer)?;
                None
            }
            MemberKind::Hardlink => {
                let target = entry.link_name_bytes().ok_or_else(|| GuestError::rejected(&raw_name, "hard link without a target"))?;
                let target = std::str::from_utf8(&target).map_err(|_| GuestError::rejected(&raw_name, "hard link target is not UTF-8"))?;
                let (target_absolute, target) = split_absolute(target);
                if target_absolute != root.absolute {
                    return Err(GuestError::rejected(&raw_name, Violation::BadHardLinkTarget));
                }
                let target =
                    validate_member_path(target, rules).map_err(|v| GuestError::rejected(&raw_name, format!("hard link target: {v}")))?;
                if seen.get(&target.as_joined()) != Some(&MemberKind::File) {
                    return Err(GuestError::rejected(&raw_name, Violation::BadHardLinkTarget));
                }
                let target =
                    target.strip_prefix(&root.prefix).ok_or_else(|| GuestError::rejected(&raw_name, Violation::BadHardLinkTarget))?;
                if let Some((parent, _)) = relative.rsplit_once('/') {
                    ensure_directory(root, parent, writer)?;
                }
                Some(target)
            }
            MemberKind::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| GuestError::rejected(&raw_name, "symlink without a target"))?;
                let target = std::str::from_utf8(&target).map_err(|_| GuestError::rejected(&raw_name, "symlink target is not UTF-8"))?;
                let link = validate_relative(&relative).map_err(|v| GuestError::rejected(&raw_name, v))?;
                validate_symlink_target(&link, target).map_err(|v| GuestError::rejected(&raw_name, v))?;
                if root.directories.contains(&relative) {
                    return Err(GuestError::rejected(&raw_name, "symlink would replace a directory"));
                }
                if let Some((parent, _)) = relative.rsplit_once('/') {
                    ensure_directory(root, parent, writer)?;
                }
                symlinks.add(name_length);
                Some(target.to_owned())
            }
        };
        report.fixups.push(Fixup { root: index as u32, relative, kind, mode, mtime, link_target });
    }

    // The parser stops at a zero block or at a clean end of input; only the second zero block of the
    // end-of-archive marker and zero padding may follow, and the compressed stream must end cleanly (a
    // truncated or corrupt frame or member fails its checksum here at the latest).
    let mut rest = archive.into_inner();
    let mut trailing_zeros = 0u64;
    loop {
        let n = rest.read(&mut buffer).map_err(|e| classify(e, layer))?;
        if n == 0 {
            break;
        }
        if buffer[..n].iter().any(|&b| b != 0) {
            return Err(GuestError::CorruptStream("data after the end of the tar archive".into()));
        }
        trailing_zeros += n as u64;
    }
    if trailing_zeros < SECOND_ZERO_BLOCK {
        return Err(GuestError::CorruptStream(format!("{layer}: the archive ends without its end-of-archive blocks (truncated)")));
    }
    writer.finish()?;
    Ok(report)
}

/// The decompressed stream of `source`, bounded by `limits` (window and total size), its errors
/// marked with their layer.
fn decoder<'a>(
    compression: Compression,
    limits: &UnpackLimits,
    source: impl Read + 'a,
    buffer_size: usize,
) -> Result<Bounded<Box<dyn Read + 'a>>, GuestError> {
    let layer = layer_name(compression);
    let inner: Box<dyn Read + 'a> = match compression {
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(source).map_err(|e| classify(e, layer))?;
            decoder.window_log_max(limits.max_window_log).map_err(|e| classify(e, layer))?;
            Box::new(decoder)
        }
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(source)),
        Compression::None => Box::new(BufReader::with_capacity(buffer_size.max(64 * 1024), source)),
    };
    Ok(Bounded { inner, layer, remaining: limits.max_total_bytes })
}

/// Decompresses one part of an archive (one or more zstd frames or gzip members) from `source` to
/// `sink` and returns the bytes written. The part must end where a frame or member ends; its output
/// is bounded by `limits.max_total_bytes`, and zstd's window by `limits.max_window_log`. Parsing is
/// left to [`unpack`], which reads the parts' concatenation as bare tar.
pub fn decompress(
    compression: Compression,
    limits: &UnpackLimits,
    source: impl Read,
    mut sink: impl io::Write,
    buffer_size: usize,
) -> Result<u64, GuestError> {
    if compression == Compression::None {
        return Err(GuestError::Other("decompress needs a compressed format, not none".into()));
    }
    let layer = layer_name(compression);
    let mut decoded = decoder(compression, limits, source, buffer_size)?;
    let mut buffer = vec![0u8; buffer_size.max(64 * 1024)];
    let mut total = 0u64;
    loop {
        let n = match decoded.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(classify(e, layer)),
        };
        sink.write_all(&buffer[..n]).map_err(|e| GuestError::StreamFailed(e.to_string()))?;
        total += n as u64;
    }
}

/// Splits one leading `/` off a member name or root prefix: `(true, rest)` for an absolute name.
/// A second `/` stays, so `//etc` is still refused as absolute.
fn split_absolute(name: &str) -> (bool, &str) {
    match name.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, name),
    }
}

/// Creates `relative` (and its parents) under a root's staging directory once.
fn ensure_directory(root: &mut RestoreRoot<'_>, relative: &str, writer: &mut dyn StagingWriter) -> Result<(), GuestError> {
    if root.directories.contains(relative) {
        return Ok(());
    }
    writer.directory(&root.root.guest_dir, relative)?;
    let mut prefix = String::new();
    for component in relative.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(component);
        root.directories.insert(prefix.clone());
    }
    Ok(())
}

/// The lengths of the symlinks' names, folded into 64 bits: a name can only be a symlink when this
/// may hold its length, so most ancestors of most members need no lookup.
#[derive(Default)]
struct LengthFilter(u64);

impl LengthFilter {
    fn add(&mut self, len: usize) {
        self.0 |= 1 << (len % 64);
    }

    fn may_hold(&self, name: &str) -> bool {
        self.0 & (1 << (name.len() % 64)) != 0
    }
}

fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(|(i, _)| &path[..i])
}

/// Refuses members whose headers disagree with each other: a pax `size` other than a non-zero ustar
/// size (CVE-2025-62518: hidden inner entries), or a pax `path` that lost to a GNU long name (`name`
/// is the one the parser settled on; a name that is not UTF-8 has been refused before it matters).
/// Readers differ on which wins, so an archive that depends on it is refused rather than guessed at.
/// Returns the member's mtime: the pax `mtime` record when present (sub-second), else the ustar
/// field. The pax records are read in one pass.
fn check_headers<R: Read>(entry: &mut tar::Entry<'_, R>, name: &[u8]) -> Result<Timestamp, String> {
    let ustar_size = entry.header().size().map_err(|e| e.to_string())?;
    if ustar_size != 0 && ustar_size != entry.size() {
        return Err(format!("pax size {} disagrees with the header size {ustar_size}", entry.size()));
    }
    let mut mtime = None;
    if let Some(extensions) = entry.pax_extensions().map_err(|e| e.to_string())? {
        for extension in extensions {
            let extension = extension.map_err(|e| e.to_string())?;
            match extension.key_bytes() {
                b"path" if extension.value_bytes() != name => return Err("pax path disagrees with the GNU long name".into()),
                b"mtime" if mtime.is_none() => {
                    let value = std::str::from_utf8(extension.value_bytes()).map_err(|_| "pax mtime is not UTF-8".to_string())?;
                    mtime = Some(parse_pax_time(value).ok_or_else(|| format!("bad pax mtime {value:?}"))?);
                }
                _ => {}
            }
        }
    }
    match mtime {
        Some(mtime) => Ok(mtime),
        None => {
            let seconds = entry.header().mtime().map_err(|e| e.to_string())?;
            Ok(Timestamp { seconds: seconds.min(i64::MAX as u64) as i64, nanoseconds: 0 })
        }
    }
}

/// Parses pax's `seconds[.fraction]`, possibly negative; at most nanosecond precision is kept.
pub fn parse_pax_time(value: &str) -> Option<Timestamp> {
    let (negative, digits) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, digit) in fraction.bytes().take(9).enumerate() {
        nanos += u32::from(digit - b'0') * 10u32.pow(8 - i as u32);
    }
    Some(match (negative, nanos) {
        (false, _) => Timestamp { seconds: whole, nanoseconds: nanos },
        (true, 0) => Timestamp { seconds: -whole, nanoseconds: 0 },
        (true, n) => Timestamp { seconds: -whole - 1, nanoseconds: 1_000_000_000 - n },
    })
}

/// Copies a member's `size` bytes to the file the writer just created.
fn copy_entry(entry: &mut impl Read, writer: &mut dyn StagingWriter, size: u64, buffer: &mut [u8]) -> Result<(), GuestError> {
    let mut remaining = size;
    while remaining > 0 {
        let want = remaining.min(buffer.len() as u64) as usize;
        let n = match entry.read(&mut buffer[..want]) {
            Ok(0) => return Err(classify(io::Error::new(io::ErrorKind::UnexpectedEof, "archive ends inside a file"), "tar")),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(classify(e, "tar")),
        };
        writer.append(&buffer[..n])?;
        remaining -= n as u64;
    }
    Ok(())
}

/// The name of a stream's outer layer in error messages.
fn layer_name(compression: Compression) -> &'static str {
    match compression {
        Compression::Zstd => "zstd",
        Compression::Gzip => "gzip",
        Compression::None => "tar",
    }
}

/// Sorts a read error into the host's stream failing, a limit, or corrupt data.
fn classify(err: io::Error, layer: &str) -> GuestError {
    if let Some(failed) = err.get_ref().and_then(|e| e.downcast_ref::<SourceFailed>()) {
        return GuestError::StreamFailed(failed.0.clone());
    }
    if let Some(limit) = err.get_ref().and_then(|e| e.downcast_ref::<LimitReached>()) {
        return GuestError::LimitExceeded(limit.to_string());
    }
    // The decompressor's own errors name their layer even when the tar parser saw them first.
    if let Some(failed) = err.get_ref().and_then(|e| e.downcast_ref::<DecodeFailed>()) {
        return GuestError::CorruptStream(format!("{}: {}", failed.layer, failed.message));
    }
    GuestError::CorruptStream(format!("{layer}: {err}"))
}

/// The marker on an error of the decompressor (bad zstd frame, gzip header or CRC), as opposed to the
/// tar parser's.
#[derive(Debug)]
struct DecodeFailed {
    layer: &'static str,
    message: String,
}

impl std::fmt::Display for DecodeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.layer, self.message)
    }
}

impl std::error::Error for DecodeFailed {}

#[derive(Debug)]
struct LimitReached(u64);

impl std::fmt::Display for LimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the uncompressed archive is larger than {} bytes", self.0)
    }
}

impl std::error::Error for LimitReached {}

/// The decompressed stream: fails reads once more than the limit of decompressed bytes has been
/// produced (a zstd or gzip bomb), and marks the decompressor's errors with its layer.
struct Bounded<R> {
    inner: R,
    layer: &'static str,
    remaining: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).map_err(|err| {
            let from_source = err.get_ref().is_some_and(|e| e.is::<SourceFailed>());
            if from_source { err } else { io::Error::new(err.kind(), DecodeFailed { layer: self.layer, message: err.to_string() }) }
        })?;
        if n as u64 > self.remaining {
            return Err(io::Error::other(LimitReached(self.remaining)));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pax times parse back to what `pack::format_pax_time` wrote.
    #[test]
    fn parses_pax_times() {
        for (text, seconds, nanoseconds) in
            [("5", 5, 0), ("5.12", 5, 120_000_000), ("-0.5", -1, 500_000_000), ("-1.75", -2, 250_000_000), ("1.0000000019", 1, 1)]
        {
            assert_eq!(parse_pax_time(text), Some(Timestamp { seconds, nanoseconds }), "{text}");
        }
        assert_eq!(parse_pax_time("x"), None);
        assert_eq!(parse_pax_time("1.x"), None);
        assert_eq!(parse_pax_time(""), None);
    }
}
