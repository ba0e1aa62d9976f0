//! The WebSocket driver: moves bytes between one client and a [`TerminalHub`]. Decisions
//! (limits, parsing, flow control) are in [`protocol`](super::protocol) and the hub; this file
//! only does the I/O. The protocol is described in `docs/terminal-protocol.md`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use futures::{Sink, SinkExt, StreamExt};
use tokio::time::Instant;

use super::hub::{Attachment, HubEvent, TerminalHub};
use super::protocol::{Control, ServerMessage, Violation, check_input, parse_control};

/// Largest WebSocket message the transport accepts at all. Larger than the protocol's own
/// limits, so a frame between those and this gets an `error` message and a proper close code;
/// beyond this the transport drops the connection without reading the rest.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Normal closure: the shell ended.
const CLOSE_NORMAL: u16 = 1000;
/// Going away: the client was silent too long.
const CLOSE_GOING_AWAY: u16 = 1001;
/// How often the server pings; browsers answer WebSocket pings by themselves.
const PING_EVERY: Duration = Duration::from_secs(30);
/// A client not heard from (no message, no pong) for this long is taken as gone, say a laptop
/// that went to sleep, so it detaches and the grace period can start.
const SILENCE_LIMIT: Duration = Duration::from_secs(90);
/// A client that does not take a message within this long has stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Applies the transport limits to an upgrade; route handlers call this before `on_upgrade`.
pub fn limit(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
}

/// Serves one client until it leaves, breaks the protocol, goes silent, or the shell ends. A
/// read-only client sees everything but its input and resizes are ignored.
#[tracing::instrument(skip_all, fields(terminal.read_only = read_only))]
pub async fn serve(socket: WebSocket, hub: Arc<TerminalHub>, read_only: bool) {
    let (mut sink, mut stream) = socket.split();
    let Ok(mut attachment) = hub.attach(read_only) else {
        let ended = ServerMessage::Error {
            code: "ended",
            message: "the terminal has ended".into(),
        };
        let _ = send(&mut sink, text(&ended)).await;
        let _ = send(&mut sink, close(CLOSE_NORMAL)).await;
        return;
    };
    let (rows, cols) = attachment.size();
    let hello = ServerMessage::Hello {
        rows,
        cols,
        read_only,
        window: attachment.window(),
    };
    if send(&mut sink, text(&hello)).await.is_err()
        || send(&mut sink, Message::Binary(attachment.snapshot()))
            .await
            .is_err()
    {
        return;
    }
    let mut heartbeat = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        let sent = tokio::select! {
            incoming = stream.next() => {
                // An error or the end of the stream: the client is gone.
                let Some(Ok(message)) = incoming else { return };
                last_heard = Instant::now();
                match handle(&attachment, message).await {
                    Ok(Handled::Continue) => Ok(()),
                    Ok(Handled::Reply(reply)) => send(&mut sink, text(&reply)).await,
                    Ok(Handled::Leave) => return,
                    Err(violation) => {
                        tracing::debug!(%violation, "terminal client broke the protocol");
                        let error = ServerMessage::Error {
                            code: violation.error_code(),
                            message: violation.to_string(),
                        };
                        let _ = send(&mut sink, text(&error)).await;
                        let _ = send(&mut sink, close(violation.close_code())).await;
                        return;
                    }
                }
            }
            event = attachment.next() => match event {
                Some(HubEvent::Output(bytes)) => send(&mut sink, Message::Binary(bytes)).await,
                Some(HubEvent::Snapshot(bytes)) => {
                    match send(&mut sink, text(&ServerMessage::Snapshot)).await {
                        Ok(()) => send(&mut sink, Message::Binary(bytes)).await,
                        Err(gone) => Err(gone),
                    }
                }
                Some(HubEvent::Resized { rows, cols }) => {
                    send(&mut sink, text(&ServerMessage::Size { rows, cols })).await
                }
                Some(HubEvent::Exit(end)) => {
                    let (code, signal) = end.code_and_signal();
                    let _ = send(&mut sink, text(&ServerMessage::Exit { code, signal })).await;
                    let _ = send(&mut sink, close(CLOSE_NORMAL)).await;
                    return;
                }
                None => {
                    let _ = send(&mut sink, close(CLOSE_NORMAL)).await;
                    return;
                }
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    tracing::debug!("terminal client went silent");
                    let _ = send(&mut sink, close(CLOSE_GOING_AWAY)).await;
                    return;
                }
                send(&mut sink, Message::Ping(Bytes::new())).await
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

enum Handled {
    Continue,
    Reply(ServerMessage),
    Leave,
}

async fn handle(attachment: &Attachment, message: Message) -> Result<Handled, Violation> {
    match message {
        Message::Binary(bytes) => {
            check_input(&bytes)?;
            // A failed write means the shell or its sandbox is gone; the hub reports that as
            // an exit, which ends this connection.
            let _ = attachment.input(&bytes).await;
            Ok(Handled::Continue)
        }
        Message::Text(text) => match parse_control(text.as_str())? {
            Control::Resize { rows, cols } => {
                let _ = attachment.resize(rows, cols).await;
                Ok(Handled::Continue)
            }
            Control::Ack { bytes } => {
                attachment.ack(bytes);
                Ok(Handled::Continue)
            }
            Control::Ping => Ok(Handled::Reply(ServerMessage::Pong)),
        },
        // The transport answers pings itself.
        Message::Ping(_) | Message::Pong(_) => Ok(Handled::Continue),
        Message::Close(_) => Ok(Handled::Leave),
    }
}

/// The client stopped reading or the connection broke.
struct Gone;

/// Sends one message, giving up on a client that does not take it within [`SEND_TIMEOUT`].
async fn send<S>(sink: &mut S, message: Message) -> Result<(), Gone>
where
    S: Sink<Message> + Unpin,
{
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(Gone),
    }
}

fn text(message: &ServerMessage) -> Message {
    Message::Text(Utf8Bytes::from(message.to_json()))
}

fn close(code: u16) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(""),
    }))
}
