//! The command line as a person meets it: version, help, and honest answers from
//! commands whose work has not landed yet.

use std::process::Command;

fn berth(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .output()
        .expect("run berth")
}

#[test]
fn version_names_the_release_and_the_commit() {
    let output = berth(&["--version"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with(&format!("berth {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("(commit "), "{text}");
}

#[test]
fn help_shows_the_whole_product() {
    let output = berth(&["--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for command in [
        "daemon", "server", "agent", "run", "ps", "images", "build", "push", "pull", "apply",
        "get", "oci", "network", "volume", "compose",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command} missing from --help"
        );
    }
}

#[test]
fn unimplemented_commands_say_so_and_exit_2() {
    let cases: [(&[&str], &str); 3] = [
        (&["save", "web:1"], "save"),
        (&["history", "web:1"], "history"),
        (&["network", "connect", "front", "web"], "network connect"),
    ];
    for (args, command) in cases {
        let output = berth(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.trim(),
            format!("berth: not implemented yet: {command}")
        );
        assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
    }
}

#[test]
fn unknown_commands_are_usage_errors_not_panics() {
    let output = berth(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unrecognized subcommand 'frobnicate'"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn compose_config_prints_the_resolved_project_and_refuses_loops() {
    let dir = tempfile::tempdir().expect("scratch");
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "name: shop\nservices:\n  web:\n    image: web:${TAG:-dev}\n    ports: [\"8080:80\"]\n    depends_on: [kv]\n    colour: blue\n  kv:\n    image: kv\n",
    )
    .expect("write compose.yaml");
    let path = file.display().to_string();
    let output = berth(&["compose", "-f", &path, "config"]);
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.starts_with("name: shop\n"), "{printed}");
    assert!(printed.contains("image: web:dev"), "{printed}");
    assert!(printed.contains("published: 8080"), "{printed}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown key services.web.colour"),
        "{stderr}"
    );

    std::fs::write(
        &file,
        "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n",
    )
    .expect("write compose.yaml");
    let output = berth(&["compose", "-f", &path, "config"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("dependency cycle detected: a -> b -> a"),
        "{stderr}"
    );

    // Profiles from --profile and COMPOSE_PROFILES.
    std::fs::write(
        &file,
        "services:\n  web: {image: x}\n  debug: {image: y, profiles: [debug]}\n",
    )
    .expect("write compose.yaml");
    let plain = berth(&["compose", "-f", &path, "config"]);
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("debug:"),
        "{plain:?}"
    );
    let flagged = berth(&["compose", "-f", &path, "--profile", "debug", "config"]);
    assert!(
        String::from_utf8_lossy(&flagged.stdout).contains("debug:"),
        "{flagged:?}"
    );
    let from_env = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["compose", "-f", &path, "config"])
        .env("COMPOSE_PROFILES", "other,debug")
        .output()
        .expect("run berth");
    assert!(
        String::from_utf8_lossy(&from_env.stdout).contains("debug:"),
        "{from_env:?}"
    );
}
