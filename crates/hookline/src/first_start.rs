//! Embedded mode's first start: an admin token nobody had to invent, kept in the data dir so
//! every later start uses the same one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The token file inside the data dir.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

/// The admin token kept in the data dir, and whether this start created it.
pub struct StoredToken {
    pub token: String,
    pub path: PathBuf,
    pub generated: bool,
}

/// Reads the token from the data dir, or generates one and writes it there, readable by this
/// user only. The file is created exclusively, so two starts racing cannot each print a
/// different token.
pub fn admin_token(data_dir: &Path) -> anyhow::Result<StoredToken> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let path = token_path(data_dir);
    let token = hookline_ingest::auth::new_admin_token();
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    match created {
        Ok(mut file) => {
            file.write_all(format!("{token}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(StoredToken {
                token,
                path,
                generated: true,
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let token = text.trim().to_owned();
            anyhow::ensure!(
                token.len() >= 16,
                "{} holds no usable admin token (fewer than 16 characters); delete it to generate a new one",
                path.display()
            );
            Ok(StoredToken {
                token,
                path,
                generated: false,
            })
        }
        Err(error) => Err(error).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// What a person sees once, on the start that generated the token: the token and commands
/// they can paste as they are.
pub fn welcome(stored: &StoredToken, api_url: &str) -> String {
    let token = &stored.token;
    let path = stored.path.display();
    format!(
        "\nhookline: generated an admin token, saved in {path} (shown only this once):\n\n\
         \x20   {token}\n\n\
         Try it:\n\n\
         \x20   export HOOKLINE_TOKEN={token}\n\
         \x20   curl -sH \"Authorization: Bearer $HOOKLINE_TOKEN\" -H 'content-type: application/json' \\\n\
         \x20        {api_url}/api/v1/app -d '{{\"name\": \"Demo\", \"uid\": \"demo\"}}'\n\
         \x20   hookline send --app demo --event-type demo.hello --payload '{{\"hello\": \"world\"}}'\n\n\
         The dashboard: {api_url}/dashboard (log in with the token).\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_start_generates_a_private_token_and_later_starts_reuse_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = admin_token(dir.path()).expect("generated");
        assert!(first.generated);
        assert!(first.token.len() >= 32, "{}", first.token.len());
        let mode = std::fs::metadata(&first.path).expect("file").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let again = admin_token(dir.path()).expect("read back");
        assert!(!again.generated);
        assert_eq!(again.token, first.token);
        assert!(welcome(&first, "http://localhost:8071").contains(&first.token));
    }

    #[test]
    fn a_truncated_token_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(token_path(dir.path()), "short\n").expect("write");
        let error = admin_token(dir.path()).err().expect("refused");
        assert!(error.to_string().contains("admin-token"), "{error}");
    }
}
