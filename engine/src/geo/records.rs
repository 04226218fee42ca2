//! Serde shapes of the records in the supported databases, and their conversion to the
//! public record types.
//!
//! Only the fields the engine uses are declared, so serde skips every other key of a record.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};

use super::{AnonymousFlags, AsnRecord, CityRecord};

/// A number stored with any MaxMind DB numeric type.
///
/// The reader's typed deserializers reject a value whose stored type differs from the
/// requested one, and the schemas disagree: GeoIP2 stores coordinates as `double` and the
/// radius as `uint16`, while the `@ip-location-db` files store coordinates as `float`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl Number {
    #[expect(
        clippy::cast_precision_loss,
        reason = "coordinates and radii are far below 2^53, the first integer an f64 rounds"
    )]
    fn to_f64(self) -> f64 {
        match self {
            Number::Unsigned(value) => value as f64,
            Number::Signed(value) => value as f64,
            Number::Float(value) => value,
        }
    }

    /// Returns the value as an AS number, or `None` when it is negative, fractional or
    /// above `u32::MAX`.
    fn to_asn(self) -> Option<u32> {
        match self {
            Number::Unsigned(value) => u32::try_from(value).ok(),
            Number::Signed(value) => u32::try_from(value).ok(),
            Number::Float(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumberVisitor)
    }
}

struct NumberVisitor;

impl Visitor<'_> for NumberVisitor {
    type Value = Number;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a number")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Number, E> {
        Ok(Number::Unsigned(value))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Number, E> {
        u64::try_from(value)
            .map(Number::Unsigned)
            .map_err(|_| E::custom(format!("number `{value}` is out of range")))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Number, E> {
        Ok(Number::Signed(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Number, E> {
        Ok(Number::Float(value))
    }
}

/// The `iso_code` of the first element of a GeoIP2 `subdivisions` array, which is the
/// largest subdivision (for example `ENG` before `WBK`).
#[derive(Debug, Default)]
struct FirstSubdivision(Option<String>);

impl<'de> Deserialize<'de> for FirstSubdivision {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(FirstSubdivisionVisitor)
    }
}

struct FirstSubdivisionVisitor;

impl<'de> Visitor<'de> for FirstSubdivisionVisitor {
    type Value = FirstSubdivision;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an array of subdivisions")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FirstSubdivision, A::Error> {
        let first = seq.next_element::<IsoCode>()?;
        // The remaining elements are skipped without being decoded.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(FirstSubdivision(first.and_then(|code| code.iso_code)))
    }
}

#[derive(Debug, Deserialize)]
struct IsoCode {
    iso_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Names {
    names: Option<EnglishName>,
}

#[derive(Debug, Deserialize)]
struct EnglishName {
    en: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Location {
    latitude: Option<Number>,
    longitude: Option<Number>,
    accuracy_radius: Option<Number>,
    time_zone: Option<String>,
}

/// A record of a GeoIP2 or GeoLite2 City, Country or Enterprise database.
#[derive(Debug, Deserialize)]
pub(super) struct Geoip2City {
    country: Option<IsoCode>,
    registered_country: Option<IsoCode>,
    subdivisions: Option<FirstSubdivision>,
    city: Option<Names>,
    location: Option<Location>,
}

impl Geoip2City {
    pub(super) fn into_record(self, default_accuracy_radius_km: f64) -> CityRecord {
        let location = self.location;
        let (latitude, longitude, radius, time_zone) = match location {
            Some(location) => (
                location.latitude,
                location.longitude,
                location.accuracy_radius,
                location.time_zone,
            ),
            None => (None, None, None, None),
        };
        let coordinates = valid_coordinates(latitude, longitude);
        CityRecord {
            country: non_empty(self.country.and_then(|country| country.iso_code)),
            registered_country: non_empty(
                self.registered_country.and_then(|country| country.iso_code),
            ),
            subdivision: non_empty(self.subdivisions.and_then(|first| first.0)),
            city: non_empty(
                self.city
                    .and_then(|city| city.names)
                    .and_then(|names| names.en),
            ),
            latitude: coordinates.map(|(latitude, _)| latitude),
            longitude: coordinates.map(|(_, longitude)| longitude),
            accuracy_radius_km: accuracy_radius(coordinates, radius, default_accuracy_radius_km),
            time_zone: non_empty(time_zone),
        }
    }
}

/// A record of the flat schema of the npm packages `@ip-location-db/*-mmdb`, which store
/// a missing value as an empty string and have no accuracy radius.
#[derive(Debug, Deserialize)]
pub(super) struct FlatCity {
    country_code: Option<String>,
    state1: Option<String>,
    city: Option<String>,
    latitude: Option<Number>,
    longitude: Option<Number>,
    timezone: Option<String>,
}

impl FlatCity {
    pub(super) fn into_record(self, default_accuracy_radius_km: f64) -> CityRecord {
        let coordinates = valid_coordinates(self.latitude, self.longitude);
        CityRecord {
            country: non_empty(self.country_code),
            registered_country: None,
            subdivision: non_empty(self.state1),
            city: non_empty(self.city),
            latitude: coordinates.map(|(latitude, _)| latitude),
            longitude: coordinates.map(|(_, longitude)| longitude),
            accuracy_radius_km: accuracy_radius(coordinates, None, default_accuracy_radius_km),
            time_zone: non_empty(self.timezone),
        }
    }
}

/// A record of a GeoLite2 ASN or GeoIP2 ISP database.
#[derive(Debug, Deserialize)]
pub(super) struct Asn {
    autonomous_system_number: Option<Number>,
    autonomous_system_organization: Option<String>,
}

impl Asn {
    /// Returns `None` for a record without a valid AS number. GeoIP2 ISP databases contain
    /// many records with only `isp` and `organization`.
    pub(super) fn into_record(self) -> Option<AsnRecord> {
        let number = self.autonomous_system_number?.to_asn()?;
        Some(AsnRecord {
            number,
            organization: non_empty(self.autonomous_system_organization),
        })
    }
}

/// A record of a GeoIP2 Anonymous IP or GeoIP Anonymous Plus database, which stores only
/// the flags that are true. The MaxMind test databases also fill the gaps between listed
/// networks with empty records.
#[derive(Debug, Deserialize)]
pub(super) struct Anonymous {
    is_anonymous: Option<bool>,
    is_anonymous_vpn: Option<bool>,
    is_tor_exit_node: Option<bool>,
    is_hosting_provider: Option<bool>,
    is_public_proxy: Option<bool>,
    is_residential_proxy: Option<bool>,
}

impl Anonymous {
    /// Returns `None` when no flag is true, as in an empty gap record.
    pub(super) fn into_flags(self) -> Option<AnonymousFlags> {
        let flags = AnonymousFlags {
            anonymous: self.is_anonymous.unwrap_or(false),
            vpn: self.is_anonymous_vpn.unwrap_or(false),
            tor_exit: self.is_tor_exit_node.unwrap_or(false),
            hosting: self.is_hosting_provider.unwrap_or(false),
            public_proxy: self.is_public_proxy.unwrap_or(false),
            residential_proxy: self.is_residential_proxy.unwrap_or(false),
        };
        let any = flags.anonymous
            || flags.vpn
            || flags.tor_exit
            || flags.hosting
            || flags.public_proxy
            || flags.residential_proxy;
        any.then_some(flags)
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.trim().is_empty())
}

/// Returns the coordinates when both are present, finite and within range
/// (|latitude| <= 90, |longitude| <= 180). A pair with one bad value is dropped whole,
/// because a lone latitude or longitude cannot place a login.
pub(super) fn valid_coordinates(
    latitude: Option<Number>,
    longitude: Option<Number>,
) -> Option<(f64, f64)> {
    let latitude = latitude?.to_f64();
    let longitude = longitude?.to_f64();
    let latitude_valid = latitude.is_finite() && latitude.abs() <= 90.0;
    let longitude_valid = longitude.is_finite() && longitude.abs() <= 180.0;
    (latitude_valid && longitude_valid).then_some((latitude, longitude))
}

/// Returns the stored radius when it is finite and not negative, the default when the
/// record has coordinates without a usable radius, and `None` without coordinates.
fn accuracy_radius(
    coordinates: Option<(f64, f64)>,
    radius: Option<Number>,
    default_accuracy_radius_km: f64,
) -> Option<f64> {
    coordinates?;
    let stored = radius
        .map(Number::to_f64)
        .filter(|radius| radius.is_finite() && *radius >= 0.0);
    Some(stored.unwrap_or(default_accuracy_radius_km))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_in_range_are_kept() {
        let coordinates = valid_coordinates(Some(Number::Float(-90.0)), Some(Number::Signed(180)));
        assert_eq!(coordinates, Some((-90.0, 180.0)));
    }

    #[test]
    fn coordinates_out_of_range_are_dropped() {
        let cases = [
            (Number::Float(90.5), Number::Float(0.0)),
            (Number::Float(-91.0), Number::Float(0.0)),
            (Number::Float(0.0), Number::Float(180.01)),
            (Number::Float(0.0), Number::Unsigned(200)),
            (Number::Float(f64::NAN), Number::Float(0.0)),
            (Number::Float(0.0), Number::Float(f64::INFINITY)),
            (Number::Float(f64::NEG_INFINITY), Number::Float(0.0)),
        ];
        for (latitude, longitude) in cases {
            assert_eq!(
                valid_coordinates(Some(latitude), Some(longitude)),
                None,
                "latitude {latitude:?}, longitude {longitude:?}"
            );
        }
    }

    #[test]
    fn coordinates_need_both_values() {
        assert_eq!(valid_coordinates(Some(Number::Float(10.0)), None), None);
        assert_eq!(valid_coordinates(None, Some(Number::Float(10.0))), None);
    }

    #[test]
    fn radius_falls_back_to_default() {
        let coordinates = Some((1.0, 2.0));
        assert_eq!(
            accuracy_radius(coordinates, Some(Number::Unsigned(10)), 50.0),
            Some(10.0)
        );
        assert_eq!(accuracy_radius(coordinates, None, 50.0), Some(50.0));
        assert_eq!(
            accuracy_radius(coordinates, Some(Number::Float(f64::NAN)), 50.0),
            Some(50.0)
        );
        assert_eq!(
            accuracy_radius(coordinates, Some(Number::Signed(-5)), 50.0),
            Some(50.0)
        );
        assert_eq!(
            accuracy_radius(None, Some(Number::Unsigned(10)), 50.0),
            None
        );
    }

    #[test]
    fn asn_rejects_out_of_range_numbers() {
        assert_eq!(Number::Unsigned(4_294_967_295).to_asn(), Some(u32::MAX));
        assert_eq!(Number::Unsigned(4_294_967_296).to_asn(), None);
        assert_eq!(Number::Signed(-1).to_asn(), None);
        assert_eq!(Number::Float(15169.0).to_asn(), None);
    }
}
