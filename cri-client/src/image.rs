//! `ImageService` RPCs as methods of [`crate::CriClient`].

use crate::client::Call;
use crate::{CriClient, CriError, api};

/// Something that names an image: a reference such as
/// `"127.0.0.1:5000/busybox:1.35"`, or a full [`api::ImageSpec`] (with
/// annotations or a runtime handler).
///
/// References should be fully qualified: runtimes normalise short names to
/// `docker.io`.
pub trait IntoImageSpec {
    /// The `ImageSpec` to send.
    fn into_image_spec(self) -> api::ImageSpec;
}

impl IntoImageSpec for api::ImageSpec {
    fn into_image_spec(self) -> api::ImageSpec {
        self
    }
}

impl IntoImageSpec for &str {
    fn into_image_spec(self) -> api::ImageSpec {
        api::ImageSpec {
            image: self.to_owned(),
            ..api::ImageSpec::default()
        }
    }
}

impl IntoImageSpec for String {
    fn into_image_spec(self) -> api::ImageSpec {
        api::ImageSpec {
            image: self,
            ..api::ImageSpec::default()
        }
    }
}

impl IntoImageSpec for &String {
    fn into_image_spec(self) -> api::ImageSpec {
        self.as_str().into_image_spec()
    }
}

impl CriClient {
    /// `ListImages`: images matching `filter` (all when `None`).
    ///
    /// # Errors
    /// Any [`CriError`].
    pub async fn list_images(
        &self,
        filter: Option<api::ImageFilter>,
    ) -> Result<Vec<api::Image>, CriError> {
        let request = api::ListImagesRequest { filter };
        let call = Call::idempotent("list_images", self.request_timeout());
        let response = self
            .invoke(call, &self.images, request, |mut c, r| async move {
                c.list_images(r).await
            })
            .await?;
        Ok(response.images)
    }

    /// `ImageStatus`: the image if present (`image` is `None` when it is
    /// not; that is not an error) and, with `verbose`, details in `info`.
    ///
    /// # Errors
    /// Any [`CriError`].
    pub async fn image_status(
        &self,
        image: impl IntoImageSpec,
        verbose: bool,
    ) -> Result<api::ImageStatusResponse, CriError> {
        let request = api::ImageStatusRequest {
            image: Some(image.into_image_spec()),
            verbose,
        };
        let call = Call::idempotent("image_status", self.request_timeout());
        self.invoke(call, &self.images, request, |mut c, r| async move {
            c.image_status(r).await
        })
        .await
    }

    /// `PullImage`: pulls `image` with optional registry credentials and the
    /// config of the sandbox it is for; returns the image reference the
    /// runtime resolved (usually `name@sha256:...`). Bounded by
    /// [`crate::ClientOptions::image_pull_timeout`] instead of the request
    /// timeout.
    ///
    /// # Errors
    /// Any [`CriError`]; not retried.
    pub async fn pull_image(
        &self,
        image: impl IntoImageSpec,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        let request = api::PullImageRequest {
            image: Some(image.into_image_spec()),
            auth,
            sandbox_config,
        };
        let call = Call::once("pull_image", self.options().image_pull_timeout);
        let response = self
            .invoke(call, &self.images, request, |mut c, r| async move {
                c.pull_image(r).await
            })
            .await?;
        Ok(response.image_ref)
    }

    /// `RemoveImage`: idempotent in CRI (no error if the image is already
    /// gone), so it is retried.
    ///
    /// # Errors
    /// Any [`CriError`].
    pub async fn remove_image(&self, image: impl IntoImageSpec) -> Result<(), CriError> {
        let request = api::RemoveImageRequest {
            image: Some(image.into_image_spec()),
        };
        let call = Call::idempotent("remove_image", self.request_timeout());
        self.invoke(call, &self.images, request, |mut c, r| async move {
            c.remove_image(r).await
        })
        .await?;
        Ok(())
    }

    /// `ImageFsInfo`: usage of the filesystems holding images and
    /// container writable layers.
    ///
    /// # Errors
    /// Any [`CriError`].
    pub async fn image_fs_info(&self) -> Result<api::ImageFsInfoResponse, CriError> {
        let call = Call::idempotent("image_fs_info", self.request_timeout());
        self.invoke(
            call,
            &self.images,
            api::ImageFsInfoRequest {},
            |mut c, r| async move { c.image_fs_info(r).await },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_specs_become_image_specs() {
        assert_eq!(
            "127.0.0.1:5000/busybox:1.35".into_image_spec().image,
            "127.0.0.1:5000/busybox:1.35"
        );
        assert_eq!(String::from("a/b:c").into_image_spec().image, "a/b:c");
        let spec = api::ImageSpec {
            image: "x/y:z".into(),
            runtime_handler: "kata".into(),
            ..Default::default()
        };
        assert_eq!(spec.clone().into_image_spec(), spec);
    }
}
