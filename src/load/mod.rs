//! Loading a config: this injector's file over the chosen release's defaults, Linkerd's chart
//! values over it (`chart`), and every value checked as its annotation would be (`validate`).
//! `Sources` keeps what a config is built from so that it can be built again.

use std::path::Path;

use crate::config::{Config, ConfigError};
use crate::release::Release;

pub mod chart;
mod sources;
mod validate;

pub use sources::Sources;

impl Config {
    /// Parses a YAML document (over the newest release's defaults); unknown keys are errors
    /// that name the key.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::from_yaml_for(text, path, &Release::default())
    }

    /// Parses a YAML document over the defaults of `release`.
    pub fn from_yaml_for(
        text: &str,
        path: &Path,
        release: &Release,
    ) -> Result<Config, ConfigError> {
        let parse_error = |e: serde_saphyr::Error| ConfigError::Parse {
            path: path.to_owned(),
            message: e.without_snippet().to_string(),
        };
        let (mut config, tree): (Config, serde_json::Value) = if text.trim().is_empty() {
            (Config::default(), serde_json::Value::Null)
        } else {
            (
                serde_saphyr::from_str(text).map_err(parse_error)?,
                serde_saphyr::from_str(text).map_err(parse_error)?,
            )
        };
        let given = |key: &str| {
            key.split('.')
                .try_fold(&tree, |node, k| node.get(k))
                .is_some()
        };
        config.set_release(release, &given);
        config.validate()?;
        Ok(config)
    }

    /// Loads the file if given (else the defaults of the newest release), then the trust
    /// anchors it points at.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Sources::read(path, None, None)?.build().map(|(c, _)| c)
    }

    /// Loads `config` (this injector's file, else the defaults), then applies Linkerd's chart
    /// values file over it; returns the values' notes (unknown keys, values this injector
    /// does not write as Linkerd would), one line each. The release is the values'
    /// `linkerdVersion` (else the newest).
    pub fn load_with_values(
        config: Option<&Path>,
        values: Option<&Path>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        Sources::read(config, values, None)?.build()
    }
}
