//! The work folder of `sta swarm`: a new temporary one, or `--work-dir`.
//! It records what the swarm puts there, so that removing it on success
//! touches nothing else.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The work folder and what in it belongs to the swarm: on success exactly
/// that is removed, so a `--work-dir` that already held other files keeps
/// them.
pub struct WorkDir {
    pub path: PathBuf,
    /// The folder did not exist before: it goes too once it is empty.
    created: bool,
    /// Entries the swarm makes in it (the seeder's content, the tracker's
    /// data, each leecher's folder, state, logs, the torrent).
    entries: Vec<PathBuf>,
}

impl WorkDir {
    fn entries(path: &Path, leechers: usize) -> Vec<PathBuf> {
        ["seeder", "tracker", "state", "logs", "swarm.torrent"]
            .into_iter()
            .map(String::from)
            .chain((1..=leechers).map(|i| format!("leecher{i}")))
            .map(|n| path.join(n))
            .collect()
    }

    pub fn temporary(leechers: usize) -> anyhow::Result<WorkDir> {
        let path = tempfile::Builder::new()
            .prefix("sta-swarm-")
            .tempdir()?
            .keep();
        Ok(WorkDir {
            entries: Self::entries(&path, leechers),
            path,
            created: true,
        })
    }

    /// A folder named by the user. It may exist and hold other things, but
    /// nothing under the names the swarm uses: those would be mixed with
    /// (and, on success, removed with) the swarm's own files.
    pub fn given(path: &Path, leechers: usize) -> anyhow::Result<WorkDir> {
        let created = !path.exists();
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create the work folder {}", path.display()))?;
        let entries = Self::entries(path, leechers);
        if let Some(taken) = entries.iter().find(|e| e.symlink_metadata().is_ok()) {
            bail!(
                "the work folder {} already has {}: give a new or empty folder",
                path.display(),
                taken.display()
            );
        }
        Ok(WorkDir {
            path: path.to_path_buf(),
            created,
            entries,
        })
    }

    pub fn remove(&self) {
        for e in &self.entries {
            match e.symlink_metadata() {
                Ok(m) if m.is_dir() => {
                    let _ = std::fs::remove_dir_all(e);
                }
                Ok(_) => {
                    let _ = std::fs::remove_file(e);
                }
                Err(_) => {}
            }
        }
        if self.created {
            // Not recursive: anything else put there meanwhile stays.
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_leaves_what_was_there_before() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("work");
        std::fs::create_dir_all(dir.join("mine")).unwrap();
        std::fs::write(dir.join("mine/notes.txt"), "keep me").unwrap();
        let w = WorkDir::given(&dir, 2).unwrap();
        assert!(!w.created);
        for e in ["seeder", "state/seeder", "leecher2", "logs"] {
            std::fs::create_dir_all(dir.join(e)).unwrap();
        }
        std::fs::write(dir.join("swarm.torrent"), "d4:infoe").unwrap();
        w.remove();
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["mine"]);
        assert_eq!(
            std::fs::read_to_string(dir.join("mine/notes.txt")).unwrap(),
            "keep me"
        );
    }

    #[test]
    fn a_new_folder_goes_once_empty() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("new");
        let w = WorkDir::given(&dir, 1).unwrap();
        assert!(w.created);
        std::fs::create_dir_all(dir.join("leecher1")).unwrap();
        w.remove();
        assert!(!dir.exists());
    }

    #[test]
    fn a_folder_holding_a_name_the_swarm_uses_is_refused() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("seeder")).unwrap();
        let e = WorkDir::given(root.path(), 1).err().unwrap().to_string();
        assert!(e.contains("already has") && e.contains("seeder"), "{e}");
        assert!(root.path().join("seeder").exists());
    }
}
