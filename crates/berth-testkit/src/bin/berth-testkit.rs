//! `berth-testkit`: the test kit from the shell, for scripts, examples and benchmarks.
//!
//!   berth-testkit image busybox|webapp DIR          write the image as an OCI layout
//!   berth-testkit bundle busybox|webapp DIR [ARGS]  write DIR/image and the bundle DIR
//!   berth-testkit verify DIR                        verify every digest of a layout
//!   berth-testkit archive busybox|webapp FILE       write a `docker load` archive of
//!                                                   the image, named `NAME:latest`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_testkit::bundle::bundle_from_image;
use berth_testkit::images::{busybox_image, webapp_image};
use berth_testkit::layout::{LayoutImage, layout_archive, verify_layout};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match words.as_slice() {
        ["image", name, dir] => {
            image(name, Path::new(dir)).map(|i| println!("{}", i.manifest_digest))
        }
        ["bundle", name, dir, command @ ..] => bundle(name, Path::new(dir), command),
        ["archive", name, file] => archive(name, Path::new(file)),
        ["verify", dir] => verify_layout(Path::new(dir)).map(|images| {
            for image in images {
                println!(
                    "ok {} {}",
                    image.tag.unwrap_or_default(),
                    image.manifest.layers().len()
                );
            }
        }),
        _ => {
            eprintln!(
                "usage: berth-testkit image|bundle busybox|webapp DIR [ARGS…] | archive busybox|webapp FILE | verify DIR"
            );
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("berth-testkit: {error}");
            ExitCode::FAILURE
        }
    }
}

fn image(name: &str, dir: &Path) -> berth_testkit::Result<LayoutImage> {
    match name {
        "busybox" => busybox_image(dir),
        "webapp" => webapp_image(dir),
        other => Err(berth_testkit::Error::Invalid(format!(
            "no test image named {other:?}: busybox or webapp"
        ))),
    }
}

fn archive(name: &str, file: &Path) -> berth_testkit::Result<()> {
    let staging = tempfile::tempdir().map_err(|e| berth_testkit::Error::Invalid(e.to_string()))?;
    let layout = image(name, staging.path())?;
    let tar = layout_archive(&layout, &format!("{name}:latest"))?;
    std::fs::write(file, tar)
        .map_err(|e| berth_testkit::Error::Invalid(format!("{}: {e}", file.display())))
}

fn bundle(name: &str, dir: &Path, command: &[&str]) -> berth_testkit::Result<()> {
    let image = image(name, &dir.join("image"))?;
    let bundle: PathBuf = bundle_from_image(&image, dir, command)?;
    println!("{}", bundle.display());
    Ok(())
}
