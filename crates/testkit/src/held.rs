//! A loopback port a test holds for an upstream that is down now and
//! comes up later at the same address.

use tokio::net::{TcpListener, TcpSocket};

/// A loopback socket bound to a port of the kernel's choosing (port 0)
/// but not listening: connections to it are refused, as to an upstream
/// that is down, and no other socket can take the port while it is held.
/// [`HeldPort::listen`] brings the upstream up on it. Nothing is probed:
/// the port is the test's from the start.
#[derive(Debug)]
pub struct HeldPort {
    socket: TcpSocket,
    /// The port held, for a config to name.
    pub port: u16,
}

impl HeldPort {
    pub fn new() -> HeldPort {
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(([127, 0, 0, 1], 0).into())
            .expect("bind 127.0.0.1:0");
        let port = socket.local_addr().expect("its address").port();
        HeldPort { socket, port }
    }

    /// Starts listening on the held port (inside a Tokio runtime), for a
    /// server such as `tern_sim::smsc::Simulator::start_on`.
    pub fn listen(self) -> TcpListener {
        self.socket.listen(1024).expect("listen on the held port")
    }
}

impl Default for HeldPort {
    fn default() -> Self {
        HeldPort::new()
    }
}
