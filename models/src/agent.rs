//! User-agent parsing for the device signals and the agent branch of the Freeman model.
//!
//! [`parse_user_agent`] runs the woothee parser (crate `woothee` 0.13, the woothee project's
//! rule set) and normalises its output to a browser family with its major version
//! (`"Firefox 128"`), an operating system with its major version (`"Windows 10"`, `"iOS 17"`)
//! and a [`DeviceType`]. It is a pure function of the string and returns a small owned value,
//! so callers can cache results keyed by the user-agent string.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Maximum number of bytes of a user-agent string that are parsed. Longer input is cut at the
/// last character boundary before this limit, which bounds the work done per login. Browsers
/// typically send a few hundred bytes.
pub const MAX_USER_AGENT_BYTES: usize = 1024;

/// The woothee value for a field it could not determine.
const WOOTHEE_UNKNOWN: &str = "UNKNOWN";

/// The kind of device a user agent runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceType {
    Desktop,
    Mobile,
    Tablet,
    /// Crawlers, HTTP client libraries and feed readers: programs rather than a person's browser.
    Bot,
    Unknown,
}

impl DeviceType {
    /// Returns the lowercase name used in data files and reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Desktop => "desktop",
            DeviceType::Mobile => "mobile",
            DeviceType::Tablet => "tablet",
            DeviceType::Bot => "bot",
            DeviceType::Unknown => "unknown",
        }
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Client details parsed from a user-agent string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Browser family and major version, e.g. `"Firefox 128"`, or the family alone when the
    /// version is unknown.
    pub browser: Option<String>,
    /// Browser family, e.g. `"Firefox"`, `"Chrome"`, `"Safari"`, `"Edge"` or a crawler's name.
    pub browser_family: Option<String>,
    /// Operating system and major version, e.g. `"Windows 10"`, `"iOS 17"`, `"macOS 10.14"`.
    pub os: Option<String>,
    /// Operating system family, e.g. `"Windows"`, `"iOS"`, `"macOS"`, `"Android"`.
    pub os_family: Option<String>,
    pub device_type: DeviceType,
}

impl AgentInfo {
    /// Returns the value for a login without a parsable user agent.
    pub fn unknown() -> Self {
        AgentInfo {
            browser: None,
            browser_family: None,
            os: None,
            os_family: None,
            device_type: DeviceType::Unknown,
        }
    }
}

/// Parses a user-agent string. Never panics, and returns [`AgentInfo::unknown`] for empty or
/// unrecognised input.
///
/// Runs of whitespace are collapsed to one space first, because some clients (and the public
/// RBA login dataset) write `"Mozilla/5.0  (iPhone; ..."` with two spaces, and only the first
/// [`MAX_USER_AGENT_BYTES`] bytes are read.
pub fn parse_user_agent(user_agent: &str) -> AgentInfo {
    let normalised = normalise(truncate(user_agent, MAX_USER_AGENT_BYTES));
    if normalised.is_empty() {
        return AgentInfo::unknown();
    }
    let Some(result) = woothee::parser::Parser::new().parse(&normalised) else {
        return AgentInfo::unknown();
    };

    let browser_family = known(result.name).map(str::to_owned);
    let browser = browser_family
        .as_ref()
        .map(|family| match major_version(result.version) {
            Some(major) => format!("{family} {major}"),
            None => family.clone(),
        });
    let (os_family, os) = operating_system(result.os, &result.os_version);
    let device_type = device_type(result.category, result.os, &normalised);
    AgentInfo {
        browser,
        browser_family,
        os,
        os_family,
        device_type,
    }
}

/// Cuts `text` to at most `max_bytes` bytes at a character boundary.
fn truncate(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn known(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty() && value != WOOTHEE_UNKNOWN).then_some(value)
}

/// Returns the leading run of digits of a dotted version (`"128.0.1"` gives `"128"`).
fn major_version(version: &str) -> Option<&str> {
    let version = known(version)?;
    let end = version
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(version.len());
    (end > 0).then(|| &version[..end])
}

/// Returns the first two components of a dotted version (`"10.14.6"` gives `"10.14"`).
fn major_minor_version(version: &str) -> Option<&str> {
    let version = known(version)?;
    let mut dots = 0;
    for (index, c) in version.char_indices() {
        if c == '.' {
            dots += 1;
            if dots == 2 {
                return Some(&version[..index]);
            }
        } else if !c.is_ascii_digit() {
            return (index > 0).then(|| version[..index].trim_end_matches('.'));
        }
    }
    Some(version)
}

/// Maps woothee's OS name and version to `(family, family and major version)`.
fn operating_system(name: &str, version: &str) -> (Option<String>, Option<String>) {
    let Some(name) = known(name) else {
        return (None, None);
    };
    let with_major = |family: &str| match major_version(version) {
        Some(major) => format!("{family} {major}"),
        None => family.to_owned(),
    };
    match name {
        "iPhone" | "iPad" | "iPod" | "iOS" => (Some("iOS".into()), Some(with_major("iOS"))),
        "Mac OSX" => {
            // Before macOS 11 the release was named by the second component (10.14 Mojave).
            let os = match major_version(version) {
                Some("10") => match major_minor_version(version) {
                    Some(release) => format!("macOS {release}"),
                    None => "macOS 10".to_owned(),
                },
                Some(major) => format!("macOS {major}"),
                None => "macOS".to_owned(),
            };
            (Some("macOS".into()), Some(os))
        }
        "ChromeOS" => (Some("Chrome OS".into()), Some(with_major("Chrome OS"))),
        "Windows Phone OS" => (
            Some("Windows Phone".into()),
            Some(with_major("Windows Phone")),
        ),
        "Windows UNKNOWN Ver" => (Some("Windows".into()), Some("Windows".into())),
        // woothee names desktop Windows with its release: "Windows 10", "Windows XP", ...
        windows if windows.starts_with("Windows") => {
            (Some("Windows".into()), Some(windows.to_owned()))
        }
        "BlackBerry 10" => (Some("BlackBerry".into()), Some(with_major("BlackBerry"))),
        other => (Some(other.to_owned()), Some(with_major(other))),
    }
}

/// Maps woothee's category to a [`DeviceType`]. woothee files tablets under `smartphone`, so
/// iPads and Android devices without the `Mobile` token (Google's convention for tablets) are
/// distinguished here.
fn device_type(category: &str, os: &str, user_agent: &str) -> DeviceType {
    match category {
        "pc" => DeviceType::Desktop,
        "smartphone" => {
            let android_tablet = os == "Android" && !user_agent.contains("Mobile");
            if os == "iPad" || android_tablet {
                DeviceType::Tablet
            } else {
                DeviceType::Mobile
            }
        }
        "mobilephone" => DeviceType::Mobile,
        "crawler" | "misc" => DeviceType::Bot,
        _ => DeviceType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(agent: &str) -> AgentInfo {
        parse_user_agent(agent)
    }

    #[test]
    fn desktop_browsers() {
        let firefox = parse(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
        );
        assert_eq!(firefox.browser.as_deref(), Some("Firefox 128"));
        assert_eq!(firefox.browser_family.as_deref(), Some("Firefox"));
        assert_eq!(firefox.os.as_deref(), Some("Windows 10"));
        assert_eq!(firefox.os_family.as_deref(), Some("Windows"));
        assert_eq!(firefox.device_type, DeviceType::Desktop);

        let chrome_mac = parse(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/86.0.4202.0 Safari/537.36",
        );
        assert_eq!(chrome_mac.browser.as_deref(), Some("Chrome 86"));
        assert_eq!(chrome_mac.os.as_deref(), Some("macOS 10.14"));
        assert_eq!(chrome_mac.os_family.as_deref(), Some("macOS"));
        assert_eq!(chrome_mac.device_type, DeviceType::Desktop);

        let chrome_os = parse(
            "Mozilla/5.0 (X11; CrOS aarch64 11316.123.0) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/72.0.3626.97 Safari/537.36",
        );
        assert_eq!(chrome_os.browser.as_deref(), Some("Chrome 72"));
        assert_eq!(chrome_os.os_family.as_deref(), Some("Chrome OS"));
        assert_eq!(chrome_os.device_type, DeviceType::Desktop);
    }

    #[test]
    fn phones_and_tablets() {
        let iphone = parse(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(iphone.browser.as_deref(), Some("Safari 17"));
        assert_eq!(iphone.os.as_deref(), Some("iOS 17"));
        assert_eq!(iphone.os_family.as_deref(), Some("iOS"));
        assert_eq!(iphone.device_type, DeviceType::Mobile);

        let android_phone = parse(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
        );
        assert_eq!(android_phone.browser.as_deref(), Some("Chrome 124"));
        assert_eq!(android_phone.os.as_deref(), Some("Android 14"));
        assert_eq!(android_phone.device_type, DeviceType::Mobile);

        let android_tablet = parse(
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        );
        assert_eq!(android_tablet.device_type, DeviceType::Tablet);

        let ipad = parse(
            "Mozilla/5.0 (iPad; CPU OS 7_1 like Mac OS X) AppleWebKit/537.51.2 \
             (KHTML, like Gecko) Version/7.0 Mobile/11D167 Safari/9537.53",
        );
        assert_eq!(ipad.os.as_deref(), Some("iOS 7"));
        assert_eq!(ipad.device_type, DeviceType::Tablet);
    }

    #[test]
    fn bots_and_libraries() {
        let googlebot =
            parse("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        assert_eq!(googlebot.device_type, DeviceType::Bot);
        assert_eq!(googlebot.browser_family.as_deref(), Some("Googlebot"));

        let library = parse("Apache-HttpClient/4.5.13 (Java/17.0.2)");
        assert_eq!(library.device_type, DeviceType::Bot);
    }

    #[test]
    fn rba_dataset_strings() {
        // Rows 0, 1, 6 and 13 of the RBA login dataset: doubled spaces, unclosed brackets,
        // prefixes glued to the product token and version numbers with five components.
        let row0 = parse(
            "Mozilla/5.0  (iPhone; CPU iPhone OS 13_4 like Mac OS X) Gecko/20150101 \
             Firefox/20.0.0.1618 (Chrome variation/248113",
        );
        assert_eq!(row0.browser.as_deref(), Some("Firefox 20"));
        assert_eq!(row0.os.as_deref(), Some("iOS 13"));
        assert_eq!(row0.device_type, DeviceType::Mobile);

        let row1 = parse(
            "Mozilla/5.0  (Linux; Android 4.1; Galaxy Nexus Build/JRN84D) AppleWebKit/537.36 \
             (KHTML, like Gecko Chrome/46.0.2490.76 Mobile Safari/537.36 Browser",
        );
        assert_eq!(row1.browser.as_deref(), Some("Chrome 46"));
        assert_eq!(row1.os.as_deref(), Some("Android 4"));
        assert_eq!(row1.device_type, DeviceType::Mobile);

        let row6 = parse(
            "Mozilla/5.066704189 Mozilla/5.0  (X11; CrOS x86_64 13020.67.3) AppleWebKit/537.36 \
             (KHTML, like Gecko Chrome/69.0.3497.17.19.81 Safari/537.36",
        );
        assert_eq!(row6.browser.as_deref(), Some("Chrome 69"));
        assert_eq!(row6.os_family.as_deref(), Some("Chrome OS"));
        assert_eq!(row6.device_type, DeviceType::Desktop);

        let row13 = parse(
            "Mozilla/5.0  (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko \
             Chrome/86.0.4240.378.111 Safari/537.36/BMhR5lqd-29/BMhR5lqd-29/BMhR5lqd-29",
        );
        assert_eq!(row13.browser.as_deref(), Some("Chrome 86"));
        assert_eq!(row13.os.as_deref(), Some("Linux"));
    }

    #[test]
    fn empty_and_garbage_are_unknown() {
        for agent in ["", "   ", "-", "\0\u{1}\u{7f}", "not a browser"] {
            let info = parse(agent);
            assert_eq!(info.device_type, DeviceType::Unknown, "input {agent:?}");
            assert_eq!(info.browser, None, "input {agent:?}");
        }
    }

    #[test]
    fn hostile_input_never_panics() {
        let huge = "Mozilla/5.0 (".repeat(100_000);
        let _ = parse(&huge);
        let multibyte = "é".repeat(2_000);
        assert_eq!(parse(&multibyte), AgentInfo::unknown());
        let cut_inside_char = format!("{}{}", "a".repeat(MAX_USER_AGENT_BYTES - 1), "€€");
        let _ = parse(&cut_inside_char);

        // Pseudo-random strings over an alphabet of user-agent fragments, bytes that look
        // binary and multi-byte characters.
        let fragments = [
            "Mozilla/5.0 ",
            "(",
            ")",
            ";",
            " ",
            "Windows NT ",
            "Android ",
            "iPhone",
            "iPad",
            "CPU OS ",
            "_",
            ".",
            "Chrome/",
            "Firefox/",
            "Version/",
            "MSIE ",
            "Trident/",
            "rv:",
            "like Mac OS X",
            "Mobile",
            "wv",
            "Edg/",
            "OPR/",
            "Opera",
            "\u{0}",
            "\u{fffd}",
            "日本",
            "BB10",
            "CrOS ",
            "9",
            "0",
            "bot",
            "Build/",
            "/",
            "Xbox",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2_000 {
            let mut agent = String::new();
            let length = (state % 40) as usize;
            for _ in 0..length {
                // xorshift64, so the sequence is the same on every run.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                agent.push_str(fragments[(state % fragments.len() as u64) as usize]);
            }
            let info = parse(&agent);
            if let (Some(browser), Some(family)) = (&info.browser, &info.browser_family) {
                assert!(browser.starts_with(family.as_str()), "input {agent:?}");
            }
        }
    }

    #[test]
    fn truncate_keeps_char_boundary() {
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("abc", 2), "ab");
    }

    #[test]
    fn version_helpers() {
        assert_eq!(major_version("128.0.1"), Some("128"));
        assert_eq!(major_version("UNKNOWN"), None);
        assert_eq!(major_version(""), None);
        assert_eq!(major_version("beta"), None);
        assert_eq!(major_minor_version("10.14.6"), Some("10.14"));
        assert_eq!(major_minor_version("10"), Some("10"));
        assert_eq!(major_minor_version("10.15b"), Some("10.15"));
    }
}
