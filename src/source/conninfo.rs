//! Connection settings resolved as libpq resolves them, so that an operator connects the way psql taught them.
//! sqlx makes the connection; this module decides where to and as whom:
//!
//! - the command line's `-h -p -U -d`, then the DSN (a URL, with several hosts and `?host=/socket/dir`, or
//!   libpq's `key=value` form), then the service file's entry (`service=` or `PGSERVICE`; `PGSERVICEFILE` or
//!   `~/.pg_service.conf`, then `$PGSYSCONFDIR/pg_service.conf`), then the `PG*` variables, then the defaults
//!   (the OS user, the default socket directory, port 5432). libpq reads a service entry before the
//!   environment, and so does this;
//! - several hosts (`host=a,b port=5432,5433`, or a URL's `a:5432,b:5433`) tried in order, each within
//!   `connect_timeout` (at least 2 s, as libpq), and `target_session_attrs` checked on each;
//! - the password: the DSN's, else `PGPASSWORD`, else the password file (`passfile`, `PGPASSFILE`, `~/.pgpass`)
//!   matched per host exactly as libpq does (a socket in the default directory matches `localhost`, `*`
//!   matches anything, `\:` and `\\` are escapes; a file others can read is skipped with a warning);
//! - `sslmode` validated, ignored on Unix sockets; `sslrootcert` defaults to `~/.postgresql/root.crt` for the
//!   `verify-*` modes; a key locktop does not know is refused, with the list of those it does.
//!
//! No error of this module holds a password or a value given to a key: they may be secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::SourceError;

/// The keys of a connection string locktop understands (libpq's names).
pub const KEYS: [&str; 16] = [
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "service",
    "connect_timeout",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "target_session_attrs",
    "application_name",
];

/// The environment variables libpq reads for those keys.
const ENVIRONMENT: [(&str, &str); 15] = [
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("dbname", "PGDATABASE"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("passfile", "PGPASSFILE"),
    ("service", "PGSERVICE"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ("application_name", "PGAPPNAME"),
];

/// The values `sslmode` takes.
pub const SSL_MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// The values `target_session_attrs` takes.
pub const SESSION_ATTRS: [&str; 6] = [
    "any",
    "read-write",
    "read-only",
    "primary",
    "standby",
    "prefer-standby",
];

/// What the command line says (`-h -p -U -d`): it wins over everything else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<String>,
    pub user: Option<String>,
    pub dbname: Option<String>,
}

/// Where the settings come from besides the DSN: the environment and the user's files. A parameter, so that
/// tests can give their own.
#[derive(Debug, Clone)]
pub struct Surroundings {
    pub env: BTreeMap<String, String>,
    pub home: Option<PathBuf>,
    /// The OS user (libpq's default user name).
    pub os_user: Option<String>,
}

impl Surroundings {
    /// This process's environment, home and user.
    pub fn current() -> Self {
        Self {
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("PG"))
                .collect(),
            home: std::env::var_os("HOME").map(PathBuf::from),
            os_user: nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .or_else(|| std::env::var("USER").ok()),
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// One host to try: where, and what the password file and TLS match it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The `host` value: a name, or a socket directory when it starts with `/`.
    pub name: String,
    /// `hostaddr`, when given: the address connected to instead of resolving the name.
    pub addr: Option<String>,
    pub port: u16,
}

impl Host {
    /// A Unix-domain socket directory.
    pub fn is_socket(&self) -> bool {
        self.addr.is_none() && self.name.starts_with('/')
    }
}

/// The resolved settings of one target.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub hosts: Vec<Host>,
    pub user: String,
    pub dbname: String,
    /// From the DSN or `PGPASSWORD`; else looked up per host in the password file.
    pub password: Option<String>,
    pub passfile: Option<PathBuf>,
    pub sslmode: String,
    pub sslrootcert: Option<PathBuf>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    /// Per host; at least 2 s when given, as libpq.
    pub connect_timeout: Option<Duration>,
    pub target_session_attrs: String,
    /// Whether anything at all said where to connect (a DSN, a flag, a service, a `PG*` connection variable).
    pub configured: bool,
}

/// The default socket directory: Debian's, else libpq's built-in `/tmp`.
fn default_socket_dir() -> &'static str {
    if Path::new("/var/run/postgresql").is_dir() {
        "/var/run/postgresql"
    } else {
        "/tmp"
    }
}

impl ConnInfo {
    /// Resolves a DSN (or none) with the command line's overrides, in these surroundings.
    pub fn resolve(
        dsn: Option<&str>,
        overrides: &Overrides,
        around: &Surroundings,
    ) -> Result<Self, SourceError> {
        let dsn = dsn.map(str::trim).filter(|d| !d.is_empty());
        let mut given = match dsn {
            None => BTreeMap::new(),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                parse_url(url)?
            }
            Some(kv) => parse_key_values(kv)?,
        };
        for (key, value) in [
            ("host", &overrides.host),
            ("port", &overrides.port),
            ("user", &overrides.user),
            ("dbname", &overrides.dbname),
        ] {
            if let Some(v) = value {
                given.insert(key.to_owned(), v.clone());
            }
        }
        let configured = !given.is_empty()
            || [
                "PGHOST",
                "PGHOSTADDR",
                "PGPORT",
                "PGUSER",
                "PGDATABASE",
                "PGSERVICE",
                "PGPASSWORD",
            ]
            .iter()
            .any(|v| around.var(v).is_some());
        // The service's entry, then the environment, fill what the DSN and the flags left out.
        let service = given
            .get("service")
            .cloned()
            .or_else(|| around.var("PGSERVICE").map(str::to_owned));
        if let Some(name) = service {
            for (k, v) in service_entry(&name, around)? {
                given.entry(k).or_insert(v);
            }
        }
        for (key, var) in ENVIRONMENT {
            if let Some(v) = around.var(var) {
                given.entry(key.to_owned()).or_insert_with(|| v.to_owned());
            }
        }
        Self::from_map(&given, around, configured)
    }

    fn from_map(
        m: &BTreeMap<String, String>,
        around: &Surroundings,
        configured: bool,
    ) -> Result<Self, SourceError> {
        let get = |k: &str| m.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let user = get("user")
            .map(str::to_owned)
            .or_else(|| around.os_user.clone())
            .ok_or_else(|| {
                SourceError::BadDsn("no user given and the OS user is unknown; give user=".into())
            })?;
        let dbname = get("dbname").map_or_else(|| user.clone(), str::to_owned);
        let hosts = hosts(get("host"), get("hostaddr"), get("port"))?;
        let sslmode = get("sslmode").unwrap_or("prefer").to_owned();
        if !SSL_MODES.contains(&sslmode.as_str()) {
            return Err(SourceError::BadDsn(format!(
                "sslmode {} is not one of {}",
                shown(&sslmode),
                SSL_MODES.join(", ")
            )));
        }
        let attrs = get("target_session_attrs").unwrap_or("any").to_owned();
        if !SESSION_ATTRS.contains(&attrs.as_str()) {
            return Err(SourceError::BadDsn(format!(
                "target_session_attrs {} is not one of {}",
                shown(&attrs),
                SESSION_ATTRS.join(", ")
            )));
        }
        let connect_timeout = match get("connect_timeout") {
            None => None,
            Some(t) => match t.trim().parse::<i64>() {
                // libpq: zero or less waits forever; anything else at least 2 s.
                Ok(s) if s <= 0 => None,
                Ok(s) => Some(Duration::from_secs(s.max(2).unsigned_abs())),
                Err(_) => {
                    return Err(SourceError::BadDsn(format!(
                        "connect_timeout {} is not a number of seconds",
                        shown(t)
                    )));
                }
            },
        };
        let home = |p: &str| around.home.as_ref().map(|h| h.join(p));
        let sslrootcert = get("sslrootcert").map(PathBuf::from).or_else(|| {
            sslmode
                .starts_with("verify-")
                .then(|| home(".postgresql/root.crt"))
                .flatten()
        });
        for secret in ["password", "sslpassword"].into_iter().filter_map(get) {
            remember_secret(secret);
        }
        Ok(Self {
            hosts,
            user,
            dbname,
            password: get("password").map(str::to_owned),
            passfile: get("passfile")
                .map(PathBuf::from)
                .or_else(|| home(".pgpass")),
            sslmode,
            sslrootcert,
            sslcert: get("sslcert").map(PathBuf::from),
            sslkey: get("sslkey").map(PathBuf::from),
            connect_timeout,
            target_session_attrs: attrs,
            configured,
        })
    }

    /// `user@host:port/dbname` (hosts joined by commas), for the header and for messages; never the password.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| {
                let name = h.addr.as_deref().unwrap_or(&h.name);
                if h.is_socket() {
                    name.to_owned()
                } else {
                    format!("{name}:{}", h.port)
                }
            })
            .collect();
        format!("{}@{}/{}", self.user, hosts.join(","), self.dbname)
    }

    /// The password for `host`: the given one, else the first matching line of the password file.
    pub fn password_for(&self, host: &Host) -> Option<String> {
        if self.password.is_some() {
            return self.password.clone();
        }
        let file = self.passfile.as_deref()?;
        let found = passfile_password(file, host, &self.dbname, &self.user);
        if let Some(p) = &found {
            remember_secret(p);
        }
        found
    }
}

/// The hosts to try: `host`, `hostaddr` and `port` lists of equal length (a single port serves every host).
fn hosts(
    host: Option<&str>,
    addr: Option<&str>,
    port: Option<&str>,
) -> Result<Vec<Host>, SourceError> {
    let split = |s: Option<&str>| -> Vec<String> {
        s.map(|s| s.split(',').map(|p| p.trim().to_owned()).collect())
            .unwrap_or_default()
    };
    let names = split(host);
    let addrs = split(addr);
    let ports = split(port);
    let count = names.len().max(addrs.len()).max(1);
    for (what, list) in [("host", &names), ("hostaddr", &addrs)] {
        if !list.is_empty() && list.len() != count {
            return Err(SourceError::BadDsn(format!(
                "{what} lists {} entries for {count} hosts",
                list.len()
            )));
        }
    }
    if ports.len() > 1 && ports.len() != count {
        return Err(SourceError::BadDsn(format!(
            "port lists {} entries for {count} hosts",
            ports.len()
        )));
    }
    (0..count)
        .map(|i| {
            let name = names
                .get(i)
                .filter(|n| !n.is_empty())
                .cloned()
                .unwrap_or_else(|| {
                    if addrs.get(i).is_some_and(|a| !a.is_empty()) {
                        String::new()
                    } else {
                        default_socket_dir().to_owned()
                    }
                });
            let port_text = ports.get(i).or(ports.first()).filter(|p| !p.is_empty());
            let port = match port_text {
                None => 5432,
                Some(p) => p.parse().map_err(|_| {
                    SourceError::BadDsn(format!(
                        "port {} is not a number from 1 to 65535",
                        shown(p)
                    ))
                })?,
            };
            Ok(Host {
                name,
                addr: addrs.get(i).filter(|a| !a.is_empty()).cloned(),
                port,
            })
        })
        .collect()
}

/// The keys refused: a key that is not libpq's or not supported, with the list of those that are. The key is
/// named only when it is a near miss of a known one (a typo): anything else may be a misplaced value, a
/// password among them.
fn check_key(key: &str) -> Result<(), SourceError> {
    if KEYS.contains(&key) {
        return Ok(());
    }
    let near = KEYS.iter().any(|k| edit_distance(k, key) <= 2);
    let named = if near {
        format!("unknown key {key:?}")
    } else {
        "an unknown key (not shown: it may be a misplaced value)".to_owned()
    };
    Err(SourceError::BadDsn(format!(
        "{named}; locktop knows {}",
        KEYS.join(", ")
    )))
}

/// A value for an error message: quoted when it looks like a setting (short, lower case, digits and `-_.`),
/// else not shown, since a value in the wrong place may be a password.
fn shown(value: &str) -> String {
    let plain = value.len() <= 24
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if plain {
        format!("{value:?}")
    } else {
        "(value not shown)".to_owned()
    }
}

/// Levenshtein distance, for telling a typo from a stray value.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Passwords seen while resolving (the DSN's, `PGPASSWORD`, the password file's): [`redact`] takes them out
/// of any text that leaves the process.
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Remembers a secret for [`redact`].
pub fn remember_secret(secret: &str) {
    if secret.len() < 4 {
        return;
    }
    if let Ok(mut s) = SECRETS.lock()
        && !s.iter().any(|x| x == secret)
    {
        s.push(secret.to_owned());
    }
}

/// `text` with every remembered secret replaced by `****`: the one place every error and log line passes
/// through on its way out.
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    if let Ok(secrets) = SECRETS.lock() {
        for s in secrets.iter() {
            out = out.replace(s.as_str(), "****");
        }
    }
    out
}

/// libpq's `key=value` form: values may be single-quoted with `\'` and `\\` escapes.
pub fn parse_key_values(kv: &str) -> Result<BTreeMap<String, String>, SourceError> {
    let mut out = BTreeMap::new();
    let mut rest = kv.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            return Err(SourceError::BadDsn(
                "expected key=value pairs separated by spaces".into(),
            ));
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(SourceError::BadDsn(
                "expected key=value pairs separated by spaces (a key is missing its value)".into(),
            ));
        }
        check_key(key)?;
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('\'') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '\'' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end =
                end.ok_or_else(|| SourceError::BadDsn(format!("unterminated quote in {key}")))?;
            (value, &quoted[end..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        out.insert(key.to_owned(), value);
        rest = remaining.trim_start();
    }
    Ok(out)
}

/// A URL: `postgres://[user[:password]@][host[:port][,host[:port]…]][/dbname][?key=value&…]`, hosts as names,
/// `[v6]` addresses or percent-encoded socket directories, and any key in the query (`?host=/var/run/pg`).
pub fn parse_url(url: &str) -> Result<BTreeMap<String, String>, SourceError> {
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| SourceError::BadDsn("a URL starts with postgres://".into()))?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut out = BTreeMap::new();
    let (userinfo, hostlist) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = userinfo {
        let (user, password) = u.split_once(':').map_or((u, None), |(a, b)| (a, Some(b)));
        if !user.is_empty() {
            out.insert("user".into(), decode(user, "user")?);
        }
        if let Some(p) = password {
            out.insert("password".into(), decode(p, "password")?);
        }
    }
    if !hostlist.is_empty() {
        let mut names = Vec::new();
        let mut ports = Vec::new();
        for spec in hostlist.split(',') {
            let (name, port) = if let Some(v6) = spec.strip_prefix('[') {
                let (addr, after) = v6
                    .split_once(']')
                    .ok_or_else(|| SourceError::BadDsn("an IPv6 host lacks its ]".into()))?;
                (addr.to_owned(), after.strip_prefix(':').unwrap_or(""))
            } else {
                let (n, p) = spec.split_once(':').unwrap_or((spec, ""));
                (decode(n, "host")?, p)
            };
            names.push(name);
            ports.push(port.to_owned());
        }
        out.insert("host".into(), names.join(","));
        if ports.iter().any(|p| !p.is_empty()) {
            out.insert("port".into(), ports.join(","));
        }
    }
    if !path.is_empty() {
        out.insert("dbname".into(), decode(path, "dbname")?);
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            SourceError::BadDsn("the URL's query holds a parameter without =".into())
        })?;
        let key = decode(key, "query key")?;
        check_key(&key)?;
        out.insert(key.clone(), decode(value, &key)?);
    }
    Ok(out)
}

/// Percent-decoded text; an error names the part, never its value.
fn decode(s: &str, what: &str) -> Result<String, SourceError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    SourceError::BadDsn(format!("bad percent-encoding in the {what}"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| SourceError::BadDsn(format!("the {what} is not UTF-8 once decoded")))
}

/// The entry `name` of the user's service file, else of the system's; an error when neither has it.
fn service_entry(name: &str, around: &Surroundings) -> Result<Vec<(String, String)>, SourceError> {
    let user_file = around
        .var("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| around.home.as_ref().map(|h| h.join(".pg_service.conf")));
    let system_file = Path::new(
        around
            .var("PGSYSCONFDIR")
            .unwrap_or("/etc/postgresql-common"),
    )
    .join("pg_service.conf");
    let mut looked = Vec::new();
    for file in user_file.into_iter().chain([system_file]) {
        looked.push(file.display().to_string());
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if let Some(entry) = service_in(&text, name, &file)? {
            return Ok(entry);
        }
    }
    Err(SourceError::BadDsn(format!(
        "service {} not found in {}",
        shown(name),
        looked.join(" or ")
    )))
}

/// The `[name]` section of a service file's text, if it has one.
fn service_in(
    text: &str,
    name: &str,
    file: &Path,
) -> Result<Option<Vec<(String, String)>>, SourceError> {
    let mut inside = false;
    let mut found = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = section.trim() == name;
            if inside {
                found = Some(Vec::new());
            } else if found.is_some() {
                break;
            }
            continue;
        }
        if !inside {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            SourceError::BadDsn(format!(
                "service file {}: line {} is not key=value",
                file.display(),
                n + 1
            ))
        })?;
        let k = k.trim();
        if k == "service" {
            return Err(SourceError::BadDsn(format!(
                "service file {}: line {}: a service cannot name another service",
                file.display(),
                n + 1
            )));
        }
        check_key(k).map_err(|e| {
            SourceError::BadDsn(format!(
                "service file {}: line {}: {e}",
                file.display(),
                n + 1
            ))
        })?;
        if let Some(entry) = found.as_mut() {
            entry.push((k.to_owned(), v.trim().to_owned()));
        }
    }
    Ok(found)
}

/// Set while the dashboard draws on the terminal: warnings then go to the log only.
pub static TERMINAL_TAKEN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Whether the password file's warning was given on stderr already.
static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The password of the first line of the password file that matches, as libpq matches: `host` by its name (a
/// socket in the default directory as `localhost`), `*` for anything, `\:` and `\\` escaped. A file that others
/// can read is skipped with a warning, as libpq does.
fn passfile_password(file: &Path, host: &Host, dbname: &str, user: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            file = %file.display(),
            "password file has group or world access; permissions should be u=rw (0600) or less: ignored"
        );
        // On stderr once, and never while the dashboard draws on the terminal (a reconnection).
        if !TERMINAL_TAKEN.load(std::sync::atomic::Ordering::Relaxed)
            && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!(
                "locktop: warning: password file {} has group or world access; permissions should be u=rw (0600) or less: ignored",
                file.display()
            );
        }
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let name = if host.name.is_empty() {
        host.addr.clone().unwrap_or_default()
    } else if host.name == default_socket_dir() {
        "localhost".to_owned()
    } else {
        host.name.clone()
    };
    let port = host.port.to_string();
    let wanted = [name.as_str(), port.as_str(), dbname, user];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = passfile_fields(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(f, w)| f == "*" || f == w);
            matches.then(|| fields[4].clone())
        })
}

/// A password file line's fields: split at `:` that is not escaped, `\` escaping the next character.
fn passfile_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(f)) = (chars.next(), fields.last_mut()) {
                    f.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn around(env: &[(&str, &str)]) -> Surroundings {
        Surroundings {
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            home: None,
            os_user: Some("alice".into()),
        }
    }

    fn resolve(dsn: &str, env: &[(&str, &str)]) -> Result<ConnInfo, SourceError> {
        ConnInfo::resolve(Some(dsn), &Overrides::default(), &around(env))
    }

    #[test]
    fn several_hosts_with_their_ports_from_a_url_or_key_values() {
        let c = resolve("postgres://mon@a:5433,b,[::1]:6000/trading", &[]).expect("url");
        let got: Vec<(String, u16)> = c.hosts.iter().map(|h| (h.name.clone(), h.port)).collect();
        assert_eq!(
            got,
            [("a".into(), 5433), ("b".into(), 5432), ("::1".into(), 6000)]
        );
        let c = resolve("host=a,b port=5433,5434 dbname=x", &[]).expect("kv");
        assert_eq!(c.hosts[1].port, 5434);
        assert_eq!(c.user, "alice", "the OS user by default");
        assert_eq!(c.describe(), "alice@a:5433,b:5434/x");
    }

    #[test]
    fn hostaddr_is_connected_to_while_host_names_the_server() {
        let c = resolve("host=db.example hostaddr=10.1.2.3 port=6432", &[]).expect("ok");
        assert_eq!(
            c.hosts,
            [Host {
                name: "db.example".into(),
                addr: Some("10.1.2.3".into()),
                port: 6432
            }]
        );
        assert_eq!(c.describe(), "alice@10.1.2.3:6432/alice");
        assert!(
            resolve("host=a,b hostaddr=10.0.0.1", &[]).is_err(),
            "one address per host"
        );
    }

    #[test]
    fn socket_directories_in_urls_and_the_defaults() {
        let c = resolve("postgres://mon@/db?host=/var/run/postgresql", &[]).expect("query host");
        assert!(c.hosts[0].is_socket() && c.hosts[0].name == "/var/run/postgresql");
        let c = resolve("postgresql://mon@%2Ftmp%2Fpg:5433/db", &[]).expect("encoded");
        assert_eq!(
            (c.hosts[0].name.as_str(), c.hosts[0].port),
            ("/tmp/pg", 5433)
        );
        let c = ConnInfo::resolve(None, &Overrides::default(), &around(&[])).expect("nothing");
        assert!(c.hosts[0].is_socket());
        assert_eq!((c.user.as_str(), c.dbname.as_str()), ("alice", "alice"));
        assert!(!c.configured);
    }

    #[test]
    fn flags_win_then_the_dsn_then_the_service_then_the_environment() {
        let flags = Overrides {
            host: Some("flaghost".into()),
            ..Overrides::default()
        };
        let env = around(&[
            ("PGHOST", "envhost"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
        ]);
        let c = ConnInfo::resolve(Some("host=dsnhost user=dsnuser"), &flags, &env).expect("ok");
        assert_eq!(
            (c.hosts[0].name.as_str(), c.user.as_str(), c.dbname.as_str()),
            ("flaghost", "dsnuser", "envdb")
        );
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused_naming_them_not_their_values() {
        let e = resolve("host=db sslmode=bogus password=Tail9Secret", &[])
            .expect_err("sslmode")
            .to_string();
        assert!(e.contains("bogus") && e.contains("verify-full"), "{e}");
        assert!(!e.contains("Tail9Secret"));
        let e = resolve("dbnmae=test", &[]).expect_err("typo").to_string();
        assert!(e.contains("dbnmae") && e.contains("dbname"), "{e}");
        let e = resolve("host=db Tail9Secret=x", &[])
            .expect_err("stray")
            .to_string();
        assert!(!e.contains("Tail9Secret") && e.contains("not shown"), "{e}");
        let e = resolve("host=db", &[("PGSSLMODE", "bogus")])
            .expect_err("env")
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = resolve(
            "postgres://u:Tail9Secret@h/db?sslpassword=Q8secret&nope=1",
            &[],
        )
        .expect_err("query")
        .to_string();
        assert!(!e.contains("Tail9Secret") && !e.contains("Q8secret"), "{e}");
        assert!(resolve("target_session_attrs=primary", &[]).is_ok());
        assert!(resolve("target_session_attrs=sometimes", &[]).is_err());
    }

    #[test]
    fn connect_timeout_is_at_least_two_seconds_and_verify_modes_default_the_root_certificate() {
        let c = resolve("connect_timeout=1", &[]).expect("ok");
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(2)));
        let mut a = around(&[]);
        a.home = Some(PathBuf::from("/home/alice"));
        let c =
            ConnInfo::resolve(Some("sslmode=verify-full"), &Overrides::default(), &a).expect("ok");
        assert_eq!(
            c.sslrootcert.as_deref(),
            Some(Path::new("/home/alice/.postgresql/root.crt"))
        );
    }

    #[test]
    fn password_file_lines_match_as_libpq_matches_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:*:*:*:nope\n/tmp/pg:5433:*:mon:socketpw\nlocalhost:5432:db:mon:default\\:dir\n*:*:*:*:any\n",
        )
        .expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let host = |name: &str, port| Host {
            name: name.into(),
            addr: None,
            port,
        };
        let pw = |h: &Host, db| passfile_password(&file, h, db, "mon");
        assert_eq!(
            pw(&host("/tmp/pg", 5433), "db").as_deref(),
            Some("socketpw")
        );
        assert_eq!(
            pw(&host(default_socket_dir(), 5432), "db").as_deref(),
            Some("default:dir"),
            "the default socket directory matches localhost"
        );
        assert_eq!(pw(&host("elsewhere", 1), "db").as_deref(), Some("any"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(
            pw(&host("elsewhere", 1), "db"),
            None,
            "a readable file is skipped"
        );
    }

    #[test]
    fn a_service_entry_fills_what_the_dsn_left_out() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("services");
        std::fs::write(
            &file,
            "[other]\nhost=wrong\n\n[trading]\nhost=svchost\nport=6432\ndbname=trading\n",
        )
        .expect("write");
        let env = [
            ("PGSERVICEFILE", file.to_str().expect("utf8")),
            ("PGPORT", "7000"),
        ];
        let c = resolve("service=trading user=mon", &env).expect("service");
        assert_eq!(
            (c.hosts[0].name.as_str(), c.hosts[0].port, c.dbname.as_str()),
            ("svchost", 6432, "trading"),
            "the service's entry wins over the environment, as in libpq"
        );
        let e = resolve("service=nosuch", &env)
            .expect_err("missing")
            .to_string();
        assert!(e.contains("nosuch") && e.contains("not found"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn no_error_from_a_malformed_dsn_holds_its_secret(
            head in proptest::sample::select(vec![
                "", "host=db ", "postgres://u:", "postgres://", "password=", "password='", "user=",
                "dbname=x ", "postgres://u@h/d?password=", "postgres://u@h/d?sslpassword=",
                "host=a,b port=1,2,3 password=", "postgresql://u:", "postgres://[::1", "sslmode=",
                "connect_timeout=", "port=", "service=", "x y=",
            ]),
            tail in proptest::sample::select(vec![
                "", "@h/db", "@h:notaport/db", "' x", " port=abc", "&x=1", "=", " bad key",
                "@%zz/db", " sslmode=bogus", "@h/d?nope=1", "=1", ":", ",", "@[::1/db",
            ]),
        ) {
            let secret = "Q7zSecretTail9";
            let dsn = format!("{head}{secret}{tail}");
            if let Err(e) = ConnInfo::resolve(Some(&dsn), &Overrides::default(), &around(&[])) {
                let text = e.to_string();
                proptest::prop_assert!(!text.contains(secret), "{:?} -> {}", dsn, text);
            }
        }
    }
}
