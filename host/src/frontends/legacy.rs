//! A dialect's old-layout objects ([`crate::frontends::LegacyObject`]) as the engine's legacy restore takes
//! them ([`crate::engine::Legacy`]): at the old name under the store prefix, with the paths it holds and
//! members named as `tar` names them — relative to the workspace for paths inside it, by absolute path
//! (`tar -P`) for paths elsewhere, always by absolute path (drone-cache), or relative to the mount's
//! parent (Vela). An object with relative names of a path outside the workspace is left out with a
//! debug line: restoring it would only be refused member by member.

use std::path::Path;

use crate::frontends::{LegacyNames, LegacyObject};
use crate::engine::{Legacy, MemberNames};
use crate::workspace::paths::resolve_roots;

/// The objects of `objects` this workspace can restore, named around the rendered `key`.
pub fn engine_legacy(objects: &[LegacyObject], key: &str, cwd: &Path, home: Option<&Path>) -> Option<Legacy> {
    let first = objects.first()?;
    let usable: Vec<crate::engine::LegacyObject> = objects
        .iter()
        .filter_map(|object| {
            let name = object.object.object(key);
            // Relative names fit only paths inside the workspace (`tar` names others by absolute path).
            let fits = !object.paths.is_empty()
                && match resolve_roots(&object.paths, cwd, home) {
                    Ok(roots) => object.names != LegacyNames::Relative || roots.iter().all(|root| root.dir.starts_with(cwd)),
                    Err(_) => false,
                };
            if !fits {
                tracing::debug!(object = %name, paths = ?object.paths, "an old object whose member names this restore cannot place; not tried");
            }
            let names = match object.names {
                LegacyNames::Absolute => MemberNames::Absolute,
                LegacyNames::Relative => MemberNames::Plain,
                // A root is the directory containing the path: the mount's parent.
                LegacyNames::FromParent => MemberNames::FromParent,
            };
            fits.then(|| crate::engine::LegacyObject { name, paths: object.paths.clone(), names })
        })
        .collect();
    (!usable.is_empty()).then(|| Legacy { writer: first.writer.to_owned(), format: first.format, in_search: false, objects: usable })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontends::LegacyName;
    use crate::archive::layout::Format;

    fn object(paths: &[&str], names: LegacyNames) -> LegacyObject {
        LegacyObject {
            object: LegacyName::AroundKey { before: String::new(), after: format!("/{}", paths.first().unwrap_or(&"")) },
            format: Format::Gzip,
            paths: paths.iter().map(|p| p.to_string()).collect(),
            names,
            writer: "an old plugin",
        }
    }

    /// Only objects whose member names the engine can place are handed on, named around the key.
    #[test]
    fn keeps_what_the_workspace_can_take() {
        let (cwd, home) = (Path::new("/ws"), Some(Path::new("/home/u")));
        let take = |objects: &[LegacyObject]| engine_legacy(objects, "k", cwd, home).map(|l| l.objects.into_iter().map(|o| o.name).collect::<Vec<_>>());
        assert_eq!(take(&[object(&["node_modules"], LegacyNames::Relative)]), Some(vec!["k/node_modules".to_string()]));
        assert_eq!(take(&[object(&["~/.m2"], LegacyNames::Absolute)]), Some(vec!["k/~/.m2".to_string()]));
        assert_eq!(take(&[object(&["vendor"], LegacyNames::Absolute)]), Some(vec!["k/vendor".to_string()]), "drone-cache's absolute names of a workspace path");
        assert_eq!(take(&[object(&["a/b"], LegacyNames::FromParent)]), Some(vec!["k/a/b".to_string()]), "Vela's names below a nested mount's parent");
        assert_eq!(engine_legacy(&[object(&["vendor"], LegacyNames::Absolute)], "k", cwd, home).unwrap().objects[0].names, MemberNames::Absolute);
        assert_eq!(take(&[object(&["vendor"], LegacyNames::FromParent)]).map(|v| v.len()), Some(1));
        assert_eq!(take(&[object(&["a", "b"], LegacyNames::Relative)]), Some(vec!["k/a".to_string()]), "several paths in one object");
        assert_eq!(engine_legacy(&[object(&["a", "b"], LegacyNames::Relative)], "k", cwd, home).unwrap().objects[0].paths, ["a", "b"]);
        assert_eq!(take(&[object(&["a", "/opt/x"], LegacyNames::Relative)]), None, "relative names of a path outside the workspace");
        assert_eq!(take(&[]), None);
        let legacy = engine_legacy(&[object(&["node_modules"], LegacyNames::Relative)], "k", cwd, home).unwrap();
        assert_eq!((legacy.writer.as_str(), legacy.format, legacy.in_search), ("an old plugin", Format::Gzip, false));
    }
}
