//! Records the git commit the binary is built from, for `berth --version`.

use std::process::Command;

fn main() {
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
