//! Outbound name resolution under the SSRF policy.
//!
//! Both the API (checking an endpoint URL when it is saved) and the dispatcher (connecting
//! for a delivery) resolve through [`Resolver`], so a name that resolved to a public address
//! at save time and to loopback at delivery time (DNS rebinding) is still refused: the
//! dispatcher's HTTP client only ever connects to addresses this resolver let through.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use hookline_core::address::{AddressPolicy, DestinationError};

#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;

/// Why a name yielded no address to connect to.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// Every address the name resolved to is internal: the SSRF policy refuses them.
    #[error("destination refused: {0}")]
    Blocked(String),
    /// The name did not resolve (NXDOMAIN, timeout, no server).
    #[error("cannot resolve {name}: {reason}")]
    Lookup { name: String, reason: String },
}

enum Backend {
    /// The operating system's resolver (`getaddrinfo`, so /etc/hosts applies).
    System,
    /// A DNS server named in the configuration (boxed: it is large and built once).
    Server(Box<TokioResolver>),
}

/// Resolves host names and keeps only the addresses the policy permits. Cheap to clone.
#[derive(Clone)]
pub struct Resolver(Arc<Inner>);

struct Inner {
    backend: Backend,
    policy: AddressPolicy,
    timeout: Duration,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.0.backend {
            Backend::System => "system",
            Backend::Server(_) => "dns server",
        };
        f.debug_struct("Resolver")
            .field("backend", &backend)
            .field("policy", &self.0.policy)
            .finish()
    }
}

impl Resolver {
    /// Resolves through the operating system.
    pub fn system(policy: AddressPolicy) -> Self {
        Self::build(Backend::System, policy)
    }

    /// Resolves by asking the DNS server at `server` (UDP and TCP), without caching, so every
    /// delivery sees the current answer.
    pub fn with_server(policy: AddressPolicy, server: SocketAddr) -> Self {
        let servers = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        let mut options = ResolverOpts::default();
        options.cache_size = 0;
        options.attempts = 1;
        options.timeout = Duration::from_secs(2);
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(options)
                .build();
        Self::build(Backend::Server(Box::new(resolver)), policy)
    }

    fn build(backend: Backend, policy: AddressPolicy) -> Self {
        Self(Arc::new(Inner {
            backend,
            policy,
            timeout: Duration::from_secs(5),
        }))
    }

    pub fn policy(&self) -> &AddressPolicy {
        &self.0.policy
    }

    /// Every address `name` resolves to, permitted or not.
    pub async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let failed = |reason: String| ResolveError::Lookup {
            name: name.to_owned(),
            reason,
        };
        let lookup = async {
            match &self.0.backend {
                Backend::System => tokio::net::lookup_host((name, 0))
                    .await
                    .map(|addrs| addrs.map(|a| a.ip()).collect::<Vec<_>>())
                    .map_err(|e| failed(e.to_string())),
                Backend::Server(resolver) => resolver
                    .lookup_ip(name)
                    .await
                    .map(|ips| ips.iter().collect())
                    .map_err(|e| failed(e.to_string())),
            }
        };
        match tokio::time::timeout(self.0.timeout, lookup).await {
            Ok(Ok(ips)) if ips.is_empty() => Err(failed("no addresses".into())),
            Ok(result) => result,
            Err(_) => Err(failed("timed out".into())),
        }
    }

    /// The addresses of `name` a delivery may connect to; [`ResolveError::Blocked`] when the
    /// name resolves only to refused ones.
    pub async fn permitted(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let all = self.lookup(name).await?;
        let (permitted, refused): (Vec<IpAddr>, Vec<IpAddr>) =
            all.into_iter().partition(|ip| self.0.policy.permits(*ip));
        if permitted.is_empty() {
            let first = refused.first().map(ToString::to_string).unwrap_or_default();
            return Err(ResolveError::Blocked(format!("{name} resolves to {first}")));
        }
        Ok(permitted)
    }

    /// The check made when an endpoint URL is saved: the URL itself, and, when its host is a
    /// name that resolves now, every address it resolves to. A name that does not resolve yet
    /// is accepted; the delivery-time check still applies.
    pub async fn check_destination(&self, url: &url::Url) -> Result<(), DestinationError> {
        let Some(name) = self.0.policy.check_url(url)? else {
            return Ok(());
        };
        match self.lookup(name).await {
            Ok(ips) => ips
                .into_iter()
                .try_for_each(|ip| self.0.policy.check_ip(ip)),
            Err(_) => Ok(()),
        }
    }
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let ips = resolver
                .permitted(name.as_str())
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            // The connector replaces port 0 with the URL's port.
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The resolver of a client that sends every request through the operator's egress proxy:
/// such a client connects only to the proxy, so this resolves the proxy's host without the
/// policy (it is the operator's, and usually private); any other name still passes it. The
/// final destination is checked with [`Resolver::permitted`] before the request is handed to
/// the proxy.
#[derive(Debug, Clone)]
pub struct ProxyResolver {
    resolver: Resolver,
    proxy_host: String,
}

impl ProxyResolver {
    pub fn new(resolver: Resolver, proxy_host: &str) -> Self {
        Self {
            resolver,
            proxy_host: proxy_host.trim_end_matches('.').to_ascii_lowercase(),
        }
    }

    async fn resolve_name(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        if name
            .trim_end_matches('.')
            .eq_ignore_ascii_case(&self.proxy_host)
        {
            self.resolver.lookup(name).await
        } else {
            self.resolver.permitted(name).await
        }
    }
}

impl reqwest::dns::Resolve for ProxyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let ips = resolver
                .resolve_name(name.as_str())
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_is_blocked_unless_allowed() {
        let strict = Resolver::system(AddressPolicy::default());
        assert!(matches!(
            strict.permitted("localhost").await,
            Err(ResolveError::Blocked(_))
        ));
        let allowed =
            AddressPolicy::parse_allowed(&["127.0.0.0/8".into(), "::1".into()]).expect("cidrs");
        let lenient = Resolver::system(AddressPolicy::new(allowed, false));
        let ips = lenient.permitted("localhost").await.expect("permitted");
        assert!(ips.iter().all(IpAddr::is_loopback));
    }

    #[tokio::test]
    async fn the_proxy_host_alone_escapes_the_policy() {
        let proxied = ProxyResolver::new(Resolver::system(AddressPolicy::default()), "LocalHost.");
        let ips = proxied
            .resolve_name("localhost")
            .await
            .expect("the proxy host");
        assert!(ips.iter().all(IpAddr::is_loopback));
        let other = ProxyResolver::new(Resolver::system(AddressPolicy::default()), "proxy.example");
        assert!(matches!(
            other.resolve_name("localhost").await,
            Err(ResolveError::Blocked(_))
        ));
    }

    #[tokio::test]
    async fn unresolvable_names_are_a_lookup_error() {
        let resolver = Resolver::system(AddressPolicy::default());
        let result = resolver.permitted("no-such-host.invalid").await;
        assert!(
            matches!(result, Err(ResolveError::Lookup { .. })),
            "{result:?}"
        );
    }
}
