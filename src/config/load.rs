//! Parsing: TOML text to typed sections, every error located at file, line and dotted key.
//!
//! Each table (and each `[[partner]]`) is deserialized on its own so that one bad table does not
//! hide the problems of the next. Serde errors carry a byte span into the original text; the
//! `Locator` maps spans to dotted key paths and, for semantic problems found later, dotted key
//! paths back to lines.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml_edit::{DocumentMut, ImDocument, Item, TableLike, Value};

use super::error::{ConfigError, ConfigErrors};
use super::schema::{ServerConfig, TlsConfig};
use super::{validate, Config};

/// The top-level keys, in documentation order.
pub(crate) const SECTIONS: &[&str] = &[
    "server",
    "listen",
    "tls",
    "dialback",
    "dns",
    "federation",
    "partner",
    "limits",
    "runtime",
    "sip",
    "log",
];

/// Nesting bound for the span walks; the schema is 3 levels deep, so deeper input is not ours.
const MAX_WALK_DEPTH: usize = 16;

/// Parses, normalizes and validates; see [`Config::parse`].
pub(crate) fn parse(text: &str, origin: &Path, check_files: bool) -> Result<Config, ConfigErrors> {
    let loc = Locator::parse(text, origin)?;
    let mut errors = Vec::new();

    for (name, _) in loc.doc.as_table().iter() {
        if !SECTIONS.contains(&name) {
            errors.push(loc.at_path(
                name,
                format!("unknown key; valid keys: {}", SECTIONS.join(", ")),
            ));
        }
    }

    let server: Option<ServerConfig> = loc.required(&mut errors, "server");
    let listen = loc.optional(&mut errors, "listen");
    let tls: Option<TlsConfig> = loc.required(&mut errors, "tls");
    let dialback = loc.optional(&mut errors, "dialback");
    let dns = loc.optional(&mut errors, "dns");
    let federation = loc.optional(&mut errors, "federation");
    let partners = loc.partners(&mut errors);
    let limits = loc.optional(&mut errors, "limits");
    let runtime = loc.optional(&mut errors, "runtime");
    let log = loc.optional(&mut errors, "log");
    let sip = loc.optional(&mut errors, "sip");

    let (Some(server), Some(tls), Some(listen), Some(dialback), Some(dns), Some(federation)) =
        (server, tls, listen, dialback, dns, federation)
    else {
        return Err(sorted(errors));
    };
    let (Some(partners), Some(limits), Some(runtime), Some(log), Some(sip)) =
        (partners, limits, runtime, log, sip)
    else {
        return Err(sorted(errors));
    };
    if !errors.is_empty() {
        return Err(sorted(errors));
    }

    let mut config = Config {
        server,
        listen,
        tls,
        dialback,
        dns,
        federation,
        partners,
        limits,
        runtime,
        sip,
        log,
        source: origin.to_path_buf(),
    };
    normalize(&mut config, &base_dir(origin));

    let errors: Vec<ConfigError> = validate::validate(&config, check_files)
        .into_iter()
        .map(|p| loc.at_path(&p.key, p.message))
        .collect();
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(sorted(errors))
    }
}

/// The directory relative paths are resolved against.
fn base_dir(origin: &Path) -> PathBuf {
    match origin.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Lowercases domains and resolves relative paths against the config file's directory.
fn normalize(config: &mut Config, base: &Path) {
    let resolve = |p: &mut PathBuf| {
        if !p.as_os_str().is_empty() && p.is_relative() {
            *p = base.join(&*p);
        }
    };
    for d in &mut config.server.domains {
        d.make_ascii_lowercase();
    }
    resolve(&mut config.tls.certificate);
    resolve(&mut config.tls.key);
    config.tls.trust.iter_mut().for_each(resolve);
    for dc in &mut config.tls.domains {
        dc.domain.make_ascii_lowercase();
        resolve(&mut dc.certificate);
        resolve(&mut dc.key);
    }
    for p in &mut config.partners {
        p.domain.make_ascii_lowercase();
        for d in &mut p.additional_domains {
            d.make_ascii_lowercase();
        }
    }
}

/// Problems in file order; those without a line last, in the order found.
pub(crate) fn sorted(mut errors: Vec<ConfigError>) -> ConfigErrors {
    errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
    ConfigErrors(errors)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (Option<usize>, Option<usize>) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (Some(line), Some(column))
}

/// The parsed document with spans, for mapping spans to key paths and back.
pub(crate) struct Locator<'a> {
    text: &'a str,
    doc: ImDocument<&'a str>,
    file: PathBuf,
}

impl<'a> Locator<'a> {
    /// Parses `text` read from `origin`; a TOML syntax error is located.
    pub(crate) fn parse(text: &'a str, origin: &Path) -> Result<Self, ConfigError> {
        match ImDocument::parse(text) {
            Ok(doc) => Ok(Self {
                text,
                doc,
                file: origin.to_path_buf(),
            }),
            Err(e) => {
                let (line, column) = match e.span() {
                    Some(span) => line_col(text, span.start),
                    None => (None, None),
                };
                Err(ConfigError {
                    file: origin.to_path_buf(),
                    line,
                    column,
                    key: String::new(),
                    message: format!("TOML syntax: {}", one_line(e.message())),
                })
            }
        }
    }

    /// The top-level keys (table names), in file order.
    pub(crate) fn top_level_keys(&self) -> impl Iterator<Item = &str> {
        self.doc.as_table().iter().map(|(name, _)| name)
    }

    /// Parses `text` for locating only (the text is already known to be valid TOML).
    #[cfg(test)]
    pub(crate) fn new(text: &'a str) -> Option<Self> {
        Some(Self {
            text,
            doc: ImDocument::parse(text).ok()?,
            file: PathBuf::new(),
        })
    }

    /// An error at the line of dotted key `path` (or of its nearest present ancestor).
    pub(crate) fn at_path(&self, path: &str, message: String) -> ConfigError {
        let (line, column) = match self.locate(path) {
            Some(span) => line_col(self.text, span.start),
            None => (None, None),
        };
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            key: path.to_owned(),
            message,
        }
    }

    /// A section that must be present.
    fn required<T: DeserializeOwned>(
        &self,
        errors: &mut Vec<ConfigError>,
        name: &str,
    ) -> Option<T> {
        match self.doc.as_table().get(name) {
            Some(item) => self.table_item(errors, item, name),
            None => {
                errors.push(self.at_path(name, format!("missing required table [{name}]")));
                None
            }
        }
    }

    /// A section that takes its defaults when absent.
    pub(crate) fn optional<T: DeserializeOwned + Default>(
        &self,
        errors: &mut Vec<ConfigError>,
        name: &str,
    ) -> Option<T> {
        match self.doc.as_table().get(name) {
            Some(item) => self.table_item(errors, item, name),
            None => Some(T::default()),
        }
    }

    /// `[[partner]]` tables (or an inline array of inline tables), each on its own.
    fn partners<T: DeserializeOwned>(&self, errors: &mut Vec<ConfigError>) -> Option<Vec<T>> {
        let before = errors.len();
        let mut out = Vec::new();
        match self.doc.as_table().get("partner") {
            None => {}
            Some(Item::ArrayOfTables(tables)) => {
                for (i, table) in tables.iter().enumerate() {
                    let path = format!("partner[{i}]");
                    let r = toml_edit::de::from_document(DocumentMut::from(table.clone()));
                    if let Some(p) = self.collect(errors, r, &path) {
                        out.push(p);
                    }
                }
            }
            Some(Item::Value(Value::Array(array))) => {
                for (i, v) in array.iter().enumerate() {
                    let path = format!("partner[{i}]");
                    if let Some(p) = self.table_item(errors, &Item::Value(v.clone()), &path) {
                        out.push(p);
                    }
                }
            }
            Some(_) => {
                errors.push(self.at_path("partner", "expected [[partner]] tables".to_owned()))
            }
        }
        (errors.len() == before).then_some(out)
    }

    /// Deserializes a table (standard or inline) at `path`.
    fn table_item<T: DeserializeOwned>(
        &self,
        errors: &mut Vec<ConfigError>,
        item: &Item,
        path: &str,
    ) -> Option<T> {
        let r = match item {
            // A standard table keeps its header span inside a document, so "missing key" errors
            // land on the header line.
            Item::Table(t) => toml_edit::de::from_document(DocumentMut::from(t.clone())),
            Item::Value(v @ Value::InlineTable(_)) => T::deserialize(v.clone().into_deserializer()),
            _ => {
                errors
                    .push(self.at_path(path, format!("expected a table ([{path}] or {{ ... }})")));
                return None;
            }
        };
        self.collect(errors, r, path)
    }

    fn collect<T>(
        &self,
        errors: &mut Vec<ConfigError>,
        r: Result<T, toml_edit::de::Error>,
        fallback: &str,
    ) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                errors.push(self.de_error(&e, fallback));
                None
            }
        }
    }

    /// Converts a serde error into a located `ConfigError`, rewording serde's stock messages.
    fn de_error(&self, e: &toml_edit::de::Error, fallback: &str) -> ConfigError {
        let span = e.span();
        let mut key = span
            .as_ref()
            .and_then(|s| self.path_at(s.start))
            .unwrap_or_else(|| fallback.to_owned());
        let raw = e.message().trim();
        let message = if let Some(rest) = raw.strip_prefix("unknown field `") {
            let (name, tail) = rest.split_once('`').unwrap_or((rest, ""));
            if !key.ends_with(name) {
                push_key(&mut key, name);
            }
            // serde lists the valid names in backquotes: "expected one of `a`, `b`".
            let valid: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
            if valid.is_empty() {
                "unknown key; this table takes no keys".to_owned()
            } else {
                format!("unknown key; valid keys: {}", valid.join(", "))
            }
        } else if let Some(rest) = raw.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or(rest);
            push_key(&mut key, name);
            "missing required key".to_owned()
        } else {
            plain_types(raw)
        };
        let (line, column) = match span {
            Some(s) => line_col(self.text, s.start),
            None => match self.locate(&key) {
                Some(s) => line_col(self.text, s.start),
                None => (None, None),
            },
        };
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            key,
            message,
        }
    }

    /// The dotted key path (`partner[2].tls`) of the innermost key or value covering `offset`.
    pub(crate) fn path_at(&self, offset: usize) -> Option<String> {
        let mut path = String::new();
        find_in_table(self.doc.as_table(), offset, &mut path, 0).then_some(path)
    }

    /// The span of dotted key `path`: the key itself, an array element, or a `[[table]]` header;
    /// when the key is absent, the nearest present ancestor.
    pub(crate) fn locate(&self, path: &str) -> Option<Range<usize>> {
        let mut best = None;
        let mut table: &dyn TableLike = self.doc.as_table();
        let mut segments = path.split('.').peekable();
        while let Some(segment) = segments.next() {
            let (name, index) = split_index(segment);
            let Some((key, item)) = table.get_key_value(name) else {
                return best;
            };
            best = key.span().or(best);
            let next: Option<&dyn TableLike> = match (item, index) {
                (Item::Table(t), None) => {
                    best = t.span().or(best);
                    Some(t)
                }
                (Item::ArrayOfTables(a), Some(i)) => {
                    let t = a.get(i)?;
                    best = t.span().or(best);
                    Some(t)
                }
                (Item::Value(v), Some(i)) => match v.as_array().and_then(|a| a.get(i)) {
                    Some(Value::InlineTable(t)) => {
                        best = t.span().or(best);
                        Some(t)
                    }
                    Some(element) => {
                        best = element.span().or(best);
                        None
                    }
                    None => None,
                },
                (Item::Value(Value::InlineTable(t)), None) => Some(t),
                _ => None,
            };
            // A final key points at its key; an indexed element at the element.
            if segments.peek().is_none() {
                return if index.is_some() {
                    best
                } else {
                    key.span().or(best)
                };
            }
            match next {
                Some(t) => table = t,
                None => return best,
            }
        }
        best
    }
}

/// Joins a multi-line parser message into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Replaces Rust type names in serde's "expected u32" with words an operator reads.
fn plain_types(message: &str) -> String {
    let mut out = one_line(message);
    for ty in [
        "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
    ] {
        if let Some(stripped) = out.strip_suffix(&format!("expected {ty}")) {
            out = format!("{stripped}expected an integer");
            break;
        }
    }
    out
}

/// `"partner[2]"` → `("partner", Some(2))`.
fn split_index(segment: &str) -> (&str, Option<usize>) {
    if let Some((name, rest)) = segment.split_once('[') {
        if let Some(i) = rest.strip_suffix(']').and_then(|i| i.parse().ok()) {
            return (name, Some(i));
        }
    }
    (segment, None)
}

fn push_key(path: &mut String, name: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        path.push_str(name);
    } else {
        path.push_str(&format!("{name:?}"));
    }
}

fn covers(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

fn find_in_table(table: &dyn TableLike, offset: usize, path: &mut String, depth: usize) -> bool {
    if depth > MAX_WALK_DEPTH {
        return false;
    }
    for (name, item) in table.iter() {
        let mark = path.len();
        push_key(path, name);
        let key_span = table.key(name).and_then(|k| k.span());
        if covers(key_span, offset) || find_in_item(item, offset, path, depth + 1) {
            return true;
        }
        path.truncate(mark);
    }
    false
}

fn find_in_item(item: &Item, offset: usize, path: &mut String, depth: usize) -> bool {
    match item {
        Item::None => false,
        Item::Value(v) => find_in_value(v, offset, path, depth),
        Item::Table(t) => find_in_table(t, offset, path, depth) || covers(t.span(), offset),
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let mark = path.len();
                path.push_str(&format!("[{i}]"));
                if find_in_table(t, offset, path, depth + 1) || covers(t.span(), offset) {
                    return true;
                }
                path.truncate(mark);
            }
            false
        }
    }
}

fn find_in_value(value: &Value, offset: usize, path: &mut String, depth: usize) -> bool {
    if depth > MAX_WALK_DEPTH {
        return false;
    }
    match value {
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let mark = path.len();
                path.push_str(&format!("[{i}]"));
                if find_in_value(v, offset, path, depth + 1) {
                    return true;
                }
                path.truncate(mark);
            }
            covers(a.span(), offset)
        }
        Value::InlineTable(t) => find_in_table(t, offset, path, depth) || covers(t.span(), offset),
        other => covers(other.span(), offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"[server]
domains = ["corp.test", "b.test"]

[[partner]]
domain = "a.test"

[[partner]]
domain = "c.test"
tls = "optional"
additional_domains = ["d.test"]
"#;

    fn line_of(loc: &Locator<'_>, path: &str) -> Option<usize> {
        loc.locate(path).and_then(|s| line_col(TEXT, s.start).0)
    }

    #[test]
    fn locates_keys_elements_and_headers() {
        let loc = Locator::new(TEXT).unwrap();
        assert_eq!(line_of(&loc, "server.domains"), Some(2));
        assert_eq!(line_of(&loc, "server.domains[1]"), Some(2));
        assert_eq!(line_of(&loc, "partner[0].domain"), Some(5));
        assert_eq!(line_of(&loc, "partner[1].tls"), Some(9));
        assert_eq!(line_of(&loc, "partner[1].additional_domains[0]"), Some(10));
        // Absent keys fall back to their table's header.
        assert_eq!(line_of(&loc, "partner[1].sasl"), Some(7));
        assert_eq!(line_of(&loc, "partner[0]"), Some(4));
        assert_eq!(line_of(&loc, "server"), Some(1));
        assert_eq!(line_of(&loc, "limits.connections"), None);
    }

    #[test]
    fn maps_offsets_back_to_paths() {
        let loc = Locator::new(TEXT).unwrap();
        let at = |needle: &str| loc.path_at(TEXT.find(needle).unwrap());
        assert_eq!(at("\"b.test\"").as_deref(), Some("server.domains[1]"));
        assert_eq!(at("\"optional\"").as_deref(), Some("partner[1].tls"));
        assert_eq!(
            at("\"d.test\"").as_deref(),
            Some("partner[1].additional_domains[0]")
        );
        assert_eq!(at("tls =").as_deref(), Some("partner[1].tls"));
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("a\nbé=c", 5), (Some(2), Some(3)));
        assert_eq!(line_col("ab", 99), (Some(1), Some(3)));
    }
}
