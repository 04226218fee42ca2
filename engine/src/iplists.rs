//! Named IP and ASN lists (Tor exits, datacenter ranges, VPN providers, hosting ASNs)
//! loaded from text files, and membership checks of a login's IP address and AS number.
//!
//! A network list file has one IP address or CIDR network per line. An ASN list file is
//! either a CSV file with an `ASN,...` header or one `AS123` per line. `#` starts a
//! comment and blank lines are skipped. Any other line is an error, because a list that
//! silently drops entries lets those addresses through.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net};

/// Failure to load an IP or ASN list. Every variant names the file or list.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("list file `{}` not found: check the path in the ip_lists config", path.display())]
    NotFound { path: PathBuf },
    #[error("failed to read list file `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{}:{line}: `{text}` is not an IP address or CIDR network",
        path.display()
    )]
    InvalidNetwork {
        path: PathBuf,
        line: u64,
        text: String,
    },
    #[error(
        "{}:{line}: `{text}` is not an AS number (expected `AS123` or `123`)",
        path.display()
    )]
    InvalidAsn {
        path: PathBuf,
        line: u64,
        text: String,
    },
    #[error("invalid CSV in ASN list `{}`: {source}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("list `{name}` has no files: give at least one path")]
    NoFiles { name: String },
}

/// A set of IPv4 and IPv6 networks, stored as sorted, merged address ranges and searched
/// by binary search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSet {
    /// Disjoint, non-adjacent inclusive ranges, sorted by start.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl NetworkSet {
    /// Builds the set from networks in any order. Host bits are cleared (`10.0.0.1/8` is
    /// `10.0.0.0/8`), and an IPv6 network inside `::ffff:0:0/96` counts as its IPv4 network.
    pub fn from_cidrs<I: IntoIterator<Item = IpNet>>(nets: I) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match canonical_net(net) {
                IpNet::V4(net) => {
                    v4.push((u32::from(net.network()), u32::from(net.broadcast())));
                }
                IpNet::V6(net) => {
                    v6.push((u128::from(net.network()), u128::from(net.broadcast())));
                }
            }
        }
        NetworkSet {
            v4: merge_ranges(v4),
            v6: merge_ranges(v6),
        }
    }

    /// Loads a list file with one IP address or CIDR network per line. A plain address is
    /// a /32 or /128 network.
    pub fn load_file(path: &Path) -> Result<Self, ListError> {
        Ok(Self::from_cidrs(parse_network_file(path)?))
    }

    /// Checks whether `ip` lies in one of the networks. An IPv4-mapped IPv6 address is
    /// checked as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(ip) => range_contains(&self.v4, u32::from(ip)),
            IpAddr::V6(ip) => range_contains(&self.v6, u128::from(ip)),
        }
    }

    /// Returns the number of disjoint ranges left after overlapping and adjacent networks
    /// were merged, IPv4 and IPv6 together.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// A set of autonomous system numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsnSet {
    /// Sorted and without duplicates.
    asns: Vec<u32>,
}

impl AsnSet {
    pub fn from_asns<I: IntoIterator<Item = u32>>(asns: I) -> Self {
        let unique: BTreeSet<u32> = asns.into_iter().collect();
        AsnSet {
            asns: unique.into_iter().collect(),
        }
    }

    /// Loads an ASN list: a CSV file whose first line is a header starting with `ASN,`
    /// (such as `ASN,Entity`), or one AS number per line as `AS123` or `123`, optionally
    /// followed by a `#` comment.
    pub fn load_file(path: &Path) -> Result<Self, ListError> {
        Ok(Self::from_asns(parse_asn_file(path)?))
    }

    pub fn contains(&self, asn: u32) -> bool {
        self.asns.binary_search(&asn).is_ok()
    }

    /// Returns the number of distinct AS numbers.
    pub fn len(&self) -> usize {
        self.asns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.asns.is_empty()
    }
}

/// Named lists to load. Each name maps to one or more files whose entries are combined.
/// A name may appear under both `networks` and `asns`: an address then matches the list
/// by its IP address or by its AS number.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpListsConfig {
    #[serde(default)]
    pub networks: BTreeMap<String, Vec<PathBuf>>,
    #[serde(default)]
    pub asns: BTreeMap<String, Vec<PathBuf>>,
}

/// Loaded IP and ASN lists, keyed by list name.
#[derive(Debug, Clone, Default)]
pub struct IpLists {
    networks: BTreeMap<String, NetworkSet>,
    asns: BTreeMap<String, AsnSet>,
}

impl IpLists {
    /// Loads every list in `config`, resolving relative paths against `base_dir`.
    pub fn open(config: &IpListsConfig, base_dir: &Path) -> Result<Self, ListError> {
        let mut networks = BTreeMap::new();
        for (name, paths) in &config.networks {
            if paths.is_empty() {
                return Err(ListError::NoFiles { name: name.clone() });
            }
            let mut nets = Vec::new();
            for path in paths {
                nets.extend(parse_network_file(&base_dir.join(path))?);
            }
            let set = NetworkSet::from_cidrs(nets);
            tracing::info!(list = %name, ?paths, ranges = set.len(), "loaded network list");
            networks.insert(name.clone(), set);
        }
        let mut asns = BTreeMap::new();
        for (name, paths) in &config.asns {
            if paths.is_empty() {
                return Err(ListError::NoFiles { name: name.clone() });
            }
            let mut numbers = Vec::new();
            for path in paths {
                numbers.extend(parse_asn_file(&base_dir.join(path))?);
            }
            let set = AsnSet::from_asns(numbers);
            tracing::info!(list = %name, ?paths, asns = set.len(), "loaded ASN list");
            asns.insert(name.clone(), set);
        }
        Ok(IpLists { networks, asns })
    }

    /// Returns the sorted names of the lists that contain `ip` or, when given, `asn`.
    pub fn lists_containing(&self, ip: IpAddr, asn: Option<u32>) -> Vec<String> {
        let mut names = BTreeSet::new();
        for (name, set) in &self.networks {
            if set.contains(ip) {
                names.insert(name);
            }
        }
        if let Some(asn) = asn {
            for (name, set) in &self.asns {
                if set.contains(asn) {
                    names.insert(name);
                }
            }
        }
        names.into_iter().cloned().collect()
    }

    /// Returns the sorted names of all loaded lists.
    pub fn names(&self) -> Vec<String> {
        let names: BTreeSet<&String> = self.networks.keys().chain(self.asns.keys()).collect();
        names.into_iter().cloned().collect()
    }
}

/// Maps an IPv6 network inside `::ffff:0:0/96` to its IPv4 network, so that it matches
/// canonicalised lookups, and clears host bits.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(ipv4) = v6.network().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(mapped) = Ipv4Net::new(ipv4, v6.prefix_len() - 96)
    {
        return IpNet::V4(mapped.trunc());
    }
    net.trunc()
}

/// Sorts inclusive ranges and merges those that overlap or touch.
fn merge_ranges<T>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)>
where
    T: Copy + Ord + Successor,
{
    ranges.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        if let Some(last) = merged.last_mut()
            && last.1.successor().is_none_or(|next| start <= next)
        {
            last.1 = last.1.max(end);
            continue;
        }
        merged.push((start, end));
    }
    merged.shrink_to_fit();
    merged
}

trait Successor: Sized {
    fn successor(self) -> Option<Self>;
}

impl Successor for u32 {
    fn successor(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Successor for u128 {
    fn successor(self) -> Option<Self> {
        self.checked_add(1)
    }
}

fn range_contains<T: Copy + Ord>(ranges: &[(T, T)], value: T) -> bool {
    // `after` is the index of the first range starting after `value`, so the range before
    // it is the only one that can contain `value`.
    let after = ranges.partition_point(|&(start, _)| start <= value);
    after > 0 && ranges[after - 1].1 >= value
}

fn read_list(path: &Path) -> Result<String, ListError> {
    fs::read_to_string(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ListError::NotFound {
            path: path.to_path_buf(),
        },
        _ => ListError::Read {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// Yields `(line number, entry)` for every line that is not blank once its `#` comment
/// is removed.
fn entries(content: &str) -> impl Iterator<Item = (u64, &str)> {
    (1u64..).zip(content.lines()).filter_map(|(number, line)| {
        let entry = line.split_once('#').map_or(line, |(entry, _)| entry).trim();
        (!entry.is_empty()).then_some((number, entry))
    })
}

fn parse_network_file(path: &Path) -> Result<Vec<IpNet>, ListError> {
    let content = read_list(path)?;
    entries(&content)
        .map(|(line, entry)| {
            parse_network(entry).ok_or_else(|| ListError::InvalidNetwork {
                path: path.to_path_buf(),
                line,
                text: entry.to_owned(),
            })
        })
        .collect()
}

fn parse_network(entry: &str) -> Option<IpNet> {
    if entry.contains('/') {
        entry.parse::<IpNet>().ok()
    } else {
        entry.parse::<IpAddr>().ok().map(IpNet::from)
    }
}

fn parse_asn_file(path: &Path) -> Result<Vec<u32>, ListError> {
    let content = read_list(path)?;
    let is_csv = entries(&content).next().is_some_and(|(_, first)| {
        first
            .get(..4)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("asn,"))
    });
    if is_csv {
        parse_asn_csv(path, &content)
    } else {
        entries(&content)
            .map(|(line, entry)| {
                parse_asn(entry).ok_or_else(|| ListError::InvalidAsn {
                    path: path.to_path_buf(),
                    line,
                    text: entry.to_owned(),
                })
            })
            .collect()
    }
}

/// Reads the first column of an ASN CSV file. Values may be quoted and padded with spaces,
/// and the other columns (names that may contain commas and quotes) are ignored.
fn parse_asn_csv(path: &Path, content: &str) -> Result<Vec<u32>, ListError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(content.as_bytes());
    let mut asns = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|source| ListError::Csv {
            path: path.to_path_buf(),
            source,
        })?;
        let field = record.get(0).unwrap_or_default();
        // A value such as ` "123"` keeps its quotes, because csv only unquotes a field that
        // starts with a quote and the space comes first.
        let asn = parse_asn(field.trim_matches('"').trim()).ok_or_else(|| {
            let line = record.position().map_or(0, csv::Position::line);
            let text = usize::try_from(line)
                .ok()
                .and_then(|line| content.lines().nth(line.checked_sub(1)?))
                .unwrap_or(field);
            ListError::InvalidAsn {
                path: path.to_path_buf(),
                line,
                text: text.trim().to_owned(),
            }
        })?;
        asns.push(asn);
    }
    Ok(asns)
}

/// Parses `AS123`, `as123` or `123` into an AS number.
fn parse_asn(text: &str) -> Option<u32> {
    let digits = match text.get(..2) {
        Some(prefix) if prefix.eq_ignore_ascii_case("as") => &text[2..],
        _ => text,
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn data_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|error| panic!("invalid test IP `{text}`: {error}"))
    }

    fn net(text: &str) -> IpNet {
        text.parse()
            .unwrap_or_else(|error| panic!("invalid test network `{text}`: {error}"))
    }

    fn load_networks(name: &str) -> NetworkSet {
        NetworkSet::load_file(&data_dir().join("iplists").join(name))
            .unwrap_or_else(|error| panic!("load failed: {error}"))
    }

    fn load_asns(name: &str) -> AsnSet {
        AsnSet::load_file(&data_dir().join("iplists").join(name))
            .unwrap_or_else(|error| panic!("load failed: {error}"))
    }

    fn temp_list(content: &str) -> tempfile::NamedTempFile {
        let mut file =
            tempfile::NamedTempFile::new().unwrap_or_else(|error| panic!("tempfile: {error}"));
        file.write_all(content.as_bytes())
            .unwrap_or_else(|error| panic!("write failed: {error}"));
        file
    }

    #[test]
    fn network_set_merges_ranges() {
        let set = NetworkSet::from_cidrs([
            net("10.0.0.0/24"),
            net("10.0.1.0/24"),   // adjacent to the first
            net("10.0.0.128/25"), // inside the first
            net("192.168.1.7/32"),
            net("2001:db8::/33"),
            net("2001:db8:8000::/33"), // adjacent: together 2001:db8::/32
        ]);
        assert_eq!(set.len(), 3);
        assert!(set.contains(ip("10.0.0.0")));
        assert!(set.contains(ip("10.0.1.255")));
        assert!(!set.contains(ip("10.0.2.0")));
        assert!(!set.contains(ip("9.255.255.255")));
        assert!(set.contains(ip("192.168.1.7")));
        assert!(!set.contains(ip("192.168.1.8")));
        assert!(set.contains(ip("2001:db8:ffff:ffff::1")));
        assert!(!set.contains(ip("2001:db9::")));
        assert!(!set.contains(ip("::")));
    }

    #[test]
    fn network_set_edges_of_address_space() {
        let set = NetworkSet::from_cidrs([net("0.0.0.0/1"), net("128.0.0.0/1"), net("::/0")]);
        assert_eq!(set.len(), 2);
        assert!(set.contains(ip("0.0.0.0")));
        assert!(set.contains(ip("255.255.255.255")));
        assert!(set.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(NetworkSet::default().is_empty());
        assert!(!NetworkSet::default().contains(ip("1.2.3.4")));
    }

    #[test]
    fn network_set_canonicalises_mapped() {
        let set = NetworkSet::from_cidrs([net("::ffff:203.0.113.0/120"), net("198.51.100.9/24")]);
        assert!(set.contains(ip("203.0.113.77")));
        assert!(set.contains(ip("::ffff:203.0.113.77")));
        // Host bits of 198.51.100.9/24 are cleared.
        assert!(set.contains(ip("198.51.100.0")));
        assert!(set.contains(ip("::ffff:198.51.100.200")));
        assert!(!set.contains(ip("::203.0.113.77")));
    }

    #[test]
    fn tor_exit_list_membership() {
        let set = load_networks("tor-exit-nodes-2024-02-27.lst");
        assert!(set.contains(ip("101.99.92.179")));
        assert!(set.contains(ip("96.66.15.152")));
        assert!(set.contains(ip("::ffff:101.99.92.179")));
        // Written in the list as 2001:0470:0001:0908:0000:0000:0000:9001.
        assert!(set.contains(ip("2001:470:1:908::9001")));
        assert!(!set.contains(ip("101.99.92.180")));
        assert!(!set.contains(ip("192.0.2.1")));
        assert!(!set.contains(ip("2001:470:1:908::9002")));
    }

    #[test]
    fn datacenter_lists_membership() {
        let ipv4 = load_networks("x4bnet-datacenter-ipv4.txt");
        assert!(ipv4.contains(ip("1.12.0.1"))); // 1.12.0.0/14
        assert!(ipv4.contains(ip("1.15.255.255")));
        assert!(ipv4.contains(ip("223.255.251.1"))); // 223.255.248.0/22
        assert!(!ipv4.contains(ip("1.16.0.0")));
        let ipv6 = load_networks("x4bnet-datacenter-ipv6.txt");
        assert!(ipv6.contains(ip("2001:310::1"))); // 2001:310::/32
        assert!(ipv6.contains(ip("2c0f:fee0:ffff::1"))); // 2c0f:fee0::/32
        assert!(!ipv6.contains(ip("2001:311::1")));
        assert!(!ipv6.contains(ip("1.12.0.1")));
    }

    #[test]
    fn bad_line_reports_line_number() {
        let file = temp_list("# comment\n1.2.3.4\n\n10.0.0.0/8 # inline comment\nnot-an-ip\n");
        let error = match NetworkSet::load_file(file.path()) {
            Ok(set) => panic!("load succeeded: {set:?}"),
            Err(error) => error,
        };
        let ListError::InvalidNetwork { path, line, text } = &error else {
            panic!("expected InvalidNetwork, got {error}");
        };
        assert_eq!(path, file.path());
        assert_eq!(*line, 5);
        assert_eq!(text, "not-an-ip");
        let message = error.to_string();
        assert!(message.contains(":5:"), "{message}");
        assert!(message.contains("`not-an-ip`"), "{message}");
    }

    #[test]
    fn bad_prefix_length_is_an_error() {
        for (content, bad) in [
            ("1.2.3.0/33\n", "1.2.3.0/33"),
            ("2001:db8::/129\n", "2001:db8::/129"),
            ("1.2.3.4 5.6.7.8\n", "1.2.3.4 5.6.7.8"),
            ("1.2.3\n", "1.2.3"),
        ] {
            let file = temp_list(content);
            let result = NetworkSet::load_file(file.path());
            assert!(
                matches!(&result, Err(ListError::InvalidNetwork { line: 1, text, .. }) if text == bad),
                "{content:?}: {result:?}"
            );
        }
    }

    #[test]
    fn comments_and_blank_lines_skipped() {
        let file = temp_list("# header\n\n   \n192.0.2.1 # host\r\n2001:db8::1\n");
        let set = NetworkSet::load_file(file.path())
            .unwrap_or_else(|error| panic!("load failed: {error}"));
        assert_eq!(set.len(), 2);
        assert!(set.contains(ip("192.0.2.1")));
        assert!(!set.contains(ip("192.0.2.2")));
        assert!(set.contains(ip("2001:db8::1")));
        assert!(!set.contains(ip("2001:db8::2")));
    }

    #[test]
    fn missing_list_file_error() {
        let result = NetworkSet::load_file(&data_dir().join("iplists/no-such-list.txt"));
        assert!(
            matches!(&result, Err(ListError::NotFound { path }) if path.ends_with("no-such-list.txt")),
            "{result:?}"
        );
    }

    #[test]
    fn asn_csv_list() {
        let set = load_asns("brianhama-bad-asn-list.csv");
        // 742 rows, some of them repeated.
        assert_eq!(set.len(), 723);
        assert!(set.contains(198_375)); // 198375,"INULOGIC SARL, FR"
        assert!(set.contains(51_447)); // 51447, "RootLayer Web Services Ltd, NL"
        assert!(set.contains(15_497)); // quoted name with "" escapes
        assert!(set.contains(48_031)); // "48031","PE Ivanov ..." with a trailing space
        assert!(set.contains(398_779)); // last line
        assert!(!set.contains(7018)); // AT&T, an access network
    }

    #[test]
    fn asn_line_lists() {
        let datacenter = load_asns("x4bnet-datacenter-ASN.txt");
        assert_eq!(datacenter.len(), 892);
        assert!(datacenter.contains(45_090)); // AS45090 # Tencent ...
        assert!(datacenter.contains(55_286)); // AS55286<tab># SERVER-MANIA, CA
        assert!(datacenter.contains(137_373)); // last line
        let vpn = load_asns("x4bnet-vpn-ASN.txt");
        assert!(vpn.contains(9009));
        assert!(vpn.contains(208_172));
        assert!(!vpn.contains(45_090));
    }

    #[test]
    fn asn_line_formats() {
        assert_eq!(parse_asn("AS13335"), Some(13_335));
        assert_eq!(parse_asn("as13335"), Some(13_335));
        assert_eq!(parse_asn("13335"), Some(13_335));
        assert_eq!(parse_asn("AS4294967295"), Some(u32::MAX));
        assert_eq!(parse_asn("AS4294967296"), None);
        assert_eq!(parse_asn("AS"), None);
        assert_eq!(parse_asn("AS-1"), None);
        assert_eq!(parse_asn("+5"), None);
        assert_eq!(parse_asn("AS 13335"), None);
    }

    #[test]
    fn bad_asn_line_reports_line_number() {
        let file = temp_list("AS1 # first\n\nAS2\nASX12 # typo\n");
        let result = AsnSet::load_file(file.path());
        assert!(
            matches!(&result, Err(ListError::InvalidAsn { line: 4, text, .. }) if text == "ASX12"),
            "{result:?}"
        );
    }

    #[test]
    fn bad_asn_csv_row_reports_line_number() {
        let file = temp_list("ASN,Entity\n13335,\"Cloudflare, US\"\n\"12a\",\"Broken\"\n");
        let result = AsnSet::load_file(file.path());
        assert!(
            matches!(&result, Err(ListError::InvalidAsn { line: 3, text, .. }) if text == "\"12a\",\"Broken\""),
            "{result:?}"
        );
    }

    fn default_lists() -> IpLists {
        let paths = |names: &[&str]| -> Vec<PathBuf> {
            names
                .iter()
                .map(|name| Path::new("iplists").join(name))
                .collect()
        };
        let config = IpListsConfig {
            networks: BTreeMap::from([
                (
                    "tor_exit".to_owned(),
                    paths(&["tor-exit-nodes-2024-02-27.lst"]),
                ),
                ("tor_node".to_owned(), paths(&["tor-nodes-2024-02-27.lst"])),
                (
                    "datacenter".to_owned(),
                    paths(&["x4bnet-datacenter-ipv4.txt", "x4bnet-datacenter-ipv6.txt"]),
                ),
                ("vpn".to_owned(), paths(&["x4bnet-vpn-ipv4.txt"])),
            ]),
            asns: BTreeMap::from([
                (
                    "hosting".to_owned(),
                    paths(&["brianhama-bad-asn-list.csv", "x4bnet-datacenter-ASN.txt"]),
                ),
                ("vpn_asn".to_owned(), paths(&["x4bnet-vpn-ASN.txt"])),
            ]),
        };
        IpLists::open(&config, &data_dir()).unwrap_or_else(|error| panic!("open failed: {error}"))
    }

    #[test]
    fn ip_lists_default_naming() {
        let lists = default_lists();
        assert_eq!(
            lists.names(),
            [
                "datacenter",
                "hosting",
                "tor_exit",
                "tor_node",
                "vpn",
                "vpn_asn"
            ]
        );
        assert_eq!(
            lists.lists_containing(ip("101.99.92.179"), None),
            ["tor_exit", "tor_node"]
        );
        assert_eq!(
            lists.lists_containing(ip("::ffff:101.99.92.179"), None),
            ["tor_exit", "tor_node"]
        );
        assert_eq!(
            lists.lists_containing(ip("1.12.0.1"), Some(45_090)),
            ["datacenter", "hosting"]
        );
        assert_eq!(
            lists.lists_containing(ip("2001:310::1"), None),
            ["datacenter"]
        );
        // 2.58.241.67/32 is in the VPN list only; 2.26.157.0/24 is in both lists.
        assert_eq!(lists.lists_containing(ip("2.58.241.67"), None), ["vpn"]);
        assert_eq!(
            lists.lists_containing(ip("2.26.157.1"), None),
            ["datacenter", "vpn"]
        );
        // AS9009 (M247) is both a hosting and a VPN network; AS209854 (Surfshark) is VPN only.
        assert_eq!(
            lists.lists_containing(ip("192.0.2.1"), Some(9009)),
            ["hosting", "vpn_asn"]
        );
        assert_eq!(
            lists.lists_containing(ip("192.0.2.1"), Some(209_854)),
            ["vpn_asn"]
        );
        assert!(
            lists
                .lists_containing(ip("192.0.2.1"), Some(64_496))
                .is_empty()
        );
        assert!(lists.lists_containing(ip("192.0.2.1"), None).is_empty());
    }

    #[test]
    fn ip_lists_name_in_both_maps() {
        let config = IpListsConfig {
            networks: BTreeMap::from([(
                "hosting".to_owned(),
                vec![PathBuf::from("iplists/x4bnet-datacenter-ipv4.txt")],
            )]),
            asns: BTreeMap::from([(
                "hosting".to_owned(),
                vec![PathBuf::from("iplists/x4bnet-datacenter-ASN.txt")],
            )]),
        };
        let lists = IpLists::open(&config, &data_dir())
            .unwrap_or_else(|error| panic!("open failed: {error}"));
        assert_eq!(lists.names(), ["hosting"]);
        assert_eq!(
            lists.lists_containing(ip("1.12.0.1"), Some(45_090)),
            ["hosting"]
        );
    }

    #[test]
    fn ip_lists_errors() {
        let config = IpListsConfig {
            networks: BTreeMap::from([("empty".to_owned(), Vec::new())]),
            asns: BTreeMap::new(),
        };
        let result = IpLists::open(&config, &data_dir());
        assert!(
            matches!(&result, Err(ListError::NoFiles { name }) if name == "empty"),
            "{result:?}"
        );
        // An ASN list given as a network list fails on its first line.
        let config = IpListsConfig {
            networks: BTreeMap::from([(
                "vpn".to_owned(),
                vec![PathBuf::from("iplists/x4bnet-vpn-ASN.txt")],
            )]),
            asns: BTreeMap::new(),
        };
        let result = IpLists::open(&config, &data_dir());
        assert!(
            matches!(&result, Err(ListError::InvalidNetwork { line: 1, text, .. }) if text == "AS9009"),
            "{result:?}"
        );
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let config: IpListsConfig =
            toml::from_str("[networks]\ntor_exit = [\"iplists/tor-exit-nodes-2024-02-27.lst\"]\n")
                .unwrap_or_else(|error| panic!("parse failed: {error}"));
        assert_eq!(config.networks.len(), 1);
        assert!(config.asns.is_empty());
        assert!(toml::from_str::<IpListsConfig>("[network]\n").is_err());
    }
}
