//! A loopback HTTP receiver for the tests of notifications and GitHub reporting: it records
//! every request (method, path, headers, body) and answers each with what the test's function
//! says, including never (a receiver that hangs). Dropping it stops its thread.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{} {}: body is not JSON ({e}): {}", self.method, self.path, self.text())
        })
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub(crate) enum Reply {
    /// Status, headers, body.
    With(u16, Vec<(&'static str, String)>, String),
    /// Read the request and never answer.
    Hang,
}

impl Reply {
    pub(crate) fn status(code: u16) -> Self {
        Reply::With(code, Vec::new(), String::new())
    }

    pub(crate) fn json(code: u16, body: serde_json::Value) -> Self {
        Reply::With(code, vec![("content-type", "application/json".into())], body.to_string())
    }
}

type Respond = dyn Fn(&Request, usize) -> Reply + Send + Sync;

pub(crate) struct Receiver {
    pub url: String,
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Answer request number `n` (0-based) with `respond(request, n)`.
    pub(crate) fn start(
        respond: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (requests.clone(), stop.clone());
        let respond: Box<Respond> = Box::new(respond);
        let thread = std::thread::spawn(move || {
            let mut hung = Vec::new();
            // Bounded by `stop`: `Drop` sets it and connects once to wake `accept`.
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let Some(req) = read_request(&mut conn) else { continue };
                let n = {
                    let mut all = r.lock().expect("requests lock");
                    all.push(req.clone());
                    all.len() - 1
                };
                match respond(&req, n) {
                    Reply::Hang => hung.push(conn),
                    Reply::With(code, headers, body) => {
                        let mut head = format!(
                            "HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                            body.len()
                        );
                        for (k, v) in headers {
                            head.push_str(&format!("{k}: {v}\r\n"));
                        }
                        head.push_str("\r\n");
                        let _ = conn.write_all(head.as_bytes());
                        let _ = conn.write_all(body.as_bytes());
                    }
                }
            }
            drop(hung);
        });
        Self { url: format!("http://{addr}"), addr, requests, stop, thread: Some(thread) }
    }

    /// `200 ok` to everything.
    pub(crate) fn ok() -> Self {
        Self::start(|_, _| Reply::With(200, Vec::new(), "ok".into()))
    }

    pub(crate) fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests lock").clone()
    }

    /// Wait until at least `n` requests arrived.
    #[track_caller]
    pub(crate) fn wait_for(&self, n: usize, within: Duration) -> Vec<Request> {
        crate::common::wait_until(&format!("{n} requests at {}", self.url), within, || {
            self.requests.lock().expect("requests lock").len() >= n
        });
        self.requests()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut buf).ok().filter(|&n| n > 0)?;
        data.extend_from_slice(&buf[..n]);
        if data.len() > 1 << 20 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut buf).ok().filter(|&n| n > 0)?;
        body.extend_from_slice(&buf[..n]);
    }
    body.truncate(len);
    Some(Request { method, path, headers, body })
}
