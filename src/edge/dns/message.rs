//! DNS wire messages: build a query, check a response against it and digest what it says.
//!
//! Pure functions over bytes (hickory-proto does the wire format). A response is only
//! believed when its ID, QR bit and question match the query (RFC 5452 §9.1); anything else
//! is [`Reject::Unrelated`] and the caller keeps waiting for the real answer.

use std::net::IpAddr;

use hickory_proto::error::ProtoError;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

/// Longest CNAME chain followed inside one answer; longer chains are treated as malformed
/// (loops and absurd chains must not cost more than this).
pub const MAX_CNAME_CHAIN: usize = 8;

/// Most records of one kind taken from one answer; the rest are ignored so that a hostile
/// answer cannot make us fan out into thousands of follow-up queries.
pub const MAX_RECORDS: usize = 32;

/// UDP payload size we advertise with EDNS(0): the DNS Flag Day 2020 value, which avoids
/// IP fragmentation on common paths.
pub const EDNS_UDP_PAYLOAD: u16 = 1232;

/// One SRV record (RFC 2782), target kept as a DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share among records of equal priority.
    pub weight: u16,
    /// TCP port on the target.
    pub port: u16,
    /// Target host; the root name "." means "service decidedly not available".
    pub target: Name,
}

/// One NAPTR record (RFC 3403), as RFC 3263 §4.1 uses it: service, flags and replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptrRecord {
    /// Lower is processed first.
    pub order: u16,
    /// Among equal `order`, lower is preferred.
    pub preference: u16,
    /// Flags (e.g. `S`: the replacement is an SRV owner name), as sent.
    pub flags: Vec<u8>,
    /// Service field (e.g. `SIPS+D2T`), as sent.
    pub services: Vec<u8>,
    /// Regular expression; RFC 3263 records leave it empty and use the replacement.
    pub regexp: Vec<u8>,
    /// Next name to look up.
    pub replacement: Name,
}

/// What a response that matched the query says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Digest {
    /// NOERROR with records of the asked type, at the end of any CNAME chain.
    Answer {
        /// The name that owns the records (the query name or the end of its CNAME chain).
        owner: Name,
        /// SRV records (for SRV queries).
        srv: Vec<SrvRecord>,
        /// NAPTR records (for NAPTR queries).
        naptr: Vec<NaptrRecord>,
        /// Addresses (for A/AAAA queries).
        addrs: Vec<IpAddr>,
        /// A/AAAA records from the additional section, with their owner names: SRV target
        /// addresses often come here and save a query.
        additional: Vec<(Name, IpAddr)>,
    },
    /// The CNAME chain in the answer leads to `target` but the answer holds no records for
    /// it: the caller asks again for `target`.
    Alias {
        /// End of the CNAME chain.
        target: Name,
    },
    /// NOERROR and no record of the asked type (NODATA).
    NoData,
    /// NXDOMAIN: the name (or the end of its CNAME chain) does not exist.
    NxDomain,
    /// TC bit set: per RFC 2181 §9 the partial answer is ignored and the query is asked
    /// again over TCP.
    Truncated,
    /// The server failed (SERVFAIL, REFUSED, NOTIMP, FORMERR, ...): try another server.
    ServerFailure(ResponseCode),
}

/// Why a datagram was not accepted as the answer to a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not an answer to this query (wrong ID, not a response, other question): ignore it
    /// and keep waiting; it may be spoofed or a late answer to something else.
    Unrelated,
    /// It claims to answer this query but breaks the protocol.
    Malformed(&'static str),
}

/// Builds a recursive query (RD set, class IN, EDNS(0) with a 1232-byte payload) for
/// `name`/`rtype` with message ID `id`.
pub fn build_query(id: u16, name: &Name, rtype: RecordType) -> Result<Vec<u8>, ProtoError> {
    let mut msg = Message::new();
    let mut query = Query::query(name.clone(), rtype);
    query.set_query_class(DNSClass::IN);
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_UDP_PAYLOAD);
    msg.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(query)
        .set_edns(edns);
    msg.to_vec()
}

/// Checks `bytes` against the query (`id`, `qname`, `qtype`) and digests it.
pub fn digest_response(
    bytes: &[u8],
    id: u16,
    qname: &Name,
    qtype: RecordType,
) -> Result<Digest, Reject> {
    // Look at the fixed header before decoding: a truncated answer may not decode, and a
    // stray datagram must not count as a malformed answer from the server.
    if bytes.len() < 12 {
        return Err(Reject::Unrelated);
    }
    if u16::from_be_bytes([bytes[0], bytes[1]]) != id || bytes[2] & 0x80 == 0 {
        return Err(Reject::Unrelated);
    }
    if bytes[2] & 0x02 != 0 {
        return Ok(Digest::Truncated);
    }
    let msg = Message::from_vec(bytes).map_err(|_| Reject::Malformed("undecodable response"))?;
    let question_matches = msg.queries().len() == 1 && {
        let q = &msg.queries()[0];
        q.name() == qname && q.query_type() == qtype && q.query_class() == DNSClass::IN
    };
    if !question_matches {
        return Err(Reject::Unrelated);
    }
    if msg.op_code() != OpCode::Query {
        return Err(Reject::Malformed("response opcode is not QUERY"));
    }
    match msg.response_code() {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Ok(Digest::NxDomain),
        other => return Ok(Digest::ServerFailure(other)),
    }
    digest_answer(&msg, qname, qtype)
}

/// Follows the CNAME chain from `qname` through the answer section and collects the records
/// of `qtype` at its end.
fn digest_answer(msg: &Message, qname: &Name, qtype: RecordType) -> Result<Digest, Reject> {
    let mut owner = qname.clone();
    // Iterative and bounded: a CNAME loop in the answer ends here as malformed.
    for _ in 0..=MAX_CNAME_CHAIN {
        let mut srv = Vec::new();
        let mut naptr = Vec::new();
        let mut addrs = Vec::new();
        let mut found = false;
        let mut next: Option<&Name> = None;
        for rec in msg.answers() {
            if rec.dns_class() != DNSClass::IN || rec.name() != &owner {
                continue;
            }
            match (rec.data(), qtype) {
                (Some(RData::SRV(s)), RecordType::SRV) => {
                    found = true;
                    if srv.len() < MAX_RECORDS {
                        srv.push(SrvRecord {
                            priority: s.priority(),
                            weight: s.weight(),
                            port: s.port(),
                            target: s.target().clone(),
                        });
                    }
                }
                (Some(RData::NAPTR(r)), RecordType::NAPTR) => {
                    found = true;
                    if naptr.len() < MAX_RECORDS {
                        naptr.push(NaptrRecord {
                            order: r.order(),
                            preference: r.preference(),
                            flags: r.flags().to_vec(),
                            services: r.services().to_vec(),
                            regexp: r.regexp().to_vec(),
                            replacement: r.replacement().clone(),
                        });
                    }
                }
                (Some(RData::A(a)), RecordType::A) => {
                    found = true;
                    if addrs.len() < MAX_RECORDS {
                        addrs.push(IpAddr::V4(a.0));
                    }
                }
                (Some(RData::AAAA(a)), RecordType::AAAA) => {
                    found = true;
                    if addrs.len() < MAX_RECORDS {
                        addrs.push(IpAddr::V6(a.0));
                    }
                }
                (Some(RData::CNAME(c)), _) => next = Some(&c.0),
                _ => {}
            }
        }
        if found {
            return Ok(Digest::Answer {
                owner,
                srv,
                naptr,
                addrs,
                additional: additional_addrs(msg),
            });
        }
        match next {
            Some(target) => owner = target.clone(),
            None if &owner == qname => return Ok(Digest::NoData),
            None => return Ok(Digest::Alias { target: owner }),
        }
    }
    Err(Reject::Malformed("CNAME chain too long or looping"))
}

/// A/AAAA records of the additional section, bounded.
fn additional_addrs(msg: &Message) -> Vec<(Name, IpAddr)> {
    msg.additionals()
        .iter()
        .filter(|r| r.dns_class() == DNSClass::IN)
        .filter_map(|r| match r.data() {
            Some(RData::A(a)) => Some((r.name().clone(), IpAddr::V4(a.0))),
            Some(RData::AAAA(a)) => Some((r.name().clone(), IpAddr::V6(a.0))),
            _ => None,
        })
        .take(MAX_RECORDS * 2)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, SRV};
    use hickory_proto::rr::Record;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn response(id: u16, qname: &str, qtype: RecordType) -> Message {
        let mut m = Message::new();
        m.set_id(id)
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .add_query(Query::query(name(qname), qtype));
        m
    }

    fn bytes(m: &Message) -> Vec<u8> {
        m.to_vec().unwrap()
    }

    #[test]
    fn builds_recursive_query_with_edns() {
        let q = build_query(
            0x1234,
            &name("_xmpp-server._tcp.example.org."),
            RecordType::SRV,
        )
        .unwrap();
        let m = Message::from_vec(&q).unwrap();
        assert_eq!(m.id(), 0x1234);
        assert_eq!(m.message_type(), MessageType::Query);
        assert!(m.recursion_desired());
        assert_eq!(m.queries().len(), 1);
        assert_eq!(
            m.queries()[0].name(),
            &name("_xmpp-server._tcp.example.org.")
        );
        assert_eq!(m.queries()[0].query_type(), RecordType::SRV);
        assert_eq!(m.max_payload(), EDNS_UDP_PAYLOAD);
    }

    #[test]
    fn parses_srv_answer_with_additional_addresses() {
        let mut m = response(7, "_xmpp-server._tcp.example.org.", RecordType::SRV);
        m.add_answer(Record::from_rdata(
            name("_xmpp-server._tcp.example.org."),
            60,
            RData::SRV(SRV::new(5, 10, 5269, name("xmpp.example.org."))),
        ));
        m.add_additional(Record::from_rdata(
            name("xmpp.example.org."),
            60,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
        let d = digest_response(
            &bytes(&m),
            7,
            &name("_XMPP-server._tcp.EXAMPLE.org."),
            RecordType::SRV,
        )
        .unwrap();
        let Digest::Answer {
            srv, additional, ..
        } = d
        else {
            panic!("expected an answer, got {d:?}");
        };
        assert_eq!(
            srv,
            vec![SrvRecord {
                priority: 5,
                weight: 10,
                port: 5269,
                target: name("xmpp.example.org.")
            }]
        );
        assert_eq!(
            additional,
            vec![(
                name("xmpp.example.org."),
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
            )]
        );
    }

    #[test]
    fn parses_naptr_answer() {
        use hickory_proto::rr::rdata::NAPTR;
        let mut m = response(11, "corp.test.", RecordType::NAPTR);
        m.add_answer(Record::from_rdata(
            name("corp.test."),
            60,
            RData::NAPTR(NAPTR::new(
                10,
                20,
                b"s".to_vec().into_boxed_slice(),
                b"SIPS+D2T".to_vec().into_boxed_slice(),
                Vec::new().into_boxed_slice(),
                name("_sips._tcp.corp.test."),
            )),
        ));
        let d = digest_response(&bytes(&m), 11, &name("corp.test."), RecordType::NAPTR).unwrap();
        let Digest::Answer { naptr, srv, .. } = d else {
            panic!("expected an answer, got {d:?}");
        };
        assert!(srv.is_empty());
        assert_eq!(
            naptr,
            vec![NaptrRecord {
                order: 10,
                preference: 20,
                flags: b"s".to_vec(),
                services: b"SIPS+D2T".to_vec(),
                regexp: Vec::new(),
                replacement: name("_sips._tcp.corp.test."),
            }]
        );
    }

    #[test]
    fn ignores_response_with_wrong_id() {
        let m = response(7, "example.org.", RecordType::A);
        assert_eq!(
            digest_response(&bytes(&m), 8, &name("example.org."), RecordType::A),
            Err(Reject::Unrelated)
        );
    }

    #[test]
    fn ignores_message_without_qr_bit() {
        let mut m = response(7, "example.org.", RecordType::A);
        m.set_message_type(MessageType::Query);
        assert_eq!(
            digest_response(&bytes(&m), 7, &name("example.org."), RecordType::A),
            Err(Reject::Unrelated)
        );
    }

    #[test]
    fn ignores_response_to_another_question() {
        let m = response(7, "other.org.", RecordType::A);
        assert_eq!(
            digest_response(&bytes(&m), 7, &name("example.org."), RecordType::A),
            Err(Reject::Unrelated)
        );
        let m = response(7, "example.org.", RecordType::AAAA);
        assert_eq!(
            digest_response(&bytes(&m), 7, &name("example.org."), RecordType::A),
            Err(Reject::Unrelated)
        );
    }

    #[test]
    fn ignores_runt_datagram() {
        assert_eq!(
            digest_response(&[0, 7, 0x80], 7, &name("example.org."), RecordType::A),
            Err(Reject::Unrelated)
        );
    }

    #[test]
    fn rejects_undecodable_body_as_malformed() {
        let mut b = bytes(&response(7, "example.org.", RecordType::A));
        b.truncate(b.len() - 3);
        assert_eq!(
            digest_response(&b, 7, &name("example.org."), RecordType::A),
            Err(Reject::Malformed("undecodable response"))
        );
    }

    #[test]
    fn reports_truncation_even_when_body_is_cut() {
        let mut m = response(7, "example.org.", RecordType::A);
        m.set_truncated(true);
        let mut b = bytes(&m);
        b.truncate(14);
        assert_eq!(
            digest_response(&b, 7, &name("example.org."), RecordType::A),
            Ok(Digest::Truncated)
        );
    }

    #[test]
    fn maps_rcodes() {
        let mut m = response(7, "example.org.", RecordType::A);
        m.set_response_code(ResponseCode::NXDomain);
        assert_eq!(
            digest_response(&bytes(&m), 7, &name("example.org."), RecordType::A),
            Ok(Digest::NxDomain)
        );
        m.set_response_code(ResponseCode::ServFail);
        assert_eq!(
            digest_response(&bytes(&m), 7, &name("example.org."), RecordType::A),
            Ok(Digest::ServerFailure(ResponseCode::ServFail))
        );
        m.set_response_code(ResponseCode::NoError);
        assert_eq!(
            digest_response(&bytes(&m), 7, &name("example.org."), RecordType::A),
            Ok(Digest::NoData)
        );
    }

    #[test]
    fn follows_cname_chain_in_answer() {
        let mut m = response(9, "example.org.", RecordType::AAAA);
        m.add_answer(Record::from_rdata(
            name("example.org."),
            60,
            RData::CNAME(CNAME(name("a.example.net."))),
        ));
        m.add_answer(Record::from_rdata(
            name("a.example.net."),
            60,
            RData::CNAME(CNAME(name("b.example.net."))),
        ));
        m.add_answer(Record::from_rdata(
            name("b.example.net."),
            60,
            RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
        ));
        let d = digest_response(&bytes(&m), 9, &name("example.org."), RecordType::AAAA).unwrap();
        let Digest::Answer { owner, addrs, .. } = d else {
            panic!("expected answer, got {d:?}");
        };
        assert_eq!(owner, name("b.example.net."));
        assert_eq!(addrs, vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
    }

    #[test]
    fn incomplete_cname_chain_yields_alias() {
        let mut m = response(9, "example.org.", RecordType::A);
        m.add_answer(Record::from_rdata(
            name("example.org."),
            60,
            RData::CNAME(CNAME(name("host.example.net."))),
        ));
        assert_eq!(
            digest_response(&bytes(&m), 9, &name("example.org."), RecordType::A),
            Ok(Digest::Alias {
                target: name("host.example.net.")
            })
        );
    }

    #[test]
    fn cname_loop_is_malformed() {
        let mut m = response(9, "a.example.", RecordType::A);
        m.add_answer(Record::from_rdata(
            name("a.example."),
            60,
            RData::CNAME(CNAME(name("b.example."))),
        ));
        m.add_answer(Record::from_rdata(
            name("b.example."),
            60,
            RData::CNAME(CNAME(name("a.example."))),
        ));
        assert_eq!(
            digest_response(&bytes(&m), 9, &name("a.example."), RecordType::A),
            Err(Reject::Malformed("CNAME chain too long or looping"))
        );
    }

    #[test]
    fn ignores_records_for_other_owners() {
        let mut m = response(3, "example.org.", RecordType::A);
        m.add_answer(Record::from_rdata(
            name("evil.example."),
            60,
            RData::A(A(Ipv4Addr::new(203, 0, 113, 9))),
        ));
        assert_eq!(
            digest_response(&bytes(&m), 3, &name("example.org."), RecordType::A),
            Ok(Digest::NoData)
        );
    }

    #[test]
    fn caps_records_taken_from_one_answer() {
        let mut m = response(3, "example.org.", RecordType::A);
        for i in 0..100u8 {
            m.add_answer(Record::from_rdata(
                name("example.org."),
                60,
                RData::A(A(Ipv4Addr::new(10, 0, 0, i))),
            ));
        }
        let Ok(Digest::Answer { addrs, .. }) =
            digest_response(&bytes(&m), 3, &name("example.org."), RecordType::A)
        else {
            panic!("expected answer");
        };
        assert_eq!(addrs.len(), MAX_RECORDS);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut b = vec![0u8, 1, 0x80, 0];
            b.extend_from_slice(&body);
            let _ = digest_response(&b, 1, &name("example.org."), RecordType::A);
            let _ = digest_response(&body, 1, &name("example.org."), RecordType::SRV);
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        // Deterministic pseudo-random garbage behind a matching header.
        let mut x: u32 = 0x9e37_79b9;
        for len in 12..300usize {
            let mut b = vec![0u8; len];
            for byte in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *byte = x as u8;
            }
            b[0] = 0;
            b[1] = 1;
            b[2] = 0x80;
            let _ = digest_response(&b, 1, &name("example.org."), RecordType::SRV);
        }
    }
}
