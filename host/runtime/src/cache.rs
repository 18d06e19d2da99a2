//! The compiled-component cache: in memory, and optionally on disk as
//! `Component::serialize` artifacts keyed by the component's SHA-256 and the
//! engine's configuration.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::config::CacheConfig;
use super::exit::RuntimeError;

/// A component's identity: SHA-256 of its bytes.
pub(crate) type ComponentHash = [u8; 32];

pub(crate) struct ComponentCache {
    config: CacheConfig,
    /// Hash of the engine's compilation settings (part of every disk key).
    engine_key: u64,
    memory: Mutex<HashMap<ComponentHash, Component>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ComponentCache {
    pub(crate) fn new(config: CacheConfig, engine: &Engine) -> Result<Self, RuntimeError> {
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        if let CacheConfig::Dir(dir) = &config {
            std::fs::create_dir_all(dir)
                .map_err(|source| RuntimeError::Io { path: dir.display().to_string(), source })?;
        }
        Ok(Self { config, engine_key: h.finish(), memory: Mutex::default() })
    }

    /// The compiled component for `bytes`: from memory, from disk, or compiled
    /// (and then stored).
    pub(crate) fn get_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> Result<(Component, ComponentHash), RuntimeError> {
        let hash: ComponentHash = Sha256::digest(bytes).into();
        if let Some(c) = self.memory.lock().get(&hash) {
            return Ok((c.clone(), hash));
        }
        let component = match &self.config {
            CacheConfig::Dir(dir) => {
                let path = dir.join(format!("{}-{:016x}.cwasm", hex(&hash), self.engine_key));
                match load(engine, &path) {
                    Some(c) => c,
                    None => {
                        let c = compile(engine, bytes)?;
                        if let Err(e) = store(&c, &path) {
                            tracing::warn!(path = %path.display(), "component cache write failed: {e}");
                        }
                        c
                    }
                }
            }
            _ => compile(engine, bytes)?,
        };
        if self.config != CacheConfig::None {
            self.memory.lock().insert(hash, component.clone());
        }
        Ok((component, hash))
    }
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, RuntimeError> {
    Component::new(engine, bytes).map_err(|e| RuntimeError::Compile(format!("{e:?}")))
}

/// Writes `[sha256 of artifact][artifact]` atomically (temp file + rename).
fn store(component: &Component, path: &Path) -> std::io::Result<()> {
    let artifact = component.serialize().map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut file = Vec::with_capacity(artifact.len() + 32);
    file.extend_from_slice(&Sha256::digest(&artifact));
    file.extend_from_slice(&artifact);
    let tmp = PathBuf::from(format!("{}.tmp{}", path.display(), std::process::id()));
    std::fs::write(&tmp, &file)?;
    std::fs::rename(&tmp, path)
}

/// Loads a cached artifact whose checksum matches; `None` on any problem (the
/// caller recompiles).
fn load(engine: &Engine, path: &Path) -> Option<Component> {
    let file = std::fs::read(path).ok()?;
    let (sum, artifact) = file.split_at_checked(32)?;
    if Sha256::digest(artifact)[..] != *sum {
        tracing::warn!(path = %path.display(), "component cache entry is corrupt; recompiling");
        return None;
    }
    // SAFETY: `Component::deserialize` trusts its input to be an artifact that
    // `Component::serialize` produced for a compatible engine (it checks the
    // engine-compatibility header itself, but not the machine code). This file
    // was written by `store` above, into the operator's cache directory, and
    // its SHA-256 checksum matches, so it is such an artifact, uncorrupted; the
    // cache directory is documented as needing the same trust as the binary.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, artifact) };
    component.map_err(|e| tracing::warn!(path = %path.display(), "component cache entry refused: {e}")).ok()
}
