//! Loopback ports for tests: one held for the test until it listens, or one picked for a
//! program that binds it itself.
//!
//! Binding port 0, reading the port and dropping the socket before a server binds it is a
//! race: between the drop and the bind, any socket may take the port, and the kernel hands out
//! exactly those ports (the ephemeral range) to the outgoing connections tests open by the
//! hundred. Two ways around it:
//!
//! - [`reserve_port`] when the test itself (or an in-process server) will listen, or when it
//!   needs a port where connections are *refused*: the [`ReservedPort`] stays bound, so nothing
//!   else can take it, and is not listening, so connecting to it is refused ("a dead
//!   receiver"). [`ReservedPort::listen`] turns it into a `std::net::TcpListener` on the same
//!   port, to hand to the server (`tokio::net::TcpListener::from_std`, `axum::serve`, …).
//! - [`free_port`] when another program binds the port and takes only a number: it picks
//!   below the ephemeral range, where only other servers bind, and the caller retries with a
//!   new port if the program says the address is in use.
//!
//! What it is not: a port allocator shared between test binaries, or anything for UDP (a
//! UDP port from [`free_port`] was checked with TCP only).

use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};

use socket2::{Domain, Socket, Type};

use crate::Error;

/// A TCP port on 127.0.0.1 held by a bound socket that does not listen: connections to it are
/// refused, and no other socket can bind it while this lives (it does not set `SO_REUSEADDR`,
/// and the kernel never gives an explicitly bound port to an outgoing connection).
///
/// Dropping it frees the port; [`listen`](Self::listen) keeps it and starts listening.
#[derive(Debug)]
pub struct ReservedPort {
    socket: Socket,
    addr: SocketAddr,
}

/// Holds a free TCP port on 127.0.0.1 for the test: see [`ReservedPort`].
pub fn reserve_port() -> Result<ReservedPort, Error> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)
        .map_err(|e| Error::io("could not create a TCP socket", e))?;
    let any = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    socket
        .bind(&any.into())
        .map_err(|e| Error::io("could not bind a free port on 127.0.0.1", e))?;
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|addr| addr.as_socket())
        .ok_or_else(|| {
            Error::io(
                "could not read the address of a bound port",
                std::io::Error::other("not an IP address"),
            )
        })?;
    Ok(ReservedPort { socket, addr })
}

impl ReservedPort {
    /// The port number.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts listening on the held port and hands the listener over (in blocking mode, as
    /// `std` makes them; servers that need non-blocking set it).
    pub fn listen(self) -> Result<TcpListener, Error> {
        self.socket
            .listen(1024)
            .map_err(|e| Error::io(format!("could not listen on {}", self.addr), e))?;
        Ok(self.socket.into())
    }
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago, for a program that binds it
/// itself. When the test or an in-process server is to listen, use [`reserve_port`] instead:
/// it has no race at all.
///
/// Ports come from below the kernel's ephemeral range (`ip_local_port_range`, usually from
/// 32768 up), where outgoing connections take their local ports: a port picked there can be
/// taken by any client socket before the server binds it, and tests open many. A candidate is
/// checked by binding it. Another process can still take it before the caller binds it; the
/// servers in this crate retry with a new port when that race is lost.
pub fn free_port() -> Result<u16, Error> {
    let low = ephemeral_low()
        .unwrap_or(32768)
        .clamp(FIRST_PORT + 1000, 65535);
    let span = u64::from(low - FIRST_PORT);
    // RandomState is seeded from the OS: a random source without a dependency.
    let seed = std::collections::hash_map::RandomState::new();
    for attempt in 0u64..200 {
        let port = FIRST_PORT + (seed.hash_one(attempt) % span) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    // Everything below the ephemeral range is busy: let the kernel choose.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::io("could not bind a free port on 127.0.0.1", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("could not read the address of a bound port", e))?;
    Ok(addr.port())
}

/// The lowest port `free_port` hands out (below it are well-known and registered services).
const FIRST_PORT: u16 = 10000;

/// The first port of the kernel's ephemeral range.
fn ephemeral_low() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}
