//! `--user` resolution against the image's /etc/passwd and /etc/group
//! (CTR `-u`). Files are read from the image's layer directories, never
//! through a symlink, so a hostile image cannot point us at host files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// Read `rel` (e.g. `etc/passwd`) from the topmost layer that has it as a
/// regular file reached without symlinks.
pub fn read_image_file(layers_top_first: &[PathBuf], rel: &str) -> Option<String> {
    for layer in layers_top_first {
        let mut p = layer.clone();
        let mut ok = true;
        for part in Path::new(rel).components() {
            p.push(part);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    ok = false;
                    break;
                }
                Ok(_) => {}
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            if let Ok(m) = std::fs::symlink_metadata(&p) {
                if m.is_file() {
                    return std::fs::read_to_string(&p).ok();
                }
            }
        }
    }
    None
}

/// Resolve `user[:group]` (names or numbers). Empty means root.
pub fn resolve(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<ResolvedUser> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let passwd_entries: Vec<Vec<&str>> = passwd
        .unwrap_or("")
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let group_entries: Vec<Vec<&str>> = group
        .unwrap_or("")
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();

    let entry = passwd_entries
        .iter()
        .find(|f| f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user));
    let (uid, mut gid, name, home) = match (user.parse::<u32>(), entry) {
        (Ok(uid), Some(e)) => (
            uid,
            e[3].parse().unwrap_or(0),
            e[0].to_string(),
            e[5].to_string(),
        ),
        (Ok(uid), None) => (uid, 0, String::new(), "/".to_string()),
        (Err(_), Some(e)) => (
            e[2].parse().map_err(|_| bad_passwd())?,
            e[3].parse().map_err(|_| bad_passwd())?,
            e[0].to_string(),
            e[5].to_string(),
        ),
        (Err(_), None) => {
            return Err(Error::InvalidArgument(format!(
                "unable to find user {user}: no matching entries in passwd file"
            )))
        }
    };
    if let Some(g) = grp {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_entries
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    // Like containerd: the primary group is always in the supplementary
    // list, followed by /etc/group memberships.
    let mut additional_gids: Vec<u32> = vec![gid];
    if !name.is_empty() {
        additional_gids.extend(
            group_entries
                .iter()
                .filter(|f| f[3].split(',').any(|m| m == name))
                .filter_map(|f| f[2].parse::<u32>().ok())
                .filter(|g| *g != gid),
        );
    }
    additional_gids.dedup();
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// A `--group-add` value: a gid, or a name from the image's /etc/group.
pub fn resolve_group(g: &str, group: Option<&str>) -> Result<u32> {
    if let Ok(n) = g.parse::<u32>() {
        return Ok(n);
    }
    group
        .unwrap_or("")
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == g)
        .and_then(|f| f[2].parse().ok())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "Unable to find group {g}: no matching entries in group file"
            ))
        })
}

fn bad_passwd() -> Error {
    Error::InvalidArgument("malformed passwd entry in image".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nweb:x:1000:1000::/home/web:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nweb:x:1000:\naudio:x:29:web\n";

    #[test]
    fn resolves_names_and_numbers() {
        let r = resolve("", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid), (0, 0));
        let r = resolve("nobody", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid), (65534, 65534));
        let r = resolve("web", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(r.additional_gids, vec![1000, 29]);
        assert_eq!(r.home, "/home/web");
        let r = resolve("1234:5", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid), (1234, 5));
        let r = resolve("1000:nogroup", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid), (1000, 65534));
    }

    #[test]
    fn group_add() {
        assert_eq!(resolve_group("audio", Some(GROUP)).unwrap(), 29);
        assert_eq!(resolve_group("4242", None).unwrap(), 4242);
        assert!(resolve_group("ghosts", Some(GROUP))
            .unwrap_err()
            .to_string()
            .contains("Unable to find group ghosts"));
    }

    #[test]
    fn unknown_user_is_an_error() {
        let e = resolve("ghost", Some(PASSWD), Some(GROUP)).unwrap_err();
        assert!(e.to_string().contains("unable to find user ghost"));
        assert!(resolve("web:ghosts", Some(PASSWD), Some(GROUP)).is_err());
    }

    #[test]
    fn never_reads_through_symlinks() {
        let d = std::env::temp_dir().join(format!("berth-user-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("etc")).unwrap();
        assert_eq!(read_image_file(&[d.clone()], "etc/passwd"), None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
