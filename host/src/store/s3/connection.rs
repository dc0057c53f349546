//! The TCP connections S3 requests run on: ureq's own chain (CONNECT proxies, rustls), with a TCP
//! transport that acknowledges what it receives at once (`TCP_QUICKACK` before every read, on Linux).
//!
//! Why: a server that writes a response in several pieces without `TCP_NODELAY` (hyper's default,
//! so s3s-based servers among others) holds its last, short segment until the previous one is
//! acknowledged (Nagle), while the client delays that acknowledgement by 40 ms. Every response body
//! then ends 40 ms late: a tiny restore took 55 ms against s3s-fs and 10 ms against rclone's Go
//! server. Acknowledging at once costs one small packet per read and removes the wait.
//!
//! The transport otherwise does what ureq's TCP transport does: read and write timeouts from the
//! call's [`NextTimeout`], reads interrupted by a signal retried, a pooled connection probed before
//! reuse, and a handle that lets the agent shut the socket down.
//!
//! Failures are described here too: a TLS handshake that meets a server speaking plain HTTP is
//! named as that ([`describe`]), since rustls's own words for it (a "corrupt message of type
//! InvalidContentType") do not say that the endpoint's scheme is wrong.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, RustlsConnector, ShutdownHandle,
    Transport,
};
use ureq::{Error, Timeout};

/// An agent for S3 and credential endpoints built from `config`, on ureq's connector chain with the
/// quick-ack TCP transport.
pub fn agent(config: ureq::config::Config) -> ureq::Agent {
    ureq::Agent::with_parts(config, connector(), ureq::unversioned::resolver::DefaultResolver::default())
}

/// ureq's chain with [`QuickAckConnector`] in place of its TCP connector: a CONNECT proxy (from the
/// configuration or `HTTPS_PROXY`) first, then plain TCP, then TLS for `https`.
fn connector() -> impl Connector {
    ().chain(ConnectProxyConnector::default()).chain(QuickAckConnector).chain(RustlsConnector::default())
}

/// Whether a request failed because its TLS handshake met a server that speaks plain HTTP: rustls
/// reads the server's `HTTP/1.1 400` as a record of no known content type. ureq passes rustls's error
/// on as its own or inside an I/O error, depending on where the handshake stopped.
pub fn answered_in_plain_http(err: &Error) -> bool {
    let tls = match err {
        Error::Rustls(err) => Some(err),
        Error::Io(err) => err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    matches!(tls, Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)))
}

/// A failed request to `authority` in words: ureq's, or for a TLS handshake that met a plain-HTTP
/// server, that and what to write instead.
pub fn describe(err: &Error, authority: &str) -> String {
    if answered_in_plain_http(err) {
        return format!(
            "the server answered in plain HTTP: use http://{authority} instead of https://{authority} (the TLS handshake read: {err})"
        );
    }
    err.to_string()
}

/// Opens the TCP connection unless an earlier connector (a proxy) already did.
#[derive(Debug)]
struct QuickAckConnector;

impl<In: Transport> Connector<In> for QuickAckConnector {
    type Out = Either<In, QuickAckTransport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, Error> {
        if let Some(chained) = chained {
            return Ok(Some(Either::A(chained)));
        }
        let stream = connect_first(&details.addrs, details.timeout)?;
        stream.set_nodelay(details.config.no_delay())?;
        let stream = Arc::new(stream);
        (details.register_shutdown)(Arc::downgrade(&stream) as Weak<dyn ShutdownHandle>)?;
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(QuickAckTransport { stream, buffers })))
    }
}

/// Connects to the first address that answers, each tried with the time left.
fn connect_first(addrs: &[SocketAddr], timeout: NextTimeout) -> Result<TcpStream, Error> {
    let started = Instant::now();
    let mut last = None;
    for addr in addrs {
        let attempt = match timeout.not_zero().map(|d| *d) {
            Some(limit) => TcpStream::connect_timeout(addr, time_left(limit, started).ok_or(Error::Timeout(timeout.reason))?),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(err) => last = Some(io_error(err, timeout.reason)),
        }
    }
    Err(last.unwrap_or_else(|| Error::Io(io::Error::new(io::ErrorKind::ConnectionRefused, "no address to connect to"))))
}

/// A TCP connection that acknowledges at once. The agent holds its stream weakly, to shut it down.
struct QuickAckTransport {
    stream: Arc<TcpStream>,
    buffers: LazyBuffers,
}

impl std::fmt::Debug for QuickAckTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuickAckTransport").field("peer", &self.stream.peer_addr().ok()).finish()
    }
}

/// The limit to apply to one connect, read or write (`None`: no limit), or an error when the call's
/// time is already up.
fn io_timeout(timeout: NextTimeout) -> Result<Option<Duration>, Error> {
    if timeout.after.is_zero() {
        return Err(Error::Timeout(timeout.reason));
    }
    Ok(timeout.not_zero().map(|d| *d))
}

/// What is left of `limit` since `started`, if anything.
fn time_left(limit: Duration, started: Instant) -> Option<Duration> {
    limit.checked_sub(started.elapsed()).filter(|left| !left.is_zero())
}

/// A socket's timeout is ureq's timeout, named with `reason`; other errors stay I/O errors.
fn io_error(err: io::Error, reason: Timeout) -> Error {
    match err.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout(reason),
        _ => Error::Io(err),
    }
}

impl Transport for QuickAckTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = timeout.for_write();
        self.stream.set_write_timeout(io_timeout(timeout)?)?;
        (&*self.stream).write_all(&self.buffers.output()[..amount]).map_err(|e| io_error(e, timeout.reason))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let timeout = timeout.for_read();
        let limit = io_timeout(timeout)?;
        self.stream.set_read_timeout(limit)?;
        quick_ack(&self.stream);
        let started = Instant::now();
        let amount = loop {
            match (&*self.stream).read(self.buffers.input_append_buf()) {
                // A signal: read again with the time left (without a limit, the caller decides).
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {
                    let Some(limit) = limit else { return Err(Error::Io(err)) };
                    self.stream.set_read_timeout(Some(time_left(limit, started).ok_or(Error::Timeout(timeout.reason))?))?;
                }
                result => break result.map_err(|e| io_error(e, timeout.reason))?,
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    /// Open when a non-blocking read finds nothing waiting: a closed connection reads end of file or
    /// an error, and bytes nobody asked for mean the connection cannot be trusted.
    fn is_open(&mut self) -> bool {
        let probe = || -> io::Result<bool> {
            self.stream.set_nonblocking(true)?;
            let open = matches!((&*self.stream).read(&mut [0u8]), Err(err) if err.kind() == io::ErrorKind::WouldBlock);
            self.stream.set_nonblocking(false)?;
            Ok(open)
        };
        probe().unwrap_or(false)
    }
}

/// Asks the kernel to acknowledge the next segments at once. Linux leaves quick-ack mode by itself,
/// so this is set before every read; elsewhere there is nothing to do.
fn quick_ack(stream: &TcpStream) {
    #[cfg(test)]
    tests::QUICK_ACK_READS.with(|reads| reads.set(reads.get() + 1));
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = stream;
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Reads this thread made through [`QuickAckTransport`] (each one sets quick-ack first).
        pub(super) static QUICK_ACK_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// Reads one request's head (up to the blank line) from `socket`.
    fn read_head(socket: &mut TcpStream) {
        let (mut head, mut byte) = (Vec::new(), [0u8]);
        while !head.ends_with(b"\r\n\r\n") {
            socket.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
    }

    /// A response whose last piece comes in a separate write, as hyper sends a body, arrives
    /// through the agent whole, read through the quick-ack transport (not ureq's own); a pooled
    /// connection is reused and one the server closed is not.
    #[test]
    fn requests_run_on_the_quick_ack_transport() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (closed, wait_closed) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            for body in ["first", "second"] {
                read_head(&mut socket);
                let payload = body.repeat(20_000);
                socket.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", payload.len()).as_bytes()).unwrap();
                let (head, tail) = payload.split_at(payload.len() - 7);
                socket.write_all(head.as_bytes()).unwrap();
                socket.write_all(tail.as_bytes()).unwrap();
            }
            drop(socket);
            closed.send(()).unwrap();
            let (mut socket, _) = listener.accept().unwrap();
            read_head(&mut socket);
            socket.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        });
        let agent = agent(ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).build());
        let url = format!("http://127.0.0.1:{port}/");
        assert_eq!(agent.get(&url).call().unwrap().body_mut().read_to_string().unwrap(), "first".repeat(20_000));
        assert_eq!(agent.get(&url).call().unwrap().body_mut().read_to_string().unwrap(), "second".repeat(20_000));
        // The server has closed the pooled connection: the probe sees it, and a new one is opened.
        wait_closed.recv().unwrap();
        assert_eq!(agent.get(&url).call().unwrap().status(), 204);
        server.join().unwrap();
        assert!(QUICK_ACK_READS.with(std::cell::Cell::get) >= 3, "the responses were not read through the quick-ack transport");
    }

    /// Before a read the socket is in quick-ack mode.
    #[cfg(target_os = "linux")]
    #[test]
    fn reads_acknowledge_at_once() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _server = listener.accept().unwrap();
        let socket = socket2::SockRef::from(&client);
        socket.set_tcp_quickack(false).unwrap();
        quick_ack(&client);
        assert!(socket.tcp_quickack().unwrap());
    }

    /// A server that never answers makes the call time out, named as a timeout.
    #[test]
    fn a_silent_server_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = ureq::Agent::config_builder().timeout_recv_response(Some(Duration::from_millis(200))).build();
        let err = agent(config).get(&format!("http://127.0.0.1:{port}/")).call().unwrap_err();
        assert!(matches!(err, Error::Timeout(Timeout::RecvResponse)), "{err:?}");
        drop(listener);
    }

    /// An https request to a server that answers in plain HTTP (as s3s-fs, moto and MinIO do to a
    /// TLS ClientHello) is named as that, with the URL to use; other failures keep ureq's words.
    #[test]
    fn a_plain_http_answer_to_tls_is_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut hello = [0u8; 5];
            socket.read_exact(&mut hello).unwrap();
            socket.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
            hello[0]
        });
        let config = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(30))).build();
        let err = agent(config).get(&format!("https://127.0.0.1:{port}/")).call().unwrap_err();
        assert_eq!(server.join().unwrap(), 0x16, "a TLS handshake record was sent");
        assert!(answered_in_plain_http(&err), "{err:?}");
        let text = describe(&err, &format!("127.0.0.1:{port}"));
        assert!(
            text.starts_with(&format!(
                "the server answered in plain HTTP: use http://127.0.0.1:{port} instead of https://127.0.0.1:{port} ("
            )),
            "{text}"
        );
        assert!(text.contains("InvalidContentType"), "{text}");
        let refused = Error::Io(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
        assert!(!answered_in_plain_http(&refused));
        assert_eq!(describe(&refused, "x"), refused.to_string());
    }

    /// A closed port is a connection error, not a timeout.
    #[test]
    fn a_closed_port_is_refused() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = agent(ureq::Agent::config_builder().build()).get(&format!("http://127.0.0.1:{port}/")).call().unwrap_err();
        assert!(matches!(&err, Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused), "{err:?}");
    }
}
