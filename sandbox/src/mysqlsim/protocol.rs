//! The little of the MySQL client/server protocol the simulator speaks:
//! the v10 greeting with `mysql_native_password` (any password is taken),
//! OK and ERR packets, and text result sets with classic EOF packets
//! (`CLIENT_DEPRECATE_EOF` is not offered); several statements in one
//! query (`CLIENT_MULTI_STATEMENTS`), each answer but the last flagged
//! `SERVER_MORE_RESULTS_EXISTS`, as a real server answers them.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const COM_QUIT: u8 = 0x01;
pub const COM_INIT_DB: u8 = 0x02;
pub const COM_QUERY: u8 = 0x03;
pub const COM_PING: u8 = 0x0e;
pub const COM_RESET_CONNECTION: u8 = 0x1f;

const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
const CLIENT_LONG_FLAG: u32 = 0x0000_0004;
const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
const CLIENT_TRANSACTIONS: u32 = 0x0000_2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
const CLIENT_MULTI_STATEMENTS: u32 = 0x0001_0000;
const CLIENT_MULTI_RESULTS: u32 = 0x0002_0000;
const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x0020_0000;

/// What the simulator offers; the client uses the intersection.
pub const CAPABILITIES: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_PLUGIN_AUTH_LENENC;

const SERVER_STATUS_AUTOCOMMIT: u16 = 0x0002;
const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

fn status(more: bool) -> u16 {
    if more {
        SERVER_STATUS_AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS
    } else {
        SERVER_STATUS_AUTOCOMMIT
    }
}
/// utf8mb4_general_ci.
const CHARSET: u8 = 45;
/// The largest command the simulator reads (queries are short).
pub const MAX_PACKET: usize = 1 << 20;

const TYPE_VAR_STRING: u8 = 0xfd;
const TYPE_LONGLONG: u8 = 0x08;

/// Appends one packet (header with `seq`, then `payload`) to `out`.
pub fn packet(out: &mut Vec<u8>, seq: &mut u8, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_le_bytes()[..3]);
    out.push(*seq);
    *seq = seq.wrapping_add(1);
    out.extend_from_slice(payload);
}

fn lenenc_int(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=250 => out.push(n as u8),
        251..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

fn lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    lenenc_int(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// The greeting: protocol 10, `version`, connection `id` and the 20-byte
/// `scramble`.
pub fn greeting(version: &str, id: u32, scramble: &[u8; 20]) -> Vec<u8> {
    let mut p = Vec::with_capacity(96);
    p.push(10);
    p.extend_from_slice(version.as_bytes());
    p.push(0);
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&scramble[..8]);
    p.push(0);
    p.extend_from_slice(&(CAPABILITIES as u16).to_le_bytes());
    p.push(CHARSET);
    p.extend_from_slice(&SERVER_STATUS_AUTOCOMMIT.to_le_bytes());
    p.extend_from_slice(&((CAPABILITIES >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(&scramble[8..]);
    p.push(0);
    p.extend_from_slice(b"mysql_native_password");
    p.push(0);
    let mut out = Vec::with_capacity(p.len() + 4);
    let mut seq = 0;
    packet(&mut out, &mut seq, &p);
    out
}

/// An OK packet.
pub fn ok(out: &mut Vec<u8>, seq: &mut u8) {
    ok_then(out, seq, false)
}

/// An OK packet; `more`: another statement's answer follows.
pub fn ok_then(out: &mut Vec<u8>, seq: &mut u8, more: bool) {
    let mut p = vec![0x00];
    lenenc_int(&mut p, 0);
    lenenc_int(&mut p, 0);
    p.extend_from_slice(&status(more).to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    packet(out, seq, &p);
}

/// An ERR packet with a server error code, SQL state and message.
pub fn err(out: &mut Vec<u8>, seq: &mut u8, code: u16, state: &str, message: &str) {
    let mut p = vec![0xff];
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    let mut st = [b'H', b'Y', b'0', b'0', b'0'];
    for (d, s) in st.iter_mut().zip(state.bytes()) {
        *d = s;
    }
    p.extend_from_slice(&st);
    p.extend_from_slice(message.as_bytes());
    packet(out, seq, &p);
}

fn eof(out: &mut Vec<u8>, seq: &mut u8, more: bool) {
    let mut p = vec![0xfe];
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&status(more).to_le_bytes());
    packet(out, seq, &p);
}

/// A column of a result set: its name, and whether it holds numbers
/// (which only changes the type the client is told).
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub numeric: bool,
}

impl Column {
    pub fn text(name: impl Into<String>) -> Column {
        Column {
            name: name.into(),
            numeric: false,
        }
    }

    pub fn number(name: impl Into<String>) -> Column {
        Column {
            name: name.into(),
            numeric: true,
        }
    }
}

/// A text-protocol result set: column definitions, EOF, rows (NULL as
/// `None`), EOF; `more`: another statement's answer follows.
pub fn result_set(
    out: &mut Vec<u8>,
    seq: &mut u8,
    columns: &[Column],
    rows: &[Vec<Option<String>>],
    more: bool,
) {
    let mut p = Vec::with_capacity(64);
    lenenc_int(&mut p, columns.len() as u64);
    packet(out, seq, &p);
    for c in columns {
        p.clear();
        lenenc_str(&mut p, b"def");
        lenenc_str(&mut p, b"");
        lenenc_str(&mut p, b"");
        lenenc_str(&mut p, b"");
        lenenc_str(&mut p, c.name.as_bytes());
        lenenc_str(&mut p, c.name.as_bytes());
        p.push(0x0c);
        p.extend_from_slice(&u16::from(CHARSET).to_le_bytes());
        p.extend_from_slice(&1024u32.to_le_bytes());
        p.push(if c.numeric {
            TYPE_LONGLONG
        } else {
            TYPE_VAR_STRING
        });
        p.extend_from_slice(&0u16.to_le_bytes());
        p.push(0);
        p.extend_from_slice(&[0, 0]);
        packet(out, seq, &p);
    }
    eof(out, seq, false);
    for row in rows {
        p.clear();
        for v in row {
            match v {
                Some(s) => lenenc_str(&mut p, s.as_bytes()),
                None => p.push(0xfb),
            }
        }
        packet(out, seq, &p);
    }
    eof(out, seq, more);
}

/// The statements of one query, split at the semicolons outside quoted
/// strings and names (comments are not looked into); empty ones left out.
pub fn statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quote: Option<u8> = None;
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == b'\\' && q != b'`' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, b'\'' | b'"' | b'`') => quote = Some(c),
            None if c == b';' => {
                out.push(&sql[start..i]);
                start = i + 1;
            }
            None => {}
        }
        i += 1;
    }
    out.push(&sql[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Reads one packet into `buf` (cleared first); returns its sequence id.
/// `None` at a clean end of stream.
pub async fn read_packet<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<u8>> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    if len > MAX_PACKET {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "packet larger than the simulator reads",
        ));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(Some(header[3]))
}

/// Writes `out` whole and clears it (its capacity kept for the next
/// answer, but never more than a few KiB).
pub async fn flush<W: AsyncWrite + Unpin>(w: &mut W, out: &mut Vec<u8>) -> std::io::Result<()> {
    w.write_all(out).await?;
    out.clear();
    if out.capacity() > 16 * 1024 {
        out.shrink_to(4096);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_splits_into_its_statements_at_semicolons_outside_quotes() {
        assert_eq!(
            statements("SHOW SLAVE STATUS; SELECT 'a;b', \"c;\\\"d\" ;; SELECT `x;y`;"),
            vec![
                "SHOW SLAVE STATUS",
                "SELECT 'a;b', \"c;\\\"d\"",
                "SELECT `x;y`"
            ]
        );
        assert_eq!(statements("SELECT 1"), vec!["SELECT 1"]);
        assert!(statements(" ; ").is_empty());
    }

    #[test]
    fn lengths_are_encoded_as_the_protocol_says() {
        let mut v = Vec::new();
        lenenc_int(&mut v, 250);
        lenenc_int(&mut v, 251);
        lenenc_int(&mut v, 70_000);
        assert_eq!(v, [250, 0xfc, 251, 0, 0xfd, 0x70, 0x11, 0x01]);
        let mut out = Vec::new();
        let mut seq = 3;
        packet(&mut out, &mut seq, b"abc");
        assert_eq!(out, [3, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(seq, 4);
    }
}
