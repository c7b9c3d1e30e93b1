//! Charts into a Slack channel by the external upload flow Slack documents (the old
//! `files.upload` is retired): `files.getUploadURLExternal` per file, the bytes POSTed to
//! the URL it gives, then one `files.completeUploadExternal` that shares them all into the
//! channel with our sentence. The upload URL comes from Slack's answer: the bot token goes
//! with it only to a Slack host (or to the configured API's own host, a proxy or a test).

use super::{delivery_error, Slack};
use crate::chat::markup::cut_to;
use crate::ports::{DeliveryError, DrawnCharts};
use slack_morphism::prelude::*;

impl Slack {
    /// Upload `drawn` into `channel`, shared there with its summary as the comment.
    pub(super) async fn upload_charts(
        &self,
        channel: &str,
        drawn: &DrawnCharts,
    ) -> Result<(), DeliveryError> {
        let session = self.session();
        let mut uploaded = Vec::new();
        for file in &drawn.files {
            let asked = SlackApiFilesGetUploadUrlExternalRequest::new(
                file.filename.clone(),
                file.png.len(),
            )
            .with_alt_txt(cut_to(&file.alt, 1000));
            let url = session
                .get_upload_url_external(&asked)
                .await
                .map_err(|e| delivery_error("files.getUploadURLExternal", e))?;
            if !upload_host_allowed(url.upload_url.value(), &self.config.api_url) {
                return Err(DeliveryError::Permanent {
                    reason: format!(
                        "Slack's files.getUploadURLExternal named an upload host that is not Slack's ({}); nothing was sent there",
                        url.upload_url.value().host_str().unwrap_or("none")
                    ),
                });
            }
            let bytes = SlackApiFilesUploadViaUrlRequest::new(
                url.upload_url.clone(),
                file.png.clone(),
                "image/png".into(),
            );
            session
                .files_upload_via_url(&bytes)
                .await
                .map_err(|e| delivery_error("the upload URL", e))?;
            uploaded.push(
                SlackApiFilesComplete::new(url.file_id.clone()).with_title(file.title.clone()),
            );
        }
        let complete = SlackApiFilesCompleteUploadExternalRequest::new(uploaded)
            .with_channel_id(channel.to_string().into())
            .with_initial_comment(super::card::escape(&drawn.summary));
        session
            .files_complete_upload_external(&complete)
            .await
            .map_err(|e| delivery_error("files.completeUploadExternal", e))?;
        Ok(())
    }
}

/// Slack's own hosts over https, or the host of the configured API URL (a proxy, or the
/// fake Slack a test runs).
fn upload_host_allowed(url: &url::Url, api_url: &str) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let slack = url.scheme() == "https" && (host == "slack.com" || host.ends_with(".slack.com"));
    let configured = url::Url::parse(api_url).ok().is_some_and(|api| {
        api.scheme() == url.scheme()
            && api.host_str() == Some(host)
            && api.port_or_known_default() == url.port_or_known_default()
    });
    slack || configured
}

#[cfg(test)]
mod tests {
    use super::upload_host_allowed;

    fn allowed(url: &str, api: &str) -> bool {
        upload_host_allowed(&url::Url::parse(url).unwrap(), api)
    }

    #[test]
    fn the_token_goes_only_to_slack_or_the_configured_api() {
        let api = "https://slack.com/api";
        assert!(allowed("https://files.slack.com/upload/v1/ABC", api));
        assert!(!allowed("http://files.slack.com/upload/v1/ABC", api));
        assert!(!allowed("https://files.slack.com.evil.example/upload", api));
        assert!(!allowed("https://evil.example/upload", api));
        assert!(!allowed("https://notslack.com/upload", api));
        let fake = "http://127.0.0.1:4100/api";
        assert!(allowed("http://127.0.0.1:4100/upload/v1/F1", fake));
        assert!(!allowed("http://127.0.0.1:4999/upload/v1/F1", fake));
        assert!(!allowed("http://169.254.169.254/latest", fake));
    }
}
