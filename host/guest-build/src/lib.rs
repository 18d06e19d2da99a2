//! The one guest builder of the tests and benchmarks: runs `guests/build`
//! (the same script `scripts/test` and users run) once per process and
//! language, and says where each component is.
//!
//! Components land in `$GUEST_OUT`, default `$CARGO_TARGET_DIR/guests` (or
//! `target/guests` without `CARGO_TARGET_DIR`). Python and JS guests are
//! rebuilt only when their sources changed; Rust guests by cargo as usual.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The repository root: the nearest ancestor holding `guests/build` and
/// `wit/`, looked for from the running test's `CARGO_MANIFEST_DIR` (cargo
/// and nextest set it at run time), then the working directory, then where
/// this crate was compiled (`host/guest-build`). The run-time places come
/// first because a reused `CARGO_TARGET_DIR` may hold a build made in
/// another clone.
pub fn repo_root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let starts = [std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from), std::env::current_dir().ok()];
        starts
            .into_iter()
            .flatten()
            .find_map(|start| {
                start
                    .ancestors()
                    .find(|d| d.join("guests/build").is_file() && d.join("wit").is_dir())
                    .map(Path::to_path_buf)
            })
            .unwrap_or(compiled)
    })
    .clone()
}

/// A language the example guests are written in (`guests/<lang>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuestLang {
    /// `guests/rust`: wit-bindgen, `wasm32-wasip2`.
    Rust,
    /// `guests/python`: componentize-py.
    Python,
    /// `guests/js`: componentize-js (SpiderMonkey).
    Js,
}

impl GuestLang {
    /// Every language, for conformance tests.
    pub const ALL: [GuestLang; 3] = [GuestLang::Rust, GuestLang::Python, GuestLang::Js];

    /// The argument `guests/build` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestLang::Rust => "rust",
            GuestLang::Python => "python",
            GuestLang::Js => "js",
        }
    }
}

/// Where `guests/build` puts components.
pub fn guest_out() -> PathBuf {
    if let Some(out) = std::env::var_os("GUEST_OUT") {
        return PathBuf::from(out);
    }
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from).join("guests")
}

/// Builds the guests of `lang` from source with `guests/build` (once per
/// process and language) and returns the path of component `name`
/// (`echo_agent`, `tone_agent`, ...). Panics with the builder's output if
/// the build fails: a test without its guest cannot run.
pub fn guest(lang: GuestLang, name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(GuestLang, Result<(), String>)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !built.iter().any(|(l, _)| *l == lang) {
        let out = std::process::Command::new(repo_root().join("guests/build"))
            .arg(lang.as_str())
            .env("GUEST_OUT", guest_out())
            // A test's own flags (coverage, sanitizers) are not the guests'.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .map_err(|e| format!("running guests/build: {e}"))
            .and_then(
                |o| if o.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&o.stderr).into_owned()) },
            );
        built.push((lang, out));
    }
    if let Some((_, Err(e))) = built.iter().find(|(l, _)| *l == lang) {
        panic!("guests/build {} failed (run scripts/setup for the toolchains):\n{e}", lang.as_str());
    }
    match lang {
        GuestLang::Rust => guest_out().join("wasm32-wasip2/release"),
        GuestLang::Python => guest_out().join("python"),
        GuestLang::Js => guest_out().join("js"),
    }
    .join(format!("{name}.wasm"))
}

/// The bytes of component `name` of `lang` (built first).
pub fn guest_bytes(lang: GuestLang, name: &str) -> Vec<u8> {
    let path = guest(lang, name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Rust guest `name` (`echo_agent`, `tone_agent`, ...), built from `guests/rust`.
pub fn rust_guest(name: &str) -> PathBuf {
    guest(GuestLang::Rust, name)
}

/// A compiled-component cache shared by every test binary of one target
/// directory: a Python or JS component is compiled once, not once per test.
pub fn component_cache() -> PathBuf {
    guest_out().join("compiled")
}
