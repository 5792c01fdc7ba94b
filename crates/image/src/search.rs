//! `docker search` (IMG-08) against a registry: the Docker v1 search
//! endpoint (`/v1/search`, what Docker Hub and a few registries serve)
//! first, then the distribution `/v2/_catalog` listing filtered by the term
//! (Debian's docker-registry has no search endpoint).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::registry::{Credentials, RegistryConfig, Session};

/// One result, with the field names of `GET /images/search`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SearchResult {
    #[serde(default)]
    pub star_count: i64,
    #[serde(default)]
    pub is_official: bool,
    pub name: String,
    #[serde(default)]
    pub is_automated: bool,
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize)]
struct V1Results {
    #[serde(default)]
    results: Vec<SearchResult>,
}

#[derive(Deserialize)]
struct Catalog {
    #[serde(default)]
    repositories: Vec<String>,
}

/// Split a search term into (registry domain, remote term) as Docker does:
/// `host[:port]/term` names a registry, anything else searches Docker Hub.
pub fn split_search_term(term: &str) -> (String, String) {
    if let Some((first, rest)) = term.split_once('/') {
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let domain = match first {
                "index.docker.io" | "registry-1.docker.io" => "docker.io",
                f => f,
            };
            return (domain.to_string(), rest.to_string());
        }
    }
    ("docker.io".to_string(), term.to_string())
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Docker Hub's index serves the v1 search API (its registry has no
/// catalog for anonymous clients).
fn hub_search(remote: &str, limit: usize) -> Result<Vec<SearchResult>> {
    let url = format!(
        "https://index.docker.io/v1/search?q={}&n={limit}",
        urlencode(remote)
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(std::time::Duration::from_secs(15)))
        .build()
        .into();
    let fail = |m: String| crate::Error::Registry {
        kind: berth_types::ErrorKind::Internal,
        message: m,
    };
    let mut resp = agent
        .get(&url)
        .call()
        .map_err(|e| fail(format!("Get \"{url}\": {e}")))?;
    let st = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_vec()
        .map_err(|e| fail(format!("Get \"{url}\": {e}")))?;
    if st != 200 {
        return Err(fail(format!("Unexpected status code {st}")));
    }
    let mut r = serde_json::from_slice::<V1Results>(&body)
        .map_err(|e| fail(format!("invalid search response: {e}")))?
        .results;
    r.truncate(limit);
    Ok(r)
}

/// Search `term` (see [`split_search_term`]); at most `limit` results.
pub fn search(
    cfg: &RegistryConfig,
    term: &str,
    limit: usize,
    creds: Option<&Credentials>,
) -> Result<Vec<SearchResult>> {
    let (domain, remote) = split_search_term(term);
    if domain == "docker.io" {
        return hub_search(&remote, limit);
    }
    let session = Session::open(cfg, &domain, "", creds, "pull")?;
    let (st, body) = session.get_raw(&format!("/v1/search?q={}&n={limit}", urlencode(&remote)))?;
    if st == 200 {
        if let Ok(v) = serde_json::from_slice::<V1Results>(&body) {
            let mut r = v.results;
            r.truncate(limit);
            return Ok(r);
        }
    }
    let (st, body) = session.get_raw("/v2/_catalog?n=1000")?;
    if st != 200 {
        return Err(crate::Error::Registry {
            kind: berth_types::ErrorKind::Internal,
            message: format!(
                "Unexpected status code {st} searching {domain}: no search endpoint and no catalog"
            ),
        });
    }
    let cat: Catalog = serde_json::from_slice(&body).map_err(|e| crate::Error::Registry {
        kind: berth_types::ErrorKind::Internal,
        message: format!("invalid catalog from {domain}: {e}"),
    })?;
    let needle = remote.to_lowercase();
    let prefix = if domain == "docker.io" {
        String::new()
    } else {
        format!("{domain}/")
    };
    Ok(cat
        .repositories
        .into_iter()
        .filter(|r| r.to_lowercase().contains(&needle))
        .take(limit)
        .map(|r| SearchResult {
            star_count: 0,
            is_official: false,
            name: format!("{prefix}{r}"),
            is_automated: false,
            description: String::new(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms() {
        assert_eq!(
            split_search_term("busybox"),
            ("docker.io".into(), "busybox".into())
        );
        assert_eq!(
            split_search_term("library/busybox"),
            ("docker.io".into(), "library/busybox".into())
        );
        assert_eq!(
            split_search_term("127.0.0.1:5000/bb"),
            ("127.0.0.1:5000".into(), "bb".into())
        );
        assert_eq!(
            split_search_term("localhost/x/y"),
            ("localhost".into(), "x/y".into())
        );
    }
}
