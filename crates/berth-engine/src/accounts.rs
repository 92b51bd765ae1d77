//! Users and groups by name, as `--user`, `--group-add` and `exec --user` give them: looked
//! up in the container's own /etc/passwd and /etc/group, read inside its root so that no
//! link there can lead to the host's files.

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// The fields of the line of `file` (in the root `rootfs`) whose first field is `name`.
fn entry(rootfs: &Path, file: &str, name: &str) -> Option<Vec<String>> {
    let root = std::fs::File::open(rootfs).ok()?;
    let fd = berth_image::open_in_root(&root, file, libc::O_RDONLY).ok()?;
    let mut text = String::new();
    std::fs::File::from(fd).read_to_string(&mut text).ok()?;
    text.lines()
        .map(|line| line.split(':').map(str::to_string).collect::<Vec<_>>())
        .find(|fields| fields.first().map(String::as_str) == Some(name))
}

/// A number as it is, else the id named in field 2 of `file`'s entry for it.
fn id(rootfs: &Path, file: &str, text: &str) -> Option<(u32, Option<u32>)> {
    if let Ok(number) = text.parse() {
        return Some((number, None));
    }
    let fields = entry(rootfs, file, text)?;
    let number = fields.get(2)?.parse().ok()?;
    Some((number, fields.get(3).and_then(|g| g.parse().ok())))
}

/// `user[:group]`, each by number or name; empty is root. A numeric user without a group
/// gets the group of the same number; a named one its primary group.
pub(crate) fn user(text: &str, rootfs: &Path) -> Result<(u32, u32)> {
    let (user, group) = text.split_once(':').unwrap_or((text, ""));
    let (uid, primary) = match user {
        "" => (0, Some(0)),
        // Root is root in an image without a passwd file too.
        "root" => id(rootfs, "/etc/passwd", "root").unwrap_or((0, Some(0))),
        name => id(rootfs, "/etc/passwd", name).ok_or_else(|| {
            Error::Invalid(format!(
                "unable to find user {name}: no matching entries in passwd file"
            ))
        })?,
    };
    let gid = match group {
        "" => primary.unwrap_or(uid),
        name => self::group(name, rootfs)?,
    };
    Ok((uid, gid))
}

/// A group by number or by name.
pub(crate) fn group(text: &str, rootfs: &Path) -> Result<u32> {
    id(rootfs, "/etc/group", text)
        .map(|(gid, _)| gid)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "unable to find group {text}: no matching entries in group file"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_in_the_container_s_files_and_numbers_stand() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:1000:50::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            root.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:\naudio:x:29:\n",
        )
        .unwrap();
        let root = root.path();
        assert_eq!(user("", root).unwrap(), (0, 0));
        assert_eq!(user("root", root).unwrap(), (0, 0));
        assert_eq!(user("web", root).unwrap(), (1000, 50));
        assert_eq!(user("web:audio", root).unwrap(), (1000, 29));
        assert_eq!(user("1000", root).unwrap(), (1000, 1000));
        assert_eq!(user("1000:50", root).unwrap(), (1000, 50));
        assert!(
            user("nobody", root)
                .unwrap_err()
                .to_string()
                .contains("unable to find user nobody")
        );
        assert_eq!(group("audio", root).unwrap(), 29);
        assert!(group("video", root).is_err());
    }
}
