//! Compiles `proto/` (the Kubernetes messages the server decodes, written by the test
//! `protobuf::schema::protos_are_current`) into the descriptor set that
//! `src/protobuf.rs` includes.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let mut files = Vec::new();
    proto_files(Path::new("proto"), &mut files)?;
    files.sort();
    let descriptors = protox::Compiler::new(["proto"])?
        .include_imports(true)
        .open_files(files.iter().map(|f| f.strip_prefix("proto").unwrap_or(f)))?
        .encode_file_descriptor_set();
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("kubernetes.binpb");
    std::fs::write(out, descriptors)?;
    Ok(())
}

/// Every `.proto` file under `dir`.
fn proto_files(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            proto_files(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            found.push(path);
        }
    }
    Ok(())
}
