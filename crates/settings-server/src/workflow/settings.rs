//! The review workflow's settings, under the reference signer's names where it has one
//! (`resources`, `to_review_enabled`, `editors_group`, `reviewers_group`, `allow_floats`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Settings of the review workflow and content signer (`[signer]` in syncstack's file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignerSettings {
    /// Bucket triples under review: people edit `source`, reviewers look at `preview`,
    /// clients read `destination`. Default: `main-workspace` → `main-preview` → `main`.
    pub resources: Vec<SignedResource>,
    /// Whether publishing needs a review by someone else (`to-review` before `to-sign`).
    /// Default true, as Mozilla's servers run (the reference's own default is false).
    pub to_review_enabled: bool,
    /// Whether the editor who asked for a review may approve it. Default false (not a
    /// setting of the reference, which always refuses).
    pub allow_self_approval: bool,
    /// Group of a source bucket whose members may ask for reviews; `{collection_id}` is
    /// replaced by the collection's id. Default `{collection_id}-editors`.
    pub editors_group: String,
    /// Group of a source bucket whose members may approve; default
    /// `{collection_id}-reviewers`.
    pub reviewers_group: String,
    /// Accept floating-point numbers in records under review. Default false: clients
    /// write floats differently in canonical JSON, so their signatures would not verify.
    pub allow_floats: bool,
    /// The signer name: the DNS name in the signing certificate that clients check.
    /// Default `remote-settings.content-signature.mozilla.org`.
    pub signer_name: String,
    /// PEM file of the signing key (P-384). None: syncstack uses
    /// `<data_dir>/signer/signer-key.pem` when it exists; without a key, collections are
    /// published unsigned.
    pub key_file: Option<PathBuf>,
    /// PEM file of the certificate chain (signer first, then intermediate, root). None:
    /// `<data_dir>/signer/chain.pem` when it exists.
    pub chain_file: Option<PathBuf>,
    /// Where the chain is published (the signature's `x5u` is this plus the chain's file
    /// name). None: served by this server under `<public_url>/v1/__certs__/`.
    pub x5u_base_url: Option<String>,
    /// The heartbeat fails (and a warning is logged) when the signing certificate expires
    /// within this many days. Default 10.
    pub resign_before_expiry_days: u64,
    /// Seconds between two re-signatures of every published collection. Default one day.
    pub resign_interval_secs: u64,
    /// The user id the plugin writes as (`last_signature_by` of automatic re-signatures).
    /// Default `plugin:remote-settings`.
    pub plugin_userid: String,
}

/// A source → preview → destination triple of buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedResource {
    /// The bucket people edit (e.g. `main-workspace`).
    pub source: String,
    /// The bucket reviewers look at (e.g. `main-preview`); none to skip previews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// The bucket clients read (e.g. `main`).
    pub destination: String,
    /// Only this collection of the buckets (it keeps its id in every bucket); none for
    /// every collection of the source bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// Overrides the global `to_review_enabled` for this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_review_enabled: Option<bool>,
}

impl Default for SignerSettings {
    fn default() -> Self {
        SignerSettings {
            resources: vec![SignedResource {
                source: "main-workspace".into(),
                preview: Some("main-preview".into()),
                destination: "main".into(),
                collection: None,
                to_review_enabled: None,
            }],
            to_review_enabled: true,
            allow_self_approval: false,
            editors_group: "{collection_id}-editors".into(),
            reviewers_group: "{collection_id}-reviewers".into(),
            allow_floats: false,
            signer_name: "remote-settings.content-signature.mozilla.org".into(),
            key_file: None,
            chain_file: None,
            x5u_base_url: None,
            resign_before_expiry_days: 10,
            resign_interval_secs: 24 * 60 * 60,
            plugin_userid: "plugin:remote-settings".into(),
        }
    }
}

impl SignerSettings {
    /// Refuses resources the workflow cannot run: a bucket used twice (a destination that
    /// is also a source would sign what people edit).
    pub fn validate(&self) -> Result<(), String> {
        let mut seen: Vec<(&str, Option<&str>)> = Vec::new();
        for resource in &self.resources {
            let buckets = [
                Some(resource.source.as_str()),
                resource.preview.as_deref(),
                Some(resource.destination.as_str()),
            ];
            for bucket in buckets.into_iter().flatten() {
                if !crate::resource::is_valid_id(bucket) {
                    return Err(format!(
                        "signer resource bucket {bucket:?} is not a valid id"
                    ));
                }
                let key = (bucket, resource.collection.as_deref());
                // A bucket-wide resource clashes with any other use of its bucket.
                let clash = seen
                    .iter()
                    .any(|(b, c)| *b == bucket && (c.is_none() || key.1.is_none() || *c == key.1));
                if clash {
                    return Err(format!(
                        "signer resources use bucket {bucket:?} twice (source, preview and destination must all differ)"
                    ));
                }
                seen.push(key);
            }
            if let Some(collection) = &resource.collection
                && !crate::resource::is_valid_id(collection)
            {
                return Err(format!(
                    "signer resource collection {collection:?} is not a valid id"
                ));
            }
        }
        for (name, template) in [
            ("editors_group", &self.editors_group),
            ("reviewers_group", &self.reviewers_group),
        ] {
            let example = template.replace("{collection_id}", "c");
            if !crate::resource::is_valid_id(&example) {
                return Err(format!(
                    "signer.{name} {template:?} does not give a valid id"
                ));
            }
        }
        if self.editors_group == self.reviewers_group {
            return Err("signer.editors_group and signer.reviewers_group must differ".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_mozillas_layout() {
        let settings = SignerSettings::default();
        settings.validate().unwrap();
        assert_eq!(settings.resources[0].source, "main-workspace");
        assert_eq!(
            settings.resources[0].preview.as_deref(),
            Some("main-preview")
        );
        assert_eq!(settings.resources[0].destination, "main");
    }

    #[test]
    fn refuses_reused_buckets() {
        let mut settings = SignerSettings::default();
        settings.resources[0].destination = "main-workspace".into();
        assert!(settings.validate().is_err());
        let mut settings = SignerSettings::default();
        settings.resources.push(settings.resources[0].clone());
        assert!(settings.validate().is_err());
        // Two collections of the same buckets are two resources.
        let mut settings = SignerSettings::default();
        settings.resources[0].collection = Some("a".into());
        let mut other = settings.resources[0].clone();
        other.collection = Some("b".into());
        settings.resources.push(other);
        settings.validate().unwrap();
        let settings = SignerSettings {
            editors_group: "bad id!".into(),
            ..SignerSettings::default()
        };
        assert!(settings.validate().is_err());
    }
}
