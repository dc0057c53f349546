//! A fault-injecting HTTP proxy on loopback, written for the tests. It sits in front of a real S3
//! server and, per request, passes it through or breaks it the way networks and servers break:
//! refuse, lose the answer, delay, stall, drip, throttle, cut, flip a byte, or answer with an
//! injected status.
//!
//! Every connection carries one request (`Connection: close` upstream and down), so each request
//! the client makes is one line in [`FaultProxy::requests`].

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What to do to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Close the connection without answering.
    Refuse,
    /// Pass the request to the server, then close the connection without its answer: the work is
    /// done, and the client never hears of it.
    Lose,
    /// Wait, then pass the request through.
    Delay(Duration),
    /// Send this fraction of the answer's body, then go silent while keeping the connection open.
    Stall { after: f64 },
    /// Send the answer one byte per second.
    Drip,
    /// Send the answer at this many bytes per second, in tenths of a second's worth.
    Throttle { bytes_per_sec: usize },
    /// Send this fraction of the answer's body, then close.
    Cut { after: f64 },
    /// Flip one byte in the middle of the answer's body.
    FlipByte,
    /// Answer with this status and S3 error code without asking the server.
    Status { status: u16, code: String },
    /// Answer 200 with a small HTML page (a captive portal, a misconfigured proxy).
    Html,
    /// Hold the request until the gate opens, then pass it through: orders two clients' requests
    /// without a timed delay.
    Hold(Gate),
}

/// A gate that held requests wait at until a test opens it ([`Fault::Hold`]).
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    /// Lets every held request (and every later one) through.
    pub fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    fn wait(&self) {
        let mut open = self.0.0.lock().unwrap();
        while !*open {
            open = self.0.1.wait(open).unwrap();
        }
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Which requests a rule applies to, and how many times.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Option<&'static str>,
    /// A substring of the request target (path and query).
    pub target_contains: Option<String>,
    pub fault: Fault,
    /// How many matching requests get the fault; `usize::MAX` for all.
    pub times: usize,
}

impl Rule {
    /// `fault` for the next `times` requests with `method` whose target contains `target`.
    pub fn new(method: &'static str, target: &str, fault: Fault, times: usize) -> Self {
        Self { method: Some(method), target_contains: Some(target.to_owned()), fault, times }
    }

    /// `fault` for every request.
    pub fn always(fault: Fault) -> Self {
        Self { method: None, target_contains: None, fault, times: usize::MAX }
    }
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,

    /// Probabilities of refusing and of stalling a request, and the generator's state.
    random: Option<(f64, f64, u64)>,
    log: Vec<String>,
}

/// The proxy; it stops accepting when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stopped: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Proxies 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stopped = Arc::new(AtomicBool::new(false));
        let (accept_state, accept_stopped) = (state.clone(), stopped.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept_stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let (state, stopped) = (accept_state.clone(), accept_stopped.clone());
                std::thread::spawn(move || handle(client, upstream, &state, &stopped));
            }
        });
        Self { port, state, stopped }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Adds a rule; rules are tried in the order added.
    pub fn add(&self, rule: Rule) -> &Self {
        self.state.lock().unwrap().rules.push(rule);
        self
    }

    /// Refuses a fraction of requests and stalls another, chosen by a seeded generator.
    pub fn random_faults(&self, refuse: f64, stall: f64, seed: u64) {
        self.state.lock().unwrap().random = Some((refuse, stall, seed | 1));
    }

    /// Every request seen, as `METHOD target -> fault`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// How many requests matched `method` and contained `target`.
    pub fn count(&self, method: &str, target: &str) -> usize {
        self.requests().iter().filter(|r| r.starts_with(&format!("{method} ")) && r.contains(target)).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn choose(state: &Mutex<State>, method: &str, target: &str) -> Option<Fault> {
    let mut state = state.lock().unwrap();
    let mut chosen = None;
    for rule in state.rules.iter_mut() {
        let matches =
            rule.times > 0 && rule.method.is_none_or(|m| m == method) && rule.target_contains.as_deref().is_none_or(|t| target.contains(t));
        if matches {
            rule.times = rule.times.saturating_sub(1);
            chosen = Some(rule.fault.clone());
            break;
        }
    }
    if chosen.is_none()
        && let Some((refuse, stall, seed)) = state.random.as_mut()
    {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let roll = (*seed % 10_000) as f64 / 10_000.0;
        if roll < *refuse {
            chosen = Some(Fault::Refuse);
        } else if roll < *refuse + *stall {
            chosen = Some(Fault::Stall { after: 0.1 });
        }
    }
    state.log.push(format!("{method} {target} -> {}", chosen.as_ref().map_or("pass".to_string(), |f| format!("{f:?}"))));
    chosen
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request: method, target, head (rewritten with `Connection: close`) and body.
pub(crate) fn read_request(client: &mut TcpStream) -> Option<(String, String, Vec<u8>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end + 4;
        }
        let n = client.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut first = head.lines().next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let n = client.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let head: String = head
        .lines()
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        + "Connection: close\r\n\r\n";
    Some((method, target, head.into_bytes(), body))
}

fn canned(status: u16, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} Injected\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nDate: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        httpdate_now()
    )
    .into_bytes()
}

fn httpdate_now() -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now())
}

fn handle(mut client: TcpStream, upstream: u16, state: &Mutex<State>, stopped: &AtomicBool) {
    let Some((method, target, head, body)) = read_request(&mut client) else { return };
    let fault = choose(state, &method, &target);
    let response = match &fault {
        Some(Fault::Refuse) => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        Some(Fault::Lose) => {
            let _ = forward(upstream, &head, &body);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        Some(Fault::Status { status, code }) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
            );
            let _ = client.write_all(&canned(*status, "application/xml", &xml));
            return;
        }
        Some(Fault::Html) => {
            let html = "<html><head><title>Gateway</title></head><body><h1>Please sign in to the network</h1><p>Your session has expired.</p><p>Contact the administrator.</p></body></html>";
            let _ = client.write_all(&canned(200, "text/html", html));
            return;
        }
        Some(Fault::Delay(delay)) => {
            std::thread::sleep(*delay);
            forward(upstream, &head, &body)
        }
        Some(Fault::Hold(gate)) => {
            gate.wait();
            forward(upstream, &head, &body)
        }
        _ => forward(upstream, &head, &body),
    };
    let Some(mut response) = response else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let body_start = find(&response, b"\r\n\r\n").map_or(response.len(), |i| i + 4);
    let body_len = response.len() - body_start;
    match fault {
        Some(Fault::Stall { after }) => {
            let cut = body_start + (body_len as f64 * after) as usize;
            let _ = client.write_all(&response[..cut]);
            let _ = client.flush();
            for _ in 0..600 {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Some(Fault::Cut { after }) => {
            let cut = body_start + (body_len as f64 * after) as usize;
            let _ = client.write_all(&response[..cut]);
            let _ = client.shutdown(Shutdown::Both);
        }
        Some(Fault::Drip) => {
            for byte in response {
                if stopped.load(Ordering::Relaxed) || client.write_all(&[byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        Some(Fault::Throttle { bytes_per_sec }) => {
            for piece in response.chunks((bytes_per_sec / 10).max(1)) {
                if stopped.load(Ordering::Relaxed) || client.write_all(piece).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Some(Fault::FlipByte) => {
            if body_len > 0 {
                response[body_start + body_len / 2] ^= 0x5a;
            }
            let _ = client.write_all(&response);
        }
        _ => {
            let _ = client.write_all(&response);
        }
    }
}

fn forward(upstream: u16, head: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    server.write_all(head).ok()?;
    server.write_all(body).ok()?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).ok()?;
    Some(response)
}
