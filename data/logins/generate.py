#!/usr/bin/env python3
"""Generate a synthetic, labelled login stream in the riskgate CSV layout.

Usage:
    python3 data/logins/generate.py [--seed 7] [--users 60] [--days 30]
        [--start 2024-03-04] [--out data/logins/generated-stream.csv]

The stream imitates the staff of four healthcare sites logging in to a CRM:

* Users have a role (physician, nurse, front_desk, billing, admin), a home site, one to
  three devices with one user agent each, and working hours that depend on the role.
  Nurses work 12-hour day or night shifts; physicians have weekend and night on-call
  logins. Nurses and front-desk staff often use a workstation shared at their site.
* About a quarter of the users take one trip of two to five days to another city.
* About 4 % of logins are typos: a failed login followed by a success a few seconds later.
* Attacks are labelled `is_attack=true` with one of these `attack_kind` values:
  - naive: a far-away network, a new device and an old user agent.
  - vpn: a hosting network in the victim's country where the test databases have one,
    else a hosting or VPN network with no location.
  - targeted: the victim's city network, the victim's user agent and a new device.
  - stuffing: bursts from one IP against many user ids, most of them unknown, and
    mostly failures.
  - spray: one or two attempts per user across a tenant's users, from a few rotating
    anonymiser IPs, and mostly failures.

Every IP address comes from a network that MaxMind's public test databases contain
(GeoIP2-City-Test, GeoLite2-ASN-Test, GeoIP2-Anonymous-IP-Test, from the
maxmind/MaxMind-DB repository). Those databases hold made-up records, so the stream
exercises the engine; it does not measure accuracy on real geography. The NETWORKS table
below names the record each network has.

The output is deterministic for a given seed on any Python 3 version, because the script
draws every number from `random.Random.random()`, the one method whose sequence Python
keeps stable across versions. Local times are converted with `zoneinfo`, which needs the
system time zone database (the `tzdata` package on Debian).
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import math
import random
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

COLUMNS = [
    "timestamp",
    "user_id",
    "ip",
    "user_agent",
    "role",
    "app",
    "tenant",
    "device_id",
    "login_successful",
    "is_attack",
    "attack_kind",
    "rtt_ms",
]


@dataclass(frozen=True)
class Network:
    """A network and the record the MaxMind test databases return for it."""

    cidrs: tuple[str, ...]
    country: str | None
    city: str | None
    # Coordinates of the record; for a country-only record, a point in that country.
    lat: float
    lon: float
    note: str


NETWORKS = {
    # GeoIP2-City-Test records with a city.
    "san_diego": Network(("214.78.120.0/22",), "US", "San Diego", 32.74, -117.09,
                         "City-Test San Diego; ASN-Test AS721"),
    "san_diego_v6": Network(("2001:480:10::/48",), "US", "San Diego", 32.74, -117.09,
                            "City-Test San Diego (IPv6)"),
    "milton": Network(("216.160.83.56/29",), "US", "Milton", 47.25, -122.31,
                      "City-Test Milton, WA; ASN-Test AS209"),
    "boxford": Network(("2.125.160.216/29", "2.2.3.0/24"), "GB", "Boxford", 51.75, -1.25,
                       "City-Test Boxford"),
    "linkoping": Network(("89.160.20.112/28", "89.160.20.128/25"), "SE", "Linköping",
                         58.42, 15.62, "City-Test Linköping; ASN-Test AS29518 Bredband2"),
    "singapore": Network(("214.0.0.0/24",), "SG", "Singapore", 1.34, 103.77,
                         "City-Test Singapore; ASN-Test AS721"),
    "melbourne": Network(("214.0.1.0/24",), "AU", "Melbourne", -37.82, 144.97,
                         "City-Test Melbourne; ASN-Test AS721"),
    "changchun": Network(("175.16.199.0/24",), "CN", "Changchun", 43.88, 125.32,
                         "City-Test Changchun"),
    # 81.2.69.0/24 is London in City-Test and flagged VPN, hosting, proxy and Tor in
    # Anonymous-IP-Test, so no legitimate user lives there.
    "london_hosting": Network(("81.2.69.144/28", "81.2.69.160/27", "81.2.69.192/28"), "GB",
                              "London", 51.51, -0.09,
                              "City-Test London; Anonymous-IP-Test VPN and hosting"),
    # Country-only records.
    "us_cellular": Network(("149.101.100.0/28",), "US", None, 37.75, -97.82,
                           "City-Test US without city; ASN-Test AS6167 CELLCO-PART"),
    "gb_mobile_v6": Network(("2a02:d3c0::/29",), "GB", None, 52.5, -1.5,
                            "City-Test GB without city (IPv6)"),
    "se_mobile_v6": Network(("2a02:d040::/29",), "SE", None, 59.3, 18.0,
                            "City-Test SE without city (IPv6)"),
    "philippines": Network(("202.196.224.0/20",), "PH", None, 13.0, 122.0,
                           "City-Test PH without city"),
    "bhutan_hosting": Network(("67.43.156.0/24",), "BT", None, 27.5, 90.5,
                              "City-Test BT; ASN-Test AS35908, a hosting ASN in public lists"),
    "russia_v6": Network(("2a02:d0c0::/29",), "RU", None, 55.75, 37.62,
                         "City-Test RU without city (IPv6)"),
    "iran_v6": Network(("2a02:d2c0::/29",), "IR", None, 35.7, 51.4,
                       "City-Test IR without city (IPv6)"),
    "ukraine_v6": Network(("2a02:d300::/29",), "UA", None, 50.45, 30.52,
                          "City-Test UA without city (IPv6)"),
    # No City-Test record: the engine cannot place these.
    "hosting_no_geo": Network(("71.160.223.0/24",), None, None, 39.0, -77.0,
                              "Anonymous-IP-Test hosting provider"),
    "vpn_no_geo": Network(("1.2.0.0/16",), None, None, 39.0, -77.0,
                          "Anonymous-IP-Test anonymous VPN"),
    "cloud_no_geo": Network(("1.0.0.0/24",), None, None, 37.4, -122.1,
                            "ASN-Test AS15169 Google Inc., a hosting ASN in public lists"),
    "proxy_no_geo": Network(("186.30.236.0/24",), None, None, 4.6, -74.1,
                            "Anonymous-IP-Test public proxy"),
    "tor_no_geo": Network(("65.0.0.0/13",), None, None, 50.0, 8.0,
                          "Anonymous-IP-Test Tor exit node"),
}


@dataclass(frozen=True)
class Site:
    tenant: str
    network: str
    mobile: str
    zone: str
    domain: str


SITES = {
    "san_diego": Site("pacific-care", "san_diego", "us_cellular", "America/Los_Angeles",
                      "pacificcare.example"),
    "milton": Site("pacific-care", "milton", "us_cellular", "America/Los_Angeles",
                   "pacificcare.example"),
    "boxford": Site("boxford-practice", "boxford", "gb_mobile_v6", "Europe/London",
                    "boxfordpractice.example"),
    "linkoping": Site("linkoping-vard", "linkoping", "se_mobile_v6", "Europe/Stockholm",
                      "linkopingvard.example"),
}
# Share of users per site, in the order of SITES.
SITE_WEIGHTS = [0.4, 0.13, 0.24, 0.23]

# Time zones of the cities, as the City-Test records give them (Asia/Harbin is an alias
# of Asia/Shanghai).
CITY_ZONES = {
    "san_diego": "America/Los_Angeles",
    "milton": "America/Los_Angeles",
    "boxford": "Europe/London",
    "linkoping": "Europe/Stockholm",
    "singapore": "Asia/Singapore",
    "melbourne": "Australia/Melbourne",
    "changchun": "Asia/Shanghai",
}

ROLES = ["physician", "nurse", "front_desk", "billing", "admin"]
ROLE_WEIGHTS = [0.25, 0.33, 0.17, 0.13, 0.12]

# Cities a user may travel to, by home site.
TRIP_DESTINATIONS = {
    "san_diego": ["milton", "melbourne", "singapore", "linkoping"],
    "milton": ["san_diego", "singapore", "boxford"],
    "boxford": ["linkoping", "san_diego", "melbourne"],
    "linkoping": ["boxford", "changchun", "singapore"],
}

# Far-away networks of naive attackers.
NAIVE_NETWORKS = ["changchun", "philippines", "bhutan_hosting", "singapore", "melbourne",
                  "russia_v6", "iran_v6", "ukraine_v6"]
# Hosting networks with a location in the victim's country; other countries fall back to
# VPN_FALLBACK because the test databases have no such network there.
VPN_NETWORKS = {"GB": ["london_hosting"]}
VPN_FALLBACK = ["hosting_no_geo", "vpn_no_geo", "cloud_no_geo"]
STUFFING_NETWORKS = ["bhutan_hosting", "philippines", "cloud_no_geo"]
SPRAY_NETWORKS = ["tor_no_geo", "proxy_no_geo", "vpn_no_geo", "hosting_no_geo"]

DESKTOP_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36 Edg/122.0.2365.66",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 Firefox/123.0",
]
LAPTOP_AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/121.0.0.0 Safari/537.36",
]
PHONE_AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.3 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.6261.64 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/121.0.6167.178 Mobile Safari/537.36",
]
ATTACKER_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/108.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:102.0) Gecko/20100101 Firefox/102.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0",
    "Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.18",
]
BOT_AGENTS = ["python-requests/2.31.0", "curl/8.5.0", "Go-http-client/1.1"]

FIRST_NAMES = ["maria", "james", "sofia", "liam", "emma", "noah", "olivia", "lucas", "amelia",
               "elias", "ingrid", "oscar", "hanna", "arjun", "mei", "david", "fatima", "erik",
               "grace", "samuel", "nora", "hugo", "chloe", "omar", "freja", "isaac", "ruth",
               "leon", "ada", "felix"]
LAST_NAMES = ["lopez", "smith", "berg", "nguyen", "patel", "johansson", "brown", "garcia",
              "lindqvist", "taylor", "kim", "wilson", "andersson", "clark", "martin", "evans",
              "karlsson", "walker", "chen", "hughes"]


class Rng:
    """Random helpers built only on `random.Random.random()`, which is stable across
    Python versions (the other methods may change)."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._random.random()

    def chance(self, probability: float) -> bool:
        return self._random.random() < probability

    def integer(self, low: int, high: int) -> int:
        """Return an integer in [low, high]."""
        return low + min(int(self._random.random() * (high - low + 1)), high - low)

    def choice(self, items):
        return items[self.integer(0, len(items) - 1)]

    def weighted(self, items, weights):
        point = self._random.random() * sum(weights)
        for item, weight in zip(items, weights):
            point -= weight
            if point < 0:
                return item
        return items[-1]

    def sample(self, items, count: int) -> list:
        pool = list(items)
        picked = []
        for _ in range(min(count, len(pool))):
            picked.append(pool.pop(self.integer(0, len(pool) - 1)))
        return picked

    def hex(self, digits: int) -> str:
        return "".join(self.choice("0123456789abcdef") for _ in range(digits))

    def address(self, network_name: str) -> str:
        """Pick a host address of one of the network's CIDRs."""
        cidr = ipaddress.ip_network(self.choice(NETWORKS[network_name].cidrs))
        hosts = cidr.num_addresses
        # Skip the network and broadcast addresses of IPv4 networks larger than /31.
        low, high = (1, hosts - 2) if cidr.version == 4 and hosts > 2 else (0, hosts - 1)
        offset = low + min(int(self._random.random() * (high - low + 1)), high - low)
        return str(cidr.network_address + offset)


@dataclass
class Device:
    device_id: str
    user_agent: str
    kind: str  # workstation, laptop or phone


@dataclass
class User:
    user_id: str
    role: str
    site: str
    devices: list[Device]
    home_ip: str
    work_ip: str
    night_shift: bool = False
    trip: tuple[date, date, str] | None = None
    shared_devices: list[Device] = field(default_factory=list)


@dataclass(frozen=True)
class Login:
    when: datetime
    user_id: str
    ip: str
    user_agent: str
    role: str
    app: str
    tenant: str
    device_id: str
    success: bool
    attack_kind: str = ""
    rtt_ms: float | None = None


def distance_km(a: Network, b: Network) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371 * math.asin(math.sqrt(h))


def round_trip_ms(rng: Rng, client: str, site: str, mobile: bool) -> float:
    """Estimate the client-to-server round-trip time with a rough model.

    Light in fibre covers about 100 km of distance per millisecond of round trip, and the
    model makes routes 1.6 times longer than the great circle.
    """
    km = distance_km(NETWORKS[client], NETWORKS[SITES[site].network])
    base = 4 + km / 100 * 1.6 + (35 if mobile else 0)
    return round(base * rng.uniform(0.9, 1.3), 1)


def make_users(rng: Rng, count: int) -> list[User]:
    site_names = list(SITES)
    shared = {
        name: [Device(f"ws-shared-{rng.hex(8)}", rng.choice(DESKTOP_AGENTS), "workstation")
               for _ in range(2)]
        for name in site_names
    }
    # Each site reaches the internet through a few NAT addresses that its staff share.
    nat_pools = {name: [rng.address(SITES[name].network) for _ in range(3)]
                 for name in site_names}
    names = [(first, last) for first in FIRST_NAMES for last in LAST_NAMES]
    users = []
    for first, last in rng.sample(names, count):
        site = rng.weighted(site_names, SITE_WEIGHTS)
        role = rng.weighted(ROLES, ROLE_WEIGHTS)
        devices = [Device(f"dev-{rng.hex(12)}", rng.choice(DESKTOP_AGENTS), "workstation")]
        if rng.chance(0.5):
            devices.append(Device(f"dev-{rng.hex(12)}", rng.choice(LAPTOP_AGENTS), "laptop"))
        if rng.chance(0.6):
            devices.append(Device(f"dev-{rng.hex(12)}", rng.choice(PHONE_AGENTS), "phone"))
        home_network = site
        if site == "san_diego" and rng.chance(0.3):
            home_network = "san_diego_v6"
        user = User(
            user_id=f"{first}.{last}@{SITES[site].domain}",
            role=role,
            site=site,
            devices=devices,
            home_ip=rng.address(home_network),
            work_ip=rng.choice(nat_pools[site]),
            night_shift=role == "nurse" and rng.chance(0.35),
        )
        if role in ("nurse", "front_desk"):
            user.shared_devices = shared[site]
        users.append(user)
    return users


def plan_trips(rng: Rng, users: list[User], start: date, days: int) -> None:
    for user in users:
        if not rng.chance(0.25):
            continue
        length = rng.integer(2, 5)
        first = start + timedelta(days=rng.integer(0, max(0, days - length)))
        user.trip = (first, first + timedelta(days=length - 1), rng.choice(TRIP_DESTINATIONS[user.site]))


def shift_windows(rng: Rng, user: User, day: date) -> list[tuple[float, float, bool]]:
    """Return the local hours (start, end, at_site) in which `user` logs in on `day`.

    `end` may pass 24 for shifts that end the next morning.
    """
    weekday = day.weekday() < 5
    windows = []
    if user.role == "physician":
        if weekday:
            windows.append((7.0, 19.0, True))
        elif rng.chance(0.25):
            windows.append((9.0, 13.0, False))  # weekend on-call from home
        if rng.chance(0.06):
            windows.append((22.0, 27.0, False))  # night on-call from home
        if weekday and rng.chance(0.15):
            windows.append((19.5, 22.5, False))  # notes written in the evening
        return windows
    if user.role == "nurse":
        if rng.chance(0.5):
            windows.append((19.0, 31.0, True) if user.night_shift else (7.0, 19.0, True))
        return windows
    if not weekday:
        return windows
    if user.role == "front_desk":
        windows.append((7.5, 17.5, True))
    elif user.role == "billing":
        windows.append((8.5, 17.0, True))
    else:  # admin
        windows.append((8.0, 18.0, True))
        if rng.chance(0.1):
            windows.append((20.0, 22.0, False))
    return windows


LOGINS_PER_DAY = {"physician": (2, 5), "nurse": (2, 4), "front_desk": (1, 3),
                  "billing": (1, 2), "admin": (1, 3)}


def to_utc(day: date, hour: float, zone: str) -> datetime:
    local = datetime.combine(day, time()) + timedelta(hours=hour)
    return local.replace(tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)


def legitimate_logins(rng: Rng, users: list[User], start: date, days: int) -> list[Login]:
    logins = []
    for user in users:
        site = SITES[user.site]
        for offset in range(days):
            day = start + timedelta(days=offset)
            if rng.chance(0.05):
                continue  # day off
            travelling = user.trip is not None and user.trip[0] <= day <= user.trip[1]
            windows = shift_windows(rng, user, day)
            if travelling:
                windows = [(8.0, 21.0, False)] if rng.chance(0.6) else []
            for window_start, window_end, at_site in windows:
                low, high = LOGINS_PER_DAY[user.role]
                count = rng.integer(low, high) if window_end - window_start > 6 else 1
                for _ in range(count):
                    hour = rng.uniform(window_start, window_end)
                    logins.extend(one_login(rng, user, site, day, hour, at_site, travelling))
    return logins


def one_login(rng: Rng, user: User, site: Site, day: date, hour: float, at_site: bool,
              travelling: bool) -> list[Login]:
    """Return one legitimate login, preceded by a failed typo attempt now and then."""
    phones = [d for d in user.devices if d.kind == "phone"]
    computers = [d for d in user.devices if d.kind != "phone"]
    portable = [d for d in user.devices if d.kind != "workstation"] or user.devices
    zone = site.zone
    if travelling and user.trip is not None:
        network = user.trip[2]
        ip = rng.address(network)
        device = rng.choice(portable)
        zone = CITY_ZONES[network]
    elif at_site:
        if user.shared_devices and rng.chance(0.4):
            device = rng.choice(user.shared_devices)
        elif phones and rng.chance(0.2):
            device = rng.choice(phones)
        else:
            device = rng.choice(computers)
        network, ip = user.site, user.work_ip
        if device.kind == "phone" and rng.chance(0.5):
            network = site.mobile
            ip = rng.address(network)
    else:
        device = rng.choice(portable)
        network = "san_diego_v6" if ":" in user.home_ip else user.site
        ip = user.home_ip
        if device.kind == "phone" and rng.chance(0.5):
            network = site.mobile
            ip = rng.address(network)
    when = to_utc(day, hour, zone) + timedelta(milliseconds=rng.integer(0, 999))
    app = "crm-mobile" if device.kind == "phone" else "crm-web"
    rtt = round_trip_ms(rng, network, user.site, network == site.mobile)
    login = Login(when, user.user_id, ip, device.user_agent, user.role, app, site.tenant,
                  device.device_id, True, rtt_ms=rtt)
    if rng.chance(0.04):
        typo_when = when - timedelta(seconds=rng.uniform(4, 40))
        typo = Login(typo_when, user.user_id, ip, device.user_agent, user.role, app,
                     site.tenant, device.device_id, False, rtt_ms=rtt)
        return [typo, login]
    return [login]


def attack_time(rng: Rng, start: date, days: int) -> datetime:
    day = start + timedelta(days=rng.integer(0, days - 1))
    return datetime.combine(day, time(), tzinfo=timezone.utc) + timedelta(
        seconds=rng.uniform(0, 86400))


def account_takeovers(rng: Rng, users: list[User], start: date, days: int) -> list[Login]:
    """Return naive, vpn and targeted attacks, made with the victim's stolen password."""
    attacks = []
    for kind, count in (("naive", 16), ("vpn", 14), ("targeted", 14)):
        for _ in range(count):
            victim = rng.choice(users)
            site = SITES[victim.site]
            device_id = f"dev-{rng.hex(12)}"
            if kind == "naive":
                network = rng.choice(NAIVE_NETWORKS)
                agent = rng.choice(ATTACKER_AGENTS)
                when = attack_time(rng, start, days)
            elif kind == "vpn":
                country = NETWORKS[victim.site].country
                network = rng.choice(VPN_NETWORKS.get(country, VPN_FALLBACK))
                agent = rng.choice(DESKTOP_AGENTS)
                when = attack_time(rng, start, days)
            else:
                network = victim.site
                agent = rng.choice(victim.devices).user_agent
                day = start + timedelta(days=rng.integer(0, days - 1))
                when = to_utc(day, rng.uniform(8.0, 18.0), site.zone)
            ip = rng.address(network)
            rtt = round_trip_ms(rng, network, victim.site, False)
            # A few attackers mistype the stolen password first, and about 8 % of the
            # stolen passwords no longer work.
            tries = 2 if rng.chance(0.15) else 1
            for attempt in range(tries):
                success = attempt == tries - 1 and not rng.chance(0.08)
                attacks.append(Login(
                    when + timedelta(seconds=20 * attempt), victim.user_id, ip, agent,
                    victim.role, "crm-web", site.tenant, device_id, success, kind, rtt))
    return attacks


def stuffing_bursts(rng: Rng, users: list[User], start: date, days: int) -> list[Login]:
    """Return credential-stuffing bursts: one IP, many user ids, mostly failures."""
    attacks = []
    for network in rng.sample(STUFFING_NETWORKS, 3):
        ip = rng.address(network)
        agent = rng.choice(BOT_AGENTS)
        site_name = rng.choice(list(SITES))
        site = SITES[site_name]
        tenant_users = [u for u in users if SITES[u.site].tenant == site.tenant]
        when = attack_time(rng, start, days)
        for _ in range(rng.integer(50, 90)):
            when += timedelta(seconds=rng.uniform(1.5, 12))
            if tenant_users and rng.chance(0.35):
                victim = rng.choice(tenant_users)
                user_id, role = victim.user_id, victim.role
                success = rng.chance(0.04)  # a reused password
            else:
                user_id = f"{rng.choice(FIRST_NAMES)}{rng.integer(1, 9999)}@mail.example"
                role, success = "", False
            rtt = round_trip_ms(rng, network, site_name, False)
            attacks.append(Login(when, user_id, ip, agent, role, "crm-web", site.tenant,
                                 "", success, "stuffing", rtt))
    return attacks


def password_spray(rng: Rng, users: list[User], start: date, days: int) -> list[Login]:
    """Return spray campaigns: one or two attempts per user of a tenant, mostly failures."""
    attacks = []
    tenants = sorted({site.tenant for site in SITES.values()})
    for tenant in rng.sample(tenants, 2):
        ips = [(network, rng.address(network))
               for network in rng.sample(SPRAY_NETWORKS, rng.integer(3, 4))]
        agent = rng.choice(ATTACKER_AGENTS)
        targets = [u for u in users if SITES[u.site].tenant == tenant]
        begin = attack_time(rng, start, days)
        for attempt in range(2):
            for victim in targets:
                if attempt == 1 and not rng.chance(0.5):
                    continue
                network, ip = rng.choice(ips)
                when = begin + timedelta(hours=attempt * 3 + rng.uniform(0, 2.5))
                rtt = round_trip_ms(rng, network, victim.site, False)
                attacks.append(Login(when, victim.user_id, ip, agent, victim.role, "crm-web",
                                     tenant, "", rng.chance(0.03), "spray", rtt))
    return attacks


def format_row(login: Login) -> list[str]:
    millis = login.when.microsecond // 1000
    stamp = login.when.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"
    return [
        stamp,
        login.user_id,
        login.ip,
        login.user_agent,
        login.role,
        login.app,
        login.tenant,
        login.device_id,
        "true" if login.success else "false",
        "true" if login.attack_kind else "false",
        login.attack_kind,
        "" if login.rtt_ms is None else f"{login.rtt_ms:.1f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--users", type=int, default=60, help="number of users (default 60)")
    parser.add_argument("--days", type=int, default=30, help="length in days (default 30)")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 3, 4),
                        help="first day, YYYY-MM-DD (default 2024-03-04, a Monday)")
    parser.add_argument("--out", default="data/logins/generated-stream.csv",
                        help="output CSV path (default data/logins/generated-stream.csv)")
    args = parser.parse_args()
    if args.users < 1 or args.users > len(FIRST_NAMES) * len(LAST_NAMES):
        parser.error(f"--users must be between 1 and {len(FIRST_NAMES) * len(LAST_NAMES)}")
    if args.days < 1:
        parser.error("--days must be at least 1")

    rng = Rng(args.seed)
    users = make_users(rng, args.users)
    plan_trips(rng, users, args.start, args.days)
    logins = legitimate_logins(rng, users, args.start, args.days)
    logins += account_takeovers(rng, users, args.start, args.days)
    logins += stuffing_bursts(rng, users, args.start, args.days)
    logins += password_spray(rng, users, args.start, args.days)
    logins.sort(key=lambda login: (login.when, login.user_id))

    with open(args.out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for login in logins:
            writer.writerow(format_row(login))

    kinds: dict[str, int] = {}
    for login in logins:
        kinds[login.attack_kind or "legitimate"] = kinds.get(login.attack_kind or "legitimate", 0) + 1
    summary = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
    print(f"wrote {len(logins)} rows to {args.out}: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
