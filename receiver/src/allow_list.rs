//! Who may post webhooks: an IP allow-list in front of the webhook path, as a tower [`Layer`].
//!
//! PassFort sends every webhook from a few published addresses ([`PASSFORT_EU`],
//! [`PASSFORT_US`], [`PASSFORT_UAE`]) and its help page tells integrators to allow-list them.
//! A request from anywhere else is answered **403** `{"error": "…"}` before its body is read:
//! nothing is parsed, nothing stored, and the refusal is counted in
//! `passfort_requests_rejected_total{reason="ip"}` and logged with the address.
//!
//! The client address is the TCP peer ([`axum::extract::ConnectInfo`]), unless that peer is a
//! proxy listed in [`TrustedProxies`]: then it is the right-most `X-Forwarded-For` (or
//! `Forwarded: for=`) address that is not itself a trusted proxy. Without trusted proxies the
//! forwarding headers are ignored, since anyone can send them. A request whose client address
//! cannot be known (no `ConnectInfo`, an unreadable forwarding header) is refused: an allow-list
//! fails closed.
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use passfort_receiver::allow_list::{AllowList, AllowListLayer, TrustedProxies};
//!
//! # fn app() -> Result<Router, passfort_receiver::allow_list::AllowListError> {
//! let allowed: AllowList = "passfort-eu,10.0.0.0/8".parse()?;
//! let proxies: TrustedProxies = "10.1.2.3/32".parse()?;
//! let app = Router::new()
//!     .route("/hooks", post(|| async { "ok" }))
//!     .layer(AllowListLayer::new(allowed).trust_proxies(proxies));
//! // Serve with `app.into_make_service_with_connect_info::<std::net::SocketAddr>()`.
//! # Ok(app) }
//! ```

use crate::metrics::Metrics;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// PassFort's EU sending addresses.
///
/// Source: help.passfort.com, "About Passfort's webhooks", as recorded in this project's domain
/// reference (spec §1, `docs/passfort-webhooks.md`) on 2026-12-02. Check that page when
/// PassFort announces a change; these lists are the only place the addresses live.
pub const PASSFORT_EU: &[&str] = &["35.195.138.186/32", "130.211.56.13/32", "35.195.211.38/32"];

/// PassFort's US sending addresses (same source and date as [`PASSFORT_EU`]).
pub const PASSFORT_US: &[&str] = &["35.231.204.101/32", "35.196.25.242/32"];

/// PassFort's UAE sending addresses (same source and date as [`PASSFORT_EU`]): the current
/// page names one address; older versions of it named two /16 ranges, kept so that a customer
/// still served from them is not cut off.
pub const PASSFORT_UAE: &[&str] = &["20.74.180.162/32", "20.74.0.0/16", "20.203.0.0/16"];

/// The named sets `--allow-from` understands, and what each stands for.
pub const NAMED_SETS: [(&str, &[&[&str]]); 4] = [
    ("passfort-eu", &[PASSFORT_EU]),
    ("passfort-us", &[PASSFORT_US]),
    ("passfort-uae", &[PASSFORT_UAE]),
    ("passfort", &[PASSFORT_EU, PASSFORT_US, PASSFORT_UAE]),
];

/// Why a list of addresses could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowListError {
    /// An entry is neither an address, a CIDR, nor a named set.
    #[error("{0:?} is not an IP address, a CIDR (10.0.0.0/8) or one of passfort-eu, passfort-us, passfort-uae, passfort")]
    BadEntry(String),
    /// The list has no entry at all.
    #[error("the address list is empty")]
    Empty,
}

/// A set of networks: addresses (a /32 or /128) and CIDRs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Networks(Vec<IpNet>);

impl Networks {
    fn parse(list: &str, named: bool) -> Result<Self, AllowListError> {
        let mut nets = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if named {
                if let Some((_, sets)) = NAMED_SETS.iter().find(|(name, _)| *name == entry) {
                    for set in sets.iter() {
                        for cidr in set.iter() {
                            nets.push(
                                cidr.parse::<IpNet>()
                                    .map_err(|_| AllowListError::BadEntry((*cidr).to_owned()))?,
                            );
                        }
                    }
                    continue;
                }
            }
            nets.push(parse_net(entry)?);
        }
        if nets.is_empty() {
            return Err(AllowListError::Empty);
        }
        Ok(Self(nets))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

fn parse_net(entry: &str) -> Result<IpNet, AllowListError> {
    if let Ok(net) = entry.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    entry
        .parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| AllowListError::BadEntry(entry.to_owned()))
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:1.2.3.4`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses allowed to post webhooks (`--allow-from`): everyone by default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowList {
    /// `None`: everyone.
    networks: Option<Networks>,
}

impl AllowList {
    /// Every address: the default, because a receiver behind an unknown proxy or tunnel would
    /// otherwise refuse PassFort itself; the secrets are what authenticates a request.
    pub fn everyone() -> Self {
        Self { networks: None }
    }

    /// PassFort's published addresses in every region (the named set `passfort`).
    pub fn passfort() -> Self {
        let nets = [PASSFORT_EU, PASSFORT_US, PASSFORT_UAE]
            .iter()
            .flat_map(|set| set.iter())
            .filter_map(|cidr| cidr.parse::<IpNet>().ok())
            .collect();
        Self {
            networks: Some(Networks(nets)),
        }
    }

    /// Whether this list lets every address through.
    pub fn is_everyone(&self) -> bool {
        self.networks.is_none()
    }

    /// Whether `ip` may post.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.networks.as_ref().is_none_or(|nets| nets.contains(ip))
    }
}

impl FromStr for AllowList {
    type Err = AllowListError;

    /// Comma-separated addresses, CIDRs and named sets (`passfort-eu`, `passfort-us`,
    /// `passfort-uae`, `passfort`); `*` or `everyone` allows everyone.
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        if matches!(list.trim(), "*" | "everyone") {
            return Ok(Self::everyone());
        }
        Ok(Self {
            networks: Some(Networks::parse(list, true)?),
        })
    }
}

/// The proxies whose forwarding headers are believed (`--trust-proxy`): none by default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustedProxies(Networks);

impl TrustedProxies {
    /// No proxy is trusted: forwarding headers are ignored.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The client of a request that came from `peer` with `headers`: `peer` itself unless it
    /// is a trusted proxy; then the right-most forwarded address that is not a trusted proxy
    /// (from `Forwarded: for=` when present, else `X-Forwarded-For`), or the left-most one if
    /// every hop is trusted. `None` when a forwarded entry that matters cannot be read.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return Some(peer);
        }
        let hops = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
        let Some(hops) = hops else {
            // A trusted proxy that forwarded nothing is itself the client (e.g. its own probe).
            return Some(peer);
        };
        let mut client = Some(peer);
        for hop in hops.iter().rev() {
            client = hop.map(canonical);
            match client {
                Some(ip) if self.trusts(ip) => continue,
                _ => return client,
            }
        }
        client
    }
}

impl FromStr for TrustedProxies {
    type Err = AllowListError;

    /// Comma-separated addresses and CIDRs.
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        Ok(Self(Networks::parse(list, false)?))
    }
}

/// Every `X-Forwarded-For` hop in order (header lines joined), `None` for an unreadable hop;
/// `None` overall when the header is absent.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            hops.push(None);
            continue;
        };
        hops.extend(text.split(',').map(|hop| parse_hop(hop.trim())));
    }
    (!hops.is_empty()).then_some(hops)
}

/// Every `for=` of the `Forwarded` header (RFC 7239) in order; `None` when absent.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        let Ok(text) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in text.split(',') {
            let found = element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_hop(value.trim().trim_matches('"')))
            });
            if let Some(hop) = found {
                hops.push(hop);
            }
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// One hop: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

/// The tower [`Layer`] that answers 403 to requests from outside an [`AllowList`].
#[derive(Debug, Clone, Default)]
pub struct AllowListLayer {
    shared: Arc<Shared>,
}

#[derive(Debug, Clone, Default)]
struct Shared {
    allowed: AllowList,
    proxies: TrustedProxies,
    metrics: Option<Metrics>,
}

impl AllowListLayer {
    /// Lets through only what `allowed` allows.
    pub fn new(allowed: AllowList) -> Self {
        Self {
            shared: Arc::new(Shared {
                allowed,
                ..Shared::default()
            }),
        }
    }

    /// Believes the forwarding headers of these proxies.
    pub fn trust_proxies(self, proxies: TrustedProxies) -> Self {
        self.with(|shared| shared.proxies = proxies)
    }

    /// Counts refusals in these metrics (`passfort_requests_rejected_total{reason="ip"}`).
    pub fn metrics(self, metrics: Metrics) -> Self {
        self.with(|shared| shared.metrics = Some(metrics))
    }

    fn with(self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        change(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The client address of `request` as this layer sees it, if known.
    pub fn client_of<B>(&self, request: &Request<B>) -> Option<IpAddr> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())?;
        self.shared.proxies.client(peer, request.headers())
    }
}

impl<S> Layer<S> for AllowListLayer {
    type Service = AllowListService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AllowListService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AllowListLayer`] wraps around a router or handler.
#[derive(Debug, Clone)]
pub struct AllowListService<S> {
    inner: S,
    layer: AllowListLayer,
}

/// The client address a refusal names.
struct Refused(Option<IpAddr>);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("unknown"),
        }
    }
}

impl<S> Service<Request<Body>> for AllowListService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let shared = &self.layer.shared;
        if shared.allowed.is_everyone() {
            return Box::pin(self.inner.call(request));
        }
        let client = self.layer.client_of(&request);
        if client.is_some_and(|ip| shared.allowed.allows(ip)) {
            return Box::pin(self.inner.call(request));
        }
        let client = Refused(client);
        tracing::warn!(client = %client, path = %request.uri().path(), "request from outside the allow-list refused (403)");
        if let Some(metrics) = &shared.metrics {
            metrics.record_rejected("ip");
        }
        // The body is dropped unread.
        drop(request);
        let message = format!("address {client} is not allowed to post webhooks");
        Box::pin(async move {
            Ok((
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({ "error": message })),
            )
                .into_response())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn named_sets_expand_to_passfort_addresses() {
        let eu: AllowList = "passfort-eu".parse().unwrap();
        assert!(eu.allows(ip("35.195.138.186")));
        assert!(!eu.allows(ip("35.231.204.101")));
        let all = AllowList::passfort();
        for set in [PASSFORT_EU, PASSFORT_US, PASSFORT_UAE] {
            for cidr in set {
                let net: IpNet = cidr.parse().unwrap();
                assert!(all.allows(net.addr()), "{cidr}");
            }
        }
        assert!(!all.allows(ip("127.0.0.1")));
        assert!(all.allows(ip("::ffff:35.196.25.242")), "IPv4-mapped IPv6");
    }

    #[test]
    fn lists_mix_addresses_cidrs_and_sets() {
        let list: AllowList = "127.0.0.2, 10.0.0.0/8,passfort-us,::1".parse().unwrap();
        assert!(list.allows(ip("127.0.0.2")));
        assert!(!list.allows(ip("127.0.0.3")));
        assert!(list.allows(ip("10.200.1.1")));
        assert!(list.allows(ip("35.196.25.242")));
        assert!(list.allows(ip("::1")));
        assert!(AllowList::everyone().allows(ip("8.8.8.8")));
        assert_eq!(
            "10.0.0.0/8,nowhere".parse::<AllowList>(),
            Err(AllowListError::BadEntry("nowhere".into()))
        );
        assert_eq!(" , ".parse::<AllowList>(), Err(AllowListError::Empty));
        assert_eq!(
            "passfort".parse::<TrustedProxies>(),
            Err(AllowListError::BadEntry("passfort".into())),
            "named sets are PassFort's senders, never proxies"
        );
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let forged = headers(&[("x-forwarded-for", "35.195.138.186")]);
        // An untrusted peer's forwarding header is ignored.
        assert_eq!(
            proxies.client(ip("203.0.113.9"), &forged),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            TrustedProxies::none().client(ip("10.0.0.1"), &forged),
            Some(ip("10.0.0.1"))
        );
        // Right-most untrusted hop: a client cannot prepend its way in.
        let chain = headers(&[("x-forwarded-for", "35.195.138.186, 203.0.113.9, 10.0.0.7")]);
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &chain),
            Some(ip("203.0.113.9"))
        );
        let split = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "35.195.138.186"),
        ]);
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &split),
            Some(ip("35.195.138.186"))
        );
        let forwarded = headers(&[(
            "forwarded",
            "for=203.0.113.9;proto=https, for=\"[2001:db8::1]:443\", for=10.0.0.5",
        )]);
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &forwarded),
            Some(ip("2001:db8::1"))
        );
        let unreadable = headers(&[("x-forwarded-for", "unknown, 10.0.0.5")]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &unreadable), None);
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &HeaderMap::new()),
            Some(ip("10.0.0.1"))
        );
        let all_trusted = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.5")]);
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &all_trusted),
            Some(ip("10.9.9.9"))
        );
    }
}
