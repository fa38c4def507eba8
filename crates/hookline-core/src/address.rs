//! Which network addresses Hookline may deliver to (SSRF protection).
//!
//! Endpoint URLs are typed by strangers; without this, one of them could point Hookline at
//! the platform's own network (cloud metadata at 169.254.169.254, an admin port on
//! loopback, a database in 10/8). The same policy is applied at endpoint create/update and
//! again to every address a delivery connects to, so DNS rebinding gains nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::{Host, Url};

/// The addresses deliveries may reach: every public address, plus `allowed` exemptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<IpNet>,
    https_only: bool,
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("must be an http or https URL")]
    Scheme,
    #[error("must use https")]
    HttpsRequired,
    #[error("must name a host")]
    NoHost,
    #[error("points at a private, loopback or otherwise internal address ({0})")]
    Internal(String),
}

impl AddressPolicy {
    /// `allowed` exempts internal ranges (for example a private network that really hosts
    /// receivers, or loopback in tests); `https_only` refuses plain http.
    pub fn new(allowed: Vec<IpNet>, https_only: bool) -> Self {
        Self {
            allowed,
            https_only,
        }
    }

    /// Parses CIDRs such as `10.1.0.0/16` or single addresses such as `::1`.
    pub fn parse_allowed(items: &[String]) -> Result<Vec<IpNet>, String> {
        items
            .iter()
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{item}` is not a CIDR or an IP address"))
            })
            .collect()
    }

    /// Whether a delivery may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allowed.iter().any(|net| net.contains(&ip)) || !is_internal(ip)
    }

    /// Checks what can be checked without DNS: scheme, host, and the address when the host
    /// is a literal IP or a name that always means loopback. Answers the host name to
    /// resolve, if any.
    pub fn check_url<'u>(&self, url: &'u Url) -> Result<Option<&'u str>, DestinationError> {
        match url.scheme() {
            "https" => {}
            "http" if self.https_only => return Err(DestinationError::HttpsRequired),
            "http" => {}
            _ => return Err(DestinationError::Scheme),
        }
        match url.host() {
            None => Err(DestinationError::NoHost),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)).map(|()| None),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)).map(|()| None),
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.');
                // RFC 6761: these names always resolve to loopback, whatever DNS says.
                if name.eq_ignore_ascii_case("localhost")
                    || name.to_ascii_lowercase().ends_with(".localhost")
                {
                    self.check_ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
                        .map(|()| None)
                } else {
                    Ok(Some(name))
                }
            }
        }
    }

    /// `Err` naming the address when it is not permitted.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), DestinationError> {
        if self.permits(ip) {
            Ok(())
        } else {
            Err(DestinationError::Internal(ip.to_string()))
        }
    }
}

/// IPv4 addresses carried inside IPv6 ones (mapped, compatible, NAT64, 6to4) are judged as the
/// IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match v6.segments() {
        // ::ffff:a.b.c.d (mapped)
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        // ::a.b.c.d (deprecated compatible form), excluding :: and ::1 themselves
        [0, 0, 0, 0, 0, 0, high, _] if high != 0 => Some(tail),
        // 64:ff9b::a.b.c.d (NAT64)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // 2002:AABB:CCDD::/48 (6to4) carries AA.BB.CC.DD
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// Loopback, private, link-local, CGNAT, multicast, broadcast, unspecified, reserved and
/// benchmarking ranges: nothing a public receiver lives on.
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_unspecified()
                || a == 0
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
                || v4.is_multicast()
                || v4.is_broadcast()
                || a >= 240
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_unspecified()
                || v6.is_loopback()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || (first & 0xff00) == 0xff00
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> AddressPolicy {
        AddressPolicy::default()
    }

    #[test]
    fn internal_addresses_are_refused_and_public_ones_permitted() {
        let refused = [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ];
        for ip in refused {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!strict().permits(ip), "{ip} must be refused");
        }
        let permitted = [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ];
        for ip in permitted {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(strict().permits(ip), "{ip} must be permitted");
        }
    }

    #[test]
    fn allowed_subnets_exempt_their_ranges_only() {
        let allowed = AddressPolicy::parse_allowed(&["127.0.0.0/8".into(), "::1".into()]).unwrap();
        let policy = AddressPolicy::new(allowed, false);
        assert!(policy.permits("127.0.0.1".parse().unwrap()));
        assert!(policy.permits("::1".parse().unwrap()));
        assert!(policy.permits("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!policy.permits("10.0.0.1".parse().unwrap()));
        assert!(AddressPolicy::parse_allowed(&["10.0.0.0/33".into()]).is_err());
    }

    #[test]
    fn urls_are_checked_without_dns_where_possible() {
        let policy = strict();
        let cases = [
            (
                "http://10.0.0.1/",
                Err(DestinationError::Internal("10.0.0.1".into())),
            ),
            (
                "http://[::1]/",
                Err(DestinationError::Internal("::1".into())),
            ),
            (
                "http://[::ffff:127.0.0.1]/",
                Err(DestinationError::Internal("::ffff:127.0.0.1".into())),
            ),
            (
                "http://localhost:8080/",
                Err(DestinationError::Internal("127.0.0.1".into())),
            ),
            (
                "http://api.LOCALHOST./",
                Err(DestinationError::Internal("127.0.0.1".into())),
            ),
            ("ftp://example.com/", Err(DestinationError::Scheme)),
            ("https://example.com/hook", Ok(Some("example.com"))),
            ("http://93.184.216.34/", Ok(None)),
        ];
        for (text, expected) in cases {
            let url = Url::parse(text).unwrap();
            assert_eq!(policy.check_url(&url), expected, "{text}");
        }
        let https_only = AddressPolicy::new(Vec::new(), true);
        let url = Url::parse("http://example.com/").unwrap();
        assert_eq!(
            https_only.check_url(&url),
            Err(DestinationError::HttpsRequired)
        );
    }
}
