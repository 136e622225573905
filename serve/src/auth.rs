//! Bearer tokens: the one secret a client must present on every RPC but health. Compared in
//! constant time (sha256 digests through `subtle`, so neither content nor length leaks); a missing
//! or wrong token is refused and audited in the real database's log, without the token.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The token a server accepts, kept only as its sha256 digest.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// A token that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is empty: use at least 16 characters")]
    Empty,
    #[error("the token is too short ({0} characters): use at least 16")]
    Short(usize),
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot draw random bytes for a token: {0}")]
    Random(String),
}

/// The minimum token length.
pub const MIN_LEN: usize = 16;

impl Token {
    /// A token from its text (surrounding whitespace ignored).
    pub fn new(secret: &str) -> Result<Token, TokenError> {
        let secret = secret.trim();
        match secret.len() {
            0 => Err(TokenError::Empty),
            n if n < MIN_LEN => Err(TokenError::Short(n)),
            _ => Ok(Token {
                digest: Sha256::digest(secret.as_bytes()).into(),
            }),
        }
    }

    /// Whether `presented` is this token, in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// Reads a token file (its content, trimmed).
pub fn read_file(path: &Path) -> Result<String, TokenError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| TokenError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// A fresh random token: 32 bytes from the OS, hex.
pub fn generate() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a fresh token to `path` (readable by its owner only) and returns it. Refuses to
/// overwrite an existing file.
pub fn create_file(path: &Path) -> Result<String, TokenError> {
    use std::io::Write;
    let token = generate()?;
    let io = |source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    writeln!(file, "{token}").map_err(io)?;
    Ok(token)
}

/// The token a request presents in `authorization: Bearer <token>`, if any.
pub fn presented(metadata: &tonic::metadata::MetadataMap) -> Option<&str> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_token() {
        let t = Token::new("  correct horse battery staple\n").unwrap();
        assert!(t.matches("correct horse battery staple"));
        assert!(!t.matches("correct horse battery stapl"));
        assert!(!t.matches(""));
        assert!(matches!(Token::new(" "), Err(TokenError::Empty)));
        assert!(matches!(Token::new("short"), Err(TokenError::Short(5))));
    }

    #[test]
    fn reads_the_bearer_header() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert_eq!(presented(&m), None);
        m.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(presented(&m), Some("abc"));
        m.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented(&m), None);
    }

    #[test]
    fn generated_tokens_differ_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/token");
        let a = create_file(&path).unwrap();
        assert_eq!(read_file(&path).unwrap(), a);
        assert_ne!(a, generate().unwrap());
        assert!(
            create_file(&path).is_err(),
            "an existing file is never overwritten"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
