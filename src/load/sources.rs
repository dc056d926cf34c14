//! What a config is built from, kept so that it can be built again: this injector's file,
//! Linkerd's values documents in the order they apply (`--values`, then the `linkerd-config`
//! ConfigMap's), and the release asked for. The release is chosen first (it decides the
//! defaults the file and the values apply over): `--linkerd-version`, else the last
//! `linkerdVersion` of the values that names a release, else the newest.

use std::path::{Path, PathBuf};

use super::chart;
use crate::config::{Config, ConfigError};
use crate::release::Release;

#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// This injector's YAML file: its path and text.
    config: Option<(PathBuf, String)>,
    /// Linkerd values documents: where each comes from, and its text.
    values: Vec<(String, String)>,
    /// `--linkerd-version`.
    release: Option<Release>,
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

impl Sources {
    /// Reads the files; `linkerd_version` is checked here (an unsupported one fails at once).
    pub fn read(
        config: Option<&Path>,
        values: Option<&Path>,
        linkerd_version: Option<&str>,
    ) -> Result<Sources, ConfigError> {
        let release = linkerd_version
            .map(Release::parse)
            .transpose()
            .map_err(ConfigError::Release)?;
        let config = config
            .map(|p| read(p).map(|t| (p.to_owned(), t)))
            .transpose()?;
        let values = values
            .map(|p| read(p).map(|t| (p.display().to_string(), t)))
            .into_iter()
            .collect::<Result<_, _>>()?;
        Ok(Sources {
            config,
            values,
            release,
        })
    }

    /// These sources and one more values document over them (`source` names it).
    pub fn with_values(&self, source: &str, text: &str) -> Sources {
        let mut s = self.clone();
        s.values.push((source.to_owned(), text.to_owned()));
        s
    }

    /// The config, and the values' notes (one line each).
    pub fn build(&self) -> Result<(Config, Vec<String>), ConfigError> {
        let trees = self
            .values
            .iter()
            .map(|(source, text)| chart::parse(text, source).map(|t| (source.as_str(), t)))
            .collect::<Result<Vec<_>, _>>()?;
        let release = match &self.release {
            Some(r) => r.clone(),
            None => {
                let mut chosen = Release::default();
                for (source, tree) in &trees {
                    if let Some(r) = chart::release_of(tree, source)? {
                        chosen = r;
                    }
                }
                chosen
            }
        };
        let mut config = match &self.config {
            Some((path, text)) => Config::from_yaml_for(text, path, &release)?,
            None => Config::for_release(&release),
        };
        if let Some(file) = &config.trust_anchors_file {
            // A relative path is relative to the config file's directory.
            let file = match self.config.as_ref().and_then(|(p, _)| p.parent()) {
                Some(dir) if file.is_relative() => dir.join(file),
                _ => file.clone(),
            };
            let pem =
                std::fs::read_to_string(&file).map_err(|source| ConfigError::TrustAnchors {
                    path: file.clone(),
                    source,
                })?;
            config.trust_anchors_pem = Some(pem);
        }
        let mut notes = Vec::new();
        for (source, tree) in &trees {
            notes.extend(chart::apply_tree(&mut config, tree, source)?.lines(source));
        }
        Ok((config, notes))
    }
}
