//! The engine and registries: pulls into the store, shared by `docker pull` and the node
//! agent (the registry fetch of berth-image, then the import and the tag, then the `pull`
//! event), and pushes of a tagged image (`docker push`), then the `push` event.

use std::sync::Arc;

use berth_image::{
    Credentials, Digest, ImageRecord, PullProgress, PushProgress, Pushed, Reference, Registry,
    RegistryOptions,
};

use crate::{Engine, Error, Result};

/// An image a pull brought into the store.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image's id.
    pub id: Digest,
    /// The digest of the manifest pulled (the platform's, for an index).
    pub manifest_digest: Digest,
    /// Whether the tag already named this image before the pull.
    pub up_to_date: bool,
    /// The layers' blob digests, bottom first.
    pub layers: Vec<Digest>,
}

impl Engine {
    /// Pulls `reference` with `credentials`, reporting each step to `progress`, and
    /// tags it; the registry's own words when it refuses.
    pub async fn pull_image(
        self: &Arc<Self>,
        reference: &Reference,
        credentials: Option<Credentials>,
        progress: &(dyn Fn(PullProgress) + Sync),
    ) -> Result<Pulled> {
        let registry = self.registry(reference, credentials)?;
        let fetched = registry.fetch(self.images(), progress).await?;
        let name = reference.to_string();
        let up_to_date = self
            .images()
            .resolve(&name)
            .is_ok_and(|image| image.id == Digest::of(&fetched.config));
        let layers: Vec<Digest> = fetched.layers.iter().map(|l| l.digest.clone()).collect();
        let engine = Arc::clone(self);
        let tags = vec![reference.clone()];
        let id = tokio::task::spawn_blocking(move || {
            engine
                .images()
                .import(&fetched.config, &fetched.layers, &tags)
                .map(|id| (id, fetched.manifest_digest))
        })
        .await
        .map_err(|e| Error::Start(format!("the import stopped: {e}")))??;
        let (id, manifest_digest) = id;
        self.emit_image(id.as_str(), "pull", &name);
        Ok(Pulled {
            id,
            manifest_digest,
            up_to_date,
            layers,
        })
    }

    /// Pushes `image` (what [`Engine::tagged_image`] found for `reference`) to the
    /// registry `reference` names, with `credentials`, reporting each step to `progress`;
    /// blobs the registry holds under the image's other names there are mounted, not
    /// uploaded.
    pub async fn push_image(
        &self,
        reference: &Reference,
        image: &ImageRecord,
        credentials: Option<Credentials>,
        progress: &(dyn Fn(PushProgress) + Sync),
    ) -> Result<Pushed> {
        let name = reference.to_string();
        let (host, _) = reference.registry_and_path();
        let mount_from: Vec<String> = self
            .images()
            .tags(image)
            .iter()
            .filter_map(|tag| Reference::parse(tag).ok())
            .map(|other| other.registry_and_path())
            .filter(|(other_host, _)| *other_host == host)
            .map(|(_, path)| path)
            .collect();
        let registry = self.registry(reference, credentials)?;
        let pushed = registry
            .push(
                self.images().content(),
                &image.manifest,
                &mount_from,
                progress,
            )
            .await?;
        self.emit_image(image.id.as_str(), "push", &name);
        Ok(pushed)
    }

    /// The image `reference` tags, which a push sends; Docker's words when there is none.
    pub fn tagged_image(&self, reference: &Reference) -> Result<ImageRecord> {
        let name = reference.to_string();
        self.images()
            .resolve(&name)
            .ok()
            .filter(|image| self.images().tags(image).contains(&name))
            .ok_or_else(|| {
                Error::Image(berth_image::Error::RegistryMissing(format!(
                    "An image does not exist locally with the tag: {}",
                    reference.repository
                )))
            })
    }

    fn registry(
        &self,
        reference: &Reference,
        credentials: Option<Credentials>,
    ) -> Result<Registry> {
        let options = RegistryOptions {
            credentials,
            insecure_registries: self.insecure_registries.clone(),
        };
        Ok(Registry::new(reference, &options)?)
    }
}
