//! The listener and connections of one simulated instance, and how its
//! health shows on the wire.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

use super::answers::{self, Answer};
use super::protocol;
use super::{Health, Shared, SimError, lock};

/// A listener on `addr` (address reuse on, so an instance brought back
/// gets its address again at once).
pub(crate) fn bind(addr: SocketAddr, backlog: u32) -> Result<TcpListener, SimError> {
    let e = |source| SimError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(e)?;
    socket.set_reuseaddr(true).map_err(e)?;
    socket.bind(addr).map_err(e)?;
    socket.listen(backlog).map_err(e)
}

/// Serves instance `n` for as long as the simulator runs: accepts while
/// serving, leaves connections in the backlog while hung, and closes its
/// listener while refusing or dead (binding again when it serves again).
pub(crate) async fn serve(shared: Arc<Shared>, n: usize, listener: TcpListener) {
    let Some(inst) = shared.insts.get(n) else {
        return;
    };
    let mut health = inst.health.subscribe();
    let mut listener = Some(listener);
    loop {
        let now = *health.borrow_and_update();
        match now {
            // While hung the kernel still completes connections into the
            // backlog, as for a stopped process; nobody greets them.
            Health::Serving | Health::Hang => {
                if listener.is_none() {
                    listener = rebind(&shared, n).await;
                }
            }
            Health::Refuse | Health::Dead => listener = None,
        }
        inst.applied.send_if_modified(|h| {
            let changed = *h != now;
            *h = now;
            changed
        });
        match (now, listener.as_ref()) {
            (Health::Serving, Some(l)) => {
                tokio::select! {
                    accepted = l.accept() => {
                        if let Ok((sock, _)) = accepted {
                            tokio::spawn(connection(shared.clone(), n, sock));
                        }
                    }
                    changed = health.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
            _ => {
                if health.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn rebind(shared: &Shared, n: usize) -> Option<TcpListener> {
    let addr = *shared.addrs.get(n)?;
    loop {
        match bind(addr, shared.backlog) {
            Ok(l) => return Some(l),
            Err(e) => {
                tracing::warn!(%addr, error = %e, "simulated instance cannot listen again; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Waits while the instance hangs; `false` when the connection must close
/// (the instance died, or the simulator stopped).
async fn wait_to_answer(health: &mut watch::Receiver<Health>) -> bool {
    loop {
        let h = *health.borrow_and_update();
        match h {
            Health::Serving | Health::Refuse => return true,
            Health::Dead => return false,
            Health::Hang => {
                if health.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// Resolves when the instance dies (or the simulator stops).
async fn died(health: &mut watch::Receiver<Health>) {
    loop {
        if *health.borrow_and_update() == Health::Dead {
            return;
        }
        if health.changed().await.is_err() {
            return;
        }
    }
}

async fn connection(shared: Arc<Shared>, n: usize, mut sock: TcpStream) {
    let Some(inst) = shared.insts.get(n) else {
        return;
    };
    let _ = sock.set_nodelay(true);
    let mut health = inst.health.subscribe();
    let mut dead = inst.health.subscribe();
    tokio::select! {
        _ = talk(&shared, n, &mut sock, &mut health) => {}
        _ = died(&mut dead) => {}
    }
}

async fn talk(
    shared: &Shared,
    n: usize,
    sock: &mut TcpStream,
    health: &mut watch::Receiver<Health>,
) -> std::io::Result<()> {
    if !wait_to_answer(health).await {
        return Ok(());
    }
    let Some(inst) = shared.insts.get(n) else {
        return Ok(());
    };
    let (version, id) = {
        let st = lock(&inst.state);
        let v = match st.spec.flavor {
            // MariaDB announces itself behind the 5.5.5- prefix old
            // clients expect.
            orca::topology::Flavor::MariaDb => format!("5.5.5-{}", st.spec.version),
            orca::topology::Flavor::MySql => st.spec.version.clone(),
        };
        (v, shared.conn_id())
    };
    let mut scramble = [0u8; 20];
    for (i, b) in scramble.iter_mut().enumerate() {
        // Printable, never zero; any password is taken anyway.
        *b = b'A' + ((id as usize).wrapping_mul(31).wrapping_add(i * 7) % 26) as u8;
    }
    let mut out = protocol::greeting(&version, id, &scramble);
    protocol::flush(sock, &mut out).await?;
    let mut buf = Vec::with_capacity(256);
    // The handshake response: the account and password are not checked.
    let Some(seq) = protocol::read_packet(sock, &mut buf).await? else {
        return Ok(());
    };
    if !wait_to_answer(health).await {
        return Ok(());
    }
    let mut seq = seq.wrapping_add(1);
    protocol::ok(&mut out, &mut seq);
    protocol::flush(sock, &mut out).await?;
    loop {
        let Some(_) = protocol::read_packet(sock, &mut buf).await? else {
            return Ok(());
        };
        if !wait_to_answer(health).await {
            return Ok(());
        }
        let mut seq = 1u8;
        let Some((&command, body)) = buf.split_first() else {
            return Ok(());
        };
        match command {
            protocol::COM_QUIT => return Ok(()),
            protocol::COM_PING | protocol::COM_INIT_DB | protocol::COM_RESET_CONNECTION => {
                protocol::ok(&mut out, &mut seq)
            }
            protocol::COM_QUERY => {
                let sql = String::from_utf8_lossy(body);
                let stmts = protocol::statements(&sql);
                if stmts.is_empty() {
                    protocol::err(&mut out, &mut seq, 1065, "42000", "Query was empty");
                }
                // One answer per statement, as a server with
                // CLIENT_MULTI_STATEMENTS gives them: the first error ends
                // the query.
                for (i, stmt) in stmts.iter().enumerate() {
                    let more = i + 1 < stmts.len();
                    match answers::answer(shared, n, stmt) {
                        Answer::Done => protocol::ok_then(&mut out, &mut seq, more),
                        Answer::Rows { columns, rows } => {
                            protocol::result_set(&mut out, &mut seq, &columns, &rows, more)
                        }
                        Answer::Error {
                            code,
                            state,
                            message,
                        } => {
                            protocol::err(&mut out, &mut seq, code, state, &message);
                            break;
                        }
                    }
                }
            }
            other => protocol::err(
                &mut out,
                &mut seq,
                1047,
                "08S01",
                &format!("Unknown command {other:#04x}"),
            ),
        }
        protocol::flush(sock, &mut out).await?;
        if buf.capacity() > 16 * 1024 {
            buf.shrink_to(256);
        }
    }
}
