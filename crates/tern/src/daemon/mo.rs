//! Mobile-originated messages: from an upstream to the client an MO rule
//! names.
//!
//! A deliver_sm from an upstream that is not a receipt is an MO. The first
//! `[[mo_route]]` (in file order) whose upstreams and destination prefixes
//! match names the client account. The message goes into that account's
//! outbox in the store *before* the upstream is answered ESME_ROK (the
//! receipts' rule: what Tern acknowledged is on disk), and the outbox loop
//! delivers it as a plain deliver_sm to one of the account's receiving
//! sessions, now or whenever one binds. A transmitter-only session never
//! gets one.
//!
//! Reassembly, for accounts with `mo_reassemble`: the parts of a
//! concatenated MO (UDH IEI 0x00 or 0x08, or the SAR TLVs) are held in the
//! store per client, source, destination and reference, each acknowledged
//! upstream only once held. The part that completes a message releases it as
//! one deliver_sm (text joined with the codec's `reassemble`, data_coding
//! kept, `message_payload` beyond 254 octets); a group still incomplete at
//! the account's `mo_reassembly_timeout` goes out as its parts, as they
//! came. Leaving the store and entering the outbox are one atomic write,
//! so a group goes out exactly once whatever crashes.

use std::sync::Arc;

use std::time::Duration;
use tokio_util::sync::CancellationToken;

use bytes::Bytes;
use tern_codec::pdu::DeliverSm;
use tern_codec::text::{
    encode, reassemble, reassemble_payloads, Concat, ConcatInfo, Encoding, ReceivedPart, SarInfo,
    Unrepresentable,
};
use tern_codec::tlv::tags;
use tern_codec::{Body, CommandStatus, EsmClass, Pdu, RegisteredDelivery, ShortMessage, Tlv};
use tern_storage::{now_ms, HeldMo, MoGroup, MoPart, OutboxItem, StoreError};
use tracing::{debug, info};

use super::node::{Node, Routing};
use crate::config::ClientAccount;

/// What an MO no rule matches is answered.
///
/// SMPP 3.4 gives an ESME three ways to refuse a deliver_sm (§5.1.3):
/// ESME_RX_T_APPN (temporary: the SMSC keeps the message and tries again
/// later), ESME_RX_P_APPN (permanent: the SMSC must not try again) and
/// ESME_RX_R_APPN (the ESME rejects this message). An MO no rule matches
/// has nobody to go to under the running configuration, and trying again
/// changes nothing, so a temporary refusal would only make the upstream
/// redeliver it for as long as it keeps messages (OVHcloud: seven days),
/// filling its queue and Tern's sessions with the same refusals. The
/// permanent one ends it at the upstream at once. It is not dropped
/// silently: every one is counted (`mo_received`) and logged with its
/// upstream, source and destination, so an operator who wants such
/// messages adds a rule.
pub const UNROUTED_STATUS: CommandStatus = CommandStatus::ReceiverPermanentError;

/// How often held parts are looked at for their deadline.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);

/// Groups released per sweep; the rest wait for the next one.
const SWEEP_BATCH: usize = 64;

/// Routes one MO from `upstream`; returns the status to answer it with.
/// `Err` when the store failed: the caller answers a temporary error so
/// the upstream sends it again.
pub async fn receive(
    node: &Node,
    upstream: &str,
    pdu: &Pdu,
    sm: &DeliverSm,
) -> Result<CommandStatus, StoreError> {
    node.metrics().mo_received(upstream);
    let source = sm.source.addr.to_string();
    let destination = sm.destination.addr.to_string();
    let accounts = node.accounts().current();
    let Some((account, rule)) = route(&accounts, upstream, &destination) else {
        tern_session::warn_limited!("MO matches no mo_route; refused for good", upstream,
            %source,
            %destination,
            status = UNROUTED_STATUS.name().unwrap_or("-"));
        return Ok(UNROUTED_STATUS);
    };
    let client = account.system_id.as_str();
    debug!(upstream, %source, %destination, rule, client, "MO routed");
    if account.mo_reassemble {
        if let Some(info) = concatenation(sm) {
            hold(node, account, upstream, pdu, source, destination, info).await?;
            return Ok(CommandStatus::Ok);
        }
    }
    let item = outbox_item(for_client(sm));
    let place = node.store().outbox_push(client, &item).await?;
    node.outbox().stored(client, place);
    Ok(CommandStatus::Ok)
}

/// The account the first matching rule names, with the rule's name.
fn route<'a>(
    accounts: &'a [ClientAccount],
    upstream: &str,
    destination: &str,
) -> Option<(&'a ClientAccount, &'a str)> {
    accounts
        .iter()
        .flat_map(|account| account.mo_routes.iter().map(move |rule| (account, rule)))
        .filter(|(_, rule)| rule.matches(upstream, destination))
        .min_by_key(|(_, rule)| rule.order)
        .map(|(account, rule)| (account, rule.name.as_str()))
}

/// The MO as it goes to a client: a user message in default mode (never a
/// receipt), with the upstream's addresses, coding, text and TLVs. The GSM
/// bits of esm_class (UDHI, reply path) stay with the text they describe;
/// fields deliver_sm must leave empty are emptied.
fn for_client(sm: &DeliverSm) -> DeliverSm {
    DeliverSm {
        service_type: sm.service_type.clone(),
        source: sm.source.clone(),
        destination: sm.destination.clone(),
        esm_class: EsmClass(sm.esm_class.0 & (EsmClass::UDHI.0 | EsmClass::REPLY_PATH.0)),
        protocol_id: sm.protocol_id,
        priority_flag: sm.priority_flag,
        registered_delivery: RegisteredDelivery::NONE,
        data_coding: sm.data_coding,
        short_message: sm.short_message.clone(),
        tlvs: sm.tlvs.clone(),
        ..DeliverSm::default()
    }
}

fn outbox_item(sm: DeliverSm) -> OutboxItem {
    OutboxItem {
        // Sequence number 0: the outbox sets the real one when it sends.
        pdu: Pdu::new(0, Body::DeliverSm(sm)).to_bytes(),
        message: None,
        stored_ms: now_ms(),
    }
}

/// How a PDU's text is tied to other parts, as the codec reads it.
fn received_part(sm: &DeliverSm) -> ReceivedPart<'_> {
    ReceivedPart {
        short_message: sm.text_octets(),
        udhi: sm.esm_class.udhi(),
        sar: sm.tlvs.sar().map(|sar| SarInfo {
            reference: sar.reference,
            total: sar.total,
            sequence: sar.sequence,
        }),
    }
}

/// The part's place in a concatenated message, when it is one that can be
/// held: more than one part, and a number within the total. A malformed
/// header or impossible numbers make it a message of its own, passed on as
/// it came rather than held for parts that cannot match it.
fn concatenation(sm: &DeliverSm) -> Option<ConcatInfo> {
    let info = received_part(sm).concat_info().ok()??;
    (info.total > 1 && info.sequence >= 1 && info.sequence <= info.total).then_some(info)
}

/// The store's number for a concatenation scheme.
fn scheme(kind: Concat) -> u8 {
    match kind {
        Concat::Udh8 => 0,
        Concat::Udh16 => 1,
        Concat::Sar => 2,
    }
}

/// Holds one part (durably: the caller acknowledges it next) and releases
/// its message if it was the last one missing.
async fn hold(
    node: &Node,
    account: &ClientAccount,
    upstream: &str,
    pdu: &Pdu,
    source: String,
    destination: String,
    info: ConcatInfo,
) -> Result<(), StoreError> {
    let group = MoGroup {
        client: account.system_id.clone(),
        source,
        destination,
        scheme: scheme(info.kind),
        reference: info.reference,
        total: info.total,
    };
    let now = now_ms();
    let part = MoPart {
        upstream: upstream.to_owned(),
        sequence: info.sequence,
        pdu: pdu.to_bytes(),
        received_ms: now,
    };
    let deadline = now.saturating_add(account.mo_reassembly_timeout.as_millis() as u64);
    let held = node.store().mo_part_hold(&group, &part, deadline).await?;
    debug!(
        client = %group.client,
        reference = group.reference,
        part = info.sequence,
        total = info.total,
        held = held.parts.len(),
        "MO part held"
    );
    if held.is_complete() {
        release(node, &group).await?;
    }
    Ok(())
}

/// Moves a held group into its client's outbox: one message when complete
/// and joinable, else each part as it came.
async fn release(node: &Node, group: &MoGroup) -> Result<(), StoreError> {
    let routing = node.routing();
    let released = node
        .store()
        .mo_group_release(group, |held| deliveries(&routing, held))
        .await?;
    if released {
        node.outbox().news(&group.client);
    }
    Ok(())
}

/// What a held group becomes.
fn deliveries(routing: &Routing, held: &HeldMo) -> Vec<OutboxItem> {
    let parts: Vec<(String, DeliverSm)> = held
        .parts
        .iter()
        .filter_map(|part| match Pdu::decode(part.pdu.clone()).map(|p| p.body) {
            Ok(Body::DeliverSm(sm)) => Some((part.upstream.clone(), sm)),
            _ => {
                // Stored by this code from a PDU that decoded: corruption.
                tern_session::warn_limited!("held MO part does not decode; left out", client = %held.group.client,
                    part = part.sequence);
                None
            }
        })
        .collect();
    if held.is_complete() && parts.len() == held.parts.len() {
        match joined(routing, &parts) {
            Some(whole) => return vec![outbox_item(whole)],
            None => info!(
                client = %held.group.client,
                reference = held.group.reference,
                "MO parts do not join (coding or headers disagree); delivered as they are"
            ),
        }
    } else {
        info!(
            client = %held.group.client,
            reference = held.group.reference,
            have = held.parts.len(),
            total = held.group.total,
            "MO parts still missing at the reassembly timeout; delivered as they are"
        );
    }
    parts
        .iter()
        .map(|(_, sm)| outbox_item(for_client(sm)))
        .collect()
}

/// The whole message from its parts (in order, first to last), or `None`
/// when they cannot be joined.
fn joined(routing: &Routing, parts: &[(String, DeliverSm)]) -> Option<DeliverSm> {
    let (upstream, first) = parts.first()?;
    let received: Vec<ReceivedPart<'_>> = parts.iter().map(|(_, sm)| received_part(sm)).collect();
    let coding = &routing.profile(upstream).coding;
    // Packed septets after a UDH are shifted by fill bits: they are joined
    // as text and packed again. Every other coding joins octet for octet.
    let packed = first.data_coding.0 == 0
        && coding.default_alphabet == tern_router::profile::Alphabet::Gsm7
        && coding.gsm7_carriage == tern_router::profile::Carriage::Packed;
    let text: Bytes = if packed {
        let text = reassemble(&received, Encoding::Gsm7Packed).ok()?;
        encode(&text, Encoding::Gsm7Packed, Unrepresentable::Error).ok()?
    } else {
        reassemble_payloads(&received).ok()?
    };
    let mut whole = for_client(first);
    // The concatenation headers described the parts, not the whole.
    whole.esm_class = whole.esm_class.with_udhi(false);
    for tag in [
        tags::SAR_MSG_REF_NUM,
        tags::SAR_TOTAL_SEGMENTS,
        tags::SAR_SEGMENT_SEQNUM,
        tags::MESSAGE_PAYLOAD,
    ] {
        whole.tlvs.remove(tag);
    }
    if text.len() <= ShortMessage::MAX {
        whole.short_message = ShortMessage::new(text).ok()?;
    } else {
        whole.short_message = ShortMessage::default();
        whole.tlvs.push(Tlv::message_payload(text).ok()?);
    }
    Some(whole)
}

/// Releases held MO parts whose reassembly timed out, until `shutdown`;
/// started with the node, so groups held before a restart go out at their
/// deadline too.
pub async fn sweep(node: Arc<Node>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(SWEEP_INTERVAL) => {}
            () = shutdown.cancelled() => return,
        }
        let due = match node.store().mo_groups_due(now_ms(), SWEEP_BATCH).await {
            Ok(due) => due,
            Err(err) => {
                tern_session::warn_limited!("reading held MO parts failed", %err);
                continue;
            }
        };
        for held in due {
            if let Err(err) = release(&node, &held.group).await {
                tern_session::warn_limited!("releasing held MO parts failed; trying again", %err, client = %held.group.client);
            }
        }
    }
}
