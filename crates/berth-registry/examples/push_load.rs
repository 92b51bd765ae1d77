//! A load generator for registries: COUNT blobs of SIZE random bytes pushed at once, one
//! connection each, every push as docker sends one (POST for an upload, then one PUT
//! with the bytes and the digest); prints the time they all took.
//!
//!   push_load ADDRESS COUNT SIZE
//!
//! ADDRESS is host:port of a registry on plain HTTP. Each run pushes new bytes, so no
//! registry can answer from what it already holds.

#![allow(clippy::unwrap_used)] // a benchmark tool: fail loudly

use std::time::Instant;

use berth_image::Digest;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

async fn push(address: String, repository: String, data: Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let start = hyper::Request::post(format!("/v2/{repository}/blobs/uploads/"))
        .header("Host", &address)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let started = sender.send_request(start).await.unwrap();
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_string();
    started.into_body().collect().await.unwrap();
    let path = location
        .strip_prefix(&format!("http://{address}"))
        .unwrap_or(&location);
    let separator = if path.contains('?') { '&' } else { '?' };
    let digest = Digest::of(&data);
    let put = hyper::Request::put(format!("{path}{separator}digest={digest}"))
        .header("Host", &address)
        .header("Content-Type", "application/octet-stream")
        .body(Full::new(Bytes::from(data)))
        .unwrap();
    let done = sender.send_request(put).await.unwrap();
    assert_eq!(done.status(), 201, "{digest}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, address, count, size] = &args[..] else {
        panic!("usage: push_load ADDRESS COUNT SIZE");
    };
    let (count, size): (usize, usize) = (count.parse().unwrap(), size.parse().unwrap());
    let mut random = std::fs::File::open("/dev/urandom").unwrap();
    let blobs: Vec<Vec<u8>> = (0..count)
        .map(|_| {
            let mut data = vec![0; size];
            std::io::Read::read_exact(&mut random, &mut data).unwrap();
            data
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let began = Instant::now();
    runtime.block_on(async {
        let pushes: Vec<_> = blobs
            .into_iter()
            .enumerate()
            .map(|(i, data)| tokio::spawn(push(address.clone(), format!("load/r{i}"), data)))
            .collect();
        for push in pushes {
            push.await.unwrap();
        }
    });
    println!(
        "{count} pushes of {size} bytes in {:.1} ms",
        began.elapsed().as_secs_f64() * 1000.0
    );
}
