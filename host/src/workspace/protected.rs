//! What a restore without paths refuses: a restore whose paths come from the entry (Semaphore's
//! `cache restore KEY`, a plugin restore without `mount`, `s3cache restore` without `--path`) must not
//! plant or wipe startup files, credentials or programs on `PATH`, because whoever can write one object
//! in the bucket decides what such an entry holds.
//!
//! The rules are judged on final host paths, so one check serves every naming: the recorded paths
//! before anything is downloaded ([`Protected::refused_root`]), and every member after the guest has
//! unpacked into staging and the host has made its links, before anything is moved into place
//! ([`Protected::check_staged`]). Names are compared case-insensitively, as a case-insensitive
//! filesystem would resolve them. This is best effort: the list names what is commonly abused, not
//! everything a build reads. A restore with its paths given is not judged here: its user chose them.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::sandbox::bindings::{Member, MemberKind};
use crate::workspace::paths::{CachedRoot, normalize, resolve_roots};

/// Where a protected path is anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The home directory (`~`).
    Home,
    /// The workspace (the working directory).
    Workspace,
}

/// Protected paths that share a reason.
#[derive(Debug)]
pub struct Group {
    /// Why they are protected, as the refusal and docs/security.md say it.
    pub reason: &'static str,
    /// Where the paths are anchored.
    pub anchor: Anchor,
    /// `/`-separated paths below the anchor; a last component ending in `*` matches names that start
    /// with the rest (`.cargo/config*`: `config` and `config.toml`). The path and everything below
    /// it are protected.
    pub paths: &'static [&'static str],
}

/// The protected paths, in the order docs/security.md lists them.
pub const GROUPS: &[Group] = &[
    Group {
        reason: "holds credentials",
        anchor: Anchor::Home,
        paths: &[
            ".ssh",
            ".gnupg",
            ".aws",
            ".azure",
            ".kube",
            ".docker",
            ".terraform.d",
            ".config/gh",
            ".config/gcloud",
            ".config/containers",
            ".cargo/credentials*",
            ".m2/settings.xml",
        ],
    },
    Group {
        reason: "configures tools to run code or fetch from elsewhere",
        anchor: Anchor::Home,
        paths: &[".config/git", ".config/pip", ".cargo/config*", ".gradle/init.d"],
    },
    Group { reason: "starts programs at login", anchor: Anchor::Home, paths: &[".config/systemd", ".config/autostart"] },
    Group { reason: "is on PATH", anchor: Anchor::Home, paths: &["bin", ".local/bin", ".cargo/bin"] },
    Group { reason: "holds git's hooks and configuration", anchor: Anchor::Workspace, paths: &[".git"] },
];

/// Why a file directly in the home directory is refused (`.bashrc`, `.profile`, `.netrc`, `.npmrc`...).
pub const HOME_FILES: &str = "startup files and credentials live directly in the home directory";

/// What a refusal tells the user to do instead.
pub const GIVE_PATHS: &str = "give the paths to restore it (--path, mount)";

/// The rules for one workspace and home directory.
#[derive(Debug, Clone)]
pub struct Protected {
    workspace: PathBuf,
    home: Option<PathBuf>,
}

impl Protected {
    /// The rules of a restore into `workspace`, with `home` as `~` (`None`: nothing is anchored there).
    /// Both are compared as written, `.` and `..` removed, as [`resolve_roots`] makes the roots.
    pub fn new(workspace: &Path, home: Option<&Path>) -> Self {
        Self { workspace: normalize(workspace), home: home.map(normalize) }
    }

    /// Why a restore without paths refuses the roots of recorded paths, or `None`. What a recorded
    /// path names up to its first wildcard is judged: a literal path is replaced whole, so it must not
    /// be the home directory or the workspace, contain either of them or a protected path, or lie in a
    /// protected path.
    pub fn refused_root(&self, roots: &[CachedRoot]) -> Option<String> {
        roots.iter().flat_map(|root| root.include.iter().map(|pattern| literal_part(&root.dir, pattern))).find_map(|path| {
            self.root_rule(&path).map(|why| format!("a restore without paths refuses the recorded path {}: it {why}", self.show(&path)))
        })
    }

    /// Checks every member staged for `roots` (one staging directory each, in root order), links
    /// included, against the rules, as the member will land in its root; returns why the first
    /// refused one is refused. Nothing is followed: a symlink is judged where it lies, and by where it
    /// points (into a protected path, or at the home directory, the workspace or what contains one).
    pub fn check_staged(&self, roots: &[CachedRoot], staged: &[PathBuf]) -> Result<(), String> {
        for (root, dir) in roots.iter().zip(staged) {
            self.check_tree(dir, &normalize(&root.dir))?;
        }
        Ok(())
    }

    /// The first path a save of `paths` would record or hold that a later restore without paths
    /// would refuse, with the reason: the recorded paths, then `members` (of `roots`, as
    /// [`crate::workspace::fsmeta::describe`] lists them).
    pub fn refused_in_save(&self, paths: &[String], roots: &[CachedRoot], members: &[Member]) -> Option<String> {
        let recorded = resolve_roots(paths, &self.workspace, self.home.as_deref()).ok();
        recorded.as_deref().and_then(|recorded| self.refused_root(recorded)).or_else(|| {
            // Members come in walk order, so most share their parent directory with the one before.
            let mut parent_judged: Option<(u32, &Path, bool)> = None;
            members.iter().find_map(|member| {
                let root = roots.get(member.root as usize)?;
                let mut components = Path::new(&member.relative).components();
                if member.kind != MemberKind::Symlink && matches!(components.next_back(), Some(Component::Normal(_))) {
                    let parent = components.as_path();
                    let judged = match parent_judged {
                        Some((judged_root, judged_parent, judged)) if judged_root == member.root && judged_parent == parent => judged,
                        _ => self.may_refuse_below(&root.dir.join(parent)),
                    };
                    parent_judged = Some((member.root, parent, judged));
                    if !judged {
                        return None;
                    }
                }
                let target = root.dir.join(&member.relative);
                let link = if member.kind == MemberKind::Symlink { member.link_target.as_deref() } else { None };
                self.member_rule(&target, member.kind == MemberKind::Directory, link)
            })
        })
    }

    /// Whether a file or directory below `dir` can be refused at all, for the members of a save: only
    /// when `dir` is or contains the home directory or the workspace, or its own names below one of
    /// them could still lie in a protected path. Otherwise every path below `dir` is below the same
    /// anchors with the same leading names, which already fail to match; only a symlink, judged by its
    /// target too, needs its own check. A save of W1's 65k members judges its 4.5k directories instead
    /// (100 ms less of a serial step).
    fn may_refuse_below(&self, dir: &Path) -> bool {
        self.home.iter().chain([&self.workspace]).any(|anchor| anchor.starts_with(dir)) || self.protected_rule(dir, false).is_some()
    }

    fn check_tree(&self, staged: &Path, target: &Path) -> Result<(), String> {
        let mut entries: Vec<fs::DirEntry> =
            fs::read_dir(staged).and_then(|dir| dir.collect()).map_err(|e| format!("{}: {e}", staged.display()))?;
        // In name order, so that the same archive is always refused for the same member.
        entries.sort_by_key(fs::DirEntry::file_name);
        for entry in entries {
            let kind = entry.file_type().map_err(|e| format!("{}: {e}", entry.path().display()))?;
            let landing = target.join(entry.file_name());
            // A directory's contents first, so that a refusal names the deepest member (`~/.ssh/id_rsa`).
            if kind.is_dir() {
                self.check_tree(&entry.path(), &landing)?;
            }
            let link = if kind.is_symlink() {
                Some(fs::read_link(entry.path()).map_err(|e| format!("{}: {e}", entry.path().display()))?)
            } else {
                None
            };
            if let Some(why) = self.member_rule(&landing, kind.is_dir(), link.as_deref().map(|l| l.to_string_lossy()).as_deref()) {
                return Err(why);
            }
        }
        Ok(())
    }

    /// Why a member landing at `path` (a directory or not, a symlink to `link`) is refused.
    fn member_rule(&self, path: &Path, is_dir: bool, link: Option<&str>) -> Option<String> {
        let refuse = |why: String| Some(format!("a restore without paths refuses {}: it {why}", self.show(path)));
        if let Some(why) = self.protected_rule(path, true) {
            return refuse(why);
        }
        if !is_dir && self.home.as_deref().is_some_and(|home| path.parent() == Some(home)) {
            return refuse(format!("is not a directory and lies directly in the home directory ({HOME_FILES})"));
        }
        let target = normalize(&path.parent()?.join(link?));
        refuse(format!("links to {}, which {}", self.show(&target), self.root_rule(&target)?))
    }

    /// Why a path that replaces what is there as a whole is refused.
    fn root_rule(&self, path: &Path) -> Option<String> {
        for (anchor, name) in [(self.home.as_deref(), "the home directory"), (Some(self.workspace.as_path()), "the workspace")] {
            match anchor {
                Some(anchor) if anchor == path => return Some(format!("is {name}")),
                Some(anchor) if anchor.starts_with(path) => return Some(format!("contains {name}")),
                _ => {}
            }
        }
        self.protected_rule(path, false)
    }

    /// Why `path` is in a protected path (or, unless `inside_only`, contains one), or `None`.
    ///
    /// A save judges every member here (W1: 65k), so the names below each anchor are split once and
    /// nothing is allocated for a pattern that does not match.
    fn protected_rule(&self, path: &Path, inside_only: bool) -> Option<String> {
        let names_below = |anchor: Option<&Path>| -> Option<Vec<std::borrow::Cow<'_, str>>> {
            let relative = path.strip_prefix(anchor?).ok()?;
            Some(relative.iter().map(|c| c.to_string_lossy()).collect())
        };
        let below_home = names_below(self.home.as_deref());
        let below_workspace = names_below(Some(&self.workspace));
        for group in GROUPS {
            let Some(names) = (match group.anchor {
                Anchor::Home => &below_home,
                Anchor::Workspace => &below_workspace,
            }) else {
                continue;
            };
            for protected in group.paths {
                let shown = || match group.anchor {
                    Anchor::Home => format!("~/{protected}"),
                    Anchor::Workspace => (*protected).to_owned(),
                };
                let depth = protected.split('/').count();
                let matches = |n: usize| names.iter().zip(protected.split('/')).take(n).all(|(name, pattern)| same_name(name, pattern));
                if names.len() >= depth && matches(depth) {
                    return Some(format!("lies in {}, which {}", shown(), group.reason));
                }
                if !inside_only && names.len() < depth && matches(names.len()) {
                    return Some(format!("contains {}, which {}", shown(), group.reason));
                }
            }
        }
        None
    }

    /// `path` as the user knows it: relative to the workspace, else `~/...`, else absolute.
    fn show(&self, path: &Path) -> String {
        if let Ok(relative) = path.strip_prefix(&self.workspace) {
            return if relative.as_os_str().is_empty() { ".".into() } else { relative.display().to_string() };
        }
        match self.home.as_deref().and_then(|home| path.strip_prefix(home).ok()) {
            Some(relative) if relative.as_os_str().is_empty() => "~".into(),
            Some(relative) => format!("~/{}", relative.display()),
            None => path.display().to_string(),
        }
    }
}

/// `dir` joined with `pattern` up to its first component with a wildcard.
fn literal_part(dir: &Path, pattern: &str) -> PathBuf {
    let literal = pattern.split('/').take_while(|c| !c.contains(['*', '?', '[', '{'])).filter(|c| !c.is_empty());
    normalize(&literal.fold(dir.to_path_buf(), |path, c| path.join(c)))
}

/// Whether a name matches a protected name, ignoring case (Unicode's simple mappings both ways, so
/// `.SSH` and `.ſsh` match `.ssh`); a pattern ending in `*` matches names that start with the rest.
fn same_name(name: &str, pattern: &str) -> bool {
    if name.is_ascii() && pattern.is_ascii() {
        // Both mappings of ASCII text are ASCII's own: no allocation for the common case.
        let prefix = pattern.trim_end_matches('*');
        return match name.get(..prefix.len()) {
            Some(start) if pattern.ends_with('*') => start.eq_ignore_ascii_case(prefix),
            _ => name.eq_ignore_ascii_case(prefix),
        };
    }
    let folds = |text: &str| [text.to_lowercase(), text.to_uppercase().to_lowercase()];
    let [name_lower, name_folded] = folds(name);
    let [pattern_lower, pattern_folded] = folds(pattern.trim_end_matches('*'));
    if pattern.ends_with('*') {
        name_lower.starts_with(&pattern_lower) || name_folded.starts_with(&pattern_folded)
    } else {
        name_lower == pattern_lower || name_folded == pattern_folded
    }
}

#[cfg(test)]
/// The docs/security.md table of [`GROUPS`] and the home-directory rule, as that page must hold it.
pub fn readme_table() -> String {
    let mut table = String::from("| protected | why |\n|---|---|\n");
    table.push_str(&format!("| every file, symlink or other non-directory directly in `~` (`.bashrc`, `.profile`, `.zshenv`, `.netrc`, `.npmrc`, `.pypirc`, `.gitconfig`, `.git-credentials`, ...) | {HOME_FILES} |\n"));
    for group in GROUPS {
        let paths: Vec<String> = group
            .paths
            .iter()
            .map(|p| match group.anchor {
                Anchor::Home => format!("`~/{p}`"),
                Anchor::Workspace => format!("the workspace's `{p}`"),
            })
            .collect();
        table.push_str(&format!("| {} | it {} |\n", paths.join(", "), group.reason));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKSPACE: &str = "/work/repo";
    const HOME: &str = "/home/u";

    fn rules() -> Protected {
        Protected::new(Path::new(WORKSPACE), Some(Path::new(HOME)))
    }

    fn roots(paths: &[&str]) -> Vec<CachedRoot> {
        let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        resolve_roots(&paths, Path::new(WORKSPACE), Some(Path::new(HOME))).unwrap()
    }

    /// Recorded roots: the home directory, the workspace, what contains them or a protected path, and
    /// what lies in one are refused, each named; ordinary caches, in the home directory too, are not.
    #[test]
    fn judges_recorded_roots() {
        let refused = |paths: &[&str]| rules().refused_root(&roots(paths));
        assert_eq!(refused(&["~"]).as_deref(), Some("a restore without paths refuses the recorded path ~: it is the home directory"));
        assert_eq!(refused(&["."]).as_deref(), Some("a restore without paths refuses the recorded path .: it is the workspace"));
        assert_eq!(refused(&["~/*"]).as_deref(), Some("a restore without paths refuses the recorded path ~: it is the home directory"));
        assert_eq!(
            refused(&["/work"]).as_deref(),
            Some("a restore without paths refuses the recorded path /work: it contains the workspace")
        );
        assert_eq!(
            refused(&["~/.cargo"]).as_deref(),
            Some("a restore without paths refuses the recorded path ~/.cargo: it contains ~/.cargo/credentials*, which holds credentials")
        );
        assert_eq!(
            refused(&["~/.ssh/authorized_keys"]).as_deref(),
            Some("a restore without paths refuses the recorded path ~/.ssh/authorized_keys: it lies in ~/.ssh, which holds credentials")
        );
        assert_eq!(
            refused(&["node_modules", ".git/hooks"]).as_deref(),
            Some(
                "a restore without paths refuses the recorded path .git/hooks: it lies in .git, which holds git's hooks and configuration"
            )
        );
        assert_eq!(
            refused(&["~/.Local/BIN/x"]).as_deref(),
            Some("a restore without paths refuses the recorded path ~/.Local/BIN/x: it lies in ~/.local/bin, which is on PATH")
        );
        for fine in [
            &["node_modules", "target/debug"][..],
            &["~/.cargo/registry", "~/.cargo/git"],
            &["~/.cache/yarn", "~/go/pkg/mod", "~/.m2/repository"],
            &["~/.config/yarn/*"],
            &["src/**/*.rs"],
        ] {
            assert_eq!(refused(fine), None, "{fine:?}");
        }
    }

    /// Members: nothing in a protected path (the path itself included), no non-directory directly in
    /// the home directory, no link pointing into a protected path or at what contains one; directories
    /// in the home directory, and links within a cache, are fine.
    #[test]
    fn judges_members() {
        let member = |path: &str, is_dir: bool, link: Option<&str>| rules().member_rule(Path::new(path), is_dir, link);
        assert_eq!(
            member("/home/u/.bashrc", false, None).as_deref(),
            Some(
                "a restore without paths refuses ~/.bashrc: it is not a directory and lies directly in the home directory (startup files and credentials live directly in the home directory)"
            )
        );
        assert!(member("/home/u/.npmrc", false, Some(".cache/npmrc")).is_some(), "a link is not a directory");
        assert_eq!(
            member("/home/u/.ssh", true, None).as_deref(),
            Some("a restore without paths refuses ~/.ssh: it lies in ~/.ssh, which holds credentials")
        );
        assert!(member("/home/u/.SSH/authorized_keys", false, None).unwrap().contains("lies in ~/.ssh"));
        assert!(member("/home/u/.aws/credentials", false, None).unwrap().contains("lies in ~/.aws"));
        assert!(member("/home/u/.cargo/config.toml", false, None).unwrap().contains("lies in ~/.cargo/config*"));
        assert!(member("/home/u/.cargo/Credentials", false, None).unwrap().contains("lies in ~/.cargo/credentials*"));
        assert!(member("/home/u/.m2/settings.xml", false, None).unwrap().contains("lies in ~/.m2/settings.xml"));
        assert_eq!(
            member("/work/repo/.git/hooks/pre-commit", false, None).as_deref(),
            Some("a restore without paths refuses .git/hooks/pre-commit: it lies in .git, which holds git's hooks and configuration")
        );
        assert_eq!(
            member("/home/u/.cache/keys", false, Some("../.ssh/authorized_keys")).as_deref(),
            Some(
                "a restore without paths refuses ~/.cache/keys: it links to ~/.ssh/authorized_keys, which lies in ~/.ssh, which holds credentials"
            )
        );
        assert!(
            member("/work/repo/node_modules/up", false, Some("../..")).unwrap().contains("links to /work, which contains the workspace")
        );
        for (path, is_dir, link) in [
            ("/home/u/.cache", true, None),
            ("/home/u/.cargo/registry/index/x", false, None),
            ("/home/u/.cargo", true, None),
            ("/home/u/.sshx/y", false, None),
            ("/home/u/binaries/x", false, None),
            ("/work/repo/.gitignore", false, None),
            ("/work/repo/sub/.git/config", false, None),
            ("/work/repo/node_modules/.bin/tool", false, Some("../tool/cli.js")),
            ("/work/repo/venv/lib64", false, Some("lib")),
        ] {
            assert_eq!(member(path, is_dir, link), None, "{path}");
        }
    }

    /// A save judges its members as they will land: a file directly in `~` and a symlink out of its
    /// root are refused, whatever members before them share (or do not share) their parent; the many
    /// members below a directory that no rule can reach are not.
    #[test]
    fn judges_the_members_of_a_save() {
        let member = |root: u32, relative: &str, kind: MemberKind, link: Option<&str>| Member {
            root,
            relative: relative.into(),
            kind,
            mode: 0o644,
            size: 0,
            mtime: crate::sandbox::bindings::Timestamp { seconds: 0, nanoseconds: 0 },
            link_target: link.map(str::to_owned),
            slice: None,
        };
        let paths: Vec<String> = ["sub/node_modules", "~/.bashrc"].map(String::from).to_vec();
        let saved = roots(&["sub/node_modules", "~/.bashrc"]);
        assert_eq!((saved[0].dir.as_path(), saved[1].dir.as_path()), (Path::new(HOME), Path::new("/work/repo/sub")));
        let modules = [
            member(1, "node_modules", MemberKind::Directory, None),
            member(1, "node_modules/a.js", MemberKind::File, None),
            member(1, "node_modules/.bin", MemberKind::Directory, None),
        ];
        let refused = |members: &[Member]| rules().refused_in_save(&paths, &saved, members);
        assert_eq!(refused(&modules), None);
        let bashrc = member(0, ".bashrc", MemberKind::File, None);
        assert_eq!(
            refused(&[modules[0].clone(), bashrc.clone()]).as_deref(),
            Some(
                "a restore without paths refuses ~/.bashrc: it is not a directory and lies directly in the home directory (startup files and credentials live directly in the home directory)"
            )
        );
        assert_eq!(
            refused(&[modules[1].clone(), member(1, "node_modules/.bin/up", MemberKind::Symlink, Some("../../.."))]).as_deref(),
            Some("a restore without paths refuses sub/node_modules/.bin/up: it links to ., which is the workspace")
        );
    }

    /// Without a home directory only the workspace's rules apply.
    #[test]
    fn without_a_home() {
        let rules = Protected::new(Path::new(WORKSPACE), None);
        assert_eq!(rules.member_rule(Path::new("/home/u/.bashrc"), false, None), None);
        assert!(rules.member_rule(Path::new("/work/repo/.git/config"), false, None).is_some());
    }

    /// The staged tree is judged where it will land: a hard link or symlink made by the host counts
    /// like any member, and a clean tree passes.
    #[test]
    fn checks_staged_trees() {
        let staging = tempfile::tempdir().unwrap();
        let root = CachedRoot { dir: HOME.into(), prefix: String::new(), include: vec!["**".into()], exclude: vec![] };
        fs::create_dir_all(staging.path().join(".cache/yarn")).unwrap();
        fs::write(staging.path().join(".cache/yarn/a"), "a").unwrap();
        let staged = [staging.path().to_owned()];
        assert_eq!(rules().check_staged(std::slice::from_ref(&root), &staged), Ok(()));
        fs::create_dir_all(staging.path().join(".Local")).unwrap();
        fs::hard_link(staging.path().join(".cache/yarn/a"), staging.path().join(".Local/bin")).unwrap();
        assert_eq!(
            rules().check_staged(std::slice::from_ref(&root), &staged).unwrap_err(),
            "a restore without paths refuses ~/.Local/bin: it lies in ~/.local/bin, which is on PATH"
        );
        fs::remove_dir_all(staging.path().join(".Local")).unwrap();
        std::os::unix::fs::symlink("../.ssh", staging.path().join(".cache/ssh")).unwrap();
        assert!(rules().check_staged(std::slice::from_ref(&root), &staged).unwrap_err().contains("links to ~/.ssh"));
    }

    /// docs/security.md's table is this module's list.
    #[test]
    fn readme_lists_the_rules() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md"));
        assert!(
            readme.contains(&readme_table()),
            "docs/security.md's table of what a restore without paths refuses differs from:\n{}",
            readme_table()
        );
    }
}
