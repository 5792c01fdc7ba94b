//! `docker import URL` (IMG-17): the rootfs tarball is downloaded by the
//! daemon and streamed into `import` (history: `Imported from <url>`).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::{ImageStore, ImportOptions};

impl ImageStore {
    /// Download `url` (http or https) and import it.
    pub fn import_url(
        &self,
        url: &str,
        reference: Option<&str>,
        opts: &ImportOptions,
    ) -> Result<String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .build()
            .into();
        let mut resp = agent
            .get(url)
            .call()
            .map_err(|e| Error::InvalidArchive(format!("Get \"{url}\": {e}")))?;
        let st = resp.status().as_u16();
        if !(200..300).contains(&st) {
            return Err(Error::InvalidArchive(format!(
                "Get \"{url}\": unexpected status code {st}"
            )));
        }
        let mut body = resp.body_mut().as_reader();
        self.import_from(&mut body, reference, opts, url)
    }
}
