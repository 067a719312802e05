//! The demo's embedded federated partner: a blocking S2S peer on std sockets and rustls
//! ([`crate::sim::s2s_partner`] for the stream dialogues), playing
//! `partner.test` in both directions (its stream to the router, and the router's stream to it).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::edge::context::SharedCounters;
use crate::edge::tls::{self, Alpn, TlsIdentity};
use crate::sim::s2s_partner::{self, Dialect, Established, S2sError};
use crate::sim::SipPool;

/// What to run.
pub struct PartnerRun<'a> {
    /// The router's STARTTLS listener.
    pub router: SocketAddr,
    /// The router's SIP listener (the pool sends its MESSAGEs and SUBSCRIBE there).
    pub router_sip: SocketAddr,
    /// Where the router's outbound stream to `partner.test` arrives.
    pub listener: TcpListener,
    /// partner.test's certificate and key.
    pub identity: TlsIdentity,
    /// Pings to send.
    pub pings: usize,
    /// Messages partner → SIP pool.
    pub messages: usize,
    /// Messages SIP pool → partner.
    pub sip_messages: usize,
    /// The embedded SIP pool.
    pub pool: &'a SipPool,
    /// The router's counters (what the SIP side accepted).
    pub counters: &'a SharedCounters,
    /// Give up waiting for answers at this instant.
    pub deadline: Instant,
}

/// What happened.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Pings sent.
    pub pings: usize,
    /// Pings answered with a result.
    pub pings_answered: usize,
    /// Messages partner → pool sent.
    pub messages: usize,
    /// Of those, bounced back to the partner, by condition.
    pub messages_bounced: std::collections::BTreeMap<String, usize>,
    /// Of those, accepted by the pool (router counter: SIP 2xx).
    pub messages_delivered: usize,
    /// Messages pool → partner: the pool's report.
    pub sip_report: Option<crate::sim::SendReport>,
    /// Messages pool → partner that arrived at the partner.
    pub sip_messages_received: usize,
    /// Presence steps that happened, in order (for the report).
    pub presence: Vec<String>,
    /// Whether both subscriptions completed (subscribed + presence each way).
    pub presence_ok: bool,
    /// Answers of any other kind.
    pub unexpected: Vec<String>,
    /// Round-trip latency per answered ping, microseconds.
    pub latencies_us: Vec<u64>,
    /// From the first send to the last outcome of the burst.
    pub elapsed: Duration,
    /// (request, what came of it) pairs to show.
    pub samples: Vec<(String, String)>,
}

impl Outcome {
    /// Messages partner → pool with no outcome yet.
    pub fn messages_missing(&self) -> usize {
        let bounced: usize = self.messages_bounced.values().sum();
        self.messages
            .saturating_sub(bounced + self.messages_delivered)
    }
}

/// The partner's side of one authenticated stream, used by one thread.
struct Conn {
    est: Established,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

enum Got {
    Header,
    Element(String),
    Closed,
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The demo partner's headers declare dialback support, as a typical XMPP server's do.
const DIALECT: Dialect = Dialect { dialback_ns: true };

impl Conn {
    fn new(est: Established) -> Conn {
        Conn {
            est,
            buf: vec![0; 16384],
            scratch: Vec::new(),
        }
    }

    fn send(&mut self, s: &str) -> Res<()> {
        Ok(self.est.send(s, &mut self.scratch)?)
    }

    fn next(&mut self, deadline: Instant) -> Res<Got> {
        match self.est.next(&mut self.buf, deadline) {
            Ok(s2s_partner::Got::Header) => Ok(Got::Header),
            Ok(s2s_partner::Got::Element(s)) => Ok(Got::Element(
                String::from_utf8_lossy(s.as_bytes()).into_owned(),
            )),
            Err(S2sError::Closed) => Ok(Got::Closed),
            Err(S2sError::Timeout(_)) => Err("timed out waiting for the router".into()),
            Err(e) => Err(e.into()),
        }
    }
}

/// partner.test → corp.test: STARTTLS, SASL EXTERNAL, restart.
fn open_to_router(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    deadline: Instant,
) -> Res<Conn> {
    let est = s2s_partner::connect_with(addr, "partner.test", "corp.test", cfg, deadline, DIALECT)?;
    Ok(Conn::new(est))
}

/// corp.test → partner.test: we answer as the receiving server.
fn accept_from_router(
    l: &TcpListener,
    cfg: Arc<rustls::ServerConfig>,
    deadline: Instant,
) -> Res<Conn> {
    l.set_nonblocking(false)?;
    let (tcp, _) = l.accept()?;
    let est = s2s_partner::accept_with(
        tcp,
        "partner.test",
        "corp.test",
        cfg,
        "demo",
        deadline,
        DIALECT,
    )?;
    Ok(Conn::new(est))
}

fn id_of(e: &str) -> Option<&str> {
    let i = e.find(" id='")? + 5;
    Some(&e[i..i + e[i..].find('\'')?])
}

fn condition_of(e: &str) -> String {
    const NS: &str = " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'";
    e.find(NS)
        .and_then(|end| {
            let open = e[..end].rfind('<')?;
            Some(e[open + 1..end].to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Runs the exchange: a burst of pings and messages to the pool, the pool's messages back, then
/// a presence subscription each way.
pub fn run(p: PartnerRun<'_>) -> Res<Outcome> {
    let client_cfg = tls::client_config(&p.identity, Alpn::None)?;
    let server_cfg = tls::server_config(&p.identity, &[], Alpn::None)?;
    let total = p.pings + p.messages;
    let deadline = p.deadline;
    let listener = p.listener;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, String)>();
    // The router opens its stream back to us when it has the first stanza for us.
    let stop_rx = stop.clone();
    let receiver = std::thread::spawn(move || -> Res<()> {
        let mut c = accept_from_router(&listener, server_cfg, deadline)?;
        while !stop_rx.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            match c.next(Instant::now() + Duration::from_millis(200)) {
                Ok(Got::Element(e)) => {
                    if tx.send((Instant::now(), e)).is_err() {
                        break;
                    }
                }
                Ok(_) => break,
                Err(_) => {} // read timeout: look at the stop flag
            }
        }
        let _ = c.send("</stream:stream>");
        Ok(())
    });
    let mut c = open_to_router(p.router, client_cfg, deadline)?;
    let mut o = Outcome {
        pings: p.pings,
        messages: p.messages,
        ..Outcome::default()
    };
    let mut sent_at = Vec::with_capacity(total);
    let mut batch = String::with_capacity(64 * 256);
    let mut samples_req = Vec::new();
    let start = Instant::now();
    for i in 0..total {
        let s = if i % 2 == 0 && i / 2 < p.pings || i / 2 >= p.messages {
            format!("<iq type='get' from='alice@partner.test/demo' to='corp.test' id='p{i}'><ping xmlns='urn:xmpp:ping'/></iq>")
        } else {
            format!(
                "<message type='chat' from='alice@partner.test/demo' to='user{}@corp.test' id='m{i}' xml:lang='en'>\
                 <body>hello, message {i}</body></message>",
                i % 100
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
    // The pool's messages to the partner run meanwhile, from a thread of their own.
    let mut last = start;
    std::thread::scope(|scope| -> Res<()> {
        let sender = scope.spawn(|| {
            let mut plan =
                crate::sim::SendPlan::new("carol", "sip:alice@partner.test", p.sip_messages as u64);
            plan.window = 64;
            plan.body = "hi alice, SIP message {n}".into();
            p.pool.send_messages(p.router_sip, plan)
        });
        let mut answered = vec![false; total];
        let mut bounced = 0usize;
        let mut partner_done: Option<Instant> = None;
        loop {
            let delivered = p
                .counters
                .messages_delivered
                .load(std::sync::atomic::Ordering::Relaxed) as usize;
            o.messages_delivered = delivered;
            if partner_done.is_none()
                && o.pings_answered == p.pings
                && bounced + delivered >= p.messages
            {
                partner_done = Some(Instant::now());
            }
            // The pool's report arrives with its thread's join, below; stragglers are read there.
            if partner_done.is_some() && sender.is_finished() {
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            let Ok((at, e)) = rx.recv_timeout(Duration::from_millis(50)) else {
                if sender.is_finished() {
                    break; // quiet, and the pool is done: what is missing is counted below
                }
                continue;
            };
            if e.starts_with("<message")
                && e.contains("to='alice@partner.test")
                && !e.contains("type='error'")
            {
                o.sip_messages_received += 1;
                if o.sip_messages_received == 1 {
                    o.samples
                        .push(("SIP MESSAGE from sip:carol@corp.test (pool)".into(), e));
                }
                continue;
            }
            let id = id_of(&e).unwrap_or_default().to_string();
            let idx = id
                .get(1..)
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n < total);
            let Some(idx) = idx else {
                o.unexpected.push(e);
                continue;
            };
            if std::mem::replace(&mut answered[idx], true) {
                o.unexpected.push(e);
                continue;
            }
            last = last.max(at);
            if idx == 0 {
                o.samples.insert(0, (samples_req[0].clone(), e.clone()));
            }
            if id.starts_with('p') && e.contains("type='result'") {
                o.pings_answered += 1;
                o.latencies_us
                    .push(at.duration_since(sent_at[idx]).as_micros() as u64);
            } else if id.starts_with('m') && e.contains("type='error'") {
                bounced += 1;
                *o.messages_bounced.entry(condition_of(&e)).or_default() += 1;
                if o.messages_bounced.values().sum::<usize>() == 1 {
                    o.samples
                        .push((samples_req.get(1).cloned().unwrap_or_default(), e.clone()));
                }
            } else {
                o.unexpected.push(e);
            }
        }
        o.sip_report = Some(sender.join().map_err(|_| "pool sender panicked")??);
        // Stragglers of the SIP burst.
        let want = o
            .sip_report
            .as_ref()
            .map_or(0, |r| r.by_status.get(&200).copied().unwrap_or(0) as usize);
        while o.sip_messages_received < want && Instant::now() < deadline {
            if let Ok((_, e)) = rx.recv_timeout(Duration::from_millis(50)) {
                if e.starts_with("<message") {
                    o.sip_messages_received += 1;
                } else {
                    o.unexpected.push(e);
                }
            }
        }
        o.messages_delivered = p
            .counters
            .messages_delivered
            .load(std::sync::atomic::Ordering::Relaxed) as usize;
        o.elapsed = partner_done.unwrap_or(last).max(last).duration_since(start);
        Ok(())
    })?;
    presence(&mut c, &rx, p.pool, p.router_sip, deadline, &mut o)?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = c.send("</stream:stream>");
    receiver.join().map_err(|_| "receiver thread panicked")??;
    Ok(o)
}

/// alice@partner.test subscribes to bob@corp.test (SIP SUBSCRIBE to the pool, whose NOTIFY comes
/// back as `subscribed` + presence); carol@corp.test subscribes to alice (the partner is asked,
/// answers `subscribed` and its presence, which reach the pool as NOTIFYs).
fn presence(
    c: &mut Conn,
    rx: &std::sync::mpsc::Receiver<(Instant, String)>,
    pool: &SipPool,
    router_sip: SocketAddr,
    deadline: Instant,
    o: &mut Outcome,
) -> Res<()> {
    let deadline = (Instant::now() + Duration::from_secs(15)).min(deadline);
    c.send("<presence type='subscribe' from='alice@partner.test' to='bob@corp.test'/>")?;
    o.presence
        .push("→ alice@partner.test subscribes to bob@corp.test".into());
    let (mut subscribed, mut presence_in, mut asked) = (false, false, false);
    std::thread::scope(|scope| -> Res<()> {
        let sub = scope.spawn(|| {
            pool.subscribe(
                router_sip,
                "carol",
                "sip:alice@partner.test",
                600,
                Duration::from_secs(10),
            )
        });
        while !(subscribed && presence_in && asked) && Instant::now() < deadline {
            let Ok((_, e)) = rx.recv_timeout(Duration::from_millis(50)) else {
                continue;
            };
            if !e.starts_with("<presence") {
                o.unexpected.push(e);
                continue;
            }
            if e.contains("from='bob@corp.test'") && e.contains("type='subscribed'") {
                subscribed = true;
                o.presence.push(format!("← {e}"));
            } else if e.contains("from='bob@corp.test'") && !e.contains("type=") {
                presence_in = true;
                o.presence.push(format!("← {e}"));
            } else if e.contains("from='carol@corp.test'") && e.contains("type='subscribe'") {
                asked = true;
                o.presence.push(format!("← {e}"));
                c.send(
                    "<presence type='subscribed' from='alice@partner.test' to='carol@corp.test'/>",
                )?;
                c.send(
                    "<presence from='alice@partner.test/demo' to='carol@corp.test'><show>away</show>\
                     <status xml:lang='en'>In a meeting</status></presence>",
                )?;
                o.presence.push(
                    "→ subscribed, and presence: away, \"In a meeting\" (xml:lang en)".into(),
                );
            } else {
                o.presence.push(format!("← {e}"));
            }
        }
        let report = sub.join().map_err(|_| "pool subscriber panicked")??;
        let open = report
            .notifies
            .iter()
            .any(|n| n.state.starts_with("active") && n.basic.as_deref() == Some("open"));
        o.presence.push(format!(
            "pool: SUBSCRIBE carol → alice answered {:?}; NOTIFYs: {}",
            report.status,
            report
                .notifies
                .iter()
                .map(|n| format!("{} ({})", n.state, n.basic.as_deref().unwrap_or("no PIDF")))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        o.presence_ok = subscribed && presence_in && asked && open;
        Ok(())
    })
}
