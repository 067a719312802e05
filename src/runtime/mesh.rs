//! The queue mesh: a bounded SPSC channel from every shard to every other shard.
//!
//! Built on glommio's shared channels (lock-free ring plus an eventfd wake-up). A full queue makes
//! the producer's `send` wait, which stops the producing stream from reading its socket
//! (backpressure): nothing is dropped. The crossbeam alternative is measured in `benches/mesh.rs`.

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

use crate::xml::Stanza;

/// What crosses between shards.
#[derive(Debug)]
pub enum MeshMsg {
    /// A checked inbound stanza for a user owned by the receiving shard.
    ToUser(Stanza),
    /// A serialized stanza for the outbound stream to `domain`, owned by the receiving shard.
    ToRemote {
        /// Our domain sending it (lowercase).
        local: String,
        /// Remote domain (lowercase).
        domain: String,
        /// The stanza, serialized by us.
        bytes: Vec<u8>,
        /// Who waits to learn whether it was sent (SIP → XMPP messages).
        ack: Option<crate::edge::context::AckTo>,
    },
    /// A SUBSCRIBE or NOTIFY from the internal side for a user the receiving shard owns; the
    /// response goes back to `reply_shard` as [`MeshMsg::SipResponse`].
    SipRequest {
        /// The request (validated; boxed: presence requests are rare next to stanzas, which
        /// should not pay for their size in every queue slot).
        msg: Box<crate::sip::SipMessage>,
        /// The shard holding the flow it arrived on.
        reply_shard: usize,
        /// That flow.
        origin: crate::gateway::inbound::Origin,
        /// Its server transaction there.
        key: crate::sip::transaction::TxKey,
    },
    /// The response to a [`MeshMsg::SipRequest`].
    SipResponse {
        /// The flow to write it on.
        origin: crate::gateway::inbound::Origin,
        /// The server transaction it answers.
        key: crate::sip::transaction::TxKey,
        /// The serialized response.
        bytes: Vec<u8>,
    },
    /// A request of a dialog owned by shard `owner` (a NOTIFY) to write on this shard's
    /// listener connection `conn`; when it is closed the bytes go back as
    /// [`MeshMsg::SipFlowGone`].
    SipOnFlow {
        /// The connection on the receiving shard.
        conn: crate::sip::transport::ConnId,
        /// The serialized request.
        bytes: Vec<u8>,
        /// The shard holding its client transaction.
        owner: usize,
    },
    /// A [`MeshMsg::SipOnFlow`] that could not be written: its connection is closed.
    SipFlowGone {
        /// The closed connection.
        flow: crate::gateway::inbound::ListenerFlow,
        /// The request, to send over the next hop instead.
        bytes: Vec<u8>,
    },
    /// A response that arrived on a listener connection for a transaction of the receiving
    /// shard (boxed as [`MeshMsg::SipRequest`] is).
    SipFlowResponse(Box<crate::sip::SipMessage>),
    /// The fate of a stanza this shard asked another one to send.
    Ack {
        /// The token from [`crate::edge::context::AckTo`].
        token: u64,
        /// What happened to it.
        delivery: crate::edge::context::Delivery,
    },
}

/// The not-yet-connected ends of the mesh for one shard (Send: built on the main thread).
pub struct MeshPlan {
    /// `senders[j]`: to shard j (None for ourselves).
    pub senders: Vec<Option<SharedSender<MeshMsg>>>,
    /// `receivers[i]`: from shard i (None for ourselves).
    pub receivers: Vec<Option<SharedReceiver<MeshMsg>>>,
}

/// Builds the full mesh for `n` shards with `capacity` messages per queue.
pub fn plan(n: usize, capacity: usize) -> Vec<MeshPlan> {
    let mut plans: Vec<MeshPlan> = (0..n)
        .map(|_| MeshPlan {
            senders: (0..n).map(|_| None).collect(),
            receivers: (0..n).map(|_| None).collect(),
        })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from != to {
                let (tx, rx) = shared_channel::new_bounded(capacity);
                plans[from].senders[to] = Some(tx);
                plans[to].receivers[from] = Some(rx);
            }
        }
    }
    plans
}

/// The connected ends, used inside a shard's executor.
pub struct Mesh {
    /// `senders[j]`: to shard j.
    pub senders: Vec<Option<ConnectedSender<MeshMsg>>>,
    /// From each other shard.
    pub receivers: Vec<ConnectedReceiver<MeshMsg>>,
}

impl MeshPlan {
    /// Connects every end (must run inside the shard's executor; completes when peers connect).
    pub async fn connect(self) -> Mesh {
        // Every end waits for its peer shard to connect the other end, so all ends are connected
        // concurrently: sequential connects would deadlock shards waiting on each other.
        let senders: Vec<_> = self
            .senders
            .into_iter()
            .map(|s| s.map(|s| glommio::spawn_local(s.connect())))
            .collect();
        let receivers: Vec<_> = self
            .receivers
            .into_iter()
            .flatten()
            .map(|r| glommio::spawn_local(r.connect()))
            .collect();
        let mut connected_senders = Vec::with_capacity(senders.len());
        for s in senders {
            connected_senders.push(match s {
                Some(task) => Some(task.await),
                None => None,
            });
        }
        let mut connected_receivers = Vec::with_capacity(receivers.len());
        for r in receivers {
            connected_receivers.push(r.await);
        }
        Mesh {
            senders: connected_senders,
            receivers: connected_receivers,
        }
    }
}
