//! Compiles `testapp/main.rs` (and the modules beside it) into a static executable that test images carry.
//!
//! It is built with the same `rustc` cargo uses, straight from the single source file, so
//! it needs no extra target installed and no network: glibc's static libraries (libc6-dev)
//! are enough for `-C target-feature=+crt-static`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "testapp/main.rs";
    // The directory: main.rs has modules beside it.
    println!("cargo:rerun-if-changed=testapp");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let binary = out_dir.join("testapp");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
        ])
        .args(["-C", "strip=symbols", "-o"])
        .arg(&binary)
        .arg(source)
        .status()
        .expect("run rustc for testapp");
    assert!(status.success(), "rustc failed to build {source}");
    println!("cargo:rustc-env=BERTH_TESTAPP={}", binary.display());
}
