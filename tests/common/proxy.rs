//! A TCP proxy on 127.0.0.1 between locktop and the server, that can stop forwarding without closing (a
//! stalled network: a dead NAT entry, a saturated link), stall only the server's answers once the client sent
//! a given text, and drop every connection (a reset).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Default)]
struct Control {
    /// Nothing is forwarded in either direction.
    stalled: bool,
    /// When the client sends this text, the server's answers stop (until `resume`).
    stall_answers_after: Option<Vec<u8>>,
    answers_stalled: bool,
    /// Bumped by `close_all`: every connection of an older generation is dropped.
    generation: u64,
}

/// A running proxy; it stops with the test's runtime.
pub struct Proxy {
    pub addr: SocketAddr,
    control: Arc<watch::Sender<Control>>,
}

impl Proxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let control = Arc::new(watch::Sender::new(Control::default()));
        let ctl = Arc::clone(&control);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let ctl = Arc::clone(&ctl);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let generation = ctl.borrow().generation;
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = pump(cr, sw, Arc::clone(&ctl), generation, true);
                    let down = pump(sr, cw, Arc::clone(&ctl), generation, false);
                    // Either side ending ends both: the halves are dropped, so both sockets close.
                    tokio::select! {
                        () = up => {}
                        () = down => {}
                    }
                });
            }
        });
        Self { addr, control }
    }

    /// Stops forwarding both ways; connections stay open.
    pub fn stall(&self) {
        self.control.send_modify(|c| c.stalled = true);
    }

    /// Stops forwarding the server's answers as soon as the client sends `text`.
    pub fn stall_answers_after(&self, text: &str) {
        self.control
            .send_modify(|c| c.stall_answers_after = Some(text.as_bytes().to_vec()));
    }

    /// Whether the trigger of [`Self::stall_answers_after`] was seen and answers are being held.
    pub fn answers_stalled(&self) -> bool {
        self.control.borrow().answers_stalled
    }

    /// Forwards again, both ways.
    pub fn resume(&self) {
        self.control.send_modify(|c| {
            c.stalled = false;
            c.answers_stalled = false;
            c.stall_answers_after = None;
        });
    }

    /// Drops every open connection (as a reset would) and forwards new ones normally.
    pub fn close_all(&self) {
        self.control.send_modify(|c| {
            c.generation += 1;
            c.stalled = false;
            c.answers_stalled = false;
            c.stall_answers_after = None;
        });
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: Arc<watch::Sender<Control>>,
    generation: u64,
    from_client: bool,
) {
    let mut rx = control.subscribe();
    let mut buf = vec![0_u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            () = closed(&mut rx, generation) => return,
        };
        if from_client {
            control.send_if_modified(|c| {
                let hit = c
                    .stall_answers_after
                    .as_ref()
                    .is_some_and(|p| buf[..n].windows(p.len()).any(|w| w == p.as_slice()));
                if hit {
                    c.answers_stalled = true;
                }
                hit
            });
        }
        // Hold the bytes while stalled; give up the connection if it is closed meanwhile.
        loop {
            let c = rx.borrow_and_update().clone();
            if c.generation != generation {
                return;
            }
            if !(c.stalled || (!from_client && c.answers_stalled)) {
                break;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Resolves when `close_all` moved past `generation`.
async fn closed(rx: &mut watch::Receiver<Control>, generation: u64) {
    let mut rx = rx.clone();
    loop {
        if rx.borrow_and_update().generation != generation {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
