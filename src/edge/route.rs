//! Routing between streams and shards: inbound stanzas to the shard owning their user, replies to
//! the shard owning the outbound stream of their domain.

use std::rc::Rc;

use glommio::channels::shared_channel::ConnectedReceiver;

use super::context::{AckTo, Delivery, EdgeContext};
use super::outbound;
use crate::runtime::mesh::MeshMsg;
use crate::runtime::placement::{domain_shard, user_shard};
use crate::xml::{Stanza, StanzaKind};
use crate::xmpp::answer::{answer_domain, answer_user, Reply};
use crate::xmpp::error::StanzaCondition;
use crate::xmpp::jid::bare_of;

/// Routes a checked inbound stanza (its `to` is one of our domains).
pub async fn route_inbound(ctx: &Rc<EdgeContext>, s: Stanza) {
    ctx.counters
        .stanzas_in
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let owner = {
        let Some(to) = s.to() else { return };
        // `to` was parsed and checked by the stream; only its bare part is needed here.
        let (bare, has_local) = bare_of(&to);
        has_local.then(|| user_shard(bare, ctx.shards))
    };
    match owner {
        None => {
            if let Some(r) = answer_domain(&s) {
                send_reply(ctx, r).await;
            }
        }
        Some(shard) if shard == ctx.shard => handle_user(ctx, s).await,
        Some(shard) => {
            ctx.mesh_send(shard, MeshMsg::ToUser(s)).await;
        }
    }
}

/// A stanza for a user this shard owns: messages and presence go to the SIP gateway when one is
/// configured; everything else (and everything without a gateway) is answered
/// `service-unavailable`.
pub async fn handle_user(ctx: &Rc<EdgeContext>, s: Stanza) {
    if let Some(gw) = ctx.gateway.get().cloned() {
        match s.kind() {
            StanzaKind::Message if s.stanza_type().as_deref() != Some("error") => {
                return gw.send(ctx, &s).await;
            }
            StanzaKind::Presence => return gw.on_xmpp_presence(ctx, &s).await,
            _ => {}
        }
    }
    if let Some(r) = answer_user(&s) {
        send_reply(ctx, r).await;
    }
}

/// Sends a reply over the outbound stream (local domain → remote domain) on the owning shard.
pub async fn send_reply(ctx: &Rc<EdgeContext>, r: Reply) {
    let shard = domain_shard(&r.to_domain, ctx.shards);
    if shard == ctx.shard {
        outbound::enqueue(ctx, r.from_domain, r.to_domain, r.bytes, None).await;
    } else {
        ctx.mesh_send(
            shard,
            MeshMsg::ToRemote {
                local: r.from_domain,
                domain: r.to_domain,
                bytes: r.bytes,
                ack: None,
            },
        )
        .await;
    }
}

/// Sends a stanza to a partner and reports to `ack` once it was handed to an authenticated
/// outbound stream (or why not). The stanza goes to the shard owning that stream.
pub async fn send_acked(ctx: &Rc<EdgeContext>, r: Reply, ack: AckTo) {
    let shard = domain_shard(&r.to_domain, ctx.shards);
    if shard == ctx.shard {
        outbound::enqueue(ctx, r.from_domain, r.to_domain, r.bytes, Some(ack)).await;
    } else {
        let sent = ctx
            .mesh_send(
                shard,
                MeshMsg::ToRemote {
                    local: r.from_domain,
                    domain: r.to_domain,
                    bytes: r.bytes,
                    ack: Some(ack),
                },
            )
            .await;
        if !sent {
            ctx.ack(
                Some(ack),
                Delivery::Failed(StanzaCondition::ServiceUnavailable),
            );
        }
    }
}

/// Serves the mesh queue from one other shard, draining it in batches as messages arrive.
pub async fn serve_mesh(ctx: Rc<EdgeContext>, rx: ConnectedReceiver<MeshMsg>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            MeshMsg::ToUser(s) => handle_user(&ctx, s).await,
            MeshMsg::ToRemote {
                local,
                domain,
                bytes,
                ack,
            } => outbound::enqueue(&ctx, local, domain, bytes, ack).await,
            MeshMsg::SipRequest {
                msg,
                reply_shard,
                origin,
                key,
            } => {
                let Some(gw) = ctx.gateway.get().cloned() else {
                    // This shard's gateway failed to start: still answer.
                    let resp = crate::sip::transaction::response_to(
                        &msg,
                        500,
                        "Server Internal Error",
                        None,
                    )
                    .and_then(|b| b.finish());
                    if let Ok(bytes) = resp {
                        ctx.mesh_post(reply_shard, MeshMsg::SipResponse { origin, key, bytes });
                    }
                    continue;
                };
                let answer = gw.on_sip_request(&ctx, &msg).await;
                if let Some(bytes) = answer.response {
                    ctx.mesh_post(reply_shard, MeshMsg::SipResponse { origin, key, bytes });
                }
                gw.send_later(&ctx, answer.later).await;
            }
            MeshMsg::SipResponse { origin, key, bytes } => {
                if let Some(ingress) = ctx.sip_ingress.get().cloned() {
                    ingress.respond(origin, &key, bytes).await;
                }
            }
            MeshMsg::Ack { token, delivery } => {
                if let Some(ingress) = ctx.sip_ingress.get() {
                    ingress.on_delivery(token, delivery);
                }
            }
        }
    }
}
