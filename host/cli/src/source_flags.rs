//! The source policy an operator gives agents (`metered run`, `metered serve
//! --agent`): the strict policy — nothing — plus what these flags allow.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use metered_realtime::hosting::PolicySources;
use metered_realtime::runtime::SourceHost;
use metered_realtime::sources::{SourcePolicy, SourcePolicyConfig};

/// What agents may open with `player.open` (default: nothing).
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct SourceFlags {
    /// Agents may play files under this directory (repeatable).
    #[arg(long = "source-root", value_name = "DIR")]
    roots: Vec<PathBuf>,
    /// Agents may open URLs of this scheme: http, https, rtsp, rtsps (repeatable).
    #[arg(long = "source-scheme", value_name = "SCHEME")]
    schemes: Vec<String>,
    /// ... only to this host (`cam.example.com`, `*.example.com`, an IP;
    /// repeatable; none: any public host).
    #[arg(long = "source-host", value_name = "HOST")]
    hosts: Vec<String>,
    /// ... including loopback, private and link-local addresses.
    #[arg(long = "source-allow-internal")]
    allow_internal: bool,
    /// Agents may open local devices (cameras, microphones, screens).
    #[arg(long = "source-devices")]
    devices: bool,
}

impl SourceFlags {
    /// The agents' source host under the policy these flags make.
    pub(crate) fn host(&self) -> anyhow::Result<Arc<dyn SourceHost>> {
        let config = SourcePolicyConfig {
            roots: self.roots.clone(),
            schemes: self.schemes.clone(),
            hosts: self.hosts.clone(),
            allow_internal: self.allow_internal,
            devices: self.devices,
        };
        let policy = SourcePolicy::from_config(&config).context("agents' source policy")?;
        Ok(PolicySources::shared(policy))
    }
}
