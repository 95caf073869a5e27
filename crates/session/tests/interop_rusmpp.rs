//! The engine in both roles against an independent SMPP implementation:
//! Rusmpp's codec drives the other end of a real loopback socket, so a
//! mistake shared by Tern's encoder and decoder cannot hide here.

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use rusmpp as r;
use tern_codec::pdu::{SmResp, SubmitSm};
use tern_codec::{Body, CommandStatus, EsmClass, ShortMessage};
use tern_session::{esme, BindType, CloseReason};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

type RusmppPeer = Framed<TcpStream, r::tokio_codec::CommandCodec>;

fn rstr<const MIN: usize, const MAX: usize>(s: &str) -> r::types::COctetString<MIN, MAX> {
    s.parse().expect("fits the Rusmpp field")
}

fn command(sequence: u32, pdu: impl Into<r::Pdu>) -> r::Command {
    r::Command::new(r::CommandStatus::from(0u32), sequence, pdu)
}

async fn next(peer: &mut RusmppPeer) -> r::Command {
    tokio::time::timeout(WAIT, peer.next())
        .await
        .expect("in time")
        .expect("not closed")
        .expect("Rusmpp decodes what Tern sent")
}

#[tokio::test]
async fn a_rusmpp_client_against_the_tern_smsc() {
    let mut srv = server().await;
    let stream = TcpStream::connect(srv.addr).await.expect("connect");
    let mut client: RusmppPeer = Framed::new(stream, r::tokio_codec::CommandCodec::new());

    let bind = r::pdus::BindTransceiver::builder()
        .system_id(rstr("user"))
        .password(rstr("pass"))
        .build();
    client.send(command(1, bind)).await.expect("send bind");
    let resp = next(&mut client).await;
    assert_eq!(u32::from(resp.status()), 0);
    assert_eq!(resp.sequence_number(), 1);
    let Some(r::Pdu::BindTransceiverResp(bind_resp)) = resp.pdu() else {
        panic!("{resp:?}")
    };
    assert_eq!(bind_resp.system_id.as_str(), "tern");

    let mut bound = srv.sessions.recv().await.expect("bound session");
    let submit = r::pdus::SubmitSm::builder()
        .source_addr(rstr("Tern"))
        .destination_addr(rstr("34600000001"))
        .short_message(r::types::OctetString::from_slice(b"hola").expect("short"))
        .build();
    client.send(command(2, submit)).await.expect("send submit");
    let request = tokio::time::timeout(WAIT, bound.requests.recv())
        .await
        .expect("in time")
        .expect("a submit");
    let Body::SubmitSm(sm) = &request.pdu.body else {
        panic!("{:?}", request.pdu)
    };
    assert_eq!(sm.destination.addr, "34600000001");
    assert_eq!(sm.short_message.as_bytes(), b"hola");
    let id = "tern-1".try_into().expect("short");
    request
        .responder
        .respond(CommandStatus::Ok, Body::SubmitSmResp(SmResp::with_id(id)))
        .await
        .expect("respond");
    let resp = next(&mut client).await;
    assert_eq!(resp.sequence_number(), 2);
    let Some(r::Pdu::SubmitSmResp(submit_resp)) = resp.pdu() else {
        panic!("{resp:?}")
    };
    assert_eq!(submit_resp.message_id().as_str(), "tern-1");

    // Tern delivers a receipt; the Rusmpp client acknowledges it.
    let handle = bound.handle.clone();
    let delivery = tokio::spawn(async move {
        let receipt = SubmitSm {
            esm_class: EsmClass::DELIVERY_RECEIPT,
            short_message: ShortMessage::new(&b"id:tern-1 stat:DELIVRD err:000"[..])
                .expect("short"),
            ..SubmitSm::default()
        };
        handle.request(Body::DeliverSm(receipt)).await
    });
    let deliver = next(&mut client).await;
    let Some(r::Pdu::DeliverSm(dsm)) = deliver.pdu() else {
        panic!("{deliver:?}")
    };
    assert_eq!(u8::from(dsm.esm_class), 0x04);
    assert_eq!(
        dsm.short_message().as_ref(),
        b"id:tern-1 stat:DELIVRD err:000"
    );
    let ack = r::pdus::DeliverSmResp::builder()
        .message_id(rstr(""))
        .build();
    client
        .send(command(deliver.sequence_number(), ack))
        .await
        .expect("ack");
    let acked = delivery.await.expect("task").expect("acknowledged");
    assert_eq!(acked.command_status, CommandStatus::Ok);

    client
        .send(command(3, r::Pdu::EnquireLink))
        .await
        .expect("enquire_link");
    let resp = next(&mut client).await;
    assert_eq!(
        (resp.sequence_number(), resp.pdu()),
        (3, Some(&r::Pdu::EnquireLinkResp))
    );

    client
        .send(command(4, r::Pdu::Unbind))
        .await
        .expect("unbind");
    let resp = next(&mut client).await;
    assert_eq!(
        (resp.sequence_number(), resp.pdu()),
        (4, Some(&r::Pdu::UnbindResp))
    );
    tokio::time::timeout(WAIT, bound.handle.closed())
        .await
        .expect("closed");
    assert_eq!(bound.handle.close_reason(), Some(CloseReason::PeerUnbound));
}

#[tokio::test]
async fn the_tern_esme_against_a_rusmpp_smsc() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let smsc = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let mut smsc: RusmppPeer = Framed::new(stream, r::tokio_codec::CommandCodec::new());
        let bind = next(&mut smsc).await;
        let Some(r::Pdu::BindTransceiver(b)) = bind.pdu() else {
            panic!("{bind:?}")
        };
        assert_eq!(
            (b.system_id.as_str(), b.password.as_str()),
            ("user", "pass")
        );
        let resp = r::pdus::BindTransceiverResp::builder()
            .system_id(rstr("rsmsc"))
            .sc_interface_version(Some(0x34u8.into()))
            .build();
        smsc.send(command(bind.sequence_number(), resp))
            .await
            .expect("bind resp");

        let submit = next(&mut smsc).await;
        let Some(r::Pdu::SubmitSm(sm)) = submit.pdu() else {
            panic!("{submit:?}")
        };
        assert_eq!(sm.destination_addr.as_str(), "34600000001");
        assert_eq!(sm.short_message().as_ref(), b"to the upstream");
        let resp = r::pdus::SubmitSmResp::builder()
            .message_id(rstr("r-1"))
            .build();
        smsc.send(command(submit.sequence_number(), resp))
            .await
            .expect("submit resp");

        // An MO message towards Tern.
        let mo = r::pdus::DeliverSm::builder()
            .source_addr(rstr("34600000001"))
            .destination_addr(rstr("Tern"))
            .short_message(r::types::OctetString::from_slice(b"reply").expect("short"))
            .build();
        smsc.send(command(70, mo)).await.expect("deliver_sm");
        let ack = next(&mut smsc).await;
        assert_eq!(ack.sequence_number(), 70);
        assert_eq!(u32::from(ack.status()), 0);
        assert!(
            matches!(ack.pdu(), Some(r::Pdu::DeliverSmResp(_))),
            "{ack:?}"
        );

        smsc.send(command(71, r::Pdu::EnquireLink))
            .await
            .expect("enquire_link");
        let resp = next(&mut smsc).await;
        assert_eq!(
            (resp.sequence_number(), resp.pdu()),
            (71, Some(&r::Pdu::EnquireLinkResp))
        );

        smsc.send(command(72, r::Pdu::Unbind))
            .await
            .expect("unbind");
        let resp = next(&mut smsc).await;
        assert_eq!(
            (resp.sequence_number(), resp.pdu()),
            (72, Some(&r::Pdu::UnbindResp))
        );
    });

    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut upstream = esme::bind(
        stream,
        Some(addr),
        &params(BindType::Transceiver, "pass"),
        fast_session(),
    )
    .await
    .expect("bound");
    assert_eq!(upstream.peer_system_id, "rsmsc");
    let resp = upstream
        .handle
        .request(submit("to the upstream"))
        .await
        .expect("answered");
    let Body::SubmitSmResp(r) = &resp.body else {
        panic!("{resp:?}")
    };
    assert_eq!(
        r.id.as_ref().map(ToString::to_string).as_deref(),
        Some("r-1")
    );

    let mo = tokio::time::timeout(WAIT, upstream.requests.recv())
        .await
        .expect("in time")
        .expect("an MO");
    let Body::DeliverSm(sm) = &mo.pdu.body else {
        panic!("{:?}", mo.pdu)
    };
    assert_eq!(sm.short_message.as_bytes(), b"reply");
    mo.responder
        .respond(
            CommandStatus::Ok,
            Body::DeliverSmResp(SmResp::with_id(Default::default())),
        )
        .await
        .expect("ack");

    smsc.await
        .expect("the Rusmpp SMSC saw everything it expected");
    tokio::time::timeout(WAIT, upstream.handle.closed())
        .await
        .expect("closed");
    assert_eq!(
        upstream.handle.close_reason(),
        Some(CloseReason::PeerUnbound)
    );
}
