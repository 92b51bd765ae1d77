//! SPDY/3.1 as the Kubernetes clients speak it, the server side: the framing
//! kubectl up to 1.30 uses for `exec`, `attach` and `cp`, and every kubectl for
//! `port-forward` (1.31 and later tunnel it through a WebSocket).
//!
//! Only what those clients use is here: the client opens every stream (SYN_STREAM,
//! its kind in a `streamtype` header), the server accepts each at once (SYN_REPLY)
//! and both sides send DATA on it, FIN ending one direction. PINGs are answered;
//! SETTINGS and WINDOW_UPDATE are read and dropped, as the Go implementation the
//! clients use (moby/spdystream) does no flow control either. Header blocks are
//! zlib streams primed with the protocol's dictionary, one per direction for the
//! whole connection.
//!
//! No crate implements SPDY any more (it became HTTP/2), so it is written here; see
//! docs/decisions/0013-pod-streams.md.

use std::collections::HashMap;
use std::sync::Arc;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};

/// The protocol version in every control frame.
const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
/// The FIN flag of DATA, SYN_STREAM and SYN_REPLY frames.
const FIN: u8 = 0x01;
/// RST_STREAM's status for a stream the server will not take.
const REFUSED_STREAM: u32 = 3;
/// The largest frame accepted: kubectl sends at most 32 KiB of data at a time.
const MAX_FRAME: usize = 1 << 20;
/// The largest decompressed header block accepted.
const MAX_HEADERS: usize = 64 * 1024;
/// How much data is sent in one frame.
pub(crate) const CHUNK: usize = 32 * 1024;

/// The words of SPDY/3's header compression dictionary (section 2.6.10.1), each
/// written with its length before it, then [`DICTIONARY_TAIL`] as it is.
const DICTIONARY_WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The dictionary's last part, status codes, phrases, dates and common values.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
    "charset=iso-8859-1,utf-,*,enq=0.",
);

/// The header compression dictionary, 1423 bytes.
fn dictionary() -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1423);
    for word in DICTIONARY_WORDS {
        bytes.extend_from_slice(&(word.len() as u32).to_be_bytes());
        bytes.extend_from_slice(word.as_bytes());
    }
    bytes.extend_from_slice(DICTIONARY_TAIL.as_bytes());
    bytes
}

/// A stream the client opened: its headers, and what it sends on it until its FIN.
pub(crate) struct Stream {
    /// The stream's id.
    pub id: u32,
    /// Its headers, names in lower case.
    pub headers: HashMap<String, String>,
    /// Its data, ending when the client finishes the stream or the connection ends.
    pub data: mpsc::Receiver<Vec<u8>>,
}

impl Stream {
    /// A header's value.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// The sending side of a connection, shared by everything that answers on it.
#[derive(Clone)]
pub(crate) struct Sender(Arc<Mutex<FrameWriter>>);

struct FrameWriter {
    io: Box<dyn AsyncWrite + Send + Unpin>,
    deflate: Compress,
}

impl Sender {
    /// Sends `bytes` on stream `id` (in frames of at most [`CHUNK`]), its last frame
    /// finishing the stream when `fin`.
    pub async fn data(&self, id: u32, bytes: &[u8], fin: bool) -> std::io::Result<()> {
        let mut writer = self.0.lock().await;
        let mut chunks = bytes.chunks(CHUNK).peekable();
        if chunks.peek().is_none() {
            return writer.frame(&data_frame(id, &[], fin)).await;
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            writer.frame(&data_frame(id, chunk, fin && last)).await?;
        }
        Ok(())
    }

    /// Finishes the server's side of stream `id`.
    pub async fn finish(&self, id: u32) -> std::io::Result<()> {
        self.data(id, &[], true).await
    }

    /// Closes the connection.
    pub async fn close(&self) {
        let mut writer = self.0.lock().await;
        let _ = writer.io.shutdown().await;
    }

    async fn control(&self, kind: u16, flags: u8, payload: &[u8]) -> std::io::Result<()> {
        self.0
            .lock()
            .await
            .frame(&control_frame(kind, flags, payload))
            .await
    }

    /// Accepts stream `id` with an empty header block.
    async fn reply(&self, id: u32) -> std::io::Result<()> {
        let mut writer = self.0.lock().await;
        let block = writer.header_block(&[])?;
        let mut payload = id.to_be_bytes().to_vec();
        payload.extend_from_slice(&block);
        writer.frame(&control_frame(SYN_REPLY, 0, &payload)).await
    }
}

impl FrameWriter {
    async fn frame(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }

    /// A compressed header block of `headers`.
    fn header_block(&mut self, headers: &[(&str, &str)]) -> std::io::Result<Vec<u8>> {
        let mut plain = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            for text in [name, value] {
                plain.extend_from_slice(&(text.len() as u32).to_be_bytes());
                plain.extend_from_slice(text.as_bytes());
            }
        }
        let mut block = Vec::with_capacity(plain.len() + 64);
        self.deflate
            .compress_vec(&plain, &mut block, FlushCompress::Sync)
            .map_err(std::io::Error::other)?;
        Ok(block)
    }
}

fn control_frame(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    frame.extend_from_slice(&kind.to_be_bytes());
    frame.push(flags);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    frame.extend_from_slice(payload);
    frame
}

fn data_frame(id: u32, data: &[u8], fin: bool) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + data.len());
    frame.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
    frame.push(if fin { FIN } else { 0 });
    frame.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    frame.extend_from_slice(data);
    frame
}

/// Serves SPDY on `io`: the sender to answer with, and the streams as the client
/// opens them (ending with the connection).
pub(crate) fn serve(
    io: impl AsyncRead + AsyncWrite + Send + 'static,
) -> std::io::Result<(Sender, mpsc::Receiver<Stream>)> {
    let (read, write) = tokio::io::split(io);
    let mut deflate = Compress::new(Compression::best(), true);
    deflate
        .set_dictionary(&dictionary())
        .map_err(std::io::Error::other)?;
    let sender = Sender(Arc::new(Mutex::new(FrameWriter {
        io: Box::new(write),
        deflate,
    })));
    let (streams, incoming) = mpsc::channel(16);
    let reader = Reader {
        io: Box::new(read),
        inflate: Decompress::new(true),
        dictionary: dictionary(),
        sender: sender.clone(),
        open: HashMap::new(),
        streams,
    };
    tokio::spawn(async move {
        if let Err(error) = reader.run().await {
            tracing::debug!(%error, "a SPDY connection ended");
        }
    });
    Ok((sender, incoming))
}

/// The receiving side: frames in, streams and their data out.
struct Reader {
    io: Box<dyn AsyncRead + Send + Unpin>,
    inflate: Decompress,
    dictionary: Vec<u8>,
    sender: Sender,
    /// The data channels of the streams the client has not finished.
    open: HashMap<u32, mpsc::Sender<Vec<u8>>>,
    streams: mpsc::Sender<Stream>,
}

impl Reader {
    async fn run(mut self) -> std::io::Result<()> {
        loop {
            let mut head = [0u8; 8];
            match self.io.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
            let flags = head[4];
            let length = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
            if length > MAX_FRAME {
                return Err(std::io::Error::other(format!(
                    "a SPDY frame of {length} bytes"
                )));
            }
            let mut payload = vec![0u8; length];
            self.io.read_exact(&mut payload).await?;
            if head[0] & 0x80 == 0 {
                let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
                self.data(id, payload, flags & FIN != 0).await;
                continue;
            }
            match u16::from_be_bytes([head[2], head[3]]) {
                SYN_STREAM => self.syn_stream(&payload, flags & FIN != 0).await?,
                RST_STREAM => {
                    self.open.remove(&stream_id(&payload));
                }
                PING => self.sender.control(PING, 0, &payload).await?,
                GOAWAY => return Ok(()),
                // SYN_REPLY (the server opens no streams), SETTINGS, HEADERS,
                // WINDOW_UPDATE: nothing to do.
                _ => {}
            }
        }
    }

    async fn data(&mut self, id: u32, payload: Vec<u8>, fin: bool) {
        if let Some(stream) = self.open.get(&id)
            && !payload.is_empty()
            && stream.send(payload).await.is_err()
        {
            // Its reader is gone: what comes on it is dropped.
            self.open.remove(&id);
        }
        if fin {
            self.open.remove(&id);
        }
    }

    async fn syn_stream(&mut self, payload: &[u8], fin: bool) -> std::io::Result<()> {
        if payload.len() < 10 {
            return Err(std::io::Error::other("a short SYN_STREAM frame"));
        }
        let id = stream_id(payload);
        let headers = self.headers(&payload[10..])?;
        let (data, receiver) = mpsc::channel(64);
        if !fin {
            self.open.insert(id, data);
        }
        let stream = Stream {
            id,
            headers,
            data: receiver,
        };
        if self.streams.send(stream).await.is_err() {
            let mut refusal = id.to_be_bytes().to_vec();
            refusal.extend_from_slice(&REFUSED_STREAM.to_be_bytes());
            return self.sender.control(RST_STREAM, 0, &refusal).await;
        }
        self.sender.reply(id).await
    }

    /// A header block, decompressed and parsed.
    fn headers(&mut self, block: &[u8]) -> std::io::Result<HashMap<String, String>> {
        let mut plain = Vec::with_capacity(block.len() * 4 + 256);
        let mut input = block;
        loop {
            let (before, produced) = (self.inflate.total_in(), plain.len());
            let result = self
                .inflate
                .decompress_vec(input, &mut plain, FlushDecompress::Sync);
            let consumed = (self.inflate.total_in() - before) as usize;
            input = &input[consumed..];
            match result {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&self.dictionary)
                        .map_err(std::io::Error::other)?;
                    continue;
                }
                Err(e) => return Err(std::io::Error::other(e)),
            }
            let full = plain.len() == plain.capacity();
            if input.is_empty() && !full {
                break;
            }
            if consumed == 0 && plain.len() == produced && !full {
                return Err(std::io::Error::other("a truncated SPDY header block"));
            }
            if plain.len() > MAX_HEADERS {
                return Err(std::io::Error::other("a SPDY header block over 64 KiB"));
            }
            plain.reserve(4096);
        }
        parse_headers(&plain).ok_or_else(|| std::io::Error::other("a malformed header block"))
    }
}

fn stream_id(payload: &[u8]) -> u32 {
    payload
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]))
}

/// A header block's names and values (several values joined by NUL are kept whole).
fn parse_headers(plain: &[u8]) -> Option<HashMap<String, String>> {
    let mut rest = plain;
    let take = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        let length = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let bytes = rest.get(4..4 + length)?.to_vec();
        *rest = &rest[4 + length..];
        Some(bytes)
    };
    let count = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    rest = &rest[4..];
    let mut headers = HashMap::new();
    for _ in 0..count {
        let name = take(&mut rest)?;
        let value = take(&mut rest)?;
        headers.insert(
            String::from_utf8_lossy(&name).to_ascii_lowercase(),
            String::from_utf8_lossy(&value).into_owned(),
        );
    }
    Some(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn the_dictionary_is_the_protocols() {
        let dictionary = dictionary();
        assert_eq!(dictionary.len(), 1423);
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&dictionary)),
            "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
        );
    }

    /// A client's SYN_STREAM, compressed as a client compresses.
    fn syn_stream(deflate: &mut Compress, id: u32, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut writer = FrameWriter {
            io: Box::new(tokio::io::sink()),
            deflate: Compress::new(Compression::default(), true),
        };
        std::mem::swap(&mut writer.deflate, deflate);
        let block = writer.header_block(headers).unwrap();
        std::mem::swap(&mut writer.deflate, deflate);
        let mut payload = id.to_be_bytes().to_vec();
        payload.extend_from_slice(&[0; 6]);
        payload.extend_from_slice(&block);
        control_frame(SYN_STREAM, 0, &payload)
    }

    #[tokio::test]
    async fn streams_arrive_with_their_headers_and_data_and_are_answered() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (sender, mut streams) = serve(server).unwrap();
        let (mut from_server, mut to_server) = tokio::io::split(client);
        let mut deflate = Compress::new(Compression::default(), true);
        deflate.set_dictionary(&dictionary()).unwrap();
        for (id, kind) in [(1, "error"), (3, "stdout")] {
            let frame = syn_stream(&mut deflate, id, &[("streamtype", kind), ("port", "80")]);
            to_server.write_all(&frame).await.unwrap();
        }
        to_server
            .write_all(&data_frame(3, b"hi", true))
            .await
            .unwrap();
        let first = streams.recv().await.unwrap();
        assert_eq!((first.id, first.header("streamtype")), (1, "error"));
        let mut second = streams.recv().await.unwrap();
        assert_eq!(
            (second.header("streamtype"), second.header("port")),
            ("stdout", "80")
        );
        assert_eq!(second.data.recv().await.unwrap(), b"hi");
        assert!(second.data.recv().await.is_none(), "FIN ends the data");
        sender.data(3, b"out", true).await.unwrap();
        sender.close().await;
        let mut answer = Vec::new();
        from_server.read_to_end(&mut answer).await.unwrap();
        // Two SYN_REPLYs, then the data frame with FIN.
        assert_eq!(&answer[..4], &[0x80, 3, 0, 2]);
        assert_eq!(
            &answer[answer.len() - 11..],
            &[0, 0, 0, 3, FIN, 0, 0, 3, b'o', b'u', b't']
        );
    }
}
