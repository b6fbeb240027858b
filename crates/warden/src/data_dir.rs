//! Where the embedded store lives: `--data-dir`, else the config's `data_dir`, else `warden-data`
//! beside the config file, else the platform data folder (`~/.local/share/warden` on Linux).

use std::path::{Path, PathBuf};

use anyhow::Context;

pub fn resolve(
    flag: Option<PathBuf>,
    configured: Option<&Path>,
    config_file: Option<&Path>,
) -> PathBuf {
    if let Some(d) = flag {
        return d;
    }
    if let Some(d) = configured {
        return d.to_path_buf();
    }
    if let Some(f) = config_file {
        return f.parent().unwrap_or(Path::new(".")).join("warden-data");
    }
    dirs::data_dir()
        .map(|d| d.join("warden"))
        .unwrap_or_else(|| PathBuf::from("warden-data"))
}

/// Creates the folder, readable by its owner only: it will hold key hashes and the audit log.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data folder {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}
