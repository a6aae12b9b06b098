//! A minimal HTTP/1.1 server on 127.0.0.1 for the demo workload's `/metrics` and `/internal/health` (and the
//! tests' endpoints): GET only, one response per connection. The demo needs two fixed pages, not a framework.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A page: status, content type, body. `None` is a 404.
pub type Page = Option<(u16, &'static str, String)>;

/// What answers a path; it may take its time (a test's endpoint that hangs never answers).
pub type Handler = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Page> + Send>> + Send + Sync>;

/// Listens on 127.0.0.1 (a free port) and answers every GET with `handler`, until the task is aborted.
pub async fn start(handler: Handler) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let Some(path) = read_request_path(&mut stream).await else {
                    return;
                };
                let (status, kind, body) =
                    handler(path)
                        .await
                        .unwrap_or((404, "text/plain", "not found\n".into()));
                let reason = if status == 200 { "OK" } else { "Error" };
                let head = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok((addr, task))
}

/// The path of a GET request, from a request head of at most 8 KiB.
async fn read_request_path(stream: &mut tokio::net::TcpStream) -> Option<String> {
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
    (words.next()? == "GET").then(|| words.next().map(str::to_owned))?
}
