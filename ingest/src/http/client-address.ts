import { BlockList, isIP } from 'node:net';

/**
 * Where the client's address comes from, set to what the deployment really has in front of the pods
 * (`CLIENT_ADDRESS_SOURCE`):
 *
 * - `socket`: nothing in front (local stack); the TCP peer is the client and forwarding headers are ignored.
 * - `alb`: an AWS ALB (or `TRUST_PROXY_HOPS` proxies) in front. Each proxy appends the address it saw to
 *   X-Forwarded-For, so the client is the address `TRUST_PROXY_HOPS` steps from the right of
 *   [...X-Forwarded-For, socket peer]: the right-most hop no trusted proxy wrote. Anything further left was written
 *   by the client and is ignored, so `X-Forwarded-For: 8.8.4.4` or `1.1.1.1, 7.7.7.7` changes nothing.
 * - `cloudfront`: CloudFront -> ALB -> pod. The ALB's X-Forwarded-For hop is CloudFront's edge address (many
 *   voters share it), so the viewer's address is CloudFront's `CloudFront-Viewer-Address` header (`ip:port`).
 *
 * In both proxy modes the forwarding headers are believed only when the TCP peer is a trusted proxy
 * (`TRUSTED_PROXY_CIDRS`, the VPC ranges the ALB lives in): a client that reaches a pod some other way (a
 * misconfigured security group, a port-forward) is judged by its own socket address, never by its headers.
 */
export type ClientAddressSource = 'socket' | 'alb' | 'cloudfront';

export interface ClientAddressOptions {
  source: ClientAddressSource;
  /** Proxies that append to X-Forwarded-For in front of the pods (ALB only: 1). */
  trustProxyHops: number;
  /** CIDRs a trusted proxy connects from, e.g. `10.0.0.0/8`. */
  trustedProxyCidrs: readonly string[];
}

export interface RequestLike {
  headers: Record<string, string | string[] | undefined>;
  socket: { remoteAddress?: string | undefined };
}

export type ClientAddressResolver = (req: RequestLike) => string | undefined;

/** An X-Forwarded-For chain longer than this is not from our proxies; only its right end is looked at anyway. */
const forwardedHeaderCharsMax = 2048;

function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

export function parseCidrs(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [net, bits] = cidr.split('/');
    const family = isIP(net ?? '');
    const prefix = Number(bits);
    if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
      throw new Error(`not a CIDR: ${JSON.stringify(cidr)}`);
    }
    list.addSubnet(net as string, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

/** `CloudFront-Viewer-Address`: `198.51.100.10:46532` or `2001:db8::1:46532` (the port after the last colon). */
export function viewerAddressOf(header: string): string | undefined {
  const colon = header.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const ip = header.slice(0, colon).replace(/^\[|\]$/g, '');
  return isIP(ip) === 0 ? undefined : ip;
}

export function createClientAddressResolver(opts: ClientAddressOptions): ClientAddressResolver {
  const socketAddress = (req: RequestLike) => {
    const a = req.socket.remoteAddress;
    return a === undefined ? undefined : unmapped(a);
  };
  if (opts.source === 'socket') return socketAddress;
  const trusted = parseCidrs(opts.trustedProxyCidrs);
  const isTrustedPeer = (address: string) => trusted.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
  // 0 hops: no proxy appends (the peer is the client), as with `socket` but still through a trusted peer.
  const hops = opts.trustProxyHops;

  const fromForwardedFor = (req: RequestLike, peer: string): string => {
    const raw = req.headers['x-forwarded-for'];
    const header = Array.isArray(raw) ? raw.join(',') : (raw ?? '');
    // Only the right end matters: keep the last forwardedHeaderCharsMax characters (the proxies' part).
    const tail = header.length > forwardedHeaderCharsMax ? header.slice(-forwardedHeaderCharsMax) : header;
    const chain = tail === '' ? [] : tail.split(',').map((s) => unmapped(s.trim()));
    chain.push(peer);
    // chain[len - 1] is the peer (proxy 1), ..., chain[len - 1 - hops] the address proxy `hops` saw.
    const index = chain.length - 1 - hops;
    if (index < 0) return peer; // fewer hops than configured: the request did not come through every proxy
    const candidate = chain[index] as string;
    return isIP(candidate) === 0 ? peer : candidate;
  };

  return (req) => {
    const peer = socketAddress(req);
    if (peer === undefined || !isTrustedPeer(peer)) return peer;
    if (opts.source === 'cloudfront') {
      const viewer = req.headers['cloudfront-viewer-address'];
      if (typeof viewer === 'string' && viewer.length <= 64) {
        const ip = viewerAddressOf(viewer);
        if (ip !== undefined) return unmapped(ip);
      }
    }
    return fromForwardedFor(req, peer);
  };
}
