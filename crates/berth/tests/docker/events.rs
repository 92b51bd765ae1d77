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
        "--label",
        "tier=web",
        "--label",
        "team=a",
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
    let replayed = |filters: &[&str], format: &str| {
        let window = ["events", "--since", &since, "--until", &until];
        let filters = filters.iter().flat_map(|f| ["--filter", f]);
        let args: Vec<&str> = window
            .into_iter()
            .chain(filters)
            .chain(["--format", format])
            .collect();
        daemon.docker_ok(&args)
    };
    let replay = replayed(
        &["type=container"],
        "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}",
    );
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
    let filtered = replayed(&["type=network", "event=create"], "{{.Type}} {{.Action}}");
    assert_eq!(filtered.trim(), "network create");
    // Every label filter must hold, as Docker has it.
    let labelled = |team: &str| {
        replayed(
            &["label=tier=web", &format!("label=team={team}")],
            "{{.Action}}",
        )
    };
    assert_eq!(
        labelled("a").lines().collect::<Vec<_>>(),
        ["create", "start", "die", "destroy"]
    );
    assert_eq!(labelled("b").trim(), "");
}
