//! The WebSocket driver: moves bytes between one client and a [`TerminalHub`]. Decisions
//! (limits, parsing, flow control) are in [`protocol`](super::protocol) and the hub; this file
//! only does the I/O. The protocol is described in `docs/terminal-protocol.md`.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use futures::{Sink, SinkExt, StreamExt};

use super::hub::{Attachment, HubEvent, TerminalHub};
use super::protocol::{Control, ServerMessage, Violation, check_input, parse_control};

/// Largest WebSocket message the transport accepts at all. Larger than the protocol's own
/// limits, so a frame between those and this gets an `error` message and a proper close code;
/// beyond this the transport drops the connection without reading the rest.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Normal closure: the shell ended.
const CLOSE_NORMAL: u16 = 1000;

/// Applies the transport limits to an upgrade; route handlers call this before `on_upgrade`.
pub fn limit(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
}

/// Serves one client until it leaves, breaks the protocol, or the shell ends. A read-only
/// client sees everything but its input and resizes are ignored.
#[tracing::instrument(skip_all, fields(terminal.read_only = read_only))]
pub async fn serve(socket: WebSocket, hub: Arc<TerminalHub>, read_only: bool) {
    let (mut sink, mut stream) = socket.split();
    let Ok(mut attachment) = hub.attach(read_only) else {
        let ended = ServerMessage::Error {
            code: "ended",
            message: "the terminal has ended".into(),
        };
        let _ = send_text(&mut sink, &ended).await;
        let _ = close(&mut sink, CLOSE_NORMAL).await;
        return;
    };
    let (rows, cols) = attachment.size();
    let hello = ServerMessage::Hello {
        rows,
        cols,
        read_only,
        window: attachment.window(),
    };
    if send_text(&mut sink, &hello).await.is_err()
        || sink
            .send(Message::Binary(attachment.snapshot()))
            .await
            .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            incoming = stream.next() => {
                // An error or the end of the stream: the client is gone.
                let Some(Ok(message)) = incoming else { return };
                match handle(&attachment, message).await {
                    Ok(Handled::Continue) => {}
                    Ok(Handled::Reply(reply)) => {
                        if send_text(&mut sink, &reply).await.is_err() {
                            return;
                        }
                    }
                    Ok(Handled::Leave) => return,
                    Err(violation) => {
                        tracing::debug!(%violation, "terminal client broke the protocol");
                        let error = ServerMessage::Error {
                            code: violation.error_code(),
                            message: violation.to_string(),
                        };
                        let _ = send_text(&mut sink, &error).await;
                        let _ = close(&mut sink, violation.close_code()).await;
                        return;
                    }
                }
            }
            event = attachment.next() => {
                let sent = match event {
                    Some(HubEvent::Output(bytes)) => sink.send(Message::Binary(bytes)).await,
                    Some(HubEvent::Snapshot(bytes)) => {
                        match send_text(&mut sink, &ServerMessage::Snapshot).await {
                            Ok(()) => sink.send(Message::Binary(bytes)).await,
                            Err(e) => Err(e),
                        }
                    }
                    Some(HubEvent::Resized { rows, cols }) => {
                        send_text(&mut sink, &ServerMessage::Size { rows, cols }).await
                    }
                    Some(HubEvent::Exit(exit)) => {
                        let exit = exit.unwrap_or_default();
                        let message = ServerMessage::Exit { code: exit.code, signal: exit.signal };
                        let _ = send_text(&mut sink, &message).await;
                        let _ = close(&mut sink, CLOSE_NORMAL).await;
                        return;
                    }
                    None => {
                        let _ = close(&mut sink, CLOSE_NORMAL).await;
                        return;
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
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

async fn send_text<S>(sink: &mut S, message: &ServerMessage) -> Result<(), S::Error>
where
    S: Sink<Message> + Unpin,
{
    sink.send(Message::Text(Utf8Bytes::from(message.to_json())))
        .await
}

async fn close<S>(sink: &mut S, code: u16) -> Result<(), S::Error>
where
    S: Sink<Message> + Unpin,
{
    sink.send(Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(""),
    })))
    .await
}
