//! A minimal HTTP/1.1 server: `locktop serve`'s `/metrics` and `/healthz`, and the demo's stand-in for the
//! service's endpoints. GET (and HEAD) only, one response per connection, a request head of at most 8 KiB
//! read within 10 s. Two or three fixed pages need no framework.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A page: status, content type, body. `None` is a 404.
pub type Page = Option<(u16, &'static str, String)>;

/// What answers a path; it may take its time (a test's endpoint that hangs never answers).
pub type Handler = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Page> + Send>> + Send + Sync>;

/// How long a client may take to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Listens on 127.0.0.1 (a free port) and answers every GET with `handler`, until the task is aborted.
pub async fn start(handler: Handler) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((addr, tokio::spawn(answer(listener, handler))))
}

/// Answers every request `listener` accepts with `handler`, until the task is aborted.
pub async fn answer(listener: TcpListener, handler: Handler) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let Ok(Some((method, path))) =
                tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await
            else {
                return;
            };
            let (status, kind, body) = if method == "GET" || method == "HEAD" {
                handler(path)
                    .await
                    .unwrap_or((404, "text/plain", "not found\n".into()))
            } else {
                (405, "text/plain", "only GET and HEAD\n".into())
            };
            let reason = match status {
                200 => "OK",
                404 => "Not Found",
                405 => "Method Not Allowed",
                503 => "Service Unavailable",
                _ => "Error",
            };
            let head = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            if method != "HEAD" {
                let _ = stream.write_all(body.as_bytes()).await;
            }
            let _ = stream.shutdown().await;
        });
    }
}

/// The method and path (without its query) of a request, from a request head of at most 8 KiB.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<(String, String)> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() + n > 8192 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut words = line.split_whitespace();
    let method = words.next()?.to_owned();
    let target = words.next()?;
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Some((method, path.to_owned()))
}
