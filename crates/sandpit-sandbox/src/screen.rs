//! The snapshot: bytes that make a terminal emulator (xterm.js in the browser) show what the
//! server's screen model shows, whatever that emulator showed before.
//!
//! Order: a full reset (RIS, and erase of the emulator's own scrollback), then the primary
//! screen's history line by line, pushed up into the emulator's scrollback, then the alternate
//! screen if a full-screen program is using it, then the visible contents with colours, the
//! cursor position and visibility, and the input modes (application cursor and keypad,
//! bracketed paste, mouse reporting) from `vt100::Screen::state_formatted`.
//!
//! What the screen model does not expose is not restored: the primary screen hidden behind an
//! alternate screen (blank once the program leaves it), a scroll region, the window title.

/// Full reset (RIS), then erase saved lines: xterm.js keeps its scrollback across RIS.
const RESET: &[u8] = b"\x1bc\x1b[3J";
/// Switch to the alternate screen, saving the cursor (DECSET 1049), as full-screen programs do.
const ENTER_ALTERNATE: &[u8] = b"\x1b[?1049h";
/// Plain attributes and a new line after each history line.
const END_OF_HISTORY_LINE: &[u8] = b"\x1b[m\r\n";

/// The snapshot of `parser`'s screen (see the module docs). Needs `&mut` only to page through
/// the scrollback; the parser's view is back at the bottom when this returns.
pub fn snapshot(parser: &mut vt100::Parser) -> Vec<u8> {
    let mut out = RESET.to_vec();
    let screen = parser.screen_mut();
    let (rows, cols) = screen.size();
    if screen.alternate_screen() {
        out.extend_from_slice(ENTER_ALTERNATE);
    } else {
        // The history is only reachable through the scrollback view: at offset k, the first
        // visible row is the k-th line from the end of the history.
        screen.set_scrollback(usize::MAX);
        let lines = screen.scrollback();
        for k in (1..=lines).rev() {
            screen.set_scrollback(k);
            if let Some(row) = screen.rows_formatted(0, cols).next() {
                out.extend_from_slice(&row);
            }
            out.extend_from_slice(END_OF_HISTORY_LINE);
        }
        screen.set_scrollback(0);
        if lines > 0 {
            // Scroll the history off the top: the screen's first row follows the last line.
            out.extend(std::iter::repeat_n(
                b'\n',
                usize::from(rows.saturating_sub(1)),
            ));
        }
    }
    out.extend_from_slice(&parser.screen().state_formatted());
    out
}

/// The visible screen alone (no history): what [`snapshot`] sends when the history would be
/// too large to send.
pub fn snapshot_visible(parser: &vt100::Parser) -> Vec<u8> {
    let mut out = RESET.to_vec();
    if parser.screen().alternate_screen() {
        out.extend_from_slice(ENTER_ALTERNATE);
    }
    out.extend_from_slice(&parser.screen().state_formatted());
    out
}

/// Output waiting for the screen model beyond this is parsed at once.
const PARSE_BATCH: usize = 1 << 20;

/// The server's screen model with lazy parsing: output collects in `pending` and is parsed in
/// batches, and only when something needs the screen or a batch is full. A batch of plain text
/// (see [`skippable_prefix`]) is parsed from where its last screen-and-scrollback's worth of
/// lines starts, because everything before that would scroll out of the model anyway — so a
/// `cat` of a large file costs a fraction of its bytes in parsing.
pub struct ScreenModel {
    parser: vt100::Parser,
    scrollback: usize,
    pending: Vec<u8>,
}

impl ScreenModel {
    pub fn new(rows: u16, cols: u16, scrollback: usize) -> Self {
        Self {
            parser: vt100::Parser::new(rows, cols, scrollback),
            scrollback,
            pending: Vec::new(),
        }
    }

    /// Takes output; parses when a batch is full.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= PARSE_BATCH {
            self.flush();
        }
    }

    /// The parser, with everything fed so far applied.
    pub fn parser(&mut self) -> &mut vt100::Parser {
        self.flush();
        &mut self.parser
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let rows = usize::from(self.parser.screen().size().0);
        let skip = skippable_prefix(&self.pending, rows + self.scrollback + 2);
        if skip > 0 {
            // The skipped text ended a line (`\r\n`); the kept lines then scroll everything
            // older out of the screen and the scrollback, exactly as the whole would have.
            self.parser.process(b"\r\n");
        }
        self.parser.process(&self.pending[skip..]);
        self.pending.clear();
    }
}

/// How many leading bytes of `bytes` can be left unparsed without changing the final screen,
/// scrollback or modes: only plain text qualifies (printable ASCII, `\r`, `\n`, `\t` — no escape
/// sequence or other control that could change a mode), and the skip ends right after a
/// `\r\n` that is followed by at least `keep_lines` more line feeds. 0 when it does not apply.
pub fn skippable_prefix(bytes: &[u8], keep_lines: usize) -> usize {
    if keep_lines == 0
        || !bytes
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) || matches!(b, b'\r' | b'\n' | b'\t'))
    {
        return 0;
    }
    let mut seen = 0usize;
    for (i, &b) in bytes.iter().enumerate().rev() {
        if b != b'\n' {
            continue;
        }
        if seen == keep_lines {
            // `i` ends the prefix; it must end with `\r\n`.
            return if i >= 1 && bytes[i - 1] == b'\r' {
                i + 1
            } else {
                0
            };
        }
        seen += 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(snapshot: &[u8], rows: u16, cols: u16) -> vt100::Parser {
        let mut fresh = vt100::Parser::new(rows, cols, 1000);
        // A terminal that showed something else before must end up the same.
        fresh.process(b"\x1b[?1049h\x1b[31mstale\x1b[?1h\x1b[?2004h");
        fresh.process(snapshot);
        fresh
    }

    fn history(parser: &mut vt100::Parser) -> Vec<String> {
        let screen = parser.screen_mut();
        let (_, cols) = screen.size();
        screen.set_scrollback(usize::MAX);
        let n = screen.scrollback();
        let lines = (1..=n)
            .rev()
            .map(|k| {
                screen.set_scrollback(k);
                screen.rows(0, cols).next().unwrap_or_default()
            })
            .collect();
        screen.set_scrollback(0);
        lines
    }

    #[test]
    fn a_snapshot_restores_contents_colours_cursor_and_history() {
        let mut parser = vt100::Parser::new(24, 80, 1000);
        for i in 0..40 {
            parser.process(format!("line {i}\r\n").as_bytes());
        }
        parser.process(b"\x1b[1;32mgreen\x1b[m $ ");
        let snap = snapshot(&mut parser);
        let mut copy = replay(&snap, 24, 80);
        assert_eq!(copy.screen().contents(), parser.screen().contents());
        assert_eq!(
            copy.screen().contents_formatted(),
            parser.screen().contents_formatted()
        );
        assert_eq!(copy.screen().cursor_position(), (23, 8));
        assert!(!copy.screen().alternate_screen());
        assert!(!copy.screen().bracketed_paste());
        assert!(!copy.screen().application_cursor());
        let copied = history(&mut copy);
        assert_eq!(copied, history(&mut parser));
        assert_eq!(copied.len(), 17);
        assert_eq!(copied[0], "line 0");
        assert_eq!(
            parser.screen().scrollback(),
            0,
            "the view is back at the bottom"
        );
    }

    #[test]
    fn a_snapshot_re_enters_the_alternate_screen_with_its_modes() {
        let mut parser = vt100::Parser::new(24, 80, 1000);
        parser.process(b"before\r\n");
        parser.process(b"\x1b[?1049h\x1b[?1h\x1b=\x1b[?2004h\x1b[?25l\x1b[5;10HHELLO");
        let snap = snapshot(&mut parser);
        let copy = replay(&snap, 24, 80);
        let screen = copy.screen();
        assert!(screen.alternate_screen());
        assert!(screen.application_cursor());
        assert!(screen.application_keypad());
        assert!(screen.bracketed_paste());
        assert!(screen.hide_cursor());
        assert_eq!(screen.cursor_position(), (4, 14));
        assert_eq!(screen.cell(4, 9).map(|c| c.contents()), Some("H"));
        assert_eq!(screen.contents(), parser.screen().contents());
    }

    #[test]
    fn a_short_screen_has_no_history_to_push() {
        let mut parser = vt100::Parser::new(5, 20, 100);
        parser.process(b"$ echo hi\r\nhi\r\n$ ");
        let snap = snapshot(&mut parser);
        let mut copy = replay(&snap, 5, 20);
        assert_eq!(copy.screen().contents(), "$ echo hi\nhi\n$ ");
        assert_eq!(copy.screen().cursor_position(), (2, 2));
        assert!(history(&mut copy).is_empty());
    }

    #[test]
    fn only_plain_text_with_enough_lines_after_a_crlf_is_skipped() {
        assert_eq!(skippable_prefix(b"a\r\nb\r\nc\r\n", 2), 3);
        assert_eq!(
            skippable_prefix(b"a\r\nb\r\nc\r\n", 3),
            0,
            "not enough lines"
        );
        assert_eq!(
            skippable_prefix(b"a\nb\r\nc\r\n", 2),
            0,
            "a bare LF boundary"
        );
        assert_eq!(
            skippable_prefix(b"\x1b[31ma\r\nb\r\nc\r\n", 1),
            0,
            "an escape"
        );
        assert_eq!(
            skippable_prefix("é\r\nb\r\nc\r\n".as_bytes(), 1),
            0,
            "not ASCII"
        );
        assert_eq!(skippable_prefix(b"a\x08\r\nb\r\nc\r\n", 1), 0, "a control");
    }

    fn flood(lines: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..lines {
            if i % 97 == 0 {
                // Longer than a row: it wraps.
                out.extend_from_slice(format!("{i} {}\r\n", "wide ".repeat(40)).as_bytes());
            } else {
                out.extend_from_slice(format!("line {i}\tof the flood\r\n").as_bytes());
            }
        }
        out.extend_from_slice(b"$ half a line");
        out
    }

    #[test]
    fn a_skipped_flood_leaves_the_same_screen_and_scrollback() {
        for (scrollback, before) in [
            (100, &b"\x1b[1;32mprompt\x1b[m $ cat big"[..]),
            (1000, &b"\x1b[?1049h\x1b[5;10Hin the alternate screen"[..]),
            (0, &b"\x1b[?2004h\x1b[?1h"[..]),
        ] {
            let mut whole = vt100::Parser::new(24, 80, scrollback);
            let mut lazy = ScreenModel::new(24, 80, scrollback);
            whole.process(before);
            lazy.feed(before);
            let _ = lazy.parser();
            let text = flood(5000);
            whole.process(&text);
            // In pieces, as output arrives; the skip happens on the full batches.
            for chunk in text.chunks(32 << 10) {
                lazy.feed(chunk);
            }
            assert_eq!(
                snapshot(&mut whole),
                snapshot(lazy.parser()),
                "scrollback {scrollback}"
            );
        }
    }
}
