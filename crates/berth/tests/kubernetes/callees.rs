//! HTTPS servers the API server calls in tests — admission webhooks, aggregated API
//! servers: a test CA with a certificate it signs for 127.0.0.1, and Python's
//! http.server serving a script over TLS with it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use berth_testkit::guard::ChildGuard;

fn openssl(args: &[&str], dir: &Path) {
    let made = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(made.status.success(), "openssl {args:?}: {made:?}");
}

/// Makes `ca.crt` (with `ca.key`) in `dir`, and `server.crt` (with `server.key`), which
/// it signs for 127.0.0.1.
pub fn certificates(dir: &Path) {
    let ca =
        "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.crt";
    openssl(&ca.split(' ').collect::<Vec<_>>(), dir);
    let request =
        "req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr";
    openssl(&request.split(' ').collect::<Vec<_>>(), dir);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let sign = "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile san.ext -out server.crt";
    openssl(&sign.split(' ').collect::<Vec<_>>(), dir);
}

/// A PKCS#10 request (PEM) for `subject` (`/CN=jane/O=devs`), made in `dir` with its
/// key in `<name>.key`.
pub fn signing_request(dir: &Path, subject: &str, name: &str) -> Vec<u8> {
    let (key, request) = (format!("{name}.key"), format!("{name}.csr"));
    openssl(
        &[
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", &key,
            "-out", &request,
        ],
        dir,
    );
    std::fs::read(dir.join(request)).unwrap()
}

/// What follows a script's request handler (`class Handler`): serving it over HTTPS
/// on a free port of loopback, with the certificate and key its first two arguments
/// name, after printing that port.
const SERVE: &str = r#"
server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// Serves `handler` (Python defining `class Handler`, an http.server request handler;
/// `http.server`, `ssl` and `sys` imported) over HTTPS with the server certificate of
/// `dir`, `args` following the certificate and key in its `sys.argv`. The server
/// (stopped when dropped) and its port.
pub fn python_https(handler: &str, dir: &Path, args: &[&Path]) -> (ChildGuard, u16) {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(format!("{handler}{SERVE}"))
        .args([dir.join("server.crt"), dir.join("server.key")])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let guard = ChildGuard(child);
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no port: {line:?}"));
    (guard, port)
}
