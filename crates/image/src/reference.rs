//! Docker image reference parsing and normalization (the grammar of
//! github.com/distribution/reference, with docker.io defaults).

use crate::error::{Error, Result};

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const MAX_NAME: usize = 255;

/// A parsed, normalized reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Familiar repository name: `busybox`, `foo/bar`, `localhost:5000/x/y`.
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Familiar string with the default tag applied: `busybox:latest`,
    /// `name@sha256:...` for digest-only references.
    pub fn familiar(&self) -> String {
        let mut s = self.name.clone();
        match (&self.tag, &self.digest) {
            (Some(t), _) => {
                s.push(':');
                s.push_str(t);
            }
            (None, None) => s.push_str(":latest"),
            (None, Some(_)) => {}
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

fn invalid(detail: &str) -> Error {
    if detail.is_empty() {
        Error::InvalidReference("invalid reference format".into())
    } else {
        Error::InvalidReference(format!("invalid reference format: {detail}"))
    }
}

/// Docker reference normalization: `busybox` -> `busybox:latest`,
/// `docker.io/library/busybox` -> `busybox:latest`; returns the familiar form.
pub fn normalize_reference(r: &str) -> Result<String> {
    Ok(parse_reference(r)?.familiar())
}

/// Parse and normalize `r`.
pub fn parse_reference(r: &str) -> Result<Reference> {
    if r.is_empty() {
        return Err(invalid(""));
    }
    if r.len() == 64 && is_lower_hex(r) {
        return Err(Error::InvalidReference(format!(
            "invalid repository name ({r}), cannot specify 64-byte hexadecimal strings"
        )));
    }
    let (rest, digest) = match r.split_once('@') {
        Some((n, d)) => {
            validate_digest(d)?;
            (n, Some(d.to_string()))
        }
        None => (r, None),
    };
    // A ':' after the last '/' starts the tag (an earlier one is a port).
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let i = last_slash + i;
            let tag = &rest[i + 1..];
            if !valid_tag(tag) {
                return Err(invalid(""));
            }
            (&rest[..i], Some(tag.to_string()))
        }
        None => (rest, None),
    };
    if name.is_empty() {
        return Err(invalid(""));
    }
    if name.len() > MAX_NAME {
        return Err(invalid(
            "repository name must not be more than 255 characters",
        ));
    }
    let (domain, path) = split_domain(name);
    if let Some(d) = domain {
        if !valid_domain(d) {
            return Err(invalid(""));
        }
    }
    if path.is_empty() || !path.split('/').all(valid_path_component) {
        let lower = path.to_ascii_lowercase();
        if !lower.is_empty() && lower.split('/').all(valid_path_component) {
            return Err(invalid("repository name must be lowercase"));
        }
        return Err(invalid(""));
    }
    let domain = match domain {
        None | Some(LEGACY_DOMAIN) => DEFAULT_DOMAIN,
        Some(d) => d,
    };
    let familiar = if domain == DEFAULT_DOMAIN {
        match path.strip_prefix(OFFICIAL_PREFIX) {
            Some(p) if !p.contains('/') => p.to_string(),
            _ => path.to_string(),
        }
    } else {
        format!("{domain}/{path}")
    };
    Ok(Reference {
        name: familiar,
        tag,
        digest,
    })
}

/// Split like Docker's splitDockerDomain: the first component is a registry
/// host if it contains '.' or ':', is "localhost", or has uppercase letters.
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | __ | [-]+
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// host[:port], host = domain-name | IPv4 | [IPv6].
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.is_empty() || !v6.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
                    return false;
                }
                match after {
                    "" => return true,
                    p => match p.strip_prefix(':') {
                        Some(p) => return !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

/// algorithm ":" hex; sha256 needs exactly 64 lowercase hex digits.
fn validate_digest(d: &str) -> Result<()> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err(invalid(""));
    };
    let alg_ok = !alg.is_empty()
        && alg.split(['+', '.', '-', '_']).all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphabetic()
                && b.iter().all(|x| x.is_ascii_alphanumeric())
        });
    let hex_ok = if alg == "sha256" {
        hex.len() == 64 && is_lower_hex(hex)
    } else {
        hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit())
    };
    if alg_ok && hex_ok {
        Ok(())
    } else {
        Err(invalid(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // IMG-11 / IMG-09: default tag, docker.io normalization, registry hosts.
    #[test]
    fn normalization_table() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        let ok: Vec<(String, String)> = vec![
            ("busybox", "busybox:latest"),
            ("busybox:1.36", "busybox:1.36"),
            ("library/busybox", "busybox:latest"),
            ("docker.io/library/busybox:latest", "busybox:latest"),
            ("index.docker.io/library/busybox", "busybox:latest"),
            ("docker.io/foo/bar", "foo/bar:latest"),
            ("foo/bar:v1", "foo/bar:v1"),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x/y:1", "localhost:5000/x/y:1"),
            (
                "10.0.0.100/example/nginx:latest",
                "10.0.0.100/example/nginx:latest",
            ),
            (
                "registry.example.com/a/b/c",
                "registry.example.com/a/b/c:latest",
            ),
            ("[::1]:5000/img", "[::1]:5000/img:latest"),
            ("a-b__c.d_e---f", "a-b__c.d_e---f:latest"),
            ("ubuntu20.04_ft:test", "ubuntu20.04_ft:test"),
            ("Registry.Example.com/x", "Registry.Example.com/x:latest"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .chain([
            (format!("busybox@{d}"), format!("busybox@{d}")),
            (format!("busybox:1@{d}"), format!("busybox:1@{d}")),
        ])
        .collect();
        for (input, want) in ok {
            assert_eq!(normalize_reference(&input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn invalid_references() {
        for bad in [
            "",
            ":latest",
            "busybox:",
            "busybox:-x",
            "bus box",
            "-busybox",
            "busybox-",
            "a..b",
            "a/",
            "/a",
            "a//b",
            "busybox@sha256:abc",
            "busybox@",
            "example.com:port/x",
            "x:tag:tag",
        ] {
            let e = normalize_reference(bad).unwrap_err();
            assert_eq!(e.kind(), berth_types::ErrorKind::InvalidArgument, "{bad}");
            assert!(
                e.to_string().starts_with("invalid reference format"),
                "{bad}: {e}"
            );
        }
        let e = normalize_reference("Busybox").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid reference format: repository name must be lowercase"
        );
        let e = normalize_reference(&"ab".repeat(32)).unwrap_err();
        assert!(e.to_string().contains("64-byte hexadecimal"));
        let long = "a".repeat(256);
        assert!(normalize_reference(&long).is_err());
        // 128-char tag is the maximum.
        assert!(normalize_reference(&format!("x:{}", "t".repeat(128))).is_ok());
        assert!(normalize_reference(&format!("x:{}", "t".repeat(129))).is_err());
    }
}
