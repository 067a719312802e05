//! Routing between streams and shards: inbound stanzas to the shard owning their user, replies to
//! the shard owning the outbound stream of their domain.

use std::rc::Rc;

use glommio::channels::shared_channel::ConnectedReceiver;

use super::context::{AckTo, Delivery, EdgeContext};
use super::outbound;
use crate::gateway::inbound::ListenerFlow;
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
        owner_shard(&to, ctx.shards)
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

/// The shard owning the user `to` addresses (its bare JID), or `None` for a domain address.
///
/// Case-insensitive in the localpart and domain, as the presence tables key users (ASCII
/// lowercase): placement hashes the bare JID byte by byte, lowercased, so `Bob@Corp.test/x` and
/// `bob@corp.test` meet on one shard with no lowercased copy made. `to` was parsed and checked
/// by the stream; only its bare part counts.
pub fn owner_shard(to: &str, shards: usize) -> Option<usize> {
    let (bare, has_local) = bare_of(to);
    has_local.then(|| user_shard(bare, shards))
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
    // `runtime.batch` bounds how many queued items one turn handles before the shard's other
    // tasks (its streams) get to run: a burst from another shard cannot starve them.
    let batch = ctx.config.runtime.batch.max(1);
    let mut in_turn = 0usize;
    while let Some(msg) = rx.recv().await {
        in_turn += 1;
        if in_turn >= batch {
            in_turn = 0;
            futures_lite::future::yield_now().await;
        }
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
                let flow = origin.listener_flow(reply_shard);
                let answer = gw.on_sip_request(&ctx, &msg, flow).await;
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
            MeshMsg::SipOnFlow { conn, bytes, owner } => {
                let sent = match ctx.sip_ingress.get().cloned() {
                    Some(ingress) => ingress.send_on_listener(conn, bytes),
                    None => Err(bytes),
                };
                if let Err(bytes) = sent {
                    let flow = ListenerFlow {
                        shard: ctx.shard,
                        conn,
                    };
                    ctx.mesh_post(owner, MeshMsg::SipFlowGone { flow, bytes });
                }
            }
            MeshMsg::SipFlowGone { flow, bytes } => {
                if let Some(gw) = ctx.gateway.get().cloned() {
                    gw.flow_gone(&ctx, flow, bytes).await;
                }
            }
            MeshMsg::SipFlowResponse(m) => {
                if let Some(gw) = ctx.gateway.get().cloned() {
                    gw.on_flow_response(&ctx, &m).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_placement_ignores_case_and_resource() {
        for shards in 1..=16 {
            let want = owner_shard("bob@corp.test", shards);
            assert!(want.is_some_and(|s| s < shards));
            for to in [
                "Bob@corp.test",
                "BOB@CORP.TEST/Home",
                "bob@Corp.Test/x",
                "bOb@corp.test",
            ] {
                assert_eq!(owner_shard(to, shards), want, "{to} on {shards} shards");
            }
        }
    }

    #[test]
    fn domain_addresses_have_no_owner() {
        assert_eq!(owner_shard("corp.test", 4), None);
        assert_eq!(owner_shard("corp.test/res", 4), None);
    }

    #[test]
    fn sip_side_and_xmpp_side_place_a_user_alike() {
        // The SIP ingress places by the mapped From (`user_shard` of its bare JID); the XMPP
        // side by `to`: both must agree whatever the case of either.
        for shards in [2, 3, 8] {
            assert_eq!(
                owner_shard("Alice.Smith@Corp.Test/phone", shards),
                Some(user_shard("alice.smith@corp.test", shards))
            );
        }
    }
}
