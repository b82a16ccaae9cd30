//! Master and client roles. famfs compares the superblock's system UUID with this host's,
//! kept in `/opt/famfs/system_uuid`; only the master may write (`famfs-format.md` §4.5).

use crate::superblock::Superblock;
use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;
use uuid::Uuid;

/// Where famfs keeps this host's system UUID.
pub const SYSTEM_UUID_PATH: &str = "/opt/famfs/system_uuid";
/// Environment variable naming a UUID to use instead of the system UUID file (tests, CI).
pub const ENV_SYSTEM_UUID: &str = "FAMFS_SYSTEM_UUID";
/// Environment variable naming another system UUID file.
pub const ENV_SYSTEM_UUID_FILE: &str = "FAMFS_SYSTEM_UUID_FILE";

/// Errors reading or creating the system UUID.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// The file could not be read.
    #[error("cannot read the system UUID from {path}: {cause}; famfs treats this host as a client")]
    Read {
        /// The file.
        path: PathBuf,
        /// OS error.
        cause: io::Error,
    },
    /// The file could not be created.
    #[error(
        "cannot create the system UUID file {path}: {cause}; run as root or set {ENV_SYSTEM_UUID_FILE} to a writable path"
    )]
    Create {
        /// The file.
        path: PathBuf,
        /// OS error.
        cause: io::Error,
    },
    /// The text is not a UUID.
    #[error("{origin} holds '{text}', which is not a UUID")]
    Parse {
        /// Where the text came from.
        origin: String,
        /// The text.
        text: String,
    },
}

/// This host's identity, as famfs decides roles with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemIdentity {
    uuid: Uuid,
    origin: String,
}

/// This host's role for one file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The host that made the file system: may append to the log.
    Master,
    /// Any other host: read-only.
    Client,
}

impl SystemIdentity {
    /// A fixed identity.
    pub fn from_uuid(uuid: Uuid) -> SystemIdentity {
        SystemIdentity { uuid, origin: "a fixed UUID".into() }
    }

    /// Reads a system UUID file (36 characters, famfs adds a NUL).
    pub fn from_file(path: &Path) -> Result<SystemIdentity, IdentityError> {
        let text = std::fs::read_to_string(path).map_err(|cause| IdentityError::Read { path: path.into(), cause })?;
        parse(&text, &path.display().to_string())
    }

    /// The identity from `FAMFS_SYSTEM_UUID`, else the file named by `FAMFS_SYSTEM_UUID_FILE`,
    /// else `/opt/famfs/system_uuid`. With `create`, a missing file is created with a fresh
    /// random UUID (mode 0444), as famfs does.
    pub fn from_env(create: bool) -> Result<SystemIdentity, IdentityError> {
        if let Ok(text) = std::env::var(ENV_SYSTEM_UUID) {
            return parse(&text, ENV_SYSTEM_UUID);
        }
        let path =
            std::env::var_os(ENV_SYSTEM_UUID_FILE).map_or_else(|| PathBuf::from(SYSTEM_UUID_PATH), PathBuf::from);
        match Self::from_file(&path) {
            Err(IdentityError::Read { cause, .. }) if create && cause.kind() == io::ErrorKind::NotFound => {
                create_file(&path)
            }
            other => other,
        }
    }

    /// The UUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// Where it came from, for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// This host's role for the file system with superblock `sb`.
    pub fn role(&self, sb: &Superblock) -> Role {
        if sb.system_uuid == self.uuid { Role::Master } else { Role::Client }
    }
}

fn parse(text: &str, origin: &str) -> Result<SystemIdentity, IdentityError> {
    let t = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    Uuid::parse_str(t)
        .map(|uuid| SystemIdentity { uuid, origin: origin.to_string() })
        .map_err(|_| IdentityError::Parse { origin: origin.to_string(), text: t.to_string() })
}

fn create_file(path: &Path) -> Result<SystemIdentity, IdentityError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let err = |cause| IdentityError::Create { path: path.into(), cause };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(err)?;
    }
    let uuid = Uuid::new_v4();
    let mut text = uuid.hyphenated().to_string().into_bytes();
    text.push(0);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o444).open(path).map_err(err)?;
    io::Write::write_all(&mut f, &text).map_err(err)?;
    f.sync_all().map_err(err)?;
    Ok(SystemIdentity { uuid, origin: path.display().to_string() })
}
