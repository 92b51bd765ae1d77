//! Images through the docker CLI and the Python SDK: version negotiation, load, list,
//! inspect, tag, remove, and Docker's errors.

use super::*;

#[test]
fn docker_version_negotiates_with_the_daemon() {
    let daemon = Daemon::start("version");
    let out = daemon.docker_ok(&[
        "version",
        "--format",
        "{{.Server.Platform.Name}} {{.Server.APIVersion}}",
    ]);
    assert_eq!(out.trim(), "Berth Engine 1.50");
    let info = daemon.docker_ok(&["info", "--format", "{{.Driver}} {{.Images}}"]);
    assert_eq!(info.trim(), "overlay2 0");
}

#[test]
fn docker_load_images_inspect_tag_and_rmi() {
    let daemon = Daemon::start("images");
    let archive = daemon.archive("busybox");
    let loaded = daemon.docker_ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(loaded.trim(), "Loaded image: busybox:latest");
    let listed = daemon.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(listed.trim(), "busybox:latest");
    let cmd = daemon.docker_ok(&[
        "image",
        "inspect",
        "busybox",
        "--format",
        "{{json .Config.Cmd}} {{len .RootFS.Layers}}",
    ]);
    assert_eq!(cmd.trim(), r#"["sh"] 1"#);

    daemon.docker_ok(&["tag", "busybox", "registry.local:5000/team/box:v1"]);
    let id = daemon.docker_ok(&[
        "image",
        "inspect",
        "registry.local:5000/team/box:v1",
        "--format",
        "{{.Id}}",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let untagged = daemon.docker_ok(&["rmi", "registry.local:5000/team/box:v1"]);
    assert_eq!(untagged.trim(), "Untagged: registry.local:5000/team/box:v1");
    let removed = daemon.docker_ok(&["rmi", "busybox"]);
    assert!(
        removed.contains("Untagged: busybox:latest")
            && removed.contains(&format!("Deleted: {}", id.trim())),
        "{removed}"
    );
    assert_eq!(daemon.docker_ok(&["images", "-q"]).trim(), "");
}

#[test]
fn docker_errors_are_docker_s() {
    let daemon = Daemon::start("errors");
    let missing = daemon.docker(&["rmi", "nope"]);
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "Error response from daemon: No such image: nope:latest"
    );
    let bad = daemon.scratch.path().join("bad.tar");
    std::fs::write(&bad, b"not an archive at all").unwrap();
    let refused = daemon.docker(&["load", "-i", bad.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Error response from daemon"),
        "{refused:?}"
    );
    // An endpoint not served yet answers a clear 501, never hangs.
    let swarm = daemon.docker(&["swarm", "init"]);
    assert!(
        String::from_utf8_lossy(&swarm.stderr).contains("does not implement"),
        "{swarm:?}"
    );
}

#[test]
fn the_python_sdk_loads_lists_tags_and_removes() {
    let daemon = Daemon::start("python");
    let archive = daemon.archive("busybox");
    let script = r#"
import sys, docker
client = docker.DockerClient(base_url=sys.argv[1])
assert client.ping()
with open(sys.argv[2], "rb") as f:
    images = client.images.load(f.read())
image = images[0]
assert image.tags == ["busybox:latest"], image.tags
assert image.attrs["Config"]["Cmd"] == ["sh"]
image.tag("copy", "v2")
assert sorted(client.images.get("copy:v2").tags) == ["busybox:latest", "copy:v2"]
client.images.remove("copy:v2")
client.images.remove("busybox")
assert client.images.list() == []
try:
    client.images.get("busybox")
    raise SystemExit("a removed image was found")
except docker.errors.ImageNotFound:
    pass
print("ok")
"#;
    let output = Command::new("python3")
        .args(["-c", script, &daemon.host(), archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn docker_save_writes_an_archive_that_loads_back_and_skopeo_reads() {
    let daemon = containers::daemon_with_busybox("save");
    let id = daemon.docker_ok(&["inspect", "-f", "{{.Id}}", "busybox"]);
    let saved = daemon.scratch.path().join("saved.tar");
    daemon.docker_ok(&["save", "-o", saved.to_str().unwrap(), "busybox"]);
    for transport in ["docker-archive", "oci-archive"] {
        let output = Command::new("skopeo")
            .args([
                "inspect",
                "--config",
                &format!("{transport}:{}", saved.display()),
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "skopeo {transport}: {output:?}");
        let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(config["rootfs"]["type"], "layers", "{transport}");
    }
    daemon.docker_ok(&["rmi", "busybox"]);
    daemon.docker_ok(&["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(
        daemon.docker_ok(&["inspect", "-f", "{{.Id}}", "busybox"]),
        id
    );
    assert_eq!(
        daemon
            .docker_ok(&["run", "--rm", "busybox", "echo", "back"])
            .trim(),
        "back"
    );
    let history = daemon.docker_ok(&["history", "--format", "{{.ID}} {{.Size}}", "busybox"]);
    let first = history.lines().next().unwrap();
    assert!(
        id.trim().contains(first.split(' ').next().unwrap()),
        "{history}"
    );
    assert!(!first.ends_with(" 0B"), "{history}");
}

#[test]
fn docker_import_makes_an_image_of_a_root_filesystem_with_its_changes() {
    let daemon = Daemon::start("import");
    let root = daemon.scratch.path().join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let tarball = daemon.scratch.path().join("root.tar");
    let tar = Command::new("tar")
        .args([
            "-C",
            root.to_str().unwrap(),
            "-cf",
            tarball.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(tar.success());
    let id = daemon.docker_ok(&[
        "import",
        "--change",
        r#"CMD ["/bin/sh", "-c", "echo imported $GREETING"]"#,
        "--change",
        "ENV GREETING=hello",
        tarball.to_str().unwrap(),
        "imported:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let out = daemon.docker_ok(&["run", "--rm", "imported:1"]);
    assert_eq!(out.trim(), "imported hello");
    let bad = daemon.docker(&["import", "--change", "RUN make", tarball.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RUN is not a valid change command"));
}

#[test]
fn system_df_counts_and_system_prune_removes_what_nothing_uses() {
    let daemon = containers::daemon_with_busybox("system");
    daemon.docker_ok(&[
        "run",
        "--name",
        "wrote",
        "-v",
        "kept:/data",
        "busybox",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /big; head -c 50000 /dev/zero > /data/file",
    ]);
    daemon.docker_ok(&["network", "create", "unused"]);
    let df = daemon.docker_ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ]);
    assert_eq!(
        df.lines().collect::<Vec<_>>(),
        [
            "Images 1 1",
            "Containers 1 0",
            "Local Volumes 1 1",
            "Build Cache 0 0"
        ]
    );
    let verbose = daemon.docker_ok(&["system", "df", "-v", "--format", "{{json .}}"]);
    let verbose: serde_json::Value = serde_json::from_str(verbose.trim()).unwrap();
    let written: u64 = verbose["Containers"][0]["Size"].as_str().map_or(0, |s| {
        s.split(' ')
            .next()
            .unwrap_or("0")
            .trim_end_matches(|c: char| c.is_alphabetic())
            .parse::<f64>()
            .unwrap_or(0.0) as u64
    });
    assert!(written >= 100, "the container wrote ~100kB: {verbose}");

    let pruned = daemon.docker_ok(&["system", "prune", "-a", "-f", "--volumes"]);
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    assert!(pruned.contains("Deleted Networks:\nunused"), "{pruned}");
    assert_eq!(daemon.docker_ok(&["ps", "-aq"]), "");
    assert_eq!(daemon.docker_ok(&["images", "-q"]), "");
    assert_eq!(
        daemon.docker_ok(&["network", "ls", "-q"]).lines().count(),
        3
    );
}
