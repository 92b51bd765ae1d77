//! Pulls into the engine's store, shared by `docker pull` and the node agent: the
//! registry fetch of berth-image, then the import and the tag, then the `pull` event.

use std::sync::Arc;

use berth_image::{Credentials, Digest, PullOptions, PullProgress, Reference, Registry};

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
        let options = PullOptions {
            credentials,
            insecure_registries: self.insecure_registries.clone(),
        };
        let registry = Registry::new(reference, &options)?;
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
}
