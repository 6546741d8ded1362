//! The guest's text console as an operator at its keyboard and monitor meets it: keys pressed
//! through QMP `send-key` (a PS/2 keyboard, US layout, as a PC server's), and the screen of a
//! virtual terminal read back as text through the agent (`/dev/vcsu<N>`: the kernel's own copy
//! of what the VT shows, in Unicode), so a test can drive a TUI such as the first-boot wizard
//! exactly as a person would, and read what it drew without OCR.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::VmError;
use crate::machine::Machine;

/// A key that is not a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Enter,
    Tab,
    Esc,
    Backspace,
    Left,
    Right,
    Up,
    Down,
    F10,
}

impl Key {
    fn qcode(self) -> &'static str {
        match self {
            Key::Enter => "ret",
            Key::Tab => "tab",
            Key::Esc => "esc",
            Key::Backspace => "backspace",
            Key::Left => "left",
            Key::Right => "right",
            Key::Up => "up",
            Key::Down => "down",
            Key::F10 => "f10",
        }
    }
}

/// The QEMU key codes (`QKeyCode`) that type `c` on a US keyboard: with shift or not.
pub fn qcodes(c: char) -> Option<(bool, &'static str)> {
    const LOWER: [&str; 26] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
        "s", "t", "u", "v", "w", "x", "y", "z",
    ];
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    // The shifted digit row, `)!@#$%^&*(`, in digit order.
    const SHIFTED_DIGITS: &str = ")!@#$%^&*(";
    if c.is_ascii_lowercase() {
        return Some((false, LOWER[usize::from(c as u8 - b'a')]));
    }
    if c.is_ascii_uppercase() {
        return Some((true, LOWER[usize::from(c as u8 - b'A')]));
    }
    if c.is_ascii_digit() {
        return Some((false, DIGITS[usize::from(c as u8 - b'0')]));
    }
    if let Some(i) = SHIFTED_DIGITS.find(c) {
        return Some((true, DIGITS[i]));
    }
    Some(match c {
        ' ' => (false, "spc"),
        '-' => (false, "minus"),
        '_' => (true, "minus"),
        '=' => (false, "equal"),
        '+' => (true, "equal"),
        '.' => (false, "dot"),
        '>' => (true, "dot"),
        ',' => (false, "comma"),
        '<' => (true, "comma"),
        '/' => (false, "slash"),
        '?' => (true, "slash"),
        ';' => (false, "semicolon"),
        ':' => (true, "semicolon"),
        '\'' => (false, "apostrophe"),
        '"' => (true, "apostrophe"),
        '[' => (false, "bracket_left"),
        '{' => (true, "bracket_left"),
        ']' => (false, "bracket_right"),
        '}' => (true, "bracket_right"),
        '\\' => (false, "backslash"),
        '|' => (true, "backslash"),
        '`' => (false, "grave_accent"),
        '~' => (true, "grave_accent"),
        _ => return None,
    })
}

fn key_list(shift: bool, code: &str) -> Value {
    let mut keys = Vec::new();
    if shift {
        keys.push(json!({ "type": "qcode", "data": "shift" }));
    }
    keys.push(json!({ "type": "qcode", "data": code }));
    json!({ "keys": keys })
}

/// What a virtual terminal shows, one string per row (trailing blanks dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screen {
    pub columns: usize,
    pub rows: Vec<String>,
}

impl Screen {
    /// Builds the screen from the VT's size (`rows columns`, the first two bytes of
    /// `/dev/vcsaN` as `od` prints them) and its cells as text, row after row, no newlines.
    pub fn parse(size: &str, cells: &str) -> Result<Screen, String> {
        let mut n = size.split_whitespace().map(str::parse::<usize>);
        let (Some(Ok(rows)), Some(Ok(columns))) = (n.next(), n.next()) else {
            return Err(format!("unreadable console size {size:?}"));
        };
        let cells: Vec<char> = cells.chars().collect();
        if columns == 0 || cells.len() != rows * columns {
            return Err(format!(
                "the console is {columns}×{rows} but {} cells were read",
                cells.len()
            ));
        }
        let rows = cells
            .chunks(columns)
            .map(|r| r.iter().collect::<String>().trim_end().to_owned())
            .collect();
        Ok(Screen { columns, rows })
    }

    pub fn contains(&self, text: &str) -> bool {
        self.rows.iter().any(|r| r.contains(text))
    }

    /// The rows' text, one line each.
    pub fn text(&self) -> String {
        self.rows.join("\n")
    }
}

impl fmt::Display for Screen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl Machine {
    /// Presses one key, as a person would (QEMU holds it 100 ms).
    pub fn press(&mut self, key: Key) -> Result<(), VmError> {
        self.qmp_send("send-key", key_list(false, key.qcode()))
    }

    /// Types `text` on the keyboard, one key press per character, in order.
    pub fn type_text(&mut self, text: &str) -> Result<(), VmError> {
        for c in text.chars() {
            let (shift, code) = qcodes(c).ok_or_else(|| VmError::Qmp {
                command: "send-key".into(),
                message: format!("no US-keyboard key types {c:?}"),
            })?;
            self.qmp_send("send-key", key_list(shift, code))?;
        }
        Ok(())
    }

    /// What virtual terminal `vt` (1 = tty1) shows now.
    pub fn screen(&mut self, vt: u8) -> Result<Screen, VmError> {
        // The size first, then the cells; the separator cannot be drawn on a console.
        let command = format!(
            "head -c 2 /dev/vcsa{vt} | od -An -tu1 && printf '\\001' && \
             iconv -f UTF-32LE -t UTF-8 /dev/vcsu{vt}"
        );
        let out = self.succeed(&command)?;
        let (size, cells) = out.split_once('\u{1}').unwrap_or((&out, ""));
        Screen::parse(size, cells).map_err(|message| VmError::Unexpected {
            message: format!("tty{vt}: {message}"),
            detail: String::new(),
            serial: self.serial_log().to_owned(),
        })
    }

    /// Waits until `vt` shows `text` (checked every half second); fails with the last screen.
    pub fn wait_for_screen(
        &mut self,
        vt: u8,
        text: &str,
        timeout: Duration,
    ) -> Result<Screen, VmError> {
        let deadline = Instant::now() + self.time_scale().scale(timeout);
        loop {
            let screen = self.screen(vt)?;
            if screen.contains(text) {
                return Ok(screen);
            }
            if Instant::now() >= deadline {
                return Err(VmError::Unexpected {
                    message: format!("tty{vt} never showed {text:?}"),
                    detail: format!("\nit shows:\n{screen}"),
                    serial: self.serial_log().to_owned(),
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_printable_ascii_character_has_a_key() {
        for c in ' '..='~' {
            assert!(qcodes(c).is_some(), "{c:?}");
        }
        assert_eq!(qcodes('A'), Some((true, "a")));
        assert_eq!(qcodes('!'), Some((true, "1")));
        assert_eq!(qcodes('/'), Some((false, "slash")));
        assert_eq!(qcodes('é'), None);
    }

    #[test]
    fn a_screen_is_cut_into_rows_of_its_width() {
        let s = Screen::parse("  2   4\n", "ab  ┌─┐ ").unwrap();
        assert_eq!(s.rows, ["ab", "┌─┐"]);
        assert!(s.contains("─┐"));
        assert!(Screen::parse(" 2 4", "abc").is_err());
        assert!(Screen::parse("", "").is_err());
    }
}
