//! `docker run` settings through the stock CLI: each one the engine honours is seen
//! from inside the container, and each one it does not is refused by name before
//! anything is made.

use super::*;
use crate::containers::daemon_with_busybox;

/// `docker run --rm FLAGS busybox sh -c SCRIPT`'s output, which must succeed.
fn run_in(daemon: &Daemon, flags: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend(flags);
    args.extend(["busybox", "sh", "-c", script]);
    daemon.docker_ok(&args)
}

/// The namespace a link under /proc/self/ns names, as the test host sees it.
fn host_namespace(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn names_addresses_and_resolver_settings_reach_the_container() {
    let daemon = daemon_with_busybox("etc-files");
    let resolver = "grep -E '^(nameserver|search|options)' /etc/resolv.conf";
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["--mac-address", "02:42:ac:11:00:99"],
            "cat /sys/class/net/eth0/address",
            "02:42:ac:11:00:99",
        ),
        (
            &["--add-host", "foo:1.2.3.4", "--add-host", "gw:host-gateway"],
            "grep -E 'foo|gw' /etc/hosts",
            "1.2.3.4\tfoo\n172.17.0.1\tgw",
        ),
        (
            &["--dns", "9.9.9.9"],
            "grep nameserver /etc/resolv.conf",
            "nameserver 9.9.9.9",
        ),
        (
            &[
                "--dns",
                "9.9.9.9",
                "--dns-search",
                "example.com",
                "--dns-option",
                "ndots:2",
            ],
            resolver,
            "nameserver 9.9.9.9\nsearch example.com\noptions ndots:2",
        ),
        (&["--add-host", "bad:1.2.3"], "true", "refused"),
    ];
    for (flags, script, expected) in cases {
        if expected == "refused" {
            let mut args = vec!["run", "--rm"];
            args.extend(flags);
            args.extend(["busybox", "true"]);
            let output = daemon.docker(&args);
            assert!(!output.status.success(), "{flags:?}: {output:?}");
            continue;
        }
        assert_eq!(run_in(&daemon, flags, script).trim(), expected, "{flags:?}");
    }
    // On a network whose own DNS server answers, `--dns` cannot be honoured: refused.
    daemon.docker_ok(&["network", "create", "named"]);
    let output = daemon.docker(&[
        "run",
        "--rm",
        "--network",
        "named",
        "--dns",
        "9.9.9.9",
        "busybox",
        "true",
    ]);
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("berth does not support --dns on network named"),
        "{output:?}"
    );
    let search = run_in(
        &daemon,
        &["--network", "named", "--dns-search", "example.com"],
        resolver,
    );
    assert!(search.contains("search example.com\n"), "{search}");
    // host-gateway is the default bridge's address on any network, as docker0's is.
    for network in ["named", "host"] {
        let hosts = run_in(
            &daemon,
            &["--network", network, "--add-host", "gw:host-gateway"],
            "grep gw /etc/hosts",
        );
        assert_eq!(hosts.trim(), "172.17.0.1\tgw", "--network {network}");
    }
}

#[test]
fn limits_devices_and_kernel_settings_are_honoured() {
    let daemon = daemon_with_busybox("settings");
    let cgroup = |v1: &str, v2: &str| {
        format!("cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}")
    };
    let cpu = format!(
        "{}; {}",
        cgroup("cpu/cpu.cfs_period_us", "cpu.max"),
        cgroup("cpu/cpu.cfs_quota_us", "cpu.max")
    );
    let memory = format!(
        "{}; {}",
        cgroup("memory/memory.soft_limit_in_bytes", "memory.low"),
        cgroup("memory/memory.memsw.limit_in_bytes", "memory.swap.max")
    );
    let open_fuse = "(exec 3</dev/myfuse) && echo read; (exec 3>/dev/myfuse) 2>/dev/null && echo write || echo no-write";
    let system_paths = "grep -c ' /proc/keys ' /proc/self/mountinfo; grep -c ' /proc/sys ' /proc/self/mountinfo; true";
    let mknod_fuse =
        "mknod /tmp/f c 10 229 && ((exec 3</tmp/f) 2>/dev/null && echo opened || echo denied)";
    let fuse = "test -c /dev/fuse && echo present || echo absent";
    let cases: Vec<(Vec<&str>, String, String)> = vec![
        (vec![], fuse.into(), "absent".into()),
        (
            vec!["--ulimit", "nofile=100:200"],
            "ulimit -n; ulimit -Hn".into(),
            "100\n200".into(),
        ),
        (
            vec!["--shm-size", "1m"],
            "df -k /dev/shm | awk 'NR==2 {print $2}'".into(),
            "1024".into(),
        ),
        (
            vec![],
            "df -k /dev/shm | awk 'NR==2 {print $2}'".into(),
            "65536".into(),
        ),
        (
            vec!["--device", "/dev/null:/dev/mynull"],
            "stat -c '%t:%T' /dev/mynull && echo x > /dev/mynull && echo written".into(),
            "1:3\nwritten".into(),
        ),
        (
            vec!["--device", "/dev/fuse:/dev/myfuse:r"],
            open_fuse.into(),
            "read\nno-write".into(),
        ),
        (
            vec!["--device", "/dev/fuse:/dev/myfuse"],
            open_fuse.into(),
            "read\nwrite".into(),
        ),
        (
            vec!["--device-cgroup-rule", "c 10:229 r"],
            mknod_fuse.into(),
            "opened".into(),
        ),
        (vec![], mknod_fuse.into(), "denied".into()),
        (
            vec!["--sysctl", "kernel.shmmax=123456"],
            "cat /proc/sys/kernel/shmmax".into(),
            "123456".into(),
        ),
        (
            vec!["--group-add", "1234"],
            "grep Groups /proc/self/status | tr -d '\\t'".into(),
            "Groups:1234".into(),
        ),
        (
            vec!["--group-add", "nogroup", "--group-add", "1"],
            "grep Groups /proc/self/status | tr -d '\\t'".into(),
            "Groups:1 65534".into(),
        ),
        (
            vec!["--user", "nobody"],
            "id -u; id -g".into(),
            "65534\n65534".into(),
        ),
        (
            vec!["--user", "daemon:nogroup"],
            "id -u; id -g".into(),
            "1\n65534".into(),
        ),
        (
            vec!["--domainname", "example.org"],
            "cat /proc/sys/kernel/domainname".into(),
            "example.org".into(),
        ),
        (
            vec!["--oom-score-adj", "100"],
            "cat /proc/self/oom_score_adj".into(),
            "100".into(),
        ),
        (
            vec!["--cpuset-cpus", "0"],
            "grep Cpus_allowed_list /proc/self/status | tr -d '\\t'".into(),
            "Cpus_allowed_list:0".into(),
        ),
        (
            vec!["--cpuset-mems", "0"],
            "grep Mems_allowed_list /proc/self/status | tr -d '\\t'".into(),
            "Mems_allowed_list:0".into(),
        ),
        (
            vec!["--cpu-period", "50000", "--cpu-quota", "25000"],
            cpu,
            "50000\n25000".into(),
        ),
        (
            vec![
                "--memory",
                "32m",
                "--memory-reservation",
                "16m",
                "--memory-swap",
                "64m",
            ],
            memory,
            "16777216\n67108864".into(),
        ),
        (
            vec!["--ipc", "host"],
            "readlink /proc/self/ns/ipc".into(),
            host_namespace("ipc"),
        ),
        (
            vec!["--pid", "host"],
            "readlink /proc/self/ns/pid".into(),
            host_namespace("pid"),
        ),
        (
            vec!["--uts", "host"],
            "readlink /proc/self/ns/uts".into(),
            host_namespace("uts"),
        ),
        (
            vec!["--cgroupns", "host"],
            "readlink /proc/self/ns/cgroup".into(),
            host_namespace("cgroup"),
        ),
        (
            vec!["--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770"],
            "df -k /t | awk 'NR==2 {print $2}'; stat -c %a /t".into(),
            "1024\n1770".into(),
        ),
        (
            vec!["--memory-swappiness", "10"],
            cgroup("memory/memory.swappiness", "memory.swappiness"),
            "10".into(),
        ),
        (
            vec!["--memory", "32m", "--oom-kill-disable"],
            "head -1 /sys/fs/cgroup/memory/memory.oom_control".into(),
            "oom_kill_disable 1".into(),
        ),
        (vec![], system_paths.into(), "1\n1".into()),
        (
            vec!["--security-opt", "systempaths=unconfined"],
            system_paths.into(),
            "0\n0".into(),
        ),
    ];
    for (flags, script, expected) in &cases {
        let output = run_in(&daemon, flags, script);
        assert_eq!(output.trim(), expected, "{flags:?}: {script}");
    }
    // Private namespaces by default: the same links differ from the host's.
    let own = run_in(
        &daemon,
        &[],
        "readlink /proc/self/ns/ipc; readlink /proc/self/ns/pid",
    );
    assert!(
        !own.contains(&host_namespace("ipc")) && !own.contains(&host_namespace("pid")),
        "{own}"
    );
}

/// The spec a container was last started with, from the daemon's data directory.
fn runtime_spec(daemon: &Daemon, id: &str) -> serde_json::Value {
    let path = daemon
        .scratch
        .path()
        .join("data/containers")
        .join(id)
        .join("config.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn privileged_containers_get_the_host_s_devices() {
    let daemon = daemon_with_busybox("privileged-devices");
    let id = daemon.docker_ok(&["create", "--privileged", "busybox", "true"]);
    // Started for its spec: where the host withholds a capability (this sandbox lacks
    // CAP_SYS_RESOURCE) a privileged container cannot start, with Docker too.
    let _ = daemon.docker(&["start", id.trim()]);
    let spec = runtime_spec(&daemon, id.trim());
    let devices: Vec<&str> = spec["linux"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert!(devices.contains(&"/dev/fuse"), "{devices:?}");
    assert!(
        !devices.contains(&"/dev/ptmx") && !devices.iter().any(|d| d.starts_with("/dev/pts")),
        "{devices:?}"
    );
}

#[test]
fn volumes_are_filled_from_the_image_and_anonymous_ones_go_with_rm() {
    let daemon = daemon_with_busybox("anonymous-volumes");
    let volumes = || daemon.docker_ok(&["volume", "ls", "-q"]);
    // A volume of its own at /etc, filled with the image's /etc, and gone with --rm.
    let out = run_in(
        &daemon,
        &["-v", "/etc", "-v", "/data"],
        "grep -c ' /etc \\| /data ' /proc/self/mountinfo; head -1 /etc/passwd; ls /data | wc -l",
    );
    assert_eq!(out.trim(), "2\nroot:x:0:0:root:/root:/bin/sh\n0");
    assert_eq!(volumes().trim(), "", "--rm left its anonymous volumes");
    let out = run_in(
        &daemon,
        &["--mount", "type=volume,dst=/scratch"],
        "grep -c ' /scratch ' /proc/self/mountinfo",
    );
    assert_eq!(out.trim(), "1");
    assert_eq!(volumes().trim(), "", "--rm left an anonymous --mount");
    // A new named volume is filled from the image too, unless told not to be.
    let filled = run_in(&daemon, &["-v", "filled:/etc"], "head -1 /etc/passwd");
    assert_eq!(filled.trim(), "root:x:0:0:root:/root:/bin/sh");
    let again = run_in(&daemon, &["-v", "filled:/x"], "head -1 /x/passwd");
    assert_eq!(again, filled);
    let probe = "test -e /etc/passwd && echo filled || echo empty";
    for flags in [
        ["--mount", "type=volume,src=bare,dst=/etc,volume-nocopy"],
        ["-v", "bare2:/etc:nocopy"],
    ] {
        assert_eq!(run_in(&daemon, &flags, probe).trim(), "empty", "{flags:?}");
    }
    for name in ["filled", "bare", "bare2"] {
        daemon.docker_ok(&["volume", "rm", name]);
    }
    // Kept by a plain rm, removed by rm -v; a bind at the same path takes its place.
    daemon.docker_ok(&[
        "run",
        "--name",
        "keeps",
        "-v",
        "/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    let kept = volumes();
    assert_eq!(kept.lines().count(), 1, "{kept}");
    daemon.docker_ok(&[
        "run",
        "--name",
        "shares",
        "-v",
        &format!("{}:/data", kept.trim()),
        "busybox",
        "cat",
        "/data/f",
    ]);
    daemon.docker_ok(&["rm", "keeps"]);
    assert_eq!(volumes(), kept);
    daemon.docker_ok(&["rm", "shares"]);
    daemon.docker_ok(&["run", "--name", "drops", "-v", "/data", "busybox", "true"]);
    daemon.docker_ok(&["rm", "-v", "drops"]);
    assert_eq!(volumes(), kept, "rm -v left the anonymous volume");
}

#[test]
fn annotations_reach_the_runtime_spec() {
    let daemon = daemon_with_busybox("annotations");
    let id = daemon.docker_ok(&[
        "create",
        "--annotation",
        "org.example.key=value",
        "busybox",
        "true",
    ]);
    daemon.docker_ok(&["start", id.trim()]);
    let spec = runtime_spec(&daemon, id.trim());
    assert_eq!(spec["annotations"]["org.example.key"], "value");
}

#[test]
fn stop_sends_the_stop_signal_and_waits_the_stop_timeout() {
    let daemon = daemon_with_busybox("stop-signal");
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 42' USR1; while true; do sleep 0.1; done",
    ]);
    daemon.docker_ok(&["stop", "usr1"]);
    let code = daemon.docker_ok(&[
        "inspect",
        "-f",
        "{{.State.ExitCode}} {{.Config.StopSignal}}",
        "usr1",
    ]);
    assert_eq!(code.trim(), "42 USR1");
    // The image's STOPSIGNAL when the container sets none.
    let root = daemon.scratch.path().join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let rootfs = daemon.scratch.path().join("rootfs.tar");
    let tar = Command::new("tar")
        .args([
            "-C",
            root.to_str().unwrap(),
            "-cf",
            rootfs.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(tar.success());
    daemon.docker_ok(&[
        "import",
        "--change",
        "STOPSIGNAL SIGUSR1",
        rootfs.to_str().unwrap(),
        "usr1-image",
    ]);
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "from-image",
        "usr1-image",
        "sh",
        "-c",
        "trap 'exit 43' USR1; while true; do sleep 0.1; done",
    ]);
    daemon.docker_ok(&["stop", "from-image"]);
    let code = daemon.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", "from-image"]);
    assert_eq!(code.trim(), "43");
    // sleep as PID 1 ignores SIGTERM: stop waits the container's timeout, not 10 s.
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "patient",
        "--stop-timeout",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    let started = Instant::now();
    daemon.docker_ok(&["stop", "patient"]);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    let code = daemon.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", "patient"]);
    assert_eq!(code.trim(), "137");
}

#[test]
fn settings_berth_does_not_honour_are_refused_by_name_and_make_nothing() {
    let daemon = daemon_with_busybox("refused-settings");
    let cases: [(&[&str], &str); 26] = [
        (
            &["--cpu-rt-period", "100"],
            "--cpu-rt-period (HostConfig.CpuRealtimePeriod)",
        ),
        (
            &["--cpu-rt-runtime", "50"],
            "--cpu-rt-runtime (HostConfig.CpuRealtimeRuntime)",
        ),
        (
            &["--blkio-weight", "300"],
            "--blkio-weight (HostConfig.BlkioWeight)",
        ),
        (
            &["--blkio-weight-device", "/dev/null:100"],
            "--blkio-weight-device (HostConfig.BlkioWeightDevice)",
        ),
        (
            &["--device-read-bps", "/dev/null:1mb"],
            "--device-read-bps (HostConfig.BlkioDeviceReadBps)",
        ),
        (
            &["--device-write-bps", "/dev/null:1mb"],
            "--device-write-bps (HostConfig.BlkioDeviceWriteBps)",
        ),
        (
            &["--device-read-iops", "/dev/null:10"],
            "--device-read-iops (HostConfig.BlkioDeviceReadIOps)",
        ),
        (
            &["--device-write-iops", "/dev/null:10"],
            "--device-write-iops (HostConfig.BlkioDeviceWriteIOps)",
        ),
        (
            &["--storage-opt", "size=1G"],
            "--storage-opt (HostConfig.StorageOpt)",
        ),
        (&["--gpus", "all"], "--gpus (HostConfig.DeviceRequests)"),
        (
            &["--volumes-from", "other"],
            "--volumes-from (HostConfig.VolumesFrom)",
        ),
        (&["--link", "other:alias"], "--link (HostConfig.Links)"),
        (
            &["--cgroup-parent", "elsewhere"],
            "--cgroup-parent (HostConfig.CgroupParent)",
        ),
        (&["--runtime", "runc"], "--runtime (HostConfig.Runtime)"),
        (
            &["--ipc", "container:other"],
            "--ipc container:other (HostConfig.IpcMode)",
        ),
        (
            &["--pid", "container:other"],
            "--pid container:other (HostConfig.PidMode)",
        ),
        (&["--security-opt", "sandbox=off"], "Invalid --security-opt"),
        (
            &["-v", "/tmp:/x:rshared"],
            "berth does not support the volume mode \"rshared\"",
        ),
        (
            &["--ip6", "fe80::1"],
            "--ip6 (NetworkingConfig.EndpointsConfig[default].IPAMConfig.IPv6Address)",
        ),
        (
            &["--link-local-ip", "169.254.1.1"],
            "--link-local-ip (NetworkingConfig.EndpointsConfig[default].IPAMConfig.LinkLocalIPs)",
        ),
        (
            &["--health-cmd", "true", "--health-start-interval", "1s"],
            "--health-start-interval (Healthcheck.StartInterval)",
        ),
        (&["--group-add", "audio"], "unable to find group audio"),
        (&["--user", "web"], "unable to find user web"),
        (
            &["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
            "sysctl \"net.ipv4.ip_forward\" is not allowed",
        ),
        (&["--ulimit", "nofiles=1"], "invalid ulimit type: nofiles"),
        (&["--device", "/dev/pts"], "not a device node"),
    ];
    for (flags, named) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend(flags);
        args.extend(["busybox", "true"]);
        let output = daemon.docker(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flags:?} was accepted");
        assert!(stderr.contains(named), "{flags:?}: {stderr}");
        assert_eq!(
            daemon.docker_ok(&["ps", "-aq"]).trim(),
            "",
            "{flags:?} made a container"
        );
    }
    // What the CLI itself refuses, the API refuses too: an alias on the default bridge.
    let body = r#"{"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": ["nick"]}}}}"#;
    let answer = Command::new("curl")
        .args(["-s", "--unix-socket", daemon.socket.to_str().unwrap()])
        .args(["-H", "Content-Type: application/json", "-d", body])
        .args(["-w", "\n%{http_code}", "http://docker/containers/create"])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer.stdout);
    assert!(answer.ends_with("\n400"), "{answer}");
    assert!(answer.contains("network-scoped alias"), "{answer}");
    assert_eq!(daemon.docker_ok(&["ps", "-aq"]).trim(), "");
}

/// A cgroup file of container `name`, read from inside it: the v1 file or the v2 one.
fn cgroup_file(daemon: &Daemon, name: &str, v1: &str, v2: &str) -> String {
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let file = format!("/sys/fs/cgroup/{}", if unified { v2 } else { v1 });
    daemon
        .docker_ok(&["exec", name, "cat", &file])
        .trim()
        .to_string()
}

#[test]
fn docker_update_changes_limits_in_place_and_for_later_starts() {
    let daemon = daemon_with_busybox("update");
    let limited = ["--name", "limited", "--memory", "64m", "--pids-limit", "50"];
    daemon.docker_ok(&[&["run", "-d"][..], &limited, &["busybox", "sleep", "1000"]].concat());
    daemon.docker_ok(&[
        "update",
        "--memory",
        "96m",
        "--memory-swap",
        "200m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "80",
        "--restart",
        "on-failure:3",
        "limited",
    ]);
    let memory = cgroup_file(
        &daemon,
        "limited",
        "memory/memory.limit_in_bytes",
        "memory.max",
    );
    assert_eq!(memory, (96u64 << 20).to_string());
    let pids = cgroup_file(&daemon, "limited", "pids/pids.max", "pids.max");
    assert_eq!(pids, "80");
    let quota = cgroup_file(&daemon, "limited", "cpu/cpu.cfs_quota_us", "cpu.max");
    assert!(quota.starts_with("50000"), "{quota}");
    let recorded = daemon.docker_ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
        "limited",
    ]);
    assert_eq!(
        recorded.trim(),
        format!("{} {} 500000000 80 on-failure:3", 96u64 << 20, 200u64 << 20)
    );
    let refused = daemon.docker(&["update", "--blkio-weight", "300", "limited"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--blkio-weight (BlkioWeight)"), "{stderr}");
    let too_big = daemon.docker(&["update", "--memory", "300m", "limited"]);
    let stderr = String::from_utf8_lossy(&too_big.stderr);
    assert!(
        stderr.contains("update the memoryswap at the same time"),
        "{stderr}"
    );
    daemon.docker_ok(&["create", "--name", "later", "busybox", "sleep", "1000"]);
    daemon.docker_ok(&["update", "--memory", "48m", "later"]);
    daemon.docker_ok(&["start", "later"]);
    let memory = cgroup_file(
        &daemon,
        "later",
        "memory/memory.limit_in_bytes",
        "memory.max",
    );
    assert_eq!(memory, (48u64 << 20).to_string());
    daemon.docker_ok(&["rm", "-f", "limited", "later"]);
}
