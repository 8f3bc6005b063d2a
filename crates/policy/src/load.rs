//! Reading policy files and signature directories.

use crate::config::Config;
use crate::error::{ConfigError, SourceText};
use crate::policy::Policy;
use crate::validate;
use geofence_classify::sigs::{AppDef, SignatureFile};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Parses and fully validates a policy from `text`; `name` is the file name
/// used in error messages, and relative `[geoip] databases` and
/// `[signatures] dirs` are resolved against its directory. Does no I/O: the
/// signature directories are not read (see [`load_file`]).
pub fn load_str(name: &str, text: &str) -> Result<Config, ConfigError> {
    let config = parse(name, text)?;
    Policy::from_config(&config)?;
    Ok(config)
}

/// Reads, parses and fully validates a policy file, including every
/// `*.toml` file in its `[signatures] dirs` (a missing directory is
/// skipped). Errors in signature files name that file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::whole_file(&name, format!("cannot read: {e}")))?;
    let mut config = parse(&name, &text)?;
    config.signature_apps = read_signature_dirs(&config.signatures.dirs)?;
    Policy::from_config(&config)?;
    Ok(config)
}

fn parse(name: &str, text: &str) -> Result<Config, ConfigError> {
    let mut config: Config = toml::from_str(text).map_err(|e| toml_error(name, text, &e))?;
    if let Some(base) = Path::new(name)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        for p in config
            .geoip
            .databases
            .iter_mut()
            .chain(config.signatures.dirs.iter_mut())
        {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        }
    }
    config.source = Some(Arc::new(SourceText {
        name: name.to_string(),
        text: text.to_string(),
    }));
    Ok(config)
}

/// A toml syntax or deserialization error, placed at its span.
pub(crate) fn toml_error(name: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_string();
    let span = e.span().unwrap_or(0..0);
    let span = narrow_to_value(text, span.clone(), &message).unwrap_or(span);
    ConfigError::at(name, text, span, message)
}

/// Errors raised while converting one element of an array (an invalid
/// country code or app id) come with the span of the whole array; point at
/// the element the message names (its first `backticked` word) instead.
fn narrow_to_value(
    text: &str,
    span: std::ops::Range<usize>,
    message: &str,
) -> Option<std::ops::Range<usize>> {
    let region = text.get(span.clone())?;
    if !region.starts_with('[') {
        return None;
    }
    let value = message.split('`').nth(1)?;
    let mut found = None;
    for quote in ['"', '\''] {
        let needle = format!("{quote}{value}{quote}");
        for (i, _) in region.match_indices(&needle) {
            if found.is_some() {
                return None; // ambiguous: keep the array span
            }
            found = Some(span.start + i..span.start + i + needle.len());
        }
    }
    found
}

/// Reads every `*.toml` file (sorted by name) of each directory. An id
/// defined in two signature files is an error.
pub fn read_signature_dirs(dirs: &[PathBuf]) -> Result<Vec<AppDef>, ConfigError> {
    let mut out: Vec<AppDef> = Vec::new();
    let mut origin: HashMap<String, String> = HashMap::new();
    for dir in dirs {
        let dname = dir.display().to_string();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ConfigError::whole_file(
                    &dname,
                    format!("cannot read signature directory: {e}"),
                ))
            }
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                ConfigError::whole_file(&dname, format!("cannot read signature directory: {e}"))
            })?;
            let p = entry.path();
            if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
                files.push(p);
            }
        }
        files.sort();
        for file in files {
            let fname = file.display().to_string();
            let text = std::fs::read_to_string(&file)
                .map_err(|e| ConfigError::whole_file(&fname, format!("cannot read: {e}")))?;
            let sig: SignatureFile =
                toml::from_str(&text).map_err(|e| toml_error(&fname, &text, &e))?;
            let src = Arc::new(SourceText {
                name: fname.clone(),
                text: text.clone(),
            });
            validate::app_defs(&sig.apps).map_err(|e| e.place(Some(&src)))?;
            for (i, app) in sig.apps.into_iter().enumerate() {
                let here = {
                    let span =
                        crate::error::locate(&text, crate::error::tpath!["app", i, "id"], false);
                    let line = span
                        .map(|s| crate::error::position(&text, s).0)
                        .unwrap_or(0);
                    format!("{fname}:{line}")
                };
                if let Some(first) = origin.get(app.id.as_str()) {
                    return Err(crate::error::Invalid::new(
                        crate::error::Loc::value(crate::error::tpath!["app", i, "id"]),
                        format!("app `{}` is already defined in {first}", app.id),
                    )
                    .place(Some(&src)));
                }
                origin.insert(app.id.as_str().to_string(), here);
                out.push(app);
            }
        }
    }
    Ok(out)
}
