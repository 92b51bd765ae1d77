//! Compose against the daemon: a two-service project — a key-value store and a web app
//! built from a Dockerfile that reads from it by the service's name once the store is
//! healthy — comes up with `berth compose up -d` and with Debian's docker-compose 1.29,
//! is listed, and `down -v` leaves nothing behind.

use super::*;

const COMPOSE: &str = r#"name: shop
services:
  web:
    build: ./web
    image: shop-web:${TAG:-dev}
    environment:
      STORE_URL: http://kv:8000/value
    depends_on:
      kv:
        condition: service_healthy
  kv:
    image: busybox
    command: sh -c "trap 'exit 0' TERM; mkdir -p /www && echo stored > /www/value && httpd -p 8000 -h /www; sleep 3600 & wait"
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/value"]
      interval: 200ms
      retries: 50
    volumes:
      - data:/data
volumes:
  data:
"#;

#[test]
fn compose_up_runs_services_that_find_each_other_by_name_and_down_removes_them() {
    let daemon = Daemon::start("compose");
    let archive = daemon.archive("busybox");
    daemon.docker_ok(&["load", "-i", &archive.display().to_string()]);
    let project = daemon.scratch.path().join("shop");
    std::fs::create_dir_all(project.join("web")).unwrap();
    std::fs::write(project.join("compose.yaml"), COMPOSE).unwrap();
    std::fs::write(
        project.join("web/Dockerfile"),
        "FROM busybox\nCMD [\"sh\", \"-c\", \"trap 'exit 0' TERM; until wget -q -O /tmp/got $STORE_URL; do sleep 0.2; done; echo web got $(cat /tmp/got); sleep 3600 & wait\"]\n",
    )
    .unwrap();
    let file = project.join("compose.yaml").display().to_string();
    let up = daemon.berth_ok(&["compose", "-f", &file, "up", "-d"]);
    assert!(up.contains("Network shop_default  Created"), "{up}");
    assert!(up.contains("Container shop-web-1  Started"), "{up}");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = daemon.docker(&["logs", "shop-web-1"]);
        if String::from_utf8_lossy(&logs.stdout).contains("web got stored") {
            break;
        }
        assert!(Instant::now() < deadline, "web never reached kv: {logs:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The labels are what docker ps filters on; filters Berth lacks are refused.
    let kv = daemon.docker_ok(&[
        "ps",
        "--filter",
        "label=com.docker.compose.project=shop",
        "--filter",
        "label=com.docker.compose.service=kv",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(kv.trim(), "shop-kv-1");
    let ancestor = daemon.docker(&["ps", "--filter", "ancestor=busybox"]);
    assert!(
        String::from_utf8_lossy(&ancestor.stderr).contains("container filter \"ancestor\""),
        "{ancestor:?}"
    );
    let ps = daemon.berth_ok(&["compose", "-f", &file, "ps"]);
    assert!(
        ps.contains("shop-kv-1") && ps.contains("shop-web-1"),
        "{ps}"
    );
    assert!(ps.contains("shop-web:dev"), "{ps}");
    let volumes = daemon.docker_ok(&["volume", "ls", "-q"]);
    assert!(volumes.lines().any(|v| v == "shop_data"), "{volumes}");

    let down = daemon.berth_ok(&["compose", "-f", &file, "down", "-v"]);
    assert!(down.contains("Network shop_default  Removed"), "{down}");
    assert_eq!(daemon.docker_ok(&["ps", "-aq"]).trim(), "");
    let networks = daemon.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!networks.contains("shop_default"), "{networks}");
    let volumes = daemon.docker_ok(&["volume", "ls", "-q"]);
    assert!(!volumes.lines().any(|v| v == "shop_data"), "{volumes}");
}

/// Debian's docker-compose 1.29 (Python, the Docker SDK) against the daemon.
fn docker_compose(daemon: &Daemon, project: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["120", "docker-compose"])
        .args(args)
        .current_dir(project)
        .env("DOCKER_HOST", daemon.host())
        .env("DOCKER_CONFIG", daemon.scratch.path().join("docker-config"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn docker_compose_brings_the_same_project_up_and_down() {
    let daemon = Daemon::start("docker-compose");
    let archive = daemon.archive("busybox");
    daemon.docker_ok(&["load", "-i", &archive.display().to_string()]);
    let project = daemon.scratch.path().join("shop");
    std::fs::create_dir_all(project.join("web")).unwrap();
    std::fs::write(
        project.join("compose.yaml"),
        COMPOSE.replace("name: shop\n", ""),
    )
    .unwrap();
    std::fs::write(
        project.join("web/Dockerfile"),
        "FROM busybox\nCMD [\"sh\", \"-c\", \"trap 'exit 0' TERM; until wget -q -O /tmp/got $STORE_URL; do sleep 0.2; done; echo web got $(cat /tmp/got); sleep 3600 & wait\"]\n",
    )
    .unwrap();
    let up = docker_compose(&daemon, &project, &["-p", "shop", "up", "-d"]);
    assert!(
        up.status.success(),
        "{}\n{}\ndaemon log: {}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr),
        read_log(daemon.scratch.path())
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = daemon.docker(&["logs", "shop_web_1"]);
        if String::from_utf8_lossy(&logs.stdout).contains("web got stored") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "web never reached kv: {logs:?}\n{}\n{}",
            String::from_utf8_lossy(&up.stderr),
            daemon.docker_ok(&["ps", "-a"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let down = docker_compose(&daemon, &project, &["-p", "shop", "down", "-v"]);
    assert!(down.status.success(), "{down:?}");
    assert_eq!(daemon.docker_ok(&["ps", "-aq"]).trim(), "");
}
