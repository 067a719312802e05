//! The demo's embedded federated partner: a blocking S2S peer on std sockets and rustls, playing
//! `partner.test` in both directions (its stream to the router, and the router's stream to it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConnection, ServerConnection, StreamOwned};

use crate::edge::tls::{self, Alpn, TlsIdentity};
use crate::xml::{Event, Framer, FramerLimits};

const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const SASL_NS: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

/// What to run.
pub struct PartnerRun {
    /// The router's STARTTLS listener.
    pub router: SocketAddr,
    /// Where the router's outbound stream to `partner.test` arrives.
    pub listener: TcpListener,
    /// partner.test's certificate and key.
    pub identity: TlsIdentity,
    /// Pings to send.
    pub pings: usize,
    /// Messages to send.
    pub messages: usize,
    /// Give up waiting for answers at this instant.
    pub deadline: Instant,
}

/// What happened.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Stanzas sent.
    pub sent: usize,
    /// Pings answered with a result.
    pub pings_answered: usize,
    /// Messages bounced with `service-unavailable`.
    pub messages_bounced: usize,
    /// Answers of any other kind.
    pub unexpected: Vec<String>,
    /// Sent but never answered.
    pub missing: usize,
    /// Round-trip latency per answered stanza, microseconds.
    pub latencies_us: Vec<u64>,
    /// From first send to last answer.
    pub elapsed: Duration,
    /// (request, answer) pairs to show.
    pub samples: Vec<(String, String)>,
}

enum Io {
    Plain(TcpStream),
    Client(Box<StreamOwned<ClientConnection, TcpStream>>),
    Server(Box<StreamOwned<ServerConnection, TcpStream>>),
}

struct Conn {
    io: Option<Io>,
    framer: Framer,
}

enum Got {
    Header,
    Element(String),
    Closed,
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

impl Conn {
    fn new(tcp: TcpStream) -> Res<Conn> {
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(Conn {
            io: Some(Io::Plain(tcp)),
            framer: Framer::new(FramerLimits::post_auth()),
        })
    }

    fn send(&mut self, s: &str) -> Res<()> {
        match self.io.as_mut().ok_or("connection gone")? {
            Io::Plain(t) => t.write_all(s.as_bytes())?,
            Io::Client(t) => t.write_all(s.as_bytes())?,
            Io::Server(t) => t.write_all(s.as_bytes())?,
        }
        Ok(())
    }

    fn next(&mut self, deadline: Instant) -> Res<Got> {
        let mut buf = [0u8; 16384];
        loop {
            match self.framer.next_event()? {
                Some(Event::StreamOpen(_)) => return Ok(Got::Header),
                Some(Event::Stanza(s)) => {
                    return Ok(Got::Element(
                        String::from_utf8_lossy(s.as_bytes()).into_owned(),
                    ))
                }
                Some(Event::StreamClose) => return Ok(Got::Closed),
                None => {}
            }
            if Instant::now() > deadline {
                return Err("timed out waiting for the router".into());
            }
            let n = match self.io.as_mut().ok_or("connection gone")? {
                Io::Plain(t) => t.read(&mut buf),
                Io::Client(t) => t.read(&mut buf),
                Io::Server(t) => t.read(&mut buf),
            };
            match n {
                Ok(0) => return Ok(Got::Closed),
                Ok(n) => self.framer.feed(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn expect(&mut self, needle: &str, deadline: Instant) -> Res<String> {
        match self.next(deadline)? {
            Got::Element(e) if e.contains(needle) => Ok(e),
            Got::Element(e) => Err(format!("expected {needle}, got {e}").into()),
            Got::Header => Err(format!("expected {needle}, got a stream header").into()),
            Got::Closed => Err(format!("expected {needle}, stream closed").into()),
        }
    }

    fn expect_header(&mut self, deadline: Instant) -> Res<()> {
        match self.next(deadline)? {
            Got::Header => Ok(()),
            _ => Err("expected a stream header".into()),
        }
    }

    fn tls_client(&mut self, cfg: Arc<rustls::ClientConfig>, name: &str) -> Res<()> {
        let Some(Io::Plain(tcp)) = self.io.take() else {
            return Err("TLS twice".into());
        };
        let mut s = StreamOwned::new(
            ClientConnection::new(
                cfg,
                rustls_pki_types::ServerName::try_from(name.to_string())?,
            )?,
            tcp,
        );
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        self.io = Some(Io::Client(Box::new(s)));
        self.framer.reset();
        Ok(())
    }

    fn tls_server(&mut self, cfg: Arc<rustls::ServerConfig>) -> Res<()> {
        let Some(Io::Plain(tcp)) = self.io.take() else {
            return Err("TLS twice".into());
        };
        let mut s = StreamOwned::new(ServerConnection::new(cfg)?, tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        self.io = Some(Io::Server(Box::new(s)));
        self.framer.reset();
        Ok(())
    }
}

fn header(from: &str, to: &str, id: Option<&str>) -> String {
    let id = id.map(|i| format!(" id='{i}'")).unwrap_or_default();
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback' from='{from}' to='{to}'{id} version='1.0'>"
    )
}

/// partner.test → corp.test: STARTTLS, SASL EXTERNAL, restart.
fn open_to_router(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    deadline: Instant,
) -> Res<Conn> {
    let mut c = Conn::new(TcpStream::connect_timeout(&addr, Duration::from_secs(5))?)?;
    c.send(&header("partner.test", "corp.test", None))?;
    c.expect_header(deadline)?;
    c.expect("starttls", deadline)?;
    c.send(&format!("<starttls xmlns='{TLS_NS}'/>"))?;
    c.expect("proceed", deadline)?;
    c.tls_client(cfg, "corp.test")?;
    c.send(&header("partner.test", "corp.test", None))?;
    c.expect_header(deadline)?;
    c.expect("EXTERNAL", deadline)?;
    c.send(&format!(
        "<auth xmlns='{SASL_NS}' mechanism='EXTERNAL'>=</auth>"
    ))?;
    c.expect("success", deadline)?;
    c.framer.reset();
    c.send(&header("partner.test", "corp.test", None))?;
    c.expect_header(deadline)?;
    c.expect("features", deadline)?;
    Ok(c)
}

/// corp.test → partner.test: we answer as the receiving server.
fn accept_from_router(
    l: &TcpListener,
    cfg: Arc<rustls::ServerConfig>,
    deadline: Instant,
) -> Res<Conn> {
    l.set_nonblocking(false)?;
    let (tcp, _) = l.accept()?;
    let mut c = Conn::new(tcp)?;
    c.expect_header(deadline)?;
    c.send(&header("partner.test", "corp.test", Some("demo-1")))?;
    c.send(&format!(
        "<stream:features><starttls xmlns='{TLS_NS}'><required/></starttls></stream:features>"
    ))?;
    c.expect("starttls", deadline)?;
    c.send(&format!("<proceed xmlns='{TLS_NS}'/>"))?;
    c.tls_server(cfg)?;
    c.expect_header(deadline)?;
    c.send(&header("partner.test", "corp.test", Some("demo-2")))?;
    c.send(&format!(
        "<stream:features><mechanisms xmlns='{SASL_NS}'><mechanism>EXTERNAL</mechanism></mechanisms></stream:features>"
    ))?;
    c.expect("EXTERNAL", deadline)?;
    c.send(&format!("<success xmlns='{SASL_NS}'/>"))?;
    c.framer.reset();
    c.expect_header(deadline)?;
    c.send(&header("partner.test", "corp.test", Some("demo-3")))?;
    c.send("<stream:features/>")?;
    Ok(c)
}

fn id_of(e: &str) -> Option<&str> {
    let i = e.find(" id='")? + 5;
    Some(&e[i..i + e[i..].find('\'')?])
}

/// Runs the exchange.
pub fn run(p: PartnerRun) -> Res<Outcome> {
    let client_cfg = tls::client_config(&p.identity, Alpn::None)?;
    let server_cfg = tls::server_config(&p.identity, &[], Alpn::None)?;
    let total = p.pings + p.messages;
    let deadline = p.deadline;
    let listener = p.listener;
    // The router opens its stream back to us when it has the first answer to send.
    let receiver = std::thread::spawn(move || -> Res<Vec<(String, Instant, String)>> {
        let mut c = accept_from_router(&listener, server_cfg, deadline)?;
        let mut got = Vec::with_capacity(total);
        while got.len() < total && Instant::now() < deadline {
            match c.next(deadline) {
                Ok(Got::Element(e)) => {
                    let id = id_of(&e).unwrap_or_default().to_string();
                    got.push((id, Instant::now(), e));
                }
                Ok(_) => break,
                Err(_) => break,
            }
        }
        let _ = c.send("</stream:stream>");
        Ok(got)
    });
    let mut c = open_to_router(p.router, client_cfg, deadline)?;
    let mut sent_at = Vec::with_capacity(total);
    let mut batch = String::with_capacity(64 * 256);
    let mut samples_req = Vec::new();
    let start = Instant::now();
    for i in 0..total {
        let s = if i % 2 == 0 && i / 2 < p.pings || i / 2 >= p.messages {
            format!("<iq type='get' from='alice@partner.test/demo' to='corp.test' id='p{i}'><ping xmlns='urn:xmpp:ping'/></iq>")
        } else {
            format!(
                "<message type='chat' from='alice@partner.test/demo' to='bob@corp.test' id='m{i}'>\
                 <body>hello bob, message {i}</body></message>"
            )
        };
        if i < 2 {
            samples_req.push(s.clone());
        }
        batch.push_str(&s);
        sent_at.push(Instant::now());
        if batch.len() > 8192 || i + 1 == total {
            c.send(&batch)?;
            batch.clear();
        }
    }
    let answers = receiver.join().map_err(|_| "receiver thread panicked")??;
    let _ = c.send("</stream:stream>");
    let mut o = Outcome {
        sent: total,
        ..Outcome::default()
    };
    let mut answered = vec![false; total];
    let mut last = start;
    for (id, at, e) in &answers {
        let idx = id
            .get(1..)
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n < total);
        let Some(idx) = idx else {
            o.unexpected.push(e.clone());
            continue;
        };
        if std::mem::replace(&mut answered[idx], true) {
            o.unexpected.push(e.clone());
            continue;
        }
        o.latencies_us
            .push(at.duration_since(sent_at[idx]).as_micros() as u64);
        last = last.max(*at);
        if id.starts_with('p') && e.contains("type='result'") {
            o.pings_answered += 1;
        } else if id.starts_with('m') && e.contains("service-unavailable") {
            o.messages_bounced += 1;
        } else {
            o.unexpected.push(e.clone());
        }
        if idx < 2 {
            o.samples.push((samples_req[idx].clone(), e.clone()));
        }
    }
    o.missing = answered.iter().filter(|a| !**a).count();
    o.elapsed = last.duration_since(start);
    Ok(o)
}
