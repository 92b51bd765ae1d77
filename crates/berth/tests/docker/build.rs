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
        &[("Dockerfile", "FROM busybox\nRUN --security=insecure true\n")],
    );
    let built = docker_build(&daemon, &[&unsupported]);
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(
        stderr.contains("Dockerfile:2: the flag --security is not supported yet"),
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

FROM busybox AS unused
RUN echo this stage is not needed && exit 1

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
    // The stage nothing needs was not built (it would have failed), as BuildKit has it.
    assert!(
        !String::from_utf8_lossy(&built.stdout).contains("not needed"),
        "{built:?}"
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
fn independent_stages_build_at_once_and_report_in_order() {
    let daemon = daemon_with_busybox("build-parallel");
    // Each of the two stages waits for the other's mark in a shared cache mount: built
    // one after the other, the first would give up waiting and fail.
    let waits_for = |mine: &str, theirs: &str| {
        format!(
            "RUN --mount=type=cache,target=/meet,id=meet sh -c 'touch /meet/{mine}; \
for i in $(seq 600); do [ -e /meet/{theirs} ] && echo {mine} > /{mine} && exit 0; sleep 0.05; done; \
echo {mine} never met {theirs}; exit 1'"
        )
    };
    let dockerfile = format!(
        "FROM busybox AS left\n{}\n\nFROM busybox AS right\n{}\n\nFROM busybox\nCOPY --from=left /left /left\nCOPY --from=right /right /right\n",
        waits_for("left", "right"),
        waits_for("right", "left"),
    );
    let dir = context(&daemon, "parallel", &[("Dockerfile", &dockerfile)]);
    let built = docker_build(&daemon, &["-t", "met:1", &dir]);
    let output = String::from_utf8_lossy(&built.stdout);
    assert!(
        built.status.success(),
        "{output}{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let both = daemon.docker_ok(&["run", "--rm", "met:1", "cat", "/left", "/right"]);
    assert_eq!(
        both.split_whitespace().collect::<Vec<_>>(),
        ["left", "right"]
    );
    // The steps are reported one stage after the other, numbered in order.
    let numbers: Vec<&str> = output
        .lines()
        .filter_map(|line| line.strip_prefix("Step ")?.split(' ').next())
        .collect();
    assert_eq!(
        numbers,
        ["1/7", "2/7", "3/7", "4/7", "5/7", "6/7", "7/7"],
        "{output}"
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
    // Shown as BuildKit shows a build when not on a terminal.
    assert!(built.contains("#1 [1/3] FROM busybox\n#1 DONE "), "{built}");
    assert!(built.contains("#2 [2/3] COPY . /ctx/"), "{built}");
    assert!(built.contains("#4 exporting to image"), "{built}");
    assert!(built.contains("#4 naming to ignored:1 done"), "{built}");
    let again = daemon.berth_ok(&["build", "--progress", "plain", "-t", "ignored:1", &dir]);
    assert!(again.contains("#2 CACHED"), "{again}");
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
    let network = daemon.berth(&["build", "--network", "container:web", &dir]);
    assert!(
        String::from_utf8_lossy(&network.stderr)
            .contains("--network container:web is not supported"),
        "{network:?}"
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

#[test]
fn run_mounts_keep_caches_bind_the_context_and_stay_out_of_the_layer() {
    let daemon = daemon_with_busybox("build-mounts");
    let dockerfile = r#"FROM busybox
RUN --mount=type=cache,target=/cache,id=counter sh -c 'echo $(( $(cat /cache/n 2>/dev/null || echo 0) + 1 )) > /cache/n && cp /cache/n /seen'
RUN --mount=type=bind,source=data,target=/src cat /src/value > /bound
RUN --mount=type=tmpfs,target=/scratch sh -c 'echo x > /scratch/y && grep " /scratch tmpfs " /proc/mounts > /tmpfs-seen'
"#;
    let dir = context(
        &daemon,
        "mounts",
        &[("Dockerfile", dockerfile), ("data/value", "one")],
    );
    let read = |image: &str, path: &str| {
        daemon
            .docker_ok(&["run", "--rm", image, "cat", path])
            .trim()
            .to_string()
    };
    let first = docker_build(&daemon, &["-t", "mounts:1", &dir]);
    assert!(first.status.success(), "{first:?}");
    assert_eq!(read("mounts:1", "/seen"), "1");
    assert_eq!(read("mounts:1", "/bound"), "one");
    assert!(read("mounts:1", "/tmpfs-seen").contains("tmpfs"));
    // What the mounts held is not in the image.
    for dir in ["/cache", "/src", "/scratch"] {
        let script = format!("ls -A {dir} 2>/dev/null");
        let left = daemon.docker_ok(&["run", "--rm", "mounts:1", "sh", "-c", &script]);
        assert_eq!(left.trim(), "", "{dir} holds what its mount held");
    }

    // The cache outlives the build.
    let again = docker_build(&daemon, &["--no-cache", "-t", "mounts:2", &dir]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(read("mounts:2", "/seen"), "2");

    // A changed bound file runs its step again; the cache step stays cached.
    std::fs::write(Path::new(&dir).join("data/value"), "two").unwrap();
    let third = docker_build(&daemon, &["-t", "mounts:3", &dir]);
    let output = String::from_utf8_lossy(&third.stdout);
    assert!(third.status.success(), "{third:?}");
    let step = |number: usize| {
        output
            .split(&format!("Step {number}/4"))
            .nth(1)
            .and_then(|rest| rest.split("Step ").next())
            .unwrap_or_default()
            .to_string()
    };
    assert!(step(2).contains("Using cache"), "{output}");
    assert!(step(3).contains("Running in"), "{output}");
    assert_eq!(read("mounts:3", "/bound"), "two");

    let refused = context(
        &daemon,
        "secret",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=secret,id=token cat /run/secrets/token\n",
        )],
    );
    let secret = docker_build(&daemon, &[&refused]);
    assert!(
        String::from_utf8_lossy(&secret.stderr)
            .contains("Dockerfile:2: --mount=type=secret is not supported yet"),
        "{secret:?}"
    );
}

#[test]
fn add_unpacks_archives_copy_writes_heredocs_and_onbuild_triggers_run_downstream() {
    let daemon = daemon_with_busybox("build-add");
    let base = context(
        &daemon,
        "base",
        &[(
            "Dockerfile",
            "FROM busybox\nONBUILD RUN echo triggered > /onbuild\nONBUILD COPY note.txt /from-trigger.txt\n",
        )],
    );
    let built = docker_build(&daemon, &["-t", "base:1", &base]);
    assert!(built.status.success(), "{built:?}");
    let triggers = daemon.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.OnBuild}}",
        "base:1",
    ]);
    assert_eq!(
        triggers.trim(),
        r#"["RUN echo triggered > /onbuild","COPY note.txt /from-trigger.txt"]"#
    );

    let dockerfile = r#"FROM base:1
ADD bundle.tar.gz /opt/
ADD plain.tar /plain/
ADD single.gz /raw/
COPY --chown=nobody:nogroup --link note.txt /owned
COPY <<'EOF' /etc/greeting
hello $NAME
EOF
"#;
    let dir = context(
        &daemon,
        "child",
        &[
            ("Dockerfile", dockerfile),
            ("note.txt", "a note"),
            ("tree/app/run.sh", "echo run"),
        ],
    );
    let shell = |script: &str| {
        let status = Command::new("sh")
            .args(["-c", script])
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "{script}");
    };
    shell(
        "tar czf bundle.tar.gz -C tree app && tar cf plain.tar -C tree app && echo zipped | gzip > single.gz",
    );
    let built = docker_build(&daemon, &["-t", "child:1", &dir]);
    assert!(built.status.success(), "{built:?}");
    assert!(
        String::from_utf8_lossy(&built.stdout).contains("# Executing 2 build triggers"),
        "{built:?}"
    );
    let run = |script: &str| daemon.docker_ok(&["run", "--rm", "child:1", "sh", "-c", script]);
    assert_eq!(run("cat /onbuild").trim(), "triggered");
    assert_eq!(run("cat /from-trigger.txt").trim(), "a note");
    assert_eq!(run("cat /opt/app/run.sh").trim(), "echo run");
    assert_eq!(run("cat /plain/app/run.sh").trim(), "echo run");
    // A gzip file that holds no tar is copied as it is.
    assert_eq!(run("zcat /raw/single.gz").trim(), "zipped");
    assert_eq!(run("stat -c '%u:%g' /owned").trim(), "65534:65534");
    assert_eq!(run("cat /etc/greeting"), "hello $NAME\n");
    // The triggers ran here and are not handed on.
    let handed = daemon.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.OnBuild}}",
        "child:1",
    ]);
    assert!(matches!(handed.trim(), "null" | "[]"), "{handed}");

    let unknown = context(
        &daemon,
        "unknown-owner",
        &[(
            "Dockerfile",
            "FROM busybox\nCOPY --chown=nosuchuser Dockerfile /x\n",
        )],
    );
    let refused = docker_build(&daemon, &[&unknown]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no nosuchuser in /etc/passwd"),
        "{refused:?}"
    );
}

#[test]
fn add_downloads_urls_and_checks_their_checksum() {
    let daemon = daemon_with_busybox("build-url");
    let served = daemon.scratch.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join("tool.txt"), "downloaded\n").unwrap();
    let served = served.display().to_string();
    let server = [
        "python3",
        "-m",
        "http.server",
        "8123",
        "--bind",
        "127.0.0.1",
        "--directory",
        &served,
    ];
    let _server = ChildGuard(
        daemon
            .on_host(&server)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while daemon.curl("http://127.0.0.1:8123/tool.txt").is_none() {
        assert!(Instant::now() < deadline, "the file server did not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    // sha256 of "downloaded\n".
    let digest = "sha256:82b2dc93e7e8e4b0d5ae6ac2b0ab2c3b1f4ad6fd0d3bb31d39d32d0b6e5e1a4d";
    let right = berth_image::Digest::of(b"downloaded\n");
    assert_ne!(right.as_str(), digest);
    let dockerfile = format!(
        "FROM busybox\nADD http://127.0.0.1:8123/tool.txt /opt/\nADD --checksum={right} http://127.0.0.1:8123/tool.txt /renamed\n"
    );
    let dir = context(&daemon, "url", &[("Dockerfile", &dockerfile)]);
    let built = docker_build(&daemon, &["-t", "url:1", &dir]);
    assert!(built.status.success(), "{built:?}");
    let shown = daemon.docker_ok(&[
        "run",
        "--rm",
        "url:1",
        "sh",
        "-c",
        "cat /opt/tool.txt /renamed; stat -c %a /renamed",
    ]);
    assert_eq!(shown, "downloaded\ndownloaded\n600\n");

    let wrong =
        format!("FROM busybox\nADD --checksum={digest} http://127.0.0.1:8123/tool.txt /x\n");
    let dir = context(&daemon, "url-wrong", &[("Dockerfile", &wrong)]);
    let refused = docker_build(&daemon, &[&dir]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Dockerfile:2"),
        "{refused:?}"
    );
    let missing = "FROM busybox\nADD http://127.0.0.1:8123/nothing.txt /x\n";
    let dir = context(&daemon, "url-missing", &[("Dockerfile", missing)]);
    let refused = docker_build(&daemon, &[&dir]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("with status 404"),
        "{refused:?}"
    );
}

#[test]
fn from_platform_builds_for_this_host_with_buildkit_s_platform_args() {
    let daemon = daemon_with_busybox("build-platform");
    let dockerfile = "FROM --platform=$BUILDPLATFORM busybox AS build\nARG TARGETARCH\nARG TARGETPLATFORM\nRUN echo $TARGETARCH $TARGETPLATFORM > /arch\nFROM --platform=$TARGETPLATFORM busybox\nCOPY --from=build /arch /arch\n";
    let dir = context(&daemon, "platform", &[("Dockerfile", dockerfile)]);
    let built = docker_build(&daemon, &["-t", "platform:1", &dir]);
    assert!(built.status.success(), "{built:?}");
    let arch = berth_image::host_architecture();
    let shown = daemon.docker_ok(&["run", "--rm", "platform:1", "cat", "/arch"]);
    assert_eq!(shown, format!("{arch} linux/{arch}\n"));
    let other = context(
        &daemon,
        "other-platform",
        &[("Dockerfile", "FROM --platform=linux/s390x busybox\n")],
    );
    let refused = docker_build(&daemon, &[&other]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Dockerfile:1: berth builds for linux/"),
        "{refused:?}"
    );
}
