//! A lean MySQL/MariaDB client for the prober's kept connections: the
//! text protocol only, over plain TCP, with `mysql_native_password` and
//! the fast path of `caching_sha2_password`.
//!
//! Between calls a [`WireConn`] holds its `TcpStream` and a few small
//! fields and nothing else: every call reads the socket into a buffer of
//! its own, parses packets out of it and drops it at its end, so ten
//! thousand idle connections cost their sockets and little more.
//!
//! Errors are the ones [`super::conn`] gives over the full driver, so that
//! orca's classification of them holds: a server's ERR packet is
//! `MysqlError::Server` with a [`mysql_async::ServerError`], a failed or
//! closed socket is `MysqlError::Server` with an I/O error (unreachable),
//! a deadline is `MysqlError::Timeout`, a malformed answer is
//! `MysqlError::Answer`. A server this client cannot authenticate with
//! (another plugin, or `caching_sha2_password` asking for its full
//! authentication) answers `MysqlError::Answer`, for which
//! [`needs_fallback`] is true: the caller then uses the full driver.

use std::fmt;
use std::future::Future;
use std::io;
use std::time::Duration;

use sha1::{Digest, Sha1};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Credentials;
use super::MysqlError;
use super::conn::Timeouts;
use super::parse::TextRow;
use crate::topology::InstanceKey;

const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
const CLIENT_LONG_FLAG: u32 = 0x0000_0004;
const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
const CLIENT_TRANSACTIONS: u32 = 0x0000_2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
const CLIENT_MULTI_STATEMENTS: u32 = 0x0001_0000;
const CLIENT_MULTI_RESULTS: u32 = 0x0002_0000;
const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x0020_0000;
const CLIENT_DEPRECATE_EOF: u32 = 0x0100_0000;

/// What this client asks for; it uses the part the server offers.
const CLIENT_CAPABILITIES: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_LONG_FLAG
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | CLIENT_DEPRECATE_EOF;

/// What the server must offer for this client to talk to it at all.
const REQUIRED: u32 = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION;

const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;

/// The largest payload of one packet; a longer one continues in the next.
const MAX_PAYLOAD: usize = 0xff_ffff;
/// The largest packet this client accepts, as it tells the server.
const MAX_PACKET: u32 = 16 * 1024 * 1024;
/// utf8mb4_general_ci.
const CHARSET_UTF8MB4: u8 = 45;
/// How much a call reads from the socket at a time, at least.
const CHUNK: usize = 4096;
/// Auth switches and extra rounds a handshake may take before it is
/// called malformed.
const MAX_AUTH_ROUNDS: usize = 4;

const NATIVE: &str = "mysql_native_password";
const CACHING_SHA2: &str = "caching_sha2_password";

/// The start of the detail of every "this client cannot authenticate
/// here" answer (see [`needs_fallback`]).
const UNSUPPORTED_AUTH: &str = "authentication this client does not do: ";

/// True exactly for the errors of [`WireConn::connect`] that mean this
/// client cannot authenticate with the server (another authentication
/// plugin, or full `caching_sha2_password` authentication, which needs
/// TLS or RSA): the caller should connect with the full driver instead.
pub fn needs_fallback(e: &MysqlError) -> bool {
    matches!(e, MysqlError::Answer { detail, .. } if detail.starts_with(UNSUPPORTED_AUTH))
}

/// One kept connection: the socket, the capabilities agreed with the
/// server, its connection id, and whether the last call read its whole
/// answer (a call cut by its deadline leaves the rest on the socket, and
/// the connection cannot be used again).
pub struct WireConn {
    stream: TcpStream,
    caps: u32,
    id: u32,
    clean: bool,
}

impl fmt::Debug for WireConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireConn")
            .field("id", &self.id)
            .field("peer", &self.stream.peer_addr().ok())
            .field("caps", &format_args!("{:#010x}", self.caps))
            .field("clean", &self.clean)
            .finish()
    }
}

impl WireConn {
    /// TCP connect + handshake + auth, the whole bounded by
    /// `timeouts.connect`.
    pub async fn connect(
        key: &InstanceKey,
        creds: &Credentials,
        timeouts: Timeouts,
    ) -> Result<WireConn, MysqlError> {
        let what = "connecting";
        bounded(key, timeouts.connect, what, async {
            let mut stream = TcpStream::connect((key.host.as_str(), key.port)).await?;
            stream.set_nodelay(true)?;
            let (caps, id) = handshake(&mut stream, creds).await?;
            Ok(WireConn {
                stream,
                caps,
                id,
                clean: true,
            })
        })
        .await
    }

    /// The server's id of this connection (what `KILL CONNECTION` takes).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The statements joined by "; " and sent as one query: the rows of
    /// each, in order, up to the first that failed, whose server error is
    /// returned beside them (the server runs none after it). `Err` only
    /// for a timeout or a broken connection or answer. The whole bounded
    /// by `limit`; after `Ok` every answer has been read.
    pub async fn query_batch(
        &mut self,
        key: &InstanceKey,
        limit: Duration,
        what: &'static str,
        stmts: &[String],
    ) -> Result<(Vec<Vec<TextRow>>, Option<MysqlError>), MysqlError> {
        let sql = stmts.join("; ");
        let (sets, failed) = self.run(key, limit, what, &sql, stmts.len()).await?;
        Ok((sets, failed.map(|e| server_error(key, what, e))))
    }

    /// One statement's rows.
    pub async fn query_rows(
        &mut self,
        key: &InstanceKey,
        limit: Duration,
        what: &'static str,
        sql: &str,
    ) -> Result<Vec<TextRow>, MysqlError> {
        let (mut sets, failed) = self.run(key, limit, what, sql, 1).await?;
        if let Some(e) = failed {
            return Err(server_error(key, what, e));
        }
        Ok(sets.pop().unwrap_or_default())
    }

    /// A statement whose answer is an OK packet (or whose rows are not
    /// wanted); a server error is `Err(MysqlError::Server {..})`.
    pub async fn query_drop(
        &mut self,
        key: &InstanceKey,
        limit: Duration,
        what: &'static str,
        sql: &str,
    ) -> Result<(), MysqlError> {
        let (_, failed) = self.run(key, limit, what, sql, 0).await?;
        match failed {
            Some(e) => Err(server_error(key, what, e)),
            None => Ok(()),
        }
    }

    /// COM_QUIT, then the socket's shutdown, bounded by `limit`; errors
    /// are ignored (the socket is closed when it is dropped either way).
    pub async fn close(mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            let mut out = Vec::with_capacity(5);
            frame(&mut out, 0, &[COM_QUIT]);
            self.stream.write_all(&out).await?;
            self.stream.shutdown().await
        })
        .await;
    }

    /// Sends `sql` and reads every answer, keeping the rows of the first
    /// `keep`.
    async fn run(
        &mut self,
        key: &InstanceKey,
        limit: Duration,
        what: &'static str,
        sql: &str,
        keep: usize,
    ) -> Result<(Vec<Vec<TextRow>>, Option<mysql_async::ServerError>), MysqlError> {
        bounded(key, limit, what, async {
            if !self.clean {
                return Err(Fail::Io(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "an earlier call left this connection in the middle of an answer",
                )));
            }
            self.clean = false;
            let mut s = Session::new(&mut self.stream);
            s.send_query(sql).await?;
            let answer = read_results(&mut s, self.caps, keep).await?;
            if !s.drained() {
                return Err(Fail::Malformed("bytes after the last answer".into()));
            }
            self.clean = true;
            Ok(answer)
        })
        .await
    }
}

/// What went wrong inside one call, before it names the instance.
#[derive(Debug)]
enum Fail {
    Io(io::Error),
    Server(mysql_async::ServerError),
    Malformed(String),
    Unsupported(String),
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail::Io(e)
    }
}

fn server_error(key: &InstanceKey, what: &'static str, e: mysql_async::ServerError) -> MysqlError {
    MysqlError::Server {
        key: key.clone(),
        what,
        source: mysql_async::Error::Server(e),
    }
}

impl Fail {
    fn into_error(self, key: &InstanceKey, what: &'static str) -> MysqlError {
        match self {
            Fail::Io(e) => MysqlError::Server {
                key: key.clone(),
                what,
                source: mysql_async::Error::Io(mysql_async::IoError::Io(e)),
            },
            Fail::Server(e) => server_error(key, what, e),
            Fail::Malformed(detail) => MysqlError::Answer {
                key: key.clone(),
                what,
                detail,
            },
            Fail::Unsupported(detail) => MysqlError::Answer {
                key: key.clone(),
                what: "connecting",
                detail: format!("{UNSUPPORTED_AUTH}{detail}"),
            },
        }
    }
}

/// Runs `fut` with a deadline, naming the instance and what was done.
async fn bounded<T, F>(
    key: &InstanceKey,
    limit: Duration,
    what: &'static str,
    fut: F,
) -> Result<T, MysqlError>
where
    F: Future<Output = Result<T, Fail>>,
{
    super::conn::bounded_with(key, limit, what, fut, |e: Fail| e.into_error(key, what)).await
}

fn malformed(what: &str) -> Fail {
    Fail::Malformed(what.to_string())
}

/// Appends `payload` to `out` as packets from sequence id `seq` (split at
/// [`MAX_PAYLOAD`], with an empty last packet when its length is a
/// multiple of it); returns the next sequence id.
fn frame(out: &mut Vec<u8>, mut seq: u8, payload: &[u8]) -> u8 {
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PAYLOAD);
        out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        out.push(seq);
        seq = seq.wrapping_add(1);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        if n < MAX_PAYLOAD {
            return seq;
        }
    }
}

/// One call's view of the socket: a read buffer that lives as long as the
/// call, and the sequence id of the next packet to send.
struct Session<'a, S> {
    stream: &'a mut S,
    buf: Vec<u8>,
    pos: usize,
    /// A payload continued over several packets, put back together.
    joined: Vec<u8>,
    seq: u8,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Session<'a, S> {
    fn new(stream: &'a mut S) -> Self {
        Session {
            stream,
            buf: Vec::new(),
            pos: 0,
            joined: Vec::new(),
            seq: 0,
        }
    }

    /// Reads until `need` unparsed bytes are buffered.
    async fn fill(&mut self, need: usize) -> Result<(), Fail> {
        while self.buf.len() - self.pos < need {
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            self.buf.reserve(CHUNK.max(need - self.buf.len()));
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(Fail::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
        }
        Ok(())
    }

    /// The next payload (continuation packets joined); the next packet
    /// sent follows its sequence id.
    async fn packet(&mut self) -> Result<&[u8], Fail> {
        let mut continued = false;
        loop {
            self.fill(4).await?;
            let h = &self.buf[self.pos..self.pos + 4];
            let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
            self.seq = h[3].wrapping_add(1);
            self.fill(4 + len).await?;
            let start = self.pos + 4;
            self.pos = start + len;
            if len < MAX_PAYLOAD && !continued {
                return Ok(&self.buf[start..start + len]);
            }
            if !continued {
                self.joined.clear();
                continued = true;
            }
            if self.joined.len() + len > MAX_PACKET as usize * 64 {
                return Err(malformed("a packet larger than 1 GiB"));
            }
            self.joined.extend_from_slice(&self.buf[start..start + len]);
            if len < MAX_PAYLOAD {
                return Ok(&self.joined);
            }
        }
    }

    /// True when nothing read is left unparsed.
    fn drained(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Sends `payload` with the next sequence id.
    async fn send(&mut self, payload: &[u8]) -> Result<(), Fail> {
        let mut out = Vec::with_capacity(payload.len() + 4);
        self.seq = frame(&mut out, self.seq, payload);
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Sends a COM_QUERY, the first packet of a new command.
    async fn send_query(&mut self, sql: &str) -> Result<(), Fail> {
        let mut payload = Vec::with_capacity(sql.len() + 1);
        payload.push(COM_QUERY);
        payload.extend_from_slice(sql.as_bytes());
        self.seq = 0;
        self.send(&payload).await
    }
}

/// A reader of one payload's fields.
struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8]) -> Self {
        Cursor { b }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Fail> {
        if self.b.len() < n {
            return Err(malformed("a packet shorter than its fields"));
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Fail> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Fail> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn uint(&mut self, n: usize) -> Result<u64, Fail> {
        let b = self.take(n)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.b)
    }

    /// A length-encoded integer; `None` for the NULL marker (0xFB).
    fn lenenc(&mut self) -> Result<Option<u64>, Fail> {
        match self.u8()? {
            n @ 0..=0xfa => Ok(Some(u64::from(n))),
            0xfb => Ok(None),
            0xfc => self.uint(2).map(Some),
            0xfd => self.uint(3).map(Some),
            0xfe => self.uint(8).map(Some),
            0xff => Err(malformed("0xFF as a length-encoded integer")),
        }
    }

    fn lenenc_int(&mut self) -> Result<u64, Fail> {
        self.lenenc()?
            .ok_or_else(|| malformed("NULL where a length was expected"))
    }

    /// A length-encoded string; `None` for NULL.
    fn lenenc_str(&mut self) -> Result<Option<&'a [u8]>, Fail> {
        match self.lenenc()? {
            None => Ok(None),
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| malformed("a string longer than memory"))?;
                self.take(n).map(Some)
            }
        }
    }

    /// A NUL-terminated string (or the rest, when no NUL ends it).
    fn nul_str(&mut self) -> &'a [u8] {
        match self.b.iter().position(|&c| c == 0) {
            Some(i) => {
                let s = &self.b[..i];
                self.b = &self.b[i + 1..];
                s
            }
            None => self.rest(),
        }
    }
}

/// An ERR packet (its 0xFF included). Before the handshake a server sends
/// it without the SQL state.
fn parse_err(p: &[u8]) -> Result<mysql_async::ServerError, Fail> {
    let mut c = Cursor::new(p);
    if c.u8()? != 0xff {
        return Err(malformed("not an ERR packet"));
    }
    let code = c.u16()?;
    let state = if c.b.first() == Some(&b'#') && c.b.len() >= 6 {
        c.take(1)?;
        String::from_utf8_lossy(c.take(5)?).into_owned()
    } else {
        "HY000".to_string()
    };
    Ok(mysql_async::ServerError {
        code,
        message: String::from_utf8_lossy(c.rest()).into_owned(),
        state,
    })
}

/// The status flags of an OK packet (header 0x00, or 0xFE when it ends a
/// result set under `CLIENT_DEPRECATE_EOF`).
fn parse_ok(p: &[u8]) -> Result<u16, Fail> {
    let mut c = Cursor::new(p);
    c.u8()?;
    c.lenenc_int()?;
    c.lenenc_int()?;
    let status = c.u16()?;
    c.u16()?;
    Ok(status)
}

/// The status flags of a classic EOF packet.
fn parse_eof(p: &[u8]) -> Result<u16, Fail> {
    let mut c = Cursor::new(p);
    if c.u8()? != 0xfe {
        return Err(malformed("not an EOF packet"));
    }
    c.u16()?;
    c.u16()
}

/// The server's greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Greeting {
    version: String,
    id: u32,
    caps: u32,
    scramble: Vec<u8>,
    plugin: String,
}

/// Parses a protocol v10 greeting; an ERR packet instead is the server's
/// refusal (too many connections, host blocked).
fn parse_greeting(p: &[u8]) -> Result<Greeting, Fail> {
    if p.first() == Some(&0xff) {
        return Err(Fail::Server(parse_err(p)?));
    }
    let mut c = Cursor::new(p);
    let protocol = c.u8()?;
    if protocol != 10 {
        return Err(Fail::Malformed(format!(
            "a greeting of protocol version {protocol}, not 10"
        )));
    }
    let version = String::from_utf8_lossy(c.nul_str()).into_owned();
    let id = c.uint(4)? as u32;
    let mut scramble = c.take(8)?.to_vec();
    c.u8()?;
    let mut caps = u32::from(c.u16()?);
    let mut plugin = String::new();
    if !c.is_empty() {
        // The server's charset, then its status flags.
        c.take(3)?;
        caps |= u32::from(c.u16()?) << 16;
        let data_len = usize::from(c.u8()?);
        c.take(10)?;
        if caps & CLIENT_SECURE_CONNECTION != 0 {
            let part2 = c.take(13.max(data_len.saturating_sub(8)))?;
            let n = if data_len > 8 { data_len - 9 } else { 12 };
            scramble.extend_from_slice(&part2[..n.min(part2.len())]);
        }
        if caps & CLIENT_PLUGIN_AUTH != 0 {
            plugin = String::from_utf8_lossy(c.nul_str()).into_owned();
        }
    }
    Ok(Greeting {
        version,
        id,
        caps,
        scramble,
        plugin,
    })
}

/// `mysql_native_password`: SHA1(password) XOR SHA1(scramble +
/// SHA1(SHA1(password))); empty for an empty password.
fn scramble_native(scramble: &[u8], password: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(stage2);
    let mix = h.finalize();
    stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

/// `caching_sha2_password`'s fast path: SHA256(password) XOR
/// SHA256(SHA256(SHA256(password)) + scramble); empty for an empty
/// password.
fn scramble_sha256(scramble: &[u8], password: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha256::digest(password);
    let stage2 = Sha256::digest(stage1);
    let mut h = Sha256::new();
    h.update(stage2);
    h.update(scramble);
    let mix = h.finalize();
    stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

/// The auth data of `plugin` for `password`; `None` for a plugin this
/// client does not speak.
fn auth_response(plugin: &str, scramble: &[u8], password: &[u8]) -> Option<Vec<u8>> {
    match plugin {
        NATIVE => Some(scramble_native(scramble, password)),
        CACHING_SHA2 => Some(scramble_sha256(scramble, password)),
        _ => None,
    }
}

fn unsupported_plugin(plugin: &str) -> Fail {
    Fail::Unsupported(format!(
        "the account authenticates with the `{plugin}` plugin, which this client does not speak"
    ))
}

/// The HandshakeResponse41 for `greeting`: our capabilities within the
/// server's, user, auth data, plugin; returns it with the capabilities.
fn handshake_response(g: &Greeting, user: &str, auth: &[u8], plugin: &str) -> (Vec<u8>, u32) {
    let caps = CLIENT_CAPABILITIES & g.caps;
    let mut p = Vec::with_capacity(64 + user.len() + auth.len() + plugin.len());
    p.extend_from_slice(&caps.to_le_bytes());
    p.extend_from_slice(&MAX_PACKET.to_le_bytes());
    p.push(CHARSET_UTF8MB4);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(user.as_bytes());
    p.push(0);
    // Scrambles are at most 32 bytes: one byte is both the length-encoded
    // length (CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) and the 4.1 one.
    p.push(auth.len() as u8);
    p.extend_from_slice(auth);
    if caps & CLIENT_PLUGIN_AUTH != 0 {
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
    }
    (p, caps)
}

/// Reads the greeting, authenticates; returns the agreed capabilities and
/// the connection id.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    creds: &Credentials,
) -> Result<(u32, u32), Fail> {
    let mut s = Session::new(stream);
    let g = parse_greeting(s.packet().await?)?;
    if g.caps & REQUIRED != REQUIRED {
        return Err(Fail::Malformed(format!(
            "server {} offers no 4.1 protocol with secure authentication",
            g.version
        )));
    }
    let password = creds.password().as_bytes();
    // The server's default plugin if this client speaks it, else the
    // native one: a server whose account needs another asks to switch.
    let mut plugin = match g.plugin.as_str() {
        CACHING_SHA2 => CACHING_SHA2,
        _ => NATIVE,
    };
    let auth = auth_response(plugin, &g.scramble, password).unwrap_or_default();
    let (response, caps) = handshake_response(&g, &creds.user, &auth, plugin);
    s.send(&response).await?;
    for _ in 0..MAX_AUTH_ROUNDS {
        let p = s.packet().await?;
        match p.first() {
            Some(0x00) => {
                if !s.drained() {
                    return Err(malformed("bytes after the handshake's OK"));
                }
                return Ok((caps, g.id));
            }
            Some(0xff) => return Err(Fail::Server(parse_err(p)?)),
            Some(0xfe) => {
                let mut c = Cursor::new(&p[1..]);
                if c.is_empty() {
                    return Err(unsupported_plugin("mysql_old_password"));
                }
                let name = String::from_utf8_lossy(c.nul_str()).into_owned();
                let mut data = c.rest();
                if let Some((0, head)) = data.split_last() {
                    data = head;
                }
                plugin = match name.as_str() {
                    NATIVE => NATIVE,
                    CACHING_SHA2 => CACHING_SHA2,
                    other => return Err(unsupported_plugin(other)),
                };
                let auth = auth_response(plugin, data, password).unwrap_or_default();
                s.send(&auth).await?;
            }
            Some(0x01) if plugin == CACHING_SHA2 => match p.get(1) {
                // Fast authentication succeeded: the OK follows.
                Some(0x03) => {}
                Some(0x04) => {
                    return Err(Fail::Unsupported(
                        "the server needs full authentication for caching_sha2_password \
                         (TLS or RSA), which this client does not do"
                            .into(),
                    ));
                }
                _ => return Err(malformed("an unknown caching_sha2_password answer")),
            },
            _ => return Err(malformed("an unknown packet during authentication")),
        }
    }
    Err(malformed("too many authentication rounds"))
}

/// Reads every answer to one COM_QUERY: the rows of each result (an OK
/// packet being a result without rows), keeping the first `keep`, until
/// the last (no `SERVER_MORE_RESULTS_EXISTS`) or an ERR packet, which
/// ends the answers and is returned beside the rows before it.
async fn read_results<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut Session<'_, S>,
    caps: u32,
    keep: usize,
) -> Result<(Vec<Vec<TextRow>>, Option<mysql_async::ServerError>), Fail> {
    let deprecate_eof = caps & CLIENT_DEPRECATE_EOF != 0;
    let mut sets = Vec::with_capacity(keep);
    loop {
        let p = s.packet().await?;
        let status = match p.first() {
            Some(0x00) => {
                if sets.len() < keep {
                    sets.push(Vec::new());
                }
                parse_ok(p)?
            }
            Some(0xff) => return Ok((sets, Some(parse_err(p)?))),
            Some(0xfb) => return Err(malformed("a LOCAL INFILE request")),
            Some(_) => {
                let count = Cursor::new(p).lenenc_int()?;
                let count = usize::try_from(count)
                    .ok()
                    .filter(|&n| n > 0 && n <= 4096)
                    .ok_or_else(|| Fail::Malformed(format!("{count} columns")))?;
                let wanted = sets.len() < keep;
                let mut names = Vec::with_capacity(if wanted { count } else { 0 });
                for _ in 0..count {
                    let p = s.packet().await?;
                    if wanted {
                        names.push(column_name(p)?);
                    }
                }
                if !deprecate_eof {
                    let p = s.packet().await?;
                    parse_eof(p)?;
                }
                let mut rows = Vec::new();
                let status = loop {
                    let p = s.packet().await?;
                    match p.first() {
                        Some(0xfe) if deprecate_eof && p.len() < MAX_PAYLOAD => {
                            break parse_ok(p)?;
                        }
                        Some(0xfe) if !deprecate_eof && p.len() < 9 => break parse_eof(p)?,
                        Some(0xff) => {
                            let e = parse_err(p)?;
                            if wanted {
                                sets.push(rows);
                            }
                            return Ok((sets, Some(e)));
                        }
                        _ if wanted => rows.push(parse_row(p, &names)?),
                        _ => {}
                    }
                };
                if wanted {
                    sets.push(rows);
                }
                status
            }
            None => return Err(malformed("an empty packet")),
        };
        if status & SERVER_MORE_RESULTS_EXISTS == 0 {
            return Ok((sets, None));
        }
    }
}

/// The `name` of a column definition (catalog, schema, table, org_table,
/// name, ...).
fn column_name(p: &[u8]) -> Result<String, Fail> {
    let mut c = Cursor::new(p);
    for _ in 0..4 {
        c.lenenc_str()?;
    }
    let name = c
        .lenenc_str()?
        .ok_or_else(|| malformed("a column without a name"))?;
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// One text-protocol row: a length-encoded string or NULL per column.
fn parse_row(p: &[u8], names: &[String]) -> Result<TextRow, Fail> {
    let mut c = Cursor::new(p);
    let mut row = TextRow::new();
    for name in names {
        let value = c
            .lenenc_str()?
            .map(|v| String::from_utf8_lossy(v).into_owned());
        row.insert(name.clone(), value);
    }
    if !c.is_empty() {
        return Err(malformed("a row longer than its columns"));
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packets of `payloads`, numbered from `seq`.
    fn packets(seq: u8, payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut seq = seq;
        for p in payloads {
            seq = frame(&mut out, seq, p);
        }
        out
    }

    fn lenenc(out: &mut Vec<u8>, n: u64) {
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
        lenenc(out, s.len() as u64);
        out.extend_from_slice(s);
    }

    fn ok(status: u16) -> Vec<u8> {
        let mut p = vec![0x00, 0, 0];
        p.extend_from_slice(&status.to_le_bytes());
        p.extend_from_slice(&[0, 0]);
        p
    }

    fn eof(status: u16) -> Vec<u8> {
        let mut p = vec![0xfe, 0, 0];
        p.extend_from_slice(&status.to_le_bytes());
        p
    }

    fn err(code: u16, state: &str, message: &str) -> Vec<u8> {
        let mut p = vec![0xff];
        p.extend_from_slice(&code.to_le_bytes());
        p.push(b'#');
        p.extend_from_slice(state.as_bytes());
        p.extend_from_slice(message.as_bytes());
        p
    }

    fn column(name: &str) -> Vec<u8> {
        let mut p = Vec::new();
        for s in [b"def".as_slice(), b"", b"", b""] {
            lenenc_str(&mut p, s);
        }
        lenenc_str(&mut p, name.as_bytes());
        lenenc_str(&mut p, name.as_bytes());
        p.extend_from_slice(&[0x0c, 45, 0, 0, 4, 0, 0, 0xfd, 0, 0, 0, 0, 0]);
        p
    }

    fn row(values: &[Option<&str>]) -> Vec<u8> {
        let mut p = Vec::new();
        for v in values {
            match v {
                Some(v) => lenenc_str(&mut p, v.as_bytes()),
                None => p.push(0xfb),
            }
        }
        p
    }

    /// The payloads of one result set, terminated as `deprecate_eof` says.
    fn result_set(
        names: &[&str],
        rows: &[&[Option<&str>]],
        deprecate_eof: bool,
        more: bool,
    ) -> Vec<Vec<u8>> {
        let status = 0x0002 | if more { SERVER_MORE_RESULTS_EXISTS } else { 0 };
        let mut out = vec![vec![names.len() as u8]];
        out.extend(names.iter().map(|n| column(n)));
        if !deprecate_eof {
            out.push(eof(0x0002));
        }
        out.extend(rows.iter().map(|r| row(r)));
        if deprecate_eof {
            let mut end = ok(status);
            end[0] = 0xfe;
            out.push(end);
        } else {
            out.push(eof(status));
        }
        out
    }

    fn text_row(pairs: &[(&str, Option<&str>)]) -> TextRow {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    /// Runs `f` on a session whose server side sends `bytes` through a
    /// pipe of `pipe` bytes (so that reads split packets anywhere).
    async fn with_server<T>(
        bytes: Vec<u8>,
        pipe: usize,
        f: impl AsyncFnOnce(&mut Session<'_, tokio::io::DuplexStream>) -> T,
    ) -> T {
        let (mut client, mut server) = tokio::io::duplex(pipe);
        // The client may stop reading early (a malformed answer): the
        // writer then fails, which is no concern here.
        let writer = tokio::spawn(async move {
            let _ = server.write_all(&bytes).await;
            server
        });
        let mut s = Session::new(&mut client);
        let out = f(&mut s).await;
        drop(client);
        drop(writer.await.expect("writer"));
        out
    }

    #[tokio::test]
    async fn packets_are_framed_across_reads_and_continuations() {
        let big = vec![7u8; MAX_PAYLOAD + 10];
        let exact = vec![9u8; MAX_PAYLOAD];
        let cases: Vec<(&str, Vec<Vec<u8>>, usize)> = vec![
            (
                "small packets, 1-byte pipe",
                vec![b"a".to_vec(), b"hello".to_vec(), vec![]],
                1,
            ),
            (
                "small packets, 3-byte pipe",
                vec![b"abcdefgh".to_vec(), b"x".to_vec()],
                3,
            ),
            (
                "small packets, big pipe",
                vec![vec![1; 5000], vec![2; 9000]],
                1 << 16,
            ),
            (
                "continued payload",
                vec![big.clone(), b"after".to_vec()],
                1 << 16,
            ),
            (
                "exact multiple",
                vec![exact.clone(), b"z".to_vec()],
                1 << 20,
            ),
        ];
        for (name, payloads, pipe) in cases {
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let bytes = packets(0, &refs);
            let got = with_server(bytes, pipe, async |s| {
                let mut got = Vec::new();
                for _ in 0..payloads.len() {
                    got.push(s.packet().await.expect("packet").to_vec());
                }
                (got, s.drained())
            })
            .await;
            assert!(got.0 == payloads, "{name}: payloads differ");
            assert!(got.1, "{name}: bytes left");
        }
    }

    #[test]
    fn frames_split_at_the_largest_payload() {
        let cases: Vec<(usize, Vec<usize>)> = vec![
            (0, vec![0]),
            (10, vec![10]),
            (MAX_PAYLOAD, vec![MAX_PAYLOAD, 0]),
            (MAX_PAYLOAD + 1, vec![MAX_PAYLOAD, 1]),
        ];
        for (len, want) in cases {
            let mut out = Vec::new();
            let next = frame(&mut out, 5, &vec![0; len]);
            let mut lens = Vec::new();
            let mut at = 0;
            let mut seq = 5u8;
            while at < out.len() {
                let n = usize::from(out[at])
                    | usize::from(out[at + 1]) << 8
                    | usize::from(out[at + 2]) << 16;
                assert_eq!(out[at + 3], seq, "{len}");
                seq = seq.wrapping_add(1);
                lens.push(n);
                at += 4 + n;
            }
            assert_eq!(lens, want, "{len}");
            assert_eq!(next, seq, "{len}");
        }
    }

    #[test]
    fn lenenc_integers_and_strings() {
        let ints: Vec<(&[u8], Option<u64>)> = vec![
            (&[0x00], Some(0)),
            (&[0x01], Some(1)),
            (&[0xfa], Some(250)),
            (&[0xfb], None),
            (&[0xfc, 0xfb, 0x00], Some(251)),
            (&[0xfc, 0xff, 0xff], Some(0xffff)),
            (&[0xfd, 0x00, 0x00, 0x01], Some(0x1_0000)),
            (&[0xfd, 0xff, 0xff, 0xff], Some(0xff_ffff)),
            (&[0xfe, 1, 2, 3, 4, 5, 6, 7, 8], Some(0x0807_0605_0403_0201)),
        ];
        for (bytes, want) in ints {
            let mut c = Cursor::new(bytes);
            assert_eq!(c.lenenc().expect("lenenc"), want, "{bytes:?}");
            assert!(c.is_empty(), "{bytes:?}");
        }
        for bad in [&[0xff][..], &[0xfc, 1], &[0xfd, 1, 2], &[0xfe, 1], &[]] {
            assert!(Cursor::new(bad).lenenc().is_err(), "{bad:?}");
        }
        let long = "x".repeat(300);
        let huge = "y".repeat(70_000);
        let strings: Vec<(Vec<u8>, Option<&str>)> = vec![
            (vec![0], Some("")),
            (vec![3, b'a', b'b', b'c'], Some("abc")),
            (vec![0xfb], None),
            (
                {
                    let mut v = Vec::new();
                    lenenc_str(&mut v, long.as_bytes());
                    v
                },
                Some(&long),
            ),
            (
                {
                    let mut v = Vec::new();
                    lenenc_str(&mut v, huge.as_bytes());
                    v
                },
                Some(&huge),
            ),
        ];
        for (bytes, want) in strings {
            let mut c = Cursor::new(&bytes);
            let got = c.lenenc_str().expect("string");
            assert_eq!(got, want.map(str::as_bytes), "{:?}", &bytes[..1]);
            assert!(c.is_empty());
        }
        assert!(Cursor::new(&[5, b'a']).lenenc_str().is_err());
    }

    /// A v10 greeting as servers send it.
    fn greeting(
        version: &str,
        caps: u32,
        charset: u8,
        scramble: &[u8; 20],
        plugin: &str,
    ) -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(version.as_bytes());
        p.push(0);
        p.extend_from_slice(&1234u32.to_le_bytes());
        p.extend_from_slice(&scramble[..8]);
        p.push(0);
        p.extend_from_slice(&(caps as u16).to_le_bytes());
        p.push(charset);
        p.extend_from_slice(&0x0002u16.to_le_bytes());
        p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(&scramble[8..]);
        p.push(0);
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
        p
    }

    const SCRAMBLE: &[u8; 20] = b"0123456789abcdefghij";

    #[test]
    fn greetings_of_mariadb_and_mysql_are_read() {
        // MariaDB 10.11 (no DEPRECATE_EOF) and MySQL 8.0 (with it).
        let mariadb_caps = 0x81ff_f7fe;
        let mysql_caps = 0xdfff_ffff;
        let cases = vec![
            (
                "mariadb 10.11",
                greeting(
                    "5.5.5-10.11.19-MariaDB-0+deb12u1",
                    mariadb_caps,
                    45,
                    SCRAMBLE,
                    NATIVE,
                ),
                "5.5.5-10.11.19-MariaDB-0+deb12u1",
                mariadb_caps,
                NATIVE,
            ),
            (
                "mysql 8.0",
                greeting("8.0.36", mysql_caps, 255, SCRAMBLE, CACHING_SHA2),
                "8.0.36",
                mysql_caps,
                CACHING_SHA2,
            ),
        ];
        for (name, bytes, version, caps, plugin) in cases {
            let g = parse_greeting(&bytes).expect(name);
            assert_eq!(
                g,
                Greeting {
                    version: version.into(),
                    id: 1234,
                    caps,
                    scramble: SCRAMBLE.to_vec(),
                    plugin: plugin.into(),
                },
                "{name}"
            );
            // What this client answers with.
            let (resp, agreed) = handshake_response(&g, "orca", &[1; 20], plugin);
            assert_eq!(agreed & !caps, 0, "{name}: more than offered");
            assert_eq!(
                agreed & CLIENT_DEPRECATE_EOF != 0,
                caps & CLIENT_DEPRECATE_EOF != 0,
                "{name}"
            );
            assert_eq!(&resp[..4], &agreed.to_le_bytes());
            assert_eq!(&resp[32..37], b"orca\0");
            assert_eq!(resp[37], 20);
            assert!(resp.ends_with(format!("{plugin}\0").as_bytes()), "{name}");
        }
        let refused = {
            let mut p = vec![0xff];
            p.extend_from_slice(&1040u16.to_le_bytes());
            p.extend_from_slice(b"Too many connections");
            p
        };
        match parse_greeting(&refused) {
            Err(Fail::Server(e)) => {
                assert_eq!((e.code, e.state.as_str()), (1040, "HY000"));
                assert_eq!(e.message, "Too many connections");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_greeting(&[9, 0]), Err(Fail::Malformed(_))));
        assert!(matches!(
            parse_greeting(&[10, b'x']),
            Err(Fail::Malformed(_))
        ));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn scrambles_match_known_vectors_and_the_driver() {
        let cases: Vec<(&[u8], &[u8])> = vec![
            (SCRAMBLE, b"secret"),
            (
                b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14",
                b"orca-sandbox-admin",
            ),
            (SCRAMBLE, "pässwörd".as_bytes()),
        ];
        for (nonce, password) in &cases {
            assert_eq!(
                scramble_native(nonce, password),
                mysql_common::scramble::scramble_native(nonce, password)
                    .expect("non-empty")
                    .to_vec()
            );
            assert_eq!(
                scramble_sha256(nonce, password),
                mysql_common::scramble::scramble_sha256(nonce, password)
                    .expect("non-empty")
                    .to_vec()
            );
        }
        // Computed independently from the formulas.
        assert_eq!(hex(&scramble_native(SCRAMBLE, b"secret")), NATIVE_SECRET);
        assert_eq!(hex(&scramble_sha256(SCRAMBLE, b"secret")), SHA256_SECRET);
        assert!(scramble_native(SCRAMBLE, b"").is_empty());
        assert!(scramble_sha256(SCRAMBLE, b"").is_empty());
        assert_eq!(auth_response("client_ed25519", SCRAMBLE, b"x"), None);
    }

    const NATIVE_SECRET: &str = "f5cac3f3b3df2133feb57db682c71e6ed433a988";
    const SHA256_SECRET: &str = "7e4adda2f2d5ef09b4147518becb0cee2939376203650a8c2bb2815959364bd0";

    #[test]
    fn ok_err_and_eof_packets_are_read() {
        let mut long_ok = vec![0x00];
        lenenc(&mut long_ok, 70_000);
        lenenc(&mut long_ok, 1 << 40);
        long_ok.extend_from_slice(&0x000au16.to_le_bytes());
        long_ok.extend_from_slice(&3u16.to_le_bytes());
        long_ok.extend_from_slice(b"info");
        let oks: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
            ("plain", ok(0x0002), Some(0x0002)),
            ("more results", ok(0x000a), Some(0x000a)),
            ("long counts and info", long_ok, Some(0x000a)),
            ("short", vec![0x00, 0, 0, 2], None),
        ];
        for (name, p, want) in oks {
            assert_eq!(parse_ok(&p).ok(), want, "{name}");
        }
        let eofs: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
            ("plain", eof(0x0002), Some(0x0002)),
            ("more", eof(0x0008), Some(0x0008)),
            ("not eof", ok(0x0002), None),
            ("short", vec![0xfe, 0], None),
        ];
        for (name, p, want) in eofs {
            assert_eq!(parse_eof(&p).ok(), want, "{name}");
        }
        type ErrCase = (
            &'static str,
            Vec<u8>,
            Option<(u16, &'static str, &'static str)>,
        );
        let errs: Vec<ErrCase> = vec![
            (
                "with state",
                err(1146, "42S02", "Table 'x.y' doesn't exist"),
                Some((1146, "42S02", "Table 'x.y' doesn't exist")),
            ),
            (
                "without state",
                {
                    let mut p = vec![0xff, 0x13, 0x04];
                    p.extend_from_slice(b"Host blocked");
                    p
                },
                Some((1043, "HY000", "Host blocked")),
            ),
            ("short", vec![0xff, 1], None),
        ];
        for (name, p, want) in errs {
            let got = parse_err(&p).ok();
            let got = got
                .as_ref()
                .map(|e| (e.code, e.state.as_str(), e.message.as_str()));
            assert_eq!(got, want, "{name}");
        }
    }

    /// What `read_results` makes of `payloads` (numbered from 1, as
    /// answers to a query are), through a small pipe.
    async fn results(
        payloads: Vec<Vec<u8>>,
        caps: u32,
        keep: usize,
    ) -> (
        Result<(Vec<Vec<TextRow>>, Option<(u16, String)>), String>,
        bool,
    ) {
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let bytes = packets(1, &refs);
        with_server(bytes, 5, async |s| {
            let r = read_results(s, caps, keep)
                .await
                .map(|(sets, e)| (sets, e.map(|e| (e.code, e.message))))
                .map_err(|e| format!("{e:?}"));
            (r, s.drained())
        })
        .await
    }

    #[tokio::test]
    async fn result_sets_with_and_without_deprecate_eof() {
        let rows: &[&[Option<&str>]] = &[
            &[Some("server_id"), Some("11")],
            &[Some("gtid_slave_pos"), None],
            &[Some("empty"), Some("")],
        ];
        let want = vec![
            text_row(&[("Variable_name", Some("server_id")), ("Value", Some("11"))]),
            text_row(&[("Variable_name", Some("gtid_slave_pos")), ("Value", None)]),
            text_row(&[("Variable_name", Some("empty")), ("Value", Some(""))]),
        ];
        for deprecate_eof in [false, true] {
            let caps = CLIENT_CAPABILITIES
                & !(if deprecate_eof {
                    0
                } else {
                    CLIENT_DEPRECATE_EOF
                });
            let set = result_set(&["Variable_name", "Value"], rows, deprecate_eof, false);
            let (got, drained) = results(set.clone(), caps, 1).await;
            assert_eq!(
                got,
                Ok((vec![want.clone()], None)),
                "deprecate_eof {deprecate_eof}"
            );
            assert!(drained);
            // Rows not wanted are read all the same.
            let (got, drained) = results(set, caps, 0).await;
            assert_eq!(got, Ok((vec![], None)));
            assert!(drained);
            // An empty result set.
            let (got, _) = results(result_set(&["a"], &[], deprecate_eof, false), caps, 1).await;
            assert_eq!(got, Ok((vec![vec![]], None)));
        }
        // A row with a value count that does not match its columns.
        let mut bad = result_set(&["a", "b"], &[], false, false);
        bad.insert(4, row(&[Some("1")]));
        let (got, _) = results(bad, CLIENT_CAPABILITIES & !CLIENT_DEPRECATE_EOF, 1).await;
        assert!(got.is_err());
    }

    #[tokio::test]
    async fn multi_results_stop_at_the_first_error() {
        for deprecate_eof in [false, true] {
            let caps = CLIENT_CAPABILITIES
                & !(if deprecate_eof {
                    0
                } else {
                    CLIENT_DEPRECATE_EOF
                });
            let first = result_set(&["a"], &[&[Some("1")]], deprecate_eof, true);
            let second = vec![ok(0x000a)];
            let third = vec![err(1146, "42S02", "Table 'orca.heartbeat' doesn't exist")];
            let all: Vec<Vec<u8>> = [first.clone(), second, third].concat();
            let (got, drained) = results(all, caps, 4).await;
            assert_eq!(
                got,
                Ok((
                    vec![vec![text_row(&[("a", Some("1"))])], vec![]],
                    Some((1146, "Table 'orca.heartbeat' doesn't exist".to_string()))
                )),
                "deprecate_eof {deprecate_eof}"
            );
            assert!(drained);
            // Every statement answered.
            let last = result_set(&["b"], &[&[None]], deprecate_eof, false);
            let (got, drained) = results([first, last].concat(), caps, 2).await;
            assert_eq!(
                got,
                Ok((
                    vec![
                        vec![text_row(&[("a", Some("1"))])],
                        vec![text_row(&[("b", None)])]
                    ],
                    None
                ))
            );
            assert!(drained);
        }
        // An error in the middle of a result set's rows.
        let mut cut = result_set(&["a"], &[&[Some("1")]], false, false);
        cut.pop();
        cut.push(err(1317, "70100", "Query execution was interrupted"));
        let (got, _) = results(cut, CLIENT_CAPABILITIES & !CLIENT_DEPRECATE_EOF, 1).await;
        assert_eq!(
            got,
            Ok((
                vec![vec![text_row(&[("a", Some("1"))])]],
                Some((1317, "Query execution was interrupted".to_string()))
            ))
        );
    }

    #[tokio::test]
    async fn handshakes_authenticate_or_name_what_they_cannot_do() {
        let native_ok = vec![ok(0x0002)];
        let mut switch_native = vec![0xfe];
        switch_native.extend_from_slice(NATIVE.as_bytes());
        switch_native.push(0);
        switch_native.extend_from_slice(SCRAMBLE);
        switch_native.push(0);
        let mut switch_ed = vec![0xfe];
        switch_ed.extend_from_slice(b"client_ed25519\0");
        switch_ed.extend_from_slice(&[7; 32]);
        type Case = (
            &'static str,
            &'static str,
            Vec<Vec<u8>>,
            Result<(), &'static str>,
        );
        let cases: Vec<Case> = vec![
            ("native", NATIVE, native_ok.clone(), Ok(())),
            (
                "switch to native",
                CACHING_SHA2,
                vec![switch_native.clone(), ok(2)],
                Ok(()),
            ),
            (
                "sha2 fast path",
                CACHING_SHA2,
                vec![vec![0x01, 0x03], ok(2)],
                Ok(()),
            ),
            (
                "sha2 full auth",
                CACHING_SHA2,
                vec![vec![0x01, 0x04]],
                Err("needs full authentication"),
            ),
            ("ed25519", NATIVE, vec![switch_ed], Err("client_ed25519")),
            (
                "old password",
                NATIVE,
                vec![vec![0xfe]],
                Err("mysql_old_password"),
            ),
            (
                "denied",
                NATIVE,
                vec![err(1045, "28000", "Access denied")],
                Err("1045"),
            ),
        ];
        let key = InstanceKey::new("127.0.0.1", 3306);
        for (name, plugin, replies, want) in cases {
            let (mut client, mut server) = tokio::io::duplex(1 << 16);
            let mut bytes = packets(
                0,
                &[&greeting("8.0.36", 0xdfff_ffff, 255, SCRAMBLE, plugin)],
            );
            let mut seq = 2;
            for r in &replies {
                seq = frame(&mut bytes, seq, r);
                seq = seq.wrapping_add(1);
            }
            let serve = tokio::spawn(async move {
                server.write_all(&bytes).await.expect("write");
                let mut sink = Vec::new();
                let _ = server.read_to_end(&mut sink).await;
                sink
            });
            let creds = Credentials::new("orca", "s3cret");
            let got = handshake(&mut client, &creds).await;
            drop(client);
            let sent = serve.await.expect("server");
            assert!(
                !sent.windows(6).any(|w| w == b"s3cret"),
                "{name}: the password went out in clear"
            );
            match (got, want) {
                (Ok((_, id)), Ok(())) => assert_eq!(id, 1234, "{name}"),
                (Err(f), Err(needle)) => {
                    let e = f.into_error(&key, "connecting");
                    let text = format!("{e} {e:?}");
                    assert!(text.contains(needle), "{name}: {text}");
                    assert!(!text.contains("s3cret"), "{name}");
                    assert_eq!(needs_fallback(&e), name != "denied", "{name}: {text}");
                }
                (got, want) => panic!("{name}: {got:?} / {want:?}"),
            }
        }
    }

    #[test]
    fn a_kept_connection_is_small() {
        assert!(
            std::mem::size_of::<WireConn>() <= 128,
            "{}",
            std::mem::size_of::<WireConn>()
        );
    }

    #[test]
    fn errors_map_as_the_driver_s_do() {
        let key = InstanceKey::new("127.0.0.1", 3306);
        let refused = Fail::Io(io::Error::from(io::ErrorKind::ConnectionRefused))
            .into_error(&key, "connecting");
        assert!(refused.is_unreachable());
        assert_eq!(refused.server_code(), None);
        let server = Fail::Server(mysql_async::ServerError {
            code: 1045,
            message: "denied".into(),
            state: "28000".into(),
        })
        .into_error(&key, "connecting");
        assert!(!server.is_unreachable());
        assert_eq!(server.server_code(), Some(1045));
        let bad = malformed("x").into_error(&key, "probing");
        assert!(!bad.is_unreachable() && !needs_fallback(&bad));
    }
}
