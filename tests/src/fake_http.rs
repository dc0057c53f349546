//! A scripted HTTP server on loopback, standing in for STS, the ECS credentials endpoint and EC2
//! instance metadata. It records every request so tests can check what was sent.

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// The request head, lowercased, for header checks.
    pub head: String,
    pub body: String,
}

type Handler = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

/// The server; it answers every request with `handler`'s status and body.
#[derive(Debug)]
pub struct FakeHttp {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeHttp {
    pub fn start(handler: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake server");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some((method, target, head, body)) = crate::proxy::read_request(&mut stream) else { continue };
                let request = Seen {
                    method,
                    target,
                    head: String::from_utf8_lossy(&head).to_ascii_lowercase(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let (status, answer) = handler(&request);
                log.lock().unwrap().push(request);
                let _ = write!(stream, "HTTP/1.1 {status} Fake\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}", answer.len());
            }
        });
        Self { port, seen }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}
