//! Berth's image store: a content-addressed blob store, the OCI and Docker image
//! model, safe streaming layer unpacking and overlay snapshots.
//!
//! Depends on nothing of ours: the engine, the build and the registry sit on top of it.

/// The OCI media type of an image manifest; the first shared name of the image model.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

#[cfg(test)]
mod tests {
    #[test]
    fn manifest_media_type_is_the_oci_one() {
        assert!(super::OCI_MANIFEST_MEDIA_TYPE.starts_with("application/vnd.oci.image"));
    }
}
