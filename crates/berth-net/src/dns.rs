//! The DNS server of a user-defined network: it answers containers' names with their
//! addresses, as Docker's embedded server does, and forwards every other question to the
//! host's resolvers. It listens on the network's gateway address, which every container
//! of the network reaches, so no rule inside the containers is needed (podman's
//! aardvark-dns does the same).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::{Context, Result};

/// How long answers may be cached, as Docker sets it.
const TTL: u32 = 600;
/// How often the serving thread looks up from its socket to see whether to stop.
const STOP_CHECK: Duration = Duration::from_millis(250);
/// How long a forwarded question may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// Names to addresses.
pub type NameTable = HashMap<String, Vec<Ipv4Addr>>;

/// The names a server answers: lower-case names to addresses, shared with the engine,
/// which replaces them as containers come and go.
#[derive(Debug, Clone, Default)]
pub struct Names(Arc<RwLock<Tables>>);

#[derive(Debug, Default)]
struct Tables {
    /// What every client is answered.
    shared: NameTable,
    /// What only the client at an address is answered besides: the names of the other
    /// networks its container is on, as Docker's resolver answers a container the names
    /// of all its networks.
    clients: HashMap<Ipv4Addr, NameTable>,
}

impl Names {
    /// Replaces every name, none of them for some clients only.
    pub fn set(&self, names: NameTable) {
        self.set_with_clients(names, HashMap::new());
    }

    /// Replaces every name: `shared` for every client, and `clients` for the client at
    /// each address besides (where `shared` does not know the name).
    pub fn set_with_clients(&self, shared: NameTable, clients: HashMap<Ipv4Addr, NameTable>) {
        let tables = Tables {
            shared: lower_case(shared),
            clients: clients
                .into_iter()
                .map(|(client, table)| (client, lower_case(table)))
                .collect(),
        };
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tables;
    }

    fn get(&self, name: &str, client: Ipv4Addr) -> Option<Vec<Ipv4Addr>> {
        let tables = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tables
            .shared
            .get(name)
            .or_else(|| tables.clients.get(&client)?.get(name))
            .cloned()
    }
}

fn lower_case(table: NameTable) -> NameTable {
    table
        .into_iter()
        .map(|(name, addresses)| (name.to_ascii_lowercase(), addresses))
        .collect()
}

/// What a DNS server answers from: a reply to the question `client` asked, or None to
/// forward it to the upstream resolvers.
pub trait Answers: Send + Sync {
    /// The reply, or None when the question is not about names this knows.
    fn answer(&self, question: &Message, client: Ipv4Addr) -> Option<Message>;
}

impl Answers for Names {
    fn answer(&self, question: &Message, client: Ipv4Addr) -> Option<Message> {
        answer(question, self, client)
    }
}

/// An authoritative, recursion-available reply to `question` about `query`, with no
/// records yet.
pub(crate) fn reply_to(question: &Message, query: &hickory_proto::op::Query) -> Message {
    let mut reply = Message::response(question.metadata.id, question.metadata.op_code);
    reply.metadata.recursion_desired = question.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    reply.add_query(query.clone());
    reply
}

/// The name `query` asks about, lower-case and without the root's dot.
pub(crate) fn asked_name(query: &hickory_proto::op::Query) -> String {
    query
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// A running server; it stops when dropped.
#[derive(Debug)]
pub struct DnsServer {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    /// Serves what `names` answers on port 53 of `address`, over UDP and TCP, forwarding
    /// the rest to `upstream`.
    pub fn start(
        address: Ipv4Addr,
        names: Arc<dyn Answers>,
        upstream: Vec<SocketAddr>,
    ) -> Result<Self> {
        let socket = UdpSocket::bind((address, 53)).or_os(|| format!("listen on {address}:53"))?;
        socket
            .set_read_timeout(Some(STOP_CHECK))
            .or_os(|| "set the DNS socket's timeout".into())?;
        let listener =
            TcpListener::bind((address, 53)).or_os(|| format!("listen on {address}:53 (TCP)"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let (stopped, answers, forward_to) =
            (Arc::clone(&stop), Arc::clone(&names), upstream.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("dns {address}"))
                .spawn(move || serve(&socket, answers.as_ref(), &forward_to, &stopped))
                .or_os(|| "start the DNS thread".into())?,
        );
        let stopped = Arc::clone(&stop);
        threads.push(
            std::thread::Builder::new()
                .name(format!("dns tcp {address}"))
                .spawn(move || serve_tcp(&listener, &names, &upstream, &stopped))
                .or_os(|| "start the DNS TCP thread".into())?,
        );
        Ok(Self { stop, threads })
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Answers DNS over TCP (RFC 7766: each message after its two-byte length), a thread
/// per connection, until `stop`.
fn serve_tcp(
    listener: &TcpListener,
    names: &Arc<dyn Answers>,
    upstream: &[SocketAddr],
    stop: &AtomicBool,
) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let check = PollTimeout::try_from(STOP_CHECK).unwrap_or(PollTimeout::NONE);
    while !stop.load(Ordering::Relaxed) {
        // Waits a while for a connection, then looks at `stop` again.
        let mut waiting = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut waiting, check), Ok(ready) if ready > 0) {
            continue;
        }
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        let (names, upstream) = (Arc::clone(names), upstream.to_vec());
        std::thread::spawn(move || {
            let _ = answer_connection(stream, names.as_ref(), &upstream);
        });
    }
}

/// Answers each question on one TCP connection until the client closes it or is idle.
fn answer_connection(
    mut stream: TcpStream,
    names: &dyn Answers,
    upstream: &[SocketAddr],
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    let client = match stream.peer_addr()?.ip() {
        std::net::IpAddr::V4(ip) => ip,
        std::net::IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    loop {
        let Ok(request) = read_framed(&mut stream) else {
            return Ok(());
        };
        let Ok(question) = Message::from_vec(&request) else {
            return Ok(());
        };
        let reply = match names.answer(&question, client) {
            Some(reply) => reply.to_vec().map_err(std::io::Error::other)?,
            None => forward_tcp(&request, upstream)
                .or_else(|_| nxdomain(&question).to_vec().map_err(std::io::Error::other))?,
        };
        write_framed(&mut stream, &reply)?;
    }
}

/// Asks the first upstream that answers over TCP.
fn forward_tcp(request: &[u8], upstream: &[SocketAddr]) -> std::io::Result<Vec<u8>> {
    let mut last = std::io::Error::other("no upstream resolver");
    for server in upstream {
        let attempt = (|| {
            let mut stream = TcpStream::connect_timeout(server, UPSTREAM_TIMEOUT)?;
            stream.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
            write_framed(&mut stream, request)?;
            read_framed(&mut stream)
        })();
        match attempt {
            Ok(reply) => return Ok(reply),
            Err(error) => last = error,
        }
    }
    Err(last)
}

fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 2];
    stream.read_exact(&mut length)?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message)?;
    Ok(message)
}

fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let length = u16::try_from(message.len()).map_err(std::io::Error::other)?;
    stream.write_all(&length.to_be_bytes())?;
    stream.write_all(message)
}

/// "No such name", for a question nobody can answer.
fn nxdomain(question: &Message) -> Message {
    let mut reply = Message::error_msg(
        question.metadata.id,
        question.metadata.op_code,
        ResponseCode::NXDomain,
    );
    reply.metadata.message_type = MessageType::Response;
    reply.add_queries(question.queries.iter().cloned());
    reply
}

/// The nameservers of the host's /etc/resolv.conf, on port 53.
pub fn host_resolvers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|line| line.strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

fn serve(socket: &UdpSocket, names: &dyn Answers, upstream: &[SocketAddr], stop: &AtomicBool) {
    let mut buffer = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((length, client)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        let Ok(question) = Message::from_vec(&buffer[..length]) else {
            continue;
        };
        let client_ip = match client.ip() {
            std::net::IpAddr::V4(ip) => ip,
            std::net::IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        match names.answer(&question, client_ip) {
            Some(reply) => {
                // Too long for the client's UDP: truncated, so it asks again over TCP.
                let bytes = reply.to_vec().ok().map(|bytes| {
                    if bytes.len() > usize::from(question.max_payload()) {
                        reply.truncate().to_vec().unwrap_or(bytes)
                    } else {
                        bytes
                    }
                });
                if let Some(bytes) = bytes {
                    let _ = socket.send_to(&bytes, client);
                }
            }
            None => forward(socket, &buffer[..length], client, &question, upstream),
        }
    }
}

/// The answer from `names` to `client`, or None when the question is not about one of
/// the names it is answered.
fn answer(question: &Message, names: &Names, client: Ipv4Addr) -> Option<Message> {
    let query = question.queries.first()?;
    let name = asked_name(query);
    let addresses = names.get(&name, client)?;
    let mut reply = reply_to(question, query);
    // Other record types of a known name get no records and no error, so resolvers
    // asking for A and AAAA together take the A answer.
    if matches!(query.query_type(), RecordType::A | RecordType::ANY) {
        for address in addresses {
            reply.add_answer(Record::from_rdata(
                query.name().clone(),
                TTL,
                RData::A(A(address)),
            ));
        }
    }
    Some(reply)
}

/// Relays a question to the first upstream that answers, on a thread of its own; with
/// none, the client hears "no such name" at once.
fn forward(
    socket: &UdpSocket,
    request: &[u8],
    client: SocketAddr,
    question: &Message,
    upstream: &[SocketAddr],
) {
    let (Ok(reply_socket), false) = (socket.try_clone(), upstream.is_empty()) else {
        if let Ok(bytes) = nxdomain(question).to_vec() {
            let _ = socket.send_to(&bytes, client);
        }
        return;
    };
    let request = request.to_vec();
    let upstream = upstream.to_vec();
    std::thread::spawn(move || {
        for server in upstream {
            let bind: SocketAddr = if server.is_ipv4() {
                "0.0.0.0:0".parse().unwrap_or(server)
            } else {
                "[::]:0".parse().unwrap_or(server)
            };
            let Ok(outbound) = UdpSocket::bind(bind) else {
                continue;
            };
            let _ = outbound.set_read_timeout(Some(UPSTREAM_TIMEOUT));
            let mut buffer = [0u8; 4096];
            if outbound.send_to(&request, server).is_ok()
                && let Ok(length) = outbound.recv(&mut buffer)
            {
                let _ = reply_socket.send_to(&buffer[..length], client);
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{OpCode, Query};
    use hickory_proto::rr::Name;

    fn question(name: &str, kind: RecordType) -> Message {
        let mut message = Message::new(7, MessageType::Query, OpCode::Query);
        message.add_query(Query::query(Name::from_ascii(name).expect("a name"), kind));
        message
    }

    #[test]
    fn known_names_answer_whatever_their_case() {
        let names = Names::default();
        names.set(HashMap::from([(
            "Web".to_string(),
            vec![Ipv4Addr::new(10, 0, 0, 2)],
        )]));
        let anyone = Ipv4Addr::new(10, 0, 0, 9);
        let reply = answer(&question("web.", RecordType::A), &names, anyone).expect("an answer");
        assert_eq!(reply.metadata.id, 7);
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(
            reply.answers[0].data,
            RData::A(A(Ipv4Addr::new(10, 0, 0, 2)))
        );
        let aaaa = answer(&question("WEB", RecordType::AAAA), &names, anyone).expect("an answer");
        assert!(aaaa.answers.is_empty());
        assert!(answer(&question("db.", RecordType::A), &names, anyone).is_none());
    }

    #[test]
    fn a_client_s_own_names_answer_it_alone() {
        let names = Names::default();
        let (web, db) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 1, 0, 3));
        let on_both = Ipv4Addr::new(10, 0, 0, 4);
        names.set_with_clients(
            HashMap::from([("web".to_string(), vec![web])]),
            HashMap::from([(
                on_both,
                HashMap::from([("DB".to_string(), vec![db]), ("web".to_string(), vec![db])]),
            )]),
        );
        let reply = answer(&question("db.", RecordType::A), &names, on_both).expect("an answer");
        assert_eq!(reply.answers[0].data, RData::A(A(db)));
        // The network's own names come first.
        let reply = answer(&question("web.", RecordType::A), &names, on_both).expect("an answer");
        assert_eq!(reply.answers[0].data, RData::A(A(web)));
        let other = Ipv4Addr::new(10, 0, 0, 5);
        assert!(answer(&question("db.", RecordType::A), &names, other).is_none());
    }
}
