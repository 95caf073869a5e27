//! A peer that stops reading (issue 22, point 4): once the session is
//! closed, its writer gives up on the stalled socket after the close grace,
//! so requests waiting for room in its queue fail instead of waiting for
//! as long as the peer keeps the connection open.

use std::time::Duration;

use futures::future::join_all;
use tern_codec::Body;
use tern_session::{spawn, RequestError, Role, SessionConfig};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn closing_a_session_whose_peer_does_not_read_frees_every_request() {
    // 64 octets of pipe, which the peer never reads: four enquire_link.
    let (ours, mut peer) = tokio::io::duplex(64);
    let config = SessionConfig {
        window: 100,
        outbound_queue: 4,
        close_grace: Duration::from_millis(200),
        response_timeout: Duration::from_secs(60),
        enquire_link_interval: None,
        inactivity_timeout: None,
        ..SessionConfig::default()
    };
    let (handle, _requests) = spawn(ours, Role::Esme, config, None);
    let requests: Vec<_> = (0..40)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move { handle.request(Body::EnquireLink).await })
        })
        .collect();
    // The writer stalls on the full pipe and its queue fills up behind it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        requests.iter().all(|r| !r.is_finished()),
        "nothing answered yet"
    );

    handle.close();
    let ended = tokio::time::timeout(Duration::from_secs(3), join_all(requests))
        .await
        .expect("every request ended soon after the close, the peer still not reading");
    for result in ended {
        assert_eq!(result.expect("task"), Err(RequestError::Closed));
    }
    // And the connection is let go: what was in the pipe, then the end.
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), peer.read_to_end(&mut seen))
        .await
        .expect("the writer let go of the stream")
        .expect("read");
    assert!(
        seen.len() < 40 * 16,
        "nothing written after the close: {} octets",
        seen.len()
    );
}
