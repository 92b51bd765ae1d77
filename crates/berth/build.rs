//! Records the git commit the binary is built from, for `berth --version`, and hands a
//! release build's linker the node agent's functions to place first.

use std::process::Command;

fn main() {
    order_hot_functions();
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=BERTH_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself changes on checkout, the ref file on commit.
    if let Ok(top) = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
    {
        let git_dir = String::from_utf8_lossy(&top.stdout).trim().to_string();
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        let head = std::fs::read_to_string(format!("{git_dir}/HEAD")).unwrap_or_default();
        if let Some(reference) = head.strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed={git_dir}/{}", reference.trim());
        }
    }
}

/// The functions an idle node agent runs (crates/berth/link/hot-functions.txt, made by
/// scripts/hot-functions) go first in a release binary's text, so the agent maps a few
/// MiB of code rather than pages spread over all of it (docs/decisions/0021). Only
/// where the linker is LLD — rustc's default for x86_64 Linux — which takes the list;
/// names it no longer finds (after a dependency's update) are skipped quietly.
fn order_hot_functions() {
    let list = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("link/hot-functions.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let lld_by_default = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    if release && lld_by_default && list.exists() {
        println!(
            "cargo:rustc-link-arg-bin=berth=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bin=berth=-Wl,--no-warn-symbol-ordering");
    }
}
