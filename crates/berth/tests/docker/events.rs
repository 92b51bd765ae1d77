//! `docker events`: what happened, replayed with `--since`/`--until`, filtered, and
//! streamed live as it happens.

use super::*;

#[test]
fn events_replay_filter_and_stream_live() {
    let daemon = containers::daemon_with_busybox("events");
    let since = unix_now().to_string();
    // Live: a follower sees the work as it happens.
    let mut follower = daemon
        .docker_command(&["events", "--format", "{{.Type}} {{.Action}}"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let follower_out = follower.stdout.take().unwrap();
    let _follower = ChildGuard(follower);
    let lines = berth_testkit::lines_of(follower_out);
    // It listens once a probe's event reaches it.
    loop {
        daemon.docker_ok(&["volume", "create", "probe"]);
        daemon.docker_ok(&["volume", "rm", "probe"]);
        if lines.recv_timeout(Duration::from_millis(500)).is_ok() {
            break;
        }
    }
    daemon.docker_ok(&["network", "create", "evnet"]);
    let run = daemon.docker(&[
        "run",
        "--name",
        "ev",
        "--network",
        "evnet",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(run.status.code(), Some(3));
    daemon.docker_ok(&["rm", "ev"]);
    let mut live = Vec::new();
    while live.last().is_none_or(|l| l != "container destroy") {
        live.push(
            lines
                .recv_timeout(Duration::from_secs(20))
                .expect("the live stream stalled"),
        );
    }
    let live: Vec<&str> = live
        .iter()
        .map(String::as_str)
        .filter(|l| !l.starts_with("volume"))
        .collect();
    assert_eq!(
        live,
        [
            "network create",
            "container create",
            "network connect",
            "container start",
            "network disconnect",
            "container die",
            "container destroy"
        ]
    );

    // Replay: since the start, until now, with the events' attributes.
    let until = (unix_now() + 1).to_string();
    let replay = daemon.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}",
    ]);
    let replay: Vec<&str> = replay.lines().map(str::trim).collect();
    // Go templates print a missing attribute as "<no value>".
    assert_eq!(
        replay,
        [
            "create ev <no value>",
            "start ev <no value>",
            "die ev 3",
            "destroy ev <no value>"
        ]
    );

    // Filters: only what was asked for.
    let filtered = daemon.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=network",
        "--filter",
        "event=create",
        "--format",
        "{{.Type}} {{.Action}}",
    ]);
    assert_eq!(filtered.trim(), "network create");
}
