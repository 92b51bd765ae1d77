//! Plain downloads over HTTP(S), as a Dockerfile's `ADD <url>` asks: redirects followed,
//! anything but a success refused in Docker's words, the body streamed to the caller.

use http_body_util::BodyExt;
use hyper::{Method, Request};

use crate::Result;
use crate::registry::{empty, header, http_client, registry_error};

/// Redirects followed before a download is given up.
const REDIRECTS: usize = 8;

/// GETs `url` into `out`.
pub async fn download(url: &str, out: &mut dyn std::io::Write) -> Result<()> {
    let client = http_client()?;
    let mut url = url.to_string();
    for _ in 0..REDIRECTS {
        let request = Request::builder()
            .method(Method::GET)
            .uri(&url)
            .header("User-Agent", "berth")
            .body(empty()?)
            .map_err(|e| registry_error(format!("GET {url}: {e}")))?;
        let response = client
            .request(request)
            .await
            .map_err(|e| registry_error(format!("failed to GET {url}: {e}")))?;
        let status = response.status();
        if status.is_redirection() {
            url = header(&response, "location");
            continue;
        }
        if !status.is_success() {
            return Err(registry_error(format!(
                "failed to GET {url} with status {status}"
            )));
        }
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| registry_error(format!("GET {url}: {e}")))?;
            if let Some(data) = frame.data_ref() {
                out.write_all(data)
                    .map_err(|e| registry_error(format!("GET {url}: {e}")))?;
            }
        }
        return Ok(());
    }
    Err(registry_error(format!("GET {url}: too many redirects")))
}
