//! Inbound S2S driver: accept, optional direct TLS, run the [`InboundStream`] state machine, upgrade
//! on STARTTLS, and hand checked stanzas to the router.

use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use tracing::{debug, info};

use super::context::{take_slot, EdgeContext, Slot};
use super::outbound::verify_key;
use super::pump::{self, IdleRelease, Wake};
use super::route::route_inbound;
use super::upgrade;
use crate::xmpp::error::{StanzaCondition, StreamCondition};
use crate::xmpp::stream::inbound::{InboundEvent, InboundStream};
use crate::xmpp::stream::outbound::VerifyRequest;
use crate::xmpp::stream::wire;

/// Answers from the dialback verification tasks.
pub struct Verified {
    originating: String,
    receiving: String,
    answer: Result<bool, StanzaCondition>,
}

/// Serves one accepted connection until it closes.
pub async fn serve(ctx: Rc<EdgeContext>, tcp: TcpStream, direct_tls: bool) {
    let _ = tcp.set_nodelay(true);
    let Some(_slot) = take_slot(&ctx.counters.connections, ctx.config.limits.connections) else {
        refuse(
            tcp,
            StreamCondition::ResourceConstraint,
            "connection limit reached",
        )
        .await;
        return;
    };
    let (tx, rx) = local_channel::new_bounded::<Verified>(8);
    let tx = Rc::new(tx);
    let now = Instant::now();
    let mut partner_slot = None;
    if direct_tls {
        let Ok((tls, chain)) = upgrade::accept(ctx.tls_direct.clone(), tcp).await else {
            return;
        };
        let mut session = InboundStream::new(ctx.phase_limits(), ctx.timeouts(), true, chain, now);
        let _ = drive(&ctx, tls, &mut session, &tx, &rx, &mut partner_slot).await;
    } else {
        let mut session =
            InboundStream::new(ctx.phase_limits(), ctx.timeouts(), false, Vec::new(), now);
        if let Some(tcp) = drive(&ctx, tcp, &mut session, &tx, &rx, &mut partner_slot).await {
            let Ok((tls, chain)) = upgrade::accept(ctx.tls_starttls.clone(), tcp).await else {
                return;
            };
            session.tls_established(chain, Instant::now());
            let _ = drive(&ctx, tls, &mut session, &tx, &rx, &mut partner_slot).await;
        }
    }
}

async fn refuse(mut tcp: TcpStream, cond: StreamCondition, text: &str) {
    let mut out = Vec::new();
    wire::stream_header(&mut out, None, None, Some(&wire::new_stream_id()));
    wire::stream_error(&mut out, cond, Some(text));
    let _ = pump::write_all(&mut tcp, &out).await;
}

/// Runs the session until it closes (`None`) or asks for TLS (`Some(stream)`).
async fn drive<S>(
    ctx: &Rc<EdgeContext>,
    mut stream: S,
    session: &mut InboundStream,
    tx: &Rc<LocalSender<Verified>>,
    rx: &LocalReceiver<Verified>,
    partner_slot: &mut Option<Slot>,
) -> Option<S>
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    let mut idle = IdleRelease::new(Instant::now());
    loop {
        let mut start_tls = false;
        let mut closed = false;
        while let Some(ev) = session.poll_event() {
            match ev {
                InboundEvent::StartTls => start_tls = true,
                InboundEvent::PeerNamed(domain) => {
                    // Counted under the partner's primary domain, so additional domains share it.
                    let (key, limit) = match ctx.config.policy_for(&domain) {
                        Some(p) => (p.domain, p.connection_limit),
                        None => (domain, 0),
                    };
                    match take_slot(&ctx.counters.partner(&key), limit) {
                        Some(s) => *partner_slot = Some(s),
                        None => session.close_with(
                            StreamCondition::PolicyViolation,
                            Some("connection limit for this partner reached"),
                        ),
                    }
                }
                InboundEvent::Authenticated { domain, method } => {
                    info!(%domain, method = method.as_str(), "inbound stream authenticated");
                }
                InboundEvent::VerifyKey {
                    originating,
                    receiving,
                    stream_id,
                    key,
                } => {
                    let ctx2 = ctx.clone();
                    let tx = tx.clone();
                    glommio::spawn_local(async move {
                        let req = VerifyRequest {
                            originating: originating.clone(),
                            receiving: receiving.clone(),
                            stream_id,
                            key,
                        };
                        let answer = verify_key(&ctx2, req).await;
                        let _ = tx
                            .send(Verified {
                                originating,
                                receiving,
                                answer,
                            })
                            .await;
                    })
                    .detach();
                }
                InboundEvent::Stanza(s) => route_inbound(ctx, s).await,
                InboundEvent::Closed(reason) => {
                    debug!(?reason, "inbound stream closed");
                    closed = true;
                }
            }
        }
        session.take_output(&mut out, Instant::now());
        if !out.is_empty() && pump::write_all(&mut stream, &out).await.is_err() {
            return None;
        }
        if start_tls {
            return Some(stream);
        }
        if closed {
            let _ = futures_lite::AsyncWriteExt::close(&mut stream).await;
            return None;
        }
        if ctx.shutting_down() {
            session.close();
            continue;
        }
        let deadline = [
            session
                .poll_timeout()
                .map(|d| d.min(Instant::now() + Duration::from_millis(500))),
            idle.deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        match pump::wait(&mut stream, &ctx.read_buf, deadline, Some(rx)).await {
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) => return None,
            Wake::Read(Ok(n)) => {
                let now = Instant::now();
                idle.on_activity(now);
                ctx.read_buf
                    .with(n, |bytes| session.handle_bytes(bytes, now, &**ctx));
            }
            Wake::Timer => {
                let now = Instant::now();
                if idle.due(now) {
                    session.release_buffers();
                    out = Vec::new();
                }
                session.handle_timeout(now);
            }
            Wake::Control(Some(v)) => {
                session.dialback_verified(&v.originating, &v.receiving, v.answer)
            }
            Wake::Control(None) => {}
        }
    }
}
