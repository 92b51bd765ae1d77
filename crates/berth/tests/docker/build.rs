//! `docker build` through the daemon with the classic builder (`DOCKER_BUILDKIT=0`, the
//! CLI's `POST /build`): a Dockerfile of ARG, ENV, WORKDIR, COPY, RUN, EXPOSE, LABEL and
//! CMD gives an image that runs as written; a failing step and a syntax error say where
//! and leave no image; the same context built twice, RUN included, gives the same image.

use super::*;

/// `DOCKER_BUILDKIT=0 docker build ARGS`.
fn docker_build(daemon: &Daemon, args: &[&str]) -> Output {
    daemon
        .docker_command(&[&["build"], args].concat())
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A daemon holding the test kit's busybox as `busybox:latest`.
fn daemon_with_busybox(name: &str) -> Daemon {
    let daemon = Daemon::start(name);
    let archive = daemon.archive("busybox");
    daemon.docker_ok(&["load", "-i", &archive.display().to_string()]);
    daemon
}

/// Writes `files` (path, content) under a new context directory; its path.
fn context(daemon: &Daemon, name: &str, files: &[(&str, &str)]) -> String {
    let dir = daemon.scratch.path().join(name);
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir.display().to_string()
}

#[test]
fn docker_build_makes_an_image_that_runs_as_the_dockerfile_says() {
    let daemon = daemon_with_busybox("build");
    let dockerfile = r#"FROM busybox
ARG GREETING=hello
ENV APP_HOME=/app
WORKDIR $APP_HOME
COPY greet.sh data/ ./
RUN echo "$GREETING from RUN" > /app/made \
    && chmod +x /app/greet.sh
EXPOSE 8080
LABEL org.example.name="built by berth"
CMD ["/app/greet.sh"]
"#;
    let dir = context(
        &daemon,
        "app",
        &[
            ("Dockerfile", dockerfile),
            (
                "greet.sh",
                "#!/bin/sh\necho \"$(cat /app/made) and $(cat /app/note.txt)\"\n",
            ),
            ("data/note.txt", "a note"),
        ],
    );
    let built = docker_build(
        &daemon,
        &["-t", "built:1", "--build-arg", "GREETING=hi", &dir],
    );
    let stdout = String::from_utf8_lossy(&built.stdout);
    assert!(
        built.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(stdout.contains("Step 1/9 : FROM busybox"), "{stdout}");
    assert!(stdout.contains("Step 6/9 : RUN echo"), "{stdout}");
    assert!(stdout.contains("Successfully built "), "{stdout}");
    assert!(stdout.contains("Successfully tagged built:1"), "{stdout}");

    let out = daemon.docker_ok(&["run", "--rm", "built:1"]);
    assert_eq!(out.trim(), "hi from RUN and a note");
    let inspect = daemon.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.WorkingDir}}|{{json .Config.ExposedPorts}}|{{index .Config.Labels \"org.example.name\"}}|{{len .RootFS.Layers}}",
        "built:1",
    ]);
    assert_eq!(
        inspect.trim(),
        r#"/app|{"8080/tcp":{}}|built by berth|3"#,
        "busybox's layer, COPY's and RUN's"
    );
    // The build's containers are gone.
    assert_eq!(daemon.docker_ok(&["ps", "-aq"]).trim(), "");

    // Built again: RUN comes from the cache and the image is the same one.
    let again = docker_build(
        &daemon,
        &["-t", "built:2", "--build-arg", "GREETING=hi", &dir],
    );
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains(" ---> Using cache"), "{stdout}");
    assert!(!stdout.contains("Running in"), "{stdout}");
    let id = |tag: &str| daemon.docker_ok(&["image", "inspect", "-f", "{{.Id}}", tag]);
    assert_eq!(id("built:1"), id("built:2"));
    // Another build arg is another RUN; --no-cache runs it whatever the cache holds.
    let other = docker_build(
        &daemon,
        &["-t", "built:3", "--build-arg", "GREETING=hey", &dir],
    );
    assert!(String::from_utf8_lossy(&other.stdout).contains("Running in"));
    let fresh = docker_build(
        &daemon,
        &[
            "--no-cache",
            "-t",
            "built:4",
            "--build-arg",
            "GREETING=hi",
            &dir,
        ],
    );
    let stdout = String::from_utf8_lossy(&fresh.stdout);
    assert!(
        !stdout.contains("Using cache") && stdout.contains("Running in"),
        "{stdout}"
    );
    assert_eq!(
        daemon.docker_ok(&["run", "--rm", "built:3"]).trim(),
        "hey from RUN and a note"
    );
}

#[test]
fn failed_builds_say_where_and_leave_no_image() {
    let daemon = daemon_with_busybox("build-fail");
    let failing = context(
        &daemon,
        "failing",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo before\nRUN exit 3\nCMD [\"true\"]\n",
        )],
    );
    let built = docker_build(&daemon, &["-t", "broken:1", &failing]);
    assert!(!built.status.success(), "{built:?}");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(
        said.contains("The command '/bin/sh -c exit 3' returned a non-zero code: 3"),
        "{said}"
    );
    let bad = context(
        &daemon,
        "bad",
        &[("Dockerfile", "FROM busybox\nRUN true\nFROBNICATE now\n")],
    );
    let built = docker_build(&daemon, &["-t", "broken:1", &bad]);
    assert!(!built.status.success());
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(stderr.contains("Dockerfile:3"), "{stderr}");
    let unsupported = context(
        &daemon,
        "unsupported",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=cache,target=/c true\n",
        )],
    );
    let built = docker_build(&daemon, &[&unsupported]);
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(
        stderr.contains("Dockerfile:2: the flag --mount is not supported yet"),
        "{stderr}"
    );
    let images = daemon.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.trim(), "busybox:latest");
    assert_eq!(daemon.docker_ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn the_same_context_builds_the_same_image() {
    let daemon = daemon_with_busybox("build-same");
    let dir = context(
        &daemon,
        "same",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY files /files/\nRUN mkdir /made && echo same > /made/file && sleep 1\nENV MODE=same\nCMD [\"ls\", \"/files\"]\n",
            ),
            ("files/a.txt", "a"),
            ("files/sub/b.txt", "b"),
        ],
    );
    let first = docker_build(&daemon, &["-q", "-t", "same:1", &dir]);
    assert!(first.status.success(), "{first:?}");
    // New modification times on the context's files change nothing.
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    let file = std::fs::File::options()
        .write(true)
        .open(daemon.scratch.path().join("same/files/a.txt"))
        .unwrap();
    file.set_modified(later).unwrap();
    // --no-cache: RUN runs again, a second or more later (its `sleep 1` sees to that),
    // and makes the same layer.
    let second = docker_build(&daemon, &["-q", "--no-cache", "-t", "same:2", &dir]);
    assert!(second.status.success(), "{second:?}");
    let id = |tag: &str| daemon.docker_ok(&["image", "inspect", "-f", "{{.Id}}", tag]);
    assert_eq!(id("same:1"), id("same:2"));
    let listed = daemon.docker_ok(&["run", "--rm", "same:2"]);
    assert_eq!(
        listed.split_whitespace().collect::<Vec<_>>(),
        ["a.txt", "sub"]
    );
}

#[test]
fn stages_copy_from_each_other_and_targets_stop_early() {
    let daemon = daemon_with_busybox("build-stages");
    let dockerfile = r#"FROM busybox AS build
WORKDIR /src
COPY *.txt ./
RUN cat a.txt b.txt > /combined && mkdir -p /out/nested && echo deep > /out/nested/file

FROM scratch
COPY --from=build /combined /combined
COPY --from=build /out /out
COPY --from=busybox /bin/busybox /bin/busybox
CMD ["/bin/busybox", "cat", "/combined", "/out/nested/file"]
"#;
    let dir = context(
        &daemon,
        "stages",
        &[
            ("Dockerfile", dockerfile),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("c.md", "not copied\n"),
        ],
    );
    let built = docker_build(&daemon, &["-t", "final:1", &dir]);
    assert!(
        built.status.success(),
        "{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let out = daemon.docker_ok(&["run", "--rm", "final:1"]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["a", "b", "deep"]
    );
    let layers = daemon.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{len .RootFS.Layers}}",
        "final:1",
    ]);
    assert_eq!(layers.trim(), "3", "only the final stage's layers");

    let target = docker_build(&daemon, &["--target", "build", "-t", "stage:1", &dir]);
    assert!(target.status.success(), "{target:?}");
    let listed = daemon.docker_ok(&["run", "--rm", "stage:1", "ls", "/src"]);
    assert_eq!(
        listed.split_whitespace().collect::<Vec<_>>(),
        ["a.txt", "b.txt"]
    );
    let missing = docker_build(&daemon, &["--target", "nowhere", &dir]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("failed to reach build target nowhere"),
        "{missing:?}"
    );
    // No overlay of a stage is left mounted.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let scratch = daemon.scratch.path().display().to_string();
    assert!(
        !mounts
            .lines()
            .any(|l| l.contains(&scratch) && l.contains("image-root-")),
        "{mounts}"
    );
}

#[test]
fn berth_build_sends_what_dockerignore_lets_through() {
    let daemon = daemon_with_busybox("build-berth");
    let dir = context(
        &daemon,
        "ignored",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY . /ctx/\nCMD [\"ls\", \"-A\", \"/ctx\"]\n",
            ),
            (
                ".dockerignore",
                "# logs stay home\n*.log\n!keep.log\nsecret\n",
            ),
            ("app.txt", "app"),
            ("debug.log", "noise"),
            ("keep.log", "kept"),
            ("secret/key", "hidden"),
        ],
    );
    let built = daemon.berth_ok(&["build", "-t", "ignored:1", &dir]);
    assert!(built.contains("Step 1/3 : FROM busybox"), "{built}");
    assert!(built.contains("Successfully tagged ignored:1"), "{built}");
    let listed = daemon.docker_ok(&["run", "--rm", "ignored:1"]);
    assert_eq!(
        listed.split_whitespace().collect::<Vec<_>>(),
        [".dockerignore", "Dockerfile", "app.txt", "keep.log"]
    );

    // A Dockerfile from outside the context, and -q printing the id alone.
    let outside = daemon.scratch.path().join("outside.Dockerfile");
    std::fs::write(
        &outside,
        "FROM busybox\nCOPY app.txt /\nCMD [\"cat\", \"/app.txt\"]\n",
    )
    .unwrap();
    let quiet = daemon.berth_ok(&[
        "build",
        "-q",
        "-f",
        &outside.display().to_string(),
        "-t",
        "outside:1",
        &dir,
    ]);
    let id = daemon.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "outside:1"]);
    assert_eq!(quiet.trim(), id.trim());
    assert_eq!(
        daemon.docker_ok(&["run", "--rm", "outside:1"]).trim(),
        "app"
    );
    let pulled = daemon.berth(&["build", "--pull", &dir]);
    assert!(
        String::from_utf8_lossy(&pulled.stderr).contains("does not support --pull"),
        "{pulled:?}"
    );
}

#[test]
fn heredoc_scripts_run_and_health_checks_are_kept() {
    let daemon = daemon_with_busybox("build-heredoc");
    let dockerfile = "FROM busybox\nRUN <<EOF\necho one > /script-out\necho two >> /script-out\nEOF\nHEALTHCHECK --interval=5s --retries=2 CMD cat /script-out\n";
    let dir = context(&daemon, "heredoc", &[("Dockerfile", dockerfile)]);
    let built = docker_build(&daemon, &["-t", "heredoc:1", &dir]);
    assert!(built.status.success(), "{built:?}");
    let out = daemon.docker_ok(&["run", "--rm", "heredoc:1", "cat", "/script-out"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["one", "two"]);
    let check = daemon.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Healthcheck}}",
        "heredoc:1",
    ]);
    let check: serde_json::Value = serde_json::from_str(&check).unwrap();
    assert_eq!(
        check["Test"],
        serde_json::json!(["CMD-SHELL", "cat /script-out"])
    );
    assert_eq!(check["Interval"], 5_000_000_000u64);
    assert_eq!(check["Retries"], 2);
}
